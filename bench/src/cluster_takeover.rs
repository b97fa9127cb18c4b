//! Figure 11's takeover trials and Redis memory reading.
//!
//! A trial starts an instance D and makes it the owner of a fresh agent X (X signs in on
//! D first; A and C only see X afterwards: the call X dials through A, the watcher of X on
//! C), then signals D (SIGKILL or SIGTERM) and, right after, asks A to start recording on
//! X's call (retried every [`PROBE_RETRY`] while it fails). Two times are read from the
//! signal: **lease**, when Redis shows X's lease held by another instance (the gateway's
//! engine asked every [`LEASE_POLL`]); **event**, when the watcher of X on C receives the
//! recording event. Nothing of X reaches the log without an owner, so that event is the new
//! owner's (its re-read of X at U, or the probe's notification). The takeover is the later
//! of the two: a survivor owns X and the operation's event reached a watcher.
//!
//! After a SIGTERM the owner releases the lease and the release is published on Redis,
//! which wakes the survivors waiting for X: the takeover is a round trip and a catch-up.
//! After a SIGKILL nothing is published, and when the signal falls matters (a set-up run
//! straight through would fix it): an owner renews once per renew interval from its grant,
//! and a survivor tries a lease it does not hold once per renew interval from the user's
//! sign-in there. The lease lapses a TTL after the owner's last renewal (the TTL
//! minus up to one interval after the signal), then waits for the next try: between the TTL
//! minus one interval and the TTL plus one. So each trial draws two [`Phases`] from a seed:
//! how long after D's grant the survivors see X (their tries' offset from D's renewals),
//! and how far into a renew interval the signal falls, after D renewed at least once.

use std::time::{Duration, Instant};

use voice_gateway::cluster::Engine;
use voice_gateway::grpc::pb;

use crate::bridge::{connect, establish_one};
use crate::cluster_load::send_recording;
use crate::cluster_nodes::{RedisProcess, held, sign_in};
use crate::cluster_watch::{Watchers, await_probe, expect_probe};
use crate::figures::{Bench, RunningGateway};
use crate::setup::user;

/// The period of the probe's retries while A refuses it.
const PROBE_RETRY: Duration = Duration::from_millis(20);
/// The period at which the lease is read from Redis (the lease time's resolution).
const LEASE_POLL: Duration = Duration::from_millis(2);
/// How long a trial waits past the lease's TTL before giving up.
const TRIAL_SLACK: Duration = Duration::from_secs(5);

/// One takeover trial.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Takeover {
    /// `SIGKILL` or `SIGTERM`.
    pub signal: &'static str,
    /// Signal → another instance holds the lease.
    pub lease: Option<Duration>,
    /// Signal → the probe's event at the watcher on C.
    pub event: Option<Duration>,
    /// When the survivors saw X and the signal came.
    pub phases: Phases,
    /// Attempts the probe took on A.
    pub attempts: u32,
    /// How D exited (`None`: still running after the wait).
    pub exit: Option<String>,
}

impl Takeover {
    /// Returns the takeover time (the later of the two), `None` if either never came.
    pub fn time(&self) -> Option<Duration> {
        Some(self.lease?.max(self.event?))
    }
}

/// When things happen in a trial.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Phases {
    /// From D's grant to the survivors' sign-in (up to one renew interval).
    pub survivors: Duration,
    /// From the survivors' sign-in to the signal (one to two renew intervals).
    pub signal: Duration,
}

impl Phases {
    /// Draws trial `i`'s phases from `seed` (splitmix64), for a renew interval `renew`.
    pub fn draw(seed: u64, i: u64, renew: Duration) -> Self {
        let mut state = seed.wrapping_add(i.wrapping_mul(2).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut next = || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) as f64 / u64::MAX as f64
        };
        Self {
            survivors: renew.mul_f64(next()),
            signal: renew.mul_f64(1.0 + next()),
        }
    }
}

/// The instances a trial needs: A (operations), C (the watcher) and U's HTTP listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Survivors<'a> {
    pub(crate) a: &'a RunningGateway,
    pub(crate) c: &'a RunningGateway,
    pub(crate) upstream: std::net::SocketAddr,
    pub(crate) redis: &'a RedisProcess,
    pub(crate) engine: &'a Engine,
}

