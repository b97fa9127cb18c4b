//! What the switch reports of outside parties on a call: an answer, a leg the network
//! could not complete (busy, unreachable), a hang-up.

use crate::core::directory::Directory;
use crate::core::error::{CoreError, CoreResult};
use crate::core::error_event::ErrorEvent;
use crate::core::model::{CallId, CallState};
use crate::core::store::{Endpoint, Store};

use super::answer;

/// Finds the active outside party with this number on a call.
fn external_party(store: &Store, id: &CallId, number: &str) -> CoreResult<usize> {
    store
        .call(id)?
        .active_party(&Endpoint::External(number.to_owned()))
        .ok_or_else(|| CoreError::invalid("number", format!("{number} is not on call {id}")))
}

/// An outside party answered: it and every party still dialing become Established.
pub(crate) fn remote_answered(
    store: &mut Store,
    dir: &Directory,
    id: &CallId,
    number: &str,
) -> CoreResult<()> {
    let index = external_party(store, id, number)?;
    store.commit(dir, std::slice::from_ref(id), |s| {
        answer(s, id, index)?;
        Ok(vec![id.clone()])
    })?;
    Ok(())
}

/// The network could not complete the leg to an outside party (busy, unreachable): the leg
/// is released in one commit, then the user who asked for it receives `error` as an
/// [`ErrorEvent`] with the call as they see it after (see `crate::core::error_event`).
/// Only a leg still ringing can fail; one released or answered meanwhile is an error here
/// (the switch event came for a call that moved on).
pub(crate) fn remote_failed(
    store: &mut Store,
    dir: &Directory,
    id: &CallId,
    number: &str,
    error: CoreError,
) -> CoreResult<()> {
    let index = external_party(store, id, number)?;
    let party = &store.call(id)?.parties[index];
    if party.state != CallState::Ringing {
        return Err(CoreError::Precondition(format!(
            "{number} is {} on call {id}, not ringing",
            party.state
        )));
    }
    let requested = party.requested.clone();
    store.commit(dir, std::slice::from_ref(id), |s| {
        s.call_mut(id)?.parties[index].state = CallState::Released;
        Ok(vec![id.clone()])
    })?;
    let Some(requested) = requested else {
        return Ok(());
    };
    let Some(user) = dir.user(&requested.user) else {
        return Ok(());
    };
    let call = store.view_of(dir, id, &user.name).ok();
    store.log.append_error(ErrorEvent {
        sequence: 0,
        user: user.to_ref(),
        operation: Some(requested.operation),
        error,
        call,
        committed_at: std::time::UNIX_EPOCH,
    });
    Ok(())
}

/// An outside party hung up.
pub(crate) fn remote_released(
    store: &mut Store,
    dir: &Directory,
    id: &CallId,
    number: &str,
) -> CoreResult<()> {
    let index = external_party(store, id, number)?;
    store.commit(dir, std::slice::from_ref(id), |s| {
        s.call_mut(id)?.parties[index].state = CallState::Released;
        Ok(vec![id.clone()])
    })?;
    Ok(())
}
