//! Orders: one actor per order, owning its state machine.
//!
//! Every transition is stored (with its `order.updated` event) before the
//! actor answers. An order waiting for payment holds a timer for its
//! deadline, armed from the persisted deadline on every activation; at the
//! deadline it becomes `EXPIRED`, gives its reserved stock back, and asks the
//! gateway whether a charge went through after all (refunding it if so).
//! Orders with unfinished business (a deadline, or sold stock still to put
//! back after a cancellation) are listed in their own small tree, so a
//! restart re-activates exactly them without scanning every order.
//! Each seller's part ships and delivers on its own ([`fulfilment`]); the
//! `seller_orders` index, written with the new order, lists a seller's
//! orders.

use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::RpcReplyPort;

use super::cart::CartActors;
use super::inventory::InventoryActors;
use super::runtime::{Entity, EntityError, EntityRef};
use crate::domain::event::EventBody;
use crate::domain::order::{
    FulfilmentRefused, FulfilmentStatus, InvalidTransition, Order, OrderStatus, PaymentStatus,
};
use crate::domain::Timestamp;
use crate::payments::Payments;
use crate::storage::{Rider, StorageError, Store, TreeName, Tx};

mod endings;
mod fulfilment;
mod handle;

pub use fulfilment::seller_order_key;
pub use handle::OrderActors;

