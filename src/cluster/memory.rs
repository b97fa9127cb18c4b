//! The in-memory engine: one [`MemoryEngine`], shared through an `Arc` by several
//! gateways of one process (tests, demos), implements [`SharedLog`] and [`LeaseTable`] with
//! exactly the contract the Redis engine has, and the [`SessionRecords`] of movable CometD
//! sessions (their TTLs by tokio time too).
//!
//! - Leases expire by tokio time ([`tokio::time::Instant`]), so unit tests under paused
//!   time see a lease lapse without waiting.
//! - [`MemoryEngine::lose_data`] forgets the log and the leases, as a Redis restarted
//!   empty does: the next [`SharedLog::open`] starts a new epoch.
//! - [`MemoryEngine::set_available`] makes every call fail with
//!   [`EngineError::Unavailable`], as an engine that is down does.
//! - The log keeps at most `max_entries` entries (the oldest are trimmed), so its memory is
//!   bounded like the Redis stream's.
//! - A release is told to every [`LeaseTable::releases`] stream through a tokio broadcast
//!   channel of [`RELEASES_BUFFER`] users: a receiver that falls further behind skips the
//!   oldest, as a Redis subscriber that reconnects misses some (its waiters try at their
//!   next period).
//!
//! One `std::sync::Mutex` guards the state; no call holds it across an `.await`. A reader
//! waiting for entries registers on a [`Notify`] before it looks, so an append between the
//! look and the wait still wakes it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;
use tokio_stream::wrappers::BroadcastStream;

use super::sessions::{SessionRecord, SessionRecords};
use super::{EngineError, EngineFuture, Entry, Fence, Grant, LeaseTable, Releases, SharedLog};

/// Default number of entries the in-memory log keeps.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;
/// Releases buffered for each [`LeaseTable::releases`] stream; a stream further behind
/// skips the oldest (a hint lost: its waiters try at their next period).
pub const RELEASES_BUFFER: usize = 4_096;

#[derive(Debug, Default)]
struct State {
    /// The log's epoch; `None` before the first [`SharedLog::open`] or after a data loss.
    epoch: Option<String>,
    /// The kept entries, oldest first, with dense sequences.
    entries: VecDeque<Entry>,
    /// The last sequence appended in this epoch (0 when none).
    last: u64,
    /// Each user's lease and when it lapses.
    leases: HashMap<String, (Grant, Instant)>,
    /// The last fence granted; never goes back, even across a data loss (a Redis restarted
    /// empty would restart it: its engine keeps fences in the epoch's keys, see there).
    fence: u64,
    /// The CometD session records by `clientId`, and when each lapses.
    sessions: HashMap<String, (SessionRecord, Instant)>,
    down: bool,
}

impl State {
    fn check_up(&self) -> Result<(), EngineError> {
        if self.down {
            return Err(EngineError::Unavailable(
                "the in-memory engine is down".into(),
            ));
        }
        Ok(())
    }

    fn check_epoch(&self, epoch: &str) -> Result<(), EngineError> {
        if self.epoch.as_deref() != Some(epoch) {
            return Err(EngineError::EpochChanged {
                given: epoch.to_owned(),
                current: self.epoch.clone(),
            });
        }
        Ok(())
    }

    /// Returns the session record of `client_id` if it has not lapsed.
    fn live_session(&self, client_id: &str) -> Option<&SessionRecord> {
        self.sessions
            .get(client_id)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(record, _)| record)
    }

    /// Returns the user's lease if it has not lapsed.
    fn live_lease(&self, user: &str) -> Option<&Grant> {
        self.leases
            .get(user)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(grant, _)| grant)
    }
}

/// The in-memory engine (see the module docs).
#[derive(Debug)]
pub struct MemoryEngine {
    state: Mutex<State>,
    appended: Notify,
    /// The users whose lease was released, for [`LeaseTable::releases`].
    released: broadcast::Sender<String>,
    max_entries: usize,
}

impl Default for MemoryEngine {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ENTRIES)
    }
}

