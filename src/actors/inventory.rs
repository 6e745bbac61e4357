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
//! [`Inventory::levels`]); they never queue behind reservations.

use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::RpcReplyPort;

use super::runtime::{Entity, EntityError, EntityRef, Region, RegionSettings};
use crate::domain::item::{StockLevel, MAX_QUANTITY};
use crate::domain::Timestamp;
use crate::storage::events::EventBody;
use crate::storage::{Record, StorageError, Store, TreeName, Tx};

/// How many finished checkouts a SKU remembers, so that a step retried soon
/// after (a caller's retry, a saga resumed at start-up) is a no-op. The
/// checkout saga's own log is the primary guard; this window is kept small
/// because the record is rewritten on every flush.
const REMEMBERED_CHECKOUTS: usize = 128;

/// Why an inventory operation was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InventoryError {
    /// Not enough available stock.
    #[error("only {available} available")]
    Insufficient {
        /// Current available stock.
        available: i64,
    },
    /// The change would take stock above the maximum.
    #[error("stock would exceed {MAX_QUANTITY}")]
    TooMuch,
    /// Quantities must be positive.
    #[error("quantity must be at least 1")]
    InvalidQuantity,
    /// No stock record for that variant.
    #[error("unknown variant")]
    UnknownVariant,
    /// The checkout already holds a reservation of another quantity.
    #[error("checkout already holds {quantity} of this variant")]
    ReservationMismatch {
        /// The quantity already reserved.
        quantity: i64,
    },
    /// The checkout's reservation was already committed or released.
    #[error("the checkout's reservation is already finished")]
    AlreadyFinished,
    /// Commit of a checkout that holds no reservation.
    #[error("no reservation for that checkout")]
    NoReservation,
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

/// One reservation held by a checkout.
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub struct Reservation {
    /// The checkout (saga) holding it.
    pub checkout_id: String,
    /// Units held.
    pub quantity: i64,
    /// When it is released if not committed.
    pub deadline: Timestamp,
}

/// A finished checkout, remembered so a retried step is idempotent.
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub struct FinishedCheckout {
    /// The checkout.
    pub checkout_id: String,
    /// True if committed (sold), false if released.
    pub committed: bool,
}

/// The persisted state of one SKU (the `stock` tree, keyed by variant id).
#[derive(Debug, Clone, Default, PartialEq, bincode::Encode, bincode::Decode)]
pub struct SkuStock {
    /// The item the variant belongs to.
    pub item_id: String,
    /// Units a buyer can still get.
    pub available: i64,
    /// Units sold.
    pub sold: i64,
    /// Live reservations.
    pub reservations: Vec<Reservation>,
    /// Recently finished checkouts, oldest first.
    pub finished: Vec<FinishedCheckout>,
}

impl Record for SkuStock {
    const KIND: &'static str = "sku-stock";
    const VERSION: u8 = 1;
}

impl SkuStock {
    /// The public view: available, reserved, sold.
    pub fn level(&self) -> StockLevel {
        StockLevel {
            available: self.available,
            reserved: self.reservations.iter().map(|r| r.quantity).sum(),
            sold: self.sold,
        }
    }

    fn finish(&mut self, checkout_id: String, committed: bool) {
        self.finished.push(FinishedCheckout {
            checkout_id,
            committed,
        });
        if self.finished.len() > REMEMBERED_CHECKOUTS {
            let excess = self.finished.len() - REMEMBERED_CHECKOUTS;
            self.finished.drain(..excess);
        }
    }

    fn finished(&self, checkout_id: &str) -> Option<bool> {
        self.finished
            .iter()
            .rev()
            .find(|f| f.checkout_id == checkout_id)
            .map(|f| f.committed)
    }

