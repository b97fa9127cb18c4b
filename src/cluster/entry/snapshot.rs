//! The wire forms of the core's snapshots inside a shared-log entry: the user
//! ([`UserRef`]), the call ([`CallSnapshot`]) and the device ([`DeviceSnapshot`]), each with
//! everything another instance needs to render it (the `upstream_fields` too).
//!
//! The structs are the cluster's own (the core stays free of serde). Each field of a core
//! type is named once in a `from_core`/`into_core` pair, and `from_core` destructures the
//! core type, so that a field added to the core fails to compile here rather than being
//! left out of the log silently. Enumerations travel by their names (`as_str`/`from_name`),
//! and an unknown name makes the whole entry unreadable ([`EntryError`]) rather than
//! guessed.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{EntryError, named};
use crate::core::country::Country;
use crate::core::{
    AgentState, CallId, CallSnapshot, CallState, CallType, DeviceOperation, DeviceSnapshot,
    MonitorKind, MonitorMode, MonitorScope, Monitoring, Operation, Participant, RecordingState,
    UserData, UserDataValue, UserRef, WorkMode,
};

#[derive(Serialize, Deserialize)]
pub(super) struct UserJson {
    name: Arc<str>,
    contact_center: Arc<str>,
    phone_number: Arc<str>,
    device_id: Arc<str>,
}

impl UserJson {
    pub(super) fn from_core(user: &UserRef) -> Self {
        let UserRef {
            name,
            contact_center,
            phone_number,
            device_id,
        } = user.clone();
        Self {
            name,
            contact_center,
            phone_number,
            device_id,
        }
    }

