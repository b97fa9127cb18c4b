//! Figure 11's end-to-end load: operations sent over gRPC to instance A, open loop, and
//! the events they cause as `WatchCalls` watchers receive them ([`crate::cluster_watch`]):
//! on instance C (the measure), and on U itself (where the time goes: the part before the
//! cluster's log).
//!
//! Each call's caller alternates StartCallRecording and StopCallRecording on it, one at a
//! time (as [`crate::paced_load`]: an operation whose tick came while its call was busy
//! waits, and its latency counts from the tick). The run also reads how contended the
//! machine was: its busy share and each server's run-queue wait over the window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use voice_gateway::grpc::pb;
use voice_gateway::grpc::pb::call_service_client::CallServiceClient;

use crate::bridge::connect;
use crate::canary::{Canary, Steadiness};
use crate::cluster_watch::{Noted, Pending, Watchers};
use crate::grpc_load::Window;
use crate::paced_load::{machine_jiffies, run_queue_seconds};
use crate::setup::{EstablishedCall, as_agent};
use crate::stats::{Latency, LatencySummary};

/// An operation without a reply after this long counts as failed.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the end of a run waits for the events of operations already answered.
const EVENT_GRACE: Duration = Duration::from_secs(2);
/// The pause before the first tick, so that every call task is ready.
const LEAD_IN: Duration = Duration::from_millis(20);

/// The shape of one run.
#[derive(Debug, Clone, Copy)]
pub struct RunShape {
    /// Operations per second, across all calls.
    pub ops_per_sec: f64,
    /// Time before measuring.
    pub warmup: Duration,
    /// Measured time.
    pub duration: Duration,
    /// HTTP/2 connections to A.
    pub connections: usize,
}

/// Where the operations go and who watches: A's gRPC URL, the watchers on C, the
/// watchers on U, and the processes whose run-queue wait is read.
#[derive(Debug, Clone, Copy)]
pub struct Targets<'a> {
    /// A's gRPC URL.
    pub a: &'a str,
    /// The watchers on C (the measure).
    pub on_c: &'a Watchers,
    /// The watchers on U.
    pub on_u: &'a Watchers,
    /// The servers' (name, pid).
    pub pids: &'a [(&'static str, u32)],
}

/// What one run measured (operations whose tick fell in the window).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunResult {
    /// Operations sent.
    pub sent: u64,
    /// Operations refused, failed or timed out.
    pub failed: u64,
    /// Answered operations whose event never reached C.
    pub no_event: u64,
    /// Operations that waited for their call's previous one.
    pub queued: u64,
    /// Operation sent on A → its event at the watcher on C.
    pub latency: LatencySummary,
    /// Operation sent on A → its event at the watcher on U.
    pub at_upstream: LatencySummary,
    /// Operation sent on A → A's reply.
    pub reply: LatencySummary,
    /// The share of the machine's CPU time that was busy in the window.
    pub machine_busy: Option<f64>,
    /// Each server's run-queue wait in the window, ms per second (summed over threads).
    pub run_queue_ms_per_s: Vec<(String, Option<f64>)>,
    /// How steady the machine was in the window ([`crate::canary`]).
    pub steadiness: Steadiness,
    /// The first failure.
    pub first_error: Option<String>,
}