impl Bench {
    /// Runs one trial with call `k` (agents `2k` and `2k+1`), D stopped by `signal` at
    /// `phases`.
    pub(crate) async fn takeover_trial(
        &self,
        at: Survivors<'_>,
        k: usize,
        signal: libc::c_int,
        phases: Phases,
    ) -> anyhow::Result<Takeover> {
        let name = if signal == libc::SIGKILL {
            "SIGKILL"
        } else {
            "SIGTERM"
        };
        let mut d = self.spawn_instance(&format!("cluster-d{k}"), at.upstream, at.redis)?;
        let (x, y) = (2 * k, 2 * k + 1);
        sign_in(&d.grpc_url(), &[x, y]).await?;
        // Only D has seen X: D holds X's lease.
        let grant = held(at.engine, &user(x)).await?;
        tokio::time::sleep(phases.survivors).await;
        let call = establish_one(connect(&at.a.grpc_url()).await?, k).await?;
        let watchers = Watchers::open(&at.c.grpc_url(), &[x]).await?;
        let holder = at.engine.leases.holder(&user(x)).await?;
        anyhow::ensure!(
            holder.as_ref() == Some(&grant),
            "{}'s lease moved off D before the signal: {holder:?}",
            user(x)
        );
        tokio::time::sleep(phases.signal).await;
        let state = pb::RecordingState::Recording;
        expect_probe(&watchers.pending, &call, state);
        let ttl = Duration::from_millis(self.plan.cluster.lease_ttl_ms);
        let signalled = Instant::now();
        let deadline = signalled + 2 * ttl + TRIAL_SLACK;
        d.server.signal(signal)?;
        let stop = tokio_util::sync::CancellationToken::new();
        let probe = {
            let (url, call, stop) = (at.a.grpc_url(), call.clone(), stop.clone());
            tokio::spawn(async move {
                let mut client = connect(&url).await?;
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    let sent = send_recording(&mut client, &call, state).await;
                    if sent.is_ok() || stop.is_cancelled() || Instant::now() >= deadline {
                        return anyhow::Ok(attempts);
                    }
                    tokio::time::sleep(PROBE_RETRY).await;
                }
            })
        };
        let lease = tokio::spawn(lease_moved(
            at.engine.clone(),
            user(x),
            grant.holder.clone(),
            deadline,
        ));
        let event = await_probe(&watchers.pending, &call, state, deadline).await;
        stop.cancel();
        let lease = lease.await??;
        let attempts = probe.await??;
        let exit = d.server.wait_exit(Duration::from_secs(10)).await?;
        Ok(Takeover {
            signal: name,
            lease: lease.map(|at| at - signalled),
            event: event.map(|at| at - signalled),
            phases,
            attempts,
            exit: exit.map(|status| status.to_string()),
        })
    }
}

/// Reads `user`'s lease until someone but `old` holds it; returns when that was seen.
async fn lease_moved(
    engine: Engine,
    user: String,
    old: String,
    deadline: Instant,
) -> anyhow::Result<Option<Instant>> {
    while Instant::now() < deadline {
        if let Ok(Some(grant)) = engine.leases.holder(&user).await
            && grant.holder != old
        {
            return Ok(Some(Instant::now()));
        }
        tokio::time::sleep(LEASE_POLL).await;
    }
    Ok(None)
}

/// What the Redis memory reading found.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct LogMemory {
    /// Entries in the measured log.
    pub entries: u64,
    /// Distinct payloads copied from the figure's own log.
    pub samples: usize,
    /// Their mean size as stored (deflated JSON), bytes.
    pub payload_bytes: f64,
    /// `used_memory` before the log was written, bytes.
    pub before: u64,
    /// `used_memory` after, bytes.
    pub after: u64,
}

/// Appends `entries` entries through the gateway's Redis engine to a log under a prefix of
/// its own (`vg-memory:`), in appends of 100, each payload one of the entries the
/// figure's instances wrote to their log (read back through the same engine), and reads
/// `used_memory` before and after.
pub(crate) async fn log_memory(
    redis: &RedisProcess,
    live: &Engine,
    entries: u64,
) -> anyhow::Result<LogMemory> {
    let (epoch, _) = live.log.open().await?;
    let samples: Vec<Vec<u8>> = live
        .log
        .read(&epoch, 0, 512, Duration::ZERO)
        .await?
        .into_iter()
        .map(|e| e.payload)
        .collect();
    anyhow::ensure!(!samples.is_empty(), "the figure's log is empty");
    let payload_bytes = samples.iter().map(Vec::len).sum::<usize>() as f64 / samples.len() as f64;
    let engine = redis.engine_with_prefix("vg-memory:")?;
    let before = redis.used_memory().await?;
    let (epoch, _) = engine.log.open().await?;
    let grant = engine
        .leases
        .acquire("voice-bench", "voice-bench", Duration::from_secs(3600))
        .await?
        .ok_or_else(|| anyhow::anyhow!("the memory log's lease is taken"))?;
    let mut written = 0u64;
    while written < entries {
        let batch = (entries - written).min(100);
        let payloads = (written..written + batch)
            .map(|n| samples[n as usize % samples.len()].clone())
            .collect();
        engine.log.append(&epoch, &grant, payloads).await?;
        written += batch;
    }
    let (_, head) = engine.log.open().await?;
    let after = redis.used_memory().await?;
    Ok(LogMemory {
        entries: head,
        samples: samples.len(),
        payload_bytes,
        before,
        after,
    })
}
