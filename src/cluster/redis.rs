//! The Redis 7 engine of cluster mode: [`RedisEngine`] is the [`SharedLog`], the
//! [`LeaseTable`](super::LeaseTable) (`redis/leases.rs`) and the
//! [`SessionRecords`](super::SessionRecords) (`redis/sessions.rs`), on keys under a prefix ([`RedisConfig::prefix`], `vg:` by default).
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{prefix}epoch` | string | the log's epoch, a random UUID set by the first `open` (`SET NX`) |
//! | `{prefix}seq` | string | the last sequence given (`INCR` per entry): sequences are dense |
//! | `{prefix}log` | stream | entry `<sequence>-0` with fields `p` (payload), `t` (append time, ms) |
//! | `{prefix}fence` | string | the last fence granted (`INCR` per grant) |
//! | `{prefix}lease:{user}` | string | `<fence>:<holder>`, with the lease's TTL (`PX`) |
//! | `{prefix}session:{clientId}` | hash | a CometD session record: `owner`, `record` (JSON), with its TTL (`redis/sessions.rs`) |
//! | `{prefix}released` | pub/sub channel (no key) | the user of each lease released, published by the release script (`redis/releases.rs`) |
//!
//! Every step that must be atomic is one Lua script (the files beside this one): `open`
//! starts an epoch and drops any log left without one; `append` checks the epoch and the
//! lease (the fencing check) and appends all payloads in the same step, so a paused or
//! partitioned old owner whose lease was taken over cannot write; the lease scripts are
//! compare-and-set on the whole `<fence>:<holder>` value, and `release` publishes the
//! user on `{prefix}released` when it deleted the lease. Scripts are sent by SHA and
//! loaded again on `NOSCRIPT` (after a Redis restart) by the client.
//!
//! Bounds, and what happens at each:
//! - **Length**: each append trims the stream to about [`RedisConfig::max_len`] entries
//!   (`MAXLEN ~`: whole stream nodes only, so up to one node more, 100 entries with Redis'
//!   default `stream-node-max-entries`). This bounds Redis' memory: at most about
//!   `max_len × (payload + 80 bytes)`. Measured for 100,000 entries
//!   (`measure_memory_and_append_latency` in tests/cluster_engine/memory.rs): 83 MB for call
//!   events of 749 bytes of plain JSON, 53.8 MB for the same events deflated as the
//!   gateway writes its entries (`cluster::entry`: 523 bytes per entry in Redis). The
//!   node size (`stream-node-max-bytes`) changes it by about 1 %: the payloads are the
//!   memory.
//! - **Age**: each append also drops the entries older than [`RedisConfig::max_age_ms`] (by
//!   their `t`, Redis' own clock). A log that nobody appends to keeps its last entries: age
//!   trimming runs only on append. A reader behind the trimmed head gets
//!   [`EngineError::Trimmed`] and resyncs.
//! - **Time**: every call fails with [`EngineError::Unavailable`] after at most
//!   `connect_timeout_ms + response_timeout_ms` (a read that waits: twice that, plus its
//!   `wait`: a first read, then the wait and the read it woke), so a
//!   gateway whose Redis is down or paused refuses fast. Commands share one multiplexed
//!   connection that reconnects by itself (redis' `ConnectionManager`) when a call finds it
//!   dropped: no engine is rebuilt when Redis is back. Every call but `append` is then sent
//!   once more on the new connection (within the same bound), so a Redis restart costs its
//!   callers no failure; an `append` is not (it may have been applied): it fails with
//!   `Unavailable`, and the caller reads the log to find out.
//! - **Connections**: a `read` that has to wait blocks a connection (`XREAD BLOCK`), which
//!   must not be the shared one: each waiting reader takes a dedicated connection from a
//!   small pool (one connection per concurrently tailing reader; at most
//!   [`IDLE_BLOCKING_CONNECTIONS`] are kept idle; an idle one found dropped is replaced
//!   once, within the same bound). A blocking read only wakes the reader:
//!   the entries are then read by the same script as a non-blocking read, which checks the
//!   epoch and trimming.
//! - **Release notifications**: each [`LeaseTable::releases`](super::LeaseTable::releases)
//!   stream (one per instance) holds one subscriber connection of its own, connected
//!   within `connect_timeout_ms`, subscribed, pinged when idle for
//!   [`RedisConfig::subscriber_ping_ms`] (5 s by default) with `response_timeout_ms` for
//!   the answer, and connected again (pauses of [`MIN_RESUBSCRIBE_PAUSE`] up to
//!   [`MAX_RESUBSCRIBE_PAUSE`]) when it drops, for a Redis restart, or fails a bound. A
//!   release published while it was not subscribed is lost (pub/sub keeps nothing): the
//!   instances waiting for that user take it at their periodic try, as before. At most
//!   [`RELEASES_BUFFER`] notifications wait for the instance to read them; more are dropped
//!   the same way.
//!
//! What the epoch can and cannot tell. A Redis that restarts empty, is flushed, or evicts
//! the epoch key gets a new epoch on the next `open`: readers see
//! [`EngineError::EpochChanged`]. A Redis that comes back with an *older* copy of its data
//! (an AOF or RDB file missing its last writes, an asynchronous replica promoted) keeps the
//! epoch while the counter goes back, so sequences would be given twice in one epoch: run
//! the engine's Redis without persistence (`--save "" --appendonly no`, as the tests do) or
//! with `appendfsync always`, without replica failover, and with `maxmemory-policy
//! noeviction` (the log's own bound is `max_len`; at `maxmemory` appends fail with
//! `Unavailable` instead of keys vanishing).
//!
//! The keys of one script must live in one hash slot for Redis Cluster; a prefix with a
//! hash tag (`{vg}:`) does that. Plain Redis needs nothing.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use ::redis::{AsyncConnectionConfig, Client, Value};

