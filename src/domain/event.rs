//! The event vocabulary: what the event log records. Storage appends and
//! reads these; search, the recommender, notifications and the live hub
//! consume them.

use crate::domain::item::Item;
use crate::domain::order::{OrderStatus, PaymentStatus};
use crate::domain::Timestamp;

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub struct Event {
    /// Position in the log, starting at 1, without gaps.
    pub seq: u64,
    /// Commit time.
    pub at: Timestamp,
    /// What happened.
    pub body: EventBody,
}

/// What happened. Item events carry the whole item after the change, so a
/// consumer (search, another node) needs nothing else to apply them.
///
/// New kinds are added at the end: bincode encodes the variant index.
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub enum EventBody {
    /// A seller listed a new item.
    ItemCreated(Item),
    /// An item's fields changed (including reactivation).
    ItemUpdated(Item),
    /// An item became inactive.
    ItemDeactivated(Item),
    /// A variant's stock changed.
    StockChanged {
        /// The item.
        item_id: String,
        /// The variant (the item id for an item without variants).
        variant_id: String,
        /// Stock a buyer can still get.
        available: i64,
        /// Stock held by reservations.
        reserved: i64,
    },
    /// An order was created or changed status.
    OrderUpdated {
        /// The order.
        order_id: String,
        /// Its buyer (whose sockets hear of it).
        user_id: String,
        /// The new status.
        status: OrderStatus,
        /// The payment status.
        payment_status: PaymentStatus,
    },
    /// A buyer put an item on their wishlist (recommendations learn from it).
    WishlistAdded {
        /// The buyer.
        user_id: String,
        /// The item.
        item_id: String,
    },
}

impl EventBody {
    /// The event's kind as named in the design (`item.created`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::ItemCreated(_) => "item.created",
            EventBody::ItemUpdated(_) => "item.updated",
            EventBody::ItemDeactivated(_) => "item.deactivated",
            EventBody::StockChanged { .. } => "stock.changed",
            EventBody::OrderUpdated { .. } => "order.updated",
            EventBody::WishlistAdded { .. } => "wishlist.added",
        }
    }
}
