//! Accounts and sessions: registration, sign-in, token authentication,
//! profile changes. Passwords are Argon2id hashes; tokens are 256 random bits
//! handed to the client once and stored only as their SHA-256 (submodule
//! `sessions`: in this node's storage, or in a cluster in the bucket every
//! node shares). Failed sign-ins are throttled per email (submodule
//! `throttle`).

mod sessions;
mod throttle;

pub use throttle::ThrottleRules;

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::Semaphore;

use crate::cluster::{SharedSessions, Unreachable};
use crate::domain::user::{self, AddressInput, Role, User};
use crate::domain::{new_id, new_id_in, FieldErrors, Timestamp};
use crate::storage::{StorageError, Store, TreeName};

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Some fields are invalid.
    #[error("invalid fields")]
    Invalid(FieldErrors),
    /// Another account has this email.
    #[error("email already registered")]
    EmailTaken,
    /// Unknown email or wrong password (deliberately indistinguishable).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The session is gone (signed out, expired, or its user removed).
    #[error("not signed in")]
    Unauthenticated,
    /// Too many failed sign-ins for this email: attempts wait this long
    /// more, whatever the password.
    #[error("sign-ins for this email wait {0:?}")]
    Throttled(std::time::Duration),
    /// Too many password hashes are already running; try again shortly.
    #[error("too many sign-ins in progress")]
    Busy,
    /// Hashing failed or its worker died.
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// In a cluster: the shared sessions bucket did not answer, so the
    /// session was neither opened nor closed anywhere.
    #[error(transparent)]
    SessionsUnreachable(#[from] Unreachable),
}

/// Who is making a request, as proven by a valid session token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The user.
    pub user_id: String,
    /// The user's role.
    pub role: Role,
    /// SHA-256 of the token: the session's storage key.
    pub session_key: [u8; 32],
}

/// A registration request, fields as received.
#[derive(Debug, Default)]
pub struct Registration {
    /// Email address.
    pub email: Option<String>,
    /// Plain-text password, hashed here and dropped.
    pub password: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// `buyer` (default) or `seller`.
    pub role: Option<String>,
}

/// A newly opened session.
pub struct NewSession {
    /// The bearer token; shown to the client once, never stored.
    pub token: String,
    /// When it expires.
    pub expires_at: Timestamp,
    /// The signed-in user.
    pub user: User,
}

/// The accounts service. Cheap to clone.
#[derive(Clone)]
pub struct AccountService {
    store: Store,
    session_ttl_secs: u64,
    /// A real hash of a random password: unknown emails are verified against
    /// it so that sign-in takes as long whether or not the email exists.
    decoy_hash: Arc<String>,
    /// Bounds concurrent Argon2id runs (19 MiB and tens of ms of CPU each) to
    /// the number of cores, so a burst of sign-ins cannot exhaust memory or
    /// starve the blocking pool that sled reads share.
    hashing: Arc<Semaphore>,
    /// Failed sign-ins per email, and the waits they impose.
    throttle: Arc<throttle::SignInThrottle>,
    /// In a cluster, the sessions every node shares (`None`: this node's
    /// storage holds them).
    shared: Option<SharedSessions>,
}

