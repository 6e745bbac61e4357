//! Payments: the gateway interface, the built-in simulated gateway, and the
//! client that owns every call to it (timeouts, retries with backoff).
//!
//! The gateway is the one external system. [`PaymentGateway`] is the surface
//! a real one (Stripe, Razorpay, ...) would implement: charge, refund and
//! status, each idempotent by order id, so a retried or resumed checkout can
//! never charge twice. Only the last four card digits ever leave this module.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::order::card_last4;
use crate::domain::{new_id, Timestamp};
use crate::storage::{Record, StorageError, Store, TreeName};

/// A boxed future, so gateways can sit behind `dyn`.
pub type GatewayFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, GatewayError>> + Send + 'a>>;

/// A charge to make.
#[derive(Debug, Clone)]
pub struct ChargeRequest {
    /// The order: the idempotency key.
    pub order_id: String,
    /// Minor units.
    pub amount: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// `CARD`, ...
    pub payment_type: String,
    /// The card number as the buyer gave it; never stored or logged.
    pub card_no: String,
}

/// What the gateway decided.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum ChargeOutcome {
    /// Charged; the gateway's transaction id.
    Approved(String),
    /// Refused, with the gateway's reason.
    Declined(String),
}

/// The gateway's record of an order's payment.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct ChargeRecord {
    /// Amount charged (or attempted), minor units.
    pub amount: i64,
    /// The decision.
    pub outcome: ChargeOutcome,
    /// Last four digits of the card.
    pub card_last4: Option<String>,
    /// Whether an approved charge was refunded.
    pub refunded: bool,
    /// When it was decided.
    pub at: Timestamp,
}

impl Record for ChargeRecord {
    const KIND: &'static str = "gateway-charge";
    const VERSION: u8 = 1;
}

/// A gateway call that did not produce a decision.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// A temporary failure: worth retrying.
    #[error("transient gateway error: {0}")]
    Transient(String),
    /// No answer in time; the charge may or may not have happened (ask
    /// [`PaymentGateway::status`] later).
    #[error("the gateway did not answer in time")]
    Timeout,
    /// Refund of an order that was never charged.
    #[error("nothing to refund")]
    NotCharged,
    /// The gateway's own storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The interface a payment gateway implements. Every call is idempotent by
/// order id: a second `charge` returns the first decision, a second
/// `refund` is a no-op.
pub trait PaymentGateway: Send + Sync + 'static {
    /// Charges `request.amount` once per order.
    fn charge(&self, request: ChargeRequest) -> GatewayFuture<'_, ChargeOutcome>;
    /// Refunds an approved charge.
    fn refund(&self, order_id: &str) -> GatewayFuture<'_, ()>;
    /// The gateway's record for an order, if it decided anything.
    fn status(&self, order_id: &str) -> GatewayFuture<'_, Option<ChargeRecord>>;
}

/// The built-in gateway, deciding by the card's last four digits in the
/// manner of public payment sandboxes (API.md): `0002` declines, `0119` fails
/// transiently every time, `3155` never answers, anything else is approved
/// after `latency`. Its ledger lives in its own tree, standing in for the
/// external system's records, so idempotency survives our restarts.
pub struct SimulatedGateway {
    store: Store,
    latency: Duration,
}

impl SimulatedGateway {
    /// A gateway answering after `latency`.
    pub fn new(store: Store, latency: Duration) -> Self {
        SimulatedGateway { store, latency }
    }

    async fn record(&self, order_id: &str) -> Result<Option<ChargeRecord>, GatewayError> {
        let key = order_id.as_bytes().to_vec();
        Ok(self
            .store
            .read(move |trees| trees.get::<ChargeRecord>(TreeName::GatewayLedger, key))
            .await?)
    }
}

