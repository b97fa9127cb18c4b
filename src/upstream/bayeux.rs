//! A Bayeux 1.0 client, as CometD 3 (GWS 8.5) and Faye servers speak it
//! (`shared/spec/bayeux.md`): `/meta/handshake`, `/meta/subscribe` for each channel, then
//! the `/meta/connect` loop honouring the server's `advice`, with the ack extension.
//!
//! The connect loop runs over `long-polling` (one POST per connect, the default and what
//! GWS 8.5 supports) or, with [`ConnectionType::WebSocket`], over one `websocket` per
//! session (spec §6): the handshake and subscriptions are still POSTs, then the socket
//! carries the connects and the messages the server pushes, one frame each, with no HTTP
//! request per message on either side. A server whose handshake does not offer `websocket`,
//! or that answers the upgrade with an HTTP status, gets long-polling for that session.
//!
//! Hand-written on purpose: no Rust CometD client is well kept (`shared/notes/cometd-clients.md`).
//!
//! # Use
//! ```no_run
//! # async fn agent(jsessionid: &str, shutdown: tokio_util::sync::CancellationToken)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use voice_gateway::upstream::bayeux::{self, BayeuxClient, BayeuxEvent, BayeuxOptions};
//!
//! let options = BayeuxOptions::default();
//! let http = bayeux::http_client(&options)?; // one per process: the connection pool
//! let mut events = BayeuxClient::new(
//!     "https://gws.example/api/v2/notifications",
//!     http.clone(),
//!     ["/v2/me/calls", "/v2/me/devices", "/v2/me/channels"],
//! )?
//! .cookie("JSESSIONID", jsessionid)
//! .options(options)
//! .spawn(shutdown.child_token());
//! while let Some(event) = events.recv().await {
//!     match event {
//!         BayeuxEvent::Subscribed { first: false, .. } => { /* re-read calls and devices */ }
//!         BayeuxEvent::Message(message) => { /* message.channel(), message.data() */ }
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # What the consumer sees
//! [`BayeuxEvent::Subscribed`] each time a session is up and every channel subscribed. When
//! `first` is false the client re-handshook (the server forgot the session, restarted, or a
//! reply was lost) and messages may have been missed: the consumer re-reads its state then.
//! [`BayeuxEvent::Message`] for each delivery, in the server's order. A failed request gives
//! [`BayeuxEvent::Disconnected`] (with the attempt number and the delay chosen) and the
//! client retries; a server saying `advice.reconnect: "none"` gives a last
//! [`BayeuxEvent::Stopped`]. A session refused by the server when its cookie has expired
//! ends the same way (`403::Handshake denied` with `reconnect: none` from CometD): the
//! caller logs in again and starts a new client.
//!
//! # Recovery
//! - `402::Unknown client` (Faye: `401`) or `advice.reconnect: "handshake"`: handshake and
//!   subscribe again after a backoff, not reported as a failure.
//! - An HTTP error, a timeout, a refused or reset connection, a failed or closed socket, a
//!   malformed reply, a refused handshake or subscription: reported, then the same, after a
//!   backoff.
//! - Except a connect lost in transit with the ack extension on: the client retries that
//!   connect on the same session (asking for an immediate answer; over a new socket when the
//!   socket failed), since the server re-sends what was not acknowledged; if the session is
//!   gone meanwhile, the server says `402`.
//!
//! Backoff is "full jitter": a uniform delay in `0..=min(backoff_max, backoff_base * 2^(n-1))`
//! for the n-th consecutive failure; a successful connect resets n.
//!
//! # Bounds and back-pressure
//! Items go to the consumer through a channel of [`BayeuxOptions::queue_capacity`]. When it
//! is full the client waits before sending the next `/meta/connect`, so undelivered messages
//! wait in the server's session queue. A consumer that stays behind longer than the server
//! keeps a session without a connect (CometD: `maxInterval`, 10 s by default) loses the
//! session: the next connect is answered `402`, and the consumer hears `Subscribed { first:
//! false }`. Replies are read up to [`BayeuxOptions::max_reply_bytes`].
//!
//! # Cookies
//! Each client carries its own cookies: those the caller gives ([`BayeuxClient::cookie`], e.g.
//! `JSESSIONID`) and those the server sets (`BAYEUX_BROWSER`, which CometD requires back on
//! every request, and any it renews), sent as one `Cookie` header. A cookie store on the
//! shared `reqwest::Client` is therefore not consulted for these requests, and sessions of
//! different agents never share a `BAYEUX_BROWSER` (which would make CometD answer them with
//! `multiple-clients` advice).
//!
//! # Stopping
//! The task ends when its token is cancelled, when the consumer drops [`BayeuxEvents`] or
//! calls [`BayeuxEvents::close`], sending `/meta/disconnect` for a live session first.

