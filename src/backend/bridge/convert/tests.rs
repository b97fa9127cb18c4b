//! The bodies the bridge posts are the ones the gateway's own GWS front parses, and the
//! resources it reads are the ones that front renders.

use std::time::Duration;

use serde_json::Value;

use super::*;
use crate::config::Config;
use crate::core::country::Country;
use crate::core::{
    AgentState, CallId, CallOperation, CallSnapshot, CallState, CallType, CoreError, Destination,
    DeviceOperation, DeviceRequest, DeviceSnapshot, DialRequest, ErrorEvent, ErrorKind,
    MonitorKind, MonitorMode, MonitorScope, MonitorTarget, NotificationType, Operation,
    Participant, RecordingState, User, UserData, UserDataValue, WorkMode,
};
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
            place: None,
            device_path: None,
            queue: None,
            login_code: None,
        },
    );
    assert_eq!(start.path, "/api/v2/me");
    assert!(matches!(
        parse(&start),
        LegacyOperation::StartContactCenterSession(_)
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
            e164_number: "+19165550104".into(),
            country: Some(Country {
                name: "United States".into(),
                code: "US".into(),
                calling_code: "1".into(),
            }),
            location: Some("California".into()),
        }],
        dnis: "5551234".into(),
        ani: Some("9165550104".into()),
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
    assert_eq!(super::call(&sonic(&json), &user.to_ref()), Some(call));

    let device = DeviceSnapshot {
        active: true,
        agent_state: AgentState::Ready,
        work_mode: Some(WorkMode::ManualIn),
        do_not_disturb: true,
        forward_to: Some("15002".into()),
        capabilities: vec![DeviceOperation::DoNotDisturbOff],
        monitoring: None,
        voice_environment_id: "370ef5e6-9e3c-4d91-9588-7f4dfe67e011".into(),
        user: user.to_ref(),
        upstream_fields: None,
    };
    let json = serde_json::to_value(DeviceJson::from_snapshot(&device, "http://u")).unwrap();
    let back = super::device(&sonic(&json), &user.to_ref()).unwrap();
    // The voice environment's link is the upstream's, passed through as it came.
    assert_eq!(
        back.upstream_fields.as_deref(),
        Some(
            r#"{"voiceEnvironmentUri":"http://u/api/v2/voice-environments/370ef5e6-9e3c-4d91-9588-7f4dfe67e011"}"#
        )
    );
    assert_eq!(
        DeviceSnapshot {
            upstream_fields: None,
            ..back
        },
        device
    );
}

#[test]
fn what_the_core_cannot_do_without_is_required() {
    let user = agent1().to_ref();
    let no_state: Value = serde_json::json!({"id": "C1"});
    assert_eq!(super::call(&sonic(&no_state), &user), None);
    let odd_state: Value = serde_json::json!({"id": "C1", "state": "Levitating"});
    assert_eq!(super::call(&sonic(&odd_state), &user), None);
    let minimal: Value =
        serde_json::json!({"id": "C1", "state": "Ringing", "capabilities": ["Answer", "Teleport"]});
    let read = super::call(&sonic(&minimal), &user).unwrap();
    assert_eq!(read.capabilities, vec![Operation::Answer]);
    let no_device: Value = serde_json::json!({"user": {"userName": "x"}});
    assert!(me(&sonic(&no_device), "default").is_none());
}

#[test]
fn fields_the_core_does_not_model_pass_through_to_gws_clients() {
    let user = agent1().to_ref();
    let upstream: Value = serde_json::json!({
        "id": "C1", "state": "Ringing", "capabilities": ["Answer"],
        "ani": "5551234", "callCenterCustom": {"queue": "sales", "priority": 3},
        "uri": "http://gws.example/api/v2/me/calls/C1",
    });
    let read = super::call(&sonic(&upstream), &user).unwrap();
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
    let read = super::device(&sonic(&device), &user).unwrap();
    let rendered = serde_json::to_value(DeviceJson::from_snapshot(&read, "http://gw")).unwrap();
    assert_eq!(rendered["voiceEnvironmentUri"], "http://gws/ve/1");
}

