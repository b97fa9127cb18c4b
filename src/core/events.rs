//! The numbered event stream: every change is a [`CallEvent`] or a [`DeviceEvent`], and
//! every failure after acceptance an [`ErrorEvent`], each with a sequence number, appended
//! under the store lock (so sequence order is commit order), kept in a bounded
//! history for resume, and dispatched to watchers through a per-scope index.
//!
//! Dispatch: each watcher owns a mailbox registered under its scope's key (the user, the
//! contact center, or "all"). An event is pushed only into the mailboxes of the user it
//! belongs to, of that user's contact center, and of the "all" watchers, so a commit costs
//! O(interested watchers), not O(every watcher): with 10,000 per-user watchers, one event
//! wakes one or two tasks instead of 10,000 (the broadcast ring this replaces woke them all,
//! and each had to read and filter every event; see BENCHMARKS.md).
//!
//! Bounds: the history holds the last `history` events; a mailbox holds at most `buffer`
//! events of its own scope (shared `Arc`s, 16 bytes each). A watcher that falls more than
//! `buffer` events behind is not waited for: it is unregistered, receives what its mailbox
//! holds, and then [`WatchError::Lagged`], naming the last sequence it received, from
//! where it may resume while the history still holds it. Memory per watcher is therefore
//! bounded, and an idle watcher holds no buffer at all.
//!
//! Epoch: each log has a random id, its epoch, fixed when the log is made (so a new one on
//! every start of the gateway). A resume position names it beside the sequence
//! ([`ResumePoint`]): sequence numbers restart with a new log, so a sequence alone could
//! resume a watch on another process's stream, which would carry on silently with events
//! the client never had a snapshot for. A resume against another epoch is refused with
//! [`CoreError::EpochMismatch`] and the client resyncs.
//!
//! Cluster mode: the events are numbered by the shared log, not here. Each instance applies
//! them with their sequence ([`EventLog::apply`]: dense, an old one skipped, a gap refused)
//! and takes the shared log's epoch; when that log starts over (the engine lost its data,
//! or trimmed it past this instance) [`EventLog::reset`] empties the history and ends every
//! watch with [`WatchError::EpochChanged`], so its client resyncs as after a resume against
//! another epoch.
//!
//! Locks: the store lock (held by every append) is taken before the routes lock, which is
//! taken before a mailbox lock; dropping a watch takes only the routes lock. None is held
//! across an `.await`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::FastMap;
use super::devices::DeviceEvent;
use super::error::{CoreError, CoreResult};
use super::error_event::ErrorEvent;
use super::model::{CallEvent, CallId, CallSnapshot, UserRef};

/// One entry of the event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A call notification.
    Call(Arc<CallEvent>),
    /// A device notification.
    Device(Arc<DeviceEvent>),
    /// An operation that failed after it was accepted.
    Error(Arc<ErrorEvent>),
}

impl Event {
    /// Returns the event's sequence number.
    pub fn sequence(&self) -> u64 {
        match self {
            Self::Call(e) => e.sequence,
            Self::Device(e) => e.sequence,
            Self::Error(e) => e.sequence,
        }
    }

    /// Returns the user the event is for.
    pub fn user(&self) -> &UserRef {
        match self {
            Self::Call(e) => &e.call.user,
            Self::Device(e) => &e.device.user,
            Self::Error(e) => &e.user,
        }
    }
}

/// What a [`CallWatch`] delivers: the events of `/v2/me/calls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallWatchEvent {
    /// A call notification.
    Call(Arc<CallEvent>),
    /// An operation that failed after it was accepted.
    Error(Arc<ErrorEvent>),
}

impl From<CallWatchEvent> for Event {
    fn from(event: CallWatchEvent) -> Self {
        match event {
            CallWatchEvent::Call(e) => Self::Call(e),
            CallWatchEvent::Error(e) => Self::Error(e),
        }
    }
}

