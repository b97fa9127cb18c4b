//! A chaotic CometD client with the ack extension, over long-polling or WebSocket, doing
//! what CometD JS does: handshake with `ext.ack: true`, subscribe `/v2/me/calls` (and
//! `/v2/me/*` for half of them), read its calls (`GET /api/v2/me/calls`, the snapshot a
//! desktop starts from), then the `/meta/connect` loop, each connect carrying `ext.ack` = the
//! batch of the last successful connect reply. A lost connection is followed by a new one
//! and a connect with the same `clientId` (and `advice.timeout: 0`, as CometD JS asks after
//! a failure); `402::Unknown client` or `advice.reconnect: "handshake"` by a new handshake,
//! subscriptions and snapshot (a resync). Messages are not de-duplicated: what the server
//! sends is what is recorded.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use super::journal::Journal;
use super::keys::{CallView, EventKey};
pub use super::link::Transport;
use super::link::{BayeuxLink, HttpLink};
use super::{Chaos, ChaosRng, Lives, keep_connecting, lock};
use crate::setup::{basic_auth, phone, user};

/// Longest wait for a reply other than a held connect.
const REPLY_LIMIT: Duration = Duration::from_secs(10);

/// One CometD client of the run.
#[derive(Debug, Clone)]
pub struct BayeuxSpec {
    /// Its number.
    pub index: usize,
    /// The agent it logs in as.
    pub agent: usize,
    /// Its transport.
    pub transport: Transport,
    /// Whether it also subscribes to `/v2/me/*` (which matches `/v2/me/calls` too).
    pub wildcard: bool,
    /// The HTTP proxy.
    pub addr: SocketAddr,
}

impl BayeuxSpec {
    /// Returns a name for messages.
    pub fn name(&self) -> String {
        let transport = match self.transport {
            Transport::LongPolling => "long-polling",
            Transport::WebSocket => "websocket",
        };
        let wildcard = if self.wildcard { ", also /v2/me/*" } else { "" };
        format!(
            "cometd {} ({transport}{wildcard}) of {}",
            self.index,
            user(self.agent)
        )
    }
}

/// What a client received from one snapshot on.
#[derive(Debug, Clone, Default)]
pub struct CometdSegment {
    /// The calls `GET /api/v2/me/calls` answered after subscribing: (DN, call).
    pub snapshot: BTreeSet<(String, CallView)>,
    /// Every `/v2/me/calls` message after it (`None` if unreadable).
    pub events: Vec<Option<EventKey>>,
    /// The number of events the reference had seen before the client subscribed: those
    /// were committed before the subscription, so the snapshot shows them and no message
    /// brings them.
    pub subscribed_after: u64,
    /// Messages for another user's DN.
    pub foreign: u64,
}

/// What a client did and received.
#[derive(Debug, Clone)]
pub struct CometdRecord {
    /// Its name.
    pub name: String,
    /// Its agent.
    pub agent: usize,
    /// One segment per session (the first, then one per resync).
    pub segments: Vec<CometdSegment>,
    /// How its connections went.
    pub lives: Lives,
    /// Re-handshakes the server asked for.
    pub resyncs: u64,
    /// Replies with the `multiple-clients` advice.
    pub multiple_clients: u64,
    /// New sessions the run asked for at its end (see [`run`]).
    pub renewals: u64,
    /// What happened to it, for a failing run's report.
    pub journal: Journal,
}

/// How far a client got, for the run to wait on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CometdProgress {
    /// The last message received since the last snapshot.
    pub last: Option<EventKey>,
    /// The last snapshot, once a connect reply after it brought no message (nothing was
    /// queued for the session then).
    pub quiet_snapshot: Option<BTreeSet<(String, CallView)>>,
    /// [`CometdSegment::subscribed_after`] of the last snapshot's segment.
    pub subscribed_after: u64,
}

