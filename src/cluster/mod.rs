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
//!   its lease cannot write once another instance took the lease over. Its
//!   [`LeaseTable::releases`] reports every release to every instance (a hint that wakes
//!   the instances waiting for that user; a lapse is not reported).
//!
//! - [`SessionRecords`]: the records of movable CometD sessions ([`sessions`]), owned by one
//!   instance at a time, with a TTL.
//!
//! Entries are opaque bytes to the engine: what an entry means is [`entry`]'s business.
//!
//! # The design as built
//!
//! - **One entry = one core event.** In cluster mode no instance numbers a mirrored event
//!   itself. The owner of a user's upstream session turns what the upstream reports into
//!   core events exactly as bridge mode does (`CallControl::mirror_*` computes them, diffs
//!   included), but appends them, encoded by [`entry`] with everything another instance
//!   needs (the full user, `upstream_fields`, notification type, digits, the error's
//!   statusCode, the commit time), to the [`SharedLog`] with its lease's [`Grant`]. Every
//!   instance, the owner included, **tails** the log ([`node`]) and applies each entry with
//!   the log's sequence and epoch (`CallControl::apply_shared`: into the mirror, the history
//!   and the watchers' mailboxes). So `WatchCalls`, `WatchDevices` and CometD on any
//!   instance see the same sequences, and a resume `(epoch, sequence)` taken on one instance
//!   works on another.
//! - **The owner's race** (two reports of one user before the first one's entry came back
//!   from the tail) is closed by turns: the core handles one user's reports one at a time
//!   (an async lock per user), and a turn ends only once the tail here applied the entries
//!   it appended. The next report's diff is therefore computed against a mirror holding
//!   every entry of that user: only the lease holder writes a user's entries, so nothing of
//!   that user can be in flight but its own. The cost is one append-and-tail round trip per
//!   report of one user (other users' reports go on in parallel).
//! - **Ownership.** An instance with an active user (a sign-in it checked; credentials stay
//!   in its memory only, as in bridge mode) tries to take that user's lease, renews it every
//!   `renew_interval_ms` (a third of `lease_ttl_ms` by default), and while it holds it runs
//!   the user's upstream CometD client. A non-holder runs no CometD client for the user but
//!   still carries out operations through its own upstream HTTP session (the reply waits
//!   for the report on its local store, which the tail feeds), and retries the lease as
//!   soon as the engine reports it released ([`LeaseTable::releases`], routed per user by
//!   [`node`], after a jitter of up to [`node::RELEASE_JITTER`]), and in any case every
//!   renew interval. A released lease is so taken over within the notification's round
//!   trip (tens of milliseconds); a dead owner releases nothing, so it is replaced within
//!   TTL + interval (a lapse is not reported: Redis would need keyspace notifications),
//!   and so is a release whose notification was lost (the subscriber reconnecting, a
//!   reader behind), the periodic try being the fallback. Credentials are never
//!   shared through the engine, so only instances where the user signed in can take over.
//!   A renew refused or failed, or an append [`EngineError::Fenced`], stops the holder's
//!   CometD client at once.
//! - **Takeover.** The new holder first catches up with the log's head as of its grant
//!   (everything its predecessor wrote is before it; anything later is fenced out), then
//!   subscribes upstream and re-reads the user (`mirror_resync`): only the differences are
//!   appended, so watchers see neither a gap nor a duplicate. A change made between the
//!   subscription and the re-read is in both; its notification, a `StatusChange` identical
//!   to the mirrored call, is not appended again (`CallControl::mirror_call`). Changes made
//!   while the user had no owner reach watchers as the re-read's difference: several
//!   upstream changes of one call may arrive as one (its latest state).
//! - **Epoch loss.** When the engine lost its data ([`EngineError::EpochChanged`]), the
//!   tail opens the new log, empties the core's history and mirror and ends every watch
//!   (gRPC OUT_OF_RANGE "resync", CometD sessions dropped so they re-handshake), and asks
//!   every owner to re-read the upstream: with an empty mirror, every call is reported.
//!   A log trimmed past this instance is handled the same way, within its epoch.
//! - **Engine down.** An engine call failing with [`EngineError::Unavailable`] makes the
//!   bridge's operations fail fast (UNAVAILABLE / statusCode 4 / HTTP 503) and gRPC health
//!   NOT_SERVING, as an unreachable upstream does; the tail's retries bring it back, and
//!   owners then re-read the upstream (reports whose append failed are otherwise lost).
//! - **CometD sessions.** A session with the ack extension has a record in the engine;
//!   its `ext.ack` is a sequence of the shared log, so the instance a moved client's
//!   connect reaches adopts it and replays the user's events after that position from its
//!   history (`crate::gws::cometd::moving`). Other sessions stay on their instance: their
//!   clients handshake again when it goes away.
//! - **Drain.** On shutdown every lease is released before the gateway stops (the owner's
//!   client stopped first), and each release is reported: another instance with the user
//!   tries at once and takes over within the report's round trip, the jitter and its
//!   catch-up (20 to 87 ms in `tests/cluster_chaos.rs`' SIGTERM case on a shared 2-core VM); if
//!   the report is lost, at its next periodic try, within one renew interval (1 s with
//!   the default TTL).
//!
//! Known limits (for the Redis wiring to settle):
//! - An instance that joins after the log was trimmed starts at its oldest kept entry: the
//!   calls of users owned elsewhere that nothing reported since are missing from its mirror
//!   until their next change (owners here re-read theirs). A snapshot entry, or a re-read
//!   asked of every owner through the log, would close this.
//! - A report's turn waits for its entries to come back from the tail at most the lease
//!   TTL; past that (an engine far slower than the TTL) the next report of that user could
//!   be diffed against a mirror without them, and a re-read could repeat a change.
//!
//! Bounds: the tail reads at most [`node::TAIL_BATCH`] entries at a time; the core's
//! history and watch mailboxes keep their bounds (`limits.*`); the engine trims its log
//! (the in-memory engine keeps [`memory::DEFAULT_MAX_ENTRIES`]).