/// Why an order operation was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OrderError {
    /// The state machine does not allow the move.
    #[error(transparent)]
    InvalidTransition(#[from] InvalidTransition),
    /// A seller's fulfilment move (or a cancel after one) was refused.
    #[error(transparent)]
    Fulfilment(#[from] FulfilmentRefused),
    /// No such order.
    #[error("order not found")]
    NotFound,
    /// An order with this id exists for another checkout.
    #[error("order id already used")]
    Conflict,
    /// The gateway did not confirm a refund; nothing changed.
    #[error("the payment could not be refunded: {0}")]
    RefundFailed(String),
    /// The order's actor was overloaded, too slow, or failed.
    #[error("order unavailable: {0}")]
    Unavailable(EntityError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<EntityError> for OrderError {
    fn from(e: EntityError) -> Self {
        match e {
            EntityError::Storage(e) => OrderError::Storage(e),
            other => OrderError::Unavailable(other),
        }
    }
}

/// A change asked of an order: a status (or none: payment facts only), the
/// payment facts that come with it, and why it failed, if it did.
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// The status to move to; `None` keeps the current one.
    pub status: Option<OrderStatus>,
    /// New payment status, if it changes.
    pub payment_status: Option<PaymentStatus>,
    /// The gateway's transaction id, once known.
    pub txn_id: Option<String>,
    /// Why the order failed or ended early.
    pub reason: Option<String>,
}

impl Change {
    /// A move to `status` with nothing else.
    pub fn to(status: OrderStatus) -> Self {
        Change {
            status: Some(status),
            ..Change::default()
        }
    }
}

type Reply = RpcReplyPort<Result<Order, OrderError>>;

/// Messages of the order actor.
pub enum OrderMsg {
    /// Store a new order (idempotent for the same checkout), with the
    /// coordinator's log entry riding along.
    Create(Box<Order>, Option<Rider>, Reply),
    /// Apply a change (a no-op if already applied), with a log entry riding along.
    Update(Change, Option<Rider>, Reply),
    /// The buyer cancels: reserved stock is released, or a payment refunded
    /// and the sold stock put back.
    Cancel(Reply),
    /// A seller moves their own part of the order.
    Fulfil(String, FulfilmentStatus, Reply),
    /// The order, if it exists.
    Get(RpcReplyPort<Option<Order>>),
    /// Internal: the payment deadline has come.
    Expire,
    /// Internal: time to ask the gateway about an order that ended unpaid.
    CheckPayment,
}

/// The order entity kind.
pub struct OrderEntity {
    store: Store,
    inventory: InventoryActors,
    /// To unlock the buyer's cart when an unpaid order ends, without
    /// waiting for its checkout to hear from the gateway.
    carts: CartActors,
    payments: Payments,
}

/// A live order.
pub struct OrderState {
    order: Option<Order>,
    timer: Option<JoinHandle<()>>,
    /// Armed retry of a gateway check.
    check_timer: Option<JoinHandle<()>>,
}

/// How long after a failed gateway check the next one runs.
const PAYMENT_CHECK_RETRY: Duration = Duration::from_secs(30);

impl Entity for OrderEntity {
    const KIND: &'static str = "order";
    // Payment deadlines must fire even on an order nobody asks for.
    const REVIVE_AFTER_FAILURE: bool = true;
    type Msg = OrderMsg;
    type State = OrderState;

    async fn activate(
        &self,
        id: &str,
        myself: &EntityRef<Self>,
    ) -> Result<OrderState, EntityError> {
        // From the read cache (or sled on the blocking pool), not through
        // the writer: a new order, the common case, is a miss that costs no
        // write slot. `Create` re-checks inside its own write job.
        let order = self.store.get::<Order>(TreeName::Orders, id).await?;
        let mut state = OrderState {
            order,
            timer: None,
            check_timer: None,
        };
        if state.order.as_ref().is_some_and(|o| o.payment_check_due) {
            state.check_timer =
                Some(myself.tell_after(Duration::from_secs(1), || OrderMsg::CheckPayment));
        }
        if state.order.as_ref().is_some_and(|o| o.stock_to_return) {
            self.return_stock(&mut state).await?;
        }
        arm_deadline(&mut state, myself);
        Ok(state)
    }

    async fn handle(
        &self,
        message: OrderMsg,
        state: &mut OrderState,
        myself: &EntityRef<Self>,
    ) -> Result<(), EntityError> {
        match message {
            OrderMsg::Get(reply) => {
                let _ = reply.send(state.order.clone());
            }
            OrderMsg::Create(order, rider, reply) => {
                let result = match &state.order {
                    Some(existing) if existing.checkout_id == order.checkout_id => {
                        Ok(existing.clone())
                    }
                    Some(_) => Err(OrderError::Conflict),
                    None => self.create(state, *order, rider).await,
                };
                let _ = reply.send(result);
            }
            OrderMsg::Update(change, rider, reply) => {
                let result = match state.order.clone() {
                    None => Err(OrderError::NotFound),
                    Some(mut order) => match apply(&mut order, change, Timestamp::now()) {
                        Ok(false) => Ok(order),
                        Ok(true) => self.save(state, order, rider).await,
                        Err(refused) => Err(refused.into()),
                    },
                };
                let _ = reply.send(result);
            }
            OrderMsg::Cancel(reply) => {
                let result = self.cancel(state, myself).await;
                let _ = reply.send(result);
            }
            OrderMsg::Fulfil(seller_id, to, reply) => {
                let result = self.fulfil(state, &seller_id, to).await;
                let _ = reply.send(result);
            }
            OrderMsg::Expire => {
                state.timer = None;
                self.expire(state, myself).await?;
            }
            OrderMsg::CheckPayment => {
                state.check_timer = None;
                self.check_payment(state, myself).await;
            }
        }
        arm_deadline(state, myself);
        if state.order.as_ref().is_some_and(is_settled) {
            // Nothing will happen to it soon: free the memory now.
            myself.passivate();
        }
        Ok(())
    }

    fn can_passivate(&self, state: &OrderState) -> bool {
        // A pending order stays awake for its deadline, one owed a gateway
        // check for its retries.
        state
            .order
            .as_ref()
            .is_none_or(|o| o.status != OrderStatus::PaymentPending && !o.payment_check_due)
    }
}

/// No deadline, no stock to put back, and past the checkout's part.
fn is_settled(order: &Order) -> bool {
    !order.stock_to_return
        && !order.payment_check_due
        && !matches!(
            order.status,
            OrderStatus::Created | OrderStatus::PaymentPending
        )
}

/// Applies a change; `Ok(false)` if nothing changed.
fn apply(order: &mut Order, change: Change, now: Timestamp) -> Result<bool, InvalidTransition> {
    let mut changed = match change.status {
        Some(next) => order.transition(next, now)?,
        None => false,
    };
    if let Some(status) = change.payment_status {
        changed |= order.payment_status != status;
        order.payment_status = status;
    }
    if let Some(txn) = change.txn_id {
        changed |= order.payment_txn_id.as_deref() != Some(txn.as_str());
        order.payment_txn_id = Some(txn);
    }
    if let Some(reason) = change.reason {
        changed |= order.failure_reason.as_deref() != Some(reason.as_str());
        order.failure_reason = Some(reason);
    }
    if changed {
        order.updated_at = now;
    }
    Ok(changed)
}

impl OrderEntity {
    /// Stores a change of the order with its event, its place in the
    /// unfinished list and any rider; then adopts it (persist before reply).
    async fn save(
        &self,
        state: &mut OrderState,
        order: Order,
        rider: Option<Rider>,
    ) -> Result<Order, OrderError> {
        let stored = order.clone();
        // A failed actor's successor may not know; then remove anyway.
        let was_listed = state.order.as_ref().is_none_or(listed);
        // `order.updated` (and so a notification) only when what it carries
        // changes: bookkeeping saves (stock put back, a payment check done)
        // and a part shipped while others wait are not news to the buyer.
        let news = state.order.as_ref().is_none_or(|before| {
            before.status != order.status || before.payment_status != order.payment_status
        });
        self.store
            .write(move |tx| {
                write_order(tx, &stored, false, was_listed, news)?;
                if let Some(rider) = &rider {
                    tx.ride(rider);
                }
                Ok::<_, StorageError>(())
            })
            .await?;
        state.order = Some(order.clone());
        Ok(order)
    }

    /// Stores a new order unless one with its id already exists (an order
    /// that the activation's read missed), in one write job.
    async fn create(
        &self,
        state: &mut OrderState,
        order: Order,
        rider: Option<Rider>,
    ) -> Result<Order, OrderError> {
        let stored = order.clone();
        let existing = self
            .store
            .write(move |tx| {
                if let Some(existing) = tx.get::<Order>(TreeName::Orders, stored.id.as_bytes())? {
                    return Ok::<_, StorageError>(Some(existing));
                }
                write_order(tx, &stored, true, false, true)?;
                if let Some(rider) = &rider {
                    tx.ride(rider);
                }
                Ok(None)
            })
            .await?;
        match existing {
            Some(existing) => {
                let same = existing.checkout_id == order.checkout_id;
                state.order = Some(existing.clone());
                if same {
                    Ok(existing)
                } else {
                    Err(OrderError::Conflict)
                }
            }
            None => {
                state.order = Some(order.clone());
                Ok(order)
            }
        }
    }
}

/// Whether an order belongs in `pending_orders` (unfinished business).
fn listed(order: &Order) -> bool {
    order.status == OrderStatus::PaymentPending || order.stock_to_return || order.payment_check_due
}

/// Stages an order, its index entries (the buyer's and each seller's, when
/// `new`), its place in `pending_orders` (removed only if it was there) and,
/// when `news`, its event.
fn write_order(
    tx: &mut Tx<'_>,
    order: &Order,
    new: bool,
    was_listed: bool,
    news: bool,
) -> Result<(), StorageError> {
    tx.put(TreeName::Orders, order.id.as_bytes(), order)?;
    if new {
        tx.put_raw(
            TreeName::UserOrders,
            user_order_key(&order.user_id, order.created_at, &order.id),
            Vec::new(),
        );
        for part in &order.fulfilment {
            tx.put_raw(
                TreeName::SellerOrders,
                seller_order_key(&part.seller_id, order.created_at, &order.id),
                Vec::new(),
            );
        }
    }
    if listed(order) {
        tx.put_raw(
            TreeName::PendingOrders,
            order.id.as_bytes(),
            order.expires_at.0.to_be_bytes().to_vec(),
        );
    } else if was_listed {
        tx.remove(TreeName::PendingOrders, order.id.as_bytes());
    }
    if new {
        // A checkout stores its order once, already past `CREATED`: one
        // event for each state it passed through, so consumers (the
        // buyer's inbox, the sockets) see every transition.
        let passed = order.history.len().saturating_sub(1);
        for step in &order.history[..passed] {
            tx.emit(EventBody::OrderUpdated {
                order_id: order.id.clone(),
                user_id: order.user_id.clone(),
                status: step.status,
                payment_status: PaymentStatus::Pending,
            });
        }
    }
    if news {
        tx.emit(EventBody::OrderUpdated {
            order_id: order.id.clone(),
            user_id: order.user_id.clone(),
            status: order.status,
            payment_status: order.payment_status,
        });
    }
    Ok(())
}

/// `user ‖ 0 ‖ reverse time ‖ order`: a user's orders sort newest first.
pub fn user_order_key(user_id: &str, created_at: Timestamp, order_id: &str) -> Vec<u8> {
    let reverse = u64::MAX - u64::try_from(created_at.0).unwrap_or(0);
    let mut key = Vec::with_capacity(user_id.len() + 9 + order_id.len());
    key.extend_from_slice(user_id.as_bytes());
    key.push(0);
    key.extend_from_slice(&reverse.to_be_bytes());
    key.extend_from_slice(order_id.as_bytes());
    key
}

/// Arms the payment-deadline timer of a pending order (once).
fn arm_deadline(state: &mut OrderState, myself: &EntityRef<OrderEntity>) {
    let Some(order) = state
        .order
        .as_ref()
        .filter(|o| o.status == OrderStatus::PaymentPending)
    else {
        if let Some(timer) = state.timer.take() {
            timer.abort();
        }
        return;
    };
    if state.timer.is_none() {
        let wait = Duration::from_millis(
            u64::try_from(order.expires_at.0 - Timestamp::now().0).unwrap_or(0),
        );
        state.timer = Some(myself.tell_after(wait, || OrderMsg::Expire));
    }
}