impl CometdProgress {
    /// Returns whether the client has every event of its user once the run committed its
    /// last: it received the user's last event (`last`), or its latest snapshot shows the
    /// user's final `calls`, a connect reply after it brought nothing, and it subscribed
    /// after the reference had seen the first `needed` events of the log, which hold every
    /// event of the user (so none is due as a message). A quiet snapshot of a session that
    /// subscribed earlier proves nothing: the user's calls may have come and gone since,
    /// and their messages be queued still.
    pub fn caught_up(
        &self,
        last: Option<&EventKey>,
        calls: &BTreeSet<(String, CallView)>,
        needed: u64,
    ) -> bool {
        let received_last = last.is_some() && self.last.as_ref() == last;
        let nothing_due =
            self.quiet_snapshot.as_ref() == Some(calls) && self.subscribed_after >= needed;
        received_last || nothing_due
    }
}

/// The session the client has.
#[derive(Debug, Clone)]
struct Session {
    client_id: String,
    /// The ack batch of the last successful connect reply.
    batch: u64,
    /// Whether the server confirmed the subscriptions of this session.
    subscribed: bool,
    /// Whether the snapshot of this session was read.
    synced: bool,
    /// The reference's count of events before the subscriptions were sent (once per
    /// session, so the count bounds the one subscription that may have taken effect).
    subscribed_after: Option<u64>,
}

/// What a connection must do before its connect loop, as far as the session goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// No session: handshake.
    Handshake,
    /// The subscriptions were not sent yet.
    Subscribe,
    /// The snapshot was not read since the subscriptions were confirmed.
    Snapshot,
    /// Ready.
    Connect,
}

struct State {
    spec: BayeuxSpec,
    dn: String,
    authorization: String,
    session: Option<Session>,
    /// `BAYEUX_BROWSER=...`, kept across sessions, as a browser keeps it.
    cookie: Option<String>,
    next_id: u64,
    record: CometdRecord,
    progress: watch::Sender<CometdProgress>,
    ready: bool,
}

/// What a connect reply asks of the client.
enum Next {
    Connect,
    Handshake,
}

impl State {
    fn new(spec: BayeuxSpec, began: Instant, progress: watch::Sender<CometdProgress>) -> Self {
        Self {
            dn: phone(spec.agent),
            authorization: basic_auth(spec.agent),
            session: None,
            cookie: None,
            next_id: 0,
            record: CometdRecord {
                name: spec.name(),
                agent: spec.agent,
                segments: Vec::new(),
                lives: Lives::default(),
                resyncs: 0,
                multiple_clients: 0,
                renewals: 0,
                journal: Journal::new(began),
            },
            spec,
            progress,
            ready: false,
        }
    }

