//! The operator's side of the gateway: the admin listener (`--admin-listen`, default
//! [`DEFAULT_ADMIN_LISTEN`]) with `/metrics` (Prometheus text), `/healthz` (alive) and
//! `/readyz` (ready to take traffic); the metric names ([`names`]); the recorder
//! ([`recorder`]); the request layers both fronts run ([`layer`]); and the text log's field
//! formatter ([`log_fields`]).
//!
//! The admin listener is separate from the API listeners so that a load balancer's probes
//! and Prometheus's scrapes need no credentials and never compete with clients, and so that
//! it can stay on loopback while the API listens on every interface.

pub mod layer;
pub mod log_fields;
pub mod names;
pub mod recorder;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::core::CallControl;

/// The default address of the admin listener (Prometheus's conventional exporter port
/// range; loopback, as it needs no credentials).
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9464";

/// Whether the gateway is ready to take traffic: its listeners serve, it is not draining
/// and, in bridge mode, the upstream answers.
#[derive(Debug, Default)]
pub struct Readiness {
    draining: AtomicBool,
    core: OnceLock<Arc<CallControl>>,
}

/// Why the gateway is not ready, as `/readyz` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// The listeners are not serving yet.
    Starting,
    /// Shutting down: in-flight requests finish, new ones should go elsewhere.
    Draining,
    /// Bridge mode: the upstream GWS does not answer.
    UpstreamDown,
}

impl NotReady {
    /// Returns the reason as `/readyz` reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Draining => "draining",
            Self::UpstreamDown => "upstream unavailable",
        }
    }
}

impl Readiness {
    /// Returns a readiness that is [`NotReady::Starting`] until [`Readiness::serving`].
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Marks the listeners serving the core `core`.
    pub fn serving(&self, core: Arc<CallControl>) {
        let _ = self.core.set(core);
    }

    /// Marks the gateway draining (SIGTERM): not ready from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Returns whether the gateway is ready, or why not.
    pub fn check(&self) -> Result<(), NotReady> {
        if self.draining.load(Ordering::Relaxed) {
            return Err(NotReady::Draining);
        }
        let core = self.core.get().ok_or(NotReady::Starting)?;
        // The same signal as the gRPC health service's in bridge mode.
        match core.upstream() {
            Some(upstream) if !upstream.is_available() => Err(NotReady::UpstreamDown),
            _ => Ok(()),
        }
    }

    /// Sets the gauges read at scrape time rather than on the request path: the events
    /// committed (the core's last sequence number), the upstream's state, readiness.
    fn update_gauges(&self) {
        let ready = self.check().is_ok();
        metrics::gauge!(names::READY).set(f64::from(u8::from(ready)));
        if let Some(core) = self.core.get() {
            metrics::counter!(names::EVENTS_COMMITTED).absolute(core.last_sequence());
            if let Some(upstream) = core.upstream() {
                let up = upstream.is_available();
                metrics::gauge!(names::UPSTREAM_UP).set(f64::from(u8::from(up)));
            }
        }
    }
}

/// The admin routes: `/metrics`, `/healthz`, `/readyz`. `/metrics` answers 404 when no
/// recorder is installed ([`recorder::install`]).
pub fn router(readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .route("/readyz", axum::routing::get(readyz))
        .route("/metrics", axum::routing::get(render_metrics))
        .with_state(readiness)
}

async fn healthz() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "alive\n",
    )
}

async fn readyz(
    axum::extract::State(readiness): axum::extract::State<Arc<Readiness>>,
) -> impl IntoResponse {
    let text = |s: &str| format!("{s}\n");
    let (status, body) = match readiness.check() {
        Ok(()) => (StatusCode::OK, text("ready")),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            text(&format!("not ready: {}", why.as_str())),
        ),
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
}

async fn render_metrics(
    axum::extract::State(readiness): axum::extract::State<Arc<Readiness>>,
) -> axum::response::Response {
    let Some(handle) = recorder::handle() else {
        return (StatusCode::NOT_FOUND, "metrics are off\n").into_response();
    };
    readiness.update_gauges();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

/// Serves the admin routes on `listener` until `shutdown`. The binary stops it only after
/// the API listeners have drained, so `/readyz` says "draining" throughout.
pub async fn serve(
    listener: TcpListener,
    readiness: Arc<Readiness>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    axum::serve(listener, router(readiness))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}
