//! The one server-streaming shape both watch RPCs share: an optional snapshot message,
//! then each event of a core watch rendered to its wire message, until shutdown.
//!
//! A stream the gateway ends says where to resume, in its message and, for programs, in
//! two trailers: [`RESUME_SEQUENCE`] (the `from_sequence` to send back) and
//! [`RESUME_EPOCH`] (the `epoch` to send with it). On shutdown the status is
//! `UNAVAILABLE` (the client reconnects, to another instance if it likes); for a watcher
//! that fell behind, `ABORTED`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::metadata::{MetadataMap, MetadataValue};

use crate::admin::names;
use crate::core::{CallWatch, CallWatchEvent, DeviceEvent, DeviceWatch, WatchError};

/// A core watch whose events a gRPC stream forwards.
pub trait CoreWatch: Send + 'static {
    /// The event type.
    type Event: Send;
    /// The RPC that streams it, for the metrics' `rpc` label.
    const RPC: &'static str;

    /// Waits for the next event; `Ok(None)` when the gateway ends the stream.
    fn next_event(
        &mut self,
    ) -> impl Future<Output = Result<Option<Self::Event>, WatchError>> + Send;

    /// Returns the last sequence the watch has passed: every event of its scope up to it
    /// has been handed to the stream.
    fn position(&self) -> u64;
}

impl CoreWatch for CallWatch {
    type Event = CallWatchEvent;
    const RPC: &'static str = "WatchCalls";

    fn next_event(
        &mut self,
    ) -> impl Future<Output = Result<Option<Self::Event>, WatchError>> + Send {
        self.next()
    }

    fn position(&self) -> u64 {
        CallWatch::position(self)
    }
}

impl CoreWatch for DeviceWatch {
    type Event = Arc<DeviceEvent>;
    const RPC: &'static str = "WatchDevices";

    fn next_event(
        &mut self,
    ) -> impl Future<Output = Result<Option<Self::Event>, WatchError>> + Send {
        self.next()
    }

    fn position(&self) -> u64 {
        DeviceWatch::position(self)
    }
}

/// The trailer naming the sequence a watch ended by the gateway resumes from (its
/// `from_sequence`).
pub const RESUME_SEQUENCE: &str = "resume-sequence";
/// The trailer naming the epoch that sequence belongs to (its `epoch`).
pub const RESUME_EPOCH: &str = "resume-epoch";

/// Returns a status with `code` that says, in its message and its trailers, to resume from
/// `sequence` of `epoch`.
pub fn resume_status(code: tonic::Code, why: &str, sequence: u64, epoch: &str) -> Status {
    let mut metadata = MetadataMap::new();
    metadata.insert(RESUME_SEQUENCE, MetadataValue::from(sequence));
    if let Ok(value) = MetadataValue::try_from(epoch) {
        metadata.insert(RESUME_EPOCH, value);
    }
    let message = format!("{why}; resume from sequence {sequence} of epoch {epoch}");
    Status::with_metadata(code, message, metadata)
}

/// A boxed stream of wire messages.
pub type WatchStream<M> = Pin<Box<dyn Stream<Item = Result<M, Status>> + Send>>;

/// Streams `first` (the snapshot, if any), then every event rendered by `render`, until
/// `shutdown`, when it ends with `UNAVAILABLE` naming where to resume ([`resume_status`]),
/// the watch's position in the log of `epoch`. A watcher that fell behind gets `ABORTED`
/// naming the last sequence it received, and the stream ends.
pub fn watch_stream<W, M, R>(
    first: Option<M>,
    watch: W,
    epoch: Arc<str>,
    shutdown: CancellationToken,
    render: R,
) -> WatchStream<M>
where
    W: CoreWatch,
    M: Send + 'static,
    R: Fn(&W::Event) -> M + Send + Sync + 'static,
{
    let render = Arc::new(render);
    let open = OpenStream::new(W::RPC);
    // The gauge leaves with the state: when the stream ends or the client goes away.
    let state = Some((first, watch, shutdown, open));
    Box::pin(futures::stream::unfold(state, move |state| {
        let render = render.clone();
        let epoch = epoch.clone();
        async move {
            let (first, mut watch, shutdown, open) = state?;
            // The snapshot goes first, whatever happens: a resume position means nothing
            // to a client that has not had it.
            if let Some(first) = first {
                return Some((Ok(first), Some((None, watch, shutdown, open))));
            }
            let next = tokio::select! {
                () = shutdown.cancelled() => Ok(None),
                next = watch.next_event() => next,
            };
            match next {
                Ok(Some(event)) => Some((Ok(render(&event)), Some((None, watch, shutdown, open)))),
                Ok(None) => {
                    let why = "the gateway is shutting down";
                    let status =
                        resume_status(tonic::Code::Unavailable, why, watch.position(), &epoch);
                    Some((Err(status), None))
                }
                Err(error @ WatchError::Lagged { last_delivered }) => {
                    metrics::counter!(names::WATCHERS_LAGGED, "rpc" => W::RPC).increment(1);
                    let why = error.to_string();
                    let why = why.split(';').next().unwrap_or_default();
                    let status = resume_status(tonic::Code::Aborted, why, last_delivered, &epoch);
                    Some((Err(status), None))
                }
                // As a resume against another epoch is answered: OUT_OF_RANGE, resync.
                Err(error @ WatchError::EpochChanged { .. }) => {
                    Some((Err(Status::out_of_range(error.to_string())), None))
                }
            }
        }
    }))
}

/// Counts an open watch stream in [`names::WATCH_STREAMS`] for as long as it lives.
struct OpenStream(metrics::Gauge);

impl OpenStream {
    fn new(rpc: &'static str) -> Self {
        let gauge = metrics::gauge!(names::WATCH_STREAMS, "rpc" => rpc);
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
