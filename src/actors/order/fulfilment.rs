//! A seller's part of an order, and the `seller_orders` index that lists a
//! seller's orders (written with each new order; built once, at start-up,
//! for orders stored before it existed).

use std::sync::Arc;

use super::{user_order_key, OrderEntity, OrderError, OrderState};
use crate::domain::order::{FulfilmentStatus, Order};
use crate::domain::Timestamp;
use crate::storage::backfill::backfill;
use crate::storage::{codec, StorageError, Store, TreeName};

/// `seller ‖ 0 ‖ reverse time ‖ order`: a seller's orders sort newest first
/// (the layout of `user_orders`).
pub fn seller_order_key(seller_id: &str, created_at: Timestamp, order_id: &str) -> Vec<u8> {
    user_order_key(seller_id, created_at, order_id)
}

impl OrderEntity {
    /// Moves `seller_id`'s part (and the order, once every part has moved);
    /// stores it before answering.
    pub(super) async fn fulfil(
        &self,
        state: &mut OrderState,
        seller_id: &str,
        to: FulfilmentStatus,
    ) -> Result<Order, OrderError> {
        let Some(mut order) = state.order.clone() else {
            return Err(OrderError::NotFound);
        };
        order.fulfil(seller_id, to, Timestamp::now())?;
        self.save(state, order, None).await
    }
}

/// Indexes every stored order (live and archived) by its sellers, unless
/// the index says it is complete; returns how many orders it read. Orders
/// stored by a release without the index are found here; new orders index
/// themselves in the write that stores them.
pub async fn index_sellers(store: &Store) -> Result<usize, StorageError> {
    let keys_of = |key: &[u8], bytes: &[u8]| -> Vec<Vec<u8>> {
        // One unreadable order must not keep every other seller's list
        // incomplete; it is reported, as on any other read of it.
        match codec::decode::<Order>(bytes) {
            Ok(order) => order
                .fulfilment
                .iter()
                .map(|part| seller_order_key(&part.seller_id, order.created_at, &order.id))
                .collect(),
            Err(e) => {
                tracing::warn!(order = %String::from_utf8_lossy(key), error = %e, "order not indexed by seller");
                Vec::new()
            }
        }
    };
    backfill(
        store,
        TreeName::SellerOrders,
        &[TreeName::Orders, TreeName::OrderArchive],
        Arc::new(keys_of),
    )
    .await
}
