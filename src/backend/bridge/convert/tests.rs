//! The bodies the bridge posts are the ones the gateway's own GWS front parses, and the
//! resources it reads are the ones that front renders.

use std::time::Duration;

use serde_json::Value;

use super::*;
use crate::config::Config;
use crate::core::Destination;
use crate::gws::json::operation::LegacyOperation;
use crate::gws::render::{CallJson, DeviceJson};

fn agent1() -> User {
    let directory = Config::demo().directory().unwrap();
    (*directory.user("agent1").unwrap()).clone()
}

fn parse(request: &UpstreamRequest) -> LegacyOperation {
    LegacyOperation::from_body(request.body.as_object().unwrap()).unwrap()
}

#[test]
fn every_call_operation_round_trips_through_the_gws_parser() {
    let to = |n: &str| Destination {
        number: n.into(),
        location: None,
        user_data: UserData::from_pairs(vec![("k".into(), UserDataValue::Int(7))]),
    };
    let data = UserData::from_pairs(vec![
        ("a".into(), UserDataValue::Str("b".into())),
        ("n".into(), UserDataValue::Int(3)),
    ]);
    let call = CallId::new("C1");
    let ops = vec![
        CallOperation::Answer,
        CallOperation::Hangup,
        CallOperation::SendDtmf {
            digits: "12#".into(),
        },
        CallOperation::SingleStepTransfer(to("15002")),
        CallOperation::InitiateConference(to("15002")),
        CallOperation::CompleteTransfer {
            consult: Some(CallId::new("C2")),
        },
        CallOperation::CompleteConference { consult: None },
        CallOperation::RemoveParticipantFromConference {
            participant: "15002".into(),
        },
        CallOperation::SwapCalls {
            other: CallId::new("C2"),
        },
        CallOperation::AttachUserData(data.clone()),
        CallOperation::UpdateUserData(data),
        CallOperation::DeleteUserDataPair { key: "a".into() },
        CallOperation::SetCallDisposition {
            disposition: "done".into(),
            key: Some("Code".into()),
        },
        CallOperation::StartCallRecording,
        CallOperation::UnmuteMonitoredUser,
    ];
    for op in ops {
        let request = call_operation(&call, &op);
        assert_eq!(request.path, "/api/v2/me/calls/C1");
        assert_eq!(parse(&request), LegacyOperation::Call(op));
    }
}

#[test]
fn dial_and_device_operations_round_trip_and_go_to_their_resource() {
    let user = agent1();
    let dial_request = DialRequest {
        destination: Destination {
            number: "15001".into(),
            location: None,
            user_data: UserData::default(),
        },
        device_id: None,
    };
    let request = dial(&user, &dial_request);
    assert_eq!(
        request.path,
        format!("/api/v2/me/devices/{}/calls", user.device_id)
    );
    assert_eq!(parse(&request), LegacyOperation::Dial(dial_request));

    let cases = [
        (
            DeviceRequest::Ready {
                work_mode: Some(WorkMode::AutoIn),
            },
            "/api/v2/me/channels/voice",
        ),
        (
            DeviceRequest::AfterCallWork {
                wrap_up: Some(Duration::from_secs(30)),
            },
            "/api/v2/me/channels/voice",
        ),
        (DeviceRequest::NotReady, "/api/v2/me/channels/voice"),
        (DeviceRequest::DoNotDisturbOn, "devices"),
        (
            DeviceRequest::ForwardCallsOn {
                destination: "15002".into(),
            },
            "devices",
        ),
        (
            DeviceRequest::Monitor {
                kind: MonitorKind::Coach,
                target: MonitorTarget::PhoneNumber("15000".into()),
                mode: MonitorMode::AllCalls,
                scope: MonitorScope::Call,
            },
            "devices",
        ),
        (DeviceRequest::CancelSupervisorMonitoring, "devices"),
    ];
    for (op, resource) in cases {
        let request = device_operation(&user, &op);
        assert!(request.path.contains(resource), "{op:?} → {}", request.path);
        match parse(&request) {
            LegacyOperation::AgentState(parsed) | LegacyOperation::Device(parsed) => {
                assert_eq!(parsed, op);
            }
            other => panic!("{op:?} parsed as {other:?}"),
        }
    }
    let start = device_operation(
        &user,
        &DeviceRequest::StartContactCenterSession {
            channels: vec!["voice".into()],
        },
    );
    assert_eq!(start.path, "/api/v2/me");
    assert!(matches!(
        parse(&start),
        LegacyOperation::StartContactCenterSession { .. }
    ));
}