impl CallWatchEvent {
    /// Returns the event's sequence number.
    pub fn sequence(&self) -> u64 {
        match self {
            Self::Call(e) => e.sequence,
            Self::Error(e) => e.sequence,
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
    /// The log started over with a new epoch (cluster mode: the engine lost or rolled back
    /// the shared log): no position in the old one means anything now, the client resyncs.
    #[error("the event stream started over as epoch {epoch}: resync")]
    EpochChanged {
        /// The new epoch.
        epoch: String,
    },
}

/// Locks a mutex, recovering from poisoning (every critical section here leaves its data
/// consistent at each step).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How a mailbox ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The watcher fell more than `buffer` events behind.
    Lagged,
    /// The event log is gone (the core shut down).
    Closed,
    /// The log started over with a new epoch ([`EventLog::reset`]).
    Reset,
}

/// What a mailbox holds.
#[derive(Debug, Default)]
struct MailboxState {
    queue: VecDeque<Event>,
    end: Option<End>,
}

/// One watcher's queue of events in its scope.
#[derive(Debug, Default)]
struct Mailbox {
    state: Mutex<MailboxState>,
    /// Single consumer: `notify_one` leaves a permit when the watcher is not waiting.
    notify: Notify,
}

impl Mailbox {
    /// Queues an event without waking the watcher (see [`Wakes`]); returns `false` (and
    /// ends the mailbox) when it is full.
    fn push(&self, event: &Event, buffer: usize) -> bool {
        let mut state = lock(&self.state);
        if state.end.is_some() {
            return false;
        }
        let kept = state.queue.len() < buffer;
        if kept {
            state.queue.push_back(event.clone());
        } else {
            state.end = Some(End::Lagged);
        }
        kept
    }

    fn close(&self, end: End) {
        let mut state = lock(&self.state);
        state.end.get_or_insert(end);
        drop(state);
        self.notify.notify_one();
    }
}

/// The key a watcher is registered under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum RouteKey {
    User(Arc<str>),
    ContactCenter(Arc<str>),
    All,
}

impl RouteKey {
    fn of(scope: &WatchScope) -> Self {
        match scope {
            WatchScope::User(name) => Self::User(name.clone()),
            WatchScope::ContactCenter(cc) => Self::ContactCenter(cc.clone()),
            WatchScope::All => Self::All,
        }
    }
}

/// The dispatch index: mailboxes by scope key.
#[derive(Debug, Default)]
struct Routes {
    next_id: u64,
    by_key: FastMap<RouteKey, Vec<(u64, Arc<Mailbox>)>>,
}

impl Routes {
    fn add(&mut self, key: RouteKey, mailbox: Arc<Mailbox>) -> u64 {
        self.next_id += 1;
        self.by_key
            .entry(key)
            .or_default()
            .push((self.next_id, mailbox));
        self.next_id
    }

    fn remove(&mut self, key: &RouteKey, id: u64) {
        if let Some(list) = self.by_key.get_mut(key) {
            list.retain(|(other, _)| *other != id);
            if list.is_empty() {
                self.by_key.remove(key);
            }
        }
    }

    /// Pushes an event to the mailboxes of one key and records them in `wakes`; full ones
    /// are ended and unregistered.
    fn dispatch(&mut self, key: &RouteKey, event: &Event, buffer: usize, wakes: &mut Wakes) {
        let Some(list) = self.by_key.get_mut(key) else {
            return;
        };
        list.retain(|(_, mailbox)| {
            let kept = mailbox.push(event, buffer);
            wakes.add(mailbox);
            kept
        });
        if list.is_empty() {
            self.by_key.remove(key);
        }
    }
}

/// Watchers to wake once the store lock is released.
///
/// Waking a watcher can wake a sleeping runtime worker (a futex call); done under the store
/// lock, it made every commit hold the lock that much longer, and the other worker waited
/// for it (BENCHMARKS.md, figure 1 and 2 profiles). So appends only fill mailboxes and
/// collect them here; the core's store guard wakes them after unlocking.
#[derive(Debug, Default)]
pub(crate) struct Wakes(Vec<Arc<Mailbox>>);

impl Wakes {
    /// Records a mailbox; one filled twice is woken twice, which is harmless (`Notify`
    /// keeps at most one permit) and cheaper than looking for it.
    fn add(&mut self, mailbox: &Arc<Mailbox>) {
        self.0.push(mailbox.clone());
    }

    /// Wakes every collected watcher (dropping does the same).
    pub(crate) fn wake(self) {}
}

impl Drop for Wakes {
    fn drop(&mut self) {
        for mailbox in self.0.drain(..) {
            mailbox.notify.notify_one();
        }
    }
}

