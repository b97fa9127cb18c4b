//! The wing's leaf configuration types: the `[legacy]` table (the GWS JSON API, its
//! sessions and CORS) and the `[cometd]` table (the CometD endpoint). This file imports
//! nothing of the gateway, so `crate::config` can build on it without importing a front.
//!
//! # `[legacy]`
//!
//! | TOML key | meaning | default |
//! |---|---|---|
//! | `legacy.allowed_origins` | CORS origins allowed to call the API from a browser: exact origins (`https://desk.example.com`) or one leading wildcard label (`https://*.example.com`); a bare `*` is refused | `[]` (spec §2: `allowedOrigins` defaults to empty) |
//! | `legacy.csrf` | require the `X-CSRF-TOKEN` header on POST (spec §2) | [`DEFAULT_CSRF`] |
//! | `legacy.session_idle_secs` | idle time after which a `JSESSIONID` session expires | [`DEFAULT_SESSION_IDLE_SECS`] |
//! | `legacy.session_limit` | most live sessions; the least recently used goes first | [`DEFAULT_SESSION_LIMIT`] |
//! | `legacy.max_body_bytes` | largest request body accepted (413 above it) | [`DEFAULT_MAX_BODY_BYTES`] |
//! | `legacy.request_timeout_ms` | time a request may take, body upload included (408 after it) | [`DEFAULT_REQUEST_TIMEOUT_MS`] |
//! | `legacy.public_url` | the URL the gateway is published under (`https://gws.example.com`): links (`uri`, `deviceUri`, ...) start with it | none: from each request ([`crate::gws::base_url`]) |
//! | `legacy.trust_forwarded` | take the links' scheme and host from `Forwarded` (RFC 7239) or `X-Forwarded-Proto`/`X-Forwarded-Host`; only behind a proxy that writes them | `false` |
//!
//! # `[cometd]`
//!
//! Settings of the CometD endpoint, mirroring the CometD server options of the same names
//! (spec `bayeux.md` §10), plus the bounds this gateway adds so that no session can grow
//! memory without limit; the keys are listed in [`crate::config`].

use std::fmt;
use std::time::Duration;

use axum::http::Uri;
use serde::Deserialize;

/// Default of `legacy.csrf`: off, as in GWS, where CSRF protection is an optional feature.
pub const DEFAULT_CSRF: bool = false;
/// Default idle timeout of a session, in seconds (a servlet container's 30 minutes).
pub const DEFAULT_SESSION_IDLE_SECS: u64 = 30 * 60;
/// Default maximum number of live sessions.
pub const DEFAULT_SESSION_LIMIT: usize = 10_000;
/// Default body limit: 64 KiB is far above any operation with a generous `userData`.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Default request timeout in milliseconds; core operations take microseconds, so this only
/// bounds slow clients.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;
/// How long a browser may cache a preflight answer (spec §2 `corsFilterCacheTimeToLive`).
pub const CORS_MAX_AGE: Duration = Duration::from_secs(120);

/// Settings of the legacy front-end.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyConfig {
    /// Origins allowed by CORS.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Whether POSTs need the CSRF token.
    #[serde(default = "defaults::csrf")]
    pub csrf: bool,
    /// Session idle timeout in seconds.
    #[serde(default = "defaults::session_idle_secs")]
    pub session_idle_secs: u64,
    /// Most live sessions.
    #[serde(default = "defaults::session_limit")]
    pub session_limit: usize,
    /// Largest request body in bytes.
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// Request timeout in milliseconds.
    #[serde(default = "defaults::request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// The URL the gateway is published under, which every link starts with
    /// ([`crate::gws::base_url`]); `None` derives it from each request.
    #[serde(default)]
    pub public_url: Option<PublicUrl>,
    /// Whether `Forwarded` / `X-Forwarded-*` request headers choose the links' scheme and
    /// host (only behind a proxy that writes them; [`crate::gws::base_url`] says why).
    #[serde(default)]
    pub trust_forwarded: bool,
}

mod defaults {
    pub(super) fn csrf() -> bool {
        super::DEFAULT_CSRF
    }
    pub(super) fn session_idle_secs() -> u64 {
        super::DEFAULT_SESSION_IDLE_SECS
    }
    pub(super) fn session_limit() -> usize {
        super::DEFAULT_SESSION_LIMIT
    }
    pub(super) fn max_body_bytes() -> usize {
        super::DEFAULT_MAX_BODY_BYTES
    }
    pub(super) fn request_timeout_ms() -> u64 {
        super::DEFAULT_REQUEST_TIMEOUT_MS
    }
}