pub mod entry;
pub mod memory;
mod metrics;
pub mod node;
pub mod redis;
pub mod sessions;

pub use sessions::{SessionRecord, SessionRecords};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

/// Default lease TTL, in milliseconds.
pub const DEFAULT_LEASE_TTL_MS: u64 = 3_000;

/// The `[cluster]` table of the configuration: cluster mode when `url` is set (bridge
/// mode only: it needs `upstream.url`).
///
/// | key | meaning | default |
/// |---|---|---|
/// | `url` | the engine (`--cluster`, `VOICE_GATEWAY_CLUSTER`): `redis://host:port` | none: a single instance |
/// | `lease_ttl_ms` | how long a user's lease lasts without a renew | [`DEFAULT_LEASE_TTL_MS`] |
/// | `renew_interval_ms` | renew period of held leases, retry period of the others (a released lease is tried at once) | a third of `lease_ttl_ms` |
/// | `prefix` | Redis: prepended to every key (several clusters may share one Redis) | [`redis::DEFAULT_PREFIX`] |
/// | `max_len` | Redis: entries the log keeps, about (its memory: see [`redis`]) | [`redis::DEFAULT_MAX_LEN`] |
/// | `max_age_ms` | Redis: age after which an entry is trimmed (0: never) | [`redis::DEFAULT_MAX_AGE_MS`] |
/// | `connect_timeout_ms` / `response_timeout_ms` | Redis: bounds on a connection and on one command, after which the gateway refuses (UNAVAILABLE / 503) | [`redis::DEFAULT_CONNECT_TIMEOUT_MS`] / [`redis::DEFAULT_RESPONSE_TIMEOUT_MS`] |
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The engine's URL.
    pub url: Option<String>,
    /// Lease TTL, in milliseconds.
    pub lease_ttl_ms: u64,
    /// Renew period, in milliseconds (`None`: a third of the TTL).
    pub renew_interval_ms: Option<u64>,
    /// Redis: the prefix of every key.
    pub prefix: String,
    /// Redis: the number of entries the log keeps (approximately).
    pub max_len: u64,
    /// Redis: the age in milliseconds after which an entry is trimmed; 0 never.
    pub max_age_ms: u64,
    /// Redis: the bound on opening a connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Redis: the bound on one command's answer, in milliseconds.
    pub response_timeout_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            url: None,
            lease_ttl_ms: DEFAULT_LEASE_TTL_MS,
            renew_interval_ms: None,
            prefix: redis::DEFAULT_PREFIX.to_owned(),
            max_len: redis::DEFAULT_MAX_LEN,
            max_age_ms: redis::DEFAULT_MAX_AGE_MS,
            connect_timeout_ms: redis::DEFAULT_CONNECT_TIMEOUT_MS,
            response_timeout_ms: redis::DEFAULT_RESPONSE_TIMEOUT_MS,
        }
    }
}

