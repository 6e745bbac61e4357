//! How orders end off the happy path: the buyer's cancellation, expiry at
//! the payment deadline, the gateway check of an order that ended unpaid,
//! and giving stock back.

use std::time::Duration;

use super::{apply, Change, OrderEntity, OrderError, OrderMsg, OrderState, PAYMENT_CHECK_RETRY};
use crate::actors::runtime::{EntityError, EntityRef};
use crate::domain::order::FulfilmentRefused;
use crate::domain::order::{InvalidTransition, Order, OrderStatus, PaymentStatus};
use crate::domain::Timestamp;
use crate::payments::ChargeOutcome;
use crate::storage::TreeName;

impl OrderEntity {
    /// The buyer's cancellation.
    pub(super) async fn cancel(
        &self,
        state: &mut OrderState,
        myself: &EntityRef<Self>,
    ) -> Result<Order, OrderError> {
        let Some(mut order) = state.order.clone() else {
            return Err(OrderError::NotFound);
        };
        let now = Timestamp::now();
        match order.status {
            OrderStatus::Created | OrderStatus::PaymentPending => {
                let was_charging = order.status == OrderStatus::PaymentPending;
                let change = Change {
                    status: Some(OrderStatus::Cancelled),
                    payment_status: Some(PaymentStatus::Failed),
                    reason: Some("cancelled by the buyer".into()),
                    ..Change::default()
                };
                apply(&mut order, change, now)?;
                order.payment_check_due = was_charging;
                self.unlock_cart(&order).await;
                let cancelled = self.save(state, order, None).await?;
                self.release_stock(&cancelled).await;
                // A charge on its way is refunded by the checkout when it
                // finds the order cancelled; one the gateway made with its
                // answer lost is found and refunded by the check, which
                // runs after this reply (gateway calls can be slow).
                if cancelled.payment_check_due {
                    myself.tell(OrderMsg::CheckPayment);
                }
                Ok(cancelled)
            }
            OrderStatus::Confirmed if order.fulfilment_started() => {
                Err(FulfilmentRefused::AlreadyShipped.into())
            }
            OrderStatus::Confirmed => {
                // Refund first: if the gateway does not confirm it, nothing
                // changes and the buyer may try again.
                self.payments
                    .refund(&order.id)
                    .await
                    .map_err(|e| OrderError::RefundFailed(e.to_string()))?;
                let change = Change {
                    status: Some(OrderStatus::Cancelled),
                    payment_status: Some(PaymentStatus::Refunded),
                    reason: Some("cancelled by the buyer".into()),
                    ..Change::default()
                };
                apply(&mut order, change, now)?;
                order.stock_to_return = true;
                self.save(state, order, None).await?;
                self.return_stock(state)
                    .await
                    .map_err(OrderError::Unavailable)?;
                state.order.clone().ok_or(OrderError::NotFound)
            }
            // Shipped, or already final (cancelling twice is refused too).
            from => Err(InvalidTransition {
                from,
                to: OrderStatus::Cancelled,
            }
            .into()),
        }
    }

    /// At the deadline: `EXPIRED`, stock released, and a charge that went
    /// through after all refunded.
    pub(super) async fn expire(
        &self,
        state: &mut OrderState,
        myself: &EntityRef<Self>,
    ) -> Result<(), EntityError> {
        let now = Timestamp::now();
        let due = state
            .order
            .as_ref()
            .filter(|o| o.status == OrderStatus::PaymentPending && o.expires_at <= now)
            .cloned();
        let Some(mut order) = due else {
            return Ok(());
        };
        let change = Change {
            status: Some(OrderStatus::Expired),
            payment_status: Some(PaymentStatus::Failed),
            reason: Some("no payment within the payment window".into()),
            ..Change::default()
        };
        if apply(&mut order, change, now).is_err() {
            return Ok(());
        }
        order.payment_check_due = true;
        self.unlock_cart(&order).await;
        // A failed save fails the actor; the next activation re-arms the
        // deadline from what is stored.
        let expired = self
            .save(state, order, None)
            .await
            .map_err(|e| EntityError::Unavailable(format!("expiring order: {e}")))?;
        self.release_stock(&expired).await;
        myself.tell(OrderMsg::CheckPayment);
        Ok(())
    }

