//! Unit tests of the event stream: resume, lag, dispatch by scope, epochs and cluster
//! mode's apply and reset.

use super::*;
use crate::core::CoreError;
use crate::core::model::*;

fn event(user: &str) -> CallEvent {
    CallEvent {
        sequence: 0,
        notification: NotificationType::StatusChange,
        call: CallSnapshot {
            id: CallId::new("c"),
            conn_id: "".into(),
            state: CallState::Dialing,
            call_type: CallType::Internal,
            capabilities: vec![],
            participants: vec![],
            dnis: "".into(),
            ani: None,
            user_data: UserData::default(),
            duration_secs: 0,
            muted: false,
            recording_state: None,
            supervisor_listening_in: false,
            monitored_user_muted: false,
            monitoring: false,
            upstream_fields: None,
            parent_call_id: None,
            user: UserRef {
                name: user.into(),
                contact_center: "cc".into(),
                phone_number: "1".into(),
                device_id: "d".into(),
            },
        },
        digits: None,
        committed_at: std::time::UNIX_EPOCH,
    }
}

#[tokio::test]
async fn resume_returns_exactly_the_missed_events_in_scope() {
    let mut log = EventLog::new(10, 10);
    for user in ["a", "b", "a", "a"] {
        log.append(event(user));
    }
    let mut watch = log.watch(WatchScope::User("a".into()), Some(1)).unwrap();
    log.append(event("a"));
    let mut got = vec![];
    for _ in 0..3 {
        got.push(watch.next().await.unwrap().unwrap().sequence());
    }
    assert_eq!(got, vec![3, 4, 5]);
}

#[test]
fn resume_outside_history_asks_for_resync() {
    let mut log = EventLog::new(2, 10);
    for _ in 0..5 {
        log.append(event("a"));
    }
    // History holds 4 and 5: resuming after 3 works, after 2 does not.
    assert!(log.watch(WatchScope::All, Some(3)).is_ok());
    assert_eq!(
        log.watch(WatchScope::All, Some(2)).unwrap_err(),
        CoreError::HistoryGone {
            requested: 2,
            oldest: 4
        }
    );
    assert!(matches!(
        log.watch(WatchScope::All, Some(6)).unwrap_err(),
        CoreError::SequenceAhead { .. }
    ));
}

#[test]
fn a_resume_must_name_this_logs_epoch() {
    let (log, other) = (EventLog::new(10, 10), EventLog::new(10, 10));
    assert_ne!(log.epoch(), other.epoch(), "each log has its own epoch");
    let ours = ResumePoint {
        sequence: 3,
        epoch: Some(log.epoch().to_string()),
    };
    assert_eq!(log.resume_sequence(Some(&ours)), Ok(Some(3)));
    let theirs = ResumePoint {
        sequence: 3,
        epoch: Some(other.epoch().to_string()),
    };
    let refused = log.resume_sequence(Some(&theirs)).unwrap_err();
    assert!(
        matches!(refused, CoreError::EpochMismatch { .. }),
        "{refused}"
    );
    assert_eq!(refused.kind(), crate::core::ErrorKind::OutOfRange);
    // Without an epoch (older clients) the sequence is taken unchecked.
    assert_eq!(
        log.resume_sequence(Some(&ResumePoint::sequence(3))),
        Ok(Some(3))
    );
    assert_eq!(log.resume_sequence(None), Ok(None));
}

#[tokio::test]
async fn a_watcher_that_falls_behind_is_told_where_to_resume() {
    let mut log = EventLog::new(100, 2);
    let mut watch = log.watch(WatchScope::All, None).unwrap();
    log.append(event("a"));
    assert_eq!(watch.next().await.unwrap().unwrap().sequence(), 1);
    for _ in 0..5 {
        log.append(event("a"));
    }
    // It gets what its mailbox held (2 and 3), then where to resume from.
    assert_eq!(watch.next().await.unwrap().unwrap().sequence(), 2);
    assert_eq!(watch.next().await.unwrap().unwrap().sequence(), 3);
    assert_eq!(
        watch.next().await,
        Err(WatchError::Lagged { last_delivered: 3 })
    );
    // And it is no longer dispatched to.
    assert!(lock(&log.routes).by_key.is_empty());
}

#[tokio::test]
async fn a_busy_user_does_not_make_another_users_watcher_lag() {
    let mut log = EventLog::new(100, 2);
    let mut quiet = log.watch(WatchScope::User("a".into()), None).unwrap();
    let mut center = log
        .watch(WatchScope::ContactCenter("cc".into()), None)
        .unwrap();
    for _ in 0..10 {
        log.append(event("b"));
    }
    log.append(event("a"));
    assert_eq!(quiet.next().await.unwrap().unwrap().sequence(), 11);
    // The contact-center watcher sees every user, so it fell behind.
    assert_eq!(center.next().await.unwrap().unwrap().sequence(), 1);
    assert_eq!(center.next().await.unwrap().unwrap().sequence(), 2);
    assert_eq!(
        center.next().await,
        Err(WatchError::Lagged { last_delivered: 2 })
    );
}

