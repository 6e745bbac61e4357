//! Sessions every node honours: the `agora_sessions` key-value bucket and
//! this node's copy of it.
//!
//! A sign-in puts its session (key: the hex SHA-256 of the token; value:
//! the codec's `Session`, so user id, role and expiry) before the token is
//! handed out; a sign-out deletes it before answering. Every node watches
//! the bucket, history first, into a map in memory, so checking a token is
//! a map lookup (no NATS, no storage read); a token the map does not know
//! (the node just started, or its watcher lags behind a sign-in made a
//! moment ago elsewhere) costs one `get` from the bucket. A deletion seen by
//! the watcher drops the map's copy and tells the node ([`on_revoked`]),
//! which closes its sockets of that session.
//!
//! Each copy carries the bucket revision it came from and only a later one
//! replaces it, so a `get` answered just before a sign-out cannot bring a
//! revoked session back after the watcher has dropped it. The bucket's
//! `max_age` is the session TTL: expired sessions leave it by themselves,
//! and a sweep drops them from the map. A bucket that NATS lost (a single
//! server replaced with its disk) lost every session: every node forgets
//! its copies, so all refuse them alike and users sign in again.
//!
//! [`on_revoked`]: SharedSessions::on_revoked

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::{self, stream::StorageType};
use futures::StreamExt;
use tokio::task::JoinHandle;

use super::session_copies::Copies;
use super::{connected, ClusterError, Unreachable};
use crate::domain::user::Session;
use crate::domain::Timestamp;
use crate::storage::codec;

/// The bucket sessions live in.
pub const SESSIONS_BUCKET: &str = "agora_sessions";
/// The longest one put, delete or get may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Wait before watching again after the watch ended (NATS restarted, the
/// bucket lost).
const REWATCH_AFTER: Duration = Duration::from_secs(1);
/// How often the watcher checks that the bucket is still the one it
/// watches (a watch on a bucket NATS lost waits forever, saying nothing).
const CHECK_BUCKET_EVERY: Duration = Duration::from_secs(2);
/// How often expired sessions and old revocations leave the map.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How long a revocation stays in the map: long enough that a `get`
/// answered before it cannot revive the session; after that a lookup asks
/// the bucket, which no longer has it.
const KEEP_REVOKED: Duration = Duration::from_secs(60);

/// What to do when a session is signed out elsewhere: `(user id, key)`.
type OnRevoked = Box<dyn Fn(&str, &[u8; 32]) + Send + Sync>;

/// The shared sessions and this node's watched copy. Cheap to clone.
#[derive(Clone)]
pub struct SharedSessions {
    inner: Arc<Inner>,
}

