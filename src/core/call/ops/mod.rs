//! The mutations behind each operation. Each checks what it needs first, then changes the
//! calls inside [`Store::commit`], which publishes the resulting notifications.
//!
//! Choices where the spec is silent or marked inferred:
//! - CompleteTransfer moves the consulted party into the original call (as a switch
//!   merges the consult into the original): the consulted user sees the consult call
//!   Released and the original call appear, Established.
//! - CompleteConference does the same, retrieves the initiator's held original, and makes
//!   the initiator the conference's owner.
//! - Reject ends the call: the embedded switch has no ACD queue to send it back to.
//! - Hanging up a held original during a consult leaves the consult call as a plain call.
//! - A leg to an outside number that the switch fails later (busy, unreachable) is released,
//!   and the user who asked for it receives an asynchronous error (`remote_failed`; the
//!   choices are in `crate::core::error_event`).

mod consult;
mod remote;

use std::sync::Arc;

use crate::core::capabilities::ConsultKind;
use crate::core::devices::MonitorKind;
use crate::core::directory::{Directory, User};
use crate::core::error::{CoreError, CoreResult};
use crate::core::model::{
    CallEvent, CallId, CallState, NotificationType, RecordingState, UserData, UserDataValue,
};
use crate::core::operation::{CallOperation, DEFAULT_DISPOSITION_KEY, Destination};
use crate::core::store::{Consult, Endpoint, GSIP_RECORD, Store};

use consult::{complete, consult_pair, new_party, swap};
pub(crate) use remote::{remote_answered, remote_failed, remote_released};

/// Creates a call from `user` to `target`.
pub(crate) fn dial(
    store: &mut Store,
    dir: &Directory,
    user: &User,
    target: Endpoint,
    destination: &Destination,
) -> CoreResult<CallId> {
    let id = store.new_call(&destination.number);
    let me = Endpoint::Agent(user.name.clone());
    let result = store.commit(dir, &[], |s| {
        s.add_party(&id, me, CallState::Dialing)?;
        s.add_party(&id, target, CallState::Ringing)?;
        s.call_mut(&id)?.user_data = destination.user_data.clone();
        Ok(vec![id.clone()])
    });
    result.map(|_| id)
}

/// Creates a call from an outside number ringing `user`.
pub(crate) fn inbound(
    store: &mut Store,
    dir: &Directory,
    from: &str,
    user: &User,
    queue: Option<String>,
    user_data: UserData,
) -> CoreResult<CallId> {
    let id = store.new_call(&user.phone_number);
    store.commit(dir, &[], |s| {
        s.add_party(&id, Endpoint::External(from.to_owned()), CallState::Dialing)?;
        s.add_party(&id, Endpoint::Agent(user.name.clone()), CallState::Ringing)?;
        let call = s.call_mut(&id)?;
        call.queue = queue;
        call.user_data = user_data;
        Ok(vec![id.clone()])
    })?;
    Ok(id)
}

fn answer(store: &mut Store, id: &CallId, index: usize) -> CoreResult<()> {
    let call = store.call_mut(id)?;
    call.parties[index].state = CallState::Established;
    for party in &mut call.parties {
        if party.state == CallState::Dialing {
            party.state = CallState::Established;
        }
    }
    Ok(())
}

