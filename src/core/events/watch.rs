//! The receiving side of the stream: an [`EventWatch`] reads first the backlog a resume
//! found in the history, then its mailbox (`dispatch`), and knows how far it has passed;
//! [`CallWatch`] and [`DeviceWatch`] are its views of one kind of event. The log (`log`)
//! starts them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::dispatch::{End, Mailbox, Registration};
use super::{CallWatchEvent, Event, WatchError, lock};
use crate::core::devices::DeviceEvent;

/// A live subscription to every kind of event in a scope.
#[derive(Debug)]
pub struct EventWatch {
    pub(super) backlog: VecDeque<Event>,
    pub(super) mailbox: Arc<Mailbox>,
    /// Kept for its `Drop`, which unregisters the mailbox.
    pub(super) _registration: Registration,
    pub(super) committed: Arc<AtomicU64>,
    /// The epoch that replaced this watch's, once [`EventLog::reset`](super::EventLog::reset)
    /// ended it.
    pub(super) epoch_after_reset: Arc<Mutex<Arc<str>>>,
    pub(super) last_delivered: u64,
    /// The last sequence when the watch started: the mailbox holds only later events.
    pub(super) subscribed_at: u64,
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
pub struct CallWatch(pub(super) EventWatch);

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
