//! The failed-sign-in throttle: repeated failures for one user name, or from one client
//! address, make further attempts wait a growing delay, as identity providers do
//! (Keycloak's brute-force detection, Active Directory's lockout).
//!
//! Each key keeps a small record: failures since the window started, the last failure, and
//! until when attempts are refused. The first `max_failures` failures cost nothing; each one
//! after that locks the key for `lockout`, doubled per further failure up to `max_lockout`.
//! Attempts refused while locked are not checked and not counted, so a lockout always ends;
//! the next failure after it doubles the delay. A key with no failure for `window` starts
//! over. A successful check clears its user name's record (not its address's: one good
//! password does not vouch for everything else sent from that address).
//!
//! Bounds: user names are tracked only for users the directory knows (so the table is as
//! large as the directory, whatever names an attacker sends); addresses are tracked in an
//! LRU of `tracked_addresses` entries, and beyond it the address that failed least recently
//! is forgotten (an attacker with more addresses than that can make the gateway forget older
//! ones, but never grow it).
//!
//! Each key is logged once per window, when it is first locked.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lru::LruCache;

/// When attempts are refused.
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    /// Failures per user name before its attempts are delayed; 0 turns the per-user throttle off.
    pub max_failures: u32,
    /// Failures per client address before its attempts are delayed; 0 turns it off.
    pub max_failures_per_address: u32,
    /// The first delay; doubled with each further failure.
    pub lockout: Duration,
    /// The longest delay.
    pub max_lockout: Duration,
    /// A key with no failure for this long starts over.
    pub window: Duration,
    /// Client addresses tracked at once.
    pub tracked_addresses: usize,
}

/// What a refused attempt was refused for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    /// The user name has too many recent failures.
    User(Duration),
    /// The client address has too many recent failures.
    Address(Duration),
}

/// One key's failures.
#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last_failure: Instant,
    locked_until: Option<Instant>,
    logged: bool,
}

impl Record {
    fn new(now: Instant) -> Self {
        Self {
            failures: 0,
            last_failure: now,
            locked_until: None,
            logged: false,
        }
    }

