//! The order service: the read path (a user's orders newest first, one
//! order, a seller's orders), the buyer's and sellers' moves, and archival.
//!
//! Reads come from the stored records (the read model, through the read
//! cache), never from the order actors, so a page of orders never queues
//! behind a checkout's writes; the actors answer only after their writes are
//! durable, so a read after a write sees it. Changes go to the order's
//! actor. Orders older than `archive_after_days` that can no longer change
//! move to the `order_archive` tree and stay readable at the same URLs.
//! List cursors are sealed ([`crate::domain::sealed`]), one purpose per
//! list, so a forged, edited or other list's cursor is refused.

mod sellers;

pub use sellers::{ClusterOrders, KIND as REMOTE_KIND};

use crate::actors::order::{OrderActors, OrderError};
use crate::domain::order::{
    FulfilmentRefused, FulfilmentStatus, InvalidTransition, Order, OrderStatus,
};
use crate::domain::user::Role;
use crate::domain::Timestamp;
use crate::storage::{codec, StorageError, Store, TreeName};

/// Why an order request failed.
#[derive(Debug, thiserror::Error)]
pub enum OrderServiceError {
    /// No such order visible to the caller.
    #[error("order not found")]
    NotFound,
    /// Only sellers ship and deliver.
    #[error("only sellers may do that")]
    NotASeller,
    /// The cursor was not issued by this server.
    #[error("invalid cursor")]
    InvalidCursor,
    /// The order's actor refused or failed.
    #[error(transparent)]
    Order(#[from] OrderError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Another node's orders could not be read.
    #[error(transparent)]
    Remote(#[from] crate::cluster::CallError),
}

/// A page of orders.
#[derive(Debug)]
pub struct Page {
    /// Newest first.
    pub orders: Vec<Order>,
    /// Where the next page starts, if there may be one.
    pub next_cursor: Option<String>,
}

/// One scan of an order index: orders with their index positions, and
/// the position the scan stopped at if there may be more.
#[derive(Debug, Default, bincode::Encode, bincode::Decode)]
pub struct Scanned {
    /// Newest first, each with its position (`reverse time ‖ order id`).
    pub orders: Vec<(Vec<u8>, Order)>,
    /// Where the scan stopped, if there may be more.
    pub more: Option<Vec<u8>>,
}

/// Most index entries one page request reads when filtering by status,
/// so a rare status cannot make one request scan a whole history: the page
/// may come back short, with a cursor to go on.
const SCAN_BUDGET: usize = 1_000;

/// Purpose label of the cursors of a buyer's `GET /orders`.
const BUYER_CURSOR: &str = "orders";
/// Purpose label of the cursors of `GET /seller/orders`.
const SELLER_CURSOR: &str = "seller-orders";

/// The service. Cheap to clone.
#[derive(Clone)]
pub struct OrderService {
    store: Store,
    actors: OrderActors,
    /// In a cluster: the other nodes, whose orders a seller's list merges.
    cluster: Option<ClusterOrders>,
}

impl OrderService {
    /// The service over the order actors.
    pub fn new(store: Store, actors: OrderActors) -> Self {
        OrderService {
            store,
            actors,
            cluster: None,
        }
    }

    /// In a cluster: a seller's list merges every node's orders.
    pub fn with_cluster(mut self, cluster: ClusterOrders) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// The order actors.
    pub fn actors(&self) -> &OrderActors {
        &self.actors
    }

    /// `user_id`'s orders, newest first, optionally only those in `status`.
    pub async fn list(
        &self,
        user_id: &str,
        status: Option<OrderStatus>,
        cursor: Option<&str>,
        size: usize,
    ) -> Result<Page, OrderServiceError> {
        self.page(
            TreeName::UserOrders,
            BUYER_CURSOR,
            user_id,
            status,
            cursor,
            size,
        )
        .await
    }

    /// The orders holding `seller_id`'s items, newest first, optionally only
    /// those whose (whole order's) status is `status`. The caller shows
    /// each as the seller's view.
    pub async fn list_for_seller(
        &self,
        seller_id: &str,
        role: Role,
        status: Option<OrderStatus>,
        cursor: Option<&str>,
        size: usize,
    ) -> Result<Page, OrderServiceError> {
        if role != Role::Seller {
            return Err(OrderServiceError::NotASeller);
        }
        let Some(cluster) = &self.cluster else {
            return self
                .page(
                    TreeName::SellerOrders,
                    SELLER_CURSOR,
                    seller_id,
                    status,
                    cursor,
                    size,
                )
                .await;
        };
        let after = self.open_cursor(SELLER_CURSOR, seller_id, cursor)?;
        let scanned = self
            .scan_everywhere(cluster, seller_id, status, after, size)
            .await?;
        Ok(self.sealed_page(SELLER_CURSOR, seller_id, scanned))
    }

    /// One page of the index `tree` (`owner ‖ 0 ‖ reverse time ‖ order`)
    /// under `owner`, with cursors sealed for `purpose`.
    async fn page(
        &self,
        tree: TreeName,
        purpose: &'static str,
        owner: &str,
        status: Option<OrderStatus>,
        cursor: Option<&str>,
        size: usize,
    ) -> Result<Page, OrderServiceError> {
        let after = self.open_cursor(purpose, owner, cursor)?;
        let scanned = self.scan(tree, owner, status, after, size).await?;
        Ok(self.sealed_page(purpose, owner, scanned))
    }

    /// The index position a cursor of `purpose` for `owner` stands at.
    fn open_cursor(
        &self,
        purpose: &'static str,
        owner: &str,
        cursor: Option<&str>,
    ) -> Result<Option<Vec<u8>>, OrderServiceError> {
        // A cursor is good only for the list and the caller it was made
        // for; the owner rides in the purpose, so cursors stay short.
        let Some(cursor) = cursor else {
            return Ok(None);
        };
        self.store
            .sealer()
            .open(&format!("{purpose}\0{owner}"), cursor)
            .filter(|p| p.len() > 8)
            .map(Some)
            .ok_or(OrderServiceError::InvalidCursor)
    }

    /// `scanned` as a page, its cursor sealed for `purpose` and `owner`.
    fn sealed_page(&self, purpose: &'static str, owner: &str, scanned: Scanned) -> Page {
        let sealer = self.store.sealer();
        let sealed_for = format!("{purpose}\0{owner}");
        Page {
            orders: scanned.orders.into_iter().map(|(_, order)| order).collect(),
            next_cursor: scanned.more.map(|p| sealer.seal(&sealed_for, &p)),
        }
    }

    /// Up to `size` orders of this node's index `tree` under `owner`,
    /// strictly after the position `after` (`reverse time ‖ order`), each
    /// with its position, and where the scan stopped if there may be more.
    async fn scan(
        &self,
        tree: TreeName,
        owner: &str,
        status: Option<OrderStatus>,
        after: Option<Vec<u8>>,
        size: usize,
    ) -> Result<Scanned, OrderServiceError> {
        let mut prefix = owner.as_bytes().to_vec();
        prefix.push(0);
        let start = match after {
            Some(position) => {
                let mut key = prefix.clone();
                key.extend_from_slice(&position);
                // Strictly after the cursor's entry.
                key.push(0);
                key
            }
            None => prefix.clone(),
        };
        let scanned = self
            .store
            .read(move |trees| {
                let index = trees.tree(tree);
                let mut orders = Vec::new();
                let mut last = None;
                let mut more = false;
                for (scanned, entry) in index.range(start..).enumerate() {
                    let (key, _) = entry?;
                    if !key.starts_with(&prefix) {
                        break;
                    }
                    if orders.len() == size || scanned == SCAN_BUDGET {
                        more = true;
                        break;
                    }
                    let position = key[prefix.len()..].to_vec();
                    let order_id = &position[8..];
                    last = Some(position.clone());
                    let Some(order) = read_order(trees, order_id)? else {
                        continue;
                    };
                    if status.is_none_or(|s| s == order.status) {
                        orders.push((position, order));
                    }
                }
                Ok(Scanned {
                    orders,
                    more: if more { last } else { None },
                })
            })
            .await?;
        Ok(scanned)
    }

    /// The order, if `user_id` placed it.
    pub async fn get(&self, user_id: &str, order_id: &str) -> Result<Order, OrderServiceError> {
        self.find(order_id)
            .await?
            .filter(|o| o.user_id == user_id)
            .ok_or(OrderServiceError::NotFound)
    }

    /// The buyer cancels their order.
    pub async fn cancel(&self, user_id: &str, order_id: &str) -> Result<Order, OrderServiceError> {
        let order = self.get(user_id, order_id).await?;
        if order.status.is_final() {
            return Err(refused(order.status, OrderStatus::Cancelled));
        }
        Ok(self.actors.cancel(order_id).await?)
    }

    /// A seller of an item in the order moves their part of it to
    /// `SHIPPED` or `DELIVERED` (and the order with it once every part has).
    pub async fn fulfil(
        &self,
        user_id: &str,
        role: Role,
        order_id: &str,
        to: FulfilmentStatus,
    ) -> Result<Order, OrderServiceError> {
        if role != Role::Seller {
            return Err(OrderServiceError::NotASeller);
        }
        let order = self
            .find(order_id)
            .await?
            .ok_or(OrderServiceError::NotFound)?;
        let part = order.part(user_id).ok_or(OrderServiceError::NotFound)?;
        // Archived orders are final and have no actor to ask.
        if order.status.is_final() {
            return Err(OrderServiceError::Order(
                FulfilmentRefused::Part {
                    order: order.status,
                    part: part.status,
                    to,
                }
                .into(),
            ));
        }
        Ok(self.actors.fulfil(order_id, user_id, to).await?)
    }

    /// The stored order, live or archived.
    async fn find(&self, order_id: &str) -> Result<Option<Order>, OrderServiceError> {
        if let Some(order) = self.store.get::<Order>(TreeName::Orders, order_id).await? {
            return Ok(Some(order));
        }
        Ok(self
            .store
            .get::<Order>(TreeName::OrderArchive, order_id)
            .await?)
    }

    /// Moves orders created before `cutoff` that can no longer change
    /// (final statuses) to the archive; returns how many moved.
    pub async fn archive_before(&self, cutoff: Timestamp) -> Result<usize, StorageError> {
        let old: Vec<Vec<u8>> = self
            .store
            .read(move |trees| {
                let mut old = Vec::new();
                for entry in trees.tree(TreeName::Orders).iter() {
                    let (key, bytes) = entry?;
                    let order: Order = codec::decode(&bytes)?;
                    if order.created_at < cutoff
                        && order.status.is_final()
                        && !order.stock_to_return
                    {
                        old.push(key.to_vec());
                    }
                }
                Ok(old)
            })
            .await?;
        let mut moved = 0;
        for chunk in old.chunks(256) {
            let chunk = chunk.to_vec();
            moved += self
                .store
                .write(move |tx| {
                    let mut moved = 0;
                    for key in &chunk {
                        if let Some(order) = tx.get::<Order>(TreeName::Orders, key)? {
                            tx.put(TreeName::OrderArchive, key.clone(), &order)?;
                            tx.remove(TreeName::Orders, key.clone());
                            moved += 1;
                        }
                    }
                    Ok::<_, StorageError>(moved)
                })
                .await?;
        }
        Ok(moved)
    }
}

fn read_order(
    trees: &crate::storage::Trees,
    order_id: &[u8],
) -> Result<Option<Order>, StorageError> {
    match trees.get::<Order>(TreeName::Orders, order_id)? {
        Some(order) => Ok(Some(order)),
        None => trees.get::<Order>(TreeName::OrderArchive, order_id),
    }
}

fn refused(from: OrderStatus, to: OrderStatus) -> OrderServiceError {
    OrderServiceError::Order(OrderError::InvalidTransition(InvalidTransition {
        from,
        to,
    }))
}
