//! Bridge mode end to end: gateway U (embedded) plays the upstream GWS; gateway B bridges
//! to it. What B's clients do reaches U, what happens on U reaches B's watchers, and U's
//! refusals reach B's clients with the codes embedded mode gives.

mod common;
#[path = "legacy_common/mod.rs"]
mod legacy_common;

use common::{TestGateway, as_user, next_event, pb, snapshot, with_basic};
use legacy_common::Agent;
use reqwest::StatusCode;
use serde_json::json;
use tonic::Code;

/// Starts U (the embedded demo) and B (bridging to U's HTTP listener).
async fn pair() -> (TestGateway, TestGateway) {
    let upstream = TestGateway::spawn().await;
    let url = upstream.http_url();
    let bridge = TestGateway::spawn_with(move |c| c.upstream.url = Some(url)).await;
    (upstream, bridge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_scenario_over_grpc_on_the_bridge() {
    let (upstream, bridge) = pair().await;
    let mut calls = bridge.calls().await;
    let mut watch = calls
        .watch_calls(as_user("agent1", pb::WatchCallsRequest::default()))
        .await
        .expect("agent1 signs in through the upstream")
        .into_inner();
    assert!(snapshot(&mut watch).await.calls.is_empty());

    let dialed = calls
        .dial(as_user(
            "agent1",
            pb::DialRequest {
                destination: "15001".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("Dial through the bridge")
        .into_inner()
        .call
        .expect("the upstream's call");
    assert_eq!(dialed.state(), pb::CallState::Dialing);
    let id = dialed.id.clone();
    let event = next_event(&mut watch).await;
    assert_eq!(event.call.as_ref().unwrap().id, id);

    // agent2 answers on U's own JSON API: the bridge sees it happen.
    let agent2 = Agent::new(&upstream.http_url(), "agent2");
    agent2.op(&id, json!({"operationName": "Answer"})).await;
    loop {
        let event = next_event(&mut watch).await;
        if event.call.as_ref().unwrap().state() == pb::CallState::Established {
            break;
        }
    }

    let started = calls
        .start_call_recording(as_user(
            "agent1",
            pb::StartCallRecordingRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .expect("StartCallRecording through the bridge")
        .into_inner()
        .call
        .unwrap();
    assert_eq!(started.recording_state(), pb::RecordingState::Recording);
    let stopped = calls
        .stop_call_recording(as_user(
            "agent1",
            pb::StopCallRecordingRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .expect("StopCallRecording through the bridge")
        .into_inner()
        .call
        .unwrap();
    assert_eq!(stopped.recording_state(), pb::RecordingState::Stopped);
    let mut recording = Vec::new();
    while recording.len() < 2 {
        let event = next_event(&mut watch).await;
        if event.notification_type() == pb::NotificationType::CallRecordingStateChange {
            recording.push(event.call.unwrap().recording_state());
        }
    }
    assert_eq!(
        recording,
        [pb::RecordingState::Recording, pb::RecordingState::Stopped]
    );
    // U holds the same call in the same state.
    let on_upstream = upstream
        .calls()
        .await
        .get_call(as_user("agent1", pb::GetCallRequest { call_id: id }))
        .await
        .unwrap()
        .into_inner()
        .call
        .unwrap();
    assert_eq!(on_upstream.recording_state(), pb::RecordingState::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_scenario_over_the_bridge_json_api() {
    let (upstream, bridge) = pair().await;
    let agent1 = Agent::new(&bridge.http_url(), "agent1");
    // The JSON API answers at acceptance, as GWS does, and the state follows by
    // notification: a watcher on the bridge tells when it has arrived.
    let mut watch = bridge
        .calls()
        .await
        .watch_calls(as_user("agent1", pb::WatchCallsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    snapshot(&mut watch).await;
    let id = agent1.dial("15001").await;
    Agent::new(&upstream.http_url(), "agent2")
        .op(&id, json!({"operationName": "Answer"}))
        .await;
    while next_event(&mut watch).await.call.unwrap().state() != pb::CallState::Established {}
    assert_eq!(agent1.call(&id).await["state"], "Established");
    for (op, state) in [
        ("StartCallRecording", "Recording"),
        ("StopCallRecording", "Stopped"),
    ] {
        agent1.op(&id, json!({"operationName": op})).await;
        let event = next_event(&mut watch).await;
        assert_eq!(
            event.notification_type(),
            pb::NotificationType::CallRecordingStateChange
        );
        assert_eq!(agent1.call(&id).await["recordingState"], state);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_made_on_the_upstream_appear_on_the_bridge() {
    let (upstream, bridge) = pair().await;
    let mut watch = bridge
        .calls()
        .await
        .watch_calls(as_user("agent2", pb::WatchCallsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    snapshot(&mut watch).await;
    let mut on_u = upstream.calls().await;
    let id = on_u
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
        .unwrap()
        .id;
    let event = next_event(&mut watch).await;
    let call = event.call.unwrap();
    assert_eq!(call.id, id);
    assert_eq!(call.state(), pb::CallState::Ringing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_refusals_reach_the_bridge_clients_with_embedded_codes() {
    let (_upstream, bridge) = pair().await;
    let mut calls = bridge.calls().await;
    // Bad credentials: the upstream says no.
    let status = calls
        .list_calls(with_basic("agent1", "wrong", pb::ListCallsRequest {}))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(common::gws_status(&status), 20);
    // An unknown call.
    let status = calls
        .hangup(as_user(
            "agent1",
            pb::HangupRequest {
                call_id: "NOPE".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(common::gws_status(&status), 6);
    // A missing feature: basic1's contact center has no recording.
    let id = calls
        .dial(as_user(
            "basic1",
            pb::DialRequest {
                destination: "5550100".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .call
        .unwrap()
        .id;
    let status = calls
        .start_call_recording(as_user(
            "basic1",
            pb::StartCallRecordingRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(common::gws_status(&status), 3);
    // An operation outside the call's capabilities: Answer on one's own dialing call.
    let status = calls
        .answer(as_user("basic1", pb::AnswerRequest { call_id: id }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(common::gws_status(&status), 2);
    // The JSON front says the same.
    let basic = Agent::new(&bridge.http_url(), "basic1");
    let (status, body) = basic
        .post("/api/v2/me/calls/NOPE", json!({"operationName": "Hangup"}))
        .await;
    assert_eq!(
        (status, body["statusCode"].as_u64()),
        (StatusCode::NOT_FOUND, Some(6))
    );
}
