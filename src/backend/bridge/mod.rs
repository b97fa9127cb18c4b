//! Bridge mode: the gateway in front of a GWS 8.5 server that owns the calls.
//!
//! [`GwsBridge`] implements the core's [`Upstream`] port:
//!
//! - **Users.** An agent's Basic credentials are checked by the upstream: `GET
//!   /api/v2/me?subresources=*` with them ([`Upstream::sign_in`]). A success teaches the
//!   directory the user (name, DN, device, roles, the contact center's features) and opens
//!   the user's upstream session: the `JSESSIONID` the upstream set, shared by all of that
//!   user's clients on every front. The gateway stores no password on disk; it keeps the
//!   credentials of an open session in memory only, to sign in again by itself after the
//!   upstream restarted (the old `JSESSIONID` is then void). At most
//!   `upstream.max_sessions` sessions are open; a session unused for
//!   `upstream.idle_session_s` is closed.
//! - **Operations** go to the upstream's matching route with the user's session cookie,
//!   as the JSON bodies of [`convert`]. A refusal keeps the upstream's `statusCode` and
//!   message ([`CoreError::Upstream`]); its class (and so the gRPC code and HTTP status)
//!   follows the upstream's HTTP status, as embedded mode pairs them.
//! - **Notifications.** Each session runs one CometD client ([`crate::upstream::bayeux`],
//!   long-polling, or one WebSocket with `upstream.transport = "websocket"`) subscribed to
//!   `/v2/me/calls` and `/v2/me/devices`; each
//!   `CallStateChangeMessage` and `DeviceStateChangeMessage` is mirrored into the core,
//!   which numbers it in its own event log. Each Voice `ErrorMessage` (an operation the
//!   upstream accepted that failed afterwards) becomes the user's
//!   [`ErrorEvent`](crate::core::ErrorEvent), its `errorCode` and `errorMessage` unchanged
//!   ([`convert::error_message`]), so it reaches that user on every front.
//! - **Faults.** Whenever the client had to hand-shake again (messages may have been lost),
//!   or had to sign in again (upstream restart), the user's calls and device are re-read and
//!   the differences reported ([`CallControl::mirror_resync`]: a call that vanished is
//!   reported `Released`). A failed connection marks the upstream unavailable: operations
//!   then fail at once with UNAVAILABLE / statusCode 4 / HTTP 503 and gRPC health says
//!   NOT_SERVING, until a probe (`GET /api/v2/diagnostics/version` every
//!   `upstream.probe_interval_ms`) or any upstream reply succeeds again.
//! - **Cluster mode** ([`GwsBridge::join_cluster`], design in [`crate::cluster`]): a
//!   session runs its CometD client only while this instance holds the user's lease
//!   (`ownership.rs`), and only the holder publishes what a `/me` re-read lists; every other
//!   part (sign-in, operations through the instance's own `JSESSIONID`) is unchanged. The
//!   upstream counts as unavailable (health, fail-fast) while the engine is.
//!
//! Layout: this module holds the bridge, its sessions, its availability and the port;
//! `config` the `[upstream]` table; `sign_in` the sign-in and re-read of a user;
//! `requests` the REST calls to the upstream; `notifications` a session's CometD client;
//! `ownership` the lease loop of cluster mode.

mod config;
pub mod convert;
mod notifications;
mod ownership;
mod requests;
mod sign_in;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::cluster::node::ClusterNode;
use crate::core::port::{PortFuture, SharedEvents, Upstream};
use crate::core::{
    CallControl, CallId, CallOperation, CoreError, CoreResult, DeviceRequest, DialRequest, User,
};
use crate::upstream::bayeux::BayeuxOptions;

pub use config::{
    DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_CONTACT_CENTER, DEFAULT_IDLE_SESSION_S,
    DEFAULT_MAX_SESSIONS, DEFAULT_PROBE_INTERVAL_MS, DEFAULT_REPLY_WAIT_MS,
    DEFAULT_REQUEST_TIMEOUT_MS, UpstreamConfig,
};

