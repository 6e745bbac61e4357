//! The ractor side of the runtime: the actor hosting one entity, and the
//! supervisor of a kind.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::{Entity, EntityRef, Envelope, Region, Shared, REVIVE_BACKOFF};

/// The ractor actor hosting one entity.
pub(super) struct EntityActor<E: Entity> {
    pub(super) shared: Arc<Shared<E>>,
}

/// An active entity's state plus the runtime's bookkeeping.
pub(super) struct Running<E: Entity> {
    id: String,
    state: E::State,
    last_active: Instant,
}

impl<E: Entity> Actor for EntityActor<E> {
    type Msg = Envelope<E::Msg>;
    type State = Running<E>;
    type Arguments = String;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        id: String,
    ) -> Result<Running<E>, ActorProcessingErr> {
        let me = EntityRef {
            actor: myself.clone(),
        };
        let state = self.shared.entity.activate(&id, &me).await?;
        // Registered here, before any message can make the actor stop, so
        // the supervisor always finds what to forget.
        self.shared.ids.insert(myself.get_id(), id.clone());
        metrics::counter!("agora_actor_activations_total", "kind" => E::KIND).increment(1);
        metrics::gauge!("agora_actors_live", "kind" => E::KIND).increment(1.0);
        Ok(Running {
            id,
            state,
            last_active: Instant::now(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        running: &mut Running<E>,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            Envelope::Work(message, sent, taken, _permit) => {
                taken.store(true, Ordering::Release);
                self.shared
                    .mailbox_wait
                    .record(sent.elapsed().as_secs_f64());
                running.last_active = Instant::now();
                let me = EntityRef { actor: myself };
                self.shared
                    .entity
                    .handle(message, &mut running.state, &me)
                    .await?;
            }
            Envelope::IdleCheck => {
                let idle = running.last_active.elapsed() >= self.shared.settings.idle;
                if idle {
                    self.passivate(&myself, running);
                }
            }
            Envelope::Passivate(refused) => {
                if !self.passivate(&myself, running) && refused < PASSIVATE_RETRIES {
                    let delay = PASSIVATE_RETRY_DELAY * (u32::from(refused) + 1);
                    myself.send_after(delay, move || Envelope::Passivate(refused + 1));
                }
            }
        }
        Ok(())
    }
}

/// How many times a refused passivation request is tried again.
const PASSIVATE_RETRIES: u8 = 5;
/// The wait before the first retry (growing linearly).
const PASSIVATE_RETRY_DELAY: Duration = Duration::from_millis(10);

impl<E: Entity> EntityActor<E> {
    /// Stops the actor if the entity may passivate and no call holds it;
    /// returns whether it did.
    fn passivate(&self, myself: &ActorRef<Envelope<E::Msg>>, running: &Running<E>) -> bool {
        let done = self.shared.entity.can_passivate(&running.state)
            && self.shared.try_passivate(&running.id, myself.get_id());
        if done {
            metrics::counter!("agora_actor_passivations_total", "kind" => E::KIND).increment(1);
            myself.stop(Some("passivated".into()));
        }
        done
    }
}

/// The supervisor of one kind: forgets stopped entities so the next message
/// re-activates them, and never stops itself because a child did.
pub(super) struct KindSupervisor<E: Entity> {
    pub(super) shared: Weak<Shared<E>>,
}

/// The supervisor takes no messages of its own.
pub enum SupervisorMsg {}

impl ractor::Message for SupervisorMsg {}

impl<E: Entity> Actor for KindSupervisor<E> {
    type Msg = SupervisorMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Self::Msg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let Some(shared) = self.shared.upgrade() else {
            return Ok(());
        };
        match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => shared.forget(cell.get_id()),
            SupervisionEvent::ActorFailed(cell, error) => {
                tracing::warn!(kind = E::KIND, %error, "entity failed; it re-activates from storage");
                metrics::counter!("agora_actor_restarts_total", "kind" => E::KIND).increment(1);
                let id = shared
                    .ids
                    .get(&cell.get_id())
                    .map(|entry| entry.value().clone());
                shared.forget(cell.get_id());
                if let (true, Some(id)) = (E::REVIVE_AFTER_FAILURE, id) {
                    let region = Region { shared };
                    tokio::spawn(async move {
                        tokio::time::sleep(REVIVE_BACKOFF).await;
                        if let Err(e) = region.touch(&id).await {
                            tracing::warn!(kind = E::KIND, %id, error = %e, "revival after failure failed");
                        }
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }
}
