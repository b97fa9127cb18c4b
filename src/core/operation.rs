//! Requests that the core carries out, shared by both front-ends: each front-end converts
//! its wire request into a [`CallOperation`] or a [`DialRequest`], and the core validates
//! the parameters here before touching any state.
//!
//! Parameter names in errors are the GWS ones (`destination`, `digits`, `userData`, ...).

use std::time::Duration;

use super::devices::{DeviceOperation, MonitorKind, MonitorMode, MonitorScope, WorkMode};
use super::error::{CoreError, CoreResult};
use super::model::{CallId, Operation, UserData};

/// Where a call, transfer or conference goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Destination {
    /// The phone number: digits, optionally after a leading `+`.
    pub number: String,
    /// A remote switch location; `None` for the local switch.
    pub location: Option<String>,
    /// User data to attach.
    pub user_data: UserData,
}

impl Destination {
    /// Builds a destination to a number with no location or data.
    pub fn to_number(number: impl Into<String>) -> Self {
        Self {
            number: number.into(),
            ..Self::default()
        }
    }

    fn validate(&self) -> CoreResult<()> {
        validate_number("destination", &self.number)
    }
}

/// Checks a phone number: required, digits with an optional leading `+`, at most 32.
pub fn validate_number(name: &'static str, number: &str) -> CoreResult<()> {
    if number.is_empty() {
        return Err(CoreError::MissingParameter(name));
    }
    let digits = number.strip_prefix('+').unwrap_or(number);
    if digits.is_empty() || digits.len() > 32 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CoreError::invalid(
            name,
            format!("{number:?} is not a phone number (digits, optionally after a leading +)"),
        ));
    }
    Ok(())
}

/// A request to place a call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DialRequest {
    /// Where to call.
    pub destination: Destination,
    /// The device to call from; `None` for the user's own device.
    pub device_id: Option<String>,
}

impl DialRequest {
    /// Checks the parameters.
    pub fn validate(&self) -> CoreResult<()> {
        self.destination.validate()
    }
}

/// An operation on an existing call, with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOperation {
    /// Answers a ringing call.
    Answer,
    /// Rejects a queue-delivered ringing call.
    Reject,
    /// Leaves the call.
    Hangup,
    /// Ends a conference for every party.
    ClearCall,
    /// Holds the call.
    Hold,
    /// Retrieves a held call.
    Retrieve,
    /// Sends DTMF digits.
    SendDtmf {
        /// Digits `0-9`, `*`, `#`.
        digits: String,
    },
    /// Mutes the user.
    MuteCall,
    /// Unmutes the user.
    UnmuteCall,
    /// Transfers in one step; the destination's user data is added to the call the new
    /// party joins.
    SingleStepTransfer(Destination),
    /// Starts a consult transfer.
    InitiateTransfer(Destination),
    /// Completes a consult transfer.
    CompleteTransfer {
        /// The consult call; `None` to find it.
        consult: Option<CallId>,
    },
    /// Starts a consult conference.
    InitiateConference(Destination),
    /// Completes a consult conference.
    CompleteConference {
        /// The consult call; `None` to find it.
        consult: Option<CallId>,
    },
    /// Adds a party in one step; the destination's user data is added to the call.
    SingleStepConference(Destination),
    /// Removes a conference party.
    RemoveParticipantFromConference {
        /// The party's phone number.
        participant: String,
    },
    /// Swaps this call with another of the user's calls.
    SwapCalls {
        /// The other call.
        other: CallId,
    },
    /// Attaches pairs (keys may repeat).
    AttachUserData(UserData),
    /// Adds or replaces pairs.
    UpdateUserData(UserData),
    /// Removes all pairs.
    DeleteUserData,
    /// Removes one key.
    DeleteUserDataPair {
        /// The key.
        key: String,
    },
    /// Sets the disposition code.
    SetCallDisposition {
        /// The code.
        disposition: String,
        /// The user-data key; `None` for [`DEFAULT_DISPOSITION_KEY`].
        key: Option<String>,
    },
    /// Starts recording.
    StartCallRecording,
    /// Stops recording.
    StopCallRecording,
    /// Pauses recording.
    PauseCallRecording,
    /// Resumes recording.
    ResumeCallRecording,
    /// Turns the supervisor's monitoring leg into silent listening.
    SwitchToListenIn,
    /// Turns the supervisor's monitoring leg into a barge-in.
    SwitchToBargeIn,
    /// Mutes the monitored user.
    MuteMonitoredUser,
    /// Unmutes the monitored user.
    UnmuteMonitoredUser,
}

