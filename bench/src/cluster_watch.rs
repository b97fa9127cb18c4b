//! Figure 11's watchers: `WatchCalls` streams of the callers on one instance, and the
//! operations waiting for the events they cause.
//!
//! Before an operation is sent, the state it asks for is noted under its call (`(call,
//! Recording)` or `(call, Stopped)`) with its start time; a watcher that receives an event
//! of that call in that recording state takes the note and records now − start. The note
//! is made before sending because the event can reach a watcher before the reply reaches
//! the bench.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use voice_gateway::grpc::pb;
use voice_gateway::grpc::pb::watch_calls_response::Kind;

use crate::bridge::connect;
use crate::setup::{EstablishedCall, as_agent};
use crate::stats::{Latency, LatencySummary};

/// How long a watch may take to send its snapshot.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(10);

/// An operation waiting for its event: when it started, whether its latency counts, and
/// whether it is a takeover probe (whose event's arrival is kept).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Noted {
    pub(crate) start: Instant,
    pub(crate) counted: bool,
    pub(crate) probe: bool,
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
    pub(crate) fn note(&self, call: &str, state: pb::RecordingState, noted: Noted) {
        let mut map = self.noted.lock().expect("pending lock");
        map.insert((call.to_owned(), state as i32), noted);
    }

    pub(crate) fn forget(&self, call: &str, state: pb::RecordingState) {
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

    /// Forgets the latencies recorded so far (a new run starts).
    pub(crate) fn reset_latency(&self) {
        *self.latency.lock().expect("latency lock") = Latency::default();
    }

    /// Returns the latencies recorded since the last reset.
    pub(crate) fn latency(&self) -> LatencySummary {
        self.latency.lock().expect("latency lock").summary()
    }

    /// Returns how many counted operations still wait for their event.
    pub(crate) fn counted_waiting(&self) -> u64 {
        let map = self.noted.lock().expect("pending lock");
        map.values().filter(|n| n.counted).count() as u64
    }
}

/// Watchers on one instance, one per caller, feeding [`Pending`]; they stop when dropped.
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
            let first = tokio::time::timeout(SNAPSHOT_WAIT, stream.message()).await;
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
