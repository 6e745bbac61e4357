//! The checkout coordinator: one actor per checkout (saga instance), driving
//! the steps of ARCHITECTURE.md by messages to the cart, inventory and order
//! actors and the payment client.
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

pub mod risk;
pub mod saga;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashSet;
use ractor::RpcReplyPort;
use tokio::sync::watch;

use super::cart::CartError;
use super::inventory::{InventoryActors, InventoryError};
use super::order::{OrderActors, OrderError};
use super::runtime::{Entity, EntityError, EntityRef};
use crate::actors::checkout::risk::Risk;
use crate::domain::order::{card_last4, Order, OrderLine};
use crate::domain::user::Address;
use crate::domain::Timestamp;
use crate::payments::Payments;
use crate::services::cart::{CartService, CartServiceError};
use crate::storage::{StorageError, Store, TreeName};
use saga::{Saga, Step};

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

/// A line that could not be reserved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortLine {
    /// The item.
    pub item_id: String,
    /// The variant.
    pub variant_id: String,
    /// Units asked for.
    pub requested: i64,
    /// Units available now.
    pub available: i64,
}

/// Why a checkout ended before creating an order.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CheckoutError {
    /// The cart has no lines.
    #[error("the cart is empty")]
    EmptyCart,
    /// Another checkout holds the cart.
    #[error("the cart is already being checked out")]
    InProgress,
    /// The buyer's amount is not the cart's total.
    #[error("the cart's total is {expected}")]
    PriceChanged {
        /// The total the cart would charge.
        expected: i64,
    },
    /// The buyer's currency is not the cart's.
    #[error("the cart is in {cart}")]
    CurrencyMismatch {
        /// The cart's currency.
        cart: String,
    },
    /// Some lines lack stock; nothing stays reserved.
    #[error("some lines are out of stock")]
    OutOfStock(Vec<ShortLine>),
    /// A participant failed; whatever the checkout held was given back (or
    /// is finished by recovery).
    #[error("checkout could not complete: {0}")]
    Unavailable(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<EntityError> for CheckoutError {
    fn from(e: EntityError) -> Self {
        match e {
            EntityError::Storage(e) => CheckoutError::Storage(e),
            other => CheckoutError::Unavailable(other.to_string()),
        }
    }
}

impl From<CartError> for CheckoutError {
    fn from(e: CartError) -> Self {
        match e {
            CartError::Empty => CheckoutError::EmptyCart,
            CartError::InProgress | CartError::Rule(_) => CheckoutError::InProgress,
            CartError::Storage(e) => CheckoutError::Storage(e),
            other => CheckoutError::Unavailable(other.to_string()),
        }
    }
}

impl From<CartServiceError> for CheckoutError {
    fn from(e: CartServiceError) -> Self {
        match e {
            CartServiceError::Storage(e) => CheckoutError::Storage(e),
            CartServiceError::Cart(e) => e.into(),
            other => CheckoutError::Unavailable(other.to_string()),
        }
    }
}

impl From<OrderError> for CheckoutError {
    fn from(e: OrderError) -> Self {
        match e {
            OrderError::Storage(e) => CheckoutError::Storage(e),
            other => CheckoutError::Unavailable(other.to_string()),
        }
    }
}

impl From<InventoryError> for CheckoutError {
    fn from(e: InventoryError) -> Self {
        match e {
            InventoryError::Storage(e) => CheckoutError::Storage(e),
            other => CheckoutError::Unavailable(other.to_string()),
        }
    }
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
    carts: CartService,
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
        let outcome = match &result {
            Ok(order) => order.status.as_str(),
            Err(CheckoutError::OutOfStock(_)) => "OUT_OF_STOCK",
            Err(CheckoutError::PriceChanged { .. }) => "PRICE_CHANGED",
            Err(CheckoutError::InProgress) => "CHECKOUT_IN_PROGRESS",
            Err(CheckoutError::EmptyCart) => "EMPTY_CART",
            Err(_) => "ERROR",
        };
        metrics::counter!("agora_checkout_outcomes_total", "outcome" => outcome).increment(1);
        metrics::histogram!("agora_checkout_seconds").record(started.elapsed().as_secs_f64());
        state.progress.send_replace(Progress::Finished(result));
        self.running.remove(&state.id);
        myself.passivate();
        Ok(())
    }
}

/// The body of every retried participant call: a few attempts with
/// backoff, for failures that are worth retrying (an actor busy or slow).
macro_rules! retrying {
    ($call:expr) => {{
        let mut delay = Duration::from_millis(20);
        let mut attempt = 0;
        loop {
            match $call {
                Err(e) if attempt < 3 && retryable(&CheckoutError::from(e.clone())) => {
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                }
                other => break other,
            }
        }
    }};
}

fn retryable(e: &CheckoutError) -> bool {
    matches!(e, CheckoutError::Unavailable(_))
}

mod handle;
mod paid;
mod steps;

