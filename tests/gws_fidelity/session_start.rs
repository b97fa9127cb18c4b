//! Point 6: StartContactCenterSession's `place`, `devicePath`, `queue` and `loginCode` are
//! used or refused clearly (and a refusal changes nothing), on JSON and gRPC; an agent Ready
//! in `AutoIn` work mode has a ringing call answered for it.

use serde_json::{Value, json};
use voice_gateway::grpc::pb;

use crate::cometd_support::LpClient;
use crate::common::TestGateway;
use crate::common::basic;
use crate::common::desktop::Agent;
use crate::support::{as_user, cometd_until, watch, watch_until};

/// POSTs `body` to `path` as `user` with Basic credentials; returns status and body.
async fn post(gw: &TestGateway, user: &str, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", gw.http_url()))
        .basic_auth(user, Some("demo"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// agent1's device as the JSON API shows it.
async fn device_state(gw: &TestGateway) -> Value {
    let response = reqwest::Client::new()
        .get(format!("{}/api/v2/me/devices?fields=*", gw.http_url()))
        .basic_auth("agent1", Some("demo"))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    body["devices"][0]["deviceState"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_start_parameters_are_used_or_refused_over_json() {
    let gw = TestGateway::spawn().await;
    let end = json!({"operationName": "EndContactCenterSession"});
    assert_eq!(post(&gw, "agent1", "/api/v2/me", end).await.0, 200);
    assert_eq!(device_state(&gw).await, "Inactive");
    let start = |extra: Value| {
        let mut body = json!({"operationName": "StartContactCenterSession", "channels": ["voice"]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let refusals = [
        (json!({"place": "99999"}), 404, 6, "place 99999"),
        (
            json!({"devicePath": "/api/v2/me/devices/not-mine"}),
            404,
            6,
            "not-mine",
        ),
        (json!({"queue": "8001"}), 400, 2, "queue"),
        (json!({"loginCode": "4711"}), 400, 2, "loginCode"),
    ];
    for (extra, status, code, names) in refusals {
        let (got, body) = post(&gw, "agent1", "/api/v2/me", start(extra.clone())).await;
        assert_eq!(
            (got, &body["statusCode"]),
            (status, &json!(code)),
            "{extra}: {body}"
        );
        let message = body["statusMessage"].as_str().unwrap();
        assert!(message.contains(names), "{message}");
        assert_eq!(
            device_state(&gw).await,
            "Inactive",
            "{extra} changed nothing"
        );
    }
    let device = {
        let response = reqwest::Client::new()
            .get(format!("{}/api/v2/me/devices", gw.http_url()))
            .basic_auth("agent1", Some("demo"))
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        body["uris"][0].as_str().unwrap().to_owned()
    };
    let own = json!({"place": "15000", "devicePath": device});
    let (got, body) = post(&gw, "agent1", "/api/v2/me", start(own)).await;
    assert_eq!(got, 200, "{body}");
    assert_eq!(device_state(&gw).await, "Active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_start_takes_a_place_over_grpc_and_refuses_a_queue() {
    let gw = TestGateway::spawn().await;
    let mut devices = gw.devices().await;
    let status = devices
        .start_contact_center_session(as_user(
            "agent1",
            pb::StartContactCenterSessionRequest {
                channels: vec!["voice".into()],
                queue: "8001".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("a queue is refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.metadata().get("gws-status-code").unwrap(), "2");
    let status = devices
        .start_contact_center_session(as_user(
            "agent1",
            pb::StartContactCenterSessionRequest {
                channels: vec!["voice".into()],
                place: "15001".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("another user's place is not found");
    assert_eq!(status.code(), tonic::Code::NotFound);
    let device = devices
        .start_contact_center_session(as_user(
            "agent1",
            pb::StartContactCenterSessionRequest {
                channels: vec!["voice".into()],
                place: "15000".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("the user's own place")
        .into_inner()
        .device
        .unwrap();
    assert_eq!(device.device_state(), pb::DeviceState::Active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_in_agent_has_ringing_calls_answered_seen_on_grpc() {
    let gw = TestGateway::spawn().await;
    let mut devices = gw.devices().await;
    devices
        .ready(as_user(
            "agent2",
            pb::ReadyRequest {
                workmode: "AutoIn".into(),
            },
        ))
        .await
        .expect("Ready AutoIn");
    let mut calls = gw.calls().await;
    let mut agent2 = watch(&mut calls, "agent2").await;
    let dialed = calls
        .dial(as_user(
            "agent1",
            pb::DialRequest {
                destination: "15001".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .call
        .unwrap();
    let events = watch_until(&mut agent2, |e| {
        e.call
            .as_ref()
            .is_some_and(|c| c.state() == pb::CallState::Established)
    })
    .await;
    let states: Vec<pb::CallState> = events
        .iter()
        .filter_map(|e| e.call.as_ref())
        .filter(|c| c.id == dialed.id)
        .map(|c| c.state())
        .collect();
    assert_eq!(states, [pb::CallState::Ringing, pb::CallState::Established]);
    let caller = calls
        .get_call(as_user(
            "agent1",
            pb::GetCallRequest {
                call_id: dialed.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .call
        .unwrap();
    assert_eq!(caller.state(), pb::CallState::Established);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_in_agent_has_ringing_calls_answered_seen_on_cometd() {
    let gw = TestGateway::spawn().await;
    let agent2 = Agent::login(&gw.http_url(), "agent2").await;
    agent2
        .post_ok(
            "/api/v2/me/channels/voice",
            json!({"operationName": "Ready", "workmode": "AutoIn"}),
        )
        .await;
    let mut notifications = LpClient::new(&gw, Some(basic("agent2")));
    notifications.ready("/v2/me/calls").await;
    let agent1 = Agent::login(&gw.http_url(), "agent1").await;
    let call = agent1.dial("15001").await;
    let events = cometd_until(&mut notifications, |e| {
        e["data"]["call"]["state"] == "Established"
    })
    .await;
    let states: Vec<&Value> = events
        .iter()
        .filter(|e| e["data"]["call"]["id"] == call.as_str())
        .map(|e| &e["data"]["call"]["state"])
        .collect();
    assert_eq!(states, [&json!("Ringing"), &json!("Established")]);
    let mine = agent1.get_ok(&format!("/api/v2/me/calls/{call}")).await;
    assert_eq!(mine["call"]["state"], "Established");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_in_agent_still_answers_by_hand() {
    let gw = TestGateway::spawn().await;
    let agent2 = Agent::login(&gw.http_url(), "agent2").await;
    agent2
        .post_ok(
            "/api/v2/me/channels/voice",
            json!({"operationName": "Ready", "workmode": "ManualIn"}),
        )
        .await;
    let agent1 = Agent::login(&gw.http_url(), "agent1").await;
    let call = agent1.dial("15001").await;
    let ringing = agent2.get_ok(&format!("/api/v2/me/calls/{call}")).await;
    assert_eq!(ringing["call"]["state"], "Ringing");
}
