//! Figure 11: cluster mode (issue 16). `redis-server` on loopback, gateway U (embedded,
//! the generated configuration) as the upstream GWS, and three bridge instances A, B and C
//! (`--upstream http://<U>` with `[cluster] url = "redis://…"`), every one a process of its
//! own. Agents sign in on B first, so B owns their upstream sessions; calls are set up
//! through A, and a watcher of each caller runs on C. Three measures:
//!
//! 1. **End to end**: StartCallRecording/StopCallRecording sent to A, open loop, at the
//!    rate that commits the plan's events per second into the shared log (the events one
//!    operation commits are counted first, from the log's head); latency is operation sent
//!    on A → its event at the watcher on C ([`crate::cluster_load`]). The path: A → U → U's
//!    notification to B (the owner) → B appends to Redis → C's tail → C's watcher.
//! 2. **Takeover** after SIGKILL and after SIGTERM of an owner
//!    ([`crate::cluster_takeover`]).
//! 3. **Redis memory** of a log of the plan's length, written through the gateway's engine
//!    with entries the instances wrote.

use std::time::Duration;

use crate::bridge::establish_through;
use crate::cluster_load::{RunResult, RunShape, Targets, send_recording};
use crate::cluster_nodes::{RedisProcess, common_holder, sign_in};
use crate::cluster_takeover::{LogMemory, Phases, Survivors, Takeover, log_memory};
use crate::cluster_watch::Watchers;
use crate::figures::{Bench, RunningGateway, reset_recording};
use crate::report::Row;
use crate::setup::EstablishedCall;

/// The figure's name in the table.
const FIGURE: &str = "11. Cluster";
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
struct EndToEnd {
    /// Log entries one operation commits (measured).
    events_per_op: f64,
    /// The operations' rate.
    ops_per_sec: f64,
    /// Each round, and the log's growth per second over it.
    rounds: Vec<(RunResult, f64)>,
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

    fn push_cluster_rows(
        &mut self,
        e2e: &EndToEnd,
        (seed, trials): (u64, &[Takeover]),
        memory: &LogMemory,
    ) {
        let plan = self.plan.cluster;
        let mut sorted: Vec<&(RunResult, f64)> = e2e.rounds.iter().collect();
        sorted.sort_by(|x, y| x.0.latency.p99_ms.total_cmp(&y.0.latency.p99_ms));
        let (median, rate) = sorted[sorted.len() / 2];
        let clean = e2e
            .rounds
            .iter()
            .all(|(r, _)| r.failed == 0 && r.no_event == 0 && r.latency.count > 0);
        let l = median.latency;
        self.rows.push(Row {
            figure: FIGURE.into(),
            measure: format!(
                "operation sent on A → its event at a WatchCalls watcher on C (owner B), Start/StopCallRecording at {:.0} ops/s open loop = {:.0} log events/s ({:.2} per operation), {} calls",
                e2e.ops_per_sec, rate, e2e.events_per_op, plan.calls
            ),
            gateway: format!(
                "p50 {:.2} ms, p99 {:.2} ms ({} events)",
                l.p50_ms, l.p99_ms, l.count
            ),
            baseline: format!(
                "the event at a watcher on U (before the cluster's log): p50 {:.2} ms, p99 {:.2} ms; A's reply: p50 {:.2} ms, p99 {:.2} ms",
                median.at_upstream.p50_ms,
                median.at_upstream.p99_ms,
                median.reply.p50_ms,
                median.reply.p99_ms
            ),
            ratio: None,
            value: l.p99_ms,
            target: "≤ 5 ms p99".into(),
            met: Some(l.p99_ms <= 5.0 && clean),
        });
        let ttl = Duration::from_millis(plan.lease_ttl_ms);
        for (signal, bound, target) in [
            (
                "SIGKILL",
                ttl + Duration::from_secs(1),
                format!("≤ lease TTL + 1 s = {:.1} s", (ttl.as_secs_f64() + 1.0)),
            ),
            ("SIGTERM", Duration::from_secs(1), "≤ 1 s".into()),
        ] {
            let of: Vec<&Takeover> = trials.iter().filter(|t| t.signal == signal).collect();
            self.rows
                .push(takeover_row(signal, &of, plan.lease_ttl_ms, bound, target));
        }
        let grew = memory.after.saturating_sub(memory.before) as f64;
        self.rows.push(Row {
            figure: FIGURE.into(),
            measure: format!(
                "Redis used_memory for a {}-entry log (entries the instances wrote, {:.0} bytes each deflated)",
                memory.entries, memory.payload_bytes
            ),
            gateway: format!(
                "{:.1} MB ({:.0} bytes per entry; {:.1} MB in all)",
                grew / 1e6,
                grew / memory.entries.max(1) as f64,
                memory.after as f64 / 1e6
            ),
            baseline: "–".into(),
            ratio: None,
            value: grew / 1e6,
            target: "≤ 64 MB".into(),
            met: Some(grew / 1e6 <= 64.0),
        });
        self.chart_latency(
            FIGURE,
            "operation on A → its event at the watcher on C, at the watcher on U, and A's reply (median round)",
            vec![
                ("A → event at C".into(), median.latency),
                ("A → event at U".into(), median.at_upstream),
                ("A's reply".into(), median.reply),
            ],
        );
        self.notes
            .push(cluster_note(&self.plan, e2e, (seed, trials), memory));
    }
}

