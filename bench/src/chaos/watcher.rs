//! A chaotic `WatchCalls` client. Each life opens a new connection through the proxy and
//! watches, resuming with `from_sequence` and `epoch` of the last event (or snapshot) it
//! received; OUT_OF_RANGE makes it resync (watch without `from_sequence`: a new snapshot,
//! a new segment of its record); ABORTED (it lagged) and broken connections make it resume.
//! It records everything it receives, unfiltered, for [`super::verify`].

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;
use voice_gateway::grpc::pb;
use voice_gateway::grpc::pb::call_service_client::CallServiceClient;

use super::journal::Journal;
use super::keys::{CallView, EventKey, Numbered};
use super::reference::as_service;
use super::{Chaos, ChaosRng, Lives, keep_connecting, lock};
use crate::setup::{as_agent, phone, user};

/// Which events a watcher asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One agent's calls (Basic credentials of the agent).
    User(usize),
    /// The whole contact center (the chaos service account).
    ContactCenter,
}

impl Scope {
    /// Returns the DN whose events the scope holds, `None` for every user.
    pub fn dn(self) -> Option<String> {
        match self {
            Self::User(agent) => Some(phone(agent)),
            Self::ContactCenter => None,
        }
    }
}

/// One watcher of the run.
#[derive(Debug, Clone)]
pub struct WatcherSpec {
    /// Its number.
    pub index: usize,
    /// What it watches.
    pub scope: Scope,
    /// The gRPC proxy.
    pub addr: SocketAddr,
}

impl WatcherSpec {
    /// Returns a name for messages.
    pub fn name(&self) -> String {
        match self.scope {
            Scope::User(agent) => format!("watcher {} of {}", self.index, user(agent)),
            Scope::ContactCenter => format!("watcher {} of the contact center", self.index),
        }
    }
}

/// What a watcher received from one snapshot on.
#[derive(Debug, Clone, Default)]
pub struct GrpcSegment {
    /// The snapshot's sequence.
    pub snapshot_seq: u64,
    /// The snapshot's calls: (DN, call).
    pub snapshot: BTreeSet<(String, CallView)>,
    /// Every event after it: sequence, DN, key (`None` if unreadable).
    pub events: Vec<(u64, String, Option<EventKey>)>,
}

/// What a watcher did and received.
#[derive(Debug, Clone)]
pub struct GrpcRecord {
    /// Its name.
    pub name: String,
    /// Its scope.
    pub scope: Scope,
    /// One segment per snapshot (the first, then one per resync).
    pub segments: Vec<GrpcSegment>,
    /// How its connections went.
    pub lives: Lives,
    /// OUT_OF_RANGE answers (each followed by a resync).
    pub resyncs: u64,
    /// Streams ended with ABORTED (it lagged), then resumed.
    pub lagged: u64,
    /// What happened to it, for a failing run's report.
    pub journal: Journal,
}

/// The events one connection brought: first and last sequence, and how many.
#[derive(Debug, Clone, Copy, Default)]
struct LifeEvents {
    first: Option<u64>,
    last: u64,
    count: u64,
}

struct State {
    record: GrpcRecord,
    /// Where to resume: the last sequence received and its epoch.
    resume: Option<(u64, String)>,
    progress: watch::Sender<u64>,
    ready: bool,
    life: LifeEvents,
}

impl State {
    /// Notes in the journal how a connection ended and what it brought.
    fn note_end(&mut self, how: &str) {
        let life = std::mem::take(&mut self.life);
        let brought = match life.first {
            Some(first) => format!("sequences {first}..={} ({} events)", life.last, life.count),
            None => "no event".into(),
        };
        self.record.journal.note(format!("{brought}; {how}"));
    }

