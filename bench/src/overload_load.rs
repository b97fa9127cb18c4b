//! The overload figure's open-loop load (issue 14): gRPC unary calls at a fixed rate, far
//! above what the gateway can serve, over a few HTTP/2 connections (the `h2` crate,
//! pre-encoded frames, as [`crate::grpc_load`]). Every call's answer is read: accepted
//! (`grpc-status: 0`), refused at once by load shedding (`RESOURCE_EXHAUSTED`), or anything
//! else (a failure). Latency runs from the call's send to its answer's end, apart for
//! accepted and refused calls.
//!
//! The pacer hands the calls due at each millisecond (tokio's timer granularity) to one
//! task per connection, which keeps its calls in flight without a task each. A connection
//! never holds more than [`OverloadShape::max_outstanding`] calls: a call due beyond that
//! is counted as dropped by the client, not sent, so the generator's own memory stays
//! bounded whatever the gateway does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use http::{HeaderValue, Request};
use tokio::sync::mpsc;

use crate::grpc_load::{Window, connect};
use crate::stats::{Latency, LatencySummary};

/// A call without an answer after this long counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause before the first tick, so that every connection task is ready.
const LEAD_IN: Duration = Duration::from_millis(20);
/// The pacer's step: tokio's timer granularity.
const STEP: Duration = Duration::from_millis(1);

/// The shape of an open-loop run.
#[derive(Debug, Clone, Copy)]
pub struct OverloadShape {
    /// Calls per second offered.
    pub rate: f64,
    /// HTTP/2 connections the calls are spread over.
    pub connections: usize,
    /// Calls a connection keeps in flight at most; more are dropped by the client.
    pub max_outstanding: usize,
    /// Time before measuring (calls are sent, not counted).
    pub warmup: Duration,
    /// Measured time: calls due in it are counted.
    pub duration: Duration,
}

/// One call the load sends, in rotation: `authorization`, path, gRPC frame.
#[derive(Debug, Clone)]
pub struct OverloadCall {
    /// The `authorization` value.
    pub authorization: String,
    /// The method's path.
    pub path: String,
    /// The request, framed.
    pub frame: Bytes,
}

/// What a run measured, over the calls due in its window.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct OverloadResult {
    /// Calls due (offered).
    pub offered: u64,
    /// Calls sent.
    pub sent: u64,
    /// Calls due while their connection held `max_outstanding`: not sent.
    pub dropped: u64,
    /// Calls answered `grpc-status: 0`.
    pub accepted: u64,
    /// Calls answered `RESOURCE_EXHAUSTED`.
    pub refused: u64,
    /// Calls answered otherwise, broken or timed out.
    pub failed: u64,
    /// Latency of the accepted calls, send to answer.
    pub accepted_latency: LatencySummary,
    /// Latency of the refused calls, send to answer.
    pub refused_latency: LatencySummary,
    /// How late the pacer handed out the window's calls (more than a millisecond or two is
    /// the generator falling behind).
    pub lag: LatencySummary,
    /// The window's length, s.
    pub seconds: f64,
    /// The first failure.
    pub first_error: Option<String>,
}

impl OverloadResult {
    /// Accepted calls per second.
    pub fn accepted_rate(&self) -> f64 {
        self.accepted as f64 / self.seconds
    }

    /// Sent calls per second.
    pub fn sent_rate(&self) -> f64 {
        self.sent as f64 / self.seconds
    }
}

/// How one call ended.
enum Answer {
    Accepted,
    Refused,
    Failed(String),
}

/// One connection's tally.
#[derive(Default)]
struct Tally {
    sent: u64,
    dropped: u64,
    accepted: u64,
    refused: u64,
    failed: u64,
    accepted_latency: Latency,
    refused_latency: Latency,
    first_error: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.sent += other.sent;
        self.dropped += other.dropped;
        self.accepted += other.accepted;
        self.refused += other.refused;
        self.failed += other.failed;
        self.accepted_latency.merge(&other.accepted_latency);
        self.refused_latency.merge(&other.refused_latency);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Runs the load against `addr`.
pub async fn run(
    addr: SocketAddr,
    shape: OverloadShape,
    calls: &[OverloadCall],
) -> anyhow::Result<OverloadResult> {
    anyhow::ensure!(!calls.is_empty(), "no calls to send");
    anyhow::ensure!(shape.rate > 0.0, "no rate");
    let first_tick = Instant::now() + LEAD_IN;
    let window = Window {
        start: first_tick + shape.warmup,
        end: first_tick + shape.warmup + shape.duration,
    };
    let authority = addr.to_string();
    let calls: Arc<[Prepared]> = calls
        .iter()
        .map(|c| Prepared {
            uri: format!("http://{authority}{}", c.path),
            authorization: HeaderValue::from_str(&c.authorization).expect("ascii credentials"),
            frame: c.frame.clone(),
        })
        .collect();
    let (mut queues, mut tasks) = (Vec::new(), Vec::new());
    for _ in 0..shape.connections.max(1) {
        let sender = connect(addr).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        queues.push(tx);
        let connection = drive(sender, rx, calls.clone(), window, shape.max_outstanding);
        tasks.push(tokio::spawn(connection));
    }
    let (offered, lag) = pace(first_tick, shape, window, &queues).await;
    drop(queues);
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(task.await?);
    }
    Ok(OverloadResult {
        offered,
        sent: tally.sent,
        dropped: tally.dropped,
        accepted: tally.accepted,
        refused: tally.refused,
        failed: tally.failed,
        accepted_latency: tally.accepted_latency.summary(),
        refused_latency: tally.refused_latency.summary(),
        lag: lag.summary(),
        seconds: shape.duration.as_secs_f64(),
        first_error: tally.first_error,
    })
}