#[test]
fn a_rendered_call_and_device_read_back_as_they_were() {
    let user = agent1();
    let call = CallSnapshot {
        id: CallId::new("C1"),
        conn_id: "0071000000000001".into(),
        state: CallState::Established,
        call_type: CallType::Consult,
        capabilities: vec![Operation::Hangup, Operation::StartCallRecording],
        participants: vec![Participant {
            phone_number: "5551234".into(),
            e164_number: "+5551234".into(),
        }],
        dnis: "5551234".into(),
        user_data: UserData::from_pairs(vec![("k".into(), UserDataValue::Str("v".into()))]),
        duration_secs: 12,
        muted: true,
        recording_state: Some(RecordingState::Recording),
        supervisor_listening_in: true,
        monitored_user_muted: false,
        monitoring: false,
        parent_call_id: Some(CallId::new("C0")),
        user: user.to_ref(),
        upstream_fields: None,
    };
    let json = serde_json::to_value(CallJson::from_snapshot(&call, "http://u")).unwrap();
    assert_eq!(super::call(&json, &user.to_ref()), Some(call));

    let device = DeviceSnapshot {
        active: true,
        agent_state: AgentState::Ready,
        work_mode: Some(WorkMode::ManualIn),
        do_not_disturb: true,
        forward_to: Some("15002".into()),
        capabilities: vec![DeviceOperation::DoNotDisturbOff],
        monitoring: None,
        user: user.to_ref(),
        upstream_fields: None,
    };
    let json = serde_json::to_value(DeviceJson::from_snapshot(&device, "http://u")).unwrap();
    assert_eq!(super::device(&json, &user.to_ref()), Some(device));
}

#[test]
fn what_the_core_cannot_do_without_is_required() {
    let user = agent1().to_ref();
    let no_state: Value = serde_json::json!({"id": "C1"});
    assert_eq!(super::call(&no_state, &user), None);
    let odd_state: Value = serde_json::json!({"id": "C1", "state": "Levitating"});
    assert_eq!(super::call(&odd_state, &user), None);
    let minimal: Value =
        serde_json::json!({"id": "C1", "state": "Ringing", "capabilities": ["Answer", "Teleport"]});
    let read = super::call(&minimal, &user).unwrap();
    assert_eq!(read.capabilities, vec![Operation::Answer]);
    let no_device: Value = serde_json::json!({"user": {"userName": "x"}});
    assert!(me(&no_device, "default").is_none());
}

#[test]
fn fields_the_core_does_not_model_pass_through_to_gws_clients() {
    let user = agent1().to_ref();
    let upstream: Value = serde_json::json!({
        "id": "C1", "state": "Ringing", "capabilities": ["Answer"],
        "ani": "5551234", "callCenterCustom": {"queue": "sales", "priority": 3},
        "uri": "http://gws.example/api/v2/me/calls/C1",
    });
    let read = super::call(&upstream, &user).unwrap();
    let rendered = serde_json::to_value(CallJson::from_snapshot(&read, "http://gw")).unwrap();
    assert_eq!(rendered["ani"], "5551234");
    assert_eq!(rendered["callCenterCustom"], upstream["callCenterCustom"]);
    // What the gateway renders itself is its own: links name the gateway.
    assert_eq!(rendered["uri"], "http://gw/api/v2/me/calls/C1");
    assert_eq!(rendered["state"], "Ringing");

    let device: Value = serde_json::json!({
        "id": "d1", "deviceState": "Active", "phoneNumber": "15000",
        "userState": {"state": "NotReady"}, "voiceEnvironmentUri": "http://gws/ve/1",
    });
    let read = super::device(&device, &user).unwrap();
    let rendered = serde_json::to_value(DeviceJson::from_snapshot(&read, "http://gw")).unwrap();
    assert_eq!(rendered["voiceEnvironmentUri"], "http://gws/ve/1");
}
