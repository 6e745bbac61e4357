//! Inventory: one actor per SKU (variant), owning its stock.
//!
//! The actor serializes every change to one SKU, so it cannot oversell: no
//! two reservations ever interleave inside it. Changes are applied in memory
//! and made durable by *pipelined group commit*: while one flush of the
//! SKU's record is in flight, further changes accumulate, and the next flush
//! carries them all; each caller is answered only once the flush holding its
//! change is durable. A hot SKU therefore pays one write per batch of
//! reservations, not one per reservation (see BENCHMARKS.md).
//!
//! Reads for item pages use the persisted record (the read model,
//! [`InventoryActors::levels`]); they never queue behind reservations.
//!
//! The rules every change follows are pure and live in the domain
//! ([`crate::domain::stock`]): this actor applies them, persists the result
//! and announces it; `handle.rs` holds [`InventoryActors`], what callers use.

use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::RpcReplyPort;

mod handle;
mod remote;

/// The stock rules live in the domain; the command keeps this path too, for
/// the checkout coordinator that sends it.
pub use crate::domain::stock::Command;
pub use handle::InventoryActors;
pub use remote::{RemoteInventory, KIND as REMOTE_KIND};

use super::runtime::{Entity, EntityError, EntityRef};
use crate::domain::event::EventBody;
use crate::domain::item::StockLevel;
use crate::domain::stock::{SkuStock, StockError};
use crate::domain::Timestamp;
use crate::storage::{Rider, StorageError, Store, TreeName, Tx};

