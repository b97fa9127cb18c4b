//! Many `WatchCalls` streams held open at once (several streams per HTTP/2 connection, as
//! a microservice multiplexes them), each reading its snapshot, then events; and the
//! latency from an event's `commit_time` (stamped by the gateway when committed) to its
//! receipt here (same machine clock).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use voice_gateway::grpc::pb;
use voice_gateway::grpc::pb::call_service_client::CallServiceClient;

use crate::setup::as_agent;
use crate::stats::Latency;

/// What the streams of a fleet saw.
#[derive(Debug, Default)]
pub struct WatchTally {
    /// Events received while recording.
    pub events: u64,
    /// Events received in total.
    pub all_events: u64,
    /// Streams that ended with an error (e.g. ABORTED for a watcher that fell behind).
    pub failed_streams: u64,
    /// The first stream error.
    pub first_error: Option<String>,
    /// Commit-to-receipt latency of the events received while recording.
    pub latency: Latency,
}

impl WatchTally {
    fn merge(&mut self, other: WatchTally) {
        self.events += other.events;
        self.all_events += other.all_events;
        self.failed_streams += other.failed_streams;
        self.latency.merge(&other.latency);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// A set of open WatchCalls streams.
#[derive(Debug)]
pub struct WatchFleet {
    tasks: Vec<JoinHandle<WatchTally>>,
    stop: CancellationToken,
    recording: Arc<AtomicBool>,
}

/// Returns how long ago a commit time was, in µs (0 if in the future).
pub fn since(commit: SystemTime) -> u64 {
    SystemTime::now()
        .duration_since(commit)
        .map_or(0, |d| d.as_micros() as u64)
}

impl WatchFleet {
    /// Opens one stream per agent in `agents`, `per_connection` on each HTTP/2 connection,
    /// and returns once every stream has delivered its snapshot.
    pub async fn open(
        grpc_url: &str,
        agents: std::ops::Range<usize>,
        per_connection: usize,
    ) -> anyhow::Result<Self> {
        let stop = CancellationToken::new();
        let recording = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(AtomicUsize::new(0));
        let wanted = agents.len();
        let mut tasks = Vec::with_capacity(wanted);
        let agents: Vec<usize> = agents.collect();
        for chunk in agents.chunks(per_connection.max(1)) {
            let channel = tonic::transport::Endpoint::from_shared(grpc_url.to_owned())?
                .connect()
                .await
                .context("cannot connect to the gateway")?;
            for &agent in chunk {
                let mut client = CallServiceClient::new(channel.clone());
                let stream = client
                    .watch_calls(as_agent(agent, pb::WatchCallsRequest::default()))
                    .await
                    .with_context(|| format!("WatchCalls of agent {agent} refused"))?
                    .into_inner();
                tasks.push(tokio::spawn(read_stream(
                    stream,
                    ready.clone(),
                    recording.clone(),
                    stop.clone(),
                )));
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while ready.load(Ordering::Relaxed) < wanted {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "only {} of {wanted} WatchCalls snapshots arrived",
                ready.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(Self {
            tasks,
            stop,
            recording,
        })
    }

    /// Returns the number of streams.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Returns whether the fleet has no stream.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Starts or stops recording latencies.
    pub fn set_recording(&self, on: bool) {
        self.recording.store(on, Ordering::Relaxed);
    }

    /// Closes every stream and returns what they saw.
    pub async fn close(self) -> anyhow::Result<WatchTally> {
        self.stop.cancel();
        let mut tally = WatchTally::default();
        for task in self.tasks {
            tally.merge(task.await?);
        }
        Ok(tally)
    }
}

async fn read_stream(
    mut stream: tonic::Streaming<pb::WatchCallsResponse>,
    ready: Arc<AtomicUsize>,
    recording: Arc<AtomicBool>,
    stop: CancellationToken,
) -> WatchTally {
    let mut tally = WatchTally::default();
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => return tally,
            message = stream.message() => message,
        };
        match message {
            Ok(Some(message)) => match message.kind {
                Some(pb::watch_calls_response::Kind::Snapshot(_)) => {
                    ready.fetch_add(1, Ordering::Relaxed);
                }
                Some(pb::watch_calls_response::Kind::Event(event)) => {
                    tally.all_events += 1;
                    if recording.load(Ordering::Relaxed) {
                        tally.events += 1;
                        if let Some(commit) =
                            event.commit_time.and_then(|t| SystemTime::try_from(t).ok())
                        {
                            tally.latency.record_us(since(commit));
                        }
                    }
                }
                // The bench dials no failing number: no asynchronous error to count.
                Some(pb::watch_calls_response::Kind::Error(_)) | None => {}
            },
            Ok(None) => return tally,
            Err(status) => {
                tally.failed_streams += 1;
                tally.first_error = Some(format!("{:?}: {}", status.code(), status.message()));
                return tally;
            }
        }
    }
}
