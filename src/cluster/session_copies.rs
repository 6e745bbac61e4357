//! This node's copies of the shared sessions, by session key: what the
//! watcher and the bucket's `get`s told it, each with the bucket revision
//! it came from, so a late answer never overwrites newer news.

use std::time::{Duration, Instant};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use crate::domain::user::Session;
use crate::domain::Timestamp;

/// One session as this node knows it.
pub(super) struct Known {
    /// The bucket revision this copy came from (`u64::MAX`: revoked here).
    revision: u64,
    /// `None`: signed out.
    session: Option<Session>,
    /// When this copy was taken (revocations are dropped after a while).
    at: Instant,
}

/// This node's copies, by session key.
#[derive(Default)]
pub(super) struct Copies(DashMap<[u8; 32], Known>);

impl Copies {
    /// The copy under `key`: `Some(None)` when it was signed out, `None`
    /// when this node knows nothing of it.
    pub(super) fn get(&self, key: &[u8; 32]) -> Option<Option<Session>> {
        self.0.get(key).map(|known| known.session.clone())
    }

    /// Records `session` at `revision` unless the map holds a later copy;
    /// returns the session this revoked, if it revoked a live one.
    pub(super) fn apply(
        &self,
        key: [u8; 32],
        revision: u64,
        session: Option<Session>,
    ) -> Option<Session> {
        let fresh = Known {
            revision,
            session,
            at: Instant::now(),
        };
        match self.0.entry(key) {
            Entry::Occupied(mut entry) if entry.get().revision < revision => {
                let old = std::mem::replace(entry.get_mut(), fresh);
                let revoked = entry.get().session.is_none();
                old.session.filter(|_| revoked)
            }
            Entry::Occupied(_) => None,
            Entry::Vacant(entry) => {
                entry.insert(fresh);
                None
            }
        }
    }

    /// Drops expired sessions and revocations older than `keep_revoked`,
    /// and reports how many copies are left (`agora_sessions_cached`).
    pub(super) fn sweep(&self, keep_revoked: Duration) {
        let now = Timestamp::now();
        self.0.retain(|_, known| match &known.session {
            Some(session) => session.expires_at > now,
            None => known.at.elapsed() < keep_revoked,
        });
        metrics::gauge!("agora_sessions_cached").set(self.0.len() as f64);
    }

    /// Forgets every copy.
    pub(super) fn clear(&self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::user::Role;

    fn session(expires_in: i64) -> Session {
        let now = Timestamp::now();
        Session {
            user_id: "u1".into(),
            role: Role::Buyer,
            created_at: now,
            expires_at: Timestamp(now.0 + expires_in),
        }
    }

    #[test]
    fn a_copy_fetched_before_a_sign_out_cannot_bring_the_session_back() {
        let copies = Copies::default();
        let key = [1; 32];
        assert!(copies.apply(key, 5, Some(session(60_000))).is_none());
        // The watcher sees the sign-out (revision 7) and reports it once.
        let revoked = copies.apply(key, 7, None).expect("a live session revoked");
        assert_eq!(revoked.user_id, "u1");
        assert!(copies.apply(key, 7, None).is_none());
        // A get answered before the sign-out lands late: ignored.
        copies.apply(key, 5, Some(session(60_000)));
        assert!(matches!(copies.get(&key), Some(None)));
    }

    #[test]
    fn a_sign_out_made_here_is_final_and_tells_nobody_again() {
        let copies = Copies::default();
        let key = [2; 32];
        copies.apply(key, 3, Some(session(60_000)));
        assert!(copies.apply(key, u64::MAX, None).is_some());
        // The watcher's news of the same deletion comes later, and lower.
        assert!(copies.apply(key, 4, None).is_none());
        assert!(matches!(copies.get(&key), Some(None)));
    }

    #[test]
    fn the_sweep_drops_expired_sessions_and_old_revocations_only() {
        let copies = Copies::default();
        copies.apply([1; 32], 1, Some(session(60_000)));
        copies.apply([2; 32], 2, Some(session(-1)));
        copies.apply([3; 32], 3, None);
        copies.sweep(Duration::from_secs(60));
        assert_eq!(copies.0.len(), 2, "the expired session went");
        copies.sweep(Duration::ZERO);
        assert_eq!(copies.get(&[1; 32]).map(|s| s.is_some()), Some(true));
        assert_eq!(copies.0.len(), 1, "the revocation went");
    }
}
