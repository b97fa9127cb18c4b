//! The request of every audited method and operation, naming a subject's resources. Each
//! is valid: sent by the subject's owner with valid credentials it would be carried out,
//! so a refusal comes from authentication or authorization, never from a missing or
//! malformed parameter. A method without a request here fails the audit.

use prost::Message as _;
use serde_json::{Value, json};
use voice_gateway::grpc::pb;

use super::Subject;

fn data() -> Vec<pb::KeyValue> {
    vec![pb::KeyValue {
        key: "audit".into(),
        value: Some(pb::key_value::Value::StringValue("x".into())),
    }]
}

fn target(s: &Subject) -> Option<pb::MonitorTarget> {
    Some(pb::MonitorTarget {
        phone_number: s.peer.clone(),
        mode: "AllCalls".into(),
        scope: "Call".into(),
        ..Default::default()
    })
}

/// Returns the encoded request of a gRPC method (`/package.Service/Method`).
pub fn grpc_body(method: &str, s: &Subject) -> Vec<u8> {
    let call = || s.call.clone();
    let peer = || s.peer.clone();
    let name = method.rsplit('/').next().unwrap();
    let service = method.trim_start_matches('/').split('/').next().unwrap();
    match (service, name) {
        ("voice.v1.CallService", name) => call_body(name, s),
        ("voice.v1.DeviceService", name) => device_body(name, s),
        ("voice.v1.SimulatorService", "InboundCall") => pb::InboundCallRequest {
            from: "9165550199".into(),
            to: peer(),
            ..Default::default()
        }
        .encode_to_vec(),
        ("voice.v1.SimulatorService", "ExternalHangup") => pb::ExternalHangupRequest {
            call_id: call(),
            number: s.external.clone(),
        }
        .encode_to_vec(),
        ("grpc.health.v1.Health", "Check" | "Watch") => tonic_health::pb::HealthCheckRequest {
            service: "voice.v1.CallService".into(),
        }
        .encode_to_vec(),
        ("grpc.reflection.v1.ServerReflection", "ServerReflectionInfo") => {
            use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
            tonic_reflection::pb::v1::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            }
            .encode_to_vec()
        }
        ("grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo") => {
            use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
            tonic_reflection::pb::v1alpha::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            }
            .encode_to_vec()
        }
        _ => panic!("no audit request for {method}: add one to tests/authz_support/bodies.rs"),
    }
}

