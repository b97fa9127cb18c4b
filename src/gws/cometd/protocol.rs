//! The transport-independent half of the Bayeux server: one batch of messages in, its
//! replies out, plus what the transport must do about a `/meta/connect` (answer now or
//! hold). Long-polling and WebSocket share it, so both speak exactly the same protocol.
//!
//! Hand-written on purpose: no Rust crate implements a Bayeux server faithfully enough
//! for CometD 3 clients (held connects, `BAYEUX_BROWSER` trust, advice, ack).

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::time::{Duration, Instant};

use super::channel;
use super::message::{self as msg, BayeuxMessage, BayeuxReply};
use super::registry::{BayeuxNewSession, BayeuxRegistry};
use super::session::{BayeuxRemoval, BayeuxSession};
use crate::app::AppState;
use crate::core::{CoreError, ErrorKind};
use crate::gws::auth::BayeuxAuth;

/// The transport a batch arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BayeuxTransport {
    /// HTTP POST long-polling.
    LongPolling,
    /// Frames on a WebSocket.
    WebSocket,
}

/// What the processor needs to know about the request.
#[derive(Debug)]
pub struct BayeuxContext<'a> {
    /// Shared gateway state (sessions, core).
    pub state: &'a AppState,
    /// The CometD sessions.
    pub registry: &'a BayeuxRegistry,
    /// The transport.
    pub transport: BayeuxTransport,
    /// The authentication of the batch's handshake, when it has one (see
    /// [`has_handshake`]); `None` refuses a handshake.
    pub identity: Option<&'a BayeuxAuth>,
    /// `http://host` of the request.
    pub base_url: &'a str,
    /// Long-polling: the request's `BAYEUX_BROWSER` cookie, which must match the session's.
    pub browser_cookie: Option<&'a str>,
    /// The browser id a new session is recorded under.
    pub browser_for_new: Option<&'a str>,
    /// WebSocket: the session bound to the socket.
    pub bound: Option<Arc<BayeuxSession>>,
}

/// A `/meta/connect` of the batch, for the transport to answer.
#[derive(Debug)]
pub struct BayeuxConnect {
    /// The session.
    pub session: Arc<BayeuxSession>,
    /// Index of the connect reply in [`BayeuxOutcome::replies`].
    pub reply_index: usize,
    /// How long to hold it; `None` answers at once.
    pub hold: Option<Duration>,
}

/// The result of one batch.
#[derive(Debug, Default)]
pub struct BayeuxOutcome {
    /// Replies in request order.
    pub replies: Vec<BayeuxReply>,
    /// The (last) connect of the batch.
    pub connect: Option<BayeuxConnect>,
    /// The session a handshake created, or the last one a message resolved to.
    pub session: Option<Arc<BayeuxSession>>,
    /// Whether a handshake succeeded.
    pub handshake_ok: bool,
}

/// Returns whether a batch holds a handshake, which the transport must authenticate first.
pub fn has_handshake(batch: &[BayeuxMessage]) -> bool {
    batch.iter().any(|m| m.channel() == Some("/meta/handshake"))
}

/// Processes a batch.
pub fn process(ctx: &BayeuxContext<'_>, batch: &[BayeuxMessage]) -> BayeuxOutcome {
    let mut out = BayeuxOutcome::default();
    if has_handshake(batch) && batch.len() > 1 {
        out.replies = batch
            .iter()
            .map(|m| BayeuxReply::to(m).error(msg::HANDSHAKE_NOT_ALONE))
            .collect();
        return out;
    }
    let lone = batch.len() == 1;
    for message in batch {
        let reply = one(ctx, message, lone, &mut out);
        out.replies.push(reply);
    }
    out
}

