//! The lean subscribers of figure 9 (the moonshot): a `WatchCalls` stream over raw HTTP/2
//! (the `h2` crate, many streams per connection) and a CometD long-polling session (HTTP/1.1,
//! one connection each as a desktop, or many per HTTP/2 connection), each stamping the
//! moment the one event arrives on a shared [`Board`].
//!
//! Lean because 100,000 of them share two cores with the gateway: no tonic channel or
//! JSON tree per subscriber, and a receipt is stamped before the message is decoded (a
//! WatchCalls event) or instead of decoding it (a CometD batch is searched for its channel).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::Context as _;
use bytes::{Buf as _, Bytes, BytesMut};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message as _;
use tokio_util::sync::CancellationToken;
use voice_gateway::grpc::pb;
use voice_gateway::grpc::pb::watch_calls_response::Kind;

use crate::cometd::NOTIFICATIONS;
use crate::grpc_load::grpc_frame;
use crate::loopback::connect_from;
use crate::setup::basic_auth;

/// Returns the current time in µs since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Where every subscriber reports: ready (snapshot or first connect answered), the receipt
/// of the event, or a failure. Receipts count only once armed (just before the event is
/// sent), so nothing that came earlier is taken for it.
#[derive(Debug)]
pub struct Board {
    /// Subscribers ready.
    pub ready: AtomicUsize,
    /// Subscribers that received the event.
    pub received: AtomicUsize,
    /// Subscribers that failed (stream ended, session refused).
    pub failed: AtomicUsize,
    /// Subscribers that failed before they received the event (the wait stops waiting
    /// for them).
    pub failed_unreceived: AtomicUsize,
    /// Receipts beyond the first of a subscriber.
    pub extra: AtomicUsize,
    /// The first failure.
    pub first_error: Mutex<Option<String>>,
    /// Whether receipts count.
    pub armed: AtomicBool,
    /// Receipt time of each subscriber, µs since the epoch (0: none).
    pub receipt_us: Vec<AtomicU64>,
    /// The event's commit time as a WatchCalls stream read it (0: none, or CometD).
    pub commit_us: Vec<AtomicU64>,
}

