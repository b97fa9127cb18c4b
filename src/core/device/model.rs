//! Devices and agent states (spec §5.3, §5.4, §6.5, §6.6): the device resource each user
//! has, the agent state of the voice channel, do-not-disturb, forwarding, and a
//! supervisor's monitoring of another device.
//!
//! Choices where the spec is silent or marked inferred:
//! - Every user has one device, Active from start-up with the agent state NotReady (the
//!   demo's agents are logged in). EndContactCenterSession makes the device Inactive
//!   (logged out); StartContactCenterSession makes it Active again, NotReady. Dial and the
//!   agent-state operations need an Active device.
//! - Ready takes an optional workmode `ManualIn` or `AutoIn`, shown as the user state's
//!   `workMode`; AfterCallWork shows workMode `AfterCallWork` and, with a wrap-up time,
//!   returns to the configured state (`agent.after_call_work_state`, Ready by default)
//!   when the time is up, unless the agent changed state meanwhile.
//! - Device capabilities list DoNotDisturbOn/Off and ForwardCallsOn/Off by the current
//!   setting; supervisors of a contact center with `api-supervisor-monitoring` also get
//!   ListenIn, Coach and BargeIn when not monitoring, CancelSupervisorMonitoring when they are.

use std::sync::Arc;

use crate::core::model::{UserRef, named_enum};

named_enum!(
    /// An agent state of the voice channel (spec §5.4).
    AgentState {
        /// Ready for calls.
        Ready = "Ready",
        /// Not ready.
        NotReady = "NotReady",
        /// Not ready, wrapping up the last call.
        AfterCallWork = "AfterCallWork",
        /// Not ready, doing other work.
        AuxWork = "AuxWork",
    }
);

impl AgentState {
    /// Returns the fixed id GWS samples use for the state.
    pub fn id(self) -> &'static str {
        match self {
            Self::Ready => "9430250E-0A1B-421F-B372-F29E69366DED",
            Self::NotReady => "900D55CC-2BB0-431F-8BF9-D3525B383BE6",
            Self::AfterCallWork => "D3663509-3D82-4DD3-A82E-2EA8EFA02AEF",
            Self::AuxWork => "2B36138D-C564-4562-A8CB-3C32D564F296",
        }
    }

    /// Returns the display name.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::NotReady => "Not Ready",
            Self::AfterCallWork => "After Call Work",
            Self::AuxWork => "Aux Work",
        }
    }

    /// Returns the `state` field: Ready, or NotReady for every not-ready variant.
    pub fn state_name(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            _ => "NotReady",
        }
    }
}

named_enum!(
    /// The workmode of a Ready agent.
    WorkMode {
        /// The agent takes each call by hand.
        ManualIn = "ManualIn",
        /// Calls are answered automatically.
        AutoIn = "AutoIn",
    }
);

named_enum!(
    /// How a supervisor monitors (spec §6.6).
    MonitorKind {
        /// Silent listening.
        ListenIn = "ListenIn",
        /// Only the agent hears the supervisor.
        Coach = "Coach",
        /// The supervisor joins the call.
        BargeIn = "BargeIn",
    }
);

named_enum!(
    /// Which calls a monitoring covers.
    MonitorMode {
        /// The next call only.
        NextCall = "NextCall",
        /// Every call until cancelled.
        AllCalls = "AllCalls",
    }
);

named_enum!(
    /// What the monitoring follows.
    MonitorScope {
        /// The agent: the supervisor leaves a call when the agent does.
        Agent = "Agent",
        /// The call: the supervisor stays on it until it ends.
        Call = "Call",
    }
);

named_enum!(
    /// An operation on a device or on the voice channel.
    DeviceOperation {
        /// Starts the agent's contact-center session.
        StartContactCenterSession = "StartContactCenterSession",
        /// Ends it.
        EndContactCenterSession = "EndContactCenterSession",
        /// Agent state Ready.
        Ready = "Ready",
        /// Agent state NotReady.
        NotReady = "NotReady",
        /// Agent state AfterCallWork.
        AfterCallWork = "AfterCallWork",
        /// Agent state AuxWork.
        AuxWork = "AuxWork",
        /// Turns do-not-disturb on.
        DoNotDisturbOn = "DoNotDisturbOn",
        /// Turns do-not-disturb off.
        DoNotDisturbOff = "DoNotDisturbOff",
        /// Forwards calls.
        ForwardCallsOn = "ForwardCallsOn",
        /// Stops forwarding.
        ForwardCallsOff = "ForwardCallsOff",
        /// Starts silent monitoring.
        ListenIn = "ListenIn",
        /// Starts coaching.
        Coach = "Coach",
        /// Starts barging in.
        BargeIn = "BargeIn",
        /// Stops monitoring.
        CancelSupervisorMonitoring = "CancelSupervisorMonitoring",
    }
);

/// A supervisor's monitoring of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitoring {
    /// How.
    pub kind: MonitorKind,
    /// Which calls.
    pub mode: MonitorMode,
    /// What it follows.
    pub scope: MonitorScope,
    /// The monitored user.
    pub target: Arc<str>,
    /// The monitored user's device id.
    pub target_device_id: Arc<str>,
}

/// A device as its user sees it (the GWS device resource).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSnapshot {
    /// Whether the device is in the agent's session (Active) or not (Inactive).
    pub active: bool,
    /// Agent state of the voice channel.
    pub agent_state: AgentState,
    /// Workmode, for Ready.
    pub work_mode: Option<WorkMode>,
    /// Do-not-disturb.
    pub do_not_disturb: bool,
    /// Forwarding target.
    pub forward_to: Option<String>,
    /// Operations possible now.
    pub capabilities: Vec<DeviceOperation>,
    /// The monitoring this (supervisor's) device does.
    pub monitoring: Option<Monitoring>,
    /// The user (device id and phone number included).
    pub user: UserRef,
    /// The voice environment (switch) the device is on; empty when unknown (a bridged
    /// upstream that names none). The embedded switch is one voice environment per contact
    /// center, its id from [`crate::core::voice_environment_id`].
    pub voice_environment_id: std::sync::Arc<str>,
    /// Bridge mode: the fields of the upstream's device resource that the core does not
    /// model, as the text of a JSON object, rendered unchanged by the GWS front.
    pub upstream_fields: Option<std::sync::Arc<str>>,
}

/// What a device change was about; decides the CometD channels it is sent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChange {
    /// Agent state or session: `/v2/me/devices` and `/v2/me/channels`.
    AgentState,
    /// Do-not-disturb: `/v2/me/devices` and `/v2/me/channels`.
    DoNotDisturb,
    /// Forwarding, monitoring or capabilities: `/v2/me/devices`.
    Device,
}

/// One notification about a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEvent {
    /// Position in the gateway's event stream.
    pub sequence: u64,
    /// What changed.
    pub change: DeviceChange,
    /// The device after the change.
    pub device: DeviceSnapshot,
    /// When the change was committed (set by the event log, with the sequence).
    pub committed_at: std::time::SystemTime,
}
