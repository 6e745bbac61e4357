//! The checkout service: validates a request, checks the cart is the
//! caller's, starts its coordinator and waits for the outcome up to
//! `checkout_wait_ms`; with an `Idempotency-Key`, makes a retry safe
//! ([`keyed`], over the key store in [`idempotency`]).

pub mod idempotency;
pub mod keyed;

use std::time::Duration;

use crate::actors::checkout::{CheckoutCoordinators, CheckoutError, CheckoutRequest, Progress};
use crate::actors::order::{OrderActors, OrderError};
use crate::domain::order::{card_last4, Order, OrderStatus};
use crate::domain::user::{parse_address, Address, AddressInput};
use crate::domain::{new_id_beside, FieldErrors};
use crate::services::cart::CartService;
use crate::storage::StorageError;
use idempotency::IdempotencyKeys;
pub use keyed::{Answer, KeyedRequest};

/// A checkout as received (`POST /checkout`), fields unchecked.
#[derive(Debug, Clone, Default)]
pub struct CheckoutInput {
    /// `cartId`.
    pub cart_id: Option<String>,
    /// `amount`.
    pub amount: Option<i64>,
    /// `currency`.
    pub currency: Option<String>,
    /// `paymentInfo.paymentType`.
    pub payment_type: Option<String>,
    /// `paymentInfo.cardNo`.
    pub card_no: Option<String>,
    /// `shippingAddress`.
    pub shipping_address: Option<AddressInput>,
}

/// A checkout that passed validation.
#[derive(Debug, Clone)]
pub struct ValidCheckout {
    cart_id: String,
    amount: i64,
    currency: Option<String>,
    payment_type: String,
    card_no: String,
    shipping_address: Option<Address>,
}

/// Payment types the gateway takes.
pub const PAYMENT_TYPES: [&str; 1] = ["CARD"];

impl CheckoutInput {
    /// Checks every field, naming each bad one.
    pub fn validate(self) -> Result<ValidCheckout, FieldErrors> {
        let mut errors = FieldErrors::new();
        let cart_id = self.cart_id.filter(|c| !c.trim().is_empty());
        if cart_id.is_none() {
            errors.add("cartId", "is required");
        }
        match self.amount {
            None => errors.add("amount", "is required"),
            Some(a) if a < 0 => errors.add("amount", "must not be negative"),
            Some(_) => {}
        }
        let currency = self.currency.map(|c| c.trim().to_ascii_uppercase());
        if currency
            .as_ref()
            .is_some_and(|c| c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()))
        {
            errors.add("currency", "must be a three-letter ISO 4217 code");
        }
        let payment_type = self.payment_type.map(|t| t.trim().to_ascii_uppercase());
        match payment_type.as_deref() {
            None => errors.add("paymentInfo.paymentType", "is required"),
            Some(t) if !PAYMENT_TYPES.contains(&t) => errors.add(
                "paymentInfo.paymentType",
                format!("must be one of {}", PAYMENT_TYPES.join(", ")),
            ),
            Some(_) => {}
        }
        let card_ok = self.card_no.as_deref().is_some_and(|c| {
            c.len() <= 64
                && card_last4(c).is_some()
                && c.chars()
                    .all(|ch| ch.is_ascii_digit() || ch == ' ' || ch == '*' || ch == '-')
        });
        if !card_ok {
            errors.add(
                "paymentInfo.cardNo",
                "must be a card number (digits, spaces, '*' or '-', at least 4 digits)",
            );
        }
        let shipping_address = self
            .shipping_address
            .and_then(|input| parse_address(input, "shippingAddress", &mut errors));
        match (cart_id, self.amount, payment_type, self.card_no) {
            (Some(cart_id), Some(amount), Some(payment_type), Some(card_no))
                if errors.is_empty() =>
            {
                Ok(ValidCheckout {
                    cart_id,
                    amount,
                    currency,
                    payment_type,
                    card_no,
                    shipping_address,
                })
            }
            _ => Err(errors),
        }
    }
}

/// How a checkout ended for the caller.
#[derive(Debug, Clone)]
pub enum CheckoutReply {
    /// The saga reached a final state (`201`).
    Final(Order),
    /// The order waits for payment (`202`).
    Pending(Order),
}

impl CheckoutReply {
    /// The reply for a checkout that made `order`.
    pub fn of(order: Order) -> Self {
        if order.status == OrderStatus::PaymentPending {
            CheckoutReply::Pending(order)
        } else {
            CheckoutReply::Final(order)
        }
    }
}

