//! Orders: one actor per order, owning its state machine.
//!
//! Every transition is stored (with its `order.updated` event) before the
//! actor answers. An order waiting for payment holds a timer for its
//! deadline, armed from the persisted deadline on every activation; at the
//! deadline it becomes `EXPIRED` and gives its reserved stock back. Pending
//! orders are listed in their own small tree, so a restart re-arms exactly
//! them without scanning every order.

use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::RpcReplyPort;

use super::inventory::Inventory;
use super::runtime::{Entity, EntityError, EntityRef, Region, RegionSettings};
use crate::domain::order::{InvalidTransition, Order, OrderStatus, PaymentStatus};
use crate::domain::Timestamp;
use crate::storage::events::EventBody;
use crate::storage::{StorageError, Store, TreeName, Tx};

/// Why an order operation was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OrderError {
    /// The state machine does not allow the move.
    #[error(transparent)]
    InvalidTransition(#[from] InvalidTransition),
    /// No such order.
    #[error("order not found")]
    NotFound,
    /// An order with this id exists for another checkout.
    #[error("order id already used")]
    Conflict,
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

/// A change of the order's payment facts, made with a transition.
#[derive(Debug, Clone, Default)]
pub struct PaymentUpdate {
    /// New payment status, if it changes.
    pub status: Option<PaymentStatus>,
    /// The gateway's transaction id, once known.
    pub txn_id: Option<String>,
}

/// Messages of the order actor.
pub enum OrderMsg {
    /// Store a new order (idempotent for the same checkout).
    Create(Box<Order>, RpcReplyPort<Result<Order, OrderError>>),
    /// Move to a status, updating payment facts.
    Transition(
        OrderStatus,
        PaymentUpdate,
        RpcReplyPort<Result<Order, OrderError>>,
    ),
    /// The order, if it exists.
    Get(RpcReplyPort<Option<Order>>),
    /// Internal: the payment deadline has come.
    Expire,
}

/// The order entity kind.
pub struct OrderEntity {
    store: Store,
    inventory: Inventory,
}

/// A live order.
pub struct OrderState {
    order: Option<Order>,
    timer: Option<JoinHandle<()>>,
}

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
        // Through the writer, so a write left queued by a failed predecessor
        // is seen.
        let key = id.as_bytes().to_vec();
        let order = self
            .store
            .write(move |tx| tx.get::<Order>(TreeName::Orders, key.clone()))
            .await?;
        let mut state = OrderState { order, timer: None };
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
            OrderMsg::Create(order, reply) => {
                let result = match &state.order {
                    Some(existing) if existing.checkout_id == order.checkout_id => {
                        Ok(existing.clone())
                    }
                    Some(_) => Err(OrderError::Conflict),
                    None => self.save(state, *order, true).await,
                };
                arm_deadline(state, myself);
                let _ = reply.send(result);
            }
            OrderMsg::Transition(next, payment, reply) => {
                let result = match state.order.clone() {
                    None => Err(OrderError::NotFound),
                    Some(mut order) => match apply(&mut order, next, payment, Timestamp::now()) {
                        Ok(false) => Ok(order),
                        Ok(true) => self.save(state, order, false).await,
                        Err(refused) => Err(refused.into()),
                    },
                };
                arm_deadline(state, myself);
                let _ = reply.send(result);
            }
            OrderMsg::Expire => {
                state.timer = None;
                let now = Timestamp::now();
                let due = state
                    .order
                    .as_ref()
                    .filter(|o| o.status == OrderStatus::PaymentPending && o.expires_at <= now)
                    .cloned();
                if let Some(mut order) = due {
                    let failed = PaymentUpdate {
                        status: Some(PaymentStatus::Failed),
                        txn_id: None,
                    };
                    if apply(&mut order, OrderStatus::Expired, failed, now).is_ok() {
                        // A failed save fails the actor; the next activation
                        // re-arms the deadline from what is stored.
                        let expired = self.save(state, order, false).await.map_err(|e| {
                            EntityError::Unavailable(format!("expiring order: {e}"))
                        })?;
                        self.release_stock(&expired).await;
                    }
                }
                arm_deadline(state, myself);
            }
        }
        Ok(())
    }

    fn can_passivate(&self, state: &OrderState) -> bool {
        // A pending order stays awake for its deadline.
        state
            .order
            .as_ref()
            .is_none_or(|o| o.status != OrderStatus::PaymentPending)
    }
}