/// Where a watch resumes: right after `sequence` of the event log named `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePoint {
    /// The last sequence the client received.
    pub sequence: u64,
    /// The epoch of the log that sequence belongs to (from the snapshot or any event).
    /// `None` (clients older than epochs) is accepted and cannot be checked: such a
    /// resume after a restart carries on with the new log's events.
    pub epoch: Option<String>,
}

impl ResumePoint {
    /// Returns a resume position without an epoch (internal consumers of this process).
    pub fn sequence(sequence: u64) -> Self {
        Self {
            sequence,
            epoch: None,
        }
    }
}

/// What [`EventLog::apply`] did with an event numbered elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// It was the next event: published.
    New,
    /// Its sequence was applied already: ignored.
    Old,
    /// It is beyond the next sequence, `expected`: ignored.
    Gap {
        /// The sequence the log expected.
        expected: u64,
    },
}

/// The append side of the stream; lives inside the store's lock.
#[derive(Debug)]
pub(crate) struct EventLog {
    /// This log's random id (see the module doc).
    epoch: Arc<str>,
    last: u64,
    history: VecDeque<Event>,
    history_limit: usize,
    buffer: usize,
    routes: Arc<Mutex<Routes>>,
    /// `last`, published after the event reached every mailbox (see [`EventWatch::position`]).
    committed: Arc<AtomicU64>,
    /// Mailboxes filled since the last [`EventLog::take_wakes`].
    wakes: Wakes,
    /// Set by [`EventLog::reset`] to the new epoch, for the watches it ends.
    epoch_after_reset: Arc<Mutex<Arc<str>>>,
}

impl EventLog {
    pub(crate) fn new(history_limit: usize, buffer: usize) -> Self {
        Self {
            epoch: uuid::Uuid::new_v4().simple().to_string().into(),
            last: 0,
            history: VecDeque::with_capacity(history_limit.min(65_536)),
            history_limit: history_limit.max(1),
            buffer: buffer.max(1),
            routes: Arc::default(),
            committed: Arc::default(),
            wakes: Wakes::default(),
            epoch_after_reset: Arc::new(Mutex::new(Arc::from(""))),
        }
    }

    /// Returns the watchers to wake for the events appended since the last call; the
    /// caller wakes them once it has released the store lock.
    pub(crate) fn take_wakes(&mut self) -> Wakes {
        std::mem::take(&mut self.wakes)
    }

    /// Returns this log's epoch.
    pub(crate) fn epoch(&self) -> &Arc<str> {
        &self.epoch
    }

