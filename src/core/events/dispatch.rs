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
//! holds, and then [`WatchError::Lagged`](super::WatchError::Lagged), naming the last
//! sequence it received, from where it may resume while the history still holds it. Memory
//! per watcher is therefore bounded, and an idle watcher holds no buffer at all.
//!
//! The log (`log`) fills the mailboxes under the store lock; a watch (`watch`) empties its
//! own.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::{Event, WatchScope, lock};
use crate::core::FastMap;

/// How a mailbox ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// The watcher fell more than `buffer` events behind.
    Lagged,
    /// The event log is gone (the core shut down).
    Closed,
    /// The log started over with a new epoch ([`EventLog::reset`](super::EventLog::reset)).
    Reset,
}

/// What a mailbox holds.
#[derive(Debug, Default)]
pub(super) struct MailboxState {
    pub(super) queue: VecDeque<Event>,
    pub(super) end: Option<End>,
}

/// One watcher's queue of events in its scope.
#[derive(Debug, Default)]
pub(super) struct Mailbox {
    pub(super) state: Mutex<MailboxState>,
    /// Single consumer: `notify_one` leaves a permit when the watcher is not waiting.
    pub(super) notify: Notify,
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

    pub(super) fn close(&self, end: End) {
        let mut state = lock(&self.state);
        state.end.get_or_insert(end);
        drop(state);
        self.notify.notify_one();
    }
}

/// The key a watcher is registered under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum RouteKey {
    User(Arc<str>),
    ContactCenter(Arc<str>),
    All,
}

impl RouteKey {
    pub(super) fn of(scope: &WatchScope) -> Self {
        match scope {
            WatchScope::User(name) => Self::User(name.clone()),
            WatchScope::ContactCenter(cc) => Self::ContactCenter(cc.clone()),
            WatchScope::All => Self::All,
        }
    }
}

/// The dispatch index: mailboxes by scope key.
#[derive(Debug, Default)]
pub(super) struct Routes {
    next_id: u64,
    pub(super) by_key: FastMap<RouteKey, Vec<(u64, Arc<Mailbox>)>>,
}

impl Routes {
    pub(super) fn add(&mut self, key: RouteKey, mailbox: Arc<Mailbox>) -> u64 {
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
    pub(super) fn dispatch(
        &mut self,
        key: &RouteKey,
        event: &Event,
        buffer: usize,
        wakes: &mut Wakes,
    ) {
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
    pub(super) fn add(&mut self, mailbox: &Arc<Mailbox>) {
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

/// A watcher's entry in the dispatch index, removed when the watch is dropped.
#[derive(Debug)]
pub(super) struct Registration {
    pub(super) routes: Arc<Mutex<Routes>>,
    pub(super) key: RouteKey,
    pub(super) id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.routes).remove(&self.key, self.id);
    }
}
