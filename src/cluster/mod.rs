//! Cluster mode (issue 16): several bridge instances share one ordered event log and one
//! owner per user's upstream session, through an engine (Redis 7 first; NATS JetStream
//! could follow behind the same traits).
//!
//! This module is the contract between the engine and the rest of the gateway:
//!
//! - [`SharedLog`]: one ordered log of opaque entries, numbered by the engine with dense
//!   sequences (1, 2, 3, …) that every instance sees in the same order. The log has an
//!   **epoch**, a random id chosen when the engine has no log (first start, or the engine
//!   lost or rolled back its data): a sequence means something only with its epoch, so a
//!   resume position is `(epoch, sequence)` on every instance.
//! - [`LeaseTable`]: at most one holder per user's upstream session, each grant with a
//!   **fencing token** ([`Fence`]) that only grows. [`SharedLog::append`] checks the fence
//!   in the same atomic step as the append, so an owner that was paused or partitioned past
//!   its lease cannot write once another instance took the lease over.
//!
//! Entries are opaque bytes here: what an entry means (one core event each, with all an
//! instance needs to apply it without having seen the user) is the caller's business.

pub mod redis;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A lease's fencing token: every grant of any user's lease gets a larger one than all
/// grants before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fence(pub u64);

impl std::fmt::Display for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A granted lease on one user's upstream session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Grant {
    /// The user whose upstream session the lease is for.
    pub user: String,
    /// The instance holding it (its id, unique per process start).
    pub holder: String,
    /// The grant's fencing token.
    pub fence: Fence,
}

/// One entry of the shared log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's sequence in its epoch: 1 for the first entry, then dense.
    pub sequence: u64,
    /// What the appender wrote.
    pub payload: Vec<u8>,
}

/// Why an engine call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The engine cannot be reached or failed; the call may be retried later. After an
    /// [`SharedLog::append`] the outcome is unknown: the entries may have been appended (the
    /// connection failed after the engine received them), which the caller finds out by
    /// reading the log before appending them again.
    #[error("the cluster engine is unavailable: {0}")]
    Unavailable(String),
    /// The log is not (any more) the one of `given`: the engine lost or rolled back its
    /// data. `current` is the log's epoch now, if it has one; [`SharedLog::open`] starts one.
    #[error("the shared log's epoch is {current:?}, not {given}")]
    EpochChanged {
        /// The epoch the caller gave.
        given: String,
        /// The log's epoch now.
        current: Option<String>,
    },
    /// `grant` is no longer the user's lease (it expired, was released, or another instance
    /// holds it now): nothing was appended.
    #[error("fenced out: the lease of {user} is no longer fence {fence}")]
    Fenced {
        /// The user of the grant.
        user: String,
        /// The grant's fence.
        fence: Fence,
    },
    /// The entries right after `after` were trimmed from the log; the oldest kept is
    /// `first` (the reader resyncs).
    #[error("the shared log no longer holds sequence {after} + 1; its oldest entry is {first}")]
    Trimmed {
        /// The sequence the reader asked to read after.
        after: u64,
        /// The oldest sequence the log holds.
        first: u64,
    },
}

/// What an engine call returns.
pub type EngineFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, EngineError>> + Send + 'a>>;

/// The log every instance appends to and tails.
pub trait SharedLog: Send + Sync + 'static {
    /// Returns the log's epoch and its last sequence (0 when empty), starting a new log (a
    /// new random epoch, no entries) when the engine has none.
    fn open(&self) -> EngineFuture<'_, (String, u64)>;

    /// Appends `payloads` in order, all or none, if `epoch` is the log's and `grant` is
    /// its user's lease now ([`EngineError::EpochChanged`], [`EngineError::Fenced`]
    /// otherwise); returns their sequences.
    fn append<'a>(
        &'a self,
        epoch: &'a str,
        grant: &'a Grant,
        payloads: Vec<Vec<u8>>,
    ) -> EngineFuture<'a, Vec<u64>>;

    /// Returns up to `max` entries of `epoch` with sequences after `after`, in order; when
    /// there are none yet, waits up to `wait` for some (then an empty list).
    /// [`EngineError::EpochChanged`] if the log is another epoch's now,
    /// [`EngineError::Trimmed`] if `after + 1` was trimmed.
    fn read<'a>(
        &'a self,
        epoch: &'a str,
        after: u64,
        max: usize,
        wait: Duration,
    ) -> EngineFuture<'a, Vec<Entry>>;
}

/// The leases on users' upstream sessions.
pub trait LeaseTable: Send + Sync + 'static {
    /// Grants `user`'s lease to `holder` for `ttl` if no one holds it (or `holder` itself
    /// does: a new grant with a new fence); `None` when another holder has it.
    fn acquire<'a>(
        &'a self,
        user: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> EngineFuture<'a, Option<Grant>>;

    /// Extends `grant` to `ttl` from now if it is still the user's lease; `false` when it
    /// was lost (the holder must stop acting for the user at once).
    fn renew<'a>(&'a self, grant: &'a Grant, ttl: Duration) -> EngineFuture<'a, bool>;

    /// Gives `grant` up (a graceful hand-off), if it is still the user's lease.
    fn release<'a>(&'a self, grant: &'a Grant) -> EngineFuture<'a, ()>;

    /// Returns `user`'s lease now, if anyone holds it.
    fn holder<'a>(&'a self, user: &'a str) -> EngineFuture<'a, Option<Grant>>;
}
