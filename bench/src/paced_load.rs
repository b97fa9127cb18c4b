//! An open-loop gRPC unary load generator: operations at a fixed rate (not as fast as the
//! server answers), over a few HTTP/2 connections (the `h2` crate, pre-encoded frames, as
//! [`crate::grpc_load`]).
//!
//! Each call gets every `calls`-th tick of the schedule and alternates two requests on it
//! (StartCallRecording, then StopCallRecording), one at a time: a request sent while the
//! previous one on the same call is still in flight would be refused by the call's state,
//! not by the server's speed. An operation whose tick came while its call was busy waits
//! for it, and its latency is counted from the tick (so a slow reply delays what follows
//! and shows in the tail, not hidden by the schedule); otherwise latency runs from the
//! actual send, so the 1 ms granularity of tokio's timer is not charged to the server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request};
use tokio::sync::mpsc;

use crate::canary::{Canary, Steadiness};
use crate::grpc_load::{Tally, Window, connect, unary};
use crate::process::cpu_seconds;
use crate::stats::{Latency, LatencySummary};

/// An operation without a reply after this long counts as failed.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause before the first tick, so that every call task is ready.
const LEAD_IN: Duration = Duration::from_millis(20);

/// The shape of an open-loop run.
#[derive(Debug, Clone, Copy)]
pub struct PacedShape {
    /// Operations per second, across all calls.
    pub ops_per_sec: f64,
    /// HTTP/2 connections the calls are spread over.
    pub connections: usize,
    /// Time before measuring (operations are sent, not counted).
    pub warmup: Duration,
    /// Measured time: operations whose tick falls in it are counted.
    pub duration: Duration,
}

/// The requests of one call: its caller's `authorization` and the requests sent in turn.
#[derive(Debug, Clone)]
pub struct CallPlan {
    /// The `authorization` value.
    pub authorization: String,
    /// The requests (path, gRPC frame) sent in rotation.
    pub requests: Vec<(String, Bytes)>,
}

/// What an open-loop run measured (the operations whose tick fell in the window).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PacedResult {
    /// Operations scheduled (and sent) in the window.
    pub sent: u64,
    /// Operations answered with `grpc-status: 0`.
    pub ok: u64,
    /// Operations refused, failed or timed out.
    pub failed: u64,
    /// How late the pacer handed out the window's ticks (tokio's timer has 1 ms
    /// granularity; more is the load generator falling behind).
    pub lag: LatencySummary,
    /// Operations that waited for the previous operation on their call.
    pub queued: u64,
    /// Latency of the successful operations.
    pub latency: LatencySummary,
    /// CPU time of each watched process in the window, per sent operation, µs (in the
    /// order of the `pids` given; `None` when it could not be read).
    pub cpu_us_per_op: Vec<Option<f64>>,
    /// Time the threads of each watched process spent runnable but not running (waiting
    /// for a core) in the window, ms per second (summed over threads).
    pub run_queue_ms_per_s: Vec<Option<f64>>,
    /// The share of the whole machine's CPU time that was busy in the window (every
    /// process, the bench's and others').
    pub machine_busy: Option<f64>,
    /// How steady the machine was in the window ([`crate::canary`]).
    pub steadiness: Steadiness,
    /// The first failure.
    pub first_error: Option<String>,
}

/// One call's tally: the shared one plus the count of queued operations.
#[derive(Debug, Default)]
struct CallTally {
    tally: Tally,
    queued: u64,
}

/// Runs the schedule against `addr`; `pids` are the processes whose CPU time in the window
/// is divided by the sent operations.
pub async fn run(
    addr: SocketAddr,
    pids: &[u32],
    shape: PacedShape,
    calls: &[CallPlan],
) -> anyhow::Result<PacedResult> {
    anyhow::ensure!(!calls.is_empty(), "no calls to drive");
    let mut senders = Vec::with_capacity(shape.connections);
    for _ in 0..shape.connections.max(1) {
        senders.push(connect(addr).await?);
    }
    let first_tick = Instant::now() + LEAD_IN;
    let window = Window {
        start: first_tick + shape.warmup,
        end: first_tick + shape.warmup + shape.duration,
    };
    let readings = tokio::spawn(Readings::over(window, pids.to_vec()));
    let authority = Arc::<str>::from(addr.to_string());
    let (mut ticks, mut tasks) = (Vec::new(), Vec::new());
    for (i, plan) in calls.iter().enumerate() {
        let (tx, rx) = mpsc::unbounded_channel();
        ticks.push(tx);
        let sender = senders[i % senders.len()].clone();
        let call = drive_call(sender, authority.clone(), plan.clone(), rx, window);
        tasks.push(tokio::spawn(call));
    }
    let lag = pace(first_tick, shape, window, ticks).await;
    let (mut tally, mut queued) = (Tally::default(), 0);
    for task in tasks {
        let call = task.await?;
        tally.merge(call.tally);
        queued += call.queued;
    }
    let sent = tally.ok + tally.errors;
    let readings = readings.await?;
    let seconds = shape.duration.as_secs_f64();
    Ok(PacedResult {
        sent,
        ok: tally.ok,
        failed: tally.errors,
        lag: lag.summary(),
        queued,
        latency: tally.latency.summary(),
        cpu_us_per_op: readings
            .cpu
            .iter()
            .map(|cpu| cpu.filter(|_| sent > 0).map(|s| s * 1e6 / sent as f64))
            .collect(),
        run_queue_ms_per_s: readings
            .run_queue
            .iter()
            .map(|wait| wait.map(|s| s * 1e3 / seconds))
            .collect(),
        machine_busy: readings.machine_busy,
        steadiness: readings.steadiness,
        first_error: tally.first_error,
    })
}

