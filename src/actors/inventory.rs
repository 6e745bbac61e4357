//! Stock per variant: the interface every caller uses.
//!
//! Interim implementation: each change is one write job on the store's
//! single writer, which serializes changes exactly as an actor per SKU will
//! (the next step replaces the inside of [`Inventory`] with those actors and
//! keeps this surface). Every change emits `stock.changed`.

use crate::domain::item::{StockLevel, MAX_QUANTITY};
use crate::storage::events::EventBody;
use crate::storage::{StorageError, Store, TreeName, Tx};

/// Why a stock change was refused.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The change would take `available` below zero.
    #[error("only {available} available")]
    Insufficient {
        /// Current available stock.
        available: i64,
    },
    /// The change would take stock above the maximum.
    #[error("stock would exceed {MAX_QUANTITY}")]
    TooMuch,
    /// No stock record for that variant.
    #[error("unknown variant")]
    UnknownVariant,
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Handle to the inventory. Cheap to clone.
#[derive(Clone)]
pub struct Inventory {
    store: Store,
}

impl Inventory {
    /// Inventory over `store`.
    pub fn new(store: Store) -> Self {
        Inventory { store }
    }

    /// Stages a new variant's opening stock inside a caller's write job, so a
    /// new item and its stock commit together.
    pub fn stage_opening_stock(
        tx: &mut Tx<'_>,
        variant_id: &str,
        quantity: i64,
    ) -> Result<(), StorageError> {
        let level = StockLevel {
            available: quantity,
            reserved: 0,
            sold: 0,
        };
        tx.put(TreeName::Stock, variant_id.as_bytes(), &level)
    }

    /// Current stock of each variant, in the order asked (zero for unknown ones).
    pub async fn levels(&self, variant_ids: Vec<String>) -> Result<Vec<StockLevel>, StorageError> {
        let mut levels = Vec::with_capacity(variant_ids.len());
        for id in &variant_ids {
            let level = self
                .store
                .get::<StockLevel>(TreeName::Stock, id.as_bytes())
                .await?;
            levels.push(level.unwrap_or_default());
        }
        Ok(levels)
    }

    /// Adds `delta` (negative to remove) to a variant's available stock.
    pub async fn adjust(
        &self,
        item_id: &str,
        variant_id: &str,
        delta: i64,
    ) -> Result<StockLevel, InventoryError> {
        let (item_id, variant_id) = (item_id.to_owned(), variant_id.to_owned());
        self.store
            .write(move |tx| {
                let mut level: StockLevel = tx
                    .get(TreeName::Stock, variant_id.as_bytes())?
                    .ok_or(InventoryError::UnknownVariant)?;
                if delta == 0 {
                    return Ok(level);
                }
                let available = level.available.saturating_add(delta);
                if available < 0 {
                    return Err(InventoryError::Insufficient {
                        available: level.available,
                    });
                }
                if available.saturating_add(level.reserved) > MAX_QUANTITY {
                    return Err(InventoryError::TooMuch);
                }
                level.available = available;
                tx.put(TreeName::Stock, variant_id.as_bytes(), &level)?;
                tx.emit(EventBody::StockChanged {
                    item_id: item_id.clone(),
                    variant_id: variant_id.clone(),
                    available: level.available,
                    reserved: level.reserved,
                });
                Ok(level)
            })
            .await
    }
}
