//! The record kinds (one sled tree each) and read access to them.

use super::{codec, Record, StorageError};

/// The record kinds, one sled tree each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TreeName {
    /// user id → `User`.
    Users,
    /// lower-case email → user id.
    UsersByEmail,
    /// SHA-256 of a session token → `Session`.
    Sessions,
    /// item id → `Item`.
    Items,
    /// seller id ‖ 0 ‖ upper-case SKU code → item id (uniqueness per seller).
    SellerSkus,
    /// variant id → `SkuStock` (owned by that SKU's inventory actor).
    Stock,
    /// big-endian sequence number → `Event`.
    Events,
    /// cart id → `Cart` (owned by that cart's actor).
    Carts,
    /// user id → the user's cart id (one cart per user).
    UserCarts,
    /// SHA-256 of a guest cart token → cart id.
    GuestCarts,
    /// order id → `Order` (owned by that order's actor).
    Orders,
    /// user id ‖ 0 ‖ reverse creation time ‖ order id → (): a user's orders,
    /// newest first, by one range scan.
    UserOrders,
    /// order id → its payment deadline: the orders still `PAYMENT_PENDING`.
    PendingOrders,
    /// order id → `ChargeRecord`: the simulated payment gateway's own ledger
    /// (it stands in for an external system's records).
    GatewayLedger,
    /// consumer name → big-endian offset (last handled sequence number).
    Offsets,
    /// checkout id → `Saga`: the checkout coordinator's log (kept after the
    /// end only for checkouts made with an idempotency key).
    Sagas,
    /// SHA-256 of user id ‖ idempotency key → `IdempotencyRecord`.
    IdempotencyKeys,
    /// order id → `Order`: orders older than `archive_after_days`, moved
    /// out of the hot tree (still readable at the same URLs).
    OrderArchive,
    /// user id ‖ 0 ‖ reverse event sequence number → `Notification`: a
    /// user's inbox, newest first.
    Notifications,
    /// user id ‖ 0 ‖ item id → when it was added: a user's wishlist.
    Wishlists,
    /// The recommender's aggregates, one tree under key prefixes
    /// (`recommend::model` documents the layout).
    Recommendations,
    /// seller id ‖ 0 ‖ reverse creation time ‖ order id → (): the orders
    /// holding a seller's items, newest first (plus one marker key, sorted
    /// first, once every order is indexed).
    SellerOrders,
    /// big-endian sequence number → `<node>:<seq>`: the events of this
    /// node's log that came from another node (the relay never publishes
    /// them again).
    ForeignEvents,
    /// variant id → `StockReplica`: another node's SKU, as its
    /// `stock.changed` events said (never written by the inventory actors).
    StockReplicas,
    /// node id → big-endian sequence number: the last event of that node
    /// this node applied.
    Replication,
    /// seller id ‖ 0 ‖ item id → (): a seller's items, oldest first (item
    /// ids are ULIDs), plus one marker key, sorted first, once every item
    /// is indexed.
    SellerItems,
}

impl TreeName {
    /// Every tree, in the order of their indexes.
    pub const ALL: [TreeName; 26] = [
        TreeName::Users,
        TreeName::UsersByEmail,
        TreeName::Sessions,
        TreeName::Items,
        TreeName::SellerSkus,
        TreeName::Stock,
        TreeName::Events,
        TreeName::Carts,
        TreeName::UserCarts,
        TreeName::GuestCarts,
        TreeName::Orders,
        TreeName::UserOrders,
        TreeName::PendingOrders,
        TreeName::GatewayLedger,
        TreeName::Offsets,
        TreeName::Sagas,
        TreeName::IdempotencyKeys,
        TreeName::OrderArchive,
        TreeName::Notifications,
        TreeName::Wishlists,
        TreeName::Recommendations,
        TreeName::SellerOrders,
        TreeName::ForeignEvents,
        TreeName::StockReplicas,
        TreeName::Replication,
        TreeName::SellerItems,
    ];

    pub(super) fn index(self) -> usize {
        self as usize
    }

    /// Whether point reads of this tree go through the read cache: the trees
    /// read on every request, whose records are small (in a cluster, an item
    /// page reads the replica of another node's stock on every view).
    pub(super) fn is_cached(self) -> bool {
        matches!(
            self,
            TreeName::Users
                | TreeName::Sessions
                | TreeName::Items
                | TreeName::Stock
                | TreeName::StockReplicas
                | TreeName::Orders
                | TreeName::UserCarts
        )
    }

    pub(super) fn file_name(self) -> &'static str {
        match self {
            TreeName::Users => "users",
            TreeName::UsersByEmail => "users_by_email",
            TreeName::Sessions => "sessions",
            TreeName::Items => "items",
            TreeName::SellerSkus => "seller_skus",
            TreeName::Stock => "stock",
            TreeName::Events => "events",
            TreeName::Carts => "carts",
            TreeName::UserCarts => "user_carts",
            TreeName::GuestCarts => "guest_carts",
            TreeName::Orders => "orders",
            TreeName::UserOrders => "user_orders",
            TreeName::PendingOrders => "pending_orders",
            TreeName::GatewayLedger => "gateway_ledger",
            TreeName::Offsets => "consumer_offsets",
            TreeName::Sagas => "sagas",
            TreeName::IdempotencyKeys => "idempotency_keys",
            TreeName::OrderArchive => "order_archive",
            TreeName::Notifications => "notifications",
            TreeName::Wishlists => "wishlists",
            TreeName::Recommendations => "recommendations",
            TreeName::SellerOrders => "seller_orders",
            TreeName::ForeignEvents => "foreign_events",
            TreeName::StockReplicas => "stock_replicas",
            TreeName::Replication => "replication",
            TreeName::SellerItems => "seller_items",
        }
    }
}

/// Read access to the trees, handed to [`Store::read`] closures.
pub struct Trees {
    pub(super) trees: Vec<sled::Tree>,
}

impl Trees {
    /// The raw sled tree.
    pub fn tree(&self, name: TreeName) -> &sled::Tree {
        &self.trees[name.index()]
    }

    /// Reads and decodes one record.
    pub fn get<R: Record>(
        &self,
        name: TreeName,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<R>, StorageError> {
        match self.tree(name).get(key)? {
            Some(bytes) => codec::decode(&bytes).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tree_is_listed_once_at_its_own_index() {
        for (i, name) in TreeName::ALL.iter().enumerate() {
            assert_eq!(name.index(), i, "{name:?} is listed out of order");
        }
        let mut files: Vec<_> = TreeName::ALL.iter().map(|n| n.file_name()).collect();
        files.sort_unstable();
        files.dedup();
        assert_eq!(
            files.len(),
            TreeName::ALL.len(),
            "two trees share a file name"
        );
    }
}
