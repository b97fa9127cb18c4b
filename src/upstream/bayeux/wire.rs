//! The client's side of the wire: one POST of a batch and its reply, reading replies and
//! deliveries out of a batch, the server's `advice`, and the per-client cookies.

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, HeaderMap, HeaderValue, SET_COOKIE};
use serde_json::Value;
use sonic_rs::{JsonContainerTrait as _, JsonValueTrait as _};

use super::{BayeuxClientError, BayeuxDelivery};

/// One message of a batch the server sent.
///
/// The server's batches are read with sonic-rs, whose document is one allocation (an arena)
/// where serde_json's `Value` allocates every string, array and map node: a notification
/// frame of a GWS call (1.4 KB) parses and drops in about a quarter of serde_json's
/// instructions, and figure 7's bridge reads two such frames per operation. What the
/// client sends is still built with serde_json. Where the two differ: a message with a
/// key twice keeps both here, and lookups find the first (serde_json kept the last).
pub(super) type Object = sonic_rs::Object;

/// The channels of the meta messages the client sends.
pub(super) const HANDSHAKE: &str = "/meta/handshake";
pub(super) const SUBSCRIBE: &str = "/meta/subscribe";
pub(super) const CONNECT: &str = "/meta/connect";
pub(super) const DISCONNECT: &str = "/meta/disconnect";
/// The transports this client speaks.
pub(super) const LONG_POLLING: &str = "long-polling";
pub(super) const WEBSOCKET: &str = "websocket";

/// The server as one client sees it: where to POST, with which headers and cookies.
#[derive(Debug)]
pub(super) struct Upstream {
    pub(super) http: reqwest::Client,
    pub(super) endpoint: reqwest::Url,
    pub(super) headers: HeaderMap,
    pub(super) jar: CookieJar,
    pub(super) max_reply_bytes: usize,
}

