//! A seller's orders across the cluster. Orders live beside their buyers,
//! so one seller's orders are spread over every node. `GET /seller/orders`
//! is served by the seller's node (the cursor is sealed there), which asks
//! every node for its next orders of that seller after the cursor's
//! position (kind `seller_orders`) and merges them. Positions
//! (`reverse time ‖ order id`) sort the same on every node, so the merged
//! page is exactly what one node holding every order would answer, and the
//! cursor is just the position of the last order shown. A node that cannot
//! answer makes the page `503 NODE_UNAVAILABLE`: a page silently missing
//! one node's orders would look complete.

use std::sync::Arc;

use bytes::Bytes;

use super::{OrderService, OrderServiceError, Scanned};
use crate::cluster::{CallError, Rpc};
use crate::domain::order::OrderStatus;
use crate::domain::placement::Placement;
use crate::storage::codec::{self, Record};
use crate::storage::TreeName;

/// The NATS call kind seller-order scans travel as.
pub const KIND: &str = "seller_orders";

/// How this node reaches the other nodes' orders.
#[derive(Clone)]
pub struct ClusterOrders {
    /// Calls to other nodes.
    pub rpc: Rpc,
    /// The nodes.
    pub placement: Arc<Placement>,
}

/// One node's scan, asked for.
#[derive(bincode::Encode, bincode::Decode)]
struct ScanCall {
    seller: String,
    status: Option<OrderStatus>,
    after: Option<Vec<u8>>,
    size: u32,
}

impl Record for ScanCall {
    const KIND: &'static str = "seller orders scan";
    const VERSION: u8 = 1;
}

/// One node's scan, answered.
#[derive(bincode::Encode, bincode::Decode)]
enum ScanAnswer {
    Scanned(Scanned),
    Failed(String),
}

impl Record for ScanAnswer {
    const KIND: &'static str = "seller orders scanned";
    const VERSION: u8 = 1;
}

impl OrderService {
    /// Every node's next orders of `seller` after `after`, merged.
    pub(super) async fn scan_everywhere(
        &self,
        cluster: &ClusterOrders,
        seller: &str,
        status: Option<OrderStatus>,
        after: Option<Vec<u8>>,
        size: usize,
    ) -> Result<Scanned, OrderServiceError> {
        let nodes: Vec<String> = cluster.placement.nodes().map(str::to_owned).collect();
        let scans = futures::future::join_all(nodes.iter().map(|node| {
            let after = after.clone();
            async move {
                if node == cluster.placement.this_node() {
                    return self
                        .scan(TreeName::SellerOrders, seller, status, after, size)
                        .await;
                }
                let call = ScanCall {
                    seller: seller.to_owned(),
                    status,
                    after,
                    size: u32::try_from(size).unwrap_or(u32::MAX),
                };
                let reply = cluster.rpc.call(node, KIND, codec::encode(&call)?).await?;
                match codec::decode::<ScanAnswer>(&reply)? {
                    ScanAnswer::Scanned(scanned) => Ok(scanned),
                    ScanAnswer::Failed(reason) => {
                        Err(OrderServiceError::Remote(CallError::Failed {
                            node: node.clone(),
                            reason,
                        }))
                    }
                }
            }
        }))
        .await;
        let scans = scans.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok(merge(scans, size))
    }

    /// Answers another node's scan of this node's orders of a seller.
    pub async fn answer(&self, bytes: Bytes) -> Vec<u8> {
        let answer = match codec::decode::<ScanCall>(&bytes) {
            Ok(call) => {
                let size = usize::try_from(call.size).unwrap_or(usize::MAX);
                match self
                    .scan(
                        TreeName::SellerOrders,
                        &call.seller,
                        call.status,
                        call.after,
                        size,
                    )
                    .await
                {
                    Ok(scanned) => ScanAnswer::Scanned(scanned),
                    Err(e) => ScanAnswer::Failed(e.to_string()),
                }
            }
            Err(e) => ScanAnswer::Failed(e.to_string()),
        };
        codec::encode(&answer).unwrap_or_default()
    }
}

/// The first `size` orders of all `scans` by position. A node that stopped
/// early (its scan budget, or its page full) has seen nothing past where it
/// stopped, so nothing past the earliest such stop is shown yet: the next
/// page starts there.
fn merge(scans: Vec<Scanned>, size: usize) -> Scanned {
    let boundary = scans.iter().filter_map(|s| s.more.clone()).min();
    let mut orders: Vec<_> = scans
        .into_iter()
        .flat_map(|s| s.orders)
        .filter(|(position, _)| boundary.as_ref().is_none_or(|b| position <= b))
        .collect();
    orders.sort_by(|a, b| a.0.cmp(&b.0));
    if orders.len() > size {
        orders.truncate(size);
        let more = orders.last().map(|(position, _)| position.clone());
        return Scanned { orders, more };
    }
    Scanned {
        orders,
        more: boundary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanned(positions: &[u8], more: Option<u8>) -> Scanned {
        let new = crate::domain::order::NewOrder {
            id: "o".into(),
            user_id: "u".into(),
            checkout_id: "k".into(),
            lines: Vec::new(),
            amount: 1,
            currency: "INR".into(),
            card_last4: None,
            shipping_address: None,
            expires_at: crate::domain::Timestamp(0),
        };
        let order = crate::domain::order::Order::new(new, crate::domain::Timestamp(0));
        Scanned {
            orders: positions
                .iter()
                .map(|p| (vec![*p], order.clone()))
                .collect(),
            more: more.map(|m| vec![m]),
        }
    }

    fn positions(scanned: &Scanned) -> Vec<u8> {
        scanned.orders.iter().map(|(p, _)| p[0]).collect()
    }

    #[test]
    fn pages_merge_by_position_and_stop_where_a_node_stopped() {
        let merged = merge(vec![scanned(&[1, 4, 6], None), scanned(&[2, 3], None)], 3);
        assert_eq!(positions(&merged), [1, 2, 3]);
        assert_eq!(merged.more, Some(vec![3]));
        // The second node stopped at 3 (its budget): 4 and 6 wait.
        let merged = merge(vec![scanned(&[1, 4, 6], None), scanned(&[2], Some(3))], 10);
        assert_eq!(positions(&merged), [1, 2]);
        assert_eq!(merged.more, Some(vec![3]));
        let merged = merge(vec![scanned(&[5], None), scanned(&[], None)], 10);
        assert_eq!(positions(&merged), [5]);
        assert_eq!(merged.more, None);
    }
}
