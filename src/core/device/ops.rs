//! The mutations behind device and voice-channel operations (spec §6.5, §6.6).

use std::sync::Arc;

use crate::core::devices::{AgentState, DeviceOperation, MonitorKind, Monitoring};
use crate::core::directory::{Directory, Role, User};
use crate::core::error::{CoreError, CoreResult};
use crate::core::model::{CallId, feature};
use crate::core::operation::{DeviceRequest, MonitorTarget};
use crate::core::store::Store;

/// What the core must tell the switch after a device operation committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SwitchFollowUp {
    /// Nothing.
    None,
    /// The line settings (do-not-disturb, forwarding) changed.
    Line,
    /// An after-call-work with a wrap-up time started at this generation.
    WrapUp(u64),
}

/// Carries out a device operation for `user`, already checked against features.
pub(crate) fn execute(
    store: &mut Store,
    dir: &Directory,
    user: &User,
    request: DeviceRequest,
) -> CoreResult<SwitchFollowUp> {
    let me: Arc<str> = user.name.clone();
    let operation = request.operation();
    let device = store.device(&me);
    let view = store
        .device_view(dir, &me)
        .ok_or_else(|| CoreError::NotFound(format!("user {me} not found")))?;
    let agent_state_op = matches!(
        operation,
        DeviceOperation::Ready
            | DeviceOperation::NotReady
            | DeviceOperation::AfterCallWork
            | DeviceOperation::AuxWork
    );
    if agent_state_op && !device.active {
        return Err(CoreError::Precondition(format!(
            "user {me} has no contact-center session: StartContactCenterSession first"
        )));
    }
    let session_op = matches!(
        operation,
        DeviceOperation::StartContactCenterSession | DeviceOperation::EndContactCenterSession
    );
    let monitoring_op = matches!(
        operation,
        DeviceOperation::ListenIn
            | DeviceOperation::Coach
            | DeviceOperation::BargeIn
            | DeviceOperation::CancelSupervisorMonitoring
    );
    if monitoring_op {
        require_supervisor(dir, user, operation)?;
    }
    if !session_op && !agent_state_op && !view.capabilities.contains(&operation) {
        return Err(CoreError::Precondition(format!(
            "{operation} is not possible on the device of user {me} now"
        )));
    }
    let users = [me.clone()];
    let mut follow_up = SwitchFollowUp::None;
    match request {
        DeviceRequest::StartContactCenterSession {
            place,
            device_path,
            queue,
            login_code,
            ..
        } => {
            check_session_start(user, place, device_path, queue, login_code)?;
            store.commit_with_users(dir, &[], &users, |s| {
                let device = s.device_mut(&me);
                if !device.active {
                    device.active = true;
                    device.agent_state = AgentState::NotReady;
                    device.work_mode = None;
                    device.generation += 1;
                }
                Ok(vec![])
            })?;
        }
        DeviceRequest::EndContactCenterSession => {
            store.commit_with_users(dir, &[], &users, |s| {
                let device = s.device_mut(&me);
                device.active = false;
                device.agent_state = AgentState::NotReady;
                device.work_mode = None;
                device.generation += 1;
                Ok(vec![])
            })?;
        }
        DeviceRequest::Ready { work_mode } => {
            set_state(store, dir, &me, AgentState::Ready, work_mode)?
        }
        DeviceRequest::NotReady => set_state(store, dir, &me, AgentState::NotReady, None)?,
        DeviceRequest::AuxWork => set_state(store, dir, &me, AgentState::AuxWork, None)?,
        DeviceRequest::AfterCallWork { wrap_up } => {
            set_state(store, dir, &me, AgentState::AfterCallWork, None)?;
            if wrap_up.is_some() {
                follow_up = SwitchFollowUp::WrapUp(store.device(&me).generation);
            }
        }
        DeviceRequest::DoNotDisturbOn | DeviceRequest::DoNotDisturbOff => {
            let on = operation == DeviceOperation::DoNotDisturbOn;
            store.commit_with_users(dir, &[], &users, |s| {
                s.device_mut(&me).dnd = on;
                Ok(vec![])
            })?;
            follow_up = SwitchFollowUp::Line;
        }
        DeviceRequest::ForwardCallsOn { destination } => {
            if destination == *user.phone_number {
                return Err(CoreError::invalid(
                    "destination",
                    "a number cannot forward to itself",
                ));
            }
            store.commit_with_users(dir, &[], &users, |s| {
                s.device_mut(&me).forward_to = Some(destination);
                Ok(vec![])
            })?;
            follow_up = SwitchFollowUp::Line;
        }
        DeviceRequest::ForwardCallsOff => {
            store.commit_with_users(dir, &[], &users, |s| {
                s.device_mut(&me).forward_to = None;
                Ok(vec![])
            })?;
            follow_up = SwitchFollowUp::Line;
        }
        DeviceRequest::Monitor {
            kind,
            target,
            mode,
            scope,
        } => monitor(store, dir, user, kind, target, mode, scope)?,
        DeviceRequest::CancelSupervisorMonitoring => cancel_monitoring(store, dir, &me)?,
    }
    Ok(follow_up)
}

