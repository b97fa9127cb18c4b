//! The device resource (spec §5.3) and the voice channel (spec §8.2), as a GET and the
//! `DeviceStateChangeMessage` and `ChannelStateChangeMessageV2` notifications render them;
//! the channel's `userState` is the device's.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::core::{AgentState, DeviceSnapshot};

use super::{device_uri, my_device_uri, on_off, voice_environment_uri};

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
