//! Movable CometD sessions in cluster mode (issue 16), in one process: an embedded gateway
//! plays the upstream GWS, and two bridge instances A and B share one in-memory engine.
//! A desktop with the ack extension handshakes on A; A goes away; the same `clientId`
//! connects at B with its `ext.ack` and gets exactly the events it missed, none twice,
//! without a new handshake. A session without ack, or whose record names another epoch,
//! is told to handshake again. And the real CometD JS 9 client with its AckExtension,
//! behind a loopback balancer that moves it from A to B as A goes away, keeps its
//! `clientId` and receives every message once (install it with
//! `scripts/install-test-clients`).

mod cometd_support;
mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cometd_support::node::NodeClient;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use cometd_support::LpClient;
use common::{TestGateway, as_user, basic, eventually, pb, watch_calls, within};
use serde_json::{Value, json};
use voice_gateway::cluster::memory::MemoryEngine;
use voice_gateway::cluster::{Engine, SessionRecords as _};

type Calls = pb::call_service_client::CallServiceClient<tonic::transport::Channel>;
type Watch = tonic::Streaming<pb::WatchCallsResponse>;

struct Cluster {
    engine: Arc<MemoryEngine>,
    /// The upstream GWS, serving until the test ends.
    _upstream: TestGateway,
    a: Option<TestGateway>,
    b: TestGateway,
    /// agent1's calls as a gRPC watcher on B sees them: the reference.
    on_b: Watch,
    /// Keeps agent1 signed in on A (so A may own it).
    _on_a: Watch,
    upstream_calls: Calls,
    /// What the reference saw, as `(call, state)`.
    reference: Vec<(String, String)>,
}

impl Cluster {
    async fn new() -> Self {
        let engine = Arc::new(MemoryEngine::default());
        let upstream = TestGateway::spawn().await;
        let instance = || {
            let url = upstream.http_url();
            TestGateway::builder()
                .config(move |config| {
                    config.upstream.url = Some(url);
                    config.cluster.lease_ttl_ms = 300;
                })
                .cluster(Engine::memory(engine.clone()))
                .start()
        };
        let a = instance().await;
        let on_a = watch_calls(&mut a.calls().await, "agent1").await;
        let b = instance().await;
        let on_b = watch_calls(&mut b.calls().await, "agent1").await;
        let upstream_calls = upstream.calls().await;
        Self {
            engine,
            _upstream: upstream,
            a: Some(a),
            b,
            on_b,
            _on_a: on_a,
            upstream_calls,
            reference: Vec::new(),
        }
    }

    fn a(&self) -> &TestGateway {
        self.a.as_ref().expect("A is up")
    }

    /// agent3 calls agent1 on the upstream and hangs up once the call reached agent1's
    /// watcher on B: two events of agent1 (hung up at once, a call made while agent1's new
    /// owner is still subscribing upstream would be reported to no one).
    async fn a_call(&mut self) -> String {
        let dial = pb::DialRequest {
            destination: "15000".into(),
            ..Default::default()
        };
        let id = self
            .upstream_calls
            .dial(as_user("agent3", dial))
            .await
            .expect("agent3 dials agent1")
            .into_inner()
            .call
            .unwrap()
            .id;
        let rung = |e: &pb::CallEvent| e.call.as_ref().unwrap().id == id;
        let events = common::watch_until(&mut self.on_b, rung).await;
        self.note(&events);
        let hangup = pb::HangupRequest {
            call_id: id.clone(),
        };
        self.upstream_calls
            .hangup(as_user("agent3", hangup))
            .await
            .expect("agent3 hangs up");
        id
    }

    /// Reads the reference's events of agent1 up to the release of `last` into
    /// `reference`; returns that release's sequence.
    async fn reference_until(&mut self, last: &str) -> u64 {
        let released = |e: &pb::CallEvent| {
            let call = e.call.as_ref().unwrap();
            call.id == last && call.state() == pb::CallState::Released
        };
        let events = common::watch_until(&mut self.on_b, released).await;
        self.note(&events);
        events.last().map_or(0, |e| e.sequence)
    }

    fn note(&mut self, events: &[pb::CallEvent]) {
        self.reference.extend(events.iter().map(|e| {
            let call = e.call.as_ref().unwrap();
            (call.id.clone(), format!("{:?}", call.state()))
        }));
    }
}

/// A desktop's view of a call message.
fn seen(message: &Value) -> (String, String) {
    let call = &message["data"]["call"];
    (
        call["id"].as_str().unwrap_or_default().to_owned(),
        call["state"].as_str().unwrap_or_default().to_owned(),
    )
}

/// A long-polling desktop with the ack extension; remembers its position.
struct Desk {
    client: LpClient,
    position: u64,
    seen: Vec<(String, String)>,
}

