//! Errors of the core, each with a small [`ErrorKind`] that the front-ends map to their own
//! vocabulary (gRPC code, HTTP status) and the GWS `statusCode` both fronts report.

use super::model::{CallId, CallState, Operation};

/// Broad class of a [`CoreError`]; each front-end maps it to its own status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Credentials are missing or wrong.
    Unauthenticated,
    /// The caller may not do this (role, ownership or a missing feature).
    PermissionDenied,
    /// The named resource does not exist.
    NotFound,
    /// The operation is not valid in the resource's current state.
    FailedPrecondition,
    /// A parameter is missing or malformed.
    InvalidArgument,
    /// A position in the event stream is no longer (or not yet) available.
    OutOfRange,
    /// The switch cannot take the request now.
    Unavailable,
    /// A bug or an unexpected failure inside the gateway.
    Internal,
}

/// A failure of a core operation. Nothing is changed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// No valid credentials were presented.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller lacks the permission.
    #[error("{0}")]
    PermissionDenied(String),
    /// The contact center lacks a feature the operation needs.
    #[error(
        "operation {operation} needs feature {feature}, which contact center {contact_center} does not have"
    )]
    FeatureMissing {
        /// The operation that was asked for.
        operation: String,
        /// The missing feature, e.g. `api-voice-recording`.
        feature: &'static str,
        /// The caller's contact center.
        contact_center: String,
    },
    /// No call with this id is known.
    #[error("call {0} not found")]
    CallNotFound(CallId),
    /// Some other resource (user, device) is unknown.
    #[error("{0}")]
    NotFound(String),
    /// The operation is not among the call's capabilities now.
    #[error("{operation} is not possible on call {call_id} in state {state}")]
    NotCapable {
        /// The call.
        call_id: CallId,
        /// The refused operation.
        operation: Operation,
        /// The caller's state on the call.
        state: CallState,
    },
    /// The operation is not possible in the device's or agent's current state.
    #[error("{0}")]
    Precondition(String),
    /// The resource is taken (a busy number, a device another supervisor monitors).
    #[error("{0}")]
    InUse(String),
    /// A required parameter is missing.
    #[error("parameter {0} is required")]
    MissingParameter(&'static str),
    /// A parameter has a value the operation cannot use.
    #[error("parameter {name} is invalid: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// The operation name is unknown (legacy `operationName`).
    #[error("unknown operationName {0}")]
    UnknownOperation(String),
    /// A resume position is no longer in the history.
    #[error(
        "sequence {requested} is no longer in the event history (oldest kept is {oldest}); resync by watching without from_sequence"
    )]
    HistoryGone {
        /// The asked-for sequence.
        requested: u64,
        /// The oldest sequence still held.
        oldest: u64,
    },
    /// A resume position lies in the future.
    #[error("sequence {requested} has not happened yet (last is {last})")]
    SequenceAhead {
        /// The asked-for sequence.
        requested: u64,
        /// The last committed sequence.
        last: u64,
    },
    /// The switch cannot take requests.
    #[error("{0}")]
    Unavailable(String),
    /// An unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    /// Returns the broad class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Unauthenticated(_) => ErrorKind::Unauthenticated,
            Self::PermissionDenied(_) | Self::FeatureMissing { .. } => ErrorKind::PermissionDenied,
            Self::CallNotFound(_) | Self::NotFound(_) => ErrorKind::NotFound,
            Self::NotCapable { .. } | Self::Precondition(_) | Self::InUse(_) => {
                ErrorKind::FailedPrecondition
            }
            Self::MissingParameter(_)
            | Self::InvalidParameter { .. }
            | Self::UnknownOperation(_) => ErrorKind::InvalidArgument,
            Self::HistoryGone { .. } | Self::SequenceAhead { .. } => ErrorKind::OutOfRange,
            Self::Unavailable(_) => ErrorKind::Unavailable,
            Self::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Returns the GWS `statusCode` (spec §3.1) that both fronts report for this error.
    ///
    /// Where the GWS sources are silent we use the spec's proposed mapping (§3.2): a
    /// missing parameter is 1, an invalid one or an operation outside the capabilities is 2,
    /// a missing feature is 3, a missing permission 5, an unknown resource 6, a busy number
    /// or a device another supervisor monitors 19 (resource in use), missing credentials 20, and an unavailable switch or internal failure 4.
    pub fn status_code(&self) -> u32 {
        match self {
            Self::MissingParameter(_) => 1,
            Self::NotCapable { .. }
            | Self::Precondition(_)
            | Self::InvalidParameter { .. }
            | Self::UnknownOperation(_)
            | Self::HistoryGone { .. }
            | Self::SequenceAhead { .. } => 2,
            Self::FeatureMissing { .. } => 3,
            Self::Unavailable(_) | Self::Internal(_) => 4,
            Self::PermissionDenied(_) => 5,
            Self::CallNotFound(_) | Self::NotFound(_) => 6,
            Self::InUse(_) => 19,
            Self::Unauthenticated(_) => 20,
        }
    }

    /// Builds an [`CoreError::InvalidParameter`].
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidParameter {
            name,
            reason: reason.into(),
        }
    }
}

/// Result of a core operation.
pub type CoreResult<T> = Result<T, CoreError>;
