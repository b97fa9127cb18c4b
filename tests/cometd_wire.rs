//! Wire tests of `/api/v2/notifications` over long-polling with raw HTTP requests: exact
//! message shapes, hold/release rules, sessions, auth, ack, bounds and malformed input.

mod cometd_support;
mod common;

use cometd_support::{LpClient, connect_held, is_recording_stop, split};
use common::desktop::Agent;
use common::{TestGateway, as_user, basic, eventually, pb, within};
use serde_json::{Value, json};

/// Starts the test gateway with CometD's default connect timeout (30 s): a connect that
/// should be answered at once but is held fails the test's 5 s wait instead of passing late.
async fn gateway_with_default_timeout() -> TestGateway {
    TestGateway::spawn_with(|c| c.cometd.timeout_ms = 30_000).await
}

/// agent1 goes Ready over gRPC: one event on `/v2/me/devices`, later in the gateway's
/// stream than everything before it. Tests read up to it to prove that something earlier
/// was not delivered, instead of waiting for nothing to arrive.
async fn marker_event(gw: &TestGateway, user: &str) {
    let ready = pb::ReadyRequest {
        workmode: "ManualIn".into(),
    };
    gw.devices()
        .await
        .ready(as_user(user, ready))
        .await
        .unwrap();
}

/// The notifications agent1 receives for the seed scenario: (notificationType, call state).
const SEED: [(&str, &str); 4] = [
    ("StatusChange", "Dialing"),
    ("StatusChange", "Established"),
    ("CallRecordingStateChange", "Established"),
    ("CallRecordingStateChange", "Established"),
];

/// The (notificationType, call state) of each call message.
fn notifications<'a>(events: &[&'a Value]) -> Vec<(&'a str, &'a str)> {
    events
        .iter()
        .map(|e| {
            let data = &e["data"];
            (
                data["notificationType"].as_str().unwrap(),
                data["call"]["state"].as_str().unwrap(),
            )
        })
        .collect()
}