fn takeover_row(
    signal: &str,
    trials: &[&Takeover],
    ttl_ms: u64,
    bound: Duration,
    target: String,
) -> Row {
    let times: Vec<Option<Duration>> = trials.iter().map(|t| t.time()).collect();
    let worst = times
        .iter()
        .map(|t| t.map_or(f64::INFINITY, |d| d.as_secs_f64()))
        .fold(0.0, f64::max);
    let each = times
        .iter()
        .map(|t| t.map_or_else(|| "none".into(), |d| format!("{:.2}", d.as_secs_f64())))
        .collect::<Vec<_>>()
        .join(", ");
    Row {
        figure: FIGURE.into(),
        measure: format!(
            "takeover after {signal} of the owner (lease_ttl_ms {ttl_ms}): signal → a survivor holds the lease and an operation sent after the signal has its event at C"
        ),
        gateway: format!("worst {worst:.2} s ({} trials: {each} s)", trials.len()),
        baseline: "–".into(),
        ratio: None,
        value: if worst.is_finite() { worst } else { -1.0 },
        target,
        met: Some(!trials.is_empty() && worst <= bound.as_secs_f64()),
    }
}

/// The figure's "how it is measured" line, with every round's and trial's numbers.
fn cluster_note(
    plan: &crate::plan::Plan,
    e2e: &EndToEnd,
    (seed, trials): (u64, &[Takeover]),
    m: &LogMemory,
) -> String {
    let c = plan.cluster;
    let rounds = e2e
        .rounds
        .iter()
        .map(|(r, rate)| {
            let waits = r
                .run_queue_ms_per_s
                .iter()
                .map(|(name, ms)| format!("{name} {}", ms.map_or_else(|| "?".into(), |ms| format!("{ms:.0}"))))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "{} sent, {} failed, {} without an event at C, {} waited for their call, log {rate:.0} entries/s, at C p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, at U p99 {:.2} ms, machine {} busy, run-queue wait (ms/s) {waits}",
                r.sent,
                r.failed,
                r.no_event,
                r.queued,
                r.latency.p50_ms,
                r.latency.p99_ms,
                r.latency.max_ms,
                r.at_upstream.p99_ms,
                r.machine_busy
                    .map_or_else(|| "?".into(), |b| format!("{:.0} %", b * 100.0)),
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let ms =
        |d: Option<Duration>| d.map_or_else(|| "never".into(), |d| format!("{} ms", d.as_millis()));
    let trials = trials
        .iter()
        .map(|t| {
            format!(
                "{} (survivors {} ms after D's grant, signal {} ms after them): lease {}, event {}, {} probe attempt(s), D exited {}",
                t.signal,
                t.phases.survivors.as_millis(),
                t.phases.signal.as_millis(),
                ms(t.lease),
                ms(t.event),
                t.attempts,
                t.exit.as_deref().unwrap_or("not within 10 s")
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let first_error = e2e
        .rounds
        .iter()
        .find_map(|(r, _)| r.first_error.clone())
        .map(|e| format!(" First failure: {e}."))
        .unwrap_or_default();
    format!(
        "Figure 11: `redis-server` on loopback (`--save \"\" --appendonly no`), U (embedded, the generated configuration) and three bridge instances A, B, C (`[upstream] url = \"http://<U's HTTP listener>\"`, `transport = \"websocket\"`, `[cluster] url = \"redis://…\"`, `lease_ttl_ms = {ttl}`, renew every {renew} ms), each a process. {agents} agents sign in on B first, so B holds their leases and runs their upstream CometD clients; {calls} calls are dialed and answered through A; a WatchCalls of each caller runs on C. End to end: each operation commits {per_op:.2} log entries (counted from the log's head over a start and a stop of every call), so {ops:.0} operations/s over {conns} HTTP/2 connections to A commit {events:.0} events/s; each call alternates StartCallRecording and StopCallRecording as its caller, one at a time; latency is the operation's send on A (its tick when it waited for its call) → the watcher on C receiving the call's event in the recording state the operation asked for (path A → U → U's notification to B → B's append to Redis → C's tail); a watcher of each caller on U times the same operations up to U's own event, the part before B and the log. Contention over each window: the machine's busy share (every process, the bench's and others') and each server's run-queue wait (time its threads were runnable but waiting for a core, summed over threads). {rounds_n} rounds of {warmup:?} warm-up then {duration:?} measured, the round with the median p99 shown: {rounds}.{first_error} Takeover: per trial a fresh instance D starts, a fresh agent X signs in on D first (D owns X), X's call is set up through A and watched on C, then D gets the signal and A is asked at once to start recording on X's call (retried every 20 ms while refused; A's own upstream session carries it to U). Lease: Redis shows X's lease held by another instance (read every 2 ms through the gateway's engine). Event: the watcher of X on C receives the recording event; with no owner nothing of X reaches the log, so it is the new owner's doing (its re-read of X at U or the notification). The takeover is the later of the two. When the signal falls decides it: an owner renews once per renew interval from its grant, a survivor tries once per renew interval from the user's sign-in there, so after SIGTERM (leases released at once) the takeover waits for a survivor's next try, up to one renew interval, and after SIGKILL for the lease to lapse (the TTL after D's last renewal) and then the next try: from the TTL minus one interval to the TTL plus one. Each trial draws from seed {seed} when the survivors see X (up to one interval after D's grant: their tries' offset from D's renewals) and when the signal comes (one to two intervals later, so D renewed at least once). Trials: {trials}. Memory: `INFO memory` `used_memory` before and after appending {entries} entries (batches of 100) through the gateway's Redis engine (`voice_gateway::cluster`) to a log under its own prefix, each entry a copy of one of {samples} entries the instances wrote ({bytes:.0} bytes on average: deflated JSON call events); {before:.1} MB before, {after:.1} MB after.",
        ttl = c.lease_ttl_ms,
        renew = c.lease_ttl_ms / 3,
        agents = 2 * c.calls,
        calls = c.calls,
        per_op = e2e.events_per_op,
        ops = e2e.ops_per_sec,
        conns = c.connections,
        events = c.events_per_sec,
        rounds_n = e2e.rounds.len(),
        warmup = c.warmup,
        duration = c.duration,
        entries = m.entries,
        samples = m.samples,
        bytes = m.payload_bytes,
        before = m.before as f64 / 1e6,
        after = m.after as f64 / 1e6,
    )
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
