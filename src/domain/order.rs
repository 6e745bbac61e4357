//! Orders: the state machine of API.md, its history, and payment status.
//!
//! ```text
//! CREATED → PAYMENT_PENDING → CONFIRMED → SHIPPED → DELIVERED
//!    │            │   │           │
//!    │            │   └→ EXPIRED  └→ CANCELLED (refund)
//!    │            ├→ PAYMENT_FAILED
//!    │            └→ CANCELLED
//!    └→ CANCELLED / PAYMENT_FAILED
//! ```
//!
//! Every other move is refused; `DELIVERED`, `PAYMENT_FAILED`, `EXPIRED` and
//! `CANCELLED` are final.

pub use super::fulfilment::{Fulfilment, FulfilmentRefused, FulfilmentStatus};
use super::Timestamp;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, bincode::Encode, bincode::Decode)]
pub enum OrderStatus {
    /// Stock reserved, payment not yet asked for.
    Created,
    /// Payment asked for, no final answer yet.
    PaymentPending,
    /// Paid; stock committed.
    Confirmed,
    /// Handed to the carrier.
    Shipped,
    /// Received (final).
    Delivered,
    /// Payment declined (final); stock released.
    PaymentFailed,
    /// No payment within the window (final); stock released.
    Expired,
    /// Cancelled by the buyer (final); stock released or payment refunded.
    Cancelled,
}

impl OrderStatus {
    /// Every status, for tests and parsing.
    pub const ALL: [OrderStatus; 8] = [
        OrderStatus::Created,
        OrderStatus::PaymentPending,
        OrderStatus::Confirmed,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::PaymentFailed,
        OrderStatus::Expired,
        OrderStatus::Cancelled,
    ];

    /// The API spelling (`PAYMENT_PENDING`).
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Created => "CREATED",
            OrderStatus::PaymentPending => "PAYMENT_PENDING",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::Shipped => "SHIPPED",
            OrderStatus::Delivered => "DELIVERED",
            OrderStatus::PaymentFailed => "PAYMENT_FAILED",
            OrderStatus::Expired => "EXPIRED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    /// Parses the API spelling.
    pub fn parse(raw: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// No move leaves a final status.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderStatus::Delivered
                | OrderStatus::PaymentFailed
                | OrderStatus::Expired
                | OrderStatus::Cancelled
        )
    }

    /// Whether the order may move from `self` to `next`.
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Created, PaymentPending | PaymentFailed | Cancelled)
                | (
                    PaymentPending,
                    Confirmed | PaymentFailed | Expired | Cancelled
                )
                | (Confirmed, Shipped | Cancelled)
                | (Shipped, Delivered)
        )
    }
}

/// Where the order's payment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum PaymentStatus {
    /// Not yet final.
    Pending,
    /// Charged.
    Succeeded,
    /// Declined or never charged.
    Failed,
    /// Charged, then refunded.
    Refunded,
}

impl PaymentStatus {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "PENDING",
            PaymentStatus::Succeeded => "SUCCEEDED",
            PaymentStatus::Failed => "FAILED",
            PaymentStatus::Refunded => "REFUNDED",
        }
    }
}

/// One line of an order: what was bought, at what price.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct OrderLine {
    /// The item.
    pub item_id: String,
    /// The variant.
    pub variant_id: String,
    /// The item's seller (who may ship it).
    pub seller_id: String,
    /// The item's name when ordered.
    pub name: String,
    /// Units.
    pub quantity: i64,
    /// Price charged per unit, minor units.
    pub unit_price: i64,
}

/// One entry of an order's history.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Transition {
    /// The status entered.
    pub status: OrderStatus,
    /// When.
    pub at: Timestamp,
}