impl Desk {
    async fn on(gateway: &TestGateway, ack: bool) -> Self {
        let mut client = LpClient::new(gateway, Some(basic("agent1")));
        let ext = ack.then(|| json!({"ack": true}));
        let reply = client.handshake(ext).await;
        assert_eq!(reply["successful"], true, "{reply}");
        let first = client.connect(Some(0), None).await;
        let position = first[0]["ext"]["ack"].as_u64().unwrap_or(0);
        let subscribed = client.subscribe(json!("/v2/me/calls")).await;
        assert_eq!(subscribed["successful"], true, "{subscribed}");
        Self {
            client,
            position,
            seen: Vec::new(),
        }
    }

    /// Sends one connect acknowledging the position; returns its reply after taking the
    /// events it carried.
    async fn connect(&mut self) -> Value {
        let response = within(
            "a connect",
            self.client.connect(Some(1000), Some(self.position)),
        )
        .await;
        let (events, replies): (Vec<Value>, Vec<Value>) = response
            .into_iter()
            .partition(|m| m["channel"] != "/meta/connect");
        let reply = replies.into_iter().next().expect("a connect reply");
        if reply["successful"] == true {
            self.seen.extend(events.iter().map(seen));
            if let Some(position) = reply["ext"]["ack"].as_u64() {
                self.position = position;
            }
        }
        reply
    }

    /// Connects until the release of `call` arrived (each connect is held at most 1 s).
    async fn until_released(&mut self, call: &str) {
        let released = (call.to_owned(), "Released".to_owned());
        for _ in 0..5 {
            if self.seen.contains(&released) {
                return;
            }
            let reply = self.connect().await;
            assert_eq!(reply["successful"], true, "{reply}");
        }
        panic!(
            "no release of {call} at the desktop; it saw {:?}",
            self.seen
        );
    }
}

