//! The views of the store: a call or a device as one user sees it.

use std::sync::Arc;

use super::{Call, DeviceRecord, Endpoint, MonitorLeg, Party, Store};
use crate::core::capabilities::{CapabilityInput, ConsultRole, capabilities};
use crate::core::country::Country;
use crate::core::devices::{DeviceOperation, DeviceSnapshot};
use crate::core::directory::{Directory, Role, voice_environment_id};
use crate::core::error::{CoreError, CoreResult};
use crate::core::model::{CallId, CallSnapshot, CallState, CallType, Participant, feature};

impl Store {
    /// Returns how a call figures in a consult the user started.
    fn consult_role(&self, call: &Call, user: &str) -> ConsultRole {
        if let Some(c) = &call.consult
            && *c.initiator == *user
        {
            return ConsultRole::Original(c.kind);
        }
        if let Some((parent, kind)) = &call.parent
            && let Some(parent) = self.calls.get(parent)
            && parent
                .consult
                .as_ref()
                .is_some_and(|c| c.call == call.id && *c.initiator == *user)
        {
            return ConsultRole::Consult(*kind);
        }
        ConsultRole::None
    }

    /// Returns the user's view of a call, or `None` if the user has no party on it.
    pub(crate) fn view(&self, dir: &Directory, call: &Call, user: &str) -> Option<CallSnapshot> {
        let index = call.party_of(user)?;
        let (me, [recording_on, voice]) =
            dir.user_with_features(user, [feature::VOICE_RECORDING, feature::VOICE])?;
        let party = &call.parties[index];
        let recording = recording_on.then_some(call.recording);
        let (mut other_held, mut other_established) = (false, false);
        for other in self.user_calls.get(user).into_iter().flatten() {
            if *other == call.id {
                continue;
            }
            let state = self
                .calls
                .get(other)
                .and_then(|c| c.party_of(user).map(|i| c.parties[i].state));
            other_held |= state == Some(CallState::Held);
            other_established |= state == Some(CallState::Established);
        }
        // A monitoring leg shows whether its target is muted; an agent, whether it is.
        let monitored_muted = match &party.monitor {
            Some(leg) => call
                .party_of(&leg.target)
                .is_some_and(|i| call.parties[i].supervisor_muted),
            None => party.supervisor_muted,
        };
        let input = CapabilityInput {
            state: party.state,
            muted: party.muted,
            recording,
            voice,
            via_queue: call.queue.is_some(),
            conference: call.active_count() >= 3,
            conference_owner: call.conference_owner.as_deref() == Some(user),
            consult: self.consult_role(call, user),
            other_held,
            other_established,
            monitor: party.monitor.as_ref().map(|leg| leg.kind),
            monitored_muted,
        };
        // Silent supervisors are heard by nobody and listed to nobody but themselves.
        let participants = call
            .parties
            .iter()
            .enumerate()
            .filter(|(i, p)| {
                *i != index
                    && p.is_active()
                    && !p.monitor.as_ref().is_some_and(MonitorLeg::is_silent)
            })
            .map(|(_, p)| participant(dir, &p.endpoint))
            .collect();
        let listened = party.monitor.is_none()
            && call
                .parties
                .iter()
                .any(|p| p.is_active() && p.monitor.as_ref().is_some_and(MonitorLeg::is_silent));
        Some(CallSnapshot {
            id: call.id.clone(),
            conn_id: call.conn_id.clone(),
            state: party.state,
            call_type: call_type(call),
            capabilities: capabilities(&input),
            participants,
            dnis: call.dnis.clone(),
            ani: ani(call),
            user_data: call.user_data.clone(),
            duration_secs: call.started.elapsed().as_secs(),
            muted: party.muted || party.monitor.as_ref().is_some_and(MonitorLeg::is_silent),
            recording_state: recording,
            supervisor_listening_in: listened,
            monitored_user_muted: monitored_muted,
            monitoring: party.monitor.is_some(),
            parent_call_id: call.parent.as_ref().map(|(id, _)| id.clone()),
            user: me.to_ref(),
            upstream_fields: None,
        })
    }

    /// Returns a user's device settings.
    pub(crate) fn device(&self, user: &str) -> DeviceRecord {
        self.devices.get(user).cloned().unwrap_or_default()
    }

    /// Returns a user's device settings for change.
    pub(crate) fn device_mut(&mut self, user: &Arc<str>) -> &mut DeviceRecord {
        self.devices.entry(user.clone()).or_default()
    }

