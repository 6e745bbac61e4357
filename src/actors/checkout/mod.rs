//! The checkout coordinator: one actor per checkout (saga instance), driving
//! the steps of ARCHITECTURE.md by messages to the cart, inventory and order
//! actors and the payment client.
//!
//! ```text
//! lock cart → price check → reserve each line, SKU order (+log Reserving)
//!   → order CREATED (+log OrderCreated) → risk → order PAYMENT_PENDING (+log Charging)
//!   → charge → approved: commit stock → CONFIRMED with payment facts (+log Confirmed) → empty cart (+log end)
//!            → declined: PAYMENT_FAILED (+log Failed) → release stock → unlock cart (+log end)
//!            → no answer: unlock cart (+log end); the order's own deadline expires it
//! ```
//!
//! The log ([`saga::Saga`], the `sagas` tree) is written before each step
//! begins; after the first entry, each entry *rides* in the same atomic
//! write as the previous step's own change (the order's transition, the
//! cart's clearing), so the log never disagrees with what happened and
//! costs no write of its own. Every step is idempotent by checkout id, so
//! at start-up [`Checkouts::recover`] hands each unfinished log to a fresh
//! coordinator, which finishes what was paid and undoes what was not. The
//! card number lives only in the live coordinator's memory: a checkout
//! interrupted before its charge was decided asks the gateway (by order id)
//! what happened instead of charging again.

pub mod saga;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashSet;
use ractor::RpcReplyPort;
use tokio::sync::watch;

use super::cart::CartError;
use super::inventory::{Command, Inventory, InventoryError};
use super::order::{Change, OrderActors, OrderError};
use super::runtime::{Entity, EntityError, EntityRef, Region, RegionSettings};
use crate::carts::{Carts, CartsError};
use crate::domain::order::{card_last4, Order, OrderLine, OrderStatus, PaymentStatus, Transition};
use crate::domain::user::Address;
use crate::domain::Timestamp;
use crate::payments::{ChargeOutcome, ChargeRequest, PaymentResult, Payments};
use crate::risk::Risk;
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

