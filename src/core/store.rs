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

use super::capabilities::{CapabilityInput, ConsultKind, ConsultRole, capabilities};
use super::directory::Directory;
use super::error::{CoreError, CoreResult};
use super::events::EventLog;
use super::model::{
    CallEvent, CallId, CallSnapshot, CallState, CallType, NotificationType, Participant,
    RecordingState, UserData, UserDataValue, feature,
};

/// The user-data key that mirrors the recording state (spec §6.4).
pub(crate) const GSIP_RECORD: &str = "GSIP_RECORD";

/// Who a party is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// A user of the gateway, by name.
    Agent(Arc<str>),
    /// A number outside the switch.
    External(String),
}

/// One party's leg of a call.
#[derive(Debug, Clone)]
pub(crate) struct Party {
    pub(crate) endpoint: Endpoint,
    pub(crate) state: CallState,
    pub(crate) muted: bool,
}

impl Party {
    pub(crate) fn new(endpoint: Endpoint, state: CallState) -> Self {
        Self {
            endpoint,
            state,
            muted: false,
        }
    }

    pub(crate) fn is_active(&self) -> bool {
        self.state != CallState::Released
    }

    pub(crate) fn agent(&self) -> Option<&Arc<str>> {
        match &self.endpoint {
            Endpoint::Agent(name) => Some(name),
            Endpoint::External(_) => None,
        }
    }
}

/// A consult in progress, recorded on the original call.
#[derive(Debug, Clone)]
pub(crate) struct Consult {
    pub(crate) call: CallId,
    pub(crate) kind: ConsultKind,
    pub(crate) initiator: Arc<str>,
}

/// A call with every party's leg.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) id: CallId,
    pub(crate) conn_id: String,
    pub(crate) started: Instant,
    pub(crate) dnis: String,
    pub(crate) parties: Vec<Party>,
    pub(crate) user_data: UserData,
    pub(crate) recording: RecordingState,
    /// For a consult call: the original call and what the consult is for.
    pub(crate) parent: Option<(CallId, ConsultKind)>,
    /// For an original call: the consult in progress.
    pub(crate) consult: Option<Consult>,
    /// The queue that delivered the call, if any.
    pub(crate) queue: Option<String>,
    pub(crate) conference_owner: Option<Arc<str>>,
    pub(crate) ended: bool,
}

impl Call {
    /// Returns the index of the user's party, preferring an active one.
    pub(crate) fn party_of(&self, user: &str) -> Option<usize> {
        let mine = |p: &Party| p.agent().is_some_and(|a| **a == *user);
        self.parties
            .iter()
            .rposition(|p| mine(p) && p.is_active())
            .or_else(|| self.parties.iter().rposition(mine))
    }

    /// Returns the index of the active party with this phone number or agent name.
    pub(crate) fn active_party(&self, endpoint: &Endpoint) -> Option<usize> {
        self.parties
            .iter()
            .position(|p| p.is_active() && p.endpoint == *endpoint)
    }

    pub(crate) fn active_count(&self) -> usize {
        self.parties.iter().filter(|p| p.is_active()).count()
    }

    /// Returns the distinct users with a party on the call, in party order.
    pub(crate) fn agents(&self) -> Vec<Arc<str>> {
        let mut out: Vec<Arc<str>> = Vec::new();
        for name in self.parties.iter().filter_map(Party::agent) {
            if !out.contains(name) {
                out.push(name.clone());
            }
        }
        out
    }
}

/// All calls, the user index and the event log; guarded by one mutex in the core.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) calls: HashMap<CallId, Call>,
    /// Active calls of each user, oldest first.
    pub(crate) user_calls: HashMap<Arc<str>, Vec<CallId>>,
    /// Ended calls kept for GetCall and SetCallDisposition, oldest first.
    ended: VecDeque<CallId>,
    ended_limit: usize,
    pub(crate) log: EventLog,
    next_conn: u64,
}

impl Store {
    pub(crate) fn new(log: EventLog, ended_limit: usize) -> Self {
        Self {
            calls: HashMap::new(),
            user_calls: HashMap::new(),
            ended: VecDeque::new(),
            ended_limit,
            log,
            next_conn: 0,
        }
    }

    /// Creates an empty call with a fresh id.
    pub(crate) fn new_call(&mut self, dnis: &str) -> CallId {
        self.next_conn += 1;
        let id = CallId::new(uuid::Uuid::new_v4().simple().to_string().to_uppercase());
        let call = Call {
            id: id.clone(),
            conn_id: format!("{:016x}", 0x0071_0000_0000_0000_u64 + self.next_conn),
            started: Instant::now(),
            dnis: dnis.to_owned(),
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
        let me = dir.user(user)?;
        let party = &call.parties[index];
        let cc = &me.contact_center;
        let recording = dir
            .has_feature(cc, feature::VOICE_RECORDING)
            .then_some(call.recording);
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
        let input = CapabilityInput {
            state: party.state,
            muted: party.muted,
            recording,
            voice: dir.has_feature(cc, feature::VOICE),
            via_queue: call.queue.is_some(),
            conference: call.active_count() >= 3,
            conference_owner: call.conference_owner.as_deref() == Some(user),
            consult: self.consult_role(call, user),
            other_held,
            other_established,
        };
        let participants = call
            .parties
            .iter()
            .enumerate()
            .filter(|(i, p)| *i != index && p.is_active())
            .map(|(_, p)| participant(dir, &p.endpoint))
            .collect();
        Some(CallSnapshot {
            id: call.id.clone(),
            conn_id: call.conn_id.clone(),
            state: party.state,
            call_type: call_type(call),
            capabilities: capabilities(&input),
            participants,
            dnis: call.dnis.clone(),
            user_data: call.user_data.clone(),
            duration_secs: call.started.elapsed().as_secs(),
            muted: party.muted,
            recording_state: recording,
            supervisor_listening_in: false,
            monitored_user_muted: false,
            monitoring: false,
            parent_call_id: call.parent.as_ref().map(|(id, _)| id.clone()),
            user: me.to_ref(),
        })
    }

    /// Returns the user's view of a call by id.
    pub(crate) fn view_of(
        &self,
        dir: &Directory,
        id: &CallId,
        user: &str,
    ) -> CoreResult<CallSnapshot> {
        let call = self.call(id)?;
        self.view(dir, call, user).ok_or_else(|| {
            CoreError::PermissionDenied(format!("call {id} is not a call of user {user}"))
        })
    }

    /// Returns the user's active calls, oldest first.
    pub(crate) fn active_views(&self, dir: &Directory, user: &str) -> Vec<CallSnapshot> {
        self.user_calls
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|id| self.calls.get(id))
            .filter_map(|call| self.view(dir, call, user))
            .collect()
    }

