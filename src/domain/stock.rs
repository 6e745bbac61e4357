//! The stock of one SKU and the rules every change follows: pure, so the
//! inventory actor (which owns one per SKU and persists it), the search
//! indexer and the recommender all read the same type.

use crate::domain::item::{StockLevel, MAX_QUANTITY};
use crate::domain::Timestamp;

/// How many finished checkouts a SKU remembers, so that a step retried soon
/// after (a caller's retry) is a no-op. The checkout saga's own log, which
/// records each commit and return atomically with it, is the guard across
/// longer gaps; this window is kept small because the whole record is
/// rewritten on every flush of a hot SKU.
const REMEMBERED_CHECKOUTS: usize = 128;

/// Why a change to one SKU's stock was refused. A refusal changes nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error, bincode::Encode, bincode::Decode)]
pub enum StockError {
    /// Not enough available stock.
    #[error("only {available} available")]
    Insufficient {
        /// Current available stock.
        available: i64,
    },
    /// The change would take stock above the maximum.
    #[error("stock would exceed {MAX_QUANTITY}")]
    TooMuch,
    /// Quantities must be positive.
    #[error("quantity must be at least 1")]
    InvalidQuantity,
    /// The checkout already holds a reservation of another quantity.
    #[error("checkout already holds {quantity} of this variant")]
    ReservationMismatch {
        /// The quantity already reserved.
        quantity: i64,
    },
    /// The checkout's reservation was already committed or released.
    #[error("the checkout's reservation is already finished")]
    AlreadyFinished,
    /// Commit of a checkout that holds no reservation.
    #[error("no reservation for that checkout")]
    NoReservation,
}

/// One reservation held by a checkout.
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub struct Reservation {
    /// The checkout (saga) holding it.
    pub checkout_id: String,
    /// Units held.
    pub quantity: i64,
    /// When it is released if not committed.
    pub deadline: Timestamp,
}

/// A finished checkout, remembered so a retried step is idempotent.
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub struct FinishedCheckout {
    /// The checkout.
    pub checkout_id: String,
    /// True if committed (sold), false if released.
    pub committed: bool,
}

/// The persisted state of one SKU (the `stock` tree, keyed by variant id).
#[derive(Debug, Clone, Default, PartialEq, bincode::Encode, bincode::Decode)]
pub struct SkuStock {
    /// The item the variant belongs to.
    pub item_id: String,
    /// Units a buyer can still get.
    pub available: i64,
    /// Units sold.
    pub sold: i64,
    /// Live reservations.
    pub reservations: Vec<Reservation>,
    /// Recently finished checkouts, oldest first.
    pub finished: Vec<FinishedCheckout>,
    /// Checkouts whose sold units came back (a paid order cancelled before
    /// shipping), newest last, so a retried return is a no-op.
    pub returned: Vec<String>,
}

impl SkuStock {
    /// The public view: available, reserved, sold.
    pub fn level(&self) -> StockLevel {
        StockLevel {
            available: self.available,
            reserved: self.reservations.iter().map(|r| r.quantity).sum(),
            sold: self.sold,
        }
    }

