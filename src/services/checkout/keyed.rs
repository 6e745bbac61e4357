//! A checkout sent with an `Idempotency-Key`: the rules that make a retry
//! safe, with Stripe's semantics (the key store is [`super::idempotency`]).
//!
//! A request holds its key in this process, claims it in storage with the
//! ids it will run as, runs, and stores the response it sent when that
//! response is worth replaying: results of requests that ran (success or a
//! refusal), not a conflict with a running checkout (the key is released,
//! so a retry runs afresh) nor a server error (the key stays unanswered,
//! and the next retry resolves it from what the checkout did).

use serde::Serialize;

use super::idempotency::{body_hash, Claim, StoredResponse, MAX_KEY_LEN};
use super::{CheckoutReply, CheckoutService, CheckoutServiceError, ValidCheckout};
use crate::actors::checkout::CheckoutError;
use crate::domain::order::{card_last4, Order};
use crate::domain::FieldErrors;

/// A request's `Idempotency-Key` with the fingerprint of the body it came
/// with.
#[derive(Debug, Clone)]
pub struct KeyedRequest {
    key: String,
    body_hash: Vec<u8>,
}

impl KeyedRequest {
    /// Checks `key` (1 to [`MAX_KEY_LEN`] visible ASCII characters, as sent
    /// in the header) and fingerprints `body`, the request as received: its
    /// JSON form with the card number cut to its last four digits (the key's
    /// record must not hold a hash the full number could be recovered from).
    pub fn new(key: &[u8], body: &impl Serialize) -> Result<Self, FieldErrors> {
        // What `HeaderValue::to_str` accepts: visible ASCII and tabs.
        let visible = key.iter().all(|&b| (32..127).contains(&b) || b == b'\t');
        if !visible || key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(FieldErrors::single(
                "Idempotency-Key",
                format!("must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
            ));
        }
        let mut value = serde_json::to_value(body).unwrap_or_default();
        if let Some(card) = value.pointer_mut("/paymentInfo/cardNo") {
            let last4 = card.as_str().and_then(card_last4);
            *card = serde_json::json!(last4);
        }
        Ok(KeyedRequest {
            key: String::from_utf8_lossy(key).into_owned(),
            body_hash: body_hash(&serde_json::to_vec(&value).unwrap_or_default()),
        })
    }
}

/// What a checkout request gets back.
#[derive(Debug)]
pub enum Answer<R> {
    /// The response the first request with this key got, again.
    Replay(StoredResponse),
    /// This request's own outcome, as the caller's `render` made it.
    Ran(R),
}

/// How a keyed request starts.
enum Start {
    /// Run the checkout as these ids (checkout, order).
    Run(String, String),
    /// Answered before: replay.
    Replay(StoredResponse),
    /// An interrupted request's checkout made this order: answer with it.
    Made {
        /// The checkout the key names.
        checkout_id: String,
        /// The order it made (boxed: an order is large, the other starts
        /// small).
        order: Box<Order>,
    },
}

/// What becomes of a claimed key once its request has run.
enum Retention {
    /// Store the response for replays.
    Keep,
    /// Forget the key: a retry runs afresh.
    Release,
    /// Leave it unanswered: the next retry resolves it.
    Leave,
}

impl CheckoutService {
    /// Runs `user_id`'s checkout; with a key, a retry gets the first
    /// response again (see the module docs). `render` turns an outcome into
    /// the response to send (and to store, when it is kept).
    pub async fn checkout<R: AsRef<StoredResponse>>(
        &self,
        user_id: &str,
        keyed: Option<KeyedRequest>,
        checkout: ValidCheckout,
        render: impl Fn(Result<CheckoutReply, CheckoutServiceError>) -> R,
    ) -> Result<Answer<R>, CheckoutServiceError> {
        let Some(keyed) = keyed else {
            let result = self.run(user_id, checkout, Self::fresh_ids(user_id)).await;
            return Ok(Answer::Ran(render(result)));
        };
        // Held until this returns or is dropped (client gone, timeout).
        let Some(_hold) = self.keys.hold(user_id, &keyed.key) else {
            return Err(CheckoutServiceError::KeyInUse);
        };
        let (checkout_id, order_id) = match self.start(user_id, &keyed).await? {
            Start::Run(checkout_id, order_id) => (checkout_id, order_id),
            Start::Replay(stored) => return Ok(Answer::Replay(stored)),
            Start::Made { checkout_id, order } => {
                let rendered = render(Ok(CheckoutReply::of(*order)));
                self.keys
                    .answer(user_id, &keyed.key, &checkout_id, rendered.as_ref().clone())
                    .await?;
                return Ok(Answer::Ran(rendered));
            }
        };
        let result = self
            .run(user_id, checkout, (checkout_id.clone(), order_id))
            .await;
        let retention = retention(&result);
        let rendered = render(result);
        match retention {
            Retention::Keep => {
                let stored = rendered.as_ref().clone();
                self.keys
                    .answer(user_id, &keyed.key, &checkout_id, stored)
                    .await?
            }
            Retention::Release => self.keys.release(user_id, &keyed.key, &checkout_id).await?,
            Retention::Leave => {}
        }
        Ok(Answer::Ran(rendered))
    }

