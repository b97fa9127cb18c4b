//! The notification a release comes as (spec §7.1, §8.3): `StatusChange` + `Released` for
//! every party, even when the release also ends a recording or lifts a supervisor's mute.

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
    let switch = Arc::new(EmbeddedSwitch::new(
        directory.phone_numbers(),
        Duration::ZERO,
        tx,
    ));
    (
        CallControl::new(directory, switch, CoreLimits::default()),
        rx,
    )
}

fn user(core: &CallControl, name: &str) -> Principal {
    core.directory()
        .authenticate_basic(name, "demo", None)
        .unwrap()
}

fn established(core: &CallControl, a1: &Principal, a2: &Principal) -> CallId {
    let call = core
        .dial(
            a1,
            DialRequest {
                destination: Destination::to_number("15001"),
                device_id: None,
            },
        )
        .unwrap();
    core.execute(a2, &call.id, CallOperation::Answer).unwrap();
    call.id
}

/// Every call event already committed for the watch.
fn drain(watch: &mut EventWatch) -> Vec<Arc<CallEvent>> {
    let mut events = Vec::new();
    while let Some(Ok(Some(event))) = futures::FutureExt::now_or_never(watch.next()) {
        if let Event::Call(event) = event {
            events.push(event);
        }
    }
    events
}

/// The one event of `user` that releases `call`: fails if there is none or several.
fn release_of(events: &[Arc<CallEvent>], call: &CallId) -> NotificationType {
    let released: Vec<_> = events
        .iter()
        .filter(|e| &e.call.id == call && e.call.state == CallState::Released)
        .collect();
    assert_eq!(released.len(), 1, "one release event: {events:?}");
    released[0].notification
}

#[test]
fn hanging_up_a_recorded_call_is_a_status_change_for_both_parties() {
    let (core, _rx) = core();
    let (a1, a2) = (user(&core, "agent1"), user(&core, "agent2"));
    let id = established(&core, &a1, &a2);
    core.execute(&a1, &id, CallOperation::StartCallRecording)
        .unwrap();
    let mut w1 = core
        .watch_events(WatchScope::User("agent1".into()))
        .unwrap();
    let mut w2 = core
        .watch_events(WatchScope::User("agent2".into()))
        .unwrap();

    core.execute(&a2, &id, CallOperation::Hangup).unwrap();
    for (watch, who) in [(&mut w1, "agent1"), (&mut w2, "agent2")] {
        let events = drain(watch);
        assert_eq!(
            release_of(&events, &id),
            NotificationType::StatusChange,
            "{who}"
        );
        assert!(
            events
                .iter()
                .all(|e| e.notification != NotificationType::CallRecordingStateChange),
            "{who}: no recording notification for a release: {events:?}"
        );
    }
}

#[test]
fn a_released_monitoring_leg_whose_agent_was_muted_is_a_status_change() {
    let (core, _rx) = core();
    let (a1, a2, sup) = (
        user(&core, "agent1"),
        user(&core, "agent2"),
        user(&core, "supervisor1"),
    );
    let id = established(&core, &a1, &a2);
    let barge_in = DeviceRequest::Monitor {
        kind: MonitorKind::BargeIn,
        target: MonitorTarget::PhoneNumber("15000".into()),
        mode: MonitorMode::AllCalls,
        scope: MonitorScope::Call,
    };
    core.device_operation(&sup, None, barge_in).unwrap();
    core.execute(&sup, &id, CallOperation::MuteMonitoredUser)
        .unwrap();
    assert!(core.get_call(&sup, &id).unwrap().monitored_user_muted);
    let mut watches: Vec<_> = ["agent1", "agent2", "supervisor1"]
        .into_iter()
        .map(|name| core.watch_events(WatchScope::User(name.into())).unwrap())
        .collect();

    core.execute(&a1, &id, CallOperation::Hangup).unwrap();
    for (watch, who) in watches.iter_mut().zip(["agent1", "agent2", "supervisor1"]) {
        let events = drain(watch);
        assert_eq!(
            release_of(&events, &id),
            NotificationType::StatusChange,
            "{who}"
        );
    }
}