/// Why an inventory operation was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InventoryError {
    /// The SKU's rules refused the change; nothing changed.
    #[error(transparent)]
    Refused(#[from] StockError),
    /// No stock record for that variant.
    #[error("unknown variant")]
    UnknownVariant,
    /// The SKU's actor was overloaded, too slow, or failed.
    #[error("inventory unavailable: {0}")]
    Unavailable(EntityError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<EntityError> for InventoryError {
    fn from(e: EntityError) -> Self {
        match e {
            EntityError::Storage(e) => InventoryError::Storage(e),
            other => InventoryError::Unavailable(other),
        }
    }
}

/// Messages of the inventory actor.
pub enum InventoryMsg {
    /// Current stock (including changes whose flush is in flight).
    Get(RpcReplyPort<Result<StockLevel, InventoryError>>),
    /// Apply a change, writing the rider (a checkout's log entry) in the
    /// same flush; answered once it is durable.
    Change(
        Command,
        Option<Rider>,
        RpcReplyPort<Result<StockLevel, InventoryError>>,
    ),
    /// Internal: a flush finished.
    Flushed(bool),
    /// Internal: the earliest reservation deadline has come.
    Expire,
}

/// Answers a caller once the flush holding its change is durable.
type PendingReply = Box<dyn FnOnce(Result<(), StorageError>) + Send>;

/// A live SKU.
pub struct InventoryState {
    variant_id: String,
    /// `None` for an id with no stock record (every change is refused).
    stock: Option<SkuStock>,
    /// Replies waiting for the next flush.
    pending: Vec<PendingReply>,
    /// Changed since the last flush started.
    dirty: bool,
    /// Riders waiting for the next flush.
    riders: Vec<Rider>,
    /// A flush is in flight.
    flushing: bool,
    /// The level last written, to emit `stock.changed` only on a change.
    flushed_level: StockLevel,
    /// Armed expiry timer and the deadline it is for.
    timer: Option<(Timestamp, JoinHandle<()>)>,
}

/// The inventory entity kind: how SKUs load and handle messages.
pub struct InventoryEntity {
    store: Store,
}

impl Entity for InventoryEntity {
    const KIND: &'static str = "inventory";
    // Reservation deadlines must fire even on a SKU nobody touches.
    const REVIVE_AFTER_FAILURE: bool = true;
    type Msg = InventoryMsg;
    type State = InventoryState;

    async fn activate(
        &self,
        id: &str,
        myself: &EntityRef<Self>,
    ) -> Result<InventoryState, EntityError> {
        // Read through the writer, not the cache: a previous activation that
        // failed may still have a flush queued, and this read must come after
        // it (the writer runs jobs in order).
        let key = id.as_bytes().to_vec();
        let mut stock = self
            .store
            .write(move |tx| tx.get::<SkuStock>(TreeName::Stock, key.clone()))
            .await?;
        // Deadlines that passed while this SKU was passivated or the node was
        // down are enforced before anything else, and announced.
        if let Some(record) = stock.as_mut() {
            let before = record.level();
            if record.release_expired(Timestamp::now()) {
                let event = stock_changed(&record.item_id, id, before, record.level());
                persist(&self.store, id, record.clone(), event).await?;
            }
        }
        let flushed_level = stock.as_ref().map(SkuStock::level).unwrap_or_default();
        let mut state = InventoryState {
            variant_id: id.to_owned(),
            stock,
            pending: Vec::new(),
            dirty: false,
            riders: Vec::new(),
            flushing: false,
            flushed_level,
            timer: None,
        };
        arm_expiry(&mut state, myself);
        Ok(state)
    }

    async fn handle(
        &self,
        message: InventoryMsg,
        state: &mut InventoryState,
        myself: &EntityRef<Self>,
    ) -> Result<(), EntityError> {
        match message {
            InventoryMsg::Get(reply) => {
                let _ = reply.send(
                    state
                        .stock
                        .as_ref()
                        .map(SkuStock::level)
                        .ok_or(InventoryError::UnknownVariant),
                );
            }
            InventoryMsg::Change(command, rider, reply) => {
                self.change(state, myself, command, rider, reply).await?;
            }
            InventoryMsg::Flushed(ok) => {
                state.flushing = false;
                if !ok {
                    // Memory is ahead of storage: fail, and let the next
                    // message re-activate this SKU from what is durable.
                    return Err(EntityError::Unavailable(format!(
                        "stock flush failed for {}",
                        state.variant_id
                    )));
                }
                self.flush(state, myself).await?;
            }
            InventoryMsg::Expire => {
                state.timer = None;
                if let Some(stock) = state.stock.as_mut() {
                    state.dirty |= stock.release_expired(Timestamp::now());
                }
                arm_expiry(state, myself);
                self.flush(state, myself).await?;
            }
        }
        Ok(())
    }

    fn can_passivate(&self, state: &InventoryState) -> bool {
        // A SKU holding reservations stays awake for its expiry timer.
        !state.flushing
            && state.pending.is_empty()
            && state
                .stock
                .as_ref()
                .is_none_or(|s| s.reservations.is_empty())
    }
}

impl InventoryEntity {
    /// Applies a change in memory and queues its reply for the flush that
    /// makes it durable; a refusal is answered at once.
    async fn change(
        &self,
        state: &mut InventoryState,
        myself: &EntityRef<Self>,
        command: Command,
        rider: Option<Rider>,
        reply: RpcReplyPort<Result<StockLevel, InventoryError>>,
    ) -> Result<(), EntityError> {
        let Some(stock) = state.stock.as_mut() else {
            let _ = reply.send(Err(InventoryError::UnknownVariant));
            return Ok(());
        };
        let now = Timestamp::now();
        // Lapsed holds go back first, even if their timer has not run.
        state.dirty |= stock.release_expired(now);
        let changed = match stock.apply(&command, now) {
            Ok(changed) => changed,
            // A refusal changed nothing: answer at once.
            Err(refusal) => {
                let _ = reply.send(Err(refusal.into()));
                return Ok(());
            }
        };
        let level = stock.level();
        state.dirty |= changed || rider.is_some();
        state.riders.extend(rider);
        state.pending.push(Box::new(move |flushed| {
            let _ = reply.send(flushed.map(|()| level).map_err(InventoryError::from));
        }));
        if matches!(command, Command::Reserve { .. }) {
            arm_expiry(state, myself);
        }
        self.flush(state, myself).await
    }

    /// Starts a flush of everything changed (or waiting) unless one is in
    /// flight; `Flushed` starts the next. The writer itself answers the
    /// waiting callers once the flush is durable, so no task sits between.
    async fn flush(
        &self,
        state: &mut InventoryState,
        myself: &EntityRef<Self>,
    ) -> Result<(), EntityError> {
        if state.flushing || (state.pending.is_empty() && !state.dirty) {
            return Ok(());
        }
        let Some(stock) = state.stock.clone() else {
            return Ok(());
        };
        let level = stock.level();
        let event = stock_changed(
            &stock.item_id,
            &state.variant_id,
            state.flushed_level,
            level,
        );
        state.flushed_level = level;
        state.flushing = true;
        state.dirty = false;
        let replies = std::mem::take(&mut state.pending);
        let riders = std::mem::take(&mut state.riders);
        let myself = myself.clone();
        let done = move |result: Result<(), StorageError>| {
            let ok = result.is_ok();
            for reply in replies {
                reply(result.clone());
            }
            myself.tell(InventoryMsg::Flushed(ok));
        };
        self.store
            .submit(
                record_job(state.variant_id.as_bytes().to_vec(), stock, event, riders),
                done,
            )
            .await?;
        Ok(())
    }
}

/// `stock.changed` for a move from `before` to `after`, if anything moved.
fn stock_changed(
    item_id: &str,
    variant_id: &str,
    before: StockLevel,
    after: StockLevel,
) -> Option<EventBody> {
    (before.available != after.available || before.reserved != after.reserved).then(|| {
        EventBody::StockChanged {
            item_id: item_id.to_owned(),
            variant_id: variant_id.to_owned(),
            available: after.available,
            reserved: after.reserved,
        }
    })
}

/// The write job storing a SKU's record, its event and its riders.
fn record_job(
    key: Vec<u8>,
    stock: SkuStock,
    event: Option<EventBody>,
    riders: Vec<Rider>,
) -> impl Fn(&mut Tx<'_>) -> Result<(), StorageError> + Send + 'static {
    move |tx| {
        tx.put(TreeName::Stock, key.clone(), &stock)?;
        if let Some(event) = &event {
            tx.emit(event.clone());
        }
        for rider in &riders {
            tx.ride(rider);
        }
        Ok(())
    }
}

/// Writes a SKU's record (and its event) and waits until it is durable.
async fn persist(
    store: &Store,
    id: &str,
    stock: SkuStock,
    event: Option<EventBody>,
) -> Result<(), StorageError> {
    store
        .write(record_job(id.as_bytes().to_vec(), stock, event, Vec::new()))
        .await
}

/// Arms (or re-arms earlier) the timer for the earliest reservation deadline.
fn arm_expiry(state: &mut InventoryState, myself: &EntityRef<InventoryEntity>) {
    let Some(earliest) = state
        .stock
        .as_ref()
        .and_then(|s| s.reservations.iter().map(|r| r.deadline).min())
    else {
        return;
    };
    if state
        .timer
        .as_ref()
        .is_some_and(|(armed, _)| *armed <= earliest)
    {
        return;
    }
    if let Some((_, old)) = state.timer.take() {
        old.abort();
    }
    let wait = Duration::from_millis(u64::try_from(earliest.0 - Timestamp::now().0).unwrap_or(0));
    let handle = myself.tell_after(wait, || InventoryMsg::Expire);
    state.timer = Some((earliest, handle));
}
