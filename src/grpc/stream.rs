//! The one server-streaming shape both watch RPCs share: an optional snapshot message,
//! then each event of a core watch rendered to its wire message, until shutdown.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::core::{CallEvent, CallWatch, DeviceEvent, DeviceWatch, WatchError};

/// A core watch whose events a gRPC stream forwards.
pub trait CoreWatch: Send + 'static {
    /// The event type.
    type Event: Send;

    /// Waits for the next event; `Ok(None)` when the gateway ends the stream.
    fn next_event(
        &mut self,
    ) -> impl Future<Output = Result<Option<Self::Event>, WatchError>> + Send;
}

impl CoreWatch for CallWatch {
    type Event = Arc<CallEvent>;

    fn next_event(
        &mut self,
    ) -> impl Future<Output = Result<Option<Self::Event>, WatchError>> + Send {
        self.next()
    }
}

impl CoreWatch for DeviceWatch {
    type Event = Arc<DeviceEvent>;

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
    let state = Some((first, watch, shutdown));
    Box::pin(futures::stream::unfold(state, move |state| {
        let render = render.clone();
        async move {
            let (first, mut watch, shutdown) = state?;
            if let Some(first) = first {
                return Some((Ok(first), Some((None, watch, shutdown))));
            }
            let next = tokio::select! {
                () = shutdown.cancelled() => return None,
                next = watch.next_event() => next,
            };
            match next {
                Ok(Some(event)) => Some((Ok(render(&event)), Some((None, watch, shutdown)))),
                Ok(None) => None,
                Err(error @ WatchError::Lagged { .. }) => {
                    Some((Err(Status::aborted(error.to_string())), None))
                }
            }
        }
    }))
}