#[test]
fn a_dropped_watch_leaves_the_dispatch_index() {
    let log = EventLog::new(10, 10);
    let a = log.watch(WatchScope::User("a".into()), None).unwrap();
    let b = log.watch(WatchScope::User("a".into()), None).unwrap();
    let all = log.watch(WatchScope::All, None).unwrap();
    assert_eq!(lock(&log.routes).by_key.len(), 2);
    drop((a, all));
    assert_eq!(lock(&log.routes).by_key.len(), 1);
    drop(b);
    assert!(lock(&log.routes).by_key.is_empty());
}

#[tokio::test]
async fn watches_end_when_the_log_is_dropped_after_their_queued_events() {
    let mut log = EventLog::new(10, 10);
    let mut watch = log.watch(WatchScope::All, None).unwrap();
    log.append(event("a"));
    drop(log);
    assert_eq!(watch.next().await.unwrap().unwrap().sequence(), 1);
    assert_eq!(watch.next().await, Ok(None));
}

#[tokio::test]
async fn position_passes_events_out_of_scope() {
    let mut log = EventLog::new(10, 10);
    let mut watch = log.watch(WatchScope::User("a".into()), None).unwrap();
    log.append(event("b"));
    log.append(event("b"));
    assert_eq!(watch.position(), 2);
    log.append(event("a"));
    assert_eq!(
        watch.position(),
        0,
        "an undelivered event in scope holds it back"
    );
    assert_eq!(watch.next().await.unwrap().unwrap().sequence(), 3);
    assert_eq!(watch.position(), 3);
}

#[tokio::test]
async fn a_waiting_watcher_is_woken_by_a_later_commit() {
    let log = Arc::new(Mutex::new(EventLog::new(10, 10)));
    let mut watch = lock(&log)
        .watch(WatchScope::User("a".into()), None)
        .unwrap();
    let writer = log.clone();
    let waiter = tokio::spawn(async move { watch.next().await });
    tokio::task::yield_now().await;
    // As the core does: append under the lock, wake after releasing it.
    let wakes = {
        let mut log = lock(&writer);
        log.append(event("a"));
        log.take_wakes()
    };
    wakes.wake();
    let got = waiter.await.unwrap().unwrap().unwrap();
    assert_eq!(got.sequence(), 1);
}

fn numbered(user: &str, sequence: u64) -> Event {
    let mut e = event(user);
    e.sequence = sequence;
    Event::Call(Arc::new(e))
}

#[tokio::test]
async fn events_numbered_elsewhere_are_applied_once_each_in_order() {
    let mut log = EventLog::new(10, 10);
    let mut watch = log.watch(WatchScope::User("a".into()), None).unwrap();
    assert_eq!(log.apply(numbered("a", 1)), Applied::New);
    assert_eq!(log.apply(numbered("b", 2)), Applied::New);
    assert_eq!(log.apply(numbered("a", 2)), Applied::Old, "a duplicate");
    assert_eq!(
        log.apply(numbered("a", 4)),
        Applied::Gap { expected: 3 },
        "a gap is refused"
    );
    assert_eq!(log.apply(numbered("a", 3)), Applied::New);
    assert_eq!(log.last_sequence(), 3);
    assert_eq!(watch.next().await.unwrap().unwrap().sequence(), 1);
    assert_eq!(watch.next().await.unwrap().unwrap().sequence(), 3);
    // A resume reads them from the history like appended ones.
    let mut resumed = log.watch(WatchScope::All, Some(1)).unwrap();
    assert_eq!(resumed.next().await.unwrap().unwrap().sequence(), 2);
}

#[tokio::test]
async fn a_reset_ends_every_watch_with_the_new_epoch_and_empties_the_history() {
    let mut log = EventLog::new(10, 10);
    log.apply(numbered("a", 1));
    let mut watch = log.watch(WatchScope::User("a".into()), Some(0)).unwrap();
    let mut live = log.watch(WatchScope::All, None).unwrap();
    log.apply(numbered("a", 2));
    log.reset("e2".into(), 0);
    assert_eq!(log.epoch().as_ref(), "e2");
    assert_eq!(log.last_sequence(), 0);
    // What was delivered before the reset still comes, then the end.
    assert_eq!(watch.next().await.unwrap().unwrap().sequence(), 1);
    assert_eq!(watch.next().await.unwrap().unwrap().sequence(), 2);
    let ended = Err(WatchError::EpochChanged { epoch: "e2".into() });
    assert_eq!(watch.next().await, ended);
    assert_eq!(live.next().await.unwrap().unwrap().sequence(), 2);
    assert_eq!(live.next().await, ended);
    assert!(lock(&log.routes).by_key.is_empty());
    assert!(log.watch(WatchScope::All, Some(0)).is_ok());
    assert!(matches!(
        log.watch(WatchScope::All, Some(1)).unwrap_err(),
        CoreError::SequenceAhead { .. }
    ));
    // A watch of the new epoch carries on with its events.
    let mut after = log.watch(WatchScope::All, None).unwrap();
    assert_eq!(log.apply(numbered("a", 1)), Applied::New);
    assert_eq!(after.next().await.unwrap().unwrap().sequence(), 1);
}
