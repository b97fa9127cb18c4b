//! The capabilities table (spec §7.2, §7.3): which operations a user may carry out on a
//! call, from the user's state on it, its recording state, the user's other calls and the
//! contact center's features.
//!
//! Choices where the spec is silent or marked inferred:
//! - `Ringing` offers `Answer`, `Hangup` and the data operations; `Reject` only on calls a
//!   queue delivered (§6.1).
//! - `MuteCall` is offered on an established call that is not muted; `UnmuteCall` on a muted
//!   call, established or held.
//! - Recording operations are offered on established and held calls when the contact center
//!   has `api-voice-recording`, by recording state: Stopped → Start; Recording → Pause, Stop;
//!   Paused → Resume, Stop.
//! - While a consult is in progress, the held original and the consult call both offer
//!   `SwapCalls` and the matching `CompleteTransfer` or `CompleteConference`, and neither
//!   offers a new transfer or conference; the held original offers no `Retrieve` (as in the
//!   InitiateTransfer sample): `SwapCalls` or hanging up the consult call gets it back.
//! - `ClearCall` is offered in a conference (three or more parties) to every party;
//!   `RemoveParticipantFromConference` only to the conference's owner.
//! - A supervisor's monitoring leg offers Hangup (leave the call), SwitchToBargeIn (from
//!   ListenIn or Coach), SwitchToListenIn (from Coach or BargeIn), MuteMonitoredUser or
//!   UnmuteMonitoredUser, RemoveParticipantFromConference and the data operations.
//! - `SetCallDisposition` is never listed: the GWS samples never list it, and it is accepted
//!   on any call of the user, released ones included (§6.3).

use crate::core::devices::MonitorKind;
use crate::core::model::{CallState, Operation, RecordingState};

/// How a call is tied to a consult that the viewing user started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsultRole {
    /// No consult of the user involves this call.
    None,
    /// This call is the held original of a consult of the given kind.
    Original(ConsultKind),
    /// This call is the consult call of the given kind.
    Consult(ConsultKind),
}

/// What a consult call was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsultKind {
    /// InitiateTransfer.
    Transfer,
    /// InitiateConference.
    Conference,
}

/// Everything the capabilities of one user's view of a call depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapabilityInput {
    /// The user's state on the call.
    pub state: CallState,
    /// Whether the user is muted.
    pub muted: bool,
    /// Recording state, `None` when the contact center lacks `api-voice-recording`.
    pub recording: Option<RecordingState>,
    /// Whether the contact center has `api-voice`; without it nothing is offered.
    pub voice: bool,
    /// Whether a queue delivered the call.
    pub via_queue: bool,
    /// Whether three or more parties are on the call.
    pub conference: bool,
    /// Whether the user owns the conference.
    pub conference_owner: bool,
    /// The call's part in a consult of the user.
    pub consult: ConsultRole,
    /// Whether the user has another call that is held.
    pub other_held: bool,
    /// Whether the user has another call that is established.
    pub other_established: bool,
    /// For a supervisor's monitoring leg: how it monitors.
    pub monitor: Option<MonitorKind>,
    /// For a monitoring leg: whether the monitored user is muted.
    pub monitored_muted: bool,
}

const DATA_OPS: [Operation; 4] = [
    Operation::AttachUserData,
    Operation::UpdateUserData,
    Operation::DeleteUserData,
    Operation::DeleteUserDataPair,
];

const NEW_PARTY_OPS: [Operation; 4] = [
    Operation::SingleStepTransfer,
    Operation::InitiateTransfer,
    Operation::SingleStepConference,
    Operation::InitiateConference,
];

