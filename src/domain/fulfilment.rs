//! Per-seller fulfilment: a marketplace order holds several sellers' items,
//! and each seller ships and delivers only their own part.
//!
//! ```text
//! part:   PENDING → SHIPPED → DELIVERED      (one per seller of the lines)
//! order:  CONFIRMED → SHIPPED    once every part has shipped
//!                   → DELIVERED  once every part has delivered
//! ```
//!
//! A part ships only while the order is `CONFIRMED`; once any part has
//! shipped, the buyer can no longer cancel.

use super::order::{Order, OrderLine, OrderStatus};
use super::Timestamp;

/// Where one seller's part of an order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, bincode::Encode, bincode::Decode)]
pub enum FulfilmentStatus {
    /// Not yet handed to the carrier.
    Pending,
    /// Handed to the carrier.
    Shipped,
    /// Received by the buyer.
    Delivered,
}

impl FulfilmentStatus {
    /// The API spelling (`SHIPPED`).
    pub fn as_str(self) -> &'static str {
        match self {
            FulfilmentStatus::Pending => "PENDING",
            FulfilmentStatus::Shipped => "SHIPPED",
            FulfilmentStatus::Delivered => "DELIVERED",
        }
    }
}

/// One seller's part of an order.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Fulfilment {
    /// The seller whose lines this part is.
    pub seller_id: String,
    /// Where the part is.
    pub status: FulfilmentStatus,
    /// When it got there.
    pub at: Timestamp,
}

/// A refused fulfilment move (or a cancel refused because of one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FulfilmentRefused {
    /// The part (or the order) is not where the move starts.
    #[error("this seller's part is {} and the order {}: the part cannot become {}", part.as_str(), order.as_str(), to.as_str())]
    Part {
        /// The order's status.
        order: OrderStatus,
        /// The part's status.
        part: FulfilmentStatus,
        /// The refused target.
        to: FulfilmentStatus,
    },
    /// The buyer cancels after a seller shipped.
    #[error("a seller has already shipped part of this order, so it cannot be cancelled")]
    AlreadyShipped,
    /// No line of the order is this seller's.
    #[error("no part of this order is this seller's")]
    NotTheSellers,
}

impl FulfilmentRefused {
    /// The order's status when the move was refused (none: not the
    /// seller's order at all).
    pub fn order_status(&self) -> Option<OrderStatus> {
        match self {
            FulfilmentRefused::Part { order, .. } => Some(*order),
            // Only a `CONFIRMED` order has a shipped part and a buyer
            // who may still try to cancel.
            FulfilmentRefused::AlreadyShipped => Some(OrderStatus::Confirmed),
            FulfilmentRefused::NotTheSellers => None,
        }
    }
}

/// One `PENDING` part per seller of `lines`, in the order the sellers first
/// appear.
pub fn parts_for(lines: &[OrderLine], at: Timestamp) -> Vec<Fulfilment> {
    let mut parts: Vec<Fulfilment> = Vec::new();
    for line in lines {
        if !parts.iter().any(|p| p.seller_id == line.seller_id) {
            parts.push(Fulfilment {
                seller_id: line.seller_id.clone(),
                status: FulfilmentStatus::Pending,
                at,
            });
        }
    }
    parts
}

impl Order {
    /// `seller_id`'s part, if any line is theirs.
    pub fn part(&self, seller_id: &str) -> Option<&Fulfilment> {
        self.fulfilment.iter().find(|p| p.seller_id == seller_id)
    }

    /// Whether any seller has shipped (then the buyer cannot cancel).
    pub fn fulfilment_started(&self) -> bool {
        self.fulfilment
            .iter()
            .any(|p| p.status != FulfilmentStatus::Pending)
    }

    /// Moves `seller_id`'s part to `to` (`SHIPPED` from `PENDING` while the
    /// order is `CONFIRMED`, `DELIVERED` from `SHIPPED`), then the order to
    /// `SHIPPED` or `DELIVERED` if every part now is. A repeated move is
    /// refused, not ignored: the seller asked for something already done.
    pub fn fulfil(
        &mut self,
        seller_id: &str,
        to: FulfilmentStatus,
        at: Timestamp,
    ) -> Result<(), FulfilmentRefused> {
        let order = self.status;
        let part = self
            .fulfilment
            .iter_mut()
            .find(|p| p.seller_id == seller_id)
            .ok_or(FulfilmentRefused::NotTheSellers)?;
        let allowed = match to {
            FulfilmentStatus::Shipped => {
                part.status == FulfilmentStatus::Pending && order == OrderStatus::Confirmed
            }
            FulfilmentStatus::Delivered => {
                part.status == FulfilmentStatus::Shipped
                    && matches!(order, OrderStatus::Confirmed | OrderStatus::Shipped)
            }
            FulfilmentStatus::Pending => false,
        };
        if !allowed {
            return Err(FulfilmentRefused::Part {
                order,
                part: part.status,
                to,
            });
        }
        part.status = to;
        part.at = at;
        self.updated_at = at;
        let least = self.fulfilment.iter().map(|p| p.status).min();
        // The order follows its slowest part; `transition` records history.
        if least >= Some(FulfilmentStatus::Shipped) && self.status == OrderStatus::Confirmed {
            let _ = self.transition(OrderStatus::Shipped, at);
        }
        if least == Some(FulfilmentStatus::Delivered) && self.status == OrderStatus::Shipped {
            let _ = self.transition(OrderStatus::Delivered, at);
        }
        Ok(())
    }