#[test]
fn an_upstream_error_message_in_the_spec_shape_is_the_users_error_unchanged() {
    let user = agent1().to_ref();
    // Spec §8.4: `{"data":{"messageType":"ErrorMessage","errorCode":<T-Server code>,
    // "errorMessage":"...","call":{...}?,"phoneNumber":"..."},"channel":"/v2/me/calls"}`,
    // its call as in the §8.3 sample.
    let data: Value = serde_json::json!({
        "messageType": "ErrorMessage",
        "errorCode": 56,
        "errorMessage": "Invalid called DN",
        "phoneNumber": "15000",
        "call": {
            "id": "01RCC3N118B1V0SL8O7GK2LAES00000V",
            "callUuid": "01RCC3N118B1V0SL8O7GK2LAES00000V",
            "connId": "007102719818001f", "state": "Released", "callType": "Outbound",
            "dnis": "9165550404", "participants": [], "capabilities": [],
            "userData": {}, "duration": "0", "mute": "Off",
            "uri": "http://127.0.0.1:8080/api/v2/me/calls/01RCC3N118B1V0SL8O7GK2LAES00000V",
            "path": "/calls/01RCC3N118B1V0SL8O7GK2LAES00000V"
        }
    });
    let error = error_message(&sonic(&data), &user);
    assert_eq!(error.user, user);
    assert_eq!(
        error.error,
        CoreError::Upstream {
            kind: ErrorKind::Internal,
            status_code: 56,
            message: "Invalid called DN".into(),
        }
    );
    assert_eq!(error.operation, None, "the spec's shape names no operation");
    let call = error.call.expect("the call is read");
    assert_eq!(call.id, CallId::new("01RCC3N118B1V0SL8O7GK2LAES00000V"));
    assert_eq!(call.state, CallState::Released);

    // GWS builds differ: digits in a string, an operation named, no call, the reply's pair.
    let lean: Value = serde_json::json!({
        "messageType": "ErrorMessage", "errorCode": "19", "errorMessage": "15001 is busy",
        "operationName": "Dial",
    });
    let error = error_message(&sonic(&lean), &user);
    assert_eq!(error.error.status_code(), 19);
    assert_eq!(error.error.kind(), ErrorKind::FailedPrecondition);
    assert_eq!(error.operation, Some(Operation::Dial));
    assert_eq!(error.call, None);
    let reply_pair: Value = serde_json::json!({"statusCode": 6, "statusMessage": "gone"});
    let error = error_message(&sonic(&reply_pair), &user);
    assert_eq!(
        (error.error.status_code(), error.error.kind()),
        (6, ErrorKind::NotFound)
    );
    assert_eq!(error.error.to_string(), "gone");
    let bare = error_message(
        &sonic(&serde_json::json!({"messageType": "ErrorMessage"})),
        &user,
    );
    assert_eq!(bare.error.status_code(), 4);
}

#[test]
fn the_gateways_own_error_message_reads_back_as_it_was() {
    use crate::gws::render::ErrorMessageJson;
    let user = agent1().to_ref();
    let call = super::call(
        &sonic(&serde_json::json!({"id": "C1", "state": "Released", "dnis": "9165550486"})),
        &user,
    )
    .unwrap();
    let sent = ErrorEvent {
        sequence: 9,
        user: user.clone(),
        operation: Some(Operation::InitiateTransfer),
        error: CoreError::InUse("9165550486 is busy".into()),
        call: Some(call.clone()),
        committed_at: std::time::UNIX_EPOCH,
    };
    let json = serde_json::to_value(ErrorMessageJson::from_event(&sent, "http://u")).unwrap();
    let read = error_message(&sonic(&json), &user);
    assert_eq!(read.operation, sent.operation);
    assert_eq!(read.error.status_code(), 19);
    assert_eq!(read.error.kind(), sent.error.kind());
    assert_eq!(read.error.to_string(), "9165550486 is busy");
    assert_eq!(
        read.call.map(|c| (c.id, c.state)),
        Some((call.id, call.state))
    );
}

#[test]
fn a_notification_is_read_by_its_message_type() {
    let user = agent1().to_ref();
    let call = serde_json::json!({"id": "C1", "state": "Ringing", "capabilities": ["Answer"]});
    let dtmf = sonic(&serde_json::json!({
        "messageType": "CallStateChangeMessage", "notificationType": "DtmfSent",
        "digits": "12#", "call": call,
    }));
    match notification(&dtmf, &user) {
        Notification::Call(kind, read, digits) => {
            assert_eq!(kind, NotificationType::DtmfSent);
            assert_eq!(
                (read.id, read.state),
                (CallId::new("C1"), CallState::Ringing)
            );
            assert_eq!(digits.as_deref(), Some("12#"));
        }
        other => panic!("a call notification read as {other:?}"),
    }
    // No notificationType: a StatusChange, as GWS builds that omit it mean.
    let bare = sonic(&serde_json::json!({"messageType": "CallStateChangeMessage", "call": call}));
    assert!(matches!(
        notification(&bare, &user),
        Notification::Call(NotificationType::StatusChange, _, None)
    ));
    let stateless = sonic(&serde_json::json!({
        "messageType": "CallStateChangeMessage", "call": {"id": "C1"},
    }));
    assert!(matches!(
        notification(&stateless, &user),
        Notification::UnreadableCall
    ));
    let error = sonic(&serde_json::json!({
        "messageType": "ErrorMessage", "errorCode": 56, "errorMessage": "Invalid called DN",
    }));
    match notification(&error, &user) {
        Notification::Error(event) => assert_eq!(event.error.status_code(), 56),
        other => panic!("an error message read as {other:?}"),
    }
    // A device without userState is skipped; the others are read, in order.
    let devices = sonic(&serde_json::json!({
        "messageType": "DeviceStateChangeMessage",
        "devices": [
            {"id": "d1", "phoneNumber": "15000", "userState": {"state": "Ready"}},
            {"id": "d2", "phoneNumber": "15000"},
            {"id": "d3", "phoneNumber": "15000", "userState": {"state": "NotReady"}},
        ],
    }));
    match notification(&devices, &user) {
        Notification::Devices(read) => assert_eq!(
            read.iter().map(|d| d.agent_state).collect::<Vec<_>>(),
            vec![AgentState::Ready, AgentState::NotReady]
        ),
        other => panic!("a device message read as {other:?}"),
    }
    let other = sonic(&serde_json::json!({"messageType": "PasswordChanged"}));
    assert!(matches!(
        notification(&other, &user),
        Notification::Other(Some("PasswordChanged"))
    ));
    assert!(matches!(
        notification(&sonic(&serde_json::json!({})), &user),
        Notification::Other(None)
    ));
}

/// The same JSON as sonic-rs reads it (the bridge reads what the upstream sends with it).
fn sonic(value: &Value) -> sonic_rs::Value {
    sonic_rs::from_str(&value.to_string()).unwrap()
}