impl Upstream {
    /// POSTs `batch` and returns the reply batch; keeps the cookies the server sets.
    pub(super) async fn exchange(
        &mut self,
        batch: &[Value],
        timeout: Duration,
    ) -> Result<Vec<Object>, BayeuxClientError> {
        let body = Value::Array(batch.to_vec()).to_string();
        let mut request = self
            .http
            .post(self.endpoint.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json;charset=UTF-8")
            .timeout(timeout)
            .body(body);
        if let Some(cookie) = self.jar.header() {
            request = request.header(COOKIE, cookie);
        }
        let mut response = request.send().await.map_err(BayeuxClientError::Transport)?;
        self.jar.store(response.headers());
        if response.status() != StatusCode::OK {
            return Err(BayeuxClientError::Status(response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(BayeuxClientError::Transport)?
        {
            if body.len() + chunk.len() > self.max_reply_bytes {
                return Err(malformed(format!(
                    "reply longer than {} bytes",
                    self.max_reply_bytes
                )));
            }
            body.extend_from_slice(&chunk);
        }
        parse_batch(&body)
    }
}

/// Returns a [`BayeuxClientError::Malformed`].
pub(super) fn malformed(what: impl Into<String>) -> BayeuxClientError {
    BayeuxClientError::Malformed(what.into())
}

/// The deepest nesting of arrays and objects read from a server: serde_json's own limit,
/// which this client had before it read with sonic-rs. sonic-rs's document parser recurses
/// once per level with no limit of its own, so a deeper document (a broken or hostile
/// server's) would overflow the task's stack and abort the process.
const MAX_DEPTH: usize = 128;

/// Returns whether `json` nests arrays and objects at most `max` deep (brackets inside
/// strings do not count), without parsing it. A document with at most `max` opening
/// brackets in all cannot nest deeper, and a GWS message has a dozen: that count (memchr's
/// vectorised search) decides almost every time; only a document with more is read byte by
/// byte, its strings skipped.
fn within_depth(json: &[u8], max: usize) -> bool {
    if memchr::memchr2_iter(b'[', b'{', json).nth(max).is_none() {
        return true;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

/// Reads a JSON document a server sent (a reply batch, or a resource such as `/me`) as a
/// sonic-rs value, as this client and the bridge read them (why: sonic-rs); refuses one
/// nested deeper than 128 levels before parsing it, and says why a document is not JSON.
pub fn read_document(body: &[u8]) -> Result<sonic_rs::Value, String> {
    if !within_depth(body, MAX_DEPTH) {
        return Err(format!("nested deeper than {MAX_DEPTH} levels"));
    }
    sonic_rs::from_slice(body).map_err(|e| e.to_string())
}

/// Parses a reply body: a non-empty JSON array of objects (one object is accepted too).
pub(super) fn parse_batch(body: &[u8]) -> Result<Vec<Object>, BayeuxClientError> {
    let value = read_document(body).map_err(|e| malformed(format!("not JSON ({e})")))?;
    if value.is_object() {
        return Ok(value.into_object().into_iter().collect());
    }
    let items = match value.into_array() {
        Some(items) if items.is_empty() => return Err(malformed("empty batch")),
        Some(items) => items,
        None => return Err(malformed("not a batch of messages")),
    };
    items
        .into_iter()
        .map(|item| {
            item.into_object()
                .ok_or_else(|| malformed("a batch item is not a message"))
        })
        .collect()
}

/// Removes and returns the reply on `channel` to the request `id`; a reply on `channel`
/// without an `id` is taken when none carries it (servers must echo it, some may not).
pub(super) fn take_reply(batch: &mut Vec<Object>, channel: &str, id: &str) -> Option<Object> {
    let at = reply_position(batch, channel, id)?;
    Some(batch.remove(at))
}

/// Returns where [`take_reply`] would find its reply.
pub(super) fn reply_position(batch: &[Object], channel: &str, id: &str) -> Option<usize> {
    let on_channel = |m: &Object| m.get(&"channel").and_then(|c| c.as_str()) == Some(channel);
    let same_id = |m: &Object| match m.get(&"id") {
        Some(v) if v.is_str() => v.as_str() == Some(id),
        // The client's ids are decimal integers; a server may echo one as a number.
        Some(v) => v.as_u64().is_some_and(|n| id.parse() == Ok(n)),
        None => false,
    };
    batch
        .iter()
        .position(|m| on_channel(m) && same_id(m))
        .or_else(|| {
            batch
                .iter()
                .position(|m| on_channel(m) && !m.contains_key(&"id"))
        })
}

/// Turns a message of a reply batch into a delivery: it has a non-meta `channel` and `data`
/// (a publish reply has no `data`).
pub(super) fn delivery(message: Object) -> Result<BayeuxDelivery, Object> {
    let channel = match message.get(&"channel").and_then(|c| c.as_str()) {
        Some(channel) if !channel.starts_with("/meta/") && message.contains_key(&"data") => {
            channel.to_owned()
        }
        _ => return Err(message),
    };
    Ok(BayeuxDelivery { channel, message })
}

/// Returns whether the reply says `successful: true`.
pub(super) fn successful(reply: &Object) -> bool {
    reply.get(&"successful").and_then(|s| s.as_bool()) == Some(true)
}

/// Returns the reply's `error` string, or a placeholder.
pub(super) fn error_text(reply: &Object) -> String {
    match reply.get(&"error") {
        // Not `to_string`: sonic-rs's `Display` panics where its serializer would fail.
        Some(error) => error.as_str().map_or_else(
            || sonic_rs::to_string(error).unwrap_or_default(),
            str::to_owned,
        ),
        None => "no error given".to_owned(),
    }
}

/// Returns whether a handshake reply accepts the ack extension (`ext.ack: true`, or the
/// newer `{"enabled": true, ...}`).
pub(super) fn ack_enabled(reply: &Object) -> bool {
    let Some(ack) = reply.get(&"ext").and_then(|ext| ext.get("ack")) else {
        return false;
    };
    match ack.as_object() {
        Some(ack) => ack.get(&"enabled").and_then(|on| on.as_bool()) == Some(true),
        None => ack.as_bool() == Some(true),
    }
}

/// Returns the batch number of a connect reply (`ext.ack`).
pub(super) fn ack_batch(reply: &Object) -> Option<u64> {
    reply.get(&"ext")?.get("ack")?.as_u64()
}

/// Returns whether a handshake reply offers `transport`; a reply that lists nothing offers
/// `long-polling` only.
pub(super) fn offers(reply: &Object, transport: &str) -> bool {
    match reply
        .get(&"supportedConnectionTypes")
        .and_then(|types| types.as_array())
    {
        Some(types) => types.iter().any(|t| t.as_str() == Some(transport)),
        None => transport == LONG_POLLING,
    }
}

/// Returns whether a client may subscribe to `channel`: a channel name (`/a/b`, with `*` or
/// `**` as the last segment), not a meta channel.
pub(super) fn is_subscribable(channel: &str) -> bool {
    let Some(rest) = channel.strip_prefix('/') else {
        return false;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    !channel.starts_with("/meta/")
        && segments.iter().enumerate().all(|(i, segment)| {
            (i == last && matches!(*segment, "*" | "**"))
                || (!segment.is_empty()
                    && segment
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_!~()$@.".contains(&b)))
        })
}

/// The longest `interval` or `timeout` taken from advice: a server advising more is
/// broken, and an hour still lets it recover.
const MAX_ADVICE: Duration = Duration::from_secs(3600);

/// What the server wants next, from a reply's `advice.reconnect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reconnect {
    /// Go on (the default when a reply gives no advice).
    Retry,
    /// Handshake again.
    Handshake,
    /// Stop.
    None,
}

/// The timings the server advised last (a newer advice replaces the older one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Advice {
    /// Wait after a connect reply before the next connect.
    pub(super) interval: Duration,
    /// How long the server holds a connect.
    pub(super) timeout: Duration,
}

impl Default for Advice {
    /// CometD's defaults, until the server advises.
    fn default() -> Self {
        Self {
            interval: Duration::ZERO,
            timeout: Duration::from_secs(30),
        }
    }
}

impl Advice {
    /// Takes the timings of `reply.advice` (or of its `long-polling` entry, the per-transport
    /// form) and returns its `reconnect`.
    pub(super) fn update(&mut self, reply: &Object) -> Reconnect {
        let Some(advice) = reply.get(&"advice").and_then(|a| a.as_object()) else {
            return Reconnect::Retry;
        };
        let advice = advice
            .get(&LONG_POLLING)
            .and_then(|a| a.as_object())
            .unwrap_or(advice);
        let millis = |ms: u64| Duration::from_millis(ms).min(MAX_ADVICE);
        if let Some(interval) = advice.get(&"interval").and_then(|i| i.as_i64()) {
            self.interval = millis(interval.max(0).unsigned_abs());
        }
        if let Some(timeout) = advice.get(&"timeout").and_then(|t| t.as_u64()) {
            self.timeout = millis(timeout);
        }
        match advice.get(&"reconnect").and_then(|r| r.as_str()) {
            Some("handshake") => Reconnect::Handshake,
            Some("none") => Reconnect::None,
            _ => Reconnect::Retry,
        }
    }
}

/// Splits a `Cookie` header value into `(name, value)` pairs.
pub(super) fn cookie_pairs(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split(';').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        let name = name.trim();
        (!name.is_empty()).then_some((name, value.trim()))
    })
}

/// The cookies a reply's `Set-Cookie` headers set, in order: each one's name, its value as
/// sent (quotes kept: it goes back as it came), and whether it is deleted (`Max-Age` 0 or
/// negative). A header that is not text or names no cookie is skipped.
pub(crate) fn set_cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str, bool)> {
    headers.get_all(SET_COOKIE).iter().filter_map(|line| {
        let mut parts = line.to_str().ok()?.split(';');
        let (name, value) = parts.next()?.split_once('=')?;
        let name = name.trim();
        let expired = parts.any(|attr| {
            attr.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("max-age")
                    && v.trim().parse::<i64>().is_ok_and(|age| age <= 0)
            })
        });
        (!name.is_empty()).then_some((name, value.trim(), expired))
    })
}

/// One client's cookies, sent to its one endpoint: no domain or path scoping is needed.
#[derive(Default)]
pub(super) struct CookieJar {
    cookies: Vec<(String, String)>,
}

impl fmt::Debug for CookieJar {
    /// Lists the names only: the values are credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.cookies.iter().map(|(name, _)| name))
            .finish()
    }
}