/// The user-data key SetCallDisposition writes when the request names none.
pub const DEFAULT_DISPOSITION_KEY: &str = "DispositionCode";

impl CallOperation {
    /// Returns the GWS operation this request carries out.
    pub fn operation(&self) -> Operation {
        use Operation as Op;
        match self {
            Self::Answer => Op::Answer,
            Self::Reject => Op::Reject,
            Self::Hangup => Op::Hangup,
            Self::ClearCall => Op::ClearCall,
            Self::Hold => Op::Hold,
            Self::Retrieve => Op::Retrieve,
            Self::SendDtmf { .. } => Op::SendDtmf,
            Self::MuteCall => Op::MuteCall,
            Self::UnmuteCall => Op::UnmuteCall,
            Self::SingleStepTransfer(_) => Op::SingleStepTransfer,
            Self::InitiateTransfer(_) => Op::InitiateTransfer,
            Self::CompleteTransfer { .. } => Op::CompleteTransfer,
            Self::InitiateConference(_) => Op::InitiateConference,
            Self::CompleteConference { .. } => Op::CompleteConference,
            Self::SingleStepConference(_) => Op::SingleStepConference,
            Self::RemoveParticipantFromConference { .. } => Op::RemoveParticipantFromConference,
            Self::SwapCalls { .. } => Op::SwapCalls,
            Self::AttachUserData(_) => Op::AttachUserData,
            Self::UpdateUserData(_) => Op::UpdateUserData,
            Self::DeleteUserData => Op::DeleteUserData,
            Self::DeleteUserDataPair { .. } => Op::DeleteUserDataPair,
            Self::SetCallDisposition { .. } => Op::SetCallDisposition,
            Self::StartCallRecording => Op::StartCallRecording,
            Self::StopCallRecording => Op::StopCallRecording,
            Self::PauseCallRecording => Op::PauseCallRecording,
            Self::ResumeCallRecording => Op::ResumeCallRecording,
            Self::SwitchToListenIn => Op::SwitchToListenIn,
            Self::SwitchToBargeIn => Op::SwitchToBargeIn,
            Self::MuteMonitoredUser => Op::MuteMonitoredUser,
            Self::UnmuteMonitoredUser => Op::UnmuteMonitoredUser,
        }
    }

