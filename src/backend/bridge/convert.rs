//! GWS v2 JSON to and from the core's types, for talking to an upstream GWS: operations
//! become the `{"operationName": ...}` bodies the GWS JSON API takes (exactly what the
//! gateway's own legacy front parses, which a test checks by round-trip), and the call,
//! device and user resources the upstream sends become core snapshots.
//!
//! Reading is lenient where GWS servers differ (a missing `duration`, `mute` or
//! `recordingState`, unknown capabilities or fields are skipped) and strict where the core
//! cannot do without (a call without `id` or `state` is refused).

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::core::country::Country;
use crate::core::{
    AgentState, CallId, CallOperation, CallSnapshot, CallState, CallType, ContactCenter, CoreError,
    DeviceOperation, DeviceRequest, DeviceSnapshot, DialRequest, ErrorEvent, ErrorKind,
    MonitorKind, MonitorMode, MonitorScope, MonitorTarget, Monitoring, NotificationType, Operation,
    Participant, RecordingState, Role, Secret, User, UserData, UserDataValue, UserRef, WorkMode,
    stable_id,
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

fn text<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str)
}

/// Returns the last path segment of a URI or path (`.../calls/{id}` → `{id}`).
fn last_segment(uri: &str) -> &str {
    uri.trim_end_matches('/').rsplit('/').next().unwrap_or(uri)
}

