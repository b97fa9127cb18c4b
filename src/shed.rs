//! Load shedding: the bounds on open connections and on requests in flight, which refuse
//! at once what lies beyond them instead of queueing it, so that the work the gateway holds
//! (and with it the latency of what it accepted, and its memory) stays bounded however much
//! arrives. The serve loops ([`crate::server`]) and TLS ([`crate::tls`]) bound connections;
//! both fronts bound requests with [`admit`] and render its [`Refused`] in their own
//! vocabulary (gRPC `RESOURCE_EXHAUSTED`, GWS JSON 503 with `statusCode` 4). This module
//! imports nothing of the gateway but the metric names.
//!
//! The slots are tokio semaphores taken with `try_acquire`, never awaited: a request that
//! finds none is refused, it does not wait. A request holds its slots until its response
//! head is ready (the response future resolves), not while its body streams, so a
//! `WatchCalls` stream costs a slot only while it starts.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::Extensions;
use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::admin::names;

/// How long a refused client is told to wait (`Retry-After`, `grpc-retry-pushback-ms`).
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What a bound counts requests over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every connection of one listener.
    Listener,
    /// One connection.
    Connection,
}

impl Scope {
    /// Returns the scope's name, as messages and the metric's `bound` label give it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Listener => "listener",
            Self::Connection => "connection",
        }
    }
}

/// A request refused because a bound on requests in flight was reached; nothing was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("overloaded: {limit} requests in flight on this {}; retry later", scope.as_str())]
pub struct Refused {
    /// The bound that was reached.
    pub scope: Scope,
    /// Its size.
    pub limit: usize,
}

/// Request slots: a bound on requests in flight over a [`Scope`]. One allocation: the serve
/// loop makes one per connection, and every idle CometD long-poll holds its connection's
/// (BENCHMARKS.md, figure 4 counts them), so a taken slot is a forgotten permit that
/// [`Admission`] gives back itself rather than an `OwnedSemaphorePermit` (which needs the
/// semaphore in an `Arc` of its own).
#[derive(Debug)]
pub struct RequestSlots {
    slots: Semaphore,
    limit: usize,
    scope: Scope,
}

impl RequestSlots {
    /// Returns `limit` slots over `scope`.
    pub fn new(scope: Scope, limit: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: Semaphore::new(limit),
            limit,
            scope,
        })
    }

    /// Takes a slot, or refuses at once when none is free.
    fn take(self: &Arc<Self>) -> Result<Slot, Refused> {
        match self.slots.try_acquire() {
            Ok(permit) => {
                permit.forget();
                Ok(Slot(self.clone()))
            }
            Err(_) => {
                metrics::counter!(names::REQUESTS_SHED, "bound" => self.scope.as_str())
                    .increment(1);
                let refused = Refused {
                    scope: self.scope,
                    limit: self.limit,
                };
                warn_now_and_then(refused);
                Err(refused)
            }
        }
    }

    /// Returns the requests in flight.
    pub fn in_flight(&self) -> usize {
        self.limit - self.slots.available_permits()
    }
}

/// How often at most a refusal is logged: each is counted in [`names::REQUESTS_SHED`], and
/// the request layers log none of them, since a line per refusal would add work exactly
/// when there is too much.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Logs `refused` at `warn` unless a refusal was logged less than [`WARN_EVERY`] ago.
fn warn_now_and_then(refused: Refused) {
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    static NEXT_MS: AtomicU64 = AtomicU64::new(0);
    let now = START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64;
    let next = NEXT_MS.load(Ordering::Relaxed);
    let every = WARN_EVERY.as_millis() as u64;
    if now >= next
        && NEXT_MS
            .compare_exchange(next, now + every, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            bound = refused.scope.as_str(),
            limit = refused.limit,
            "shedding load: requests refused at a bound on requests in flight \
             (each counted in voice_gateway_requests_shed_total; this line at most every 10 s)"
        );
    }
}

/// A taken slot, given back on drop.
#[derive(Debug)]
struct Slot(Arc<RequestSlots>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.slots.add_permits(1);
    }
}

