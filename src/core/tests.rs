//! Scenario tests of the core without any front-end or socket.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::*;
use crate::backend::embedded::EmbeddedSwitch;
use crate::config::Config;
use crate::core::port::SwitchEvent;

fn core() -> (CallControl, mpsc::UnboundedReceiver<SwitchEvent>) {
    let config = Config::demo();
    let directory = config.directory().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let numbers = directory.phone_numbers();
    let switch = Arc::new(EmbeddedSwitch::new(numbers, Duration::ZERO, tx));
    (
        CallControl::new(directory, switch, CoreLimits::default()),
        rx,
    )
}

fn agent(core: &CallControl, name: &str) -> Principal {
    core.directory()
        .authenticate_basic(name, "demo", None)
        .unwrap()
}

fn dial(core: &CallControl, who: &Principal, to: &str) -> CallSnapshot {
    core.dial(
        who,
        DialRequest {
            destination: Destination::to_number(to),
            device_id: None,
        },
    )
    .unwrap()
}

#[test]
fn dial_answer_record_hold_and_consult_transfer() {
    let (core, _rx) = core();
    let (a1, a2, a3) = (
        agent(&core, "agent1"),
        agent(&core, "agent2"),
        agent(&core, "agent3"),
    );
    let call = dial(&core, &a1, "15001");
    assert_eq!(call.state, CallState::Dialing);
    let id = call.id.clone();
    assert_eq!(core.get_call(&a2, &id).unwrap().state, CallState::Ringing);
    let answered = core.execute(&a2, &id, CallOperation::Answer).unwrap();
    assert_eq!(answered.state, CallState::Established);
    assert_eq!(
        core.get_call(&a1, &id).unwrap().state,
        CallState::Established
    );

    let rec = core
        .execute(&a1, &id, CallOperation::StartCallRecording)
        .unwrap();
    assert_eq!(rec.recording_state, Some(RecordingState::Recording));
    assert_eq!(
        rec.user_data.get("GSIP_RECORD"),
        Some(&UserDataValue::from("ON"))
    );
    let stopped = core
        .execute(&a1, &id, CallOperation::StopCallRecording)
        .unwrap();
    assert!(
        stopped
            .capabilities
            .contains(&Operation::StartCallRecording)
    );

    let held = core.execute(&a1, &id, CallOperation::Hold).unwrap();
    assert_eq!(held.state, CallState::Held);
    core.execute(&a1, &id, CallOperation::Retrieve).unwrap();

    core.execute(
        &a1,
        &id,
        CallOperation::InitiateTransfer(Destination::to_number("15002")),
    )
    .unwrap();
    let consult = core.list_calls(&a3).unwrap().pop().unwrap();
    assert_eq!(consult.call_type, CallType::Consult);
    assert_eq!(consult.parent_call_id.as_ref(), Some(&id));
    core.execute(&a3, &consult.id, CallOperation::Answer)
        .unwrap();
    let original = core.get_call(&a1, &id).unwrap();
    assert!(original.capabilities.contains(&Operation::CompleteTransfer));
    let done = core
        .execute(
            &a1,
            &consult.id,
            CallOperation::CompleteTransfer { consult: None },
        )
        .unwrap();
    assert_eq!(done.state, CallState::Released);
    assert!(core.list_calls(&a1).unwrap().is_empty());
    let a2_view = core.get_call(&a2, &id).unwrap();
    assert_eq!(&*a2_view.participants[0].phone_number, "15002");
    let a3_view = core.get_call(&a3, &id).unwrap();
    assert_eq!(a3_view.state, CallState::Established);
}

