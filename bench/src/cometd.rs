//! Many CometD long-polling sessions, one HTTP/1.1 keep-alive connection each (as many
//! desktops): handshake, subscribe, then the `/meta/connect` loop, each held connect
//! answered when a message arrives or at the server's timeout. The same client talks to the
//! gateway (`/v2/me/calls`, Basic credentials, `BAYEUX_BROWSER` cookie) and to Faye (a
//! per-user channel, since Faye has no notion of "me"): see [`Flavor`].
//!
//! Latency is from the moment the driver sent the operation (gateway) or the publish
//! (Faye) to receipt here: the same definition for both servers. For the gateway it is an
//! upper bound of commit-to-receipt (CometD messages carry no commit time).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::driver::SendTimes;
use crate::setup::{basic_auth, user};
use crate::stats::{Latency, LatencySummary};

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
use crate::watchers::since;

/// The Bayeux path, on the gateway and on the Faye baseline.
pub const NOTIFICATIONS: &str = "/api/v2/notifications";

/// Which server the sessions talk to.
#[derive(Debug, Clone)]
pub enum Flavor {
    /// The gateway: `/v2/me/calls`; latency from the driver's send times.
    Gateway(SendTimes),
    /// Faye: `/v2/me/calls/<user>`; latency from `data.sent_us` set by the publisher.
    Faye,
}

impl Flavor {
    fn channel(&self, agent: usize) -> String {
        match self {
            Self::Gateway(_) => "/v2/me/calls".into(),
            Self::Faye => faye_channel(agent),
        }
    }

    /// Returns the send time of the operation or publish a message came from.
    fn sent(&self, message: &Value) -> Option<SystemTime> {
        match self {
            Self::Gateway(sent) => {
                let call = message.pointer("/data/call")?;
                let id = call.get("id")?.as_str()?.to_owned();
                let recording =
                    call.get("recordingState").and_then(Value::as_str) == Some("Recording");
                sent.lock().ok()?.get(&(id, recording)).copied()
            }
            Self::Faye => {
                let us = message.pointer("/data/sent_us")?.as_u64()?;
                Some(SystemTime::UNIX_EPOCH + Duration::from_micros(us))
            }
        }
    }
}

/// Returns the Faye channel of agent `i`.
pub fn faye_channel(agent: usize) -> String {
    format!("/v2/me/calls/{}", user(agent))
}

/// What the sessions of a fleet saw.
#[derive(Debug, Default)]
pub struct SessionTally {
    /// Messages received while recording (filled in by [`SessionFleet::close`]).
    pub messages: u64,
    /// Messages received in total.
    pub all_messages: u64,
    /// Sessions that ended on an error.
    pub failed: u64,
    /// The first error.
    pub first_error: Option<String>,
    /// One message as received (its `data`), to size the Faye payload alike.
    pub sample: Option<Value>,
    /// Send-to-receipt latency while recording (filled in by [`SessionFleet::close`]).
    pub latency: Latency,
}

impl SessionTally {
    fn merge(&mut self, other: SessionTally) {
        self.messages += other.messages;
        self.all_messages += other.all_messages;
        self.failed += other.failed;
        self.latency.merge(&other.latency);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        if self.sample.is_none() {
            self.sample = other.sample;
        }
    }
}

/// What arrived while recording, shared by the sessions of a fleet.
#[derive(Debug, Default)]
struct Window {
    messages: AtomicU64,
    latency: Mutex<Latency>,
}

/// A set of long-polling sessions.
#[derive(Debug)]
pub struct SessionFleet {
    tasks: Vec<JoinHandle<SessionTally>>,
    stop: CancellationToken,
    recording: Arc<AtomicBool>,
    window: Arc<Window>,
}

/// One long-polling client session on its own connection.
pub(crate) struct Session {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    authorization: Option<String>,
    cookie: Option<String>,
    client_id: String,
    next_id: u64,
}

impl Session {
    pub(crate) async fn connect(
        addr: SocketAddr,
        authorization: Option<String>,
    ) -> anyhow::Result<Self> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self {
            sender,
            addr,
            authorization,
            cookie: None,
            client_id: String::new(),
            next_id: 0,
        })
    }

    /// Posts a batch of one message; returns the response batch.
    async fn post(&mut self, suffix: &str, message: Value) -> anyhow::Result<Vec<Value>> {
        self.post_batch(suffix, vec![message]).await
    }

    /// Posts a batch; returns the response batch.
    pub(crate) async fn post_batch(
        &mut self,
        suffix: &str,
        mut batch: Vec<Value>,
    ) -> anyhow::Result<Vec<Value>> {
        for message in &mut batch {
            self.next_id += 1;
            message["id"] = json!(self.next_id.to_string());
            if !self.client_id.is_empty() {
                message["clientId"] = json!(self.client_id);
            }
        }
        let body = serde_json::to_vec(&batch)?;
        let mut request = http::Request::post(format!("{NOTIFICATIONS}{suffix}"))
            .header("host", self.addr.to_string())
            .header("content-type", "application/json;charset=UTF-8")
            .body(Full::new(Bytes::from(body)))?;
        if let Some(value) = &self.authorization {
            request
                .headers_mut()
                .insert("authorization", value.parse()?);
        }
        if let Some(cookie) = &self.cookie {
            request.headers_mut().insert("cookie", cookie.parse()?);
        }
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        if let Some(set) = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            && let Some(pair) = set.split(';').next()
            && pair.starts_with("BAYEUX_BROWSER=")
        {
            self.cookie = Some(pair.to_owned());
        }
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::ensure!(
            status.is_success(),
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).context("a JSON batch")
    }

    /// Handshakes, then subscribes to `channel` unless it is empty.
    pub(crate) async fn handshake_and_subscribe(&mut self, channel: &str) -> anyhow::Result<()> {
        let reply = self
            .post(
                "/handshake",
                json!({"channel": "/meta/handshake", "version": "1.0",
                       "supportedConnectionTypes": ["long-polling"]}),
            )
            .await?;
        let reply = reply.first().context("a handshake reply")?;
        anyhow::ensure!(
            reply["successful"] == json!(true),
            "handshake refused: {reply}"
        );
        self.client_id = reply["clientId"].as_str().context("a clientId")?.to_owned();
        if channel.is_empty() {
            return Ok(());
        }
        let reply = self
            .post(
                "/",
                json!({"channel": "/meta/subscribe", "subscription": channel}),
            )
            .await?;
        let ok = reply
            .iter()
            .any(|m| m["channel"] == "/meta/subscribe" && m["successful"] == json!(true));
        anyhow::ensure!(ok, "subscribe refused: {reply:?}");
        Ok(())
    }
}