impl MemoryEngine {
    /// Builds an empty engine keeping at most `max_entries` log entries.
    pub fn new(max_entries: usize) -> Self {
        Self {
            state: Mutex::default(),
            appended: Notify::new(),
            released: broadcast::Sender::new(RELEASES_BUFFER),
            max_entries: max_entries.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Forgets the log and the leases (an engine restarted empty): the next
    /// [`SharedLog::open`] starts a new epoch, and every other call on the old one gets
    /// [`EngineError::EpochChanged`].
    pub fn lose_data(&self) {
        let mut state = self.lock();
        state.epoch = None;
        state.entries.clear();
        state.last = 0;
        state.leases.clear();
        state.sessions.clear();
        drop(state);
        self.appended.notify_waiters();
    }

    /// Takes the engine down (`false`: every call fails with
    /// [`EngineError::Unavailable`]) or up again.
    pub fn set_available(&self, up: bool) {
        self.lock().down = !up;
        self.appended.notify_waiters();
    }

    /// Makes `user`'s lease lapse now, as it does when its holder was paused or cut off
    /// past its TTL (the holder's next renew is refused, its appends fenced).
    pub fn lapse(&self, user: &str) {
        if let Some((_, until)) = self.lock().leases.get_mut(user) {
            *until = Instant::now();
        }
    }

    /// Returns `user`'s lease now, if anyone holds it (for tests' checks, without an
    /// `.await`).
    pub fn holder_now(&self, user: &str) -> Option<Grant> {
        self.lock().live_lease(user).cloned()
    }

    /// Returns the CometD session record of `client_id` if it has not lapsed (for tests'
    /// checks, without an `.await`).
    pub fn session_now(&self, client_id: &str) -> Option<SessionRecord> {
        self.lock().live_session(client_id).cloned()
    }

    /// Returns the log's epoch and every kept entry (for tests' checks).
    pub fn entries(&self) -> (Option<String>, Vec<Entry>) {
        let state = self.lock();
        (state.epoch.clone(), state.entries.iter().cloned().collect())
    }

    /// Returns entries after `after`, or `None` when there are none yet.
    fn take(&self, epoch: &str, after: u64, max: usize) -> Result<Option<Vec<Entry>>, EngineError> {
        let state = self.lock();
        state.check_up()?;
        state.check_epoch(epoch)?;
        let first = state.entries.front().map_or(state.last + 1, |e| e.sequence);
        if after + 1 < first {
            return Err(EngineError::Trimmed { after, first });
        }
        if after >= state.last {
            return Ok(None);
        }
        let skip = usize::try_from(after + 1 - first).unwrap_or(usize::MAX);
        Ok(Some(
            state
                .entries
                .iter()
                .skip(skip)
                .take(max.max(1))
                .cloned()
                .collect(),
        ))
    }
}

impl SharedLog for MemoryEngine {
    fn open(&self) -> EngineFuture<'_, (String, u64)> {
        Box::pin(async move {
            let mut state = self.lock();
            state.check_up()?;
            let epoch = state
                .epoch
                .get_or_insert_with(|| uuid::Uuid::new_v4().simple().to_string())
                .clone();
            Ok((epoch, state.last))
        })
    }

    fn append<'a>(
        &'a self,
        epoch: &'a str,
        grant: &'a Grant,
        payloads: Vec<Vec<u8>>,
    ) -> EngineFuture<'a, Vec<u64>> {
        Box::pin(async move {
            let mut state = self.lock();
            state.check_up()?;
            state.check_epoch(epoch)?;
            if state.live_lease(&grant.user) != Some(grant) {
                return Err(EngineError::Fenced {
                    user: grant.user.clone(),
                    fence: grant.fence,
                });
            }
            let mut sequences = Vec::with_capacity(payloads.len());
            for payload in payloads {
                state.last += 1;
                let sequence = state.last;
                state.entries.push_back(Entry { sequence, payload });
                sequences.push(sequence);
            }
            while state.entries.len() > self.max_entries {
                state.entries.pop_front();
            }
            drop(state);
            self.appended.notify_waiters();
            Ok(sequences)
        })
    }

    fn read<'a>(
        &'a self,
        epoch: &'a str,
        after: u64,
        max: usize,
        wait: Duration,
    ) -> EngineFuture<'a, Vec<Entry>> {
        Box::pin(async move {
            let deadline = Instant::now() + wait;
            loop {
                // Registered before looking: an append in between still wakes this reader.
                let appended = self.appended.notified();
                tokio::pin!(appended);
                appended.as_mut().enable();
                if let Some(entries) = self.take(epoch, after, max)? {
                    return Ok(entries);
                }
                if tokio::time::timeout_at(deadline, appended).await.is_err() {
                    return Ok(Vec::new());
                }
            }
        })
    }
}

