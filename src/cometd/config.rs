//! Settings of the CometD endpoint (`[cometd]` in the TOML file), mirroring the CometD
//! server options of the same names (spec `bayeux.md` §10), plus the bounds this gateway
//! adds so that no session can grow memory without limit.

use std::time::Duration;

use serde::Deserialize;

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
