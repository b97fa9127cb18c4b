//! Helpers of the CometD tests: a gateway whose state (core, Bayeux sessions) the test can
//! reach to drive calls and drop sessions, serving gRPC too; a desktop's HTTP side, which
//! logs in like a browser and then sends only its `JSESSIONID`; a raw long-polling client
//! that keeps cookies like a browser; and (in [`node`]) the real Node clients.
#![allow(dead_code, unreachable_pub)]

pub mod node;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use voice_gateway::app::AppState;
use voice_gateway::build_state;
use voice_gateway::config::Config;
use voice_gateway::core::{CallId, CallOperation, Destination, DialRequest, Principal};
use voice_gateway::grpc::pb::call_service_client::CallServiceClient;
use voice_gateway::grpc::pb::device_service_client::DeviceServiceClient;
use voice_gateway::gws::cometd::BayeuxRegistry;
use voice_gateway::gws::{cometd, json};

/// A gateway serving the HTTP side and gRPC on port-0 listeners.
pub struct BayeuxGateway {
    /// Shared state, to drive calls through the core.
    pub state: AppState,
    /// The CometD sessions (the test may drop them, as the server does).
    pub registry: Arc<BayeuxRegistry>,
    /// The HTTP address.
    pub addr: SocketAddr,
    /// The gRPC address.
    pub grpc_addr: SocketAddr,
}

impl BayeuxGateway {
    /// Starts the demo gateway with short CometD timings, then `adjust`.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        // reqwest has TLS without a built-in provider: the tests' clients need one.
        voice_gateway::upstream::bayeux::install_crypto_provider();
        let mut config = Config::demo();
        config.switch.external_answer_ms = 50;
        config.cometd.timeout_ms = 5_000;
        config.cometd.max_interval_ms = 5_000;
        config.cometd.sweep_period_ms = 50;
        adjust(&mut config);
        let state = build_state(config, CancellationToken::new()).unwrap();
        // The HTTP router of `build_http`, keeping the CometD registry.
        let (notifications, registry) = cometd::router_with_registry(state.clone());
        let http = Router::new()
            .merge(json::router(state.clone()))
            .merge(notifications);
        let grpc = voice_gateway::grpc::build_router(&state).await;
        let addr = serve(http, &state.shutdown).await;
        let grpc_addr = serve(grpc, &state.shutdown).await;
        Self {
            state,
            registry,
            addr,
            grpc_addr,
        }
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

    /// Connects a gRPC DeviceService client.
    pub async fn device_service(&self) -> DeviceServiceClient<tonic::transport::Channel> {
        DeviceServiceClient::connect(format!("http://{}", self.grpc_addr))
            .await
            .unwrap()
    }

    /// Connects a gRPC CallService client.
    pub async fn call_service(&self) -> CallServiceClient<tonic::transport::Channel> {
        CallServiceClient::connect(format!("http://{}", self.grpc_addr))
            .await
            .unwrap()
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

/// Serves `app` on a fresh port-0 listener until `shutdown`; returns the address.
async fn serve(app: Router, shutdown: &CancellationToken) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    });
    addr
}

/// The HTTP side of an agent desktop: it logs in once with Basic (`GET /api/v2/me`, which
/// sets `JSESSIONID`), then sends only the session cookie, as a browser does.
pub struct Desktop {
    /// A client holding only the session cookie.
    pub http: reqwest::Client,
    /// `http://host:port`.
    pub base: String,
    /// The session id the login set.
    pub jsessionid: String,
}

impl Desktop {
    /// Logs `user` in and keeps the `JSESSIONID` the gateway set.
    pub async fn login(gateway: &BayeuxGateway, user: &str) -> Self {
        let base = gateway.http_url();
        let response = reqwest::Client::new()
            .get(format!("{base}/api/v2/me"))
            .basic_auth(user, Some("demo"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let jsessionid = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()?.strip_prefix("JSESSIONID="))
            .map(|rest| rest.split(';').next().unwrap().to_owned())
            .next()
            .expect("the login sets JSESSIONID");
        let mut headers = reqwest::header::HeaderMap::new();
        let cookie = format!("JSESSIONID={jsessionid}");
        headers.insert("cookie", cookie.parse().unwrap());
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap();
        Self {
            http,
            base,
            jsessionid,
        }
    }

    /// GETs a path; expects 200 and returns the JSON body.
    pub async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// POSTs an operation; expects `{"statusCode":0}`.
    pub async fn post_ok(&self, path: &str, body: Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let reply: Value = response.json().await.unwrap();
        assert_eq!(
            (status.as_u16(), &reply),
            (200, &json!({"statusCode": 0})),
            "POST {path} {body}"
        );
    }

    /// Returns the user's device id and its JSON resource.
    pub async fn device(&self) -> (String, Value) {
        let body = self.get("/api/v2/me/devices?fields=*").await;
        let device = body["devices"][0].clone();
        (device["id"].as_str().unwrap().to_owned(), device)
    }

    /// Returns the ids of the user's active calls.
    pub async fn call_ids(&self) -> Vec<String> {
        let body = self.get("/api/v2/me/calls").await;
        body["uris"]
            .as_array()
            .unwrap()
            .iter()
            .map(|uri| uri.as_str().unwrap().rsplit('/').next().unwrap().to_owned())
            .collect()
    }

    /// Dials `number` from the user's device (`POST .../devices/{id}/calls`); returns the
    /// new call's id.
    pub async fn dial(&self, number: &str) -> String {
        let before = self.call_ids().await;
        let (device, _) = self.device().await;
        let body = json!({"operationName": "Dial", "destination": {"phoneNumber": number}});
        self.post_ok(&format!("/api/v2/me/devices/{device}/calls"), body)
            .await;
        let mut new: Vec<String> = self
            .call_ids()
            .await
            .into_iter()
            .filter(|id| !before.contains(id))
            .collect();
        assert_eq!(new.len(), 1, "one new call");
        new.remove(0)
    }

    /// Sends `operationName` on a call.
    pub async fn call_op(&self, call: &str, operation: &str) {
        let body = json!({ "operationName": operation });
        self.post_ok(&format!("/api/v2/me/calls/{call}"), body)
            .await;
    }
}

/// The seed scenario over the JSON API: `agent1` dials agent2 (15001), agent2 answers from
/// its own desktop, agent1 starts then stops recording. Returns the call id.
pub async fn seed_recording_over_json(gateway: &BayeuxGateway, agent1: &Desktop) -> String {
    let call = json_call(gateway, agent1, "agent2", "15001").await;
    agent1.call_op(&call, "StartCallRecording").await;
    agent1.call_op(&call, "StopCallRecording").await;
    call
}

/// `from` dials `to_number` and `to_user` answers, both over JSON; returns the call id.
pub async fn json_call(
    gateway: &BayeuxGateway,
    from: &Desktop,
    to_user: &str,
    to_number: &str,
) -> String {
    let callee = Desktop::login(gateway, to_user).await;
    let call = from.dial(to_number).await;
    callee.call_op(&call, "Answer").await;
    call
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