    pub(super) fn into_core(self) -> UserRef {
        UserRef {
            name: self.name,
            contact_center: self.contact_center,
            phone_number: self.phone_number,
            device_id: self.device_id,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct CountryJson {
    name: Arc<str>,
    code: Arc<str>,
    calling_code: Arc<str>,
}

#[derive(Serialize, Deserialize)]
struct ParticipantJson {
    phone_number: Arc<str>,
    e164_number: Arc<str>,
    country: Option<CountryJson>,
    location: Option<Arc<str>>,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum ValueJson {
    Int(i64),
    Str(String),
}

#[derive(Serialize, Deserialize)]
pub(super) struct CallJson {
    id: Arc<str>,
    conn_id: Arc<str>,
    state: String,
    call_type: String,
    capabilities: Vec<String>,
    participants: Vec<ParticipantJson>,
    dnis: Arc<str>,
    ani: Option<Arc<str>>,
    user_data: Vec<(String, ValueJson)>,
    duration_secs: u64,
    muted: bool,
    recording_state: Option<String>,
    supervisor_listening_in: bool,
    monitored_user_muted: bool,
    monitoring: bool,
    parent_call_id: Option<Arc<str>>,
    user: UserJson,
    upstream_fields: Option<Arc<str>>,
}

impl CallJson {
    pub(super) fn from_core(call: &CallSnapshot) -> Self {
        let CallSnapshot {
            id,
            conn_id,
            state,
            call_type,
            capabilities,
            participants,
            dnis,
            ani,
            user_data,
            duration_secs,
            muted,
            recording_state,
            supervisor_listening_in,
            monitored_user_muted,
            monitoring,
            parent_call_id,
            user,
            upstream_fields,
        } = call;
        Self {
            id: id.as_str().into(),
            conn_id: conn_id.clone(),
            state: state.as_str().into(),
            call_type: call_type.as_str().into(),
            capabilities: capabilities.iter().map(|o| o.as_str().into()).collect(),
            participants: participants
                .iter()
                .map(|p| ParticipantJson {
                    phone_number: p.phone_number.clone(),
                    e164_number: p.e164_number.clone(),
                    country: p.country.as_ref().map(|c| CountryJson {
                        name: c.name.clone(),
                        code: c.code.clone(),
                        calling_code: c.calling_code.clone(),
                    }),
                    location: p.location.clone(),
                })
                .collect(),
            dnis: dnis.clone(),
            ani: ani.clone(),
            user_data: user_data
                .pairs()
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        UserDataValue::Int(i) => ValueJson::Int(*i),
                        UserDataValue::Str(s) => ValueJson::Str(s.clone()),
                    };
                    (k.clone(), v)
                })
                .collect(),
            duration_secs: *duration_secs,
            muted: *muted,
            recording_state: recording_state.map(|r| r.as_str().into()),
            supervisor_listening_in: *supervisor_listening_in,
            monitored_user_muted: *monitored_user_muted,
            monitoring: *monitoring,
            parent_call_id: parent_call_id.as_ref().map(|p| p.as_str().into()),
            user: UserJson::from_core(user),
            upstream_fields: upstream_fields.clone(),
        }
    }

    pub(super) fn into_core(self) -> Result<CallSnapshot, EntryError> {
        Ok(CallSnapshot {
            id: CallId::new(self.id),
            conn_id: self.conn_id,
            state: named(CallState::from_name, &self.state)?,
            call_type: named(CallType::from_name, &self.call_type)?,
            capabilities: self
                .capabilities
                .iter()
                .map(|o| named(Operation::from_name, o))
                .collect::<Result<_, _>>()?,
            participants: self
                .participants
                .into_iter()
                .map(|p| Participant {
                    phone_number: p.phone_number,
                    e164_number: p.e164_number,
                    country: p.country.map(|c| Country {
                        name: c.name,
                        code: c.code,
                        calling_code: c.calling_code,
                    }),
                    location: p.location,
                })
                .collect(),
            dnis: self.dnis,
            ani: self.ani,
            user_data: UserData::from_pairs(
                self.user_data
                    .into_iter()
                    .map(|(k, v)| {
                        let v = match v {
                            ValueJson::Int(i) => UserDataValue::Int(i),
                            ValueJson::Str(s) => UserDataValue::Str(s),
                        };
                        (k, v)
                    })
                    .collect(),
            ),
            duration_secs: self.duration_secs,
            muted: self.muted,
            recording_state: self
                .recording_state
                .as_deref()
                .map(|r| named(RecordingState::from_name, r))
                .transpose()?,
            supervisor_listening_in: self.supervisor_listening_in,
            monitored_user_muted: self.monitored_user_muted,
            monitoring: self.monitoring,
            parent_call_id: self.parent_call_id.map(CallId::new),
            user: self.user.into_core(),
            upstream_fields: self.upstream_fields,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct MonitoringJson {
    kind: String,
    mode: String,
    scope: String,
    target: Arc<str>,
    target_device_id: Arc<str>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct DeviceJson {
    active: bool,
    agent_state: String,
    work_mode: Option<String>,
    do_not_disturb: bool,
    forward_to: Option<String>,
    capabilities: Vec<String>,
    monitoring: Option<MonitoringJson>,
    user: UserJson,
    voice_environment_id: Arc<str>,
    upstream_fields: Option<Arc<str>>,
}

impl DeviceJson {
    pub(super) fn from_core(device: &DeviceSnapshot) -> Self {
        let DeviceSnapshot {
            active,
            agent_state,
            work_mode,
            do_not_disturb,
            forward_to,
            capabilities,
            monitoring,
            user,
            voice_environment_id,
            upstream_fields,
        } = device;
        Self {
            active: *active,
            agent_state: agent_state.as_str().into(),
            work_mode: work_mode.map(|w| w.as_str().into()),
            do_not_disturb: *do_not_disturb,
            forward_to: forward_to.clone(),
            capabilities: capabilities.iter().map(|o| o.as_str().into()).collect(),
            monitoring: monitoring.as_ref().map(|m| MonitoringJson {
                kind: m.kind.as_str().into(),
                mode: m.mode.as_str().into(),
                scope: m.scope.as_str().into(),
                target: m.target.clone(),
                target_device_id: m.target_device_id.clone(),
            }),
            user: UserJson::from_core(user),
            voice_environment_id: voice_environment_id.clone(),
            upstream_fields: upstream_fields.clone(),
        }
    }

    pub(super) fn into_core(self) -> Result<DeviceSnapshot, EntryError> {
        let monitoring = match self.monitoring {
            None => None,
            Some(m) => Some(Monitoring {
                kind: named(MonitorKind::from_name, &m.kind)?,
                mode: named(MonitorMode::from_name, &m.mode)?,
                scope: named(MonitorScope::from_name, &m.scope)?,
                target: m.target,
                target_device_id: m.target_device_id,
            }),
        };
        Ok(DeviceSnapshot {
            active: self.active,
            agent_state: named(AgentState::from_name, &self.agent_state)?,
            work_mode: self
                .work_mode
                .as_deref()
                .map(|w| named(WorkMode::from_name, w))
                .transpose()?,
            do_not_disturb: self.do_not_disturb,
            forward_to: self.forward_to,
            capabilities: self
                .capabilities
                .iter()
                .map(|o| named(DeviceOperation::from_name, o))
                .collect::<Result<_, _>>()?,
            monitoring,
            user: self.user.into_core(),
            voice_environment_id: self.voice_environment_id,
            upstream_fields: self.upstream_fields,
        })
    }
}
