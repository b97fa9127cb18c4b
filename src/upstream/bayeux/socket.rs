//! The `websocket` transport of the connect loop (spec §6): after the handshake and the
//! subscriptions over HTTP, the client upgrades a connection on the same path and sends
//! its `/meta/connect`s as text frames; the server adopts the session by the `clientId` of
//! the first connect and pushes messages on the socket as they are queued (or, with the ack
//! extension, with each connect reply).
//!
//! The upgrade goes through the client's `reqwest::Client` (HTTP/1.1), so the connection
//! gets the same TLS roots, connect timeout, headers and cookies as the POSTs.

use std::time::Duration;

use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use reqwest::StatusCode;
use reqwest::header::{
    CONNECTION, COOKIE, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use serde_json::Value;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::BayeuxClientError;
use super::wire::{Object, Upstream, malformed, parse_batch};

/// Why no socket was opened.
#[derive(Debug)]
pub(super) enum Refusal {
    /// The server answered the upgrade with this HTTP status (it does not serve the
    /// transport there): the session goes on with long-polling.
    Status(u16),
    /// The request failed (connection, timeout, a bad `101`).
    Failed(BayeuxClientError),
}

/// One session's socket.
pub(super) struct Socket {
    ws: WebSocketStream<reqwest::Upgraded>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Socket")
    }
}

fn failed(what: impl std::fmt::Display) -> Refusal {
    Refusal::Failed(BayeuxClientError::Socket(what.to_string()))
}

impl Upstream {
    /// Upgrades a connection to the endpoint into a socket, within `timeout`; keeps the
    /// cookies the server sets on the way.
    pub(super) async fn open_socket(&mut self, timeout: Duration) -> Result<Socket, Refusal> {
        let key = base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes());
        let mut request = self
            .http
            .get(self.endpoint.clone())
            .headers(self.headers.clone())
            .header(CONNECTION, "Upgrade")
            .header(UPGRADE, "websocket")
            .header(SEC_WEBSOCKET_VERSION, "13")
            .header(SEC_WEBSOCKET_KEY, key.as_str());
        if let Some(cookie) = self.jar.header() {
            request = request.header(COOKIE, cookie);
        }
        let upgrade = async {
            let response = request
                .send()
                .await
                .map_err(|e| Refusal::Failed(BayeuxClientError::Transport(e)))?;
            self.jar.store(response.headers());
            if response.status() != StatusCode::SWITCHING_PROTOCOLS {
                return Err(Refusal::Status(response.status().as_u16()));
            }
            let accept = derive_accept_key(key.as_bytes());
            if response.headers().get(SEC_WEBSOCKET_ACCEPT)
                != Some(&HeaderValue::from_str(&accept).map_err(failed)?)
            {
                return Err(failed("the upgrade reply has a wrong Sec-WebSocket-Accept"));
            }
            response.upgrade().await.map_err(failed)
        };
        let upgraded = tokio::time::timeout(timeout, upgrade)
            .await
            .map_err(|_| failed(format!("no upgrade within {timeout:?}")))??;
        // The read buffer: see the gateway's own socket (`READ_BUFFER`), whose default
        // zero-filled 128 KiB before every read cost the bridge 7 % of its CPU.
        let config = WebSocketConfig::default()
            .read_buffer_size(crate::gws::cometd::websocket::READ_BUFFER)
            .max_message_size(Some(self.max_reply_bytes))
            .max_frame_size(Some(self.max_reply_bytes));
        let ws = WebSocketStream::from_raw_socket(upgraded, Role::Client, Some(config)).await;
        Ok(Socket { ws })
    }
}

impl Socket {
    /// Sends a batch as one text frame.
    pub(super) async fn send(&mut self, batch: &[Value]) -> Result<(), BayeuxClientError> {
        let text = Value::Array(batch.to_vec()).to_string();
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|e| BayeuxClientError::Socket(e.to_string()))
    }

    /// Receives the next batch (one text frame); pings are answered on the way.
    pub(super) async fn recv(&mut self) -> Result<Vec<Object>, BayeuxClientError> {
        loop {
            let frame = self
                .ws
                .next()
                .await
                .ok_or_else(|| BayeuxClientError::Socket("closed".into()))?
                .map_err(|e| BayeuxClientError::Socket(e.to_string()))?;
            match frame {
                Message::Text(text) => return parse_batch(text.as_bytes()),
                Message::Close(close) => {
                    let why =
                        close.map_or_else(String::new, |c| format!(" ({} {})", c.code, c.reason));
                    return Err(BayeuxClientError::Socket(format!(
                        "closed by the server{why}"
                    )));
                }
                Message::Binary(_) => return Err(malformed("a binary frame")),
                _ => {}
            }
        }
    }
}