    /// Asks the gateway about an order that ended unpaid and refunds a
    /// charge it made after all (recording `REFUNDED`). Until the gateway
    /// answers definitely, the order keeps `payment_check_due` (stored, so a
    /// restart resumes it) and asks again every 30 s.
    pub(super) async fn check_payment(&self, state: &mut OrderState, myself: &EntityRef<Self>) {
        let Some(mut order) = state.order.clone().filter(|o| o.payment_check_due) else {
            return;
        };
        // No record is a definite "never charged" only once a charge still
        // in flight would have been decided: the payment window, then the
        // client's whole budget for one charge.
        let window = i64::try_from(self.payments.decision_window().as_millis()).unwrap_or(i64::MAX);
        let decided_by = Timestamp(order.expires_at.0.saturating_add(window));
        let now = Timestamp::now();
        let retry = match self.payments.status(&order.id).await {
            Ok(Some(record)) if matches!(record.outcome, ChargeOutcome::Approved(_)) => {
                match self.payments.refund(&order.id).await {
                    Ok(()) => {
                        order.payment_status = PaymentStatus::Refunded;
                        None
                    }
                    Err(e) => {
                        tracing::warn!(order = %order.id, error = %e, "refund of a late charge failed; retrying");
                        Some(PAYMENT_CHECK_RETRY)
                    }
                }
            }
            Ok(Some(_)) => None,
            Ok(None) if now < decided_by => Some(Duration::from_millis(
                u64::try_from(decided_by.0 - now.0).unwrap_or(0),
            )),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(order = %order.id, error = %e, "could not ask the gateway about an unpaid order; retrying");
                Some(PAYMENT_CHECK_RETRY)
            }
        };
        let retry = match retry {
            Some(wait) => Some(wait),
            None => {
                order.payment_check_due = false;
                order.updated_at = now;
                match self.save(state, order, None).await {
                    Ok(_) => None,
                    Err(e) => {
                        tracing::warn!(error = %e, "recording a payment check failed; retrying");
                        Some(PAYMENT_CHECK_RETRY)
                    }
                }
            }
        };
        if let (Some(wait), None) = (retry, &state.check_timer) {
            state.check_timer = Some(myself.tell_after(wait, || OrderMsg::CheckPayment));
        }
    }

    /// Gives the buyer's cart back to them when the order ends unpaid, at
    /// once: its checkout may still be waiting for the gateway (up to the
    /// payment timeout) and would hold the cart until then.
    ///
    /// Runs before the order's end is stored, so whoever reads the order
    /// ended finds the cart free. Safe before the save: only this actor
    /// could confirm the order meanwhile, and it is busy here. The cart
    /// actor unlocks only a lock of this order's checkout, never a newer
    /// one's; the checkout's own unlock later is then a no-op. Best effort:
    /// an unlock that fails leaves the cart to the checkout, as before.
    async fn unlock_cart(&self, order: &Order) {
        // A buyer checks out their own cart (`checkout` refuses any other),
        // so the order's cart is the buyer's.
        let cart = match self
            .store
            .get_raw(TreeName::UserCarts, order.user_id.as_bytes())
            .await
        {
            Ok(Some(cart)) => String::from_utf8_lossy(&cart).into_owned(),
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(order = %order.id, error = %e, "cannot find the cart to unlock");
                return;
            }
        };
        if let Err(e) = self
            .carts
            .end_checkout(&cart, &order.checkout_id, false, None)
            .await
        {
            tracing::warn!(order = %order.id, error = %e, "unlocking the cart of an unpaid order failed");
        }
    }

    /// Gives the order's reservations back. Best effort: each reservation
    /// also carries the order's deadline, so its SKU releases it by itself.
    async fn release_stock(&self, order: &Order) {
        for line in &order.lines {
            if let Err(e) = self
                .inventory
                .release(&line.variant_id, &order.checkout_id)
                .await
            {
                tracing::warn!(order = %order.id, sku = %line.variant_id, error = %e, "release failed");
            }
        }
    }

    /// Puts a cancelled paid order's units back on sale (idempotent per
    /// checkout at each SKU), then clears the flag.
    pub(super) async fn return_stock(&self, state: &mut OrderState) -> Result<(), EntityError> {
        let Some(mut order) = state.order.clone().filter(|o| o.stock_to_return) else {
            return Ok(());
        };
        for line in &order.lines {
            self.inventory
                .return_sold(&line.variant_id, &order.checkout_id, line.quantity)
                .await
                .map_err(|e| EntityError::Unavailable(format!("returning stock: {e}")))?;
        }
        order.stock_to_return = false;
        self.save(state, order, None)
            .await
            .map_err(|e| EntityError::Unavailable(format!("recording returned stock: {e}")))?;
        Ok(())
    }
}
