//! The ports through which the core reaches the telephony it fronts. The core owns them;
//! `crate::backend` implements them.
//!
//! [`Switch`]: the embedded mode. The core keeps the call model and decides what is allowed;
//! a switch decides where a dialed number goes, carries out the telephony, and reports what
//! happens on its own (a remote party answering or hanging up). Methods are called with the
//! core's store lock held, so they must not block.
//!
//! [`Upstream`]: bridge mode. A GWS server upstream owns the calls and decides (state,
//! capabilities, errors); the core hands each operation to it and mirrors what it reports
//! (`CallControl::mirror_call`, `mirror_device`, `mirror_error`, `mirror_resync`). The fronts call the same
//! `CallControl::submit_*` methods in both modes and cannot tell which port is behind them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::{
    CallId, CallOperation, CoreResult, Destination, DeviceRequest, DialRequest, Event, Operation,
    User,
};

/// Where a dialed destination goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A DN of this switch.
    Internal(String),
    /// A number outside, reached through the public network.
    External(String),
}

/// Something that happened on the switch without a request from the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchEvent {
    /// An external party answered.
    Answered {
        /// The call.
        call: CallId,
        /// The external number.
        number: String,
    },
    /// The network could not complete a leg to an external number (busy, unreachable):
    /// reported instead of [`SwitchEvent::Answered`], after the operation that created the
    /// leg was accepted. The core releases the leg and tells the user who asked for it
    /// (see [`crate::core::ErrorEvent`]).
    Failed {
        /// The call.
        call: CallId,
        /// The external number.
        number: String,
        /// Why the leg failed: [`SwitchError::Busy`] or [`SwitchError::Unreachable`].
        error: SwitchError,
    },
    /// An external party hung up.
    Released {
        /// The call.
        call: CallId,
        /// The external number.
        number: String,
    },
    /// The wrap-up time of an agent's after-call work is up.
    WrapUpEnded {
        /// The agent.
        user: String,
        /// The agent-state generation the timer was started for.
        generation: u64,
    },
}

/// The settings of one DN that the switch honours when routing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineSettings {
    /// Calls to the DN are refused as busy.
    pub do_not_disturb: bool,
    /// Calls to the DN ring this number instead.
    pub forward_to: Option<String>,
}

/// A refusal by the switch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwitchError {
    /// The switch cannot take requests now.
    #[error("voice service is not available at this time: {0}")]
    Unavailable(String),
    /// The switch refused this request (unreachable).
    #[error("{0}")]
    Refused(String),
    /// The dialed number is busy (do-not-disturb, or an outside line that answers busy).
    #[error("{0} is busy")]
    Busy(String),
    /// The network has no way to the dialed number.
    #[error("{0} cannot be reached")]
    Unreachable(String),
}

/// A telephone switch that the core drives.
pub trait Switch: Send + Sync + fmt::Debug + 'static {
    /// Returns a short name for logs.
    fn name(&self) -> &'static str;

    /// Decides where a number dialed from `from` goes.
    fn route(&self, from: &str, destination: &Destination) -> Result<Route, SwitchError>;

    /// Hands an operation on a call to the switch.
    fn submit(&self, call: &CallId, operation: Operation) -> Result<(), SwitchError>;

    /// Tells the switch that a leg to an external number was created on a call; the switch
    /// reports [`SwitchEvent::Answered`] when the far end answers, or
    /// [`SwitchEvent::Failed`] when the leg cannot be completed.
    fn external_leg(&self, call: &CallId, number: &str);

    /// Sets the do-not-disturb and forwarding settings of a DN.
    fn configure_line(&self, number: &str, settings: LineSettings);

    /// Starts an agent's wrap-up timer; the switch reports [`SwitchEvent::WrapUpEnded`].
    fn wrap_up(&self, user: &str, generation: u64, after: std::time::Duration);
}

/// The future an [`Upstream`] returns.
pub type PortFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An upstream call-control server that owns the calls (bridge mode).
///
/// Each method hands one operation to the upstream for `user` and returns once the upstream
/// accepted it (`Ok`) or refused it (the refusal as a [`CoreError`](super::CoreError) with
/// the upstream's `statusCode`). What the operation changed arrives separately, as reports
/// the core mirrors; the core waits a bounded time for them before it answers.
pub trait Upstream: Send + Sync + fmt::Debug + 'static {
    /// Returns a short name for logs.
    fn name(&self) -> &'static str;

    /// Checks a user's password with the upstream (GWS: `GET /api/v2/me` with Basic
    /// credentials), learns the user into the directory, and opens (or renews) the
    /// upstream session the user's operations and notifications go through.
    fn sign_in(&self, user: String, password: String) -> PortFuture<'_, CoreResult<Arc<User>>>;

    /// Places a call.
    fn dial(&self, user: Arc<User>, request: DialRequest) -> PortFuture<'_, CoreResult<()>>;

    /// Carries out an operation on a call.
    fn execute(
        &self,
        user: Arc<User>,
        call: CallId,
        operation: CallOperation,
    ) -> PortFuture<'_, CoreResult<()>>;

    /// Carries out an operation on the user's device or voice channel.
    fn device_operation(
        &self,
        user: Arc<User>,
        request: DeviceRequest,
    ) -> PortFuture<'_, CoreResult<()>>;

    /// Returns whether the upstream is reachable now (health, fail-fast).
    fn is_available(&self) -> bool;
}

/// Cluster mode (bridge mode with several instances): the shared, ordered log that the
/// events mirrored from the upstream go to instead of this instance's own log. Every
/// instance tails it and applies each entry with the log's sequence
/// (`CallControl::apply_shared`), the instance that appended included: the core never
/// numbers a mirrored event itself in this mode. `crate::cluster` implements it.
pub trait SharedEvents: Send + Sync + fmt::Debug + 'static {
    /// Appends `events` (all of `user`'s, unnumbered, in order) to the shared log as the
    /// holder of `user`'s lease, and returns once this instance has applied them (so the
    /// next diff of that user is computed against them); an error when this instance does
    /// not hold the lease or lost it (nothing appended), or when the engine is down.
    fn publish(&self, user: Arc<str>, events: Vec<Event>) -> PortFuture<'_, CoreResult<()>>;

    /// Returns whether the engine is reachable now (health, fail-fast).
    fn is_available(&self) -> bool;
}

/// The switch of bridge mode: there is none (the upstream owns the telephony), and the
/// embedded state machine that would drive one is never run; anything asked of it is refused.
#[derive(Debug)]
pub(crate) struct Unplugged;

impl Switch for Unplugged {
    fn name(&self) -> &'static str {
        "none"
    }

    fn route(&self, _from: &str, _destination: &Destination) -> Result<Route, SwitchError> {
        Err(SwitchError::Unavailable(
            "no embedded switch in bridge mode".into(),
        ))
    }

    fn submit(&self, _call: &CallId, _operation: Operation) -> Result<(), SwitchError> {
        Err(SwitchError::Unavailable(
            "no embedded switch in bridge mode".into(),
        ))
    }

    fn external_leg(&self, _call: &CallId, _number: &str) {}

    fn configure_line(&self, _number: &str, _settings: LineSettings) {}

    fn wrap_up(&self, _user: &str, _generation: u64, _after: std::time::Duration) {}
}