/// Whether `event` is a device message (the marker's).
fn is_device_message(event: &Value) -> bool {
    event["channel"] == "/v2/me/devices"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_connect_subscribe_and_a_held_connect_carries_the_recording_stop() {
    let gw = gateway_with_default_timeout().await;
    let mut client = LpClient::new(&gw, Some(basic("agent1")));
    let response = client
        .http
        .post(format!("{}/handshake", gw.url()))
        .header("authorization", basic("agent1"))
        .body(r#"[{"id":"1","channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/json;charset=UTF-8"
    );
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.starts_with("BAYEUX_BROWSER=")
            && cookie.contains("Path=/")
            && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let reply: Vec<Value> = response.json().await.unwrap();
    let reply = &reply[0];
    assert_eq!(reply["id"], "1");
    assert_eq!(reply["channel"], "/meta/handshake");
    assert_eq!(reply["successful"], true);
    assert_eq!(reply["version"], "1.0");
    assert_eq!(
        reply["supportedConnectionTypes"],
        json!(["websocket", "long-polling"])
    );
    assert_eq!(
        reply["advice"],
        json!({"reconnect": "retry", "interval": 0, "timeout": 30000})
    );
    let client_id = reply["clientId"].as_str().unwrap();
    assert!(client_id.len() >= 20 && client_id.chars().all(|c| c.is_ascii_alphanumeric()));
    client.client_id = client_id.to_owned();

    // The first connect is answered at once (held, it would take 30 s), with the advice.
    let first = within("the first connect's answer", client.connect(None, None)).await;
    assert_eq!(first[0]["successful"], true);
    assert_eq!(first[0]["advice"]["reconnect"], "retry");

    let sub = client.subscribe(json!("/v2/me/calls")).await;
    assert_eq!(
        sub,
        json!({"id": sub["id"], "channel": "/meta/subscribe", "subscription": "/v2/me/calls", "successful": true})
    );

    // A second connect is held until events arrive: it is sent, the gateway holds it,
    // then the seed scenario runs; the held connect answers with its first event, later
    // connects bring the rest.
    let mut poller = client.same_session(&gw);
    let held = tokio::spawn(async move { poller.connect(None, None).await });
    connect_held(&gw, &client.client_id).await;
    let call = gw.seed_recording_scenario().await;
    let released = within("the held connect's answer", held).await.unwrap();
    let (mut events, reply) = split(&released);
    assert_eq!(reply["successful"], true, "{reply}");
    assert!(!events.is_empty(), "an event released the held connect");
    if !events.iter().any(is_recording_stop) {
        events.extend(client.connect_until(is_recording_stop).await);
    }
    let stop = events.last().unwrap();
    assert_eq!(stop["channel"], "/v2/me/calls");
    assert!(stop.get("clientId").is_none() && stop.get("id").is_none());
    let data = &stop["data"];
    assert_eq!(data["messageType"], "CallStateChangeMessage");
    assert_eq!(data["notificationType"], "CallRecordingStateChange");
    assert_eq!(data["phoneNumber"], "15000");
    let call_json = &data["call"];
    assert_eq!(call_json["id"], call.as_str());
    assert_eq!(call_json["state"], "Established");
    assert_eq!(call_json["recordingState"], "Stopped");
    assert_eq!(call_json["userData"]["GSIP_RECORD"], "OFF");
    assert!(
        call_json["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("StartCallRecording"))
    );
    assert_eq!(
        call_json["uri"],
        format!("{}/api/v2/me/calls/{}", gw.http_url(), call.as_str())
    );
    assert_eq!(call_json["path"], format!("/calls/{}", call.as_str()));
    let all: Vec<&Value> = events.iter().collect();
    assert_eq!(
        notifications(&all),
        SEED,
        "every notification of the seed, each once, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_without_credentials_is_denied_and_wrong_passwords_too() {
    let gw = TestGateway::spawn().await;
    for auth in [None, Some("Basic YWdlbnQxOndyb25n".to_owned())] {
        let mut client = LpClient::new(&gw, auth);
        let reply = client.handshake(None).await;
        assert_eq!(reply["successful"], false);
        assert_eq!(reply["error"], "403::Handshake denied");
        assert_eq!(reply["advice"], json!({"reconnect": "none"}));
        assert!(reply.get("clientId").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_authenticates_and_logging_out_ends_the_session() {
    let gw = TestGateway::spawn().await;
    let desktop = Agent::login(&gw.http_url(), "agent1").await;
    let mut client = LpClient::new(&gw, None);
    let url = reqwest::Url::parse(&gw.http_url()).unwrap();
    let jar = reqwest::cookie::Jar::default();
    jar.add_cookie_str(&format!("JSESSIONID={}; Path=/", desktop.jsessionid), &url);
    client.http = reqwest::Client::builder()
        .cookie_provider(std::sync::Arc::new(jar))
        .build()
        .unwrap();
    client.ready("/v2/me/calls").await;
    // The desktop logs out over JSON: its HTTP session ends, and so does the Bayeux one.
    let logout = json!({"operationName": "EndContactCenterSession"});
    desktop.post_ok("/api/v2/me", logout).await;
    let response = client.connect(None, None).await;
    assert_eq!(response[0]["error"], "402::Unknown client");
    assert_eq!(response[0]["advice"]["reconnect"], "handshake");
    assert_eq!(
        client.handshake(None).await["error"],
        "403::Handshake denied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_client_gets_402_and_may_handshake_again() {
    let gw = TestGateway::spawn().await;
    let mut client = LpClient::new(&gw, Some(basic("agent1")));
    client.handshake(None).await;
    let real = client.client_id.clone();
    client.client_id = "nosuchclient".into();
    let response = client.connect(None, None).await;
    assert_eq!(
        response[0],
        json!({"id": response[0]["id"], "channel": "/meta/connect", "successful": false,
               "error": "402::Unknown client", "advice": {"reconnect": "handshake", "interval": 0}})
    );
    // Re-handshake: a new clientId that works.
    let reply = client.handshake(None).await;
    assert_eq!(reply["successful"], true);
    assert_ne!(client.client_id, real);
    assert_eq!(client.connect(None, None).await[0]["successful"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_id_without_its_browser_cookie_is_unknown() {
    let gw = TestGateway::spawn().await;
    let mut owner = LpClient::new(&gw, Some(basic("agent1")));
    owner.handshake(None).await;
    let mut thief = LpClient::new(&gw, Some(basic("agent1")));
    thief.client_id = owner.client_id.clone();
    assert_eq!(
        thief.connect(None, None).await[0]["error"],
        "402::Unknown client"
    );
    assert_eq!(owner.connect(None, None).await[0]["successful"], true);
}

/// When (relative to maxInterval) the session goes is a paused-time unit test
/// (`the_sweeper_expires_a_session_max_interval_after_its_last_connect`, and
/// `a_held_long_poll_outlives_max_interval` for a held connect); here, what the client
/// sees once it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_stops_polling_is_swept_and_then_told_to_handshake() {
    let gw = TestGateway::spawn_with(|c| c.cometd.max_interval_ms = 300).await;
    let mut client = LpClient::new(&gw, Some(basic("agent1")));
    client.ready("/v2/me/calls").await;
    let session = gw.registry.get(&client.client_id).unwrap();
    eventually("the sweeper removes the silent session", || {
        session.removed().is_some()
    })
    .await;
    let response = client.connect(None, None).await;
    assert_eq!(response[0]["error"], "402::Unknown client");
    assert_eq!(response[0]["advice"]["reconnect"], "handshake");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_unsubscribe_no_event_is_delivered() {
    let gw = TestGateway::spawn().await;
    let mut client = LpClient::new(&gw, Some(basic("agent1")));
    client.ready("/v2/me/calls").await;
    let id = client.id();
    let reply = client
        .post("/", json!([{"id": id, "channel": "/meta/unsubscribe", "clientId": client.client_id, "subscription": "/v2/me/calls"}]))
        .await;
    assert_eq!(
        reply[0],
        json!({"id": id, "channel": "/meta/unsubscribe", "subscription": "/v2/me/calls", "successful": true})
    );
    // Still subscribed to the devices: the marker that follows the seed's call events
    // arrives alone.
    assert_eq!(
        client.subscribe(json!("/v2/me/devices")).await["successful"],
        true
    );
    gw.seed_recording_scenario().await;
    marker_event(&gw, "agent1").await;
    let events = client.connect_until(is_device_message).await;
    assert!(events.iter().all(is_device_message), "{events:#?}");
    let again = client
        .post("/", json!([{"channel": "/meta/unsubscribe", "clientId": client.client_id, "subscription": "/v2/me/calls"}]))
        .await;
    assert_eq!(again[0]["error"], "400::channel_missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_wakes_the_held_connect_with_reconnect_none() {
    let gw = TestGateway::spawn().await;
    let mut client = LpClient::new(&gw, Some(basic("agent1")));
    client.ready("/v2/me/calls").await;
    let mut poller = client.same_session(&gw);
    let held = tokio::spawn(async move { poller.connect(None, None).await });
    connect_held(&gw, &client.client_id).await;
    let id = client.id();
    let reply = client
        .post(
            "/disconnect",
            json!([{"id": id, "channel": "/meta/disconnect", "clientId": client.client_id}]),
        )
        .await;
    assert_eq!(
        reply[0],
        json!({"id": id, "channel": "/meta/disconnect", "successful": true})
    );
    let response = within("the held connect's answer", held).await.unwrap();
    assert_eq!(response[0]["successful"], true);
    assert_eq!(response[0]["advice"]["reconnect"], "none");
    assert_eq!(
        client.connect(None, None).await[0]["error"],
        "402::Unknown client"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ack_a_lost_connect_response_is_delivered_again() {
    let gw = gateway_with_default_timeout().await;
    let mut client = LpClient::new(&gw, Some(basic("agent1")));
    let reply = client.handshake(Some(json!({"ack": true}))).await;
    assert_eq!(reply["ext"], json!({"ack": true}));
    let first = client.connect(Some(0), Some(0)).await;
    // `ext.ack` is a position in the event log: where the session started.
    let start = first[0]["ext"]["ack"].as_u64().expect("a position");
    client.subscribe(json!("/v2/me/calls")).await;
    let session = gw.registry.get(&client.client_id).unwrap();
    let call = gw.seed_recording_scenario().await;
    eventually("the seed's four events are queued", || {
        session.queued() == 4
    })
    .await;
    // This response is "lost": the client never sees its position.
    let lost = within("the first events", client.connect(None, Some(start))).await;
    let (events, reply) = split(&lost);
    assert!(!events.is_empty());
    let position = reply["ext"]["ack"].as_u64().expect("a position");
    assert!(position >= start + 4, "{position} after {start}");
    // The next connect still acknowledges the start: everything comes again, at once
    // (held, it would take 30 s), with the same position.
    let again = within("the resent events", client.connect(None, Some(start))).await;
    let (resent, reply) = split(&again);
    assert_eq!(events.len(), 4);
    assert_eq!(resent, events);
    assert_eq!(reply["ext"], json!({"ack": position}));
    // Acknowledging the position clears the queue: after a Hold, the next connect brings
    // the Hold's event and nothing sent before.
    let delivered: Vec<Value> = resent;
    let mut calls = gw.calls().await;
    let hold = pb::HoldRequest { call_id: call };
    calls.hold(as_user("agent1", hold)).await.unwrap();
    let after = within("the Hold's events", client.connect(None, Some(position))).await;
    let (fresh, _) = split(&after);
    assert!(!fresh.is_empty());
    for event in &fresh {
        assert!(!delivered.contains(event), "delivered again: {event}");
        assert_eq!(event["data"]["call"]["state"], "Held", "{event}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_events_are_never_delivered() {
    let gw = TestGateway::spawn().await;
    let mut agent1 = LpClient::new(&gw, Some(basic("agent1")));
    agent1.ready("/v2/me/**").await;
    let mut agent3 = LpClient::new(&gw, Some(basic("agent3")));
    agent3.ready("/v2/me/**").await;
    let denied = agent3.subscribe(json!("/v2/users/agent1/calls")).await;
    assert_eq!(
        denied["error"],
        "403:denied_by_security_policy:subscribe_denied"
    );
    assert_eq!(agent3.subscribe(json!("/**")).await["successful"], false);
    gw.seed_recording_scenario().await;
    let mine = agent1.connect_until(is_recording_stop).await;
    assert!(mine.iter().all(|e| e["data"]["phoneNumber"] == "15000"));
    // agent3's own marker follows all of agent1's events in the stream: it arrives alone.
    marker_event(&gw, "agent3").await;
    let theirs = agent3.connect_until(is_device_message).await;
    assert_eq!(theirs.len(), 1, "{theirs:#?}");
    assert_eq!(theirs[0]["data"]["devices"][0]["phoneNumber"], "15002");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_and_an_exact_subscription_deliver_each_event_once() {
    let gw = TestGateway::spawn().await;
    let mut client = LpClient::new(&gw, Some(basic("agent1")));
    client.ready("/v2/me/calls").await;
    let both = client
        .subscribe(json!(["/v2/me/*", "/v2/me/devices"]))
        .await;
    assert_eq!(both["subscription"], json!(["/v2/me/*", "/v2/me/devices"]));
    assert_eq!(both["successful"], true);
    let call = gw.seed_recording_scenario().await;
    // The marker (a device message, matching two subscriptions too) comes after all of
    // the call's messages: everything before it is everything delivered for the call.
    marker_event(&gw, "agent1").await;
    let events = client.connect_until(is_device_message).await;
    let (calls, devices): (Vec<&Value>, Vec<&Value>) =
        events.iter().partition(|e| e["channel"] == "/v2/me/calls");
    assert_eq!(devices.len(), 1, "the marker once: {devices:#?}");
    assert!(
        calls
            .iter()
            .all(|e| e["data"]["call"]["id"] == call.as_str())
    );
    // Each of the seed's notifications once, in order, though each matches two
    // subscriptions.
    assert_eq!(notifications(&calls), SEED, "{calls:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_is_dropped_at_its_queue_bound_and_told_to_handshake() {
    let gw = TestGateway::spawn_with(|c| {
        c.cometd.max_queue = 3;
        c.cometd.max_interval_ms = 60_000;
    })
    .await;
    let mut client = LpClient::new(&gw, Some(basic("agent1")));
    client.ready("/v2/me/calls").await;
    let session = gw.registry.get(&client.client_id).unwrap();
    // The client stops polling; more than 3 events arrive for it (the seed has 4).
    gw.seed_recording_scenario().await;
    eventually("the session is dropped at its bound", || {
        session.removed().is_some()
    })
    .await;
    let response = client.connect(None, None).await;
    assert_eq!(response.len(), 1, "the queue was dropped with the session");
    assert_eq!(response[0]["error"], "402::Unknown client");
    assert_eq!(response[0]["advice"]["reconnect"], "handshake");
    // A well-behaved client under the same bound gets everything: agent3's two events of
    // a call, ringing then established.
    let mut fresh = LpClient::new(&gw, Some(basic("agent3")));
    fresh.ready("/v2/me/calls").await;
    let call = gw.established_call("agent1", "agent3", "15002").await;
    let events = fresh
        .connect_until(|e| e["data"]["call"]["state"] == "Established")
        .await;
    let states: Vec<&str> = events
        .iter()
        .inspect(|e| assert_eq!(e["data"]["call"]["id"], call.as_str()))
        .map(|e| e["data"]["call"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["Ringing", "Established"], "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_session_of_one_browser_gets_the_multiple_clients_advice() {
    let gw = gateway_with_default_timeout().await;
    let mut tab1 = LpClient::new(&gw, Some(basic("agent1")));
    tab1.ready("/v2/me/calls").await;
    let mut tab2 = LpClient::new(&gw, Some(basic("agent1")));
    tab2.http = tab1.http.clone(); // same cookie store: same BAYEUX_BROWSER
    tab2.ready("/v2/me/calls").await;
    let mut poller = tab1.same_session(&gw);
    let held = tokio::spawn(async move { poller.connect(None, None).await });
    connect_held(&gw, &tab1.client_id).await;
    // Answered at once (held, it would take 30 s).
    let response = within("tab2's connect", tab2.connect(None, None)).await;
    assert_eq!(response[0]["successful"], true);
    assert_eq!(
        response[0]["advice"],
        json!({"multiple-clients": true, "reconnect": "retry", "interval": 2000})
    );
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_connect_supersedes_the_held_one() {
    let gw = TestGateway::spawn().await;
    let mut client = LpClient::new(&gw, Some(basic("agent1")));
    client.ready("/v2/me/calls").await;
    let body = json!([{"channel": "/meta/connect", "clientId": client.client_id, "connectionType": "long-polling"}]).to_string();
    let http = client.http.clone();
    let url = format!("{}/connect", gw.url());
    let first = tokio::spawn(async move {
        http.post(url)
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    connect_held(&gw, &client.client_id).await;
    let mut newer = client.same_session(&gw);
    // A held one (advice timeout 300 ms): a connect answered at once supersedes nothing.
    let newer = tokio::spawn(async move { newer.connect(Some(300), None).await });
    assert_eq!(
        within("the superseded connect's answer", first)
            .await
            .unwrap(),
        409
    );
    let newer = within("the newer connect's answer", newer).await.unwrap();
    assert_eq!(newer[0]["successful"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_get_bayeux_errors_never_a_500() {
    let gw = TestGateway::spawn().await;
    let mut client = LpClient::new(&gw, Some(basic("agent1")));
    client.ready("/v2/me/calls").await;
    let cid = client.client_id.clone();
    for body in [
        "not json",
        "42",
        "[]",
        "[1]",
        "\"x\"",
        "[{\"channel\":\"/meta/connect\"},2]",
    ] {
        let (status, _) = client.post_raw("/", body.into()).await;
        assert_eq!(status, 400, "{body}");
    }
    let cases: Vec<(Value, &str)> = vec![
        (json!({"id": "1"}), "400::channel missing"),
        (json!({"id": "2", "channel": 7}), "400::channel missing"),
        (
            json!({"id": "3", "channel": "no-slash"}),
            "400::channel_invalid",
        ),
        (
            json!({"id": {"x": 1}, "channel": "/meta/connect"}),
            "400::id_invalid",
        ),
        (
            json!({"id": "5", "channel": "/meta/connect"}),
            "402::Unknown client",
        ),
        (
            json!({"id": "6", "channel": "/meta/subscribe", "clientId": 12}),
            "402::Unknown client",
        ),
        (
            json!({"id": "7", "channel": "/meta/subscribe", "clientId": cid}),
            "403::subscription_missing",
        ),
        (
            json!({"id": "8", "channel": "/meta/subscribe", "clientId": cid, "subscription": 5}),
            "403::subscription_invalid",
        ),
        (
            json!({"id": "9", "channel": "/meta/subscribe", "clientId": cid, "subscription": "/a/*/b"}),
            "403::subscription_invalid",
        ),
        (
            json!({"id": "10", "channel": "/meta/subscribe", "clientId": cid, "subscription": "/meta/connect"}),
            "403::subscribe_failed",
        ),
        (
            json!({"id": "11", "channel": "/meta/subscribe", "clientId": cid, "subscription": ["/v2/me/calls", "/v2/supervisor/x"]}),
            "403:denied_by_security_policy:subscribe_denied",
        ),
        (
            json!({"id": "12", "channel": "/v2/me/calls", "clientId": cid, "data": {}}),
            "403::publish denied",
        ),
        (
            json!({"id": "13", "channel": "/meta/nothing", "clientId": cid}),
            "404:/meta/nothing:Unknown Channel",
        ),
        (
            json!({"id": "14", "channel": "/meta/handshake", "supportedConnectionTypes": ["carrier-pigeon"]}),
            "400::no_common_transport",
        ),
    ];
    for (message, error) in &cases {
        let (status, body) = client.post_raw("/", json!([message]).to_string()).await;
        assert_eq!(status, 200, "{message}");
        let reply = &body[0];
        assert_eq!(reply["successful"], false, "{message}");
        assert_eq!(reply["error"], *error, "{message}");
    }
    // Each message of a batch gets its own reply; a handshake must be alone.
    let (status, body) = client
        .post_raw("/", json!([{"id": "a", "channel": "/meta/handshake"}, {"id": "b", "channel": "/meta/connect"}]).to_string())
        .await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().unwrap().len(), 2);
    assert!(
        body.as_array()
            .unwrap()
            .iter()
            .all(|r| r["error"] == "400::handshake_not_alone")
    );
    // An oversized batch is refused before it is read to its end, so its connection cannot
    // carry another request, and the reply says so (or a client's next request on it would
    // meet the close instead of a reply).
    let oversized = reqwest::Client::new()
        .post(gw.url())
        .header("authorization", basic("agent1"))
        .header("content-type", "application/json")
        .body(format!("[{}]", "{\"channel\":\"/x\"},".repeat(5000) + "{}"))
        .send()
        .await
        .unwrap();
    assert_eq!(oversized.status(), 413);
    assert_eq!(oversized.headers()["connection"], "close");
    // The session survived all of it.
    assert_eq!(client.connect(Some(0), None).await[0]["successful"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_without_an_upgrade_is_an_unknown_transport() {
    let gw = TestGateway::spawn().await;
    let response = reqwest::get(gw.url()).await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(response.text().await.unwrap(), "Unknown Bayeux Transport");
}

/// At `cometd.max_sessions` live sessions a further handshake is refused with
/// `503::too_many_sessions` and advice to handshake again later; the sessions that exist go
/// on, and once one ends a handshake succeeds again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_beyond_max_sessions_get_too_many_sessions() {
    let gw = TestGateway::spawn_with(|c| c.cometd.max_sessions = 2).await;
    let mut first = LpClient::new(&gw, Some(basic("agent1")));
    first.ready("/v2/me/calls").await;
    let mut second = LpClient::new(&gw, Some(basic("agent2")));
    second.ready("/v2/me/calls").await;
    let mut third = LpClient::new(&gw, Some(basic("agent3")));
    let refused = third.handshake(None).await;
    assert_eq!(refused["successful"], false, "{refused}");
    assert_eq!(refused["error"], "503::too_many_sessions");
    assert_eq!(
        refused["advice"],
        json!({"reconnect": "handshake", "interval": 1000})
    );
    assert!(refused.get("clientId").is_none(), "{refused}");
    assert_eq!(gw.registry.len(), 2);
    assert_eq!(
        first.connect(Some(0), None).await[0]["successful"],
        true,
        "existing sessions go on"
    );
    let id = first.id();
    let bye = json!([{"id": id, "channel": "/meta/disconnect", "clientId": first.client_id}]);
    assert_eq!(first.post("/disconnect", bye).await[0]["successful"], true);
    let admitted = third.handshake(None).await;
    assert_eq!(admitted["successful"], true, "{admitted}");
}

/// One HTTP/1.1 connection driven by hand, so that a test can close it while its request
/// is held (reqwest gives no handle on its pooled connections).
struct RawConnection(tokio::net::TcpStream);

impl RawConnection {
    async fn open(gw: &TestGateway) -> Self {
        Self(tokio::net::TcpStream::connect(gw.http_addr).await.unwrap())
    }

    /// Sends a Bayeux batch to the notifications path.
    async fn send(&mut self, batch: &Value, headers: &str) {
        use tokio::io::AsyncWriteExt;
        let body = batch.to_string();
        let request = format!(
            "POST /api/v2/notifications HTTP/1.1\r\nhost: localhost\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n{headers}\r\n{body}",
            body.len()
        );
        self.0.write_all(request.as_bytes()).await.unwrap();
    }

    /// Reads one response: its head and its body as JSON.
    async fn read(&mut self) -> (String, Value) {
        use tokio::io::AsyncReadExt;
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(bytes[..end].to_vec()).unwrap();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .expect("a content-length");
                if bytes.len() >= end + 4 + length {
                    let body = serde_json::from_slice(&bytes[end + 4..end + 4 + length]).unwrap();
                    return (head, body);
                }
            }
            let read = self.0.read(&mut chunk).await.unwrap();
            assert!(read > 0, "the connection closed mid-response");
            bytes.extend_from_slice(&chunk[..read]);
        }
    }

    async fn exchange(&mut self, batch: Value, headers: &str) -> (String, Value) {
        self.send(&batch, headers).await;
        within("a response", self.read()).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_connect_whose_client_leaves_keeps_the_messages_for_the_next_connect() {
    let gw = gateway_with_default_timeout().await;
    let mut first = RawConnection::open(&gw).await;
    let auth = format!("authorization: {}\r\n", basic("agent1"));
    let handshake = json!([{"channel": "/meta/handshake", "version": "1.0",
        "supportedConnectionTypes": ["long-polling"]}]);
    let (head, reply) = first.exchange(handshake, &auth).await;
    assert_eq!(reply[0]["successful"], true, "{reply}");
    let client_id = reply[0]["clientId"].as_str().unwrap().to_owned();
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("the browser cookie")
        .to_owned();
    let cookie = format!("cookie: {cookie}\r\n");
    let connect = |timeout: Option<u64>| {
        let mut message = json!({"channel": "/meta/connect", "clientId": client_id,
            "connectionType": "long-polling"});
        if let Some(timeout) = timeout {
            message["advice"] = json!({"timeout": timeout});
        }
        json!([message])
    };
    let (_, reply) = first.exchange(connect(Some(0)), &cookie).await;
    assert_eq!(reply[0]["successful"], true, "{reply}");
    let subscribe = json!([{"channel": "/meta/subscribe", "clientId": client_id,
        "subscription": "/v2/me/calls"}]);
    let (_, reply) = first.exchange(subscribe, &cookie).await;
    assert_eq!(reply[0]["successful"], true, "{reply}");
    // The connect is held (for up to 30 s); its client goes away.
    first.send(&connect(None), &cookie).await;
    connect_held(&gw, &client_id).await;
    drop(first);
    let session = gw.registry.get(&client_id).unwrap();
    eventually("the gateway ends the hold of a client that left", || {
        !session.is_held()
    })
    .await;
    // Events committed now are not written to the closed connection: the session's next
    // connect, on a new one, gets all four at once.
    gw.seed_recording_scenario().await;
    eventually("the seed's four events are queued", || {
        session.queued() == 4
    })
    .await;
    let mut second = RawConnection::open(&gw).await;
    let (_, response) = second.exchange(connect(None), &cookie).await;
    let response = response.as_array().unwrap();
    let (events, reply) = split(response);
    assert_eq!(reply["successful"], true, "{reply}");
    let events: Vec<&Value> = events.iter().collect();
    assert_eq!(notifications(&events), SEED);
}
