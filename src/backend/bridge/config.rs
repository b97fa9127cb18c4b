//! The `[upstream]` table of the configuration ([`UpstreamConfig`]) and its defaults:
//! where the upstream GWS is, how long the bridge waits for it, and how many user sessions
//! it keeps open. [`GwsBridge::new`](super::GwsBridge::new) builds the bridge from it.

use std::time::Duration;

use serde::Deserialize;

use crate::upstream::bayeux::ConnectionType;

/// Default wait for the upstream's notification of an operation, in milliseconds.
pub const DEFAULT_REPLY_WAIT_MS: u64 = 2_000;
/// Default connect timeout toward the upstream, in milliseconds.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2_000;
/// Default timeout of one upstream request (not long-polls), in milliseconds.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 5_000;
/// Default period of the availability probe while the upstream is down, in milliseconds.
pub const DEFAULT_PROBE_INTERVAL_MS: u64 = 500;
/// Default number of upstream sessions open at once.
pub const DEFAULT_MAX_SESSIONS: usize = 10_000;
/// Default idle time after which an upstream session is closed, in seconds.
pub const DEFAULT_IDLE_SESSION_S: u64 = 8 * 3600;
/// The contact center upstream users belong to when the upstream names none.
pub const DEFAULT_CONTACT_CENTER: &str = "demo";

/// The `[upstream]` table of the configuration: bridge mode when `url` is set.
///
/// | key | meaning | default |
/// |---|---|---|
/// | `url` | the upstream GWS, `http://` or `https://` (`--upstream`) | none: embedded switch |
/// | `ca_file` | PEM file of extra CA certificates trusted for `https://` (besides the system's) | none |
/// | `contact_center` | contact center of upstream users whose `/me` names none | [`DEFAULT_CONTACT_CENTER`] |
/// | `reply_wait_ms` | wait for the notification of an operation before a gRPC reply | [`DEFAULT_REPLY_WAIT_MS`] |
/// | `connect_timeout_ms` | TCP/TLS connect timeout | [`DEFAULT_CONNECT_TIMEOUT_MS`] |
/// | `request_timeout_ms` | timeout of one request (not long-polls) | [`DEFAULT_REQUEST_TIMEOUT_MS`] |
/// | `probe_interval_ms` | availability probe period while the upstream is down | [`DEFAULT_PROBE_INTERVAL_MS`] |
/// | `max_sessions` | upstream sessions (users) open at once | [`DEFAULT_MAX_SESSIONS`] |
/// | `idle_session_s` | an upstream session unused this long is closed | [`DEFAULT_IDLE_SESSION_S`] |
/// | `transport` | how each session's CometD connects reach the upstream: `"long-polling"`, or `"websocket"` (one socket per session, one frame per notification; long-polling when the upstream does not offer it) | `"long-polling"`, the only transport GWS 8.5 supports |
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// The upstream GWS base URL.
    pub url: Option<String>,
    /// Extra CA certificates (PEM).
    pub ca_file: Option<std::path::PathBuf>,
    /// Contact center of upstream users.
    pub contact_center: String,
    /// Wait for an operation's notification, in milliseconds.
    pub reply_wait_ms: u64,
    /// Connect timeout, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Request timeout, in milliseconds.
    pub request_timeout_ms: u64,
    /// Probe period, in milliseconds.
    pub probe_interval_ms: u64,
    /// Sessions open at once.
    pub max_sessions: usize,
    /// Idle session lifetime, in seconds.
    pub idle_session_s: u64,
    /// The upstream CometD transport.
    pub transport: ConnectionType,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            url: None,
            ca_file: None,
            contact_center: DEFAULT_CONTACT_CENTER.into(),
            reply_wait_ms: DEFAULT_REPLY_WAIT_MS,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            probe_interval_ms: DEFAULT_PROBE_INTERVAL_MS,
            max_sessions: DEFAULT_MAX_SESSIONS,
            idle_session_s: DEFAULT_IDLE_SESSION_S,
            transport: ConnectionType::LongPolling,
        }
    }
}

impl UpstreamConfig {
    /// Checks the URL and the bounds; names the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.url {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| format!("upstream.url {url:?} is not a URL: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") || !parsed.has_host() {
                return Err(format!(
                    "upstream.url {url:?} must be http://host[:port] or https://host[:port]"
                ));
            }
        }
        for (key, value) in [
            ("upstream.connect_timeout_ms", self.connect_timeout_ms),
            ("upstream.request_timeout_ms", self.request_timeout_ms),
            ("upstream.probe_interval_ms", self.probe_interval_ms),
            ("upstream.max_sessions", self.max_sessions as u64),
        ] {
            if value == 0 {
                return Err(format!("{key} must be above 0"));
            }
        }
        Ok(())
    }

    /// Returns the wait for an operation's notification.
    pub fn reply_wait(&self) -> Duration {
        Duration::from_millis(self.reply_wait_ms)
    }
}
