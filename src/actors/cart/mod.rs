//! Carts: one actor per cart, serializing every change to it (its handle,
//! [`CartActors`], is in `handle.rs`).
//!
//! Forty devices changing one cart at once each see their line kept: the
//! actor applies one change at a time and stores the cart before it answers.
//! Carts are not hot the way a popular SKU is, so each change is its own
//! write job (the shared writer still groups jobs of different carts).
//! The checkout lock lives here too: while a checkout holds the cart, lines
//! cannot change.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ractor::RpcReplyPort;

mod handle;

pub use handle::CartActors;

use super::runtime::{Entity, EntityError, EntityRef};
use crate::domain::cart::{Cart, CartLine, CartRuleError};
use crate::domain::Timestamp;
use crate::storage::{codec, Rider, StorageError, Store, TreeName};

/// Why a cart operation was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CartError {
    /// A rule of the cart refused it.
    #[error(transparent)]
    Rule(#[from] CartRuleError),
    /// Checkout of an empty cart.
    #[error("the cart is empty")]
    Empty,
    /// A checkout other than the caller's holds the lock.
    #[error("another checkout holds the cart")]
    InProgress,
    /// The cart's actor was overloaded, too slow, or failed.
    #[error("cart unavailable: {0}")]
    Unavailable(EntityError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<EntityError> for CartError {
    fn from(e: EntityError) -> Self {
        match e {
            EntityError::Storage(e) => CartError::Storage(e),
            other => CartError::Unavailable(other),
        }
    }
}

/// Who a new cart belongs to.
#[derive(Debug, Clone)]
pub enum Owner {
    /// A signed-in user.
    User(String),
    /// A guest (the cart is reached by its token).
    Guest,
}

/// Messages of the cart actor.
pub enum CartMsg {
    /// The cart, or `None` if it was never written (or has expired).
    Get(RpcReplyPort<Result<Option<Cart>, CartError>>),
    /// Set one line's quantity (0 removes); creates the cart if needed.
    SetLine(Owner, CartLine, RpcReplyPort<Result<Cart, CartError>>),
    /// Remove every line.
    Clear(RpcReplyPort<Result<(), CartError>>),
    /// Add a guest cart's lines, capped by the given stock per variant.
    Merge(
        Owner,
        Vec<CartLine>,
        BTreeMap<String, i64>,
        RpcReplyPort<Result<Cart, CartError>>,
    ),
    /// Empty the cart and hand its lines over (to merge elsewhere); refused
    /// while a checkout holds it. A second call hands over nothing.
    TakeLines(RpcReplyPort<Result<Vec<CartLine>, CartError>>),
    /// Lock the cart for a checkout and return it (idempotent per checkout).
    BeginCheckout(String, RpcReplyPort<Result<Cart, CartError>>),
    /// Release the lock; with `true`, also empty the cart (order confirmed);
    /// the coordinator's log entry rides along.
    EndCheckout(
        String,
        bool,
        Option<Rider>,
        RpcReplyPort<Result<(), CartError>>,
    ),
}

/// The cart entity kind.
pub struct CartEntity {
    store: Store,
    ttl: Duration,
}

/// A live cart: its id and stored state.
pub struct CartState {
    id: String,
    cart: Option<Cart>,
    /// When the checkout lock was taken.
    locked_at: Option<Instant>,
}

/// How long a checkout may hold a cart's lock. A checkout ends (or is
/// logged for recovery) in seconds; a lock older than this belongs to one
/// that lost its way before logging anything, and lapses rather than block
/// the buyer's cart until the next restart.
pub const LOCK_LEASE: Duration = Duration::from_secs(300);

impl Entity for CartEntity {
    const KIND: &'static str = "cart";
    type Msg = CartMsg;
    type State = CartState;

    async fn activate(&self, id: &str, _: &EntityRef<Self>) -> Result<CartState, EntityError> {
        // Through the writer: a write of a previous activation that died
        // mid-save may still be queued, and this read must come after it.
        let key = id.as_bytes().to_vec();
        let cart = self
            .store
            .write(move |tx| tx.get::<Cart>(TreeName::Carts, key.clone()))
            .await?;
        Ok(CartState {
            locked_at: None,
            id: id.to_owned(),
            // A lock never outlives the process that took it.
            cart: cart.map(|c| Cart {
                checkout: None,
                ..c
            }),
        })
    }

    async fn handle(
        &self,
        message: CartMsg,
        state: &mut CartState,
        _: &EntityRef<Self>,
    ) -> Result<(), EntityError> {
        let now = Timestamp::now();
        self.expire_if_idle(state, now);
        lapse_lock(state);
        match message {
            CartMsg::Get(reply) => {
                let _ = reply.send(Ok(state
                    .cart
                    .clone()
                    .filter(|c| !c.lines.is_empty() || c.user_id.is_some())));
            }
            CartMsg::SetLine(owner, line, reply) => {
                let _ = reply.send(self.set_line(state, owner, line, now).await);
            }
            CartMsg::Clear(reply) => {
                let _ = reply.send(self.clear(state, now).await);
            }
            CartMsg::Merge(owner, lines, caps, reply) => {
                let _ = reply.send(self.merge(state, owner, lines, caps, now).await);
            }
            CartMsg::TakeLines(reply) => {
                let _ = reply.send(self.take_lines(state, now).await);
            }
            CartMsg::BeginCheckout(checkout, reply) => {
                let _ = reply.send(begin_checkout(state, checkout));
            }
            CartMsg::EndCheckout(checkout, clear, rider, reply) => {
                let _ = reply.send(self.end_checkout(state, &checkout, clear, rider, now).await);
            }
        }
        Ok(())
    }

    fn can_passivate(&self, state: &CartState) -> bool {
        // The checkout lock lives only in memory (until its lease lapses).
        let lapsed = state.locked_at.is_some_and(|at| at.elapsed() > LOCK_LEASE);
        lapsed || state.cart.as_ref().is_none_or(|c| c.checkout.is_none())
    }
}

/// Drops a checkout lock held longer than [`LOCK_LEASE`].
fn lapse_lock(state: &mut CartState) {
    let Some(cart) = state.cart.as_mut().filter(|c| c.checkout.is_some()) else {
        state.locked_at = None;
        return;
    };
    if state.locked_at.is_some_and(|at| at.elapsed() > LOCK_LEASE) {
        tracing::warn!(cart = %cart.id, checkout = ?cart.checkout, "a checkout lock lapsed");
        cart.checkout = None;
        state.locked_at = None;
    }
}

fn new_cart(id: &str, owner: &Owner, now: Timestamp) -> Cart {
    let user = match owner {
        Owner::User(user) => Some(user.clone()),
        Owner::Guest => None,
    };
    Cart::new(id.to_owned(), user, now)
}

/// Locks the cart for `checkout` (idempotent per checkout).
///
/// The lock lives in memory only: a checkout interrupted by a crash is
/// finished or compensated by its saga at start-up, which needs no lock, so
/// persisting it would cost a write per checkout for nothing.
fn begin_checkout(state: &mut CartState, checkout: String) -> Result<Cart, CartError> {
    match state.cart.as_mut() {
        Some(cart) if cart.checkout.as_deref() == Some(checkout.as_str()) => Ok(cart.clone()),
        Some(cart) if cart.checkout.is_some() => Err(CartError::InProgress),
        Some(cart) if cart.lines.is_empty() => Err(CartError::Empty),
        None => Err(CartError::Empty),
        Some(cart) => {
            cart.checkout = Some(checkout);
            state.locked_at = Some(Instant::now());
            Ok(cart.clone())
        }
    }
}

/// One method per message that changes the cart.
impl CartEntity {
    async fn set_line(
        &self,
        state: &mut CartState,
        owner: Owner,
        line: CartLine,
        now: Timestamp,
    ) -> Result<Cart, CartError> {
        let mut cart = state
            .cart
            .clone()
            .unwrap_or_else(|| new_cart(&state.id, &owner, now));
        cart.set_line(line, now)?;
        self.save(state, cart).await
    }

    async fn clear(&self, state: &mut CartState, now: Timestamp) -> Result<(), CartError> {
        match state.cart.clone() {
            Some(mut cart) if cart.checkout.is_none() => {
                cart.clear(now);
                self.save(state, cart).await.map(drop)
            }
            Some(_) => Err(CartRuleError::Locked.into()),
            None => Ok(()),
        }
    }

    async fn merge(
        &self,
        state: &mut CartState,
        owner: Owner,
        lines: Vec<CartLine>,
        caps: BTreeMap<String, i64>,
        now: Timestamp,
    ) -> Result<Cart, CartError> {
        let mut cart = state
            .cart
            .clone()
            .unwrap_or_else(|| new_cart(&state.id, &owner, now));
        if cart.checkout.is_some() {
            return Err(CartRuleError::Locked.into());
        }
        cart.merge(lines, &caps, now);
        self.save(state, cart).await
    }

    async fn take_lines(
        &self,
        state: &mut CartState,
        now: Timestamp,
    ) -> Result<Vec<CartLine>, CartError> {
        match state.cart.clone() {
            Some(cart) if cart.checkout.is_some() => Err(CartRuleError::Locked.into()),
            Some(mut cart) if !cart.lines.is_empty() => {
                let lines = std::mem::take(&mut cart.lines);
                cart.updated_at = now;
                self.save(state, cart).await.map(|_| lines)
            }
            _ => Ok(Vec::new()),
        }
    }

    async fn end_checkout(
        &self,
        state: &mut CartState,
        checkout: &str,
        clear: bool,
        rider: Option<Rider>,
        now: Timestamp,
    ) -> Result<(), CartError> {
        match state.cart.clone() {
            // Held by this checkout, or by nobody (a lock lost in a crash,
            // when a resumed saga ends).
            Some(mut cart)
                if cart.checkout.is_none() || cart.checkout.as_deref() == Some(checkout) =>
            {
                if clear {
                    cart.clear(now);
                } else {
                    cart.checkout = None;
                }
                if clear || rider.is_some() {
                    self.save_with(state, cart, rider).await.map(drop)
                } else {
                    state.cart = Some(cart);
                    Ok(())
                }
            }
            // Another checkout's (or no cart): only the rider.
            _ => match rider {
                Some(rider) => self
                    .store
                    .write(move |tx| {
                        tx.ride(&rider);
                        Ok::<_, StorageError>(())
                    })
                    .await
                    .map_err(CartError::from),
                None => Ok(()),
            },
        }
    }
}

impl CartEntity {
    /// Stores the cart, then adopts it as the live state (persist before reply).
    async fn save(&self, state: &mut CartState, cart: Cart) -> Result<Cart, CartError> {
        self.save_with(state, cart, None).await
    }

    /// [`Self::save`] with a rider. The checkout lock is never stored.
    async fn save_with(
        &self,
        state: &mut CartState,
        cart: Cart,
        rider: Option<Rider>,
    ) -> Result<Cart, CartError> {
        let key = cart.id.clone().into_bytes();
        // Encoded here, once, without the lock (and without copying the
        // cart): the job itself only stages the bytes.
        let mut cart = cart;
        let lock = cart.checkout.take();
        let stored = codec::encode(&cart);
        cart.checkout = lock;
        let stored = stored?;
        self.store
            .write(move |tx| {
                tx.put_raw(TreeName::Carts, key.clone(), stored.clone());
                if let Some(rider) = &rider {
                    tx.ride(rider);
                }
                Ok::<_, StorageError>(())
            })
            .await?;
        let answer = cart.clone();
        state.cart = Some(cart);
        Ok(answer)
    }

    /// An idle cart past its time-to-live is emptied (unless a checkout holds it).
    fn expire_if_idle(&self, state: &mut CartState, now: Timestamp) {
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        if let Some(cart) = state.cart.as_mut() {
            if cart.checkout.is_none()
                && !cart.lines.is_empty()
                && now.0.saturating_sub(cart.updated_at.0) > ttl_ms
            {
                cart.lines.clear();
            }
        }
    }
}
