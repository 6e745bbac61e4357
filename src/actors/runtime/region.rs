//! The region: the entities of one kind on this node, and the one way
//! callers reach them ([`Region::call`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorId, ActorRef, MessagingErr, RpcReplyPort};
use tokio::sync::{OnceCell, Semaphore};

use super::host::{EntityActor, KindSupervisor};
use super::registry::{sweep_idle, Lease, Shared, Slot};
use super::{Entity, EntityError, Envelope, RegionSettings};

/// The entities of one kind on this node. Cheap to clone.
pub struct Region<E: Entity> {
    pub(super) shared: Arc<Shared<E>>,
}

impl<E: Entity> Clone for Region<E> {
    fn clone(&self) -> Self {
        Region {
            shared: self.shared.clone(),
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
