//! The `[server]` table: the bounds of the API listeners (connections, requests in flight,
//! HTTP/2 and HTTP/1.1 connection settings) and the drain's grace. This file imports
//! nothing of the gateway, so `crate::config` can build on it without importing a front.
//!
//! | TOML key | meaning | default |
//! |---|---|---|
//! | `server.max_connections` | open connections per listener; beyond it a new connection is accepted and closed at once | [`DEFAULT_MAX_CONNECTIONS`] |
//! | `server.max_requests` | requests in flight per listener (gRPC calls and JSON API requests until their response head); beyond it a request is refused at once | [`DEFAULT_MAX_REQUESTS`] |
//! | `server.max_requests_per_connection` | requests in flight per connection, likewise | [`DEFAULT_MAX_REQUESTS_PER_CONNECTION`] |
//! | `server.http2_max_streams` | HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`: open streams per connection, watch streams included (beyond it a client queues its streams) | [`DEFAULT_HTTP2_MAX_STREAMS`] |
//! | `server.http2_keepalive_interval_ms` | idle time after which the server pings an HTTP/2 client; 0: no pings | [`DEFAULT_HTTP2_KEEPALIVE_INTERVAL_MS`] |
//! | `server.http2_keepalive_timeout_ms` | time a ping may go unanswered before the connection is closed | [`DEFAULT_HTTP2_KEEPALIVE_TIMEOUT_MS`] |
//! | `server.max_connection_age_ms` | age at which an HTTP/2 connection gets a GOAWAY (clients reconnect, spreading over instances); 0: no limit | [`DEFAULT_MAX_CONNECTION_AGE_MS`] |
//! | `server.max_connection_age_grace_ms` | time the streams of an aged connection have before it is closed | [`DEFAULT_MAX_CONNECTION_AGE_GRACE_MS`] |
//! | `server.header_timeout_ms` | time a client has to send a request head: the first one from the connection's start, each next one on HTTP/1.1 from the end of the previous reply (so it is also the keep-alive idle timeout) | [`DEFAULT_HEADER_TIMEOUT_MS`] |
//! | `server.shutdown_grace_ms` | on SIGTERM, time in-flight requests have to finish before the remaining connections are cut | [`DEFAULT_SHUTDOWN_GRACE_MS`] |
//!
//! Held CometD connects, WebSockets and watch streams do not count as requests in flight:
//! a watch stream counts only until its response head, a CometD connect not at all (the
//! `[cometd]` bounds hold there), so idle watchers never take the slots operations need.
//! They do count against `max_connections` and, on HTTP/2, `http2_max_streams`.

use std::time::Duration;

use serde::Deserialize;

/// Default of `server.max_connections`: the full bench holds 10,000 CometD long-polls on one
/// listener (BENCHMARKS.md, figures 3 and 4) with room to spare; keep it below the open-file
/// limit (`ulimit -n`), or accepts fail before the bound is reached.
pub const DEFAULT_MAX_CONNECTIONS: usize = 20_000;
/// Default of `server.max_requests`: twice the 500 calls in flight of the bench's saturating
/// gRPC load (figure 1); at 30,000 requests/s it is about 35 ms of work queued.
pub const DEFAULT_MAX_REQUESTS: usize = 1024;
/// Default of `server.max_requests_per_connection`: a quarter of the listener's bound, so
/// one connection cannot take every slot.
pub const DEFAULT_MAX_REQUESTS_PER_CONNECTION: usize = 256;
/// Default of `server.http2_max_streams` (nginx's default; it was 2,048). It bounds what a
/// client can have sent on one connection that the gateway has not read yet: a request
/// waiting in the socket is refused only once read, so under a CPU overload the refusals
/// come as late as that backlog is long (BENCHMARKS.md, figure 10, and bench/FINDINGS.md,
/// "Overload (figure 10)"). A client with more watch streams than this opens another
/// connection for them (a gRPC client queues the streams beyond it, so watchers and
/// operations on one connection should stay below it).
pub const DEFAULT_HTTP2_MAX_STREAMS: u32 = 128;
/// Default of `server.http2_keepalive_interval_ms`.
pub const DEFAULT_HTTP2_KEEPALIVE_INTERVAL_MS: u64 = 60_000;
/// Default of `server.http2_keepalive_timeout_ms` (hyper's own default).
pub const DEFAULT_HTTP2_KEEPALIVE_TIMEOUT_MS: u64 = 20_000;
/// Default of `server.max_connection_age_ms`: none, as in gRPC's own servers.
pub const DEFAULT_MAX_CONNECTION_AGE_MS: u64 = 0;
/// Default of `server.max_connection_age_grace_ms`.
pub const DEFAULT_MAX_CONNECTION_AGE_GRACE_MS: u64 = 30_000;
/// Default of `server.header_timeout_ms` (hyper's own default, and Jetty's idle timeout).
pub const DEFAULT_HEADER_TIMEOUT_MS: u64 = 30_000;
/// Default of `server.shutdown_grace_ms`.
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 5_000;

/// The largest value a duration key accepts: one day.
const MAX_MS: u64 = 24 * 60 * 60 * 1000;
/// The largest value a count key accepts (tokio's semaphores hold fewer permits than
/// `usize::MAX`).
const MAX_COUNT: usize = 10_000_000;

