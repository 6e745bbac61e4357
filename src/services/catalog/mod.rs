//! The seller catalog: listing, reading, changing and withdrawing items.
//!
//! Item records live in storage; their stock lives behind [`InventoryActors`].
//! Every change writes the item and its event (`item.created`,
//! `item.updated`, `item.deactivated`) in one atomic write.

mod page;
mod seller;
mod skus;

pub use page::RenderedItem;
pub use seller::{index_items_by_seller, seller_item_key, ItemPage};

use std::sync::Arc;

use crate::actors::inventory::{InventoryActors, InventoryError};
use crate::actors::runtime::EntityError;
use crate::domain::event::EventBody;
use crate::domain::item::{
    self, Item, ItemInput, ItemPatch, ItemStatus, PatchEffect, StockLevel, ValidPatch,
};
use crate::domain::placement::Ownership;
use crate::domain::stock::StockError;
use crate::domain::user::Role;
use crate::domain::{looks_like_id, FieldErrors, Timestamp};
use crate::services::account::Authenticated;
use crate::storage::{StorageError, Store, TreeName};
use page::ItemPages;

/// Why a catalog operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// Some fields are invalid.
    #[error("invalid fields")]
    Invalid(FieldErrors),
    /// Only sellers may list items.
    #[error("only sellers may list items")]
    NotASeller,
    /// No such item, or (for changes) not the caller's.
    #[error("item not found")]
    NotFound,
    /// A stock change would make `available` negative.
    #[error("insufficient stock: {available} available")]
    InsufficientStock {
        /// Current available stock.
        available: i64,
    },
    /// An actor the change needed was overloaded, too slow or failed.
    #[error("temporarily unavailable: {0}")]
    Unavailable(EntityError),
    /// The cursor was not issued by this server for this list.
    #[error("invalid cursor")]
    InvalidCursor,
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<InventoryError> for CatalogError {
    fn from(e: InventoryError) -> Self {
        match e {
            InventoryError::Refused(StockError::Insufficient { available }) => {
                CatalogError::InsufficientStock { available }
            }
            InventoryError::Refused(StockError::TooMuch) => {
                CatalogError::Invalid(FieldErrors::single(
                    "delta",
                    format!("stock would exceed {}", item::MAX_QUANTITY),
                ))
            }
            InventoryError::UnknownVariant => CatalogError::NotFound,
            InventoryError::Storage(e) => CatalogError::Storage(e),
            InventoryError::Unavailable(e) => CatalogError::Unavailable(e),
            other => CatalogError::Invalid(FieldErrors::single("delta", other.to_string())),
        }
    }
}

/// An item with the stock of each of its variants (same order).
#[derive(Debug, Clone)]
pub struct StockedItem {
    /// The item.
    pub item: Item,
    /// `stock[i]` belongs to `item.variants[i]`.
    pub stock: Vec<StockLevel>,
}

/// The stock of one variant after a change.
#[derive(Debug, Clone)]
pub struct VariantStock {
    /// The variant.
    pub variant_id: String,
    /// Its stock.
    pub level: StockLevel,
}

/// The catalog service. Cheap to clone.
#[derive(Clone)]
pub struct CatalogService {
    store: Store,
    inventory: InventoryActors,
    /// Which SKUs this node's inventory owns; the others' stock is read
    /// from the replica the cluster's events feed.
    ownership: Ownership,
    /// Rendered item pages, kept while the records they show are unchanged.
    pages: Arc<ItemPages>,
}

/// Bytes of item pages kept unless [`CatalogService::with_page_cache`] says.
const DEFAULT_PAGE_CACHE_BYTES: u64 = 16 << 20;

impl CatalogService {
    /// The catalog over `store`, with stock from `inventory`.
    pub fn new(store: Store, inventory: InventoryActors) -> Self {
        CatalogService {
            store,
            inventory,
            ownership: Ownership::alone(),
            pages: Arc::new(ItemPages::new(DEFAULT_PAGE_CACHE_BYTES)),
        }
    }

    /// Keeps about `bytes` of rendered item pages.
    pub fn with_page_cache(mut self, bytes: u64) -> Self {
        self.pages = Arc::new(ItemPages::new(bytes));
        self
    }

    /// The catalog of one node of a cluster, owning what `ownership` says.
    pub fn with_ownership(mut self, ownership: Ownership) -> Self {
        self.ownership = ownership;
        self
    }

