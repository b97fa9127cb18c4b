//! Bayeux messages on the wire: parsing a batch, reading fields, building replies, and the
//! error strings CometD 3 sends (spec `bayeux.md` §7), kept verbatim because legacy
//! clients log or match them.

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
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

/// One Bayeux message: the fields the protocol reads, each as the JSON value the client
/// sent (so that a field of the wrong type reads as absent or invalid, as before), and
/// nothing else. Fields the gateway never reads (`data`, `connectionType`, `version`,
/// anything unknown) are skipped while parsing, not kept: a connect then costs no map and
/// no key strings. As in a JSON object read into a map, a key that repeats keeps its last
/// value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BayeuxMessage {
    channel: Option<Value>,
    client_id: Option<Value>,
    id: Option<Value>,
    advice: Option<Value>,
    ext: Option<Value>,
    connection_types: Option<Value>,
    subscription: Option<Value>,
}

/// The keys of [`BayeuxMessage`], matched without allocating.
enum Key {
    Channel,
    ClientId,
    Id,
    Advice,
    Ext,
    ConnectionTypes,
    Subscription,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "channel" => Key::Channel,
                    "clientId" => Key::ClientId,
                    "id" => Key::Id,
                    "advice" => Key::Advice,
                    "ext" => Key::Ext,
                    "supportedConnectionTypes" => Key::ConnectionTypes,
                    "subscription" => Key::Subscription,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// What one JSON value is to the parser: a message (an object), the body's batch (an
/// array, its elements counted and checked once the whole body has been read, so that a
/// syntax error anywhere is reported as one, as before), or anything else.
enum Parsed {
    Message(BayeuxMessage),
    Batch {
        messages: Vec<BayeuxMessage>,
        len: usize,
        not_objects: bool,
    },
    Other,
}

/// Reads one JSON value. At the top of the body (`max_batch` set) an array is the batch,
/// whose first `max_batch` messages are kept and the rest only counted (the batch is then
/// refused as too large); inside it an array is skipped as `Other`, as is every value that
/// is not an object.
struct Shape {
    max_batch: Option<usize>,
}

impl<'de> DeserializeSeed<'de> for Shape {
    type Value = Parsed;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Parsed, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Shape {
    type Value = Parsed;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Bayeux message or batch")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let mut m = BayeuxMessage::default();
        while let Some(key) = map.next_key::<Key>()? {
            let slot = match key {
                Key::Channel => &mut m.channel,
                Key::ClientId => &mut m.client_id,
                Key::Id => &mut m.id,
                Key::Advice => &mut m.advice,
                Key::Ext => &mut m.ext,
                Key::ConnectionTypes => &mut m.connection_types,
                Key::Subscription => &mut m.subscription,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = Some(map.next_value()?);
        }
        Ok(Parsed::Message(m))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Parsed, A::Error> {
        let Some(max_batch) = self.max_batch else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(Parsed::Other);
        };
        let mut messages = Vec::new();
        let (mut len, mut not_objects) = (0, false);
        while let Some(element) = seq.next_element_seed(Shape { max_batch: None })? {
            len += 1;
            match element {
                Parsed::Message(m) if len <= max_batch => messages.push(m),
                Parsed::Message(_) => {}
                Parsed::Batch { .. } | Parsed::Other => not_objects = true,
            }
        }
        Ok(Parsed::Batch {
            messages,
            len,
            not_objects,
        })
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Parsed, E> {
        Ok(Parsed::Other)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Parsed, E> {
        Ok(Parsed::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Parsed, E> {
        Ok(Parsed::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Parsed, E> {
        Ok(Parsed::Other)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Parsed, E> {
        Ok(Parsed::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Parsed, E> {
        Ok(Parsed::Other)
    }
}

impl BayeuxMessage {
    /// Parses a batch: a JSON array of objects, or one object.
    ///
    /// Read in one pass with serde_json's own parser (a hand-written visitor over its
    /// tokens, not a `Value` tree: the tree of a connect was a tenth of a delivered
    /// message's cost, bench/FINDINGS.md session 12). The outcomes are the tree's, in its
    /// order: a body that is not JSON is `Json` wherever its error lies; then a body that
    /// is neither an object nor an array is `NotMessages`; an empty array `Empty`; a longer
    /// one than `max_batch` `TooLarge`; an array holding anything but objects
    /// `NotMessages`. One difference, on the lenient side: a field the gateway does not
    /// read is skipped unread, so a number too large for a float there no longer refuses
    /// the batch.
    pub fn parse_batch(body: &[u8], max_batch: usize) -> Result<Vec<Self>, BayeuxBatchError> {
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let parsed = Shape {
            max_batch: Some(max_batch),
        }
        .deserialize(&mut deserializer)
        .and_then(|parsed| deserializer.end().map(|()| parsed))
        .map_err(|e| BayeuxBatchError::Json(e.to_string()))?;
        match parsed {
            Parsed::Message(message) => Ok(vec![message]),
            Parsed::Other => Err(BayeuxBatchError::NotMessages),
            Parsed::Batch { len: 0, .. } => Err(BayeuxBatchError::Empty),
            Parsed::Batch { len, .. } if len > max_batch => {
                Err(BayeuxBatchError::TooLarge(len, max_batch))
            }
            Parsed::Batch {
                not_objects: true, ..
            } => Err(BayeuxBatchError::NotMessages),
            Parsed::Batch { messages, .. } => Ok(messages),
        }
    }

    /// Builds the message a JSON object parses to (its fields as [`Self::parse_batch`]
    /// keeps them); for tests that compare the parser with a tree.
    pub fn from_object(object: &Map<String, Value>) -> Self {
        let field = |key: &str| object.get(key).cloned();
        Self {
            channel: field("channel"),
            client_id: field("clientId"),
            id: field("id"),
            advice: field("advice"),
            ext: field("ext"),
            connection_types: field("supportedConnectionTypes"),
            subscription: field("subscription"),
        }
    }

    /// Returns the `channel`, if it is a string.
    pub fn channel(&self) -> Option<&str> {
        self.channel.as_ref().and_then(Value::as_str)
    }

    /// Returns the `clientId`, if it is a string.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_ref().and_then(Value::as_str)
    }

    /// Returns the `id` to echo, when present and valid (a number, or a string of the
    /// characters CometD accepts).
    pub fn id(&self) -> Option<&Value> {
        match self.id.as_ref()? {
            v @ Value::Number(_) => Some(v),
            v @ Value::String(s) if super::channel::is_valid_field(s) => Some(v),
            _ => None,
        }
    }

    /// Returns whether an `id` is present but invalid.
    pub fn has_invalid_id(&self) -> bool {
        self.id.as_ref().is_some_and(|v| !v.is_null()) && self.id().is_none()
    }

    /// Returns `advice.timeout` when the client sent one.
    pub fn advice_timeout(&self) -> Option<u64> {
        self.advice.as_ref()?.get("timeout")?.as_u64()
    }

    /// Returns whether the client sent any `advice`.
    pub fn has_advice(&self) -> bool {
        self.advice.as_ref().is_some_and(Value::is_object)
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
        self.ext.as_ref()?.get(name)
    }

    /// Returns `supportedConnectionTypes` when given as an array of strings.
    pub fn connection_types(&self) -> Option<Vec<&str>> {
        let types = self.connection_types.as_ref()?.as_array()?;
        Some(types.iter().filter_map(Value::as_str).collect())
    }

    /// Returns the raw `subscription` field.
    pub fn subscription(&self) -> Option<&Value> {
        self.subscription.as_ref()
    }
}

/// A reply under construction: `id` and `channel` of its request, then the result.
///
/// Its fields are kept sorted by name, the order in which they are written (and the order
/// a `serde_json::Map` gave them before). A small vector rather than a map: a held connect
/// keeps its reply through the whole hold, on each of thousands of idle connections
/// (BENCHMARKS.md, figure 4), and a map's node took 632 bytes with a string of its own for
/// each key, where a reply has five or six fields named by the protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct BayeuxReply(Vec<(&'static str, Value)>);

impl BayeuxReply {
    /// Starts a reply to `request`, echoing its `id` (when valid) and `channel`.
    pub fn to(request: &BayeuxMessage) -> Self {
        // Room for what most replies carry: id, channel, successful, clientId, advice and
        // one more.
        let mut reply = Self(Vec::with_capacity(6));
        if let Some(id) = request.id() {
            reply.set("id", id.clone());
        }
        if let Some(channel) = request.channel() {
            reply.set("channel", channel.into());
        }
        reply
    }

    /// Marks the reply successful.
    pub fn ok(self) -> Self {
        self.with("successful", true.into())
    }

    /// Marks the reply failed with a Bayeux error string.
    pub fn error(self, error: &str) -> Self {
        self.with("successful", false.into())
            .with("error", error.into())
    }

    /// Sets a field.
    pub fn with(mut self, key: &'static str, value: Value) -> Self {
        self.set(key, value);
        self
    }

    /// Sets a field in place, replacing one of the same name.
    pub fn set(&mut self, key: &'static str, value: Value) {
        match self.0.binary_search_by(|(k, _)| (*k).cmp(key)) {
            Ok(at) => self.0[at].1 = value,
            Err(at) => self.0.insert(at, (key, value)),
        }
    }

    /// Returns a field.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let at = self.0.binary_search_by(|(k, _)| (*k).cmp(key)).ok()?;
        Some(&self.0[at].1)
    }

    /// Returns whether the reply is successful.
    pub fn is_successful(&self) -> bool {
        self.get("successful").and_then(Value::as_bool) == Some(true)
    }

    /// Serializes the reply.
    pub fn to_json(&self) -> Arc<str> {
        // Serialized in place as the object it holds; with string keys and `Value`s it
        // cannot fail.
        serde_json::to_string(self)
            .unwrap_or_else(|_| "{}".to_owned())
            .into()
    }
}

impl serde::Serialize for BayeuxReply {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(key, value)| (key, value)))
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
    fn a_batch_is_refused_in_the_order_the_tree_refused_it() {
        // Length before element types, as the `Value` tree was checked.
        assert_eq!(
            BayeuxMessage::parse_batch(b"[1,2,3]", 2),
            Err(BayeuxBatchError::TooLarge(3, 2))
        );
        // A syntax error after a bad element is still a syntax error.
        assert!(matches!(
            BayeuxMessage::parse_batch(b"[1,{", 8),
            Err(BayeuxBatchError::Json(_))
        ));
        assert!(matches!(
            BayeuxMessage::parse_batch(br#"{"channel":"/a"} x"#, 8),
            Err(BayeuxBatchError::Json(_))
        ));
        for body in [
            &b"1"[..],
            b"\"s\"",
            b"null",
            b"true",
            b"[[]]",
            b"[{}, null]",
        ] {
            assert_eq!(
                BayeuxMessage::parse_batch(body, 8),
                Err(BayeuxBatchError::NotMessages),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value_and_unread_fields_are_skipped() {
        let body = br#"[{"channel":"/a","data":{"x":[1,2,{"y":1e400}]},"channel":"/meta/connect",
            "id":5,"clientId":"c1","connectionType":"long-polling","advice":{"timeout":0},
            "ext":{"ack":7},"supportedConnectionTypes":["long-polling",3],
            "subscription":["/v2/me/calls"],"cl\u0069entId":"c2"}]"#;
        let m = BayeuxMessage::parse_batch(body, 8).unwrap().remove(0);
        assert_eq!(m.channel(), Some("/meta/connect"));
        assert_eq!(m.client_id(), Some("c2"), "an escaped key is the same key");
        assert_eq!(m.id(), Some(&json!(5)));
        assert_eq!(m.advice_timeout(), Some(0));
        assert_eq!(m.ack_batch(), Some(7));
        assert_eq!(m.connection_types(), Some(vec!["long-polling"]));
        assert_eq!(m.subscription(), Some(&json!(["/v2/me/calls"])));
        // A field the protocol reads must still be JSON the tree accepted.
        assert!(matches!(
            BayeuxMessage::parse_batch(br#"{"id":1e400}"#, 8),
            Err(BayeuxBatchError::Json(_))
        ));
    }

    #[test]
    fn a_reply_writes_its_fields_as_a_json_map_did() {
        let req = BayeuxMessage::parse_batch(br#"{"id":"9","channel":"/meta/connect"}"#, 8)
            .unwrap()
            .remove(0);
        let mut reply = BayeuxReply::to(&req)
            .with("successful", true.into())
            .with("clientId", "c1".into())
            .with("advice", json!({"timeout": 0}))
            .with("ext", json!({"ack": 3}));
        // Set again: the last value counts, in the field's place.
        reply.set("advice", json!({"reconnect": "retry", "interval": 0}));
        reply.set("successful", false.into());
        let mut map = Map::new();
        map.insert("id".into(), "9".into());
        map.insert("channel".into(), "/meta/connect".into());
        map.insert("successful".into(), false.into());
        map.insert("clientId".into(), "c1".into());
        map.insert(
            "advice".into(),
            json!({"reconnect": "retry", "interval": 0}),
        );
        map.insert("ext".into(), json!({"ack": 3}));
        assert_eq!(&*reply.to_json(), serde_json::to_string(&map).unwrap());
        assert!(!reply.is_successful());
        assert_eq!(reply.get("clientId"), Some(&json!("c1")));
        assert_eq!(reply.get("error"), None);
        // Equal whatever the order the fields were set in.
        let other = BayeuxReply::to(&req)
            .with("ext", json!({"ack": 3}))
            .with("advice", json!({"reconnect": "retry", "interval": 0}))
            .with("clientId", "c1".into())
            .with("successful", false.into());
        assert_eq!(reply, other);
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
