//! The step only logs left by the previous release still hold: that release
//! stored the order `CREATED` and decided risk afterwards (log at
//! `OrderCreated`). After an upgrade such a log is still replayed; this is
//! its one step, called from [`CheckoutEntity::drive`]. (Its other own step,
//! `Confirmed`, is also where the live path stands after a confirmation, so
//! the cart's clearing stays in `steps.rs`.)

use super::retry::retrying;
use super::saga::Step;
use super::{CheckoutEntity, CheckoutError, CheckoutState, Progress};
use crate::actors::order::{Change, OrderError};
use crate::domain::order::OrderStatus;

impl CheckoutEntity {
    /// An order stored `CREATED` by the previous release: decide risk (a
    /// checkout without its card cannot be charged, so it is cancelled),
    /// then move it to `PAYMENT_PENDING` with the log at `Charging`.
    pub(super) async fn resume_created(
        &self,
        state: &mut CheckoutState,
        has_card: bool,
    ) -> Result<(), CheckoutError> {
        let saga = state.saga().clone();
        let declined = match has_card {
            false => Some("the checkout was interrupted before payment".to_owned()),
            true => self.risk.assess(&saga.user_id, saga.amount).await?.err(),
        };
        if let Some(reason) = declined {
            let status = match has_card {
                false => OrderStatus::Cancelled,
                true => OrderStatus::PaymentFailed,
            };
            return self.fail_order(state, status, reason).await;
        }
        let rider = saga.rider_at(Step::Charging)?;
        let change = Change::to(OrderStatus::PaymentPending);
        let updated = retrying(|| {
            self.orders
                .update(&saga.order_id, change.clone(), Some(rider.clone()))
        })
        .await;
        match updated {
            Ok(order) => {
                state
                    .progress
                    .send_replace(Progress::AwaitingPayment(order.clone()));
                state.order = Some(order);
                state.set_step(Step::Charging);
                Ok(())
            }
            // The buyer cancelled the order a moment ago: nothing is
            // charged; give everything back.
            Err(OrderError::InvalidTransition(_)) => {
                state.order = retrying(|| self.orders.get(&saga.order_id)).await?;
                let reason = "cancelled before payment".into();
                self.fail_order(state, OrderStatus::PaymentFailed, reason)
                    .await
            }
            Err(e) => Err(e.into()),
        }
    }
}