    /// Checks the parameters, without looking at any call.
    pub fn validate(&self) -> CoreResult<()> {
        match self {
            Self::SendDtmf { digits } => {
                if digits.is_empty() {
                    return Err(CoreError::MissingParameter("digits"));
                }
                if digits.len() > 64
                    || !digits
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
                {
                    return Err(CoreError::invalid(
                        "digits",
                        "only 0-9, * and # are allowed, at most 64",
                    ));
                }
                Ok(())
            }
            Self::SingleStepTransfer(d)
            | Self::InitiateTransfer(d)
            | Self::InitiateConference(d)
            | Self::SingleStepConference(d) => d.validate(),
            Self::RemoveParticipantFromConference { participant } => {
                validate_number("participant", participant)
            }
            Self::AttachUserData(data) | Self::UpdateUserData(data) if data.is_empty() => {
                Err(CoreError::MissingParameter("userData"))
            }
            Self::DeleteUserDataPair { key } if key.is_empty() => {
                Err(CoreError::MissingParameter("key"))
            }
            Self::SetCallDisposition { disposition, key } => {
                if disposition.is_empty() {
                    return Err(CoreError::MissingParameter("disposition"));
                }
                if key.as_deref() == Some("") {
                    return Err(CoreError::invalid("dispositionKey", "must not be empty"));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Whom a supervisor monitors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorTarget {
    /// A device id (the last segment of a `targetDeviceUri`).
    Device(String),
    /// A user's phone number.
    PhoneNumber(String),
}

/// An operation on the user's device or voice channel, with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceRequest {
    /// Starts the contact-center session on the given channels (`voice` required here).
    StartContactCenterSession {
        /// Channel names.
        channels: Vec<String>,
        /// The place to log in at: the embedded switch knows one per user, named by the
        /// user's DN; another is not found (404/6). `None`: the user's default place.
        place: Option<String>,
        /// The device to use at a multi-device place: a device URI, path or id, which must
        /// be the user's own device (else 404/6).
        device_path: Option<String>,
        /// The ACD queue to log in to (GWS 8.5.0): the embedded switch has no ACD queues,
        /// so it refuses one (400/2) rather than log the agent in to none; a bridged
        /// upstream gets it.
        queue: Option<String>,
        /// The agent login code (GWS 8.5.0): the embedded switch has no agent logins, so it
        /// refuses one (400/2); a bridged upstream gets it.
        login_code: Option<String>,
    },
    /// Ends the contact-center session.
    EndContactCenterSession,
    /// Agent state Ready.
    Ready {
        /// `ManualIn` or `AutoIn`.
        work_mode: Option<WorkMode>,
    },
    /// Agent state NotReady.
    NotReady,
    /// Agent state AfterCallWork.
    AfterCallWork {
        /// Wrap-up time; afterwards the agent returns to the configured state.
        wrap_up: Option<Duration>,
    },
    /// Agent state AuxWork.
    AuxWork,
    /// Turns do-not-disturb on.
    DoNotDisturbOn,
    /// Turns do-not-disturb off.
    DoNotDisturbOff,
    /// Forwards calls to a number.
    ForwardCallsOn {
        /// The forwarding target.
        destination: String,
    },
    /// Stops forwarding.
    ForwardCallsOff,
    /// Starts monitoring another device.
    Monitor {
        /// ListenIn, Coach or BargeIn.
        kind: MonitorKind,
        /// Whom.
        target: MonitorTarget,
        /// Which calls (default AllCalls).
        mode: MonitorMode,
        /// What it follows (default Call).
        scope: MonitorScope,
    },
    /// Stops monitoring.
    CancelSupervisorMonitoring,
}

impl DeviceRequest {
    /// Returns the GWS operation.
    pub fn operation(&self) -> DeviceOperation {
        use DeviceOperation as D;
        match self {
            Self::StartContactCenterSession { .. } => D::StartContactCenterSession,
            Self::EndContactCenterSession => D::EndContactCenterSession,
            Self::Ready { .. } => D::Ready,
            Self::NotReady => D::NotReady,
            Self::AfterCallWork { .. } => D::AfterCallWork,
            Self::AuxWork => D::AuxWork,
            Self::DoNotDisturbOn => D::DoNotDisturbOn,
            Self::DoNotDisturbOff => D::DoNotDisturbOff,
            Self::ForwardCallsOn { .. } => D::ForwardCallsOn,
            Self::ForwardCallsOff => D::ForwardCallsOff,
            Self::Monitor { kind, .. } => match kind {
                MonitorKind::ListenIn => D::ListenIn,
                MonitorKind::Coach => D::Coach,
                MonitorKind::BargeIn => D::BargeIn,
            },
            Self::CancelSupervisorMonitoring => D::CancelSupervisorMonitoring,
        }
    }

    /// Checks the parameters, without looking at any device.
    pub fn validate(&self) -> CoreResult<()> {
        match self {
            Self::StartContactCenterSession { channels, .. } => {
                if channels.is_empty() {
                    return Err(CoreError::MissingParameter("channels"));
                }
                if !channels.iter().any(|c| c == "voice") {
                    return Err(CoreError::invalid(
                        "channels",
                        "only the voice channel is served; include \"voice\"",
                    ));
                }
                Ok(())
            }
            Self::ForwardCallsOn { destination } => validate_number("destination", destination),
            Self::Monitor { target, .. } => match target {
                MonitorTarget::Device(id) if id.is_empty() => {
                    Err(CoreError::MissingParameter("targetDeviceUri"))
                }
                MonitorTarget::PhoneNumber(n) => validate_number("phoneNumber", n),
                MonitorTarget::Device(_) => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_must_be_phone_numbers() {
        assert_eq!(
            validate_number("destination", ""),
            Err(CoreError::MissingParameter("destination"))
        );
        assert!(validate_number("destination", "15001").is_ok());
        assert!(validate_number("destination", "+19165550104").is_ok());
        assert!(validate_number("destination", "+").is_err());
        assert!(validate_number("destination", "15-001").is_err());
    }

    #[test]
    fn dtmf_digits_are_checked() {
        let op = |digits: &str| {
            CallOperation::SendDtmf {
                digits: digits.into(),
            }
            .validate()
        };
        assert!(op("123*#").is_ok());
        assert_eq!(op(""), Err(CoreError::MissingParameter("digits")));
        assert!(op("12a").is_err());
    }
}
