//! The API listeners' serve loops and their bounds ([`config`], the `[server]` table), and
//! the drain on shutdown.
//!
//! Two loops: [`serve`], our own hyper loop for the HTTP listener (and the one-port
//! listener: HTTP/1.1, WebSocket and HTTP/2), and [`serve_grpc`], tonic's server for a
//! gRPC-only listener. Both apply the same bounds:
//!
//! - **Connections** (`server.max_connections`): beyond the bound a new connection is
//!   accepted and closed at once, before any byte is read. The system completes the TCP
//!   handshake before the gateway sees a connection, so leaving it in the backlog would let
//!   a client send a request nobody reads; closed at once, it reads end-of-file and can try
//!   another instance.
//! - **Requests in flight** (`server.max_requests` per listener,
//!   `server.max_requests_per_connection`): see [`crate::shed`]. The serve loop puts the
//!   listener's slots (and, in [`serve`], the connection's) in each request's extensions;
//!   on the gRPC-only listener tonic bounds each connection (`concurrency_limit_per_connection`
//!   with `load_shed`: `RESOURCE_EXHAUSTED` too).
//! - **HTTP/2**: `SETTINGS_MAX_CONCURRENT_STREAMS`, keep-alive pings with a timeout, and a
//!   maximum connection age after which the connection gets a GOAWAY.
//! - **Slow clients**: a connection must send its first 24 bytes (the HTTP/2 preface's
//!   length; every HTTP/1.1 request head is longer) within `server.header_timeout_ms`,
//!   and on HTTP/1.1 each request head within the same time (hyper's header read timeout,
//!   which also runs while a keep-alive connection waits for its next request).
//!
//! # Drain
//!
//! When `shutdown` is cancelled (SIGTERM): both loops stop accepting and close their
//! listeners at once, so new clients are refused by the system; every connection gets
//! hyper's graceful shutdown (HTTP/2 GOAWAY; HTTP/1.1 closes after the request in flight);
//! requests in flight finish and get their replies. The fronts end what is long-lived on the
//! same token: watch streams with `UNAVAILABLE` naming where to resume
//! ([`crate::grpc::stream`]), held CometD connects with advice to handshake again
//! ([`crate::gws::cometd`]), the gRPC health service turns `NOT_SERVING`. When
//! `cut` is cancelled ([`Drain`], `server.shutdown_grace_ms` later) the connections still
//! open are closed and the loops return.

pub mod config;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use tokio::net::TcpListener;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use crate::admin;
use crate::auth;
use crate::gws;
use crate::shed::{ConnectionLimit, ConnectionSlots, Counted, ListenerSlots, RequestSlots, Scope};
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

/// Serves a gRPC-only listener with tonic's own server: HTTP/2 only (no protocol
/// sniffing), the bounds of `config`, and unknown methods answered with gRPC
/// `UNIMPLEMENTED`. Per request it costs less than the shared HTTP stack, which the one-port
/// mode needs for HTTP/1.1 and WebSocket (BENCHMARKS.md, figure 1). With `tls`, tonic takes
/// connections whose handshake is done ([`GrpcTls::incoming`]); their requests carry the
/// client certificate's service account ([`crate::tls::TlsPeer`]).
///
/// The maximum connection age is given to tonic without its grace: tonic 0.14.9, given a
/// grace, sends no GOAWAY at the age and closes the connection at age + grace instead. So on
/// this listener an aged connection gets its GOAWAY and ends with its last stream (or at
/// the drain's cut).
pub async fn serve_grpc(
    listener: TcpListener,
    routes: tonic::service::Routes,
    tls: Option<GrpcTls>,
    layers: admin::layer::RequestLayers,
    config: &ServerConfig,
    drain: Drain,
) -> anyhow::Result<()> {
    let limit = ConnectionLimit::new(config.max_connections);
    let slots = ListenerSlots(RequestSlots::new(Scope::Listener, config.max_requests));
    let mut server = tonic::transport::Server::builder()
        .concurrency_limit_per_connection(config.max_requests_per_connection)
        .load_shed(true)
        .max_concurrent_streams(config.http2_max_streams)
        .http2_keepalive_interval(config.http2_keepalive_interval())
        .http2_keepalive_timeout(Some(config.http2_keepalive_timeout()))
        .tcp_nodelay(true);
    if let Some(age) = config.max_connection_age() {
        server = server.max_connection_age(age);
    }
    let server = server
        .layer(axum::Extension(slots))
        .layer(layers)
        .add_routes(routes);
    let signal = drain.shutdown.clone().cancelled_owned();
    let header_timeout = config.header_timeout();
    let served = async {
        match tls {
            None => {
                let incoming = crate::shed::incoming(listener, limit.clone(), header_timeout);
                server.serve_with_incoming_shutdown(incoming, signal).await
            }
            Some(tls) => {
                let incoming =
                    tls.incoming(listener, limit.clone(), header_timeout, drain.shutdown);
                server.serve_with_incoming_shutdown(incoming, signal).await
            }
        }
    };
    tokio::select! {
        served = served => served.context("gRPC server failed"),
        () = drain.cut.cancelled() => {
            // tonic's connection tasks are detached: they end with the runtime (the
            // binary exits next).
            tracing::warn!(open = limit.open(), "shutdown grace over: gRPC connections cut");
            Ok(())
        }
    }
}