    /// Takes one message of the stream; returns whether it was the first snapshot.
    fn take(&mut self, message: pb::WatchCallsResponse) -> anyhow::Result<bool> {
        match message.kind {
            Some(pb::watch_calls_response::Kind::Snapshot(snapshot)) => {
                self.record.segments.push(GrpcSegment {
                    snapshot_seq: snapshot.sequence,
                    snapshot: snapshot
                        .calls
                        .iter()
                        .map(|c| (c.phone_number.clone(), CallView::from_pb(c)))
                        .collect(),
                    events: Vec::new(),
                });
                self.record.journal.note(format!(
                    "snapshot at sequence {} ({} calls)",
                    snapshot.sequence,
                    snapshot.calls.len()
                ));
                self.resume = Some((snapshot.sequence, snapshot.epoch));
                self.progress.send_replace(snapshot.sequence);
                let first = !self.ready;
                self.ready = true;
                Ok(first)
            }
            Some(kind) => {
                let event = Numbered::from_pb(kind).context("an unexpected message")?;
                let segment = self
                    .record
                    .segments
                    .last_mut()
                    .context("an event before any snapshot")?;
                segment.events.push((event.seq, event.dn, event.key));
                self.life.first.get_or_insert(event.seq);
                self.life.last = event.seq;
                self.life.count += 1;
                self.resume = Some((event.seq, event.epoch));
                self.progress.send_replace(event.seq);
                Ok(false)
            }
            None => anyhow::bail!("an empty WatchCalls message"),
        }
    }
}

/// Runs the watcher until the run stops; returns what it received.
pub async fn run(
    spec: WatcherSpec,
    chaos: Chaos,
    mut rng: ChaosRng,
    progress: watch::Sender<u64>,
) -> GrpcRecord {
    let state = Arc::new(Mutex::new(State {
        record: GrpcRecord {
            name: spec.name(),
            scope: spec.scope,
            segments: Vec::new(),
            lives: Lives::default(),
            resyncs: 0,
            lagged: 0,
            journal: Journal::new(chaos.began),
        },
        resume: None,
        progress,
        ready: false,
        life: LifeEvents::default(),
    }));
    let away = spec.index < chaos.plan.away;
    let lives = keep_connecting(
        &chaos,
        &mut rng,
        away,
        || one_life(state.clone(), spec.clone(), chaos.clone()),
        |how| lock(&state).note_end(&how),
    )
    .await;
    let mut record = lock(&state).record.clone();
    record.lives = lives;
    record
}

/// One connection: watch (resuming when it can) and read until something ends it.
async fn one_life(state: Arc<Mutex<State>>, spec: WatcherSpec, chaos: Chaos) -> anyhow::Result<()> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", spec.addr))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await?;
    let mut client = CallServiceClient::new(channel);
    let resume = lock(&state).resume.clone();
    let mut request = pb::WatchCallsRequest {
        contact_center: spec.scope == Scope::ContactCenter,
        ..Default::default()
    };
    let opening = match &resume {
        Some((sequence, _)) => format!("watch from sequence {sequence}"),
        None => "watch with a snapshot".into(),
    };
    lock(&state).record.journal.note(opening);
    if let Some((sequence, epoch)) = resume {
        request.from_sequence = Some(sequence);
        request.epoch = epoch;
    }
    let request = match spec.scope {
        Scope::User(agent) => as_agent(agent, request),
        Scope::ContactCenter => as_service(request),
    };
    let answer = tokio::time::timeout(Duration::from_secs(10), client.watch_calls(request))
        .await
        .context("no answer to WatchCalls within 10 s")?;
    let mut stream = match answer {
        Ok(response) => response.into_inner(),
        Err(status) => return on_status(&state, status),
    };
    loop {
        match stream.message().await {
            Ok(Some(message)) => {
                if lock(&state).take(message)? {
                    chaos.ready();
                }
            }
            Ok(None) => anyhow::bail!("the gateway ended the stream"),
            Err(status) => return on_status(&state, status),
        }
    }
}

/// Handles a status that ended a watch: OUT_OF_RANGE resyncs, ABORTED resumes, the rest
/// (broken connections) is an error of this life, after which the watcher resumes too.
fn on_status(state: &Mutex<State>, status: tonic::Status) -> anyhow::Result<()> {
    let mut state = lock(state);
    let (code, message) = (status.code(), status.message());
    state
        .record
        .journal
        .note(format!("status {code:?}: {message}"));
    match status.code() {
        tonic::Code::OutOfRange => {
            state.resume = None;
            state.record.resyncs += 1;
            Ok(())
        }
        tonic::Code::Aborted => {
            state.record.lagged += 1;
            Ok(())
        }
        _ => Err(anyhow::anyhow!("watch ended: {status:?}")),
    }
}