impl Default for LegacyConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            csrf: DEFAULT_CSRF,
            session_idle_secs: DEFAULT_SESSION_IDLE_SECS,
            session_limit: DEFAULT_SESSION_LIMIT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            public_url: None,
            trust_forwarded: false,
        }
    }
}

impl LegacyConfig {
    /// Returns the session idle timeout.
    pub fn session_idle(&self) -> Duration {
        Duration::from_secs(self.session_idle_secs)
    }

    /// Returns the request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Returns whether a browser origin may call the API.
    ///
    /// A pattern matches its exact origin; `scheme://*.domain` matches any origin of that
    /// scheme whose host ends in `.domain` (one or more labels). A bare `*` matches nothing:
    /// GWS forbids it, and with credentials a wildcard would let any site drive calls.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|pattern| origin_matches(pattern, origin))
    }
}

/// A configured public URL (`legacy.public_url`): `http` or `https`, a host and an optional
/// port, nothing else (no path, query, fragment or user info), kept without a trailing
/// slash. The configuration refuses anything else when it is read.
/// Checked here rather than when the base URL is built, so a wrong value stops the gateway
/// at start-up.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PublicUrl(String);

impl PublicUrl {
    /// Returns the URL, `scheme://host[:port]`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PublicUrl {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let invalid = |why: &str| format!("invalid public_url {text:?}: {why}");
        let uri: Uri = text.parse().map_err(|_| invalid("not a URL"))?;
        let scheme = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") => "http",
            Some(s) if s.eq_ignore_ascii_case("https") => "https",
            _ => return Err(invalid("the scheme must be http or https")),
        };
        let authority = uri
            .authority()
            .filter(|a| !a.as_str().contains('@') && !a.host().is_empty())
            .ok_or_else(|| invalid("it needs a host and no user info"))?;
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() || text.contains('#') {
            return Err(invalid("give only scheme, host and port"));
        }
        Ok(Self(format!("{scheme}://{authority}")))
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn origin_matches(pattern: &str, origin: &str) -> bool {
    if pattern == "*" {
        return false;
    }
    match pattern.split_once("://*.") {
        Some((scheme, domain)) => origin
            .strip_prefix(scheme)
            .and_then(|rest| rest.strip_prefix("://"))
            .and_then(|host| host.strip_suffix(domain))
            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.') && !sub.contains('/')),
        None => pattern.eq_ignore_ascii_case(origin),
    }
}

/// Default connect hold time (`advice.timeout`), in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Default pause between a connect reply and the next connect (`advice.interval`), in ms.
pub const DEFAULT_INTERVAL_MS: u64 = 0;
/// Default grace after a connect reply before an idle session is swept, in milliseconds.
pub const DEFAULT_MAX_INTERVAL_MS: u64 = 10_000;
/// Default period of the sweeper that expires sessions, in milliseconds (CometD's 997).
pub const DEFAULT_SWEEP_PERIOD_MS: u64 = 997;
/// Default number of messages one session may hold undelivered (or unacknowledged).
/// A call produces a handful of notifications per change, so 256 covers minutes of a busy
/// agent's traffic while capping a stalled session at roughly 256 × 2 KB.
pub const DEFAULT_MAX_QUEUE: usize = 256;
/// Default largest HTTP request body or WebSocket message accepted, in bytes.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024;
/// Default largest number of messages in one batch.
pub const DEFAULT_MAX_BATCH: usize = 64;
/// Default number of long-polls one browser (`BAYEUX_BROWSER` cookie) may hold over
/// HTTP/1.1 before further ones get the `multiple-clients` advice (HTTP/2 is unlimited).
pub const DEFAULT_MAX_SESSIONS_PER_BROWSER: usize = 1;
/// Default polling interval advised to the extra sessions of one browser, in milliseconds.
pub const DEFAULT_MULTI_SESSION_INTERVAL_MS: u64 = 2_000;
/// Default largest number of live Bayeux sessions; further handshakes are refused.
pub const DEFAULT_MAX_SESSIONS: usize = 20_000;