/// The upstream's session cookie.
const SESSION_COOKIE: &str = "JSESSIONID";

/// One user's upstream session.
#[derive(Debug)]
struct Session {
    user: Arc<User>,
    /// The upstream's `JSESSIONID`; replaced when the bridge signs in again.
    cookie: Mutex<String>,
    /// The credentials, in memory only, to sign in again after an upstream restart.
    password: String,
    last_used: Mutex<Instant>,
    /// Stops the session's notification task.
    stop: CancellationToken,
    /// Set once the session's CometD client has subscribed (see [`Session::subscribed`]).
    subscribed: tokio::sync::watch::Sender<bool>,
}

impl Session {
    fn cookie(&self) -> String {
        lock(&self.cookie).clone()
    }

    fn touch(&self) {
        *lock(&self.last_used) = Instant::now();
    }

    /// Waits, at most `wait`, until the session's notifications flow: an operation sent
    /// before that would change the upstream without the bridge hearing of it.
    async fn subscribed(&self, wait: Duration) {
        let mut ready = self.subscribed.subscribe();
        let _ = tokio::time::timeout(wait, ready.wait_for(|up| *up)).await;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The bridge to an upstream GWS (see the module docs).
#[derive(Debug)]
pub struct GwsBridge {
    base: String,
    /// `base` parsed, for the operations: each request's URL is this one with its path
    /// set, which reads only the path, where reqwest would parse the whole string.
    base_url: reqwest::Url,
    http: reqwest::Client,
    notify_http: reqwest::Client,
    /// The options of every session's CometD client.
    notify_options: BayeuxOptions,
    config: UpstreamConfig,
    core: OnceLock<Weak<CallControl>>,
    /// Cluster mode: this instance's membership (leases, the shared log).
    cluster: OnceLock<Arc<ClusterNode>>,
    sessions: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    available: AtomicBool,
    shutdown: CancellationToken,
}

impl GwsBridge {
    /// Builds the bridge to `config.url`; its tasks end on `shutdown`.
    pub fn new(config: &UpstreamConfig, shutdown: CancellationToken) -> anyhow::Result<Arc<Self>> {
        use anyhow::Context as _;
        let url = config
            .url
            .as_deref()
            .context("bridge mode needs upstream.url")?;
        let options = BayeuxOptions {
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
            connection_type: config.transport,
            ..Default::default()
        };
        crate::upstream::bayeux::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(60));
        // The CA file's certificates are trusted by both clients: the operations' and the
        // notifications' (CometD long-polls and the WebSocket upgrade).
        let mut roots = Vec::new();
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read upstream.ca_file {}", path.display()))?;
            roots = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("upstream.ca_file {} is not PEM", path.display()))?;
        }
        for root in &roots {
            builder = builder.add_root_certificate(root.clone());
        }
        let http = builder
            .build()
            .context("cannot build the upstream HTTP client")?;
        let notify_http = crate::upstream::bayeux::http_client_trusting(&options, &roots)
            .context("cannot build the upstream CometD client")?;
        Ok(Arc::new(Self {
            base: url.trim_end_matches('/').to_owned(),
            base_url: reqwest::Url::parse(url)
                .with_context(|| format!("upstream.url {url:?} is not a URL"))?,
            http,
            notify_http,
            notify_options: options,
            config: config.clone(),
            core: OnceLock::new(),
            cluster: OnceLock::new(),
            sessions: Mutex::new(HashMap::new()),
            available: AtomicBool::new(true),
            shutdown,
        }))
    }

    /// Connects the bridge to the core it reports to, and starts the probe and the idle
    /// sweeper. Call once, right after building the core.
    pub fn attach(self: &Arc<Self>, core: &Arc<CallControl>) {
        let _ = self.core.set(Arc::downgrade(core));
        tokio::spawn(self.clone().run_probe());
        tokio::spawn(self.clone().run_idle_sweeper());
    }

    /// Makes the bridge a cluster member (before any sign-in): sessions then run their
    /// CometD client only while this instance holds the user's lease.
    pub fn join_cluster(&self, node: Arc<ClusterNode>) {
        let _ = self.cluster.set(node);
    }

    fn core(&self) -> CoreResult<Arc<CallControl>> {
        self.core
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| CoreError::Unavailable("the gateway is shutting down".into()))
    }

    fn set_available(&self, up: bool) {
        if self.available.swap(up, Ordering::AcqRel) != up {
            if up {
                tracing::info!(upstream = %self.base, "upstream reachable again");
            } else {
                tracing::warn!(upstream = %self.base, "upstream unreachable: operations fail fast until it answers");
            }
        }
    }

    fn unreachable(&self, error: &reqwest::Error) -> CoreError {
        if error.is_connect() || error.is_timeout() || error.is_request() {
            self.set_available(false);
        }
        CoreError::Unavailable(format!(
            "voice service is not available at this time: upstream {}: {error}",
            self.base
        ))
    }

    /// Probes the upstream while it is marked unavailable.
    async fn run_probe(self: Arc<Self>) {
        let period = Duration::from_millis(self.config.probe_interval_ms);
        let url = format!("{}/api/v2/diagnostics/version", self.base);
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = tokio::time::sleep(period) => {}
            }
            if self.available.load(Ordering::Acquire) {
                continue;
            }
            // Any HTTP answer (even 401) shows the upstream is back.
            if self.http.get(&url).send().await.is_ok() {
                self.set_available(true);
            }
        }
    }

    /// Closes sessions unused for `idle_session_s`.
    async fn run_idle_sweeper(self: Arc<Self>) {
        let idle = Duration::from_secs(self.config.idle_session_s.max(1));
        let period = (idle / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = tokio::time::sleep(period) => {}
            }
            let now = Instant::now();
            lock(&self.sessions).retain(|name, session| {
                let keep = now.duration_since(*lock(&session.last_used)) < idle;
                if !keep {
                    tracing::info!(user = %name, "upstream session idle: closed");
                    session.stop.cancel();
                }
                keep
            });
        }
    }

    fn session(&self, user: &str) -> CoreResult<Arc<Session>> {
        let session = lock(&self.sessions).get(user).cloned().ok_or_else(|| {
            CoreError::Unauthenticated(format!(
                "no upstream session for user {user}: the user must sign in with Basic credentials first"
            ))
        })?;
        session.touch();
        Ok(session)
    }
}

