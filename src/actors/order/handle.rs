//! The handle to this node's orders.

use super::{Change, OrderEntity, OrderError, OrderMsg};
use crate::actors::cart::CartActors;
use crate::actors::inventory::InventoryActors;
use crate::actors::runtime::{EntityError, Region, RegionSettings};
use crate::domain::order::{FulfilmentStatus, Order};
use crate::payments::Payments;
use crate::storage::{Rider, Store, TreeName};

/// The orders of this node: one actor each. Cheap to clone.
#[derive(Clone)]
pub struct OrderActors {
    region: Region<OrderEntity>,
    store: Store,
}

impl OrderActors {
    /// Starts the order region. `carts` are unlocked when an order ends
    /// unpaid.
    pub async fn start(
        store: Store,
        inventory: InventoryActors,
        carts: CartActors,
        payments: Payments,
        settings: RegionSettings,
    ) -> Result<Self, EntityError> {
        let region = Region::start(
            OrderEntity {
                store: store.clone(),
                inventory,
                carts,
                payments,
            },
            settings,
        )
        .await?;
        Ok(OrderActors { region, store })
    }

    /// Stores a new order (idempotent for its checkout) with `rider`.
    pub async fn create(&self, order: Order, rider: Option<Rider>) -> Result<Order, OrderError> {
        let id = order.id.clone();
        self.region
            .call(&id, |reply| {
                OrderMsg::Create(Box::new(order.clone()), rider.clone(), reply)
            })
            .await?
    }

    /// Applies `change` to an order, with `rider`.
    pub async fn update(
        &self,
        order_id: &str,
        change: Change,
        rider: Option<Rider>,
    ) -> Result<Order, OrderError> {
        self.region
            .call(order_id, |reply| {
                OrderMsg::Update(change.clone(), rider.clone(), reply)
            })
            .await?
    }

    /// The buyer's cancellation.
    pub async fn cancel(&self, order_id: &str) -> Result<Order, OrderError> {
        self.region.call(order_id, OrderMsg::Cancel).await?
    }

    /// `seller_id` moves their part of the order to `to`.
    pub async fn fulfil(
        &self,
        order_id: &str,
        seller_id: &str,
        to: FulfilmentStatus,
    ) -> Result<Order, OrderError> {
        self.region
            .call(order_id, |reply| {
                OrderMsg::Fulfil(seller_id.to_owned(), to, reply)
            })
            .await?
    }

    /// Indexes orders stored before the `seller_orders` index existed (once;
    /// a no-op afterwards); returns how many orders it read.
    pub async fn index_sellers(&self) -> Result<usize, OrderError> {
        Ok(super::fulfilment::index_sellers(&self.store).await?)
    }

    /// The order, from its actor.
    pub async fn get(&self, order_id: &str) -> Result<Option<Order>, OrderError> {
        Ok(self.region.call(order_id, OrderMsg::Get).await?)
    }

    /// Activates every order with unfinished business (a payment deadline,
    /// stock to put back), so it completes even if nobody asks for it after
    /// a restart; returns how many.
    pub async fn recover(&self) -> Result<usize, OrderError> {
        let pending: Vec<String> = self
            .store
            .read(|trees| {
                let mut ids = Vec::new();
                for entry in trees.tree(TreeName::PendingOrders).iter() {
                    let (key, _) = entry?;
                    ids.push(String::from_utf8_lossy(&key).into_owned());
                }
                Ok(ids)
            })
            .await?;
        let mut recovered = 0;
        for id in &pending {
            match self.get(id).await {
                Ok(_) => recovered += 1,
                Err(e) => {
                    tracing::warn!(order = %id, error = %e, "could not resume an unfinished order")
                }
            }
        }
        Ok(recovered)
    }

    /// How many order actors are live.
    pub fn live(&self) -> usize {
        self.region.live()
    }

    /// Stops every order actor.
    pub async fn stop(&self) {
        self.region.stop().await;
    }
}