    /// Lists the (call, user) pairs whose views an operation on `touched` may change:
    /// every party of the touched calls, then every other active call of those users.
    fn affected(&self, touched: &[CallId], users: &mut Vec<Arc<str>>) -> Vec<(CallId, Arc<str>)> {
        let mut pairs = Vec::new();
        for id in touched {
            if let Some(call) = self.calls.get(id) {
                for user in call.agents() {
                    if !pairs.contains(&(id.clone(), user.clone())) {
                        pairs.push((id.clone(), user.clone()));
                    }
                    if !users.contains(&user) {
                        users.push(user);
                    }
                }
            }
        }
        for user in users.iter() {
            for id in self.user_calls.get(user).into_iter().flatten() {
                let pair = (id.clone(), user.clone());
                if !pairs.contains(&pair) {
                    pairs.push(pair);
                }
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
    ) -> CoreResult<Vec<Arc<CallEvent>>> {
        let mut users = Vec::new();
        let before: HashMap<(CallId, Arc<str>), CallSnapshot> = self
            .affected(touched_before, &mut users)
            .into_iter()
            .filter_map(|(id, user)| {
                let view = self.view(dir, self.calls.get(&id)?, &user)?;
                Some(((id, user), view))
            })
            .collect();
        let touched = mutation(self)?;
        self.settle(&touched);
        let mut published = Vec::new();
        for (id, user) in self.affected(&touched, &mut users) {
            let Some(after) = self
                .calls
                .get(&id)
                .and_then(|call| self.view(dir, call, &user))
            else {
                continue;
            };
            for notification in notifications(before.get(&(id.clone(), user.clone())), &after) {
                published.push(self.log.append(CallEvent {
                    sequence: 0,
                    notification,
                    call: after.clone(),
                    digits: None,
                }));
            }
        }
        Ok(published)
    }

    /// Ends touched calls that have fewer than two parties left and drops released legs
    /// from the user index.
    fn settle(&mut self, touched: &[CallId]) {
        for id in touched {
            let Some(call) = self.calls.get_mut(id) else {
                continue;
            };
            if !call.ended && call.active_count() < 2 {
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
                let consult = call.consult.take();
                let parent = call.parent.clone();
                if let Some((parent, _)) = parent
                    && let Some(parent) = self.calls.get_mut(&parent)
                    && parent.consult.as_ref().is_some_and(|c| c.call == *id)
                {
                    parent.consult = None;
                }
                drop(consult);
                self.ended.push_back(id.clone());
            }
            let Some(call) = self.calls.get(id) else {
                continue;
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
        while self.ended.len() > self.ended_limit {
            if let Some(old) = self.ended.pop_front() {
                self.calls.remove(&old);
            }
        }
    }
}

/// Chooses the notifications for one view change (spec §8.3): a new view is a
/// StatusChange; a recording change is a CallRecordingStateChange; a state change is a
/// StatusChange, followed by ParticipantsUpdated when the parties changed too; otherwise a
/// participants, user-data or remaining (capabilities, mute) change gives one event each
/// of ParticipantsUpdated, AttachedDataChanged or StatusChange.
fn notifications(before: Option<&CallSnapshot>, after: &CallSnapshot) -> Vec<NotificationType> {
    use NotificationType as N;
    let Some(before) = before else {
        return vec![N::StatusChange];
    };
    if before.same_as(after) {
        return vec![];
    }
    if before.recording_state != after.recording_state {
        return vec![N::CallRecordingStateChange];
    }
    let participants_changed = before.participants != after.participants;
    if before.state != after.state {
        return if participants_changed && after.state != CallState::Released {
            vec![N::StatusChange, N::ParticipantsUpdated]
        } else {
            vec![N::StatusChange]
        };
    }
    if participants_changed {
        vec![N::ParticipantsUpdated]
    } else if before.user_data != after.user_data {
        vec![N::AttachedDataChanged]
    } else {
        vec![N::StatusChange]
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

/// Renders a party as a participant. Internal DNs have no E.164 form; outside numbers
/// keep a leading `+`, and ten-digit numbers are taken as North-American (`+1`).
fn participant(dir: &Directory, endpoint: &Endpoint) -> Participant {
    match endpoint {
        Endpoint::Agent(name) => Participant {
            phone_number: dir
                .user(name)
                .map(|u| u.phone_number.to_string())
                .unwrap_or_default(),
            e164_number: String::new(),
        },
        Endpoint::External(number) => {
            let e164 = if number.starts_with('+') {
                number.clone()
            } else if number.len() == 10 {
                format!("+1{number}")
            } else {
                format!("+{number}")
            };
            Participant {
                phone_number: number.clone(),
                e164_number: e164,
            }
        }
    }
}
