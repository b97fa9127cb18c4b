//! The call store: calls with their parties, the per-user index, the event log, and the
//! commit step that turns a mutation into notifications.
//!
//! A mutation runs under the store lock in three steps: the views of every affected user
//! are taken, the mutation changes the calls, and the views are taken again; each view
//! that differs becomes one event, appended to the log in a fixed order (touched calls
//! first, in the order the operation names them, then the users' other calls). Deriving
//! notifications from view differences keeps them complete: a hold that gives the user's
//! other call `SwapCalls` notifies that call too, without the hold knowing about it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::FastMap;
use super::devices::{AgentState, DeviceChange, DeviceEvent, DeviceSnapshot, WorkMode};
use super::directory::Directory;
use super::error::{CoreError, CoreResult};
use super::error_event::LegRequest;
use super::events::EventLog;
use super::model::{
    CallEvent, CallId, CallSnapshot, CallState, NotificationType, RecordingState, UserData,
};

mod mirror;
mod record;
mod settle;
mod view;

pub(crate) use mirror::Mirror;
pub(crate) use record::{Call, Consult, DeviceRecord, Endpoint, MonitorLeg, Party};

/// The user-data key that mirrors the recording state (spec §6.4).
pub(crate) const GSIP_RECORD: &str = "GSIP_RECORD";

/// All calls, the user index and the event log; guarded by one mutex in the core.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) calls: FastMap<CallId, Call>,
    /// Active calls of each user, oldest first.
    pub(crate) user_calls: FastMap<Arc<str>, Vec<CallId>>,
    /// Ended calls kept for GetCall and SetCallDisposition, oldest first.
    ended: VecDeque<CallId>,
    ended_limit: usize,
    pub(crate) log: EventLog,
    next_conn: u64,
    /// Device settings of users that changed them; others have the default.
    pub(crate) devices: FastMap<Arc<str>, DeviceRecord>,
    /// Bridge mode: the calls and devices as the upstream reports them, which replace the
    /// embedded calls and devices above for every read.
    pub(crate) mirror: Option<Mirror>,
    /// A view the caller took under this same lock hold, with nothing changed since (see
    /// [`Store::prime`]): the next commit takes it as that (call, user)'s "before" view
    /// instead of rendering it again.
    primed: Option<CallSnapshot>,
}

impl Store {
    pub(crate) fn new(log: EventLog, ended_limit: usize) -> Self {
        Self {
            calls: FastMap::default(),
            user_calls: FastMap::default(),
            ended: VecDeque::new(),
            ended_limit,
            log,
            next_conn: 0,
            devices: FastMap::default(),
            mirror: None,
            primed: None,
        }
    }

    /// Hands the next commit a view just taken (an operation's capability check), to use as
    /// that (call, user)'s "before" view. Only sound while nothing that view depends on
    /// changes before that commit, under the same lock hold; the caller clears it with
    /// [`Store::unprime`] when the operation returns, whether or not a commit took it.
    /// The view may be older by its `duration_secs`, which no notification compares.
    pub(crate) fn prime(&mut self, view: CallSnapshot) {
        self.primed = Some(view);
    }

    /// Drops a view [`Store::prime`] left that no commit took.
    pub(crate) fn unprime(&mut self) {
        self.primed = None;
    }

    /// Returns the users that have active calls.
    pub(crate) fn users_with_calls(&self) -> Vec<Arc<str>> {
        match &self.mirror {
            Some(mirror) => mirror.users().cloned().collect(),
            None => self.user_calls.keys().cloned().collect(),
        }
    }

    /// Builds the store of bridge mode (see [`Mirror`]).
    pub(crate) fn mirrored(log: EventLog, ended_limit: usize) -> Self {
        Self {
            mirror: Some(Mirror::new(ended_limit)),
            ..Self::new(log, ended_limit)
        }
    }

    /// Empties the mirror of bridge mode (cluster mode: the shared log started over).
    pub(crate) fn reset_mirror(&mut self) {
        if self.mirror.is_some() {
            self.mirror = Some(Mirror::new(self.ended_limit));
        }
    }

    /// Creates an empty call with a fresh id.
    pub(crate) fn new_call(&mut self, dnis: &str) -> CallId {
        self.next_conn += 1;
        let id = CallId::new(uuid::Uuid::new_v4().simple().to_string().to_uppercase());
        let call = Call {
            id: id.clone(),
            conn_id: format!("{:016x}", 0x0071_0000_0000_0000_u64 + self.next_conn).into(),
            started: Instant::now(),
            dnis: dnis.into(),
            parties: Vec::new(),
            user_data: UserData::default(),
            recording: RecordingState::Stopped,
            parent: None,
            consult: None,
            queue: None,
            conference_owner: None,
            ended: false,
        };
        self.calls.insert(id.clone(), call);
        id
    }