struct Inner {
    jetstream: jetstream::Context,
    ttl: Duration,
    /// Replaced when the watch finds the bucket gone.
    bucket: Mutex<kv::Store>,
    copies: Copies,
    /// When the bucket this node watches was created: a different time
    /// means NATS lost its store and the bucket was made anew.
    created: Mutex<Option<time::OffsetDateTime>>,
    on_revoked: OnceLock<OnRevoked>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl SharedSessions {
    /// Creates the bucket (or opens it; `max_age` = `ttl`, file storage, one
    /// value per key) and starts watching it.
    pub(super) async fn open(
        jetstream: jetstream::Context,
        ttl: Duration,
    ) -> Result<SharedSessions, ClusterError> {
        let bucket = open_bucket(&jetstream, ttl)
            .await
            .map_err(ClusterError::JetStream)?;
        let inner = Arc::new(Inner {
            jetstream,
            ttl,
            bucket: Mutex::new(bucket),
            copies: Copies::default(),
            created: Mutex::new(None),
            on_revoked: OnceLock::new(),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(inner.clone().watch());
        *inner.task.lock().unwrap() = Some(task);
        Ok(SharedSessions { inner })
    }

    /// Calls `f(user id, key)` for every session signed out on another node
    /// (set once; revocations before it is set tell nobody).
    pub fn on_revoked(&self, f: impl Fn(&str, &[u8; 32]) + Send + Sync + 'static) {
        let _ = self.inner.on_revoked.set(Box::new(f));
    }

    /// Puts `session` under `key`; once this returns, every node accepts it.
    pub async fn publish(&self, key: &[u8; 32], session: &Session) -> Result<(), Unreachable> {
        connected(&self.inner.jetstream)?;
        let value = codec::encode(session).map_err(|e| Unreachable(e.to_string()))?;
        let bucket = self.inner.bucket();
        let put = tokio::time::timeout(CALL_TIMEOUT, bucket.put(hex(key), value.into())).await;
        let revision = flatten(put)?;
        self.inner
            .copies
            .apply(*key, revision, Some(session.clone()));
        Ok(())
    }

    /// Deletes the session under `key`; once this returns, a node that
    /// reaches NATS refuses it as soon as its watcher sees the deletion.
    pub async fn revoke(&self, key: &[u8; 32]) -> Result<(), Unreachable> {
        connected(&self.inner.jetstream)?;
        let bucket = self.inner.bucket();
        let delete = tokio::time::timeout(CALL_TIMEOUT, bucket.delete(hex(key))).await;
        flatten(delete)?;
        // Final here: no later copy can bring it back.
        self.inner.copies.apply(*key, u64::MAX, None);
        Ok(())
    }

    /// The live (not signed out, not expired) session under `key`: from the
    /// map, else from the bucket. `Err`: the map does not know it and NATS
    /// did not answer.
    pub async fn find(&self, key: &[u8; 32]) -> Result<Option<Session>, Unreachable> {
        let session = match self.inner.copies.get(key) {
            Some(session) => session,
            None => self.fetch(key).await?,
        };
        Ok(session.filter(|s| s.expires_at > Timestamp::now()))
    }

    /// One `get` from the bucket, kept in the map when found. A miss is not
    /// kept: the key may be put a moment later by a sign-in elsewhere.
    async fn fetch(&self, key: &[u8; 32]) -> Result<Option<Session>, Unreachable> {
        connected(&self.inner.jetstream)?;
        metrics::counter!("agora_sessions_fetched_total").increment(1);
        let bucket = self.inner.bucket();
        let read = tokio::time::timeout(CALL_TIMEOUT, bucket.entry(hex(key))).await;
        let Some(entry) = flatten(read)? else {
            return Ok(None);
        };
        let Some(session) = decode(&entry) else {
            return Ok(None);
        };
        self.inner
            .copies
            .apply(*key, entry.revision, Some(session.clone()));
        Ok(Some(session))
    }

    /// Stops watching.
    pub fn stop(&self) {
        if let Some(task) = self.inner.task.lock().unwrap().take() {
            task.abort();
        }
    }
}

impl Inner {
    fn bucket(&self) -> kv::Store {
        self.bucket.lock().unwrap().clone()
    }

    /// Watches the bucket (history first) until aborted, watching again
    /// after any failure, and sweeps the map every [`SWEEP_EVERY`].
    async fn watch(self: Arc<Self>) {
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut check = tokio::time::interval(CHECK_BUCKET_EVERY);
        loop {
            let bucket = self.bucket();
            self.same_bucket().await;
            match bucket.watch_with_history(">").await {
                Ok(mut entries) => loop {
                    tokio::select! {
                        _ = check.tick() => if !self.same_bucket().await {
                            break;
                        },
                        entry = entries.next() => match entry {
                            Some(Ok(entry)) => self.seen(&entry),
                            Some(Err(e)) => {
                                tracing::warn!("session watch failed: {e}; watching again");
                                break;
                            }
                            None => break,
                        },
                        _ = sweep.tick() => self.copies.sweep(KEEP_REVOKED),
                    }
                },
                Err(e) => tracing::warn!("cannot watch {SESSIONS_BUCKET}: {e}; retrying"),
            }
            tokio::time::sleep(REWATCH_AFTER).await;
            // NATS may have come back without the bucket.
            if let Ok(bucket) = open_bucket(&self.jetstream, self.ttl).await {
                *self.bucket.lock().unwrap() = bucket;
            }
        }
    }

    /// Whether `bucket` is still the one this node watched (`true` when
    /// NATS does not say). A bucket created anew, or gone, means NATS lost
    /// its store (a replaced single server) and with it every session:
    /// every copy is forgotten, so every node refuses them alike, not only
    /// the nodes that never saw them.
    async fn same_bucket(&self) -> bool {
        let stream = format!("KV_{SESSIONS_BUCKET}");
        let read = tokio::time::timeout(CALL_TIMEOUT, self.jetstream.get_stream(stream)).await;
        let created = match read {
            Ok(Ok(stream)) => Some(stream.cached_info().created),
            Ok(Err(e)) if stream_not_found(&e) => None,
            _ => return true,
        };
        let before = match created {
            Some(created) => self.created.lock().unwrap().replace(created),
            None => self.created.lock().unwrap().take(),
        };
        let same = before.is_none() || before == created;
        if !same {
            tracing::warn!("{SESSIONS_BUCKET} was lost (NATS lost its store): every session ends");
            self.copies.clear();
        }
        same && created.is_some()
    }

    /// Applies one watched entry; a sign-out tells the node.
    fn seen(&self, entry: &kv::Entry) {
        let Some(key) = unhex(&entry.key) else { return };
        let session = match entry.operation {
            Operation::Put => match decode(entry) {
                Some(session) => Some(session),
                None => return,
            },
            Operation::Delete | Operation::Purge => None,
        };
        if let Some(revoked) = self.copies.apply(key, entry.revision, session) {
            if let Some(f) = self.on_revoked.get() {
                f(&revoked.user_id, &key);
            }
        }
    }
}

/// Creates the sessions bucket, or opens it (updating its `max_age`) if
/// another node did.
async fn open_bucket(jetstream: &jetstream::Context, ttl: Duration) -> Result<kv::Store, String> {
    let config = kv::Config {
        bucket: SESSIONS_BUCKET.to_owned(),
        description: "Agora sessions by SHA-256 of the token (user, role, expiry)".to_owned(),
        history: 1,
        num_replicas: super::task::replicas(),
        max_age: ttl,
        storage: StorageType::File,
        ..Default::default()
    };
    super::task::open_bucket(jetstream, config, CALL_TIMEOUT * 5).await
}

/// Whether NATS answered that the bucket's stream does not exist.
fn stream_not_found(error: &jetstream::context::GetStreamError) -> bool {
    match error.kind() {
        jetstream::context::GetStreamErrorKind::JetStream(e) => {
            e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
        }
        _ => false,
    }
}

/// A NATS call bounded by a timeout, as one result.
fn flatten<T, E: std::fmt::Display>(
    result: Result<Result<T, E>, tokio::time::error::Elapsed>,
) -> Result<T, Unreachable> {
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(Unreachable(e.to_string())),
        Err(_) => Err(Unreachable("timed out".into())),
    }
}

fn decode(entry: &kv::Entry) -> Option<Session> {
    match codec::decode::<Session>(&entry.value) {
        Ok(session) => Some(session),
        Err(e) => {
            tracing::warn!(key = %entry.key, "unreadable shared session: {e}");
            None
        }
    }
}

/// Lower-case hex of a session key (the bucket's key).
fn hex(key: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(64);
    for byte in key {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

/// A session key from its hex, if it is one.
fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_key_survives_its_hex_and_nothing_else_parses() {
        let key: [u8; 32] = std::array::from_fn(|i| (i * 7) as u8);
        assert_eq!(unhex(&hex(&key)), Some(key));
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(&"g".repeat(64)), None);
    }
}
