//! Figure 11's rows, chart and note: what [`crate::cluster`] measured, as the report shows
//! it.

use std::time::Duration;

use crate::cluster::{EndToEnd, FIGURE};
use crate::cluster_load::RunResult;
use crate::cluster_takeover::{LogMemory, Takeover};
use crate::figures::Bench;
use crate::report::Row;

impl Bench {
    /// Adds the figure's four rows (end to end, takeover after SIGKILL and after SIGTERM,
    /// Redis memory), its latency chart and its note; `seed` drew the trials' phases.
    pub(crate) fn push_cluster_rows(
        &mut self,
        e2e: &EndToEnd,
        (seed, trials): (u64, &[Takeover]),
        memory: &LogMemory,
    ) {
        let plan = self.plan.cluster;
        let (row, median) = end_to_end_row(plan.calls, e2e);
        self.rows.push(row);
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
        self.rows.push(memory_row(memory));
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

/// The end-to-end row, from the round with the median p99 (returned too); the target is
/// met only if no round had a failure or an event missing at C.
fn end_to_end_row(calls: usize, e2e: &EndToEnd) -> (Row, RunResult) {
    let mut sorted: Vec<&(RunResult, f64)> = e2e.rounds.iter().collect();
    sorted.sort_by(|x, y| x.0.latency.p99_ms.total_cmp(&y.0.latency.p99_ms));
    let (median, rate) = sorted[sorted.len() / 2];
    let clean = e2e
        .rounds
        .iter()
        .all(|(r, _)| r.failed == 0 && r.no_event == 0 && r.latency.count > 0);
    let l = median.latency;
    let row = Row {
        figure: FIGURE.into(),
        measure: format!(
            "operation sent on A → its event at a WatchCalls watcher on C (owner B), Start/StopCallRecording at {:.0} ops/s open loop = {:.0} log events/s ({:.2} per operation), {calls} calls",
            e2e.ops_per_sec, rate, e2e.events_per_op
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
    };
    (row, median.clone())
}

/// The memory row: what the log added to `used_memory`.
fn memory_row(memory: &LogMemory) -> Row {
    let grew = memory.after.saturating_sub(memory.before) as f64;
    Row {
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
    }
}

/// A takeover row: the worst trial against `bound`, every trial listed.
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
                "{} sent, {} failed, {} without an event at C, {} waited for their call, log {rate:.0} entries/s, at C p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, at U p99 {:.2} ms, machine {} busy, run-queue wait (ms/s) {waits}, {}",
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
                r.steadiness.describe(),
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
        "Figure 11: `redis-server` on loopback (`--save \"\" --appendonly no`), U (embedded, the generated configuration) and three bridge instances A, B, C (`[upstream] url = \"http://<U's HTTP listener>\"`, `transport = \"websocket\"`, `[cluster] url = \"redis://…\"`, `lease_ttl_ms = {ttl}`, renew every {renew} ms), each a process. {agents} agents sign in on B first, so B holds their leases and runs their upstream CometD clients; {calls} calls are dialed and answered through A; a WatchCalls of each caller runs on C. End to end: each operation commits {per_op:.2} log entries (counted from the log's head over a start and a stop of every call), so {ops:.0} operations/s over {conns} HTTP/2 connections to A commit {events:.0} events/s; each call alternates StartCallRecording and StopCallRecording as its caller, one at a time; latency is the operation's send on A (its tick when it waited for its call) → the watcher on C receiving the call's event in the recording state the operation asked for (path A → U → U's notification to B → B's append to Redis → C's tail); a watcher of each caller on U times the same operations up to U's own event, the part before B and the log. Contention over each window: the machine's busy share (every process, the bench's and others') and each server's run-queue wait (time its threads were runnable but waiting for a core, summed over threads). {rounds_n} rounds of {warmup:?} warm-up then {duration:?} measured, the round with the median p99 shown: {rounds}.{first_error} Takeover: per trial a fresh instance D starts, a fresh agent X signs in on D first (D owns X), X's call is set up through A and watched on C, then D gets the signal and A is asked at once to start recording on X's call (retried every 20 ms while refused; A's own upstream session carries it to U). Lease: Redis shows X's lease held by another instance (read every 2 ms through the gateway's engine). Event: the watcher of X on C receives the recording event; with no owner nothing of X reaches the log, so it is the new owner's doing (its re-read of X at U or the notification). The takeover is the later of the two. After SIGTERM D releases its leases at once and the release is published on Redis (`<prefix>released`), which wakes the survivors waiting for X: they try at once (within up to 20 ms of jitter), so the takeover is a Redis round trip and the new owner's catch-up. After SIGKILL nothing is published; when the signal falls decides it: an owner renews once per renew interval from its grant, a survivor tries once per renew interval from the user's sign-in there, so the takeover waits for the lease to lapse (the TTL after D's last renewal) and then the next try: from the TTL minus one interval to the TTL plus one. Each trial draws from seed {seed} when the survivors see X (up to one interval after D's grant: their tries' offset from D's renewals) and when the signal comes (one to two intervals later, so D renewed at least once). Trials: {trials}. Memory: `INFO memory` `used_memory` before and after appending {entries} entries (batches of 100) through the gateway's Redis engine (`voice_gateway::cluster`) to a log under its own prefix, each entry a copy of one of {samples} entries the instances wrote ({bytes:.0} bytes on average: deflated JSON call events); {before:.1} MB before, {after:.1} MB after.",
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