/// Carries out an operation the caller already checked against the capabilities; returns
/// the id of a call it created (a consult call).
pub(crate) fn execute(
    store: &mut Store,
    dir: &Directory,
    user: &User,
    id: &CallId,
    op: CallOperation,
    target: Option<Endpoint>,
) -> CoreResult<Option<CallId>> {
    let me: Arc<str> = user.name.clone();
    let mine = store.call(id)?.party_of(&me).ok_or_else(|| {
        CoreError::PermissionDenied(format!("call {id} is not a call of user {me}"))
    })?;
    let only = std::slice::from_ref(id);
    let set_state = |s: &mut Store, state: CallState| -> CoreResult<Vec<CallId>> {
        s.call_mut(id)?.parties[mine].state = state;
        Ok(vec![id.clone()])
    };
    match op {
        CallOperation::Answer => {
            store.commit(dir, only, |s| {
                answer(s, id, mine)?;
                Ok(vec![id.clone()])
            })?;
        }
        CallOperation::Hangup => {
            store.commit(dir, only, |s| set_state(s, CallState::Released))?;
        }
        CallOperation::Reject | CallOperation::ClearCall => {
            store.commit(dir, only, |s| {
                for party in &mut s.call_mut(id)?.parties {
                    party.state = CallState::Released;
                }
                Ok(vec![id.clone()])
            })?;
        }
        CallOperation::Hold => {
            store.commit(dir, only, |s| set_state(s, CallState::Held))?;
        }
        CallOperation::Retrieve => {
            store.commit(dir, only, |s| set_state(s, CallState::Established))?;
        }
        CallOperation::MuteCall | CallOperation::UnmuteCall => {
            let muted = op == CallOperation::MuteCall;
            store.commit(dir, only, |s| {
                s.call_mut(id)?.parties[mine].muted = muted;
                Ok(vec![id.clone()])
            })?;
        }
        CallOperation::SendDtmf { digits } => {
            let call = store.view_of(dir, id, &me)?;
            store.log.append(CallEvent {
                sequence: 0,
                notification: NotificationType::DtmfSent,
                call,
                digits: Some(digits),
                committed_at: std::time::UNIX_EPOCH,
            });
        }
        CallOperation::SingleStepTransfer(ref destination)
        | CallOperation::SingleStepConference(ref destination) => {
            let target = new_party(store, id, &me, target)?;
            let transfer = matches!(op, CallOperation::SingleStepTransfer(_));
            store.commit(dir, only, |s| {
                s.add_party(id, target, CallState::Ringing)?;
                let call = s.call_mut(id)?;
                // The new party joins this very call, so the request's `userData` lands on
                // it, added to or replacing the call's pairs (as for a consult call, spec
                // §6.2): the party being transferred to sees it as it rings.
                call.user_data.update(&destination.user_data);
                if transfer {
                    call.parties[mine].state = CallState::Released;
                } else {
                    call.conference_owner = Some(me.clone());
                }
                Ok(vec![id.clone()])
            })?;
        }
        CallOperation::InitiateTransfer(ref destination)
        | CallOperation::InitiateConference(ref destination) => {
            let kind = if matches!(op, CallOperation::InitiateTransfer(_)) {
                ConsultKind::Transfer
            } else {
                ConsultKind::Conference
            };
            let target = new_party(store, id, &me, target)?;
            let consult = store.new_call(&destination.number);
            let result = store.commit(dir, only, |s| {
                let original = s.call_mut(id)?;
                original.parties[mine].state = CallState::Held;
                original.consult = Some(Consult {
                    call: consult.clone(),
                    kind,
                    initiator: me.clone(),
                });
                let mut data = original.user_data.clone();
                data.update(&destination.user_data);
                s.add_party(&consult, Endpoint::Agent(me.clone()), CallState::Dialing)?;
                s.add_party(&consult, target, CallState::Ringing)?;
                let call = s.call_mut(&consult)?;
                call.parent = Some((id.clone(), kind));
                call.user_data = data;
                Ok(vec![id.clone(), consult.clone()])
            });
            if let Err(error) = result {
                store.calls.remove(&consult);
                return Err(error);
            }
            return Ok(Some(consult));
        }
        CallOperation::CompleteTransfer { consult }
        | CallOperation::CompleteConference { consult } => {
            let (original, consult_id, kind) = consult_pair(store, id, &me, consult)?;
            complete(store, dir, &me, &original, &consult_id, kind)?;
        }
        CallOperation::RemoveParticipantFromConference { participant } => {
            let call = store.call(id)?;
            let index = call
                .parties
                .iter()
                .enumerate()
                .position(|(i, p)| {
                    i != mine && p.is_active() && party_number(dir, &p.endpoint) == participant
                })
                .ok_or_else(|| {
                    CoreError::invalid("participant", format!("{participant} is not on call {id}"))
                })?;
            store.commit(dir, only, |s| {
                s.call_mut(id)?.parties[index].state = CallState::Released;
                Ok(vec![id.clone()])
            })?;
        }
        CallOperation::SwapCalls { other } => swap(store, dir, id, &me, &other)?,
        CallOperation::AttachUserData(data) => {
            store.commit(dir, only, |s| {
                s.call_mut(id)?.user_data.attach(&data);
                Ok(vec![id.clone()])
            })?;
        }
        CallOperation::UpdateUserData(data) => {
            store.commit(dir, only, |s| {
                s.call_mut(id)?.user_data.update(&data);
                Ok(vec![id.clone()])
            })?;
        }
        CallOperation::DeleteUserData => {
            store.commit(dir, only, |s| {
                s.call_mut(id)?.user_data.clear();
                Ok(vec![id.clone()])
            })?;
        }
        CallOperation::DeleteUserDataPair { key } => {
            if store.call(id)?.user_data.get(&key).is_none() {
                return Err(CoreError::invalid(
                    "key",
                    format!("call {id} has no user data key {key}"),
                ));
            }
            store.commit(dir, only, |s| {
                s.call_mut(id)?.user_data.remove(&key);
                Ok(vec![id.clone()])
            })?;
        }
        CallOperation::SetCallDisposition { disposition, key } => {
            let key = key.unwrap_or_else(|| DEFAULT_DISPOSITION_KEY.to_owned());
            let value = UserDataValue::Str(disposition);
            let call = store.call_mut(id)?;
            if call.ended || !call.parties[mine].is_active() {
                // Released call: recorded for reporting, no notification (spec §6.3).
                call.user_data.set(&key, value);
            } else {
                store.commit(dir, only, |s| {
                    s.call_mut(id)?.user_data.set(&key, value);
                    Ok(vec![id.clone()])
                })?;
            }
        }
        CallOperation::StartCallRecording | CallOperation::ResumeCallRecording => {
            set_recording(store, dir, id, RecordingState::Recording, "ON")?;
        }
        CallOperation::PauseCallRecording => {
            set_recording(store, dir, id, RecordingState::Paused, "PAUSED")?
        }
        CallOperation::StopCallRecording => {
            set_recording(store, dir, id, RecordingState::Stopped, "OFF")?
        }
        CallOperation::SwitchToListenIn | CallOperation::SwitchToBargeIn => {
            let kind = if op == CallOperation::SwitchToListenIn {
                MonitorKind::ListenIn
            } else {
                MonitorKind::BargeIn
            };
            store.commit_with_users(dir, only, std::slice::from_ref(&me), |s| {
                if let Some(leg) = s.call_mut(id)?.parties[mine].monitor.as_mut() {
                    leg.kind = kind;
                }
                if let Some(monitoring) = s.device_mut(&me).monitoring.as_mut() {
                    monitoring.kind = kind;
                }
                Ok(vec![id.clone()])
            })?;
        }
        CallOperation::MuteMonitoredUser | CallOperation::UnmuteMonitoredUser => {
            let muted = op == CallOperation::MuteMonitoredUser;
            let call = store.call(id)?;
            let target = call.parties[mine]
                .monitor
                .as_ref()
                .and_then(|leg| call.party_of(&leg.target))
                .ok_or_else(|| {
                    CoreError::Precondition(format!("the monitored user has left call {id}"))
                })?;
            store.commit(dir, only, |s| {
                s.call_mut(id)?.parties[target].supervisor_muted = muted;
                Ok(vec![id.clone()])
            })?;
        }
    }
    Ok(None)
}

fn party_number(dir: &Directory, endpoint: &Endpoint) -> String {
    match endpoint {
        Endpoint::Agent(name) => dir
            .user(name)
            .map(|u| u.phone_number.to_string())
            .unwrap_or_default(),
        Endpoint::External(number) => number.clone(),
    }
}

fn set_recording(
    store: &mut Store,
    dir: &Directory,
    id: &CallId,
    state: RecordingState,
    mirror: &str,
) -> CoreResult<()> {
    store.commit(dir, std::slice::from_ref(id), |s| {
        let call = s.call_mut(id)?;
        call.recording = state;
        call.user_data
            .set(GSIP_RECORD, UserDataValue::Str(mirror.to_owned()));
        Ok(vec![id.clone()])
    })?;
    Ok(())
}