use super::{EngineError, EngineFuture, Entry, Grant, SharedLog};
use reply::{
    array, bytes, epoch_changed, integer, malformed, tagged, text, timed_out, unavailable,
};

mod config;
mod leases;
mod releases;
mod reply;
mod scripts;
mod sessions;

use leases::lease_value;
use scripts::{Keys, Scripts};

pub use releases::{MAX_RESUBSCRIBE_PAUSE, MIN_RESUBSCRIBE_PAUSE, RELEASES_BUFFER};

pub use config::{
    DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_MAX_AGE_MS, DEFAULT_MAX_LEN, DEFAULT_PREFIX,
    DEFAULT_RESPONSE_TIMEOUT_MS, DEFAULT_SUBSCRIBER_PING_MS, DEFAULT_URL, RedisConfig,
};

/// How many idle blocking-read connections are kept for the next waiting reader; more are
/// closed when their read ends.
pub const IDLE_BLOCKING_CONNECTIONS: usize = 8;

/// Whether a call may be sent again when its connection was found dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resend {
    /// Sending it twice does what sending it once does (reads, compare-and-set; an acquire
    /// sent twice grants the same holder twice, and only the second grant is returned).
    Idempotent,
    /// `append`: it may have been applied before the connection dropped, so it is not sent
    /// again (the caller reads the log to find out).
    Never,
}

/// The shared log, lease table and session records on one Redis server.
pub struct RedisEngine {
    config: RedisConfig,
    client: Client,
    /// Every non-blocking command and script, multiplexed; reconnects by itself.
    shared: ConnectionManager,
    /// Idle connections for blocking reads (a std mutex: never held across an await).
    blocking: Mutex<Vec<MultiplexedConnection>>,
    keys: Keys,
    scripts: Scripts,
}

