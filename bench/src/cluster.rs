//! Figure 11: cluster mode (issue 16). `redis-server` on loopback, gateway U (embedded,
//! the generated configuration) as the upstream GWS, and three bridge instances A, B and C
//! (`[upstream] url = "http://<U>"` and `[cluster] url = "redis://…"`), every one a process
//! of its own. Agents sign in on B first, so B owns their upstream sessions; calls are set up
//! through A, and a watcher of each caller runs on C. Three measures:
//!
//! 1. **End to end**: StartCallRecording/StopCallRecording sent to A, open loop, at the
//!    rate that commits the plan's events per second into the shared log (the events one
//!    operation commits are counted first, from the log's head); latency is operation sent
//!    on A → its event at the watcher on C ([`crate::cluster_load`]). The path: A → U → U's
//!    notification to B (the owner) → B appends to Redis → C's tail → C's watcher. A
//!    watcher of each caller on U times the part before the cluster.
//! 2. **Takeover** after SIGKILL and after SIGTERM of an owner
//!    ([`crate::cluster_takeover`]).
//! 3. **Redis memory** of a log of the plan's length, written through the gateway's engine
//!    with entries the instances wrote.

use std::time::Duration;

use crate::bridge::establish_through;
use crate::cluster_load::{RunResult, RunShape, Targets, send_recording};
use crate::cluster_nodes::{RedisProcess, common_holder, sign_in};
use crate::cluster_takeover::{Phases, Survivors, log_memory};
use crate::cluster_watch::Watchers;
use crate::figures::{Bench, RunningGateway, reset_recording};
use crate::setup::EstablishedCall;

/// The figure's name in the table.
pub(crate) const FIGURE: &str = "11. Cluster";
/// How long the log's head must stay put to count as quiet.
const QUIET: Duration = Duration::from_millis(200);

/// Counts and durations of figure 11.
#[derive(Debug, Clone, Copy)]
pub struct ClusterPlan {
    /// Established calls the operations cycle through (two agents each).
    pub calls: usize,
    /// Events per second committed into the shared log by the operations.
    pub events_per_sec: f64,
    /// Time before measuring.
    pub warmup: Duration,
    /// Measured time of each round.
    pub duration: Duration,
    /// HTTP/2 connections to A.
    pub connections: usize,
    /// Takeover trials per signal.
    pub trials: usize,
    /// The instances' `cluster.lease_ttl_ms`.
    pub lease_ttl_ms: u64,
    /// Entries of the log whose Redis memory is read.
    pub log_entries: u64,
}

/// What the end-to-end measure found.
#[derive(Debug, Clone)]
pub(crate) struct EndToEnd {
    /// Log entries one operation commits (measured).
    pub(crate) events_per_op: f64,
    /// The operations' rate.
    pub(crate) ops_per_sec: f64,
    /// Each round, and the log's growth per second over it.
    pub(crate) rounds: Vec<(RunResult, f64)>,
}

impl Bench {
    /// Figure 11: Redis, U, A, B and C; the end-to-end rounds, the takeover trials, then
    /// the Redis memory of a full log (the gateways stopped first).
    pub async fn cluster(&mut self) -> anyhow::Result<()> {
        let plan = self.plan.cluster;
        let needed = 2 * plan.calls + 4 * plan.trials;
        anyhow::ensure!(
            needed <= self.plan.users,
            "figure 11 needs {needed} agents; the configuration has {}",
            self.plan.users
        );
        let redis_dir = self.work.join("redis");
        let Some(redis) = RedisProcess::start(&redis_dir, &self.work.join("logs"))? else {
            self.missing.push(format!(
                "{FIGURE}: redis-server is not installed (Debian package redis-server)"
            ));
            return Ok(());
        };
        let engine = redis.engine()?;
        let upstream = self.spawn_gateway("cluster-upstream", Some(&self.config.clone()))?;
        let a = self.spawn_instance("cluster-a", upstream.http, &redis)?;
        let b = self.spawn_instance("cluster-b", upstream.http, &redis)?;
        let c = self.spawn_instance("cluster-c", upstream.http, &redis)?;
        let end_to_end = self.end_to_end([&upstream, &a, &b, &c], &redis).await?;
        let at = Survivors {
            a: &a,
            c: &c,
            upstream: upstream.http,
            redis: &redis,
            engine: &engine,
        };
        let mut trials = Vec::new();
        let mut k = plan.calls;
        let renew = Duration::from_millis(plan.lease_ttl_ms / 3);
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        for signal in [libc::SIGKILL, libc::SIGTERM] {
            for _ in 0..plan.trials {
                let phases = Phases::draw(seed, k as u64, renew);
                trials.push(self.takeover_trial(at, k, signal, phases).await?);
                k += 1;
            }
        }
        drop((a, b, c, upstream));
        let memory = log_memory(&redis, &engine, plan.log_entries).await?;
        self.push_cluster_rows(&end_to_end, (seed, &trials), &memory);
        Ok(())
    }

