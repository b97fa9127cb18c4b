//! Domain types of calls: ids, states, operations, user data and the per-user
//! [`CallSnapshot`] that both front-ends render.

use std::fmt;
use std::sync::Arc;

use crate::core::country::Country;

/// Identifies a call; every party of the call shares it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(Arc<str>);

impl CallId {
    /// Wraps a call id given by a client or a switch.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }

    /// Returns the id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Declares a fieldless enum whose values have GWS names, with `as_str`, `from_name`,
/// `ALL` and `Display`.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// Returns the GWS name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// Parses the GWS name (exact, case-sensitive).
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use named_enum;

named_enum!(
    /// A user's state on a call (spec §7.1).
    CallState {
        /// Outgoing, not answered yet.
        Dialing = "Dialing",
        /// Incoming, not answered yet.
        Ringing = "Ringing",
        /// Connected.
        Established = "Established",
        /// On hold.
        Held = "Held",
        /// Ended for this user (final).
        Released = "Released",
    }
);

named_enum!(
    /// Kind of call from a user's side.
    CallType {
        /// Between numbers of the contact center.
        Internal = "Internal",
        /// From an external number.
        Inbound = "Inbound",
        /// To an external number.
        Outbound = "Outbound",
        /// Made by InitiateTransfer or InitiateConference.
        Consult = "Consult",
    }
);

named_enum!(
    /// Recording state of a call (spec §7.3).
    RecordingState {
        /// Not recording.
        Stopped = "Stopped",
        /// Recording.
        Recording = "Recording",
        /// Paused.
        Paused = "Paused",
    }
);

named_enum!(
    /// GWS `notificationType` of a call event (spec §8.3).
    NotificationType {
        /// Created, or state, capabilities or mute changed.
        StatusChange = "StatusChange",
        /// The participants changed.
        ParticipantsUpdated = "ParticipantsUpdated",
        /// The user data changed.
        AttachedDataChanged = "AttachedDataChanged",
        /// The recording state changed.
        CallRecordingStateChange = "CallRecordingStateChange",
        /// DTMF digits were sent.
        DtmfSent = "DtmfSent",
        /// A supervisor muted or unmuted the monitored user.
        MonitoredUserMutedStateChange = "MonitoredUserMutedStateChange",
    }
);

named_enum!(
    /// A call operation, named as its GWS `operationName` (spec §6.1–§6.4).
    Operation {
        /// Places a call (on a device, not a call).
        Dial = "Dial",
        /// Answers a ringing call.
        Answer = "Answer",
        /// Rejects a queue-delivered ringing call.
        Reject = "Reject",
        /// Leaves the call.
        Hangup = "Hangup",
        /// Ends a conference for everyone.
        ClearCall = "ClearCall",
        /// Holds the call.
        Hold = "Hold",
        /// Retrieves a held call.
        Retrieve = "Retrieve",
        /// Sends DTMF digits.
        SendDtmf = "SendDtmf",
        /// Mutes the user.
        MuteCall = "MuteCall",
        /// Unmutes the user.
        UnmuteCall = "UnmuteCall",
        /// Transfers in one step.
        SingleStepTransfer = "SingleStepTransfer",
        /// Starts a consult transfer.
        InitiateTransfer = "InitiateTransfer",
        /// Completes a consult transfer.
        CompleteTransfer = "CompleteTransfer",
        /// Starts a consult conference.
        InitiateConference = "InitiateConference",
        /// Completes a consult conference.
        CompleteConference = "CompleteConference",
        /// Adds a party in one step.
        SingleStepConference = "SingleStepConference",
        /// Removes a conference party.
        RemoveParticipantFromConference = "RemoveParticipantFromConference",
        /// Swaps a held and an established call.
        SwapCalls = "SwapCalls",
        /// Attaches user data.
        AttachUserData = "AttachUserData",
        /// Adds or replaces user data.
        UpdateUserData = "UpdateUserData",
        /// Removes all user data.
        DeleteUserData = "DeleteUserData",
        /// Removes one user-data key.
        DeleteUserDataPair = "DeleteUserDataPair",
        /// Sets the disposition code.
        SetCallDisposition = "SetCallDisposition",
        /// Starts recording.
        StartCallRecording = "StartCallRecording",
        /// Stops recording.
        StopCallRecording = "StopCallRecording",
        /// Pauses recording.
        PauseCallRecording = "PauseCallRecording",
        /// Resumes recording.
        ResumeCallRecording = "ResumeCallRecording",
        /// Turns a supervisor's monitoring leg into silent listening.
        SwitchToListenIn = "SwitchToListenIn",
        /// Turns a supervisor's monitoring leg into a barge-in.
        SwitchToBargeIn = "SwitchToBargeIn",
        /// Mutes the monitored user (supervisor's leg).
        MuteMonitoredUser = "MuteMonitoredUser",
        /// Unmutes the monitored user (supervisor's leg).
        UnmuteMonitoredUser = "UnmuteMonitoredUser",
    }
);

/// Feature names of spec §4.
pub mod feature {
    /// Call control.
    pub const VOICE: &str = "api-voice";
    /// Call recording operations.
    pub const VOICE_RECORDING: &str = "api-voice-recording";
    /// Supervisor monitoring.
    pub const SUPERVISOR_MONITORING: &str = "api-supervisor-monitoring";
    /// A supervisor's control of agents' states (`/api/v2/users/{userId}/channels/voice`).
    pub const SUPERVISOR_AGENT_CONTROL: &str = "api-supervisor-agent-control";
    /// Every feature the gateway knows; a configuration naming another is refused.
    pub const ALL: &[&str] = &[
        VOICE,
        VOICE_RECORDING,
        SUPERVISOR_MONITORING,
        SUPERVISOR_AGENT_CONTROL,
    ];
}

impl Operation {
    /// Returns the feature, besides `api-voice`, that the operation needs.
    pub fn extra_feature(self) -> Option<&'static str> {
        match self {
            Self::StartCallRecording
            | Self::StopCallRecording
            | Self::PauseCallRecording
            | Self::ResumeCallRecording => Some(feature::VOICE_RECORDING),
            Self::SwitchToListenIn
            | Self::SwitchToBargeIn
            | Self::MuteMonitoredUser
            | Self::UnmuteMonitoredUser => Some(feature::SUPERVISOR_MONITORING),
            _ => None,
        }
    }
}

