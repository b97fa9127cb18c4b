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

pub mod convert;
mod notifications;
mod ownership;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::cluster::node::ClusterNode;
use crate::core::port::{PortFuture, SharedEvents, Upstream};
use crate::core::{
    CallControl, CallId, CallOperation, CoreError, CoreResult, DeviceRequest, DialRequest,
    ErrorKind, User, invalid_password,
};
use crate::upstream::bayeux::{BayeuxOptions, ConnectionType};
use convert::UpstreamRequest;

/// Default wait for the upstream's notification of an operation, in milliseconds.
pub const DEFAULT_REPLY_WAIT_MS: u64 = 2_000;
/// Default connect timeout toward the upstream, in milliseconds.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2_000;
/// Default timeout of one upstream request (not long-polls), in milliseconds.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 5_000;
/// Default period of the availability probe while the upstream is down, in milliseconds.
pub const DEFAULT_PROBE_INTERVAL_MS: u64 = 500;
/// Default number of upstream sessions open at once.
pub const DEFAULT_MAX_SESSIONS: usize = 10_000;
/// Default idle time after which an upstream session is closed, in seconds.
pub const DEFAULT_IDLE_SESSION_S: u64 = 8 * 3600;
/// The contact center upstream users belong to when the upstream names none.
pub const DEFAULT_CONTACT_CENTER: &str = "demo";
/// The upstream's session cookie.
const SESSION_COOKIE: &str = "JSESSIONID";

/// The `[upstream]` table of the configuration: bridge mode when `url` is set.
///
/// | key | meaning | default |
/// |---|---|---|
/// | `url` | the upstream GWS, `http://` or `https://` (`--upstream`) | none: embedded switch |
/// | `ca_file` | PEM file of extra CA certificates trusted for `https://` (besides the system's) | none |
/// | `contact_center` | contact center of upstream users whose `/me` names none | [`DEFAULT_CONTACT_CENTER`] |
/// | `reply_wait_ms` | wait for the notification of an operation before a gRPC reply | [`DEFAULT_REPLY_WAIT_MS`] |
/// | `connect_timeout_ms` | TCP/TLS connect timeout | [`DEFAULT_CONNECT_TIMEOUT_MS`] |
/// | `request_timeout_ms` | timeout of one request (not long-polls) | [`DEFAULT_REQUEST_TIMEOUT_MS`] |
/// | `probe_interval_ms` | availability probe period while the upstream is down | [`DEFAULT_PROBE_INTERVAL_MS`] |
/// | `max_sessions` | upstream sessions (users) open at once | [`DEFAULT_MAX_SESSIONS`] |
/// | `idle_session_s` | an upstream session unused this long is closed | [`DEFAULT_IDLE_SESSION_S`] |
/// | `transport` | how each session's CometD connects reach the upstream: `"long-polling"`, or `"websocket"` (one socket per session, one frame per notification; long-polling when the upstream does not offer it) | `"long-polling"`, the only transport GWS 8.5 supports |
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// The upstream GWS base URL.
    pub url: Option<String>,
    /// Extra CA certificates (PEM).
    pub ca_file: Option<std::path::PathBuf>,
    /// Contact center of upstream users.
    pub contact_center: String,
    /// Wait for an operation's notification, in milliseconds.
    pub reply_wait_ms: u64,
    /// Connect timeout, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Request timeout, in milliseconds.
    pub request_timeout_ms: u64,
    /// Probe period, in milliseconds.
    pub probe_interval_ms: u64,
    /// Sessions open at once.
    pub max_sessions: usize,
    /// Idle session lifetime, in seconds.
    pub idle_session_s: u64,
    /// The upstream CometD transport.
    pub transport: ConnectionType,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            url: None,
            ca_file: None,
            contact_center: DEFAULT_CONTACT_CENTER.into(),
            reply_wait_ms: DEFAULT_REPLY_WAIT_MS,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            probe_interval_ms: DEFAULT_PROBE_INTERVAL_MS,
            max_sessions: DEFAULT_MAX_SESSIONS,
            idle_session_s: DEFAULT_IDLE_SESSION_S,
            transport: ConnectionType::LongPolling,
        }
    }
}

