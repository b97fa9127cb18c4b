//! The Redis engine's settings, with their defaults: a leaf of the gateway's configuration.

use std::time::Duration;

use serde::Deserialize;

/// The default Redis URL.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";
/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "vg:";
/// The default length bound of the log (Redis memory: up to `max_len × (payload + 80 bytes)`).
pub const DEFAULT_MAX_LEN: u64 = 100_000;
/// The default age bound of the log: one hour.
pub const DEFAULT_MAX_AGE_MS: u64 = 3_600_000;
/// The default bound on opening a connection to Redis.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 500;
/// The default bound on Redis answering one command.
pub const DEFAULT_RESPONSE_TIMEOUT_MS: u64 = 500;
/// The default idle time after which a release subscriber pings Redis: 5 s (a connection
/// that died silently is then found within 5 s plus the response timeout).
pub const DEFAULT_SUBSCRIBER_PING_MS: u64 = 5_000;

/// The Redis engine's settings: the `[cluster]` keys of the gateway's configuration, and
/// `subscriber_ping_ms`, which the gateway leaves at its default (tests shorten it).
///
/// | field | meaning | default |
/// |---|---|---|
/// | `url` | the Redis server (`redis://HOST:PORT/DB`) | [`DEFAULT_URL`] |
/// | `prefix` | prepended to every key | [`DEFAULT_PREFIX`] |
/// | `max_len` | entries the log keeps (about; at least 1) | [`DEFAULT_MAX_LEN`] |
/// | `max_age_ms` | age after which an entry is dropped (0: never) | [`DEFAULT_MAX_AGE_MS`] |
/// | `connect_timeout_ms` | bound on opening a connection | [`DEFAULT_CONNECT_TIMEOUT_MS`] |
/// | `response_timeout_ms` | bound on one command's answer | [`DEFAULT_RESPONSE_TIMEOUT_MS`] |
/// | `subscriber_ping_ms` | idle time after which a release subscriber pings Redis | [`DEFAULT_SUBSCRIBER_PING_MS`] |
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// The Redis server's URL.
    pub url: String,
    /// The prefix of every key.
    pub prefix: String,
    /// The number of entries the log keeps (approximately: see the module docs).
    pub max_len: u64,
    /// The age in milliseconds after which an entry is trimmed on the next append; 0 keeps
    /// entries whatever their age.
    pub max_age_ms: u64,
    /// The bound on opening a connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// The bound on one command's answer, in milliseconds.
    pub response_timeout_ms: u64,
    /// The idle time after which a release subscriber checks its connection with a
    /// `PING`, in milliseconds (see `redis/releases.rs`).
    pub subscriber_ping_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: DEFAULT_URL.to_owned(),
            prefix: DEFAULT_PREFIX.to_owned(),
            max_len: DEFAULT_MAX_LEN,
            max_age_ms: DEFAULT_MAX_AGE_MS,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            response_timeout_ms: DEFAULT_RESPONSE_TIMEOUT_MS,
            subscriber_ping_ms: DEFAULT_SUBSCRIBER_PING_MS,
        }
    }
}

impl RedisConfig {
    /// Returns the defaults with `url`.
    pub fn with_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    pub(super) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms.max(1))
    }

    pub(super) fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms.max(1))
    }

    pub(super) fn subscriber_ping(&self) -> Duration {
        // At least 1 ms: a zero period would make the ping's interval panic.
        Duration::from_millis(self.subscriber_ping_ms.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_partial_tables() {
        let config: RedisConfig = toml::from_str("url = \"redis://10.0.0.1:7000\"\nmax_len = 10")
            .expect("a partial table parses");
        assert_eq!(config.url, "redis://10.0.0.1:7000");
        assert_eq!(config.max_len, 10);
        assert_eq!(config.prefix, DEFAULT_PREFIX);
        assert_eq!(config.response_timeout_ms, DEFAULT_RESPONSE_TIMEOUT_MS);
        assert!(toml::from_str::<RedisConfig>("maxlen = 1").is_err());
    }
}
