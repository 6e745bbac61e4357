//! The handle to this node's checkouts: start, follow, recover.

use std::sync::Arc;

use dashmap::DashSet;
use tokio::sync::watch;

use super::risk::Risk;
use super::{CheckoutEntity, CheckoutError, CheckoutMsg, CheckoutRequest, Progress};
use crate::actors::cart::CartActors;
use crate::actors::inventory::InventoryActors;
use crate::actors::order::OrderActors;
use crate::actors::runtime::{EntityError, Region, RegionSettings};
use crate::domain::cart::Pricing;
use crate::payments::Payments;
use crate::storage::{StorageError, Store, TreeName};
use std::time::Duration;

/// The checkouts of this node. Cheap to clone.
#[derive(Clone)]
pub struct CheckoutCoordinators {
    region: Region<CheckoutEntity>,
    store: Store,
    running: Arc<DashSet<String>>,
}

/// What [`CheckoutCoordinators::start`] needs.
pub struct CoordinatorDeps {
    /// Storage.
    pub store: Store,
    /// The cart actors (the checkout's lock, the clearing).
    pub carts: CartActors,
    /// Tax and shipping rules: the same the cart service prices with.
    pub pricing: Pricing,
    /// Stock.
    pub inventory: InventoryActors,
    /// Orders.
    pub orders: OrderActors,
    /// The payment client.
    pub payments: Payments,
    /// The risk step.
    pub risk: Risk,
    /// How long an order may wait for payment.
    pub payment_window: Duration,
}

impl CheckoutCoordinators {
    /// Starts the coordinator region.
    pub async fn start(
        deps: CoordinatorDeps,
        settings: RegionSettings,
    ) -> Result<Self, EntityError> {
        let running: Arc<DashSet<String>> = Arc::default();
        let store = deps.store.clone();
        let region = Region::start(
            CheckoutEntity {
                store: deps.store,
                carts: deps.carts,
                pricing: deps.pricing,
                inventory: deps.inventory,
                orders: deps.orders,
                payments: deps.payments,
                risk: deps.risk,
                payment_window: deps.payment_window,
                running: running.clone(),
            },
            settings,
        )
        .await?;
        Ok(CheckoutCoordinators {
            region,
            store,
            running,
        })
    }

    /// Starts a checkout; follow it on the returned receiver.
    pub async fn begin(
        &self,
        request: CheckoutRequest,
    ) -> Result<watch::Receiver<Progress>, CheckoutError> {
        let id = request.checkout_id.clone();
        Ok(self
            .region
            .call(&id, |reply| {
                CheckoutMsg::Start(Box::new(request.clone()), reply)
            })
            .await?)
    }

    /// Whether a coordinator is running `checkout_id` now.
    pub fn is_running(&self, checkout_id: &str) -> bool {
        self.running.contains(checkout_id)
    }

    /// Whether `checkout_id` left an unfinished log.
    pub async fn is_unfinished(&self, checkout_id: &str) -> Result<bool, StorageError> {
        let key = checkout_id.as_bytes().to_vec();
        self.store
            .read(move |trees| Ok(trees.tree(TreeName::Sagas).contains_key(key)?))
            .await
    }

    /// Finishes or undoes every checkout whose log is unfinished and which
    /// no coordinator is running (all of them at start-up); returns how many.
    pub async fn recover(&self) -> Result<usize, StorageError> {
        let ids: Vec<String> = self
            .store
            .read(|trees| {
                let mut ids = Vec::new();
                for entry in trees.tree(TreeName::Sagas).iter() {
                    let (key, _) = entry?;
                    ids.push(String::from_utf8_lossy(&key).into_owned());
                }
                Ok(ids)
            })
            .await?;
        let ids: Vec<String> = ids.into_iter().filter(|id| !self.is_running(id)).collect();
        let count = ids.len();
        let resumed = futures::future::join_all(ids.into_iter().map(|id| async move {
            let mut progress = match self.region.call(&id, CheckoutMsg::Resume).await {
                Ok(progress) => progress,
                Err(e) => {
                    tracing::warn!(checkout = %id, error = %e, "could not resume a checkout");
                    return;
                }
            };
            let finished = progress
                .wait_for(|p| matches!(p, Progress::Finished(_)))
                .await
                .map(|p| p.clone());
            if let Ok(Progress::Finished(Err(e))) = finished {
                tracing::info!(checkout = %id, outcome = %e, "interrupted checkout undone");
            }
        }));
        resumed.await;
        Ok(count)
    }

    /// How many coordinators are live.
    pub fn live(&self) -> usize {
        self.region.live()
    }

    /// Stops every coordinator.
    pub async fn stop(&self) {
        self.region.stop().await;
    }
}
