//! Bayeux messages on the wire: parsing a batch, reading fields, building replies, and the
//! error strings CometD 3 sends (spec `bayeux.md` §7), kept verbatim because legacy
//! clients log or match them.

use std::sync::Arc;

use serde_json::{Map, Value, json};

/// `402::Unknown client`: no such session, expired, or cookie mismatch.
pub const UNKNOWN_CLIENT: &str = "402::Unknown client";
/// `403::Handshake denied`: no valid session cookie or credentials.
pub const HANDSHAKE_DENIED: &str = "403::Handshake denied";
/// A subscribe without `subscription`.
pub const SUBSCRIPTION_MISSING: &str = "403::subscription_missing";
/// A `subscription` that is not a channel name (or array of them).
pub const SUBSCRIPTION_INVALID: &str = "403::subscription_invalid";
/// A subscription to a channel the user may not read.
pub const SUBSCRIBE_DENIED: &str = "403:denied_by_security_policy:subscribe_denied";
/// A subscription to a meta channel.
pub const SUBSCRIBE_FAILED: &str = "403::subscribe_failed";
/// An unsubscribe from a channel the session is not subscribed to.
pub const CHANNEL_MISSING: &str = "400::channel_missing";
/// A message without `channel`.
pub const NO_CHANNEL: &str = "400::channel missing";
/// A `channel` that is not a valid channel name.
pub const CHANNEL_INVALID: &str = "400::channel_invalid";
/// An `id` that is neither a string nor a number, or holds characters CometD refuses.
pub const ID_INVALID: &str = "400::id_invalid";
/// A publish from a client (GWS clients only subscribe).
pub const PUBLISH_DENIED: &str = "403::publish denied";
/// A handshake sent in a batch with other messages.
pub const HANDSHAKE_NOT_ALONE: &str = "400::handshake_not_alone";
/// A handshake offering no transport this server supports.
pub const NO_COMMON_TRANSPORT: &str = "400::no_common_transport";
/// A handshake refused because the session limit is reached.
pub const TOO_MANY_SESSIONS: &str = "503::too_many_sessions";

/// Why a request body is not a Bayeux batch (answered with HTTP 400, as CometD does).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BayeuxBatchError {
    /// The body is not JSON.
    #[error("malformed JSON: {0}")]
    Json(String),
    /// The body is JSON but neither a message object nor an array of them.
    #[error("a batch is a JSON array of message objects")]
    NotMessages,
    /// The array is empty.
    #[error("empty batch")]
    Empty,
    /// More messages than allowed.
    #[error("batch of {0} messages exceeds the limit of {1}")]
    TooLarge(usize, usize),
}

/// One Bayeux message.
#[derive(Debug, Clone, PartialEq)]
pub struct BayeuxMessage(pub Map<String, Value>);

impl BayeuxMessage {
    /// Parses a batch: a JSON array of objects, or one object.
    pub fn parse_batch(body: &[u8], max_batch: usize) -> Result<Vec<Self>, BayeuxBatchError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| BayeuxBatchError::Json(e.to_string()))?;
        let items = match value {
            Value::Array(items) => items,
            object @ Value::Object(_) => vec![object],
            _ => return Err(BayeuxBatchError::NotMessages),
        };
        if items.is_empty() {
            return Err(BayeuxBatchError::Empty);
        }
        if items.len() > max_batch {
            return Err(BayeuxBatchError::TooLarge(items.len(), max_batch));
        }
        items
            .into_iter()
            .map(|item| match item {
                Value::Object(map) => Ok(Self(map)),
                _ => Err(BayeuxBatchError::NotMessages),
            })
            .collect()
    }

    /// Returns the `channel`, if it is a string.
    pub fn channel(&self) -> Option<&str> {
        self.0.get("channel").and_then(Value::as_str)
    }

    /// Returns the `clientId`, if it is a string.
    pub fn client_id(&self) -> Option<&str> {
        self.0.get("clientId").and_then(Value::as_str)
    }

    /// Returns the `id` to echo, when present and valid (a number, or a string of the
    /// characters CometD accepts).
    pub fn id(&self) -> Option<&Value> {
        match self.0.get("id")? {
            v @ Value::Number(_) => Some(v),
            v @ Value::String(s) if super::channel::is_valid_field(s) => Some(v),
            _ => None,
        }
    }

    /// Returns whether an `id` is present but invalid.
    pub fn has_invalid_id(&self) -> bool {
        self.0.get("id").is_some_and(|v| !v.is_null()) && self.id().is_none()
    }

    /// Returns `advice.timeout` when the client sent one.
    pub fn advice_timeout(&self) -> Option<u64> {
        self.0.get("advice")?.get("timeout")?.as_u64()
    }

    /// Returns whether the client sent any `advice`.
    pub fn has_advice(&self) -> bool {
        self.0.get("advice").is_some_and(Value::is_object)
    }

    /// Returns `ext.ack` as the handshake sends it (`true`).
    pub fn wants_ack(&self) -> bool {
        self.ext("ack").is_some_and(|v| v.as_bool() == Some(true))
    }

    /// Returns `ext.ack` as a connect sends it (the last batch received).
    pub fn ack_batch(&self) -> Option<u64> {
        self.ext("ack")?.as_u64()
    }

    fn ext(&self, name: &str) -> Option<&Value> {
        self.0.get("ext")?.get(name)
    }

    /// Returns `supportedConnectionTypes` when given as an array of strings.
    pub fn connection_types(&self) -> Option<Vec<&str>> {
        let types = self.0.get("supportedConnectionTypes")?.as_array()?;
        Some(types.iter().filter_map(Value::as_str).collect())
    }

    /// Returns the raw `subscription` field.
    pub fn subscription(&self) -> Option<&Value> {
        self.0.get("subscription")
    }
}

