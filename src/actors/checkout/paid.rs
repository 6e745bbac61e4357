//! After the gateway charged: commit the stock and confirm, or, if the
//! order stopped waiting, give everything back and refund.

use super::retry::retrying;
use super::saga::{Saga, Step};
use super::steps::was_confirmed;
use super::{CheckoutEntity, CheckoutError, CheckoutState};
use crate::actors::inventory::{Command, InventoryError};
use crate::actors::order::{Change, OrderError};
use crate::domain::order::{OrderStatus, PaymentStatus};
use crate::domain::stock::StockError;

impl CheckoutEntity {
    /// The gateway charged: commit every line's stock, then confirm the
    /// order with its payment facts (the log stays at `Charging`: a
    /// confirmed order says where the checkout is). If the
    /// order stopped waiting meanwhile (expired or cancelled, its stock
    /// released), give everything back instead. No log entry is needed
    /// between the charge and the confirmation: a resumed checkout asks the
    /// gateway, and committing again is a no-op.
    pub(super) async fn settle_paid(
        &self,
        state: &mut CheckoutState,
        saga: &Saga,
        txn_id: String,
    ) -> Result<(), CheckoutError> {
        // A resumed checkout that cannot read its order (moved to the
        // archive, say) must not take the charge for a late one and refund
        // it: keep the log, and let the next sweep try again.
        if state.order.is_none() {
            return Err(CheckoutError::Unavailable(
                "the order cannot be read; the checkout is retried later".into(),
            ));
        }
        // Always commit what is still held, even for an order that stopped
        // waiting: what was committed is then certain (the log says) and is
        // given back below with the refund.
        self.commit_stock(state).await?;
        let saga_now = state.saga();
        let pending = state
            .order
            .as_ref()
            .is_some_and(|o| o.status == OrderStatus::PaymentPending);
        if pending && saga_now.committed.len() == saga.lines.len() {
            let change = Change {
                status: Some(OrderStatus::Confirmed),
                payment_status: Some(PaymentStatus::Succeeded),
                txn_id: Some(txn_id.clone()),
                reason: None,
            };
            // No log entry rides with it: a confirmed order tells a resumed
            // checkout that only the cart is left (`steps::was_confirmed`).
            match retrying(|| self.orders.update(&saga.order_id, change.clone(), None)).await {
                Ok(order) => {
                    state.order = Some(order);
                    state.set_step(Step::Confirmed);
                    return Ok(());
                }
                // Refused: either it stopped waiting (cancelled by the
                // buyer, or expired) a moment ago, or an earlier attempt
                // that timed out did confirm it (and it may have moved on).
                Err(OrderError::InvalidTransition(_)) => {
                    let order = retrying(|| self.orders.get(&saga.order_id)).await?;
                    let confirmed = order.as_ref().is_some_and(was_confirmed);
                    state.order = order;
                    if confirmed {
                        state.set_step(Step::Confirmed);
                        return Ok(());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.refund_late(state, txn_id).await
    }

    /// Commits every line's reservation not yet committed. Each commit
    /// carries the log with its line marked committed, in the SKU's own
    /// flush; a line the SKU no longer holds (its reservation lapsed or was
    /// released) is left out, and the log says so with certainty.
    async fn commit_stock(&self, state: &mut CheckoutState) -> Result<(), CheckoutError> {
        let saga = state.saga().clone();
        for line in &saga.lines {
            let current = state.saga();
            if current.committed.contains(&line.variant_id) {
                continue;
            }
            let mut next = current.clone();
            next.committed.push(line.variant_id.clone());
            let rider = next.rider()?;
            let command = Command::Commit {
                checkout_id: saga.checkout_id.clone(),
            };
            match retrying(|| {
                self.inventory
                    .change_with(&line.variant_id, command.clone(), Some(rider.clone()))
            })
            .await
            {
                Ok(_) => state.saga = Some(next),
                Err(
                    InventoryError::Refused(StockError::AlreadyFinished)
                    | InventoryError::Refused(StockError::NoReservation),
                ) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// A charge that arrived after the order stopped waiting: put back the
    /// stock committed for it, refund it, record `REFUNDED` (and `EXPIRED`
    /// if the order was still waiting), end as failed.
    async fn refund_late(
        &self,
        state: &mut CheckoutState,
        txn_id: String,
    ) -> Result<(), CheckoutError> {
        // Stock first: it does not depend on the gateway being reachable.
        self.return_stock(state).await?;
        let saga = state.saga().clone();
        self.payments
            .refund(&saga.order_id)
            .await
            .map_err(|e| CheckoutError::Unavailable(format!("refund failed: {e}")))?;
        let rider = saga.rider_at(Step::Failed)?;
        let reason = "the payment arrived after the order stopped waiting for it; it was refunded";
        // Expire the order if it is still waiting; otherwise (expired or
        // cancelled meanwhile) record only the refund.
        let mut order = None;
        for status in [Some(OrderStatus::Expired), None] {
            let change = Change {
                status,
                payment_status: Some(PaymentStatus::Refunded),
                txn_id: Some(txn_id.clone()),
                reason: Some(reason.into()),
            };
            match retrying(|| {
                self.orders
                    .update(&saga.order_id, change.clone(), Some(rider.clone()))
            })
            .await
            {
                Ok(updated) => {
                    order = Some(updated);
                    break;
                }
                Err(OrderError::InvalidTransition(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        state.order = order.or(state.order.take());
        state.set_step(Step::Failed);
        Ok(())
    }

    /// Puts every committed line not yet returned back on sale, each return
    /// carrying the log with its line marked returned.
    async fn return_stock(&self, state: &mut CheckoutState) -> Result<(), CheckoutError> {
        let saga = state.saga().clone();
        for line in &saga.lines {
            let current = state.saga();
            if !current.committed.contains(&line.variant_id)
                || current.returned.contains(&line.variant_id)
            {
                continue;
            }
            let mut next = current.clone();
            next.returned.push(line.variant_id.clone());
            let rider = next.rider()?;
            let command = Command::Return {
                checkout_id: saga.checkout_id.clone(),
                quantity: line.quantity,
            };
            retrying(|| {
                self.inventory
                    .change_with(&line.variant_id, command.clone(), Some(rider.clone()))
            })
            .await?;
            state.saga = Some(next);
        }
        Ok(())
    }
}