impl LeaseTable for MemoryEngine {
    fn acquire<'a>(
        &'a self,
        user: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> EngineFuture<'a, Option<Grant>> {
        Box::pin(async move {
            let mut state = self.lock();
            state.check_up()?;
            if state.live_lease(user).is_some_and(|g| g.holder != holder) {
                return Ok(None);
            }
            state.fence += 1;
            let grant = Grant {
                user: user.to_owned(),
                holder: holder.to_owned(),
                fence: Fence(state.fence),
            };
            state
                .leases
                .insert(user.to_owned(), (grant.clone(), Instant::now() + ttl));
            Ok(Some(grant))
        })
    }

    fn renew<'a>(&'a self, grant: &'a Grant, ttl: Duration) -> EngineFuture<'a, bool> {
        Box::pin(async move {
            let mut state = self.lock();
            state.check_up()?;
            if state.live_lease(&grant.user) != Some(grant) {
                return Ok(false);
            }
            if let Some((_, until)) = state.leases.get_mut(&grant.user) {
                *until = Instant::now() + ttl;
            }
            Ok(true)
        })
    }

    fn release<'a>(&'a self, grant: &'a Grant) -> EngineFuture<'a, ()> {
        Box::pin(async move {
            let mut state = self.lock();
            state.check_up()?;
            if state.live_lease(&grant.user) == Some(grant) {
                state.leases.remove(&grant.user);
                drop(state);
                // No receiver is no error: no instance waits.
                let _ = self.released.send(grant.user.clone());
            }
            Ok(())
        })
    }

    fn holder<'a>(&'a self, user: &'a str) -> EngineFuture<'a, Option<Grant>> {
        Box::pin(async move {
            let state = self.lock();
            state.check_up()?;
            Ok(state.live_lease(user).cloned())
        })
    }

    fn releases(&self) -> Releases {
        // A lagging receiver's error only says how many it skipped: go on with the next.
        let users = BroadcastStream::new(self.released.subscribe())
            .filter_map(|user| std::future::ready(user.ok()));
        Box::pin(users)
    }
}

