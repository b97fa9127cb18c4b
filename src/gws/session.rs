//! HTTP sessions of the legacy front-end (`JSESSIONID`), shared with the CometD endpoint,
//! which accepts a handshake from a client holding a valid session.
//!
//! Bounds: sessions expire after `idle_timeout` without use; at most `limit` live at once.
//! When a new session would exceed the limit, the least recently used one is dropped (an
//! expired session is always less recently used than a live one), so a client minting
//! sessions cannot grow memory. The store is an LRU list (the `lru` crate): creating,
//! using and evicting a session cost the same however many sessions exist; the first
//! version scanned them all on every creation at the limit (BENCHMARKS.md, figure 2).

use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::core::Principal;

/// Name of the session cookie, as GWS (a Java servlet container) names it.
pub const SESSION_COOKIE: &str = "JSESSIONID";
/// Default idle timeout of a session.
pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// Default maximum number of live sessions.
pub const DEFAULT_SESSION_LIMIT: usize = super::config::DEFAULT_SESSION_LIMIT;

/// One authenticated HTTP session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The session id (the `JSESSIONID` cookie value).
    pub id: String,
    /// Who authenticated.
    pub principal: Principal,
    /// The CSRF token handed out with GET responses.
    pub csrf_token: String,
}

#[derive(Debug)]
struct Entry {
    session: Session,
    last_used: Instant,
}

/// The live sessions.
#[derive(Debug)]
pub struct SessionStore {
    sessions: Mutex<lru::LruCache<String, Entry>>,
    idle_timeout: Duration,
}

impl Default for SessionStore {
    fn default() -> Self {
        Self::new(DEFAULT_SESSION_IDLE, DEFAULT_SESSION_LIMIT)
    }
}

impl SessionStore {
    /// Builds an empty store.
    pub fn new(idle_timeout: Duration, limit: usize) -> Self {
        Self {
            sessions: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(limit).unwrap_or(NonZeroUsize::MIN),
            )),
            idle_timeout,
        }
    }

    fn lock(&self) -> MutexGuard<'_, lru::LruCache<String, Entry>> {
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Opens a session for a principal.
    pub fn create(&self, principal: Principal) -> Session {
        let session = Session {
            id: uuid::Uuid::new_v4().simple().to_string().to_uppercase(),
            principal,
            csrf_token: uuid::Uuid::new_v4().to_string(),
        };
        // At the limit, `push` drops the least recently used session.
        self.lock().push(
            session.id.clone(),
            Entry {
                session: session.clone(),
                last_used: Instant::now(),
            },
        );
        session
    }

    /// Returns a live session and marks it used.
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut sessions = self.lock();
        let entry = sessions.get_mut(id)?;
        if now.duration_since(entry.last_used) >= self.idle_timeout {
            sessions.pop(id);
            return None;
        }
        entry.last_used = now;
        Some(entry.session.clone())
    }

    /// Ends a session.
    pub fn remove(&self, id: &str) -> bool {
        self.lock().pop(id).is_some()
    }

    /// Returns how many sessions are held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Returns whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal() -> Principal {
        Principal {
            user: Some("u".into()),
            contact_center: "c".into(),
            service_account: None,
            admin: false,
        }
    }

    #[test]
    fn the_limit_evicts_the_least_recently_used() {
        let store = SessionStore::new(Duration::from_secs(60), 2);
        let a = store.create(principal());
        let b = store.create(principal());
        assert!(store.get(&a.id).is_some());
        let c = store.create(principal());
        assert_eq!(store.len(), 2);
        assert!(store.get(&b.id).is_none());
        assert!(store.get(&a.id).is_some() && store.get(&c.id).is_some());
    }

    #[test]
    fn idle_sessions_expire() {
        let store = SessionStore::new(Duration::ZERO, 10);
        let a = store.create(principal());
        assert!(store.get(&a.id).is_none());
    }
}