pub use handle::{CheckoutCoordinators, CoordinatorDeps};

impl CheckoutEntity {
    /// Whether this message starts the checkout's run: a checkout runs once
    /// per activation (a repeated message just watches it).
    fn begins(&self, state: &CheckoutState) -> bool {
        let fresh = state.saga.is_none() && matches!(*state.progress.borrow(), Progress::Running);
        fresh && self.running.insert(state.id.clone())
    }

    /// The live path: lock, price, log, then the shared steps.
    async fn start(
        &self,
        request: CheckoutRequest,
        state: &mut CheckoutState,
    ) -> Result<Order, CheckoutError> {
        let carts = self.carts.actors();
        let cart = carts
            .begin_checkout(&request.cart_id, &request.checkout_id)
            .await?;
        // Nothing is logged yet, so the unlock is retried here; a lock that
        // still cannot be dropped lapses after the cart's lock lease.
        let unlock = || async {
            if let Err(e) = retrying!(
                carts
                    .end_checkout(&request.cart_id, &request.checkout_id, false, None)
                    .await
            ) {
                tracing::warn!(checkout = %request.checkout_id, error = %e, "unlocking the cart failed");
            }
        };
        let priced = match self.carts.price(Some(cart), None).await {
            Ok(priced) => priced,
            Err(e) => {
                unlock().await;
                return Err(e.into());
            }
        };
        let currency = priced
            .lines
            .first()
            .map(|l| l.line.currency.clone())
            .unwrap_or_default();
        let refusal = if request.amount != priced.totals.total {
            Some(CheckoutError::PriceChanged {
                expected: priced.totals.total,
            })
        } else if request
            .currency
            .as_ref()
            .is_some_and(|c| !c.eq_ignore_ascii_case(&currency))
        {
            Some(CheckoutError::CurrencyMismatch {
                cart: currency.clone(),
            })
        } else {
            let gone: Vec<ShortLine> = priced
                .lines
                .iter()
                .filter(|l| !l.for_sale)
                .map(|l| ShortLine {
                    item_id: l.line.item_id.clone(),
                    variant_id: l.line.variant_id.clone(),
                    requested: l.line.quantity,
                    available: 0,
                })
                .collect();
            (!gone.is_empty()).then_some(CheckoutError::OutOfStock(gone))
        };
        if let Some(refusal) = refusal {
            unlock().await;
            return Err(refusal);
        }
        // One line per variant, in SKU order: two checkouts reserving the
        // same SKUs take them in the same order.
        let mut merged: BTreeMap<String, OrderLine> = BTreeMap::new();
        for view in &priced.lines {
            merged
                .entry(view.line.variant_id.clone())
                .and_modify(|l| l.quantity += view.line.quantity)
                .or_insert_with(|| OrderLine {
                    item_id: view.line.item_id.clone(),
                    variant_id: view.line.variant_id.clone(),
                    seller_id: view.seller_id.clone(),
                    name: view.name.clone(),
                    quantity: view.line.quantity,
                    unit_price: view.current_price,
                });
        }
        let now = Timestamp::now();
        let window = i64::try_from(self.payment_window.as_millis()).unwrap_or(i64::MAX);
        let saga = Saga {
            checkout_id: request.checkout_id.clone(),
            order_id: request.order_id.clone(),
            user_id: request.user_id.clone(),
            cart_id: request.cart_id.clone(),
            lines: merged.into_values().collect(),
            amount: priced.totals.total,
            currency,
            card_last4: card_last4(&request.card_no),
            deadline: Timestamp(now.0.saturating_add(window)),
            step: Step::Reserving,
            started_at: now,
            committed: Vec::new(),
            returned: Vec::new(),
        };
        state.saga = Some(saga);
        self.reserve_and_create(state, &request).await?;
        self.drive(state, Some(request.card_no)).await
    }

    /// Recovery: load the log and finish or undo it.
    async fn resume(&self, state: &mut CheckoutState) -> Result<Order, CheckoutError> {
        let key = state.id.clone().into_bytes();
        let saga = self
            .store
            .write(move |tx| tx.get::<Saga>(TreeName::Sagas, key.clone()))
            .await?;
        let Some(saga) = saga else {
            return Err(CheckoutError::Unavailable("no such checkout".into()));
        };
        tracing::info!(checkout = %saga.checkout_id, step = ?saga.step, "resuming an interrupted checkout");
        if saga.step != Step::Reserving {
            state.order = retrying!(self.orders.get(&saga.order_id).await)?;
        }
        // The cart's lock did not survive the restart: take it again, so the
        // buyer cannot change (or check out again) what this checkout is
        // finishing. Best effort: an emptied cart has nothing to protect.
        let _ = self
            .carts
            .actors()
            .begin_checkout(&saga.cart_id, &saga.checkout_id)
            .await;
        state.saga = Some(saga);
        self.drive(state, None).await
    }
}
