//! Idempotent retries: the replies of operations sent with an idempotency key, kept for a
//! while so that a retry gets the first reply and the operation is done once.
//!
//! Both fronts use the one [`IdempotencyStore`] of the core (gRPC metadata
//! `idempotency-key`, HTTP header `Idempotency-Key`). An entry is keyed by the user and the
//! key, and remembers the request's [`Fingerprint`] (a hash of the front, the operation and
//! its arguments):
//!
//! - A request with a new key runs, and its reply is kept for `ttl` after it completes. The
//!   operation runs in a task of its own, so a client that hangs up does not cancel it
//!   half-way: its reply is kept for the retry.
//! - A retry with the same key and the same request within `ttl` gets that reply, and the
//!   operation is not run again.
//! - A retry arriving while the first is still running waits for it and gets the same reply
//!   (it is not run twice, and the client need not retry again).
//! - The same key with a different request is refused ([`CoreError::IdempotencyKeyReused`])
//!   and changes nothing, for as long as the first reply is kept.
//! - A reply the front says not to keep (a refusal that did nothing and asks to retry later,
//!   such as a busy or unavailable gateway) is given to the requests waiting for it and then
//!   forgotten, so that a retry runs again.
//!
//! Bound: at most `capacity` keys are held. A new key that finds the store full of keys
//! that have not expired is refused with [`CoreError::IdempotencyStoreFull`] (RESOURCE_EXHAUSTED
//! / HTTP 429 with `Retry-After`: when the oldest reply expires), and nothing is done;
//! a kept key is never evicted before its `ttl`, since that would let a retry run twice.
//! Requests without a key are not affected. Memory is at most `capacity` replies (a call
//! view, under a kilobyte each).
//!
//! The store holds the fronts' own reply types (a gRPC reply, an HTTP response) as `Any`,
//! so the core stays free of wire types; a key used on one front and retried on the other
//! has different fingerprints and is refused as a different request.

use std::any::Any;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use blake2::{Blake2s256, Digest};
use tokio::sync::watch;

use super::FastMap;
use super::Principal;
use super::error::{CoreError, CoreResult};

/// Default time a reply is kept for retries (`limits.idempotency_ttl`, seconds).
pub const DEFAULT_IDEMPOTENCY_TTL: Duration = Duration::from_secs(60);
/// Default number of idempotency keys held at once (`limits.idempotency_keys`).
pub const DEFAULT_IDEMPOTENCY_KEYS: usize = 50_000;
/// The longest idempotency key accepted, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// A hash of a request: the front, the operation and its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// Hashes a request of `front` for `operation` whose arguments encode to `arguments`.
    pub fn of(front: &str, operation: &str, arguments: &[u8]) -> Self {
        // Lengths first, so that no two (front, operation, arguments) hash the same input.
        Self(
            Blake2s256::new()
                .chain_update((front.len() as u64).to_le_bytes())
                .chain_update(front.as_bytes())
                .chain_update((operation.len() as u64).to_le_bytes())
                .chain_update(operation.as_bytes())
                .chain_update(arguments)
                .finalize()
                .into(),
        )
    }
}

/// A kept reply, of the type of the front that stored it.
type Reply = Arc<dyn Any + Send + Sync>;

/// One key's entry.
#[derive(Debug)]
struct Entry {
    fingerprint: Fingerprint,
    /// `None` until the first request completes.
    reply: watch::Receiver<Option<Reply>>,
    /// When the reply stops being kept; `None` while the first request runs.
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| now < at)
    }
}

/// The key of an entry: the user and the client's key.
type EntryKey = (Arc<str>, String);

/// What a request with a key does.
enum Claim {
    /// Run the operation, and publish its reply here.
    Run(watch::Sender<Option<Reply>>),
    /// Wait for (or take) the first request's reply.
    Wait(watch::Receiver<Option<Reply>>),
}

/// The replies of operations sent with idempotency keys (see the module doc).
#[derive(Debug)]
pub struct IdempotencyStore {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<FastMap<EntryKey, Entry>>,
}

