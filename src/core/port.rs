//! The ports through which the core reaches the telephony it fronts. The core owns them;
//! `crate::backend` implements them.
//!
//! [`Switch`]: the embedded mode. The core keeps the call model and decides what is allowed;
//! a switch decides where a dialed number goes, carries out the telephony, and reports what
//! happens on its own (a remote party answering or hanging up). Methods are called with the
//! core's store lock held, so they must not block.

use std::fmt;

use super::{CallId, Destination, Operation};

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
    /// The dialed number is busy (do-not-disturb).
    #[error("{0} is busy")]
    Busy(String),
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
    /// reports [`SwitchEvent::Answered`] when the far end answers.
    fn external_leg(&self, call: &CallId, number: &str);

    /// Sets the do-not-disturb and forwarding settings of a DN.
    fn configure_line(&self, number: &str, settings: LineSettings);

    /// Starts an agent's wrap-up timer; the switch reports [`SwitchEvent::WrapUpEnded`].
    fn wrap_up(&self, user: &str, generation: u64, after: std::time::Duration);
}
