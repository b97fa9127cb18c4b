//! The wing's one renderer: the JSON shapes of the GWS v2 Voice API (spec §5). The call,
//! device and voice channel resources are rendered here for the JSON API's GETs and for the
//! CometD notifications alike (`CallStateChangeMessage`, `DeviceStateChangeMessage`,
//! `ChannelStateChangeMessageV2`, and the Voice `ErrorMessage` that carries a call), so a
//! resource reads the same in both; the user and feature resources are the JSON API's.
//!
//! Links are the base URL of [`crate::gws::base_url`] followed by the resource's path
//! ([`call_uri`], [`device_uri`], [`my_device_uri`]); a notification carries the base URL
//! of its CometD session's handshake.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::core::{
    AgentState, CallEvent, CallSnapshot, DeviceSnapshot, ErrorEvent, Participant, User, UserData,
    UserDataValue,
};

/// Returns a call's link, `{base_url}/api/v2/me/calls/{id}`.
pub fn call_uri(base_url: &str, id: &str) -> String {
    format!("{base_url}/api/v2/me/calls/{id}")
}

/// Returns a device's link as a call or a monitoring state names it,
/// `{base_url}/api/v2/devices/{id}` (GWS's `deviceUri` form).
pub fn device_uri(base_url: &str, id: &str) -> String {
    format!("{base_url}/api/v2/devices/{id}")
}

/// Returns the link of the caller's own device, `{base_url}/api/v2/me/devices/{id}` (the
/// device resource's `uri`).
pub fn my_device_uri(base_url: &str, id: &str) -> String {
    format!("{base_url}/api/v2/me/devices/{id}")
}

/// Returns a voice environment's link, `{base_url}/api/v2/voice-environments/{id}`.
pub fn voice_environment_uri(base_url: &str, id: &str) -> String {
    format!("{base_url}/api/v2/voice-environments/{id}")
}

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

/// The device resource (spec §5.3, the §8.4 sample), rendered from the core's device.
/// `voiceEnvironmentUri` is left out: the gateway has no voice-environment resource.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceJson {
    /// Device id.
    pub id: String,
    /// `Active` while the agent's contact-center session runs, `Inactive` after it ended.
    pub device_state: &'static str,
    /// The agent state of the voice channel.
    pub user_state: UserStateJson,
    /// The DN.
    pub phone_number: String,
    /// The DN (internal numbers are their own E.164 form in GWS samples).
    pub e164_number: String,
    /// Always `Private`: the embedded switch's lines are private.
    pub telephony_network: &'static str,
    /// `On` / `Off`.
    pub do_not_disturb: &'static str,
    /// The forwarding target; omitted when forwarding is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_to: Option<String>,
    /// Device operation names possible now.
    pub capabilities: Vec<&'static str>,
    /// What this (supervisor's) device monitors; omitted when it monitors nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supervisor_monitoring_state: Option<MonitoringJson>,
    /// [`voice_environment_uri`], the switch the device is on; omitted when the id is
    /// unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice_environment_uri: Option<String>,
    /// [`my_device_uri`].
    pub uri: String,
    /// `/devices/{id}`.
    pub path: String,
    /// Bridge mode: the fields the upstream GWS sent that the core does not model, passed
    /// through unchanged.
    #[serde(flatten)]
    pub upstream: Map<String, Value>,
}

/// The `userState` of a device (spec §5.4).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserStateJson {
    /// The fixed id of the state in GWS samples.
    pub id: &'static str,
    /// `Ready`, `Not Ready`, ...
    pub display_name: &'static str,
    /// `Ready` or `NotReady`.
    pub state: &'static str,
    /// `ManualIn`/`AutoIn` when Ready with a workmode, `AfterCallWork`/`AuxWork` for those
    /// states; omitted otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work_mode: Option<&'static str>,
}

/// The `supervisorMonitoringState` of a device (spec §5.3).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringJson {
    /// `ListenIn`, `Coach` or `BargeIn`.
    pub state: &'static str,
    /// `NextCall` or `AllCalls`.
    pub mode: &'static str,
    /// `Agent` or `Call`.
    pub scope: &'static str,
    /// [`device_uri`] of the monitored device.
    pub target_device_uri: String,
}

impl UserStateJson {
    /// Renders the agent state of a device (spec §5.4).
    pub fn from_snapshot(device: &DeviceSnapshot) -> Self {
        let state = device.agent_state;
        let work_mode = match state {
            AgentState::Ready => device.work_mode.map(|w| w.as_str()),
            AgentState::AfterCallWork | AgentState::AuxWork => Some(state.as_str()),
            AgentState::NotReady => None,
        };
        Self {
            id: state.id(),
            display_name: state.display_name(),
            state: state.state_name(),
            work_mode,
        }
    }
}

impl DeviceJson {
    /// Renders a device as its user sees it.
    pub fn from_snapshot(device: &DeviceSnapshot, base_url: &str) -> Self {
        let id = &device.user.device_id;
        let upstream: Map<String, Value> = device
            .upstream_fields
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        Self {
            id: id.to_string(),
            device_state: if device.active { "Active" } else { "Inactive" },
            user_state: UserStateJson::from_snapshot(device),
            phone_number: device.user.phone_number.to_string(),
            e164_number: device.user.phone_number.to_string(),
            telephony_network: "Private",
            do_not_disturb: on_off(device.do_not_disturb),
            forward_to: device.forward_to.clone(),
            capabilities: device.capabilities.iter().map(|op| op.as_str()).collect(),
            supervisor_monitoring_state: device.monitoring.as_ref().map(|m| MonitoringJson {
                state: m.kind.as_str(),
                mode: m.mode.as_str(),
                scope: m.scope.as_str(),
                target_device_uri: device_uri(base_url, &m.target_device_id),
            }),
            // A bridged device keeps its upstream's link (in `upstream`).
            voice_environment_uri: (!device.voice_environment_id.is_empty()
                && !upstream.contains_key("voiceEnvironmentUri"))
            .then(|| voice_environment_uri(base_url, &device.voice_environment_id)),
            uri: my_device_uri(base_url, id),
            path: format!("/devices/{id}"),
            upstream,
        }
    }
}

