//! The task behind a [`BayeuxClient`]: handshake, subscribe, the
//! connect loop, and what each failure leads to (the policy in the parent module's docs).
//!
//! Every wait (a request, a backoff, a full consumer queue) also watches the stop token
//! and the consumer's receiver, so the task ends promptly whatever it is doing.

mod connect;
mod establish;

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::socket::Socket;
use super::wire::{self, Advice, DISCONNECT, Object, Reconnect, Upstream};
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
