//! Scenario tests of the core without any front-end or socket.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::*;
use crate::backend::embedded::EmbeddedSwitch;
use crate::config::Config;

fn core() -> (CallControl, mpsc::UnboundedReceiver<SwitchEvent>) {
    let config = Config::demo();
    let directory = config.directory().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let numbers = directory
        .phone_numbers()
        .map(str::to_owned)
        .collect::<Vec<_>>();
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
    assert_eq!(a2_view.participants[0].phone_number, "15002");
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
    assert_eq!(call.participants[0].e164_number, "+19165550104");
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
    let first = start.watch.next().await.unwrap().unwrap();
    let second = start.watch.next().await.unwrap().unwrap();
    assert_eq!(
        (first.sequence, &*first.call.user.name, first.call.state),
        (1, "agent1", CallState::Dialing)
    );
    assert_eq!(
        (second.sequence, &*second.call.user.name, second.call.state),
        (2, "agent2", CallState::Ringing)
    );
}
