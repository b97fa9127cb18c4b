//! One Bayeux session: its subscriptions, its bounded queue of undelivered (or, with the
//! ack extension, unacknowledged) messages, its expiry, and the [`Notify`] that wakes
//! whichever transport is waiting for it (a held long-poll or a WebSocket loop).
//!
//! Positions: every queued message carries the sequence of the core event it renders (in
//! cluster mode, the shared log's sequence), and a session keeps its **position**, the
//! last sequence offered to it, whether it matched a subscription or not. With the ack
//! extension a connect reply's `ext.ack` is that position as the reply was taken (every
//! message up to it is in the reply or was for no subscription), and the client's next
//! connect acknowledges everything up to it. So the client's `ext.ack` names a position
//! in the log that any instance of a cluster understands ([`super::moving`]), and an event
//! offered at or before the position is never queued again.
//!
//! Locking: a `std::sync::Mutex` per session, held only for queue and field updates, never
//! across an `.await`; the registry lock may be taken before it, never after.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::{Duration, Instant};

use super::channel;

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BayeuxRemoval {
    /// The client sent `/meta/disconnect`.
    Disconnected,
    /// No connect arrived within `interval + maxInterval`.
    Expired,
    /// The session's queue reached its limit (the client stopped reading).
    QueueFull,
    /// The CometD bridge fell behind the core and events were lost.
    EventsLost,
    /// Cluster mode: another instance adopted the session.
    Moved,
    /// The HTTP session the handshake was authenticated with ended.
    LoggedOut,
    /// The gateway is shutting down.
    Shutdown,
}

impl BayeuxRemoval {
    /// Returns a short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disconnected => "disconnected",
            Self::Expired => "expired",
            Self::QueueFull => "queue limit reached",
            Self::EventsLost => "events lost",
            Self::Moved => "moved to another instance",
            Self::LoggedOut => "http session ended",
            Self::Shutdown => "shutdown",
        }
    }
}

/// The messages of one event, each `(channel, json)`, as offered to sessions.
pub type BayeuxMessages = Vec<(&'static str, Arc<str>)>;

/// What happened to a message offered to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BayeuxOffer {
    /// Queued, and the waiting transport woken.
    Queued,
    /// The session has no subscription matching the channel.
    NotSubscribed,
    /// The queue is at its limit: the caller removes the session.
    Full,
    /// The session already ended.
    Removed,
    /// The event is at or before the session's position: it was offered already.
    Old,
}

#[derive(Debug)]
struct Queued {
    /// The sequence of the event the message renders.
    sequence: u64,
    json: Arc<str>,
}

#[derive(Debug)]
struct SessionState {
    /// Sorted and without repeats, as a set. At most the few readable channels
    /// (`channel::is_readable`), mostly one or two: a `BTreeSet`'s node took 280 bytes of
    /// every idle session (BENCHMARKS.md, figure 4).
    subscriptions: Vec<String>,
    queue: VecDeque<Queued>,
    /// The last sequence offered (see the module docs).
    position: u64,
    expire_at: Instant,
    /// Whether a connect reply was sent; the first connect is never held.
    connected: bool,
    /// Connects currently held (long-poll or WebSocket); a held session never expires.
    held: u32,
    /// Increases with every held long-poll; an older holder that sees a newer token ends.
    hold_token: u64,
    /// Increases with every WebSocket that adopts the session; older sockets close.
    socket_token: u64,
    removed: Option<BayeuxRemoval>,
}

/// A Bayeux session (one `clientId`).
#[derive(Debug)]
pub struct BayeuxSession {
    /// The `clientId`.
    pub id: Arc<str>,
    /// The user whose notifications the session receives.
    pub user: Arc<str>,
    /// The `BAYEUX_BROWSER` cookie the handshake carried or was given (long-polling trust).
    pub browser_id: Option<String>,
    /// `http://host` as the client reached us, for URIs in notifications.
    pub base_url: String,
    /// The `JSESSIONID` the handshake was authenticated with, if any.
    pub http_session: Option<String>,
    /// Whether the ack extension is on.
    pub ack: bool,
    max_queue: usize,
    state: Mutex<SessionState>,
    notify: Notify,
}

