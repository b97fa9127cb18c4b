//! Asynchronous errors: an operation the gateway accepted (the gRPC reply came, the JSON API
//! answered `statusCode` 0) that failed afterwards. Each is one [`ErrorEvent`] in the
//! numbered event stream, sent as the GWS Voice `ErrorMessage` on `/v2/me/calls` (spec §3.2,
//! §8.4) and as a `CallError` on gRPC `WatchCalls`.
//!
//! Like a call event, it is numbered in commit order, kept in the bounded history (a resume
//! replays it) and belongs to one user: the user whose request failed, as the reply it
//! stands in for would have. Other parties of the call are not told of the error; they see
//! the call change as usual.
//!
//! # When it is sent
//!
//! - **Embedded switch**: a leg to an outside number that the network cannot complete. The
//!   switch's simulated outside world answers busy for `switch.busy_numbers` and cannot
//!   reach `switch.unreachable_numbers` (`crate::config`); it accepts the leg like any
//!   other, and reports the failure ([`SwitchEvent::Failed`](super::port::SwitchEvent))
//!   when the far end would have answered (`switch.external_answer_ms`). The core releases
//!   the leg in one commit, then appends the error, with the call as the user sees it after
//!   the release. What the release leaves, by the operation that created the leg:
//!   - `Dial`: the call ends (`Released`).
//!   - `InitiateTransfer`, `InitiateConference`: the consult call ends; the original call
//!     stays `Held`, so the agent can `Retrieve` it.
//!   - `SingleStepConference`: the added party leaves; the conference goes on.
//!   - `SingleStepTransfer`: the agent left the call when the transfer was accepted, so the
//!     transferred party is left alone and the call ends (a blind transfer to a busy number,
//!     with no recall); the error goes to the agent who transferred, with the released call.
//!
//!   A leg released before the failure arrives (the agent hung up first) fails silently: no
//!   request of anyone's is left to fail.
//! - **Bridge mode**: every `ErrorMessage` the upstream GWS sends on a user's
//!   `/v2/me/calls`, to the same user, with its `errorCode` and `errorMessage` unchanged
//!   (`crate::backend::bridge`).
//!
//! # Choices where the spec is silent
//!
//! The spec names the message but marks its fields inferred (§8.4, §10 question 1).
//! - The error is the core's [`CoreError`], so it has the same kind (gRPC code) and GWS
//!   `statusCode` (§3.1) as a synchronous refusal: busy is 19 (resource in use, as a Dial to
//!   a do-not-disturb DN is refused at once), unreachable 6 (not found). `errorCode`
//!   carries that statusCode; GWS puts a T-Server code there, which the gateway, having no
//!   T-Server, does not have.
//! - The call events of the failure come first, then the error: the error's call is the call
//!   as it stands after the failure, the same as the last call event the user received.
//! - Only failures after acceptance are asynchronous: what the switch refuses while the
//!   request is still open (an unknown number, a do-not-disturb DN) is still the request's
//!   own error, as before.

use std::sync::Arc;
use std::time::SystemTime;

use super::error::CoreError;
use super::model::{CallSnapshot, Operation, UserRef};

/// An operation that failed after it was accepted: the GWS Voice `ErrorMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorEvent {
    /// Position in the event stream; shares the numbering of call and device events.
    pub sequence: u64,
    /// The user whose request failed; the event is this user's only.
    pub user: UserRef,
    /// The operation that failed; `None` when an upstream did not name it.
    pub operation: Option<Operation>,
    /// The failure: its kind, its GWS `statusCode` and its message.
    pub error: CoreError,
    /// The call the failure concerns, as `user` sees it after the failure; `None` when it
    /// concerns no call.
    pub call: Option<CallSnapshot>,
    /// When the failure was committed (set by the event log, with the sequence).
    pub committed_at: SystemTime,
}

/// The request that created a leg to an outside number, kept on the leg: a later failure of
/// the leg is reported to this user, naming this operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LegRequest {
    /// The user who asked.
    pub(crate) user: Arc<str>,
    /// What they asked for (`Dial`, `InitiateTransfer`, ...).
    pub(crate) operation: Operation,
}
