//! The records the store keeps: a call with every party's leg (who the party is, and a
//! supervisor's monitoring leg), a consult in progress, and one user's device settings.
//! The store (`mod.rs`) indexes them, `view` renders them as each user sees them, and
//! `settle` tidies them after a mutation.

use std::sync::Arc;
use std::time::Instant;

use crate::core::capabilities::ConsultKind;
use crate::core::devices::{AgentState, MonitorKind, MonitorScope, Monitoring, WorkMode};
use crate::core::error_event::LegRequest;
use crate::core::model::{CallId, CallState, RecordingState, UserData};

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
    /// Set on a supervisor's monitoring leg.
    pub(crate) monitor: Option<MonitorLeg>,
    /// Whether a supervisor muted this (monitored) party.
    pub(crate) supervisor_muted: bool,
    /// On a leg to an outside number: who asked for it, and with which operation.
    pub(crate) requested: Option<LegRequest>,
}

/// A supervisor's monitoring leg on a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MonitorLeg {
    pub(crate) kind: MonitorKind,
    pub(crate) scope: MonitorScope,
    /// The monitored user.
    pub(crate) target: Arc<str>,
}

impl MonitorLeg {
    /// Returns whether the other parties do not hear the supervisor.
    pub(crate) fn is_silent(&self) -> bool {
        self.kind != MonitorKind::BargeIn
    }
}

/// The device and voice-channel settings of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceRecord {
    pub(crate) active: bool,
    pub(crate) agent_state: AgentState,
    pub(crate) work_mode: Option<WorkMode>,
    pub(crate) dnd: bool,
    pub(crate) forward_to: Option<String>,
    pub(crate) monitoring: Option<Monitoring>,
    /// For NextCall monitoring: whether the next call has been joined.
    pub(crate) next_call_taken: bool,
    /// Bumped on every agent-state change, so a wrap-up timer can tell it is stale.
    pub(crate) generation: u64,
}

impl Default for DeviceRecord {
    fn default() -> Self {
        Self {
            active: true,
            agent_state: AgentState::NotReady,
            work_mode: None,
            dnd: false,
            forward_to: None,
            monitoring: None,
            next_call_taken: false,
            generation: 0,
        }
    }
}

impl Party {
    pub(crate) fn new(endpoint: Endpoint, state: CallState) -> Self {
        Self {
            endpoint,
            state,
            muted: false,
            monitor: None,
            supervisor_muted: false,
            requested: None,
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
    pub(crate) conn_id: Arc<str>,
    pub(crate) started: Instant,
    pub(crate) dnis: Arc<str>,
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

    /// Counts the active parties other than monitoring supervisors.
    pub(crate) fn active_count(&self) -> usize {
        self.parties
            .iter()
            .filter(|p| p.is_active() && p.monitor.is_none())
            .count()
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
