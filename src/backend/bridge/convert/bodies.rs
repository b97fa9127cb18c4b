//! Operations to the bodies the upstream takes: a Dial, an operation on a call, a device,
//! agent-state or session operation, each with the path it is posted to.

use serde_json::{Map, Value, json};

use crate::core::{
    CallId, CallOperation, DeviceRequest, DialRequest, MonitorTarget, User, UserData, UserDataValue,
};

/// Where an operation is posted on the upstream, and its body.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamRequest {
    /// The path under the upstream's base URL, e.g. `/api/v2/me/calls/{id}`.
    pub path: String,
    /// The JSON body.
    pub body: Value,
}

fn user_data(data: &UserData) -> Value {
    let map: Map<String, Value> = data
        .pairs()
        .iter()
        .map(|(k, v)| {
            let value = match v {
                UserDataValue::Str(s) => Value::from(s.as_str()),
                UserDataValue::Int(i) => Value::from(*i),
            };
            (k.clone(), value)
        })
        .collect();
    Value::Object(map)
}

/// The body of a Dial, posted to the user's device.
pub fn dial(user: &User, request: &DialRequest) -> UpstreamRequest {
    let mut body = json!({
        "operationName": "Dial",
        "destination": {"phoneNumber": request.destination.number},
    });
    if let Some(location) = &request.destination.location {
        body["location"] = location.as_str().into();
    }
    if !request.destination.user_data.is_empty() {
        body["userData"] = user_data(&request.destination.user_data);
    }
    UpstreamRequest {
        path: format!("/api/v2/me/devices/{}/calls", user.device_id),
        body,
    }
}

/// The body of an operation on a call.
pub fn call_operation(call: &CallId, op: &CallOperation) -> UpstreamRequest {
    use CallOperation as C;
    let mut body = json!({ "operationName": op.operation().as_str() });
    let destination = |d: &crate::core::Destination| {
        let mut value = json!({"phoneNumber": d.number});
        if let Some(location) = &d.location {
            value["location"] = location.as_str().into();
        }
        value
    };
    match op {
        C::SendDtmf { digits } => body["digits"] = digits.as_str().into(),
        C::SingleStepTransfer(d)
        | C::InitiateTransfer(d)
        | C::InitiateConference(d)
        | C::SingleStepConference(d) => {
            body["destination"] = destination(d);
            if !d.user_data.is_empty() {
                body["userData"] = user_data(&d.user_data);
            }
        }
        C::CompleteTransfer { consult: Some(c) } | C::CompleteConference { consult: Some(c) } => {
            body["consultCallUri"] = format!("/api/v2/me/calls/{c}").into();
        }
        C::RemoveParticipantFromConference { participant } => {
            body["participant"] = participant.as_str().into();
        }
        C::SwapCalls { other } => body["otherCallUri"] = format!("/api/v2/me/calls/{other}").into(),
        C::AttachUserData(data) | C::UpdateUserData(data) => body["userData"] = user_data(data),
        C::DeleteUserDataPair { key } => body["key"] = key.as_str().into(),
        C::SetCallDisposition { disposition, key } => {
            body["disposition"] = disposition.as_str().into();
            if let Some(key) = key {
                body["dispositionKey"] = key.as_str().into();
            }
        }
        _ => {}
    }
    UpstreamRequest {
        path: format!("/api/v2/me/calls/{call}"),
        body,
    }
}

/// The body of a device, agent-state or session operation, on the resource GWS serves it.
pub fn device_operation(user: &User, request: &DeviceRequest) -> UpstreamRequest {
    use DeviceRequest as D;
    let mut body = json!({ "operationName": request.operation().as_str() });
    let device_path = format!("/api/v2/me/devices/{}", user.device_id);
    let path = match request {
        D::StartContactCenterSession {
            channels,
            place,
            device_path,
            queue,
            login_code,
        } => {
            body["channels"] = json!(channels);
            for (key, value) in [
                ("place", place),
                ("devicePath", device_path),
                ("queue", queue),
                ("loginCode", login_code),
            ] {
                if let Some(value) = value {
                    body[key] = value.as_str().into();
                }
            }
            "/api/v2/me".to_owned()
        }
        D::EndContactCenterSession => "/api/v2/me".to_owned(),
        D::Ready { work_mode } => {
            if let Some(mode) = work_mode {
                body["workmode"] = mode.as_str().into();
            }
            "/api/v2/me/channels/voice".to_owned()
        }
        D::AfterCallWork { wrap_up } => {
            if let Some(after) = wrap_up {
                body["wrapUpTime"] = after.as_secs().to_string().into();
            }
            "/api/v2/me/channels/voice".to_owned()
        }
        D::NotReady | D::AuxWork => "/api/v2/me/channels/voice".to_owned(),
        D::ForwardCallsOn { destination } => {
            body["destination"] = destination.as_str().into();
            device_path
        }
        D::Monitor {
            target,
            mode,
            scope,
            ..
        } => {
            match target {
                MonitorTarget::Device(id) => {
                    body["targetDeviceUri"] = format!("/api/v2/devices/{id}").into();
                }
                MonitorTarget::PhoneNumber(number) => body["phoneNumber"] = number.as_str().into(),
            }
            body["supervisorMonitoringMode"] = mode.as_str().into();
            body["supervisorMonitoringScope"] = scope.as_str().into();
            device_path
        }
        D::DoNotDisturbOn
        | D::DoNotDisturbOff
        | D::ForwardCallsOff
        | D::CancelSupervisorMonitoring => device_path,
    };
    UpstreamRequest { path, body }
}