    /// Releases every reservation whose deadline is at or before `now`.
    fn release_expired(&mut self, now: Timestamp) -> bool {
        let (expired, live): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reservations)
            .into_iter()
            .partition(|r| r.deadline <= now);
        self.reservations = live;
        for reservation in &expired {
            self.available += reservation.quantity;
        }
        for reservation in expired.iter() {
            self.finish(reservation.checkout_id.clone(), false);
        }
        !expired.is_empty()
    }

    /// Applies one command; `Ok(true)` if the state changed.
    fn apply(&mut self, command: &Command, now: Timestamp) -> Result<bool, InventoryError> {
        match command {
            Command::Reserve {
                checkout_id,
                quantity,
                deadline,
            } => {
                if *quantity < 1 {
                    return Err(InventoryError::InvalidQuantity);
                }
                if let Some(held) = self
                    .reservations
                    .iter()
                    .find(|r| &r.checkout_id == checkout_id)
                {
                    return if held.quantity == *quantity {
                        Ok(false)
                    } else {
                        Err(InventoryError::ReservationMismatch {
                            quantity: held.quantity,
                        })
                    };
                }
                if self.finished(checkout_id).is_some() {
                    return Err(InventoryError::AlreadyFinished);
                }
                if self.available < *quantity {
                    return Err(InventoryError::Insufficient {
                        available: self.available,
                    });
                }
                let deadline = (*deadline).max(now);
                self.available -= quantity;
                self.reservations.push(Reservation {
                    checkout_id: checkout_id.clone(),
                    quantity: *quantity,
                    deadline,
                });
                Ok(true)
            }
            Command::Release { checkout_id } => match self.take_reservation(checkout_id) {
                Some(reservation) => {
                    self.available += reservation.quantity;
                    self.finish(checkout_id.clone(), false);
                    Ok(true)
                }
                None => Ok(false),
            },
            Command::Commit { checkout_id } => match self.take_reservation(checkout_id) {
                Some(reservation) => {
                    self.sold += reservation.quantity;
                    self.finish(checkout_id.clone(), true);
                    Ok(true)
                }
                None if self.finished(checkout_id) == Some(true) => Ok(false),
                None if self.finished(checkout_id) == Some(false) => {
                    Err(InventoryError::AlreadyFinished)
                }
                None => Err(InventoryError::NoReservation),
            },
            Command::Adjust { delta } => {
                let available = self.available.saturating_add(*delta);
                if available < 0 {
                    return Err(InventoryError::Insufficient {
                        available: self.available,
                    });
                }
                if available.saturating_add(self.level().reserved) > MAX_QUANTITY {
                    return Err(InventoryError::TooMuch);
                }
                self.available = available;
                Ok(*delta != 0)
            }
        }
    }

    fn take_reservation(&mut self, checkout_id: &str) -> Option<Reservation> {
        let index = self
            .reservations
            .iter()
            .position(|r| r.checkout_id == checkout_id)?;
        Some(self.reservations.remove(index))
    }
}

/// A change to one SKU.
#[derive(Debug, Clone)]
pub enum Command {
    /// Hold `quantity` for `checkout_id` until `deadline` (all or nothing;
    /// repeating it is a no-op).
    Reserve {
        /// The checkout.
        checkout_id: String,
        /// Units, at least 1.
        quantity: i64,
        /// When the hold lapses.
        deadline: Timestamp,
    },
    /// Give the checkout's units back (no-op if it holds none).
    Release {
        /// The checkout.
        checkout_id: String,
    },
    /// Turn the checkout's reservation into a sale (repeating it is a no-op).
    Commit {
        /// The checkout.
        checkout_id: String,
    },
    /// A seller's restock (positive) or removal (negative); never below zero.
    Adjust {
        /// Change to `available`.
        delta: i64,
    },
}