impl SessionFleet {
    /// Opens one session per agent and returns once each has sent its first held connect.
    pub async fn open(
        addr: SocketAddr,
        agents: std::ops::Range<usize>,
        flavor: Flavor,
    ) -> anyhow::Result<Self> {
        let stop = CancellationToken::new();
        let recording = Arc::new(AtomicBool::new(false));
        let window = Arc::new(Window::default());
        let ready = Arc::new(AtomicUsize::new(0));
        let wanted = agents.len();
        let mut tasks = Vec::with_capacity(wanted);
        let mut opened = futures::stream::iter(agents)
            .map(|agent| {
                let flavor = flavor.clone();
                async move {
                    let authorization =
                        matches!(flavor, Flavor::Gateway(_)).then(|| basic_auth(agent));
                    let mut session = Session::connect(addr, authorization).await?;
                    session
                        .handshake_and_subscribe(&flavor.channel(agent))
                        .await?;
                    anyhow::Ok(session)
                }
            })
            .buffer_unordered(64);
        while let Some(session) = opened.next().await {
            let session = session.context("a CometD session could not start")?;
            tasks.push(tokio::spawn(connect_loop(
                session,
                flavor.clone(),
                ready.clone(),
                recording.clone(),
                window.clone(),
                stop.clone(),
            )));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while ready.load(Ordering::Relaxed) < wanted {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "only {} of {wanted} CometD sessions are connected",
                ready.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(Self {
            tasks,
            stop,
            recording,
            window,
        })
    }

    /// Starts or stops recording.
    pub fn set_recording(&self, on: bool) {
        self.recording.store(on, Ordering::Relaxed);
    }

    /// Forgets what was recorded so far.
    pub fn reset_window(&self) {
        self.window.messages.store(0, Ordering::Relaxed);
        *lock(&self.window.latency) = Latency::default();
    }

    /// Returns the messages recorded and their latency.
    pub async fn window(&self) -> (u64, LatencySummary) {
        let messages = self.window.messages.load(Ordering::Relaxed);
        (messages, lock(&self.window.latency).summary())
    }

    /// Ends every session (closing its connection) and returns what they saw.
    pub async fn close(self) -> anyhow::Result<SessionTally> {
        self.stop.cancel();
        let mut tally = SessionTally::default();
        for task in self.tasks {
            tally.merge(task.await?);
        }
        tally.messages = self.window.messages.load(Ordering::Relaxed);
        tally.latency = lock(&self.window.latency).clone();
        Ok(tally)
    }
}

async fn connect_loop(
    mut session: Session,
    flavor: Flavor,
    ready: Arc<AtomicUsize>,
    recording: Arc<AtomicBool>,
    window: Arc<Window>,
    stop: CancellationToken,
) -> SessionTally {
    let mut tally = SessionTally::default();
    let mut first = true;
    loop {
        let mut connect = json!({"channel": "/meta/connect", "connectionType": "long-polling"});
        if first {
            connect["advice"] = json!({"timeout": 0});
        }
        let batch = tokio::select! {
            () = stop.cancelled() => return tally,
            batch = session.post("/connect", connect) => batch,
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                if !stop.is_cancelled() {
                    tally.failed += 1;
                    tally.first_error = Some(format!("{error:#}"));
                }
                return tally;
            }
        };
        for message in &batch {
            let channel = message["channel"].as_str().unwrap_or_default();
            if channel == "/meta/connect" {
                if message["successful"] != json!(true) {
                    tally.failed += 1;
                    tally.first_error = Some(format!("connect refused: {message}"));
                    return tally;
                }
                continue;
            }
            if channel.starts_with("/meta/") {
                continue;
            }
            tally.all_messages += 1;
            if tally.sample.is_none() {
                tally.sample = message.get("data").cloned();
            }
            if recording.load(Ordering::Relaxed) {
                window.messages.fetch_add(1, Ordering::Relaxed);
                if let Some(sent) = flavor.sent(message) {
                    lock(&window.latency).record_us(since(sent));
                }
            }
        }
        if first {
            first = false;
            ready.fetch_add(1, Ordering::Relaxed);
        }
    }
}
