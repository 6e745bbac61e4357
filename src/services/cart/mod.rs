//! The cart service: which cart a caller means, what a line may hold, and the
//! priced view. Changes go to the cart's actor; item data and stock come from
//! the catalog's read models.
//!
//! One cart per signed-in user (across devices), found through `user_carts`.
//! A guest's cart is reached by an unguessable token (`X-Cart-Token`), stored
//! only as its SHA-256 in `guest_carts`; signing in with it merges the lines.

mod remote;

pub use remote::{GuestCarts, KIND as REMOTE_KIND};

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::actors::cart::{CartActors, CartError, Owner};
use crate::domain::cart::{
    Cart, CartLine, PricedCartLine, PricedLines, Pricing, Totals, MAX_LINE_QUANTITY,
};
use crate::domain::item::{Item, ItemStatus};
use crate::domain::{key_of_text, new_id_beside, new_id_in, FieldErrors, Timestamp};
use crate::services::catalog::{CatalogError, CatalogService};
use crate::storage::{StorageError, Store, TreeName};

/// Why a cart request failed.
#[derive(Debug, thiserror::Error)]
pub enum CartServiceError {
    /// Invalid fields.
    #[error("invalid fields")]
    Invalid(FieldErrors),
    /// The item does not exist.
    #[error("item not found")]
    ItemNotFound,
    /// The item is not for sale.
    #[error("item is inactive")]
    ItemInactive,
    /// More than the available stock (soft check: nothing is reserved).
    #[error("only {available} available")]
    InsufficientStock {
        /// Current available stock.
        available: i64,
    },
    /// The cart refused.
    #[error(transparent)]
    Cart(#[from] CartError),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The node holding a guest cart could not be reached.
    #[error(transparent)]
    Remote(#[from] crate::cluster::CallError),
}

/// Who is asking for "my cart".
#[derive(Debug, Clone)]
pub enum Shopper {
    /// A signed-in user.
    User(String),
    /// A guest, with the token of their cart if they have one.
    Guest(Option<String>),
}

/// A cart with current prices and totals.
#[derive(Debug, Clone)]
pub struct PricedCart {
    /// The cart, if one exists yet.
    pub cart: Option<Cart>,
    /// A guest cart's token (returned so the guest can send it back).
    pub token: Option<String>,
    /// Lines with current prices.
    pub lines: Vec<PricedCartLine>,
    /// The amounts.
    pub totals: Totals,
    /// When an idle cart expires.
    pub expires_at: Option<Timestamp>,
}

/// The cart service. Cheap to clone.
#[derive(Clone)]
pub struct CartService {
    store: Store,
    actors: CartActors,
    catalog: CatalogService,
    pricing: Arc<Pricing>,
    ttl_secs: u64,
    /// In a cluster: where guest carts live and how to reach them.
    guests: Option<GuestCarts>,
}

impl CartService {
    /// The service over the cart actors, the catalog and the pricing rules.
    pub fn new(
        store: Store,
        actors: CartActors,
        catalog: CatalogService,
        pricing: Pricing,
        ttl_secs: u64,
    ) -> Self {
        CartService {
            store,
            actors,
            catalog,
            pricing: Arc::new(pricing),
            ttl_secs,
            guests: None,
        }
    }

    /// In a cluster: a guest's cart lives on the node its token is placed
    /// on, and signing in takes its lines from there.
    pub fn with_guests(mut self, guests: GuestCarts) -> Self {
        self.guests = Some(guests);
        self
    }

    /// The cart actors (checkout locks them).
    pub fn actors(&self) -> &CartActors {
        &self.actors
    }

    /// The shopper's cart, priced (empty if they have none).
    pub async fn view(&self, shopper: &Shopper) -> Result<PricedCart, CartServiceError> {
        let (cart_id, token) = match self.find(shopper).await? {
            Some(found) => found,
            None => return self.price(None, None).await,
        };
        let cart = self.actors.get(&cart_id).await?;
        self.price(cart, token).await
    }

    /// The cart with `cart_id`, priced, if `shopper` owns it.
    pub async fn owned(
        &self,
        shopper: &Shopper,
        cart_id: &str,
    ) -> Result<Option<PricedCart>, CartServiceError> {
        match self.find(shopper).await? {
            Some((id, token)) if id == cart_id => {
                let cart = self.actors.get(&id).await?;
                Ok(Some(self.price(cart, token).await?))
            }
            _ => Ok(None),
        }
    }

    /// The id of `user_id`'s cart, if they have one.
    pub async fn cart_of(&self, user_id: &str) -> Result<Option<String>, StorageError> {
        let id = self
            .store
            .get_raw(TreeName::UserCarts, user_id.as_bytes())
            .await?;
        Ok(id.map(|id| String::from_utf8_lossy(&id).into_owned()))
    }

    /// Sets the quantity of one line (0 removes it), after checking the item,
    /// the variant and (softly) the stock.
    pub async fn set_line(
        &self,
        shopper: &Shopper,
        item_id: Option<String>,
        variant_id: Option<String>,
        quantity: Option<i64>,
    ) -> Result<PricedCart, CartServiceError> {
        let mut errors = FieldErrors::new();
        match quantity {
            None => errors.add("quantity", "is required"),
            Some(q) if !(0..=MAX_LINE_QUANTITY).contains(&q) => errors.add(
                "quantity",
                format!("must be between 0 and {MAX_LINE_QUANTITY}"),
            ),
            Some(_) => {}
        }
        if item_id.is_none() {
            errors.add("itemId", "is required");
        }
        let (Some(item_id), Some(quantity), true) = (item_id, quantity, errors.is_empty()) else {
            return Err(CartServiceError::Invalid(errors));
        };
        let item = match self.catalog.item(&item_id).await {
            Ok(item) => item,
            Err(CatalogError::NotFound) => return Err(CartServiceError::ItemNotFound),
            Err(e) => return Err(e.into()),
        };
        let variant_id = pick_variant(&item, variant_id)?;
        let price = item.variant(&variant_id).map_or(item.price, |v| v.price);
        if quantity > 0 {
            if item.status == ItemStatus::Inactive {
                return Err(CartServiceError::ItemInactive);
            }
            let available = self.catalog.levels(vec![variant_id.clone()]).await?[0].available;
            if quantity > available {
                return Err(CartServiceError::InsufficientStock { available });
            }
        }
        let line = CartLine {
            item_id: item.id.clone(),
            variant_id,
            quantity,
            unit_price: price,
            currency: item.currency,
        };
        let (cart_id, token, owner) = self.find_or_create(shopper).await?;
        let cart = self.actors.set_line(&cart_id, owner, line).await?;
        self.price(Some(cart), token).await
    }

    /// Empties the shopper's cart.
    pub async fn clear(&self, shopper: &Shopper) -> Result<(), CartServiceError> {
        if let Some((cart_id, _)) = self.find(shopper).await? {
            self.actors.clear(&cart_id).await?;
        }
        Ok(())
    }

    /// Merges the guest cart behind `token` into `user_id`'s cart: summed
    /// quantities capped by stock (and the line maximum); lines of items no
    /// longer for sale are left out.
    ///
    /// The token is forgotten first, so a second sign-in with it (double
    /// click, two devices) merges nothing; then the guest's lines are taken
    /// in one step of the guest cart's actor, so none is merged twice.
    pub async fn merge_guest(&self, token: &str, user_id: &str) -> Result<(), CartServiceError> {
        let taken = match self.guests.as_ref().and_then(|g| g.remote_owner(token)) {
            Some((guests, owner)) => guests.take(&owner, token).await?,
            None => self.take_guest(token).await?,
        };
        let mut lines = Vec::with_capacity(taken.len());
        for line in taken {
            match self.catalog.item(&line.item_id).await {
                Ok(item) if item.status == ItemStatus::Active => lines.push(line),
                Ok(_) | Err(CatalogError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if lines.is_empty() {
            return Ok(());
        }
        let variants: Vec<String> = lines.iter().map(|l| l.variant_id.clone()).collect();
        let levels = self.catalog.levels(variants.clone()).await?;
        let caps: BTreeMap<String, i64> = variants
            .into_iter()
            .zip(levels.iter().map(|l| l.available))
            .collect();
        let shopper = Shopper::User(user_id.to_owned());
        let (cart_id, _, owner) = self.find_or_create(&shopper).await?;
        self.actors.merge(&cart_id, owner, lines, caps).await?;
        Ok(())
    }

    /// Forgets the guest token and takes its cart's lines, in one step of
    /// the cart's actor (none is taken twice); nothing for an unknown token.
    pub async fn take_guest(&self, token: &str) -> Result<Vec<CartLine>, CartServiceError> {
        let Some(guest_id) = self.guest_cart(token).await? else {
            return Ok(Vec::new());
        };
        let key = token_key(token);
        self.store
            .write(move |tx| {
                tx.remove(TreeName::GuestCarts, key.to_vec());
                Ok::<_, StorageError>(())
            })
            .await?;
        Ok(self.actors.take_lines(&guest_id).await?)
    }

    /// Prices a cart at today's prices: what `GET /cart` shows and what
    /// checkout charges (the same [`Pricing::price`] the coordinator runs).
    pub async fn price(
        &self,
        cart: Option<Cart>,
        token: Option<String>,
    ) -> Result<PricedCart, CartServiceError> {
        let lines = cart.as_ref().map_or(&[][..], |c| &c.lines[..]);
        let mut items = Vec::with_capacity(lines.len());
        for line in lines {
            match self.catalog.item(&line.item_id).await {
                Ok(item) => items.push(Some(item)),
                Err(CatalogError::NotFound) => items.push(None),
                Err(e) => return Err(e.into()),
            }
        }
        let PricedLines { lines, totals } = self.pricing.price(lines, items);
        let expires_at = cart.as_ref().map(|c| c.updated_at.plus_secs(self.ttl_secs));
        Ok(PricedCart {
            cart,
            token,
            lines,
            totals,
            expires_at,
        })
    }

    /// The shopper's cart id (and guest token), if they have a cart.
    async fn find(
        &self,
        shopper: &Shopper,
    ) -> Result<Option<(String, Option<String>)>, CartServiceError> {
        match shopper {
            Shopper::User(user) => Ok(self.cart_of(user).await?.map(|id| (id, None))),
            Shopper::Guest(Some(token)) => Ok(self
                .guest_cart(token)
                .await?
                .map(|id| (id, Some(token.clone())))),
            Shopper::Guest(None) => Ok(None),
        }
    }

    /// The shopper's cart id, creating the cart (and a guest token) if needed.
    async fn find_or_create(
        &self,
        shopper: &Shopper,
    ) -> Result<(String, Option<String>, Owner), CartServiceError> {
        match shopper {
            Shopper::User(user) => {
                let owner = Owner::User(user.clone());
                if let Some(id) = self.cart_of(user).await? {
                    return Ok((id, None, owner));
                }
                // Placed with the buyer; a guest cart keeps a random shard.
                let (user, candidate) = (user.clone(), new_id_beside(user));
                // In one write job, so two devices' first changes share one cart.
                let id = self
                    .store
                    .write(
                        move |tx| match tx.get_raw(TreeName::UserCarts, user.as_bytes())? {
                            Some(existing) => Ok::<_, StorageError>(
                                String::from_utf8_lossy(&existing).into_owned(),
                            ),
                            None => {
                                tx.put_raw(
                                    TreeName::UserCarts,
                                    user.as_bytes(),
                                    candidate.as_bytes().to_vec(),
                                );
                                Ok(candidate.clone())
                            }
                        },
                    )
                    .await?;
                Ok((id, None, owner))
            }
            Shopper::Guest(token) => {
                if let Some(token) = token {
                    if let Some(id) = self.guest_cart(token).await? {
                        return Ok((id, Some(token.clone()), Owner::Guest));
                    }
                }
                // The token is placed on this node, and the cart with it.
                let token = match &self.guests {
                    Some(guests) => guests.local_token(new_token),
                    None => new_token(),
                };
                let id = new_id_in(key_of_text(&token));
                let (key, value) = (token_key(&token), id.clone().into_bytes());
                self.store
                    .write(move |tx| {
                        tx.put_raw(TreeName::GuestCarts, key.to_vec(), value.clone());
                        Ok::<_, StorageError>(())
                    })
                    .await?;
                Ok((id, Some(token), Owner::Guest))
            }
        }
    }

    async fn guest_cart(&self, token: &str) -> Result<Option<String>, CartServiceError> {
        if token.len() != 43 {
            return Ok(None);
        }
        let id = self
            .store
            .get_raw(TreeName::GuestCarts, token_key(token))
            .await?;
        Ok(id.map(|id| String::from_utf8_lossy(&id).into_owned()))
    }
}

/// The variant a line is for: required exactly when the item declares variants.
fn pick_variant(item: &Item, variant_id: Option<String>) -> Result<String, CartServiceError> {
    let invalid =
        |message: &str| CartServiceError::Invalid(FieldErrors::single("variantId", message));
    match (item.has_variants, variant_id) {
        (false, None) => Ok(item.id.clone()),
        (false, Some(v)) if v == item.id => Ok(v),
        (true, Some(v)) if item.variant(&v).is_some() => Ok(v),
        (true, None) => Err(invalid("is required: the item has variants")),
        (_, Some(_)) => Err(invalid("is not a variant of this item")),
    }
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn token_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}