mod backoff;
mod runner;
mod socket;
mod wire;

pub use wire::read_document;
pub(crate) use wire::set_cookies;

use std::fmt;
use std::time::Duration;

use reqwest::header::{COOKIE, HeaderMap, HeaderName, HeaderValue};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Default [`BayeuxOptions::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default [`BayeuxOptions::max_network_delay`] (CometD JS's `maxNetworkDelay`).
pub const DEFAULT_MAX_NETWORK_DELAY: Duration = Duration::from_secs(10);
/// Default [`BayeuxOptions::backoff_base`].
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Default [`BayeuxOptions::backoff_max`].
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Default [`BayeuxOptions::queue_capacity`]: a few calls' worth of GWS notifications.
pub const DEFAULT_QUEUE_CAPACITY: usize = 256;
/// Default [`BayeuxOptions::max_reply_bytes`].
pub const DEFAULT_MAX_REPLY_BYTES: usize = 4 << 20;

/// How a client holds its `/meta/connect` loop once the session is up.
///
/// The handshake and the subscriptions always go over HTTP POSTs (so the server's cookies
/// are set and checked as on long-polling); with [`ConnectionType::WebSocket`] the connects,
/// and the messages the server pushes, then travel on one socket per session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub enum ConnectionType {
    /// One POST per `/meta/connect`, held by the server until a message is queued; the only
    /// transport GWS 8.5 supports, hence the default.
    #[default]
    #[serde(rename = "long-polling")]
    LongPolling,
    /// A WebSocket on the same path, when the handshake reply offers `websocket`; otherwise,
    /// or when the upgrade is answered with an HTTP status, long-polling.
    #[serde(rename = "websocket")]
    WebSocket,
}

impl ConnectionType {
    /// Returns the Bayeux name of the transport (`long-polling`, `websocket`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LongPolling => "long-polling",
            Self::WebSocket => "websocket",
        }
    }
}

impl fmt::Display for ConnectionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Timings and bounds of a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BayeuxOptions {
    /// TCP (and TLS) connect timeout of the HTTP client [`http_client`] builds.
    pub connect_timeout: Duration,
    /// Longest wait for the reply to a handshake, subscribe or disconnect, and how much
    /// longer than the server's `advice.timeout` a held `/meta/connect` may take.
    pub max_network_delay: Duration,
    /// Upper bound of the first backoff delay.
    pub backoff_base: Duration,
    /// Upper bound of every backoff delay.
    pub backoff_max: Duration,
    /// Whether to ask for the ack extension (used only if the server accepts it).
    pub ack: bool,
    /// Items queued toward the consumer before the client stops polling (at least 1).
    pub queue_capacity: usize,
    /// Largest reply body (or WebSocket message) read; a bigger one is a malformed reply.
    pub max_reply_bytes: usize,
    /// The transport of the connect loop.
    pub connection_type: ConnectionType,
}

impl Default for BayeuxOptions {
    fn default() -> Self {
        Self {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_network_delay: DEFAULT_MAX_NETWORK_DELAY,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_max: DEFAULT_BACKOFF_MAX,
            ack: true,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
            connection_type: ConnectionType::LongPolling,
        }
    }
}

/// Installs ring as the process's rustls crypto provider, unless one is installed already.
///
/// reqwest is built with `rustls-no-provider` (aws-lc-rs is a slow C build), so building any
/// `reqwest::Client` panics until a provider is installed; [`http_client`] calls this.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: a provider is installed either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Builds the HTTP client to share between Bayeux clients: a connection pool, the connect
/// timeout of `options`, TCP keep-alive, and HTTP/1.1 only.
///
/// HTTP/1.1 because each held `/meta/connect` occupies a connection: over HTTP/2 every
/// agent's long-poll would be a stream of one connection, and past the server's stream
/// limit (Jetty: 128) the requests of other agents would wait behind them.
pub fn http_client(options: &BayeuxOptions) -> reqwest::Result<reqwest::Client> {
    http_client_trusting(options, &[])
}

/// Like [`http_client`], also trusting `roots` (besides the system's CA certificates) for
/// `https://` servers: the bridge's `upstream.ca_file`, for an upstream whose certificate a
/// private CA signed.
pub fn http_client_trusting(
    options: &BayeuxOptions,
    roots: &[reqwest::Certificate],
) -> reqwest::Result<reqwest::Client> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .tcp_keepalive(Duration::from_secs(30))
        .http1_only();
    for root in roots {
        builder = builder.add_root_certificate(root.clone());
    }
    builder.build()
}

