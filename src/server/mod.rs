//! The API listeners' serve loop and its bounds ([`config`], the `[server]` table), and the
//! drain on shutdown.
//!
//! One loop, [`serve`], hyper's connections from hyper-util's auto builder, serves every
//! listener: the HTTP listener and the one-port listener (HTTP/1.1, WebSocket and HTTP/2),
//! and a gRPC-only listener (HTTP/2 only, the gRPC routes, unknown methods answered with
//! `UNIMPLEMENTED`). It applies the bounds:
//!
//! - **Connections** (`server.max_connections`): beyond the bound a new connection is
//!   accepted and closed at once, before any byte is read. The system completes the TCP
//!   handshake before the gateway sees a connection, so leaving it in the backlog would let
//!   a client send a request nobody reads; closed at once, it reads end-of-file and can try
//!   another instance.
//! - **Requests in flight** (`server.max_requests` per listener,
//!   `server.max_requests_per_connection`): see [`crate::shed`]. Each connection's service
//!   takes the slots when hyper hands it a request (`Admitting`), and the caller's
//!   [`Admission`] says which requests count and renders a refusal.
//! - **HTTP/2**: `SETTINGS_MAX_CONCURRENT_STREAMS`, keep-alive pings with a timeout, and a
//!   maximum connection age after which the connection gets a GOAWAY, then a grace.
//! - **Slow clients**: a connection must send its first 24 bytes (the HTTP/2 preface's
//!   length; every HTTP/1.1 request head is longer) within `server.header_timeout_ms`,
//!   and on HTTP/1.1 each request head within the same time (hyper's header read timeout,
//!   which also runs while a keep-alive connection waits for its next request).
//!
//! The gRPC-only listener was tonic's own server before the bounds: tonic takes requests
//! through `tower::Service::call` inside each stream's task, so a bound counted there sees
//! a request only once the runtime gets to it, and under a CPU overload the queue grows in
//! front of the count (BENCHMARKS.md, figure 10). tonic's server also honoured a client's
//! `grpc-timeout`; this loop does not (nor did the one-port listener).
//!
//! # Drain
//!
//! When `shutdown` is cancelled (SIGTERM): the loop stops accepting and closes its listener
//! at once, so new clients are refused by the system; every connection gets hyper's
//! graceful shutdown (HTTP/2 GOAWAY; HTTP/1.1 closes after the request in flight); requests
//! in flight finish and get their replies. The fronts end what is long-lived on the same
//! token: watch streams with `UNAVAILABLE` naming where to resume
//! ([`crate::grpc::stream`]), held CometD connects with advice to handshake again
//! ([`crate::gws::cometd`]), the gRPC health service turns `NOT_SERVING`. When `cut` is
//! cancelled ([`Drain`], `server.shutdown_grace_ms` later) the connections still open are
//! closed and the loop returns.

pub mod config;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;

use crate::auth;
use crate::gws;
use crate::shed::{ConnectionLimit, ConnectionPermit, Counted, Refused, RequestSlots, Scope};
use crate::tls::{GrpcTls, Handshaker};
pub use config::ServerConfig;

/// The largest HTTP/1.1 request head the HTTP listener accepts (hyper answers 431 beyond
/// it): 8 KiB, the default of Jetty, which GWS itself runs on. It also caps hyper's read
/// buffer: with hyper's default (~400 KiB) the buffer of a connection that posted a body
/// grows from 8 to 16 KiB, and every idle CometD long-poll keeps one (BENCHMARKS.md,
/// figure 4).
pub const MAX_HTTP1_HEAD: usize = 8 * 1024;

/// The two moments of a shutdown: `shutdown` starts the drain, `cut` ends it.
#[derive(Debug, Clone)]
pub struct Drain {
    /// Cancelled on SIGTERM: stop accepting, finish what is in flight.
    pub shutdown: CancellationToken,
    /// Cancelled `grace` after `shutdown`: close what is still open.
    pub cut: CancellationToken,
}

impl Drain {
    /// Returns a drain whose `cut` comes `grace` after `shutdown` is cancelled; the timer
    /// task ends with the returned guard's drop (when the servers have stopped).
    pub fn new(
        shutdown: CancellationToken,
        grace: Duration,
    ) -> (Self, tokio_util::sync::DropGuard) {
        let cut = CancellationToken::new();
        let timer = (shutdown.clone(), cut.clone());
        tokio::spawn(async move {
            let (shutdown, cut) = timer;
            tokio::select! {
                () = cut.cancelled() => {}
                () = async {
                    shutdown.cancelled().await;
                    tokio::time::sleep(grace).await;
                } => cut.cancel(),
            }
        });
        let guard = cut.clone().drop_guard();
        (Self { shutdown, cut }, guard)
    }
}