    fn id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    fn connection_type(&self) -> &'static str {
        match self.spec.transport {
            Transport::LongPolling => "long-polling",
            Transport::WebSocket => "websocket",
        }
    }

    fn handshake_message(&mut self) -> Value {
        json!({"id": self.id(), "channel": "/meta/handshake", "version": "1.0",
               "minimumVersion": "1.0", "supportedConnectionTypes": [self.connection_type()],
               "advice": {"timeout": 60000, "interval": 0}, "ext": {"ack": true}})
    }

    /// Returns the subscriptions of a new session; `seen` is the reference's count of
    /// events now, before they are sent.
    fn subscribe_batch(&mut self, client_id: &str, seen: u64) -> Vec<Value> {
        if let Some(session) = self.session.as_mut() {
            session.subscribed_after = Some(seen);
        }
        self.record
            .journal
            .note(format!("subscribe after event {seen} of the reference"));
        let mut channels = vec!["/v2/me/calls"];
        if self.spec.wildcard {
            channels.push("/v2/me/*");
        }
        channels
            .into_iter()
            .map(|channel| {
                json!({"id": self.id(), "channel": "/meta/subscribe", "clientId": client_id,
                       "subscription": channel})
            })
            .collect()
    }

    fn connect_message(&mut self, immediate: bool) -> anyhow::Result<Value> {
        let session = self.session.clone().context("no session")?;
        let mut message = json!({"id": self.id(), "channel": "/meta/connect",
            "clientId": session.client_id, "connectionType": self.connection_type(),
            "ext": {"ack": session.batch}});
        if immediate {
            message["advice"] = json!({"timeout": 0});
        }
        Ok(message)
    }

    /// Forgets a session whose subscriptions were sent but not confirmed (the connection
    /// carrying them, or their replies, died): it may have none, and then would never get
    /// a message; sent again, they would leave unknown which of the two took effect, so
    /// when the messages start. The next connection handshakes again.
    fn forget_unconfirmed(&mut self) {
        if self
            .session
            .as_ref()
            .is_some_and(|s| !s.subscribed && s.subscribed_after.is_some())
        {
            self.session = None;
            self.record
                .journal
                .note("subscriptions unconfirmed: a new session");
        }
    }

    /// Returns what a new connection must do before its connect loop.
    fn setup(&self) -> Setup {
        match &self.session {
            None => Setup::Handshake,
            Some(session) if !session.subscribed => Setup::Subscribe,
            Some(session) if !session.synced => Setup::Snapshot,
            Some(_) => Setup::Connect,
        }
    }

    /// Takes the replies to the subscriptions: confirmed, or refused, which drops the
    /// session (the next connection handshakes again).
    fn take_subscribe(&mut self, replies: &[Value]) -> anyhow::Result<()> {
        let subscribes = replies.iter().filter(|m| m["channel"] == "/meta/subscribe");
        let refused: Vec<_> = subscribes
            .clone()
            .filter(|m| m["successful"] != true)
            .collect();
        if !refused.is_empty() || subscribes.count() == 0 {
            self.session = None;
            anyhow::bail!("subscribe refused: {replies:?}");
        }
        if let Some(session) = self.session.as_mut() {
            session.subscribed = true;
        }
        self.record.journal.note("subscribed");
        Ok(())
    }

    /// Takes the handshake reply; returns the new session's `clientId`.
    fn take_handshake(&mut self, reply: &[Value]) -> anyhow::Result<String> {
        let reply = reply
            .iter()
            .find(|m| m["channel"] == "/meta/handshake")
            .context("no handshake reply")?;
        anyhow::ensure!(reply["successful"] == true, "handshake refused: {reply}");
        anyhow::ensure!(
            reply.pointer("/ext/ack") == Some(&json!(true)),
            "the server did not accept the ack extension: {reply}"
        );
        let client_id = reply["clientId"]
            .as_str()
            .context("no clientId")?
            .to_owned();
        self.session = Some(Session {
            client_id: client_id.clone(),
            batch: 0,
            subscribed: false,
            synced: false,
            subscribed_after: None,
        });
        self.record
            .journal
            .note(format!("handshake: clientId {client_id}"));
        Ok(client_id)
    }

    /// Starts a segment with the snapshot read after subscribing.
    fn take_snapshot(&mut self, body: &Value) -> anyhow::Result<bool> {
        let calls = body["calls"]
            .as_array()
            .context("no calls in the snapshot")?;
        let snapshot = calls
            .iter()
            .map(|c| CallView::from_json(c).map(|view| (self.dn.clone(), view)))
            .collect::<Option<BTreeSet<_>>>()
            .with_context(|| format!("an unreadable snapshot: {body}"))?;
        self.record
            .journal
            .note(format!("snapshot: {} calls", snapshot.len()));
        let subscribed_after = self
            .session
            .as_ref()
            .and_then(|s| s.subscribed_after)
            .unwrap_or(0);
        self.record.segments.push(CometdSegment {
            snapshot,
            subscribed_after,
            ..CometdSegment::default()
        });
        self.progress.send_replace(CometdProgress {
            subscribed_after,
            ..CometdProgress::default()
        });
        if let Some(session) = self.session.as_mut() {
            session.synced = true;
        }
        let first = !self.ready;
        self.ready = true;
        Ok(first)
    }

    /// Takes the messages that came with a connect reply, in order (the CometD ack
    /// extension reads `ext.ack` of a successful connect reply only).
    fn take_connect(&mut self, messages: &[Value]) -> anyhow::Result<Next> {
        let mut next = None;
        let mut delivered = Vec::new();
        for message in messages {
            match message["channel"].as_str() {
                Some("/v2/me/calls") => {
                    delivered.push(self.take_call_message(&message["data"])?);
                }
                Some("/meta/connect") => {
                    let batch = message.pointer("/ext/ack");
                    let advice = message.get("advice");
                    let error = message.get("error");
                    self.record.journal.note(format!(
                        "connect reply: successful {}, ack {batch:?}, advice {advice:?}, error {error:?}; {} messages: {}",
                        message["successful"],
                        delivered.len(),
                        describe(&delivered),
                    ));
                    next = Some(self.take_connect_reply(message)?);
                }
                _ => {}
            }
        }
        let delivered = !delivered.is_empty();
        let next = next.context("no connect reply")?;
        if !delivered
            && matches!(next, Next::Connect)
            && let Some(segment) = self.record.segments.last()
            && segment.events.is_empty()
        {
            let snapshot = segment.snapshot.clone();
            self.progress
                .send_modify(|p| p.quiet_snapshot = Some(snapshot));
        }
        Ok(next)
    }

    fn take_call_message(&mut self, data: &Value) -> anyhow::Result<Option<EventKey>> {
        let segment = self
            .record
            .segments
            .last_mut()
            .context("a message before the snapshot")?;
        if data["phoneNumber"].as_str() != Some(self.dn.as_str()) {
            segment.foreign += 1;
        }
        let key = EventKey::from_json(data);
        segment.events.push(key.clone());
        self.progress.send_modify(|p| {
            p.last = key.clone();
            p.quiet_snapshot = None;
        });
        Ok(key)
    }

    fn take_connect_reply(&mut self, reply: &Value) -> anyhow::Result<Next> {
        let reconnect = reply.pointer("/advice/reconnect").and_then(Value::as_str);
        if reply.pointer("/advice/multiple-clients") == Some(&json!(true)) {
            self.record.multiple_clients += 1;
        }
        if reply["successful"] != true {
            let unknown = reply["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("402"));
            anyhow::ensure!(
                unknown || reconnect == Some("handshake"),
                "connect failed: {reply}"
            );
            return Ok(self.drop_session());
        }
        if let (Some(batch), Some(session)) = (
            reply.pointer("/ext/ack").and_then(Value::as_u64),
            self.session.as_mut(),
        ) {
            session.batch = batch;
        }
        match reconnect {
            Some("handshake") => Ok(self.drop_session()),
            Some("none") => anyhow::bail!("the server said reconnect none: {reply}"),
            _ => Ok(Next::Connect),
        }
    }

    fn drop_session(&mut self) -> Next {
        self.session = None;
        self.record.resyncs += 1;
        Next::Handshake
    }
}

