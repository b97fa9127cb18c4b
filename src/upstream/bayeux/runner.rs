//! The task behind a [`BayeuxClient`]: handshake, subscribe, the
//! connect loop, and what each failure leads to (the policy in the parent module's docs).
//!
//! Every wait (a request, a backoff, a full consumer queue) also watches the stop token
//! and the consumer's receiver, so the task ends promptly whatever it is doing.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::socket::{Refusal, Socket};
use super::wire::{
    self, Advice, CONNECT, DISCONNECT, HANDSHAKE, Object, Reconnect, SUBSCRIBE, Upstream,
};
use super::{BayeuxClient, BayeuxClientError, BayeuxEvent, BayeuxOptions, ConnectionType, backoff};

/// Longest wait for the reply to the `/meta/disconnect` sent when stopping.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A session the server knows.
#[derive(Debug)]
struct Session {
    client_id: String,
    /// Whether the server accepted the ack extension.
    ack: bool,
    /// The last ack batch received, sent back with the next connect.
    batch: u64,
    /// Ask for an immediate answer (`advice.timeout: 0`): the first connect of a session,
    /// and a connect retried after a failure, as CometD JS does.
    immediate: bool,
    /// Whether connects go over a socket: asked for, offered by the handshake reply, and
    /// the upgrade not refused.
    websocket: bool,
    /// The open socket; after it fails, the next connect opens another.
    socket: Option<Socket>,
}

impl Session {
    fn connection_type(&self) -> ConnectionType {
        if self.websocket {
            ConnectionType::WebSocket
        } else {
            ConnectionType::LongPolling
        }
    }

    /// What a failed connect leads to: with ack on, a lost reply is re-sent by the server,
    /// so the connect is retried on the same session; otherwise a re-handshake.
    fn connect_failed(&mut self, error: BayeuxClientError) -> Broken {
        self.socket = None;
        if self.ack && error.is_transport() {
            Broken::RetryConnect(error)
        } else {
            Broken::again(error)
        }
    }
}

/// Why a step did not complete.
#[derive(Debug)]
enum Broken {
    /// The token was cancelled or the consumer left.
    Closed,
    /// The server said `reconnect: none`.
    Stop(BayeuxClientError),
    /// Back off, then handshake and subscribe again; `report` makes it a `Disconnected`.
    Rehandshake {
        error: BayeuxClientError,
        report: bool,
    },
    /// Back off, then connect again on the same session (ack on, reply lost in transit).
    RetryConnect(BayeuxClientError),
}

impl Broken {
    /// A reported failure followed by a re-handshake.
    fn again(error: BayeuxClientError) -> Self {
        Self::Rehandshake {
            error,
            report: true,
        }
    }

    /// What an unsuccessful reply leads to, by its advice. `402` with handshake advice is
    /// routine (the server forgot the session), hence not reported.
    fn refused(request: String, reply: &Object, reconnect: Reconnect) -> Self {
        let error = BayeuxClientError::Refused {
            request,
            error: wire::error_text(reply),
        };
        match reconnect {
            Reconnect::None => Self::Stop(error),
            Reconnect::Handshake => Self::Rehandshake {
                error,
                report: false,
            },
            Reconnect::Retry => Self::again(error),
        }
    }
}

/// The client's state while it runs.
#[derive(Debug)]
pub(super) struct Runner {
    upstream: Upstream,
    channels: Vec<String>,
    options: BayeuxOptions,
    tx: mpsc::Sender<BayeuxEvent>,
    stop: CancellationToken,
    advice: Advice,
    next_id: u64,
    /// Consecutive failures; a successful connect resets it.
    attempt: u32,
    subscribed_once: bool,
}

impl Runner {
    /// Prepares the task of `client`.
    pub(super) fn new(
        client: BayeuxClient,
        tx: mpsc::Sender<BayeuxEvent>,
        stop: CancellationToken,
    ) -> Self {
        let mut jar = wire::CookieJar::default();
        for (name, value) in &client.cookies {
            jar.set(name, value);
        }
        Self {
            upstream: Upstream {
                http: client.http,
                endpoint: client.endpoint,
                headers: client.headers,
                jar,
                max_reply_bytes: client.options.max_reply_bytes,
            },
            channels: client.channels,
            options: client.options,
            tx,
            stop,
            advice: Advice::default(),
            next_id: 0,
            attempt: 0,
            subscribed_once: false,
        }
    }