/// The bounds of the API listeners and the drain's grace.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Open connections per listener.
    pub max_connections: usize,
    /// Requests in flight per listener.
    pub max_requests: usize,
    /// Requests in flight per connection.
    pub max_requests_per_connection: usize,
    /// HTTP/2 streams per connection.
    pub http2_max_streams: u32,
    /// HTTP/2 keep-alive ping interval, ms (0: off).
    pub http2_keepalive_interval_ms: u64,
    /// HTTP/2 keep-alive ping timeout, ms.
    pub http2_keepalive_timeout_ms: u64,
    /// Maximum connection age, ms (0: none).
    pub max_connection_age_ms: u64,
    /// Grace after the maximum age, ms.
    pub max_connection_age_grace_ms: u64,
    /// Time to send a request head, ms.
    pub header_timeout_ms: u64,
    /// Drain grace on shutdown, ms.
    pub shutdown_grace_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_requests: DEFAULT_MAX_REQUESTS,
            max_requests_per_connection: DEFAULT_MAX_REQUESTS_PER_CONNECTION,
            http2_max_streams: DEFAULT_HTTP2_MAX_STREAMS,
            http2_keepalive_interval_ms: DEFAULT_HTTP2_KEEPALIVE_INTERVAL_MS,
            http2_keepalive_timeout_ms: DEFAULT_HTTP2_KEEPALIVE_TIMEOUT_MS,
            max_connection_age_ms: DEFAULT_MAX_CONNECTION_AGE_MS,
            max_connection_age_grace_ms: DEFAULT_MAX_CONNECTION_AGE_GRACE_MS,
            header_timeout_ms: DEFAULT_HEADER_TIMEOUT_MS,
            shutdown_grace_ms: DEFAULT_SHUTDOWN_GRACE_MS,
        }
    }
}

impl ServerConfig {
    /// Checks every key; the error names the key and what it expects.
    pub fn validate(&self) -> Result<(), String> {
        let counts = [
            ("server.max_connections", self.max_connections),
            ("server.max_requests", self.max_requests),
            (
                "server.max_requests_per_connection",
                self.max_requests_per_connection,
            ),
            ("server.http2_max_streams", self.http2_max_streams as usize),
        ];
        for (key, value) in counts {
            if !(1..=MAX_COUNT).contains(&value) {
                return Err(format!(
                    "{key}: expected a count from 1 to {MAX_COUNT}, not {value}"
                ));
            }
        }
        let positive = [
            (
                "server.http2_keepalive_timeout_ms",
                self.http2_keepalive_timeout_ms,
            ),
            ("server.header_timeout_ms", self.header_timeout_ms),
        ];
        for (key, value) in positive {
            if !(1..=MAX_MS).contains(&value) {
                return Err(format!(
                    "{key}: expected milliseconds from 1 to {MAX_MS}, not {value}"
                ));
            }
        }
        let may_be_zero = [
            (
                "server.http2_keepalive_interval_ms",
                self.http2_keepalive_interval_ms,
            ),
            ("server.max_connection_age_ms", self.max_connection_age_ms),
            (
                "server.max_connection_age_grace_ms",
                self.max_connection_age_grace_ms,
            ),
            ("server.shutdown_grace_ms", self.shutdown_grace_ms),
        ];
        for (key, value) in may_be_zero {
            if value > MAX_MS {
                return Err(format!(
                    "{key}: expected milliseconds from 0 to {MAX_MS}, not {value}"
                ));
            }
        }
        Ok(())
    }

    /// Returns the HTTP/2 keep-alive ping interval, `None` when pings are off.
    pub fn http2_keepalive_interval(&self) -> Option<Duration> {
        nonzero_ms(self.http2_keepalive_interval_ms)
    }

    /// Returns the HTTP/2 keep-alive ping timeout.
    pub fn http2_keepalive_timeout(&self) -> Duration {
        Duration::from_millis(self.http2_keepalive_timeout_ms)
    }

    /// Returns the maximum connection age, `None` when connections may live forever.
    pub fn max_connection_age(&self) -> Option<Duration> {
        nonzero_ms(self.max_connection_age_ms)
    }

    /// Returns the grace of an aged connection.
    pub fn max_connection_age_grace(&self) -> Duration {
        Duration::from_millis(self.max_connection_age_grace_ms)
    }

    /// Returns the time a client has to send a request head.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }

    /// Returns the drain's grace.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

fn nonzero_ms(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        ServerConfig::default().validate().unwrap();
    }

    #[test]
    fn each_bad_value_is_named() {
        type Spoil = fn(&mut ServerConfig);
        let cases: [(Spoil, &str); 5] = [
            (|c| c.max_connections = 0, "server.max_connections"),
            (|c| c.max_requests = 0, "server.max_requests"),
            (
                |c| c.max_requests_per_connection = MAX_COUNT + 1,
                "server.max_requests_per_connection",
            ),
            (|c| c.header_timeout_ms = 0, "server.header_timeout_ms"),
            (
                |c| c.shutdown_grace_ms = MAX_MS + 1,
                "server.shutdown_grace_ms",
            ),
        ];
        for (spoil, key) in cases {
            let mut config = ServerConfig::default();
            spoil(&mut config);
            let error = config.validate().unwrap_err();
            assert!(error.starts_with(key), "{error}");
        }
    }

    #[test]
    fn zero_turns_the_optional_timers_off() {
        let config = ServerConfig {
            http2_keepalive_interval_ms: 0,
            max_connection_age_ms: 0,
            ..ServerConfig::default()
        };
        assert_eq!(config.http2_keepalive_interval(), None);
        assert_eq!(config.max_connection_age(), None);
    }
}
