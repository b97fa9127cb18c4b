//! What every case asserts at every watcher: no event lost, none duplicated.
//!
//! Several users share the log, so a watcher of X sees only X's entries and its sequences
//! have holes that are other users' entries. The reference for X is therefore the other
//! watchers of X: within one epoch, every watcher of X must have seen exactly the same
//! (sequence, call, state, notification) list after the latest of their snapshots in that
//! epoch, whatever instance each was on and however often it resumed (in an epoch that
//! ended, each list a prefix of the longest: each instance's tail stopped where it was). On top of that,
//! each watcher's sequences only grow within an epoch (a resume that repeats or reorders
//! shows here), and every call the driver dialed went through the states a watcher of that
//! user on the upstream itself saw (no case disturbs the upstream): in the same order, each
//! at most once, ending in the same state (a loss or a duplicate common to all the
//! cluster's watchers shows here). Not necessarily all of them: while a user has no owner
//! (a crash, until the lease expires and another instance re-reads the user upstream) the
//! user's changes reach no instance, and the new owner's re-read appends the difference,
//! one change where the upstream made several (a dial seen `Ringing` upstream arrives as
//! `Established` when the answer came before the re-read). The design says so
//! (`src/cluster/mod.rs`, "Takeover"); the cases print how many such states they saw
//! merged.

use std::collections::BTreeSet;

use super::driver::Done;
use super::watcher::{Record, Seen, Watcher};
use crate::common::pb::CallState;

/// Waits (bounded) until every watcher has seen every call of `done` as the upstream
/// watcher of its user (`reference`) did and the watchers of each user agree on their
/// last event, then asserts the module's checks.
pub async fn assert_no_loss_no_duplicate(
    watchers: &[Watcher],
    reference: &[Watcher],
    done: &[Done],
) {
    let settled = || {
        watchers.iter().all(|w| {
            let (record, upstream) = (w.record(), reference_of(reference, w.user).record());
            calls_of(done, w.user)
                .all(|d| follows(&states(&record, &d.id), &states(&upstream, &d.id)))
        }) && users(watchers).iter().all(|user| {
            let lasts: BTreeSet<_> = of(watchers, user)
                .map(|w| {
                    w.record()
                        .events
                        .last()
                        .cloned()
                        .map(|e| (e.epoch, e.sequence))
                })
                .collect();
            lasts.len() == 1
        })
    };
    let waited = tokio::time::timeout(crate::common::WAIT, async {
        while !settled() {
            // The poll interval of this check; the timeout bounds it.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    if waited.is_err() {
        for w in watchers {
            let (record, upstream) = (w.record(), reference_of(reference, w.user).record());
            let differ: Vec<_> = calls_of(done, w.user)
                .filter(|d| !follows(&states(&record, &d.id), &states(&upstream, &d.id)))
                .map(|d| {
                    let here: Vec<_> = record.events.iter().filter(|e| e.call == d.id).collect();
                    (&d.id, here, states(&upstream, &d.id))
                })
                .collect();
            eprintln!(
                "{} (on {}, {} resumes): last {:?}; calls seen otherwise than upstream \
                 (id, here, upstream): {differ:?}",
                w.user,
                record.on,
                record.resumes,
                record.events.last().map(|e| (&e.epoch, e.sequence)),
            );
        }
        panic!(
            "the watchers did not settle within {:?}",
            crate::common::WAIT
        );
    }
    for w in watchers {
        assert_in_order(w);
    }
    for user in users(watchers) {
        assert_same_lists(watchers, user);
    }
    let merged: usize = watchers
        .iter()
        .map(|w| assert_as_upstream(w, reference_of(reference, w.user), done))
        .sum();
    eprintln!("call states merged by a takeover's re-read, over all watchers: {merged}");
}

fn reference_of<'a>(reference: &'a [Watcher], user: &str) -> &'a Watcher {
    reference
        .iter()
        .find(|r| r.user == user)
        .expect("an upstream watcher of every user")
}

fn calls_of<'a>(done: &'a [Done], user: &'a str) -> impl Iterator<Item = &'a Done> {
    done.iter()
        .filter(move |d| d.caller == user || d.callee == user)
}