impl std::fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEngine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RedisEngine {
    /// Builds an engine without connecting: the first call connects, so a gateway starts
    /// (and refuses with [`EngineError::Unavailable`]) while Redis is down. Fails only on
    /// an invalid URL. Must be called within a tokio runtime (the client spawns a task).
    pub fn new(config: RedisConfig) -> Result<Self, EngineError> {
        let client = Client::open(config.url.as_str()).map_err(unavailable)?;
        // Few, short retries: a caller waits at most its own deadline anyway, and after a
        // failed reconnect the next call starts another one.
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout()))
            .set_response_timeout(Some(config.response_timeout()))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(config.connect_timeout());
        let shared = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(unavailable)?;
        Ok(Self {
            keys: Keys::new(&config.prefix),
            config,
            client,
            shared,
            blocking: Mutex::new(Vec::new()),
            scripts: Scripts::new(),
        })
    }

    /// Returns the engine's settings.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// The longest a call on the shared connection takes: a reconnect, then the answer.
    fn deadline(&self) -> Duration {
        self.config.connect_timeout() + self.config.response_timeout()
    }

    /// Runs `invocation` on the shared connection within [`Self::deadline`].
    async fn invoke(
        &self,
        invocation: &::redis::ScriptInvocation<'_>,
        resend: Resend,
    ) -> Result<Value, EngineError> {
        self.run(resend, |mut connection| async move {
            invocation.invoke_async(&mut connection).await
        })
        .await
    }

    /// Runs `attempt` on the shared connection within [`Self::deadline`], once more on a
    /// connection found dropped if `resend` allows: the manager reconnects on that error,
    /// and the caller would otherwise see a restarted Redis fail once.
    async fn run<F, Fut>(&self, resend: Resend, attempt: F) -> Result<Value, EngineError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = ::redis::RedisResult<Value>>,
    {
        let deadline = self.deadline();
        let attempts = async {
            match attempt(self.shared.clone()).await {
                Err(error) if resend == Resend::Idempotent && error.is_unrecoverable_error() => {
                    attempt(self.shared.clone()).await
                }
                result => result,
            }
        };
        match tokio::time::timeout(deadline, attempts).await {
            Ok(result) => result.map_err(unavailable),
            Err(_) => Err(timed_out(deadline)),
        }
    }

    /// Reads entries without waiting (one script: epoch, then range, then trimming).
    async fn read_now(
        &self,
        epoch: &str,
        after: u64,
        max: usize,
    ) -> Result<Vec<Entry>, EngineError> {
        let reply = self
            .invoke(
                self.scripts
                    .read
                    .key(&self.keys.epoch)
                    .key(&self.keys.seq)
                    .key(&self.keys.log)
                    .arg(epoch)
                    .arg(after)
                    .arg(max),
                Resend::Idempotent,
            )
            .await?;
        let mut items = tagged(reply)?;
        match items.tag.as_str() {
            "ok" => {
                let mut entries = Vec::with_capacity(items.rest.len() / 2);
                while let (Some(sequence), Some(payload)) = (items.rest.next(), items.rest.next()) {
                    entries.push(Entry {
                        sequence: integer(sequence)?,
                        payload: bytes(payload)?,
                    });
                }
                Ok(entries)
            }
            "trimmed" => Err(EngineError::Trimmed {
                after,
                first: integer(items.next()?)?,
            }),
            _ => Err(epoch_changed(epoch, items)?),
        }
    }

    /// Waits up to `wait` for an entry after `after` on a dedicated connection; returns
    /// whether one may be there (a wake-up, not a read: the caller reads with the checks).
    async fn wait_for_entry(&self, after: u64, wait: Duration) -> Result<bool, EngineError> {
        // XREAD BLOCK 0 waits forever: wait at least 1 ms.
        let block_ms = wait.as_millis().clamp(1, u128::from(u64::MAX)) as u64;
        let mut command = ::redis::cmd("XREAD");
        command
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(&self.keys.log)
            .arg(format!("{after}-0"));
        let idle = self
            .blocking
            .lock()
            .map(|mut pool| pool.pop())
            .unwrap_or(None);
        let (connection, reply) = match idle {
            Some(mut connection) => match self.xread(&command, &mut connection, wait).await? {
                // An idle connection Redis dropped (a restart): once more on a new one.
                Err(error) if error.is_unrecoverable_error() => {
                    let mut connection = self.connect_blocking().await?;
                    let reply = self.xread(&command, &mut connection, wait).await?;
                    (connection, reply)
                }
                reply => (connection, reply),
            },
            None => {
                let mut connection = self.connect_blocking().await?;
                let reply = self.xread(&command, &mut connection, wait).await?;
                (connection, reply)
            }
        };
        let reply = reply.map_err(unavailable)?;
        // Only a connection that answered goes back: one that timed out may still have the
        // XREAD pending.
        if let Ok(mut pool) = self.blocking.lock()
            && pool.len() < IDLE_BLOCKING_CONNECTIONS
        {
            pool.push(connection);
        }
        Ok(!matches!(reply, Value::Nil))
    }

    /// Sends a blocking XREAD; the outer error is the bound (`wait` + response timeout).
    async fn xread(
        &self,
        command: &::redis::Cmd,
        connection: &mut MultiplexedConnection,
        wait: Duration,
    ) -> Result<::redis::RedisResult<Value>, EngineError> {
        let deadline = wait + self.config.response_timeout();
        tokio::time::timeout(deadline, command.query_async::<Value>(connection))
            .await
            .map_err(|_| timed_out(deadline))
    }

    async fn connect_blocking(&self) -> Result<MultiplexedConnection, EngineError> {
        // No response timeout on this connection: its XREAD is bounded by the caller.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.config.connect_timeout()))
            .set_response_timeout(None);
        let deadline = self.config.connect_timeout();
        tokio::time::timeout(
            deadline,
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| timed_out(deadline))?
        .map_err(unavailable)
    }
}

