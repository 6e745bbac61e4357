//! The fraud and risk step a checkout passes before payment: an amount
//! ceiling, and a velocity rule on a buyer's recent failed payments.
//!
//! Failed payments are counted from the buyer's own orders (the
//! `user_orders` read model), read once per buyer per process and then kept
//! current in memory by the checkouts that fail, so the rule holds across
//! restarts without a scan on every checkout.

use std::sync::Arc;

use dashmap::DashMap;

use crate::config::RiskRules;
use crate::domain::order::{Order, OrderStatus};
use crate::domain::Timestamp;
use crate::storage::{codec, StorageError, Store, TreeName};

/// Every risk decline's reason starts with this, so it is told apart from
/// a card decline (and not counted as a failed payment itself).
pub const RISK_PREFIX: &str = "declined by risk rules: ";

/// Most of a buyer's recent orders read to count failed payments.
const SCAN_LIMIT: usize = 200;

/// The risk step. Cheap to clone.
#[derive(Clone)]
pub struct Risk {
    rules: Arc<RiskRules>,
    store: Store,
    /// user id → recent failed payments `(when, order id)`, once read.
    failures: Arc<DashMap<String, Vec<(i64, String)>>>,
}

impl Risk {
    /// The step with `rules`.
    pub fn new(rules: RiskRules, store: Store) -> Self {
        Risk {
            rules: Arc::new(rules),
            store,
            failures: Arc::default(),
        }
    }

    /// `Err(reason)` if a checkout of `amount` by `user_id` must be declined.
    pub async fn assess(
        &self,
        user_id: &str,
        amount: i64,
    ) -> Result<Result<(), String>, StorageError> {
        let rules = &self.rules;
        if rules.max_order_amount > 0 && amount > rules.max_order_amount {
            return Ok(Err(format!(
                "{RISK_PREFIX}the amount exceeds the limit of {} per order",
                rules.max_order_amount
            )));
        }
        if rules.max_failed_payments == 0 {
            return Ok(Ok(()));
        }
        let window_ms = i64::try_from(rules.failed_payment_window_secs * 1000).unwrap_or(i64::MAX);
        let since = Timestamp::now().0.saturating_sub(window_ms);
        if !self.failures.contains_key(user_id) {
            let read = self.read_failures(user_id, since).await?;
            let mut entry = self.failures.entry(user_id.to_owned()).or_default();
            for failure in read {
                if !entry.iter().any(|(_, id)| *id == failure.1) {
                    entry.push(failure);
                }
            }
        }
        let recent = self.failures.get_mut(user_id).map_or(0, |mut entry| {
            entry.retain(|(at, _)| *at >= since);
            entry.len()
        });
        if recent >= rules.max_failed_payments as usize {
            return Ok(Err(format!(
                "{RISK_PREFIX}{recent} failed payments in the last {} s; try again later",
                rules.failed_payment_window_secs
            )));
        }
        Ok(Ok(()))
    }

    /// Notes a failed payment of `user_id` (a gateway decline).
    pub fn record_failure(&self, user_id: &str, order_id: &str, at: Timestamp) {
        // Only buyers already read are tracked; the others are counted from
        // their orders when they next check out.
        if let Some(mut entry) = self.failures.get_mut(user_id) {
            if !entry.iter().any(|(_, id)| id == order_id) {
                entry.push((at.0, order_id.to_owned()));
            }
        }
    }

    /// The buyer's payment failures since `since`, from their newest orders.
    async fn read_failures(
        &self,
        user_id: &str,
        since: i64,
    ) -> Result<Vec<(i64, String)>, StorageError> {
        let mut prefix = user_id.as_bytes().to_vec();
        prefix.push(0);
        self.store
            .read(move |trees| {
                let mut found = Vec::new();
                let index = trees.tree(TreeName::UserOrders);
                let orders = trees.tree(TreeName::Orders);
                for entry in index.scan_prefix(&prefix).take(SCAN_LIMIT) {
                    let (key, _) = entry?;
                    let order_id = &key[prefix.len() + 8..];
                    let Some(bytes) = orders.get(order_id)? else {
                        continue;
                    };
                    let order: Order = codec::decode(&bytes)?;
                    if order.created_at.0 < since {
                        break;
                    }
                    let declined = order.status == OrderStatus::PaymentFailed
                        && !order
                            .failure_reason
                            .as_deref()
                            .is_some_and(|r| r.starts_with(RISK_PREFIX));
                    if declined {
                        found.push((order.updated_at.0, order.id));
                    }
                }
                Ok(found)
            })
            .await
    }
}
