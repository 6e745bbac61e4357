//! Idempotency keys for `POST /checkout`, with Stripe's semantics: the same
//! key and body from the same user within 24 hours get the first response
//! again; another body gets 422; a duplicate of a request still running
//! gets 409.
//!
//! A key is claimed in one write job before the checkout starts, naming the
//! checkout and order ids the request will use, so even a retry after a
//! crash finds the order it may have created (and the gateway, idempotent by
//! order id, can never charge twice). The response is stored when it is
//! sent. Keys are kept 24 hours, then pruned by a background sweep.

use std::sync::Arc;

use dashmap::DashSet;
use sha2::{Digest, Sha256};

use crate::domain::Timestamp;
use crate::storage::{Record, StorageError, Store, TreeName};

/// How long a key is remembered.
pub const KEY_TTL_SECS: u64 = 24 * 3600;

/// Longest accepted key.
pub const MAX_KEY_LEN: usize = 255;

/// A response kept for replays.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// `application/json` or `application/problem+json`.
    pub content_type: String,
    /// The body.
    pub body: String,
}

/// One claimed key (the `idempotency_keys` tree).
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct IdempotencyRecord {
    /// SHA-256 of the request body in canonical form.
    pub body_hash: Vec<u8>,
    /// The checkout the request runs as.
    pub checkout_id: String,
    /// The order it creates.
    pub order_id: String,
    /// The first response, once sent.
    pub response: Option<StoredResponse>,
    /// When the key was first used.
    pub created_at: Timestamp,
}

impl Record for IdempotencyRecord {
    const KIND: &'static str = "idempotency-key";
    const VERSION: u8 = 1;
}

/// What a request with a key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use: run as this checkout and order.
    Fresh {
        /// Checkout id to use.
        checkout_id: String,
        /// Order id to use.
        order_id: String,
    },
    /// Seen with this body and answered: send the same answer.
    Replay(StoredResponse),
    /// Seen with another body.
    Mismatch,
    /// Seen with this body, not answered yet: running, or interrupted.
    Unanswered {
        /// The checkout it ran as.
        checkout_id: String,
        /// The order it would create.
        order_id: String,
    },
}

/// The key's storage key: SHA-256 of user id ‖ 0 ‖ key (keys are scoped per user).
fn storage_key(user_id: &str, key: &str) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(user_id.as_bytes());
    hasher.update([0]);
    hasher.update(key.as_bytes());
    hasher.finalize().to_vec()
}

/// SHA-256 of a request body's canonical bytes.
pub fn body_hash(canonical: &[u8]) -> Vec<u8> {
    Sha256::digest(canonical).to_vec()
}

/// The key store. Cheap to clone.
#[derive(Clone)]
pub struct IdempotencyKeys {
    store: Store,
    /// Keys claimed by requests still running in this process: a duplicate
    /// of one of these is "in progress" whatever its checkout has written
    /// so far. An unanswered key *not* in this set was left by a process
    /// that stopped.
    running: Arc<DashSet<Vec<u8>>>,
}

impl IdempotencyKeys {
    /// Keys kept in `store`.
    pub fn new(store: Store) -> Self {
        IdempotencyKeys {
            store,
            running: Arc::default(),
        }
    }

    /// Marks `key` as held by the calling request for as long as the
    /// returned guard lives (dropped on any exit: an answer, an error, a
    /// client that went away, a timeout); `None` if another request of this
    /// process holds it. Taken before the key is claimed in storage, so two
    /// duplicates can never both believe they own it.
    pub fn hold(&self, user_id: &str, key: &str) -> Option<Hold> {
        let id = storage_key(user_id, key);
        self.running.insert(id.clone()).then(|| Hold {
            running: self.running.clone(),
            id,
        })
    }

    /// Claims `key` for a request with `hash`, offering fresh ids. With
    /// `replacing`, an unanswered record of that checkout (left by a stopped
    /// process, its checkout known to have done nothing) is taken over.
    pub async fn claim(
        &self,
        user_id: &str,
        key: &str,
        hash: Vec<u8>,
        fresh: (String, String),
        replacing: Option<String>,
    ) -> Result<Claim, StorageError> {
        let id = storage_key(user_id, key);
        let now = Timestamp::now();
        self.store
            .write(move |tx| {
                let existing = tx
                    .get::<IdempotencyRecord>(TreeName::IdempotencyKeys, &id)?
                    .filter(|r| !expired(r, now))
                    .filter(|r| {
                        !(r.response.is_none() && Some(&r.checkout_id) == replacing.as_ref())
                    });
                Ok::<_, StorageError>(match existing {
                    Some(record) if record.body_hash != hash => Claim::Mismatch,
                    Some(IdempotencyRecord {
                        response: Some(response),
                        ..
                    }) => Claim::Replay(response),
                    Some(record) => Claim::Unanswered {
                        checkout_id: record.checkout_id,
                        order_id: record.order_id,
                    },
                    None => {
                        let record = IdempotencyRecord {
                            body_hash: hash.clone(),
                            checkout_id: fresh.0.clone(),
                            order_id: fresh.1.clone(),
                            response: None,
                            created_at: now,
                        };
                        tx.put(TreeName::IdempotencyKeys, id.clone(), &record)?;
                        Claim::Fresh {
                            checkout_id: fresh.0.clone(),
                            order_id: fresh.1.clone(),
                        }
                    }
                })
            })
            .await
    }