impl SharedLog for RedisEngine {
    fn open(&self) -> EngineFuture<'_, (String, u64)> {
        Box::pin(async move {
            let fresh = uuid::Uuid::new_v4().to_string();
            let reply = self
                .invoke(
                    self.scripts
                        .open
                        .key(&self.keys.epoch)
                        .key(&self.keys.seq)
                        .key(&self.keys.log)
                        .arg(fresh),
                    Resend::Idempotent,
                )
                .await?;
            let mut items = array(reply)?.into_iter();
            let epoch = text(items.next().ok_or_else(|| malformed("open"))?)?;
            let last = integer(items.next().ok_or_else(|| malformed("open"))?)?;
            Ok((epoch, last))
        })
    }

    fn append<'a>(
        &'a self,
        epoch: &'a str,
        grant: &'a Grant,
        payloads: Vec<Vec<u8>>,
    ) -> EngineFuture<'a, Vec<u64>> {
        Box::pin(async move {
            // Even with no payloads the script runs: an empty append is a fence check.
            let mut invocation = self.scripts.append.prepare_invoke();
            invocation
                .key(&self.keys.epoch)
                .key(self.keys.lease(&grant.user))
                .key(&self.keys.seq)
                .key(&self.keys.log)
                .arg(epoch)
                .arg(lease_value(grant))
                .arg(self.config.max_len.max(1))
                .arg(self.config.max_age_ms);
            for payload in &payloads {
                invocation.arg(payload.as_slice());
            }
            let mut items = tagged(self.invoke(&invocation, Resend::Never).await?)?;
            match items.tag.as_str() {
                "ok" => {
                    let first = integer(items.next()?)?;
                    let count = integer(items.next()?)?;
                    Ok((first..first + count).collect())
                }
                "fenced" => Err(EngineError::Fenced {
                    user: grant.user.clone(),
                    fence: grant.fence,
                }),
                _ => Err(epoch_changed(epoch, items)?),
            }
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
            if max == 0 {
                return Ok(Vec::new());
            }
            let entries = self.read_now(epoch, after, max).await?;
            if !entries.is_empty() || wait.is_zero() {
                return Ok(entries);
            }
            // One bound for the wait and the read after it, however many connections the
            // wait needed (an idle one found dropped is replaced).
            let bound = wait + self.deadline();
            let waited = async {
                // XREAD from `after` (not `$`): an entry appended between the read above
                // and this wait wakes it at once, so none is missed.
                if self.wait_for_entry(after, wait).await? {
                    self.read_now(epoch, after, max).await
                } else {
                    Ok(Vec::new())
                }
            };
            tokio::time::timeout(bound, waited)
                .await
                .unwrap_or_else(|_| Err(timed_out(bound)))
        })
    }
}