impl IdempotencyStore {
    /// Builds a store keeping replies for `ttl`, holding at most `capacity` keys.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::default(),
        }
    }

    /// Returns the number of keys held (live or expired but not yet swept).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Returns whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, FastMap<EntryKey, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `operation` once for `user`'s `key`: the first request runs it (in a task of
    /// its own), a retry with the same fingerprint gets its reply, another fingerprint is
    /// refused. `keep` says whether a reply is kept for retries (see the module doc).
    pub async fn run<R, F>(
        self: &Arc<Self>,
        user: &str,
        key: &str,
        fingerprint: Fingerprint,
        keep: fn(&R) -> bool,
        operation: F,
    ) -> CoreResult<R>
    where
        R: Clone + Send + Sync + 'static,
        F: Future<Output = R> + Send + 'static,
    {
        validate_key(key)?;
        let entry_key: EntryKey = (user.into(), key.to_owned());
        let mut reply = match self.claim(&entry_key, fingerprint)? {
            Claim::Wait(reply) => reply,
            Claim::Run(sender) => {
                let reply = sender.subscribe();
                let completion = Completion {
                    store: self.clone(),
                    key: Some(entry_key),
                    sender,
                };
                tokio::spawn(async move {
                    let reply = operation.await;
                    let kept = keep(&reply);
                    completion.finish(Arc::new(reply), kept);
                });
                reply
            }
        };
        let reply = reply
            .wait_for(Option::is_some)
            .await
            .map_err(|_| {
                CoreError::Internal(
                    "the first request with this idempotency key failed; retry with a new key"
                        .into(),
                )
            })?
            .clone()
            .expect("waited for a reply");
        reply
            .downcast_ref::<R>()
            .cloned()
            .ok_or_else(|| CoreError::IdempotencyKeyReused {
                key: key.to_owned(),
            })
    }

    /// Finds or makes the entry of a key, under the lock.
    fn claim(&self, key: &EntryKey, fingerprint: Fingerprint) -> CoreResult<Claim> {
        let now = Instant::now();
        let mut entries = self.lock();
        if let Some(entry) = entries.get(key).filter(|e| e.live(now)) {
            if entry.fingerprint != fingerprint {
                return Err(CoreError::IdempotencyKeyReused { key: key.1.clone() });
            }
            return Ok(Claim::Wait(entry.reply.clone()));
        }
        if entries.len() >= self.capacity && !entries.contains_key(key) {
            // Full: sweep the expired entries (each sweep frees every expired key, so its
            // cost is shared by the inserts it makes room for).
            entries.retain(|_, entry| entry.live(now));
            if entries.len() >= self.capacity {
                let retry_after = entries
                    .values()
                    .filter_map(|e| e.expires)
                    .min()
                    .map_or(self.ttl, |at| at.saturating_duration_since(now));
                return Err(CoreError::IdempotencyStoreFull {
                    capacity: self.capacity,
                    retry_after,
                });
            }
        }
        let (sender, reply) = watch::channel(None);
        entries.insert(
            key.clone(),
            Entry {
                fingerprint,
                reply,
                expires: None,
            },
        );
        Ok(Claim::Run(sender))
    }
}

/// The first request's side of an entry: publishes the reply, and removes the entry if the
/// operation never completes (it panicked), so that the key can be used again.
struct Completion {
    store: Arc<IdempotencyStore>,
    key: Option<EntryKey>,
    sender: watch::Sender<Option<Reply>>,
}

impl Completion {
    fn finish(mut self, reply: Reply, kept: bool) {
        let key = self.key.take().expect("finished once");
        let mut entries = self.store.lock();
        if kept {
            if let Some(entry) = entries.get_mut(&key) {
                entry.expires = Some(Instant::now() + self.store.ttl);
            }
        } else {
            entries.remove(&key);
        }
        drop(entries);
        self.sender.send_replace(Some(reply));
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.store.lock().remove(&key);
        }
    }
}

/// Returns who a key belongs to: the acting user, and the service account acting for it
/// (so an agent's keys and a service account's keys for that agent are apart).
pub fn owner(who: &Principal) -> String {
    format!(
        "{}/{}",
        who.service_account.as_deref().unwrap_or(""),
        who.user.as_deref().unwrap_or("")
    )
}