/// A stored order.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Order {
    /// Order id.
    pub id: String,
    /// The buyer.
    pub user_id: String,
    /// The checkout (saga) that created it.
    pub checkout_id: String,
    /// What was bought.
    pub lines: Vec<OrderLine>,
    /// Total charged (subtotal + tax + shipping), minor units.
    pub amount: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Current status.
    pub status: OrderStatus,
    /// Payment status.
    pub payment_status: PaymentStatus,
    /// The gateway's transaction id once charged.
    pub payment_txn_id: Option<String>,
    /// Last four digits of the card (nothing more is ever kept).
    pub card_last4: Option<String>,
    /// Why payment failed or the order ended early (decline, risk rule,
    /// expiry, interrupted checkout), for the buyer.
    pub failure_reason: Option<String>,
    /// Cancelled after payment: its sold units are still to be put back on
    /// sale (cleared once every SKU has them; redone after a crash).
    pub stock_to_return: bool,
    /// Ended without a confirmed payment while the gateway may still have
    /// charged (expired, or cancelled while waiting): the gateway is asked,
    /// and a charge refunded, until it gives a definite answer.
    pub payment_check_due: bool,
    /// Where to ship, if the buyer said.
    pub shipping_address: Option<super::user::Address>,
    /// When a `PAYMENT_PENDING` order expires.
    pub expires_at: Timestamp,
    /// Every status entered, oldest first.
    pub history: Vec<Transition>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Each seller's part, one per seller of the lines
    /// ([`super::fulfilment`]).
    pub fulfilment: Vec<Fulfilment>,
}

/// What a checkout decided about the order it places (the rest of an
/// [`Order`] follows from it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    /// Order id (chosen by the checkout up front).
    pub id: String,
    /// The buyer.
    pub user_id: String,
    /// The checkout (saga) placing it.
    pub checkout_id: String,
    /// What is bought, one line per variant.
    pub lines: Vec<OrderLine>,
    /// Total to charge, minor units.
    pub amount: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Last four digits of the card.
    pub card_last4: Option<String>,
    /// Where to ship, if the buyer said.
    pub shipping_address: Option<super::user::Address>,
    /// When the order stops waiting for payment.
    pub expires_at: Timestamp,
}

/// A refused move.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an order that is {} cannot become {}", from.as_str(), to.as_str())]
pub struct InvalidTransition {
    /// The current status.
    pub from: OrderStatus,
    /// The refused target.
    pub to: OrderStatus,
}

impl Order {
    /// A new order, `CREATED` at `now`, payment pending, with one `PENDING`
    /// fulfilment part per seller of its lines.
    pub fn new(new: NewOrder, now: Timestamp) -> Order {
        let fulfilment = super::fulfilment::parts_for(&new.lines, now);
        Order {
            id: new.id,
            user_id: new.user_id,
            checkout_id: new.checkout_id,
            lines: new.lines,
            amount: new.amount,
            currency: new.currency,
            status: OrderStatus::Created,
            payment_status: PaymentStatus::Pending,
            payment_txn_id: None,
            card_last4: new.card_last4,
            failure_reason: None,
            stock_to_return: false,
            payment_check_due: false,
            shipping_address: new.shipping_address,
            expires_at: new.expires_at,
            history: vec![Transition {
                status: OrderStatus::Created,
                at: now,
            }],
            created_at: now,
            updated_at: now,
            fulfilment,
        }
    }

    /// A new order as a checkout stores it, once, already past `CREATED`
    /// (its history keeps both states): `PAYMENT_PENDING`, or
    /// `PAYMENT_FAILED` with `declined`'s reason when a risk rule refused it.
    pub fn placed(new: NewOrder, declined: Option<String>, now: Timestamp) -> Order {
        let mut order = Order::new(new, now);
        match declined {
            None => order.status = OrderStatus::PaymentPending,
            Some(reason) => {
                order.status = OrderStatus::PaymentFailed;
                order.payment_status = PaymentStatus::Failed;
                order.failure_reason = Some(reason);
            }
        }
        order.history.push(Transition {
            status: order.status,
            at: now,
        });
        order
    }

    /// Moves to `next`, recording it in the history; refuses moves the state
    /// machine does not allow. Moving to the current status is a no-op
    /// (`Ok(false)`), so a retried step does not add history.
    pub fn transition(
        &mut self,
        next: OrderStatus,
        at: Timestamp,
    ) -> Result<bool, InvalidTransition> {
        if self.status == next {
            return Ok(false);
        }
        if !self.status.can_become(next) {
            return Err(InvalidTransition {
                from: self.status,
                to: next,
            });
        }
        self.status = next;
        self.updated_at = at;
        self.history.push(Transition { status: next, at });
        self.sync_parts(at);
        Ok(true)
    }
}

