//! The gateway's typed configuration, read from TOML, and the built-in demo.
//!
//! | TOML key | meaning | default |
//! |---|---|---|
//! | `switch.external_answer_ms` | delay before a simulated external party answers | [`DEFAULT_EXTERNAL_ANSWER_MS`] |
//! | `switch.busy_numbers` | outside numbers that answer busy: a leg to one fails after the answer delay, an asynchronous `ErrorMessage` | none |
//! | `switch.unreachable_numbers` | outside numbers the network cannot reach: likewise | none |
//! | `limits.event_history` | events kept for WatchCalls resume | [`crate::core::DEFAULT_EVENT_HISTORY`] |
//! | `limits.watch_buffer` | events of its scope a watcher may fall behind before it is ended | [`crate::core::DEFAULT_WATCH_BUFFER`] |
//! | `limits.ended_calls` | ended calls kept for GetCall | [`crate::core::DEFAULT_ENDED_CALLS`] |
//! | `limits.idempotency_ttl` | seconds a reply is kept for retries with the same idempotency key | [`crate::core::idempotency::DEFAULT_IDEMPOTENCY_TTL`] (60) |
//! | `limits.idempotency_keys` | idempotency keys held at once; when full, requests with a new key are refused until one expires | [`crate::core::idempotency::DEFAULT_IDEMPOTENCY_KEYS`] |
//! | `legacy.*` | the GWS JSON front-end: CORS origins, CSRF, sessions, body limit, timeout, public URL and trusted proxy headers of links | see [`crate::gws::config`] |
//! | `cometd.timeout_ms` | CometD connect hold time (`advice.timeout`) | [`crate::gws::config::DEFAULT_TIMEOUT_MS`] |
//! | `cometd.interval_ms` | advised pause between connects | [`crate::gws::config::DEFAULT_INTERVAL_MS`] |
//! | `cometd.max_interval_ms` | grace after a connect reply before a session is swept | [`crate::gws::config::DEFAULT_MAX_INTERVAL_MS`] |
//! | `cometd.sweep_period_ms` | sweeper period | [`crate::gws::config::DEFAULT_SWEEP_PERIOD_MS`] |
//! | `cometd.max_queue` | messages a session may hold; at the limit the session is dropped | [`crate::gws::config::DEFAULT_MAX_QUEUE`] |
//! | `cometd.max_message_size` | largest request body / WebSocket message, bytes | [`crate::gws::config::DEFAULT_MAX_MESSAGE_SIZE`] |
//! | `cometd.max_batch` | largest batch, messages | [`crate::gws::config::DEFAULT_MAX_BATCH`] |
//! | `cometd.max_sessions_per_browser` | held HTTP/1.1 long-polls per `BAYEUX_BROWSER` | [`crate::gws::config::DEFAULT_MAX_SESSIONS_PER_BROWSER`] |
//! | `cometd.multi_session_interval_ms` | interval advised to a browser's extra sessions | [`crate::gws::config::DEFAULT_MULTI_SESSION_INTERVAL_MS`] |
//! | `cometd.max_sessions` | live CometD sessions | [`crate::gws::config::DEFAULT_MAX_SESSIONS`] |
//! | `cometd.websocket` | offer the `websocket` transport | `true` |
//! | `upstream.*` | bridge mode: the upstream GWS URL, its CA, timeouts, session bounds (users then come from the upstream; `[[users]]` are ignored) | see [`crate::backend::bridge::UpstreamConfig`] |
//! | `cluster.*` | cluster mode (bridge mode only): the engine's URL, the users' lease TTL and renew period | see [`crate::cluster::ClusterConfig`] |
//! | `auth.*` | credential checks: concurrency, wait, failed-sign-in throttle, cache of successful checks | see [`crate::auth::AuthConfig`] |
//! | `server.*` | the API listeners' bounds: connections, requests in flight per listener and per connection, HTTP/2 streams, keep-alive pings and connection age, the request head timeout, the drain's grace on SIGTERM | see [`crate::server::config`] |
//! | `desktop.dir` | folder of the agent desktop demo page, served at `/desktop/` | none: not served (see [`crate::desktop`]) |
//! | `agent.after_call_work_state` | state after a timed AfterCallWork: `Ready` or `NotReady` | `Ready` |
//! | `[[contact_centers]]` | `name`, `features` | |
//! | `[[users]]` | `name`, `contact_center`, `phone_number`, `password_hash` (argon2) or `password` (clear, demo only), `roles`, `first_name`, `last_name` | |
//! | `[[service_accounts]]` | `name`, `contact_center`, `token_hash` or `token`, `client_cert` (a client certificate's subject CN or SAN DNS name, for mutual TLS) | |
//! | `tls.cert_file`, `tls.key_file` | PEM certificate chain and key: both listeners serve TLS | none: plain text |
//! | `tls.client_ca_file` | PEM CA(s): the gRPC listener requires client certificates they signed | none |
//! | `tls.grpc`, `tls.http` | which listeners serve TLS | `true`, `true` |
//! | `tls.handshake_timeout_ms` | time a client has to finish its TLS handshake | [`crate::tls::config::DEFAULT_HANDSHAKE_TIMEOUT_MS`] |
//!
//! Listen addresses are not in the file: they come from the command line or the
//! environment (see the binary's `--help`). File paths in `[tls]` are relative to the
//! configuration file's folder, or absolute (see [`crate::tls`]).

