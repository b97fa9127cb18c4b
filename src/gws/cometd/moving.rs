//! Movable sessions (cluster mode, issue 16): a CometD session with the ack extension is
//! kept as a record in the cluster engine ([`crate::cluster::SessionRecords`]), so that
//! another instance can **adopt** it when the client's connect reaches it (its instance
//! died or drained, and the load balancer sent the `BAYEUX_BROWSER` cookie elsewhere),
//! without a new handshake.
//!
//! # Records
//! [`BayeuxRecords`] writes a session's record when it is made and when its subscriptions
//! change, extends its TTL on a connect at most every quarter of the TTL (not one engine
//! write per connect), and deletes it when the session ends here (disconnect, expiry,
//! queue limit, log started over). A drain (shutdown) keeps the records: the sessions
//! move. Writes go through one task in order, coalesced per `clientId` (the latest wins),
//! so the request path never waits for the engine; a write that fails (engine down) is
//! retried. A write refused because the record names another owner means the session
//! moved there: it is dropped here ([`BayeuxRemoval::Moved`]).
//!
//! # Adoption
//! A `/meta/connect` for a `clientId` this instance does not know, carrying an `ext.ack`
//! position, looks the record up (`adopt`). The session is adopted when:
//! - the record exists and the ack extension is on (sessions without ack have no
//!   position: their clients get `402::Unknown client` and handshake again, as before);
//! - on long-polling, the request's `BAYEUX_BROWSER` cookie is the record's (the trust a
//!   `clientId` gets on its own instance); a WebSocket adopts by `clientId` as on its
//!   own instance;
//! - a record made by a `JSESSIONID` handshake comes with credentials valid here for the
//!   same user (Basic, or an HTTP session of this instance): HTTP sessions live in one
//!   instance's memory, so the old one means nothing here;
//! - the record's epoch is the log's here, and the history here still holds the events
//!   after the client's position.
//!
//! The adopted session gets the record's subscriptions, the user's events after the
//! client's position from the history (the same history `WatchCalls` resumes from), then
//! live events. The seam between the two is the registry's `dispatched` position
//! (`BayeuxRegistry::adopt`): the replay keeps what the bridge had dispatched before the
//! session was listed, the bridge delivers what came after, and an event at or before the
//! session's position is never queued again; so no event is replayed and delivered live.
//! A bridge that starts over (the log's epoch changed) between the replay and the listing
//! makes the adoption replay again, and then refuse: the epoch no longer matches.
//! Otherwise the usual `402::Unknown client` with `advice.reconnect: "handshake"`.
//!
//! # The instance the session left
//! If it is still alive (it was paused, or the balancer moved the client in a storm), it
//! keeps the session until its next record write is refused (then it drops it, answering
//! a held connect with `reconnect: "retry"` and no `ext.ack`, so the client comes back
//! with its position and is adopted anew) or it expires; it cannot delete or overwrite
//! the new owner's record. A client sent back to it meanwhile is still served right: its
//! `ext.ack` names a position of the shared log, so the old queue drops what the client
//! received elsewhere and holds every later event (nothing was taken from it while the
//! client was away). What a client can see twice is nothing; what it can miss is nothing
//! while the history reaches back to its position. Known limit: if the instance it moved
//! to then sweeps its copy, that deletes the record until the old instance's next refresh
//! writes it again; a crash in between costs the client a new handshake.
//!
//! # Trust
//! Adoption asks no more than the session's own instance asks of a connect: the
//! `clientId` (a 124-bit random id) and, on long-polling, the browser cookie it was made
//! with. Looking up an unknown `clientId` costs one engine read per connect that carries
//! an `ext.ack`; such a connect is answered `402` anyway when there is no record.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::BayeuxEndpoint;
use super::bridge;
use super::message::BayeuxMessage;
use super::protocol::{self, BayeuxTransport};
use super::registry::{BayeuxAdoptRefused, BayeuxRegistry};
use super::session::{BayeuxRemoval, BayeuxSession};
use crate::cluster::{SessionRecord, SessionRecords};
use crate::core::CallControl;
use crate::gws::auth::BayeuxCredentials;

/// How long a failed record write waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// How many times an adoption replays when the bridge moved on during the replay.
const REPLAY_ATTEMPTS: usize = 4;

/// A pending record write.
#[derive(Debug)]
enum Write {
    /// Write the session's record as it is when written; `adopt` takes it from another owner.
    Put {
        session: Weak<BayeuxSession>,
        adopt: bool,
    },
    /// Delete the record if this instance owns it.
    Delete,
}