    /// Runs until stopped: by the token, the consumer, or the server.
    pub(super) async fn run(mut self) {
        let mut session: Option<Session> = None;
        let stopped = loop {
            let Err(broken) = self.step(&mut session).await else {
                continue;
            };
            if let Err(stopped) = self.recover(broken, &mut session).await {
                break stopped;
            }
        };
        if let Some(error) = stopped {
            tracing::info!(%error, "bayeux client stopped by the server");
            let _ = self.emit(BayeuxEvent::Stopped { error }).await;
        } else if let Some(live) = session {
            self.disconnect(&live.client_id).await;
        }
    }

    /// One step: a connect on the live session, or a new session.
    async fn step(&mut self, session: &mut Option<Session>) -> Result<(), Broken> {
        if let Some(live) = session.as_mut() {
            return self.connect(live).await;
        }
        let (new, rest) = self.establish().await?;
        let client_id = new.client_id.clone();
        let connection_type = new.connection_type();
        *session = Some(new);
        self.announce(client_id, connection_type, rest).await
    }

    /// Backs off after a broken step, dropping the session unless its connect is to be
    /// retried. Fails with the error to stop with, or `None` when the client is closed.
    async fn recover(
        &mut self,
        broken: Broken,
        session: &mut Option<Session>,
    ) -> Result<(), Option<BayeuxClientError>> {
        let (error, report) = match broken {
            Broken::Closed => return Err(None),
            Broken::Stop(error) => {
                *session = None;
                return Err(Some(error));
            }
            Broken::Rehandshake { error, report } => {
                *session = None;
                (error, report)
            }
            Broken::RetryConnect(error) => {
                if let Some(live) = session.as_mut() {
                    live.immediate = true;
                }
                (error, true)
            }
        };
        self.back_off(error, report).await.map_err(|_| None)
    }

    fn id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    /// Handshakes and subscribes; returns the session and what else the subscribe reply
    /// carried (deliveries a server may add).
    async fn establish(&mut self) -> Result<(Session, Vec<Object>), Broken> {
        let (client_id, ack, websocket) = self.handshake().await?;
        let rest = self.subscribe(&client_id).await?;
        let mut session = Session {
            client_id,
            ack,
            batch: 0,
            immediate: true,
            websocket,
            socket: None,
        };
        // Opened now, so that `Subscribed` tells the transport actually in use.
        self.open_socket(&mut session)
            .await?
            .map_err(Broken::again)?;
        let connection_type = session.connection_type();
        tracing::debug!(client_id = %session.client_id, ack, %connection_type, "bayeux session up");
        Ok((session, rest))
    }

    /// Opens the session's socket when it is to have one and has none; falls back to
    /// long-polling for the session when the server answers the upgrade with a status.
    async fn open_socket(
        &mut self,
        session: &mut Session,
    ) -> Result<Result<(), BayeuxClientError>, Broken> {
        if !session.websocket || session.socket.is_some() {
            return Ok(Ok(()));
        }
        let delay = self.options.max_network_delay;
        let opened = guarded(&self.stop, &self.tx, self.upstream.open_socket(delay)).await?;
        match opened {
            Ok(socket) => session.socket = Some(socket),
            Err(Refusal::Status(status)) => {
                tracing::warn!(
                    status,
                    client_id = %session.client_id,
                    "bayeux websocket upgrade refused; this session long-polls"
                );
                session.websocket = false;
            }
            Err(Refusal::Failed(error)) => return Ok(Err(error)),
        }
        Ok(Ok(()))
    }

    /// Handshakes; returns the `clientId`, whether the ack extension is on, and whether
    /// the connects are to go over a socket.
    async fn handshake(&mut self) -> Result<(String, bool, bool), Broken> {
        let id = self.id();
        let types: &[&str] = match self.options.connection_type {
            ConnectionType::WebSocket => &[wire::WEBSOCKET, wire::LONG_POLLING],
            ConnectionType::LongPolling => &[wire::LONG_POLLING],
        };
        let mut handshake = json!({
            "id": id, "channel": HANDSHAKE, "version": "1.0", "minimumVersion": "1.0",
            "supportedConnectionTypes": types,
        });
        if self.options.ack {
            handshake["ext"] = json!({"ack": true});
        }
        let delay = self.options.max_network_delay;
        let mut batch = self
            .post(&[handshake], delay)
            .await?
            .map_err(Broken::again)?;
        let reply = wire::take_reply(&mut batch, HANDSHAKE, &id)
            .ok_or_else(|| Broken::again(wire::malformed("no /meta/handshake reply")))?;
        let reconnect = self.advice.update(&reply);
        if !wire::successful(&reply) {
            // A refused handshake is always worth reporting, whatever its advice.
            return Err(
                match Broken::refused("handshake".into(), &reply, reconnect) {
                    Broken::Rehandshake { error, .. } => Broken::again(error),
                    other => other,
                },
            );
        }
        let client_id = reply.get("clientId").and_then(Value::as_str);
        let Some(client_id) = client_id.filter(|id| !id.is_empty()) else {
            return Err(Broken::again(wire::malformed("handshake without clientId")));
        };
        let websocket = self.options.connection_type == ConnectionType::WebSocket
            && wire::offers(&reply, wire::WEBSOCKET);
        if !websocket && !wire::offers(&reply, wire::LONG_POLLING) {
            return Err(Broken::again(BayeuxClientError::Refused {
                request: "handshake".into(),
                error: "long-polling is not among supportedConnectionTypes".into(),
            }));
        }
        Ok((
            client_id.to_owned(),
            self.options.ack && wire::ack_enabled(&reply),
            websocket,
        ))
    }