/// Checks a client's idempotency key: 1 to [`MAX_IDEMPOTENCY_KEY_LEN`] visible ASCII
/// characters (a UUID is the usual choice).
fn validate_key(key: &str) -> CoreResult<()> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(CoreError::invalid(
            "idempotency-key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters"),
        ));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CoreError::invalid(
            "idempotency-key",
            "must be visible ASCII characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn fp(arguments: &str) -> Fingerprint {
        Fingerprint::of("test", "Op", arguments.as_bytes())
    }

    fn keep_all(_: &u32) -> bool {
        true
    }

    #[tokio::test]
    async fn a_retry_gets_the_first_reply_and_runs_nothing() {
        let store = Arc::new(IdempotencyStore::new(Duration::from_secs(60), 10));
        let runs = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let runs = runs.clone();
            let reply = store
                .run("u", "k", fp("a"), keep_all, async move {
                    runs.fetch_add(1, Ordering::SeqCst) as u32 + 7
                })
                .await
                .unwrap();
            assert_eq!(reply, 7);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Another user's same key is another entry.
        let reply = store
            .run("v", "k", fp("a"), keep_all, async { 9 })
            .await
            .unwrap();
        assert_eq!(reply, 9);
    }

    #[tokio::test]
    async fn the_same_key_with_another_request_is_refused() {
        let store = Arc::new(IdempotencyStore::new(Duration::from_secs(60), 10));
        store
            .run("u", "k", fp("a"), keep_all, async { 1 })
            .await
            .unwrap();
        let refused = store
            .run("u", "k", fp("b"), keep_all, async { 2 })
            .await
            .unwrap_err();
        assert!(
            matches!(refused, CoreError::IdempotencyKeyReused { .. }),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn a_retry_during_the_first_waits_for_its_reply() {
        let store = Arc::new(IdempotencyStore::new(Duration::from_secs(60), 10));
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let first = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .run("u", "k", fp("a"), keep_all, async move {
                        released.await.unwrap();
                        1
                    })
                    .await
            }
        });
        // The retry finds the entry in flight (the first claimed it before running).
        while store.is_empty() {
            tokio::task::yield_now().await;
        }
        let retry = tokio::spawn({
            let store = store.clone();
            async move { store.run("u", "k", fp("a"), keep_all, async { 2 }).await }
        });
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(
            retry.await.unwrap().unwrap(),
            1,
            "the first reply, not a second run"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn at_its_bound_the_store_refuses_new_keys_until_one_expires() {
        let store = Arc::new(IdempotencyStore::new(Duration::from_secs(60), 2));
        for key in ["a", "b"] {
            store
                .run("u", key, fp("x"), keep_all, async { 1 })
                .await
                .unwrap();
        }
        let refused = store
            .run("u", "c", fp("x"), keep_all, async { 1 })
            .await
            .unwrap_err();
        match refused {
            CoreError::IdempotencyStoreFull {
                capacity,
                retry_after,
            } => {
                assert_eq!(capacity, 2);
                assert!(retry_after <= Duration::from_secs(60) && retry_after > Duration::ZERO);
            }
            other => panic!("expected the store to be full, got {other}"),
        }
        // Held keys still replay; after the ttl the new key gets room.
        assert_eq!(
            store
                .run("u", "a", fp("x"), keep_all, async { 5 })
                .await
                .unwrap(),
            1
        );
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(
            store
                .run("u", "c", fp("x"), keep_all, async { 3 })
                .await
                .unwrap(),
            3
        );
        assert_eq!(store.len(), 1, "the expired keys were swept");
    }

    #[tokio::test]
    async fn a_reply_not_to_keep_lets_the_retry_run_again() {
        let store = Arc::new(IdempotencyStore::new(Duration::from_secs(60), 10));
        let odd = |r: &u32| r % 2 == 1;
        assert_eq!(
            store
                .run("u", "k", fp("a"), odd, async { 2 })
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            store
                .run("u", "k", fp("a"), odd, async { 3 })
                .await
                .unwrap(),
            3
        );
        assert_eq!(
            store
                .run("u", "k", fp("a"), odd, async { 4 })
                .await
                .unwrap(),
            3
        );
    }

    #[tokio::test]
    async fn keys_are_checked() {
        let store = Arc::new(IdempotencyStore::new(Duration::from_secs(60), 10));
        for key in ["", "a b", &"x".repeat(256)] {
            let refused = store.run("u", key, fp("a"), keep_all, async { 1 }).await;
            assert!(
                matches!(refused, Err(CoreError::InvalidParameter { .. })),
                "{key:?}"
            );
        }
        assert!(store.is_empty());
    }
}
