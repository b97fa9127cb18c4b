//! One instance's membership of the cluster: the tail that applies the shared log to the
//! core, the leases this instance holds, and the core's [`SharedEvents`] port (appending a
//! user's events with that user's grant).
//!
//! - **Tail.** One task reads the log from the sequence the core applied last, in batches
//!   of at most [`TAIL_BATCH`] entries, and hands each batch to
//!   [`CallControl::apply_shared`]; [`ClusterNode::applied`] then publishes the position.
//!   When the log is another epoch's (first start, or the engine lost its data) or was
//!   trimmed past this instance, the core's log starts over ([`CallControl::reset_shared`]:
//!   watchers resync) and every owner here re-reads the upstream ([`ClusterNode::resyncs`]).
//! - **Leases.** [`ClusterNode::acquire`] takes a user's lease, then catches up with the
//!   log's head before it hands back the token under which the owner runs the user's
//!   upstream CometD client, so the owner's first diff is computed against a mirror that
//!   applied everything its predecessor wrote. A lease lost (a renew refused or failed, an
//!   append fenced) cancels that token at once.
//! - **Release notifications.** One task reads the engine's [`LeaseTable::releases`] and
//!   wakes the tasks waiting for that user's lease ([`ClusterNode::releases_of`]): one map
//!   lookup per release, a `watch` channel per waited-for user, so a drain of many users
//!   wakes each waiter once, not every waiter per release. A waiter marks what it has seen
//!   before it tries, so a release between its try and its wait still wakes it, and tries
//!   after a random [`RELEASE_JITTER`] (the lease decides who wins anyway). A notification
//!   that never comes (lost, or a lease that lapsed) leaves the waiter its periodic try.
//!
//! [`LeaseTable::releases`]: super::LeaseTable::releases
//! - **Availability.** Any engine call failing with [`EngineError::Unavailable`] marks the
//!   engine down (operations fail fast, health NOT_SERVING); the tail keeps retrying with a
//!   capped backoff, and the first success marks it up and asks owners to re-read the
//!   upstream (notifications whose append failed meanwhile are otherwise lost).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Engine, EngineError, Grant, entry, metrics};
use crate::core::port::{PortFuture, SharedEvents};
use crate::core::{CallControl, CoreError, CoreResult, Event, SharedApply};

/// Entries read from the log per call.
pub const TAIL_BATCH: usize = 512;
/// How long one read of the tail waits for new entries before it asks again.
const TAIL_WAIT: Duration = Duration::from_millis(500);
/// The longest pause between two attempts to reach an engine that is down.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// A lease this instance holds.
#[derive(Debug)]
struct Owned {
    grant: Grant,
    /// Cancelled when the lease is lost or given up: the owner's CometD client stops.
    stop: CancellationToken,
}