/// A call ready to send.
struct Prepared {
    uri: String,
    authorization: HeaderValue,
    frame: Bytes,
}

/// Hands out, every [`STEP`], the calls due by then (as their due times), round-robin over
/// the connections; returns the calls due in the window and how late they were handed out.
async fn pace(
    first_tick: Instant,
    shape: OverloadShape,
    window: Window,
    queues: &[mpsc::UnboundedSender<Instant>],
) -> (u64, Latency) {
    let total = ((shape.warmup + shape.duration).as_secs_f64() * shape.rate) as u64;
    let (mut handed, mut offered, mut lag) = (0u64, 0u64, Latency::default());
    let mut ticks = tokio::time::interval_at(first_tick.into(), STEP);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while handed < total {
        ticks.tick().await;
        let now = Instant::now();
        let due = (((now - first_tick).as_secs_f64() * shape.rate) as u64).min(total);
        while handed < due {
            let at = first_tick + Duration::from_secs_f64(handed as f64 / shape.rate);
            if window.contains(at) {
                offered += 1;
                lag.record_us((now - at).as_micros() as u64);
            }
            // A connection task stops only when its queue is dropped, after this loop.
            let _ = queues[(handed % queues.len() as u64) as usize].send(at);
            handed += 1;
        }
    }
    (offered, lag)
}

/// Sends one connection's calls as they come due, keeping all of them in flight at once.
async fn drive(
    sender: h2::client::SendRequest<Bytes>,
    mut due: mpsc::UnboundedReceiver<Instant>,
    calls: Arc<[Prepared]>,
    window: Window,
    max_outstanding: usize,
) -> Tally {
    let mut tally = Tally::default();
    let mut in_flight = FuturesUnordered::new();
    let mut turn = 0usize;
    let mut open = true;
    while open || !in_flight.is_empty() {
        tokio::select! {
            next = due.recv(), if open => {
                let Some(at) = next else {
                    open = false;
                    continue;
                };
                let counted = window.contains(at);
                if in_flight.len() >= max_outstanding {
                    tally.dropped += u64::from(counted);
                    continue;
                }
                let call = &calls[turn % calls.len()];
                turn += 1;
                tally.sent += u64::from(counted);
                let request = Request::post(call.uri.as_str())
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .header("authorization", call.authorization.clone())
                    .body(())
                    .expect("a valid request");
                let send = unary(sender.clone(), request, call.frame.clone());
                in_flight.push(async move {
                    let sent = Instant::now();
                    let answer = tokio::time::timeout(CALL_TIMEOUT, send)
                        .await
                        .unwrap_or_else(|_| Answer::Failed(format!("no answer in {CALL_TIMEOUT:?}")));
                    (counted, sent.elapsed(), answer)
                });
            }
            Some((counted, took, answer)) = in_flight.next() => {
                if !counted {
                    continue;
                }
                let us = took.as_micros() as u64;
                match answer {
                    Answer::Accepted => {
                        tally.accepted += 1;
                        tally.accepted_latency.record_us(us);
                    }
                    Answer::Refused => {
                        tally.refused += 1;
                        tally.refused_latency.record_us(us);
                    }
                    Answer::Failed(why) => {
                        tally.failed += 1;
                        tally.first_error.get_or_insert(why);
                    }
                }
            }
        }
    }
    tally
}

/// Sends one unary call and reads its answer to the end.
async fn unary(
    sender: h2::client::SendRequest<Bytes>,
    request: Request<()>,
    frame: Bytes,
) -> Answer {
    match exchange(sender, request, frame).await {
        Ok(status) if status == "0" => Answer::Accepted,
        Ok(status) if status == "8" => Answer::Refused,
        Ok(status) => Answer::Failed(format!("grpc-status {status}")),
        Err(error) => Answer::Failed(format!("{error:#}")),
    }
}