/// Runs the schedule on A over `calls`.
pub async fn run(
    at: Targets<'_>,
    calls: &[EstablishedCall],
    shape: RunShape,
) -> anyhow::Result<RunResult> {
    anyhow::ensure!(!calls.is_empty(), "no calls to drive");
    let mut clients = Vec::new();
    for _ in 0..shape.connections.max(1) {
        clients.push(connect(at.a).await?);
    }
    let first_tick = Instant::now() + LEAD_IN;
    let window = Window {
        start: first_tick + shape.warmup,
        end: first_tick + shape.warmup + shape.duration,
    };
    let pids: Vec<u32> = at.pids.iter().map(|(_, pid)| *pid).collect();
    let readings = tokio::spawn(contention(window, pids));
    let pendings = [at.on_c.pending.clone(), at.on_u.pending.clone()];
    for pending in &pendings {
        pending.reset_latency();
    }
    let (mut ticks, mut tasks) = (Vec::new(), Vec::new());
    for (i, call) in calls.iter().enumerate() {
        let (tx, rx) = mpsc::unbounded_channel();
        ticks.push(tx);
        let client = clients[i % clients.len()].clone();
        let task = drive_call(client, call.clone(), pendings.clone(), rx, window);
        tasks.push(tokio::spawn(task));
    }
    let period = Duration::from_secs_f64(1.0 / shape.ops_per_sec);
    let total = ((shape.warmup + shape.duration).as_secs_f64() * shape.ops_per_sec).round() as u64;
    for i in 0..total {
        let at = first_tick + period.mul_f64(i as f64);
        tokio::time::sleep_until(at.into()).await;
        let _ = ticks[(i % ticks.len() as u64) as usize].send(at);
    }
    drop(ticks);
    let mut result = RunResult::default();
    let mut reply = Latency::default();
    for task in tasks {
        let call = task.await?;
        result.sent += call.sent;
        result.failed += call.failed;
        result.queued += call.queued;
        reply.merge(&call.reply);
        result.first_error = result.first_error.or(call.first_error);
    }
    let deadline = Instant::now() + EVENT_GRACE;
    while pendings.iter().any(|p| p.counted_waiting() > 0) && Instant::now() < deadline {
        // The poll period of the last events' arrival; the grace bounds it.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    result.no_event = at.on_c.pending.counted_waiting();
    result.latency = at.on_c.pending.latency();
    result.at_upstream = at.on_u.pending.latency();
    result.reply = reply.summary();
    let (busy, waits, steadiness) = readings.await?;
    result.machine_busy = busy;
    result.steadiness = steadiness;
    let seconds = shape.duration.as_secs_f64();
    result.run_queue_ms_per_s = at
        .pids
        .iter()
        .zip(waits)
        .map(|((name, _), wait)| ((*name).to_owned(), wait.map(|s| s * 1e3 / seconds)))
        .collect();
    Ok(result)
}

/// Reads the machine's busy share and each process's run-queue wait (seconds) over the
/// window.
async fn contention(window: Window, pids: Vec<u32>) -> (Option<f64>, Vec<Option<f64>>, Steadiness) {
    let read = |pids: &[u32]| {
        let waits: Vec<_> = pids.iter().map(|&p| run_queue_seconds(p)).collect();
        (waits, machine_jiffies())
    };
    tokio::time::sleep_until(window.start.into()).await;
    let before = read(&pids);
    let canary = Canary::start();
    tokio::time::sleep_until(window.end.into()).await;
    let steadiness = canary.stop_async().await;
    let after = read(&pids);
    let waits = before
        .0
        .iter()
        .zip(&after.0)
        .map(|(a, b)| a.zip(*b).map(|(a, b)| b - a))
        .collect();
    let busy = before
        .1
        .zip(after.1)
        .and_then(|((b0, t0), (b1, t1))| (t1 > t0).then(|| (b1 - b0) as f64 / (t1 - t0) as f64));
    (busy, waits, steadiness)
}

/// One call's counts.
#[derive(Debug, Default)]
struct CallCounts {
    sent: u64,
    failed: u64,
    queued: u64,
    reply: Latency,
    first_error: Option<String>,
}

/// Returns the recording state operation `turn` of a call asks for: StartCallRecording
/// first, then StopCallRecording, in turn.
pub fn recording_op(turn: usize) -> pb::RecordingState {
    if turn.is_multiple_of(2) {
        pb::RecordingState::Recording
    } else {
        pb::RecordingState::Stopped
    }
}

/// Sends StartCallRecording (for `Recording`) or StopCallRecording on `call` as its caller.
pub async fn send_recording(
    client: &mut CallServiceClient<tonic::transport::Channel>,
    call: &EstablishedCall,
    state: pb::RecordingState,
) -> anyhow::Result<()> {
    let call_id = call.id.clone();
    let sent = async {
        if state == pb::RecordingState::Recording {
            let request = pb::StartCallRecordingRequest { call_id };
            client
                .start_call_recording(as_agent(call.caller, request))
                .await
                .map(drop)
        } else {
            let request = pb::StopCallRecordingRequest { call_id };
            client
                .stop_call_recording(as_agent(call.caller, request))
                .await
                .map(drop)
        }
    };
    match tokio::time::timeout(OPERATION_TIMEOUT, sent).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(status)) => Err(anyhow::anyhow!("{status}")),
        Err(_) => Err(anyhow::anyhow!("no reply in {OPERATION_TIMEOUT:?}")),
    }
}

async fn drive_call(
    mut client: CallServiceClient<tonic::transport::Channel>,
    call: EstablishedCall,
    pendings: [Arc<Pending>; 2],
    mut ticks: mpsc::UnboundedReceiver<Instant>,
    window: Window,
) -> CallCounts {
    let mut counts = CallCounts::default();
    let (mut free_since, mut turn) = (Instant::now(), 0usize);
    while let Some(tick) = ticks.recv().await {
        let state = recording_op(turn);
        turn += 1;
        let waited = free_since > tick;
        let start = if waited { tick } else { Instant::now() };
        let counted = window.contains(tick);
        let noted = Noted {
            start,
            counted,
            probe: false,
        };
        for pending in &pendings {
            pending.note(&call.id, state, noted);
        }
        let outcome = send_recording(&mut client, &call, state).await;
        free_since = Instant::now();
        if outcome.is_err() {
            for pending in &pendings {
                pending.forget(&call.id, state);
            }
        }
        if !counted {
            continue;
        }
        counts.sent += 1;
        counts.queued += u64::from(waited);
        match outcome {
            Ok(()) => counts.reply.record_us(start.elapsed().as_micros() as u64),
            Err(error) => {
                counts.failed += 1;
                counts
                    .first_error
                    .get_or_insert_with(|| format!("{error:#}"));
            }
        }
    }
    counts
}