/// CometD endpoint settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CometdConfig {
    /// Connect hold time in ms ([`DEFAULT_TIMEOUT_MS`]).
    pub timeout_ms: u64,
    /// Advised pause between connects in ms ([`DEFAULT_INTERVAL_MS`]).
    pub interval_ms: u64,
    /// Grace after a connect reply before the session expires, in ms ([`DEFAULT_MAX_INTERVAL_MS`]).
    pub max_interval_ms: u64,
    /// Sweeper period in ms ([`DEFAULT_SWEEP_PERIOD_MS`]).
    pub sweep_period_ms: u64,
    /// Per-session queue limit in messages ([`DEFAULT_MAX_QUEUE`]).
    pub max_queue: usize,
    /// Largest request body / WebSocket message in bytes ([`DEFAULT_MAX_MESSAGE_SIZE`]).
    pub max_message_size: usize,
    /// Largest batch in messages ([`DEFAULT_MAX_BATCH`]).
    pub max_batch: usize,
    /// Held long-polls per browser on HTTP/1.1 ([`DEFAULT_MAX_SESSIONS_PER_BROWSER`]).
    pub max_sessions_per_browser: usize,
    /// Interval advised to extra sessions of a browser, in ms ([`DEFAULT_MULTI_SESSION_INTERVAL_MS`]).
    pub multi_session_interval_ms: u64,
    /// Live session limit ([`DEFAULT_MAX_SESSIONS`]).
    pub max_sessions: usize,
    /// Whether the `websocket` transport is offered (default true).
    pub websocket: bool,
}

impl Default for CometdConfig {
    fn default() -> Self {
        Self {
            timeout_ms: DEFAULT_TIMEOUT_MS,
            interval_ms: DEFAULT_INTERVAL_MS,
            max_interval_ms: DEFAULT_MAX_INTERVAL_MS,
            sweep_period_ms: DEFAULT_SWEEP_PERIOD_MS,
            max_queue: DEFAULT_MAX_QUEUE,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_batch: DEFAULT_MAX_BATCH,
            max_sessions_per_browser: DEFAULT_MAX_SESSIONS_PER_BROWSER,
            multi_session_interval_ms: DEFAULT_MULTI_SESSION_INTERVAL_MS,
            max_sessions: DEFAULT_MAX_SESSIONS,
            websocket: true,
        }
    }
}

impl CometdConfig {
    /// Returns the connect hold time.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Returns the grace after a connect reply.
    pub fn max_interval(&self) -> Duration {
        Duration::from_millis(self.max_interval_ms)
    }

    /// Returns the time a session survives after a connect reply: `interval + maxInterval`.
    pub fn expiry_after_connect(&self) -> Duration {
        Duration::from_millis(self.interval_ms.saturating_add(self.max_interval_ms))
    }

    /// Returns the sweeper period (at least 10 ms).
    pub fn sweep_period(&self) -> Duration {
        Duration::from_millis(self.sweep_period_ms.max(10))
    }

    /// Returns the connection types offered in the handshake reply.
    pub fn connection_types(&self) -> &'static [&'static str] {
        if self.websocket {
            &["websocket", "long-polling"]
        } else {
            &["long-polling"]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(origins: &[&str]) -> LegacyConfig {
        LegacyConfig {
            allowed_origins: origins.iter().map(|o| o.to_string()).collect(),
            ..LegacyConfig::default()
        }
    }

    #[test]
    fn exact_origins_match_only_themselves() {
        let c = config(&["http://desk.example:8080"]);
        assert!(c.origin_allowed("http://desk.example:8080"));
        assert!(!c.origin_allowed("http://desk.example"));
        assert!(!c.origin_allowed("https://desk.example:8080"));
        assert!(!c.origin_allowed("http://desk.example:8080.evil.test"));
    }

    #[test]
    fn wildcard_origins_match_subdomains_of_the_same_scheme() {
        let c = config(&["https://*.example.com"]);
        assert!(c.origin_allowed("https://desk.example.com"));
        assert!(c.origin_allowed("https://a.b.example.com"));
        assert!(!c.origin_allowed("https://example.com"));
        assert!(!c.origin_allowed("https://evilexample.com"));
        assert!(!c.origin_allowed("http://desk.example.com"));
    }

    #[test]
    fn a_bare_star_and_the_default_allow_nothing() {
        assert!(!config(&["*"]).origin_allowed("https://desk.example.com"));
        assert!(!LegacyConfig::default().origin_allowed("https://desk.example.com"));
    }

    #[test]
    fn the_table_parses_with_defaults() {
        let c: LegacyConfig = toml::from_str("csrf = true").unwrap();
        assert!(c.csrf);
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert!(toml::from_str::<LegacyConfig>("csrf_on = true").is_err());
    }
}