mod directory;
mod limits;
mod switch;

use crate::core::AgentState;
use std::path::Path;

use serde::Deserialize;

use crate::core::CoreLimits;
use crate::gws::config::LegacyConfig;

pub use directory::{ContactCenterConfig, ServiceAccountConfig, UserConfig, hash_secret};
pub use limits::{AgentConfig, LimitsConfig};
pub use switch::{DEFAULT_EXTERNAL_ANSWER_MS, SwitchConfig};

/// The demo configuration served when no file is given.
pub const DEMO_TOML: &str = include_str!("../../config/demo.toml");

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Embedded switch settings.
    #[serde(default)]
    pub switch: SwitchConfig,
    /// Buffer bounds.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The legacy GWS JSON front-end.
    #[serde(default)]
    pub legacy: LegacyConfig,
    /// Agent-state settings.
    #[serde(default)]
    pub agent: AgentConfig,
    /// Contact centers.
    #[serde(default)]
    pub contact_centers: Vec<ContactCenterConfig>,
    /// Users.
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// Service accounts.
    #[serde(default)]
    pub service_accounts: Vec<ServiceAccountConfig>,
    /// The CometD endpoint.
    #[serde(default)]
    pub cometd: crate::gws::config::CometdConfig,
    /// Credential checking: concurrency, throttle, cache.
    #[serde(default)]
    pub auth: crate::auth::AuthConfig,
    /// Bridge mode: the upstream GWS (none: the embedded switch).
    #[serde(default)]
    pub upstream: crate::backend::bridge::UpstreamConfig,
    /// Cluster mode: the engine several bridge instances share (none: a single instance).
    #[serde(default)]
    pub cluster: crate::cluster::ClusterConfig,
    /// TLS on the listeners; `None` serves plain text.
    #[serde(default)]
    pub tls: Option<crate::tls::TlsConfig>,
    /// The agent desktop demo page (off by default).
    #[serde(default)]
    pub desktop: crate::desktop::DesktopConfig,
    /// The API listeners' bounds and the drain's grace.
    #[serde(default)]
    pub server: crate::server::config::ServerConfig,
}

impl Config {
    /// Returns the built-in demo configuration.
    pub fn demo() -> Self {
        Self::parse(DEMO_TOML).expect("the built-in demo configuration parses")
    }

    /// Parses TOML text and checks the whole configuration ([`Config::validate`]).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let table: toml::Table = toml::from_str(text)?;
        // An empty file (or one of comments only) would serve a gateway nobody can sign in
        // to, silently: most likely the wrong file.
        if table.is_empty() {
            anyhow::bail!(
                "the file sets nothing: expected at least one [[contact_centers]] table \
                 (`voice-gateway demo-config` prints a complete example)"
            );
        }
        let config: Self = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks everything that can be checked without the network or the file system (TLS
    /// files are read by [`crate::tls::ServerTls::from_config`], the desktop folder by
    /// [`crate::desktop::DesktopConfig::validate`]): each error names the key and what it
    /// expects.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.auth.validate().map_err(anyhow::Error::msg)?;
        self.server.validate().map_err(anyhow::Error::msg)?;
        self.legacy.validate().map_err(anyhow::Error::msg)?;
        self.upstream.validate().map_err(anyhow::Error::msg)?;
        self.cluster.validate().map_err(anyhow::Error::msg)?;
        if self.cluster.url.is_some() && self.upstream.url.is_none() {
            anyhow::bail!(
                "cluster.url needs upstream.url: cluster mode shares bridge instances in front of an upstream GWS (--cluster needs --upstream)"
            );
        }
        for (i, center) in self.contact_centers.iter().enumerate() {
            for feature in &center.features {
                if !crate::core::feature::ALL.contains(&feature.as_str()) {
                    anyhow::bail!(
                        "contact_centers[{i}] ({}).features: unknown feature {feature:?} \
                         (expected one of {})",
                        center.name,
                        crate::core::feature::ALL.join(", ")
                    );
                }
            }
        }
        self.core_limits()?;
        let directory = self.directory()?;
        self.switch.validate(&directory.phone_numbers())?;
        Ok(())
    }