    /// Returns the user's device as the user sees it.
    pub(crate) fn device_view(&self, dir: &Directory, user: &str) -> Option<DeviceSnapshot> {
        use DeviceOperation as D;
        if let Some(mirror) = &self.mirror {
            return mirror.device(user).cloned();
        }
        let me = dir.user(user)?;
        let device = self.device(user);
        let mut capabilities = vec![
            if device.dnd {
                D::DoNotDisturbOff
            } else {
                D::DoNotDisturbOn
            },
            if device.forward_to.is_some() {
                D::ForwardCallsOff
            } else {
                D::ForwardCallsOn
            },
        ];
        if me.roles.contains(&Role::Supervisor)
            && dir.has_feature(&me.contact_center, feature::SUPERVISOR_MONITORING)
        {
            if device.monitoring.is_some() {
                capabilities.push(D::CancelSupervisorMonitoring);
            } else {
                capabilities.extend([D::ListenIn, D::Coach, D::BargeIn]);
            }
        }
        if !dir.has_feature(&me.contact_center, feature::VOICE) {
            capabilities.clear();
        }
        Some(DeviceSnapshot {
            active: device.active,
            agent_state: device.agent_state,
            work_mode: device.work_mode,
            do_not_disturb: device.dnd,
            forward_to: device.forward_to,
            capabilities,
            monitoring: device.monitoring,
            voice_environment_id: voice_environment_id(&me.contact_center).into(),
            user: me.to_ref(),
            upstream_fields: None,
        })
    }

    /// Returns the user's view of a call by id.
    pub(crate) fn view_of(
        &self,
        dir: &Directory,
        id: &CallId,
        user: &str,
    ) -> CoreResult<CallSnapshot> {
        if let Some(mirror) = &self.mirror {
            return mirror
                .call(user, id)
                .cloned()
                .ok_or_else(|| CoreError::CallNotFound(id.clone()));
        }
        let call = self.call(id)?;
        self.view(dir, call, user).ok_or_else(|| {
            CoreError::PermissionDenied(format!("call {id} is not a call of user {user}"))
        })
    }

    /// Returns the user's active calls, oldest first.
    pub(crate) fn active_views(&self, dir: &Directory, user: &str) -> Vec<CallSnapshot> {
        if let Some(mirror) = &self.mirror {
            return mirror.active(user);
        }
        self.user_calls
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|id| self.calls.get(id))
            .filter_map(|call| self.view(dir, call, user))
            .collect()
    }
}

/// Returns the kind of call: consult calls are Consult; a call an outside number started
/// is Inbound; a call with any outside party is Outbound; otherwise Internal.
fn call_type(call: &Call) -> CallType {
    if call.parent.is_some() {
        CallType::Consult
    } else if matches!(
        call.parties.first(),
        Some(Party {
            endpoint: Endpoint::External(_),
            ..
        })
    ) {
        CallType::Inbound
    } else if call
        .parties
        .iter()
        .any(|p| matches!(p.endpoint, Endpoint::External(_)))
    {
        CallType::Outbound
    } else {
        CallType::Internal
    }
}

/// The calling number of a call an outside party made: the first party, the one that
/// dialed, when it is an outside number (spec §5.1); it stays through transfers.
fn ani(call: &Call) -> Option<Arc<str>> {
    match &call.parties.first()?.endpoint {
        Endpoint::External(number) => Some(number.as_str().into()),
        Endpoint::Agent(_) => None,
    }
}

/// Renders a party as a participant. Internal DNs have no E.164 form; outside numbers
/// keep a leading `+`, and ten-digit numbers are taken as North-American (`+1`).
fn participant(dir: &Directory, endpoint: &Endpoint) -> Participant {
    match endpoint {
        Endpoint::Agent(name) => Participant {
            phone_number: dir
                .user(name)
                .map_or_else(|| "".into(), |u| u.phone_number.clone()),
            e164_number: "".into(),
            country: None,
            location: None,
        },
        Endpoint::External(number) => {
            let e164: Arc<str> = if number.starts_with('+') {
                number.as_str().into()
            } else if number.len() == 10 {
                format!("+1{number}").into()
            } else {
                format!("+{number}").into()
            };
            let country = Country::of_e164(&e164);
            Participant {
                phone_number: number.as_str().into(),
                location: country.as_ref().map(|c| c.name.clone()),
                country,
                e164_number: e164,
            }
        }
    }
}