/// A listener to serve, and how.
#[derive(Debug)]
pub struct Listener {
    /// The bound socket.
    pub tcp: TcpListener,
    /// Its TLS.
    pub tls: ListenerTls,
    /// HTTP/2 only (the gRPC-only listener), or HTTP/1.1 and HTTP/2 told apart by their
    /// first bytes.
    pub http2_only: bool,
}

/// The TLS of a listener.
#[derive(Debug)]
pub enum ListenerTls {
    /// Plain text.
    Plain,
    /// The HTTP listener's (and the one-port listener's) handshake.
    Http(Handshaker),
    /// The gRPC listener's handshake: its requests carry the client certificate's service
    /// account ([`crate::tls::TlsPeer`]).
    Grpc(GrpcTls),
}

/// Which requests count against the bounds on requests in flight, and how a refusal reads:
/// the caller's, since it knows the fronts behind the router.
pub trait Admission: Send + Sync + 'static {
    /// Returns whether `request` counts (a health check or a long-poll need not).
    fn counts(&self, request: &Request<Incoming>) -> bool;
    /// Answers `request`, refused.
    fn refuse(&self, request: &Request<Incoming>, refused: Refused) -> Response<Body>;
}

/// Serves an axum router until `drain.shutdown`, then stops accepting, lets each connection
/// finish its in-flight request (`graceful_shutdown`), and returns when all are closed, or
/// at `drain.cut`, closing those still open.
///
/// Written out rather than `axum::serve` because that offers no way to configure hyper's
/// connections (the bounds of `config`, [`MAX_HTTP1_HEAD`]), to bound them, or to see a
/// request when it arrives; it is axum's own loop (hyper-util's auto builder: HTTP/1.1
/// with upgrades for WebSocket, and HTTP/2), with the router cloned per connection as one
/// reference count. With TLS, each connection's task first runs the handshake (bounded in
/// time; a failed one ends only that task).
pub async fn serve(
    listener: Listener,
    app: Router,
    admission: Arc<dyn Admission>,
    config: &ServerConfig,
    drain: Drain,
) -> anyhow::Result<()> {
    let Listener {
        tcp: listener,
        tls,
        http2_only,
    } = listener;
    let app = app.with_state(());
    let builder = Arc::new(http_builder(config, http2_only));
    let scheme = match tls {
        ListenerTls::Plain => gws::base_url::ListenerScheme::Http,
        _ => gws::base_url::ListenerScheme::Https,
    };
    let tls = Arc::new(tls);
    let limit = ConnectionLimit::new(config.max_connections);
    let listener_slots = RequestSlots::new(Scope::Listener, config.max_requests);
    let timers = ConnectionTimers::from_config(config);
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            () = drain.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a moment, as axum does.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Dropping the connection closes it.
        let Some(permit) = limit.try_open() else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let accepted = Accepted {
            client: auth::ClientAddr(peer.ip()),
            scheme,
            slots: (
                RequestSlots::new(Scope::Connection, config.max_requests_per_connection),
                listener_slots.clone(),
            ),
            admission: admission.clone(),
        };
        let (app, builder, drain, tls) = (app.clone(), builder.clone(), drain.clone(), tls.clone());
        connections.spawn(async move {
            let (io, tls_peer) = tokio::select! {
                () = drain.shutdown.cancelled() => return,
                // Boxed, so that a plain-text connection's task stays as small as before
                // (BENCHMARKS.md, figure 4 counts idle long-polls).
                io = Box::pin(establish(tls, tcp, permit, timers.header)) => match io {
                    Some(io) => io,
                    None => return,
                },
            };
            let service = accepted.service(app, tls_peer);
            // Pinned here and lent to `run_connection`: moved into it, the connection took
            // its place twice in that future (once as the argument, once pinned), 3,512
            // bytes where it is 1,616, in every connection's task (figure 4's idle
            // long-poll keeps one; bench/FINDINGS.md, session 9).
            let connection =
                std::pin::pin!(builder.serve_connection_with_upgrades(TokioIo::new(io), service));
            run_connection(connection, timers, drain).await;
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    if drain.cut.is_cancelled() {
        tracing::warn!("shutdown grace over: connections cut");
    }
    Ok(())
}

/// A connection's stream: plain, or (boxed, so that a plain connection's task stays small)
/// after the HTTP or the gRPC listener's TLS handshake. Concrete types, not a boxed trait
/// object: with one, rustc cannot show the connection's task to be `Send`.
type Io = Either<
    Counted<TcpStream>,
    Either<
        Box<Counted<tokio_rustls::server::TlsStream<TcpStream>>>,
        Box<Counted<crate::tls::GrpcTlsStream>>,
    >,
>;

/// Runs the listener's TLS handshake, if any, on an accepted connection; returns its stream
/// under the header timeout, and for the gRPC listener what the handshake established.
async fn establish(
    tls: Arc<ListenerTls>,
    tcp: TcpStream,
    permit: ConnectionPermit,
    header_timeout: Duration,
) -> Option<(Io, Option<Arc<crate::tls::TlsPeer>>)> {
    match &*tls {
        ListenerTls::Plain => Some((
            Either::Left(Counted::new(tcp, permit, header_timeout)),
            None,
        )),
        ListenerTls::Http(tls) => {
            let stream = tls.accept(tcp).await?;
            let io = Box::new(Counted::new(stream, permit, header_timeout));
            Some((Either::Right(Either::Left(io)), None))
        }
        ListenerTls::Grpc(tls) => {
            let stream = tls.establish(tcp).await?;
            let peer = Arc::new(stream.peer().clone());
            let io = Box::new(Counted::new(stream, permit, header_timeout));
            Some((Either::Right(Either::Right(io)), Some(peer)))
        }
    }
}

/// What a connection's requests carry and are bounded by.
struct Accepted {
    client: auth::ClientAddr,
    scheme: gws::base_url::ListenerScheme,
    /// The connection's request slots, then the listener's.
    slots: (Arc<RequestSlots>, Arc<RequestSlots>),
    admission: Arc<dyn Admission>,
}

impl Accepted {
    /// Returns the connection's service: the router behind the bounds on requests in
    /// flight.
    fn service(
        self,
        app: Router,
        tls_peer: Option<Arc<crate::tls::TlsPeer>>,
    ) -> Admitting<hyper_util::service::TowerToHyperService<Tagged>> {
        let tagged = Tagged {
            app,
            client: self.client,
            scheme: self.scheme,
            tls_peer,
        };
        Admitting {
            inner: hyper_util::service::TowerToHyperService::new(tagged),
            slots: self.slots,
            admission: self.admission,
        }
    }
}

/// The router, its requests carrying the client's address (for the sign-in throttle), the
/// listener's scheme (for the links of the GWS wing) and, on the gRPC listener with TLS,
/// what the handshake established. A named type rather than `map_request` with a closure,
/// so that the connection's task can be shown to be `Send`.
#[derive(Clone)]
struct Tagged {
    app: Router,
    client: auth::ClientAddr,
    scheme: gws::base_url::ListenerScheme,
    tls_peer: Option<Arc<crate::tls::TlsPeer>>,
}

impl tower::Service<Request<Incoming>> for Tagged {
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = <Router as tower::Service<Request<Body>>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower::Service::<Request<Body>>::poll_ready(&mut self.app, cx)
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let mut request = request.map(Body::new);
        let extensions = request.extensions_mut();
        extensions.insert(self.client);
        extensions.insert(self.scheme);
        if let Some(peer) = &self.tls_peer {
            extensions.insert(crate::tls::TlsPeer::clone(peer));
        }
        self.app.call(request)
    }
}

pin_project_lite::pin_project! {
    /// A request's response future, holding its slots until the response head is ready.
    struct Admitted<F> {
        #[pin]
        inner: F,
        admission: Option<crate::shed::Admission>,
        http1: bool,
    }
}

impl<F, E> Future for Admitted<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        let this = self.project();
        let mut output = std::task::ready!(this.inner.poll(cx));
        this.admission.take();
        if let Ok(response) = &mut output
            && *this.http1
        {
            close_after_too_large(response);
        }
        std::task::Poll::Ready(output)
    }
}