/// The bridge as the core's port: operations from the fronts, through one user's session.
#[derive(Debug, Clone)]
pub struct GwsPort(pub Arc<GwsBridge>);

impl Upstream for GwsPort {
    fn name(&self) -> &'static str {
        "an upstream GWS"
    }

    fn sign_in(&self, user: String, password: String) -> PortFuture<'_, CoreResult<Arc<User>>> {
        Box::pin(async move { self.0.sign_in_user(&user, &password).await })
    }

    fn dial(&self, user: Arc<User>, request: DialRequest) -> PortFuture<'_, CoreResult<()>> {
        Box::pin(async move { self.0.post(&user, convert::dial(&user, &request)).await })
    }

    fn execute(
        &self,
        user: Arc<User>,
        call: CallId,
        operation: CallOperation,
    ) -> PortFuture<'_, CoreResult<()>> {
        Box::pin(async move {
            self.0
                .post(&user, convert::call_operation(&call, &operation))
                .await
        })
    }

    fn device_operation(
        &self,
        user: Arc<User>,
        request: DeviceRequest,
    ) -> PortFuture<'_, CoreResult<()>> {
        Box::pin(async move {
            self.0
                .post(&user, convert::device_operation(&user, &request))
                .await
        })
    }

    fn is_available(&self) -> bool {
        self.0.available.load(Ordering::Acquire)
            && self
                .0
                .cluster
                .get()
                .is_none_or(|node| SharedEvents::is_available(&**node))
    }
}
