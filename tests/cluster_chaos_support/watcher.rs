//! A `WatchCalls` client that keeps watching through the chaos: when its stream breaks it
//! resumes with its position (`from_sequence` + `epoch`) on its home instance, or on the
//! next one up if home is down; told OUT_OF_RANGE, it resyncs (a new snapshot). It records
//! every event and snapshot it got, for [`super::checks`].

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::common::{as_user, pb};

type Client = pb::call_service_client::CallServiceClient<tonic::transport::Channel>;

/// One call event as a watcher saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub epoch: String,
    pub sequence: u64,
    pub call: String,
    pub state: pb::CallState,
    pub notification: i32,
}

/// Everything one watcher got.
#[derive(Debug, Default, Clone)]
pub struct Record {
    pub events: Vec<Seen>,
    /// Every snapshot: (epoch, sequence, ids of the calls in it).
    pub snapshots: Vec<(String, u64, Vec<String>)>,
    /// Watches opened with a position.
    pub resumes: usize,
    /// OUT_OF_RANGE answers (each followed by a resync).
    pub out_of_range: usize,
    /// The instance the current stream is on.
    pub on: usize,
}

impl Record {
    /// The position to resume from: the last event's, or the snapshot's when it is newer
    /// (a resync, or no event yet).
    fn position(&self) -> Option<(String, u64)> {
        let snap = self.snapshots.last().map(|(e, s, _)| (e.clone(), *s));
        let event = self.events.last().map(|e| (e.epoch.clone(), e.sequence));
        match (snap, event) {
            (Some(snap), Some(event)) if snap.0 == event.0 && event.1 > snap.1 => Some(event),
            (Some(snap), _) => Some(snap),
            (None, event) => event,
        }
    }
}

/// The gRPC addresses of the instances and which are up (the test marks an instance down
/// before it kills, stops or drains it).
pub struct Instances {
    pub urls: Vec<String>,
    pub up: Vec<AtomicBool>,
}

impl Instances {
    /// The first instance up from `from` on.
    pub fn up_from(&self, from: usize) -> usize {
        let n = self.urls.len();
        (0..n)
            .map(|i| (from + i) % n)
            .find(|&i| self.up[i].load(Ordering::SeqCst))
            .expect("an instance is up")
    }

    /// Marks `index` down (no new watch, no operation goes to it).
    pub fn down(&self, index: usize) {
        self.up[index].store(false, Ordering::SeqCst);
    }

    /// Marks `index` up again.
    pub fn up(&self, index: usize) {
        self.up[index].store(true, Ordering::SeqCst);
    }
}

/// A watcher of one user.
pub struct Watcher {
    pub user: &'static str,
    /// The instance it started on.
    pub first_home: usize,
    pub record: Arc<Mutex<Record>>,
    home: Arc<AtomicUsize>,
    kick: Arc<Notify>,
}

impl Watcher {
    /// Starts watching `user` on instance `home`; returns once its first snapshot came.
    pub async fn start(
        user: &'static str,
        home: usize,
        instances: Arc<Instances>,
        stop: CancellationToken,
    ) -> Self {
        let watcher = Self {
            user,
            first_home: home,
            record: Arc::default(),
            home: Arc::new(AtomicUsize::new(home)),
            kick: Arc::default(),
        };
        let task = watch(
            user,
            watcher.record.clone(),
            watcher.home.clone(),
            watcher.kick.clone(),
            instances,
            stop,
        );
        tokio::spawn(task);
        crate::common::eventually(&format!("{user}'s first snapshot on {home}"), || {
            !watcher.record.lock().unwrap().snapshots.is_empty()
        })
        .await;
        watcher
    }

    /// Moves the watcher to instance `to` now: its stream ends and it resumes there.
    pub fn move_to(&self, to: usize) {
        self.home.store(to, Ordering::SeqCst);
        self.kick.notify_one();
    }

    /// What it got so far.
    pub fn record(&self) -> Record {
        self.record.lock().unwrap().clone()
    }
}

/// Why a stream ended.
enum Ended {
    Broken,
    OutOfRange,
    Kicked,
}

async fn watch(
    user: &'static str,
    record: Arc<Mutex<Record>>,
    home: Arc<AtomicUsize>,
    kick: Arc<Notify>,
    instances: Arc<Instances>,
    stop: CancellationToken,
) {
    let mut resync = false;
    loop {
        let on = instances.up_from(home.load(Ordering::SeqCst));
        let position = if resync {
            None
        } else {
            record.lock().unwrap().position()
        };
        let ended = tokio::select! {
            () = stop.cancelled() => return,
            ended = stream(user, &instances.urls[on], position, on, &record, &kick) => ended,
        };
        resync = matches!(ended, Ended::OutOfRange);
        if matches!(ended, Ended::Broken) {
            // The retry period of a watch whose instance is going away; the test bounds
            // every wait on what watchers saw.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn stream(
    user: &str,
    url: &str,
    position: Option<(String, u64)>,
    on: usize,
    record: &Mutex<Record>,
    kick: &Notify,
) -> Ended {
    let connect = tokio::time::timeout(Duration::from_secs(1), Client::connect(url.to_owned()));
    let Ok(Ok(mut client)) = connect.await else {
        return Ended::Broken;
    };
    let request = match &position {
        Some((epoch, sequence)) => pb::WatchCallsRequest {
            from_sequence: Some(*sequence),
            epoch: epoch.clone(),
            ..Default::default()
        },
        None => pb::WatchCallsRequest::default(),
    };
    let opened = tokio::time::timeout(
        Duration::from_secs(1),
        client.watch_calls(as_user(user, request)),
    );
    let mut stream = match opened.await {
        Ok(Ok(stream)) => stream.into_inner(),
        Ok(Err(status)) if status.code() == tonic::Code::OutOfRange => {
            record.lock().unwrap().out_of_range += 1;
            return Ended::OutOfRange;
        }
        _ => return Ended::Broken,
    };
    {
        let mut record = record.lock().unwrap();
        record.on = on;
        if position.is_some() {
            record.resumes += 1;
        }
    }
    loop {
        let message = tokio::select! {
            () = kick.notified() => return Ended::Kicked,
            message = stream.message() => message,
        };
        match message {
            Ok(Some(message)) => take(message, record),
            Err(status) if status.code() == tonic::Code::OutOfRange => {
                record.lock().unwrap().out_of_range += 1;
                return Ended::OutOfRange;
            }
            _ => return Ended::Broken,
        }
    }
}

fn take(message: pb::WatchCallsResponse, record: &Mutex<Record>) {
    use pb::watch_calls_response::Kind;
    let mut record = record.lock().unwrap();
    match message.kind {
        Some(Kind::Snapshot(snap)) => {
            let calls = snap.calls.iter().map(|c| c.id.clone()).collect();
            record.snapshots.push((snap.epoch, snap.sequence, calls));
        }
        Some(Kind::Event(event)) => {
            let call = event.call.as_ref().expect("an event's call");
            let seen = Seen {
                epoch: event.epoch.clone(),
                sequence: event.sequence,
                call: call.id.clone(),
                state: call.state(),
                notification: event.notification_type,
            };
            record.events.push(seen);
        }
        _ => {}
    }
}
