//! Figure 11's end-to-end load: operations sent over gRPC to instance A, open loop, and
//! the events they cause as a `WatchCalls` watcher on instance C receives them.
//!
//! Each call's caller alternates StartCallRecording and StopCallRecording on it, one at a
//! time (as [`crate::paced_load`]: an operation whose tick came while its call was busy
//! waits, and its latency counts from the tick). Before an operation is sent, the state it
//! asks for is noted under its call (`(call, Recording)` or `(call, Stopped)`) with its start
//! time; a watcher of the caller on C that receives an event of that call in that recording
//! state takes the note and records now − start. The note is made before sending because
//! the event can reach C before A's reply reaches the bench.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use voice_gateway::grpc::pb;
use voice_gateway::grpc::pb::call_service_client::CallServiceClient;
use voice_gateway::grpc::pb::watch_calls_response::Kind;

use crate::bridge::connect;
use crate::grpc_load::Window;
use crate::setup::{EstablishedCall, as_agent};
use crate::stats::{Latency, LatencySummary};

/// An operation without a reply after this long counts as failed.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the end of a run waits for the events of operations already answered.
const EVENT_GRACE: Duration = Duration::from_secs(2);
/// The pause before the first tick, so that every call task is ready.
const LEAD_IN: Duration = Duration::from_millis(20);

/// An operation waiting for its event: when it started, whether its latency counts, and
/// whether it is a takeover probe (whose event's arrival is kept).
#[derive(Debug, Clone, Copy)]
struct Noted {
    start: Instant,
    counted: bool,
    probe: bool,
}

/// A call and the recording state an operation asked for.
type Key = (String, i32);

/// The operations waiting for their events at C, the latencies of those that came, and
/// when each probe's event came.
#[derive(Debug, Default)]
pub struct Pending {
    noted: Mutex<HashMap<Key, Noted>>,
    latency: Mutex<Latency>,
    probes: Mutex<HashMap<Key, Instant>>,
}

impl Pending {
    fn note(&self, call: &str, state: pb::RecordingState, noted: Noted) {
        let mut map = self.noted.lock().expect("pending lock");
        map.insert((call.to_owned(), state as i32), noted);
    }

    fn forget(&self, call: &str, state: pb::RecordingState) {
        let mut map = self.noted.lock().expect("pending lock");
        map.remove(&(call.to_owned(), state as i32));
    }

    /// Takes the note an event answers, if any; records its latency when it counts, its
    /// arrival when it is a probe.
    fn arrived(&self, call: &pb::Call) {
        let now = Instant::now();
        let key = (call.id.clone(), call.recording_state);
        let Some(noted) = self.noted.lock().expect("pending lock").remove(&key) else {
            return;
        };
        if noted.counted {
            let us = (now - noted.start).as_micros() as u64;
            self.latency.lock().expect("latency lock").record_us(us);
        }
        if noted.probe {
            self.probes.lock().expect("probes lock").insert(key, now);
        }
    }

    /// Returns how many counted operations still wait for their event.
    fn counted_waiting(&self) -> u64 {
        let map = self.noted.lock().expect("pending lock");
        map.values().filter(|n| n.counted).count() as u64
    }
}

/// Watchers on C, one per caller, feeding [`Pending`]; they stop with `stop`.
#[derive(Debug)]
pub struct Watchers {
    /// What they answer.
    pub pending: Arc<Pending>,
    stop: CancellationToken,
}

