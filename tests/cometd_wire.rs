//! Wire tests of `/api/v2/notifications` over long-polling with raw HTTP requests: exact
//! message shapes, hold/release rules, sessions, auth, ack, bounds and malformed input.

mod cometd_support;

use std::time::{Duration, Instant};

use cometd_support::{BayeuxGateway, Desktop, LpClient, basic, split};
use serde_json::{Value, json};

#[tokio::test]
async fn handshake_connect_subscribe_and_a_held_connect_carries_the_recording_stop() {
    let gw = BayeuxGateway::spawn().await;
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
        json!({"reconnect": "retry", "interval": 0, "timeout": 5000})
    );
    let client_id = reply["clientId"].as_str().unwrap();
    assert!(client_id.len() >= 20 && client_id.chars().all(|c| c.is_ascii_alphanumeric()));
    client.client_id = client_id.to_owned();

    // The first connect is answered at once, with the advice.
    let started = Instant::now();
    let first = client.connect(None, None).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(first[0]["successful"], true);
    assert_eq!(first[0]["advice"]["reconnect"], "retry");

    let sub = client.subscribe(json!("/v2/me/calls")).await;
    assert_eq!(
        sub,
        json!({"id": sub["id"], "channel": "/meta/subscribe", "subscription": "/v2/me/calls", "successful": true})
    );

    // A second connect is held until events arrive.
    let held = {
        let mut c = LpClient::new(&gw, None);
        c.http = client.http.clone();
        c.client_id = client.client_id.clone();
        tokio::spawn(async move {
            let mut events = Vec::new();
            loop {
                let response = c.connect(None, None).await;
                let (got, reply) = split(&response);
                assert_eq!(reply["successful"], true, "{reply}");
                events.extend(got);
                if events.iter().any(|e| {
                    e["data"]["recordingState"] == "Stopped"
                        || e["data"]["call"]["recordingState"] == "Stopped"
                }) {
                    return events;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!held.is_finished(), "the connect is held");
    let call = gw.seed_recording_scenario();
    let events = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .unwrap()
        .unwrap();
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
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["data"]["notificationType"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"StatusChange"), "{kinds:?}");
}

#[tokio::test]
async fn a_handshake_without_credentials_is_denied_and_wrong_passwords_too() {
    let gw = BayeuxGateway::spawn().await;
    for auth in [None, Some("Basic YWdlbnQxOndyb25n".to_owned())] {
        let mut client = LpClient::new(&gw, auth);
        let reply = client.handshake(None).await;
        assert_eq!(reply["successful"], false);
        assert_eq!(reply["error"], "403::Handshake denied");
        assert_eq!(reply["advice"], json!({"reconnect": "none"}));
        assert!(reply.get("clientId").is_none());
    }
}

#[tokio::test]
async fn the_session_cookie_authenticates_and_logging_out_ends_the_session() {
    let gw = BayeuxGateway::spawn().await;
    let desktop = Desktop::login(&gw, "agent1").await;
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

#[tokio::test]
async fn an_unknown_client_gets_402_and_may_handshake_again() {
    let gw = BayeuxGateway::spawn().await;
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

#[tokio::test]
async fn a_client_id_without_its_browser_cookie_is_unknown() {
    let gw = BayeuxGateway::spawn().await;
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

#[tokio::test]
async fn a_session_that_stops_polling_expires_after_max_interval() {
    let gw = BayeuxGateway::spawn_with(|c| c.cometd.max_interval_ms = 300).await;
    let mut client = LpClient::new(&gw, Some(basic("agent1")));
    client.ready("/v2/me/calls").await;
    // Still alive within maxInterval...
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(client.connect(Some(0), None).await[0]["successful"], true);
    // ...gone after it.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let response = client.connect(None, None).await;
    assert_eq!(response[0]["error"], "402::Unknown client");
    assert_eq!(response[0]["advice"]["reconnect"], "handshake");
}

#[tokio::test]
async fn a_held_connect_is_never_swept_and_returns_after_the_timeout() {
    let gw = BayeuxGateway::spawn_with(|c| {
        c.cometd.max_interval_ms = 200;
        c.cometd.timeout_ms = 800;
    })
    .await;
    let mut client = LpClient::new(&gw, Some(basic("agent1")));
    client.ready("/v2/me/calls").await;
    let started = Instant::now();
    let response = client.connect(None, None).await;
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(750), "{elapsed:?}");
    assert_eq!(
        response,
        vec![json!({"id": response[0]["id"], "channel": "/meta/connect", "successful": true})]
    );
    assert_eq!(client.connect(Some(0), None).await[0]["successful"], true);
}

#[tokio::test]
async fn after_unsubscribe_no_event_is_delivered() {
    let gw = BayeuxGateway::spawn().await;
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
    gw.seed_recording_scenario();
    let response = client.connect(Some(300), None).await;
    assert_eq!(split(&response).0, Vec::<Value>::new());
    let again = client
        .post("/", json!([{"channel": "/meta/unsubscribe", "clientId": client.client_id, "subscription": "/v2/me/calls"}]))
        .await;
    assert_eq!(again[0]["error"], "400::channel_missing");
}

#[tokio::test]
async fn disconnect_wakes_the_held_connect_with_reconnect_none() {
    let gw = BayeuxGateway::spawn().await;
    let mut client = LpClient::new(&gw, Some(basic("agent1")));
    client.ready("/v2/me/calls").await;
    let mut poller = LpClient::new(&gw, None);
    poller.http = client.http.clone();
    poller.client_id = client.client_id.clone();
    let held = tokio::spawn(async move { poller.connect(None, None).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
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
    let response = tokio::time::timeout(Duration::from_secs(2), held)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response[0]["successful"], true);
    assert_eq!(response[0]["advice"]["reconnect"], "none");
    assert_eq!(
        client.connect(None, None).await[0]["error"],
        "402::Unknown client"
    );
}

#[tokio::test]
async fn with_ack_a_lost_connect_response_is_delivered_again() {
    let gw = BayeuxGateway::spawn().await;
    let mut client = LpClient::new(&gw, Some(basic("agent1")));
    let reply = client.handshake(Some(json!({"ack": true}))).await;
    assert_eq!(reply["ext"], json!({"ack": true}));
    let first = client.connect(Some(0), Some(0)).await;
    assert_eq!(first[0]["ext"], json!({"ack": 1}));
    client.subscribe(json!("/v2/me/calls")).await;
    gw.seed_recording_scenario();
    // This response is "lost": the client never sees batch 2.
    let lost = client.connect(None, Some(1)).await;
    let (events, reply) = split(&lost);
    assert!(!events.is_empty());
    assert_eq!(reply["ext"], json!({"ack": 2}));
    // The next connect still acknowledges 1: everything comes again, at once.
    let started = Instant::now();
    let again = client.connect(None, Some(1)).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    let (resent, reply) = split(&again);
    assert_eq!(resent, events);
    assert_eq!(reply["ext"], json!({"ack": 3}));
    // Acknowledging 3 clears the queue: the next connect is held and brings nothing new.
    let quiet = client.connect(Some(300), Some(3)).await;
    assert_eq!(split(&quiet).0, Vec::<Value>::new());
}

#[tokio::test]
async fn another_users_events_are_never_delivered() {
    let gw = BayeuxGateway::spawn().await;
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
    gw.seed_recording_scenario();
    let (mine, _) = split(&agent1.connect(None, None).await);
    assert!(!mine.is_empty());
    assert!(mine.iter().all(|e| e["data"]["phoneNumber"] == "15000"));
    let (theirs, _) = split(&agent3.connect(Some(500), None).await);
    assert_eq!(theirs, Vec::<Value>::new());
}

#[tokio::test]
async fn a_wildcard_and_an_exact_subscription_deliver_each_event_once() {
    let gw = BayeuxGateway::spawn().await;
    let mut client = LpClient::new(&gw, Some(basic("agent1")));
    client.ready("/v2/me/calls").await;
    let both = client
        .subscribe(json!(["/v2/me/*", "/v2/me/devices"]))
        .await;
    assert_eq!(both["subscription"], json!(["/v2/me/*", "/v2/me/devices"]));
    assert_eq!(both["successful"], true);
    let call = gw.established_call("agent1", "agent2", "15001");
    let (events, _) = split(&client.connect(None, None).await);
    let sequences: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["data"]["notificationType"].to_string(),
                e["data"]["call"]["state"].to_string(),
            )
        })
        .collect();
    let mut unique = sequences.clone();
    unique.dedup();
    assert_eq!(sequences, unique, "no event twice");
    assert!(
        events
            .iter()
            .all(|e| e["data"]["call"]["id"] == call.as_str())
    );
}

#[tokio::test]
async fn a_stalled_client_is_dropped_at_its_queue_bound_and_told_to_handshake() {
    let gw = BayeuxGateway::spawn_with(|c| {
        c.cometd.max_queue = 3;
        c.cometd.max_interval_ms = 60_000;
    })
    .await;
    let mut client = LpClient::new(&gw, Some(basic("agent1")));
    client.ready("/v2/me/calls").await;
    // The client stops polling; more than 3 events arrive for it.
    gw.seed_recording_scenario();
    let response = client.connect(None, None).await;
    assert_eq!(response.len(), 1, "the queue was dropped with the session");
    assert_eq!(response[0]["error"], "402::Unknown client");
    assert_eq!(response[0]["advice"]["reconnect"], "handshake");
    // A well-behaved client under the same bound gets everything.
    let mut fresh = LpClient::new(&gw, Some(basic("agent3")));
    fresh.ready("/v2/me/calls").await;
    let call = gw.established_call("agent1", "agent3", "15002");
    let (events, reply) = split(&fresh.connect(None, None).await);
    assert_eq!(reply["successful"], true);
    assert!(!events.is_empty() && events.len() <= 3);
    assert!(
        events
            .iter()
            .all(|e| e["data"]["call"]["id"] == call.as_str())
    );
}

#[tokio::test]
async fn a_second_session_of_one_browser_gets_the_multiple_clients_advice() {
    let gw = BayeuxGateway::spawn().await;
    let mut tab1 = LpClient::new(&gw, Some(basic("agent1")));
    tab1.ready("/v2/me/calls").await;
    let mut tab2 = LpClient::new(&gw, Some(basic("agent1")));
    tab2.http = tab1.http.clone(); // same cookie store: same BAYEUX_BROWSER
    tab2.ready("/v2/me/calls").await;
    let mut poller = LpClient::new(&gw, None);
    poller.http = tab1.http.clone();
    poller.client_id = tab1.client_id.clone();
    let held = tokio::spawn(async move { poller.connect(None, None).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let response = tab2.connect(None, None).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(response[0]["successful"], true);
    assert_eq!(
        response[0]["advice"],
        json!({"multiple-clients": true, "reconnect": "retry", "interval": 2000})
    );
    held.abort();
}

#[tokio::test]
async fn a_newer_connect_supersedes_the_held_one() {
    let gw = BayeuxGateway::spawn().await;
    let mut client = LpClient::new(&gw, Some(basic("agent1")));
    client.ready("/v2/me/calls").await;
    let mut old = LpClient::new(&gw, None);
    old.http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
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
    tokio::time::sleep(Duration::from_millis(200)).await;
    let newer = tokio::spawn({
        let mut c = LpClient::new(&gw, None);
        c.http = client.http.clone();
        c.client_id = client.client_id.clone();
        async move { c.connect(Some(300), None).await }
    });
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(2), first)
            .await
            .unwrap()
            .unwrap(),
        409
    );
    assert_eq!(newer.await.unwrap()[0]["successful"], true);
}

#[tokio::test]
async fn malformed_messages_get_bayeux_errors_never_a_500() {
    let gw = BayeuxGateway::spawn().await;
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
    let (status, _) = client
        .post_raw(
            "/",
            format!("[{}]", "{\"channel\":\"/x\"},".repeat(5000) + "{}"),
        )
        .await;
    assert_eq!(status, 413);
    // The session survived all of it.
    assert_eq!(client.connect(Some(0), None).await[0]["successful"], true);
}

#[tokio::test]
async fn get_without_an_upgrade_is_an_unknown_transport() {
    let gw = BayeuxGateway::spawn().await;
    let response = reqwest::get(gw.url()).await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(response.text().await.unwrap(), "Unknown Bayeux Transport");
}
