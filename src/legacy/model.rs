//! JSON shapes of the GWS v2 Voice API (spec §5): the call resource and participants, as
//! both the JSON API and CometD notifications render them.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::core::{CallEvent, CallSnapshot, Participant, UserData, UserDataValue};

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
}

impl From<&Participant> for ParticipantJson {
    fn from(p: &Participant) -> Self {
        Self {
            phone_number: p.phone_number.clone(),
            digits: p.digits().to_owned(),
            formatted_phone_number: p.formatted_phone_number(),
            e164_number: p.e164_number.clone(),
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
    /// `http://host/api/v2/devices/{id}`.
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
}

impl CallJson {
    /// Renders a call view; `base_url` is `http://host:port` as the client reached us.
    pub fn from_snapshot(call: &CallSnapshot, base_url: &str) -> Self {
        let id = call.id.to_string();
        let parent = call.parent_call_id.as_ref().map(ToString::to_string);
        Self {
            call_uuid: id.clone(),
            conn_id: call.conn_id.clone(),
            state: call.state.as_str(),
            call_type: call.call_type.as_str(),
            dnis: call.dnis.clone(),
            device_uri: format!("{base_url}/api/v2/devices/{}", call.user.device_id),
            participants: call
                .participants
                .iter()
                .map(ParticipantJson::from)
                .collect(),
            capabilities: call.capabilities.iter().map(|op| op.as_str()).collect(),
            user_data: user_data_json(&call.user_data),
            duration: call.duration_secs.to_string(),
            mute: if call.muted { "On" } else { "Off" },
            recording_state: call.recording_state.map(|r| r.as_str()),
            supervisor_listening_in: call.supervisor_listening_in,
            monitored_user_muted: call.monitored_user_muted,
            monitoring: call.monitoring,
            parent_call_uri: parent
                .as_ref()
                .map(|p| format!("{base_url}/api/v2/me/calls/{p}")),
            parent_call_path: parent.map(|p| format!("/calls/{p}")),
            uri: format!("{base_url}/api/v2/me/calls/{id}"),
            path: format!("/calls/{id}"),
            id,
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