/// Applies a transition and its payment facts; `Ok(false)` if nothing changed.
fn apply(
    order: &mut Order,
    next: OrderStatus,
    payment: PaymentUpdate,
    now: Timestamp,
) -> Result<bool, InvalidTransition> {
    let moved = order.transition(next, now)?;
    let mut changed = moved;
    if let Some(status) = payment.status {
        changed |= order.payment_status != status;
        order.payment_status = status;
    }
    if let Some(txn) = payment.txn_id {
        changed |= order.payment_txn_id.as_deref() != Some(txn.as_str());
        order.payment_txn_id = Some(txn);
    }
    if changed {
        order.updated_at = now;
    }
    Ok(changed)
}

impl OrderEntity {
    /// Stores the order (and, when new, its index entry), its event and its
    /// place in the pending list; then adopts it (persist before reply).
    async fn save(
        &self,
        state: &mut OrderState,
        order: Order,
        new: bool,
    ) -> Result<Order, OrderError> {
        let stored = order.clone();
        self.store
            .write(move |tx| {
                write_order(tx, &stored, new)?;
                Ok::<_, StorageError>(())
            })
            .await?;
        state.order = Some(order.clone());
        Ok(order)
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
                tracing::warn!(order = %order.id, sku = %line.variant_id, error = %e, "release after expiry failed");
            }
        }
    }
}

fn write_order(tx: &mut Tx<'_>, order: &Order, new: bool) -> Result<(), StorageError> {
    tx.put(TreeName::Orders, order.id.as_bytes(), order)?;
    if new {
        tx.put_raw(
            TreeName::UserOrders,
            user_order_key(&order.user_id, order.created_at, &order.id),
            Vec::new(),
        );
    }
    if order.status == OrderStatus::PaymentPending {
        tx.put_raw(
            TreeName::PendingOrders,
            order.id.as_bytes(),
            order.expires_at.0.to_be_bytes().to_vec(),
        );
    } else {
        tx.remove(TreeName::PendingOrders, order.id.as_bytes());
    }
    tx.emit(EventBody::OrderUpdated {
        order_id: order.id.clone(),
        user_id: order.user_id.clone(),
        status: order.status,
        payment_status: order.payment_status,
    });
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

/// The orders of this node: one actor each. Cheap to clone.
#[derive(Clone)]
pub struct OrderActors {
    region: Region<OrderEntity>,
    store: Store,
}

impl OrderActors {
    /// Starts the order region.
    pub async fn start(
        store: Store,
        inventory: Inventory,
        settings: RegionSettings,
    ) -> Result<Self, EntityError> {
        let region = Region::start(
            OrderEntity {
                store: store.clone(),
                inventory,
            },
            settings,
        )
        .await?;
        Ok(OrderActors { region, store })
    }

    /// Stores a new order (idempotent for its checkout).
    pub async fn create(&self, order: Order) -> Result<Order, OrderError> {
        let id = order.id.clone();
        self.region
            .call(&id, |reply| {
                OrderMsg::Create(Box::new(order.clone()), reply)
            })
            .await?
    }

    /// Moves an order to `next`, updating its payment facts.
    pub async fn transition(
        &self,
        order_id: &str,
        next: OrderStatus,
        payment: PaymentUpdate,
    ) -> Result<Order, OrderError> {
        self.region
            .call(order_id, |reply| {
                OrderMsg::Transition(next, payment.clone(), reply)
            })
            .await?
    }

    /// The order, from its actor.
    pub async fn get(&self, order_id: &str) -> Result<Option<Order>, OrderError> {
        Ok(self.region.call(order_id, OrderMsg::Get).await?)
    }

    /// Activates every order still waiting for payment, so its deadline
    /// fires even if nobody asks for it after a restart; returns how many.
    pub async fn recover(&self) -> Result<usize, OrderError> {
        let pending: Vec<String> = self
            .store
            .read(|trees| {
                let mut ids = Vec::new();
                for entry in trees.tree(TreeName::PendingOrders).iter() {
                    let (key, _) = entry?;
                    ids.push(String::from_utf8_lossy(&key).into_owned());
                }
                Ok(ids)
            })
            .await?;
        let mut recovered = 0;
        for id in &pending {
            match self.get(id).await {
                Ok(_) => recovered += 1,
                Err(e) => {
                    tracing::warn!(order = %id, error = %e, "could not re-arm the payment deadline")
                }
            }
        }
        Ok(recovered)
    }

    /// Stops every order actor.
    pub async fn stop(&self) {
        self.region.stop().await;
    }
}