/// Describes the messages of a reply for the journal: the first and the last.
fn describe(keys: &[Option<EventKey>]) -> String {
    let one = |key: &Option<EventKey>| match key {
        Some(key) => key.short(),
        None => "unreadable".into(),
    };
    match keys {
        [] => String::new(),
        [only] => one(only),
        [first, .., last] => format!("{} .. {}", one(first), one(last)),
    }
}

/// Runs the client until the run stops; returns what it received. `renew` asks it to
/// start a new session: the run does so at its end for a client whose session received
/// nothing and subscribed so close to its user's last event that the reference's count
/// cannot tell whether that event came before the subscription (then the snapshot shows
/// it and no message is due) or after (then a message is); a session subscribed once every
/// event was committed can tell.
pub async fn run(
    spec: BayeuxSpec,
    chaos: Chaos,
    mut rng: ChaosRng,
    progress: watch::Sender<CometdProgress>,
    renew: Arc<Notify>,
) -> CometdRecord {
    let index = spec.index;
    let state = Arc::new(Mutex::new(State::new(spec, chaos.began, progress)));
    let away = index < chaos.plan.away;
    let lives = keep_connecting(
        &chaos,
        &mut rng,
        away,
        || one_life(state.clone(), chaos.clone(), renew.clone()),
        |how| lock(&state).record.journal.note(how),
    )
    .await;
    let mut record = lock(&state).record.clone();
    record.lives = lives;
    record
}