/// The records of one instance's movable sessions (see the module docs).
pub struct BayeuxRecords {
    store: Arc<dyn SessionRecords>,
    /// This instance's id: the records' owner.
    owner: String,
    core: Arc<CallControl>,
    ttl: Duration,
    /// Writes not done yet, by `clientId`: at most one per session.
    pending: Mutex<HashMap<Arc<str>, Write>>,
    /// When each session's record was last written (for the TTL refresh).
    written: Mutex<HashMap<Arc<str>, Instant>>,
    wake: Notify,
}

impl std::fmt::Debug for BayeuxRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BayeuxRecords")
            .field("owner", &self.owner)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl BayeuxRecords {
    /// Builds the records of the instance `owner` in `store`, each living `ttl` past its
    /// last write.
    pub fn new(
        store: Arc<dyn SessionRecords>,
        owner: String,
        core: Arc<CallControl>,
        ttl: Duration,
    ) -> Self {
        Self {
            store,
            owner,
            core,
            ttl,
            pending: Mutex::default(),
            written: Mutex::default(),
            wake: Notify::new(),
        }
    }

    /// Returns the TTL a record of a session with these settings gets: a held connect, a
    /// session's life after a connect reply, and as much again for the refresh to land.
    pub fn ttl_for(config: &crate::gws::config::CometdConfig) -> Duration {
        let connect = Duration::from_millis(config.timeout_ms) + config.expiry_after_connect();
        (connect * 2).max(Duration::from_secs(5))
    }

    /// Queues a write of `session`'s record (ack sessions only: no other can move).
    pub(crate) fn write(&self, session: &Arc<BayeuxSession>, adopt: bool) {
        if !session.ack {
            return;
        }
        lock(&self.written).insert(session.id.clone(), Instant::now());
        let mut pending = lock(&self.pending);
        // A pending adoption stays one: a later write of the same session must not lose
        // the takeover.
        let adopt = adopt
            || matches!(
                pending.get(&session.id),
                Some(Write::Put { adopt: true, .. })
            );
        let put = Write::Put {
            session: Arc::downgrade(session),
            adopt,
        };
        pending.insert(session.id.clone(), put);
        drop(pending);
        self.wake.notify_one();
    }

    /// Extends the record's TTL if its last write is older than a quarter of the TTL.
    pub(crate) fn refresh(&self, session: &Arc<BayeuxSession>) {
        let due = lock(&self.written)
            .get(&session.id)
            .is_none_or(|at| at.elapsed() >= self.ttl / 4);
        if due {
            self.write(session, false);
        }
    }

    /// Forgets a session that ended here; its record is deleted unless it moved (another
    /// instance owns it) or the gateway drains (it moves next).
    pub(crate) fn removed(&self, session: &BayeuxSession, reason: BayeuxRemoval) {
        if !session.ack {
            return;
        }
        lock(&self.written).remove(&session.id);
        let write = match reason {
            BayeuxRemoval::Moved | BayeuxRemoval::Shutdown => {
                lock(&self.pending).remove(&session.id);
                return;
            }
            _ => Write::Delete,
        };
        lock(&self.pending).insert(session.id.clone(), write);
        self.wake.notify_one();
    }

    fn record_of(&self, session: &BayeuxSession) -> SessionRecord {
        SessionRecord {
            client_id: session.id.to_string(),
            owner: self.owner.clone(),
            user: session.user.to_string(),
            browser_id: session.browser_id.clone(),
            http_session: session.http_session.is_some(),
            subscriptions: session.subscriptions(),
            ack: session.ack,
            epoch: self.core.log_position().0.to_string(),
        }
    }

    /// Runs the writes until `shutdown`, then makes one last bounded pass (a drain keeps
    /// the records, so the sessions made just before it are movable too).
    pub async fn run(self: Arc<Self>, registry: Weak<BayeuxRegistry>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
            }
            if !self.flush(&registry).await {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(RETRY_AFTER) => self.wake.notify_one(),
                }
            }
        }
        let _ = tokio::time::timeout(RETRY_AFTER, self.flush(&registry)).await;
    }

    /// Does the pending writes; returns false if one failed (it stays pending).
    async fn flush(&self, registry: &Weak<BayeuxRegistry>) -> bool {
        let writes: Vec<(Arc<str>, Write)> = lock(&self.pending).drain().collect();
        let mut ok = true;
        for (client_id, write) in writes {
            let result = match &write {
                Write::Put { session, adopt } => {
                    let Some(session) = session.upgrade() else {
                        continue;
                    };
                    if session.removed().is_some() {
                        continue;
                    }
                    let record = self.record_of(&session);
                    let written = self.store.put(&record, self.ttl, *adopt).await;
                    if let Ok(false) = written
                        && let Some(registry) = registry.upgrade()
                    {
                        registry.remove(&session, BayeuxRemoval::Moved);
                    }
                    written.map(|_| ())
                }
                Write::Delete => self.store.delete(&client_id, &self.owner).await,
            };
            if let Err(error) = result {
                tracing::debug!(%client_id, %error, "bayeux session record not written; retried");
                ok = false;
                lock(&self.pending).entry(client_id).or_insert(write);
            }
        }
        ok
    }
}

