//! The connect loop's step: one `/meta/connect`, over HTTP or the session's socket, and
//! what its reply and advice lead to.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Broken, Runner, Session, guarded};
use crate::upstream::bayeux::BayeuxClientError;
use crate::upstream::bayeux::socket::Socket;
use crate::upstream::bayeux::wire::{self, CONNECT, Object, Reconnect};

impl Runner {
    /// One `/meta/connect`: sends it, hands over the deliveries of the reply, follows the
    /// advice, and waits `advice.interval` before the next one.
    pub(super) async fn connect(&mut self, session: &mut Session) -> Result<(), Broken> {
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
}