/// A reply under construction: `id` and `channel` of its request, then the result.
#[derive(Debug, Clone, PartialEq)]
pub struct BayeuxReply(pub Map<String, Value>);

impl BayeuxReply {
    /// Starts a reply to `request`, echoing its `id` (when valid) and `channel`.
    pub fn to(request: &BayeuxMessage) -> Self {
        let mut map = Map::new();
        if let Some(id) = request.id() {
            map.insert("id".into(), id.clone());
        }
        if let Some(channel) = request.channel() {
            map.insert("channel".into(), channel.into());
        }
        Self(map)
    }

    /// Marks the reply successful.
    pub fn ok(mut self) -> Self {
        self.0.insert("successful".into(), true.into());
        self
    }

    /// Marks the reply failed with a Bayeux error string.
    pub fn error(mut self, error: &str) -> Self {
        self.0.insert("successful".into(), false.into());
        self.0.insert("error".into(), error.into());
        self
    }

    /// Sets a field.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.0.insert(key.into(), value);
        self
    }

    /// Sets a field in place.
    pub fn set(&mut self, key: &str, value: Value) {
        self.0.insert(key.into(), value);
    }

    /// Returns whether the reply is successful.
    pub fn is_successful(&self) -> bool {
        self.0.get("successful").and_then(Value::as_bool) == Some(true)
    }

    /// Serializes the reply.
    pub fn to_json(&self) -> Arc<str> {
        // The map serializes as the object it holds, without a copy into a `Value`; with
        // string keys and `Value`s it cannot fail.
        serde_json::to_string(&self.0)
            .unwrap_or_else(|_| "{}".to_owned())
            .into()
    }
}

/// Returns the advice that sends a client back to handshake.
pub fn handshake_advice() -> Value {
    json!({ "reconnect": "handshake", "interval": 0 })
}

/// Joins serialized messages into one JSON array.
pub fn join_batch(parts: &[Arc<str>]) -> String {
    let mut out = String::with_capacity(2 + parts.iter().map(|p| p.len() + 1).sum::<usize>());
    out.push('[');
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(part);
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_parse_as_arrays_or_single_objects() {
        let one = BayeuxMessage::parse_batch(br#"{"channel":"/meta/connect"}"#, 8).unwrap();
        assert_eq!(one[0].channel(), Some("/meta/connect"));
        assert_eq!(
            BayeuxMessage::parse_batch(b"[]", 8),
            Err(BayeuxBatchError::Empty)
        );
        assert_eq!(
            BayeuxMessage::parse_batch(b"[1]", 8),
            Err(BayeuxBatchError::NotMessages)
        );
        assert!(matches!(
            BayeuxMessage::parse_batch(b"[{", 8),
            Err(BayeuxBatchError::Json(_))
        ));
        assert_eq!(
            BayeuxMessage::parse_batch(b"[{},{}]", 1),
            Err(BayeuxBatchError::TooLarge(2, 1))
        );
    }

    #[test]
    fn replies_echo_id_and_channel() {
        let req = BayeuxMessage::parse_batch(br#"{"id":"7","channel":"/x","ext":{"ack":3}}"#, 8)
            .unwrap()
            .remove(0);
        assert_eq!(req.ack_batch(), Some(3));
        let reply = BayeuxReply::to(&req).error(UNKNOWN_CLIENT);
        let back: Value = serde_json::from_str(&reply.to_json()).unwrap();
        assert_eq!(
            back,
            json!({"id":"7","channel":"/x","successful":false,"error":"402::Unknown client"})
        );
        assert_eq!(join_batch(&["1".into(), "2".into()]), "[1,2]");
    }
}
