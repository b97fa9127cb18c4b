//! The live Bayeux sessions: by `clientId`, by user (so one core event reaches only its
//! user's sessions without scanning every session), and the per-browser count of held
//! long-polls behind the `multiple-clients` advice. Also the sweeper.
//!
//! The registry also knows how far the bridge has dispatched (`dispatched`, the sequence
//! of the last event handed out, set under the registry lock as the event's sessions are
//! listed): a session made or adopted under that lock starts at that position, so the
//! events after it reach it live and those up to it never do ([`super::session`]).
//!
//! Bounds: at most `max_sessions` sessions; each session's queue is bounded (see
//! [`super::session`]); the browser table only holds browsers with a held long-poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::moving::BayeuxRecords;
use super::session::{BayeuxMessages, BayeuxOffer, BayeuxRemoval, BayeuxSession};
use crate::gws::config::CometdConfig;

/// Why a session could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BayeuxFull;

/// What a new session starts with.
#[derive(Debug, Clone)]
pub struct BayeuxNewSession {
    /// The user.
    pub user: Arc<str>,
    /// The browser cookie value (long-polling) or `None`.
    pub browser_id: Option<String>,
    /// `http://host` of the handshake request.
    pub base_url: String,
    /// The `JSESSIONID` used to authenticate, if any.
    pub http_session: Option<String>,
    /// Whether the client asked for the ack extension.
    pub ack: bool,
}

/// Why an adopted session was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BayeuxAdoptRefused {
    /// The session limit is reached.
    Full,
    /// The bridge dispatched events beyond the replay's end, or started over: replay
    /// again.
    Behind,
}

#[derive(Debug, Default)]
struct RegistryInner {
    sessions: HashMap<Arc<str>, Arc<BayeuxSession>>,
    by_user: HashMap<Arc<str>, HashMap<Arc<str>, Arc<BayeuxSession>>>,
    browsers: HashMap<String, usize>,
    /// The sequence of the last event the bridge dispatched.
    dispatched: u64,
    /// Bumped when the bridge drops every session and starts over (see
    /// [`BayeuxRegistry::start_over`]).
    generation: u64,
}

impl RegistryInner {
    fn insert(&mut self, session: &Arc<BayeuxSession>) {
        self.sessions.insert(session.id.clone(), session.clone());
        metrics::gauge!(crate::admin::names::COMETD_SESSIONS).increment(1.0);
        self.by_user
            .entry(session.user.clone())
            .or_default()
            .insert(session.id.clone(), session.clone());
    }
}

/// The session table of one CometD endpoint.
#[derive(Debug)]
pub struct BayeuxRegistry {
    config: CometdConfig,
    inner: Mutex<RegistryInner>,
    /// Cluster mode: the session records that make sessions movable.
    records: std::sync::OnceLock<Arc<BayeuxRecords>>,
}

