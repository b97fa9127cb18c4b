//! The numbered event stream: every change is a [`CallEvent`] or a [`DeviceEvent`], and
//! every failure after acceptance an [`ErrorEvent`], each with a sequence number, appended
//! under the store lock (so sequence order is commit order), kept in a bounded
//! history for resume, and dispatched to watchers through a per-scope index.
//!
//! Layout: this module holds the public types of the stream (the [`Event`]s, the
//! [`WatchScope`], the [`ResumePoint`], why a watch ends); `log` the append side
//! ([`EventLog`]: numbering, history, resume, epochs, cluster mode's apply and reset);
//! `dispatch` the per-scope index of mailboxes and the deferred wake-ups; `watch` the
//! receiving side ([`EventWatch`] and its call and device views).
//!
//! Locks: the store lock (held by every append) is taken before the routes lock, which is
//! taken before a mailbox lock; dropping a watch takes only the routes lock. None is held
//! across an `.await`.

mod dispatch;
mod log;
#[cfg(test)]
mod tests;
mod watch;

use std::sync::{Arc, Mutex, MutexGuard};

use super::devices::DeviceEvent;
use super::error_event::ErrorEvent;
use super::model::{CallEvent, UserRef};

pub(crate) use log::{Applied, EventLog};
pub use watch::{CallWatch, DeviceWatch, EventWatch};

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