impl CookieJar {
    /// Sets a cookie, replacing one of the same name; a pair that cannot go in a header is
    /// skipped, so that one bad cookie never silences the others.
    pub(super) fn set(&mut self, name: &str, value: &str) {
        if HeaderValue::from_str(&format!("{name}={value}")).is_err() || name.contains(['=', ';']) {
            tracing::warn!(
                cookie = name,
                "bayeux client skips a cookie unfit for a header"
            );
            return;
        }
        self.remove(name);
        self.cookies.push((name.to_owned(), value.to_owned()));
    }

    fn remove(&mut self, name: &str) {
        self.cookies.retain(|(n, _)| n != name);
    }

    /// Keeps the cookies of the `Set-Cookie` headers; `Max-Age=0` (or negative) deletes.
    pub(super) fn store(&mut self, headers: &HeaderMap) {
        for (name, value, expired) in set_cookies(headers) {
            if expired {
                self.remove(name);
            } else {
                self.set(name, value);
            }
        }
    }

    /// Returns the `Cookie` header to send, if any cookie is kept.
    pub(super) fn header(&self) -> Option<HeaderValue> {
        if self.cookies.is_empty() {
            return None;
        }
        let line = self
            .cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        HeaderValue::from_str(&line).ok()
    }
}

#[cfg(test)]
mod tests {
    use sonic_rs::json;

