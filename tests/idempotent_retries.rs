//! Idempotent retries on both fronts: Dial, StartCallRecording and AttachUserData sent
//! again with one idempotency key are done once (one call, one recording event, one user
//! data event), and every retry gets the first reply; the same key with another request is
//! refused and changes nothing; a full key store refuses new keys.

mod common;

use common::desktop::Agent;
use common::*;
use pb::NotificationType as N;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tonic::Code;

/// Adds an idempotency key to a gRPC request.
fn keyed<T>(key: &str, mut request: tonic::Request<T>) -> tonic::Request<T> {
    request
        .metadata_mut()
        .insert("idempotency-key", key.parse().unwrap());
    request
}

/// agent1's watch, opened before the operations under test.
async fn watch(gw: &TestGateway) -> tonic::Streaming<pb::WatchCallsResponse> {
    common::watch_calls(&mut gw.calls().await, "agent1").await
}

/// Puts the call on hold (no key) and returns the notification types agent1's watch saw
/// for the call before that hold: the hold is the marker that every earlier event arrived.
async fn events_until_hold(
    gw: &TestGateway,
    watch: &mut tonic::Streaming<pb::WatchCallsResponse>,
    call: &str,
) -> Vec<N> {
    let hold = pb::HoldRequest {
        call_id: call.into(),
    };
    gw.calls()
        .await
        .hold(as_user("agent1", hold))
        .await
        .unwrap();
    let mut seen = Vec::new();
    loop {
        let event = next_event(watch).await;
        let kind = event.notification_type();
        let view = event.call.unwrap();
        if view.id != call {
            continue;
        }
        if view.state() == pb::CallState::Held {
            return seen;
        }
        seen.push(kind);
    }
}

fn count(seen: &[N], kind: N) -> usize {
    seen.iter().filter(|n| **n == kind).count()
}

