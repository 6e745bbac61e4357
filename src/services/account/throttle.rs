//! Sign-in throttling per account, whatever the caller's address: after a
//! few failed sign-ins for one email, every further attempt for that email
//! waits, twice as long after each new failure, up to a ceiling.
//!
//! The wait applies to the right password too (else the throttle would tell
//! a guesser which guess was right) and to emails with no account (else it
//! would tell which emails have one). Counts live in memory only, keyed by
//! a hash of the email, in a cache of at most [`MAX_TRACKED_EMAILS`]: an
//! attacker cycling through millions of emails costs a bounded few MiB, and
//! the cache's eviction favours the often-hit entries of accounts under
//! attack over one-off misses. A restart forgets the counts.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Most emails whose failures are remembered (about 64 bytes each).
pub const MAX_TRACKED_EMAILS: usize = 100_000;
/// A count is forgotten this long after its last failure.
const FORGET_AFTER: Duration = Duration::from_secs(3_600);

/// When failed sign-ins start to wait, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleRules {
    /// Failures for one email before attempts wait; 0 turns throttling off.
    pub free_failures: u32,
    /// The wait after the `free_failures`-th failure; each further failure
    /// doubles it.
    pub first_wait: Duration,
    /// The ceiling of the wait.
    pub longest_wait: Duration,
}

impl Default for ThrottleRules {
    fn default() -> Self {
        ThrottleRules {
            free_failures: 5,
            first_wait: Duration::from_secs(1),
            longest_wait: Duration::from_secs(300),
        }
    }
}

impl ThrottleRules {
    /// The wait after `failures` failures in a row.
    fn wait_after(&self, failures: u32) -> Duration {
        if self.free_failures == 0 || failures < self.free_failures {
            return Duration::ZERO;
        }
        let doublings = (failures - self.free_failures).min(31);
        self.first_wait
            .saturating_mul(1u32 << doublings)
            .min(self.longest_wait)
    }
}

/// The state of one email.
#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    /// Attempts admitted to a password check and not yet decided: each
    /// counts as a failure to come, so concurrent guesses cannot all slip
    /// in before the first of them is recorded.
    pending: u32,
    last: Instant,
    wait_until: Instant,
}

/// An email's key: SHA-256 of the normalized email, truncated to 128 bits.
pub type EmailKey = [u8; 16];

