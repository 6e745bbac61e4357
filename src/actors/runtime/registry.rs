//! The registry of a region: one slot per active entity, the leases that
//! calls hold on slots (see the module docs for why), and the idle sweep.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use ractor::{ActorCell, ActorId, ActorRef};
use tokio::sync::{OnceCell, Semaphore};

use super::{Entity, Envelope, RegionSettings};

/// One registry entry: the actor (once activated) and the calls leasing it.
pub(super) struct Slot<E: Entity> {
    /// The entity's id, kept once here so a lease needs no copy of it.
    pub(super) id: String,
    pub(super) actor: OnceCell<ActorRef<Envelope<E::Msg>>>,
    pub(super) leases: AtomicUsize,
}

/// What a region's callers, its actors and its supervisor share.
pub(super) struct Shared<E: Entity> {
    pub(super) entity: E,
    pub(super) settings: RegionSettings,
    /// Metric handles resolved once: a labelled lookup per message cost
    /// measurable CPU on the hot path.
    pub(super) mailbox_wait: metrics::Histogram,
    pub(super) slots: DashMap<String, Arc<Slot<E>>>,
    pub(super) ids: DashMap<ActorId, String>,
    pub(super) supervisor: OnceLock<ActorCell>,
    pub(super) in_flight: Arc<Semaphore>,
}

/// A call's hold on a slot. Dropping it (also when the caller's future is
/// cancelled mid-activation) decrements the count and removes a slot that
/// never got an actor, so abandoned activations leak nothing.
pub(super) struct Lease<E: Entity> {
    pub(super) slot: Arc<Slot<E>>,
    pub(super) shared: Arc<Shared<E>>,
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

impl<E: Entity> Shared<E> {
    /// Drops the slot of a stopped actor (if it is still that actor's).
    pub(super) fn forget(&self, actor: ActorId) {
        if let Some((_, id)) = self.ids.remove(&actor) {
            self.slots.remove_if(&id, |_, slot| {
                slot.actor.get().map(|a| a.get_id()) == Some(actor)
            });
            metrics::gauge!("agora_actors_live", "kind" => E::KIND).decrement(1.0);
        }
    }

    /// Removes `id`'s slot if no call holds it and it is still `actor`'s.
    pub(super) fn try_passivate(&self, id: &str, actor: ActorId) -> bool {
        self.slots
            .remove_if(id, |_, slot| {
                slot.leases.load(Ordering::Acquire) == 0
                    && slot.actor.get().map(|a| a.get_id()) == Some(actor)
            })
            .is_some()
    }
}

/// The region's idle sweep: every half idle period, each active entity is
/// asked to check whether it has been idle long enough to passivate. One
/// task per region rather than a ticker per actor: an entity that lives for
/// one checkout would otherwise spawn (and cancel) a timer task of its own.
pub(super) async fn sweep_idle<E: Entity>(shared: std::sync::Weak<Shared<E>>) {
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
