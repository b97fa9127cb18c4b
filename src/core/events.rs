//! The numbered event stream: every change is a [`CallEvent`] with a sequence number,
//! appended under the store lock (so sequence order is commit order), kept in a bounded
//! history for resume, and fanned out to watchers through a bounded broadcast ring.
//!
//! Bounds: the history holds the last `history` events; the broadcast ring holds the last
//! `buffer` events for watchers that have not read them. A watcher that falls more than
//! `buffer` events behind is not waited for: its next read fails with
//! [`WatchError::Lagged`], naming the last sequence it received, and it may resume from
//! there while the history still holds it. Memory per watcher is therefore constant.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast;

use super::devices::DeviceEvent;
use super::error::{CoreError, CoreResult};
use super::model::{CallEvent, UserRef};

/// One entry of the event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A call notification.
    Call(Arc<CallEvent>),
    /// A device notification.
    Device(Arc<DeviceEvent>),
}

impl Event {
    /// Returns the event's sequence number.
    pub fn sequence(&self) -> u64 {
        match self {
            Self::Call(e) => e.sequence,
            Self::Device(e) => e.sequence,
        }
    }

    /// Returns the user the event is for.
    pub fn user(&self) -> &UserRef {
        match self {
            Self::Call(e) => &e.call.user,
            Self::Device(e) => &e.device.user,
        }
    }
}

/// Which events a watch receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchScope {
    /// Events of one user's calls.
    User(Arc<str>),
    /// Events of every user of a contact center.
    ContactCenter(Arc<str>),
    /// Every event (internal consumers such as the CometD bridge).
    All,
}

impl WatchScope {
    /// Returns whether an event for this user belongs to this scope.
    pub fn matches_user(&self, user: &UserRef) -> bool {
        match self {
            Self::User(name) => user.name == *name,
            Self::ContactCenter(cc) => user.contact_center == *cc,
            Self::All => true,
        }
    }

    /// Returns whether a call event belongs to this scope.
    pub fn matches(&self, event: &CallEvent) -> bool {
        self.matches_user(&event.call.user)
    }
}

/// Why a watch ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// The watcher fell behind the broadcast ring and missed events.
    #[error("watcher fell behind and missed events; resume from sequence {last_delivered}")]
    Lagged {
        /// The last sequence delivered to this watcher (0 if none).
        last_delivered: u64,
    },
}

/// The append side of the stream; lives inside the store's lock.
#[derive(Debug)]
pub(crate) struct EventLog {
    last: u64,
    history: VecDeque<Event>,
    history_limit: usize,
    tx: broadcast::Sender<Event>,
}

impl EventLog {
    pub(crate) fn new(history_limit: usize, buffer: usize) -> Self {
        let (tx, _) = broadcast::channel(buffer.max(1));
        Self {
            last: 0,
            history: VecDeque::with_capacity(history_limit.min(65_536)),
            history_limit: history_limit.max(1),
            tx,
        }
    }

    /// Returns the last committed sequence number (0 before the first event).
    pub(crate) fn last_sequence(&self) -> u64 {
        self.last
    }

    fn push(&mut self, event: Event) {
        if self.history.len() == self.history_limit {
            self.history.pop_front();
        }
        self.history.push_back(event.clone());
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(event);
    }

    /// Numbers and publishes a call event.
    pub(crate) fn append(&mut self, mut event: CallEvent) -> Arc<CallEvent> {
        self.last += 1;
        event.sequence = self.last;
        event.committed_at = std::time::SystemTime::now();
        let event = Arc::new(event);
        self.push(Event::Call(event.clone()));
        event
    }

    /// Numbers and publishes a device event.
    pub(crate) fn append_device(&mut self, mut event: DeviceEvent) -> Arc<DeviceEvent> {
        self.last += 1;
        event.sequence = self.last;
        event.committed_at = std::time::SystemTime::now();
        let event = Arc::new(event);
        self.push(Event::Device(event.clone()));
        event
    }