/// Returns the call's `grpc-status`, from a trailers-only head or from the trailers.
async fn exchange(
    sender: h2::client::SendRequest<Bytes>,
    request: Request<()>,
    frame: Bytes,
) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let mut ready = sender.ready().await?;
    let (response, mut stream) = ready.send_request(request, false)?;
    // The gateway refuses on the head alone and may close the stream before the body is
    // sent (h2: "inactive stream"); the answer is then that refusal, read below. A body
    // that failed for another reason fails the response too.
    let _ = stream.send_data(frame, true);
    let (parts, mut body) = response.await?.into_parts();
    anyhow::ensure!(
        parts.status == http::StatusCode::OK,
        "HTTP {}",
        parts.status
    );
    let status_of = |headers: &http::HeaderMap| {
        headers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Some(status) = status_of(&parts.headers) {
        return Ok(status);
    }
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body.trailers().await?.context("no trailers")?;
    status_of(&trailers).context("no grpc-status")
}

/// What [`probe_full_listener`] measured.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ProbeResult {
    /// Calls held open (their heads sent, their bodies not).
    pub held: usize,
    /// Probe calls sent, one after another, once the listener refused one.
    pub sent: u64,
    /// Probes answered `RESOURCE_EXHAUSTED`.
    pub refused: u64,
    /// Probes answered otherwise (accepted, or broken).
    pub other: u64,
    /// Latency of the refusals, send to answer.
    pub refused_latency: LatencySummary,
    /// The first other answer.
    pub first_other: Option<String>,
}

/// Calls a connection holds in [`probe_full_listener`]: below the default
/// `server.http2_max_streams` (128), so that no held call waits for a stream.
const HELD_PER_CONNECTION: usize = 120;
/// How long [`probe_full_listener`] waits for its first refusal.
const FIRST_REFUSAL: Duration = Duration::from_secs(5);

/// Takes every slot of the listener's bound on requests in flight without giving the
/// gateway work: `held` calls whose heads are sent and whose bodies never come (the gateway
/// counts a call from its head, and a unary call's response waits for its body). Then sends
/// `probes` calls one after another on a connection of their own and measures their
/// refusals: with the CPU idle, this is the shed's own delay, apart from the queue a CPU
/// overload puts in front of it. The held calls are dropped (reset) at the end.
pub async fn probe_full_listener(
    addr: SocketAddr,
    held: usize,
    probes: usize,
    call: &OverloadCall,
) -> anyhow::Result<ProbeResult> {
    let uri = format!("http://{addr}{}", call.path);
    let request = || {
        Request::post(uri.as_str())
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("authorization", call.authorization.as_str())
            .body(())
            .expect("a valid request")
    };
    // Each held call: its connection, its answer (which must not come) and its body's
    // stream, kept open and empty so that the call stays in flight.
    let mut holding = Vec::with_capacity(held);
    for chunk in 0..held.div_ceil(HELD_PER_CONNECTION) {
        let sender = connect(addr).await?;
        let count = HELD_PER_CONNECTION.min(held - chunk * HELD_PER_CONNECTION);
        for _ in 0..count {
            let mut ready = sender.clone().ready().await?;
            let (answer, body) = ready.send_request(request(), false)?;
            holding.push((sender.clone(), answer, body));
        }
    }
    let sender = connect(addr).await?;
    let began = Instant::now();
    let mut answered_held = 0;
    loop {
        let refused = matches!(
            unary(sender.clone(), request(), call.frame.clone()).await,
            Answer::Refused
        );
        if refused {
            break;
        }
        // A held call answered (refused while calls of the run before still held slots,
        // when it came) frees its slot: it is sent again, so that every slot is held.
        for (sender, answer, body) in &mut holding {
            if futures::FutureExt::now_or_never(&mut *answer).is_some() {
                answered_held += 1;
                let mut ready = sender.clone().ready().await?;
                (*answer, *body) = ready.send_request(request(), false)?;
            }
        }
        anyhow::ensure!(
            began.elapsed() < FIRST_REFUSAL,
            "no refusal within {FIRST_REFUSAL:?} with {held} calls held ({answered_held} \
             held calls were answered and sent again)"
        );
    }
    let mut result = ProbeResult {
        held,
        ..ProbeResult::default()
    };
    let mut latency = Latency::default();
    for _ in 0..probes {
        let sent = Instant::now();
        let answer = unary(sender.clone(), request(), call.frame.clone()).await;
        result.sent += 1;
        match answer {
            Answer::Refused => {
                result.refused += 1;
                latency.record_us(sent.elapsed().as_micros() as u64);
            }
            Answer::Accepted => {
                result.other += 1;
                result.first_other.get_or_insert_with(|| "accepted".into());
            }
            Answer::Failed(why) => {
                result.other += 1;
                result.first_other.get_or_insert(why);
            }
        }
    }
    result.refused_latency = latency.summary();
    drop(holding);
    Ok(result)
}