    /// How long attempts are still refused.
    fn remaining(&self, now: Instant) -> Option<Duration> {
        self.locked_until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    /// Counts a failure; returns the lockout it starts, and whether it is the first of the
    /// window (to log once).
    fn fail(
        &mut self,
        now: Instant,
        max: u32,
        policy: &ThrottlePolicy,
    ) -> Option<(Duration, bool)> {
        if now.saturating_duration_since(self.last_failure) > policy.window
            && self.remaining(now).is_none()
        {
            *self = Self::new(now);
        }
        self.failures = self.failures.saturating_add(1);
        self.last_failure = now;
        if self.failures < max {
            return None;
        }
        let doublings = (self.failures - max).min(30);
        let delay = policy
            .lockout
            .saturating_mul(1 << doublings)
            .min(policy.max_lockout);
        self.locked_until = Some(now + delay);
        let first = !self.logged;
        self.logged = true;
        Some((delay, first))
    }
}

/// Failure records per user name and per client address.
#[derive(Debug)]
pub struct Throttle {
    policy: ThrottlePolicy,
    users: Mutex<crate::core::FastMap<Arc<str>, Record>>,
    addresses: Mutex<LruCache<IpAddr, Record>>,
}

impl Throttle {
    /// Builds an empty throttle.
    pub fn new(policy: ThrottlePolicy) -> Self {
        let capacity = NonZeroUsize::new(policy.tracked_addresses).unwrap_or(NonZeroUsize::MIN);
        Self {
            policy,
            users: Mutex::new(Default::default()),
            addresses: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// Returns how long attempts from this address are still refused, if they are.
    pub fn address_locked(&self, address: IpAddr, now: Instant) -> Option<Locked> {
        let addresses = lock(&self.addresses);
        let remaining = addresses.peek(&address)?.remaining(now)?;
        Some(Locked::Address(remaining))
    }

    /// Returns how long attempts for this user name are still refused, if they are.
    pub fn user_locked(&self, user: &str, now: Instant) -> Option<Locked> {
        let users = lock(&self.users);
        let remaining = users.get(user)?.remaining(now)?;
        Some(Locked::User(remaining))
    }

    /// Counts a failed check: for the user name when the directory knows it, and for the
    /// client address when there is one.
    pub fn failed(&self, user: Option<&Arc<str>>, address: Option<IpAddr>, now: Instant) {
        let policy = &self.policy;
        if let Some(user) = user
            && policy.max_failures > 0
        {
            let mut users = lock(&self.users);
            let record = users
                .entry(user.clone())
                .or_insert_with(|| Record::new(now));
            if let Some((delay, true)) = record.fail(now, policy.max_failures, policy) {
                tracing::warn!(
                    user = %user,
                    failures = record.failures,
                    lockout_ms = delay.as_millis() as u64,
                    "repeated failed sign-ins for this user: further attempts are delayed"
                );
            }
        }
        if let Some(address) = address
            && policy.max_failures_per_address > 0
        {
            let mut addresses = lock(&self.addresses);
            let record = addresses.get_or_insert_mut(address, || Record::new(now));
            if let Some((delay, true)) = record.fail(now, policy.max_failures_per_address, policy) {
                tracing::warn!(
                    %address,
                    failures = record.failures,
                    lockout_ms = delay.as_millis() as u64,
                    "repeated failed sign-ins from this address: further attempts are delayed"
                );
            }
        }
    }

    /// Clears a user name's record after a successful check.
    pub fn succeeded(&self, user: &str) {
        if self.policy.max_failures > 0 {
            lock(&self.users).remove(user);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The records are plain counters: a panic elsewhere cannot leave them inconsistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy {
            max_failures: 3,
            max_failures_per_address: 5,
            lockout: Duration::from_secs(1),
            max_lockout: Duration::from_secs(10),
            window: Duration::from_secs(60),
            tracked_addresses: 2,
        }
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 9));

    #[test]
    fn a_user_is_locked_after_max_failures_with_a_growing_delay() {
        let throttle = Throttle::new(policy());
        let user: Arc<str> = "agent1".into();
        let t0 = Instant::now();
        throttle.failed(Some(&user), None, t0);
        throttle.failed(Some(&user), None, t0);
        assert_eq!(
            throttle.user_locked("agent1", t0),
            None,
            "two failures are free"
        );
        throttle.failed(Some(&user), None, t0);
        assert_eq!(
            throttle.user_locked("agent1", t0),
            Some(Locked::User(Duration::from_secs(1)))
        );
        // The lockout ends by itself; the next failure doubles it, up to the cap.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(throttle.user_locked("agent1", t1), None);
        throttle.failed(Some(&user), None, t1);
        assert_eq!(
            throttle.user_locked("agent1", t1),
            Some(Locked::User(Duration::from_secs(2)))
        );
        for _ in 0..10 {
            throttle.failed(Some(&user), None, t1);
        }
        assert_eq!(
            throttle.user_locked("agent1", t1),
            Some(Locked::User(Duration::from_secs(10)))
        );
        // Other users are not affected.
        assert_eq!(throttle.user_locked("agent2", t1), None);
    }

    #[test]
    fn success_and_a_quiet_window_start_over() {
        let throttle = Throttle::new(policy());
        let user: Arc<str> = "agent1".into();
        let t0 = Instant::now();
        for _ in 0..2 {
            throttle.failed(Some(&user), None, t0);
        }
        throttle.succeeded("agent1");
        throttle.failed(Some(&user), None, t0);
        assert_eq!(
            throttle.user_locked("agent1", t0),
            None,
            "counting restarted"
        );
        throttle.failed(Some(&user), None, t0);
        let later = t0 + Duration::from_secs(61);
        throttle.failed(Some(&user), None, later);
        assert_eq!(
            throttle.user_locked("agent1", later),
            None,
            "failures older than the window are forgotten"
        );
    }

    #[test]
    fn addresses_are_counted_apart_and_the_table_is_bounded() {
        let throttle = Throttle::new(policy());
        let t0 = Instant::now();
        for _ in 0..5 {
            throttle.failed(None, Some(A), t0);
        }
        assert!(matches!(
            throttle.address_locked(A, t0),
            Some(Locked::Address(_))
        ));
        let b: IpAddr = "127.0.0.10".parse().unwrap();
        let c: IpAddr = "127.0.0.11".parse().unwrap();
        throttle.failed(None, Some(b), t0);
        throttle.failed(None, Some(c), t0);
        assert_eq!(
            lock(&throttle.addresses).len(),
            2,
            "at its bound the table forgets the least recently failing address"
        );
        assert_eq!(throttle.address_locked(A, t0), None);
    }

    #[test]
    fn zero_turns_a_throttle_off() {
        let throttle = Throttle::new(ThrottlePolicy {
            max_failures: 0,
            max_failures_per_address: 0,
            ..policy()
        });
        let user: Arc<str> = "agent1".into();
        let t0 = Instant::now();
        for _ in 0..100 {
            throttle.failed(Some(&user), Some(A), t0);
        }
        assert_eq!(throttle.user_locked("agent1", t0), None);
        assert_eq!(throttle.address_locked(A, t0), None);
    }
}
