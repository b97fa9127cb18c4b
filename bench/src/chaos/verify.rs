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
use super::journal::Journal;
use super::keys::{CallBook, CallView, EventKey};
use super::reference::{RefEvent, ReferenceLog};
use super::watcher::GrpcRecord;
use crate::setup::phone;

type Calls = BTreeSet<(String, CallView)>;

/// Failing clients whose details a report keeps.
const DETAILED_CLIENTS: usize = 6;

/// One user's part of the log, for CometD records.
struct UserLog {
    keys: Vec<EventKey>,
    position: HashMap<EventKey, usize>,
    /// `calls[i]`: the user's calls before its event `i` (`calls[len]`: at the end).
    calls: Vec<Calls>,
    /// `global[i]`: the index of the user's event `i` in the whole log.
    global: Vec<usize>,
}

impl UserLog {
    /// Returns how many of the user's events are among the first `count` of the log.
    fn before(&self, count: u64) -> usize {
        self.global.partition_point(|&g| (g as u64) < count)
    }
}

/// The counts and failures gathered over every record.
pub struct Verdict<'a> {
    log: &'a ReferenceLog,
    by_seq: HashMap<u64, &'a RefEvent>,
    users: HashMap<String, UserLog>,
    /// gRPC snapshots to check: (client, scope DN, sequence, calls), checked in one pass.
    snapshots: Vec<(String, Option<String>, u64, Calls)>,
    /// When each client was seen to have caught up, and how (for the details).
    pub caught: HashMap<String, String>,
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
            caught: HashMap::new(),
            report,
        }
    }

    /// Adds a failing client's details: what it missed and its journal.
    fn detail(&mut self, name: &str, missed: &str, journal: &Journal) {
        if self.report.details.len() >= DETAILED_CLIENTS {
            return;
        }
        let caught = self
            .caught
            .get(name)
            .map_or("was not seen to catch up", String::as_str);
        self.report.details.push(format!(
            "{name} ({caught}):\n{missed}  journal:\n{}",
            journal.render("    ")
        ));
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
            let missed: Vec<u64> = expected
                .iter()
                .copied()
                .filter(|s| !got.contains(s))
                .collect();
            let lost = missed.len();
            self.report.lost += lost as u64;
            if lost > 0 {
                self.fail(
                    &record.name,
                    format!(
                        "lost {lost} of the {} events of segment {i}",
                        expected.len()
                    ),
                );
                let received = segment.events.len();
                let text = format!(
                    "  segment {i} of {count}: snapshot at {}, {received} events received, missed sequences {}\n",
                    segment.snapshot_seq,
                    ranges(&missed)
                );
                self.detail(&record.name, &text, &record.journal);
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
                global: Vec::new(),
            };
            let mut book = self.log.start_book();
            let own = |book: &CallBook| -> Calls {
                book.to_set().into_iter().filter(|(d, _)| d == dn).collect()
            };
            user.calls.push(own(&book));
            let of_user = self
                .log
                .events
                .iter()
                .enumerate()
                .filter(|(_, e)| e.dn == dn);
            for (global, event) in of_user {
                user.global.push(global);
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
        self.report.renewals += record.renewals;
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
            let (missed, duplicated) = match self.user_log(&dn) {
                Some(user) => check_segment(user, segment, i + 1 == count, &mut problems),
                None => return,
            };
            let lost = missed.len() as u64;
            if lost > 0 {
                let user = &self.users[&dn];
                let shown: Vec<String> = missed
                    .iter()
                    .take(6)
                    .map(|&p| format!("{p} {}", user.keys[p].short()))
                    .collect();
                let text = format!(
                    "  segment {i} of {count}: {} messages of the user's {}; missed positions {}: {}\n",
                    segment.events.len(),
                    user.keys.len(),
                    ranges(&missed.iter().map(|&p| p as u64).collect::<Vec<_>>()),
                    shown.join(", ")
                );
                self.detail(&record.name, &text, &record.journal);
            }
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
            details: std::mem::take(&mut self.report.details),
            seed: report.seed,
            drive: report.drive,
            cuts: report.cuts,
            elapsed: report.elapsed,
            ..self.report
        };
    }
}

/// Checks one CometD segment; returns the positions it missed, and how many messages
/// came twice.
fn check_segment(
    user: &UserLog,
    segment: &super::bayeux::CometdSegment,
    last: bool,
    problems: &mut Vec<String>,
) -> (Vec<usize>, u64) {
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
    let mut missed = Vec::new();
    for pair in positions.windows(2) {
        if pair[1] < pair[0] {
            problems.push(format!("event {} came after event {}", pair[1], pair[0]));
        } else {
            missed.extend(pair[0] + 1..pair[1]);
        }
    }
    // The user's events the reference had seen before the client subscribed were committed
    // before the subscription: the snapshot, read after it, shows at least those. A message
    // may still bring some (the gateway's CometD bridge may dispatch an event after a
    // subscription that came after its commit), as the snapshot may show the first messages.
    let floor = user.before(segment.subscribed_after);
    // Points of the log whose calls the snapshot shows: `q` = before event `q`.
    let matching: Vec<usize> = (floor..user.calls.len())
        .filter(|&q| user.calls[q] == segment.snapshot)
        .collect();
    let end = user.keys.len();
    match positions.first() {
        None if last && floor < end => {
            problems.push(format!(
                "no message after its snapshot, though it subscribed before the user's event {floor} (of {end})"
            ));
            missed.extend(floor..end);
        }
        None if last && !matching.contains(&end) => {
            problems
                .push("no message after its snapshot, which is not the user's final calls".into());
        }
        None => {}
        Some(&first) => {
            if !matching.iter().any(|&q| q >= first) {
                match matching.last() {
                    Some(&q) => missed.extend(q..first),
                    None => problems.push("its snapshot matches no point of the log".into()),
                }
            }
            let reached = positions.iter().max().copied().unwrap_or(first);
            if last {
                missed.extend(reached + 1..end);
            }
        }
    }
    missed.sort_unstable();
    (missed, duplicated)
}