impl BayeuxSession {
    /// Builds a session at `position` that expires at `expire_at` unless a connect arrives.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: Arc<str>,
        user: Arc<str>,
        browser_id: Option<String>,
        base_url: String,
        http_session: Option<String>,
        ack: bool,
        max_queue: usize,
        expire_at: Instant,
        position: u64,
    ) -> Self {
        Self {
            id,
            user,
            browser_id,
            base_url,
            http_session,
            ack,
            max_queue: max_queue.max(1),
            state: Mutex::new(SessionState {
                subscriptions: Vec::new(),
                queue: VecDeque::new(),
                position,
                expire_at,
                connected: false,
                held: 0,
                hold_token: 0,
                socket_token: 0,
                removed: None,
            }),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns the notifier woken on every queued message, removal and superseding hold.
    pub(crate) fn notify(&self) -> &Notify {
        &self.notify
    }

    /// Adds a subscription; returns false when it was already there.
    pub(crate) fn subscribe(&self, pattern: &str) -> bool {
        let mut state = self.lock();
        match state
            .subscriptions
            .binary_search_by(|p| p.as_str().cmp(pattern))
        {
            Ok(_) => false,
            Err(at) => {
                state.subscriptions.insert(at, pattern.to_owned());
                true
            }
        }
    }

    /// Removes a subscription; returns false when there was none.
    pub(crate) fn unsubscribe(&self, pattern: &str) -> bool {
        let mut state = self.lock();
        match state
            .subscriptions
            .binary_search_by(|p| p.as_str().cmp(pattern))
        {
            Ok(at) => {
                state.subscriptions.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    /// Offers the messages of the event numbered `sequence`, each `(channel, json)`:
    /// queues those whose channel a subscription matches (once, however many do), and
    /// moves the position to `sequence`. Nothing is queued for an event at or before the
    /// position ([`BayeuxOffer::Old`]).
    pub(crate) fn offer(&self, sequence: u64, messages: &[(&str, Arc<str>)]) -> BayeuxOffer {
        let mut state = self.lock();
        if state.removed.is_some() {
            return BayeuxOffer::Removed;
        }
        if sequence <= state.position {
            return BayeuxOffer::Old;
        }
        state.position = sequence;
        let mut queued = false;
        for (channel_name, json) in messages {
            if !state
                .subscriptions
                .iter()
                .any(|p| channel::matches(p, channel_name))
            {
                continue;
            }
            if state.queue.len() >= self.max_queue {
                return BayeuxOffer::Full;
            }
            state.queue.push_back(Queued {
                sequence,
                json: json.clone(),
            });
            queued = true;
        }
        drop(state);
        if !queued {
            return BayeuxOffer::NotSubscribed;
        }
        self.notify.notify_waiters();
        BayeuxOffer::Queued
    }

    /// Returns the session's position: the last sequence offered to it.
    pub fn position(&self) -> u64 {
        self.lock().position
    }

    /// Returns the subscribed patterns.
    pub fn subscriptions(&self) -> Vec<String> {
        self.lock().subscriptions.clone()
    }

    /// Adoption: drops what was queued for events after `through` and sets the position
    /// to `position` (events after it are offered live from now).
    pub(crate) fn cut_after(&self, through: u64, position: u64) {
        let mut state = self.lock();
        state.queue.retain(|q| q.sequence <= through);
        state.position = position;
    }

    /// Returns how many messages are queued (including sent but unacknowledged ones).
    pub fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    /// Drops the messages the client acknowledged (events up to `position`). A position
    /// beyond the session's (the client received them from another instance of the
    /// cluster, ahead of this one) becomes the session's: those events are not queued
    /// again when they reach this instance.
    pub(crate) fn acknowledge(&self, position: u64) {
        let mut state = self.lock();
        state.queue.retain(|q| q.sequence > position);
        state.position = state.position.max(position);
    }

    /// Takes what a connect reply carries. Without ack the queue is drained; with ack every
    /// unacknowledged message is sent (again) and stays queued until acknowledged, and the
    /// position to put in the reply's `ext.ack` is returned.
    pub(crate) fn take_for_connect(&self) -> (Vec<Arc<str>>, Option<u64>) {
        let mut state = self.lock();
        if self.ack {
            let messages = state.queue.iter().map(|q| q.json.clone()).collect();
            (messages, Some(state.position))
        } else {
            // Taken whole rather than drained, so that an idle session keeps no buffer.
            let queue = std::mem::take(&mut state.queue);
            (queue.into_iter().map(|q| q.json).collect(), None)
        }
    }

    /// Takes the messages a WebSocket pushes at once (none with ack: those wait for the
    /// connect reply, which keeps the total order the extension promises).
    pub(crate) fn take_pushable(&self) -> Vec<Arc<str>> {
        if self.ack {
            return Vec::new();
        }
        let queue = std::mem::take(&mut self.lock().queue);
        queue.into_iter().map(|q| q.json).collect()
    }

    /// Returns whether the session ended, and why.
    pub fn removed(&self) -> Option<BayeuxRemoval> {
        self.lock().removed
    }

    /// Marks the session ended and wakes its transport; returns false if it already was.
    pub(crate) fn mark_removed(&self, reason: BayeuxRemoval) -> bool {
        let mut state = self.lock();
        if state.removed.is_some() {
            return false;
        }
        state.removed = Some(reason);
        state.queue.clear();
        state.subscriptions.clear();
        drop(state);
        self.notify.notify_waiters();
        true
    }

    /// Returns whether a connect reply was already sent (so a new connect may be held).
    pub(crate) fn is_connected(&self) -> bool {
        self.lock().connected
    }

    /// Records a non-connect message: the session lives at least `grace` longer.
    pub(crate) fn touch(&self, now: Instant, grace: Duration) {
        let mut state = self.lock();
        state.expire_at = state.expire_at.max(now + grace);
    }

    /// Records a connect reply written at `now`: the session expires after `grace`.
    pub(crate) fn connect_replied(&self, now: Instant, grace: Duration) {
        let mut state = self.lock();
        state.connected = true;
        state.expire_at = now + grace;
    }

    /// Starts holding a connect and returns its token; an older held long-poll is woken
    /// and sees it was superseded.
    pub(crate) fn begin_hold(&self) -> u64 {
        let mut state = self.lock();
        state.held += 1;
        state.hold_token += 1;
        let token = state.hold_token;
        drop(state);
        self.notify.notify_waiters();
        token
    }

    /// Ends a held connect at `now`, whatever ended it.
    pub(crate) fn end_hold(&self, now: Instant, grace: Duration) {
        let mut state = self.lock();
        state.held = state.held.saturating_sub(1);
        state.expire_at = state.expire_at.max(now + grace);
    }

    /// Returns whether a connect of this session is being held (tests wait for it before
    /// producing the event that should release it).
    pub fn is_held(&self) -> bool {
        self.lock().held > 0
    }

    /// Returns whether a newer long-poll superseded the one holding `token`.
    pub(crate) fn is_superseded(&self, token: u64) -> bool {
        self.lock().hold_token != token
    }

    /// Binds the session to a new WebSocket and returns its token.
    pub(crate) fn adopt_socket(&self) -> u64 {
        let mut state = self.lock();
        state.socket_token += 1;
        let token = state.socket_token;
        drop(state);
        self.notify.notify_waiters();
        token
    }

    /// Returns whether another socket adopted the session after the one holding `token`.
    pub(crate) fn socket_moved(&self, token: u64) -> bool {
        self.lock().socket_token != token
    }

    /// Returns whether the session should be swept at `now`.
    pub(crate) fn is_expired(&self, now: Instant) -> bool {
        let state = self.lock();
        state.held == 0 && state.removed.is_none() && now > state.expire_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(ack: bool, max_queue: usize) -> BayeuxSession {
        let s = BayeuxSession::new(
            "c".into(),
            "u".into(),
            None,
            "http://h".into(),
            None,
            ack,
            max_queue,
            Instant::now(),
            0,
        );
        s.subscribe("/v2/me/*");
        s.subscribe("/v2/me/calls");
        s
    }

    fn calls(json: &str) -> [(&'static str, Arc<str>); 1] {
        [("/v2/me/calls", json.into())]
    }

    #[test]
    fn a_message_matching_two_subscriptions_is_queued_once() {
        let s = session(false, 4);
        assert_eq!(s.offer(1, &calls("{}")), BayeuxOffer::Queued);
        let other = [("/v2/other", Arc::from("{}"))];
        assert_eq!(s.offer(2, &other), BayeuxOffer::NotSubscribed);
        assert_eq!(s.take_for_connect(), (vec![Arc::from("{}")], None));
        assert_eq!(s.queued(), 0);
        assert_eq!(s.position(), 2);
    }

    #[test]
    fn subscriptions_are_a_set() {
        let s = session(false, 4);
        assert!(!s.subscribe("/v2/me/calls"), "already subscribed");
        assert!(s.subscribe("/v2/me/devices"));
        assert_eq!(
            s.subscriptions(),
            vec!["/v2/me/*", "/v2/me/calls", "/v2/me/devices"],
            "in order, once each"
        );
        assert!(s.unsubscribe("/v2/me/*"));
        assert!(!s.unsubscribe("/v2/me/*"), "no longer there");
        assert_eq!(s.subscriptions(), vec!["/v2/me/calls", "/v2/me/devices"]);
        // The queue is taken whole and refilled as before.
        assert_eq!(s.offer(1, &calls("{}")), BayeuxOffer::Queued);
        assert_eq!(s.take_for_connect().0.len(), 1);
        assert_eq!(s.offer(2, &calls("{}")), BayeuxOffer::Queued);
        assert_eq!(s.take_pushable().len(), 1);
        assert_eq!(s.queued(), 0);
    }

    #[test]
    fn the_queue_refuses_past_its_limit() {
        let s = session(false, 2);
        assert_eq!(s.offer(1, &calls("{}")), BayeuxOffer::Queued);
        assert_eq!(s.offer(2, &calls("{}")), BayeuxOffer::Queued);
        assert_eq!(s.offer(3, &calls("{}")), BayeuxOffer::Full);
        assert!(s.mark_removed(BayeuxRemoval::QueueFull));
        assert_eq!(s.offer(4, &calls("{}")), BayeuxOffer::Removed);
        assert_eq!(s.queued(), 0);
    }

    #[test]
    fn with_ack_unacknowledged_messages_are_sent_again_and_the_ack_is_a_position() {
        let s = session(true, 8);
        s.offer(5, &calls("1"));
        let (first, ack) = s.take_for_connect();
        assert_eq!((first.len(), ack), (1, Some(5)));
        s.offer(6, &[("/v2/other", "x".into())]);
        s.offer(9, &calls("2"));
        // The reply acknowledging 5 was lost: the client still acknowledges 0.
        s.acknowledge(0);
        let (again, ack) = s.take_for_connect();
        assert_eq!(again, vec![Arc::from("1"), Arc::from("2")]);
        assert_eq!(ack, Some(9));
        s.acknowledge(9);
        assert_eq!(s.queued(), 0);
        assert!(s.take_pushable().is_empty());
        // An empty reply keeps the position.
        assert_eq!(s.take_for_connect(), (Vec::new(), Some(9)));
    }

    #[test]
    fn an_event_at_or_before_the_position_is_not_queued_again() {
        let s = session(true, 8);
        // Both messages of one event (a device event on two channels) are queued.
        let two = [("/v2/me/calls", Arc::from("a")), ("/v2/me/x", "b".into())];
        assert_eq!(s.offer(3, &two), BayeuxOffer::Queued);
        assert_eq!(s.queued(), 2);
        assert_eq!(s.offer(3, &calls("again")), BayeuxOffer::Old);
        // A client ahead of this instance (it got 7 elsewhere) moves the position.
        s.acknowledge(7);
        assert_eq!(s.offer(6, &calls("seen")), BayeuxOffer::Old);
        assert_eq!(s.offer(8, &calls("new")), BayeuxOffer::Queued);
        assert_eq!(s.take_for_connect(), (vec![Arc::from("new")], Some(8)));
    }
}
