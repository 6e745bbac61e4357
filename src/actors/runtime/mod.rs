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

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use ractor::concurrency::JoinHandle;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorId, ActorRef, MessagingErr, RpcReplyPort};
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

use crate::storage::StorageError;

mod host;

pub use host::SupervisorMsg;
use host::{EntityActor, KindSupervisor};

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

/// The region's idle sweep: every half idle period, each active entity is
/// asked to check whether it has been idle long enough to passivate. One
/// task per region rather than a ticker per actor: an entity that lives for
/// one checkout would otherwise spawn (and cancel) a timer task of its own.
async fn sweep_idle<E: Entity>(shared: std::sync::Weak<Shared<E>>) {
    let every = match shared.upgrade() {
        Some(shared) => (shared.settings.idle / 2).max(Duration::from_millis(5)),
        None => return,
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let actors: Vec<_> = shared
            .slots
            .iter()
            .filter_map(|slot| slot.value().actor.get().cloned())
            .collect();
        drop(shared);
        for actor in actors {
            let _ = actor.cast(Envelope::IdleCheck);
        }
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

/// One registry entry: the actor (once activated) and the calls leasing it.
struct Slot<E: Entity> {
    /// The entity's id, kept once here so a lease needs no copy of it.
    id: String,
    actor: OnceCell<ActorRef<Envelope<E::Msg>>>,
    leases: AtomicUsize,
}

struct Shared<E: Entity> {
    entity: E,
    settings: RegionSettings,
    /// Metric handles resolved once: a labelled lookup per message cost
    /// measurable CPU on the hot path.
    mailbox_wait: metrics::Histogram,
    slots: DashMap<String, Arc<Slot<E>>>,
    ids: DashMap<ActorId, String>,
    supervisor: OnceLock<ActorCell>,
    in_flight: Arc<Semaphore>,
}

/// The entities of one kind on this node. Cheap to clone.
pub struct Region<E: Entity> {
    shared: Arc<Shared<E>>,
}

impl<E: Entity> Clone for Region<E> {
    fn clone(&self) -> Self {
        Region {
            shared: self.shared.clone(),
        }
    }
}

/// A call's hold on a slot. Dropping it (also when the caller's future is
/// cancelled mid-activation) decrements the count and removes a slot that
/// never got an actor, so abandoned activations leak nothing.
struct Lease<E: Entity> {
    slot: Arc<Slot<E>>,
    shared: Arc<Shared<E>>,
}

impl<E: Entity> Drop for Lease<E> {
    fn drop(&mut self) {
        if self.slot.leases.fetch_sub(1, Ordering::AcqRel) == 1 && self.slot.actor.get().is_none() {
            self.shared.slots.remove_if(&self.slot.id, |_, slot| {
                Arc::ptr_eq(slot, &self.slot)
                    && slot.actor.get().is_none()
                    && slot.leases.load(Ordering::Acquire) == 0
            });
        }
    }
}

impl<E: Entity> Region<E> {
    /// Starts the kind's supervisor; entities activate on demand.
    pub async fn start(entity: E, settings: RegionSettings) -> Result<Region<E>, EntityError> {
        let permits = settings.max_in_flight.max(1);
        let shared = Arc::new(Shared {
            entity,
            settings,
            mailbox_wait: metrics::histogram!("agora_actor_mailbox_wait_seconds", "kind" => E::KIND),
            slots: DashMap::new(),
            ids: DashMap::new(),
            supervisor: OnceLock::new(),
            in_flight: Arc::new(Semaphore::new(permits)),
        });
        let supervisor = KindSupervisor {
            shared: Arc::downgrade(&shared),
        };
        let (actor, _) = Actor::spawn(None, supervisor, ())
            .await
            .map_err(|e| EntityError::Unavailable(format!("{} supervisor: {e}", E::KIND)))?;
        let _ = shared.supervisor.set(actor.get_cell());
        tokio::spawn(sweep_idle(Arc::downgrade(&shared)));
        Ok(Region { shared })
    }

    /// The entity behaviour (and whatever it holds, e.g. the store).
    pub fn entity(&self) -> &E {
        &self.shared.entity
    }

    /// Entities currently active on this node.
    pub fn live(&self) -> usize {
        self.shared.slots.len()
    }

    /// Sends a message built by `build` to entity `id` and waits for the reply.
    ///
    /// A message that could not be delivered because the actor had just
    /// stopped is re-sent to a fresh activation (it was never handled); a
    /// failure while handling, or no answer in time, is an error.
    pub async fn call<T, F>(&self, id: &str, build: F) -> Result<T, EntityError>
    where
        T: Send + 'static,
        F: Fn(RpcReplyPort<T>) -> E::Msg,
    {
        for _ in 0..3 {
            let permit = self
                .shared
                .in_flight
                .clone()
                .try_acquire_owned()
                .map_err(|_| {
                    metrics::counter!("agora_actor_overloaded_total", "kind" => E::KIND)
                        .increment(1);
                    EntityError::Overloaded
                })?;
            let lease = self.lease(id);
            let timeout = self.shared.settings.call_timeout;
            let actor = match lease.slot.actor.get() {
                Some(actor) => actor.clone(),
                None => match tokio::time::timeout(timeout, self.activate_detached(id)).await {
                    Ok(Ok(actor)) => actor,
                    Ok(Err(e)) => return Err(e),
                    Err(_) => return Err(EntityError::Timeout),
                },
            };
            let taken = Arc::new(AtomicBool::new(false));
            let sent = actor
                .call(
                    |reply| {
                        Envelope::Work(build(reply), Instant::now(), taken.clone(), Some(permit))
                    },
                    Some(timeout),
                )
                .await;
            match sent {
                Ok(CallResult::Success(value)) => return Ok(value),
                Ok(CallResult::Timeout) => return Err(EntityError::Timeout),
                Ok(CallResult::SenderError) if taken.load(Ordering::Acquire) => {
                    return Err(EntityError::Unavailable(format!(
                        "{} {id} failed while handling the call",
                        E::KIND
                    )))
                }
                // Never delivered, or dropped unhandled when the actor died:
                // forget that actor and re-send to a fresh activation.
                Ok(CallResult::SenderError)
                | Err(MessagingErr::SendErr(_))
                | Err(MessagingErr::ChannelClosed) => {
                    drop(lease);
                    self.forget(actor.get_id());
                }
                Err(e) => return Err(EntityError::Unavailable(e.to_string())),
            }
        }
        Err(EntityError::Unavailable(format!(
            "{} {id} kept stopping",
            E::KIND
        )))
    }

    /// Stops every entity and the supervisor.
    pub async fn stop(&self) {
        if let Some(supervisor) = self.shared.supervisor.get() {
            supervisor
                .stop_children_and_wait(None, Some(Duration::from_secs(5)))
                .await;
            supervisor.stop(None);
        }
    }

    /// Takes a lease on `id`'s slot, creating the slot if needed. The count
    /// goes up while the map's lock is held: see the module docs.
    fn lease(&self, id: &str) -> Lease<E> {
        let lease = |slot: Arc<Slot<E>>| Lease {
            slot,
            shared: self.shared.clone(),
        };
        if let Some(slot) = self.shared.slots.get(id) {
            slot.leases.fetch_add(1, Ordering::AcqRel);
            return lease(slot.clone());
        }
        let slot = self.shared.slots.entry(id.to_owned()).or_insert_with(|| {
            Arc::new(Slot {
                id: id.to_owned(),
                actor: OnceCell::new(),
                leases: AtomicUsize::new(0),
            })
        });
        slot.leases.fetch_add(1, Ordering::AcqRel);
        let slot = slot.clone();
        lease(slot)
    }

    /// Activates `id` if it is not active, without sending it anything.
    pub async fn touch(&self, id: &str) -> Result<(), EntityError> {
        let lease = self.lease(id);
        if lease.slot.actor.get().is_none() {
            drop(lease);
            self.activate_detached(id).await?;
        }
        Ok(())
    }

    /// Activates `id` in a task of its own that holds its own lease: a caller
    /// that gives up (timeout, disconnect) cannot cancel an activation half
    /// way and leave a started actor that no slot knows.
    async fn activate_detached(&self, id: &str) -> Result<ActorRef<Envelope<E::Msg>>, EntityError> {
        let (region, id) = (self.clone(), id.to_owned());
        let lease = self.lease(&id);
        let task = tokio::spawn(async move {
            let activated = lease
                .slot
                .actor
                .get_or_try_init(|| region.activate(&id))
                .await
                .cloned();
            drop(lease);
            activated
        });
        task.await
            .map_err(|e| EntityError::Unavailable(format!("activation task failed: {e}")))?
    }

    async fn activate(&self, id: &str) -> Result<ActorRef<Envelope<E::Msg>>, EntityError> {
        let supervisor = self
            .shared
            .supervisor
            .get()
            .cloned()
            .ok_or_else(|| EntityError::Unavailable(format!("{} region stopped", E::KIND)))?;
        let actor = EntityActor {
            shared: self.shared.clone(),
        };
        let (actor, _) = Actor::spawn_linked(None, actor, id.to_owned(), supervisor)
            .await
            .map_err(|e| {
                tracing::warn!(kind = E::KIND, id, error = %e, "activation failed");
                EntityError::Unavailable(format!("{} {id} could not be activated", E::KIND))
            })?;
        Ok(actor)
    }

    fn forget(&self, actor: ActorId) {
        self.shared.forget(actor);
    }
}

impl<E: Entity> Shared<E> {
    /// Drops the slot of a stopped actor (if it is still that actor's).
    fn forget(&self, actor: ActorId) {
        if let Some((_, id)) = self.ids.remove(&actor) {
            self.slots.remove_if(&id, |_, slot| {
                slot.actor.get().map(|a| a.get_id()) == Some(actor)
            });
            metrics::gauge!("agora_actors_live", "kind" => E::KIND).decrement(1.0);
        }
    }

    /// Removes `id`'s slot if no call holds it and it is still `actor`'s.
    fn try_passivate(&self, id: &str, actor: ActorId) -> bool {
        self.slots
            .remove_if(id, |_, slot| {
                slot.leases.load(Ordering::Acquire) == 0
                    && slot.actor.get().map(|a| a.get_id()) == Some(actor)
            })
            .is_some()
    }
}