/// A client ready to start: endpoint, HTTP client, channels, cookies and options.
#[derive(Clone)]
pub struct BayeuxClient {
    endpoint: reqwest::Url,
    http: reqwest::Client,
    channels: Vec<String>,
    headers: HeaderMap,
    cookies: Vec<(String, String)>,
    options: BayeuxOptions,
}

impl BayeuxClient {
    /// Prepares a client of `endpoint` (`http(s)://host/api/v2/notifications`) that will
    /// subscribe to `channels`, sending its requests through `http` (see [`http_client`]).
    pub fn new<I, S>(
        endpoint: &str,
        http: reqwest::Client,
        channels: I,
    ) -> Result<Self, BayeuxClientError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let url = reqwest::Url::parse(endpoint)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .ok_or_else(|| BayeuxClientError::InvalidEndpoint(endpoint.to_owned()))?;
        let channels = channels
            .into_iter()
            .map(Into::into)
            .collect::<Vec<String>>();
        if let Some(bad) = channels.iter().find(|c| !wire::is_subscribable(c)) {
            return Err(BayeuxClientError::InvalidChannel(bad.clone()));
        }
        Ok(Self {
            endpoint: url,
            http,
            channels,
            headers: HeaderMap::new(),
            cookies: Vec::new(),
            options: BayeuxOptions::default(),
        })
    }

    /// Adds a cookie sent with every request (e.g. `JSESSIONID`); the server may renew it.
    pub fn cookie(mut self, name: &str, value: &str) -> Self {
        self.cookies.retain(|(n, _)| n != name);
        self.cookies.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds a header sent with every request (e.g. `Authorization`); a `Cookie` header is
    /// split into cookies instead, so that only one `Cookie` header goes out.
    pub fn header(mut self, name: HeaderName, mut value: HeaderValue) -> Self {
        // Caller headers are credentials as a rule: keep them out of debug output.
        value.set_sensitive(true);
        if name == COOKIE {
            for (n, v) in wire::cookie_pairs(value.to_str().unwrap_or_default()) {
                self = self.cookie(n, v);
            }
        } else {
            self.headers.append(name, value);
        }
        self
    }

    /// Replaces the options.
    pub fn options(mut self, options: BayeuxOptions) -> Self {
        self.options = options;
        self
    }

    /// Starts the client's task; it runs until `shutdown` is cancelled or the returned
    /// [`BayeuxEvents`] is closed or dropped. Must be called inside a Tokio runtime.
    pub fn spawn(self, shutdown: CancellationToken) -> BayeuxEvents {
        let (tx, rx) = mpsc::channel(self.options.queue_capacity.max(1));
        let stop = shutdown.child_token();
        let runner = runner::Runner::new(self, tx, stop.clone());
        BayeuxEvents {
            rx,
            stop,
            task: tokio::spawn(runner.run()),
        }
    }
}

impl fmt::Debug for BayeuxClient {
    /// Shows header and cookie names only: their values are credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BayeuxClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("channels", &self.channels)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field(
                "cookies",
                &self.cookies.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("options", &self.options)
            .finish()
    }
}