/// This instance's membership of the cluster (see the module docs).
#[derive(Debug)]
pub struct ClusterNode {
    engine: Engine,
    /// This instance's id, unique per process start: the leases' holder.
    id: String,
    ttl: Duration,
    renew: Duration,
    core: OnceLock<Weak<CallControl>>,
    /// The epoch and the last sequence the core applied (published by the tail).
    applied: watch::Sender<(Arc<str>, u64)>,
    owned: Mutex<HashMap<Arc<str>, Owned>>,
    available: AtomicBool,
    /// Bumped whenever owners must re-read the upstream.
    resyncs: watch::Sender<u64>,
    /// The users some task here waits to own, each with a channel bumped when the
    /// engine reports the user's lease released: one lookup per release, whatever the
    /// number of waiters.
    waiting: Mutex<HashMap<Arc<str>, watch::Sender<()>>>,
    shutdown: CancellationToken,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ClusterNode {
    /// Builds the membership over `engine`; its tasks end on `shutdown`.
    pub fn new(
        engine: Engine,
        ttl: Duration,
        renew: Duration,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            engine,
            id: uuid::Uuid::new_v4().simple().to_string(),
            ttl,
            renew,
            core: OnceLock::new(),
            applied: watch::Sender::new((Arc::from(""), 0)),
            owned: Mutex::default(),
            available: AtomicBool::new(true),
            resyncs: watch::Sender::new(0),
            waiting: Mutex::default(),
            shutdown,
        })
    }

    /// Connects the node to its core and starts the tail. Call once, right after building
    /// the core.
    pub fn attach(self: &Arc<Self>, core: &Arc<CallControl>) {
        let _ = self.core.set(Arc::downgrade(core));
        metrics::start();
        tokio::spawn(self.clone().run_tail());
        tokio::spawn(self.clone().run_releases());
    }

    /// Returns once the tail has caught up with the log's head as of now, or after `wait`
    /// when the engine does not answer (the tail carries on by itself).
    pub async fn caught_up_at_start(&self, wait: Duration) {
        let caught_up = async {
            let (epoch, head) = self.engine.log.open().await?;
            self.caught_up(&epoch, head).await;
            Ok::<_, EngineError>(())
        };
        if let Ok(Err(error)) = tokio::time::timeout(wait, caught_up).await {
            tracing::warn!(%error, "cluster engine: not caught up at start");
        }
    }

    /// Returns this instance's id (the holder its leases name).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Returns the engine's CometD session records.
    pub fn session_records(&self) -> Arc<dyn crate::cluster::SessionRecords> {
        self.engine.sessions.clone()
    }

    /// Returns the renew period of leases (also the retry period of a non-holder).
    pub fn renew_interval(&self) -> Duration {
        self.renew
    }

    /// Returns a receiver that changes whenever owners must re-read the upstream.
    pub fn resyncs(&self) -> watch::Receiver<u64> {
        self.resyncs.subscribe()
    }

    /// Returns a receiver of the epoch and last sequence the core applied.
    pub fn applied(&self) -> watch::Receiver<(Arc<str>, u64)> {
        self.applied.subscribe()
    }

    /// Returns whether this instance holds `user`'s lease.
    pub fn owns(&self, user: &str) -> bool {
        lock(&self.owned).contains_key(user)
    }

    fn core(&self) -> Option<Arc<CallControl>> {
        self.core.get().and_then(Weak::upgrade)
    }

    fn set_available(&self, up: bool) {
        if self.available.swap(up, Ordering::AcqRel) != up {
            metrics::engine(up);
            if up {
                tracing::info!(engine = %self.engine, "cluster engine reachable again");
                self.resyncs.send_modify(|n| *n += 1);
            } else {
                tracing::warn!(engine = %self.engine, "cluster engine unreachable: operations fail fast until it answers");
            }
        }
    }

    /// Notes an engine failure; returns it as the core's error.
    fn failed(&self, error: EngineError) -> CoreError {
        if matches!(error, EngineError::Unavailable(_)) {
            self.set_available(false);
        }
        CoreError::Unavailable(format!(
            "voice service is not available at this time: {error}"
        ))
    }

    /// Waits (at most the lease TTL) until the core applied `head` of `epoch`.
    async fn caught_up(&self, epoch: &str, head: u64) -> bool {
        let mut applied = self.applied.subscribe();
        let reached = applied.wait_for(|(e, last)| **e == *epoch && *last >= head);
        matches!(tokio::time::timeout(self.ttl, reached).await, Ok(Ok(_)))
    }

    /// Tries to take `user`'s lease. With it, catches up with the log's head and returns
    /// the token the owner works under (a child of `parent`, cancelled when the lease is
    /// lost); `None` when another instance holds it.
    pub async fn acquire(
        &self,
        user: &Arc<str>,
        parent: &CancellationToken,
    ) -> CoreResult<Option<CancellationToken>> {
        let engine = &self.engine;
        let grant = match engine.leases.acquire(user, &self.id, self.ttl).await {
            Ok(Some(grant)) => grant,
            Ok(None) => return Ok(None),
            Err(error) => return Err(self.failed(error)),
        };
        self.set_available(true);
        // Everything the previous owner appended is before `head`: its later appends are
        // fenced out by this grant.
        let (epoch, head) = engine.log.open().await.map_err(|e| self.failed(e))?;
        if !self.caught_up(&epoch, head).await {
            let _ = engine.leases.release(&grant).await;
            return Err(CoreError::Unavailable(format!(
                "took the lease of {user} but did not catch up with the shared log"
            )));
        }
        tracing::info!(%user, fence = %grant.fence, "cluster: this instance owns the user's upstream session");
        let stop = parent.child_token();
        let owned = Owned {
            grant,
            stop: stop.clone(),
        };
        let mut all = lock(&self.owned);
        if let Some(old) = all.insert(user.clone(), owned) {
            old.stop.cancel();
        }
        metrics::leases(all.len());
        metrics::lease("acquired");
        Ok(Some(stop))
    }

    /// Extends `user`'s lease; `false` (the owner's token cancelled) when it was lost or
    /// could not be renewed.
    pub async fn renew(&self, user: &str) -> bool {
        let Some(grant) = lock(&self.owned).get(user).map(|o| o.grant.clone()) else {
            return false;
        };
        let kept = match self.engine.leases.renew(&grant, self.ttl).await {
            Ok(kept) => {
                self.set_available(true);
                kept
            }
            Err(error) => {
                self.failed(error);
                false
            }
        };
        if !kept {
            self.lose(user, &grant);
        }
        kept
    }

    /// Gives `user`'s lease up (a graceful hand-off), stopping its owner first.
    pub async fn release(&self, user: &str) {
        let owned = lock(&self.owned)
            .get(user)
            .map(|o| (o.grant.clone(), o.stop.clone()));
        let Some((grant, stop)) = owned else {
            return;
        };
        stop.cancel();
        if let Err(error) = self.engine.leases.release(&grant).await {
            tracing::warn!(%user, %error, "cluster: lease not released; it lapses");
        }
        // Forgotten only once released: a drain ([`Self::release_all`]) that starts while
        // this release is under way (a session's stop is a child of the shutdown) finds the
        // lease and releases it too, and the gateway waits for that one. Taken out first,
        // the lease would be released by nobody the gateway waits for, and lapse.
        let mut owned = lock(&self.owned);
        if owned.get(user).is_some_and(|o| o.grant == grant) {
            owned.remove(user);
            metrics::leases(owned.len());
            metrics::lease("released");
        }
    }

    /// Gives every lease up (the drain's first step), stopping their owners first.
    pub async fn release_all(&self) {
        let owned: Vec<Owned> = lock(&self.owned).drain().map(|(_, o)| o).collect();
        metrics::leases(0);
        for owned in &owned {
            owned.stop.cancel();
            metrics::lease("released");
        }
        for owned in owned {
            if let Err(error) = self.engine.leases.release(&owned.grant).await {
                let user = &owned.grant.user;
                tracing::warn!(%user, %error, "cluster: lease not released; it lapses");
            }
        }
    }

    /// Forgets a lease that is no longer ours and stops its owner.
    fn lose(&self, user: &str, grant: &Grant) {
        let mut owned = lock(&self.owned);
        if owned.get(user).is_some_and(|o| o.grant == *grant) {
            let lost = owned.remove(user).expect("just seen");
            metrics::leases(owned.len());
            metrics::lease("lost");
            drop(owned);
            lost.stop.cancel();
            tracing::warn!(%user, fence = %grant.fence, "cluster: lease lost; this instance stops acting for the user");
        }
    }

    /// Runs the tail until shutdown (see the module docs).
    async fn run_tail(self: Arc<Self>) {
        let mut pause = Duration::from_millis(20);
        loop {
            let outcome = tokio::select! {
                () = self.shutdown.cancelled() => return,
                outcome = self.tail_epoch() => outcome,
            };
            match outcome {
                Ok(()) => pause = Duration::from_millis(20),
                Err(error) => {
                    tracing::debug!(%error, "cluster tail retrying");
                    tokio::select! {
                        () = self.shutdown.cancelled() => return,
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                }
            }
        }
    }

    /// Opens the log and applies it until its epoch changes (`Ok`) or the engine fails.
    async fn tail_epoch(&self) -> Result<(), EngineError> {
        let Some(core) = self.core() else {
            return Ok(());
        };
        let (epoch, _) = self.engine.log.open().await.inspect_err(|e| {
            self.failed(e.clone());
        })?;
        self.set_available(true);
        let (local_epoch, local_last) = core.log_position();
        let mut after = local_last;
        if *local_epoch != *epoch {
            tracing::info!(%epoch, "cluster: the shared log is a new epoch; watchers resync");
            // The first adoption of the log, at start, is no loss: not counted.
            let first = self.applied.borrow().0.is_empty();
            self.start_over(&core, &epoch, 0, (!first).then_some("epoch"));
            after = 0;
        }
        loop {
            let read = self
                .engine
                .log
                .read(&epoch, after, TAIL_BATCH, TAIL_WAIT)
                .await;
            let entries = match read {
                Ok(entries) => entries,
                Err(EngineError::EpochChanged { .. }) => return Ok(()),
                Err(EngineError::Trimmed { first, .. }) => {
                    tracing::warn!(
                        first,
                        "cluster: the shared log was trimmed past this instance; watchers resync"
                    );
                    after = first - 1;
                    self.start_over(&core, &epoch, after, Some("trimmed"));
                    continue;
                }
                Err(error) => {
                    self.failed(error.clone());
                    return Err(error);
                }
            };
            self.set_available(true);
            let Some(last) = entries.last().map(|e| e.sequence) else {
                continue;
            };
            let mut events = Vec::with_capacity(entries.len());
            for entry in &entries {
                match entry::decode(entry.sequence, &entry.payload) {
                    Ok(event) => events.push(event),
                    Err(error) => {
                        // Never skipped silently: the watchers resync past it.
                        tracing::error!(sequence = entry.sequence, %error, "cluster: entry skipped");
                        break;
                    }
                }
            }
            let decoded = events.last().map_or(after, Event::sequence);
            match core.apply_shared(&epoch, events) {
                SharedApply::Applied if decoded == last => {}
                SharedApply::Applied => {
                    // The entry after `decoded` was unreadable: start over after it.
                    self.start_over(&core, &epoch, decoded + 1, Some("unreadable"));
                    after = decoded + 1;
                    continue;
                }
                SharedApply::Gap { expected } => {
                    tracing::error!(
                        expected,
                        "cluster: a gap in the shared log; watchers resync"
                    );
                    self.start_over(&core, &epoch, after, Some("gap"));
                    continue;
                }
                SharedApply::OtherEpoch => return Ok(()),
            }
            after = last;
            self.applied.send_replace((epoch.as_str().into(), after));
            metrics::applied(after);
        }
    }

    /// Starts the core's log over at `last` of `epoch` and asks owners to re-read;
    /// `reason` (one of [`metrics::RESET_REASONS`]) is counted.
    fn start_over(&self, core: &CallControl, epoch: &str, last: u64, reason: Option<&'static str>) {
        core.reset_shared(epoch, last);
        if let Some(reason) = reason {
            metrics::reset(reason);
        }
        metrics::applied(last);
        self.applied.send_replace((epoch.into(), last));
        self.resyncs.send_modify(|n| *n += 1);
    }
}

