//! The append side of the stream, [`EventLog`]: it numbers events, keeps the bounded
//! history a watch resumes from, and hands each event to the dispatch index (`dispatch`).
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
//! watch with [`WatchError::EpochChanged`](super::WatchError::EpochChanged), so its client
//! resyncs as after a resume against another epoch.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::dispatch::{End, Mailbox, Registration, RouteKey, Routes, Wakes};
use super::watch::{CallWatch, EventWatch};
use super::{Event, ResumePoint, WatchScope, lock};
use crate::core::devices::DeviceEvent;
use crate::core::error::{CoreError, CoreResult};
use crate::core::error_event::ErrorEvent;
use crate::core::model::{CallEvent, CallId, CallSnapshot};

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
    pub(super) routes: Arc<Mutex<Routes>>,
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
    /// and every open watch ends with
    /// [`WatchError::EpochChanged`](super::WatchError::EpochChanged) after what its mailbox
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