fn call_body(name: &str, s: &Subject) -> Vec<u8> {
    let call_id = s.call.clone();
    let destination = s.peer.clone();
    macro_rules! id_only {
        ($($op:literal => $message:ident),* $(,)?) => {
            match name {
                $($op => return pb::$message { call_id }.encode_to_vec(),)*
                _ => {}
            }
        };
    }
    id_only! {
        "Answer" => AnswerRequest, "Reject" => RejectRequest, "Hangup" => HangupRequest,
        "ClearCall" => ClearCallRequest, "Hold" => HoldRequest, "Retrieve" => RetrieveRequest,
        "MuteCall" => MuteCallRequest, "UnmuteCall" => UnmuteCallRequest,
        "DeleteUserData" => DeleteUserDataRequest, "GetCall" => GetCallRequest,
        "StartCallRecording" => StartCallRecordingRequest,
        "StopCallRecording" => StopCallRecordingRequest,
        "PauseCallRecording" => PauseCallRecordingRequest,
        "ResumeCallRecording" => ResumeCallRecordingRequest,
        "SwitchToListenIn" => SwitchToListenInRequest,
        "SwitchToBargeIn" => SwitchToBargeInRequest,
        "MuteMonitoredUser" => MuteMonitoredUserRequest,
        "UnmuteMonitoredUser" => UnmuteMonitoredUserRequest,
    }
    macro_rules! to_destination {
        ($($op:literal => $message:ident),* $(,)?) => {
            match name {
                $($op => return pb::$message { call_id, destination, ..Default::default() }.encode_to_vec(),)*
                _ => {}
            }
        };
    }
    to_destination! {
        "SingleStepTransfer" => SingleStepTransferRequest,
        "InitiateTransfer" => InitiateTransferRequest,
        "InitiateConference" => InitiateConferenceRequest,
        "SingleStepConference" => SingleStepConferenceRequest,
    }
    let consult_call_id = s.other_call.clone();
    match name {
        "Dial" => pb::DialRequest {
            destination,
            device_id: s.device.clone(),
            ..Default::default()
        }
        .encode_to_vec(),
        "SendDtmf" => pb::SendDtmfRequest {
            call_id,
            digits: "123".into(),
        }
        .encode_to_vec(),
        "CompleteTransfer" => pb::CompleteTransferRequest {
            call_id,
            consult_call_id,
        }
        .encode_to_vec(),
        "CompleteConference" => pb::CompleteConferenceRequest {
            call_id,
            consult_call_id,
        }
        .encode_to_vec(),
        "RemoveParticipantFromConference" => pb::RemoveParticipantFromConferenceRequest {
            call_id,
            participant: s.external.clone(),
        }
        .encode_to_vec(),
        "SwapCalls" => pb::SwapCallsRequest {
            call_id,
            other_call_id: s.other_call.clone(),
        }
        .encode_to_vec(),
        "AttachUserData" => pb::AttachUserDataRequest {
            call_id,
            user_data: data(),
        }
        .encode_to_vec(),
        "UpdateUserData" => pb::UpdateUserDataRequest {
            call_id,
            user_data: data(),
        }
        .encode_to_vec(),
        "DeleteUserDataPair" => pb::DeleteUserDataPairRequest {
            call_id,
            key: "audit".into(),
        }
        .encode_to_vec(),
        "SetCallDisposition" => pb::SetCallDispositionRequest {
            call_id,
            disposition: "audit".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        "ListCalls" => pb::ListCallsRequest {}.encode_to_vec(),
        "WatchCalls" => pb::WatchCallsRequest {
            from_sequence: None,
            contact_center: s.whole_center,
            epoch: String::new(),
        }
        .encode_to_vec(),
        other => panic!("no audit request for CallService/{other}"),
    }
}

fn device_body(name: &str, s: &Subject) -> Vec<u8> {
    let device_id = s.device.clone();
    match name {
        "StartContactCenterSession" => pb::StartContactCenterSessionRequest {
            channels: vec!["voice".into()],
            ..Default::default()
        }
        .encode_to_vec(),
        "EndContactCenterSession" => pb::EndContactCenterSessionRequest {}.encode_to_vec(),
        "Ready" => pb::ReadyRequest {
            workmode: "AutoIn".into(),
        }
        .encode_to_vec(),
        "NotReady" => pb::NotReadyRequest {}.encode_to_vec(),
        "AfterCallWork" => pb::AfterCallWorkRequest { wrap_up_time: 0 }.encode_to_vec(),
        "AuxWork" => pb::AuxWorkRequest {}.encode_to_vec(),
        "DoNotDisturbOn" => pb::DoNotDisturbOnRequest { device_id }.encode_to_vec(),
        "DoNotDisturbOff" => pb::DoNotDisturbOffRequest { device_id }.encode_to_vec(),
        "ForwardCallsOn" => pb::ForwardCallsOnRequest {
            device_id,
            destination: s.peer.clone(),
        }
        .encode_to_vec(),
        "ForwardCallsOff" => pb::ForwardCallsOffRequest { device_id }.encode_to_vec(),
        "ListenIn" => pb::ListenInRequest { target: target(s) }.encode_to_vec(),
        "Coach" => pb::CoachRequest { target: target(s) }.encode_to_vec(),
        "BargeIn" => pb::BargeInRequest { target: target(s) }.encode_to_vec(),
        "CancelSupervisorMonitoring" => pb::CancelSupervisorMonitoringRequest {}.encode_to_vec(),
        "ControlAgentState" => pb::ControlAgentStateRequest {
            user: s.peer.clone(),
            operation_name: "NotReady".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        "ListDevices" => pb::ListDevicesRequest {}.encode_to_vec(),
        "WatchDevices" => pb::WatchDevicesRequest {
            from_sequence: None,
            contact_center: s.whole_center,
            epoch: String::new(),
        }
        .encode_to_vec(),
        other => panic!("no audit request for DeviceService/{other}"),
    }
}

/// Returns the JSON body of a legacy `operationName` POST.
pub fn legacy_body(operation: &str, s: &Subject) -> Value {
    let destination = json!({ "phoneNumber": s.peer });
    let monitor = json!({
        "phoneNumber": s.peer,
        "supervisorMonitoringMode": "AllCalls",
        "supervisorMonitoringScope": "Call",
    });
    let params = match operation {
        "StartContactCenterSession" => json!({ "channels": ["voice"], "place": s.number }),
        "Ready" => json!({ "workmode": "AutoIn" }),
        "ForwardCallsOn" => json!({ "destination": s.peer }),
        "ListenIn" | "Coach" | "BargeIn" => monitor,
        "Dial"
        | "SingleStepTransfer"
        | "InitiateTransfer"
        | "InitiateConference"
        | "SingleStepConference" => json!({ "destination": destination }),
        "SendDtmf" => json!({ "digits": "123" }),
        "CompleteTransfer" | "CompleteConference" => json!({ "consultCallUri": s.other_call }),
        "RemoveParticipantFromConference" => json!({ "participant": s.external }),
        "SwapCalls" => json!({ "otherCallUri": s.other_call }),
        "AttachUserData" | "UpdateUserData" => json!({ "userData": { "audit": "x" } }),
        "DeleteUserDataPair" => json!({ "key": "audit" }),
        "SetCallDisposition" => json!({ "disposition": "audit" }),
        "EndContactCenterSession"
        | "NotReady"
        | "AfterCallWork"
        | "AuxWork"
        | "DoNotDisturbOn"
        | "DoNotDisturbOff"
        | "ForwardCallsOff"
        | "CancelSupervisorMonitoring"
        | "Answer"
        | "Reject"
        | "Hangup"
        | "ClearCall"
        | "Hold"
        | "Retrieve"
        | "MuteCall"
        | "UnmuteCall"
        | "DeleteUserData"
        | "StartCallRecording"
        | "StopCallRecording"
        | "PauseCallRecording"
        | "ResumeCallRecording"
        | "SwitchToListenIn"
        | "SwitchToBargeIn"
        | "MuteMonitoredUser"
        | "UnmuteMonitoredUser" => json!({}),
        other => panic!("no audit body for operationName {other}"),
    };
    let mut body = params;
    body["operationName"] = operation.into();
    body
}