impl Drop for Watchers {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Watchers {
    /// Opens a WatchCalls of each agent on the instance at `grpc_url`; returns once each
    /// received its snapshot.
    pub async fn open(grpc_url: &str, agents: &[usize]) -> anyhow::Result<Self> {
        let pending = Arc::new(Pending::default());
        let stop = CancellationToken::new();
        let client = connect(grpc_url).await?;
        for &agent in agents {
            let mut stream = client
                .clone()
                .watch_calls(as_agent(agent, pb::WatchCallsRequest::default()))
                .await
                .with_context(|| format!("a watch of agent {agent} on {grpc_url}"))?
                .into_inner();
            let first = tokio::time::timeout(OPERATION_TIMEOUT, stream.message()).await;
            anyhow::ensure!(
                matches!(&first, Ok(Ok(Some(m))) if matches!(m.kind, Some(Kind::Snapshot(_)))),
                "the watch of agent {agent} on {grpc_url} began without a snapshot: {first:?}"
            );
            tokio::spawn(watch(stream, pending.clone(), stop.clone()));
        }
        Ok(Self { pending, stop })
    }
}

async fn watch(
    mut stream: tonic::Streaming<pb::WatchCallsResponse>,
    pending: Arc<Pending>,
    stop: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => return,
            message = stream.message() => message,
        };
        match message {
            Ok(Some(pb::WatchCallsResponse {
                kind: Some(Kind::Event(event)),
            })) => {
                if let Some(call) = event.call {
                    pending.arrived(&call);
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return,
        }
    }
}

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
    /// Operation sent on A → A's reply.
    pub reply: LatencySummary,
    /// The first failure.
    pub first_error: Option<String>,
}

/// Runs the schedule on A (`grpc_url`) over `calls`, the watchers on C answering.
pub async fn run(
    grpc_url: &str,
    calls: &[EstablishedCall],
    watchers: &Watchers,
    shape: RunShape,
) -> anyhow::Result<RunResult> {
    anyhow::ensure!(!calls.is_empty(), "no calls to drive");
    let mut clients = Vec::new();
    for _ in 0..shape.connections.max(1) {
        clients.push(connect(grpc_url).await?);
    }
    let first_tick = Instant::now() + LEAD_IN;
    let window = Window {
        start: first_tick + shape.warmup,
        end: first_tick + shape.warmup + shape.duration,
    };
    *watchers.pending.latency.lock().expect("latency lock") = Latency::default();
    let (mut ticks, mut tasks) = (Vec::new(), Vec::new());
    for (i, call) in calls.iter().enumerate() {
        let (tx, rx) = mpsc::unbounded_channel();
        ticks.push(tx);
        let client = clients[i % clients.len()].clone();
        let task = drive_call(client, call.clone(), watchers.pending.clone(), rx, window);
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
    while watchers.pending.counted_waiting() > 0 && Instant::now() < deadline {
        // The poll period of the last events' arrival; the grace bounds it.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    result.no_event = watchers.pending.counted_waiting();
    result.latency = watchers
        .pending
        .latency
        .lock()
        .expect("latency lock")
        .summary();
    result.reply = reply.summary();
    Ok(result)
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

/// Returns the recording operation of `turn` on `call` and the state it asks for.
pub fn recording_op(turn: usize) -> pb::RecordingState {
    if turn % 2 == 0 {
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
    pending: Arc<Pending>,
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
        pending.note(&call.id, state, noted);
        let outcome = send_recording(&mut client, &call, state).await;
        free_since = Instant::now();
        if outcome.is_err() {
            pending.forget(&call.id, state);
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

/// Notes a takeover probe: an event of `call` in `state` is awaited ([`await_probe`]).
pub fn expect_probe(pending: &Pending, call: &EstablishedCall, state: pb::RecordingState) {
    let noted = Noted {
        start: Instant::now(),
        counted: false,
        probe: true,
    };
    pending.note(&call.id, state, noted);
}

/// Waits (until `deadline`) for the watchers to receive the probe's event; returns when
/// it arrived (the watcher's own reading, not this poll's).
pub async fn await_probe(
    pending: &Pending,
    call: &EstablishedCall,
    state: pb::RecordingState,
    deadline: Instant,
) -> Option<Instant> {
    let key = (call.id.clone(), state as i32);
    loop {
        if let Some(at) = pending.probes.lock().expect("probes lock").remove(&key) {
            return Some(at);
        }
        if Instant::now() >= deadline {
            return None;
        }
        // The poll period; the arrival time itself is the watcher's.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