    /// Releases every reservation whose deadline is at or before `now`;
    /// true if any was released.
    pub fn release_expired(&mut self, now: Timestamp) -> bool {
        let (expired, live): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reservations)
            .into_iter()
            .partition(|r| r.deadline <= now);
        self.reservations = live;
        for reservation in &expired {
            self.available += reservation.quantity;
        }
        for reservation in expired.iter() {
            self.finish(reservation.checkout_id.clone(), false);
        }
        !expired.is_empty()
    }

    /// Applies one command; `Ok(true)` if the state changed. A refusal
    /// leaves the stock as it was.
    pub fn apply(&mut self, command: &Command, now: Timestamp) -> Result<bool, StockError> {
        match command {
            Command::Reserve {
                checkout_id,
                quantity,
                deadline,
            } => self.reserve(checkout_id, *quantity, (*deadline).max(now)),
            Command::Release { checkout_id } => Ok(self.release(checkout_id)),
            Command::Commit { checkout_id } => self.commit(checkout_id),
            Command::Return {
                checkout_id,
                quantity,
            } => self.take_back(checkout_id, *quantity),
            Command::Adjust { delta } => self.adjust(*delta),
        }
    }

    /// Holds `quantity` for a checkout, all or nothing; the same hold again
    /// is a no-op.
    fn reserve(
        &mut self,
        checkout_id: &str,
        quantity: i64,
        deadline: Timestamp,
    ) -> Result<bool, StockError> {
        if quantity < 1 {
            return Err(StockError::InvalidQuantity);
        }
        if let Some(held) = self
            .reservations
            .iter()
            .find(|r| r.checkout_id == checkout_id)
        {
            return if held.quantity == quantity {
                Ok(false)
            } else {
                Err(StockError::ReservationMismatch {
                    quantity: held.quantity,
                })
            };
        }
        if self.finished(checkout_id).is_some() {
            return Err(StockError::AlreadyFinished);
        }
        if self.available < quantity {
            return Err(StockError::Insufficient {
                available: self.available,
            });
        }
        self.available -= quantity;
        self.reservations.push(Reservation {
            checkout_id: checkout_id.to_owned(),
            quantity,
            deadline,
        });
        Ok(true)
    }

    /// Gives a checkout's held units back; false if it holds none.
    fn release(&mut self, checkout_id: &str) -> bool {
        let Some(reservation) = self.take_reservation(checkout_id) else {
            return false;
        };
        self.available += reservation.quantity;
        self.finish(checkout_id.to_owned(), false);
        true
    }

    /// Turns a checkout's hold into a sale; a repeated commit is a no-op.
    fn commit(&mut self, checkout_id: &str) -> Result<bool, StockError> {
        match self.take_reservation(checkout_id) {
            Some(reservation) => {
                self.sold += reservation.quantity;
                self.finish(checkout_id.to_owned(), true);
                Ok(true)
            }
            None => match self.finished(checkout_id) {
                Some(true) => Ok(false),
                Some(false) => Err(StockError::AlreadyFinished),
                None => Err(StockError::NoReservation),
            },
        }
    }

    /// Puts a checkout's sold units back on sale; a repeated return is a
    /// no-op.
    fn take_back(&mut self, checkout_id: &str, quantity: i64) -> Result<bool, StockError> {
        if self.returned.iter().any(|r| r == checkout_id) {
            return Ok(false);
        }
        if quantity < 1 || quantity > self.sold {
            return Err(StockError::InvalidQuantity);
        }
        self.sold -= quantity;
        self.available += quantity;
        self.returned.push(checkout_id.to_owned());
        if self.returned.len() > REMEMBERED_CHECKOUTS {
            let excess = self.returned.len() - REMEMBERED_CHECKOUTS;
            self.returned.drain(..excess);
        }
        Ok(true)
    }

    /// A seller's restock or removal: never below zero, never above the
    /// maximum (counting what is held).
    fn adjust(&mut self, delta: i64) -> Result<bool, StockError> {
        let available = self.available.saturating_add(delta);
        if available < 0 {
            return Err(StockError::Insufficient {
                available: self.available,
            });
        }
        if available.saturating_add(self.level().reserved) > MAX_QUANTITY {
            return Err(StockError::TooMuch);
        }
        self.available = available;
        Ok(delta != 0)
    }

    fn finish(&mut self, checkout_id: String, committed: bool) {
        self.finished.push(FinishedCheckout {
            checkout_id,
            committed,
        });
        if self.finished.len() > REMEMBERED_CHECKOUTS {
            let excess = self.finished.len() - REMEMBERED_CHECKOUTS;
            self.finished.drain(..excess);
        }
    }

    fn finished(&self, checkout_id: &str) -> Option<bool> {
        self.finished
            .iter()
            .rev()
            .find(|f| f.checkout_id == checkout_id)
            .map(|f| f.committed)
    }

    fn take_reservation(&mut self, checkout_id: &str) -> Option<Reservation> {
        let index = self
            .reservations
            .iter()
            .position(|r| r.checkout_id == checkout_id)?;
        Some(self.reservations.remove(index))
    }
}

