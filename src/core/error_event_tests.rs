//! Asynchronous errors of the embedded switch (`error_event`): a leg to an outside number
//! that fails after the operation that created it was accepted.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::*;
use crate::backend::embedded::EmbeddedSwitch;
use crate::config::Config;
use crate::core::port::SwitchEvent;

const BUSY: &str = "9165550486";
const UNREACHABLE: &str = "9165550404";
const ANSWERS: &str = "9165550104";

/// A core over an embedded switch whose outside world fails [`BUSY`] and [`UNREACHABLE`].
/// Outside a runtime the switch reports at once, into the returned receiver.
fn core() -> (CallControl, mpsc::UnboundedReceiver<SwitchEvent>) {
    let directory = Config::demo().directory().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let switch = EmbeddedSwitch::new(directory.phone_numbers(), Duration::ZERO, tx)
        .with_failing_numbers([BUSY.to_owned()], [UNREACHABLE.to_owned()]);
    let core = CallControl::new(directory, Arc::new(switch), CoreLimits::default());
    (core, rx)
}

fn user(core: &CallControl, name: &str) -> Principal {
    core.directory()
        .authenticate_basic(name, "demo", None)
        .unwrap()
}

fn dial(core: &CallControl, who: &Principal, to: &str) -> CallSnapshot {
    let request = DialRequest {
        destination: Destination::to_number(to),
        device_id: None,
    };
    core.dial(who, request).unwrap()
}

/// Applies everything the switch reported so far.
fn run_switch(core: &CallControl, rx: &mut mpsc::UnboundedReceiver<SwitchEvent>) {
    while let Ok(event) = rx.try_recv() {
        core.apply_switch_event(event);
    }
}

/// Every event already committed for the watch.
fn drain(watch: &mut EventWatch) -> Vec<Event> {
    let mut events = Vec::new();
    while let Some(Ok(Some(event))) = futures::FutureExt::now_or_never(watch.next()) {
        events.push(event);
    }
    events
}

fn errors(events: &[Event]) -> Vec<Arc<ErrorEvent>> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Error(error) => Some(error.clone()),
            _ => None,
        })
        .collect()
}

fn watch(core: &CallControl, name: &str) -> EventWatch {
    core.watch_events(WatchScope::User(name.into())).unwrap()
}

#[test]
fn a_dial_to_a_busy_number_is_accepted_then_released_then_an_error_to_the_dialer_only() {
    let (core, mut rx) = core();
    let a1 = user(&core, "agent1");
    let (mut mine, mut theirs) = (watch(&core, "agent1"), watch(&core, "agent2"));
    let call = dial(&core, &a1, BUSY);
    assert_eq!(
        call.state,
        CallState::Dialing,
        "the Dial itself is accepted"
    );
    let before_failure = core.last_sequence();
    run_switch(&core, &mut rx);

    let events = drain(&mut mine);
    let last_two: Vec<u64> = events.iter().rev().take(2).map(Event::sequence).collect();
    let [Event::Call(released), Event::Error(error)] = &events[events.len() - 2..] else {
        panic!("the release, then the error: {events:#?}");
    };
    assert_eq!(last_two, [released.sequence + 1, released.sequence]);
    assert_eq!(released.call.state, CallState::Released);
    assert_eq!(released.notification, NotificationType::StatusChange);
    assert_eq!(&*error.user.name, "agent1");
    assert_eq!(error.operation, Some(Operation::Dial));
    assert_eq!(error.error, CoreError::InUse(format!("{BUSY} is busy")));
    assert_eq!(error.error.status_code(), 19);
    let seen = error.call.as_ref().expect("the error names its call");
    assert_eq!((&seen.id, seen.state), (&call.id, CallState::Released));
    assert!(errors(&drain(&mut theirs)).is_empty(), "agent2 is not told");

    // A resume from before the failure replays the error in its place.
    let resumed = core
        .watch(
            WatchScope::User("agent1".into()),
            Some(ResumePoint::sequence(before_failure)),
        )
        .unwrap();
    let mut resumed = resumed.watch;
    let replayed: Vec<CallWatchEvent> = std::iter::from_fn(|| {
        futures::FutureExt::now_or_never(resumed.next()).and_then(|r| r.ok().flatten())
    })
    .collect();
    assert_eq!(
        replayed,
        [
            CallWatchEvent::Call(released.clone()),
            CallWatchEvent::Error(error.clone())
        ]
    );
}