/// The request slots of the listener a request came in on, put in its extensions by the
/// serve loop.
#[derive(Debug, Clone)]
pub struct ListenerSlots(pub Arc<RequestSlots>);

/// The request slots of the connection a request came in on, put in its extensions by the
/// serve loop that has them (on the gRPC-only listener, tonic bounds each connection).
#[derive(Debug, Clone)]
pub struct ConnectionSlots(pub Arc<RequestSlots>);

/// The slots an admitted request holds until it is dropped.
#[derive(Debug)]
#[must_use = "the request is admitted only while this lives"]
pub struct Admission {
    _listener: Option<Slot>,
    _connection: Option<Slot>,
}

/// Admits a request under the bounds its extensions carry (none: a router driven without a
/// listener, as in unit tests, is not bounded), or refuses it at once.
pub fn admit(extensions: &Extensions) -> Result<Admission, Refused> {
    // The connection's bound first: a client that floods its own connection is refused
    // without taking a slot from the other connections of the listener.
    let connection = match extensions.get::<ConnectionSlots>() {
        Some(ConnectionSlots(slots)) => Some(slots.take()?),
        None => None,
    };
    let listener = match extensions.get::<ListenerSlots>() {
        Some(ListenerSlots(slots)) => Some(slots.take()?),
        None => None,
    };
    Ok(Admission {
        _listener: listener,
        _connection: connection,
    })
}

/// A bound on a listener's open connections.
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    slots: Arc<Semaphore>,
    limit: usize,
}

/// An open connection's place under its [`ConnectionLimit`], given back on drop.
#[derive(Debug)]
pub struct ConnectionPermit {
    _slot: OwnedSemaphorePermit,
}

impl ConnectionLimit {
    /// Returns a bound of `limit` connections.
    pub fn new(limit: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    /// Takes a place for a new connection; `None` (counted in
    /// [`names::CONNECTIONS_REFUSED`]) when the listener is full, and the caller closes it.
    pub fn try_open(&self) -> Option<ConnectionPermit> {
        let permit = self.slots.clone().try_acquire_owned().ok();
        if permit.is_none() {
            metrics::counter!(names::CONNECTIONS_REFUSED).increment(1);
        }
        permit.map(|slot| ConnectionPermit { _slot: slot })
    }

    /// Returns the connections open.
    pub fn open(&self) -> usize {
        self.limit - self.slots.available_permits()
    }
}

/// The HTTP/2 connection preface's length: what a client of the gRPC-only listener (HTTP/2
/// only) must send first.
const PREFACE_LEN: usize = 24;

pin_project_lite::pin_project! {
    /// A connection of the gRPC-only listener, holding its place under the listener's
    /// [`ConnectionLimit`] for as long as tonic holds it, and closed (a read error) if its
    /// client has not sent the HTTP/2 preface within the header timeout.
    ///
    /// Hand-written because tonic's server takes connections from a stream and offers no
    /// hook per connection: the permit and the deadline have to travel with the IO.
    #[derive(Debug)]
    pub struct Counted<IO> {
        #[pin]
        io: IO,
        _permit: ConnectionPermit,
        // Boxed so that it can be dropped once the preface is in.
        preface_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
        preface_left: usize,
    }
}

impl<IO> Counted<IO> {
    /// Wraps an accepted connection; its client must send the preface within `timeout`.
    pub fn new(io: IO, permit: ConnectionPermit, timeout: Duration) -> Self {
        Self {
            io,
            _permit: permit,
            preface_deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            preface_left: PREFACE_LEN,
        }
    }
}

impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected for Counted<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl<IO: AsyncRead> AsyncRead for Counted<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if let Some(deadline) = this.preface_deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no HTTP/2 preface within the header timeout",
            )));
        }
        let before = buf.filled().len();
        let polled = this.io.poll_read(cx, buf);
        if this.preface_deadline.is_some() {
            *this.preface_left = this
                .preface_left
                .saturating_sub(buf.filled().len() - before);
            if *this.preface_left == 0 {
                *this.preface_deadline = None;
            }
        }
        polled
    }
}