/// A user-data value: GWS key/value lists hold strings and integers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserDataValue {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
}

impl From<&str> for UserDataValue {
    fn from(s: &str) -> Self {
        Self::Str(s.to_owned())
    }
}

/// Attached data of a call, in insertion order. A key may repeat: GWS `AttachUserData`
/// adds keys even when they exist (spec §6.3).
///
/// The pairs are shared copy-on-write: every view and event of a call carries its user
/// data, and a view is taken several times per operation, so a clone is a reference-count
/// increment and only a change copies the pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserData(Arc<Vec<(String, UserDataValue)>>);

impl UserData {
    /// Builds user data from pairs.
    pub fn from_pairs(pairs: Vec<(String, UserDataValue)>) -> Self {
        Self(Arc::new(pairs))
    }

    /// Returns the pairs in order.
    pub fn pairs(&self) -> &[(String, UserDataValue)] {
        &self.0
    }

    /// Returns whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Returns the first value of a key.
    pub fn get(&self, key: &str) -> Option<&UserDataValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Appends pairs, keeping existing keys (AttachUserData).
    pub fn attach(&mut self, pairs: &UserData) {
        Arc::make_mut(&mut self.0).extend(pairs.0.iter().cloned());
    }

    /// Adds or replaces pairs (UpdateUserData): a key that exists keeps its first position,
    /// takes the new value and loses its duplicates.
    pub fn update(&mut self, pairs: &UserData) {
        for (key, value) in pairs.0.iter() {
            self.set(key, value.clone());
        }
    }

    /// Sets one key, replacing every pair with that key.
    pub fn set(&mut self, key: &str, value: UserDataValue) {
        let mut matching = self.0.iter().filter(|(k, _)| k == key);
        if matching.next().is_some_and(|(_, v)| *v == value) && matching.next().is_none() {
            return;
        }
        let pairs = Arc::make_mut(&mut self.0);
        match pairs.iter().position(|(k, _)| k == key) {
            Some(first) => {
                pairs[first].1 = value;
                let mut index = 0;
                pairs.retain(|(k, _)| {
                    index += 1;
                    index - 1 == first || k != key
                });
            }
            None => pairs.push((key.to_owned(), value)),
        }
    }

    /// Removes every pair with the key; returns whether any was there.
    pub fn remove(&mut self, key: &str) -> bool {
        if !self.0.iter().any(|(k, _)| k == key) {
            return false;
        }
        Arc::make_mut(&mut self.0).retain(|(k, _)| k != key);
        true
    }

    /// Removes all pairs.
    pub fn clear(&mut self) {
        if !self.0.is_empty() {
            Arc::make_mut(&mut self.0).clear();
        }
    }
}

/// Another party on a call, as GWS participant objects show it (spec §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// The party's number.
    pub phone_number: Arc<str>,
    /// E.164 form for external numbers (`+` and digits); empty for internal DNs.
    pub e164_number: Arc<str>,
    /// The country of an outside number; `None` for internal DNs and unknown numbers.
    pub country: Option<Country>,
    /// Where the number is (see [`crate::core::country`]); `None` with no country.
    pub location: Option<Arc<str>>,
}

