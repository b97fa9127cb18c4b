//! Helpers of the CometD tests: a gateway whose state (core, HTTP sessions) the test can
//! reach to drive calls and mint `JSESSIONID`s, and a raw long-polling client that keeps
//! cookies like a browser.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use voice_gateway::app::AppState;
use voice_gateway::config::Config;
use voice_gateway::core::{CallId, CallOperation, Destination, DialRequest, Principal};
use voice_gateway::{build_http, build_state};

/// A gateway serving the HTTP side on a port-0 listener.
pub struct BayeuxGateway {
    /// Shared state, to drive calls through the core.
    pub state: AppState,
    /// The HTTP address.
    pub addr: SocketAddr,
}

impl BayeuxGateway {
    /// Starts the demo gateway with short CometD timings, then `adjust`.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::demo();
        config.switch.external_answer_ms = 50;
        config.cometd.timeout_ms = 5_000;
        config.cometd.max_interval_ms = 5_000;
        config.cometd.sweep_period_ms = 50;
        adjust(&mut config);
        let state = build_state(config, CancellationToken::new()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = build_http(&state);
        let shutdown = state.shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
        });
        Self { state, addr }
    }

    /// Starts with the defaults of [`Self::spawn_with`].
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Returns `http://127.0.0.1:port`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Returns the notifications URL.
    pub fn url(&self) -> String {
        format!("{}/api/v2/notifications", self.http_url())
    }

    /// Returns the WebSocket URL of the notifications endpoint.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/api/v2/notifications", self.addr)
    }

    /// Authenticates a demo user.
    pub fn principal(&self, user: &str) -> Principal {
        self.state
            .core
            .directory()
            .authenticate_basic(user, "demo", None)
            .unwrap()
    }

    /// Opens an HTTP session for a demo user and returns its `JSESSIONID`.
    pub fn session_cookie(&self, user: &str) -> String {
        self.state.sessions.create(self.principal(user)).id
    }

    /// Dials `to` from `from` and has the callee answer; returns the call id.
    pub fn established_call(&self, from: &str, to_user: &str, to_number: &str) -> CallId {
        let call = self
            .state
            .core
            .dial(
                &self.principal(from),
                DialRequest {
                    destination: Destination::to_number(to_number),
                    device_id: None,
                },
            )
            .unwrap();
        self.state
            .core
            .execute(&self.principal(to_user), &call.id, CallOperation::Answer)
            .unwrap();
        call.id
    }

    /// Starts then stops recording on `call` as `user`.
    pub fn record_and_stop(&self, user: &str, call: &CallId) {
        let who = self.principal(user);
        let core = &self.state.core;
        core.execute(&who, call, CallOperation::StartCallRecording)
            .unwrap();
        core.execute(&who, call, CallOperation::StopCallRecording)
            .unwrap();
    }

    /// The seed scenario: agent1 calls agent2, agent2 answers, agent1 records and stops.
    pub fn seed_recording_scenario(&self) -> CallId {
        let call = self.established_call("agent1", "agent2", "15001");
        self.record_and_stop("agent1", &call);
        call
    }
}

impl Drop for BayeuxGateway {
    fn drop(&mut self) {
        self.state.shutdown.cancel();
    }
}

/// Returns an `Authorization: Basic` value for a demo user.
pub fn basic(user: &str) -> String {
    let raw = format!("{user}:demo");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// A long-polling client with its own cookie store (its own "browser").
pub struct LpClient {
    /// The HTTP client.
    pub http: reqwest::Client,
    /// The notifications URL.
    pub url: String,
    /// The `clientId` after a handshake.
    pub client_id: String,
    next_id: u64,
    auth: Option<String>,
}

impl LpClient {
    /// Builds a client for the gateway, sending `auth` as the Authorization header.
    pub fn new(gateway: &BayeuxGateway, auth: Option<String>) -> Self {
        Self {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            url: gateway.url(),
            client_id: String::new(),
            next_id: 0,
            auth,
        }
    }

    /// Returns a fresh message id.
    pub fn id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    /// POSTs a raw body to `url + suffix`; returns the status, and the body as JSON when
    /// it parses (else as a string).
    pub async fn post_raw(&self, suffix: &str, body: String) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}{suffix}", self.url))
            .header("content-type", "application/json")
            .body(body);
        if let Some(auth) = &self.auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// POSTs a batch and expects 200 with a JSON array.
    pub async fn post(&self, suffix: &str, batch: Value) -> Vec<Value> {
        let (status, body) = self.post_raw(suffix, batch.to_string()).await;
        assert_eq!(status, 200, "{body}");
        body.as_array().expect("a JSON array").clone()
    }

    /// Handshakes (with `ext` if given); returns the reply and stores the `clientId`.
    pub async fn handshake(&mut self, ext: Option<Value>) -> Value {
        let mut message = json!({
            "id": self.id(), "channel": "/meta/handshake", "version": "1.0",
            "minimumVersion": "1.0", "supportedConnectionTypes": ["long-polling"],
            "advice": {"timeout": 60000, "interval": 0}
        });
        if let Some(ext) = ext {
            message["ext"] = ext;
        }
        let reply = self.post("/handshake", json!([message])).await.remove(0);
        if let Some(id) = reply["clientId"].as_str() {
            self.client_id = id.to_owned();
        }
        reply
    }

    /// Sends a connect (with optional advice timeout and ack); returns the whole response.
    pub async fn connect(&mut self, timeout: Option<u64>, ack: Option<u64>) -> Vec<Value> {
        let mut message = json!({
            "id": self.id(), "channel": "/meta/connect",
            "connectionType": "long-polling", "clientId": self.client_id
        });
        if let Some(timeout) = timeout {
            message["advice"] = json!({ "timeout": timeout });
        }
        if let Some(ack) = ack {
            message["ext"] = json!({ "ack": ack });
        }
        self.post("/connect", json!([message])).await
    }

    /// Subscribes; returns the reply.
    pub async fn subscribe(&mut self, subscription: Value) -> Value {
        let message = json!({
            "id": self.id(), "channel": "/meta/subscribe",
            "clientId": self.client_id, "subscription": subscription
        });
        self.post("/", json!([message])).await.remove(0)
    }

    /// Handshakes, connects once (answered at once) and subscribes to `channel`.
    pub async fn ready(&mut self, channel: &str) {
        let reply = self.handshake(None).await;
        assert_eq!(reply["successful"], true, "{reply}");
        let first = self.connect(Some(0), None).await;
        assert_eq!(first.last().unwrap()["successful"], true);
        let sub = self.subscribe(json!(channel)).await;
        assert_eq!(sub["successful"], true, "{sub}");
    }
}

/// Splits a connect response into the delivered events and the connect reply.
pub fn split(response: &[Value]) -> (Vec<Value>, Value) {
    let reply = response
        .iter()
        .find(|m| m["channel"] == "/meta/connect")
        .cloned()
        .expect("a connect reply");
    let events = response
        .iter()
        .filter(|m| m.get("data").is_some())
        .cloned()
        .collect();
    (events, reply)
}