/// Marks an HTTP/1.1 `413` as the connection's last response. A body over a limit is
/// refused before it is read to its end, and hyper then closes the connection (the rest of
/// the body is still in it) without saying so: a client that sent its next request on
/// that connection meanwhile got a reset instead of a reply (a reqwest client in the tests
/// did, now and then). With `Connection: close` it opens a new one, as for nginx's 413.
fn close_after_too_large(response: &mut Response<Body>) {
    if response.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
}

/// A connection's service behind the bounds on requests in flight: a request takes its
/// slots when hyper hands it over ([`crate::shed`] says why then), or is refused at once.
/// Hand-written: the bound must be taken in `call`, which runs as the request arrives;
/// tower's `ConcurrencyLimit` and `LoadShed` take it in `poll_ready`, which hyper-util's
/// adapter runs inside the request's own task, once the runtime gets to it.
struct Admitting<S> {
    inner: S,
    /// The connection's request slots, then the listener's.
    slots: (Arc<RequestSlots>, Arc<RequestSlots>),
    admission: Arc<dyn Admission>,
}

impl<S> hyper::service::Service<Request<Incoming>> for Admitting<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = futures::future::Either<
        std::future::Ready<Result<Response<Body>, S::Error>>,
        Admitted<S::Future>,
    >;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        use futures::future::Either;
        let admission = if self.admission.counts(&request) {
            match crate::shed::admit(&self.slots.0, &self.slots.1) {
                Ok(admission) => Some(admission),
                Err(refused) => {
                    let refusal = self.admission.refuse(&request, refused);
                    return Either::Left(std::future::ready(Ok(refusal)));
                }
            }
        } else {
            None
        };
        let http1 = request.version() < axum::http::Version::HTTP_2;
        Either::Right(Admitted {
            inner: self.inner.call(request),
            admission,
            http1,
        })
    }
}