#[test]
fn refusals_change_nothing() {
    let (core, _rx) = core();
    let (a1, a2, a3) = (
        agent(&core, "agent1"),
        agent(&core, "agent2"),
        agent(&core, "agent3"),
    );
    let id = dial(&core, &a1, "15001").id;
    let before = core.last_sequence();
    let err = core.execute(&a1, &id, CallOperation::Hold).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    let err = core.execute(&a3, &id, CallOperation::Hangup).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    let err = core
        .execute(&a1, &CallId::new("nope"), CallOperation::Hangup)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = core
        .execute(
            &a2,
            &id,
            CallOperation::SingleStepTransfer(Destination::default()),
        )
        .unwrap_err();
    assert_eq!(err, CoreError::MissingParameter("destination"));
    assert_eq!(core.last_sequence(), before);

    let basic = agent(&core, "basic1");
    let ext = dial(&core, &basic, "9165550104");
    let err = core
        .execute(&basic, &ext.id, CallOperation::StartCallRecording)
        .unwrap_err();
    assert_eq!(err.status_code(), 3);
}

#[test]
fn external_parties_answer_through_the_switch() {
    let (core, mut rx) = core();
    let a1 = agent(&core, "agent1");
    let call = dial(&core, &a1, "9165550104");
    assert_eq!(call.call_type, CallType::Outbound);
    assert_eq!(&*call.participants[0].e164_number, "+19165550104");
    assert_eq!(
        call.participants[0].formatted_phone_number(),
        "(916) 555-0104"
    );
    core.apply_switch_event(rx.try_recv().unwrap());
    assert_eq!(
        core.get_call(&a1, &call.id).unwrap().state,
        CallState::Established
    );
}

#[test]
fn conference_and_removal() {
    let (core, _rx) = core();
    let (a1, a2, a3) = (
        agent(&core, "agent1"),
        agent(&core, "agent2"),
        agent(&core, "agent3"),
    );
    let id = dial(&core, &a1, "15001").id;
    core.execute(&a2, &id, CallOperation::Answer).unwrap();
    core.execute(
        &a1,
        &id,
        CallOperation::InitiateConference(Destination::to_number("15002")),
    )
    .unwrap();
    let consult = core.list_calls(&a3).unwrap().pop().unwrap();
    core.execute(&a3, &consult.id, CallOperation::Answer)
        .unwrap();
    let conf = core
        .execute(
            &a1,
            &id,
            CallOperation::CompleteConference { consult: None },
        )
        .unwrap();
    assert_eq!(conf.state, CallState::Established);
    assert_eq!(conf.participants.len(), 2);
    assert!(
        conf.capabilities
            .contains(&Operation::RemoveParticipantFromConference)
    );
    let after = core
        .execute(
            &a1,
            &id,
            CallOperation::RemoveParticipantFromConference {
                participant: "15002".into(),
            },
        )
        .unwrap();
    assert_eq!(after.participants.len(), 1);
    assert_eq!(core.get_call(&a3, &id).unwrap().state, CallState::Released);
}

#[tokio::test]
async fn watch_sees_both_sides_of_a_dial_in_order() {
    let (core, _rx) = core();
    let a1 = agent(&core, "agent1");
    let service = core
        .directory()
        .authenticate_bearer("demo-token", None)
        .unwrap();
    let scope = core.watch_scope(&service, true).unwrap();
    let mut start = core.watch(scope, None).unwrap();
    assert_eq!(start.snapshot.as_ref().map(Vec::len), Some(0));
    dial(&core, &a1, "15001");
    let mut next = async || match start.watch.next().await.unwrap().unwrap() {
        CallWatchEvent::Call(event) => event,
        CallWatchEvent::Error(error) => panic!("no error expected: {error:?}"),
    };
    let first = next().await;
    let second = next().await;
    assert_eq!(
        (first.sequence, &*first.call.user.name, first.call.state),
        (1, "agent1", CallState::Dialing)
    );
    assert_eq!(
        (second.sequence, &*second.call.user.name, second.call.state),
        (2, "agent2", CallState::Ringing)
    );
}

fn device(
    core: &CallControl,
    who: &Principal,
    request: DeviceRequest,
) -> CoreResult<DeviceSnapshot> {
    core.device_operation(who, None, request)
}