/// Serves an axum router until `drain.shutdown`, then stops accepting, lets each connection
/// finish its in-flight request (`graceful_shutdown`), and returns when all are closed, or
/// at `drain.cut`, closing those still open.
///
/// Written out rather than `axum::serve` because that offers no way to configure hyper's
/// connections (the bounds of `config`, [`MAX_HTTP1_HEAD`]) or to bound them; it is axum's
/// own loop (hyper-util's auto builder: HTTP/1.1 with upgrades for WebSocket, and HTTP/2),
/// with the router cloned per connection as one reference count. With `tls`, each
/// connection's task first runs the handshake (bounded in time; a failed one ends only that
/// task).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Handshaker>,
    config: &ServerConfig,
    drain: Drain,
) -> anyhow::Result<()> {
    use tower::ServiceExt as _;

    let builder = Arc::new(http_builder(config));
    let scheme = match tls {
        Some(_) => gws::base_url::ListenerScheme::Https,
        None => gws::base_url::ListenerScheme::Http,
    };
    let limit = ConnectionLimit::new(config.max_connections);
    let slots = ListenerSlots(RequestSlots::new(Scope::Listener, config.max_requests));
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
        let client = auth::ClientAddr(peer.ip());
        let listener_slots = slots.clone();
        let connection_slots = ConnectionSlots(RequestSlots::new(
            Scope::Connection,
            config.max_requests_per_connection,
        ));
        let service = hyper_util::service::TowerToHyperService::new(app.clone().map_request(
            move |request: axum::http::Request<hyper::body::Incoming>| {
                let mut request = request.map(axum::body::Body::new);
                // The client's address, for the sign-in throttle; the listener's scheme,
                // for the links of the GWS wing; the bounds on requests in flight.
                let extensions = request.extensions_mut();
                extensions.insert(client);
                extensions.insert(scheme);
                extensions.insert(listener_slots.clone());
                extensions.insert(connection_slots.clone());
                request
            },
        ));
        let builder = builder.clone();
        let drain = drain.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let io = match tls {
                None => Either::Left(Counted::new(tcp, permit, timers.header)),
                Some(tls) => tokio::select! {
                    () = drain.shutdown.cancelled() => return,
                    // The handshake and the stream are boxed so that a plain-text
                    // connection's task stays as small as before (1.7 KiB; BENCHMARKS.md,
                    // figure 4 counts idle long-polls): inline they made it 3.2 KiB.
                    established = Box::pin(tls.accept(tcp)) => match established {
                        Some(stream) => Either::Right(Box::new(Counted::new(stream, permit, timers.header))),
                        None => return,
                    },
                },
            };
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
            run_connection(connection, timers, drain).await;
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    if drain.cut.is_cancelled() {
        tracing::warn!("shutdown grace over: HTTP connections cut");
    }
    Ok(())
}

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio_util::either::Either;

/// Builds hyper's connection settings from `config`.
fn http_builder(config: &ServerConfig) -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
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
async fn run_connection<C>(connection: C, timers: ConnectionTimers, drain: Drain)
where
    C: Future + GracefulShutdown,
{
    tokio::pin!(connection);
    // Boxed, so that a connection without an age (the default) carries 8 bytes, not a
    // timer, for its whole life.
    let aged = timers.age.map(|age| Box::pin(tokio::time::sleep(age)));
    let by_age = tokio::select! {
        _ = connection.as_mut() => return,
        () = drain.shutdown.cancelled() => false,
        () = until(aged) => true,
    };
    connection.as_mut().shutdown_gracefully();
    let age_grace = by_age.then(|| Box::pin(tokio::time::sleep(timers.age_grace)));
    tokio::select! {
        _ = connection.as_mut() => {}
        () = drain.cut.cancelled() => {}
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