impl SharedEvents for ClusterNode {
    fn publish(&self, user: Arc<str>, events: Vec<Event>) -> PortFuture<'_, CoreResult<()>> {
        Box::pin(async move {
            let Some(grant) = lock(&self.owned).get(&user).map(|o| o.grant.clone()) else {
                return Err(CoreError::Unavailable(format!(
                    "this instance does not hold the lease of {user}'s upstream session"
                )));
            };
            let epoch = self.applied.borrow().0.clone();
            let payloads = events.iter().map(entry::encode).collect();
            let count = events.len();
            match self.engine.log.append(&epoch, &grant, payloads).await {
                Ok(sequences) => {
                    metrics::appended("ok", count);
                    self.set_available(true);
                    let head = sequences.last().copied().unwrap_or_default();
                    if self.caught_up(&epoch, head).await {
                        Ok(())
                    } else {
                        Err(CoreError::Unavailable(format!(
                            "appended up to {head} but the tail did not apply it"
                        )))
                    }
                }
                Err(error @ EngineError::Fenced { .. }) => {
                    metrics::appended("fenced", count);
                    self.lose(&user, &grant);
                    Err(self.failed(error))
                }
                Err(error) => {
                    metrics::appended("failed", count);
                    Err(self.failed(error))
                }
            }
        })
    }

    fn is_available(&self) -> bool {
        self.available.load(Ordering::Acquire)
    }
}

mod releases;
#[cfg(test)]
mod tests;

pub use releases::{RELEASE_JITTER, ReleaseWatch};
