//! What one read of a peer's heartbeat key means: a [`Seen`] per peer,
//! live while its key changed within [`LIVENESS`] on this node's clock (so
//! clocks need not agree), gone once the key is deleted or expired.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use async_nats::jetstream::kv::{self, Operation};
use serde::{Deserialize, Serialize};

/// What a heartbeat says (JSON, readable with `nats kv get agora_nodes ID`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Heartbeat {
    pub(super) id: String,
    pub(super) http: SocketAddr,
    /// Milliseconds since the Unix epoch.
    pub(super) started: u64,
}

/// A peer whose key has not changed for this long is `down` (three missed
/// heartbeats: a node busy for a moment is not declared dead).
pub(super) const LIVENESS: Duration = Duration::from_secs(3);

/// A peer's key as last read.
pub(super) struct Seen {
    pub(super) heartbeat: Heartbeat,
    /// The key's revision: a new one is a new heartbeat.
    revision: u64,
    /// When this node saw the revision change (or, for the first read, when
    /// the server says it was written).
    changed: Instant,
    /// The key was deleted: the node left.
    left: bool,
}

impl Seen {
    /// Not gone, and its key changed within the liveness window.
    pub(super) fn is_live(&self) -> bool {
        !self.left && self.changed.elapsed() <= LIVENESS
    }
}

/// Records one read of `id`'s key.
pub(super) fn note(seen: &mut HashMap<String, Seen>, id: &str, entry: Option<kv::Entry>) {
    let entry = match entry {
        Some(entry) if entry.operation == Operation::Put => entry,
        _ => {
            if let Some(peer) = seen.get_mut(id) {
                peer.left = true;
            }
            return;
        }
    };
    if seen
        .get(id)
        .is_some_and(|peer| peer.revision == entry.revision && !peer.left)
    {
        return;
    }
    let Ok(heartbeat) = serde_json::from_slice::<Heartbeat>(&entry.value) else {
        return;
    };
    let changed = match seen.get(id) {
        // A revision seen before changed: now.
        Some(_) => Instant::now(),
        // First sight: as old as the server says it is, so a key a killed
        // node left behind does not read `up` for a whole window.
        None => {
            let age = (time::OffsetDateTime::now_utc() - entry.created).clamp(
                time::Duration::ZERO,
                time::Duration::try_from(LIVENESS).unwrap_or_default(),
            );
            Instant::now()
                .checked_sub(age.try_into().unwrap_or_default())
                .unwrap_or_else(Instant::now)
        }
    };
    seen.insert(
        id.to_owned(),
        Seen {
            heartbeat,
            revision: entry.revision,
            changed,
            left: false,
        },
    );
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::super::membership::BUCKET;
    use super::*;

    fn entry(revision: u64, age: Duration, operation: Operation) -> Option<kv::Entry> {
        let heartbeat = Heartbeat {
            id: "node-2".into(),
            http: SocketAddr::from(([127, 0, 0, 1], 8082)),
            started: 1,
        };
        Some(kv::Entry {
            bucket: BUCKET.into(),
            key: "node-2".into(),
            value: serde_json::to_vec(&heartbeat).unwrap().into(),
            revision,
            delta: 0,
            created: time::OffsetDateTime::now_utc() - age,
            operation,
            seen_current: true,
        })
    }

    fn live(seen: &HashMap<String, Seen>) -> bool {
        seen.get("node-2").is_some_and(Seen::is_live)
    }

    #[test]
    fn a_fresh_key_reads_live_and_one_a_killed_node_left_behind_does_not() {
        let mut seen = HashMap::new();
        note(
            &mut seen,
            "node-2",
            entry(7, Duration::from_millis(100), Operation::Put),
        );
        assert!(live(&seen));

        let mut seen = HashMap::new();
        note(
            &mut seen,
            "node-2",
            entry(7, Duration::from_secs(4), Operation::Put),
        );
        assert!(!live(&seen), "a key 4 s old is older than the window");
    }

    #[test]
    fn a_new_revision_revives_a_peer_and_a_deleted_key_means_it_left() {
        let mut seen = HashMap::new();
        note(
            &mut seen,
            "node-2",
            entry(7, Duration::from_secs(4), Operation::Put),
        );
        note(
            &mut seen,
            "node-2",
            entry(7, Duration::from_secs(4), Operation::Put),
        );
        assert!(!live(&seen), "the same revision again is no heartbeat");
        note(
            &mut seen,
            "node-2",
            entry(8, Duration::from_secs(4), Operation::Put),
        );
        assert!(
            live(&seen),
            "a new revision is seen now, whatever the clocks say"
        );

        note(
            &mut seen,
            "node-2",
            entry(9, Duration::ZERO, Operation::Delete),
        );
        assert!(!live(&seen));
        note(&mut seen, "node-2", None);
        assert!(!live(&seen));
        note(
            &mut seen,
            "node-2",
            entry(10, Duration::ZERO, Operation::Put),
        );
        assert!(live(&seen), "back after it left");
    }
}