/// Returns the operations the user may carry out on the call now.
pub fn capabilities(input: &CapabilityInput) -> Vec<Operation> {
    use Operation as Op;
    if !input.voice {
        return Vec::new();
    }
    let mut ops = Vec::with_capacity(16);
    if let Some(kind) = input.monitor
        && input.state != CallState::Released
    {
        ops.push(Op::Hangup);
        if kind != MonitorKind::BargeIn {
            ops.push(Op::SwitchToBargeIn);
        }
        if kind != MonitorKind::ListenIn {
            ops.push(Op::SwitchToListenIn);
        }
        ops.push(if input.monitored_muted {
            Op::UnmuteMonitoredUser
        } else {
            Op::MuteMonitoredUser
        });
        ops.push(Op::RemoveParticipantFromConference);
        ops.extend(DATA_OPS);
        return ops;
    }
    match input.state {
        CallState::Released => return ops,
        CallState::Dialing => ops.extend([Op::Hangup, Op::SendDtmf]),
        CallState::Ringing => {
            ops.push(Op::Answer);
            if input.via_queue {
                ops.push(Op::Reject);
            }
            ops.push(Op::Hangup);
        }
        CallState::Established => {
            ops.extend([Op::Hangup, Op::Hold, Op::SendDtmf]);
            ops.push(if input.muted {
                Op::UnmuteCall
            } else {
                Op::MuteCall
            });
            connected_ops(input, &mut ops);
            if input.other_held && input.consult == ConsultRole::None {
                ops.push(Op::SwapCalls);
            }
        }
        CallState::Held => {
            ops.push(Op::Hangup);
            if input.muted {
                ops.push(Op::UnmuteCall);
            }
            if input.consult == ConsultRole::None {
                ops.push(Op::Retrieve);
                if input.other_established {
                    ops.push(Op::SwapCalls);
                }
            }
            connected_ops(input, &mut ops);
        }
    }
    ops.extend(DATA_OPS);
    ops
}