#[test]
fn agent_states_and_session() {
    let (core, _rx) = core();
    let a1 = agent(&core, "agent1");
    let ready = device(
        &core,
        &a1,
        DeviceRequest::Ready {
            work_mode: Some(WorkMode::ManualIn),
        },
    )
    .unwrap();
    assert_eq!(
        (ready.agent_state, ready.work_mode),
        (AgentState::Ready, Some(WorkMode::ManualIn))
    );
    let acw = device(&core, &a1, DeviceRequest::AfterCallWork { wrap_up: None }).unwrap();
    assert_eq!(acw.agent_state, AgentState::AfterCallWork);
    let ended = device(&core, &a1, DeviceRequest::EndContactCenterSession).unwrap();
    assert!(!ended.active);
    let err = device(&core, &a1, DeviceRequest::NotReady).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    let err = core
        .dial(
            &a1,
            DialRequest {
                destination: Destination::to_number("15001"),
                device_id: None,
            },
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    let started = device(
        &core,
        &a1,
        DeviceRequest::StartContactCenterSession {
            channels: vec!["voice".into()],
            place: None,
            device_path: None,
            queue: None,
            login_code: None,
        },
    );
    assert!(started.unwrap().active);
}

#[test]
fn do_not_disturb_and_forwarding_route_calls() {
    let (core, _rx) = core();
    let (a1, a2, a3) = (
        agent(&core, "agent1"),
        agent(&core, "agent2"),
        agent(&core, "agent3"),
    );
    device(&core, &a2, DeviceRequest::DoNotDisturbOn).unwrap();
    let to_a2 = || DialRequest {
        destination: Destination::to_number("15001"),
        device_id: None,
    };
    let err = core.dial(&a1, to_a2()).unwrap_err();
    assert_eq!(
        (err.kind(), err.status_code()),
        (ErrorKind::FailedPrecondition, 19)
    );
    assert!(core.list_calls(&a1).unwrap().is_empty());
    device(&core, &a2, DeviceRequest::DoNotDisturbOff).unwrap();
    let fwd = device(
        &core,
        &a2,
        DeviceRequest::ForwardCallsOn {
            destination: "15002".into(),
        },
    )
    .unwrap();
    assert_eq!(fwd.forward_to.as_deref(), Some("15002"));
    assert!(fwd.capabilities.contains(&DeviceOperation::ForwardCallsOff));
    let call = core.dial(&a1, to_a2()).unwrap();
    assert_eq!(&*call.dnis, "15001");
    assert_eq!(core.list_calls(&a3).unwrap()[0].state, CallState::Ringing);
    assert!(core.list_calls(&a2).unwrap().is_empty());
}

#[test]
fn supervisor_listens_in_barges_in_mutes_and_cancels() {
    let (core, _rx) = core();
    let (a1, a2, sup) = (
        agent(&core, "agent1"),
        agent(&core, "agent2"),
        agent(&core, "supervisor1"),
    );
    let id = dial(&core, &a1, "15001").id;
    core.execute(&a2, &id, CallOperation::Answer).unwrap();
    let listen = DeviceRequest::Monitor {
        kind: MonitorKind::ListenIn,
        target: MonitorTarget::PhoneNumber("15000".into()),
        mode: MonitorMode::AllCalls,
        scope: MonitorScope::Call,
    };
    // Agents may not monitor.
    assert_eq!(
        device(&core, &a2, listen.clone()).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    let dev = device(&core, &sup, listen.clone()).unwrap();
    assert_eq!(
        dev.monitoring.as_ref().map(|m| m.kind),
        Some(MonitorKind::ListenIn)
    );
    assert!(
        dev.capabilities
            .contains(&DeviceOperation::CancelSupervisorMonitoring)
    );
    let leg = core.list_calls(&sup).unwrap().pop().unwrap();
    assert!(leg.monitoring && leg.muted);
    assert!(leg.capabilities.contains(&Operation::SwitchToBargeIn));
    let agent_view = core.get_call(&a1, &id).unwrap();
    assert!(agent_view.supervisor_listening_in);
    assert_eq!(
        agent_view.participants.len(),
        1,
        "a silent supervisor is not a participant"
    );

    let barge = core
        .execute(&sup, &id, CallOperation::SwitchToBargeIn)
        .unwrap();
    assert!(!barge.muted);
    let agent_view = core.get_call(&a1, &id).unwrap();
    assert!(!agent_view.supervisor_listening_in);
    assert_eq!(agent_view.participants.len(), 2);
    core.execute(&sup, &id, CallOperation::MuteMonitoredUser)
        .unwrap();
    assert!(core.get_call(&a1, &id).unwrap().monitored_user_muted);
    core.execute(&sup, &id, CallOperation::UnmuteMonitoredUser)
        .unwrap();
    assert!(!core.get_call(&a1, &id).unwrap().monitored_user_muted);

    // A second supervisor on the same device is refused.
    let sup2 = agent(&core, "supervisor2");
    let err = device(&core, &sup2, listen).unwrap_err();
    assert_eq!(
        (err.kind(), err.status_code()),
        (ErrorKind::FailedPrecondition, 19)
    );

    let cancelled = device(&core, &sup, DeviceRequest::CancelSupervisorMonitoring).unwrap();
    assert!(cancelled.monitoring.is_none());
    assert_eq!(core.get_call(&sup, &id).unwrap().state, CallState::Released);
    assert_eq!(core.get_call(&a1, &id).unwrap().participants.len(), 1);
}

#[test]
fn next_call_monitoring_joins_the_next_call_and_ends_with_it() {
    let (core, _rx) = core();
    let (a1, a2, sup) = (
        agent(&core, "agent1"),
        agent(&core, "agent2"),
        agent(&core, "supervisor1"),
    );
    let listen = DeviceRequest::Monitor {
        kind: MonitorKind::Coach,
        target: MonitorTarget::PhoneNumber("15000".into()),
        mode: MonitorMode::NextCall,
        scope: MonitorScope::Agent,
    };
    device(&core, &sup, listen).unwrap();
    let id = dial(&core, &a1, "15001").id;
    assert!(
        core.list_calls(&sup).unwrap().is_empty(),
        "not before the call is established"
    );
    core.execute(&a2, &id, CallOperation::Answer).unwrap();
    let leg = core.list_calls(&sup).unwrap().pop().unwrap();
    assert_eq!(leg.id, id);
    core.execute(&a1, &id, CallOperation::Hangup).unwrap();
    assert!(core.list_devices(&sup).unwrap()[0].monitoring.is_none());
    assert_eq!(core.get_call(&sup, &id).unwrap().state, CallState::Released);
}

#[test]
fn a_supervisor_mute_ends_with_the_monitoring() {
    let (core, _rx) = core();
    let (a1, a2, sup) = (
        agent(&core, "agent1"),
        agent(&core, "agent2"),
        agent(&core, "supervisor1"),
    );
    let id = dial(&core, &a1, "15001").id;
    core.execute(&a2, &id, CallOperation::Answer).unwrap();
    let barge_in = DeviceRequest::Monitor {
        kind: MonitorKind::BargeIn,
        target: MonitorTarget::PhoneNumber("15000".into()),
        mode: MonitorMode::AllCalls,
        scope: MonitorScope::Call,
    };
    device(&core, &sup, barge_in.clone()).unwrap();
    core.execute(&sup, &id, CallOperation::MuteMonitoredUser)
        .unwrap();
    assert!(core.get_call(&a1, &id).unwrap().monitored_user_muted);
    let mut watch = core
        .watch_events(WatchScope::User("agent1".into()))
        .unwrap();

    device(&core, &sup, DeviceRequest::CancelSupervisorMonitoring).unwrap();
    let view = core.get_call(&a1, &id).unwrap();
    assert!(
        !view.monitored_user_muted,
        "nobody is left to unmute the agent"
    );
    let mut told = false;
    while let Some(Ok(Some(event))) = futures::FutureExt::now_or_never(watch.next()) {
        if let Event::Call(event) = event {
            told |= event.notification == NotificationType::MonitoredUserMutedStateChange
                && !event.call.monitored_user_muted;
        }
    }
    assert!(told, "the agent is told");
    // A supervisor who starts monitoring again finds the agent unmuted.
    device(&core, &sup, barge_in).unwrap();
    let leg = core.get_call(&sup, &id).unwrap();
    assert!(leg.monitoring && !leg.monitored_user_muted);
    assert!(leg.capabilities.contains(&Operation::MuteMonitoredUser));
}
