//! Helpers of the Bayeux client tests: reading the client's items with a deadline, a
//! scripted Bayeux server (axum, loopback) whose replies a test writes (plus a CometD-like
//! script with ack), the Faye 1.4.3 server of `bench/faye` in a child process, and a
//! gateway started on a listener the test bound, to bring it up and down on one port.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;
use voice_gateway::upstream::bayeux::{
    BayeuxDelivery, BayeuxEvent, BayeuxEvents, BayeuxOptions, ConnectionType,
};

pub use crate::common::WAIT;

/// Options with short timings, so that failures and retries take milliseconds.
pub fn quick_options() -> BayeuxOptions {
    BayeuxOptions {
        max_network_delay: Duration::from_secs(2),
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(200),
        ..BayeuxOptions::default()
    }
}

/// Returns the client's next item, failing after [`WAIT`] or if the client has ended.
pub async fn next(events: &mut BayeuxEvents) -> BayeuxEvent {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .unwrap_or_else(|_| panic!("no bayeux item within {WAIT:?}"))
        .expect("the client is still running")
}

/// Returns the next item, which must be `Subscribed`; returns its `(client_id, first)`.
pub async fn subscribed(events: &mut BayeuxEvents) -> (String, bool) {
    match next(events).await {
        BayeuxEvent::Subscribed {
            client_id, first, ..
        } => (client_id, first),
        other => panic!("expected Subscribed, got {other:?}"),
    }
}

/// Returns the next item, which must be `Subscribed`; returns its connection type.
pub async fn subscribed_over(events: &mut BayeuxEvents) -> ConnectionType {
    match next(events).await {
        BayeuxEvent::Subscribed {
            connection_type, ..
        } => connection_type,
        other => panic!("expected Subscribed, got {other:?}"),
    }
}

/// Returns the next item, which must be a message.
pub async fn message(events: &mut BayeuxEvents) -> BayeuxDelivery {
    match next(events).await {
        BayeuxEvent::Message(message) => message,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// A scripted server's answer to one POST.
#[derive(Debug, Clone)]
pub enum Answer {
    /// `200` with this JSON.
    Json(Value),
    /// This status and raw body.
    Raw(StatusCode, &'static str),
    /// `200` with this JSON, after a delay (a held connect).
    Held(Duration, Value),
    /// `200` with this JSON and a `Set-Cookie` header.
    WithCookie(&'static str, Value),
    /// Never answers (until the server stops).
    Hang,
}

/// One POST as the scripted server received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The `Cookie` header, if any.
    pub cookie: Option<String>,
    /// The batch (`Value::Null` if the body was not JSON).
    pub batch: Value,
}

impl Received {
    /// Returns the channel of the batch's first message.
    pub fn channel(&self) -> &str {
        self.batch[0]["channel"].as_str().unwrap_or_default()
    }
}

type Script = dyn Fn(usize, &Value) -> Answer + Send + Sync;

struct ScriptState {
    script: Box<Script>,
    received: Mutex<Vec<Received>>,
    stop: CancellationToken,
}

/// A Bayeux server answering each POST by a script: `script(n, batch)` for the n-th POST
/// (0-based).
pub struct ScriptedServer {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<ScriptState>,
}

impl ScriptedServer {
    /// Serves `script` on a port-0 listener until dropped.
    pub async fn start(script: impl Fn(usize, &Value) -> Answer + Send + Sync + 'static) -> Self {
        voice_gateway::upstream::bayeux::install_crypto_provider();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ScriptState {
            script: Box::new(script),
            received: Mutex::new(Vec::new()),
            stop: CancellationToken::new(),
        });
        let app = Router::new()
            .fallback(axum::routing::post(answer))
            .with_state(state.clone());
        let stop = state.stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        });
        Self { addr, state }
    }

    /// Returns the endpoint URL.
    pub fn url(&self) -> String {
        format!("http://{}/api/v2/notifications", self.addr)
    }

    /// Returns every POST received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Returns how many POSTs carried a message on `channel`.
    pub fn count(&self, channel: &str) -> usize {
        self.received()
            .iter()
            .filter(|r| r.channel() == channel)
            .count()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.state.stop.cancel();
    }
}