    /// Signs the agents in on B (their owner), sets the calls up through A, opens the
    /// watchers on C and on U, counts the events per operation, then runs the rounds.
    async fn end_to_end(
        &mut self,
        [u, a, b, c]: [&RunningGateway; 4],
        redis: &RedisProcess,
    ) -> anyhow::Result<EndToEnd> {
        let plan = self.plan.cluster;
        let engine = &redis.engine()?;
        let agents: Vec<usize> = (0..2 * plan.calls).collect();
        sign_in(&b.grpc_url(), &agents).await?;
        let owner = common_holder(engine, &agents).await?;
        let calls = establish_through(&a.grpc_url(), plan.calls).await?;
        let callers: Vec<usize> = calls.iter().map(|call| call.caller).collect();
        let on_c = Watchers::open(&c.grpc_url(), &callers).await?;
        let on_u = Watchers::open(&u.grpc_url(), &callers).await?;
        let events_per_op = events_per_operation(a, &calls, engine).await?;
        let ops_per_sec = plan.events_per_sec / events_per_op;
        let shape = RunShape {
            ops_per_sec,
            warmup: plan.warmup,
            duration: plan.duration,
            connections: plan.connections,
        };
        let pids = [
            ("U", u.server.pid()),
            ("A", a.server.pid()),
            ("B", b.server.pid()),
            ("C", c.server.pid()),
            ("Redis", redis.server.pid()),
        ];
        let targets = Targets {
            a: &a.grpc_url(),
            on_c: &on_c,
            on_u: &on_u,
            pids: &pids,
        };
        let mut rounds = Vec::new();
        for _ in 0..self.plan.rounds {
            reset_recording(&a.grpc_url(), &calls).await?;
            quiet(engine).await?;
            let (_, head) = engine.log.open().await?;
            let run = crate::cluster_load::run(targets, &calls, shape).await?;
            let (_, after) = engine.log.open().await?;
            let seconds = (plan.warmup + plan.duration).as_secs_f64();
            rounds.push((run, (after - head) as f64 / seconds));
        }
        // A renewal B missed (a busy machine) would move a lease mid-round and change the
        // path measured: say so rather than report it as B's.
        let still = common_holder(engine, &agents).await?;
        anyhow::ensure!(still == owner, "B lost its users' leases during the rounds");
        Ok(EndToEnd {
            events_per_op,
            ops_per_sec,
            rounds,
        })
    }
}

/// Counts the log entries one operation commits: each call's caller starts then stops
/// recording through A, one operation at a time, and the log's head is read before and
/// once it is quiet after.
async fn events_per_operation(
    a: &RunningGateway,
    calls: &[EstablishedCall],
    engine: &voice_gateway::cluster::Engine,
) -> anyhow::Result<f64> {
    reset_recording(&a.grpc_url(), calls).await?;
    quiet(engine).await?;
    let (_, before) = engine.log.open().await?;
    let mut client = crate::bridge::connect(&a.grpc_url()).await?;
    let mut ops = 0u64;
    for call in calls {
        for state in [
            voice_gateway::grpc::pb::RecordingState::Recording,
            voice_gateway::grpc::pb::RecordingState::Stopped,
        ] {
            send_recording(&mut client, call, state).await?;
            ops += 1;
        }
    }
    let after = quiet(engine).await?;
    anyhow::ensure!(
        after > before,
        "the operations committed nothing to the log"
    );
    Ok((after - before) as f64 / ops as f64)
}

/// Waits (bounded) until the log's head stays put for [`QUIET`]; returns it.
async fn quiet(engine: &voice_gateway::cluster::Engine) -> anyhow::Result<u64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (_, mut head) = engine.log.open().await?;
    loop {
        tokio::time::sleep(QUIET).await;
        let (_, now) = engine.log.open().await?;
        if now == head {
            return Ok(head);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the shared log did not settle within 10 s"
        );
        head = now;
    }
}
