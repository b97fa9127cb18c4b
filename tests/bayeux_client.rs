//! The upstream Bayeux client (`voice_gateway::upstream::bayeux`) against two independent
//! servers, the gateway's own CometD endpoint and Faye 1.4.3, and against scripted servers
//! for the wire shapes and the faults: a forgotten session, an unreachable then restarted
//! server, garbage replies, a lost connect with ack, a slow consumer, stopping.
//!
//! Loopback only. Servers are bound before the client starts; waits poll with a deadline.

mod bayeux_support;
mod cometd_support;
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use bayeux_support::*;
use common::desktop::Agent;
use common::{TestGateway, eventually};
use serde_json::{Value, json};
use sonic_rs::JsonValueTrait as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use voice_gateway::gws::cometd::session::BayeuxRemoval;
use voice_gateway::upstream::bayeux::{
    self, BayeuxClient, BayeuxClientError, BayeuxEvent, BayeuxEvents, BayeuxOptions, ConnectionType,
};

/// Starts a client of `url` on `/v2/me/calls` with `options`, sending `cookie` if given.
fn start(url: &str, options: BayeuxOptions, cookie: Option<&str>) -> BayeuxEvents {
    let http = bayeux::http_client(&options).unwrap();
    let mut client = BayeuxClient::new(url, http, ["/v2/me/calls"])
        .unwrap()
        .options(options);
    if let Some(cookie) = cookie {
        client = client.cookie("JSESSIONID", cookie);
    }
    client.spawn(CancellationToken::new())
}

/// Reads the `/v2/me/calls` notifications of `call` until it is released; returns the
/// successive call states (repeats removed).
async fn call_states(events: &mut BayeuxEvents, call: &str) -> Vec<String> {
    let mut states: Vec<String> = Vec::new();
    while states.last().map(String::as_str) != Some("Released") {
        let message = message(events).await;
        assert_eq!(message.channel(), "/v2/me/calls");
        let data = message.data();
        assert_eq!(data["messageType"], "CallStateChangeMessage", "{data}");
        assert_eq!(data["call"]["id"], call, "{data}");
        let state = data["call"]["state"].as_str().unwrap().to_owned();
        if states.last() != Some(&state) {
            states.push(state);
        }
    }
    states
}

async fn gateway_calls_arrive_in_order(ack: bool) {
    gateway_calls_arrive_in_order_over(ack, ConnectionType::LongPolling).await;
}