    /// Reads a TOML file; relative paths in it (`[tls]`, `[desktop]`) are taken from its
    /// folder. Errors name the file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        let mut config = Self::parse(&text)
            .map_err(|e| anyhow::anyhow!("invalid config {}: {e:#}", path.display()))?;
        if let Some(folder) = path.parent() {
            if let Some(tls) = &mut config.tls {
                tls.resolve_paths(folder);
            }
            config.desktop.resolve_paths(folder);
        }
        Ok(config)
    }

    /// Returns whether any user or service account is configured.
    pub fn has_credentials(&self) -> bool {
        !self.users.is_empty() || !self.service_accounts.is_empty()
    }

    /// Returns the core's limits and agent settings.
    pub fn core_limits(&self) -> anyhow::Result<CoreLimits> {
        let state = AgentState::from_name(&self.agent.after_call_work_state)
            .filter(|s| matches!(s, AgentState::Ready | AgentState::NotReady))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "agent.after_call_work_state: expected Ready or NotReady, not {:?}",
                    self.agent.after_call_work_state
                )
            })?;
        Ok(CoreLimits {
            after_call_work_state: state,
            ..self.limits.to_core()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_configuration_builds_a_directory() {
        let dir = Config::demo().directory().unwrap();
        assert_eq!(&*dir.user("agent2").unwrap().phone_number, "15001");
        assert!(!dir.has_feature("basic", "api-voice-recording"));
        assert!(dir.has_clear_secrets());
    }

    #[test]
    fn hashed_passwords_verify() {
        let hash = hash_secret("s3cret").unwrap();
        let text = format!(
            "[[contact_centers]]\nname='c'\nfeatures=['api-voice']\n[[users]]\nname='u'\ncontact_center='c'\nphone_number='100'\npassword_hash='{hash}'\n"
        );
        let dir = Config::parse(&text).unwrap().directory().unwrap();
        assert!(!dir.has_clear_secrets());
        assert!(dir.authenticate_basic("u", "s3cret", None).is_ok());
        assert!(dir.authenticate_basic("u", "wrong", None).is_err());
    }

    #[test]
    fn cluster_mode_needs_bridge_mode_and_a_known_engine() {
        let mut config = Config::demo();
        config.cluster.url = Some("redis://127.0.0.1:6379".into());
        let refused = config.validate().unwrap_err().to_string();
        assert!(refused.contains("needs upstream.url"), "{refused}");
        config.upstream.url = Some("http://127.0.0.1:8080".into());
        config.validate().unwrap();
        config.cluster.renew_interval_ms = Some(config.cluster.lease_ttl_ms);
        assert!(
            config.validate().is_err(),
            "a renew no shorter than the TTL"
        );
        for url in ["nats://127.0.0.1:4222", "memory:", "127.0.0.1:6379"] {
            config.cluster.url = Some(url.into());
            let refused = crate::cluster::connect(&config.cluster)
                .unwrap_err()
                .to_string();
            assert!(refused.contains(url), "{refused}");
            assert!(refused.contains("expected redis://"), "{refused}");
        }
        config.cluster.url = Some("redis://:secret@127.0.0.1:1/not-a-db".into());
        let refused = crate::cluster::connect(&config.cluster)
            .unwrap_err()
            .to_string();
        assert!(!refused.contains("secret"), "{refused}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(Config::parse("[switch]\nexternal_answer=1\n").is_err());
    }

    #[test]
    fn failing_numbers_must_be_outside_numbers_set_once() {
        let with = |switch: &str| {
            let text = format!(
                "[switch]\n{switch}\n[[contact_centers]]\nname='c'\nfeatures=['api-voice']\n\
                 [[users]]\nname='u'\ncontact_center='c'\nphone_number='100'\npassword='p'\n"
            );
            Config::parse(&text).map_err(|e| e.to_string())
        };
        assert!(with("busy_numbers=['200']\nunreachable_numbers=['300']").is_ok());
        let refused = [
            (
                "busy_numbers=['100']",
                "switch.busy_numbers: 100 is a user's phone number",
            ),
            (
                "unreachable_numbers=['x1']",
                "switch.unreachable_numbers: parameter number",
            ),
            (
                "busy_numbers=['200']\nunreachable_numbers=['200']",
                "switch.unreachable_numbers: 200 is set more than once",
            ),
        ];
        for (switch, expected) in refused {
            let error = with(switch).unwrap_err();
            assert!(error.contains(expected), "{switch}: {error}");
        }
        let demo = Config::demo();
        assert_eq!(demo.switch.busy_numbers, ["9165550486"]);
        assert_eq!(demo.switch.unreachable_numbers, ["9165550404"]);
    }
}
