//! The saga's steps after the log exists: reservations and the order, the
//! drive from one logged step to the next, and each compensation.

use std::time::Duration;

use super::saga::{Saga, Step};
use super::{
    retryable, CheckoutEntity, CheckoutError, CheckoutRequest, CheckoutState, Progress, ShortLine,
};
use crate::actors::inventory::InventoryError;
use crate::actors::order::{Change, OrderError};
use crate::domain::fulfilment::parts_for;
use crate::domain::order::{Order, OrderStatus, PaymentStatus, Transition};
use crate::domain::Timestamp;
use crate::payments::{ChargeOutcome, ChargeRequest, PaymentResult};
use crate::storage::StorageError;

impl CheckoutEntity {
    /// Reserves every line (all or nothing) and creates the order.
    pub(super) async fn reserve_and_create(
        &self,
        state: &mut CheckoutState,
        request: &CheckoutRequest,
    ) -> Result<(), CheckoutError> {
        let saga = state.saga.clone().expect("the log exists");
        // The log's first entry rides with every reservation, so it exists
        // whenever any reservation does (and costs no write of its own).
        let begun = saga.rider_at(Step::Reserving)?;
        let mut short = Vec::new();
        let mut failure = None;
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
                Err(InventoryError::Insufficient { available }) => {
                    short.push(ShortLine {
                        item_id: line.item_id.clone(),
                        variant_id: line.variant_id.clone(),
                        requested: line.quantity,
                        available,
                    });
                }
                Err(e) => {
                    failure = Some(CheckoutError::from(e));
                    break;
                }
            }
        }
        if !short.is_empty() || failure.is_some() {
            self.finish_failed(state).await?;
            return Err(failure.unwrap_or(CheckoutError::OutOfStock(short)));
        }
        // Risk is decided before the order is stored, so the order is
        // stored once, already past `CREATED` (its history and events keep
        // both states): waiting for payment with the log at `Charging`, or
        // refused by a rule with the log at `Failed`.
        let decline = match self.risk.assess(&saga.user_id, saga.amount).await {
            Ok(decline) => decline.err(),
            Err(e) => {
                self.finish_failed(state).await?;
                return Err(e.into());
            }
        };
        let now = Timestamp::now();
        let mut order = Order {
            id: saga.order_id.clone(),
            user_id: saga.user_id.clone(),
            checkout_id: saga.checkout_id.clone(),
            lines: saga.lines.clone(),
            amount: saga.amount,
            currency: saga.currency.clone(),
            status: OrderStatus::Created,
            payment_status: PaymentStatus::Pending,
            payment_txn_id: None,
            card_last4: saga.card_last4.clone(),
            failure_reason: None,
            stock_to_return: false,
            payment_check_due: false,
            shipping_address: request.shipping_address.clone(),
            expires_at: saga.deadline,
            history: vec![Transition {
                status: OrderStatus::Created,
                at: now,
            }],
            created_at: now,
            updated_at: now,
            fulfilment: parts_for(&saga.lines, now),
        };
        let step = match decline {
            None => {
                order.status = OrderStatus::PaymentPending;
                Step::Charging
            }
            Some(reason) => {
                order.status = OrderStatus::PaymentFailed;
                order.payment_status = PaymentStatus::Failed;
                order.failure_reason = Some(reason);
                Step::Failed
            }
        };
        order.history.push(Transition {
            status: order.status,
            at: now,
        });
        let rider = saga.rider_at(step.clone())?;
        match retrying!(self.orders.create(order.clone(), Some(rider.clone())).await) {
            Ok(order) => {
                // A retried create returns the stored order, which the
                // buyer may have cancelled meanwhile: never charge for it.
                let cancelled =
                    step == Step::Charging && order.status != OrderStatus::PaymentPending;
                if step == Step::Charging && !cancelled {
                    state
                        .progress
                        .send_replace(Progress::AwaitingPayment(order.clone()));
                }
                state.order = Some(order);
                set_step(state, step);
                if cancelled {
                    self.fail_order(
                        state,
                        OrderStatus::PaymentFailed,
                        "cancelled before payment".into(),
                    )
                    .await?;
                }
                Ok(())
            }
            Err(e) => {
                // The create may still be applied (a call that timed out):
                // cancelling through the same actor queues behind it, so no
                // order is left waiting for a payment nobody will make.
                let abandon = Change {
                    status: Some(OrderStatus::Cancelled),
                    payment_status: Some(PaymentStatus::Failed),
                    reason: Some("the checkout could not complete".into()),
                    ..Change::default()
                };
                match retrying!(
                    self.orders
                        .update(&saga.order_id, abandon.clone(), None)
                        .await
                ) {
                    Ok(_) | Err(OrderError::NotFound | OrderError::InvalidTransition(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                self.finish_failed(state).await?;
                Err(e.into())
            }
        }
    }

    /// Runs the steps from the log's current one to the end.
    pub(super) async fn drive(
        &self,
        state: &mut CheckoutState,
        mut card_no: Option<String>,
    ) -> Result<Order, CheckoutError> {
        loop {
            let saga = state.saga.clone().expect("the log exists");
            match saga.step {
                Step::Reserving => {
                    // Only a resumed checkout is here: no order exists, so
                    // give back whatever was reserved.
                    self.finish_failed(state).await?;
                    return Err(CheckoutError::Unavailable(
                        "the checkout was interrupted before its order existed".into(),
                    ));
                }
                // Only a log left by an earlier release, which stored the
                // order `CREATED` and decided risk afterwards.
                Step::OrderCreated => {
                    let decline = match card_no {
                        None => Some("the checkout was interrupted before payment".to_owned()),
                        Some(_) => self.risk.assess(&saga.user_id, saga.amount).await?.err(),
                    };
                    match decline {
                        Some(reason) => {
                            let status = if card_no.is_none() {
                                OrderStatus::Cancelled
                            } else {
                                OrderStatus::PaymentFailed
                            };
                            self.fail_order(state, status, reason).await?;
                        }
                        None => {
                            let rider = saga.rider_at(Step::Charging)?;
                            match retrying!(
                                self.orders
                                    .update(
                                        &saga.order_id,
                                        Change::to(OrderStatus::PaymentPending),
                                        Some(rider.clone()),
                                    )
                                    .await
                            ) {
                                Ok(order) => {
                                    state
                                        .progress
                                        .send_replace(Progress::AwaitingPayment(order.clone()));
                                    state.order = Some(order);
                                    set_step(state, Step::Charging);
                                }
                                // The buyer cancelled the order a moment ago:
                                // nothing is charged; give everything back.
                                Err(OrderError::InvalidTransition(_)) => {
                                    state.order = retrying!(self.orders.get(&saga.order_id).await)?;
                                    self.fail_order(
                                        state,
                                        OrderStatus::PaymentFailed,
                                        "cancelled before payment".into(),
                                    )
                                    .await?;
                                }
                                Err(e) => return Err(e.into()),
                            }
                        }
                    }
                }
                // The confirmation does not move the log (the cart's
                // clearing ends it): an order that was confirmed is past
                // its charge and its commits; only the cart is left.
                Step::Charging if state.order.as_ref().is_some_and(was_confirmed) => {
                    set_step(state, Step::Confirmed);
                }
                Step::Charging => {
                    let result = match card_no.take() {
                        Some(card_no) => {
                            self.payments
                                .charge(ChargeRequest {
                                    order_id: saga.order_id.clone(),
                                    amount: saga.amount,
                                    currency: saga.currency.clone(),
                                    payment_type: "CARD".into(),
                                    card_no,
                                })
                                .await
                        }
                        None => match self.payments.status(&saga.order_id).await {
                            Ok(Some(record)) => match record.outcome {
                                ChargeOutcome::Approved(txn_id) => {
                                    PaymentResult::Approved { txn_id }
                                }
                                ChargeOutcome::Declined(reason) => {
                                    PaymentResult::Declined { reason }
                                }
                            },
                            Ok(None) => PaymentResult::NoAnswer,
                            // Unknown: keep the log; the next sweep asks again.
                            Err(e) => {
                                return Err(CheckoutError::Unavailable(format!(
                                    "the gateway could not say what happened: {e}"
                                )))
                            }
                        },
                    };
                    match result {
                        PaymentResult::Approved { txn_id } => {
                            self.settle_paid(state, &saga, txn_id).await?;
                        }
                        PaymentResult::Declined { reason } => {
                            self.risk.record_failure(
                                &saga.user_id,
                                &saga.order_id,
                                Timestamp::now(),
                            );
                            self.fail_order(state, OrderStatus::PaymentFailed, reason)
                                .await?;
                        }
                        // A resumed checkout whose order already ended
                        // (cancelled, expired) with nothing charged: give
                        // its stock back now.
                        PaymentResult::NoAnswer
                            if state
                                .order
                                .as_ref()
                                .is_some_and(|o| o.status != OrderStatus::PaymentPending) =>
                        {
                            self.finish_failed(state).await?;
                            return self.current_order(state, &saga).await;
                        }
                        PaymentResult::NoAnswer => {
                            // The order keeps its reservations until its
                            // deadline; the cart is the buyer's again.
                            let rider = saga.rider_done();
                            retrying!(
                                self.carts
                                    .actors()
                                    .end_checkout(
                                        &saga.cart_id,
                                        &saga.checkout_id,
                                        false,
                                        Some(rider.clone()),
                                    )
                                    .await
                            )?;
                            return self.current_order(state, &saga).await;
                        }
                    }
                }
                Step::Confirmed => {
                    let rider = saga.rider_done();
                    retrying!(
                        self.carts
                            .actors()
                            .end_checkout(
                                &saga.cart_id,
                                &saga.checkout_id,
                                true,
                                Some(rider.clone())
                            )
                            .await
                    )?;
                    return self.current_order(state, &saga).await;
                }
                Step::Failed => {
                    self.finish_failed(state).await?;
                    return self.current_order(state, &saga).await;
                }
            }
        }
    }

    /// Ends the order as `status` with `reason` (payment failed), logging
    /// the `Failed` step with it.
    async fn fail_order(
        &self,
        state: &mut CheckoutState,
        status: OrderStatus,
        reason: String,
    ) -> Result<(), CheckoutError> {
        let saga = state.saga.clone().expect("the log exists");
        let change = Change {
            status: Some(status),
            payment_status: Some(PaymentStatus::Failed),
            reason: Some(reason),
            ..Change::default()
        };
        let rider = saga.rider_at(Step::Failed)?;
        match retrying!(
            self.orders
                .update(&saga.order_id, change.clone(), Some(rider.clone()))
                .await
        ) {
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
        set_step(state, Step::Failed);
        Ok(())
    }

    /// Releases every line and unlocks the cart, ending the log.
    async fn finish_failed(&self, state: &mut CheckoutState) -> Result<(), CheckoutError> {
        let saga = state.saga.clone().expect("the log exists");
        for line in &saga.lines {
            retrying!(
                self.inventory
                    .release(&line.variant_id, &saga.checkout_id)
                    .await
            )?;
        }
        let rider = saga.rider_done();
        retrying!(
            self.carts
                .actors()
                .end_checkout(&saga.cart_id, &saga.checkout_id, false, Some(rider.clone()))
                .await
        )?;
        Ok(())
    }

    async fn current_order(
        &self,
        state: &mut CheckoutState,
        saga: &Saga,
    ) -> Result<Order, CheckoutError> {
        if let Some(order) = &state.order {
            return Ok(order.clone());
        }
        retrying!(self.orders.get(&saga.order_id).await)?
            .ok_or_else(|| CheckoutError::Unavailable("the order is missing".into()))
    }
}

/// Whether the order was ever confirmed: only its checkout confirms it,
/// after the charge and every commit (a later cancel refunds on its own).
pub(super) fn was_confirmed(order: &Order) -> bool {
    order
        .history
        .iter()
        .any(|t| t.status == OrderStatus::Confirmed)
}

pub(super) fn set_step(state: &mut CheckoutState, step: Step) {
    if let Some(saga) = state.saga.as_mut() {
        saga.step = step;
    }
}