impl<IO: AsyncWrite> AsyncWrite for Counted<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

/// Accepts a listener's connections as tonic's `incoming`: each under `limit` (beyond it
/// accepted and closed at once), with `TCP_NODELAY`, and given `header_timeout` to send
/// the HTTP/2 preface. The stream owns the listener: when tonic drops it (shutdown), the
/// listener closes and new clients are refused by the system.
pub fn incoming(
    listener: TcpListener,
    limit: ConnectionLimit,
    header_timeout: Duration,
) -> impl Stream<Item = io::Result<Counted<TcpStream>>> {
    futures::stream::unfold(listener, move |listener| {
        let limit = limit.clone();
        async move {
            loop {
                let tcp = match listener.accept().await {
                    Ok((tcp, _)) => tcp,
                    Err(error) => {
                        // Out of file descriptors and the like: wait a moment, as axum does.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some(permit) = limit.try_open() else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let counted = Counted::new(tcp, permit, header_timeout);
                return Some((Ok(counted), listener));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounded(listener: usize, connection: Option<usize>) -> Extensions {
        let mut extensions = Extensions::new();
        extensions.insert(ListenerSlots(RequestSlots::new(Scope::Listener, listener)));
        if let Some(limit) = connection {
            extensions.insert(ConnectionSlots(RequestSlots::new(Scope::Connection, limit)));
        }
        extensions
    }

    #[test]
    fn requests_beyond_the_listener_bound_are_refused_until_one_ends() {
        let extensions = bounded(2, None);
        let first = admit(&extensions).unwrap();
        let _second = admit(&extensions).unwrap();
        let refused = admit(&extensions).unwrap_err();
        assert_eq!(
            refused,
            Refused {
                scope: Scope::Listener,
                limit: 2
            }
        );
        assert_eq!(
            refused.to_string(),
            "overloaded: 2 requests in flight on this listener; retry later"
        );
        drop(first);
        let _third = admit(&extensions).unwrap();
    }

    #[test]
    fn the_connection_bound_refuses_without_taking_a_listener_slot() {
        let extensions = bounded(2, Some(1));
        let _held = admit(&extensions).unwrap();
        let refused = admit(&extensions).unwrap_err();
        assert_eq!(refused.scope, Scope::Connection);
        let ListenerSlots(listener) = extensions.get::<ListenerSlots>().unwrap();
        assert_eq!(listener.in_flight(), 1);
    }

    #[test]
    fn a_request_without_bounds_is_admitted() {
        let _admitted = admit(&Extensions::new()).unwrap();
    }

    #[test]
    fn the_connection_limit_gives_places_back() {
        let limit = ConnectionLimit::new(1);
        let permit = limit.try_open().unwrap();
        assert!(limit.try_open().is_none());
        assert_eq!(limit.open(), 1);
        drop(permit);
        assert!(limit.try_open().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_preface_is_closed_at_the_deadline() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (client, server) = tokio::io::duplex(64);
        let limit = ConnectionLimit::new(1);
        let mut counted = Counted::new(server, limit.try_open().unwrap(), Duration::from_secs(1));
        let mut client = client;
        client.write_all(b"PRI * HTTP/2.0").await.unwrap();
        let mut buf = [0u8; 64];
        let n = counted.read(&mut buf).await.unwrap();
        assert_eq!(n, 14);
        let error = counted.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_sent_its_preface_has_no_deadline() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (mut client, server) = tokio::io::duplex(64);
        let limit = ConnectionLimit::new(1);
        let mut counted = Counted::new(server, limit.try_open().unwrap(), Duration::from_secs(1));
        client.write_all(&[b'x'; PREFACE_LEN]).await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(counted.read(&mut buf).await.unwrap(), PREFACE_LEN);
        tokio::time::sleep(Duration::from_secs(5)).await;
        client.write_all(b"later").await.unwrap();
        assert_eq!(counted.read(&mut buf).await.unwrap(), 5);
    }
}
