//! The machinery of the authorization audit (`tests/authz_audit.rs`): what a table entry
//! promises and the attempts that test it ([`checks`]), the gateway they run against and
//! its state that must not change ([`fixture`]), the requests they send ([`bodies`],
//! [`bayeux`]), how they are sent and judged ([`wire`]), and what the gateway serves
//! ([`surface`]).
#![allow(dead_code, unreachable_pub)]

pub mod bayeux;
pub mod bodies;
pub mod checks;
pub mod fixture;
pub mod surface;
pub mod wire;

pub use checks::*;
pub use fixture::*;
pub use wire::*;

pub use crate::common::WAIT;

/// The failures an audit collects, so one run reports every broken promise.
#[derive(Debug, Default)]
pub struct Findings {
    failures: Vec<String>,
    attempts: usize,
}

impl Findings {
    /// Records one attempt and its outcome.
    pub fn record(&mut self, what: &str, outcome: Result<(), String>) {
        self.attempts += 1;
        if let Err(error) = outcome {
            self.failures.push(format!("{what}: {error}"));
        }
    }

    /// Returns how many attempts were made.
    pub fn attempts(&self) -> usize {
        self.attempts
    }

    /// Fails with every recorded failure.
    pub fn assert_none(&self, audit: &str) {
        assert!(
            self.failures.is_empty(),
            "{audit}: {} of {} attempts failed:\n{}",
            self.failures.len(),
            self.attempts,
            self.failures.join("\n")
        );
    }
}

/// Compares the gateway's state with `baseline` after an attempt; on a change, records it
/// and takes the new state as the baseline, so one change is reported once.
pub async fn unchanged(
    fixture: &Fixture,
    baseline: &mut GatewayState,
    findings: &mut Findings,
    what: &str,
) {
    let now = fixture.state().await;
    if let Some(diff) = baseline.diff(&now) {
        findings.record(what, Err(format!("the gateway's state changed: {diff}")));
        *baseline = now;
    }
}
