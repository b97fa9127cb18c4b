//! The `websocket` transport on the same path (spec §6): every text frame is a JSON batch
//! both ways. The loop is generic over a [`Sink`] and a [`Stream`] so tests drive it
//! without sockets; `upgrade` adapts axum's socket to it.
//!
//! The socket is bound to the session it handshook or adopted (by `clientId` in its first
//! connect); later frames belong to that session. A `/meta/connect` is held as on
//! long-polling, but without the ack extension events are pushed at once, not only with
//! the connect reply. Closing the socket does not end the session: it expires after
//! `maxInterval` unless a new socket or long-poll picks it up. A socket whose session moved
//! to another socket is closed with 1000 "Cancel".

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use futures::{Sink, SinkExt as _, Stream, StreamExt as _};
use tokio::time::{Duration, Instant};

use super::BayeuxEndpoint;
use super::long_polling::BROWSER_COOKIE;
use super::message::{BayeuxMessage, BayeuxReply, join_batch};
use super::moving;
use super::protocol::{self, BayeuxConnect, BayeuxContext, BayeuxTransport};
use super::session::BayeuxSession;
use crate::gws::auth::{self, BayeuxCredentials};
use crate::gws::base_url::{ListenerScheme, base_url};

/// A frame received from the client, as the loop needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BayeuxFrameIn {
    /// A text frame (a JSON batch).
    Text(String),
    /// The client closed, or the socket failed.
    Close,
    /// A frame the loop ignores (ping, pong, binary).
    Other,
}

/// A frame the loop sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BayeuxFrameOut {
    /// A text frame (a JSON batch).
    Text(String),
    /// A close frame with code and reason.
    Close(u16, &'static str),
}

/// What the socket knows from its upgrade request.
#[derive(Debug, Clone)]
pub struct BayeuxSocketInfo {
    /// Credentials (cookies, Basic) of the upgrade request.
    pub credentials: BayeuxCredentials,
    /// The base URL of the upgrade request ([`crate::gws::base_url`]).
    pub base_url: String,
    /// The `BAYEUX_BROWSER` cookie of the upgrade request, if any.
    pub browser_cookie: Option<String>,
}

/// The socket's read buffer. tungstenite's default (128 KiB) is allocated per socket and
/// zero-filled up to its capacity before every read: a profile of figure 7 found that
/// `memset` at 10 % of the upstream gateway's CPU, for Bayeux messages of a few hundred
/// bytes (bench/FINDINGS.md, "Session 8"). A larger message is still read whole: the buffer
/// grows to the frame's length, up to `cometd.max_message_size`.
pub(crate) const READ_BUFFER: usize = 8 * 1024;

/// Accepts the upgrade and runs the Bayeux loop on the socket.
pub(crate) fn upgrade(
    endpoint: Arc<BayeuxEndpoint>,
    ws: WebSocketUpgrade,
    uri: &Uri,
    headers: &HeaderMap,
    client: Option<IpAddr>,
    listener: ListenerScheme,
) -> Response {
    let legacy = &endpoint.state.config.legacy;
    let info = BayeuxSocketInfo {
        credentials: BayeuxCredentials::from_headers(headers, client),
        base_url: base_url(legacy, uri, headers, listener),
        browser_cookie: auth::cookie(headers, BROWSER_COOKIE),
    };
    let max = endpoint.registry.config().max_message_size;
    let tracker = endpoint.state.upgraded.clone();
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket: WebSocket| {
            tracker.track_future(async move {
                let (sink, stream) = socket.split();
                let sink = sink.with(|frame: BayeuxFrameOut| async move {
                    Ok::<_, axum::Error>(match frame {
                        BayeuxFrameOut::Text(text) => Message::Text(text.into()),
                        BayeuxFrameOut::Close(code, reason) => Message::Close(Some(CloseFrame {
                            code,
                            reason: reason.into(),
                        })),
                    })
                });
                let stream = stream.map(|frame| match frame {
                    Ok(Message::Text(text)) => BayeuxFrameIn::Text(text.to_string()),
                    Ok(Message::Close(_)) | Err(_) => BayeuxFrameIn::Close,
                    Ok(_) => BayeuxFrameIn::Other,
                });
                run_socket(endpoint, info, Box::pin(sink), Box::pin(stream)).await;
            })
        })
}

/// A connect held on the socket.
struct Pending {
    connect: BayeuxConnect,
    reply: BayeuxReply,
    deadline: Instant,
    /// How long the session survives if the socket drops the held connect.
    grace: Duration,
}

impl Drop for Pending {
    fn drop(&mut self) {
        super::count_held(super::HeldOn::WebSocket, -1.0);
        // Held connects keep a session from expiring; a dropped one must not.
        self.connect.session.end_hold(Instant::now(), self.grace);
    }
}

