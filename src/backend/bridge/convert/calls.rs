//! The call resource the upstream sends read as a core snapshot, its `CallStateChangeMessage`
//! and its Voice `ErrorMessage`, and the class of an upstream failure by its `statusCode`.

use serde_json::Value;

use super::{last_segment, text, unmodeled};
use crate::core::country::Country;
use crate::core::{
    CallId, CallSnapshot, CallState, CallType, CoreError, ErrorEvent, ErrorKind, NotificationType,
    Operation, Participant, RecordingState, UserData, UserDataValue, UserRef,
};

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