    /// Subscribes to every channel in one batch, checking each reply.
    async fn subscribe(&mut self, client_id: &str) -> Result<Vec<Object>, Broken> {
        if self.channels.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = (0..self.channels.len()).map(|_| self.id()).collect();
        let messages: Vec<Value> = self
            .channels
            .iter()
            .zip(&ids)
            .map(|(channel, id)| {
                json!({"id": id, "channel": SUBSCRIBE, "clientId": client_id, "subscription": channel})
            })
            .collect();
        let delay = self.options.max_network_delay;
        let mut batch = self.post(&messages, delay).await?.map_err(Broken::again)?;
        for (channel, id) in self.channels.iter().zip(&ids) {
            let reply = wire::take_reply(&mut batch, SUBSCRIBE, id).ok_or_else(|| {
                Broken::again(wire::malformed(format!("no reply to subscribe {channel}")))
            })?;
            let reconnect = self.advice.update(&reply);
            if !wire::successful(&reply) {
                return Err(Broken::refused(
                    format!("subscribe {channel}"),
                    &reply,
                    reconnect,
                ));
            }
        }
        Ok(batch)
    }

    /// Tells the consumer a session is up, then hands it what came with the subscription.
    async fn announce(
        &mut self,
        client_id: String,
        connection_type: ConnectionType,
        rest: Vec<Object>,
    ) -> Result<(), Broken> {
        let first = !self.subscribed_once;
        self.subscribed_once = true;
        if !first {
            tracing::info!(%client_id, "bayeux session re-established");
        }
        self.emit(BayeuxEvent::Subscribed {
            client_id,
            first,
            connection_type,
        })
        .await?;
        self.deliver(rest).await
    }

    /// One `/meta/connect`: sends it, hands over the deliveries of the reply, follows the
    /// advice, and waits `advice.interval` before the next one.
    async fn connect(&mut self, session: &mut Session) -> Result<(), Broken> {
        if let Err(error) = self.open_socket(session).await? {
            return Err(session.connect_failed(error));
        }
        let id = self.id();
        let mut message = json!({
            "id": id, "channel": CONNECT, "clientId": session.client_id,
            "connectionType": session.connection_type().as_str(),
        });
        let mut delay = self.options.max_network_delay;
        if session.immediate {
            message["advice"] = json!({"timeout": 0});
        } else {
            delay = delay.saturating_add(self.advice.timeout);
        }
        if session.ack {
            message["ext"] = json!({"ack": session.batch});
        }
        let exchanged = match session.socket.as_mut() {
            Some(socket) => self.over_socket(socket, &message, &id, delay).await?,
            None => self.post(&[message], delay).await?,
        };
        let mut batch = exchanged.map_err(|error| session.connect_failed(error))?;
        let reply = wire::take_reply(&mut batch, CONNECT, &id);
        // Deliveries come before the reply and are valid whatever the reply says.
        self.deliver(batch).await?;
        let reply =
            reply.ok_or_else(|| Broken::again(wire::malformed("no /meta/connect reply")))?;
        let reconnect = self.advice.update(&reply);
        if !wire::successful(&reply) {
            return Err(Broken::refused("connect".into(), &reply, reconnect));
        }
        match reconnect {
            Reconnect::None => return Err(Broken::Stop(BayeuxClientError::Ended)),
            Reconnect::Handshake => {
                return Err(Broken::Rehandshake {
                    error: BayeuxClientError::Ended,
                    report: false,
                });
            }
            Reconnect::Retry => {}
        }
        if session.ack
            && let Some(batch) = wire::ack_batch(&reply)
        {
            session.batch = batch;
        }
        session.immediate = false;
        self.attempt = 0;
        let interval = self.advice.interval;
        if interval.is_zero() {
            return Ok(());
        }
        self.until_closed(tokio::time::sleep(interval)).await
    }

