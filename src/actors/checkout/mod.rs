//! The checkout coordinator: one actor per checkout (saga instance), driving
//! the steps of ARCHITECTURE.md by messages to the cart, inventory and order
//! actors and the payment client. It uses no service: it holds the cart
//! actors itself and prices with the domain's [`Pricing::price`].
//!
//! ```text
//! lock cart → price check → reserve each line, SKU order (+log Reserving)
//!   → risk → order stored once, CREATED → PAYMENT_PENDING (+log Charging)
//!            (a rule declined: CREATED → PAYMENT_FAILED (+log Failed) → release → unlock)
//!   → charge → approved: commit stock (+log committed, per line) → CONFIRMED with payment
//!              facts (the log stays: a confirmed order says only the cart is left)
//!              → empty cart (+log end)
//!            → declined: PAYMENT_FAILED (+log Failed) → release stock → unlock cart (+log end)
//!            → no answer: unlock cart (+log end); the order's own deadline expires it
//! ```
//!
//! The log ([`saga::Saga`], the `sagas` tree) is written before each step
//! begins; after the first entry, each entry *rides* in the same atomic
//! write as the previous step's own change (the order's creation, the
//! cart's clearing), so the log never disagrees with what happened and
//! costs no write of its own. Every step is idempotent by checkout id, so
//! at start-up [`CheckoutCoordinators::recover`] hands each unfinished log to a fresh
//! coordinator, which finishes what was paid and undoes what was not. The
//! card number lives only in the live coordinator's memory: a checkout
//! interrupted before its charge was decided asks the gateway (by order id)
//! what happened instead of charging again.
//!
//! The files, in the order a checkout meets them:
//!
//! - `mod.rs`: the request, the messages, the actor and its state.
//! - `handle.rs`: [`CheckoutCoordinators`], the handle (start, follow,
//!   recover) and its [`CoordinatorDeps`].
//! - `start.rs`: the live start (lock the cart, price it, check the buyer's
//!   amount, plan the log) and the resume from a log.
//! - `reserve.rs`: reserve every line, decide risk, store the order.
//! - `steps.rs`: the drive from one logged step to the next: charge, settle,
//!   decline, release, unlock or clear the cart.
//! - `paid.rs`: after an approved charge: commit the stock and confirm, or
//!   refund a charge that came too late.
//! - `legacy.rs`: the step only logs of the previous release still hold.
//! - `saga.rs`: the log record; `risk.rs`: the risk rules; `error.rs`:
//!   [`CheckoutError`]; `retry.rs`: the retry around every participant call.

mod error;
mod handle;
mod legacy;
mod paid;
mod reserve;
mod retry;
pub mod risk;
pub mod saga;
mod start;
mod steps;

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashSet;
use ractor::RpcReplyPort;
use tokio::sync::watch;

use super::cart::CartActors;
use super::inventory::InventoryActors;
use super::order::OrderActors;
use super::runtime::{Entity, EntityError, EntityRef};
use crate::domain::cart::Pricing;
use crate::domain::order::Order;
use crate::domain::user::Address;
use crate::payments::Payments;
use crate::storage::Store;
use risk::Risk;
use saga::Saga;

pub use error::{CheckoutError, ShortLine};
pub use handle::{CheckoutCoordinators, CoordinatorDeps};

/// A buyer's checkout, as asked for.
#[derive(Debug, Clone)]
pub struct CheckoutRequest {
    /// The checkout (saga) id.
    pub checkout_id: String,
    /// The order it will create.
    pub order_id: String,
    /// The buyer (who owns the cart).
    pub user_id: String,
    /// The cart.
    pub cart_id: String,
    /// What the buyer expects to pay.
    pub amount: i64,
    /// The currency the buyer expects, if given.
    pub currency: Option<String>,
    /// `CARD`, ...
    pub payment_type: String,
    /// The card number (kept in memory only).
    pub card_no: String,
    /// Where to ship.
    pub shipping_address: Option<Address>,
}