/// The last four digits of a card number, the only part ever stored or
/// logged; `None` if it has fewer than four digits.
pub fn card_last4(card_no: &str) -> Option<String> {
    let digits: Vec<char> = card_no.chars().filter(char::is_ascii_digit).collect();
    (digits.len() >= 4).then(|| digits[digits.len() - 4..].iter().collect())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn new_order() -> NewOrder {
        NewOrder {
            id: "o".into(),
            user_id: "u".into(),
            checkout_id: "k".into(),
            lines: Vec::new(),
            amount: 1998,
            currency: "INR".into(),
            card_last4: None,
            shipping_address: None,
            expires_at: Timestamp(300_000),
        }
    }

    pub(in crate::domain) fn order() -> Order {
        Order::new(new_order(), Timestamp(0))
    }

    #[test]
    fn the_happy_path_and_its_history() {
        let mut o = order();
        for (i, next) in [
            OrderStatus::PaymentPending,
            OrderStatus::Confirmed,
            OrderStatus::Shipped,
            OrderStatus::Delivered,
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(o.transition(next, Timestamp(i as i64 + 1)), Ok(true));
        }
        let statuses: Vec<_> = o.history.iter().map(|t| t.status.as_str()).collect();
        assert_eq!(
            statuses,
            [
                "CREATED",
                "PAYMENT_PENDING",
                "CONFIRMED",
                "SHIPPED",
                "DELIVERED"
            ]
        );
        assert!(
            o.transition(OrderStatus::Cancelled, Timestamp(9)).is_err(),
            "delivered is final"
        );
    }

    #[test]
    fn shipped_orders_cannot_be_cancelled_and_repeats_are_no_ops() {
        let mut o = order();
        o.transition(OrderStatus::PaymentPending, Timestamp(1))
            .unwrap();
        assert_eq!(
            o.transition(OrderStatus::PaymentPending, Timestamp(2)),
            Ok(false)
        );
        o.transition(OrderStatus::Confirmed, Timestamp(3)).unwrap();
        o.transition(OrderStatus::Shipped, Timestamp(4)).unwrap();
        let refused = o
            .transition(OrderStatus::Cancelled, Timestamp(5))
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "an order that is SHIPPED cannot become CANCELLED"
        );
        assert_eq!(o.history.len(), 4);
    }

    #[test]
    fn a_placed_order_keeps_created_in_its_history() {
        let waiting = Order::placed(new_order(), None, Timestamp(7));
        assert_eq!(
            (waiting.status, waiting.payment_status),
            (OrderStatus::PaymentPending, PaymentStatus::Pending)
        );
        let declined = Order::placed(new_order(), Some("too much".into()), Timestamp(7));
        assert_eq!(
            (declined.status, declined.payment_status),
            (OrderStatus::PaymentFailed, PaymentStatus::Failed)
        );
        assert_eq!(declined.failure_reason.as_deref(), Some("too much"));
        let history: Vec<_> = declined.history.iter().map(|t| t.status).collect();
        assert_eq!(history, [OrderStatus::Created, OrderStatus::PaymentFailed]);
    }

    #[test]
    fn only_the_last_four_card_digits_are_kept() {
        assert_eq!(card_last4("**** **** **** 1234").as_deref(), Some("1234"));
        assert_eq!(card_last4("4242424242424242").as_deref(), Some("4242"));
        assert_eq!(card_last4("12"), None);
    }

    proptest! {
        /// Model check: any sequence of requested moves keeps the order on
        /// the graph, never leaves a final status, and records exactly the
        /// accepted moves, in order.
        #[test]
        fn the_state_machine_holds(moves in proptest::collection::vec(0..8usize, 0..30)) {
            let mut o = order();
            let mut accepted = vec![OrderStatus::Created];
            for (i, m) in moves.into_iter().enumerate() {
                let next = OrderStatus::ALL[m];
                let before = o.status;
                match o.transition(next, Timestamp(i as i64 + 1)) {
                    Ok(true) => {
                        prop_assert!(before.can_become(next) && !before.is_final());
                        accepted.push(next);
                    }
                    Ok(false) => prop_assert_eq!(before, next),
                    Err(e) => {
                        prop_assert_eq!(o.status, before);
                        prop_assert_eq!(e, InvalidTransition { from: before, to: next });
                    }
                }
            }
            let history: Vec<_> = o.history.iter().map(|t| t.status).collect();
            prop_assert_eq!(history, accepted);
            prop_assert!(o.history.windows(2).all(|w| w[0].at <= w[1].at));
        }
    }
}
