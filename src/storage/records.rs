//! Which domain types are stored, and their format versions.

use super::{codec, Record, StorageError};
use crate::domain::cart::Cart;
use crate::domain::event::Event;
use crate::domain::fulfilment::{parts_for, FulfilmentStatus};
use crate::domain::item::Item;
use crate::domain::order::{Order, OrderLine, OrderStatus, PaymentStatus, Transition};
use crate::domain::stock::{FinishedCheckout, Reservation, SkuStock, StockReplica};
use crate::domain::user::{Address, Session, User};
use crate::domain::Timestamp;

impl Record for User {
    const KIND: &'static str = "user";
    const VERSION: u8 = 1;
}

impl Record for Session {
    const KIND: &'static str = "session";
    const VERSION: u8 = 1;
}

impl Record for Item {
    const KIND: &'static str = "item";
    const VERSION: u8 = 1;
}

impl Record for SkuStock {
    const KIND: &'static str = "sku-stock";
    const VERSION: u8 = 2;

    fn decode_legacy(version: u8, body: &[u8]) -> Option<Result<Self, StorageError>> {
        (version == 1).then(|| {
            codec::decode_body::<SkuStockV1>(Self::KIND, body).map(|v1| SkuStock {
                item_id: v1.item_id,
                available: v1.available,
                sold: v1.sold,
                reservations: v1.reservations,
                finished: v1.finished,
                returned: Vec::new(),
            })
        })
    }
}

/// The stock format before returns existed (version 1).
#[derive(bincode::Decode)]
struct SkuStockV1 {
    item_id: String,
    available: i64,
    sold: i64,
    reservations: Vec<Reservation>,
    finished: Vec<FinishedCheckout>,
}

impl Record for StockReplica {
    const KIND: &'static str = "stock-replica";
    const VERSION: u8 = 1;
}

impl Record for Event {
    const KIND: &'static str = "event";
    const VERSION: u8 = 1;
}

impl Record for Cart {
    const KIND: &'static str = "cart";
    const VERSION: u8 = 1;
}

impl Record for Order {
    const KIND: &'static str = "order";
    const VERSION: u8 = 2;

    fn decode_legacy(version: u8, body: &[u8]) -> Option<Result<Self, StorageError>> {
        (version == 1).then(|| codec::decode_body::<OrderV1>(Self::KIND, body).map(Order::from))
    }
}

/// An order as stored before per-seller fulfilment (version 1): the same
/// fields, without `fulfilment`.
#[derive(bincode::Decode)]
struct OrderV1 {
    id: String,
    user_id: String,
    checkout_id: String,
    lines: Vec<OrderLine>,
    amount: i64,
    currency: String,
    status: OrderStatus,
    payment_status: PaymentStatus,
    payment_txn_id: Option<String>,
    card_last4: Option<String>,
    failure_reason: Option<String>,
    stock_to_return: bool,
    payment_check_due: bool,
    shipping_address: Option<Address>,
    expires_at: Timestamp,
    history: Vec<Transition>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<OrderV1> for Order {
    /// One part per seller, where the order's status says: `SHIPPED` or
    /// `DELIVERED` parts (dated by the history) for an order moved as a
    /// whole, `PENDING` otherwise.
    fn from(v1: OrderV1) -> Order {
        let fulfilment = parts_for(&v1.lines, v1.created_at);
        let mut order = Order {
            id: v1.id,
            user_id: v1.user_id,
            checkout_id: v1.checkout_id,
            lines: v1.lines,
            amount: v1.amount,
            currency: v1.currency,
            status: v1.status,
            payment_status: v1.payment_status,
            payment_txn_id: v1.payment_txn_id,
            card_last4: v1.card_last4,
            failure_reason: v1.failure_reason,
            stock_to_return: v1.stock_to_return,
            payment_check_due: v1.payment_check_due,
            shipping_address: v1.shipping_address,
            expires_at: v1.expires_at,
            history: v1.history,
            created_at: v1.created_at,
            updated_at: v1.updated_at,
            fulfilment,
        };
        let shipped = order
            .history
            .iter()
            .find(|t| t.status == OrderStatus::Shipped);
        let delivered = order
            .history
            .iter()
            .find(|t| t.status == OrderStatus::Delivered);
        for part in &mut order.fulfilment {
            if let Some(t) = delivered.or(shipped) {
                part.status = match t.status {
                    OrderStatus::Delivered => FulfilmentStatus::Delivered,
                    _ => FulfilmentStatus::Shipped,
                };
                part.at = t.at;
            }
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::order::{FulfilmentStatus, OrderLine};

    fn line(seller: &str) -> OrderLine {
        OrderLine {
            item_id: "i".into(),
            variant_id: format!("v-{seller}"),
            seller_id: seller.into(),
            name: "Mouse".into(),
            quantity: 1,
            unit_price: 5,
        }
    }

    /// The bytes the previous release wrote for `order`: the same fields
    /// without `fulfilment` (the last field; an empty list is one byte).
    fn version_1(order: &Order) -> Vec<u8> {
        let mut bare = order.clone();
        bare.fulfilment.clear();
        let mut bytes = codec::encode(&bare).unwrap();
        assert_eq!(bytes.pop(), Some(0));
        bytes[0] = 1;
        bytes
    }

    #[test]
    fn orders_of_the_previous_release_get_one_part_per_seller_from_their_status() {
        let now = Timestamp(1_000);
        let mut order = Order {
            id: "o".into(),
            user_id: "u".into(),
            checkout_id: "k".into(),
            lines: vec![line("a"), line("b"), line("a")],
            amount: 15,
            currency: "INR".into(),
            status: OrderStatus::Created,
            payment_status: PaymentStatus::Pending,
            payment_txn_id: None,
            card_last4: None,
            failure_reason: None,
            stock_to_return: false,
            payment_check_due: false,
            shipping_address: None,
            expires_at: now,
            history: vec![Transition {
                status: OrderStatus::Created,
                at: now,
            }],
            created_at: now,
            updated_at: now,
            fulfilment: Vec::new(),
        };
        let read: Order = codec::decode(&version_1(&order)).unwrap();
        let parts: Vec<_> = read
            .fulfilment
            .iter()
            .map(|p| (p.seller_id.as_str(), p.status, p.at))
            .collect();
        assert_eq!(
            parts,
            [
                ("a", FulfilmentStatus::Pending, now),
                ("b", FulfilmentStatus::Pending, now)
            ]
        );

        for (i, status) in [
            OrderStatus::PaymentPending,
            OrderStatus::Confirmed,
            OrderStatus::Shipped,
        ]
        .into_iter()
        .enumerate()
        {
            order.history.push(Transition {
                status,
                at: Timestamp(2_000 + i as i64),
            });
            order.status = status;
        }
        let read: Order = codec::decode(&version_1(&order)).unwrap();
        assert!(read
            .fulfilment
            .iter()
            .all(|p| p.status == FulfilmentStatus::Shipped && p.at == Timestamp(2_002)));
        assert_eq!(
            codec::decode::<Order>(&codec::encode(&read).unwrap()).unwrap(),
            read
        );
    }
}