impl Participant {
    /// Returns the digits of the number.
    pub fn digits(&self) -> &str {
        &self.phone_number
    }

    /// Returns the number formatted for display: North-American ten-digit numbers as
    /// `(916) 555-0104`, anything else unchanged.
    pub fn formatted_phone_number(&self) -> String {
        match self.north_american_parts() {
            Some((area, exchange, line)) => format!("({area}) {exchange}-{line}"),
            None => self.phone_number.to_string(),
        }
    }

    /// Returns the area code, exchange and line of an outside ten-digit number, the parts
    /// [`Self::formatted_phone_number`] shows; `None` for any other number.
    pub fn north_american_parts(&self) -> Option<(&str, &str, &str)> {
        let n = &self.phone_number;
        (n.len() == 10 && n.bytes().all(|b| b.is_ascii_digit()) && !self.e164_number.is_empty())
            .then(|| (&n[..3], &n[3..6], &n[6..]))
    }
}

/// The user a call view or event belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRef {
    /// User name, unique in the gateway.
    pub name: Arc<str>,
    /// The user's contact center.
    pub contact_center: Arc<str>,
    /// The user's phone number (DN).
    pub phone_number: Arc<str>,
    /// The id of the user's device.
    pub device_id: Arc<str>,
}

/// A call as one user sees it at one moment (the GWS call resource, spec §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSnapshot {
    /// Call id (also the call UUID).
    pub id: CallId,
    /// 16-hex connection id.
    pub conn_id: Arc<str>,
    /// The user's state.
    pub state: CallState,
    /// Kind of call from the user's side.
    pub call_type: CallType,
    /// Operations the user may carry out now.
    pub capabilities: Vec<Operation>,
    /// The other parties that are still on the call.
    pub participants: Vec<Participant>,
    /// The dialed number.
    pub dnis: Arc<str>,
    /// The calling number (ANI), on calls from an outside number; `None` on calls an agent
    /// made (spec §5.1: "present for external calls").
    pub ani: Option<Arc<str>>,
    /// Attached data.
    pub user_data: UserData,
    /// Seconds since the call started.
    pub duration_secs: u64,
    /// Whether the user is muted.
    pub muted: bool,
    /// Recording state; `None` when recording does not apply to the user's contact center.
    pub recording_state: Option<RecordingState>,
    /// Whether a supervisor listens in.
    pub supervisor_listening_in: bool,
    /// Whether a supervisor muted the monitored user.
    pub monitored_user_muted: bool,
    /// Whether this is a supervisor's monitoring leg.
    pub monitoring: bool,
    /// For a consult call, the call it was initiated from.
    pub parent_call_id: Option<CallId>,
    /// The user this view belongs to.
    pub user: UserRef,
    /// Bridge mode: the fields of the upstream's call resource that the core does not model
    /// (a real GWS sends more than the spec lists), as the text of a JSON object. The GWS
    /// front renders them unchanged beside its own fields; gRPC has no place for them.
    pub upstream_fields: Option<Arc<str>>,
}

impl CallSnapshot {
    /// Returns whether the view equals another apart from the duration, which changes
    /// with time alone and so never makes a notification.
    pub fn same_as(&self, other: &CallSnapshot) -> bool {
        // Destructured so that a new field cannot be forgotten here.
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
            duration_secs: _,
            muted,
            recording_state,
            supervisor_listening_in,
            monitored_user_muted,
            monitoring,
            parent_call_id,
            user,
            upstream_fields,
        } = self;
        *state == other.state
            && *recording_state == other.recording_state
            && *capabilities == other.capabilities
            && *muted == other.muted
            && *supervisor_listening_in == other.supervisor_listening_in
            && *monitored_user_muted == other.monitored_user_muted
            && *monitoring == other.monitoring
            && *call_type == other.call_type
            && *id == other.id
            && *conn_id == other.conn_id
            && *participants == other.participants
            && *dnis == other.dnis
            && *ani == other.ani
            && *user_data == other.user_data
            && *parent_call_id == other.parent_call_id
            && *user == other.user
            && *upstream_fields == other.upstream_fields
    }
}

/// One notification: a change of one call as one user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEvent {
    /// Position in the gateway's event stream; increases by one per event, in commit order.
    pub sequence: u64,
    /// GWS notificationType.
    pub notification: NotificationType,
    /// The call after the change, as `call.user` sees it.
    pub call: CallSnapshot,
    /// Digits, for [`NotificationType::DtmfSent`].
    pub digits: Option<String>,
    /// When the change was committed (set by the event log, with the sequence).
    pub committed_at: std::time::SystemTime,
}