    /// Sends a connect on the socket and returns the frame carrying its reply; the frames
    /// before it (messages pushed while the connect is held) are delivered as they come.
    async fn over_socket(
        &mut self,
        socket: &mut Socket,
        connect: &Value,
        id: &str,
        timeout: Duration,
    ) -> Result<Result<Vec<Object>, BayeuxClientError>, Broken> {
        let deadline = tokio::time::Instant::now() + timeout;
        let sent = guarded(
            &self.stop,
            &self.tx,
            socket.send(std::slice::from_ref(connect)),
        );
        if let Err(error) = sent.await? {
            return Ok(Err(error));
        }
        loop {
            let received = tokio::time::timeout_at(deadline, socket.recv());
            let frame = match guarded(&self.stop, &self.tx, received).await? {
                Ok(Ok(frame)) => frame,
                Ok(Err(error)) => return Ok(Err(error)),
                Err(_) => {
                    let error = format!("no /meta/connect reply within {timeout:?}");
                    return Ok(Err(BayeuxClientError::Socket(error)));
                }
            };
            if wire::reply_position(&frame, CONNECT, id).is_some() {
                return Ok(Ok(frame));
            }
            self.deliver(frame).await?;
        }
    }

    /// Hands the deliveries of a batch to the consumer, waiting while its queue is full.
    async fn deliver(&mut self, batch: Vec<Object>) -> Result<(), Broken> {
        for message in batch {
            match wire::delivery(message) {
                Ok(delivery) => self.emit(BayeuxEvent::Message(delivery)).await?,
                Err(other) => tracing::debug!(message = ?other, "bayeux reply ignored"),
            }
        }
        Ok(())
    }

    /// Counts a failure, reports it if asked, and waits a jittered backoff.
    async fn back_off(&mut self, error: BayeuxClientError, report: bool) -> Result<(), Broken> {
        self.attempt = self.attempt.saturating_add(1);
        let (base, max) = (self.options.backoff_base, self.options.backoff_max);
        let retry_in = backoff::delay(self.attempt, base, max);
        tracing::debug!(%error, attempt = self.attempt, ?retry_in, "bayeux client backing off");
        if report {
            let attempt = self.attempt;
            self.emit(BayeuxEvent::Disconnected {
                error,
                attempt,
                retry_in,
            })
            .await?;
        }
        self.until_closed(tokio::time::sleep(retry_in)).await
    }

    /// Sends an item to the consumer, waiting for room (back-pressure).
    async fn emit(&self, event: BayeuxEvent) -> Result<(), Broken> {
        tokio::select! {
            biased;
            () = self.stop.cancelled() => Err(Broken::Closed),
            sent = self.tx.send(event) => sent.map_err(|_| Broken::Closed),
        }
    }

    /// Runs `future` unless the token is cancelled or the consumer leaves first.
    async fn until_closed(&self, future: impl Future<Output = ()>) -> Result<(), Broken> {
        guarded(&self.stop, &self.tx, future).await
    }

    /// POSTs a batch; the outer error is [`Broken::Closed`], the inner one the request's.
    async fn post(
        &mut self,
        batch: &[Value],
        timeout: Duration,
    ) -> Result<Result<Vec<Object>, BayeuxClientError>, Broken> {
        guarded(&self.stop, &self.tx, self.upstream.exchange(batch, timeout)).await
    }

    /// Ends a session on the server, best effort: the server would expire it anyway.
    async fn disconnect(&mut self, client_id: &str) {
        let id = self.id();
        let message = json!({"id": id, "channel": DISCONNECT, "clientId": client_id});
        let delay = self.options.max_network_delay.min(DISCONNECT_TIMEOUT);
        match self.upstream.exchange(&[message], delay).await {
            Ok(_) => tracing::debug!(%client_id, "bayeux session disconnected"),
            Err(error) => tracing::debug!(%error, "bayeux disconnect failed"),
        }
    }
}

/// Runs `future` unless `stop` is cancelled or the consumer of `tx` leaves first.
async fn guarded<T>(
    stop: &CancellationToken,
    tx: &mpsc::Sender<BayeuxEvent>,
    future: impl Future<Output = T>,
) -> Result<T, Broken> {
    tokio::select! {
        biased;
        () = stop.cancelled() => Err(Broken::Closed),
        () = tx.closed() => Err(Broken::Closed),
        out = future => Ok(out),
    }
}
