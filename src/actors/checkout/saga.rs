//! The checkout saga's log: one record per checkout, rewritten at every step
//! (pure data; the coordinator in the parent module drives it).

use crate::domain::order::OrderLine;
use crate::domain::Timestamp;
use crate::storage::{codec, Record, Rider, StorageError, TreeName};

/// Where a checkout is. Each step is stored before the work it names
/// begins, so a coordinator resumed after a crash knows what may have
/// happened and what to finish or undo.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum Step {
    /// Reserving the lines' stock; no order exists yet.
    Reserving,
    /// Every line reserved, the order stored as `CREATED` (only in logs
    /// left by the release before this one, which stored the order
    /// before deciding risk).
    OrderCreated,
    /// The order is `PAYMENT_PENDING`; the gateway has been (or is being)
    /// asked for the charge, and if it charged, stock is being committed
    /// (a resumed checkout asks the gateway which). Once the order is
    /// `CONFIRMED` the log stays here until the cart is emptied: the
    /// order's history says the checkout is past its charge.
    Charging,
    /// The order is `CONFIRMED`; the cart is being emptied (only in logs
    /// left by the release before this one).
    Confirmed,
    /// Payment refused (by the gateway or a risk rule): stock is being
    /// released and the cart unlocked.
    Failed,
}

/// A checkout's log record (the `sagas` tree, keyed by checkout id).
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Saga {
    /// The checkout.
    pub checkout_id: String,
    /// The order it creates (chosen up front, so every step is keyed).
    pub order_id: String,
    /// The buyer.
    pub user_id: String,
    /// The cart checked out.
    pub cart_id: String,
    /// Priced lines, in SKU order.
    pub lines: Vec<OrderLine>,
    /// The total charged.
    pub amount: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// The card's last four digits (the number itself is never stored).
    pub card_last4: Option<String>,
    /// When the order's payment window (and every reservation) ends.
    pub deadline: Timestamp,
    /// Current step.
    pub step: Step,
    /// Variants whose reservation was committed as sold. Each entry is
    /// written in the same atomic write as the commit itself (riding with
    /// the SKU's flush), so after a crash this list is exactly what was
    /// committed: nothing depends on a SKU remembering the checkout.
    pub committed: Vec<String>,
    /// Variants whose sold units were put back on sale after a refund,
    /// recorded the same way.
    pub returned: Vec<String>,
    /// When the checkout began.
    pub started_at: Timestamp,
}

impl Record for Saga {
    const KIND: &'static str = "saga";
    const VERSION: u8 = 1;
}

impl Saga {
    /// This record at `step`, as a rider for the step's own write.
    pub fn rider_at(&self, step: Step) -> Result<Rider, StorageError> {
        let next = Saga {
            step,
            ..self.clone()
        };
        Ok(Rider {
            tree: TreeName::Sagas,
            key: self.checkout_id.as_bytes().to_vec(),
            value: Some(codec::encode(&next)?),
        })
    }

    /// This record as it is, as a rider for the step's own write.
    pub fn rider(&self) -> Result<Rider, StorageError> {
        Ok(Rider {
            tree: TreeName::Sagas,
            key: self.checkout_id.as_bytes().to_vec(),
            value: Some(codec::encode(self)?),
        })
    }

    /// The rider that ends the log: the checkout is finished.
    pub fn rider_done(&self) -> Rider {
        Rider {
            tree: TreeName::Sagas,
            key: self.checkout_id.as_bytes().to_vec(),
            value: None,
        }
    }
}
