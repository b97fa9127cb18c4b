//! The comparison of every client's record with the reference log.
//!
//! A record is a list of segments, each opened by a snapshot (the first, then one per
//! resync the server asked for). Within a segment every event of the client's scope after
//! the snapshot must arrive exactly once, in order, up to the end of the segment (for the
//! last segment, the end of the log):
//! - gRPC, by sequence: a segment holds exactly the scope's events after its snapshot's
//!   sequence, and the snapshot equals the calls the log gives at that sequence.
//! - CometD, by position in the user's list of events (each message is found by its
//!   [`EventKey`]): positions go up by one; the snapshot equals the user's calls at some
//!   point of the log no earlier than just before the first message (the snapshot is read
//!   after subscribing, so it may already include the first messages, never miss one
//!   before them); the last segment ends with the user's last event, or, when it got no
//!   message at all, its snapshot is the user's final calls.
//!
//! Missing events count as lost, repeated ones as duplicated; anything else (out of order,
//! unknown or foreign events, a snapshot that matches no point of the log) is a failure.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

use super::bayeux::CometdRecord;
use super::keys::{CallBook, CallView, EventKey};
use super::reference::{RefEvent, ReferenceLog};
use super::watcher::GrpcRecord;
use crate::setup::phone;

type Calls = BTreeSet<(String, CallView)>;

/// One user's part of the log, for CometD records.
struct UserLog {
    keys: Vec<EventKey>,
    position: HashMap<EventKey, usize>,
    /// `calls[i]`: the user's calls before its event `i` (`calls[len]`: at the end).
    calls: Vec<Calls>,
}

/// The counts and failures gathered over every record.
pub struct Verdict<'a> {
    log: &'a ReferenceLog,
    by_seq: HashMap<u64, &'a RefEvent>,
    users: HashMap<String, UserLog>,
    /// gRPC snapshots to check: (client, scope DN, sequence, calls), checked in one pass.
    snapshots: Vec<(String, Option<String>, u64, Calls)>,
    report: ChaosReport,
}

impl<'a> Verdict<'a> {
    /// Prepares the comparison with `log`.
    pub fn new(log: &'a ReferenceLog) -> Self {
        let report = ChaosReport {
            events: log.events.len() as u64,
            errors: log.events.iter().filter(|e| e.key.is_error()).count() as u64,
            last_sequence: log.last_seq(None),
            ..ChaosReport::default()
        };
        Self {
            log,
            by_seq: log.events.iter().map(|e| (e.seq, e)).collect(),
            users: HashMap::new(),
            snapshots: Vec::new(),
            report,
        }
    }

    fn fail(&mut self, name: &str, what: String) {
        self.report.failures.push(format!("{name}: {what}"));
    }

    /// Compares a watcher's record.
    pub fn grpc(&mut self, record: &GrpcRecord) {
        self.report.clients += 1;
        self.report.reconnects += record.lives.reconnects;
        self.report.resyncs += record.resyncs;
        self.report.lagged += record.lagged;
        self.report.kills += record.lives.kills;
        let dn = record.scope.dn();
        let count = record.segments.len();
        if count == 0 {
            self.fail(&record.name, "never got a snapshot".into());
        }
        for (i, segment) in record.segments.iter().enumerate() {
            self.report.deliveries += segment.events.len() as u64;
            let in_scope = |e: &RefEvent| dn.as_ref().is_none_or(|dn| e.dn == *dn);
            self.snapshots.push((
                record.name.clone(),
                dn.clone(),
                segment.snapshot_seq,
                segment.snapshot.clone(),
            ));
            let end = if i + 1 == count {
                self.log.last_seq(dn.as_deref())
            } else {
                segment.events.last().map_or(segment.snapshot_seq, |e| e.0)
            };
            let expected: Vec<u64> = self
                .log
                .events
                .iter()
                .filter(|e| in_scope(e) && e.seq > segment.snapshot_seq && e.seq <= end)
                .map(|e| e.seq)
                .collect();
            let mut got = HashSet::new();
            let mut previous = segment.snapshot_seq;
            for (seq, event_dn, key) in &segment.events {
                if !got.insert(*seq) {
                    self.report.duplicated += 1;
                    self.fail(&record.name, format!("sequence {seq} came twice"));
                    continue;
                }
                if *seq <= previous {
                    self.fail(
                        &record.name,
                        format!("sequence {seq} came after {previous}"),
                    );
                }
                previous = previous.max(*seq);
                let matches = self.by_seq.get(seq).is_some_and(|r| {
                    r.dn == *event_dn && key.as_ref() == Some(&r.key) && in_scope(r)
                });
                if !matches {
                    self.fail(
                        &record.name,
                        format!("sequence {seq} is not the log's event of its scope: {key:?}"),
                    );
                }
            }
            let lost = expected.iter().filter(|s| !got.contains(s)).count();
            self.report.lost += lost as u64;
            if lost > 0 {
                self.fail(
                    &record.name,
                    format!(
                        "lost {lost} of the {} events of segment {i}",
                        expected.len()
                    ),
                );
            }
        }
    }