/// Runs the Bayeux protocol over one socket until it closes or the gateway shuts down.
pub async fn run_socket<Si, St>(
    endpoint: Arc<BayeuxEndpoint>,
    info: BayeuxSocketInfo,
    mut sink: Si,
    mut stream: St,
) where
    Si: Sink<BayeuxFrameOut> + Unpin,
    St: Stream<Item = BayeuxFrameIn> + Unpin,
{
    let mut bound: Option<(Arc<BayeuxSession>, u64)> = None;
    let mut pending: Option<Pending> = None;
    let shutdown = endpoint.state.shutdown.clone();
    loop {
        let session = bound.as_ref().map(|(s, _)| s.clone());
        let mut notified = session.as_ref().map(|s| Box::pin(s.notify().notified()));
        if let Some(n) = notified.as_mut() {
            // Registered before the state is inspected, so no wake-up falls in between.
            n.as_mut().enable();
        }
        if let Some((s, token)) = &bound {
            if s.socket_moved(*token) {
                let _ = sink.send(BayeuxFrameOut::Close(1000, "Cancel")).await;
                return;
            }
            let release = s.removed().is_some() || (s.ack && s.queued() > 0);
            if release && let Some(p) = pending.take() {
                if !answer(&endpoint, &mut sink, p, false).await {
                    return;
                }
                continue;
            }
            let push = s.take_pushable();
            if !push.is_empty()
                && sink
                    .send(BayeuxFrameOut::Text(join_batch(&push)))
                    .await
                    .is_err()
            {
                return;
            }
        }
        let deadline = pending.as_ref().map(|p| p.deadline);
        tokio::select! {
            frame = stream.next() => {
                let text = match frame {
                    Some(BayeuxFrameIn::Text(text)) => text,
                    Some(BayeuxFrameIn::Other) => continue,
                    Some(BayeuxFrameIn::Close) | None => return,
                };
                let config = endpoint.registry.config();
                let Ok(batch) = BayeuxMessage::parse_batch(text.as_bytes(), config.max_batch) else {
                    let _ = sink.send(BayeuxFrameOut::Close(1007, "malformed Bayeux batch")).await;
                    return;
                };
                if !on_batch(&endpoint, &info, &mut sink, &batch, &mut bound, &mut pending).await {
                    return;
                }
            }
            () = async {
                match notified.as_mut() {
                    Some(n) => n.await,
                    None => std::future::pending().await,
                }
            } => {}
            () = sleep_until_opt(deadline) => {
                if let Some(p) = pending.take()
                    && !answer(&endpoint, &mut sink, p, false).await
                {
                    return;
                }
            }
            () = shutdown.cancelled() => {
                if let Some(p) = pending.take() {
                    answer(&endpoint, &mut sink, p, true).await;
                }
                let _ = sink.send(BayeuxFrameOut::Close(1001, "shutdown")).await;
                return;
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Processes one batch; returns false when the socket failed.
async fn on_batch<Si>(
    endpoint: &Arc<BayeuxEndpoint>,
    info: &BayeuxSocketInfo,
    sink: &mut Si,
    batch: &[BayeuxMessage],
    bound: &mut Option<(Arc<BayeuxSession>, u64)>,
    pending: &mut Option<Pending>,
) -> bool
where
    Si: Sink<BayeuxFrameOut> + Unpin,
{
    let identity = if protocol::has_handshake(batch) {
        Some(info.credentials.authenticate(&endpoint.state).await)
    } else {
        None
    };
    if bound.is_none() && endpoint.registry.records().is_some() {
        let arrival = moving::BayeuxArrival {
            transport: BayeuxTransport::WebSocket,
            credentials: &info.credentials,
            browser_cookie: info.browser_cookie.as_deref(),
            base_url: &info.base_url,
        };
        moving::adopt(endpoint, batch, arrival).await;
    }
    let ctx = BayeuxContext {
        state: &endpoint.state,
        registry: &endpoint.registry,
        transport: BayeuxTransport::WebSocket,
        identity: identity.as_ref(),
        base_url: &info.base_url,
        browser_cookie: info.browser_cookie.as_deref(),
        browser_for_new: info.browser_cookie.as_deref(),
        bound: bound.as_ref().map(|(s, _)| s.clone()),
    };
    let mut outcome = protocol::process(&ctx, batch);
    if let Some(session) = &outcome.session
        && bound.as_ref().is_none_or(|(b, _)| !Arc::ptr_eq(b, session))
    {
        let token = session.adopt_socket();
        *bound = Some((session.clone(), token));
        *pending = None;
    }
    let mut parts = Vec::new();
    if let Some(connect) = outcome.connect.take() {
        let index = connect.reply_index;
        if let Some(hold) = connect.hold {
            // A newer connect supersedes the held one, which CometD never answers.
            connect.session.begin_hold();
            let reply = outcome.replies.remove(index);
            super::count_held(super::HeldOn::WebSocket, 1.0);
            *pending = Some(Pending {
                connect,
                reply,
                deadline: Instant::now() + hold,
                grace: endpoint.registry.config().max_interval(),
            });
        } else {
            let reply = &mut outcome.replies[index];
            parts = protocol::finish_connect(&endpoint.registry, &connect, reply, false);
        }
    }
    parts.extend(outcome.replies.iter().map(BayeuxReply::to_json));
    parts.is_empty()
        || sink
            .send(BayeuxFrameOut::Text(join_batch(&parts)))
            .await
            .is_ok()
}

/// Answers a held connect: queued events, then the reply, in one frame.
async fn answer<Si>(
    endpoint: &BayeuxEndpoint,
    sink: &mut Si,
    mut p: Pending,
    shutdown: bool,
) -> bool
where
    Si: Sink<BayeuxFrameOut> + Unpin,
{
    let mut parts =
        protocol::finish_connect(&endpoint.registry, &p.connect, &mut p.reply, shutdown);
    parts.push(p.reply.to_json());
    sink.send(BayeuxFrameOut::Text(join_batch(&parts)))
        .await
        .is_ok()
}