/// Reads a call resource as `user` sees it. `None` when it lacks `id` or a known `state`.
pub fn call(value: &Value, user: &UserRef) -> Option<CallSnapshot> {
    let id = text(value, "id")?;
    let state = CallState::from_name(text(value, "state")?)?;
    let participants = value
        .get("participants")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|p| {
                    Some(Participant {
                        phone_number: text(p, "phoneNumber")?.into(),
                        e164_number: text(p, "e164Number").unwrap_or("").into(),
                        country: p.get("country").and_then(country),
                        location: text(p, "location").map(Into::into),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let capabilities = value
        .get("capabilities")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .filter_map(Operation::from_name)
                .collect()
        })
        .unwrap_or_default();
    let user_data = value
        .get("userData")
        .and_then(Value::as_object)
        .map(|map| {
            UserData::from_pairs(
                map.iter()
                    .filter_map(|(k, v)| {
                        let value = match v {
                            Value::String(s) => UserDataValue::Str(s.clone()),
                            Value::Number(n) => UserDataValue::Int(n.as_i64()?),
                            _ => return None,
                        };
                        Some((k.clone(), value))
                    })
                    .collect(),
            )
        })
        .unwrap_or_default();
    let flag = |key: &str| value.get(key).and_then(Value::as_bool).unwrap_or(false);
    let parent = text(value, "parentCallPath")
        .or_else(|| text(value, "parentCallUri"))
        .map(|p| CallId::new(last_segment(p)));
    Some(CallSnapshot {
        id: CallId::new(id),
        conn_id: text(value, "connId").unwrap_or(id).into(),
        state,
        call_type: text(value, "callType")
            .and_then(CallType::from_name)
            .unwrap_or(CallType::Internal),
        capabilities,
        participants,
        dnis: text(value, "dnis").unwrap_or("").into(),
        ani: text(value, "ani").map(Into::into),
        user_data,
        duration_secs: match value.get("duration") {
            Some(Value::String(s)) => s.parse().unwrap_or(0),
            Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
            _ => 0,
        },
        muted: text(value, "mute") == Some("On"),
        recording_state: text(value, "recordingState").and_then(RecordingState::from_name),
        supervisor_listening_in: flag("supervisorListeningIn"),
        monitored_user_muted: flag("monitoredUserMuted"),
        monitoring: flag("monitoring"),
        parent_call_id: parent,
        user: user.clone(),
        upstream_fields: unmodeled(value, &MODELED_CALL_KEYS),
    })
}

/// Reads a participant's `country` object; `None` without its three fields.
fn country(value: &Value) -> Option<Country> {
    Some(Country {
        name: text(value, "name")?.into(),
        code: text(value, "code")?.into(),
        calling_code: text(value, "callingCode")?.into(),
    })
}

/// The keys of the call resource the gateway renders itself (`CallJson`), from the core's
/// fields or from its own base URL.
const MODELED_CALL_KEYS: [&str; 21] = [
    "id",
    "ani",
    "callUuid",
    "connId",
    "state",
    "callType",
    "dnis",
    "deviceUri",
    "participants",
    "capabilities",
    "userData",
    "duration",
    "mute",
    "recordingState",
    "supervisorListeningIn",
    "monitoredUserMuted",
    "monitoring",
    "parentCallUri",
    "parentCallPath",
    "uri",
    "path",
];

/// The fields of an upstream resource the core does not model (not in `modeled`), as JSON
/// text, so that a GWS client behind the bridge still sees them; `None` when there are none.
fn unmodeled(value: &Value, modeled: &[&str]) -> Option<Arc<str>> {
    let extra: Map<String, Value> = value
        .as_object()?
        .iter()
        .filter(|(key, _)| !modeled.contains(&key.as_str()))
        .map(|(key, v)| (key.clone(), v.clone()))
        .collect();
    (!extra.is_empty()).then(|| Value::Object(extra).to_string().into())
}

/// Reads the `data` of a `CallStateChangeMessage`: the notification type, the call, and the
/// digits of a `DtmfSent`.
pub fn call_notification(
    data: &Value,
    user: &UserRef,
) -> Option<(NotificationType, CallSnapshot, Option<String>)> {
    let notification = text(data, "notificationType")
        .and_then(NotificationType::from_name)
        .unwrap_or(NotificationType::StatusChange);
    let call = call(data.get("call")?, user)?;
    let digits = text(data, "digits").map(str::to_owned);
    Some((notification, call, digits))
}

/// Returns the class of an upstream failure from its GWS `statusCode` alone (spec §3.1),
/// as embedded mode classes its own: a code the gateway does not give is `Internal`.
pub fn error_kind(status_code: u32) -> ErrorKind {
    match status_code {
        1 => ErrorKind::InvalidArgument,
        2 | 19 => ErrorKind::FailedPrecondition,
        3 | 5 => ErrorKind::PermissionDenied,
        4 => ErrorKind::Unavailable,
        6 => ErrorKind::NotFound,
        20 => ErrorKind::Unauthenticated,
        _ => ErrorKind::Internal,
    }
}

/// Reads the `data` of a Voice `ErrorMessage` (spec §8.4, shape inferred there) as an error
/// of `user`'s: `errorCode` (a number, or digits in a string) and `errorMessage`, kept
/// unchanged as [`CoreError::Upstream`]; the `call`, when it is one the core can read;
/// `operationName`, when it names an operation. Lenient, as GWS builds may differ: a
/// `statusCode` / `statusMessage` pair is read when the error pair is missing, and a
/// message with no code at all is still the user's error, with statusCode 4 (internal).
pub fn error_message(data: &Value, user: &UserRef) -> ErrorEvent {
    let code_of = |key: &str| match data.get(key)? {
        Value::Number(n) => n.as_u64().and_then(|c| u32::try_from(c).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    let status_code = code_of("errorCode")
        .or_else(|| code_of("statusCode"))
        .unwrap_or(4);
    let message = text(data, "errorMessage")
        .or_else(|| text(data, "statusMessage"))
        .unwrap_or("the upstream reported an error without a message")
        .to_owned();
    ErrorEvent {
        sequence: 0,
        user: user.clone(),
        operation: text(data, "operationName").and_then(Operation::from_name),
        error: CoreError::Upstream {
            kind: error_kind(status_code),
            status_code,
            message,
        },
        call: data.get("call").and_then(|value| call(value, user)),
        committed_at: std::time::UNIX_EPOCH,
    }
}

/// Reads a device resource as its user sees it; `None` when it lacks `userState`.
pub fn device(value: &Value, user: &UserRef) -> Option<DeviceSnapshot> {
    let user_state = value.get("userState")?;
    let work_mode_name = text(user_state, "workMode");
    let agent_state = match (text(user_state, "state")?, work_mode_name) {
        ("Ready", _) => AgentState::Ready,
        (_, Some("AfterCallWork")) => AgentState::AfterCallWork,
        (_, Some("AuxWork")) => AgentState::AuxWork,
        _ => AgentState::NotReady,
    };
    let work_mode = match agent_state {
        AgentState::Ready => work_mode_name.and_then(WorkMode::from_name),
        _ => None,
    };
    let monitoring = value.get("supervisorMonitoringState").and_then(|m| {
        let target = last_segment(text(m, "targetDeviceUri")?);
        Some(Monitoring {
            kind: MonitorKind::from_name(text(m, "state")?)?,
            mode: MonitorMode::from_name(text(m, "mode")?)?,
            scope: MonitorScope::from_name(text(m, "scope")?)?,
            target: "".into(),
            target_device_id: target.into(),
        })
    });
    Some(DeviceSnapshot {
        active: text(value, "deviceState") != Some("Inactive"),
        agent_state,
        work_mode,
        do_not_disturb: text(value, "doNotDisturb") == Some("On"),
        forward_to: text(value, "forwardTo").map(str::to_owned),
        capabilities: value
            .get("capabilities")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .filter_map(DeviceOperation::from_name)
                    .collect()
            })
            .unwrap_or_default(),
        monitoring,
        voice_environment_id: text(value, "voiceEnvironmentUri")
            .map_or("", last_segment)
            .into(),
        user: user.clone(),
        upstream_fields: unmodeled(value, &MODELED_DEVICE_KEYS),
    })
}

/// The keys of the device resource the gateway renders itself (`DeviceJson`).
/// `voiceEnvironmentUri` is not among them: the core keeps only its id (for gRPC), and the
/// GWS front passes the upstream's link through, as the voice environment is the upstream's.
const MODELED_DEVICE_KEYS: [&str; 12] = [
    "id",
    "deviceState",
    "userState",
    "phoneNumber",
    "e164Number",
    "telephonyNetwork",
    "doNotDisturb",
    "forwardTo",
    "capabilities",
    "supervisorMonitoringState",
    "uri",
    "path",
];

/// What `GET /api/v2/me?subresources=*` says about a user.
#[derive(Debug, Clone)]
pub struct Me {
    /// The user, to learn into the directory (no secret: the upstream checks it).
    pub user: User,
    /// Its contact center with the features the upstream lists.
    pub center: ContactCenter,
    /// The user's device, raw (read with [`device`] once the user is known).
    pub device: Option<Value>,
    /// The user's active calls, raw.
    pub calls: Vec<Value>,
}

/// Reads the `user` of a `GET /api/v2/me?subresources=*` reply. A user without a device
/// (no DN) cannot make calls through the gateway and is refused (`None`). The contact
/// center is the upstream's `contactCenterId` when it sends one, else `default_center`.
pub fn me(value: &Value, default_center: &str) -> Option<Me> {
    let user = value.get("user")?;
    let name = text(user, "userName")?;
    let device = user
        .get("devices")
        .and_then(Value::as_array)
        .and_then(|d| d.first())
        .cloned();
    let phone_number = device.as_ref().and_then(|d| text(d, "phoneNumber"))?;
    let device_id = device
        .as_ref()
        .and_then(|d| text(d, "id"))
        .map_or_else(|| stable_id("device", name), str::to_owned);
    let center: Arc<str> = text(user, "contactCenterId")
        .unwrap_or(default_center)
        .into();
    let features: BTreeSet<String> = user
        .get("features")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|f| text(f, "name").or_else(|| f.as_str()))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let roles = user
        .get("roles")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .filter_map(|r| {
                    Role::from_name(&r.trim_start_matches("ROLE_").to_ascii_lowercase())
                })
                .collect()
        })
        .unwrap_or_else(|| BTreeSet::from([Role::Agent]));
    Some(Me {
        user: User {
            id: text(user, "id").map_or_else(|| stable_id("user", name), str::to_owned),
            name: name.into(),
            first_name: text(user, "firstName").unwrap_or("").to_owned(),
            last_name: text(user, "lastName").unwrap_or("").to_owned(),
            contact_center: center.clone(),
            phone_number: phone_number.into(),
            device_id: device_id.into(),
            roles,
            password: Secret::Upstream,
        },
        center: ContactCenter {
            name: center,
            features,
        },
        device,
        calls: user
            .get("calls")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests;