    /// Brings every part at least to what the order's status says (an order
    /// moved as a whole, or one stored before parts existed).
    pub(super) fn sync_parts(&mut self, at: Timestamp) {
        let floor = match self.status {
            OrderStatus::Shipped => FulfilmentStatus::Shipped,
            OrderStatus::Delivered => FulfilmentStatus::Delivered,
            _ => return,
        };
        for part in self.fulfilment.iter_mut().filter(|p| p.status < floor) {
            part.status = floor;
            part.at = at;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::order::tests::order;

    fn line(seller: &str) -> OrderLine {
        OrderLine {
            item_id: format!("item-{seller}"),
            variant_id: format!("sku-{seller}"),
            seller_id: seller.into(),
            name: "Mouse".into(),
            quantity: 1,
            unit_price: 999,
        }
    }

    fn confirmed(sellers: &[&str]) -> Order {
        let mut o = order();
        o.lines = sellers.iter().map(|s| line(s)).collect();
        o.fulfilment = parts_for(&o.lines, Timestamp(0));
        o.transition(OrderStatus::PaymentPending, Timestamp(1))
            .unwrap();
        o.transition(OrderStatus::Confirmed, Timestamp(2)).unwrap();
        o
    }

    fn statuses(o: &Order) -> Vec<&'static str> {
        o.history.iter().map(|t| t.status.as_str()).collect()
    }

    #[test]
    fn one_part_per_seller_in_the_order_they_first_appear() {
        let lines = [line("b"), line("a"), line("b")];
        let parts = parts_for(&lines, Timestamp(5));
        let sellers: Vec<_> = parts.iter().map(|p| p.seller_id.as_str()).collect();
        assert_eq!(sellers, ["b", "a"]);
        assert!(parts.iter().all(|p| p.status == FulfilmentStatus::Pending));
    }

    #[test]
    fn the_order_ships_and_delivers_when_its_slowest_part_does() {
        let mut o = confirmed(&["a", "b"]);
        o.fulfil("a", FulfilmentStatus::Shipped, Timestamp(3))
            .unwrap();
        assert_eq!(o.status, OrderStatus::Confirmed, "b has not shipped");
        assert!(o.fulfilment_started());
        o.fulfil("a", FulfilmentStatus::Delivered, Timestamp(4))
            .unwrap();
        assert_eq!(o.status, OrderStatus::Confirmed);
        o.fulfil("b", FulfilmentStatus::Shipped, Timestamp(5))
            .unwrap();
        assert_eq!(o.status, OrderStatus::Shipped);
        o.fulfil("b", FulfilmentStatus::Delivered, Timestamp(6))
            .unwrap();
        assert_eq!(o.status, OrderStatus::Delivered);
        assert_eq!(
            statuses(&o),
            [
                "CREATED",
                "PAYMENT_PENDING",
                "CONFIRMED",
                "SHIPPED",
                "DELIVERED"
            ]
        );
        assert_eq!(o.part("b").unwrap().at, Timestamp(6));
    }

    #[test]
    fn wrong_moves_are_refused_and_change_nothing() {
        let mut o = confirmed(&["a", "b"]);
        let before = o.clone();
        let refused = o
            .fulfil("a", FulfilmentStatus::Delivered, Timestamp(3))
            .unwrap_err();
        assert_eq!(
            refused,
            FulfilmentRefused::Part {
                order: OrderStatus::Confirmed,
                part: FulfilmentStatus::Pending,
                to: FulfilmentStatus::Delivered
            }
        );
        assert_eq!(
            o.fulfil("c", FulfilmentStatus::Shipped, Timestamp(3)),
            Err(FulfilmentRefused::NotTheSellers)
        );
        assert_eq!(o, before);
        o.fulfil("a", FulfilmentStatus::Shipped, Timestamp(3))
            .unwrap();
        assert!(
            o.fulfil("a", FulfilmentStatus::Shipped, Timestamp(4))
                .is_err(),
            "shipping twice"
        );

        let mut unpaid = order();
        unpaid.lines = vec![line("a")];
        unpaid.fulfilment = parts_for(&unpaid.lines, Timestamp(0));
        assert!(unpaid
            .fulfil("a", FulfilmentStatus::Shipped, Timestamp(1))
            .is_err());
    }

    #[test]
    fn an_order_moved_as_a_whole_moves_every_part() {
        let mut o = confirmed(&["a", "b"]);
        o.transition(OrderStatus::Shipped, Timestamp(3)).unwrap();
        assert!(o
            .fulfilment
            .iter()
            .all(|p| p.status == FulfilmentStatus::Shipped));
        o.transition(OrderStatus::Delivered, Timestamp(4)).unwrap();
        assert!(o
            .fulfilment
            .iter()
            .all(|p| p.status == FulfilmentStatus::Delivered && p.at == Timestamp(4)));
    }
}