    /// Checks every gRPC snapshot against the log's calls at its sequence, in one pass.
    fn check_snapshots(&mut self) {
        let mut snapshots = std::mem::take(&mut self.snapshots);
        snapshots.sort_by_key(|s| s.2);
        let mut book = self.log.start_book();
        let mut events = self.log.events.iter().peekable();
        for (name, dn, seq, calls) in snapshots {
            if seq < self.log.start_seq {
                self.fail(
                    &name,
                    format!("its snapshot at {seq} is older than the log"),
                );
                continue;
            }
            while let Some(event) = events.next_if(|e| e.seq <= seq) {
                book.apply_event(&event.dn, &event.key);
            }
            let expected: Calls = book
                .to_set()
                .into_iter()
                .filter(|(d, _)| dn.as_ref().is_none_or(|dn| d == dn))
                .collect();
            if expected != calls {
                self.fail(
                    &name,
                    format!("its snapshot at sequence {seq} differs from the log's calls then"),
                );
            }
        }
    }

    fn user_log(&mut self, dn: &str) -> Option<&UserLog> {
        if !self.users.contains_key(dn) {
            let mut user = UserLog {
                keys: Vec::new(),
                position: HashMap::new(),
                calls: Vec::new(),
            };
            let mut book = self.log.start_book();
            let own = |book: &CallBook| -> Calls {
                book.to_set().into_iter().filter(|(d, _)| d == dn).collect()
            };
            user.calls.push(own(&book));
            for event in self.log.of_user(dn) {
                if user
                    .position
                    .insert(event.key.clone(), user.keys.len())
                    .is_some()
                {
                    let key = &event.key;
                    self.fail(dn, format!("two events of the log have the same key {key:?}: the driver must make them unique"));
                    return None;
                }
                user.keys.push(event.key.clone());
                book.apply_event(dn, &event.key);
                user.calls.push(own(&book));
            }
            self.users.insert(dn.to_owned(), user);
        }
        self.users.get(dn)
    }

    /// Compares a CometD client's record.
    pub fn cometd(&mut self, record: &CometdRecord) {
        self.report.clients += 1;
        self.report.reconnects += record.lives.reconnects;
        self.report.resyncs += record.resyncs;
        self.report.kills += record.lives.kills;
        if record.multiple_clients > 0 {
            let n = record.multiple_clients;
            self.fail(
                &record.name,
                format!("{n} connect replies advised multiple-clients"),
            );
        }
        let dn = phone(record.agent);
        if record.segments.is_empty() {
            self.fail(&record.name, "never read a snapshot".into());
        }
        let count = record.segments.len();
        for (i, segment) in record.segments.iter().enumerate() {
            self.report.deliveries += segment.events.len() as u64;
            let mut problems = Vec::new();
            let (lost, duplicated) = match self.user_log(&dn) {
                Some(user) => check_segment(user, segment, i + 1 == count, &mut problems),
                None => return,
            };
            self.report.lost += lost;
            self.report.duplicated += duplicated;
            if lost > 0 {
                problems.push(format!("lost {lost} events in segment {i}"));
            }
            if duplicated > 0 {
                problems.push(format!("{duplicated} events came twice in segment {i}"));
            }
            for problem in problems {
                self.fail(&record.name, problem);
            }
        }
    }

    /// Moves the counts and failures into `report`.
    pub fn into_report(mut self, report: &mut ChaosReport) {
        self.check_snapshots();
        let mut failures = std::mem::take(&mut report.failures);
        failures.extend(self.report.failures);
        *report = ChaosReport {
            failures,
            seed: report.seed,
            drive: report.drive,
            cuts: report.cuts,
            elapsed: report.elapsed,
            ..self.report
        };
    }
}