impl PaymentGateway for SimulatedGateway {
    fn charge(&self, request: ChargeRequest) -> GatewayFuture<'_, ChargeOutcome> {
        Box::pin(async move {
            // A repeated charge gets the first decision: the write below
            // keeps the first record it finds.
            let last4 = card_last4(&request.card_no);
            match last4.as_deref() {
                Some("3155") => std::future::pending::<()>().await,
                Some("0119") => {
                    return Err(GatewayError::Transient(
                        "issuer temporarily unavailable".into(),
                    ))
                }
                _ => {}
            }
            tokio::time::sleep(self.latency).await;
            let outcome = match last4.as_deref() {
                Some("0002") => ChargeOutcome::Declined("card declined".into()),
                None => ChargeOutcome::Declined("invalid card number".into()),
                Some(_) => ChargeOutcome::Approved(format!("txn_{}", new_id())),
            };
            let record = ChargeRecord {
                amount: request.amount,
                outcome: outcome.clone(),
                card_last4: last4,
                refunded: false,
                at: Timestamp::now(),
            };
            let key = request.order_id.into_bytes();
            // First decision wins, even between two concurrent calls.
            let decided = self
                .store
                .write(
                    move |tx| match tx.get::<ChargeRecord>(TreeName::GatewayLedger, &key)? {
                        Some(first) => Ok::<_, StorageError>(first.outcome),
                        None => {
                            tx.put(TreeName::GatewayLedger, key.clone(), &record)?;
                            Ok(record.outcome.clone())
                        }
                    },
                )
                .await?;
            Ok(decided)
        })
    }

    fn refund(&self, order_id: &str) -> GatewayFuture<'_, ()> {
        let key = order_id.as_bytes().to_vec();
        Box::pin(async move {
            self.store
                .write(
                    move |tx| match tx.get::<ChargeRecord>(TreeName::GatewayLedger, &key)? {
                        Some(mut record)
                            if matches!(record.outcome, ChargeOutcome::Approved(_)) =>
                        {
                            if !record.refunded {
                                record.refunded = true;
                                tx.put(TreeName::GatewayLedger, key.clone(), &record)?;
                            }
                            Ok(())
                        }
                        _ => Err(GatewayError::NotCharged),
                    },
                )
                .await
        })
    }

    fn status(&self, order_id: &str) -> GatewayFuture<'_, Option<ChargeRecord>> {
        let order_id = order_id.to_owned();
        Box::pin(async move { self.record(&order_id).await })
    }
}

/// What a checkout learns from trying to pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentResult {
    /// Charged.
    Approved {
        /// The gateway's transaction id.
        txn_id: String,
    },
    /// Refused (including transient errors that persisted).
    Declined {
        /// Why.
        reason: String,
    },
    /// No decision in time: the order stays `PAYMENT_PENDING` until it
    /// expires; a late approval is refunded.
    NoAnswer,
}

/// Most gateway calls in flight at once: the pool's size, as a real
/// gateway client's connection pool would bound it. A call waiting for a
/// slot counts against its attempt's timeout.
pub const MAX_GATEWAY_CALLS: usize = 1024;

/// The pool owning every gateway call: at most [`MAX_GATEWAY_CALLS`] at
/// once, a timeout per attempt, and retries with exponential backoff for
/// transient errors.
#[derive(Clone)]
pub struct Payments {
    gateway: Arc<dyn PaymentGateway>,
    slots: Arc<tokio::sync::Semaphore>,
    attempt_timeout: Duration,
    retries: u32,
    backoff: Duration,
}

impl Payments {
    /// A client for `gateway`.
    pub fn new(
        gateway: Arc<dyn PaymentGateway>,
        attempt_timeout: Duration,
        retries: u32,
        backoff: Duration,
    ) -> Self {
        Payments {
            gateway,
            slots: Arc::new(tokio::sync::Semaphore::new(MAX_GATEWAY_CALLS)),
            attempt_timeout,
            retries,
            backoff,
        }
    }

    /// Runs one gateway call in a pool slot, within the attempt timeout.
    async fn call<T>(&self, call: GatewayFuture<'_, T>) -> Result<T, GatewayError> {
        let pooled = async {
            let _slot = self
                .slots
                .acquire()
                .await
                .map_err(|_| GatewayError::Timeout)?;
            call.await
        };
        tokio::time::timeout(self.attempt_timeout, pooled)
            .await
            .unwrap_or(Err(GatewayError::Timeout))
    }

