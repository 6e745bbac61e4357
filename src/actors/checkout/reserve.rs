//! The steps between the plan and the charge: reserve every line, decide
//! risk, store the order once (waiting for payment, or refused by a rule).

use super::retry::retrying;
use super::saga::Step;
use super::{CheckoutEntity, CheckoutError, CheckoutRequest, CheckoutState, Progress, ShortLine};
use crate::actors::inventory::InventoryError;
use crate::actors::order::{Change, OrderError};
use crate::domain::order::{NewOrder, Order, OrderStatus, PaymentStatus};
use crate::domain::stock::StockError;
use crate::domain::Timestamp;

impl CheckoutEntity {
    /// Reserves every line, in SKU order, all or nothing: a short line or a
    /// failure gives back what was reserved and unlocks the cart.
    pub(super) async fn reserve(&self, state: &mut CheckoutState) -> Result<(), CheckoutError> {
        let saga = state.saga().clone();
        // The log's first entry rides with every reservation, so it exists
        // whenever any reservation does (and costs no write of its own).
        let begun = saga.rider_at(Step::Reserving)?;
        let mut short = Vec::new();
        for line in &saga.lines {
            let reserved = self
                .inventory
                .reserve(
                    &line.variant_id,
                    &saga.checkout_id,
                    line.quantity,
                    saga.deadline,
                    Some(begun.clone()),
                )
                .await;
            match reserved {
                Ok(_) => {}
                Err(InventoryError::Refused(StockError::Insufficient { available })) => {
                    short.push(ShortLine {
                        item_id: line.item_id.clone(),
                        variant_id: line.variant_id.clone(),
                        requested: line.quantity,
                        available,
                    })
                }
                Err(e) => {
                    self.release_and_unlock(state).await?;
                    return Err(e.into());
                }
            }
        }
        if !short.is_empty() {
            self.release_and_unlock(state).await?;
            return Err(CheckoutError::OutOfStock(short));
        }
        Ok(())
    }

    /// The risk rules' verdict: `Some(reason)` if they decline. Risk is
    /// decided before the order is stored, so the order is stored once.
    pub(super) async fn assess_risk(
        &self,
        state: &mut CheckoutState,
    ) -> Result<Option<String>, CheckoutError> {
        let saga = state.saga();
        let assessed = self.risk.assess(&saga.user_id, saga.amount).await;
        match assessed {
            Ok(verdict) => Ok(verdict.err()),
            Err(e) => {
                self.release_and_unlock(state).await?;
                Err(e.into())
            }
        }
    }

    /// Stores the order once, already past `CREATED` (its history and
    /// events keep both states): waiting for payment with the log at
    /// `Charging`, or refused by a rule (`declined`) with the log at `Failed`.
    pub(super) async fn create_order(
        &self,
        state: &mut CheckoutState,
        request: &CheckoutRequest,
        declined: Option<String>,
    ) -> Result<(), CheckoutError> {
        let saga = state.saga().clone();
        let step = match declined {
            None => Step::Charging,
            Some(_) => Step::Failed,
        };
        let new = NewOrder {
            id: saga.order_id.clone(),
            user_id: saga.user_id.clone(),
            checkout_id: saga.checkout_id.clone(),
            lines: saga.lines.clone(),
            amount: saga.amount,
            currency: saga.currency.clone(),
            card_last4: saga.card_last4.clone(),
            shipping_address: request.shipping_address.clone(),
            expires_at: saga.deadline,
        };
        let order = Order::placed(new, declined, Timestamp::now());
        let rider = saga.rider_at(step.clone())?;
        match retrying(|| self.orders.create(order.clone(), Some(rider.clone()))).await {
            Ok(stored) => self.order_stored(state, stored, step).await,
            Err(e) => {
                self.abandon_order(state).await?;
                Err(e.into())
            }
        }
    }

    /// The order is stored and the log at `step`: show it waiting for
    /// payment, unless the buyer already cancelled it.
    async fn order_stored(
        &self,
        state: &mut CheckoutState,
        order: Order,
        step: Step,
    ) -> Result<(), CheckoutError> {
        // A retried create returns the stored order, which the buyer may
        // have cancelled meanwhile: never charge for it.
        let charging = step == Step::Charging;
        let cancelled = charging && order.status != OrderStatus::PaymentPending;
        if charging && !cancelled {
            state
                .progress
                .send_replace(Progress::AwaitingPayment(order.clone()));
        }
        state.order = Some(order);
        state.set_step(step);
        if cancelled {
            let reason = "cancelled before payment".into();
            self.fail_order(state, OrderStatus::PaymentFailed, reason)
                .await?;
        }
        Ok(())
    }

    /// The order's creation failed, but it may still be applied (a call
    /// that timed out): cancelling through the same actor queues behind it,
    /// so no order is left waiting for a payment nobody will make. Then
    /// everything is given back.
    async fn abandon_order(&self, state: &mut CheckoutState) -> Result<(), CheckoutError> {
        let order_id = state.saga().order_id.clone();
        let abandon = Change {
            status: Some(OrderStatus::Cancelled),
            payment_status: Some(PaymentStatus::Failed),
            reason: Some("the checkout could not complete".into()),
            ..Change::default()
        };
        match retrying(|| self.orders.update(&order_id, abandon.clone(), None)).await {
            Ok(_) | Err(OrderError::NotFound | OrderError::InvalidTransition(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.release_and_unlock(state).await
    }
}