    /// Claims the key, or finds what an earlier request with it did.
    async fn start(
        &self,
        user_id: &str,
        keyed: &KeyedRequest,
    ) -> Result<Start, CheckoutServiceError> {
        let hash = keyed.body_hash.clone();
        let claim = self
            .keys
            .claim(user_id, &keyed.key, hash, Self::fresh_ids(user_id), None)
            .await?;
        match claim {
            Claim::Fresh {
                checkout_id,
                order_id,
            } => Ok(Start::Run(checkout_id, order_id)),
            Claim::Replay(stored) => Ok(Start::Replay(stored)),
            Claim::Mismatch => Err(CheckoutServiceError::KeyReused),
            Claim::Unanswered {
                checkout_id,
                order_id,
            } => self.resume(user_id, keyed, checkout_id, order_id).await,
        }
    }

    /// A key claimed but never answered: its checkout is still running (the
    /// caller must wait), or it was left by a request that failed or a
    /// process that stopped, and its checkout has ended: answer with the
    /// order it made, or, if it made none, run the request now.
    async fn resume(
        &self,
        user_id: &str,
        keyed: &KeyedRequest,
        checkout_id: String,
        order_id: String,
    ) -> Result<Start, CheckoutServiceError> {
        let checkouts = &self.checkouts;
        if checkouts.is_running(&checkout_id) || checkouts.is_unfinished(&checkout_id).await? {
            return Err(CheckoutServiceError::KeyInUse);
        }
        if let Some(order) = self.orders.get(&order_id).await? {
            let order = Box::new(order);
            return Ok(Start::Made { checkout_id, order });
        }
        let hash = keyed.body_hash.clone();
        let replacing = Some(checkout_id);
        let claim = self
            .keys
            .claim(
                user_id,
                &keyed.key,
                hash,
                Self::fresh_ids(user_id),
                replacing,
            )
            .await?;
        match claim {
            Claim::Fresh {
                checkout_id,
                order_id,
            } => Ok(Start::Run(checkout_id, order_id)),
            Claim::Replay(stored) => Ok(Start::Replay(stored)),
            Claim::Mismatch => Err(CheckoutServiceError::KeyReused),
            Claim::Unanswered { .. } => Err(CheckoutServiceError::KeyInUse),
        }
    }
}

/// Whether a checkout's outcome is kept for replays: results of requests
/// that ran are (a success or a refusal the retry would meet again); a
/// conflict with a running checkout is released; a server error is left.
/// The match is exhaustive on purpose: a new saga error must be placed here
/// (4xx refusals are kept, 5xx failures left), as its HTTP code decides.
fn retention(result: &Result<CheckoutReply, CheckoutServiceError>) -> Retention {
    use CheckoutError as Saga;
    match result {
        Ok(_) => Retention::Keep,
        Err(CheckoutServiceError::Checkout(Saga::InProgress)) => Retention::Release,
        Err(
            CheckoutServiceError::CartNotFound
            | CheckoutServiceError::Checkout(
                Saga::EmptyCart
                | Saga::PriceChanged { .. }
                | Saga::CurrencyMismatch { .. }
                | Saga::OutOfStock(_),
            ),
        ) => Retention::Keep,
        // Never a run's outcome: a key's own refusals come before the run.
        Err(CheckoutServiceError::KeyReused | CheckoutServiceError::KeyInUse) => Retention::Release,
        Err(
            CheckoutServiceError::Checkout(
                Saga::Unavailable(_) | Saga::NodeUnavailable(_) | Saga::Storage(_),
            )
            | CheckoutServiceError::Order(_)
            | CheckoutServiceError::Storage(_),
        ) => Retention::Leave,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(card: &str) -> serde_json::Value {
        json!({"cartId": "c1", "amount": 100, "paymentInfo": {"paymentType": "CARD", "cardNo": card}})
    }

    #[test]
    fn a_key_is_one_to_255_visible_ascii_characters() {
        let ok = |key: &[u8]| KeyedRequest::new(key, &body("4242")).is_ok();
        assert!(ok(b"a"));
        assert!(ok(&[b'k'; MAX_KEY_LEN]));
        assert!(!ok(b""));
        assert!(!ok(&[b'k'; MAX_KEY_LEN + 1]));
        assert!(!ok(b"line\nbreak"));
        assert!(!ok("caf\u{e9}".as_bytes()));
    }

    #[test]
    fn bodies_that_differ_only_before_the_card_s_last_four_digits_match() {
        let hash = |card: &str| KeyedRequest::new(b"k", &body(card)).unwrap().body_hash;
        assert_eq!(hash("4111 1111 1111 4242"), hash("5555-5555-5555-4242"));
        assert_ne!(hash("4111 1111 1111 4242"), hash("4111 1111 1111 4243"));
    }
}
