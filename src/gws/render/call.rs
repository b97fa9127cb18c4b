//! The call resource (spec §5.1) with its participants and user data, as a GET and a
//! `CallStateChangeMessage` render it, and the Voice `ErrorMessage` that carries a call.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::core::{CallEvent, CallSnapshot, ErrorEvent, Participant, UserData, UserDataValue};

use super::{call_uri, device_uri, on_off};

/// Renders user data as a flat JSON object. A key that repeats (AttachUserData keeps
/// duplicates) shows its last value, as a JSON object cannot hold a key twice.
pub fn user_data_json(data: &UserData) -> Map<String, Value> {
    data.pairs()
        .iter()
        .map(|(key, value)| {
            let value = match value {
                UserDataValue::Str(s) => Value::String(s.clone()),
                UserDataValue::Int(i) => Value::from(*i),
            };
            (key.clone(), value)
        })
        .collect()
}

/// A participant object (spec §5.2).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantJson {
    /// The number.
    pub phone_number: String,
    /// The digits.
    pub digits: String,
    /// Display form.
    pub formatted_phone_number: String,
    /// E.164 form, empty for internal numbers.
    pub e164_number: String,
    /// Where the number is (the country's name, see [`crate::core::country`]); omitted for
    /// internal numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The number's country; omitted for internal numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<CountryJson>,
}

/// A participant's `country` (spec §5.2).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CountryJson {
    /// English short name.
    pub name: String,
    /// ISO 3166-1 alpha-2 code.
    pub code: String,
    /// Calling code without `+`.
    pub calling_code: String,
}

impl From<&Participant> for ParticipantJson {
    fn from(p: &Participant) -> Self {
        Self {
            phone_number: p.phone_number.to_string(),
            digits: p.digits().to_owned(),
            formatted_phone_number: p.formatted_phone_number(),
            e164_number: p.e164_number.to_string(),
            location: p.location.as_deref().map(str::to_owned),
            country: p.country.as_ref().map(|c| CountryJson {
                name: c.name.to_string(),
                code: c.code.to_string(),
                calling_code: c.calling_code.to_string(),
            }),
        }
    }
}

/// The call resource (spec §5.1).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallJson {
    /// Call id.
    pub id: String,
    /// Call UUID (the id).
    pub call_uuid: String,
    /// Connection id.
    pub conn_id: String,
    /// State name.
    pub state: &'static str,
    /// Call type name.
    pub call_type: &'static str,
    /// The dialed number.
    pub dnis: String,
    /// The calling number of a call from an outside number; omitted on calls an agent made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ani: Option<String>,
    /// [`device_uri`] of the user's device.
    pub device_uri: String,
    /// Other parties.
    pub participants: Vec<ParticipantJson>,
    /// Operation names.
    pub capabilities: Vec<&'static str>,
    /// Attached data; omitted when empty.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub user_data: Map<String, Value>,
    /// Seconds since the start, as a string.
    pub duration: String,
    /// `On` / `Off`.
    pub mute: &'static str,
    /// Recording state; omitted when recording does not apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording_state: Option<&'static str>,
    /// A supervisor listens in.
    pub supervisor_listening_in: bool,
    /// A supervisor muted the monitored user.
    pub monitored_user_muted: bool,
    /// A supervisor's monitoring leg.
    pub monitoring: bool,
    /// Absolute URI of the parent call, on consult calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_call_uri: Option<String>,
    /// Relative path of the parent call, on consult calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_call_path: Option<String>,
    /// Absolute URI of the call.
    pub uri: String,
    /// `/calls/{id}`.
    pub path: String,
    /// Bridge mode: the fields the upstream GWS sent that the core does not model, passed
    /// through unchanged.
    #[serde(flatten)]
    pub upstream: Map<String, Value>,
}

impl CallJson {
    /// Renders a call view with links under `base_url` ([`crate::gws::base_url`]).
    pub fn from_snapshot(call: &CallSnapshot, base_url: &str) -> Self {
        let id = call.id.to_string();
        let parent = call.parent_call_id.as_ref().map(ToString::to_string);
        Self {
            call_uuid: id.clone(),
            conn_id: call.conn_id.to_string(),
            state: call.state.as_str(),
            call_type: call.call_type.as_str(),
            dnis: call.dnis.to_string(),
            ani: call.ani.as_deref().map(str::to_owned),
            device_uri: device_uri(base_url, &call.user.device_id),
            participants: call
                .participants
                .iter()
                .map(ParticipantJson::from)
                .collect(),
            capabilities: call.capabilities.iter().map(|op| op.as_str()).collect(),
            user_data: user_data_json(&call.user_data),
            duration: call.duration_secs.to_string(),
            mute: on_off(call.muted),
            recording_state: call.recording_state.map(|r| r.as_str()),
            supervisor_listening_in: call.supervisor_listening_in,
            monitored_user_muted: call.monitored_user_muted,
            monitoring: call.monitoring,
            parent_call_uri: parent.as_ref().map(|p| call_uri(base_url, p)),
            parent_call_path: parent.map(|p| format!("/calls/{p}")),
            uri: call_uri(base_url, &id),
            path: format!("/calls/{id}"),
            id,
            upstream: call
                .upstream_fields
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or_default(),
        }
    }
}

/// The `data` of a `CallStateChangeMessage` notification (spec §8.3).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallStateChangeJson {
    /// Always `CallStateChangeMessage`.
    pub message_type: &'static str,
    /// The GWS notificationType.
    pub notification_type: &'static str,
    /// The user's own DN.
    pub phone_number: String,
    /// The call as the user sees it.
    pub call: CallJson,
    /// DTMF digits, on `DtmfSent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digits: Option<String>,
}

impl CallStateChangeJson {
    /// Renders a core event for the user it belongs to.
    pub fn from_event(event: &CallEvent, base_url: &str) -> Self {
        Self {
            message_type: "CallStateChangeMessage",
            notification_type: event.notification.as_str(),
            phone_number: event.call.user.phone_number.to_string(),
            call: CallJson::from_snapshot(&event.call, base_url),
            digits: event.digits.clone(),
        }
    }
}

/// The Voice `ErrorMessage` of `/v2/me/calls`: an operation that failed after it was
/// accepted (spec §3.2). Its shape is the spec's proposal (§8.4, inferred): `errorCode` and
/// `errorMessage` as T-Server's EventError names them, the call when there is one, and the
/// user's DN as in a `CallStateChangeMessage`; `operationName` names the failed operation
/// in the request vocabulary. `errorCode` holds the GWS statusCode of the failure (see
/// `crate::core::ErrorEvent` for the choices).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorMessageJson {
    /// Always `ErrorMessage`.
    pub message_type: &'static str,
    /// The GWS statusCode of the failure (in bridge mode, the upstream's `errorCode`).
    pub error_code: u32,
    /// What failed, in words.
    pub error_message: String,
    /// The operation that failed; omitted when an upstream did not name it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_name: Option<&'static str>,
    /// The user's own DN.
    pub phone_number: String,
    /// The call as the user sees it after the failure; omitted when it concerns no call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<CallJson>,
}

impl ErrorMessageJson {
    /// Renders a core error event for the user it belongs to.
    pub fn from_event(event: &ErrorEvent, base_url: &str) -> Self {
        Self {
            message_type: "ErrorMessage",
            error_code: event.error.status_code(),
            error_message: event.error.to_string(),
            operation_name: event.operation.map(|o| o.as_str()),
            phone_number: event.user.phone_number.to_string(),
            call: event
                .call
                .as_ref()
                .map(|call| CallJson::from_snapshot(call, base_url)),
        }
    }
}