    pub(crate) fn call(&self, id: &CallId) -> CoreResult<&Call> {
        self.calls
            .get(id)
            .ok_or_else(|| CoreError::CallNotFound(id.clone()))
    }

    pub(crate) fn call_mut(&mut self, id: &CallId) -> CoreResult<&mut Call> {
        self.calls
            .get_mut(id)
            .ok_or_else(|| CoreError::CallNotFound(id.clone()))
    }

    /// Adds a party to a call and indexes it under its user.
    pub(crate) fn add_party(
        &mut self,
        id: &CallId,
        endpoint: Endpoint,
        state: CallState,
    ) -> CoreResult<()> {
        if let Endpoint::Agent(name) = &endpoint {
            let calls = self.user_calls.entry(name.clone()).or_default();
            if !calls.contains(id) {
                calls.push(id.clone());
            }
        }
        self.call_mut(id)?.parties.push(Party::new(endpoint, state));
        Ok(())
    }

    /// Notes who asked for the active leg to the outside number `number` on a call.
    pub(crate) fn note_leg_request(&mut self, id: &CallId, number: &str, request: LegRequest) {
        let endpoint = Endpoint::External(number.to_owned());
        if let Some(call) = self.calls.get_mut(id)
            && let Some(index) = call.active_party(&endpoint)
        {
            call.parties[index].requested = Some(request);
        }
    }

    /// Lists the (call, user) pairs whose views an operation on `touched` may change:
    /// every party of the touched calls, then every other active call of those users.
    /// Compares in place and clones only what it keeps (per request, a few pairs).
    fn affected(&self, touched: &[CallId], users: &mut Vec<Arc<str>>) -> Vec<(CallId, Arc<str>)> {
        fn add(pairs: &mut Vec<(CallId, Arc<str>)>, id: &CallId, user: &Arc<str>) {
            if !pairs.iter().any(|(i, u)| i == id && u == user) {
                pairs.push((id.clone(), user.clone()));
            }
        }
        let mut pairs = Vec::with_capacity(4);
        for id in touched {
            let Some(call) = self.calls.get(id) else {
                continue;
            };
            for user in call.parties.iter().filter_map(Party::agent) {
                add(&mut pairs, id, user);
                if !users.contains(user) {
                    users.push(user.clone());
                }
            }
        }
        for user in users.iter() {
            for id in self.user_calls.get(user).into_iter().flatten() {
                add(&mut pairs, id, user);
            }
        }
        pairs
    }

    /// Runs a mutation and publishes the notifications it causes. The mutation returns the
    /// calls it touched, in the order their notifications should go out; it must check
    /// everything before it changes anything, so an error leaves the store as it was.
    pub(crate) fn commit(
        &mut self,
        dir: &Directory,
        touched_before: &[CallId],
        mutation: impl FnOnce(&mut Store) -> CoreResult<Vec<CallId>>,
    ) -> CoreResult<()> {
        self.commit_with_users(dir, touched_before, &[], mutation)
    }

    /// Like [`Store::commit`], also watching the devices of `users` (device operations).
    /// Device notifications go out before call notifications.
    pub(crate) fn commit_with_users(
        &mut self,
        dir: &Directory,
        touched_before: &[CallId],
        extra_users: &[Arc<str>],
        mutation: impl FnOnce(&mut Store) -> CoreResult<Vec<CallId>>,
    ) -> CoreResult<()> {
        let mut users = extra_users.to_vec();
        let pairs = self.affected(touched_before, &mut users);
        let mut primed = self.primed.take();
        // A handful of pairs per operation: a vector searched linearly beats hashing.
        let before: Vec<((CallId, Arc<str>), CallSnapshot)> = pairs
            .into_iter()
            .filter_map(|(id, user)| {
                let view = match primed.take_if(|v| v.id == id && *v.user.name == *user) {
                    Some(view) => view,
                    None => self.view(dir, self.calls.get(&id)?, &user)?,
                };
                Some(((id, user), view))
            })
            .collect();
        // A call operation changes a device only by ending a supervisor's monitoring, so
        // besides the users a device operation names, only monitoring supervisors are
        // diffed: the per-request path skips the device views of everyone else.
        let mut device_users = extra_users.to_vec();
        device_users.extend(
            users
                .iter()
                .filter(|u| {
                    !extra_users.contains(u)
                        && self.devices.get(*u).is_some_and(|d| d.monitoring.is_some())
                })
                .cloned(),
        );
        let devices_before: HashMap<Arc<str>, DeviceSnapshot> = device_users
            .iter()
            .filter_map(|u| Some((u.clone(), self.device_view(dir, u)?)))
            .collect();
        let touched = mutation(self)?;
        self.settle(dir, &touched);
        let pairs = self.affected(&touched, &mut users);
        for user in device_users {
            let Some(after) = self.device_view(dir, &user) else {
                continue;
            };
            let change = match devices_before.get(&user) {
                Some(before) if *before == after => continue,
                Some(before)
                    if before.active != after.active
                        || before.agent_state != after.agent_state
                        || before.work_mode != after.work_mode =>
                {
                    DeviceChange::AgentState
                }
                Some(before) if before.do_not_disturb != after.do_not_disturb => {
                    DeviceChange::DoNotDisturb
                }
                Some(_) => DeviceChange::Device,
                None => continue,
            };
            self.log.append_device(DeviceEvent {
                sequence: 0,
                change,
                device: after,
                committed_at: std::time::UNIX_EPOCH,
            });
        }
        for (id, user) in pairs {
            let Some(after) = self
                .calls
                .get(&id)
                .and_then(|call| self.view(dir, call, &user))
            else {
                continue;
            };
            let previous = before
                .iter()
                .find(|((i, u), _)| *i == id && *u == user)
                .map(|(_, view)| view);
            let kinds = notifications(previous, &after);
            let Some((last, first)) = kinds.split_last() else {
                continue;
            };
            for &notification in first {
                self.log.append(CallEvent {
                    sequence: 0,
                    notification,
                    call: after.clone(),
                    digits: None,
                    committed_at: std::time::UNIX_EPOCH,
                });
            }
            self.log.append(CallEvent {
                sequence: 0,
                notification: *last,
                call: after,
                digits: None,
                committed_at: std::time::UNIX_EPOCH,
            });
        }
        self.auto_answer(dir, &touched)
    }

