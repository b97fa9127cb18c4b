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

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderValue, Request};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::grpc_load::{Tally, Window, unary};
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
    let cpu: Vec<_> = pids.iter().map(|&pid| window.cpu_of(Some(pid))).collect();
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
    let mut cpu_us_per_op = Vec::with_capacity(cpu.len());
    let sent = tally.ok + tally.errors;
    for reading in cpu {
        let secs = reading.await?;
        cpu_us_per_op.push(secs.filter(|_| sent > 0).map(|s| s * 1e6 / sent as f64));
    }
    Ok(PacedResult {
        sent,
        ok: tally.ok,
        failed: tally.errors,
        lag: lag.summary(),
        queued,
        latency: tally.latency.summary(),
        cpu_us_per_op,
        first_error: tally.first_error,
    })
}

/// Opens one HTTP/2 connection, as [`crate::grpc_load`] does.
async fn connect(addr: SocketAddr) -> anyhow::Result<h2::client::SendRequest<Bytes>> {
    let tcp = TcpStream::connect(addr).await.context("cannot connect")?;
    tcp.set_nodelay(true)?;
    let (sender, connection) = h2::client::Builder::new()
        .initial_window_size(1 << 20)
        .initial_connection_window_size(1 << 24)
        .handshake::<_, Bytes>(tcp)
        .await
        .context("HTTP/2 handshake failed")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
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