/// A change to one SKU.
#[derive(Debug, Clone, bincode::Encode, bincode::Decode)]
pub enum Command {
    /// Hold `quantity` for `checkout_id` until `deadline` (all or nothing;
    /// repeating it is a no-op).
    Reserve {
        /// The checkout.
        checkout_id: String,
        /// Units, at least 1.
        quantity: i64,
        /// When the hold lapses.
        deadline: Timestamp,
    },
    /// Give the checkout's units back (no-op if it holds none).
    Release {
        /// The checkout.
        checkout_id: String,
    },
    /// Turn the checkout's reservation into a sale (repeating it is a no-op).
    Commit {
        /// The checkout.
        checkout_id: String,
    },
    /// Put a checkout's sold units back on sale (its paid order was
    /// cancelled before shipping); repeating it is a no-op.
    Return {
        /// The checkout whose units come back.
        checkout_id: String,
        /// Units sold to it.
        quantity: i64,
    },
    /// A seller's restock (positive) or removal (negative); never below zero.
    Adjust {
        /// Change to `available`.
        delta: i64,
    },
}

/// Another node's SKU as this node last heard of it (its `stock.changed`
/// events): what item pages here show for stock this node does not own.
/// Never the truth for a reservation: only the owner's [`SkuStock`] is.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct StockReplica {
    /// The item.
    pub item_id: String,
    /// What a buyer could still get, at the owner.
    pub available: i64,
    /// Held by reservations, at the owner.
    pub reserved: i64,
    /// The node whose event this is.
    pub origin: String,
    /// That event's sequence number in its node's log: a replica is only
    /// replaced by a later event of the same origin.
    pub origin_seq: u64,
}

impl StockReplica {
    /// The stock level an item page shows (sales are the owner's business).
    pub fn level(&self) -> StockLevel {
        StockLevel {
            available: self.available,
            reserved: self.reserved,
            sold: 0,
        }
    }

    /// Whether an event `origin_seq` of `origin` is newer than this one.
    pub fn is_older_than(&self, origin: &str, origin_seq: u64) -> bool {
        self.origin != origin || self.origin_seq < origin_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn command() -> impl Strategy<Value = Command> {
        let checkout = (0..6u8).prop_map(|i| format!("c{i}"));
        prop_oneof![
            (checkout.clone(), 1..20i64, 0..3i64).prop_map(|(checkout_id, quantity, d)| {
                Command::Reserve {
                    checkout_id,
                    quantity,
                    deadline: Timestamp(d * 10),
                }
            }),
            checkout
                .clone()
                .prop_map(|checkout_id| Command::Release { checkout_id }),
            checkout
                .clone()
                .prop_map(|checkout_id| Command::Commit { checkout_id }),
            (checkout, 1..20i64).prop_map(|(checkout_id, quantity)| Command::Return {
                checkout_id,
                quantity
            }),
            (-30..30i64).prop_map(|delta| Command::Adjust { delta }),
        ]
    }

    proptest! {
        /// Whatever the sequence, stock is conserved: what was put in
        /// (opening stock and adjustments) equals available + reserved + sold,
        /// and no count goes negative.
        #[test]
        fn stock_is_conserved(opening in 0..50i64, steps in proptest::collection::vec((command(), 0..40i64), 0..60)) {
            let mut stock = SkuStock { item_id: "i".into(), available: opening, ..Default::default() };
            let mut put_in = opening;
            for (command, now) in steps {
                let before = stock.clone();
                stock.release_expired(Timestamp(now));
                match stock.apply(&command, Timestamp(now)) {
                    Ok(_) => {
                        if let Command::Adjust { delta } = command {
                            put_in += delta;
                        }
                    }
                    Err(_) => {
                        let mut expected = before;
                        expected.release_expired(Timestamp(now));
                        prop_assert_eq!(&stock, &expected, "a refusal changes nothing");
                    }
                }
                let level = stock.level();
                prop_assert!(level.available >= 0 && level.reserved >= 0 && level.sold >= 0);
                prop_assert_eq!(level.available + level.reserved + level.sold, put_in);
            }
        }
    }
}