/// Adds what established and held calls share: transfers, conferences, recording.
fn connected_ops(input: &CapabilityInput, ops: &mut Vec<Operation>) {
    use Operation as Op;
    match input.consult {
        ConsultRole::None => ops.extend(NEW_PARTY_OPS),
        ConsultRole::Original(kind) | ConsultRole::Consult(kind) => {
            ops.push(Op::SwapCalls);
            ops.push(match kind {
                ConsultKind::Transfer => Op::CompleteTransfer,
                ConsultKind::Conference => Op::CompleteConference,
            });
        }
    }
    if input.conference {
        ops.push(Op::ClearCall);
        if input.conference_owner {
            ops.push(Op::RemoveParticipantFromConference);
        }
    }
    match input.recording {
        None => {}
        Some(RecordingState::Stopped) => ops.push(Op::StartCallRecording),
        Some(RecordingState::Recording) => {
            ops.extend([Op::PauseCallRecording, Op::StopCallRecording]);
        }
        Some(RecordingState::Paused) => {
            ops.extend([Op::ResumeCallRecording, Op::StopCallRecording]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Operation as Op;

    fn input(state: CallState) -> CapabilityInput {
        CapabilityInput {
            state,
            muted: false,
            recording: Some(RecordingState::Stopped),
            voice: true,
            via_queue: false,
            conference: false,
            conference_owner: false,
            consult: ConsultRole::None,
            other_held: false,
            other_established: false,
            monitor: None,
            monitored_muted: false,
        }
    }

    fn sorted(mut ops: Vec<Operation>) -> Vec<Operation> {
        ops.sort();
        ops
    }

    #[test]
    fn established_matches_the_stop_recording_sample_plus_mute() {
        // The spec's StopCallRecording sample (§8.3) lists these twelve; MuteCall is ours.
        let expected = sorted(vec![
            Op::UpdateUserData,
            Op::SendDtmf,
            Op::InitiateConference,
            Op::Hold,
            Op::SingleStepTransfer,
            Op::InitiateTransfer,
            Op::AttachUserData,
            Op::DeleteUserDataPair,
            Op::SingleStepConference,
            Op::DeleteUserData,
            Op::Hangup,
            Op::StartCallRecording,
            Op::MuteCall,
        ]);
        assert_eq!(
            sorted(capabilities(&input(CallState::Established))),
            expected
        );
    }

    #[test]
    fn dialing_offers_hangup_dtmf_and_data() {
        let expected = sorted(vec![
            Op::Hangup,
            Op::SendDtmf,
            Op::AttachUserData,
            Op::UpdateUserData,
            Op::DeleteUserData,
            Op::DeleteUserDataPair,
        ]);
        assert_eq!(sorted(capabilities(&input(CallState::Dialing))), expected);
    }

    #[test]
    fn ringing_offers_answer_and_reject_only_from_a_queue() {
        let direct = capabilities(&input(CallState::Ringing));
        assert!(direct.contains(&Op::Answer));
        assert!(!direct.contains(&Op::Reject));
        let queued = capabilities(&CapabilityInput {
            via_queue: true,
            ..input(CallState::Ringing)
        });
        assert!(queued.contains(&Op::Reject));
    }

    #[test]
    fn released_offers_nothing() {
        assert!(capabilities(&input(CallState::Released)).is_empty());
    }

    #[test]
    fn held_offers_retrieve_but_not_hold_or_dtmf() {
        let ops = capabilities(&input(CallState::Held));
        assert!(ops.contains(&Op::Retrieve));
        assert!(ops.contains(&Op::InitiateTransfer));
        assert!(!ops.contains(&Op::Hold));
        assert!(!ops.contains(&Op::SendDtmf));
    }

    #[test]
    fn recording_states_drive_recording_ops() {
        let with = |recording| {
            let ops = capabilities(&CapabilityInput {
                recording,
                ..input(CallState::Established)
            });
            let mut rec: Vec<_> = ops
                .into_iter()
                .filter(|op| op.extra_feature().is_some())
                .collect();
            rec.sort();
            rec
        };
        assert_eq!(
            with(Some(RecordingState::Stopped)),
            vec![Op::StartCallRecording]
        );
        assert_eq!(
            with(Some(RecordingState::Recording)),
            vec![Op::StopCallRecording, Op::PauseCallRecording]
        );
        assert_eq!(
            with(Some(RecordingState::Paused)),
            vec![Op::StopCallRecording, Op::ResumeCallRecording]
        );
        assert_eq!(with(None), vec![]);
    }

    #[test]
    fn mute_toggles_between_mute_and_unmute() {
        let muted = capabilities(&CapabilityInput {
            muted: true,
            ..input(CallState::Established)
        });
        assert!(muted.contains(&Op::UnmuteCall));
        assert!(!muted.contains(&Op::MuteCall));
    }

    #[test]
    fn consult_original_offers_swap_and_complete_without_retrieve() {
        let ops = capabilities(&CapabilityInput {
            consult: ConsultRole::Original(ConsultKind::Transfer),
            ..input(CallState::Held)
        });
        assert!(ops.contains(&Op::SwapCalls));
        assert!(ops.contains(&Op::CompleteTransfer));
        assert!(!ops.contains(&Op::CompleteConference));
        assert!(!ops.contains(&Op::Retrieve));
        assert!(!ops.contains(&Op::InitiateTransfer));
    }

    #[test]
    fn consult_call_offers_complete_conference() {
        let ops = capabilities(&CapabilityInput {
            consult: ConsultRole::Consult(ConsultKind::Conference),
            ..input(CallState::Established)
        });
        assert!(ops.contains(&Op::CompleteConference));
        assert!(ops.contains(&Op::SwapCalls));
        assert!(ops.contains(&Op::Hold));
    }

    #[test]
    fn another_held_call_offers_swap() {
        let ops = capabilities(&CapabilityInput {
            other_held: true,
            ..input(CallState::Established)
        });
        assert!(ops.contains(&Op::SwapCalls));
    }

    #[test]
    fn conference_offers_clear_and_owner_removal() {
        let member = capabilities(&CapabilityInput {
            conference: true,
            ..input(CallState::Established)
        });
        assert!(member.contains(&Op::ClearCall));
        assert!(!member.contains(&Op::RemoveParticipantFromConference));
        let owner = capabilities(&CapabilityInput {
            conference: true,
            conference_owner: true,
            ..input(CallState::Established)
        });
        assert!(owner.contains(&Op::RemoveParticipantFromConference));
    }

    #[test]
    fn monitoring_legs_offer_the_supervisor_operations() {
        let listen = capabilities(&CapabilityInput {
            monitor: Some(MonitorKind::ListenIn),
            ..input(CallState::Established)
        });
        assert!(listen.contains(&Op::SwitchToBargeIn));
        assert!(!listen.contains(&Op::SwitchToListenIn));
        assert!(listen.contains(&Op::MuteMonitoredUser));
        assert!(listen.contains(&Op::RemoveParticipantFromConference));
        assert!(!listen.contains(&Op::Hold));
        let barge = capabilities(&CapabilityInput {
            monitor: Some(MonitorKind::BargeIn),
            monitored_muted: true,
            ..input(CallState::Established)
        });
        assert!(barge.contains(&Op::SwitchToListenIn));
        assert!(!barge.contains(&Op::SwitchToBargeIn));
        assert!(barge.contains(&Op::UnmuteMonitoredUser));
    }

    #[test]
    fn without_voice_feature_nothing_is_offered() {
        let ops = capabilities(&CapabilityInput {
            voice: false,
            ..input(CallState::Established)
        });
        assert!(ops.is_empty());
    }
}