    /// Starts a watch of every kind of event; `from` resumes right after that sequence.
    pub(crate) fn watch_events(
        &self,
        scope: WatchScope,
        from: Option<u64>,
    ) -> CoreResult<EventWatch> {
        let rx = self.tx.subscribe();
        let backlog = match from {
            None => VecDeque::new(),
            Some(requested) if requested > self.last => {
                return Err(CoreError::SequenceAhead {
                    requested,
                    last: self.last,
                });
            }
            Some(requested) => {
                let oldest = self.history.front().map_or(self.last + 1, Event::sequence);
                // Resuming at `requested` needs every event after it: oldest <= requested + 1.
                if requested + 1 < oldest {
                    return Err(CoreError::HistoryGone { requested, oldest });
                }
                self.history
                    .iter()
                    .filter(|e| e.sequence() > requested && scope.matches_user(e.user()))
                    .cloned()
                    .collect()
            }
        };
        Ok(EventWatch {
            scope,
            backlog,
            rx,
            last_delivered: from.unwrap_or(self.last),
            subscribed_at: self.last,
        })
    }

    /// Starts a watch of call events.
    pub(crate) fn watch(&self, scope: WatchScope, from: Option<u64>) -> CoreResult<CallWatch> {
        Ok(CallWatch(self.watch_events(scope, from)?))
    }
}

/// A live subscription to every kind of event in a scope.
#[derive(Debug)]
pub struct EventWatch {
    scope: WatchScope,
    backlog: VecDeque<Event>,
    rx: broadcast::Receiver<Event>,
    last_delivered: u64,
    /// The last sequence when the watch started: the ring holds only later events.
    subscribed_at: u64,
}

impl EventWatch {
    /// Returns the last sequence this watch has passed (delivered or skipped as out of scope).
    pub fn position(&self) -> u64 {
        self.last_delivered
    }

    /// Waits for the next event in scope; `Ok(None)` when the gateway shuts the stream down.
    pub async fn next(&mut self) -> Result<Option<Event>, WatchError> {
        if let Some(event) = self.backlog.pop_front() {
            self.last_delivered = event.sequence();
            return Ok(Some(event));
        }
        self.last_delivered = self.last_delivered.max(self.subscribed_at);
        loop {
            match self.rx.recv().await {
                Ok(event) if event.sequence() <= self.last_delivered => {}
                Ok(event) => {
                    self.last_delivered = event.sequence();
                    if self.scope.matches_user(event.user()) {
                        return Ok(Some(event));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    return Err(WatchError::Lagged {
                        last_delivered: self.last_delivered,
                    });
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(None),
            }
        }
    }
}

/// A live subscription to the call events of a scope.
#[derive(Debug)]
pub struct CallWatch(EventWatch);

impl CallWatch {
    /// Returns the last sequence this watch has passed.
    pub fn position(&self) -> u64 {
        self.0.position()
    }

    /// Waits for the next call event in scope; `Ok(None)` when the stream shuts down.
    pub async fn next(&mut self) -> Result<Option<Arc<CallEvent>>, WatchError> {
        loop {
            match self.0.next().await? {
                Some(Event::Call(event)) => return Ok(Some(event)),
                Some(Event::Device(_)) => {}
                None => return Ok(None),
            }
        }
    }
}

/// A live subscription to the device events of a scope.
#[derive(Debug)]
pub struct DeviceWatch(pub(crate) EventWatch);

impl DeviceWatch {
    /// Waits for the next device event in scope; `Ok(None)` when the stream shuts down.
    pub async fn next(&mut self) -> Result<Option<Arc<DeviceEvent>>, WatchError> {
        loop {
            match self.0.next().await? {
                Some(Event::Device(event)) => return Ok(Some(event)),
                Some(Event::Call(_)) => {}
                None => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::*;

    fn event(user: &str) -> CallEvent {
        CallEvent {
            sequence: 0,
            notification: NotificationType::StatusChange,
            call: CallSnapshot {
                id: CallId::new("c"),
                conn_id: String::new(),
                state: CallState::Dialing,
                call_type: CallType::Internal,
                capabilities: vec![],
                participants: vec![],
                dnis: String::new(),
                user_data: UserData::default(),
                duration_secs: 0,
                muted: false,
                recording_state: None,
                supervisor_listening_in: false,
                monitored_user_muted: false,
                monitoring: false,
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
            got.push(watch.next().await.unwrap().unwrap().sequence);
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

    #[tokio::test]
    async fn a_watcher_that_falls_behind_is_told_where_to_resume() {
        let mut log = EventLog::new(100, 2);
        let mut watch = log.watch(WatchScope::All, None).unwrap();
        log.append(event("a"));
        assert_eq!(watch.next().await.unwrap().unwrap().sequence, 1);
        for _ in 0..5 {
            log.append(event("a"));
        }
        assert_eq!(
            watch.next().await,
            Err(WatchError::Lagged { last_delivered: 1 })
        );
    }
}