    /// Returns the sequence to resume after, once `from` is known to name this log:
    /// [`CoreError::EpochMismatch`] when it names another.
    pub(crate) fn resume_sequence(&self, from: Option<&ResumePoint>) -> CoreResult<Option<u64>> {
        let Some(from) = from else {
            return Ok(None);
        };
        match &from.epoch {
            Some(epoch) if **epoch != *self.epoch => Err(CoreError::EpochMismatch {
                requested: epoch.clone(),
                current: self.epoch.to_string(),
            }),
            _ => Ok(Some(from.sequence)),
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
        let user = event.user();
        let wakes = &mut self.wakes;
        let mut routes = lock(&self.routes);
        routes.dispatch(
            &RouteKey::User(user.name.clone()),
            &event,
            self.buffer,
            wakes,
        );
        routes.dispatch(
            &RouteKey::ContactCenter(user.contact_center.clone()),
            &event,
            self.buffer,
            wakes,
        );
        routes.dispatch(&RouteKey::All, &event, self.buffer, wakes);
        drop(routes);
        self.committed.store(self.last, Ordering::Release);
    }

    /// Returns the call as `user` saw it in the newest event after sequence `after` for
    /// that call, if the history holds one: the view an operation just committed, so the
    /// operation can answer with it instead of taking the view again.
    pub(crate) fn latest_view(&self, after: u64, id: &CallId, user: &str) -> Option<CallSnapshot> {
        self.history
            .iter()
            .rev()
            .take_while(|event| event.sequence() > after)
            .find_map(|event| match event {
                Event::Call(e) if e.call.id == *id && *e.call.user.name == *user => {
                    Some(e.call.clone())
                }
                _ => None,
            })
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

    /// Numbers and publishes an asynchronous error.
    pub(crate) fn append_error(&mut self, mut event: ErrorEvent) -> Arc<ErrorEvent> {
        self.last += 1;
        event.sequence = self.last;
        event.committed_at = std::time::SystemTime::now();
        let event = Arc::new(event);
        self.push(Event::Error(event.clone()));
        event
    }

    /// Publishes an event numbered elsewhere (cluster mode: by the shared log), which must
    /// be the next one: [`Applied::Old`] for a sequence already applied (nothing done),
    /// [`Applied::Gap`] for one beyond the next (nothing done: the caller starts over).
    pub(crate) fn apply(&mut self, event: Event) -> Applied {
        let sequence = event.sequence();
        if sequence <= self.last {
            return Applied::Old;
        }
        if sequence > self.last + 1 {
            return Applied::Gap {
                expected: self.last + 1,
            };
        }
        self.last = sequence;
        self.push(event);
        Applied::New
    }

    /// Starts the log over as `epoch`, its next event `last + 1` (cluster mode, when the
    /// shared log changed epoch or was trimmed past this instance): the history is emptied
    /// and every open watch ends with [`WatchError::EpochChanged`] after what its mailbox
    /// holds, so its client resyncs as for a resume against another epoch.
    pub(crate) fn reset(&mut self, epoch: Arc<str>, last: u64) {
        *lock(&self.epoch_after_reset) = epoch.clone();
        // Watches started from now share a new cell: an old watch keeps naming the epoch
        // that ended it.
        self.epoch_after_reset = Arc::new(Mutex::new(epoch.clone()));
        self.epoch = epoch;
        self.last = last;
        self.history.clear();
        self.committed.store(last, Ordering::Release);
        let routes = std::mem::take(&mut lock(&self.routes).by_key);
        for (_, mailbox) in routes.into_values().flatten() {
            mailbox.close(End::Reset);
            self.wakes.add(&mailbox);
        }
    }

    /// Returns the events of `user` after sequence `after` in order, from the history
    /// (none when `after` is at or beyond the last sequence); [`CoreError::HistoryGone`]
    /// when the history no longer holds `after + 1`.
    pub(crate) fn user_events_after(&self, user: &str, after: u64) -> CoreResult<Vec<Event>> {
        if after >= self.last {
            return Ok(Vec::new());
        }
        let oldest = self.history.front().map_or(self.last + 1, Event::sequence);
        if after + 1 < oldest {
            return Err(CoreError::HistoryGone {
                requested: after,
                oldest,
            });
        }
        let mut events: Vec<Event> = self
            .history
            .iter()
            .rev()
            .take_while(|e| e.sequence() > after)
            .filter(|e| *e.user().name == *user)
            .cloned()
            .collect();
        events.reverse();
        Ok(events)
    }

    /// Starts a watch of every kind of event; `from` resumes right after that sequence.
    pub(crate) fn watch_events(
        &self,
        scope: WatchScope,
        from: Option<u64>,
    ) -> CoreResult<EventWatch> {
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
                // The history is in sequence order: read back from the newest to `requested`
                // only, so a resume close to the head costs little however long the history.
                let mut backlog: VecDeque<Event> = self
                    .history
                    .iter()
                    .rev()
                    .take_while(|e| e.sequence() > requested)
                    .filter(|e| scope.matches_user(e.user()))
                    .cloned()
                    .collect();
                backlog.make_contiguous().reverse();
                backlog
            }
        };
        // Registered under the store lock, like the backlog read: the mailbox receives
        // exactly the events committed after `self.last`.
        let key = RouteKey::of(&scope);
        let mailbox = Arc::new(Mailbox::default());
        let id = lock(&self.routes).add(key.clone(), mailbox.clone());
        Ok(EventWatch {
            backlog,
            mailbox,
            _registration: Registration {
                routes: self.routes.clone(),
                key,
                id,
            },
            committed: self.committed.clone(),
            epoch_after_reset: self.epoch_after_reset.clone(),
            last_delivered: from.unwrap_or(self.last),
            subscribed_at: self.last,
        })
    }

    /// Starts a watch of call events.
    pub(crate) fn watch(&self, scope: WatchScope, from: Option<u64>) -> CoreResult<CallWatch> {
        Ok(CallWatch(self.watch_events(scope, from)?))
    }
}