impl BayeuxRegistry {
    /// Builds an empty registry.
    pub fn new(config: CometdConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(RegistryInner::default()),
            records: std::sync::OnceLock::new(),
        }
    }

    /// Cluster mode: keeps the records of this registry's ack sessions in `records`, so
    /// another instance can adopt them. Call once, before sessions are made.
    pub fn keep_records(&self, records: Arc<BayeuxRecords>) {
        let _ = self.records.set(records);
    }

    /// Returns the session records, in cluster mode.
    pub fn records(&self) -> Option<&Arc<BayeuxRecords>> {
        self.records.get()
    }

    /// Returns the settings.
    pub fn config(&self) -> &CometdConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, RegistryInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates a session with a fresh random `clientId`, at the bridge's position.
    pub fn create(&self, new: BayeuxNewSession) -> Result<Arc<BayeuxSession>, BayeuxFull> {
        let id: Arc<str> = random_id(24).into();
        let mut inner = self.lock();
        if inner.sessions.len() >= self.config.max_sessions {
            return Err(BayeuxFull);
        }
        let session = Arc::new(BayeuxSession::new(
            id,
            new.user,
            new.browser_id,
            new.base_url,
            new.http_session,
            new.ack,
            self.config.max_queue,
            Instant::now() + self.config.max_interval(),
            inner.dispatched,
        ));
        inner.insert(&session);
        drop(inner);
        if let Some(records) = self.records() {
            records.write(&session, false);
        }
        Ok(session)
    }

    /// Adds a session adopted from another instance ([`super::moving`]) at position
    /// `from`, holding the replay of the events after `from` up to `last`. The events up
    /// to where the bridge dispatched stay queued, later ones are dropped (they come
    /// live), and the session's position becomes the later of `from` and that point.
    /// `generation` is [`Self::generation`] before the replay was read: a bridge that
    /// started over since refuses it ([`BayeuxAdoptRefused::Behind`]). Returns the session
    /// already live under that `clientId` if there is one.
    pub(crate) fn adopt(
        &self,
        session: Arc<BayeuxSession>,
        from: u64,
        last: u64,
        generation: u64,
    ) -> Result<Arc<BayeuxSession>, BayeuxAdoptRefused> {
        let mut inner = self.lock();
        if let Some(live) = inner.sessions.get(&session.id) {
            return Ok(live.clone());
        }
        if inner.dispatched > last || inner.generation != generation {
            return Err(BayeuxAdoptRefused::Behind);
        }
        if inner.sessions.len() >= self.config.max_sessions {
            return Err(BayeuxAdoptRefused::Full);
        }
        session.cut_after(inner.dispatched, from.max(inner.dispatched));
        inner.insert(&session);
        Ok(session)
    }

    /// Marks the bridge starting over (the log's epoch changed, or events were lost):
    /// called before it drops every session, so an adoption whose replay was read before
    /// is refused (`adopt`) or its session is among those dropped.
    pub fn start_over(&self) {
        self.lock().generation += 1;
    }

    /// Returns the count of [`Self::start_over`] calls, for [`Self::adopt`].
    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Sets the bridge's position: where its watch of the core starts (at start, and
    /// after the log started over).
    pub fn start_dispatch_at(&self, sequence: u64) {
        self.lock().dispatched = sequence;
    }

    /// Records a change of a session's subscriptions (cluster mode: its record).
    pub(crate) fn changed(&self, session: &Arc<BayeuxSession>) {
        if let Some(records) = self.records() {
            records.write(session, false);
        }
    }

    /// Records a connect of a session (cluster mode: its record's TTL, now and then).
    pub(crate) fn seen(&self, session: &Arc<BayeuxSession>) {
        if let Some(records) = self.records() {
            records.refresh(session);
        }
    }

    /// Returns a live session.
    pub fn get(&self, client_id: &str) -> Option<Arc<BayeuxSession>> {
        self.lock().sessions.get(client_id).cloned()
    }

    /// Returns how many sessions are live.
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Returns whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ends a session: it leaves the tables, its queue is dropped and its transport woken.
    /// Logs one line when the reason is unusual (at `warn`; `debug` for a disconnect or an
    /// expiry).
    pub fn remove(&self, session: &BayeuxSession, reason: BayeuxRemoval) -> bool {
        let removed = self.unlist(session, reason);
        if removed {
            match reason {
                BayeuxRemoval::Disconnected | BayeuxRemoval::Expired => {
                    tracing::debug!(client_id = %session.id, user = %session.user, reason = reason.as_str(), "bayeux session ended");
                }
                _ => {
                    tracing::warn!(client_id = %session.id, user = %session.user, reason = reason.as_str(), "bayeux session dropped");
                }
            }
        }
        removed
    }

    /// Takes a session out of the tables, marks it removed (waking its transport) and
    /// counts it; returns whether this call removed it.
    fn unlist(&self, session: &BayeuxSession, reason: BayeuxRemoval) -> bool {
        {
            let mut inner = self.lock();
            inner.sessions.remove(&session.id);
            if let Some(of_user) = inner.by_user.get_mut(&session.user) {
                of_user.remove(&session.id);
                if of_user.is_empty() {
                    inner.by_user.remove(&session.user);
                }
            }
        }
        let removed = session.mark_removed(reason);
        if removed && let Some(records) = self.records() {
            records.removed(session, reason);
        }
        if removed {
            metrics::gauge!(crate::admin::names::COMETD_SESSIONS).decrement(1.0);
            metrics::counter!(crate::admin::names::COMETD_SESSIONS_ENDED, "reason" => reason.as_str()).increment(1);
        }
        removed
    }

    /// Ends every session (shutdown, or events lost by the bridge) and logs one line for
    /// all of them: a line per session would be thousands of lines at a drain, written
    /// while the drain runs (a blocked log pipe stalled the 1,000-session drain test's
    /// gateway), and say nothing more than their count. The line is at `info` for a
    /// shutdown (expected) and at `warn` otherwise.
    pub fn remove_all(&self, reason: BayeuxRemoval) -> usize {
        let all: Vec<_> = self.lock().sessions.values().cloned().collect();
        let ended = all.iter().filter(|s| self.unlist(s, reason)).count();
        if reason == BayeuxRemoval::Shutdown {
            tracing::info!(
                sessions = ended,
                reason = reason.as_str(),
                "bayeux sessions ended"
            );
        } else {
            tracing::warn!(
                sessions = ended,
                reason = reason.as_str(),
                "bayeux sessions dropped"
            );
        }
        ended
    }

    /// Delivers the messages of the event numbered `sequence`, each `(channel, json)`, to
    /// every session of `user` subscribed to their channels, and records `sequence` as
    /// dispatched. `render` gets the session's base URL and is called once per distinct
    /// base URL. A session whose queue is full is dropped (see the module docs of
    /// `cometd`). Returns how many sessions queued something.
    pub fn publish_to_user(
        &self,
        user: &str,
        sequence: u64,
        mut render: impl FnMut(&str) -> BayeuxMessages,
    ) -> usize {
        let sessions: Vec<Arc<BayeuxSession>> = {
            let mut inner = self.lock();
            inner.dispatched = inner.dispatched.max(sequence);
            match inner.by_user.get(user) {
                Some(of_user) => of_user.values().cloned().collect(),
                None => return 0,
            }
        };
        let mut rendered: Vec<(&str, BayeuxMessages)> = Vec::new();
        let mut delivered = 0;
        for session in &sessions {
            let index = match rendered
                .iter()
                .position(|(base, _)| *base == session.base_url)
            {
                Some(index) => index,
                None => {
                    rendered.push((&session.base_url, render(&session.base_url)));
                    rendered.len() - 1
                }
            };
            match session.offer(sequence, &rendered[index].1) {
                BayeuxOffer::Queued => delivered += 1,
                BayeuxOffer::Full => {
                    self.remove(session, BayeuxRemoval::QueueFull);
                }
                BayeuxOffer::NotSubscribed | BayeuxOffer::Removed | BayeuxOffer::Old => {}
            }
        }
        delivered
    }

    /// Counts a long-poll about to be held for `browser`; false when the browser already
    /// holds as many as allowed (the caller answers with the `multiple-clients` advice).
    /// `takeover` counts it anyway: it replaces a held long-poll that will release its count.
    pub fn try_hold_browser(&self, browser: &str, takeover: bool) -> bool {
        let mut inner = self.lock();
        let held = inner.browsers.entry(browser.to_owned()).or_insert(0);
        if !takeover && *held >= self.config.max_sessions_per_browser {
            if *held == 0 {
                inner.browsers.remove(browser);
            }
            return false;
        }
        *held += 1;
        true
    }

    /// Releases a long-poll counted by [`Self::try_hold_browser`].
    pub fn release_browser(&self, browser: &str) {
        let mut inner = self.lock();
        if let Some(held) = inner.browsers.get_mut(browser) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                inner.browsers.remove(browser);
            }
        }
    }

    /// Removes the sessions that expired by `now`; returns how many.
    pub fn sweep(&self, now: Instant) -> usize {
        let expired: Vec<_> = self
            .lock()
            .sessions
            .values()
            .filter(|s| s.is_expired(now))
            .cloned()
            .collect();
        expired
            .iter()
            .filter(|s| self.remove(s, BayeuxRemoval::Expired))
            .count()
    }

    /// Runs the sweeper every `sweep_period` until `shutdown`, then ends every session.
    pub async fn run_sweeper(self: Arc<Self>, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(self.config.sweep_period());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticks.tick() => {
                    self.sweep(Instant::now());
                }
            }
        }
        self.remove_all(BayeuxRemoval::Shutdown);
    }
}

