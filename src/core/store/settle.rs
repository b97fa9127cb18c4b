//! Settling touched calls after a mutation: ended calls, monitoring legs, the user index.

use std::sync::Arc;

use super::{Endpoint, GSIP_RECORD, MonitorLeg, Store};
use crate::core::devices::{MonitorMode, MonitorScope};
use crate::core::directory::Directory;
use crate::core::model::{CallId, CallState, RecordingState, UserDataValue};

impl Store {
    /// Brings touched calls to rest after a mutation: supervisors that follow an agent leave
    /// with it, calls with fewer than two parties end, a supervisor's mute of the monitored
    /// user ends with the monitoring, monitoring supervisors join calls their target has
    /// established, and released legs leave the user index.
    pub(super) fn settle(&mut self, dir: &Directory, touched: &[CallId]) {
        for id in touched.iter() {
            self.release_orphan_monitors(id);
            self.end_if_over(id);
            self.finish_next_call_monitoring(id);
            self.lift_orphan_mutes(id);
            self.attach_monitors(dir, id);
            self.unindex_released(id);
        }
        while self.ended.len() > self.ended_limit {
            if let Some(old) = self.ended.pop_front() {
                self.calls.remove(&old);
            }
        }
    }

    fn release_orphan_monitors(&mut self, id: &CallId) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let orphans: Vec<usize> = call
            .parties
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_active())
            .filter_map(|(i, p)| {
                let leg = p.monitor.as_ref()?;
                let target_here = call.parties.iter().any(|t| {
                    t.is_active() && t.monitor.is_none() && t.agent() == Some(&leg.target)
                });
                (leg.scope == MonitorScope::Agent && !target_here).then_some(i)
            })
            .collect();
        for i in orphans {
            call.parties[i].state = CallState::Released;
        }
    }

    fn end_if_over(&mut self, id: &CallId) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        if call.ended || call.active_count() >= 2 {
            return;
        }
        call.ended = true;
        for party in &mut call.parties {
            party.state = CallState::Released;
        }
        // Recording ends with the call.
        if call.recording != RecordingState::Stopped {
            call.recording = RecordingState::Stopped;
            call.user_data
                .set(GSIP_RECORD, UserDataValue::Str("OFF".into()));
        }
        call.consult = None;
        if let Some((parent, _)) = call.parent.clone()
            && let Some(parent) = self.calls.get_mut(&parent)
            && parent.consult.as_ref().is_some_and(|c| c.call == *id)
        {
            parent.consult = None;
        }
        self.ended.push_back(id.clone());
    }

    /// A NextCall monitoring is over once the supervisor's leg on that call is released.
    fn finish_next_call_monitoring(&mut self, id: &CallId) {
        let Some(call) = self.calls.get(id) else {
            return;
        };
        let done: Vec<Arc<str>> = call
            .parties
            .iter()
            .filter(|p| !p.is_active())
            .filter_map(|p| Some((p.agent()?.clone(), p.monitor.as_ref()?.target.clone())))
            .filter(|(supervisor, target)| {
                let device = self.device(supervisor);
                device.next_call_taken
                    && device
                        .monitoring
                        .as_ref()
                        .is_some_and(|m| m.mode == MonitorMode::NextCall && m.target == *target)
            })
            .map(|(supervisor, _)| supervisor)
            .collect();
        for supervisor in done {
            let device = self.device_mut(&supervisor);
            device.monitoring = None;
            device.next_call_taken = false;
        }
    }

    /// Unmutes parties no active monitoring leg targets any more: only the supervisor who
    /// muted them could unmute them, and that supervisor has left (cancelled, hung up, or
    /// followed the agent out). Runs before new legs attach, so they find the party unmuted.
    fn lift_orphan_mutes(&mut self, id: &CallId) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let monitored: Vec<Arc<str>> = call
            .parties
            .iter()
            .filter(|p| p.is_active())
            .filter_map(|p| Some(p.monitor.as_ref()?.target.clone()))
            .collect();
        for party in &mut call.parties {
            let still_monitored = party.agent().is_some_and(|a| monitored.contains(a));
            if party.supervisor_muted && !still_monitored {
                party.supervisor_muted = false;
            }
        }
    }

    /// Adds a monitoring leg for each supervisor whose target is established on the call.
    fn attach_monitors(&mut self, dir: &Directory, id: &CallId) {
        let Some(call) = self.calls.get(id) else {
            return;
        };
        if call.ended {
            return;
        }
        let mut joining = Vec::new();
        for party in call
            .parties
            .iter()
            .filter(|p| p.monitor.is_none() && p.state == CallState::Established)
        {
            let Some(agent) = party.agent() else { continue };
            for (supervisor, device) in &self.devices {
                let Some(monitoring) = &device.monitoring else {
                    continue;
                };
                let wanted = monitoring.target == *agent
                    && (monitoring.mode == MonitorMode::AllCalls || !device.next_call_taken)
                    && call
                        .party_of(supervisor)
                        .is_none_or(|i| !call.parties[i].is_active())
                    && dir.user(supervisor).is_some();
                if wanted {
                    joining.push((supervisor.clone(), monitoring.clone()));
                }
            }
        }
        for (supervisor, monitoring) in joining {
            let leg = MonitorLeg {
                kind: monitoring.kind,
                scope: monitoring.scope,
                target: monitoring.target.clone(),
            };
            if self
                .add_party(
                    id,
                    Endpoint::Agent(supervisor.clone()),
                    CallState::Established,
                )
                .is_ok()
                && let Some(call) = self.calls.get_mut(id)
                && let Some(last) = call.parties.last_mut()
            {
                last.monitor = Some(leg);
            }
            if monitoring.mode == MonitorMode::NextCall {
                self.device_mut(&supervisor).next_call_taken = true;
            }
        }
    }

    fn unindex_released(&mut self, id: &CallId) {
        let Some(call) = self.calls.get(id) else {
            return;
        };
        let released: Vec<Arc<str>> = call
            .agents()
            .into_iter()
            .filter(|user| {
                call.party_of(user)
                    .is_some_and(|i| !call.parties[i].is_active())
            })
            .collect();
        for user in released {
            if let Some(list) = self.user_calls.get_mut(&user) {
                list.retain(|c| c != id);
                if list.is_empty() {
                    self.user_calls.remove(&user);
                }
            }
        }
    }
}
