//! The carts' public surface: what callers use instead of messages.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{CartEntity, CartError, CartMsg, Owner};
use crate::actors::runtime::{EntityError, Region, RegionSettings};
use crate::domain::cart::{Cart, CartLine};
use crate::storage::{Rider, Store};

/// The carts of this node. Cheap to clone.
#[derive(Clone)]
pub struct CartActors {
    region: Region<CartEntity>,
}

impl CartActors {
    /// Starts the cart region; carts idle for `ttl` are emptied.
    pub async fn start(
        store: Store,
        ttl: Duration,
        settings: RegionSettings,
    ) -> Result<Self, EntityError> {
        Ok(CartActors {
            region: Region::start(CartEntity { store, ttl }, settings).await?,
        })
    }

    /// The cart (`None` if it has no content and no owner yet).
    pub async fn get(&self, cart_id: &str) -> Result<Option<Cart>, CartError> {
        self.region.call(cart_id, CartMsg::Get).await?
    }

    /// Sets a line (quantity 0 removes it).
    pub async fn set_line(
        &self,
        cart_id: &str,
        owner: Owner,
        line: CartLine,
    ) -> Result<Cart, CartError> {
        self.region
            .call(cart_id, |reply| {
                CartMsg::SetLine(owner.clone(), line.clone(), reply)
            })
            .await?
    }

    /// Removes every line.
    pub async fn clear(&self, cart_id: &str) -> Result<(), CartError> {
        self.region.call(cart_id, CartMsg::Clear).await?
    }

    /// Adds `lines` to the cart, capped per variant by `caps`.
    pub async fn merge(
        &self,
        cart_id: &str,
        owner: Owner,
        lines: Vec<CartLine>,
        caps: BTreeMap<String, i64>,
    ) -> Result<Cart, CartError> {
        self.region
            .call(cart_id, |reply| {
                CartMsg::Merge(owner.clone(), lines.clone(), caps.clone(), reply)
            })
            .await?
    }

    /// Empties the cart and returns its lines (refused while locked).
    pub async fn take_lines(&self, cart_id: &str) -> Result<Vec<CartLine>, CartError> {
        self.region.call(cart_id, CartMsg::TakeLines).await?
    }

    /// Locks the cart for `checkout` and returns its lines.
    pub async fn begin_checkout(&self, cart_id: &str, checkout: &str) -> Result<Cart, CartError> {
        self.region
            .call(cart_id, |reply| {
                CartMsg::BeginCheckout(checkout.to_owned(), reply)
            })
            .await?
    }

    /// Unlocks the cart held by `checkout`, emptying it when `clear`, and
    /// writes `rider` with it.
    pub async fn end_checkout(
        &self,
        cart_id: &str,
        checkout: &str,
        clear: bool,
        rider: Option<Rider>,
    ) -> Result<(), CartError> {
        self.region
            .call(cart_id, |reply| {
                CartMsg::EndCheckout(checkout.to_owned(), clear, rider.clone(), reply)
            })
            .await?
    }

    /// Stops every cart actor.
    pub async fn stop(&self) {
        self.region.stop().await;
    }
}