/// Sends a batch on the link with the client's credentials and browser cookie (keeping
/// a new one the server sets); returns the messages of the answer.
async fn send(
    state: &Mutex<State>,
    link: &mut BayeuxLink,
    suffix: &str,
    batch: Vec<Value>,
    limit: Duration,
) -> anyhow::Result<Vec<Value>> {
    let (authorization, cookie) = {
        let state = lock(state);
        (state.authorization.clone(), state.cookie.clone())
    };
    let (messages, set_cookie) = link
        .send(&authorization, cookie.as_deref(), suffix, &batch, limit)
        .await?;
    if set_cookie.is_some() {
        lock(state).cookie = set_cookie;
    }
    Ok(messages)
}

/// One connection: a session if there is none, its snapshot if not read yet, then the
/// connect loop until something ends it.
async fn one_life(
    state: Arc<Mutex<State>>,
    chaos: Chaos,
    renew: Arc<Notify>,
) -> anyhow::Result<()> {
    let (transport, addr, authorization) = {
        let state = lock(&state);
        (
            state.spec.transport,
            state.spec.addr,
            state.authorization.clone(),
        )
    };
    let opening = match &lock(&state).session {
        Some(session) => format!("open a link for clientId {}", session.client_id),
        None => "open a link for a new session".into(),
    };
    lock(&state).record.journal.note(opening);
    let mut link = BayeuxLink::open(transport, addr, &authorization).await?;
    lock(&state).forget_unconfirmed();
    if lock(&state).setup() == Setup::Handshake {
        let handshake = lock(&state).handshake_message();
        let reply = send(
            &state,
            &mut link,
            "/handshake",
            vec![handshake],
            REPLY_LIMIT,
        )
        .await?;
        lock(&state).take_handshake(&reply)?;
    }
    if lock(&state).setup() == Setup::Subscribe {
        let batch = {
            let mut state = lock(&state);
            let client_id = state
                .session
                .as_ref()
                .context("no session")?
                .client_id
                .clone();
            state.subscribe_batch(&client_id, *chaos.events.borrow())
        };
        let replies = send(&state, &mut link, "/", batch, REPLY_LIMIT).await?;
        lock(&state).take_subscribe(&replies)?;
    }
    if lock(&state).setup() == Setup::Snapshot {
        read_snapshot(&state, &mut link, &chaos).await?;
    }
    let limit = Duration::from_millis(chaos.plan.cometd_timeout_ms) + REPLY_LIMIT;
    let mut immediate = true;
    loop {
        let connect = lock(&state).connect_message(immediate)?;
        let ack = connect.pointer("/ext/ack").cloned();
        lock(&state)
            .record
            .journal
            .note(format!("connect, ack {ack:?}, immediate {immediate}"));
        let reply = tokio::select! {
            reply = send(&state, &mut link, "/connect", vec![connect], limit) => reply?,
            () = renew.notified() => {
                let mut state = lock(&state);
                state.session = None;
                state.record.renewals += 1;
                state.record.journal.note("renewed at the run's request");
                return Ok(());
            }
        };
        match lock(&state).take_connect(&reply)? {
            Next::Connect => immediate = false,
            Next::Handshake => return Ok(()),
        }
    }
}