async fn gateway_calls_arrive_in_order_over(ack: bool, connection_type: ConnectionType) {
    let gw = TestGateway::spawn().await;
    let agent1 = Agent::login(&gw.http_url(), "agent1").await;
    let options = BayeuxOptions {
        ack,
        connection_type,
        ..quick_options()
    };
    let mut events = start(&gw.url(), options, Some(&agent1.jsessionid));
    let (client_id, first, used) = match next(&mut events).await {
        BayeuxEvent::Subscribed {
            client_id,
            first,
            connection_type,
        } => (client_id, first, connection_type),
        other => panic!("expected Subscribed, got {other:?}"),
    };
    assert!(first);
    assert_eq!(used, connection_type, "the gateway offers both transports");
    let session = gw
        .registry
        .get(&client_id)
        .expect("the gateway has the session");
    assert_eq!(session.ack, ack, "ack negotiated as asked");
    let call = gw.established_call("agent1", "agent2", "15001").await;
    agent1.call_op(&call, "Hangup").await;
    assert_eq!(
        call_states(&mut events, &call).await,
        ["Dialing", "Established", "Released"]
    );
    events.close().await;
    assert!(
        gw.registry.get(&client_id).is_none(),
        "close() sent /meta/disconnect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_call_notifications_arrive_in_order() {
    gateway_calls_arrive_in_order(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_call_notifications_arrive_in_order_with_ack() {
    gateway_calls_arrive_in_order(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_call_notifications_arrive_in_order_over_websocket() {
    gateway_calls_arrive_in_order_over(false, ConnectionType::WebSocket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_call_notifications_arrive_in_order_over_websocket_with_ack() {
    gateway_calls_arrive_in_order_over(true, ConnectionType::WebSocket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_session_the_gateway_forgets_is_re_handshaken_on_a_new_socket() {
    let gw = TestGateway::spawn().await;
    let agent1 = Agent::login(&gw.http_url(), "agent1").await;
    let options = BayeuxOptions {
        connection_type: ConnectionType::WebSocket,
        ..quick_options()
    };
    let mut events = start(&gw.url(), options, Some(&agent1.jsessionid));
    let (old, _) = subscribed(&mut events).await;
    let session = gw.registry.get(&old).unwrap();
    eventually("the first connect is held", || session.is_held()).await;
    // Forgotten while its connect is held on the socket: the server answers it `402`.
    gw.registry.remove(&session, BayeuxRemoval::Expired);
    assert_eq!(
        subscribed_over(&mut events).await,
        ConnectionType::WebSocket
    );
    let call = gw.established_call("agent1", "agent2", "15001").await;
    agent1.call_op(&call, "Hangup").await;
    assert_eq!(
        call_states(&mut events, &call).await,
        ["Dialing", "Established", "Released"]
    );
    events.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_websocket_upgrade_falls_back_to_long_polling() {
    // Offers `websocket` in the handshake but serves POSTs only: the upgrade (a GET) is
    // answered 405.
    let server = ScriptedServer::start(|_, batch| {
        let mut reply = well_behaved(batch, &[]);
        if batch[0]["channel"] == "/meta/handshake" {
            reply[0]["supportedConnectionTypes"] = json!(["websocket", "long-polling"]);
        } else if batch[0]["channel"] == "/meta/connect" {
            reply = well_behaved(
                batch,
                &[json!({"channel": "/v2/me/calls", "data": {"n": 1}})],
            );
        }
        Answer::Json(reply)
    })
    .await;
    let options = BayeuxOptions {
        connection_type: ConnectionType::WebSocket,
        ..quick_options()
    };
    let mut events = start(&server.url(), options, None);
    assert_eq!(
        subscribed_over(&mut events).await,
        ConnectionType::LongPolling
    );
    assert_eq!(
        message(&mut events).await.data(),
        &sonic_rs::json!({"n": 1})
    );
    let got = server.received();
    assert_eq!(
        got[0].batch[0]["supportedConnectionTypes"],
        json!(["websocket", "long-polling"])
    );
    assert_eq!(got[2].batch[0]["connectionType"], "long-polling");
    events.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_the_gateway_forgets_is_re_handshaken_and_resubscribed() {
    let gw = TestGateway::spawn().await;
    let agent1 = Agent::login(&gw.http_url(), "agent1").await;
    let mut events = start(&gw.url(), quick_options(), Some(&agent1.jsessionid));
    let (old, _) = subscribed(&mut events).await;
    let session = gw.registry.get(&old).unwrap();
    gw.registry.remove(&session, BayeuxRemoval::Expired);
    // 402 with handshake advice is routine: no Disconnected, straight to a new session.
    let (new, first) = subscribed(&mut events).await;
    assert!(!first, "the consumer is told to resync");
    assert_ne!(new, old);
    assert!(gw.registry.get(&new).is_some());
    let call = gw.established_call("agent1", "agent2", "15001").await;
    agent1.call_op(&call, "Hangup").await;
    assert_eq!(
        call_states(&mut events, &call).await.last().unwrap(),
        "Released"
    );
    events.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_handshake_or_reconnect_none_stops_the_client() {
    let gw = TestGateway::spawn().await;
    let mut events = start(&gw.url(), quick_options(), Some("no-such-session"));
    match next(&mut events).await {
        BayeuxEvent::Stopped {
            error: BayeuxClientError::Refused { request, error },
        } => assert_eq!(
            (request.as_str(), error.as_str()),
            ("handshake", "403::Handshake denied")
        ),
        other => panic!("expected Stopped, got {other:?}"),
    }
    assert!(events.recv().await.is_none(), "Stopped is the last item");

    let server = ScriptedServer::start(|_, batch| {
        let mut reply = well_behaved(batch, &[]);
        if batch[0]["channel"] == "/meta/connect" {
            reply[0]["advice"] = json!({"reconnect": "none", "interval": -1});
        }
        Answer::Json(reply)
    })
    .await;
    let mut events = start(&server.url(), quick_options(), None);
    subscribed(&mut events).await;
    assert!(matches!(
        next(&mut events).await,
        BayeuxEvent::Stopped {
            error: BayeuxClientError::Ended
        }
    ));
    assert!(events.recv().await.is_none());
    assert_eq!(server.count("/meta/connect"), 1, "no connect after none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faye_delivers_publishes_and_its_unknown_client_error_leads_to_a_re_handshake() {
    let faye = Faye::start().await;
    let mut events = start(&faye.url, quick_options(), None);
    let (old, first) = subscribed(&mut events).await;
    assert!(first);
    let data = json!({"messageType": "CallStateChangeMessage", "call": {"state": "Dialing"}});
    faye.publish("/v2/me/calls", data.clone()).await;
    let got = message(&mut events).await;
    let sent: sonic_rs::Value = sonic_rs::from_str(&data.to_string()).unwrap();
    assert_eq!((got.channel(), got.data()), ("/v2/me/calls", &sent));
    assert_eq!(
        got.message()["channel"],
        "/v2/me/calls",
        "the whole message is kept"
    );

    // Faye forgets the client: it answers `401:<id>:Unknown client`, advice handshake.
    faye.disconnect(&old).await;
    let (new, first) = subscribed(&mut events).await;
    assert!(!first);
    assert_ne!(new, old);
    faye.publish("/v2/me/calls", json!({"n": 2})).await;
    assert_eq!(
        message(&mut events).await.data(),
        &sonic_rs::json!({"n": 2})
    );
    events.close().await;
}

/// Skips `Disconnected` items until `Subscribed`; returns `first`.
async fn subscribed_after_failures(events: &mut BayeuxEvents) -> bool {
    loop {
        match next(events).await {
            BayeuxEvent::Disconnected { .. } => {}
            BayeuxEvent::Subscribed { first, .. } => return first,
            other => panic!("expected Subscribed, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_retried_with_backoff_until_it_comes_up_and_after_a_restart() {
    voice_gateway::upstream::bayeux::install_crypto_provider();
    // Until the gateway comes up, its port accepts connections and drops them, counted.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let come_up = CancellationToken::new();
    let acceptor = {
        let (accepted, come_up) = (accepted.clone(), come_up.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = come_up.cancelled() => return listener,
                    _ = listener.accept() => { accepted.fetch_add(1, Ordering::SeqCst); }
                }
            }
        })
    };
    let options = BayeuxOptions {
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(160),
        // One item in flight: the client cannot run ahead of the count below.
        queue_capacity: 1,
        ..quick_options()
    };
    let http = bayeux::http_client(&options).unwrap();
    let mut events = BayeuxClient::new(
        &format!("http://{addr}/api/v2/notifications"),
        http,
        ["/v2/me/calls"],
    )
    .unwrap()
    .header(
        reqwest::header::AUTHORIZATION,
        common::basic("agent1").parse().unwrap(),
    )
    .options(options)
    .spawn(CancellationToken::new());
    let caps = [20, 40, 80, 160, 160, 160];
    for (n, cap) in (1..).zip(caps) {
        match next(&mut events).await {
            BayeuxEvent::Disconnected {
                error,
                attempt,
                retry_in,
            } => {
                assert!(error.is_transport(), "{error}");
                assert_eq!(attempt, n);
                assert!(
                    retry_in <= Duration::from_millis(cap),
                    "{retry_in:?} > {cap} ms"
                );
            }
            other => panic!("expected Disconnected, got {other:?}"),
        }
        // One connection per attempt: the n-th item, perhaps the next attempt (whose item
        // waits for room), perhaps the one after (once this read made room); no burst.
        let seen = accepted.load(Ordering::SeqCst) as u32;
        assert!(
            (n..=n + 2).contains(&seen),
            "{seen} connections after {n} attempts"
        );
    }
    come_up.cancel();
    let gateway = restartable(acceptor.await.unwrap()).await;
    assert!(
        subscribed_after_failures(&mut events).await,
        "first session"
    );

    // The upstream restarts on the same port: the old session is gone.
    gateway.stop().await.unwrap();
    let gateway = restartable(TcpListener::bind(addr).await.unwrap()).await;
    assert!(
        !subscribed_after_failures(&mut events).await,
        "resync after restart"
    );
    let mut calls = gateway.calls().await;
    let dial = voice_gateway::grpc::pb::DialRequest {
        destination: "15001".into(),
        ..Default::default()
    };
    let call = calls
        .dial(common::as_user("agent1", dial))
        .await
        .unwrap()
        .into_inner()
        .call
        .unwrap();
    loop {
        match next(&mut events).await {
            BayeuxEvent::Message(m) if m.data()["call"]["id"] == call.id.as_str() => break,
            BayeuxEvent::Message(m) => panic!("unexpected message {:?}", m.message()),
            BayeuxEvent::Disconnected { .. } => {}
            other => panic!("expected the call's notification, got {other:?}"),
        }
    }
    events.close().await;
    gateway.stop().await.unwrap();
}

/// The test gateway serving HTTP on `http`, advising a quick reconnect: a shutting-down
/// gateway advises its `max_interval`, so the restart is quick.
async fn restartable(http: TcpListener) -> TestGateway {
    TestGateway::builder()
        .http_listener(http)
        .config(|c| {
            c.cometd.timeout_ms = 2_000;
            c.cometd.max_interval_ms = 500;
        })
        .start()
        .await
}

/// Returns the next item, which must be `Disconnected` on attempt `n`; returns its error.
async fn disconnected(events: &mut BayeuxEvents, n: u32) -> BayeuxClientError {
    match next(events).await {
        BayeuxEvent::Disconnected { error, attempt, .. } => {
            assert_eq!(attempt, n, "{error}");
            error
        }
        other => panic!("expected Disconnected #{n}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_replies_are_reported_and_retried_with_a_re_handshake() {
    let server = ScriptedServer::start(|n, batch| match n {
        0 => Answer::Raw(StatusCode::OK, "<html>not json</html>"),
        1 => Answer::Json(json!([])),
        2 => Answer::Raw(StatusCode::INTERNAL_SERVER_ERROR, "boom"),
        3 => Answer::Json(json!([{"channel": "/meta/handshake", "successful": true}])),
        4 => Answer::Json(json!({"unexpected": true})),
        5 => Answer::Hang,
        6 => Answer::Json(json!([1, 2])),
        9 => Answer::Raw(StatusCode::OK, "}{"),
        _ if batch[0]["channel"] == "/meta/connect" => {
            Answer::Held(Duration::from_millis(200), well_behaved(batch, &[]))
        }
        _ => Answer::Json(well_behaved(batch, &[])),
    })
    .await;
    let options = BayeuxOptions {
        max_network_delay: Duration::from_millis(300),
        ..quick_options()
    };
    let mut events = start(&server.url(), options, None);
    for n in 1..=7 {
        let error = disconnected(&mut events, n).await;
        match n {
            3 => assert!(matches!(error, BayeuxClientError::Status(500)), "{error}"),
            6 => assert!(
                matches!(&error, BayeuxClientError::Transport(e) if e.is_timeout()),
                "{error}"
            ),
            _ => assert!(matches!(error, BayeuxClientError::Malformed(_)), "{error}"),
        }
    }
    assert!(subscribed(&mut events).await.1);
    // A garbage connect reply: reported, then a new session (attempts count on until a
    // connect succeeds).
    let error = disconnected(&mut events, 8).await;
    assert!(matches!(error, BayeuxClientError::Malformed(_)), "{error}");
    assert!(!subscribed(&mut events).await.1);
    eventually("a held connect", || server.received().len() > 12).await;
    let channels: Vec<String> = server.received()[..12]
        .iter()
        .map(|r| r.channel().to_owned())
        .collect();
    let mut expected = vec!["/meta/handshake"; 8];
    expected.extend([
        "/meta/subscribe",
        "/meta/connect",
        "/meta/handshake",
        "/meta/subscribe",
    ]);
    assert_eq!(channels, expected, "one request per attempt");
    events.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_speaks_cometd_on_the_wire() {
    let server = ScriptedServer::start(ack_server(|_| None)).await;
    let http = bayeux::http_client(&quick_options()).unwrap();
    let mut events = BayeuxClient::new(&server.url(), http, ["/v2/me/calls", "/v2/me/devices"])
        .unwrap()
        .cookie("JSESSIONID", "s1")
        .options(quick_options())
        .spawn(CancellationToken::new());
    assert_eq!(subscribed(&mut events).await, ("c1".to_owned(), true));
    for k in 1..=3 {
        let got = message(&mut events).await;
        assert_eq!(got.data(), &sonic_rs::json!({"n": k}));
    }
    eventually("a fourth connect", || server.count("/meta/connect") >= 4).await;
    let got = server.received();
    let handshake = &got[0].batch;
    assert_eq!(handshake.as_array().unwrap().len(), 1, "alone in its batch");
    assert_eq!(handshake[0]["version"], "1.0");
    assert_eq!(
        handshake[0]["supportedConnectionTypes"],
        json!(["long-polling"])
    );
    assert_eq!(handshake[0]["ext"], json!({"ack": true}));
    assert_eq!(got[0].cookie.as_deref(), Some("JSESSIONID=s1"));
    let subscribe = got[1].batch.as_array().unwrap();
    let subscriptions: Vec<&Value> = subscribe.iter().map(|m| &m["subscription"]).collect();
    assert_eq!(
        subscriptions,
        [&json!("/v2/me/calls"), &json!("/v2/me/devices")]
    );
    assert!(subscribe.iter().all(|m| m["clientId"] == "c1"));
    assert_eq!(
        got[1].cookie.as_deref(),
        Some("JSESSIONID=s1; BAYEUX_BROWSER=b1")
    );
    let connects: Vec<&Value> = got[2..6].iter().map(|r| &r.batch[0]).collect();
    assert!(
        connects
            .iter()
            .all(|c| c["connectionType"] == "long-polling")
    );
    assert!(connects.iter().all(|c| c["clientId"] == "c1"));
    assert_eq!(
        connects[0]["advice"],
        json!({"timeout": 0}),
        "first connect"
    );
    assert!(connects[1].get("advice").is_none());
    let acks: Vec<&Value> = connects.iter().map(|c| &c["ext"]["ack"]).collect();
    assert_eq!(acks, [&json!(0), &json!(1), &json!(2), &json!(3)]);
    let mut ids: Vec<String> = got
        .iter()
        .flat_map(|r| r.batch.as_array().unwrap().clone())
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "message ids are unique");
    events.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_lost_with_ack_on_is_retried_on_the_same_session() {
    let server = ScriptedServer::start(ack_server(|k| {
        (k == 2).then_some(Answer::Raw(StatusCode::BAD_GATEWAY, "bad gateway"))
    }))
    .await;
    let mut events = start(&server.url(), quick_options(), None);
    assert!(subscribed(&mut events).await.1);
    assert_eq!(
        message(&mut events).await.data(),
        &sonic_rs::json!({"n": 1})
    );
    let error = disconnected(&mut events, 1).await;
    assert!(matches!(error, BayeuxClientError::Status(502)), "{error}");
    assert_eq!(
        message(&mut events).await.data(),
        &sonic_rs::json!({"n": 3})
    );
    let got = server.received();
    let retry = &got[4].batch[0];
    assert_eq!(retry["channel"], "/meta/connect");
    assert_eq!(retry["clientId"], "c1", "same session");
    assert_eq!(retry["ext"], json!({"ack": 1}), "what was received");
    assert_eq!(retry["advice"], json!({"timeout": 0}), "answer at once");
    assert_eq!(server.count("/meta/handshake"), 1, "no re-handshake");
    events.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_holds_back_the_next_connect() {
    // Connects 1 to 3 deliver five numbered messages each; later ones are held.
    let server = ScriptedServer::start(|_, batch| {
        static CONNECTS: AtomicUsize = AtomicUsize::new(0);
        if batch[0]["channel"] != "/meta/connect" {
            return Answer::Json(well_behaved(batch, &[]));
        }
        let k = CONNECTS.fetch_add(1, Ordering::SeqCst);
        if k >= 3 {
            return Answer::Held(Duration::from_millis(200), well_behaved(batch, &[]));
        }
        let deliveries: Vec<Value> = (1..=5)
            .map(|i| json!({"channel": "/v2/me/calls", "data": {"n": k * 5 + i}}))
            .collect();
        Answer::Json(well_behaved(batch, &deliveries))
    })
    .await;
    let options = BayeuxOptions {
        queue_capacity: 2,
        ..quick_options()
    };
    let mut events = start(&server.url(), options, None);
    subscribed(&mut events).await;
    eventually("the first connect", || server.count("/meta/connect") >= 1).await;
    // Two messages fill the queue and the third waits: no connect may go out meanwhile.
    // Proving an absence takes a wait; 300 ms is ample for a client that would not wait.
    let second = eventually("", || server.count("/meta/connect") > 1);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), second)
            .await
            .is_err(),
        "a connect went out while the consumer was behind"
    );
    for n in 1..=15 {
        assert_eq!(
            message(&mut events).await.data(),
            &sonic_rs::json!({"n": n})
        );
    }
    events.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_dropping_or_cancelling_sends_a_disconnect() {
    let server = ScriptedServer::start(|_, batch| {
        let reply = well_behaved(batch, &[]);
        if batch[0]["channel"] == "/meta/connect" {
            Answer::Held(Duration::from_secs(5), reply)
        } else {
            Answer::Json(reply)
        }
    })
    .await;
    let disconnects = || server.count("/meta/disconnect");

    let mut events = start(&server.url(), quick_options(), None);
    subscribed(&mut events).await;
    events.close().await;
    assert_eq!(disconnects(), 1, "close() waits for the disconnect");

    let mut events = start(&server.url(), quick_options(), None);
    subscribed(&mut events).await;
    drop(events);
    eventually("a disconnect after drop", || disconnects() == 2).await;

    let shutdown = CancellationToken::new();
    let http = bayeux::http_client(&quick_options()).unwrap();
    let mut events = BayeuxClient::new(&server.url(), http, ["/v2/me/calls"])
        .unwrap()
        .options(quick_options())
        .spawn(shutdown.clone());
    subscribed(&mut events).await;
    shutdown.cancel();
    assert!(events.recv().await.is_none(), "the client ends");
    eventually("a disconnect after cancel", || disconnects() == 3).await;
    let last = server
        .received()
        .into_iter()
        .rev()
        .find(|r| r.channel() == "/meta/disconnect");
    assert_eq!(last.unwrap().batch[0]["clientId"], "c1");
}

#[test]
fn bad_endpoints_and_channels_are_refused() {
    bayeux::install_crypto_provider();
    let http = reqwest::Client::new();
    let new = |url: &str, channel: &str| BayeuxClient::new(url, http.clone(), [channel]);
    assert!(matches!(
        new("ftp://x/api", "/v2/me/calls"),
        Err(BayeuxClientError::InvalidEndpoint(_))
    ));
    assert!(matches!(
        new("not a url", "/v2/me/calls"),
        Err(BayeuxClientError::InvalidEndpoint(_))
    ));
    assert!(matches!(
        new("http://x/api", "/meta/connect"),
        Err(BayeuxClientError::InvalidChannel(_))
    ));
    assert!(new("https://x/api/v2/notifications", "/v2/me/*").is_ok());
}
