//! Sessions: opened at sign-in, checked on every signed-in request, closed
//! at sign-out. Each is stored under the SHA-256 of its token, never the
//! token itself.
//!
//! A single node keeps them in its storage (the `sessions` tree). In a
//! cluster they live in the bucket every node shares
//! ([`SharedSessions`]), so a token works on every node: a sign-in is
//! answered only once the bucket holds the session, a sign-out only once
//! the bucket has deleted it, and if NATS does not answer either one fails
//! (503) rather than succeed on this node alone. Checking a token then reads
//! this node's watched copy of the bucket (a map lookup), and the bucket
//! itself only for a token the copy does not know yet.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::{AccountError, AccountService, Authenticated, NewSession};
use crate::cluster::SharedSessions;
use crate::domain::user::{Session, User};
use crate::domain::Timestamp;
use crate::storage::TreeName;

impl AccountService {
    /// The same service keeping its sessions in `shared`, the bucket every
    /// node of the cluster shares.
    pub fn with_shared_sessions(mut self, shared: SharedSessions) -> Self {
        self.shared = Some(shared);
        self
    }

    /// The cluster's shared sessions (`None` on a single node).
    pub fn shared_sessions(&self) -> Option<&SharedSessions> {
        self.shared.as_ref()
    }

    /// Opens a session for `user`, who just proved who they are.
    pub(super) async fn open_session(&self, user: User) -> Result<NewSession, AccountError> {
        let token = new_token();
        let now = Timestamp::now();
        let session = Session {
            user_id: user.id.clone(),
            role: user.role,
            created_at: now,
            expires_at: now.plus_secs(self.session_ttl_secs),
        };
        let key = token_key(&token);
        let expires_at = session.expires_at;
        match &self.shared {
            Some(shared) => shared.publish(&key, &session).await?,
            None => {
                self.store
                    .write(move |tx| {
                        tx.put(TreeName::Sessions, &key[..], &session)?;
                        Ok::<_, AccountError>(())
                    })
                    .await?
            }
        }
        Ok(NewSession {
            token,
            expires_at,
            user,
        })
    }

    /// Ends a session; its token stops working as soon as this returns (in
    /// a cluster: here at once, on the other nodes as soon as their watchers
    /// see the deletion, within milliseconds).
    pub async fn sign_out(&self, session_key: [u8; 32]) -> Result<(), AccountError> {
        if let Some(shared) = &self.shared {
            shared.revoke(&session_key).await?;
            return Ok(());
        }
        self.store
            .write(move |tx| {
                tx.remove(TreeName::Sessions, &session_key[..]);
                Ok(())
            })
            .await
    }

    /// Deletes expired sessions from this node's storage; returns how many.
    /// Expired tokens are already refused on use, so this only reclaims
    /// space (`app` runs it hourly). The shared bucket drops them by itself
    /// (its `max_age` is the session TTL).
    pub async fn remove_expired_sessions(&self) -> Result<usize, AccountError> {
        let now = Timestamp::now();
        let expired: Vec<Vec<u8>> = self
            .store
            .read(move |trees| {
                let mut keys = Vec::new();
                for entry in trees.tree(TreeName::Sessions).iter() {
                    let (key, value) = entry?;
                    let session: Session = crate::storage::codec::decode(&value)?;
                    if session.expires_at <= now {
                        keys.push(key.to_vec());
                    }
                }
                Ok(keys)
            })
            .await?;
        let count = expired.len();
        for chunk in expired.chunks(1_000) {
            let chunk = chunk.to_vec();
            self.store
                .write(move |tx| {
                    for key in &chunk {
                        tx.remove(TreeName::Sessions, key.clone());
                    }
                    Ok::<_, AccountError>(())
                })
                .await?;
        }
        Ok(count)
    }

    /// Resolves a bearer token; `None` if it is unknown, signed out or
    /// expired. `Err` when storage fails, or in a cluster when the token is
    /// new to this node and NATS does not answer.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Authenticated>, AccountError> {
        // Tokens we issue are 43 base64url characters; anything else cannot
        // match, so spare the lookup.
        if token.len() != 43
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Ok(None);
        }
        let key = token_key(token);
        Ok(self.live_session(&key).await?.map(|s| Authenticated {
            user_id: s.user_id,
            role: s.role,
            session_key: key,
        }))
    }

    /// Whether the session stored under `session_key` is still valid (not
    /// signed out, not expired): for connections that outlive a request.
    pub async fn session_is_valid(&self, session_key: &[u8; 32]) -> Result<bool, AccountError> {
        Ok(self.live_session(session_key).await?.is_some())
    }

    /// The session under `key` unless it is gone or expired.
    async fn live_session(&self, key: &[u8; 32]) -> Result<Option<Session>, AccountError> {
        if let Some(shared) = &self.shared {
            return Ok(shared.find(key).await?);
        }
        let session = self.store.get::<Session>(TreeName::Sessions, key).await?;
        Ok(session.filter(|s| s.expires_at > Timestamp::now()))
    }
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn token_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}
