//! The call resource the upstream sends read as a core snapshot, its `CallStateChangeMessage`
//! and its Voice `ErrorMessage`, and the class of an upstream failure by its `statusCode`.

use sonic_rs::{JsonContainerTrait as _, JsonValueTrait as _, Value};

use std::sync::Arc;

use super::{fields_text, last_segment, text};
use crate::core::country::Country;
use crate::core::{
    CallId, CallSnapshot, CallState, CallType, CoreError, ErrorEvent, ErrorKind, NotificationType,
    Operation, Participant, RecordingState, UserData, UserDataValue, UserRef,
};

/// A call resource's fields that the core models, found in one pass over its keys (a
/// sonic-rs object finds a key by comparing it with each key in turn, and a call has
/// about twenty); `rest` keeps the others, as they came. A modeled key sent twice counts
/// once, the last time, as serde_json's map read it.
#[derive(Default)]
struct CallFields<'a> {
    id: Option<&'a Value>,
    conn_id: Option<&'a Value>,
    state: Option<&'a Value>,
    call_type: Option<&'a Value>,
    dnis: Option<&'a Value>,
    ani: Option<&'a Value>,
    participants: Option<&'a Value>,
    capabilities: Option<&'a Value>,
    user_data: Option<&'a Value>,
    duration: Option<&'a Value>,
    mute: Option<&'a Value>,
    recording_state: Option<&'a Value>,
    supervisor_listening_in: Option<&'a Value>,
    monitored_user_muted: Option<&'a Value>,
    monitoring: Option<&'a Value>,
    parent_call_path: Option<&'a Value>,
    parent_call_uri: Option<&'a Value>,
    rest: Vec<(&'a str, &'a Value)>,
}

impl<'a> CallFields<'a> {
    fn read(object: &'a sonic_rs::Object) -> Self {
        let mut fields = Self::default();
        for (key, value) in object.iter() {
            let slot = match key {
                "id" => &mut fields.id,
                "connId" => &mut fields.conn_id,
                "state" => &mut fields.state,
                "callType" => &mut fields.call_type,
                "dnis" => &mut fields.dnis,
                "ani" => &mut fields.ani,
                "participants" => &mut fields.participants,
                "capabilities" => &mut fields.capabilities,
                "userData" => &mut fields.user_data,
                "duration" => &mut fields.duration,
                "mute" => &mut fields.mute,
                "recordingState" => &mut fields.recording_state,
                "supervisorListeningIn" => &mut fields.supervisor_listening_in,
                "monitoredUserMuted" => &mut fields.monitored_user_muted,
                "monitoring" => &mut fields.monitoring,
                "parentCallPath" => &mut fields.parent_call_path,
                "parentCallUri" => &mut fields.parent_call_uri,
                // The links and ids the gateway renders itself, from the call's id.
                "callUuid" | "deviceUri" | "uri" | "path" => continue,
                _ => {
                    fields.rest.push((key, value));
                    continue;
                }
            };
            *slot = Some(value);
        }
        fields
    }

    /// The unmodeled fields as JSON text (see [`super::unmodeled`]).
    fn rest_text(&self) -> Option<Arc<str>> {
        fields_text(self.rest.iter().copied())
    }
}

/// The text of a field, when it is a string.
fn as_text(value: Option<&Value>) -> Option<&str> {
    value?.as_str()
}

/// Reads a call resource as `user` sees it. `None` when it lacks `id` or a known `state`.
pub fn call(value: &Value, user: &UserRef) -> Option<CallSnapshot> {
    let fields = CallFields::read(value.as_object()?);
    let id = as_text(fields.id)?;
    let state = CallState::from_name(as_text(fields.state)?)?;
    let participants = fields
        .participants
        .and_then(|v| v.as_array())
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
    let capabilities = fields
        .capabilities
        .and_then(|v| v.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str())
                .filter_map(Operation::from_name)
                .collect()
        })
        .unwrap_or_default();
    let user_data = fields
        .user_data
        .and_then(|v| v.as_object())
        .map(|map| {
            UserData::from_pairs(
                map.iter()
                    .filter_map(|(k, v)| {
                        let value = match v.as_str() {
                            Some(s) => UserDataValue::Str(s.to_owned()),
                            None if v.is_number() => UserDataValue::Int(v.as_i64()?),
                            None => return None,
                        };
                        Some((k.to_owned(), value))
                    })
                    .collect(),
            )
        })
        .unwrap_or_default();
    let flag = |field: Option<&Value>| field.and_then(|v| v.as_bool()).unwrap_or(false);
    let parent = as_text(fields.parent_call_path)
        .or_else(|| as_text(fields.parent_call_uri))
        .map(|p| CallId::new(last_segment(p)));
    Some(CallSnapshot {
        id: CallId::new(id),
        conn_id: as_text(fields.conn_id).unwrap_or(id).into(),
        state,
        call_type: as_text(fields.call_type)
            .and_then(CallType::from_name)
            .unwrap_or(CallType::Internal),
        capabilities,
        participants,
        dnis: as_text(fields.dnis).unwrap_or("").into(),
        ani: as_text(fields.ani).map(Into::into),
        user_data,
        duration_secs: fields.duration.map_or(0, |d| match d.as_str() {
            Some(s) => s.parse().unwrap_or(0),
            None => d.as_u64().unwrap_or(0),
        }),
        muted: as_text(fields.mute) == Some("On"),
        recording_state: as_text(fields.recording_state).and_then(RecordingState::from_name),
        supervisor_listening_in: flag(fields.supervisor_listening_in),
        monitored_user_muted: flag(fields.monitored_user_muted),
        monitoring: flag(fields.monitoring),
        parent_call_id: parent,
        user: user.clone(),
        upstream_fields: fields.rest_text(),
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
    let code_of = |key: &str| {
        let code = data.get(key)?;
        match code.as_str() {
            Some(s) => s.parse().ok(),
            None => code.as_u64().and_then(|c| u32::try_from(c).ok()),
        }
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
