//! Cluster mode's metrics (named in [`crate::admin::names`]): set where the membership
//! changes (a lease taken or lost, an append, the tail's progress), never per request, so
//! an instance outside a cluster has none of them. Without a recorder installed (tests,
//! `--admin-listen none`) each call is a no-op.

use crate::admin::names;

/// The `change` label values of [`names::CLUSTER_LEASE_CHANGES`].
pub(super) const LEASE_CHANGES: [&str; 3] = ["acquired", "released", "lost"];
/// The `result` label values of [`names::CLUSTER_APPENDS`].
pub(super) const APPEND_RESULTS: [&str; 3] = ["ok", "fenced", "failed"];
/// The `reason` label values of [`names::CLUSTER_LOG_RESETS`]: the log is another epoch's
/// (the engine lost its data; the first adoption at start is not counted), it was trimmed past this instance, an entry
/// could not be read, or a gap in the numbering.
pub(super) const RESET_REASONS: [&str; 4] = ["epoch", "trimmed", "unreadable", "gap"];

/// Starts every series at zero (the engine counted up until it fails), so that a
/// dashboard's `rate()` and an alert see them before their first change.
pub(super) fn start() {
    engine(true);
    leases(0);
    for change in LEASE_CHANGES {
        metrics::counter!(names::CLUSTER_LEASE_CHANGES, "change" => change).increment(0);
    }
    for result in APPEND_RESULTS {
        metrics::counter!(names::CLUSTER_APPENDS, "result" => result).increment(0);
    }
    for reason in RESET_REASONS {
        metrics::counter!(names::CLUSTER_LOG_RESETS, "reason" => reason).increment(0);
    }
    applied(0);
}

/// Whether the engine answers.
pub(super) fn engine(up: bool) {
    metrics::gauge!(names::CLUSTER_ENGINE_UP).set(f64::from(u8::from(up)));
}

/// How many leases this instance holds.
pub(super) fn leases(held: usize) {
    metrics::gauge!(names::CLUSTER_LEASES).set(held as f64);
}

/// A lease `change` (one of [`LEASE_CHANGES`]).
pub(super) fn lease(change: &'static str) {
    metrics::counter!(names::CLUSTER_LEASE_CHANGES, "change" => change).increment(1);
}

/// `events` appended with `result` (one of [`APPEND_RESULTS`]).
pub(super) fn appended(result: &'static str, events: usize) {
    metrics::counter!(names::CLUSTER_APPENDS, "result" => result).increment(events as u64);
}

/// The history started over for `reason` (one of [`RESET_REASONS`]).
pub(super) fn reset(reason: &'static str) {
    metrics::counter!(names::CLUSTER_LOG_RESETS, "reason" => reason).increment(1);
}

/// The tail applied the log up to `sequence`.
pub(super) fn applied(sequence: u64) {
    metrics::gauge!(names::CLUSTER_APPLIED).set(sequence as f64);
}