    use super::*;

    fn object(value: sonic_rs::Value) -> Object {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn batches_parse_and_garbage_is_malformed() {
        assert_eq!(parse_batch(br#"[{"a":1},{"b":2}]"#).unwrap().len(), 2);
        assert_eq!(parse_batch(br#"{"channel":"/x"}"#).unwrap().len(), 1);
        for garbage in [&b"<html>"[..], b"[]", b"[1]", b"\"x\"", b"[{}", b""] {
            let error = parse_batch(garbage).unwrap_err();
            assert!(matches!(error, BayeuxClientError::Malformed(_)), "{error}");
        }
    }

    #[test]
    fn a_batch_nested_too_deep_is_malformed_not_a_stack_overflow() {
        let nested = |depth: usize| {
            let mut json = "[".repeat(depth);
            json.push_str(&"]".repeat(depth));
            json
        };
        assert!(within_depth(nested(MAX_DEPTH).as_bytes(), MAX_DEPTH));
        assert!(!within_depth(nested(MAX_DEPTH + 1).as_bytes(), MAX_DEPTH));
        // Far deeper than a test thread's stack would survive in sonic-rs's parser.
        let error = parse_batch(nested(1_000_000).as_bytes()).unwrap_err();
        assert!(
            error.to_string().contains("nested deeper than 128"),
            "{error}"
        );
        // Brackets in strings, escaped quotes included, are not nesting.
        let strings = format!(
            r#"[{{"channel":"/x","data":"{}\"{}"}}]"#,
            "[".repeat(200),
            "{".repeat(200)
        );
        assert!(within_depth(strings.as_bytes(), 3));
        assert_eq!(parse_batch(strings.as_bytes()).unwrap().len(), 1);
        let objects = format!("{}1{}", r#"{"a":"#.repeat(129), "}".repeat(129));
        assert!(parse_batch(objects.as_bytes()).is_err());
    }

    #[test]
    fn replies_are_found_by_channel_and_id_and_the_rest_are_deliveries() {
        let mut batch = vec![
            object(json!({"channel": "/v2/me/calls", "data": {"n": 1}, "id": "9"})),
            object(json!({"channel": "/meta/connect", "id": 3, "successful": true})),
            object(json!({"channel": "/meta/subscribe", "successful": true})),
        ];
        assert!(take_reply(&mut batch, CONNECT, "4").is_none());
        let reply = take_reply(&mut batch, CONNECT, "3").unwrap();
        assert_eq!(reply.get(&"id").and_then(|id| id.as_u64()), Some(3));
        assert!(take_reply(&mut batch, SUBSCRIBE, "5").is_some(), "no id");
        let message = delivery(batch.remove(0)).unwrap();
        assert_eq!(message.channel(), "/v2/me/calls");
        assert_eq!(message.data(), &json!({"n": 1}));
        assert_eq!(message.id(), Some(&json!("9")));
        assert!(delivery(object(json!({"channel": "/x", "successful": true}))).is_err());
        assert!(delivery(object(json!({"channel": "/meta/x", "data": 1}))).is_err());
    }

    #[test]
    fn advice_keeps_timings_and_reads_reconnect_per_reply() {
        let mut advice = Advice::default();
        let reply = object(json!({"advice": {"reconnect": "handshake", "interval": -1}}));
        assert_eq!(advice.update(&reply), Reconnect::Handshake);
        assert_eq!(advice.interval, Duration::ZERO);
        let nested = object(json!({"advice": {"long-polling": {"timeout": 45000, "interval": 5}}}));
        assert_eq!(advice.update(&nested), Reconnect::Retry);
        assert_eq!(advice.timeout, Duration::from_secs(45));
        assert_eq!(advice.interval, Duration::from_millis(5));
        let none = object(json!({"advice": {"reconnect": "none"}}));
        assert_eq!(advice.update(&none), Reconnect::None);
        assert_eq!(advice.update(&object(json!({}))), Reconnect::Retry);
        assert_eq!(advice.timeout, Duration::from_secs(45), "kept");
    }

    #[test]
    fn ack_and_transports_are_read_from_replies() {
        assert!(ack_enabled(&object(json!({"ext": {"ack": true}}))));
        assert!(ack_enabled(&object(
            json!({"ext": {"ack": {"enabled": true, "batch": 0}}})
        )));
        assert!(!ack_enabled(&object(json!({"ext": {}}))));
        assert_eq!(ack_batch(&object(json!({"ext": {"ack": 7}}))), Some(7));
        assert!(offers(&object(json!({})), LONG_POLLING));
        assert!(!offers(&object(json!({})), WEBSOCKET));
        let ws = object(json!({"supportedConnectionTypes": ["websocket"]}));
        assert!(!offers(&ws, LONG_POLLING));
        assert!(offers(&ws, WEBSOCKET));
    }

    #[test]
    fn channels_to_subscribe_are_checked() {
        for ok in ["/v2/me/calls", "/v2/me/*", "/a/**", "/a.b/c-d"] {
            assert!(is_subscribable(ok), "{ok}");
        }
        for bad in ["", "/", "v2/me", "/meta/connect", "/a//b", "/a/*/b", "/a b"] {
            assert!(!is_subscribable(bad), "{bad}");
        }
    }

    #[test]
    fn the_jar_keeps_renews_and_deletes_cookies() {
        let mut jar = CookieJar::default();
        for (name, value) in cookie_pairs("JSESSIONID=abc; theme = dark") {
            jar.set(name, value);
        }
        jar.set("bad", "a\u{7f}b");
        let mut headers = HeaderMap::new();
        headers.append(
            SET_COOKIE,
            "BAYEUX_BROWSER=b1; Path=/; HttpOnly".parse().unwrap(),
        );
        headers.append(SET_COOKIE, "JSESSIONID=def; Path=/".parse().unwrap());
        headers.append(SET_COOKIE, "theme=; Max-Age=0".parse().unwrap());
        jar.store(&headers);
        assert_eq!(jar.header().unwrap(), "BAYEUX_BROWSER=b1; JSESSIONID=def");
        assert!(CookieJar::default().header().is_none());
        assert_eq!(format!("{jar:?}"), r#"["BAYEUX_BROWSER", "JSESSIONID"]"#);
    }
}