    /// Charges an order, retrying transient failures; logs only the last
    /// four digits.
    pub async fn charge(&self, request: ChargeRequest) -> PaymentResult {
        let last4 = card_last4(&request.card_no).unwrap_or_default();
        let mut delay = self.backoff;
        for attempt in 0..=self.retries {
            match self.call(self.gateway.charge(request.clone())).await {
                Ok(ChargeOutcome::Approved(txn_id)) => return PaymentResult::Approved { txn_id },
                Ok(ChargeOutcome::Declined(reason)) => return PaymentResult::Declined { reason },
                Err(GatewayError::Transient(reason)) => {
                    tracing::info!(order = %request.order_id, card = %last4, attempt, %reason, "transient payment error");
                    if attempt == self.retries {
                        return PaymentResult::Declined {
                            reason: format!("gateway kept failing: {reason}"),
                        };
                    }
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                }
                Err(GatewayError::Timeout) => {
                    tracing::warn!(order = %request.order_id, card = %last4, "gateway did not answer in time");
                    return PaymentResult::NoAnswer;
                }
                Err(e) => {
                    tracing::warn!(order = %request.order_id, error = %e, "payment error");
                    return PaymentResult::NoAnswer;
                }
            }
        }
        PaymentResult::NoAnswer
    }

    /// The longest a `charge` can take (every attempt timing out, every
    /// backoff): after this, a charge the gateway has no record of was
    /// never made.
    pub fn decision_window(&self) -> Duration {
        let attempts = self.retries + 1;
        let backoff = self
            .backoff
            .saturating_mul((1u32 << self.retries.min(16)).saturating_sub(1));
        self.attempt_timeout.saturating_mul(attempts) + backoff
    }

    /// Refunds an order's charge (idempotent).
    pub async fn refund(&self, order_id: &str) -> Result<(), GatewayError> {
        self.call(self.gateway.refund(order_id)).await
    }

    /// The gateway's record for an order.
    pub async fn status(&self, order_id: &str) -> Result<Option<ChargeRecord>, GatewayError> {
        self.call(self.gateway.status(order_id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StoreOptions;

    fn request(order: &str, card: &str) -> ChargeRequest {
        ChargeRequest {
            order_id: order.into(),
            amount: 1998,
            currency: "INR".into(),
            payment_type: "CARD".into(),
            card_no: card.into(),
        }
    }

    fn payments(store: &Store) -> Payments {
        let gateway = Arc::new(SimulatedGateway::new(
            store.clone(),
            Duration::from_millis(5),
        ));
        Payments::new(
            gateway,
            Duration::from_millis(300),
            2,
            Duration::from_millis(10),
        )
    }

    #[tokio::test]
    async fn the_test_card_table_decides() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let client = payments(&store);
        assert!(matches!(
            client.charge(request("o1", "**** **** **** 1234")).await,
            PaymentResult::Approved { .. }
        ));
        assert!(matches!(
            client.charge(request("o2", "4000 0000 0000 0002")).await,
            PaymentResult::Declined { .. }
        ));
        let persisting = client.charge(request("o3", "4000 0000 0000 0119")).await;
        assert!(
            matches!(persisting, PaymentResult::Declined { ref reason } if reason.contains("kept failing"))
        );
        assert_eq!(
            client.charge(request("o4", "4000 0000 0000 3155")).await,
            PaymentResult::NoAnswer
        );
        assert_eq!(
            client.status("o4").await.unwrap(),
            None,
            "no decision was made"
        );
    }

    #[tokio::test]
    async fn charges_and_refunds_are_idempotent_by_order_and_keep_only_four_digits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let client = payments(&store);
        let first = client.charge(request("o1", "4111 1111 1111 1111")).await;
        let again = client.charge(request("o1", "4111 1111 1111 1111")).await;
        assert_eq!(first, again, "one charge per order");
        client.refund("o1").await.unwrap();
        client.refund("o1").await.unwrap();
        let record = client.status("o1").await.unwrap().unwrap();
        assert!(record.refunded);
        assert_eq!(record.card_last4.as_deref(), Some("1111"));
        let stored = store
            .read(|trees| Ok(trees.tree(TreeName::GatewayLedger).iter().count()))
            .await
            .unwrap();
        assert_eq!(stored, 1);
        assert!(matches!(
            client.refund("never").await,
            Err(GatewayError::NotCharged)
        ));
    }
}
