//! A client's journal: what happened to it and when (connections opened and how they
//! ended, snapshots, resumes, connect replies), kept so that a failing run can say which
//! client lost which events and what it was doing then. Bounded: it keeps the last
//! [`Journal::KEPT`] entries.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The last entries of one client's history, each stamped with the time since the run began.
#[derive(Debug, Clone)]
pub struct Journal {
    began: Instant,
    entries: VecDeque<(Duration, String)>,
    dropped: usize,
}

impl Journal {
    /// Entries kept (the oldest are dropped first).
    pub const KEPT: usize = 400;

    /// Starts an empty journal whose times count from `began`.
    pub fn new(began: Instant) -> Self {
        Self {
            began,
            entries: VecDeque::new(),
            dropped: 0,
        }
    }

    /// Adds an entry stamped now.
    pub fn note(&mut self, what: impl Into<String>) {
        if self.entries.len() == Self::KEPT {
            self.entries.pop_front();
            self.dropped += 1;
        }
        self.entries.push_back((self.began.elapsed(), what.into()));
    }

    /// Returns the entries as lines, the oldest first, prefixed with `indent`.
    pub fn render(&self, indent: &str) -> String {
        let mut text = String::new();
        if self.dropped > 0 {
            let _ = writeln!(text, "{indent}({} older entries dropped)", self.dropped);
        }
        for (at, what) in &self.entries {
            let _ = writeln!(text, "{indent}{:>8.3} s  {what}", at.as_secs_f64());
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_entries_and_says_how_many_it_dropped() {
        let mut journal = Journal::new(Instant::now());
        for i in 0..Journal::KEPT + 3 {
            journal.note(format!("entry {i}"));
        }
        let text = journal.render("  ");
        assert!(text.starts_with("  (3 older entries dropped)\n"), "{text}");
        assert!(!text.contains("entry 2\n"), "{text}");
        assert!(text.contains("entry 3\n"), "{text}");
        assert!(
            text.ends_with(&format!("entry {}\n", Journal::KEPT + 2)),
            "{text}"
        );
    }
}