impl From<CartsError> for CheckoutError {
    fn from(e: CartsError) -> Self {
        match e {
            CartsError::Storage(e) => CheckoutError::Storage(e),
            CartsError::Cart(e) => e.into(),
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
    carts: Carts,
    inventory: Inventory,
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

    /// Reserves every line (all or nothing) and creates the order.
    async fn reserve_and_create(
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
        let now = Timestamp::now();
        let order = Order {
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
        };
        let rider = saga.rider_at(Step::OrderCreated)?;
        match retrying!(self.orders.create(order.clone(), Some(rider.clone())).await) {
            Ok(order) => {
                state.order = Some(order);
                set_step(state, Step::OrderCreated);
                Ok(())
            }
            Err(e) => {
                // The create may still be applied (a call that timed out):
                // cancelling through the same actor queues behind it, so no
                // order is left CREATED.
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
                    Ok(_) | Err(OrderError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
                self.finish_failed(state).await?;
                Err(e.into())
            }
        }
    }

    /// Runs the steps from the log's current one to the end.
    async fn drive(
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

    /// The gateway charged: commit every line's stock, then confirm the
    /// order with its payment facts (logging `Confirmed` with it). If the
    /// order stopped waiting meanwhile (expired or cancelled, its stock
    /// released), give everything back instead. No log entry is needed
    /// between the charge and the confirmation: a resumed checkout asks the
    /// gateway, and committing again is a no-op.
    async fn settle_paid(
        &self,
        state: &mut CheckoutState,
        saga: &Saga,
        txn_id: String,
    ) -> Result<(), CheckoutError> {
        // Always commit what is still held, even for an order that stopped
        // waiting: what was committed is then certain (the log says) and is
        // given back below with the refund.
        self.commit_stock(state).await?;
        let saga_now = state.saga.clone().expect("the log exists");
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
            let rider = saga_now.rider_at(Step::Confirmed)?;
            match retrying!(
                self.orders
                    .update(&saga.order_id, change.clone(), Some(rider.clone()))
                    .await
            ) {
                Ok(order) => {
                    state.order = Some(order);
                    set_step(state, Step::Confirmed);
                    return Ok(());
                }
                // Refused: either it stopped waiting (cancelled by the
                // buyer, or expired) a moment ago, or an earlier attempt
                // that timed out did confirm it (and it may have moved on).
                Err(OrderError::InvalidTransition(_)) => {
                    let order = retrying!(self.orders.get(&saga.order_id).await)?;
                    let confirmed = order.as_ref().is_some_and(|o| {
                        matches!(
                            o.status,
                            OrderStatus::Confirmed | OrderStatus::Shipped | OrderStatus::Delivered
                        )
                    });
                    state.order = order;
                    if confirmed {
                        let rider = saga_now.rider_at(Step::Confirmed)?;
                        self.store
                            .write(move |tx| {
                                tx.ride(&rider);
                                Ok::<_, StorageError>(())
                            })
                            .await?;
                        set_step(state, Step::Confirmed);
                        return Ok(());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.refund_late(state, txn_id).await
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

    /// Commits every line's reservation not yet committed. Each commit
    /// carries the log with its line marked committed, in the SKU's own
    /// flush; a line the SKU no longer holds (its reservation lapsed or was
    /// released) is left out, and the log says so with certainty.
    async fn commit_stock(&self, state: &mut CheckoutState) -> Result<(), CheckoutError> {
        let saga = state.saga.clone().expect("the log exists");
        for line in &saga.lines {
            let current = state.saga.clone().expect("the log exists");
            if current.committed.contains(&line.variant_id) {
                continue;
            }
            let mut next = current.clone();
            next.committed.push(line.variant_id.clone());
            let rider = next.rider_at(next.step.clone())?;
            let command = Command::Commit {
                checkout_id: saga.checkout_id.clone(),
            };
            match retrying!(
                self.inventory
                    .change_with(&line.variant_id, command.clone(), Some(rider.clone()))
                    .await
            ) {
                Ok(_) => state.saga = Some(next),
                Err(InventoryError::AlreadyFinished | InventoryError::NoReservation) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// A charge that arrived after the order stopped waiting: refund it, put
    /// back the stock committed for it (each return logged with it), record
    /// `REFUNDED` (and `EXPIRED` if the order was still waiting), end as
    /// failed.
    async fn refund_late(
        &self,
        state: &mut CheckoutState,
        txn_id: String,
    ) -> Result<(), CheckoutError> {
        let saga = state.saga.clone().expect("the log exists");
        // Stock first: it does not depend on the gateway being reachable.
        for line in &saga.lines {
            let current = state.saga.clone().expect("the log exists");
            if !current.committed.contains(&line.variant_id)
                || current.returned.contains(&line.variant_id)
            {
                continue;
            }
            let mut next = current.clone();
            next.returned.push(line.variant_id.clone());
            let rider = next.rider_at(next.step.clone())?;
            let command = Command::Return {
                checkout_id: saga.checkout_id.clone(),
                quantity: line.quantity,
            };
            retrying!(
                self.inventory
                    .change_with(&line.variant_id, command.clone(), Some(rider.clone()))
                    .await
            )?;
            state.saga = Some(next);
        }
        self.payments
            .refund(&saga.order_id)
            .await
            .map_err(|e| CheckoutError::Unavailable(format!("refund failed: {e}")))?;
        let saga = state.saga.clone().expect("the log exists");
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
            match retrying!(
                self.orders
                    .update(&saga.order_id, change.clone(), Some(rider.clone()))
                    .await
            ) {
                Ok(updated) => {
                    order = Some(updated);
                    break;
                }
                Err(OrderError::InvalidTransition(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        state.order = order.or(state.order.take());
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

fn set_step(state: &mut CheckoutState, step: Step) {
    if let Some(saga) = state.saga.as_mut() {
        saga.step = step;
    }
}

/// The checkouts of this node. Cheap to clone.
#[derive(Clone)]
pub struct Checkouts {
    region: Region<CheckoutEntity>,
    store: Store,
    running: Arc<DashSet<String>>,
}

/// What [`Checkouts::start`] needs.
pub struct CheckoutDeps {
    /// Storage.
    pub store: Store,
    /// Carts (locks, prices).
    pub carts: Carts,
    /// Stock.
    pub inventory: Inventory,
    /// Orders.
    pub orders: OrderActors,
    /// The payment client.
    pub payments: Payments,
    /// The risk step.
    pub risk: Risk,
    /// How long an order may wait for payment.
    pub payment_window: Duration,
}

impl Checkouts {
    /// Starts the coordinator region.
    pub async fn start(deps: CheckoutDeps, settings: RegionSettings) -> Result<Self, EntityError> {
        let running: Arc<DashSet<String>> = Arc::default();
        let store = deps.store.clone();
        let region = Region::start(
            CheckoutEntity {
                store: deps.store,
                carts: deps.carts,
                inventory: deps.inventory,
                orders: deps.orders,
                payments: deps.payments,
                risk: deps.risk,
                payment_window: deps.payment_window,
                running: running.clone(),
            },
            settings,
        )
        .await?;
        Ok(Checkouts {
            region,
            store,
            running,
        })
    }

    /// Starts a checkout; follow it on the returned receiver.
    pub async fn begin(
        &self,
        request: CheckoutRequest,
    ) -> Result<watch::Receiver<Progress>, CheckoutError> {
        let id = request.checkout_id.clone();
        Ok(self
            .region
            .call(&id, |reply| {
                CheckoutMsg::Start(Box::new(request.clone()), reply)
            })
            .await?)
    }

    /// Whether a coordinator is running `checkout_id` now.
    pub fn is_running(&self, checkout_id: &str) -> bool {
        self.running.contains(checkout_id)
    }

    /// Whether `checkout_id` left an unfinished log.
    pub async fn is_unfinished(&self, checkout_id: &str) -> Result<bool, StorageError> {
        let key = checkout_id.as_bytes().to_vec();
        self.store
            .read(move |trees| Ok(trees.tree(TreeName::Sagas).contains_key(key)?))
            .await
    }

    /// Finishes or undoes every checkout whose log is unfinished and which
    /// no coordinator is running (all of them at start-up); returns how many.
    pub async fn recover(&self) -> Result<usize, StorageError> {
        let ids: Vec<String> = self
            .store
            .read(|trees| {
                let mut ids = Vec::new();
                for entry in trees.tree(TreeName::Sagas).iter() {
                    let (key, _) = entry?;
                    ids.push(String::from_utf8_lossy(&key).into_owned());
                }
                Ok(ids)
            })
            .await?;
        let ids: Vec<String> = ids.into_iter().filter(|id| !self.is_running(id)).collect();
        let count = ids.len();
        let resumed = futures::future::join_all(ids.into_iter().map(|id| async move {
            let mut progress = match self.region.call(&id, CheckoutMsg::Resume).await {
                Ok(progress) => progress,
                Err(e) => {
                    tracing::warn!(checkout = %id, error = %e, "could not resume a checkout");
                    return;
                }
            };
            let finished = progress
                .wait_for(|p| matches!(p, Progress::Finished(_)))
                .await
                .map(|p| p.clone());
            if let Ok(Progress::Finished(Err(e))) = finished {
                tracing::info!(checkout = %id, outcome = %e, "interrupted checkout undone");
            }
        }));
        resumed.await;
        Ok(count)
    }

    /// How many coordinators are live.
    pub fn live(&self) -> usize {
        self.region.live()
    }

    /// Stops every coordinator.
    pub async fn stop(&self) {
        self.region.stop().await;
    }
}
