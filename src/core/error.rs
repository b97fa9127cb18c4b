//! Errors of the core, each with a small [`ErrorKind`] that the front-ends map to their own
//! vocabulary (gRPC code, HTTP status) and the GWS `statusCode` both fronts report.

use std::time::Duration;

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
    /// The switch cannot take the request now, or the gateway is too busy to check it.
    Unavailable,
    /// The caller made too many failed attempts and must wait before trying again.
    ResourceExhausted,
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
    /// A resume position names another event log (the gateway restarted since).
    #[error(
        "epoch {requested} is not this gateway's event stream (now {current}): the gateway restarted; resync by watching without from_sequence"
    )]
    EpochMismatch {
        /// The epoch the client gave.
        requested: String,
        /// The epoch of the current log.
        current: String,
    },
    /// An idempotency key was used before by the same user for another request.
    #[error(
        "idempotency key {key:?} was already used for a different request; use a new key for a new request"
    )]
    IdempotencyKeyReused {
        /// The key.
        key: String,
    },
    /// The idempotency store holds as many keys as it may and none has expired yet.
    #[error(
        "too many idempotency keys in use ({capacity}); retry after {}s or send the request without a key",
        retry_after.as_secs().max(1)
    )]
    IdempotencyStoreFull {
        /// The store's bound.
        capacity: usize,
        /// When the oldest key expires.
        retry_after: Duration,
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
    /// The gateway is too busy to take this request now (e.g. every credential check slot
    /// is taken); the caller may retry after `retry_after`.
    #[error("{what} is busy; retry after {} ms", retry_after.as_millis())]
    Busy {
        /// What is busy, e.g. `credential checking`.
        what: &'static str,
        /// When a retry has a chance.
        retry_after: Duration,
    },
    /// Too many failed attempts: attempts are refused without a check for `retry_after`.
    #[error("{reason}; retry after {} s", retry_after.as_secs().max(1))]
    Throttled {
        /// What was throttled, e.g. `too many failed sign-in attempts for user agent1`.
        reason: String,
        /// How long attempts are refused.
        retry_after: Duration,
    },
    /// The upstream GWS refused an operation (bridge mode): its own `statusCode` and
    /// message, reported unchanged on every front, with the class the bridge read from it.
    #[error("{message}")]
    Upstream {
        /// The class of the refusal (from the upstream's HTTP status and statusCode).
        kind: ErrorKind,
        /// The upstream's `statusCode`.
        status_code: u32,
        /// The upstream's `statusMessage`.
        message: String,
    },
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
            Self::HistoryGone { .. } | Self::SequenceAhead { .. } | Self::EpochMismatch { .. } => {
                ErrorKind::OutOfRange
            }
            Self::IdempotencyKeyReused { .. } => ErrorKind::FailedPrecondition,
            Self::IdempotencyStoreFull { .. } => ErrorKind::ResourceExhausted,
            Self::Unavailable(_) | Self::Busy { .. } => ErrorKind::Unavailable,
            Self::Throttled { .. } => ErrorKind::ResourceExhausted,
            Self::Upstream { kind, .. } => *kind,
            Self::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Returns how long the caller should wait before retrying, for the errors that say so
    /// (HTTP `Retry-After`, gRPC `grpc-retry-pushback-ms`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Busy { retry_after, .. }
            | Self::Throttled { retry_after, .. }
            | Self::IdempotencyStoreFull { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Returns the GWS `statusCode` (spec §3.1) that both fronts report for this error.
    ///
    /// Where the GWS sources are silent we use the spec's proposed mapping (§3.2): a
    /// missing parameter is 1, an invalid one or an operation outside the capabilities is 2,
    /// a missing feature is 3, a missing permission 5, an unknown resource 6, a busy number
    /// or a device another supervisor monitors 19 (resource in use), missing credentials 20,
    /// and an unavailable switch, a busy gateway or an internal failure 4. A throttled
    /// sign-in is 3 (operation forbidden, for now): not 20, which tells a desktop that the
    /// password is wrong and should be asked for again.
    pub fn status_code(&self) -> u32 {
        match self {
            Self::MissingParameter(_) => 1,
            Self::NotCapable { .. }
            | Self::Precondition(_)
            | Self::InvalidParameter { .. }
            | Self::UnknownOperation(_)
            | Self::HistoryGone { .. }
            | Self::SequenceAhead { .. }
            | Self::EpochMismatch { .. }
            | Self::IdempotencyKeyReused { .. } => 2,
            Self::FeatureMissing { .. } => 3,
            Self::Unavailable(_)
            | Self::Busy { .. }
            | Self::Internal(_)
            | Self::IdempotencyStoreFull { .. } => 4,
            Self::Throttled { .. } => 3,
            Self::Upstream { status_code, .. } => *status_code,
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