/// Reads the user's calls over HTTP (on the long-polling link, or on a connection of its
/// own for a WebSocket client) and starts a segment with them.
async fn read_snapshot(
    state: &Mutex<State>,
    link: &mut BayeuxLink,
    chaos: &Chaos,
) -> anyhow::Result<()> {
    let (addr, authorization) = {
        let state = lock(state);
        (state.spec.addr, state.authorization.clone())
    };
    let mut own;
    let http = match link {
        BayeuxLink::Http(http) => http,
        BayeuxLink::Ws(_) => {
            own = HttpLink::open(addr).await?;
            &mut own
        }
    };
    let reply = http
        .request(
            http::Method::GET,
            "/api/v2/me/calls?fields=*",
            &[("authorization", &authorization)],
            None,
            REPLY_LIMIT,
        )
        .await?;
    anyhow::ensure!(reply.status == 200, "GET calls: HTTP {}", reply.status);
    if lock(state).take_snapshot(&reply.body)? {
        chaos.ready();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        let spec = BayeuxSpec {
            index: 0,
            agent: 0,
            transport: Transport::LongPolling,
            wildcard: false,
            addr: "127.0.0.1:9".parse().unwrap(),
        };
        State::new(
            spec,
            Instant::now(),
            watch::channel(CometdProgress::default()).0,
        )
    }

    fn handshake(state: &mut State, client_id: &str) {
        let reply = json!({"channel": "/meta/handshake", "successful": true,
                           "clientId": client_id, "ext": {"ack": true}});
        state.take_handshake(&[reply]).unwrap();
    }

    #[test]
    fn a_session_whose_subscription_was_not_confirmed_is_replaced() {
        let mut state = state();
        state.forget_unconfirmed();
        assert_eq!(state.setup(), Setup::Handshake);
        handshake(&mut state, "c1");
        assert_eq!(state.setup(), Setup::Subscribe);
        // The connection dies before the subscribe replies: the session may have no
        // subscription, and would never get a message. The next connection starts over.
        state.subscribe_batch("c1", 5);
        state.forget_unconfirmed();
        assert_eq!(state.setup(), Setup::Handshake);
        handshake(&mut state, "c2");
        let batch = state.subscribe_batch("c2", 9);
        assert_eq!(batch[0]["subscription"], "/v2/me/calls");
        assert_eq!(batch[0]["clientId"], "c2");
        let confirmed = json!({"channel": "/meta/subscribe", "successful": true,
                               "subscription": "/v2/me/calls"});
        state.take_subscribe(&[confirmed]).unwrap();
        state.forget_unconfirmed();
        assert_eq!(state.setup(), Setup::Snapshot);
        state.take_snapshot(&json!({"calls": []})).unwrap();
        assert_eq!(state.setup(), Setup::Connect);
        // The count before the one subscription of the session bounds its snapshot.
        assert_eq!(state.record.segments[0].subscribed_after, 9);
    }

    #[test]
    fn a_refused_subscription_drops_the_session() {
        let mut state = state();
        handshake(&mut state, "c1");
        let refused = json!({"channel": "/meta/subscribe", "successful": false,
                             "error": "402::Unknown client"});
        assert!(state.take_subscribe(&[refused]).is_err());
        assert_eq!(state.setup(), Setup::Handshake);
    }

    fn released(id: &str) -> EventKey {
        EventKey {
            notification: "StatusChange".into(),
            view: CallView {
                id: id.into(),
                state: "Released".into(),
                ..CallView::default()
            },
        }
    }

    #[test]
    fn a_quiet_snapshot_proves_nothing_before_the_users_last_event() {
        let last = released("c9");
        let none = BTreeSet::new();
        let quiet = |subscribed_after| CometdProgress {
            last: None,
            quiet_snapshot: Some(BTreeSet::new()),
            subscribed_after,
        };
        // The user's last event is the reference's 40th: a session subscribed after 39
        // events may still have it queued, though its snapshot already looks final.
        assert!(!quiet(39).caught_up(Some(&last), &none, 40));
        assert!(quiet(40).caught_up(Some(&last), &none, 40));
        let received = CometdProgress {
            last: Some(last.clone()),
            ..quiet(0)
        };
        assert!(received.caught_up(Some(&last), &none, 40));
        let elsewhere = CometdProgress {
            last: Some(released("c8")),
            quiet_snapshot: None,
            subscribed_after: 0,
        };
        assert!(!elsewhere.caught_up(Some(&last), &none, 40));
    }
}