/// What `/proc` says about the window: each process's CPU time and run-queue wait
/// (seconds), and the machine's busy share.
#[derive(Debug, Default)]
struct Readings {
    cpu: Vec<Option<f64>>,
    run_queue: Vec<Option<f64>>,
    machine_busy: Option<f64>,
    steadiness: Steadiness,
}

impl Readings {
    /// Reads at the window's start and end; returns the differences.
    async fn over(window: Window, pids: Vec<u32>) -> Self {
        let read = |pids: &[u32]| {
            let cpu: Vec<_> = pids.iter().map(|&p| cpu_seconds(p).ok()).collect();
            let waits: Vec<_> = pids.iter().map(|&p| run_queue_seconds(p)).collect();
            (cpu, waits, machine_jiffies())
        };
        tokio::time::sleep_until(window.start.into()).await;
        let before = read(&pids);
        let canary = Canary::start();
        tokio::time::sleep_until(window.end.into()).await;
        let steadiness = canary.stop_async().await;
        let after = read(&pids);
        let diff = |a: &[Option<f64>], b: &[Option<f64>]| -> Vec<Option<f64>> {
            a.iter()
                .zip(b)
                .map(|(a, b)| a.zip(*b).map(|(a, b)| b - a))
                .collect()
        };
        Self {
            cpu: diff(&before.0, &after.0),
            run_queue: diff(&before.1, &after.1),
            machine_busy: before.2.zip(after.2).and_then(|((b0, t0), (b1, t1))| {
                (t1 > t0).then(|| (b1 - b0) as f64 / (t1 - t0) as f64)
            }),
            steadiness,
        }
    }
}

/// Sums the run-queue wait of a process's threads (the second field of
/// `/proc/PID/task/TID/schedstat`, ns), in seconds.
pub(crate) fn run_queue_seconds(pid: u32) -> Option<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut ns = 0u64;
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        ns += stat
            .split_whitespace()
            .nth(1)
            .and_then(|w| w.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(ns as f64 / 1e9)
}

/// Reads the machine's busy and total CPU jiffies from the first line of `/proc/stat`
/// (idle and iowait are not busy).
pub(crate) fn machine_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3)? + fields.get(4)?;
    Some((total - idle, total))
}

/// Hands tick `i` to call `i mod calls` at its time; returns how late the window's ticks
/// were handed out. Dropping the senders at the end lets the call tasks finish.
async fn pace(
    first_tick: Instant,
    shape: PacedShape,
    window: Window,
    ticks: Vec<mpsc::UnboundedSender<Instant>>,
) -> Latency {
    let period = Duration::from_secs_f64(1.0 / shape.ops_per_sec);
    let total = ((shape.warmup + shape.duration).as_secs_f64() * shape.ops_per_sec).round() as u64;
    let mut lag = Latency::default();
    for i in 0..total {
        let at = first_tick + period.mul_f64(i as f64);
        tokio::time::sleep_until(at.into()).await;
        if window.contains(at) {
            lag.record_us(at.elapsed().as_micros() as u64);
        }
        // A call task only stops when its receiver is dropped, after this loop.
        let _ = ticks[(i % ticks.len() as u64) as usize].send(at);
    }
    lag
}

/// Sends one call's operations, one at a time, as its ticks arrive.
async fn drive_call(
    sender: h2::client::SendRequest<Bytes>,
    authority: Arc<str>,
    plan: CallPlan,
    mut ticks: mpsc::UnboundedReceiver<Instant>,
    window: Window,
) -> CallTally {
    let uris: Vec<String> = plan
        .requests
        .iter()
        .map(|(path, _)| format!("http://{authority}{path}"))
        .collect();
    let authorization = HeaderValue::from_str(&plan.authorization).expect("ascii authorization");
    let mut tally = CallTally::default();
    let (mut free_since, mut turn) = (Instant::now(), 0usize);
    while let Some(tick) = ticks.recv().await {
        let index = turn % plan.requests.len();
        turn += 1;
        let mut request = Request::post(uris[index].as_str())
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .expect("valid request");
        request
            .headers_mut()
            .insert("authorization", authorization.clone());
        let sent = Instant::now();
        let body = plan.requests[index].1.clone();
        let outcome = tokio::time::timeout(OPERATION_TIMEOUT, unary(&sender, request, body)).await;
        let done = Instant::now();
        let waited = free_since > tick;
        free_since = done;
        if !window.contains(tick) {
            continue;
        }
        match outcome.unwrap_or_else(|_| Err(anyhow::anyhow!("no reply in {OPERATION_TIMEOUT:?}")))
        {
            Ok(()) => {
                tally.tally.ok += 1;
                let began = if waited { tick } else { sent };
                tally
                    .tally
                    .latency
                    .record_us((done - began).as_micros() as u64);
            }
            Err(error) => {
                tally.tally.errors += 1;
                if tally.tally.first_error.is_none() {
                    tally.tally.first_error = Some(format!("{error:#}"));
                }
            }
        }
        tally.queued += u64::from(waited);
    }
    tally
}
