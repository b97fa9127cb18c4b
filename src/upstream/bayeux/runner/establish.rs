//! A new session: handshake, subscribe, the socket when connects go over one, and the
//! consumer told the session is up.

use serde_json::{Value, json};
use sonic_rs::JsonValueTrait as _;

use super::{Broken, Runner, Session, guarded};
use crate::upstream::bayeux::socket::Refusal;
use crate::upstream::bayeux::wire::{self, HANDSHAKE, Object, SUBSCRIBE};
use crate::upstream::bayeux::{BayeuxClientError, BayeuxEvent, ConnectionType};

impl Runner {
    /// Handshakes and subscribes; returns the session and what else the subscribe reply
    /// carried (deliveries a server may add).
    pub(super) async fn establish(&mut self) -> Result<(Session, Vec<Object>), Broken> {
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
    pub(super) async fn open_socket(
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
        let client_id = reply.get(&"clientId").and_then(|id| id.as_str());
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
    pub(super) async fn announce(
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
}
