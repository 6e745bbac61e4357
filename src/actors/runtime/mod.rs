//! The entity runtime: virtual actors on ractor.
//!
//! Code asks a [`Region`] for an entity by id and calls it; it never holds an
//! actor reference. The first message activates the entity (its
//! [`Entity::activate`] loads state from storage), an entity idle for
//! `idle` passivates (stops and leaves the registry), and an entity that
//! panics or errs is dropped by its kind's supervisor and re-activated from
//! storage by the next message. Because callers only see `Region::call`, the
//! cluster can later route a call to another node's region without touching
//! them.
//!
//! Why leases: a registry slot counts the calls in flight on it. Passivation
//! removes a slot only when that count is zero, under the same map lock that
//! callers take to lease it, so a message racing passivation either reaches
//! the old actor before it decides to stop, or finds no slot and activates a
//! fresh one, which cannot start while the old one still holds the slot. No
//! message is lost and no two actors ever own one entity.
//!
//! Files: this one holds the contract (the [`Entity`] trait, the envelope,
//! the errors and settings); `region.rs` the [`Region`] callers use;
//! `registry.rs` the slots, their leases and the idle sweep; `host.rs` the
//! ractor actor hosting one entity and the kind's supervisor.

use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::concurrency::JoinHandle;
use ractor::ActorRef;
use tokio::sync::OwnedSemaphorePermit;

use crate::storage::StorageError;

mod host;
mod region;
mod registry;

pub use host::SupervisorMsg;
pub use region::Region;
use registry::Shared;

/// Why a call to an entity failed. Each maps to a 503 for HTTP callers.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EntityError {
    /// Too many calls in flight for this kind (bounded ingress).
    #[error("too many requests in flight")]
    Overloaded,
    /// The entity did not answer within the call timeout.
    #[error("the entity did not answer in time")]
    Timeout,
    /// The entity could not be activated, or failed while handling the call.
    #[error("entity unavailable: {0}")]
    Unavailable(String),
    /// The entity lives on another node, which nobody answers for (down,
    /// frozen and dropped, or starting).
    #[error("node {0}, which holds the entity, is unavailable")]
    NodeUnavailable(String),
    /// Storage failed inside the entity.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A kind of entity: how to load one, and how it handles its messages.
///
/// Contract: `handle` persists every change (and its events) before it
/// replies, so a crash or passivation at any point loses nothing that was
/// acknowledged.
pub trait Entity: Send + Sync + Sized + 'static {
    /// Kind name, for metrics and logs (`inventory`, `cart`).
    const KIND: &'static str;
    /// What callers send.
    type Msg: Send + 'static;
    /// The live state of one entity.
    type State: Send + 'static;

    /// Loads (or creates) the state of entity `id`; runs in `pre_start`.
    fn activate(
        &self,
        id: &str,
        myself: &EntityRef<Self>,
    ) -> impl Future<Output = Result<Self::State, EntityError>> + Send;

    /// Handles one message. An `Err` fails the actor: callers still waiting
    /// get an error and the next message re-activates it from storage.
    fn handle(
        &self,
        message: Self::Msg,
        state: &mut Self::State,
        myself: &EntityRef<Self>,
    ) -> impl Future<Output = Result<(), EntityError>> + Send;

    /// Whether the entity may passivate now (e.g. no timers that must fire).
    fn can_passivate(&self, _state: &Self::State) -> bool {
        true
    }

    /// Whether the runtime re-activates a failed entity by itself (after
    /// [`REVIVE_BACKOFF`]) instead of waiting for its next message: for kinds
    /// whose state holds timers (reservation and payment deadlines) that must
    /// fire even if nobody writes to them.
    const REVIVE_AFTER_FAILURE: bool = false;
}

/// How long after a failure the runtime re-activates an entity of a kind that
/// asks for it: long enough not to spin on a persistent fault.
pub const REVIVE_BACKOFF: Duration = Duration::from_secs(1);

/// What the actor's mailbox carries.
pub enum Envelope<M> {
    /// A caller's message, with the time it was sent (for mailbox wait) and
    /// a flag the actor sets when it starts handling it: a caller whose reply
    /// was dropped can then tell "never handled, safe to re-send" (the actor
    /// died with it still queued) from "failed while handling". The
    /// in-flight permit travels with the message: it is freed when the actor
    /// has handled (or dropped) the message, not when a caller gives up, so a
    /// stalled actor cannot be fed without bound by callers timing out.
    Work(M, Instant, Arc<AtomicBool>, Option<OwnedSemaphorePermit>),
    /// Periodic idleness check.
    IdleCheck,
    /// The entity asked to passivate now (its work is done); refused, like
    /// an idle check, while a call holds it or it may not passivate. The
    /// count is how many times it was refused: the caller whose reply ended
    /// the work usually still holds its lease for a moment, so a refused
    /// request is tried again shortly, a few times.
    Passivate(u8),
}

// Local-only messages: with ractor's `cluster` feature there is no blanket
// impl, and entity messages must never be remote (the region is, later).
impl<M: Send + 'static> ractor::Message for Envelope<M> {}

/// An entity's handle to itself, for timers and self-messages.
pub struct EntityRef<E: Entity> {
    actor: ActorRef<Envelope<E::Msg>>,
}

impl<E: Entity> Clone for EntityRef<E> {
    fn clone(&self) -> Self {
        EntityRef {
            actor: self.actor.clone(),
        }
    }
}

impl<E: Entity> EntityRef<E> {
    /// Sends a message to this entity (dropped if it has stopped).
    pub fn tell(&self, message: E::Msg) {
        let _ = self.actor.cast(Envelope::Work(
            message,
            Instant::now(),
            Arc::default(),
            None,
        ));
    }

    /// Sends `message()` to this entity after `delay`.
    pub fn tell_after(
        &self,
        delay: Duration,
        message: impl FnOnce() -> E::Msg + Send + 'static,
    ) -> JoinHandle<()> {
        let actor = self.actor.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = actor.cast(Envelope::Work(
                message(),
                Instant::now(),
                Arc::default(),
                None,
            ));
        })
    }

    /// Asks the runtime to passivate this entity once the current message is
    /// handled, instead of waiting out the idle period: for entities whose
    /// work is done (a finished checkout) and that would only hold memory.
    pub fn passivate(&self) {
        let _ = self.actor.cast(Envelope::Passivate(0));
    }
}

/// Tuning of a region.
#[derive(Debug, Clone)]
pub struct RegionSettings {
    /// Idle time after which an entity passivates.
    pub idle: Duration,
    /// How long a caller waits for an answer.
    pub call_timeout: Duration,
    /// Calls in flight per kind before callers get [`EntityError::Overloaded`].
    pub max_in_flight: usize,
}

impl Default for RegionSettings {
    fn default() -> Self {
        RegionSettings {
            idle: Duration::from_secs(60),
            call_timeout: Duration::from_secs(5),
            max_in_flight: 50_000,
        }
    }
}