fn states(record: &Record, id: &str) -> Vec<CallState> {
    record
        .events
        .iter()
        .filter(|e| e.call == id)
        .map(|e| e.state)
        .collect()
}

fn users(watchers: &[Watcher]) -> BTreeSet<&'static str> {
    watchers.iter().map(|w| w.user).collect()
}

fn of<'a>(watchers: &'a [Watcher], user: &'a str) -> impl Iterator<Item = &'a Watcher> {
    watchers.iter().filter(move |w| w.user == user)
}

/// Within an epoch, sequences only grow.
fn assert_in_order(w: &Watcher) {
    let record = w.record();
    for pair in record.events.windows(2) {
        if pair[0].epoch == pair[1].epoch {
            assert!(
                pair[1].sequence > pair[0].sequence,
                "a watcher of {} saw sequence {} after {} in epoch {} (a duplicate or a \
                 reorder; {} resumes)",
                w.user,
                pair[1].sequence,
                pair[0].sequence,
                pair[0].epoch,
                record.resumes
            );
        }
    }
}

/// Every watcher of `user` saw the same list in each epoch, after the latest snapshot.
fn assert_same_lists(watchers: &[Watcher], user: &str) {
    let records: Vec<Record> = of(watchers, user).map(Watcher::record).collect();
    let epochs: BTreeSet<String> = records
        .iter()
        .flat_map(|r| r.events.iter().map(|e| e.epoch.clone()))
        .collect();
    for epoch in epochs {
        let floor = records
            .iter()
            .flat_map(|r| r.snapshots.iter())
            .filter(|(e, _, _)| *e == epoch)
            .map(|(_, s, _)| *s)
            .max()
            .unwrap_or(0);
        let lists: Vec<Vec<&Seen>> = records
            .iter()
            .map(|r| {
                r.events
                    .iter()
                    .filter(|e| e.epoch == epoch && e.sequence > floor)
                    .collect()
            })
            .collect();
        // An epoch that ended (Redis lost the log) ended at each instance after what its
        // tail had read by then: there, each list is a prefix of the longest (the resync
        // snapshot covers the rest); in the current epoch, all are the same.
        let ended = records
            .iter()
            .any(|r| r.events.last().is_some_and(|e| e.epoch != epoch));
        let reference = if ended {
            lists.iter().max_by_key(|l| l.len()).unwrap().clone()
        } else {
            lists[0].clone()
        };
        for (i, list) in lists.iter().enumerate() {
            let agrees = if ended {
                reference.starts_with(list)
            } else {
                *list == reference
            };
            if !agrees {
                let brief = |l: &Vec<&Seen>| -> Vec<String> {
                    l.iter()
                        .map(|e| format!("{} {:.6} {:?}", e.sequence, e.call, e.state))
                        .collect()
                };
                let (a, b) = (brief(&reference), brief(list));
                panic!(
                    "two watchers of {user} disagree in epoch {epoch} (ended: {ended}) after \
                     sequence {floor}:\nreference: {a:?}\nwatcher {i} (on {}, {} resumes): \
                     {b:?}",
                    records[i].on, records[i].resumes
                );
            }
        }
    }
}

/// Whether `seen` is `upstream` with some states left out (merged by a re-read), ending in
/// the same state.
fn follows(seen: &[CallState], upstream: &[CallState]) -> bool {
    let mut rest = upstream.iter();
    seen.last() == upstream.last() && seen.iter().all(|s| rest.any(|u| u == s))
}

/// Every call dialed went through the upstream's states at the watcher (see [`follows`]);
/// returns how many of them were merged by a re-read.
fn assert_as_upstream(w: &Watcher, upstream: &Watcher, done: &[Done]) -> usize {
    let (record, upstream) = (w.record(), upstream.record());
    let mut merged = 0;
    for d in calls_of(done, w.user) {
        let (seen, reference) = (states(&record, &d.id), states(&upstream, &d.id));
        assert!(
            follows(&seen, &reference),
            "a watcher of {} (on {}, {} resumes) saw call {} as {seen:?}, the upstream as \
             {reference:?}",
            w.user,
            record.on,
            record.resumes,
            d.id
        );
        merged += reference.len() - seen.len();
    }
    merged
}