fn one(
    ctx: &BayeuxContext<'_>,
    m: &BayeuxMessage,
    lone: bool,
    out: &mut BayeuxOutcome,
) -> BayeuxReply {
    if m.has_invalid_id() {
        return BayeuxReply::to(m).error(msg::ID_INVALID);
    }
    let Some(name) = m.channel() else {
        return BayeuxReply::to(m).error(msg::NO_CHANNEL);
    };
    if !channel::is_valid(name) {
        return BayeuxReply::to(m).error(msg::CHANNEL_INVALID);
    }
    if name == "/meta/handshake" {
        return handshake(ctx, m, out);
    }
    let Some(session) = resolve(ctx, m) else {
        let reply = BayeuxReply::to(m).error(msg::UNKNOWN_CLIENT);
        return if name == "/meta/connect" {
            reply.with("advice", msg::handshake_advice())
        } else {
            reply
        };
    };
    out.session = Some(session.clone());
    if name == "/meta/connect" {
        let (reply, hold) = connect(ctx, m, &session, lone);
        if reply.is_successful() {
            out.connect = Some(BayeuxConnect {
                session,
                reply_index: out.replies.len(),
                hold,
            });
        }
        return reply;
    }
    session.touch(Instant::now(), ctx.registry.config().max_interval());
    match name {
        "/meta/subscribe" => changed(ctx, &session, subscribe(m, &session)),
        "/meta/unsubscribe" => changed(ctx, &session, unsubscribe(m, &session)),
        "/meta/disconnect" => {
            ctx.registry.remove(&session, BayeuxRemoval::Disconnected);
            BayeuxReply::to(m).ok()
        }
        _ if channel::is_meta(name) => {
            BayeuxReply::to(m).error(&format!("404:{name}:Unknown Channel"))
        }
        _ if channel::is_service(name) && !channel::is_wildcard(name) => BayeuxReply::to(m).ok(),
        _ => BayeuxReply::to(m).error(msg::PUBLISH_DENIED),
    }
}

/// Finds the session a message belongs to. Long-polling trusts a `clientId` only with the
/// `BAYEUX_BROWSER` cookie it was handshaken with (CometD ≥ 3.0.6); a WebSocket uses the
/// session bound to it, or adopts one by `clientId` (its first frame after an HTTP handshake).
fn resolve(ctx: &BayeuxContext<'_>, m: &BayeuxMessage) -> Option<Arc<BayeuxSession>> {
    let session = match (&ctx.bound, ctx.transport) {
        (Some(bound), BayeuxTransport::WebSocket) => bound.clone(),
        (None, BayeuxTransport::WebSocket) => ctx.registry.get(m.client_id()?)?,
        (_, BayeuxTransport::LongPolling) => {
            let session = ctx.registry.get(m.client_id()?)?;
            if session.browser_id.is_none() || session.browser_id.as_deref() != ctx.browser_cookie {
                return None;
            }
            session
        }
    };
    session.removed().is_none().then_some(session)
}

/// Records a subscription change that succeeded (cluster mode: the session's record).
fn changed(
    ctx: &BayeuxContext<'_>,
    session: &Arc<BayeuxSession>,
    reply: BayeuxReply,
) -> BayeuxReply {
    if reply.is_successful() {
        ctx.registry.changed(session);
    }
    reply
}

fn handshake(ctx: &BayeuxContext<'_>, m: &BayeuxMessage, out: &mut BayeuxOutcome) -> BayeuxReply {
    let config = ctx.registry.config();
    let offered = config.connection_types();
    if let Some(types) = m.connection_types()
        && !types.iter().any(|t| offered.contains(t))
    {
        return BayeuxReply::to(m)
            .error(msg::NO_COMMON_TRANSPORT)
            .with("advice", json!({"reconnect": "none"}));
    }
    let identity = match ctx.identity {
        Some(Ok(identity)) => identity.clone(),
        Some(Err(error)) => return refused(m, error),
        None => {
            return BayeuxReply::to(m)
                .error(msg::HANDSHAKE_DENIED)
                .with("advice", json!({"reconnect": "none"}));
        }
    };
    let ack = m.wants_ack();
    let created = ctx.registry.create(BayeuxNewSession {
        user: identity.user,
        browser_id: ctx.browser_for_new.map(str::to_owned),
        base_url: ctx.base_url.to_owned(),
        http_session: identity.http_session,
        ack,
    });
    let Ok(session) = created else {
        tracing::warn!(
            limit = config.max_sessions,
            "bayeux handshake refused: session limit"
        );
        return BayeuxReply::to(m).error(msg::TOO_MANY_SESSIONS).with(
            "advice",
            json!({"reconnect": "handshake", "interval": 1000}),
        );
    };
    let transport = match ctx.transport {
        BayeuxTransport::LongPolling => "long-polling",
        BayeuxTransport::WebSocket => "websocket",
    };
    metrics::counter!(crate::admin::names::COMETD_SESSIONS_OPENED, "transport" => transport)
        .increment(1);
    let mut reply = BayeuxReply::to(m)
        .ok()
        .with("version", "1.0".into())
        .with("minimumVersion", "1.0".into())
        .with("clientId", Value::from(&*session.id))
        .with("supportedConnectionTypes", json!(offered))
        .with("advice", retry_advice(ctx));
    if ack {
        reply.set("ext", json!({"ack": true}));
    }
    out.session = Some(session);
    out.handshake_ok = true;
    reply
}