#[test]
fn a_consult_to_an_unreachable_number_ends_the_consult_and_leaves_the_original_held() {
    let (core, mut rx) = core();
    let a1 = user(&core, "agent1");
    let original = dial(&core, &a1, ANSWERS).id;
    run_switch(&core, &mut rx);
    let mut mine = watch(&core, "agent1");
    let destination = Destination::to_number(UNREACHABLE);
    let initiate = CallOperation::InitiateTransfer(destination);
    core.execute(&a1, &original, initiate).unwrap();
    let consult = drain(&mut mine)
        .iter()
        .find_map(|e| match e {
            Event::Call(e) if e.call.call_type == CallType::Consult => Some(e.call.id.clone()),
            _ => None,
        })
        .expect("a consult call was dialed");
    run_switch(&core, &mut rx);

    let errors = errors(&drain(&mut mine));
    let [error] = errors.as_slice() else {
        panic!("one error: {errors:#?}");
    };
    assert_eq!(error.operation, Some(Operation::InitiateTransfer));
    assert_eq!(error.error.status_code(), 6);
    assert_eq!(error.error.kind(), ErrorKind::NotFound);
    assert_eq!(
        error.error.to_string(),
        format!("{UNREACHABLE} cannot be reached")
    );
    let seen = error.call.as_ref().unwrap();
    assert_eq!((&seen.id, seen.state), (&consult, CallState::Released));
    let held = core.get_call(&a1, &original).unwrap();
    assert_eq!(held.state, CallState::Held);
    assert!(held.capabilities.contains(&Operation::Retrieve), "{held:?}");
}

#[test]
fn a_single_step_conference_to_a_busy_number_keeps_the_call_and_tells_the_requester() {
    let (core, mut rx) = core();
    let (a1, a2) = (user(&core, "agent1"), user(&core, "agent2"));
    let call = dial(&core, &a1, "15001").id;
    core.execute(&a2, &call, CallOperation::Answer).unwrap();
    let (mut mine, mut theirs) = (watch(&core, "agent1"), watch(&core, "agent2"));
    let add = CallOperation::SingleStepConference(Destination::to_number(BUSY));
    core.execute(&a1, &call, add).unwrap();
    run_switch(&core, &mut rx);

    let errors_a1 = errors(&drain(&mut mine));
    assert_eq!(errors_a1.len(), 1, "{errors_a1:#?}");
    assert_eq!(
        errors_a1[0].operation,
        Some(Operation::SingleStepConference)
    );
    let seen = errors_a1[0].call.as_ref().unwrap();
    assert_eq!(seen.state, CallState::Established);
    assert!(!seen.participants.iter().any(|p| &*p.phone_number == BUSY));
    assert!(errors(&drain(&mut theirs)).is_empty(), "agent2 is not told");
    assert_eq!(
        core.get_call(&a2, &call).unwrap().state,
        CallState::Established
    );
}

#[test]
fn a_single_step_transfer_to_a_busy_number_ends_the_call_and_tells_the_transferrer() {
    let (core, mut rx) = core();
    let (a1, a2) = (user(&core, "agent1"), user(&core, "agent2"));
    let call = dial(&core, &a1, "15001").id;
    core.execute(&a2, &call, CallOperation::Answer).unwrap();
    let mut mine = watch(&core, "agent1");
    let transfer = CallOperation::SingleStepTransfer(Destination::to_number(BUSY));
    core.execute(&a1, &call, transfer).unwrap();
    run_switch(&core, &mut rx);

    let errors = errors(&drain(&mut mine));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].operation, Some(Operation::SingleStepTransfer));
    assert_eq!(
        core.get_call(&a2, &call).unwrap().state,
        CallState::Released,
        "the transferred party is left alone: the call ends"
    );
}

#[test]
fn a_leg_released_before_its_failure_arrives_fails_silently() {
    let (core, mut rx) = core();
    let a1 = user(&core, "agent1");
    let call = dial(&core, &a1, BUSY).id;
    core.execute(&a1, &call, CallOperation::Hangup).unwrap();
    let mut mine = watch(&core, "agent1");
    let last = core.last_sequence();
    run_switch(&core, &mut rx);
    assert_eq!(core.last_sequence(), last, "nothing is committed");
    assert!(drain(&mut mine).is_empty());
}
