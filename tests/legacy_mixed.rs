//! Both fronts over one core: a call dialed over JSON is answered over gRPC and the other
//! way round, a WatchCalls stream sees the JSON-driven changes, and the same failure reports
//! the same GWS statusCode on both fronts.

mod common;

use common::desktop::{Agent, assert_error};
use common::*;
use pb::{CallState as S, NotificationType as N, RecordingState as R};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Renders a gRPC call's user data as the JSON API does.
fn user_data_json(call: &pb::Call) -> Value {
    let mut object = serde_json::Map::new();
    for pair in &call.user_data {
        let value = match &pair.value {
            Some(pb::key_value::Value::StringValue(s)) => json!(s),
            Some(pb::key_value::Value::IntValue(i)) => json!(i),
            None => Value::Null,
        };
        object.insert(pair.key.clone(), value);
    }
    Value::Object(object)
}

/// Asserts that a JSON call resource and a gRPC call say the same.
fn assert_same_call(json: &Value, grpc: &pb::Call) {
    assert_eq!(json["id"], grpc.id);
    assert_eq!(json["connId"], grpc.conn_id);
    let state = grpc
        .state()
        .as_str_name()
        .trim_start_matches("CALL_STATE_")
        .to_lowercase();
    assert_eq!(json["state"].as_str().unwrap().to_lowercase(), state);
    assert_eq!(json["capabilities"], json!(grpc.capabilities));
    assert_eq!(json["mute"], if grpc.muted { "On" } else { "Off" });
    let recording = match grpc.recording_state() {
        R::Unspecified => Value::Null,
        other => json!(
            other
                .as_str_name()
                .trim_start_matches("RECORDING_STATE_")
                .to_lowercase()
        ),
    };
    let json_recording = json
        .get("recordingState")
        .map(|r| json!(r.as_str().unwrap().to_lowercase()));
    assert_eq!(json_recording.unwrap_or(Value::Null), recording);
    let json_data = json.get("userData").cloned().unwrap_or_else(|| json!({}));
    assert_eq!(json_data, user_data_json(grpc));
    let numbers: Vec<_> = grpc
        .participants
        .iter()
        .map(|p| json!(p.phone_number))
        .collect();
    let json_numbers: Vec<_> = json["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phoneNumber"].clone())
        .collect();
    assert_eq!(json_numbers, numbers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_dialed_over_json_is_answered_over_grpc_and_watched_over_grpc() {
    let gw = TestGateway::spawn().await;
    let (a1, a2) = (
        Agent::new(&gw.http_url(), "agent1"),
        Agent::new(&gw.http_url(), "agent2"),
    );
    let mut client = gw.calls().await;
    let mut watch = client
        .watch_calls(as_user("agent1", pb::WatchCallsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(snapshot(&mut watch).await.calls.is_empty());

    let id = a1.dial("15001").await;
    let dialing = next_event(&mut watch).await;
    assert_eq!(dialing.notification_type(), N::StatusChange);
    let call = dialing.call.unwrap();
    assert_eq!((call.id.as_str(), call.state()), (id.as_str(), S::Dialing));

    let answered = client
        .answer(as_user(
            "agent2",
            pb::AnswerRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .call
        .unwrap();
    assert_eq!(answered.state(), S::Established);
    assert_eq!(
        next_event(&mut watch).await.call.unwrap().state(),
        S::Established
    );
    assert_eq!(a1.call(&id).await["state"], "Established");
    assert_eq!(a2.call(&id).await["state"], "Established");

    a1.op(&id, json!({"operationName": "StartCallRecording"}))
        .await;
    let event = next_event(&mut watch).await;
    assert_eq!(event.notification_type(), N::CallRecordingStateChange);
    assert_eq!(event.call.unwrap().recording_state(), R::Recording);
    a1.op(&id, json!({"operationName": "StopCallRecording"}))
        .await;
    let event = next_event(&mut watch).await;
    assert_eq!(event.notification_type(), N::CallRecordingStateChange);
    assert_eq!(event.call.unwrap().recording_state(), R::Stopped);

    a1.op(
        &id,
        json!({"operationName": "UpdateUserData", "userData": {"Case": "A-1", "Score": 7}}),
    )
    .await;
    let event = next_event(&mut watch).await;
    assert_eq!(event.notification_type(), N::AttachedDataChanged);
    assert_eq!(user_data_json(event.call.as_ref().unwrap())["Case"], "A-1");

    a1.op(&id, json!({"operationName": "SendDtmf", "digits": "42"}))
        .await;
    let event = next_event(&mut watch).await;
    assert_eq!(
        (event.notification_type(), event.digits.as_str()),
        (N::DtmfSent, "42")
    );

    let grpc_view = client
        .get_call(as_user(
            "agent1",
            pb::GetCallRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .call
        .unwrap();
    assert_same_call(&a1.call(&id).await, &grpc_view);

    a1.op(&id, json!({"operationName": "Hangup"})).await;
    assert_eq!(
        next_event(&mut watch).await.call.unwrap().state(),
        S::Released
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_dialed_over_grpc_is_answered_over_json() {
    let gw = TestGateway::spawn().await;
    let (a1, a2) = (
        Agent::new(&gw.http_url(), "agent1"),
        Agent::new(&gw.http_url(), "agent2"),
    );
    let mut client = gw.calls().await;
    let dial = pb::DialRequest {
        destination: "15001".into(),
        ..Default::default()
    };
    let call = client
        .dial(as_user("agent1", dial))
        .await
        .unwrap()
        .into_inner()
        .call
        .unwrap();
    let id = call.id.clone();
    assert_eq!(a2.call_ids().await, vec![id.clone()]);
    let ringing = a2.call(&id).await;
    assert_eq!(ringing["state"], "Ringing");

    a2.op(&id, json!({"operationName": "Answer"})).await;
    let reader = client.clone();
    let get = |user: &'static str| {
        let mut client = reader.clone();
        let id = id.clone();
        async move {
            client
                .get_call(as_user(user, pb::GetCallRequest { call_id: id }))
                .await
                .unwrap()
                .into_inner()
                .call
                .unwrap()
        }
    };
    let on_grpc = get("agent1").await;
    assert_eq!(on_grpc.state(), S::Established);
    assert_same_call(&a1.call(&id).await, &on_grpc);
    assert_same_call(&a2.call(&id).await, &get("agent2").await);

    // Recording started over gRPC shows over JSON.
    client
        .start_call_recording(as_user(
            "agent1",
            pb::StartCallRecordingRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .unwrap();
    let json_view = a1.call(&id).await;
    assert_eq!(json_view["recordingState"], "Recording");
    assert_eq!(json_view["userData"]["GSIP_RECORD"], "ON");
    assert_same_call(&json_view, &get("agent1").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_failure_reports_the_same_status_code_on_both_fronts() {
    let gw = TestGateway::spawn().await;
    let a1 = Agent::new(&gw.http_url(), "agent1");
    let id = gw.established_call("agent1", "agent2", "15001").await;
    let mut client = gw.calls().await;
    let call_path = format!("/api/v2/me/calls/{id}");

    // Not in the capabilities.
    let json = a1
        .post(&call_path, json!({"operationName": "Retrieve"}))
        .await;
    let grpc = client
        .retrieve(as_user(
            "agent1",
            pb::RetrieveRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_error(&json, 400, 2);
    assert_eq!(
        u64::from(gws_status(&grpc)),
        json.1["statusCode"].as_u64().unwrap()
    );

    // Unknown call.
    let json = a1
        .post("/api/v2/me/calls/NOPE", json!({"operationName": "Hold"}))
        .await;
    let grpc = client
        .hold(as_user(
            "agent1",
            pb::HoldRequest {
                call_id: "NOPE".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_error(&json, 404, 6);
    assert_eq!(u64::from(gws_status(&grpc)), 6);

    // Missing parameter.
    let json = a1
        .post(&call_path, json!({"operationName": "SendDtmf"}))
        .await;
    let grpc = client
        .send_dtmf(as_user(
            "agent1",
            pb::SendDtmfRequest {
                call_id: id.clone(),
                digits: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_error(&json, 400, 1);
    assert_eq!(u64::from(gws_status(&grpc)), 1);

    // Another user's call.
    let a3 = Agent::new(&gw.http_url(), "agent3");
    let json = a3
        .post(&call_path, json!({"operationName": "Hangup"}))
        .await;
    let grpc = client
        .hangup(as_user(
            "agent3",
            pb::HangupRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_error(&json, 403, 5);
    assert_eq!(u64::from(gws_status(&grpc)), 5);
    assert_eq!(a1.call(&id).await["state"], "Established");
    assert_eq!(json.0, StatusCode::FORBIDDEN);
}