fn set_state(
    store: &mut Store,
    dir: &Directory,
    me: &Arc<str>,
    state: AgentState,
    work_mode: Option<crate::core::devices::WorkMode>,
) -> CoreResult<()> {
    store.commit_with_users(dir, &[], std::slice::from_ref(me), |s| {
        let device = s.device_mut(me);
        device.agent_state = state;
        device.work_mode = work_mode;
        device.generation += 1;
        Ok(vec![])
    })
}

/// Ends an after-call-work whose wrap-up time is up, unless the agent moved on.
pub(crate) fn wrap_up_ended(
    store: &mut Store,
    dir: &Directory,
    user: &str,
    generation: u64,
    next: AgentState,
) -> CoreResult<()> {
    let user = dir
        .user(user)
        .ok_or_else(|| CoreError::NotFound(format!("user {user} not found")))?;
    let device = store.device(&user.name);
    if device.generation != generation || device.agent_state != AgentState::AfterCallWork {
        return Ok(());
    }
    set_state(store, dir, &user.name, next, None)
}

fn monitor(
    store: &mut Store,
    dir: &Directory,
    user: &User,
    kind: MonitorKind,
    target: MonitorTarget,
    mode: crate::core::devices::MonitorMode,
    scope: crate::core::devices::MonitorScope,
) -> CoreResult<()> {
    let found = match &target {
        MonitorTarget::Device(id) => dir.user_by_device(id),
        MonitorTarget::PhoneNumber(number) => dir.user_by_number(number),
    };
    let target_user = found
        .filter(|t| t.contact_center == user.contact_center)
        .ok_or_else(|| match &target {
            MonitorTarget::Device(id) => CoreError::NotFound(format!("device {id} not found")),
            MonitorTarget::PhoneNumber(n) => {
                CoreError::NotFound(format!("phone number {n} not found"))
            }
        })?;
    if target_user.name == user.name {
        return Err(CoreError::invalid(
            "targetDeviceUri",
            "a supervisor cannot monitor their own device",
        ));
    }
    if let Some((other, _)) = store.devices.iter().find(|(_, d)| {
        d.monitoring
            .as_ref()
            .is_some_and(|m| m.target == target_user.name)
    }) {
        return Err(CoreError::InUse(format!(
            "the device of {} is already monitored by {other}",
            target_user.name
        )));
    }
    let me = user.name.clone();
    let monitored = target_user.name.clone();
    let calls: Vec<CallId> = store
        .user_calls
        .get(&monitored)
        .cloned()
        .unwrap_or_default();
    let monitoring = Monitoring {
        kind,
        mode,
        scope,
        target: monitored.clone(),
        target_device_id: target_user.device_id.clone(),
    };
    store.commit_with_users(dir, &calls, &[me.clone(), monitored], |s| {
        let device = s.device_mut(&me);
        device.monitoring = Some(monitoring);
        device.next_call_taken = false;
        Ok(calls.clone())
    })
}

/// Checks the supervisor role and the monitoring feature.
fn require_supervisor(dir: &Directory, user: &User, operation: DeviceOperation) -> CoreResult<()> {
    if !dir.has_feature(&user.contact_center, feature::SUPERVISOR_MONITORING) {
        return Err(CoreError::FeatureMissing {
            operation: operation.to_string(),
            feature: feature::SUPERVISOR_MONITORING,
            contact_center: user.contact_center.to_string(),
        });
    }
    if !user.roles.contains(&Role::Supervisor) {
        return Err(CoreError::PermissionDenied(format!(
            "user {} is not a supervisor",
            user.name
        )));
    }
    Ok(())
}

fn cancel_monitoring(store: &mut Store, dir: &Directory, me: &Arc<str>) -> CoreResult<()> {
    let legs: Vec<CallId> = store
        .user_calls
        .get(me)
        .into_iter()
        .flatten()
        .filter(|id| {
            store
                .calls
                .get(*id)
                .and_then(|c| c.party_of(me).map(|i| c.parties[i].monitor.is_some()))
                .unwrap_or(false)
        })
        .cloned()
        .collect();
    store.commit_with_users(dir, &legs, std::slice::from_ref(me), |s| {
        let device = s.device_mut(me);
        device.monitoring = None;
        device.next_call_taken = false;
        for id in &legs {
            let call = s.call_mut(id)?;
            if let Some(i) = call.party_of(me) {
                call.parties[i].state = crate::core::model::CallState::Released;
            }
        }
        Ok(legs.clone())
    })
}

/// Checks the optional parameters of StartContactCenterSession against what the embedded
/// switch has (see [`DeviceRequest::StartContactCenterSession`]); nothing is changed when
/// one is refused.
fn check_session_start(
    user: &User,
    place: Option<String>,
    device_path: Option<String>,
    queue: Option<String>,
    login_code: Option<String>,
) -> CoreResult<()> {
    if let Some(place) = place.filter(|p| **p != *user.phone_number) {
        return Err(CoreError::NotFound(format!("place {place} not found")));
    }
    if let Some(path) = device_path {
        let id = path
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default();
        if id != &*user.device_id {
            return Err(CoreError::NotFound(format!("device {path} not found")));
        }
    }
    if queue.is_some() {
        return Err(CoreError::invalid(
            "queue",
            "the embedded switch has no ACD queues to log in to",
        ));
    }
    if login_code.is_some() {
        return Err(CoreError::invalid(
            "loginCode",
            "the embedded switch has no agent login codes",
        ));
    }
    Ok(())
}
