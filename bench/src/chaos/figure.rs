//! Figure 8 (issue 14): the chaos resume run against the gateway binary, longer than the
//! test suite's (100,000 events, 400 watchers, 200 CometD clients in the full bench). It
//! has no baseline: the figure is the count of events lost or duplicated, and its target
//! is zero of each.

use std::fmt::Write as _;

use anyhow::Context as _;

use super::{ChaosReport, ChaosTarget};
use crate::figures::Bench;
use crate::report::Row;

const FIGURE: &str = "8. Chaos resume";

impl Bench {
    /// Figure 8: a gateway with the chaos configuration, then the chaos run against it.
    pub async fn chaos(&mut self) -> anyhow::Result<()> {
        let plan = self.plan.chaos.clone();
        let config = self.work.join("chaos-gateway.toml");
        std::fs::write(&config, plan.config_toml())?;
        let gateway = self.spawn_gateway("gateway-chaos", Some(&config))?;
        let target = ChaosTarget {
            grpc: gateway.grpc,
            http: gateway.http,
        };
        let report = super::run(target, plan)
            .await
            .context("the chaos run could not complete")?;
        drop(gateway);
        eprintln!("voice-bench: {}", report.summary());
        self.rows.push(chaos_row(&report));
        self.notes.push(chaos_note(&report));
        Ok(())
    }
}

fn chaos_row(report: &ChaosReport) -> Row {
    Row {
        figure: FIGURE.into(),
        measure: "events lost or duplicated while connections are killed at random".into(),
        gateway: format!(
            "{} events ({} errors), {} clients ({} deliveries), {} reconnects, {} resyncs: lost {}, duplicated {}",
            report.events,
            report.errors,
            report.clients,
            report.deliveries,
            report.reconnects,
            report.resyncs,
            report.lost,
            report.duplicated,
        ),
        baseline: "–".into(),
        ratio: None,
        value: (report.lost + report.duplicated) as f64,
        target: "0 lost, 0 duplicated".into(),
        met: Some(report.passed()),
    }
}

fn chaos_note(report: &ChaosReport) -> String {
    let mut note = format!(
        "Figure 8: seed {}; {} events (call events and asynchronous errors) driven in {:.1} s ({:.0}/s) through conference calls, \
         the run {:.1} s in all; {} reconnects, after {} connections the proxy cut mid-frame, \
         {} the clients killed (dropped or aborted), {} streams ended ABORTED for lagging, and \
         {} resyncs (OUT_OF_RANGE or 402, each followed by a fresh snapshot).",
        report.seed,
        report.events,
        report.drive.as_secs_f64(),
        report.events as f64 / report.drive.as_secs_f64().max(1e-9),
        report.elapsed.as_secs_f64(),
        report.reconnects,
        report.cuts,
        report.kills,
        report.lagged,
        report.resyncs,
    );
    if !report.failures.is_empty() {
        let _ = write!(
            note,
            " {} failures, the first: {}",
            report.failures.len(),
            report.failures[0]
        );
    }
    note
}
