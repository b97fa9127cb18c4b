//! Load shedding: the bounds on open connections and on requests in flight, which refuse
//! at once what lies beyond them instead of queueing it, so that the work the gateway holds
//! (and with it the latency of what it accepted, and its memory) stays bounded however much
//! arrives. The serve loop ([`crate::server`]) applies them; the fronts render a
//! [`Refused`] in their own vocabulary (gRPC `RESOURCE_EXHAUSTED`, GWS JSON 503 with
//! `statusCode` 4). This module imports nothing of the gateway but the metric names.
//!
//! A request is counted from its arrival, when hyper hands it to the connection's service
//! (the HTTP/1.1 head parsed, or the HTTP/2 stream opened), not from when its handler
//! first runs: when the gateway is short of CPU, requests wait in the runtime's queue,
//! and a count taken inside the handler would see few of them while the queue grew
//! (BENCHMARKS.md, figure 10, measured it: 0 refusals and a p99 of seconds). It holds its
//! slots until its response head is ready, not while its body streams, so a `WatchCalls`
//! stream costs a slot only while it starts.
//!
//! The slots are tokio semaphores taken with `try_acquire`, never awaited: a request that
//! finds none is refused, it does not wait.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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

/// The slots an admitted request holds until it is dropped.
#[derive(Debug)]
#[must_use = "the request is admitted only while this lives"]
pub struct Admission {
    _listener: Slot,
    _connection: Slot,
}

/// Admits a request under its connection's and its listener's bounds, or refuses it at
/// once.
pub fn admit(
    connection: &Arc<RequestSlots>,
    listener: &Arc<RequestSlots>,
) -> Result<Admission, Refused> {
    // The connection's bound first: a client that floods its own connection is refused
    // without taking a slot from the other connections of the listener.
    let connection = connection.take()?;
    let listener = listener.take()?;
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

/// The HTTP/2 connection preface's length: what a client must send within the header
/// timeout.
const PREFACE_LEN: usize = 24;

pin_project_lite::pin_project! {
    /// An accepted connection, holding its place under the listener's [`ConnectionLimit`]
    /// for as long as it is open, and closed (a read error) if its client has not sent its
    /// first 24 bytes (the HTTP/2 preface's length; every HTTP/1.1 request head is longer)
    /// within the header timeout: hyper's protocol detection and its HTTP/2 handshake
    /// would otherwise wait for them forever.
    ///
    /// Hand-written: hyper has no timeout before it knows the protocol.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(listener: usize, connection: usize) -> (Arc<RequestSlots>, Arc<RequestSlots>) {
        (
            RequestSlots::new(Scope::Connection, connection),
            RequestSlots::new(Scope::Listener, listener),
        )
    }

    #[test]
    fn requests_beyond_the_listener_bound_are_refused_until_one_ends() {
        let (connection, listener) = slots(2, 10);
        let first = admit(&connection, &listener).unwrap();
        let _second = admit(&connection, &listener).unwrap();
        let refused = admit(&connection, &listener).unwrap_err();
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
        assert_eq!(connection.in_flight(), 2, "the refusal gave its slot back");
        drop(first);
        let _third = admit(&connection, &listener).unwrap();
    }

    #[test]
    fn the_connection_bound_refuses_without_taking_a_listener_slot() {
        let (connection, listener) = slots(2, 1);
        let _held = admit(&connection, &listener).unwrap();
        let refused = admit(&connection, &listener).unwrap_err();
        assert_eq!(refused.scope, Scope::Connection);
        assert_eq!(listener.in_flight(), 1);
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