/// Checks one CometD segment; returns (lost, duplicated).
fn check_segment(
    user: &UserLog,
    segment: &super::bayeux::CometdSegment,
    last: bool,
    problems: &mut Vec<String>,
) -> (u64, u64) {
    if segment.foreign > 0 {
        problems.push(format!("{} messages for another user", segment.foreign));
    }
    let mut positions = Vec::new();
    let mut duplicated = 0;
    let mut seen = HashSet::new();
    for key in &segment.events {
        match key.as_ref().and_then(|k| user.position.get(k)) {
            Some(&p) if !seen.insert(p) => duplicated += 1,
            Some(&p) => positions.push(p),
            None => problems.push(format!("a message that is not in its user's log: {key:?}")),
        }
    }
    let mut lost = 0;
    for pair in positions.windows(2) {
        if pair[1] < pair[0] {
            problems.push(format!("event {} came after event {}", pair[1], pair[0]));
        } else {
            lost += (pair[1] - pair[0] - 1) as u64;
        }
    }
    // Points of the log whose calls the snapshot shows: `q` = before event `q`.
    let matching: Vec<usize> = (0..user.calls.len())
        .filter(|&q| user.calls[q] == segment.snapshot)
        .collect();
    let end = user.keys.len();
    match positions.first() {
        None if last && !matching.contains(&end) => {
            problems
                .push("no message after its snapshot, which is not the user's final calls".into());
            lost += end.saturating_sub(matching.last().copied().unwrap_or(0)) as u64;
        }
        None => {}
        Some(&first) => {
            if !matching.iter().any(|&q| q >= first) {
                match matching.last() {
                    Some(&q) => lost += (first - q) as u64,
                    None => problems.push("its snapshot matches no point of the log".into()),
                }
            }
            let reached = positions.iter().max().copied().unwrap_or(first);
            if last {
                lost += (end - 1 - reached) as u64;
            }
        }
    }
    (lost, duplicated)
}

/// What a run did and found.
#[derive(Debug, Clone, Default)]
pub struct ChaosReport {
    /// The seed of the run.
    pub seed: u64,
    /// Events committed (as the reference saw them): call events and errors.
    pub events: u64,
    /// Of those, asynchronous errors (`CallError`, `ErrorMessage`).
    pub errors: u64,
    /// The last sequence number (call and device events).
    pub last_sequence: u64,
    /// gRPC and CometD clients.
    pub clients: usize,
    /// Events received by all clients together.
    pub deliveries: u64,
    /// Reconnects (gRPC resumes, CometD re-connects) after a lost connection.
    pub reconnects: u64,
    /// Resyncs: OUT_OF_RANGE (gRPC) or `402` (CometD), each followed by a fresh snapshot.
    pub resyncs: u64,
    /// Watch streams ended for lagging (ABORTED), then resumed.
    pub lagged: u64,
    /// Connections the proxies cut mid-stream.
    pub cuts: u64,
    /// Connections the clients killed themselves.
    pub kills: u64,
    /// Events a client never saw although it was not told to resync.
    pub lost: u64,
    /// Events a client saw more than once.
    pub duplicated: u64,
    /// Everything else that went wrong (out of order, foreign events, snapshots that match
    /// no point of the log, clients that did not catch up), one line each.
    pub failures: Vec<String>,
    /// Driving time.
    pub drive: Duration,
    /// Whole run.
    pub elapsed: Duration,
}

impl ChaosReport {
    /// Returns whether every client saw every event of its scope exactly once.
    pub fn passed(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.failures.is_empty()
    }

    /// Returns the report as a few lines.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "chaos (seed {}): {} events committed ({} of them errors; last sequence {}) in {:.1} s, {} clients, {} deliveries; {} reconnects ({} proxy cuts, {} client kills), {} resyncs, {} lagged; lost {}, duplicated {}; {:.1} s in all",
            self.seed,
            self.events,
            self.errors,
            self.last_sequence,
            self.drive.as_secs_f64(),
            self.clients,
            self.deliveries,
            self.reconnects,
            self.cuts,
            self.kills,
            self.resyncs,
            self.lagged,
            self.lost,
            self.duplicated,
            self.elapsed.as_secs_f64(),
        );
        for failure in self.failures.iter().take(20) {
            let _ = write!(text, "\n  {failure}");
        }
        if self.failures.len() > 20 {
            let _ = write!(text, "\n  ... {} more", self.failures.len() - 20);
        }
        text
    }
}