/// How long a sign-in or registration waits for a hashing slot before 503.
const HASHING_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl AccountService {
    /// The service over `store`; sessions last `session_ttl_secs`.
    pub async fn new(store: Store, session_ttl_secs: u64) -> Result<Self, AccountError> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let hashing = Arc::new(Semaphore::new(cores));
        let decoy = blocking_hash(new_id()).await?;
        Ok(AccountService {
            store,
            session_ttl_secs,
            decoy_hash: Arc::new(decoy),
            hashing,
            throttle: Arc::new(throttle::SignInThrottle::new(ThrottleRules::default())),
            shared: None,
        })
    }

    /// The same service with sign-in throttling by `rules`.
    pub fn with_throttle(mut self, rules: ThrottleRules) -> Self {
        self.throttle = Arc::new(throttle::SignInThrottle::new(rules));
        self
    }

    /// Creates an account.
    pub async fn register(&self, registration: Registration) -> Result<User, AccountError> {
        let mut errors = FieldErrors::new();
        let email = match user::parse_email(registration.email.as_deref().unwrap_or("")) {
            Ok(email) => Some(email),
            Err(message) => {
                errors.add("email", message);
                None
            }
        };
        let password = registration.password.unwrap_or_default();
        if let Err(message) = user::check_password(&password) {
            errors.add("password", message);
        }
        let name = match registration.name.as_deref().map(user::parse_name) {
            Some(Ok(name)) => Some(name),
            Some(Err(message)) => {
                errors.add("name", message);
                None
            }
            None => {
                errors.add("name", "is required");
                None
            }
        };
        let role = match registration.role.as_deref() {
            None => Some(Role::Buyer),
            Some(raw) => Role::parse(raw).or_else(|| {
                errors.add("role", "must be \"buyer\" or \"seller\"");
                None
            }),
        };
        let (Some(email), Some(name), Some(role), true) = (email, name, role, errors.is_empty())
        else {
            return Err(AccountError::Invalid(errors));
        };
        let password_hash = {
            let _slot = self.hashing_slot().await?;
            blocking_hash(password).await?
        };
        let now = Timestamp::now();
        let user = User {
            // The account lives where its email is placed (see
            // `user::email_placement_key`).
            id: new_id_in(user::email_placement_key(&email)),
            email,
            name,
            role,
            password_hash,
            addresses: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        self.store
            .write(move |tx| {
                if tx.contains(TreeName::UsersByEmail, user.email.as_bytes())? {
                    return Err(AccountError::EmailTaken);
                }
                tx.put_raw(
                    TreeName::UsersByEmail,
                    user.email.as_bytes(),
                    user.id.as_bytes().to_vec(),
                );
                tx.put(TreeName::Users, user.id.as_bytes(), &user)?;
                Ok(user.clone())
            })
            .await
    }

    /// Checks credentials and opens a session.
    pub async fn sign_in(&self, email: &str, password: String) -> Result<NewSession, AccountError> {
        let email = email.trim().to_lowercase();
        let email_key = throttle::email_key(&email);
        self.refuse_if_throttled(&email_key)?;
        let found = self
            .store
            .read(move |trees| {
                let Some(id) = trees.tree(TreeName::UsersByEmail).get(email.as_bytes())? else {
                    return Ok(None);
                };
                trees.get::<User>(TreeName::Users, &id)
            })
            .await?;
        let hash = found.as_ref().map_or_else(
            || self.decoy_hash.as_str().to_owned(),
            |u| u.password_hash.clone(),
        );
        if password.len() > user::MAX_PASSWORD_BYTES {
            return Err(self.sign_in_failed(&email_key));
        }
        let matches = {
            let _slot = self.hashing_slot().await?;
            // Again, and this time the attempt is counted as a failure to
            // come until it is decided: guesses that queued for a slot, or
            // run at once on other cores, must not each get a hash.
            self.throttle.admit(&email_key).map_err(|wait| {
                metrics::counter!("agora_sign_in_throttled_total").increment(1);
                AccountError::Throttled(wait)
            })?;
            match blocking_verify(password, hash).await {
                Ok(matches) => matches,
                Err(e) => {
                    self.throttle.abandoned(&email_key);
                    return Err(e);
                }
            }
        };
        let user = match found {
            Some(user) if matches => user,
            _ => return Err(self.sign_in_failed(&email_key)),
        };
        self.throttle.succeeded(&email_key);
        self.open_session(user).await
    }

    /// `Err(Throttled)` while sign-ins for this email must wait.
    fn refuse_if_throttled(&self, key: &throttle::EmailKey) -> Result<(), AccountError> {
        self.throttle.check(key).map_err(|wait| {
            metrics::counter!("agora_sign_in_throttled_total").increment(1);
            AccountError::Throttled(wait)
        })
    }

    /// Counts, logs (the email only hashed) and throttles a failed sign-in.
    fn sign_in_failed(&self, key: &throttle::EmailKey) -> AccountError {
        let failures = self.throttle.failed(key);
        metrics::counter!("agora_sign_in_failures_total").increment(1);
        tracing::warn!(
            email_sha256 = %throttle::email_for_logs(key),
            failures,
            "sign-in failed"
        );
        AccountError::InvalidCredentials
    }

    async fn hashing_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, AccountError> {
        match tokio::time::timeout(HASHING_WAIT, self.hashing.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(AccountError::Busy),
        }
    }

    /// The user's own record.
    pub async fn profile(&self, user_id: &str) -> Result<User, AccountError> {
        self.store
            .get::<User>(TreeName::Users, user_id.as_bytes())
            .await?
            .ok_or(AccountError::Unauthenticated)
    }

    /// Changes the name and/or replaces the addresses.
    pub async fn update_profile(
        &self,
        user_id: &str,
        name: Option<String>,
        addresses: Option<Vec<AddressInput>>,
    ) -> Result<User, AccountError> {
        let mut errors = FieldErrors::new();
        let name = name.and_then(|raw| match user::parse_name(&raw) {
            Ok(name) => Some(name),
            Err(message) => {
                errors.add("name", message);
                None
            }
        });
        let addresses = addresses.map(|list| user::parse_addresses(list, &mut errors));
        if !errors.is_empty() {
            return Err(AccountError::Invalid(errors));
        }
        let id = user_id.to_owned();
        let now = Timestamp::now();
        self.store
            .write(move |tx| {
                let mut user: User = tx
                    .get(TreeName::Users, id.as_bytes())?
                    .ok_or(AccountError::Unauthenticated)?;
                if let Some(name) = &name {
                    user.name = name.clone();
                }
                if let Some(addresses) = &addresses {
                    user.addresses = addresses.clone();
                }
                user.updated_at = now;
                tx.put(TreeName::Users, id.as_bytes(), &user)?;
                Ok(user)
            })
            .await
    }
}

fn hash_password(password: &str) -> Result<String, AccountError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AccountError::Hashing(e.to_string()))
}

/// Argon2id with the crate's defaults (19 MiB, 2 passes): tens of
/// milliseconds of CPU, so it runs on the blocking pool.
async fn blocking_hash(password: String) -> Result<String, AccountError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| AccountError::Hashing(e.to_string()))?
}

async fn blocking_verify(password: String, hash: String) -> Result<bool, AccountError> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&hash).map_err(|e| AccountError::Hashing(e.to_string()))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| AccountError::Hashing(e.to_string()))?
}