    /// Lists a new item for the signed-in seller.
    pub async fn create(
        &self,
        seller: &Authenticated,
        input: ItemInput,
    ) -> Result<StockedItem, CatalogError> {
        if seller.role != Role::Seller {
            return Err(CatalogError::NotASeller);
        }
        let new = item::validate_new_item(input, &seller.user_id, Timestamp::now())
            .map_err(CatalogError::Invalid)?;
        let stock: Vec<StockLevel> = new
            .stock
            .iter()
            .map(|(_, qty)| StockLevel {
                available: *qty,
                ..Default::default()
            })
            .collect();
        let item = self
            .store
            .write(move |tx| {
                skus::claim_skus(tx, &new.item)?;
                tx.put(TreeName::Items, new.item.id.as_bytes(), &new.item)?;
                tx.put_raw(
                    TreeName::SellerItems,
                    seller_item_key(&new.item.seller_id, &new.item.id),
                    Vec::new(),
                );
                tx.emit(EventBody::ItemCreated(new.item.clone()));
                for (variant_id, quantity) in &new.stock {
                    InventoryActors::stage_opening_stock(tx, &new.item.id, variant_id, *quantity)?;
                    // Consumers (search, other nodes) learn the opening stock
                    // from the log, like every later change.
                    tx.emit(EventBody::StockChanged {
                        item_id: new.item.id.clone(),
                        variant_id: variant_id.clone(),
                        available: *quantity,
                        reserved: 0,
                    });
                }
                Ok::<_, CatalogError>(new.item.clone())
            })
            .await?;
        Ok(StockedItem { item, stock })
    }

    /// Reads an item (active or not) with its stock.
    pub async fn get(&self, item_id: &str) -> Result<StockedItem, CatalogError> {
        let item = self.load(item_id).await?;
        let stock = self
            .levels(item.variants.iter().map(|v| v.id.clone()).collect())
            .await?;
        Ok(StockedItem { item, stock })
    }

    /// Applies a seller's patch to one of their items.
    pub async fn update(
        &self,
        seller_id: &str,
        item_id: &str,
        patch: ItemPatch,
    ) -> Result<StockedItem, CatalogError> {
        let patch = item::validate_patch(patch).map_err(CatalogError::Invalid)?;
        let item = self.change(seller_id, item_id, patch).await?;
        let stock = self
            .levels(item.variants.iter().map(|v| v.id.clone()).collect())
            .await?;
        Ok(StockedItem { item, stock })
    }

    /// Withdraws an item: it stays readable by id but is no longer sold.
    /// Withdrawing an inactive item changes nothing.
    pub async fn deactivate(&self, seller_id: &str, item_id: &str) -> Result<(), CatalogError> {
        self.change(seller_id, item_id, item::deactivation())
            .await
            .map(drop)
    }

    /// Adds `delta` to the stock of one variant of a seller's item.
    /// `variant_id` is required exactly when the item declares variants.
    pub async fn adjust_stock(
        &self,
        seller_id: &str,
        item_id: &str,
        variant_id: Option<String>,
        delta: i64,
    ) -> Result<VariantStock, CatalogError> {
        let item = self.load_owned(seller_id, item_id).await?;
        let variant_id = match (item.has_variants, variant_id) {
            (false, None) => item.id.clone(),
            (false, Some(v)) if v == item.id => v,
            (true, Some(v)) if item.variant(&v).is_some() => v,
            (true, None) => {
                return Err(CatalogError::Invalid(FieldErrors::single(
                    "variantId",
                    "is required: the item has variants",
                )))
            }
            (_, Some(_)) => {
                return Err(CatalogError::Invalid(FieldErrors::single(
                    "variantId",
                    "is not a variant of this item",
                )))
            }
        };
        if delta.unsigned_abs() > item::MAX_QUANTITY as u64 {
            let message = format!("must be between -{0} and {0}", item::MAX_QUANTITY);
            return Err(CatalogError::Invalid(FieldErrors::single("delta", message)));
        }
        let level = self.inventory.adjust(&variant_id, delta).await?;
        Ok(VariantStock { variant_id, level })
    }

    /// Adds a stored image (by media key) to a seller's item; adding the
    /// same image again changes nothing.
    pub async fn add_image(
        &self,
        seller_id: &str,
        item_id: &str,
        key: String,
    ) -> Result<Item, CatalogError> {
        self.modify(seller_id, item_id, move |item, now| {
            if item.images.contains(&key) {
                return Ok(None);
            }
            if item.images.len() >= item::MAX_IMAGES {
                return Err(CatalogError::Invalid(FieldErrors::single(
                    "image",
                    format!("an item has at most {} images", item::MAX_IMAGES),
                )));
            }
            item.images.push(key.clone());
            item.updated_at = now;
            Ok(Some(EventBody::ItemUpdated(item.clone())))
        })
        .await
    }