impl SessionRecords for MemoryEngine {
    fn put<'a>(
        &'a self,
        record: &'a SessionRecord,
        ttl: Duration,
        adopt: bool,
    ) -> EngineFuture<'a, bool> {
        Box::pin(async move {
            let mut state = self.lock();
            state.check_up()?;
            let owner = state.live_session(&record.client_id).map(|r| &r.owner);
            if !adopt && owner.is_some_and(|owner| *owner != record.owner) {
                return Ok(false);
            }
            // Lapsed records are dropped as they are met, so the map holds live ones.
            let now = Instant::now();
            state.sessions.retain(|_, (_, until)| *until > now);
            let until = now + ttl;
            state
                .sessions
                .insert(record.client_id.clone(), (record.clone(), until));
            Ok(true)
        })
    }

    fn get<'a>(&'a self, client_id: &'a str) -> EngineFuture<'a, Option<SessionRecord>> {
        Box::pin(async move {
            let state = self.lock();
            state.check_up()?;
            Ok(state.live_session(client_id).cloned())
        })
    }

    fn delete<'a>(&'a self, client_id: &'a str, owner: &'a str) -> EngineFuture<'a, ()> {
        Box::pin(async move {
            let mut state = self.lock();
            state.check_up()?;
            if state
                .live_session(client_id)
                .is_some_and(|r| r.owner == owner)
            {
                state.sessions.remove(client_id);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_millis(300);

    #[tokio::test(start_paused = true)]
    async fn appends_are_numbered_densely_and_read_back_in_order() {
        let engine = MemoryEngine::new(10);
        let (epoch, last) = engine.open().await.unwrap();
        assert_eq!(last, 0);
        let grant = engine.acquire("a", "i1", TTL).await.unwrap().unwrap();
        let seqs = engine
            .append(&epoch, &grant, vec![b"x".to_vec(), b"y".to_vec()])
            .await
            .unwrap();
        assert_eq!(seqs, vec![1, 2]);
        let read = engine.read(&epoch, 0, 10, TTL).await.unwrap();
        assert_eq!(read.iter().map(|e| e.sequence).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(
            engine.read(&epoch, 1, 10, TTL).await.unwrap()[0].payload,
            b"y"
        );
        assert_eq!(engine.open().await.unwrap(), (epoch, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_waits_for_an_append_or_its_bound() {
        let engine = std::sync::Arc::new(MemoryEngine::new(10));
        let (epoch, _) = engine.open().await.unwrap();
        let started = Instant::now();
        assert!(engine.read(&epoch, 0, 10, TTL).await.unwrap().is_empty());
        assert_eq!(started.elapsed(), TTL, "an empty read ends at its bound");
        let grant = engine.acquire("a", "i1", TTL * 10).await.unwrap().unwrap();
        let reader = {
            let (engine, epoch) = (engine.clone(), epoch.clone());
            tokio::spawn(async move { engine.read(&epoch, 0, 10, TTL * 10).await })
        };
        tokio::task::yield_now().await;
        engine.append(&epoch, &grant, vec![vec![1]]).await.unwrap();
        assert_eq!(reader.await.unwrap().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn one_holder_at_a_time_and_a_lapsed_owner_is_fenced() {
        let engine = MemoryEngine::new(10);
        let (epoch, _) = engine.open().await.unwrap();
        let old = engine.acquire("a", "i1", TTL).await.unwrap().unwrap();
        assert_eq!(engine.acquire("a", "i2", TTL).await.unwrap(), None);
        assert!(engine.renew(&old, TTL).await.unwrap());
        tokio::time::advance(TTL + Duration::from_millis(1)).await;
        assert_eq!(engine.holder("a").await.unwrap(), None, "lapsed");
        let new = engine.acquire("a", "i2", TTL).await.unwrap().unwrap();
        assert!(new.fence > old.fence);
        assert!(!engine.renew(&old, TTL).await.unwrap());
        let refused = engine.append(&epoch, &old, vec![vec![1]]).await;
        assert!(
            matches!(refused, Err(EngineError::Fenced { .. })),
            "{refused:?}"
        );
        assert_eq!(engine.open().await.unwrap().1, 0, "nothing written");
        // A release by the old holder leaves the new grant in place.
        engine.release(&old).await.unwrap();
        assert_eq!(engine.holder("a").await.unwrap(), Some(new.clone()));
        engine.release(&new).await.unwrap();
        assert_eq!(engine.holder("a").await.unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn lost_data_is_a_new_epoch_and_trimmed_entries_are_said_so() {
        let engine = MemoryEngine::new(2);
        let (epoch, _) = engine.open().await.unwrap();
        let grant = engine.acquire("a", "i1", TTL).await.unwrap().unwrap();
        for _ in 0..3 {
            engine.append(&epoch, &grant, vec![vec![0]]).await.unwrap();
        }
        assert_eq!(
            engine.read(&epoch, 0, 10, TTL).await,
            Err(EngineError::Trimmed { after: 0, first: 2 })
        );
        assert_eq!(engine.read(&epoch, 1, 10, TTL).await.unwrap().len(), 2);
        engine.lose_data();
        let stale = engine.read(&epoch, 3, 10, TTL).await;
        assert!(matches!(
            stale,
            Err(EngineError::EpochChanged { current: None, .. })
        ));
        let (new_epoch, last) = engine.open().await.unwrap();
        assert_ne!(new_epoch, epoch);
        assert_eq!(last, 0);
        engine.set_available(false);
        assert!(matches!(
            engine.open().await,
            Err(EngineError::Unavailable(_))
        ));
        engine.set_available(true);
        assert!(engine.open().await.is_ok());
    }
}
