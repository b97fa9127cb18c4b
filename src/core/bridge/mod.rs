//! The operations every front calls (`submit_*`), and bridge mode's side of the core.
//!
//! The fronts never ask which port is active. `submit_dial`, `submit_call_operation` and
//! `submit_device_operation` run the embedded state machine in embedded mode (the
//! synchronous `dial`, `execute` and `device_operation`), and in bridge mode hand the
//! operation to the [`Upstream`] and wait (bounded) for its report (`submit`). What the
//! upstream reports is mirrored into the core as events of the same numbered log, or of
//! the shared log in cluster mode (`mirror`).
//!
//! This module holds bridge mode's part of the core ([`Bridge`]: the upstream port, the
//! reply bound, cluster mode's shared log) and what builds it.

mod mirror;
mod submit;

use std::sync::Arc;
use std::time::Duration;

use super::FastMap;
use super::port::{SharedEvents, Unplugged, Upstream};
use super::store::Store;
use super::{CallControl, CoreError, CoreLimits, CoreResult, Directory};

pub use mirror::SharedApply;

/// Default bound on the wait for the upstream's notification of an operation.
pub const DEFAULT_REPLY_WAIT: Duration = Duration::from_secs(2);

/// What a caller of [`CallControl::submit_dial`] wants back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// The call or device as the upstream reported it after the operation (gRPC replies
    /// carry it): in bridge mode, wait for the report (bounded).
    Report,
    /// Only that the operation was accepted (the GWS JSON API answers `{"statusCode":0}`).
    /// Bridge mode still waits (bounded) for the report, so a client that reads after the
    /// reply sees its change as in embedded mode; at the bound it answers success anyway
    /// (the upstream accepted it) where [`Reply::Report`] fails a Dial.
    Acceptance,
}

/// Bridge mode's part of the core.
#[derive(Debug)]
pub(crate) struct Bridge {
    pub(crate) upstream: Arc<dyn Upstream>,
    pub(crate) reply_wait: Duration,
    /// Cluster mode: the shared log mirrored events go to.
    pub(crate) shared: Option<Shared>,
}

/// Cluster mode's part of the bridge: the shared log, and one writer turn per user.
#[derive(Debug)]
pub(crate) struct Shared {
    log: Arc<dyn SharedEvents>,
    /// One async lock per user that was ever mirrored here: the user's reports are turned
    /// into entries one at a time. Bounded by the users the upstream sessions are for
    /// (`upstream.max_sessions` at once), a few dozen bytes each.
    writers: std::sync::Mutex<FastMap<Arc<str>, Arc<tokio::sync::Mutex<()>>>>,
}

impl Shared {
    fn writer(&self, user: &Arc<str>) -> Arc<tokio::sync::Mutex<()>> {
        let mut writers = self
            .writers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        writers.entry(user.clone()).or_default().clone()
    }
}

impl CallControl {
    /// Builds the core of bridge mode: calls and devices mirror what `upstream` reports.
    pub fn bridged(
        directory: Directory,
        upstream: Arc<dyn Upstream>,
        limits: CoreLimits,
        reply_wait: Duration,
    ) -> Self {
        let mut core = Self::new(directory, Arc::new(Unplugged), limits);
        core.store = std::sync::Mutex::new(Store::mirrored(
            super::events::EventLog::new(limits.event_history, limits.watch_buffer),
            limits.ended_calls,
        ));
        core.bridge = Some(Bridge {
            upstream,
            reply_wait,
            shared: None,
        });
        core
    }

    /// Makes a bridge-mode core a cluster member: mirrored events go to `log`, and only
    /// entries applied from it ([`Self::apply_shared`]) reach the watchers.
    pub fn with_shared_events(mut self, log: Arc<dyn SharedEvents>) -> Self {
        if let Some(bridge) = self.bridge.as_mut() {
            bridge.shared = Some(Shared {
                log,
                writers: std::sync::Mutex::default(),
            });
        }
        self
    }

    /// Returns the upstream in bridge mode.
    pub fn upstream(&self) -> Option<&Arc<dyn Upstream>> {
        self.bridge.as_ref().map(|b| &b.upstream)
    }

    /// Refuses an embedded-only request in bridge mode.
    pub(crate) fn embedded_only(&self, what: &str) -> CoreResult<()> {
        match &self.bridge {
            None => Ok(()),
            Some(bridge) => Err(CoreError::Precondition(format!(
                "{what} needs the embedded switch; this gateway bridges to {}",
                bridge.upstream.name()
            ))),
        }
    }

    fn upstream_ready(&self) -> CoreResult<Option<&Bridge>> {
        // The engine first: the upstream port's availability includes the engine's (for
        // health), and the message should name what is down.
        match &self.bridge {
            Some(Bridge {
                shared: Some(shared),
                ..
            }) if !shared.log.is_available() => Err(CoreError::Unavailable(
                "voice service is not available at this time: the cluster engine is unreachable"
                    .into(),
            )),
            Some(bridge) if !bridge.upstream.is_available() => Err(CoreError::Unavailable(
                "voice service is not available at this time: the upstream is unreachable".into(),
            )),
            other => Ok(other.as_ref()),
        }
    }
}