    /// The item record alone (no stock): one cache read.
    pub async fn item(&self, item_id: &str) -> Result<Item, CatalogError> {
        self.load(item_id).await
    }

    /// Stock levels of the given variants (the read model): this node's
    /// own SKUs from its inventory, another node's from the replica.
    pub async fn levels(&self, variant_ids: Vec<String>) -> Result<Vec<StockLevel>, CatalogError> {
        if self.ownership.is_alone() {
            return Ok(self.inventory.levels(variant_ids).await?);
        }
        let mut levels = Vec::with_capacity(variant_ids.len());
        for id in variant_ids {
            levels.push(self.level(&id).await?);
        }
        Ok(levels)
    }

    /// The item record if it is for sale (active); `None` for an unknown or
    /// withdrawn item. One cache read, no stock.
    pub async fn item_for_sale(&self, item_id: &str) -> Result<Option<Item>, CatalogError> {
        match self.load(item_id).await {
            Ok(item) => Ok(Some(item).filter(|item| item.status == ItemStatus::Active)),
            Err(CatalogError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// What a buyer can get of `item` now, summed over its variants.
    pub async fn available(&self, item: &Item) -> Result<i64, CatalogError> {
        let levels = self
            .levels(item.variants.iter().map(|v| v.id.clone()).collect())
            .await?;
        Ok(levels.iter().map(|l| l.available).sum())
    }

    /// [`Self::item_for_sale`] for each of `item_ids`, in order, in one
    /// batched read (a result page).
    pub async fn items_for_sale(
        &self,
        item_ids: &[String],
    ) -> Result<Vec<Option<Item>>, CatalogError> {
        let mut found = vec![None; item_ids.len()];
        let valid: Vec<usize> = (0..item_ids.len())
            .filter(|&i| looks_like_id(&item_ids[i]))
            .collect();
        let keys = valid
            .iter()
            .map(|&i| item_ids[i].as_bytes().to_vec())
            .collect();
        let items = self.store.get_many::<Item>(TreeName::Items, keys).await?;
        for (i, item) in valid.into_iter().zip(items) {
            found[i] = item.filter(|item| item.status == ItemStatus::Active);
        }
        Ok(found)
    }

    async fn load(&self, item_id: &str) -> Result<Item, CatalogError> {
        if !looks_like_id(item_id) {
            return Err(CatalogError::NotFound);
        }
        self.store
            .get::<Item>(TreeName::Items, item_id.as_bytes())
            .await?
            .ok_or(CatalogError::NotFound)
    }

    /// Loads an item the seller owns; someone else's item is "not found".
    async fn load_owned(&self, seller_id: &str, item_id: &str) -> Result<Item, CatalogError> {
        let item = self.load(item_id).await?;
        if item.seller_id != seller_id {
            return Err(CatalogError::NotFound);
        }
        Ok(item)
    }

    /// Applies `patch` to the current record inside one write job (so two
    /// concurrent changes never overwrite each other), with its event.
    async fn change(
        &self,
        seller_id: &str,
        item_id: &str,
        patch: ValidPatch,
    ) -> Result<Item, CatalogError> {
        self.modify(seller_id, item_id, move |item, now| {
            Ok(match patch.apply(item, now) {
                PatchEffect::Unchanged => None,
                PatchEffect::Deactivated => Some(EventBody::ItemDeactivated(item.clone())),
                PatchEffect::Updated => Some(EventBody::ItemUpdated(item.clone())),
            })
        })
        .await
    }

    /// Changes a seller's item in one write job: `edit` changes the record
    /// and returns the event to store with it, or `None` if nothing changed
    /// (nothing is written). Someone else's item is "not found".
    async fn modify<F>(&self, seller_id: &str, item_id: &str, edit: F) -> Result<Item, CatalogError>
    where
        F: Fn(&mut Item, Timestamp) -> Result<Option<EventBody>, CatalogError> + Send + 'static,
    {
        if !looks_like_id(item_id) {
            return Err(CatalogError::NotFound);
        }
        let (seller_id, item_id) = (seller_id.to_owned(), item_id.to_owned());
        let now = Timestamp::now();
        self.store
            .write(move |tx| {
                let mut item: Item = tx
                    .get(TreeName::Items, item_id.as_bytes())?
                    .ok_or(CatalogError::NotFound)?;
                if item.seller_id != seller_id {
                    return Err(CatalogError::NotFound);
                }
                let Some(event) = edit(&mut item, now)? else {
                    return Ok(item);
                };
                tx.emit(event);
                tx.put(TreeName::Items, item.id.as_bytes(), &item)?;
                Ok(item)
            })
            .await
    }
}
