//! Socket-free tests of the endpoint under paused time: the long-polling router driven with
//! `oneshot`, the WebSocket loop driven through channels.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, header};
use futures::channel::mpsc;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use super::session::BayeuxRemoval;
use super::websocket::{BayeuxFrameIn, BayeuxFrameOut, BayeuxSocketInfo, run_socket};
use super::*;
use crate::config::Config;
use crate::gws::{auth, config};

const BASIC_AGENT1: &str = "Basic YWdlbnQxOmRlbW8="; // agent1:demo

fn endpoint() -> (Router, Arc<BayeuxRegistry>, AppState) {
    endpoint_with(Config::demo())
}

fn endpoint_with(config: Config) -> (Router, Arc<BayeuxRegistry>, AppState) {
    let state = crate::build_state(config, CancellationToken::new()).unwrap();
    let (router, registry) = router_with_registry(state.clone());
    (router, registry, state)
}

/// POSTs a batch; returns the body and the Set-Cookie header.
async fn post(router: &Router, cookie: Option<&str>, batch: Value) -> (Vec<Value>, Option<String>) {
    let mut request = Request::post("/api/v2/notifications/connect")
        .header(header::HOST, "gw.test")
        .header(header::AUTHORIZATION, BASIC_AGENT1);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(batch.to_string())).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let set_cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (serde_json::from_slice(&body).unwrap(), set_cookie)
}

/// Handshakes and connects once; returns the browser cookie and the clientId.
async fn connected(router: &Router) -> (String, String) {
    let (reply, set_cookie) = post(
        router,
        None,
        json!([{"channel": "/meta/handshake", "version": "1.0"}]),
    )
    .await;
    let cookie = set_cookie.unwrap().split(';').next().unwrap().to_owned();
    let cid = reply[0]["clientId"].as_str().unwrap().to_owned();
    let first = connect(router, &cookie, &cid).await;
    assert_eq!(first[0]["successful"], true);
    (cookie, cid)
}

async fn connect(router: &Router, cookie: &str, cid: &str) -> Vec<Value> {
    let batch =
        json!([{"channel": "/meta/connect", "clientId": cid, "connectionType": "long-polling"}]);
    post(router, Some(cookie), batch).await.0
}

#[tokio::test(start_paused = true)]
async fn a_long_poll_is_held_for_exactly_the_timeout() {
    let (router, _, _) = endpoint();
    let (cookie, cid) = connected(&router).await;
    let started = Instant::now();
    let reply = connect(&router, &cookie, &cid).await;
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(config::DEFAULT_TIMEOUT_MS)
    );
    assert_eq!(
        reply,
        vec![json!({"channel": "/meta/connect", "successful": true})]
    );
}