fn on_off(on: bool) -> &'static str {
    if on { "On" } else { "Off" }
}

/// The `data` of a `DeviceStateChangeMessage` notification on `/v2/me/devices` (spec
/// §8.4): the device exactly as `GET /api/v2/me/devices` renders it; no notificationType.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceStateChangeJson {
    /// Always `DeviceStateChangeMessage`.
    pub message_type: &'static str,
    /// The changed device (one: every user has one device).
    pub devices: Vec<DeviceJson>,
}

impl DeviceStateChangeJson {
    /// Renders a device after a change.
    pub fn from_device(device: &DeviceSnapshot, base_url: &str) -> Self {
        Self {
            message_type: "DeviceStateChangeMessage",
            devices: vec![DeviceJson::from_snapshot(device, base_url)],
        }
    }
}

/// The state of a media channel, as a `ChannelStateChangeMessageV2` entry (spec §8.2)
/// shows it: the gateway serves `voice` only, whose state is the user's device's.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStateJson {
    /// The media channel: always `voice`.
    pub channel: &'static str,
    /// `On` / `Off`: the device's do-not-disturb.
    pub dnd_state: &'static str,
    /// The agent state, the same object as the device's `userState`.
    pub user_state: UserStateJson,
}

impl ChannelStateJson {
    /// Renders the voice channel of a user from their device.
    pub fn voice(device: &DeviceSnapshot) -> Self {
        Self {
            channel: "voice",
            dnd_state: on_off(device.do_not_disturb),
            user_state: UserStateJson::from_snapshot(device),
        }
    }
}

/// A media channel resource (`/api/v2/me/channels`): the channel state plus its links.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelJson {
    /// The channel's state.
    #[serde(flatten)]
    pub state: ChannelStateJson,
    /// Absolute URI, `http://host/api/v2/me/channels/voice`.
    pub uri: String,
    /// `/channels/voice`.
    pub path: String,
}

impl ChannelJson {
    /// Renders the voice channel of a user from their device.
    pub fn voice(device: &DeviceSnapshot, base_url: &str) -> Self {
        Self {
            state: ChannelStateJson::voice(device),
            uri: format!("{base_url}/api/v2/me/channels/voice"),
            path: "/channels/voice".to_owned(),
        }
    }
}

/// The `data` of a `ChannelStateChangeMessageV2` notification on `/v2/me/channels`
/// (spec §8.2), sent when the agent state or do-not-disturb changes.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStateChangeJson {
    /// Always `ChannelStateChangeMessageV2`.
    pub message_type: &'static str,
    /// The user's channels (only `voice`).
    pub channels: Vec<ChannelStateJson>,
}

impl ChannelStateChangeJson {
    /// Renders the voice channel of a device after an agent-state or DND change.
    pub fn from_device(device: &DeviceSnapshot) -> Self {
        Self {
            message_type: "ChannelStateChangeMessageV2",
            channels: vec![ChannelStateJson::voice(device)],
        }
    }
}

/// The user resource of `GET /api/v2/me` (spec §6.7), with the subresources asked for.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserJson {
    /// User id.
    pub id: String,
    /// Login name.
    pub user_name: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// GWS role names (`ROLE_AGENT`, ...).
    pub roles: Vec<&'static str>,
    /// Always true: disabled users are not configured.
    pub enabled: bool,
    /// Always false: passwords come from the configuration.
    pub change_password_on_first_login: bool,
    /// Absolute URI, `http://host/api/v2/me`.
    pub uri: String,
    /// `/me`.
    pub path: String,
    /// The user's devices, when `subresources` names them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<DeviceJson>>,
    /// The user's channels, when `subresources` names them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<ChannelJson>>,
    /// The contact center's features, when `subresources` names them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<FeatureJson>>,
    /// The user's active calls, when `subresources` names them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls: Option<Vec<CallJson>>,
    /// The settings a desktop reads at start-up, when `subresources` names them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<Value>,
}

impl UserJson {
    /// Renders a user without subresources.
    pub fn from_user(user: &User, base_url: &str) -> Self {
        Self {
            id: user.id.clone(),
            user_name: user.name.to_string(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            roles: user.roles.iter().map(|r| r.gws_name()).collect(),
            enabled: true,
            change_password_on_first_login: false,
            uri: format!("{base_url}/api/v2/me"),
            path: "/me".to_owned(),
            devices: None,
            channels: None,
            features: None,
            calls: None,
            settings: None,
        }
    }
}

/// A feature of the contact center (spec §4).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureJson {
    /// The feature name, which is also its id.
    pub id: String,
    /// The feature name (`api-voice`, ...).
    pub name: String,
    /// Absolute URI, `http://host/api/v2/features/{name}`.
    pub uri: String,
    /// `/features/{name}`.
    pub path: String,
}

impl FeatureJson {
    /// Renders a feature.
    pub fn from_name(name: &str, base_url: &str) -> Self {
        Self {
            id: name.to_owned(),
            name: name.to_owned(),
            uri: feature_uri(name, base_url),
            path: format!("/features/{name}"),
        }
    }
}

/// Returns the absolute URI of a feature.
pub fn feature_uri(name: &str, base_url: &str) -> String {
    format!("{base_url}/api/v2/features/{name}")
}
