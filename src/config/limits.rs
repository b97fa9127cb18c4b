//! The `[limits]` and `[agent]` tables: the core's buffer bounds and agent-state settings,
//! with their defaults.

use std::time::Duration;

use serde::Deserialize;

use crate::core::CoreLimits;

/// Buffer bounds (see [`CoreLimits`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Events kept for resume.
    #[serde(default = "defaults::event_history")]
    pub event_history: usize,
    /// Events a watcher may fall behind.
    #[serde(default = "defaults::watch_buffer")]
    pub watch_buffer: usize,
    /// Ended calls kept.
    #[serde(default = "defaults::ended_calls")]
    pub ended_calls: usize,
    /// Seconds a reply is kept for retries with the same idempotency key.
    #[serde(default = "defaults::idempotency_ttl")]
    pub idempotency_ttl: u64,
    /// Idempotency keys held at once.
    #[serde(default = "defaults::idempotency_keys")]
    pub idempotency_keys: usize,
}

mod defaults {
    pub(super) fn event_history() -> usize {
        crate::core::DEFAULT_EVENT_HISTORY
    }
    pub(super) fn watch_buffer() -> usize {
        crate::core::DEFAULT_WATCH_BUFFER
    }
    pub(super) fn ended_calls() -> usize {
        crate::core::DEFAULT_ENDED_CALLS
    }
    pub(super) fn idempotency_ttl() -> u64 {
        crate::core::idempotency::DEFAULT_IDEMPOTENCY_TTL.as_secs()
    }
    pub(super) fn idempotency_keys() -> usize {
        crate::core::idempotency::DEFAULT_IDEMPOTENCY_KEYS
    }
    pub(super) fn after_call_work_state() -> String {
        "Ready".into()
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let limits = CoreLimits::default();
        Self {
            event_history: limits.event_history,
            watch_buffer: limits.watch_buffer,
            ended_calls: limits.ended_calls,
            idempotency_ttl: limits.idempotency_ttl.as_secs(),
            idempotency_keys: limits.idempotency_keys,
        }
    }
}

impl LimitsConfig {
    /// Returns the core's limits.
    pub fn to_core(&self) -> CoreLimits {
        CoreLimits {
            event_history: self.event_history,
            watch_buffer: self.watch_buffer,
            ended_calls: self.ended_calls,
            idempotency_ttl: Duration::from_secs(self.idempotency_ttl),
            idempotency_keys: self.idempotency_keys,
            ..CoreLimits::default()
        }
    }
}

/// Agent-state settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The state an after-call work with a wrap-up time returns to: `Ready` or `NotReady`.
    #[serde(default = "defaults::after_call_work_state")]
    pub after_call_work_state: String,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            after_call_work_state: defaults::after_call_work_state(),
        }
    }
}