/// Returns `len` (at most 24) random base-36 characters. The bits come from two v4 UUIDs
/// (the OS generator): XOR-ing the second, shifted, over the first covers the fixed version
/// and variant bits, so the value carries 128 random bits before it is cut to `len` digits.
pub(crate) fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut bits = uuid::Uuid::new_v4().as_u128() ^ (uuid::Uuid::new_v4().as_u128() << 6);
    (0..len.min(24))
        .map(|_| {
            let digit = (bits % 36) as usize;
            bits /= 36;
            char::from(ALPHABET[digit])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(json: &str) -> BayeuxMessages {
        vec![("/v2/me/calls", json.into())]
    }

    /// A session adopted at position `from`, holding the replay of `replayed` events.
    fn adopted(registry: &BayeuxRegistry, from: u64, replayed: &[u64]) -> Arc<BayeuxSession> {
        let config = registry.config();
        let session = Arc::new(BayeuxSession::new(
            "moved".into(),
            "agent1".into(),
            None,
            "http://h".into(),
            None,
            true,
            config.max_queue,
            Instant::now() + config.max_interval(),
            from,
        ));
        session.subscribe("/v2/me/calls");
        for sequence in replayed {
            session.offer(*sequence, &calls(&sequence.to_string()));
        }
        session
    }

    #[test]
    fn an_adopted_session_keeps_the_replay_up_to_the_dispatch_and_takes_the_rest_live() {
        let registry = BayeuxRegistry::new(CometdConfig::default());
        registry.start_dispatch_at(10);
        registry.publish_to_user("agent1", 12, |_| calls("12"));
        // The replay read the history up to 13: 13 was not dispatched yet, so it is dropped
        // from the replay and comes live, once.
        let session = adopted(&registry, 10, &[11, 12, 13]);
        let session = registry.adopt(session, 10, 13, 0).unwrap();
        assert_eq!(session.position(), 12);
        registry.publish_to_user("agent1", 12, |_| calls("12 again"));
        registry.publish_to_user("agent1", 13, |_| calls("13"));
        let (messages, ack) = session.take_for_connect();
        let messages: Vec<&str> = messages.iter().map(|m| &**m).collect();
        assert_eq!((messages, ack), (vec!["11", "12", "13"], Some(13)));
    }

    #[test]
    fn a_replay_that_ends_before_the_dispatch_is_refused_and_a_live_session_kept() {
        let registry = BayeuxRegistry::new(CometdConfig::default());
        registry.publish_to_user("agent1", 20, |_| calls("20"));
        let session = adopted(&registry, 15, &[16]);
        assert_eq!(
            registry.adopt(session, 15, 19, 0).unwrap_err(),
            BayeuxAdoptRefused::Behind
        );
        // A client ahead of this instance: nothing replayed, the position is the client's.
        let ahead = registry
            .adopt(adopted(&registry, 25, &[]), 25, 20, 0)
            .unwrap();
        assert_eq!(ahead.position(), 25);
        registry.publish_to_user("agent1", 21, |_| calls("21"));
        assert_eq!(ahead.queued(), 0);
        let again = registry
            .adopt(adopted(&registry, 25, &[]), 25, 30, 0)
            .unwrap();
        assert!(Arc::ptr_eq(&again, &ahead), "the live session is kept");
    }
}
