//! The one server-streaming shape both watch RPCs share: an optional snapshot message,
//! then each event of a core watch rendered to its wire message, until shutdown.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

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
}

impl CoreWatch for CallWatch {
    type Event = CallWatchEvent;
    const RPC: &'static str = "WatchCalls";

    fn next_event(
        &mut self,
    ) -> impl Future<Output = Result<Option<Self::Event>, WatchError>> + Send {
        self.next()
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
}

/// A boxed stream of wire messages.
pub type WatchStream<M> = Pin<Box<dyn Stream<Item = Result<M, Status>> + Send>>;

/// Streams `first` (the snapshot, if any), then every event rendered by `render`, until
/// `shutdown`. A watcher that fell behind gets ABORTED naming the sequence to resume from,
/// and the stream ends.
pub fn watch_stream<W, M, R>(
    first: Option<M>,
    watch: W,
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
        async move {
            let (first, mut watch, shutdown, open) = state?;
            if let Some(first) = first {
                return Some((Ok(first), Some((None, watch, shutdown, open))));
            }
            let next = tokio::select! {
                () = shutdown.cancelled() => return None,
                next = watch.next_event() => next,
            };
            match next {
                Ok(Some(event)) => Some((Ok(render(&event)), Some((None, watch, shutdown, open)))),
                Ok(None) => None,
                Err(error @ WatchError::Lagged { .. }) => {
                    metrics::counter!(names::WATCHERS_LAGGED, "rpc" => W::RPC).increment(1);
                    Some((Err(Status::aborted(error.to_string())), None))
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
