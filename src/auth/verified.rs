//! Successful hash checks, remembered so that a client sending the same credentials with
//! every request (an agent desktop's Basic header, a service's bearer token) pays the
//! deliberately slow argon2 check once, not per request.
//!
//! Only a salted hash of what passed is kept, never the secret: BLAKE2b-256 over a random
//! per-process salt, the kind of account, the account name and the secret. An entry lives
//! for `ttl` after the check that made it; the cache holds at most `capacity` entries and
//! forgets the least recently used beyond that (a forgotten client pays one argon2 check
//! again).

use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use blake2::{Blake2b256, Digest};
use lru::LruCache;

/// What kind of account a cached check was for.
#[derive(Debug, Clone, Copy)]
pub enum AccountKind {
    /// A user's password.
    User,
    /// A service account's token.
    ServiceAccount,
}

/// The key of one remembered check.
pub type VerifiedKey = [u8; 32];

/// The cache of successful checks.
#[derive(Debug)]
pub struct VerifiedCache {
    salt: [u8; 32],
    ttl: Duration,
    entries: Mutex<LruCache<VerifiedKey, Instant>>,
}

impl VerifiedCache {
    /// Builds an empty cache with a fresh random salt.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        let mut salt = [0u8; 32];
        // Two v4 UUIDs: 244 bits from the operating system's random source.
        salt[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        salt[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            salt,
            ttl,
            entries: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// Returns the key for these credentials.
    pub fn key(&self, kind: AccountKind, account: &str, secret: &str) -> VerifiedKey {
        let tag: &[u8] = match kind {
            AccountKind::User => b"u",
            AccountKind::ServiceAccount => b"t",
        };
        // Lengths first, so that no two (account, secret) pairs hash the same input.
        Blake2b256::new()
            .chain_update(self.salt)
            .chain_update(tag)
            .chain_update((account.len() as u64).to_le_bytes())
            .chain_update(account.as_bytes())
            .chain_update(secret.as_bytes())
            .finalize()
            .into()
    }

    /// Returns whether these credentials passed a check less than `ttl` ago.
    pub fn contains(&self, key: &VerifiedKey, now: Instant) -> bool {
        let mut entries = self.lock();
        match entries.get(key) {
            Some(at) if now.saturating_duration_since(*at) < self.ttl => true,
            Some(_) => {
                entries.pop(key);
                false
            }
            None => false,
        }
    }

    /// Remembers a successful check.
    pub fn insert(&self, key: VerifiedKey, now: Instant) {
        self.lock().put(key, now);
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<VerifiedKey, Instant>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_cache_is_bounded() {
        let cache = VerifiedCache::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        let a = cache.key(AccountKind::User, "agent1", "pw");
        assert_ne!(a, cache.key(AccountKind::User, "agent1", "pw2"));
        assert_ne!(a, cache.key(AccountKind::ServiceAccount, "agent1", "pw"));
        assert_ne!(
            cache.key(AccountKind::User, "ab", "c"),
            cache.key(AccountKind::User, "a", "bc")
        );
        cache.insert(a, t0);
        assert!(cache.contains(&a, t0 + Duration::from_secs(9)));
        assert!(!cache.contains(&a, t0 + Duration::from_secs(10)));
        for (i, name) in ["x", "y", "z"].iter().enumerate() {
            cache.insert(cache.key(AccountKind::User, name, "pw"), t0);
            assert!(cache.lock().len() <= 2, "bounded after {i} inserts");
        }
        assert!(!cache.contains(&cache.key(AccountKind::User, "x", "pw"), t0));
    }

    #[test]
    fn two_caches_salt_differently() {
        let (a, b) = (
            VerifiedCache::new(1, Duration::from_secs(1)),
            VerifiedCache::new(1, Duration::from_secs(1)),
        );
        assert_ne!(
            a.key(AccountKind::User, "agent1", "pw"),
            b.key(AccountKind::User, "agent1", "pw")
        );
    }
}
