//! Clients of an upstream GWS 8.5 server, for bridge mode (issue 11): the gateway in front
//! of a real GWS, one upstream session per active agent.
//!
//! - [`bayeux`]: a Bayeux client (handshake, subscribe, the `/meta/connect` loop over
//!   long-polling or a WebSocket, the ack extension, recovery), the notification side of an
//!   upstream session.
//!
//! Nothing here imports the gateway's core or fronts: the modules depend on crates only
//! (reqwest, serde_json, tokio, tokio-tungstenite, tracing), so they can move under `backend/` unchanged.

pub mod bayeux;