/// What the request offers for an adoption.
#[derive(Debug)]
pub(crate) struct BayeuxArrival<'a> {
    /// The transport.
    pub transport: BayeuxTransport,
    /// The request's credentials.
    pub credentials: &'a BayeuxCredentials,
    /// The request's `BAYEUX_BROWSER` cookie.
    pub browser_cookie: Option<&'a str>,
    /// The request's base URL.
    pub base_url: &'a str,
}

/// Adopts the session of the batch's `/meta/connect` if this instance does not know its
/// `clientId` and its record allows it (see the module docs); does nothing otherwise, so
/// the batch then gets the usual `402::Unknown client`.
pub(crate) async fn adopt(
    endpoint: &BayeuxEndpoint,
    batch: &[BayeuxMessage],
    arrival: BayeuxArrival<'_>,
) {
    let registry = &endpoint.registry;
    let Some(records) = registry.records() else {
        return;
    };
    if protocol::has_handshake(batch) {
        return;
    }
    let Some((client_id, from)) = batch.iter().find_map(|m| {
        (m.channel() == Some("/meta/connect"))
            .then(|| Some((m.client_id()?, m.ack_batch()?)))
            .flatten()
    }) else {
        return;
    };
    if registry.get(client_id).is_some() {
        return;
    }
    let record = match records.store.get(client_id).await {
        Ok(Some(record)) => record,
        Ok(None) => return,
        Err(error) => {
            tracing::debug!(%client_id, %error, "bayeux session record unreadable");
            return;
        }
    };
    match adopt_record(endpoint, records, &record, from, &arrival).await {
        Ok(session) => {
            records.write(&session, true);
            tracing::info!(%client_id, user = %record.user, from, queued = session.queued(), "bayeux session adopted from another instance");
        }
        Err(why) => {
            tracing::info!(%client_id, user = %record.user, from, why, "bayeux session not adopted: the client handshakes again");
        }
    }
}

async fn adopt_record(
    endpoint: &BayeuxEndpoint,
    records: &BayeuxRecords,
    record: &SessionRecord,
    from: u64,
    arrival: &BayeuxArrival<'_>,
) -> Result<Arc<BayeuxSession>, &'static str> {
    if !record.ack {
        return Err("no ack extension");
    }
    if arrival.transport == BayeuxTransport::LongPolling
        && (record.browser_id.is_none() || record.browser_id.as_deref() != arrival.browser_cookie)
    {
        return Err("another browser cookie");
    }
    let http_session = if record.http_session {
        match arrival.credentials.authenticate(&endpoint.state).await {
            Ok(identity) if *identity.user == *record.user => identity.http_session,
            _ => return Err("its HTTP session is another instance's and no credentials came"),
        }
    } else {
        None
    };
    let registry = &endpoint.registry;
    let config = registry.config();
    for _ in 0..REPLAY_ATTEMPTS {
        let generation = registry.generation();
        let (epoch, last, events) = records
            .core
            .user_events_after(&record.user, from)
            .map_err(|_| "its position is no longer in the history")?;
        if *epoch != *record.epoch {
            return Err("the log started over");
        }
        let session = Arc::new(BayeuxSession::new(
            record.client_id.as_str().into(),
            record.user.as_str().into(),
            record.browser_id.clone(),
            arrival.base_url.to_owned(),
            http_session.clone(),
            true,
            config.max_queue,
            Instant::now() + config.max_interval(),
            from,
        ));
        for pattern in &record.subscriptions {
            session.subscribe(pattern);
        }
        for event in &events {
            let messages = bridge::messages(event, arrival.base_url);
            if session.offer(event.sequence(), &messages) == super::session::BayeuxOffer::Full {
                return Err("the replay exceeds the queue limit");
            }
        }
        match registry.adopt(session, from, last, generation) {
            Ok(session) => return Ok(session),
            Err(BayeuxAdoptRefused::Full) => return Err("the session limit is reached"),
            Err(BayeuxAdoptRefused::Behind) => {}
        }
    }
    Err("the log moved on during the replay")
}