#[tokio::test(start_paused = true)]
async fn the_sweeper_expires_a_session_max_interval_after_its_last_connect() {
    let (router, registry, _) = endpoint();
    connected(&router).await;
    tokio::time::sleep(Duration::from_millis(config::DEFAULT_MAX_INTERVAL_MS - 500)).await;
    assert_eq!(registry.len(), 1);
    tokio::time::sleep(Duration::from_millis(
        1_000 + config::DEFAULT_SWEEP_PERIOD_MS,
    ))
    .await;
    assert_eq!(registry.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_held_long_poll_outlives_max_interval() {
    let mut config = Config::demo();
    config.cometd.max_interval_ms = 200;
    config.cometd.timeout_ms = 800;
    config.cometd.sweep_period_ms = 50;
    let (router, registry, _) = endpoint_with(config);
    let (cookie, cid) = connected(&router).await;
    let started = Instant::now();
    let reply = connect(&router, &cookie, &cid).await;
    // Held four times maxInterval, through sixteen sweeps, and answered at its timeout.
    assert_eq!(started.elapsed(), Duration::from_millis(800));
    assert_eq!(
        reply,
        vec![json!({"channel": "/meta/connect", "successful": true})]
    );
    assert!(registry.get(&cid).is_some(), "swept while held");
}

#[tokio::test(start_paused = true)]
async fn shutdown_answers_a_held_long_poll_with_handshake_advice() {
    let (router, registry, state) = endpoint();
    let (cookie, cid) = connected(&router).await;
    let held = tokio::spawn(async move { connect(&router, &cookie, &cid).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    state.shutdown.cancel();
    let reply = held.await.unwrap();
    assert_eq!(reply[0]["successful"], true);
    assert_eq!(reply[0]["advice"]["reconnect"], "handshake");
    assert_eq!(reply[0]["advice"]["interval"], 0);
    tokio::task::yield_now().await;
    assert!(registry.is_empty());
}

#[tokio::test(start_paused = true)]
async fn ending_every_session_counts_each_once_and_answers_a_held_connect() {
    let (router, registry, _state) = endpoint();
    let (cookie, cid) = connected(&router).await;
    connected(&router).await;
    connected(&router).await;
    let held = tokio::spawn(async move { connect(&router, &cookie, &cid).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(registry.remove_all(BayeuxRemoval::Shutdown), 3);
    assert_eq!(registry.remove_all(BayeuxRemoval::Shutdown), 0);
    assert!(registry.is_empty());
    let reply = held.await.unwrap();
    assert_eq!(reply[0]["advice"]["reconnect"], "handshake", "{reply:?}");
}

/// A socket loop on channels: frames in, frames out.
struct FakeSocket {
    input: mpsc::Sender<BayeuxFrameIn>,
    output: mpsc::Receiver<BayeuxFrameOut>,
}

impl FakeSocket {
    fn start(state: AppState, registry: Arc<BayeuxRegistry>) -> Self {
        let (input, stream) = mpsc::channel(8);
        let (sink, output) = mpsc::channel(8);
        let endpoint = Arc::new(BayeuxEndpoint { state, registry });
        let info = BayeuxSocketInfo {
            credentials: auth::BayeuxCredentials {
                http_session: None,
                authorization: Some(crate::auth::Credentials::Basic {
                    user: "agent1".into(),
                    password: "demo".into(),
                }),
                client: None,
            },
            base_url: "http://gw.test".into(),
            browser_cookie: None,
        };
        tokio::spawn(run_socket(endpoint, info, sink, stream));
        Self { input, output }
    }

    async fn send(&mut self, batch: Value) {
        self.input
            .send(BayeuxFrameIn::Text(batch.to_string()))
            .await
            .unwrap();
    }

    async fn recv(&mut self) -> BayeuxFrameOut {
        self.output.next().await.unwrap()
    }

    async fn recv_json(&mut self) -> Vec<Value> {
        match self.recv().await {
            BayeuxFrameOut::Text(text) => serde_json::from_str(&text).unwrap(),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_socket_holds_its_connect_for_the_timeout_and_answers_it_on_shutdown() {
    let (_, registry, state) = endpoint();
    let mut socket = FakeSocket::start(state.clone(), registry);
    socket
        .send(json!([{"id": "1", "channel": "/meta/handshake", "version": "1.0"}]))
        .await;
    let cid = socket.recv_json().await[0]["clientId"]
        .as_str()
        .unwrap()
        .to_owned();
    let connect = json!([{"id": "2", "channel": "/meta/connect", "clientId": cid, "connectionType": "websocket"}]);
    socket.send(connect.clone()).await;
    assert_eq!(socket.recv_json().await[0]["advice"]["timeout"], 30_000);
    socket.send(connect.clone()).await;
    let started = Instant::now();
    assert_eq!(socket.recv_json().await[0]["successful"], true);
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(config::DEFAULT_TIMEOUT_MS)
    );
    socket.send(connect).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    state.shutdown.cancel();
    let reply = socket.recv_json().await;
    assert_eq!(reply[0]["advice"]["reconnect"], "handshake");
    assert_eq!(socket.recv().await, BayeuxFrameOut::Close(1001, "shutdown"));
}

/// Fan-out cost: one core event to 10,000 subscribed sessions of one user (the worst case
/// for one event). Asserts delivery; prints the time (run with `--ignored --nocapture`).
#[tokio::test]
#[ignore = "measurement"]
async fn fan_out_of_one_event_to_10000_sessions() {
    let (_, registry, state) = endpoint();
    for _ in 0..10_000 {
        let session = registry
            .create(registry::BayeuxNewSession {
                user: "agent1".into(),
                browser_id: None,
                base_url: "http://gw.test".into(),
                http_session: None,
                ack: false,
            })
            .unwrap();
        session.subscribe(channel::CALLS_CHANNEL);
    }
    let who = state
        .core
        .directory()
        .authenticate_basic("agent1", "demo", None)
        .unwrap();
    let mut watch = state
        .core
        .watch(crate::core::WatchScope::All, None)
        .unwrap()
        .watch;
    state
        .core
        .dial(
            &who,
            crate::core::DialRequest {
                destination: crate::core::Destination::to_number("15001"),
                device_id: None,
            },
        )
        .unwrap();
    let event = watch.next().await.unwrap().unwrap();
    let started = std::time::Instant::now();
    let delivered = bridge::dispatch(&registry, &crate::core::Event::from(event));
    let elapsed = started.elapsed();
    println!("dispatch to {delivered} sessions took {elapsed:?}");
    assert_eq!(delivered, 10_000);
}

#[test]
fn a_websocket_upgrade_needs_its_own_or_an_allowed_origin() {
    let legacy = crate::gws::config::LegacyConfig {
        allowed_origins: vec!["http://desk.example:8000".into()],
        ..Default::default()
    };
    let value = |s: &str| HeaderValue::from_str(s).unwrap();
    let host = value("127.0.0.1:8080");
    let may = |origin: &str| origin_may_upgrade(&legacy, &value(origin), Some(&host));
    assert!(may("http://desk.example:8000"));
    assert!(may("http://127.0.0.1:8080"));
    assert!(may("https://127.0.0.1:8080"));
    assert!(!may("http://evil.example"));
    assert!(!may("http://127.0.0.1:8081"));
    assert!(!may("null"));
    assert!(!origin_may_upgrade(
        &legacy,
        &value("http://127.0.0.1:8080"),
        None
    ));
}
