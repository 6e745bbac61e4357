//! The inventory's public surface: what callers use instead of messages.

use super::remote::{Call, RemoteInventory};
use super::{InventoryEntity, InventoryError, InventoryMsg};
use crate::actors::runtime::{EntityError, Region, RegionSettings};
use crate::domain::item::StockLevel;
use crate::domain::stock::{Command, SkuStock};
use crate::domain::Timestamp;
use crate::storage::{Rider, StorageError, Store, TreeName, Tx};

/// The inventory of this node: stock per SKU, one actor each. Cheap to clone.
#[derive(Clone)]
pub struct InventoryActors {
    region: Region<InventoryEntity>,
    store: Store,
    /// SKUs owned by other nodes (`None` on a single node).
    remote: Option<RemoteInventory>,
}

impl InventoryActors {
    /// Starts the inventory region over `store`.
    pub async fn start(store: Store, settings: RegionSettings) -> Result<Self, EntityError> {
        let region = Region::start(
            InventoryEntity {
                store: store.clone(),
            },
            settings,
        )
        .await?;
        Ok(InventoryActors {
            region,
            store,
            remote: None,
        })
    }

    /// In a cluster: SKUs owned by other nodes are called over NATS.
    pub fn with_remote(mut self, remote: RemoteInventory) -> Self {
        self.remote = Some(remote);
        self
    }

    /// The node owning `variant_id` when it is another one.
    fn remote_owner(&self, variant_id: &str) -> Option<(&RemoteInventory, String)> {
        let remote = self.remote.as_ref()?;
        remote.owner_of(variant_id).map(|owner| (remote, owner))
    }

    /// Stages a new variant's opening stock inside a caller's write job, so a
    /// new item and its stock commit together (no actor exists yet).
    pub fn stage_opening_stock(
        tx: &mut Tx<'_>,
        item_id: &str,
        variant_id: &str,
        quantity: i64,
    ) -> Result<(), StorageError> {
        let stock = SkuStock {
            item_id: item_id.to_owned(),
            available: quantity,
            ..Default::default()
        };
        tx.put(TreeName::Stock, variant_id.as_bytes(), &stock)
    }

    /// Stock of each variant as last made durable by its actor, in the order
    /// asked (zero for unknown ones). The read model for item pages: no actor
    /// is activated and nothing queues behind reservations.
    pub async fn levels(&self, variant_ids: Vec<String>) -> Result<Vec<StockLevel>, StorageError> {
        let keys = variant_ids.into_iter().map(String::into_bytes).collect();
        let stocks = self
            .store
            .get_many::<SkuStock>(TreeName::Stock, keys)
            .await?;
        Ok(stocks
            .into_iter()
            .map(|stock| stock.map(|s| s.level()).unwrap_or_default())
            .collect())
    }

    /// Current stock, from the SKU's actor (on its owner).
    pub async fn get(&self, variant_id: &str) -> Result<StockLevel, InventoryError> {
        match self.remote_owner(variant_id) {
            Some((remote, owner)) => remote.call(&owner, Call::Get(variant_id.into())).await,
            None => self.local_get(variant_id).await,
        }
    }

    /// Current stock from this node's actor of the SKU.
    pub(super) async fn local_get(&self, variant_id: &str) -> Result<StockLevel, InventoryError> {
        self.region.call(variant_id, InventoryMsg::Get).await?
    }

    /// Applies `command` to one SKU; answered once durable.
    pub async fn change(
        &self,
        variant_id: &str,
        command: Command,
    ) -> Result<StockLevel, InventoryError> {
        self.change_with(variant_id, command, None).await
    }

    /// [`Self::change`], writing `rider` in the same flush. For a SKU owned
    /// by another node the two cannot share a write, so the rider (a
    /// checkout's log entry) is written here: before a reservation, so the
    /// log exists whenever the reservation does; after any other change,
    /// so the log never claims a commit or return the owner did not make
    /// (repeating one is a no-op, so a crash between the two is safe).
    pub async fn change_with(
        &self,
        variant_id: &str,
        command: Command,
        rider: Option<Rider>,
    ) -> Result<StockLevel, InventoryError> {
        let Some((remote, owner)) = self.remote_owner(variant_id) else {
            return self.local_change(variant_id, command, rider).await;
        };
        let before = matches!(command, Command::Reserve { .. });
        if before {
            self.write_rider(rider.clone()).await?;
        }
        let level = remote
            .call(&owner, Call::Change(variant_id.into(), command))
            .await?;
        if !before {
            self.write_rider(rider).await?;
        }
        Ok(level)
    }