/// The consumer's end of a running client.
#[derive(Debug)]
pub struct BayeuxEvents {
    rx: mpsc::Receiver<BayeuxEvent>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl BayeuxEvents {
    /// Receives the next item; `None` once the client has stopped.
    pub async fn recv(&mut self) -> Option<BayeuxEvent> {
        self.rx.recv().await
    }

    /// Stops the client and waits until it has sent `/meta/disconnect` (bounded by
    /// `max_network_delay`, at most 2 s) and ended.
    pub async fn close(self) {
        self.stop.cancel();
        if let Err(error) = self.task.await {
            tracing::error!(%error, "bayeux client task failed");
        }
    }
}

/// What a client tells its consumer.
#[derive(Debug)]
pub enum BayeuxEvent {
    /// A session is up and every channel subscribed. `first` is false after a re-handshake:
    /// messages may have been lost, so the consumer re-reads its state now.
    Subscribed {
        /// The server's `clientId` of the new session.
        client_id: String,
        /// Whether this is the client's first session.
        first: bool,
        /// The transport the session's connects use: [`ConnectionType::WebSocket`] only when
        /// it was asked for, offered, and the socket is open.
        connection_type: ConnectionType,
    },
    /// A message delivered on a subscribed channel.
    Message(BayeuxDelivery),
    /// A request failed; the client retries after `retry_in`.
    Disconnected {
        /// What failed.
        error: BayeuxClientError,
        /// Consecutive failures so far, 1 for the first.
        attempt: u32,
        /// The backoff delay before the next attempt.
        retry_in: Duration,
    },
    /// The server said `advice.reconnect: "none"`: the client has stopped (last item).
    Stopped {
        /// The refusal, or [`BayeuxClientError::Ended`].
        error: BayeuxClientError,
    },
}

/// A delivered message, kept whole so that no field (`id`, `ext`, ...) is lost. It is
/// read with sonic-rs (why: `wire::Object`).
#[derive(Debug, Clone, PartialEq)]
pub struct BayeuxDelivery {
    channel: String,
    message: sonic_rs::Object,
}

/// The `data` of a delivery without one.
static NO_DATA: sonic_rs::Value = sonic_rs::Value::new();

impl BayeuxDelivery {
    /// Returns the channel the message was published on.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Returns the `data` field.
    pub fn data(&self) -> &sonic_rs::Value {
        self.message.get(&"data").unwrap_or(&NO_DATA)
    }

    /// Returns the `id` field, when the server sent one.
    pub fn id(&self) -> Option<&sonic_rs::Value> {
        self.message.get(&"id")
    }

    /// Returns the whole message.
    pub fn message(&self) -> &sonic_rs::Object {
        &self.message
    }

    /// Returns the whole message, consuming the delivery.
    pub fn into_message(self) -> sonic_rs::Object {
        self.message
    }
}

/// Reads a reply body or a WebSocket frame as this client does: the server's batch (a
/// non-empty JSON array of objects, or one object), each message a delivery when it is one
/// (a non-meta `channel` and a `data`) or kept as it came (a `/meta` reply, a publish
/// acknowledgement). A body nested deeper than 128 levels, or one that is not such a
/// batch, is [`BayeuxClientError::Malformed`]. The client's own reads take the same two
/// steps; this is their entry point for tests and for the fuzz target `upstream_message`
/// (FUZZING.md), which feed it what a broken or hostile server could send.
pub fn read_server_batch(
    body: &[u8],
) -> Result<Vec<Result<BayeuxDelivery, sonic_rs::Object>>, BayeuxClientError> {
    Ok(wire::parse_batch(body)?
        .into_iter()
        .map(wire::delivery)
        .collect())
}

/// Why a client could not start, or what went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum BayeuxClientError {
    /// The endpoint is not an `http(s)://` URL.
    #[error("invalid bayeux endpoint {0:?}")]
    InvalidEndpoint(String),
    /// A channel is not a subscribable channel name (`/meta/...`, empty segment, ...).
    #[error("invalid bayeux channel {0:?}")]
    InvalidChannel(String),
    /// The request did not complete: connection refused or reset, timeout, body cut short.
    #[error("bayeux request failed: {0}")]
    Transport(#[source] reqwest::Error),
    /// The server answered with an HTTP status other than 200.
    #[error("bayeux server answered HTTP {0}")]
    Status(u16),
    /// The reply is not a Bayeux batch answering the request.
    #[error("malformed bayeux reply: {0}")]
    Malformed(String),
    /// The server answered `successful: false`.
    #[error("bayeux {request} refused: {error}")]
    Refused {
        /// `handshake`, `subscribe <channel>` or `connect`.
        request: String,
        /// The server's `error` string, e.g. `402::Unknown client`.
        error: String,
    },
    /// The server ended the session (`advice.reconnect: "none"` on a successful reply).
    #[error("bayeux server ended the session")]
    Ended,
    /// The WebSocket failed, closed, or gave no reply in time.
    #[error("bayeux websocket failed: {0}")]
    Socket(String),
}

impl BayeuxClientError {
    /// Returns whether the reply may have been lost in transit (transport or HTTP error),
    /// as opposed to received and understood.
    pub fn is_transport(&self) -> bool {
        matches!(self, Self::Transport(_) | Self::Status(_) | Self::Socket(_))
    }
}
