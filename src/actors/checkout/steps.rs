//! The saga's steps once the order exists: the drive from one logged step
//! to the next (charge, settle, decline), and the steps that end a checkout
//! (release the stock, unlock or clear the cart).

use super::retry::retrying;
use super::saga::{Saga, Step};
use super::{CheckoutEntity, CheckoutError, CheckoutState};
use crate::actors::order::{Change, OrderError};
use crate::domain::order::{Order, OrderStatus, PaymentStatus};
use crate::domain::Timestamp;
use crate::payments::{ChargeOutcome, ChargeRequest, PaymentResult};
use crate::storage::StorageError;

impl CheckoutEntity {
    /// Runs the steps from the log's current one to the end. `card_no` is
    /// there only on the live path: a resumed checkout asks the gateway.
    pub(super) async fn drive(
        &self,
        state: &mut CheckoutState,
        mut card_no: Option<String>,
    ) -> Result<Order, CheckoutError> {
        loop {
            let saga = state.saga().clone();
            match saga.step {
                // Only a resumed checkout is here: no order exists, so give
                // back whatever was reserved.
                Step::Reserving => {
                    self.release_and_unlock(state).await?;
                    return Err(CheckoutError::Unavailable(
                        "the checkout was interrupted before its order existed".into(),
                    ));
                }
                Step::OrderCreated => self.resume_created(state, card_no.is_some()).await?,
                // The confirmation does not move the log (the cart's
                // clearing ends it): an order that was confirmed is past
                // its charge and its commits; only the cart is left.
                Step::Charging if state.order.as_ref().is_some_and(was_confirmed) => {
                    state.set_step(Step::Confirmed);
                }
                Step::Charging => {
                    let result = self.charge(&saga, card_no.take()).await?;
                    if let Some(order) = self.after_charge(state, &saga, result).await? {
                        return Ok(order);
                    }
                }
                Step::Confirmed => {
                    self.clear_cart(&saga).await?;
                    return self.current_order(state, &saga).await;
                }
                Step::Failed => {
                    self.release_and_unlock(state).await?;
                    return self.current_order(state, &saga).await;
                }
            }
        }
    }

    /// Charges the card, or, for a resumed checkout (no card), asks the
    /// gateway what became of the charge for this order.
    async fn charge(
        &self,
        saga: &Saga,
        card_no: Option<String>,
    ) -> Result<PaymentResult, CheckoutError> {
        if let Some(card_no) = card_no {
            let request = ChargeRequest {
                order_id: saga.order_id.clone(),
                amount: saga.amount,
                currency: saga.currency.clone(),
                payment_type: "CARD".into(),
                card_no,
            };
            return Ok(self.payments.charge(request).await);
        }
        match self.payments.status(&saga.order_id).await {
            Ok(Some(record)) => Ok(match record.outcome {
                ChargeOutcome::Approved(txn_id) => PaymentResult::Approved { txn_id },
                ChargeOutcome::Declined(reason) => PaymentResult::Declined { reason },
            }),
            Ok(None) => Ok(PaymentResult::NoAnswer),
            // Unknown: keep the log; the next sweep asks again.
            Err(e) => Err(CheckoutError::Unavailable(format!(
                "the gateway could not say what happened: {e}"
            ))),
        }
    }

    /// Acts on the gateway's answer; returns the order when the checkout is
    /// over, `None` when the log moved to a next step.
    async fn after_charge(
        &self,
        state: &mut CheckoutState,
        saga: &Saga,
        result: PaymentResult,
    ) -> Result<Option<Order>, CheckoutError> {
        match result {
            PaymentResult::Approved { txn_id } => self.settle_paid(state, saga, txn_id).await?,
            PaymentResult::Declined { reason } => {
                let now = Timestamp::now();
                self.risk.record_failure(&saga.user_id, &saga.order_id, now);
                self.fail_order(state, OrderStatus::PaymentFailed, reason)
                    .await?;
            }
            // A resumed checkout whose order already ended (cancelled,
            // expired) with nothing charged: give its stock back now.
            PaymentResult::NoAnswer if state.order.as_ref().is_some_and(|o| !waiting(o)) => {
                self.release_and_unlock(state).await?;
                return self.current_order(state, saga).await.map(Some);
            }
            // The order keeps its reservations until its deadline; the
            // cart is the buyer's again.
            PaymentResult::NoAnswer => {
                self.unlock_cart(saga).await?;
                return self.current_order(state, saga).await.map(Some);
            }
        }
        Ok(None)
    }