    /// Writes a checkout's log entry on its own.
    async fn write_rider(&self, rider: Option<Rider>) -> Result<(), InventoryError> {
        if let Some(rider) = rider {
            self.store
                .write(move |tx| {
                    tx.ride(&rider);
                    Ok::<_, StorageError>(())
                })
                .await?;
        }
        Ok(())
    }

    /// Applies `command` to this node's actor of the SKU.
    pub(super) async fn local_change(
        &self,
        variant_id: &str,
        command: Command,
        rider: Option<Rider>,
    ) -> Result<StockLevel, InventoryError> {
        self.region
            .call(variant_id, |reply| {
                InventoryMsg::Change(command.clone(), rider.clone(), reply)
            })
            .await?
    }

    /// Reserves `quantity` for `checkout_id` until `deadline`; `rider` (the
    /// checkout's log entry) is stored in the same atomic write, so the log
    /// exists whenever the reservation does.
    pub async fn reserve(
        &self,
        variant_id: &str,
        checkout_id: &str,
        quantity: i64,
        deadline: Timestamp,
        rider: Option<Rider>,
    ) -> Result<StockLevel, InventoryError> {
        let command = Command::Reserve {
            checkout_id: checkout_id.to_owned(),
            quantity,
            deadline,
        };
        self.change_with(variant_id, command, rider).await
    }

    /// Releases `checkout_id`'s reservation.
    pub async fn release(
        &self,
        variant_id: &str,
        checkout_id: &str,
    ) -> Result<StockLevel, InventoryError> {
        self.change(
            variant_id,
            Command::Release {
                checkout_id: checkout_id.to_owned(),
            },
        )
        .await
    }

    /// Commits `checkout_id`'s reservation as sold.
    pub async fn commit(
        &self,
        variant_id: &str,
        checkout_id: &str,
    ) -> Result<StockLevel, InventoryError> {
        self.change(
            variant_id,
            Command::Commit {
                checkout_id: checkout_id.to_owned(),
            },
        )
        .await
    }

    /// Puts `quantity` units sold to `checkout_id` back on sale (a paid order
    /// cancelled before shipping); idempotent per checkout.
    pub async fn return_sold(
        &self,
        variant_id: &str,
        checkout_id: &str,
        quantity: i64,
    ) -> Result<StockLevel, InventoryError> {
        let command = Command::Return {
            checkout_id: checkout_id.to_owned(),
            quantity,
        };
        self.change(variant_id, command).await
    }

    /// Adds `delta` (negative to remove) to available stock.
    pub async fn adjust(&self, variant_id: &str, delta: i64) -> Result<StockLevel, InventoryError> {
        self.change(variant_id, Command::Adjust { delta }).await
    }

    /// Activates every SKU that holds reservations, so their deadlines are
    /// enforced after a restart even if nobody touches them; returns how many.
    pub async fn recover(&self) -> Result<usize, InventoryError> {
        let holding: Vec<String> = self
            .store
            .read(|trees| {
                let mut ids = Vec::new();
                for entry in trees.tree(TreeName::Stock).iter() {
                    let (key, value) = entry?;
                    let id = String::from_utf8_lossy(&key).into_owned();
                    // One unreadable record must not stop the others' recovery.
                    match crate::storage::codec::decode::<SkuStock>(&value) {
                        Ok(stock) if !stock.reservations.is_empty() => ids.push(id),
                        Ok(_) => {}
                        Err(e) => tracing::error!(sku = %id, error = %e, "unreadable stock record"),
                    }
                }
                Ok(ids)
            })
            .await?;
        let mut recovered = 0;
        for id in &holding {
            match self.get(id).await {
                Ok(_) => recovered += 1,
                Err(e) => {
                    tracing::warn!(sku = %id, error = %e, "could not re-arm reservation deadlines")
                }
            }
        }
        Ok(recovered)
    }

    /// SKU actors alive on this node.
    pub fn live(&self) -> usize {
        self.region.live()
    }

    /// Stops every SKU actor.
    pub async fn stop(&self) {
        self.region.stop().await;
    }
}