impl Drop for EventLog {
    /// Ends every watch: each receives what its mailbox holds, then `Ok(None)`.
    fn drop(&mut self) {
        let routes = std::mem::take(&mut lock(&self.routes).by_key);
        for (_, mailbox) in routes.into_values().flatten() {
            mailbox.close(End::Closed);
        }
    }
}

/// A watcher's entry in the dispatch index, removed when the watch is dropped.
#[derive(Debug)]
struct Registration {
    routes: Arc<Mutex<Routes>>,
    key: RouteKey,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.routes).remove(&self.key, self.id);
    }
}

/// A live subscription to every kind of event in a scope.
#[derive(Debug)]
pub struct EventWatch {
    backlog: VecDeque<Event>,
    mailbox: Arc<Mailbox>,
    /// Kept for its `Drop`, which unregisters the mailbox.
    _registration: Registration,
    committed: Arc<AtomicU64>,
    /// The epoch that replaced this watch's, once [`EventLog::reset`] ended it.
    epoch_after_reset: Arc<Mutex<Arc<str>>>,
    last_delivered: u64,
    /// The last sequence when the watch started: the mailbox holds only later events.
    subscribed_at: u64,
}

impl EventWatch {
    /// Returns the last sequence this watch has passed (delivered or skipped as out of scope).
    pub fn position(&self) -> u64 {
        if !self.backlog.is_empty() {
            return self.last_delivered;
        }
        // Read the commit mark before the mailbox: every in-scope event up to the mark is
        // in the mailbox by then, so an empty mailbox means the watch has passed the mark.
        let committed = self.committed.load(Ordering::Acquire);
        let state = lock(&self.mailbox.state);
        if state.queue.is_empty() && state.end.is_none() {
            committed.max(self.last_delivered)
        } else {
            self.last_delivered.max(self.subscribed_at)
        }
    }

    /// Waits for the next event in scope; `Ok(None)` when the gateway shuts the stream down.
    pub async fn next(&mut self) -> Result<Option<Event>, WatchError> {
        if let Some(event) = self.backlog.pop_front() {
            self.last_delivered = event.sequence();
            return Ok(Some(event));
        }
        self.last_delivered = self.last_delivered.max(self.subscribed_at);
        loop {
            let popped = {
                let mut state = lock(&self.mailbox.state);
                match state.queue.pop_front() {
                    Some(event) => Ok(event),
                    None => Err(state.end),
                }
            };
            match popped {
                Ok(event) if event.sequence() <= self.last_delivered => {}
                Ok(event) => {
                    self.last_delivered = event.sequence();
                    return Ok(Some(event));
                }
                Err(Some(End::Lagged)) => {
                    return Err(WatchError::Lagged {
                        last_delivered: self.last_delivered,
                    });
                }
                Err(Some(End::Closed)) => return Ok(None),
                Err(Some(End::Reset)) => {
                    return Err(WatchError::EpochChanged {
                        epoch: lock(&self.epoch_after_reset).to_string(),
                    });
                }
                Err(None) => self.mailbox.notify.notified().await,
            }
        }
    }
}

/// A live subscription to the call events and asynchronous errors of a scope.
#[derive(Debug)]
pub struct CallWatch(EventWatch);

impl CallWatch {
    /// Returns the last sequence this watch has passed.
    pub fn position(&self) -> u64 {
        self.0.position()
    }

    /// Waits for the next call event or error in scope; `Ok(None)` when the stream shuts
    /// down.
    pub async fn next(&mut self) -> Result<Option<CallWatchEvent>, WatchError> {
        loop {
            match self.0.next().await? {
                Some(Event::Call(event)) => return Ok(Some(CallWatchEvent::Call(event))),
                Some(Event::Error(event)) => return Ok(Some(CallWatchEvent::Error(event))),
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
    /// Returns the last sequence this watch has passed.
    pub fn position(&self) -> u64 {
        self.0.position()
    }

    /// Waits for the next device event in scope; `Ok(None)` when the stream shuts down.
    pub async fn next(&mut self) -> Result<Option<Arc<DeviceEvent>>, WatchError> {
        loop {
            match self.0.next().await? {
                Some(Event::Device(event)) => return Ok(Some(event)),
                Some(Event::Call(_) | Event::Error(_)) => {}
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
}