/// Why a checkout request failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutServiceError {
    /// The cart is not the caller's (or does not exist).
    #[error("cart not found")]
    CartNotFound,
    /// The saga refused or failed.
    #[error(transparent)]
    Checkout(#[from] CheckoutError),
    /// The `Idempotency-Key` was used with another request body.
    #[error("the idempotency key was used with another request")]
    KeyReused,
    /// A request with this `Idempotency-Key` is still running.
    #[error("a request with this idempotency key is still running")]
    KeyInUse,
    /// Reading the order an earlier request made failed.
    #[error(transparent)]
    Order(#[from] OrderError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The service. Cheap to clone.
#[derive(Clone)]
pub struct CheckoutService {
    checkouts: CheckoutCoordinators,
    carts: CartService,
    /// Read when a key's earlier request was interrupted: did it make its order?
    orders: OrderActors,
    keys: IdempotencyKeys,
    wait: Duration,
}

impl CheckoutService {
    /// The service; callers wait up to `wait` for a final state.
    pub fn new(
        checkouts: CheckoutCoordinators,
        carts: CartService,
        orders: OrderActors,
        keys: IdempotencyKeys,
        wait: Duration,
    ) -> Self {
        CheckoutService {
            checkouts,
            carts,
            orders,
            keys,
            wait,
        }
    }

    /// The coordinators.
    pub fn coordinators(&self) -> &CheckoutCoordinators {
        &self.checkouts
    }

    /// Removes `Idempotency-Key` records past their 24 hours; returns how
    /// many (the node's hourly sweep).
    pub async fn prune_expired_keys(&self) -> Result<usize, StorageError> {
        self.keys.prune().await
    }

    /// Fresh checkout and order ids, placed with the buyer (in the
    /// buyer's shard, so their coordinator and order live on its node).
    fn fresh_ids(user_id: &str) -> (String, String) {
        (new_id_beside(user_id), new_id_beside(user_id))
    }

    /// Runs `user_id`'s checkout as `ids` (checkout id, order id).
    async fn run(
        &self,
        user_id: &str,
        checkout: ValidCheckout,
        ids: (String, String),
    ) -> Result<CheckoutReply, CheckoutServiceError> {
        if self.carts.cart_of(user_id).await?.as_deref() != Some(checkout.cart_id.as_str()) {
            return Err(CheckoutServiceError::CartNotFound);
        }
        let request = CheckoutRequest {
            checkout_id: ids.0,
            order_id: ids.1,
            user_id: user_id.to_owned(),
            cart_id: checkout.cart_id,
            amount: checkout.amount,
            currency: checkout.currency,
            payment_type: checkout.payment_type,
            card_no: checkout.card_no,
            shipping_address: checkout.shipping_address,
        };
        let mut progress = self.checkouts.begin(request).await?;
        let deadline = tokio::time::sleep(self.wait);
        tokio::pin!(deadline);
        let mut waited = false;
        loop {
            let seen = progress.borrow_and_update().clone();
            match seen {
                Progress::Finished(Ok(order)) if order.status == OrderStatus::PaymentPending => {
                    return Ok(CheckoutReply::Pending(order))
                }
                Progress::Finished(Ok(order)) => return Ok(CheckoutReply::Final(order)),
                Progress::Finished(Err(e)) => return Err(e.into()),
                Progress::AwaitingPayment(order) if waited => {
                    return Ok(CheckoutReply::Pending(order))
                }
                _ => {}
            }
            tokio::select! {
                changed = progress.changed() => {
                    if changed.is_err() && !matches!(*progress.borrow(), Progress::Finished(_)) {
                        return Err(CheckoutError::Unavailable("the checkout stopped".into()).into());
                    }
                }
                () = &mut deadline, if !waited => waited = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CheckoutService;
    use crate::domain::{new_id, placement_key};

    #[test]
    fn a_checkout_and_its_order_are_placed_with_the_buyer() {
        for _ in 0..8 {
            let buyer = new_id();
            let (checkout, order) = CheckoutService::fresh_ids(&buyer);
            assert_eq!(placement_key(&checkout), placement_key(&buyer));
            assert_eq!(placement_key(&order), placement_key(&buyer));
            assert_ne!(checkout, order);
        }
    }
}