fn user_data(pairs: &[(&str, &str)]) -> Vec<pb::KeyValue> {
    pairs
        .iter()
        .map(|(k, v)| pb::KeyValue {
            key: (*k).into(),
            value: Some(pb::key_value::Value::StringValue((*v).into())),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_a_retried_dial_makes_one_call() {
    let gw = TestGateway::spawn().await;
    let mut client = gw.calls().await;
    let dial = || pb::DialRequest {
        destination: "15001".into(),
        ..Default::default()
    };
    let mut replies = Vec::new();
    for _ in 0..3 {
        let reply = client
            .dial(keyed("dial-1", as_user("agent1", dial())))
            .await
            .unwrap();
        replies.push(reply.into_inner());
    }
    assert_eq!(replies[0], replies[1]);
    assert_eq!(replies[0], replies[2]);
    let calls = client
        .list_calls(as_user("agent1", pb::ListCallsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .calls;
    assert_eq!(calls.len(), 1, "one call: {calls:?}");
    assert_eq!(calls[0].id, replies[0].call.as_ref().unwrap().id);

    // The same key for another request is refused, and makes no call.
    let other = pb::DialRequest {
        destination: "15002".into(),
        ..Default::default()
    };
    let refused = client
        .dial(keyed("dial-1", as_user("agent1", other)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("different request"),
        "{refused:?}"
    );
    assert_eq!(gws_status(&refused), 2);
    // Another user's same key is its own.
    let theirs = client
        .dial(keyed("dial-1", as_user("agent3", dial())))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(theirs.call.unwrap().id, calls[0].id);
    let calls = client
        .list_calls(as_user("agent1", pb::ListCallsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .calls;
    assert_eq!(calls.len(), 1, "still one call of agent1: {calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_retried_recording_and_user_data_are_done_once() {
    let gw = TestGateway::spawn().await;
    let mut client = gw.calls().await;
    let call = established_call(&mut client).await;
    let mut watch = watch(&gw).await;

    let start = || pb::StartCallRecordingRequest {
        call_id: call.clone(),
    };
    let first = client
        .start_call_recording(keyed("rec-1", as_user("agent1", start())))
        .await
        .unwrap()
        .into_inner();
    let again = client
        .start_call_recording(keyed("rec-1", as_user("agent1", start())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again, "the first reply");

    let attach = || pb::AttachUserDataRequest {
        call_id: call.clone(),
        user_data: user_data(&[("Case", "A-1"), ("Tier", "gold")]),
    };
    let first = client
        .attach_user_data(keyed("data-1", as_user("agent1", attach())))
        .await
        .unwrap()
        .into_inner();
    let again = client
        .attach_user_data(keyed("data-1", as_user("agent1", attach())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again, "the first reply");

    let seen = events_until_hold(&gw, &mut watch, &call).await;
    assert_eq!(count(&seen, N::CallRecordingStateChange), 1, "{seen:?}");
    assert_eq!(count(&seen, N::AttachedDataChanged), 1, "{seen:?}");
}

/// The GWS path of agent1's device's calls.
async fn dial_path(agent: &Agent) -> String {
    format!("/api/v2/me/devices/{}/calls", agent.device_id().await)
}

/// POSTs with an `Idempotency-Key`; returns the status and the JSON body.
async fn post_keyed(agent: &Agent, key: &str, path: &str, body: &Value) -> (StatusCode, Value) {
    let response = agent
        .client
        .post(format!("{}{path}", agent.base))
        .basic_auth(&agent.user, Some(DEMO_PASSWORD))
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_a_retried_dial_makes_one_call() {
    let gw = TestGateway::spawn().await;
    let agent = Agent::new(&gw.http_url(), "agent1");
    let path = dial_path(&agent).await;
    let dial = json!({"operationName": "Dial", "destination": {"phoneNumber": "15001"}});
    let mut replies = Vec::new();
    for _ in 0..3 {
        replies.push(post_keyed(&agent, "dial-1", &path, &dial).await);
    }
    assert_eq!(replies[0], (StatusCode::OK, json!({"statusCode": 0})));
    assert_eq!(replies[0], replies[1]);
    assert_eq!(replies[0], replies[2]);
    assert_eq!(agent.call_ids().await.len(), 1, "one call");

    let other = json!({"operationName": "Dial", "destination": {"phoneNumber": "15002"}});
    let (status, body) = post_keyed(&agent, "dial-1", &path, &other).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["statusCode"], 2, "{body}");
    let message = body["statusMessage"].as_str().unwrap();
    assert!(message.contains("different request"), "{message}");
    assert_eq!(agent.call_ids().await.len(), 1, "still one call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_retried_recording_and_user_data_are_done_once() {
    let gw = TestGateway::spawn().await;
    let mut client = gw.calls().await;
    let call = established_call(&mut client).await;
    let mut watch = watch(&gw).await;
    let agent = Agent::new(&gw.http_url(), "agent1");
    let path = format!("/api/v2/me/calls/{call}");

    let start = json!({"operationName": "StartCallRecording"});
    let first = post_keyed(&agent, "rec-1", &path, &start).await;
    assert_eq!(first, (StatusCode::OK, json!({"statusCode": 0})));
    assert_eq!(post_keyed(&agent, "rec-1", &path, &start).await, first);

    let attach =
        json!({"operationName": "AttachUserData", "userData": {"Case": "A-1", "Score": 7}});
    let first = post_keyed(&agent, "data-1", &path, &attach).await;
    assert_eq!(first, (StatusCode::OK, json!({"statusCode": 0})));
    assert_eq!(post_keyed(&agent, "data-1", &path, &attach).await, first);

    let seen = events_until_hold(&gw, &mut watch, &call).await;
    assert_eq!(count(&seen, N::CallRecordingStateChange), 1, "{seen:?}");
    assert_eq!(count(&seen, N::AttachedDataChanged), 1, "{seen:?}");
    let data = agent.call(&call).await["userData"].clone();
    assert_eq!(
        data,
        json!({"Case": "A-1", "Score": 7, "GSIP_RECORD": "ON"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_key_store_refuses_new_keys_and_still_replays_held_ones() {
    let gw = TestGateway::spawn_with(|config| config.limits.idempotency_keys = 1).await;
    let agent = Agent::new(&gw.http_url(), "agent1");
    let path = dial_path(&agent).await;
    let dial = json!({"operationName": "Dial", "destination": {"phoneNumber": "15001"}});
    assert_eq!(
        post_keyed(&agent, "a", &path, &dial).await.0,
        StatusCode::OK
    );

    let response = agent
        .client
        .post(format!("{}{path}", agent.base))
        .basic_auth("agent1", Some(DEMO_PASSWORD))
        .header("Idempotency-Key", "b")
        .json(&json!({"operationName": "Dial", "destination": {"phoneNumber": "15002"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["statusCode"], 4, "{body}");
    assert_eq!(
        agent.call_ids().await.len(),
        1,
        "the refused request made no call"
    );
    // The held key still replays, and a request without a key is not affected.
    assert_eq!(
        post_keyed(&agent, "a", &path, &dial).await.0,
        StatusCode::OK
    );
    assert_eq!(agent.call_ids().await.len(), 1);
    agent.dial("15002").await;
}