impl Board {
    /// Returns a board for `subscribers`.
    pub fn new(subscribers: usize) -> Arc<Self> {
        Arc::new(Self {
            ready: AtomicUsize::new(0),
            received: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            failed_unreceived: AtomicUsize::new(0),
            extra: AtomicUsize::new(0),
            first_error: Mutex::new(None),
            armed: AtomicBool::new(false),
            receipt_us: (0..subscribers).map(|_| AtomicU64::new(0)).collect(),
            commit_us: (0..subscribers).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    fn receive(&self, index: usize, at_us: u64, commit_us: u64) {
        if !self.armed.load(Ordering::Acquire) {
            return;
        }
        if self.receipt_us[index]
            .compare_exchange(0, at_us, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.commit_us[index].store(commit_us, Ordering::Release);
            self.received.fetch_add(1, Ordering::AcqRel);
        } else {
            self.extra.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn fail(&self, index: usize, error: String) {
        self.failed.fetch_add(1, Ordering::AcqRel);
        if self.receipt_us[index].load(Ordering::Acquire) == 0 {
            self.failed_unreceived.fetch_add(1, Ordering::AcqRel);
        }
        let mut first = self
            .first_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        first.get_or_insert(error);
    }
}

/// Opens one HTTP/2 connection for WatchCalls streams from `source`.
pub async fn h2_connection(
    addr: SocketAddr,
    source: IpAddr,
) -> anyhow::Result<h2::client::SendRequest<Bytes>> {
    let tcp = connect_from(addr, source).await?;
    crate::grpc_load::handshake(tcp, &h2::client::Builder::new()).await
}

/// Opens agent `agent`'s WatchCalls stream on `sender`; returns once the response head
/// arrived, with a task reading the stream until `stop`.
pub async fn open_watch(
    sender: &h2::client::SendRequest<Bytes>,
    authority: &str,
    agent: usize,
    index: usize,
    board: Arc<Board>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let request = http::Request::post(format!(
        "http://{authority}/voice.v1.CallService/WatchCalls"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .header("authorization", basic_auth(agent))
    .body(())?;
    let mut ready = sender.clone().ready().await?;
    let (response, mut stream) = ready.send_request(request, false)?;
    stream.send_data(grpc_frame(&pb::WatchCallsRequest::default()), true)?;
    let response = response.await?;
    anyhow::ensure!(
        response.status() == http::StatusCode::OK,
        "HTTP {}",
        response.status()
    );
    if let Some(status) = response.headers().get("grpc-status") {
        anyhow::bail!("WatchCalls refused: grpc-status {status:?}");
    }
    tokio::spawn(hold_watch(response.into_body(), index, board, stop));
    Ok(())
}

async fn hold_watch(
    mut body: h2::RecvStream,
    index: usize,
    board: Arc<Board>,
    stop: CancellationToken,
) {
    let mut buffer = BytesMut::new();
    loop {
        let chunk = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            chunk = body.data() => chunk,
        };
        let at = now_us();
        let chunk = match chunk {
            Some(Ok(chunk)) => chunk,
            Some(Err(error)) => return board.fail(index, format!("WatchCalls: {error}")),
            None => return board.fail(index, "WatchCalls ended".into()),
        };
        let _ = body.flow_control().release_capacity(chunk.len());
        buffer.extend_from_slice(&chunk);
        while let Some(message) = next_frame(&mut buffer) {
            match pb::WatchCallsResponse::decode(message)
                .ok()
                .and_then(|m| m.kind)
            {
                Some(Kind::Snapshot(_)) => {
                    board.ready.fetch_add(1, Ordering::AcqRel);
                }
                Some(Kind::Event(event)) => {
                    let commit = event
                        .commit_time
                        .and_then(|t| SystemTime::try_from(t).ok())
                        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_micros() as u64);
                    board.receive(index, at, commit);
                }
                Some(Kind::Error(_)) | None => {}
            }
        }
    }
}

/// Takes one whole gRPC message (5-byte prefix, then the message) off the buffer.
fn next_frame(buffer: &mut BytesMut) -> Option<Bytes> {
    if buffer.len() < 5 {
        return None;
    }
    let len = u32::from_be_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize;
    if buffer.len() < 5 + len {
        return None;
    }
    buffer.advance(5);
    Some(buffer.split_to(len).freeze())
}

/// An HTTP connection a CometD session posts on: its own HTTP/1.1 connection, or a
/// shared HTTP/2 connection.
#[derive(Debug)]
pub enum Link {
    /// One HTTP/1.1 keep-alive connection per session, as a desktop has.
    Http1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    /// A multiplexed HTTP/2 connection.
    Http2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Link {
    /// Opens a session's own HTTP/1.1 connection from `source`.
    pub async fn http1(addr: SocketAddr, source: IpAddr) -> anyhow::Result<Self> {
        let io = TokioIo::new(connect_from(addr, source).await?);
        let (sender, connection) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self::Http1(sender))
    }

    /// Opens an HTTP/2 connection (prior knowledge) from `source`, to be shared (cloned).
    pub async fn http2(
        addr: SocketAddr,
        source: IpAddr,
    ) -> anyhow::Result<hyper::client::conn::http2::SendRequest<Full<Bytes>>> {
        let io = TokioIo::new(connect_from(addr, source).await?);
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    async fn send(
        &mut self,
        request: http::Request<Full<Bytes>>,
    ) -> anyhow::Result<http::Response<hyper::body::Incoming>> {
        Ok(match self {
            Self::Http1(sender) => {
                sender.ready().await?;
                sender.send_request(request).await?
            }
            Self::Http2(sender) => {
                sender.ready().await?;
                sender.send_request(request).await?
            }
        })
    }
}

/// One CometD long-polling session of agent `agent`.
#[derive(Debug)]
pub struct LeanSession {
    link: Link,
    host: Arc<str>,
    authorization: String,
    cookie: Option<String>,
    client_id: String,
    next_id: u64,
}

/// Returns whether `haystack` contains `needle`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl LeanSession {
    /// Handshakes and subscribes to `/v2/me/calls` on `link`, as agent `agent`.
    pub async fn start(link: Link, host: Arc<str>, agent: usize) -> anyhow::Result<Self> {
        let mut session = Self {
            link,
            host,
            authorization: basic_auth(agent),
            cookie: None,
            client_id: String::new(),
            next_id: 0,
        };
        let reply = session
            .post(
                "/handshake",
                r#""channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]"#,
            )
            .await?;
        let reply: serde_json::Value = serde_json::from_slice(&reply)?;
        let reply = &reply[0];
        anyhow::ensure!(reply["successful"] == true, "handshake refused: {reply}");
        session.client_id = reply["clientId"].as_str().context("a clientId")?.to_owned();
        let reply = session
            .post(
                "/",
                r#""channel":"/meta/subscribe","subscription":"/v2/me/calls""#,
            )
            .await?;
        anyhow::ensure!(
            contains(&reply, br#""successful":true"#),
            "subscribe refused: {}",
            String::from_utf8_lossy(&reply)
        );
        Ok(session)
    }

    /// Posts one message (its fields after `{`, without `id` and `clientId`); returns the
    /// response body of a 2xx.
    async fn post(&mut self, suffix: &str, fields: &str) -> anyhow::Result<Bytes> {
        self.next_id += 1;
        let client = if self.client_id.is_empty() {
            String::new()
        } else {
            format!(r#","clientId":"{}""#, self.client_id)
        };
        let body = format!(r#"[{{{fields},"id":"{}"{client}}}]"#, self.next_id);
        let mut request = http::Request::post(format!("{NOTIFICATIONS}{suffix}"))
            .header("content-type", "application/json;charset=UTF-8")
            .header("authorization", self.authorization.as_str());
        request = match &self.link {
            Link::Http1(_) => request.header("host", &*self.host),
            Link::Http2(_) => request.uri(format!("http://{}{NOTIFICATIONS}{suffix}", self.host)),
        };
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie.as_str());
        }
        let response = self
            .link
            .send(request.body(Full::new(Bytes::from(body)))?)
            .await?;
        if let Some(pair) = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
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
        Ok(body)
    }

    /// Runs the connect loop until `stop`: the first connect is answered at once (ready),
    /// the next ones are held; a reply carrying a `/v2/me/calls` message is a receipt.
    pub async fn hold(mut self, index: usize, board: Arc<Board>, stop: CancellationToken) {
        let mut first = true;
        loop {
            let advice = if first {
                r#","advice":{"timeout":0}"#
            } else {
                ""
            };
            let fields =
                format!(r#""channel":"/meta/connect","connectionType":"long-polling"{advice}"#);
            let reply = tokio::select! {
                biased;
                () = stop.cancelled() => return,
                reply = self.post("/connect", &fields) => reply,
            };
            let at = now_us();
            let reply = match reply {
                Ok(reply) => reply,
                Err(error) => return board.fail(index, format!("CometD connect: {error:#}")),
            };
            if contains(&reply, br#""channel":"/v2/me/calls""#) {
                board.receive(index, at, 0);
            }
            if contains(&reply, br#""successful":false"#) {
                return board.fail(
                    index,
                    format!(
                        "CometD connect refused: {}",
                        String::from_utf8_lossy(&reply)
                    ),
                );
            }
            if first {
                first = false;
                board.ready.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}