    /// Ends the order as `status` with `reason` (payment failed), logging
    /// the `Failed` step with it.
    pub(super) async fn fail_order(
        &self,
        state: &mut CheckoutState,
        status: OrderStatus,
        reason: String,
    ) -> Result<(), CheckoutError> {
        let saga = state.saga().clone();
        let change = Change {
            status: Some(status),
            payment_status: Some(PaymentStatus::Failed),
            reason: Some(reason),
            ..Change::default()
        };
        let rider = saga.rider_at(Step::Failed)?;
        let updated = retrying(|| {
            self.orders
                .update(&saga.order_id, change.clone(), Some(rider.clone()))
        })
        .await;
        match updated {
            Ok(order) => state.order = Some(order),
            // Already ended another way (expired, cancelled): just log it.
            Err(OrderError::InvalidTransition(_)) => {
                self.store
                    .write(move |tx| {
                        tx.ride(&rider);
                        Ok::<_, StorageError>(())
                    })
                    .await?;
            }
            Err(e) => return Err(e.into()),
        }
        state.set_step(Step::Failed);
        Ok(())
    }

    /// Releases every line's reservation and unlocks the cart, ending the log.
    pub(super) async fn release_and_unlock(
        &self,
        state: &mut CheckoutState,
    ) -> Result<(), CheckoutError> {
        let saga = state.saga().clone();
        for line in &saga.lines {
            retrying(|| self.inventory.release(&line.variant_id, &saga.checkout_id)).await?;
        }
        self.unlock_cart(&saga).await
    }

    /// Gives the cart back to the buyer as it is, ending the log.
    async fn unlock_cart(&self, saga: &Saga) -> Result<(), CheckoutError> {
        self.end_cart_checkout(saga, false).await
    }

    /// Empties the cart (the order is confirmed), ending the log.
    async fn clear_cart(&self, saga: &Saga) -> Result<(), CheckoutError> {
        self.end_cart_checkout(saga, true).await
    }

    /// Drops the cart's lock, emptying it when `clear`; the log's end rides
    /// with it.
    async fn end_cart_checkout(&self, saga: &Saga, clear: bool) -> Result<(), CheckoutError> {
        let rider = saga.rider_done();
        retrying(|| {
            self.carts
                .end_checkout(&saga.cart_id, &saga.checkout_id, clear, Some(rider.clone()))
        })
        .await?;
        Ok(())
    }

    /// The order as this checkout last saw it, or as stored.
    async fn current_order(
        &self,
        state: &mut CheckoutState,
        saga: &Saga,
    ) -> Result<Order, CheckoutError> {
        if let Some(order) = &state.order {
            return Ok(order.clone());
        }
        retrying(|| self.orders.get(&saga.order_id))
            .await?
            .ok_or_else(|| CheckoutError::Unavailable("the order is missing".into()))
    }
}

/// Whether the order still waits for its payment.
fn waiting(order: &Order) -> bool {
    order.status == OrderStatus::PaymentPending
}

/// Whether the order was ever confirmed: only its checkout confirms it,
/// after the charge and every commit (a later cancel refunds on its own).
pub(super) fn was_confirmed(order: &Order) -> bool {
    order
        .history
        .iter()
        .any(|t| t.status == OrderStatus::Confirmed)
}