/// Writes sorted numbers as ranges: `3..=5, 9`.
fn ranges(numbers: &[u64]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < numbers.len() {
        let start = numbers[i];
        let mut end = start;
        while i + 1 < numbers.len() && numbers[i + 1] == end + 1 {
            i += 1;
            end = numbers[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}..={end}")
        });
        i += 1;
    }
    parts.join(", ")
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
    /// New CometD sessions the run asked for at its end (see [`super::bayeux::run`]).
    pub renewals: u64,
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
    /// For the first failing clients: what they missed, and their journals.
    pub details: Vec<String>,
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
            "chaos (seed {}): {} events committed ({} of them errors; last sequence {}) in {:.1} s, {} clients, {} deliveries; {} reconnects ({} proxy cuts, {} client kills), {} resyncs, {} renewals, {} lagged; lost {}, duplicated {}; {:.1} s in all",
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
            self.renewals,
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::bayeux::CometdSegment;
    use super::super::life::Lives;
    use super::*;

    /// A view of call `id` in `state`.
    fn view(id: &str, state: &str) -> CallView {
        CallView {
            id: id.into(),
            state: state.into(),
            ..CallView::default()
        }
    }

    fn key(id: &str, state: &str) -> EventKey {
        EventKey {
            notification: "StatusChange".into(),
            view: view(id, state),
        }
    }

    /// Agent 0's two calls, each dialed, established and released: six events.
    fn log() -> ReferenceLog {
        let states = ["Dialing", "Established", "Released"];
        let events = ["c1", "c2"]
            .into_iter()
            .flat_map(|id| states.map(|state| key(id, state)))
            .enumerate()
            .map(|(i, key)| RefEvent {
                seq: i as u64 + 1,
                dn: phone(0),
                key,
            })
            .collect();
        ReferenceLog {
            events,
            ..ReferenceLog::default()
        }
    }

    /// Verifies a CometD client of agent 0 whose only segment has the `snapshot`, the
    /// messages `got`, and subscribed after the reference's first `after` events.
    fn verify(after: u64, snapshot: &[CallView], got: &[EventKey]) -> ChaosReport {
        let log = log();
        let record = CometdRecord {
            name: "cometd 0".into(),
            agent: 0,
            segments: vec![CometdSegment {
                snapshot: snapshot.iter().map(|v| (phone(0), v.clone())).collect(),
                events: got.iter().cloned().map(Some).collect(),
                subscribed_after: after,
                ..CometdSegment::default()
            }],
            lives: Lives::default(),
            resyncs: 0,
            multiple_clients: 0,
            renewals: 0,
            journal: Journal::new(Instant::now()),
        };
        let mut verdict = Verdict::new(&log);
        verdict.cometd(&record);
        let mut report = ChaosReport::default();
        verdict.into_report(&mut report);
        report
    }

    #[test]
    fn a_client_that_subscribed_before_its_users_calls_and_got_nothing_lost_them() {
        // Its empty snapshot also equals the user's final calls: that must not pass.
        let report = verify(0, &[], &[]);
        assert_eq!(report.lost, 6, "{}", report.summary());
        assert!(!report.passed());
        assert!(
            report.details[0].contains("missed positions 0..=5"),
            "{report:?}"
        );
    }

    #[test]
    fn a_client_that_subscribed_after_its_users_last_event_needs_no_message() {
        let report = verify(6, &[], &[]);
        assert!(report.passed(), "{}", report.summary());
    }

    #[test]
    fn a_client_that_subscribed_during_a_call_needs_the_rest_of_it() {
        // Subscribed once the second call was dialing, which its snapshot shows.
        let dialing = [view("c2", "Dialing")];
        let rest = [key("c2", "Established"), key("c2", "Released")];
        assert!(verify(4, &dialing, &rest).passed());
        let report = verify(4, &dialing, &rest[1..]);
        assert_eq!(report.lost, 1, "{}", report.summary());
        assert!(
            report.details[0].contains("missed positions 4:"),
            "{report:?}"
        );
    }

    #[test]
    fn a_message_the_snapshot_already_shows_is_no_failure() {
        // Subscribed after the reference saw the second call's dialing; the bridge, behind
        // it, still dispatched that event to the new session.
        let dialing = [view("c2", "Dialing")];
        let all = [
            key("c2", "Dialing"),
            key("c2", "Established"),
            key("c2", "Released"),
        ];
        let report = verify(4, &dialing, &all);
        assert!(report.passed(), "{}", report.summary());
    }

    #[test]
    fn ranges_are_written_compactly() {
        assert_eq!(ranges(&[1, 2, 3, 5, 7, 8]), "1..=3, 5, 7..=8");
        assert_eq!(ranges(&[]), "");
    }
}
