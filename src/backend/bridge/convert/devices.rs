//! The device resource the upstream sends read as a core snapshot: the agent state and work
//! mode, forwarding, capabilities and supervisor monitoring.

use sonic_rs::{JsonContainerTrait as _, JsonValueTrait as _, Value};

use super::{last_segment, text, unmodeled};
use crate::core::{
    AgentState, DeviceOperation, DeviceSnapshot, MonitorKind, MonitorMode, MonitorScope,
    Monitoring, UserRef, WorkMode,
};

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
            .and_then(|v| v.as_array())
            .map(|list| {
                list.iter()
                    .filter_map(|v| v.as_str())
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