impl ClusterConfig {
    /// Checks the bounds; names the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.lease_ttl_ms < 30 {
            return Err("cluster.lease_ttl_ms must be at least 30".into());
        }
        if let Some(renew) = self.renew_interval_ms
            && (renew == 0 || renew >= self.lease_ttl_ms)
        {
            return Err("cluster.renew_interval_ms must be above 0 and below lease_ttl_ms".into());
        }
        Ok(())
    }

    /// Returns the lease TTL.
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_millis(self.lease_ttl_ms)
    }

    /// Returns the renew period.
    pub fn renew_interval(&self) -> Duration {
        Duration::from_millis(self.renew_interval_ms.unwrap_or(self.lease_ttl_ms / 3))
    }
}

/// An engine: the shared log, the lease table and the CometD session records (one
/// backend implements all three).
#[derive(Clone)]
pub struct Engine {
    /// The shared log.
    pub log: Arc<dyn SharedLog>,
    /// The leases.
    pub leases: Arc<dyn LeaseTable>,
    /// The records of movable CometD sessions.
    pub sessions: Arc<dyn SessionRecords>,
    /// What it is, for logs (the URL without credentials, or `memory`).
    pub name: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("name", &self.name).finish()
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Engine {
    /// Wraps an in-memory engine shared by the gateways of one process (tests, demos).
    pub fn memory(engine: Arc<memory::MemoryEngine>) -> Self {
        Self {
            log: engine.clone(),
            leases: engine.clone(),
            sessions: engine,
            name: "memory".into(),
        }
    }
}

/// Builds the engine `config.url` names, by its scheme: `redis://` (or `rediss://`, TLS)
/// is the Redis engine ([`redis::RedisEngine`], with `config`'s Redis bounds); anything
/// else is refused. It does not connect: a gateway starts while Redis is down and refuses
/// until it is back. The in-memory engine has no URL: tests and demos pass it with
/// [`Engine::memory`].
pub fn connect(config: &ClusterConfig) -> anyhow::Result<Engine> {
    let url = config.url.as_deref().unwrap_or_default();
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    match scheme {
        "redis" | "rediss" => {
            let engine = redis::RedisEngine::new(redis::RedisConfig {
                url: url.to_owned(),
                prefix: config.prefix.clone(),
                max_len: config.max_len,
                max_age_ms: config.max_age_ms,
                connect_timeout_ms: config.connect_timeout_ms,
                response_timeout_ms: config.response_timeout_ms,
                // Not a `[cluster]` key: only the engine's tests shorten it.
                subscriber_ping_ms: redis::DEFAULT_SUBSCRIBER_PING_MS,
            })
            .map_err(|e| anyhow::anyhow!("cluster.url {:?}: {e}", without_password(url)))?;
            let engine = Arc::new(engine);
            Ok(Engine {
                log: engine.clone(),
                leases: engine.clone(),
                sessions: engine,
                name: without_password(url),
            })
        }
        _ => Err(anyhow::anyhow!(
            "cluster.url {:?}: unknown engine; expected redis://host:port",
            without_password(url)
        )),
    }
}

/// `url` with any password replaced by `***`, for logs and errors.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

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

    /// Returns the users whose lease any instance [released](Self::release) from now on,
    /// so that an instance waiting for one tries it at once rather than at its next
    /// periodic try. A hint, not a guarantee: a notification may be dropped (a receiver
    /// too slow, the engine's subscription reconnecting), which costs the waiter only
    /// that periodic try. A lease that lapses is not reported. The stream lives while it
    /// is polled and reconnects by itself; it ends only if the engine cannot deliver
    /// notifications any more (the caller may ask again).
    fn releases(&self) -> Releases;
}

/// The users whose lease was released, one item per release ([`LeaseTable::releases`]).
pub type Releases = Pin<Box<dyn futures::Stream<Item = String> + Send>>;