/// What a waiting caller sees of a checkout.
#[derive(Debug, Clone)]
pub enum Progress {
    /// Before the order is waiting for payment.
    Running,
    /// The order exists and waits for the gateway.
    AwaitingPayment(Order),
    /// The checkout is over: the order in its final (or still pending,
    /// when the gateway never answered) state, or why there is none.
    Finished(Result<Order, CheckoutError>),
}

/// Messages of the coordinator.
pub enum CheckoutMsg {
    /// Run a new checkout; answered at once with a view of its progress.
    Start(
        Box<CheckoutRequest>,
        RpcReplyPort<watch::Receiver<Progress>>,
    ),
    /// Resume this checkout from its log (after a restart, or a stall).
    Resume(RpcReplyPort<watch::Receiver<Progress>>),
}

/// What a coordinator works with.
pub struct CheckoutEntity {
    store: Store,
    carts: CartActors,
    pricing: Pricing,
    inventory: InventoryActors,
    orders: OrderActors,
    payments: Payments,
    risk: Risk,
    payment_window: Duration,
    running: Arc<DashSet<String>>,
}

/// A live checkout.
pub struct CheckoutState {
    id: String,
    saga: Option<Saga>,
    order: Option<Order>,
    progress: watch::Sender<Progress>,
}

impl Entity for CheckoutEntity {
    const KIND: &'static str = "checkout";
    type Msg = CheckoutMsg;
    type State = CheckoutState;

    async fn activate(&self, id: &str, _: &EntityRef<Self>) -> Result<CheckoutState, EntityError> {
        Ok(CheckoutState {
            id: id.to_owned(),
            saga: None,
            order: None,
            progress: watch::channel(Progress::Running).0,
        })
    }

    async fn handle(
        &self,
        message: CheckoutMsg,
        state: &mut CheckoutState,
        myself: &EntityRef<Self>,
    ) -> Result<(), EntityError> {
        let started = std::time::Instant::now();
        let result = match message {
            CheckoutMsg::Start(request, reply) => {
                let _ = reply.send(state.progress.subscribe());
                if !self.begins(state) {
                    return Ok(());
                }
                self.start(*request, state).await
            }
            CheckoutMsg::Resume(reply) => {
                let _ = reply.send(state.progress.subscribe());
                if !self.begins(state) {
                    return Ok(());
                }
                self.resume(state).await
            }
        };
        record_outcome(&result, started);
        state.progress.send_replace(Progress::Finished(result));
        self.running.remove(&state.id);
        myself.passivate();
        Ok(())
    }
}

impl CheckoutEntity {
    /// Whether this message starts the checkout's run: a checkout runs once
    /// per activation (a repeated message just watches it).
    fn begins(&self, state: &CheckoutState) -> bool {
        let fresh = state.saga.is_none() && matches!(*state.progress.borrow(), Progress::Running);
        fresh && self.running.insert(state.id.clone())
    }
}

impl CheckoutState {
    /// The log; every step after the start has one.
    fn saga(&self) -> &Saga {
        self.saga.as_ref().expect("the log exists")
    }

    /// Moves the in-memory log to `step` (its stored copy moved with the
    /// step's own write).
    fn set_step(&mut self, step: saga::Step) {
        if let Some(saga) = self.saga.as_mut() {
            saga.step = step;
        }
    }
}

/// Counts the checkout's outcome and times it.
fn record_outcome(result: &Result<Order, CheckoutError>, started: std::time::Instant) {
    let outcome = match result {
        Ok(order) => order.status.as_str(),
        Err(CheckoutError::OutOfStock(_)) => "OUT_OF_STOCK",
        Err(CheckoutError::PriceChanged { .. }) => "PRICE_CHANGED",
        Err(CheckoutError::InProgress) => "CHECKOUT_IN_PROGRESS",
        Err(CheckoutError::EmptyCart) => "EMPTY_CART",
        Err(_) => "ERROR",
    };
    metrics::counter!("agora_checkout_outcomes_total", "outcome" => outcome).increment(1);
    metrics::histogram!("agora_checkout_seconds").record(started.elapsed().as_secs_f64());
}
