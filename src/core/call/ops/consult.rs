//! Operations that span two calls or add a party: a new party's check, a consult's pair,
//! completing a transfer or conference, swapping a held call with an established one.

use std::sync::Arc;

use crate::core::capabilities::ConsultKind;
use crate::core::directory::Directory;
use crate::core::error::{CoreError, CoreResult};
use crate::core::model::{CallId, CallState};
use crate::core::store::{Endpoint, Store};

/// Checks a transfer or conference target: not the user, not already on the call.
pub(super) fn new_party(
    store: &Store,
    id: &CallId,
    me: &Arc<str>,
    target: Option<Endpoint>,
) -> CoreResult<Endpoint> {
    let target = target.ok_or(CoreError::MissingParameter("destination"))?;
    if store.call(id)?.active_party(&target).is_some() || target == Endpoint::Agent(me.clone()) {
        return Err(CoreError::invalid(
            "destination",
            format!("that party is already on call {id}"),
        ));
    }
    Ok(target)
}

/// Finds the (original, consult) pair of a consult the user started, from either call.
pub(super) fn consult_pair(
    store: &Store,
    id: &CallId,
    me: &str,
    named: Option<CallId>,
) -> CoreResult<(CallId, CallId, ConsultKind)> {
    let call = store.call(id)?;
    let pair = match (&call.consult, &call.parent) {
        (Some(c), _) if *c.initiator == *me => Some((id.clone(), c.call.clone(), c.kind)),
        (_, Some((parent, kind))) => Some((parent.clone(), id.clone(), *kind)),
        _ => None,
    };
    let (original, consult, kind) = pair.ok_or_else(|| {
        CoreError::invalid("consultCallUri", format!("call {id} has no consult call"))
    })?;
    if let Some(named) = named
        && named != consult
    {
        return Err(CoreError::invalid(
            "consultCallUri",
            format!("call {named} is not the consult call of call {original}"),
        ));
    }
    Ok((original, consult, kind))
}

pub(super) fn complete(
    store: &mut Store,
    dir: &Directory,
    me: &Arc<str>,
    original: &CallId,
    consult: &CallId,
    kind: ConsultKind,
) -> CoreResult<()> {
    let consult_call = store.call(consult)?;
    let mine_consult = consult_call.party_of(me).ok_or_else(|| {
        CoreError::invalid("consultCallUri", "the consult call is not the user's")
    })?;
    let mine_original = store.call(original)?.party_of(me).ok_or_else(|| {
        CoreError::invalid("consultCallUri", "the original call is not the user's")
    })?;
    let moving: Vec<(usize, Endpoint, CallState)> = consult_call
        .parties
        .iter()
        .enumerate()
        .filter(|(i, p)| *i != mine_consult && p.is_active())
        .map(|(i, p)| (i, p.endpoint.clone(), p.state))
        .collect();
    let order = match kind {
        ConsultKind::Transfer => vec![original.clone(), consult.clone()],
        ConsultKind::Conference => vec![consult.clone(), original.clone()],
    };
    store.commit(dir, &order.clone(), |s| {
        for (_, endpoint, state) in &moving {
            s.add_party(original, endpoint.clone(), *state)?;
        }
        let call = s.call_mut(consult)?;
        call.parties[mine_consult].state = CallState::Released;
        for (index, _, _) in &moving {
            call.parties[*index].state = CallState::Released;
        }
        let call = s.call_mut(original)?;
        call.consult = None;
        match kind {
            ConsultKind::Transfer => call.parties[mine_original].state = CallState::Released,
            ConsultKind::Conference => {
                call.parties[mine_original].state = CallState::Established;
                call.conference_owner = Some(me.clone());
            }
        }
        Ok(order)
    })?;
    Ok(())
}

pub(super) fn swap(
    store: &mut Store,
    dir: &Directory,
    id: &CallId,
    me: &Arc<str>,
    other: &CallId,
) -> CoreResult<()> {
    if other == id {
        return Err(CoreError::invalid(
            "otherCallUri",
            "a call cannot be swapped with itself",
        ));
    }
    let state_on = |call: &CallId| -> CoreResult<(usize, CallState)> {
        let c = store.call(call)?;
        let i = c.party_of(me).ok_or_else(|| {
            CoreError::invalid(
                "otherCallUri",
                format!("call {call} is not a call of user {me}"),
            )
        })?;
        Ok((i, c.parties[i].state))
    };
    let (mine, this_state) = state_on(id)?;
    let (theirs, other_state) = state_on(other)?;
    let (to_hold, hold_index, to_retrieve, retrieve_index) = match (this_state, other_state) {
        (CallState::Established, CallState::Held) => (id, mine, other, theirs),
        (CallState::Held, CallState::Established) => (other, theirs, id, mine),
        _ => {
            return Err(CoreError::invalid(
                "otherCallUri",
                format!("call {other} must be held while call {id} is established, or the reverse"),
            ));
        }
    };
    let order = vec![to_hold.clone(), to_retrieve.clone()];
    store.commit(dir, &order.clone(), |s| {
        s.call_mut(to_hold)?.parties[hold_index].state = CallState::Held;
        s.call_mut(to_retrieve)?.parties[retrieve_index].state = CallState::Established;
        Ok(order)
    })?;
    Ok(())
}