/// Builds hyper's connection settings from `config`.
fn http_builder(
    config: &ServerConfig,
    http2_only: bool,
) -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if http2_only {
        builder = builder.http2_only();
    }
    builder
        .http1()
        .max_buf_size(MAX_HTTP1_HEAD)
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout());
    builder
        .http2()
        .enable_connect_protocol()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.http2_max_streams)
        .keep_alive_interval(config.http2_keepalive_interval())
        .keep_alive_timeout(config.http2_keepalive_timeout());
    if http2_only {
        // The gRPC listener: gRPC has no use for a `Date` header (grpc-go sends none), and
        // HPACK-encoding one is part of every reply, refusals included (bench/FINDINGS.md,
        // "Session 8").
        builder.http2().auto_date_header(false);
    }
    builder
}

/// The per-connection times of [`serve`].
#[derive(Debug, Clone, Copy)]
struct ConnectionTimers {
    header: Duration,
    age: Option<Duration>,
    age_grace: Duration,
}

impl ConnectionTimers {
    fn from_config(config: &ServerConfig) -> Self {
        Self {
            header: config.header_timeout(),
            age: config.max_connection_age(),
            age_grace: config.max_connection_age_grace(),
        }
    }
}

/// Runs one connection until it ends: at the maximum age or the drain's start it gets a
/// graceful shutdown (HTTP/2 GOAWAY), then has until the age's grace or the drain's cut.
async fn run_connection<C>(mut connection: Pin<&mut C>, timers: ConnectionTimers, drain: Drain)
where
    C: Future + GracefulShutdown,
{
    // Boxed, so that a connection without an age (the default) carries 8 bytes, not a
    // timer, for its whole life.
    let aged = timers.age.map(|age| Box::pin(tokio::time::sleep(age)));
    // Owned futures: borrowed ones make the connection's task fail the `Send` check
    // (rustc cannot prove it for every lifetime of the borrow).
    let by_age = tokio::select! {
        _ = connection.as_mut() => return,
        () = drain.shutdown.cancelled_owned() => false,
        () = until(aged) => true,
    };
    connection.as_mut().shutdown_gracefully();
    let age_grace = by_age.then(|| Box::pin(tokio::time::sleep(timers.age_grace)));
    tokio::select! {
        _ = connection.as_mut() => {}
        () = drain.cut.cancelled_owned() => {}
        () = until(age_grace) => {}
    }
}

/// Waits for `deadline`, forever without one.
async fn until(deadline: Option<Pin<Box<Sleep>>>) {
    match deadline {
        Some(deadline) => deadline.await,
        None => std::future::pending().await,
    }
}

/// A connection future that can be asked to finish gracefully (hyper-util's upgradeable
/// connection); a trait so that [`run_connection`] need not name its many type parameters.
trait GracefulShutdown {
    fn shutdown_gracefully(self: Pin<&mut Self>);
}

impl<I, S, E> GracefulShutdown
    for hyper_util::server::conn::auto::UpgradeableConnection<'_, I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: hyper::body::Body + 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    E: hyper_util::server::conn::auto::HttpServerConnExec<S::Future, S::ResBody>,
{
    fn shutdown_gracefully(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}
