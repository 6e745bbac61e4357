//! The stock of one SKU and the rules every change follows. Pure: the actor
//! in the parent module owns one of these and persists it.

use super::InventoryError;
use crate::domain::item::{StockLevel, MAX_QUANTITY};
use crate::domain::Timestamp;
use crate::storage::{codec, Record, StorageError};

/// How many finished checkouts a SKU remembers, so that a step retried soon
/// after (a caller's retry) is a no-op. The checkout saga's own log, which
/// records each commit and return atomically with it, is the guard across
/// longer gaps; this window is kept small because the whole record is
/// rewritten on every flush of a hot SKU.
const REMEMBERED_CHECKOUTS: usize = 128;

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

/// The format before returns existed (version 1).
#[derive(bincode::Decode)]
struct SkuStockV1 {
    item_id: String,
    available: i64,
    sold: i64,
    reservations: Vec<Reservation>,
    finished: Vec<FinishedCheckout>,
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

impl SkuStock {
    /// The public view: available, reserved, sold.
    pub fn level(&self) -> StockLevel {
        StockLevel {
            available: self.available,
            reserved: self.reservations.iter().map(|r| r.quantity).sum(),
            sold: self.sold,
        }
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

    /// Releases every reservation whose deadline is at or before `now`.
    pub(super) fn release_expired(&mut self, now: Timestamp) -> bool {
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

    /// Applies one command; `Ok(true)` if the state changed.
    pub(super) fn apply(
        &mut self,
        command: &Command,
        now: Timestamp,
    ) -> Result<bool, InventoryError> {
        match command {
            Command::Reserve {
                checkout_id,
                quantity,
                deadline,
            } => {
                if *quantity < 1 {
                    return Err(InventoryError::InvalidQuantity);
                }
                if let Some(held) = self
                    .reservations
                    .iter()
                    .find(|r| &r.checkout_id == checkout_id)
                {
                    return if held.quantity == *quantity {
                        Ok(false)
                    } else {
                        Err(InventoryError::ReservationMismatch {
                            quantity: held.quantity,
                        })
                    };
                }
                if self.finished(checkout_id).is_some() {
                    return Err(InventoryError::AlreadyFinished);
                }
                if self.available < *quantity {
                    return Err(InventoryError::Insufficient {
                        available: self.available,
                    });
                }
                let deadline = (*deadline).max(now);
                self.available -= quantity;
                self.reservations.push(Reservation {
                    checkout_id: checkout_id.clone(),
                    quantity: *quantity,
                    deadline,
                });
                Ok(true)
            }
            Command::Release { checkout_id } => match self.take_reservation(checkout_id) {
                Some(reservation) => {
                    self.available += reservation.quantity;
                    self.finish(checkout_id.clone(), false);
                    Ok(true)
                }
                None => Ok(false),
            },
            Command::Commit { checkout_id } => match self.take_reservation(checkout_id) {
                Some(reservation) => {
                    self.sold += reservation.quantity;
                    self.finish(checkout_id.clone(), true);
                    Ok(true)
                }
                None if self.finished(checkout_id) == Some(true) => Ok(false),
                None if self.finished(checkout_id) == Some(false) => {
                    Err(InventoryError::AlreadyFinished)
                }
                None => Err(InventoryError::NoReservation),
            },
            Command::Return {
                checkout_id,
                quantity,
            } => {
                if self.returned.iter().any(|r| r == checkout_id) {
                    return Ok(false);
                }
                if *quantity < 1 || *quantity > self.sold {
                    return Err(InventoryError::InvalidQuantity);
                }
                self.sold -= quantity;
                self.available += quantity;
                self.returned.push(checkout_id.clone());
                if self.returned.len() > REMEMBERED_CHECKOUTS {
                    let excess = self.returned.len() - REMEMBERED_CHECKOUTS;
                    self.returned.drain(..excess);
                }
                Ok(true)
            }
            Command::Adjust { delta } => {
                let available = self.available.saturating_add(*delta);
                if available < 0 {
                    return Err(InventoryError::Insufficient {
                        available: self.available,
                    });
                }
                if available.saturating_add(self.level().reserved) > MAX_QUANTITY {
                    return Err(InventoryError::TooMuch);
                }
                self.available = available;
                Ok(*delta != 0)
            }
        }
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
#[derive(Debug, Clone)]
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
