//! The reference: one `WatchCalls` stream of the whole contact center (the chaos service
//! account), connected straight to the gateway and never killed. Its log (snapshot, then
//! every call event in sequence order) is what every chaotic client is compared with.
//! Should it fall behind (ABORTED) it resumes; should it ever have to resync, the run fails.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use voice_gateway::grpc::pb;
use voice_gateway::grpc::pb::call_service_client::CallServiceClient;
use voice_gateway::grpc::pb::watch_calls_response::Kind;

use super::keys::{CallBook, CallView, EventKey, Numbered};
use super::{SERVICE_TOKEN, lock};

/// One event of the log.
#[derive(Debug, Clone)]
pub struct RefEvent {
    /// Its sequence number.
    pub seq: u64,
    /// The DN of the user it is for.
    pub dn: String,
    /// What identifies it.
    pub key: EventKey,
}

/// What the reference saw.
#[derive(Debug, Clone, Default)]
pub struct ReferenceLog {
    /// The epoch of the gateway's stream.
    pub epoch: String,
    /// The sequence of the opening snapshot.
    pub start_seq: u64,
    /// The opening snapshot: (DN, call).
    pub start: Vec<(String, CallView)>,
    /// Every call event after it, in order.
    pub events: Vec<RefEvent>,
}

impl ReferenceLog {
    /// Returns the book of the opening snapshot.
    pub fn start_book(&self) -> CallBook {
        let mut book = CallBook::default();
        for (dn, view) in &self.start {
            book.apply(dn, view);
        }
        book
    }

    /// Returns the last sequence for the user with DN `dn` (every user when `None`), or the
    /// opening snapshot's sequence when there is none.
    pub fn last_seq(&self, dn: Option<&str>) -> u64 {
        self.events
            .iter()
            .rev()
            .find(|e| dn.is_none_or(|dn| e.dn == dn))
            .map_or(self.start_seq, |e| e.seq)
    }

    /// Returns the user's events in order.
    pub fn of_user(&self, dn: &str) -> Vec<&RefEvent> {
        self.events.iter().filter(|e| e.dn == dn).collect()
    }

    /// Returns the last event of a user, and the user's calls at the end.
    pub fn user_end(&self, dn: &str) -> (Option<EventKey>, BTreeSet<(String, CallView)>) {
        let mut book = self.start_book();
        let mut last = None;
        for event in self.of_user(dn) {
            book.apply_event(dn, &event.key);
            last = Some(event.key.clone());
        }
        let calls = book.to_set().into_iter().filter(|(d, _)| d == dn).collect();
        (last, calls)
    }

    /// Returns the number of events per user.
    pub fn per_user(&self) -> HashMap<&str, usize> {
        let mut counts = HashMap::new();
        for event in &self.events {
            *counts.entry(event.dn.as_str()).or_default() += 1;
        }
        counts
    }
}

/// The running reference watcher.
#[derive(Debug)]
pub struct ReferenceWatcher {
    log: Arc<Mutex<ReferenceLog>>,
    count: watch::Receiver<u64>,
    task: JoinHandle<anyhow::Result<()>>,
    stop: CancellationToken,
}

/// Adds the chaos service account's token to a request.
pub fn as_service<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {SERVICE_TOKEN}")
            .parse()
            .expect("an ascii token"),
    );
    request
}

impl ReferenceWatcher {
    /// Opens the stream and returns once its snapshot arrived.
    pub async fn start(grpc: SocketAddr) -> anyhow::Result<Self> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))?
            .connect()
            .await
            .context("the reference cannot connect")?;
        let mut client = CallServiceClient::new(channel);
        let request = pb::WatchCallsRequest {
            contact_center: true,
            ..Default::default()
        };
        let mut stream = client
            .watch_calls(as_service(request))
            .await
            .context("the reference watch was refused")?
            .into_inner();
        let first = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .context("no reference snapshot within 10 s")??;
        let Some(pb::WatchCallsResponse {
            kind: Some(pb::watch_calls_response::Kind::Snapshot(snapshot)),
        }) = first
        else {
            anyhow::bail!("the reference stream did not open with a snapshot: {first:?}");
        };
        let log = Arc::new(Mutex::new(ReferenceLog {
            epoch: snapshot.epoch.clone(),
            start_seq: snapshot.sequence,
            start: snapshot
                .calls
                .iter()
                .map(|c| (c.phone_number.clone(), CallView::from_pb(c)))
                .collect(),
            events: Vec::new(),
        }));
        let (tx, count) = watch::channel(0);
        let stop = CancellationToken::new();
        let task = tokio::spawn(follow(client, stream, log.clone(), tx, stop.clone()));
        Ok(Self {
            log,
            count,
            task,
            stop,
        })
    }

    /// Returns a receiver of the number of call events so far.
    pub fn counter(&self) -> watch::Receiver<u64> {
        self.count.clone()
    }

    /// Returns the number of call events so far.
    pub fn count(&self) -> u64 {
        *self.count.borrow()
    }

    /// Waits until `done` holds for the log, failing after `limit` with `what`.
    pub async fn wait_until(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&ReferenceLog) -> bool,
    ) -> anyhow::Result<()> {
        let mut count = self.count.clone();
        let waited = tokio::time::timeout(limit, async {
            loop {
                if done(&lock(&self.log)) {
                    return Ok(());
                }
                if count.changed().await.is_err() {
                    return Err(anyhow::anyhow!("the reference watcher ended"));
                }
            }
        })
        .await;
        waited.with_context(|| format!("the reference did not see {what} within {limit:?}"))?
    }

    /// Stops the stream and returns the log.
    pub async fn finish(self) -> anyhow::Result<ReferenceLog> {
        self.stop.cancel();
        self.task
            .await
            .context("the reference watcher panicked")??;
        let log = lock(&self.log).clone();
        Ok(log)
    }
}

/// Reads the stream; resumes from the last sequence after an error.
async fn follow(
    mut client: CallServiceClient<tonic::transport::Channel>,
    mut stream: tonic::Streaming<pb::WatchCallsResponse>,
    log: Arc<Mutex<ReferenceLog>>,
    count: watch::Sender<u64>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            next = stream.message() => next,
        };
        match next {
            Ok(Some(pb::WatchCallsResponse {
                kind: Some(kind @ (Kind::Event(_) | Kind::Error(_))),
            })) => {
                let event = Numbered::from_pb(kind).context("an event")?;
                let key = event
                    .key
                    .with_context(|| format!("an unreadable reference event {}", event.seq))?;
                let mut log = lock(&log);
                log.events.push(RefEvent {
                    seq: event.seq,
                    dn: event.dn,
                    key,
                });
                count.send_replace(log.events.len() as u64);
            }
            Ok(other) => anyhow::bail!("the reference stream sent {other:?}"),
            Err(status) if status.code() != tonic::Code::OutOfRange => {
                let (seq, epoch) = {
                    let log = lock(&log);
                    (log.last_seq(None), log.epoch.clone())
                };
                let request = pb::WatchCallsRequest {
                    from_sequence: Some(seq),
                    epoch,
                    contact_center: true,
                };
                stream = client
                    .watch_calls(as_service(request))
                    .await
                    .with_context(|| format!("the reference cannot resume after {status:?}"))?
                    .into_inner();
            }
            Err(status) => anyhow::bail!("the reference must resync: {status:?}"),
        }
    }
}