impl UpstreamConfig {
    /// Checks the URL and the bounds; names the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.url {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| format!("upstream.url {url:?} is not a URL: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") || !parsed.has_host() {
                return Err(format!(
                    "upstream.url {url:?} must be http://host[:port] or https://host[:port]"
                ));
            }
        }
        for (key, value) in [
            ("upstream.connect_timeout_ms", self.connect_timeout_ms),
            ("upstream.request_timeout_ms", self.request_timeout_ms),
            ("upstream.probe_interval_ms", self.probe_interval_ms),
            ("upstream.max_sessions", self.max_sessions as u64),
        ] {
            if value == 0 {
                return Err(format!("{key} must be above 0"));
            }
        }
        Ok(())
    }

    /// Returns the wait for an operation's notification.
    pub fn reply_wait(&self) -> Duration {
        Duration::from_millis(self.reply_wait_ms)
    }
}

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

    /// `GET /api/v2/me?subresources=*`, with Basic credentials or a session cookie.
    async fn read_me(
        &self,
        basic: Option<(&str, &str)>,
        cookie: Option<&str>,
    ) -> CoreResult<(Value, Option<String>)> {
        let mut request = self
            .http
            .get(format!("{}/api/v2/me?subresources=*", self.base));
        if let Some((user, password)) = basic {
            request = request.basic_auth(user, Some(password));
        }
        if let Some(cookie) = cookie {
            request = request.header(
                reqwest::header::COOKIE,
                format!("{SESSION_COOKIE}={cookie}"),
            );
        }
        let reply = send_timed(request)
            .await
            .map_err(|e| self.unreachable(&e))?;
        self.set_available(true);
        let set_cookie = reply
            .cookies()
            .find(|c| c.name() == SESSION_COOKIE)
            .map(|c| c.value().to_owned());
        let status = reply.status();
        let body: Value = reply.json().await.unwrap_or(Value::Null);
        if status == StatusCode::UNAUTHORIZED {
            return Err(invalid_password());
        }
        check(status, &body)?;
        Ok((body, set_cookie))
    }

    /// Signs a user in: checks the credentials upstream, learns the user, opens or renews
    /// the session, and mirrors the user's calls and device.
    async fn sign_in_user(self: &Arc<Self>, name: &str, password: &str) -> CoreResult<Arc<User>> {
        let core = self.core()?;
        let existing = lock(&self.sessions).get(name).cloned();
        if existing.is_none() && lock(&self.sessions).len() >= self.config.max_sessions {
            return Err(CoreError::Busy {
                what: "the upstream session table",
                retry_after: Duration::from_secs(5),
            });
        }
        let (body, cookie) = self.read_me(Some((name, password)), None).await?;
        let me = convert::me(&body, &self.config.contact_center).ok_or_else(|| {
            CoreError::PermissionDenied(format!(
                "upstream user {name} has no device with a phone number: it cannot take calls here"
            ))
        })?;
        let cookie = cookie.ok_or_else(|| {
            CoreError::Unavailable("the upstream set no JSESSIONID cookie".into())
        })?;
        core.directory().learn(me.user.clone(), me.center.clone());
        let user = core
            .directory()
            .user(name)
            .ok_or_else(|| CoreError::Internal(format!("user {name} was not learnt")))?;
        let session = match existing {
            Some(session) if session.password == password => {
                *lock(&session.cookie) = cookie;
                session.touch();
                session
            }
            other => {
                if let Some(old) = other {
                    old.stop.cancel();
                }
                let session = Arc::new(Session {
                    user: user.clone(),
                    cookie: Mutex::new(cookie),
                    password: password.to_owned(),
                    last_used: Mutex::new(Instant::now()),
                    stop: self.shutdown.child_token(),
                    subscribed: tokio::sync::watch::Sender::new(false),
                });
                lock(&self.sessions).insert(user.name.clone(), session.clone());
                self.start_session(&session);
                session
            }
        };
        self.mirror_me(&core, &session, &me).await;
        session.subscribed(self.config.reply_wait()).await;
        Ok(user)
    }

    /// Starts what runs for a new session: its CometD client, or in cluster mode the
    /// loop that holds (or waits for) the user's lease and runs the client while it holds
    /// it.
    fn start_session(self: &Arc<Self>, session: &Arc<Session>) {
        match self.cluster.get() {
            None => {
                let stop = session.stop.clone();
                tokio::spawn(notifications::run(self.clone(), session.clone(), stop));
            }
            Some(node) => {
                tokio::spawn(ownership::run(self.clone(), node.clone(), session.clone()));
            }
        }
    }

    /// Mirrors what a `/me` reply lists for the session's user. In cluster mode only the
    /// user's lease holder publishes it (another instance's attempt is refused and
    /// dropped: the holder reads the same upstream).
    async fn mirror_me(&self, core: &CallControl, session: &Session, me: &convert::Me) {
        let user = session.user.to_ref();
        if self
            .cluster
            .get()
            .is_some_and(|node| !node.owns(&user.name))
        {
            return;
        }
        let calls = me
            .calls
            .iter()
            .filter_map(|c| convert::call(c, &user))
            .collect();
        let device = me.device.as_ref().and_then(|d| convert::device(d, &user));
        if let Err(error) = core.mirror_resync(&user.name, calls, device).await {
            tracing::warn!(user = %user.name, %error, "upstream state not mirrored");
        }
    }

    /// Re-reads a user's calls and device after notifications may have been lost.
    async fn resync(self: &Arc<Self>, session: &Arc<Session>) -> CoreResult<()> {
        let core = self.core()?;
        let read = self.read_me(None, Some(&session.cookie())).await;
        let body = match read {
            Ok((body, _)) => body,
            Err(CoreError::Unauthenticated(_)) => {
                // The upstream forgot the session (a restart): sign in again.
                self.sign_in_user(&session.user.name, &session.password)
                    .await?;
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        if let Some(me) = convert::me(&body, &self.config.contact_center) {
            self.mirror_me(&core, session, &me).await;
        }
        Ok(())
    }

    /// Posts an operation with the user's session; signs in again once if the upstream
    /// forgot the session.
    async fn post(self: &Arc<Self>, user: &User, request: UpstreamRequest) -> CoreResult<()> {
        let session = self.session(&user.name)?;
        let mut renewed = false;
        loop {
            let post = self
                .http
                .post(format!("{}{}", self.base, request.path))
                .header(
                    reqwest::header::COOKIE,
                    format!("{SESSION_COOKIE}={}", session.cookie()),
                )
                .json(&request.body);
            let reply = send_timed(post).await.map_err(|e| self.unreachable(&e))?;
            self.set_available(true);
            let status = reply.status();
            let body: Value = reply.json().await.unwrap_or(Value::Null);
            if status == StatusCode::UNAUTHORIZED && !renewed {
                renewed = true;
                self.sign_in_user(&user.name, &session.password).await?;
                continue;
            }
            return check(status, &body);
        }
    }
}

/// Reads a GWS reply: `statusCode` 0 is success; anything else is the upstream's refusal,
/// classed by its HTTP status as embedded mode pairs them (spec §3.2).
fn check(status: StatusCode, body: &Value) -> CoreResult<()> {
    let code = body
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|c| u32::try_from(c).ok());
    if status.is_success() && code == Some(0) {
        return Ok(());
    }
    let message = body
        .get("statusMessage")
        .and_then(Value::as_str)
        .map_or_else(|| format!("upstream answered HTTP {status}"), str::to_owned);
    let kind = match status {
        StatusCode::UNAUTHORIZED => ErrorKind::Unauthenticated,
        StatusCode::FORBIDDEN => ErrorKind::PermissionDenied,
        StatusCode::NOT_FOUND => ErrorKind::NotFound,
        StatusCode::CONFLICT => ErrorKind::FailedPrecondition,
        StatusCode::TOO_MANY_REQUESTS => ErrorKind::ResourceExhausted,
        s if s.is_server_error() => ErrorKind::Unavailable,
        _ => code.map_or(ErrorKind::Internal, convert::error_kind),
    };
    Err(CoreError::Upstream {
        kind,
        status_code: code.unwrap_or(4),
        message,
    })
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

/// Sends a request to the upstream, timing it into
/// [`crate::admin::names::UPSTREAM_REQUEST_DURATION`] by outcome (`ok`: any HTTP answer,
/// `error`: none).
async fn send_timed(request: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
    let start = std::time::Instant::now();
    let reply = request.send().await;
    let outcome = if reply.is_ok() { "ok" } else { "error" };
    metrics::histogram!(crate::admin::names::UPSTREAM_REQUEST_DURATION, "outcome" => outcome)
        .record(start.elapsed());
    reply
}