/// The key of `email` (already trimmed and lower-cased).
pub fn email_key(email: &str) -> EmailKey {
    let digest = Sha256::digest(email.as_bytes());
    let mut key = [0; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// How logs name an email: the first 16 hex digits of its SHA-256, enough
/// to follow one account through the logs without writing it down.
pub fn email_for_logs(key: &EmailKey) -> String {
    key[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The throttle's memory of recent failures.
pub struct SignInThrottle {
    rules: ThrottleRules,
    /// A short lock around O(1) cache operations; never held across an
    /// await or a password hash.
    recent: Mutex<quick_cache::unsync::Cache<EmailKey, Failures>>,
}

impl SignInThrottle {
    /// An empty throttle with `rules`.
    pub fn new(rules: ThrottleRules) -> Self {
        SignInThrottle {
            rules,
            recent: Mutex::new(quick_cache::unsync::Cache::new(MAX_TRACKED_EMAILS)),
        }
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, quick_cache::unsync::Cache<EmailKey, Failures>> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(wait)` while attempts for `key` must wait that much longer.
    pub fn check(&self, key: &EmailKey) -> Result<(), Duration> {
        let now = Instant::now();
        let Some(failures) = self.recent().get(key).copied() else {
            return Ok(());
        };
        match failures.wait_until.checked_duration_since(now) {
            Some(left) if !left.is_zero() => Err(left),
            _ => Ok(()),
        }
    }

    /// Admits one attempt for `key` to a password check, or `Err(wait)`.
    /// The attempt is counted as a failure to come until [`Self::failed`],
    /// [`Self::succeeded`] or [`Self::abandoned`] settles it: if it would be
    /// the failure that starts a wait, the wait starts now, so at most
    /// `free_failures` guesses are ever checked before one (checked and
    /// recorded under one lock; concurrent attempts cannot all pass).
    pub fn admit(&self, key: &EmailKey) -> Result<(), Duration> {
        let now = Instant::now();
        let mut recent = self.recent();
        let mut failures = match recent.get(key).copied() {
            Some(f) if f.pending > 0 || now.duration_since(f.last) < FORGET_AFTER => f,
            _ => Failures {
                count: 0,
                pending: 0,
                last: now,
                wait_until: now,
            },
        };
        if let Some(left) = failures.wait_until.checked_duration_since(now) {
            if !left.is_zero() {
                return Err(left);
            }
        }
        failures.pending = failures.pending.saturating_add(1);
        let wait = self
            .rules
            .wait_after(failures.count.saturating_add(failures.pending));
        if !wait.is_zero() {
            failures.wait_until = now + wait;
        }
        recent.insert(*key, failures);
        Ok(())
    }

    /// Records a failed attempt; returns the failures in a row, this one
    /// included.
    pub fn failed(&self, key: &EmailKey) -> u32 {
        let now = Instant::now();
        let mut recent = self.recent();
        let (count, pending, reserved) = match recent.get(key) {
            Some(f) if f.pending > 0 || now.duration_since(f.last) < FORGET_AFTER => {
                (f.count.saturating_add(1), f.pending, f.wait_until)
            }
            _ => (1, 0, now),
        };
        let wait_until = reserved.max(now + self.rules.wait_after(count));
        recent.insert(
            *key,
            Failures {
                count,
                pending: pending.saturating_sub(1),
                last: now,
                wait_until,
            },
        );
        count
    }

    /// An admitted attempt ended without a verdict (the hash could not be
    /// computed): it no longer counts as a failure to come.
    pub fn abandoned(&self, key: &EmailKey) {
        let mut recent = self.recent();
        if let Some(mut failures) = recent.get(key).copied() {
            failures.pending = failures.pending.saturating_sub(1);
            recent.insert(*key, failures);
        }
    }

    /// Forgets `key`'s failures: its owner signed in.
    pub fn succeeded(&self, key: &EmailKey) {
        self.recent().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_start_after_the_free_failures_and_double_up_to_the_ceiling() {
        let rules = ThrottleRules {
            free_failures: 3,
            first_wait: Duration::from_secs(1),
            longest_wait: Duration::from_secs(10),
        };
        let waits: Vec<u64> = (1..=8).map(|n| rules.wait_after(n).as_secs()).collect();
        assert_eq!(waits, [0, 0, 1, 2, 4, 8, 10, 10]);
        assert_eq!(rules.wait_after(u32::MAX), Duration::from_secs(10));
        let off = ThrottleRules {
            free_failures: 0,
            ..rules
        };
        assert_eq!(off.wait_after(100), Duration::ZERO);
    }

    #[test]
    fn a_throttled_email_waits_others_do_not_and_success_resets() {
        let throttle = SignInThrottle::new(ThrottleRules {
            free_failures: 2,
            first_wait: Duration::from_secs(60),
            longest_wait: Duration::from_secs(600),
        });
        let (target, other) = (email_key("a@example.com"), email_key("b@example.com"));
        assert_eq!(throttle.failed(&target), 1);
        assert!(throttle.check(&target).is_ok());
        assert_eq!(throttle.failed(&target), 2);
        assert!(throttle.check(&target).unwrap_err() > Duration::from_secs(50));
        assert!(throttle.check(&other).is_ok());
        throttle.succeeded(&target);
        assert!(throttle.check(&target).is_ok());
        assert_eq!(email_for_logs(&target).len(), 16);
    }

    #[test]
    fn concurrent_attempts_are_admitted_only_up_to_the_free_failures() {
        let throttle = SignInThrottle::new(ThrottleRules {
            free_failures: 3,
            first_wait: Duration::from_secs(60),
            longest_wait: Duration::from_secs(600),
        });
        let key = email_key("target@example.com");
        // Fifty guesses arrive at once, none decided yet: only three get a
        // password check, the rest wait.
        let admitted = (0..50).filter(|_| throttle.admit(&key).is_ok()).count();
        assert_eq!(admitted, 3);
        for _ in 0..3 {
            throttle.failed(&key);
        }
        assert!(throttle.check(&key).unwrap_err() > Duration::from_secs(50));
        // An admitted attempt that succeeds clears everything.
        let other = email_key("owner@example.com");
        throttle.admit(&other).unwrap();
        throttle.succeeded(&other);
        assert!(throttle.check(&other).is_ok());
        // One that ends without a verdict gives its place back.
        let third = email_key("third@example.com");
        for _ in 0..2 {
            throttle.admit(&third).unwrap();
            throttle.failed(&third);
        }
        throttle.admit(&third).unwrap();
        assert!(
            throttle.admit(&third).is_err(),
            "the third guess is pending"
        );
        throttle.abandoned(&third);
        // Its reserved wait stands (it may have been a failure); once
        // decided as abandoned, the count is still two.
        assert_eq!(
            throttle.recent().get(&third).map(|f| (f.count, f.pending)),
            Some((2, 0))
        );
    }

    #[test]
    fn failures_across_more_emails_than_the_bound_keep_memory_bounded() {
        let throttle = SignInThrottle::new(ThrottleRules::default());
        for n in 0..(MAX_TRACKED_EMAILS + 20_000) {
            throttle.failed(&email_key(&format!("guess-{n}@example.com")));
        }
        assert!(throttle.recent().len() <= MAX_TRACKED_EMAILS);
    }
}