/// The reply to a handshake whose authentication failed: a busy gateway (`503`) or a
/// throttled sign-in (`429`) advise a new handshake after the delay, as CometD clients
/// follow; wrong credentials are final (`403`, reconnect `none`).
fn refused(m: &BayeuxMessage, error: &CoreError) -> BayeuxReply {
    let code = match error.kind() {
        ErrorKind::Unavailable => 503,
        ErrorKind::ResourceExhausted => 429,
        _ => {
            return BayeuxReply::to(m)
                .error(msg::HANDSHAKE_DENIED)
                .with("advice", json!({"reconnect": "none"}));
        }
    };
    let interval = error.retry_after().map_or(1000, |d| d.as_millis() as u64);
    BayeuxReply::to(m).error(&format!("{code}::{error}")).with(
        "advice",
        json!({"reconnect": "handshake", "interval": interval}),
    )
}

fn retry_advice(ctx: &BayeuxContext<'_>) -> Value {
    let config = ctx.registry.config();
    json!({"reconnect": "retry", "interval": config.interval_ms, "timeout": config.timeout_ms})
}

/// Answers a connect and decides whether to hold it (spec §4.3): only a lone connect of a
/// session that was already connected, with nothing queued and a timeout above zero.
fn connect(
    ctx: &BayeuxContext<'_>,
    m: &BayeuxMessage,
    session: &Arc<BayeuxSession>,
    lone: bool,
) -> (BayeuxReply, Option<Duration>) {
    if let Some(http_session) = &session.http_session
        && ctx.state.sessions.get(http_session).is_none()
    {
        ctx.registry.remove(session, BayeuxRemoval::LoggedOut);
        let reply = BayeuxReply::to(m)
            .error(msg::UNKNOWN_CLIENT)
            .with("advice", msg::handshake_advice());
        return (reply, None);
    }
    if session.ack
        && let Some(position) = m.ack_batch()
    {
        session.acknowledge(position);
    }
    ctx.registry.seen(session);
    let server_timeout = ctx.registry.config().timeout_ms;
    let timeout = m
        .advice_timeout()
        .map_or(server_timeout, |t| t.min(server_timeout));
    let first = !session.is_connected();
    let hold = lone && !first && timeout > 0 && session.queued() == 0;
    let mut reply = BayeuxReply::to(m).ok();
    if first || m.has_advice() {
        reply.set("advice", retry_advice(ctx));
    }
    (reply, hold.then(|| Duration::from_millis(timeout)))
}