/// Messages of the inventory actor.
pub enum InventoryMsg {
    /// Current stock (including changes whose flush is in flight).
    Get(RpcReplyPort<Result<StockLevel, InventoryError>>),
    /// Apply a change; answered once it is durable.
    Change(Command, RpcReplyPort<Result<StockLevel, InventoryError>>),
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
            InventoryMsg::Change(command, reply) => {
                let Some(stock) = state.stock.as_mut() else {
                    let _ = reply.send(Err(InventoryError::UnknownVariant));
                    return Ok(());
                };
                let now = Timestamp::now();
                // Lapsed holds go back first, even if their timer has not run.
                state.dirty |= stock.release_expired(now);
                match stock.apply(&command, now) {
                    // A refusal changed nothing: answer at once.
                    Err(refusal) => {
                        let _ = reply.send(Err(refusal));
                    }
                    Ok(changed) => {
                        let level = stock.level();
                        state.dirty |= changed;
                        state.pending.push(Box::new(move |flushed| {
                            let _ =
                                reply.send(flushed.map(|()| level).map_err(InventoryError::from));
                        }));
                        if matches!(command, Command::Reserve { .. }) {
                            arm_expiry(state, myself);
                        }
                        self.flush(state, myself).await?;
                    }
                }
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
                record_job(state.variant_id.as_bytes().to_vec(), stock, event),
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

/// The write job storing a SKU's record and its event.
fn record_job(
    key: Vec<u8>,
    stock: SkuStock,
    event: Option<EventBody>,
) -> impl Fn(&mut Tx<'_>) -> Result<(), StorageError> + Send + 'static {
    move |tx| {
        tx.put(TreeName::Stock, key.clone(), &stock)?;
        if let Some(event) = &event {
            tx.emit(event.clone());
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
        .write(record_job(id.as_bytes().to_vec(), stock, event))
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

/// The inventory of this node: stock per SKU, one actor each. Cheap to clone.
#[derive(Clone)]
pub struct Inventory {
    region: Region<InventoryEntity>,
    store: Store,
}

impl Inventory {
    /// Starts the inventory region over `store`.
    pub async fn start(store: Store, settings: RegionSettings) -> Result<Self, EntityError> {
        let region = Region::start(
            InventoryEntity {
                store: store.clone(),
            },
            settings,
        )
        .await?;
        Ok(Inventory { region, store })
    }

    /// Stages a new variant's opening stock inside a caller's write job, so a
    /// new item and its stock commit together (no actor exists yet).
    pub fn stage_opening_stock(
        tx: &mut Tx<'_>,
        item_id: &str,
        variant_id: &str,
        quantity: i64,
    ) -> Result<(), StorageError> {
        let stock = SkuStock {
            item_id: item_id.to_owned(),
            available: quantity,
            ..Default::default()
        };
        tx.put(TreeName::Stock, variant_id.as_bytes(), &stock)
    }

    /// Stock of each variant as last made durable by its actor, in the order
    /// asked (zero for unknown ones). The read model for item pages: no actor
    /// is activated and nothing queues behind reservations.
    pub async fn levels(&self, variant_ids: Vec<String>) -> Result<Vec<StockLevel>, StorageError> {
        let mut levels = Vec::with_capacity(variant_ids.len());
        for id in &variant_ids {
            let stock = self
                .store
                .get::<SkuStock>(TreeName::Stock, id.as_bytes())
                .await?;
            levels.push(stock.map(|s| s.level()).unwrap_or_default());
        }
        Ok(levels)
    }

    /// Current stock, from the SKU's actor.
    pub async fn get(&self, variant_id: &str) -> Result<StockLevel, InventoryError> {
        self.region.call(variant_id, InventoryMsg::Get).await?
    }

    /// Applies `command` to one SKU; answered once durable.
    pub async fn change(
        &self,
        variant_id: &str,
        command: Command,
    ) -> Result<StockLevel, InventoryError> {
        self.region
            .call(variant_id, |reply| {
                InventoryMsg::Change(command.clone(), reply)
            })
            .await?
    }

    /// Reserves `quantity` for `checkout_id` until `deadline`.
    pub async fn reserve(
        &self,
        variant_id: &str,
        checkout_id: &str,
        quantity: i64,
        deadline: Timestamp,
    ) -> Result<StockLevel, InventoryError> {
        let command = Command::Reserve {
            checkout_id: checkout_id.to_owned(),
            quantity,
            deadline,
        };
        self.change(variant_id, command).await
    }

    /// Releases `checkout_id`'s reservation.
    pub async fn release(
        &self,
        variant_id: &str,
        checkout_id: &str,
    ) -> Result<StockLevel, InventoryError> {
        self.change(
            variant_id,
            Command::Release {
                checkout_id: checkout_id.to_owned(),
            },
        )
        .await
    }

    /// Commits `checkout_id`'s reservation as sold.
    pub async fn commit(
        &self,
        variant_id: &str,
        checkout_id: &str,
    ) -> Result<StockLevel, InventoryError> {
        self.change(
            variant_id,
            Command::Commit {
                checkout_id: checkout_id.to_owned(),
            },
        )
        .await
    }

    /// Adds `delta` (negative to remove) to available stock.
    pub async fn adjust(&self, variant_id: &str, delta: i64) -> Result<StockLevel, InventoryError> {
        self.change(variant_id, Command::Adjust { delta }).await
    }

    /// Activates every SKU that holds reservations, so their deadlines are
    /// enforced after a restart even if nobody touches them; returns how many.
    pub async fn recover(&self) -> Result<usize, InventoryError> {
        let holding: Vec<String> = self
            .store
            .read(|trees| {
                let mut ids = Vec::new();
                for entry in trees.tree(TreeName::Stock).iter() {
                    let (key, value) = entry?;
                    let id = String::from_utf8_lossy(&key).into_owned();
                    // One unreadable record must not stop the others' recovery.
                    match crate::storage::codec::decode::<SkuStock>(&value) {
                        Ok(stock) if !stock.reservations.is_empty() => ids.push(id),
                        Ok(_) => {}
                        Err(e) => tracing::error!(sku = %id, error = %e, "unreadable stock record"),
                    }
                }
                Ok(ids)
            })
            .await?;
        let mut recovered = 0;
        for id in &holding {
            match self.get(id).await {
                Ok(_) => recovered += 1,
                Err(e) => {
                    tracing::warn!(sku = %id, error = %e, "could not re-arm reservation deadlines")
                }
            }
        }
        Ok(recovered)
    }

    /// SKU actors alive on this node.
    pub fn live(&self) -> usize {
        self.region.live()
    }

    /// Stops every SKU actor.
    pub async fn stop(&self) {
        self.region.stop().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn command() -> impl Strategy<Value = Command> {
        let checkout = (0..6u8).prop_map(|i| format!("c{i}"));
        prop_oneof![
            (checkout.clone(), 1..20i64, 0..3i64).prop_map(|(checkout_id, quantity, d)| {
                Command::Reserve {
                    checkout_id,
                    quantity,
                    deadline: Timestamp(d * 10),
                }
            }),
            checkout
                .clone()
                .prop_map(|checkout_id| Command::Release { checkout_id }),
            checkout.prop_map(|checkout_id| Command::Commit { checkout_id }),
            (-30..30i64).prop_map(|delta| Command::Adjust { delta }),
        ]
    }

    proptest! {
        /// Whatever the sequence, stock is conserved: what was put in
        /// (opening stock and adjustments) equals available + reserved + sold,
        /// and no count goes negative.
        #[test]
        fn stock_is_conserved(opening in 0..50i64, steps in proptest::collection::vec((command(), 0..40i64), 0..60)) {
            let mut stock = SkuStock { item_id: "i".into(), available: opening, ..Default::default() };
            let mut put_in = opening;
            for (command, now) in steps {
                let before = stock.clone();
                stock.release_expired(Timestamp(now));
                match stock.apply(&command, Timestamp(now)) {
                    Ok(_) => {
                        if let Command::Adjust { delta } = command {
                            put_in += delta;
                        }
                    }
                    Err(_) => {
                        let mut expected = before;
                        expected.release_expired(Timestamp(now));
                        prop_assert_eq!(&stock, &expected, "a refusal changes nothing");
                    }
                }
                let level = stock.level();
                prop_assert!(level.available >= 0 && level.reserved >= 0 && level.sold >= 0);
                prop_assert_eq!(level.available + level.reserved + level.sold, put_in);
            }
        }
    }
}
