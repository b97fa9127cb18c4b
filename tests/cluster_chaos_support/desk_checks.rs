//! What every case asserts at every CometD desk: no call message lost, none duplicated.
//!
//! A desk's messages carry no sequence, so its reference is the gRPC watchers of its user
//! (already checked against each other and the upstream by [`super::checks`]): per epoch,
//! the longest of their lists of `(call, state)` for the driver's calls of that user. The
//! desks subscribed before the driver started, so a desk that kept its session through
//! the case (moved to other instances, adopted there, never told to handshake again) must
//! have received exactly that list, in order. Where the case allows a resync (Redis
//! restarted empty: the log's epoch changed and the sessions with it), a desk may have
//! been told `402::Unknown client` and handshaken again: then its first session's messages
//! are a beginning of the first epoch's list, every later session's a stretch of one
//! epoch's list, its last session's the end of the last epoch's, and nothing is repeated.

use std::collections::BTreeSet;

use super::desk::Desk;
use super::driver::Done;
use super::watcher::Watcher;

type Seen = (String, String);

/// Waits (bounded) until every desk has what its reference has, then asserts the module's
/// checks; `may_resync` allows the resync of a case that changed the log's epoch.
pub async fn assert_desks(desks: &[Desk], watchers: &[Watcher], done: &[Done], may_resync: bool) {
    let settled = |d: &Desk| {
        let (epochs, seen) = (reference(watchers, done, d.user), mine(d, done));
        match (epochs.last(), seen.last()) {
            (Some(last), Some(segment)) => last.ends_with(segment) && !segment.is_empty(),
            (None, _) => true,
            (Some(_), None) => false,
        }
    };
    let waited = tokio::time::timeout(crate::common::WAIT, async {
        while !desks.iter().all(settled) {
            // The poll interval of this check; the timeout bounds it.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    let about = |d: &Desk| {
        let (epochs, seen) = (reference(watchers, done, d.user), mine(d, done));
        let record = d.record();
        let brief =
            |l: &[Seen]| -> Vec<String> { l.iter().map(|(c, s)| format!("{c:.6} {s}")).collect() };
        format!(
            "a {:?} desk of {} (first on {}, now on {}, {} moves, {} 402s): saw {:?}, \
             reference {:?}",
            d.transport,
            d.user,
            d.first_home,
            record.on,
            record.moves,
            record.unknown,
            seen.iter().map(|s| brief(s)).collect::<Vec<_>>(),
            epochs.iter().map(|e| brief(e)).collect::<Vec<_>>(),
        )
    };
    if waited.is_err() {
        let stuck: Vec<String> = desks.iter().filter(|d| !settled(d)).map(about).collect();
        panic!("the desks did not settle:\n{}", stuck.join("\n"));
    }
    for d in desks {
        let (epochs, seen) = (reference(watchers, done, d.user), mine(d, done));
        let record = d.record();
        let about = about(d);
        let all: Vec<&Seen> = seen.iter().flatten().collect();
        let distinct: BTreeSet<&Seen> = all.iter().copied().collect();
        assert_eq!(distinct.len(), all.len(), "a message twice: {about}");
        if !may_resync {
            assert_eq!(record.unknown, 0, "told to handshake again: {about}");
            let want: Vec<Seen> = epochs.concat();
            assert_eq!(seen.concat(), want, "lost or reordered: {about}");
            continue;
        }
        let first_epoch = epochs.first().cloned().unwrap_or_default();
        assert!(
            first_epoch.starts_with(&seen[0]),
            "the first session lost or reordered: {about}"
        );
        for segment in &seen[1..] {
            assert!(
                epochs
                    .iter()
                    .any(|e| e.windows(segment.len().max(1)).any(|w| w == &segment[..]))
                    || segment.is_empty(),
                "a session lost or reordered: {about}"
            );
        }
    }
}

/// A desk's segments, each only with the driver's calls of its user.
fn mine(desk: &Desk, done: &[Done]) -> Vec<Vec<Seen>> {
    let calls = calls_of(done, desk.user);
    desk.record()
        .segments
        .into_iter()
        .map(|segment| {
            segment
                .into_iter()
                .filter(|(c, _)| calls.contains(c))
                .collect()
        })
        .collect()
}

/// Per epoch (in the order they appear), the longest list of the user's watchers.
fn reference(watchers: &[Watcher], done: &[Done], user: &str) -> Vec<Vec<Seen>> {
    let calls = calls_of(done, user);
    let records: Vec<_> = watchers
        .iter()
        .filter(|w| w.user == user)
        .map(Watcher::record)
        .collect();
    let mut epochs: Vec<String> = Vec::new();
    for e in records.iter().flat_map(|r| r.events.iter()) {
        if !epochs.contains(&e.epoch) {
            epochs.push(e.epoch.clone());
        }
    }
    epochs
        .iter()
        .map(|epoch| {
            records
                .iter()
                .map(|r| {
                    r.events
                        .iter()
                        .filter(|e| e.epoch == *epoch && calls.contains(&e.call))
                        .map(|e| (e.call.clone(), gws_state(e.state)))
                        .collect::<Vec<_>>()
                })
                .max_by_key(Vec::len)
                .unwrap_or_default()
        })
        .filter(|list| !list.is_empty())
        .collect()
}

fn calls_of(done: &[Done], user: &str) -> BTreeSet<String> {
    done.iter()
        .filter(|d| d.caller == user || d.callee == user)
        .map(|d| d.id.clone())
        .collect()
}

/// A gRPC call state as the GWS JSON names it.
fn gws_state(state: crate::common::pb::CallState) -> String {
    format!("{state:?}")
}
