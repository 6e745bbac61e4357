//! The node's status for operators (`/ready`): whether storage takes writes
//! and how far the event log has grown, so the handler needs no store.

use crate::storage::Store;

/// Storage as `/ready` reports it. Cheap to clone.
#[derive(Clone)]
pub struct NodeStatus {
    store: Store,
}

impl NodeStatus {
    /// The status of `store`.
    pub fn new(store: Store) -> Self {
        NodeStatus { store }
    }

    /// Whether storage still accepts writes (false once it is shutting
    /// down or its writer failed).
    pub fn accepts_writes(&self) -> bool {
        self.store.is_writable()
    }

    /// The sequence number of the newest durable event.
    pub fn newest_event(&self) -> u64 {
        *self.store.event_watch().borrow()
    }
}