/// Waits until the engine holds `client_id`'s record with a subscription.
async fn recorded(engine: &MemoryEngine, client_id: &str) {
    eventually("the session's record is written", || {
        engine
            .session_now(client_id)
            .is_some_and(|r| !r.subscriptions.is_empty())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_session_moves_to_another_instance_with_exactly_the_events_it_missed() {
    let mut cluster = Cluster::new().await;
    let mut desk = Desk::on(cluster.a(), true).await;
    recorded(&cluster.engine, &desk.client.client_id).await;
    let first = cluster.a_call().await;
    desk.until_released(&first).await;
    // Calls the desktop does not fetch from A before A goes away.
    cluster.a_call().await;
    let missed = cluster.a_call().await;
    let through = cluster.reference_until(&missed).await;
    eventually("A has queued what the desktop missed", || {
        cluster
            .a()
            .registry
            .get(&desk.client.client_id)
            .is_some_and(|s| s.position() >= through)
    })
    .await;
    let a = cluster.a.take().unwrap();
    a.stop().await.expect("A stops");
    // The balancer sends the desktop's cookie to B: same clientId, its position.
    desk.client.url = cluster.b.url();
    let moved = desk.connect().await;
    assert_eq!(moved["successful"], true, "adopted: {moved}");
    assert!(
        desk.seen.contains(&(missed.clone(), "Released".into())),
        "the missed events came with the first connect on B: {:?}",
        desk.seen
    );
    // Live events on B after the move, once B owns agent1 (a call rung and released
    // while no one owned agent1 is reported to no one).
    eventually("B takes agent1 over", || {
        cluster.engine.holder_now("agent1").is_some()
    })
    .await;
    let last = cluster.a_call().await;
    desk.until_released(&last).await;
    cluster.reference_until(&last).await;
    let reference = &cluster.reference;
    // Everything since the desktop subscribed, in order, once.
    let since = reference
        .iter()
        .position(|e| e.0 == first)
        .expect("the first call at the reference");
    assert_eq!(desk.seen, reference[since..], "lost, repeated or reordered");
    assert_eq!(
        cluster
            .b
            .registry
            .get(&desk.client.client_id)
            .map(|s| s.user.to_string()),
        Some("agent1".to_owned())
    );
    // B owns the record now.
    let record = cluster.engine.session_now(&desk.client.client_id).unwrap();
    assert_ne!(record.owner, "", "{record:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ack_or_on_another_epoch_a_moved_session_is_told_to_handshake() {
    let mut cluster = Cluster::new().await;
    let mut plain = Desk::on(cluster.a(), false).await;
    let mut stale = Desk::on(cluster.a(), true).await;
    recorded(&cluster.engine, &stale.client.client_id).await;
    assert!(
        cluster
            .engine
            .session_now(&plain.client.client_id)
            .is_none(),
        "a session without ack has no record"
    );
    // The record names an epoch the log no longer has.
    let mut record = cluster.engine.session_now(&stale.client.client_id).unwrap();
    record.epoch = "an-older-epoch".into();
    cluster
        .engine
        .put(&record, Duration::from_secs(60), true)
        .await
        .unwrap();
    cluster.a_call().await;
    for desk in [&mut plain, &mut stale] {
        desk.client.url = cluster.b.url();
        let reply = desk.connect().await;
        assert_eq!(reply["successful"], false, "{reply}");
        assert_eq!(reply["error"], "402::Unknown client", "{reply}");
        assert_eq!(reply["advice"]["reconnect"], "handshake", "{reply}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_made_with_a_jsessionid_moves_only_with_credentials_valid_on_the_new_instance() {
    let mut cluster = Cluster::new().await;
    // A desktop that logged in on A: its handshake rides on A's HTTP session only.
    let agent = common::desktop::Agent::login(&cluster.a().http_url(), "agent1").await;
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let url: reqwest::Url = cluster.a().http_url().parse().unwrap();
    jar.add_cookie_str(&format!("JSESSIONID={}", agent.jsessionid), &url);
    let mut client = LpClient::new(cluster.a(), None);
    client.http = reqwest::Client::builder()
        .cookie_provider(jar)
        .timeout(Duration::from_secs(8))
        .build()
        .unwrap();
    let mut desk = Desk {
        client,
        position: 0,
        seen: Vec::new(),
    };
    let reply = desk.client.handshake(Some(json!({"ack": true}))).await;
    assert_eq!(reply["successful"], true, "{reply}");
    desk.connect().await;
    desk.client.subscribe(json!("/v2/me/calls")).await;
    recorded(&cluster.engine, &desk.client.client_id).await;
    let record = cluster.engine.session_now(&desk.client.client_id).unwrap();
    assert!(record.http_session, "{record:?}");
    cluster.a.take().unwrap().stop().await.expect("A stops");
    // At B, A's HTTP session means nothing: without credentials, no adoption.
    desk.client.url = cluster.b.url();
    let refused = desk.connect().await;
    assert_eq!(refused["error"], "402::Unknown client", "{refused}");
    // With Basic credentials of the same user, the session moves.
    desk.client.set_auth(Some(basic("agent1")));
    let adopted = desk.connect().await;
    assert_eq!(adopted["successful"], true, "{adopted}");
    assert!(cluster.b.registry.get(&desk.client.client_id).is_some());
}

/// A loopback balancer: every connection goes to the current target; [`Self::switch`]
/// changes it and cuts the connections open to the old one (what a balancer does when the
/// instance of a sticky cookie dies).
struct Balancer {
    addr: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    cut: Arc<Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl Balancer {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let balancer = Self {
            addr: listener.local_addr().unwrap(),
            target: Arc::new(Mutex::new(target)),
            cut: Arc::default(),
            stop: CancellationToken::new(),
        };
        let (target, cut, stop) = (
            balancer.target.clone(),
            balancer.cut.clone(),
            balancer.stop.clone(),
        );
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = stop.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut client, _)) = accepted else {
                    return;
                };
                let to = *target.lock().unwrap();
                let cut = cut.lock().unwrap().clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(to).await else {
                        return;
                    };
                    tokio::select! {
                        () = cut.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
        balancer
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn switch(&self, to: SocketAddr) {
        *self.target.lock().unwrap() = to;
        let old = std::mem::take(&mut *self.cut.lock().unwrap());
        old.cancel();
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Reads messages of the Node client until the release of `call`; returns them as
/// `(call, state)`.
async fn messages_until_released(node: &mut NodeClient, call: &str) -> Vec<(String, String)> {
    let mut got = Vec::new();
    loop {
        let message = node.message().await;
        got.push(seen(&message));
        if got.last() == Some(&(call.to_owned(), "Released".to_owned())) {
            return got;
        }
    }
}

async fn a_real_client_moves_with_its_session(transport: &str) {
    let mut cluster = Cluster::new().await;
    let balancer = Balancer::start(cluster.a().http_addr).await;
    let auth = basic("agent1");
    let mut node = NodeClient::start(
        "cometd9",
        "moving.mjs",
        &[&balancer.url(), transport, &auth],
    );
    let ready = node.expect("READY").await;
    assert_eq!(ready["transport"], transport, "{ready}");
    let client_id = ready["clientId"].as_str().unwrap().to_owned();
    recorded(&cluster.engine, &client_id).await;
    let first = cluster.a_call().await;
    let mut got = messages_until_released(&mut node, &first).await;
    // A goes away: the balancer sends the client to B, cutting its connections to A.
    balancer.switch(cluster.b.http_addr);
    cluster.a.take().unwrap().stop().await.expect("A stops");
    eventually("B takes agent1 over", || {
        cluster.engine.holder_now("agent1").is_some()
    })
    .await;
    let second = cluster.a_call().await;
    got.extend(messages_until_released(&mut node, &second).await);
    let expected: Vec<(String, String)> = [&first, &second]
        .into_iter()
        .flat_map(|c| {
            [
                (c.clone(), "Ringing".into()),
                (c.clone(), "Released".into()),
            ]
        })
        .collect();
    assert_eq!(got, expected, "every message once, in order");
    assert!(
        cluster.b.registry.get(&client_id).is_some(),
        "B adopted the session {client_id}"
    );
    // No new handshake (it would print READY again), nothing more.
    let rest = node.finish().await;
    assert!(rest.is_empty(), "{rest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cometd_js_over_long_polling_keeps_its_session_when_the_balancer_moves_it() {
    a_real_client_moves_with_its_session("long-polling").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cometd_js_over_websocket_keeps_its_session_when_the_balancer_moves_it() {
    a_real_client_moves_with_its_session("websocket").await;
}
