//! Why a checkout ended without an order, and how each participant's error
//! becomes one.

use crate::actors::cart::CartError;
use crate::actors::inventory::InventoryError;
use crate::actors::order::OrderError;
use crate::actors::runtime::EntityError;
use crate::storage::StorageError;

/// A line that could not be reserved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortLine {
    /// The item.
    pub item_id: String,
    /// The variant.
    pub variant_id: String,
    /// Units asked for.
    pub requested: i64,
    /// Units available now.
    pub available: i64,
}

/// Why a checkout ended before creating an order.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CheckoutError {
    /// The cart has no lines.
    #[error("the cart is empty")]
    EmptyCart,
    /// Another checkout holds the cart.
    #[error("the cart is already being checked out")]
    InProgress,
    /// The buyer's amount is not the cart's total.
    #[error("the cart's total is {expected}")]
    PriceChanged {
        /// The total the cart would charge.
        expected: i64,
    },
    /// The buyer's currency is not the cart's.
    #[error("the cart is in {cart}")]
    CurrencyMismatch {
        /// The cart's currency.
        cart: String,
    },
    /// Some lines lack stock; nothing stays reserved.
    #[error("some lines are out of stock")]
    OutOfStock(Vec<ShortLine>),
    /// A participant failed; whatever the checkout held was given back (or
    /// is finished by recovery).
    #[error("checkout could not complete: {0}")]
    Unavailable(String),
    /// A SKU's node is unavailable: what the checkout held is given back
    /// when it is back (the sweep resumes the checkout). Not retried at
    /// once: nobody answers for that node.
    #[error("node {0}, which holds stock of this cart, is unavailable")]
    NodeUnavailable(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl CheckoutError {
    /// Whether a call that failed this way is worth trying again (an actor
    /// busy or slow); a refusal or a storage failure is not.
    pub(super) fn is_retryable(&self) -> bool {
        matches!(self, CheckoutError::Unavailable(_))
    }
}

impl From<EntityError> for CheckoutError {
    fn from(e: EntityError) -> Self {
        match e {
            EntityError::Storage(e) => CheckoutError::Storage(e),
            other => CheckoutError::Unavailable(other.to_string()),
        }
    }
}

impl From<CartError> for CheckoutError {
    fn from(e: CartError) -> Self {
        match e {
            CartError::Empty => CheckoutError::EmptyCart,
            CartError::InProgress | CartError::Rule(_) => CheckoutError::InProgress,
            CartError::Storage(e) => CheckoutError::Storage(e),
            other => CheckoutError::Unavailable(other.to_string()),
        }
    }
}

impl From<OrderError> for CheckoutError {
    fn from(e: OrderError) -> Self {
        match e {
            OrderError::Storage(e) => CheckoutError::Storage(e),
            other => CheckoutError::Unavailable(other.to_string()),
        }
    }
}

impl From<InventoryError> for CheckoutError {
    fn from(e: InventoryError) -> Self {
        match e {
            InventoryError::Storage(e) => CheckoutError::Storage(e),
            InventoryError::Unavailable(EntityError::NodeUnavailable(node)) => {
                CheckoutError::NodeUnavailable(node)
            }
            other => CheckoutError::Unavailable(other.to_string()),
        }
    }
}