/// Completes a connect reply once the transport stops holding it (or at once) and returns
/// the queued messages to send before it. `shutdown` tells clients to come back later.
pub fn finish_connect(
    registry: &BayeuxRegistry,
    connect: &BayeuxConnect,
    reply: &mut BayeuxReply,
    shutdown: bool,
) -> Vec<Arc<str>> {
    let session = &connect.session;
    let config = registry.config();
    match session.removed() {
        Some(BayeuxRemoval::Disconnected) => {
            reply.set("advice", json!({"reconnect": "none", "interval": -1}));
            Vec::new()
        }
        // Cluster mode: an ack session moves to whichever instance the client reaches
        // next, which adopts it; the reply carries no `ext.ack`, so the client keeps its
        // position.
        Some(BayeuxRemoval::Shutdown | BayeuxRemoval::Moved)
            if session.ack && registry.records().is_some() =>
        {
            reply.set("advice", json!({"reconnect": "retry", "interval": 0}));
            Vec::new()
        }
        Some(BayeuxRemoval::Shutdown) => {
            reply.set("advice", drain_advice(config.interval_ms));
            Vec::new()
        }
        Some(_) => {
            reply.set("successful", false.into());
            reply.set("error", msg::UNKNOWN_CLIENT.into());
            reply.set("advice", msg::handshake_advice());
            Vec::new()
        }
        None => {
            if shutdown && session.ack && registry.records().is_some() {
                reply.set("advice", json!({"reconnect": "retry", "interval": 0}));
            } else if shutdown {
                reply.set("advice", drain_advice(config.interval_ms));
            }
            let (messages, batch) = session.take_for_connect();
            if let Some(batch) = batch {
                reply.set("ext", json!({"ack": batch}));
            }
            session.connect_replied(Instant::now(), config.expiry_after_connect());
            messages
        }
    }
}

/// The advice of a connect answered because the gateway shuts down: handshake again, after
/// the usual `interval` (except a movable session in cluster mode, told to `retry`: see
/// [`super::moving`]). Sessions live in this process only, so no other instance (nor
/// this one restarted) knows the client's `clientId`: a `retry` would cost the client a
/// round trip to learn that (`402::Unknown client`) before it handshakes anyway. With
/// `handshake` it goes straight to whichever instance now answers, re-subscribes, and
/// (as CometD reports `reestablish`) reloads its calls, since events committed between the
/// two sessions are not replayed.
pub fn drain_advice(interval_ms: u64) -> Value {
    json!({"reconnect": "handshake", "interval": interval_ms})
}

/// Reads `subscription`: a channel name or an array of them.
fn subscriptions(m: &BayeuxMessage) -> Result<Vec<&str>, &'static str> {
    match m.subscription() {
        None | Some(Value::Null) => Err(msg::SUBSCRIPTION_MISSING),
        Some(Value::String(one)) => Ok(vec![one.as_str()]),
        Some(Value::Array(many)) if !many.is_empty() => many
            .iter()
            .map(|v| v.as_str().ok_or(msg::SUBSCRIPTION_INVALID))
            .collect(),
        Some(_) => Err(msg::SUBSCRIPTION_INVALID),
    }
}

fn with_subscription(m: &BayeuxMessage, reply: BayeuxReply) -> BayeuxReply {
    match m.subscription() {
        Some(s) => reply.with("subscription", s.clone()),
        None => reply,
    }
}

fn subscribe(m: &BayeuxMessage, session: &BayeuxSession) -> BayeuxReply {
    let result = subscriptions(m).and_then(|names| {
        names.into_iter().try_for_each(|name| {
            if !channel::is_valid(name) {
                Err(msg::SUBSCRIPTION_INVALID)
            } else if channel::is_meta(name) {
                Err(msg::SUBSCRIBE_FAILED)
            } else if channel::is_service(name) {
                Ok(()) // accepted and not recorded, as CometD does
            } else if channel::is_readable(name) {
                session.subscribe(name);
                Ok(())
            } else {
                Err(msg::SUBSCRIBE_DENIED)
            }
        })
    });
    let reply = BayeuxReply::to(m);
    with_subscription(
        m,
        match result {
            Ok(()) => reply.ok(),
            Err(error) => reply.error(error),
        },
    )
}

fn unsubscribe(m: &BayeuxMessage, session: &BayeuxSession) -> BayeuxReply {
    let result = subscriptions(m).and_then(|names| {
        names.into_iter().try_for_each(|name| {
            if !channel::is_valid(name) {
                Err(msg::SUBSCRIPTION_INVALID)
            } else if channel::is_service(name) || session.unsubscribe(name) {
                Ok(())
            } else {
                Err(msg::CHANNEL_MISSING)
            }
        })
    });
    let reply = BayeuxReply::to(m);
    with_subscription(
        m,
        match result {
            Ok(()) => reply.ok(),
            Err(error) => reply.error(error),
        },
    )
}
