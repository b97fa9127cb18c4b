//! Movable CometD sessions (issue 16): the record of a Bayeux session that another
//! instance needs to adopt it when the session's instance died, kept by the engine beside
//! the log and the leases ([`SessionRecords`]).
//!
//! A record holds what a session is made of besides its queue: the user, its
//! subscriptions, its browser cookie (long-polling trusts a `clientId` only with it), how
//! its handshake authenticated, and the log's epoch it was made in. The queue is not in it:
//! with the ack extension, the client's `ext.ack` names the shared log's sequence of the
//! last event it received ([`crate::gws::cometd::session`]), and the adopting instance
//! replays the user's events after that position from its own history.
//!
//! Each record names its **owner** (the instance id serving the session). A write of an
//! instance that is not the owner is refused unless it is an adoption, and so is a delete:
//! an instance paused while its session moved cannot overwrite or delete the new owner's
//! record when it wakes up; it learns from the refusal that the session moved.
//!
//! Bounds: one record per live ack session of the cluster (the `cometd.max_sessions` of
//! each instance), each a few hundred bytes, with a TTL (`ttl` of [`SessionRecords::put`]):
//! a record of an instance that died lapses by itself.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::EngineFuture;

/// What another instance needs to adopt a Bayeux session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The `clientId`.
    pub client_id: String,
    /// The instance serving the session.
    pub owner: String,
    /// The user whose notifications the session receives.
    pub user: String,
    /// The `BAYEUX_BROWSER` cookie the session was made with (long-polling needs it).
    pub browser_id: Option<String>,
    /// Whether the handshake authenticated with a `JSESSIONID` (an HTTP session of the
    /// owner's only: an adopting instance then asks for credentials of its own).
    pub http_session: bool,
    /// The subscribed channel patterns.
    pub subscriptions: Vec<String>,
    /// Whether the ack extension is on (always, for a record written by the gateway).
    pub ack: bool,
    /// The shared log's epoch the session's positions belong to.
    pub epoch: String,
}

/// The engine's table of session records.
pub trait SessionRecords: Send + Sync + 'static {
    /// Writes `record` for `ttl`, if no record of its `client_id` exists or its owner is
    /// `record.owner`, or unconditionally with `adopt`; returns `false` when the record
    /// belongs to another owner (the session moved there).
    fn put<'a>(
        &'a self,
        record: &'a SessionRecord,
        ttl: Duration,
        adopt: bool,
    ) -> EngineFuture<'a, bool>;

    /// Returns the record of `client_id`, if any.
    fn get<'a>(&'a self, client_id: &'a str) -> EngineFuture<'a, Option<SessionRecord>>;

    /// Deletes the record of `client_id` if its owner is `owner`.
    fn delete<'a>(&'a self, client_id: &'a str, owner: &'a str) -> EngineFuture<'a, ()>;
}