async fn answer(
    State(state): State<Arc<ScriptState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let batch: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let cookie = headers
        .get("cookie")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let n = {
        let mut received = state.received.lock().unwrap();
        received.push(Received {
            cookie,
            batch: batch.clone(),
        });
        received.len() - 1
    };
    match (state.script)(n, &batch) {
        Answer::Json(json) => axum::Json(json).into_response(),
        Answer::Raw(status, body) => (status, body).into_response(),
        Answer::Held(delay, json) => {
            tokio::select! {
                // The thing under test: a server holding its reply (a long-poll) for `delay`.
                () = tokio::time::sleep(delay) => {}
                () = state.stop.cancelled() => {}
            }
            axum::Json(json).into_response()
        }
        Answer::WithCookie(cookie, json) => {
            ([("set-cookie", cookie)], axum::Json(json)).into_response()
        }
        Answer::Hang => {
            state.stop.cancelled().await;
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// Answers a batch as a minimal correct Bayeux server would (clientId `c1`, no ack),
/// putting `deliveries` before the replies.
pub fn well_behaved(batch: &Value, deliveries: &[Value]) -> Value {
    let mut out: Vec<Value> = deliveries.to_vec();
    for message in batch.as_array().into_iter().flatten() {
        let mut reply = json!({
            "id": message["id"], "channel": message["channel"], "successful": true,
        });
        match message["channel"].as_str() {
            Some("/meta/handshake") => {
                reply["clientId"] = json!("c1");
                reply["version"] = json!("1.0");
                reply["supportedConnectionTypes"] = json!(["long-polling"]);
                reply["advice"] = json!({"reconnect": "retry", "interval": 0, "timeout": 1000});
            }
            Some("/meta/subscribe") => reply["subscription"] = message["subscription"].clone(),
            _ => {}
        }
        out.push(reply);
    }
    Value::Array(out)
}

/// The Faye 1.4.3 server of `bench/faye`, stopped when dropped.
pub struct Faye {
    /// The notifications URL it serves (`/api/v2/notifications`).
    pub url: String,
    child: Child,
}

impl Faye {
    /// Starts `node bench/faye/server.js PORT` and waits for its "listening" line; fails
    /// clearly when `scripts/install-test-clients` has not been run.
    pub async fn start() -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/faye");
        assert!(
            dir.join("node_modules/faye").is_dir(),
            "{} has no node_modules: run scripts/install-test-clients first",
            dir.display()
        );
        // Faye takes a port number, not a listener: borrow a free one from the kernel.
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let mut child = Command::new("node")
            .arg(dir.join("server.js"))
            .arg(port.to_string())
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs (Node 18+ on the PATH)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("faye starts within the wait")
            .unwrap()
            .expect("faye prints its listening line");
        assert!(line.starts_with("faye listening"), "faye said {line:?}");
        Self {
            url: format!("http://127.0.0.1:{port}/api/v2/notifications"),
            child,
        }
    }

    /// Publishes `data` on `channel` with a plain POST (Faye needs no session to publish).
    pub async fn publish(&self, channel: &str, data: Value) {
        let body = json!([{"channel": channel, "data": data}]);
        let reply: Value = reqwest::Client::new()
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(reply[0]["successful"], true, "faye publish: {reply}");
    }

    /// Ends a session the way a second client would: `/meta/disconnect` with its clientId.
    pub async fn disconnect(&self, client_id: &str) {
        let body = json!([{"channel": "/meta/disconnect", "clientId": client_id, "id": "x"}]);
        let reply: Value = reqwest::Client::new()
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(reply[0]["successful"], true, "faye disconnect: {reply}");
    }
}

impl Drop for Faye {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A scripted CometD server with the ack extension and a `BAYEUX_BROWSER` cookie: connect
/// `k` (1-based) delivers `{"n": k}` with `ext.ack: k` for k up to 3, then is held 200 ms;
/// `fault(k)`, when it says so, answers connect `k` instead.
pub fn ack_server(
    fault: fn(usize) -> Option<Answer>,
) -> impl Fn(usize, &Value) -> Answer + Send + Sync + 'static {
    let connects = AtomicUsize::new(0);
    move |_, batch| match batch[0]["channel"].as_str() {
        Some("/meta/handshake") => {
            let mut reply = well_behaved(batch, &[]);
            reply[0]["ext"] = json!({"ack": true});
            Answer::WithCookie("BAYEUX_BROWSER=b1; Path=/; HttpOnly", reply)
        }
        Some("/meta/connect") => {
            let k = connects.fetch_add(1, Ordering::SeqCst) + 1;
            if let Some(answer) = fault(k) {
                return answer;
            }
            let delivery = json!({"channel": "/v2/me/calls", "data": {"n": k}});
            let deliveries = if k <= 3 { vec![delivery] } else { Vec::new() };
            let mut reply = well_behaved(batch, &deliveries);
            reply[deliveries.len()]["ext"] = json!({"ack": k});
            if k <= 3 {
                Answer::Json(reply)
            } else {
                Answer::Held(Duration::from_millis(200), reply)
            }
        }
        _ => Answer::Json(well_behaved(batch, &[])),
    }
}