    /// Answers, in a commit of its own, the calls ringing at agents who are Ready in
    /// `AutoIn` work mode (spec §6.5): as T-Server does for such agents, the call is first
    /// seen ringing, then established, two notifications in that order. The answer changes
    /// no party to Ringing, so this ends after one round.
    fn auto_answer(&mut self, dir: &Directory, touched: &[CallId]) -> CoreResult<()> {
        let auto_in = |user: &str| {
            self.devices.get(user).is_some_and(|d| {
                d.active
                    && d.agent_state == AgentState::Ready
                    && d.work_mode == Some(WorkMode::AutoIn)
            })
        };
        let ringing: Vec<(CallId, usize)> = touched
            .iter()
            .filter_map(|id| Some((id, self.calls.get(id)?)))
            .flat_map(|(id, call)| {
                call.parties
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| {
                        p.state == CallState::Ringing && p.agent().is_some_and(|a| auto_in(a))
                    })
                    .map(|(i, _)| (id.clone(), i))
                    .collect::<Vec<_>>()
            })
            .collect();
        if ringing.is_empty() {
            return Ok(());
        }
        let ids: Vec<CallId> = ringing.iter().map(|(id, _)| id.clone()).collect();
        self.commit(dir, &ids, |s| {
            for (id, index) in &ringing {
                let call = s.call_mut(id)?;
                call.parties[*index].state = CallState::Established;
                for party in &mut call.parties {
                    if party.state == CallState::Dialing {
                        party.state = CallState::Established;
                    }
                }
            }
            Ok(ids.clone())
        })
    }
}

/// Chooses the notifications for one view change (spec §8.3): a new view is a
/// StatusChange; a state change is a StatusChange, followed by ParticipantsUpdated when the
/// parties changed too (never on Released); otherwise a recording change is a
/// CallRecordingStateChange, a supervisor's mute of the agent a
/// MonitoredUserMutedStateChange, and a participants, user-data or remaining
/// (capabilities, mute) change one event of ParticipantsUpdated, AttachedDataChanged or
/// StatusChange.
///
/// The state comes first: a hang-up of a recorded call also ends its recording, and the
/// release of a monitoring leg also lifts the agent's mute, but desktops drop a call on
/// `StatusChange` + `Released` (spec §7.1) and would keep a ghost call if that release came
/// as a recording or mute notification.
fn notifications(
    before: Option<&CallSnapshot>,
    after: &CallSnapshot,
) -> &'static [NotificationType] {
    use NotificationType as N;
    let Some(before) = before else {
        return &[N::StatusChange];
    };
    if before.same_as(after) {
        return &[];
    }
    let participants_changed = before.participants != after.participants;
    if before.state != after.state {
        return if participants_changed && after.state != CallState::Released {
            &[N::StatusChange, N::ParticipantsUpdated]
        } else {
            &[N::StatusChange]
        };
    }
    if before.recording_state != after.recording_state {
        return &[N::CallRecordingStateChange];
    }
    if before.monitored_user_muted != after.monitored_user_muted {
        return &[N::MonitoredUserMutedStateChange];
    }
    if participants_changed {
        &[N::ParticipantsUpdated]
    } else if before.user_data != after.user_data {
        &[N::AttachedDataChanged]
    } else {
        &[N::StatusChange]
    }
}