    /// Stores the response sent for `key` by the request that ran as
    /// `checkout_id` (and only if the key is still that request's).
    pub async fn answer(
        &self,
        user_id: &str,
        key: &str,
        checkout_id: &str,
        response: StoredResponse,
    ) -> Result<(), StorageError> {
        let id = storage_key(user_id, key);
        let checkout_id = checkout_id.to_owned();
        self.store
            .write(move |tx| {
                if let Some(mut record) = tx
                    .get::<IdempotencyRecord>(TreeName::IdempotencyKeys, &id)?
                    .filter(|r| r.checkout_id == checkout_id)
                {
                    record.response = Some(response.clone());
                    tx.put(TreeName::IdempotencyKeys, id.clone(), &record)?;
                }
                Ok(())
            })
            .await
    }

    /// Forgets `key` if it is still `checkout_id`'s (its request ended
    /// without a result worth keeping, a conflict), so a retry runs afresh.
    pub async fn release(
        &self,
        user_id: &str,
        key: &str,
        checkout_id: &str,
    ) -> Result<(), StorageError> {
        let id = storage_key(user_id, key);
        let checkout_id = checkout_id.to_owned();
        self.store
            .write(move |tx| {
                let ours = tx
                    .get::<IdempotencyRecord>(TreeName::IdempotencyKeys, &id)?
                    .is_some_and(|r| r.checkout_id == checkout_id);
                if ours {
                    tx.remove(TreeName::IdempotencyKeys, id.clone());
                }
                Ok(())
            })
            .await
    }

    /// Removes keys older than [`KEY_TTL_SECS`]; returns how many.
    pub async fn prune(&self) -> Result<usize, StorageError> {
        let now = Timestamp::now();
        let old: Vec<Vec<u8>> = self
            .store
            .read(move |trees| {
                let mut old = Vec::new();
                for entry in trees.tree(TreeName::IdempotencyKeys).iter() {
                    let (key, bytes) = entry?;
                    let record: IdempotencyRecord = crate::storage::codec::decode(&bytes)?;
                    if expired(&record, now) {
                        old.push(key.to_vec());
                    }
                }
                Ok(old)
            })
            .await?;
        let count = old.len();
        for chunk in old.chunks(512) {
            let chunk = chunk.to_vec();
            self.store
                .write(move |tx| {
                    for key in &chunk {
                        // Re-checked: the key may have been claimed anew.
                        let record = tx.get::<IdempotencyRecord>(TreeName::IdempotencyKeys, key)?;
                        if record.is_some_and(|r| expired(&r, now)) {
                            tx.remove(TreeName::IdempotencyKeys, key.clone());
                        }
                    }
                    Ok::<_, StorageError>(())
                })
                .await?;
        }
        Ok(count)
    }
}

/// A request's hold on a key (see [`IdempotencyKeys::hold`]).
pub struct Hold {
    running: Arc<DashSet<Vec<u8>>>,
    id: Vec<u8>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.running.remove(&self.id);
    }
}

fn expired(record: &IdempotencyRecord, now: Timestamp) -> bool {
    now.0.saturating_sub(record.created_at.0)
        > i64::try_from(KEY_TTL_SECS * 1000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StoreOptions;

    #[tokio::test]
    async fn keys_older_than_a_day_are_pruned_and_newer_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let keys = IdempotencyKeys::new(store.clone());
        let ids = || ("checkout".to_owned(), "order".to_owned());
        let fresh = keys.claim("u", "new", vec![1], ids(), None).await.unwrap();
        assert!(matches!(fresh, Claim::Fresh { .. }));
        let day_old = Timestamp(Timestamp::now().0 - (KEY_TTL_SECS as i64 + 60) * 1000);
        let old = IdempotencyRecord {
            body_hash: vec![1],
            checkout_id: "c0".into(),
            order_id: "o0".into(),
            response: None,
            created_at: day_old,
        };
        let key = storage_key("u", "old");
        store
            .write(move |tx| tx.put(TreeName::IdempotencyKeys, key.clone(), &old))
            .await
            .unwrap();

        assert_eq!(keys.prune().await.unwrap(), 1);
        let left = store
            .read(|t| Ok(t.tree(TreeName::IdempotencyKeys).len()))
            .await
            .unwrap();
        assert_eq!(left, 1, "the day-old key is gone, the new one kept");
        // The kept key still guards its body.
        let again = keys.claim("u", "new", vec![2], ids(), None).await.unwrap();
        assert_eq!(again, Claim::Mismatch);
    }
}
