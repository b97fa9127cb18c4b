//! The report: one row per figure (gateway value, baseline, ratio, target, met), notes,
//! the command and the machine; rendered as BENCHMARKS.md and as JSON (which the smoke
//! test parses).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::canary::{Canary, Steadiness};
use crate::charts::Chart;

/// One row of the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// The figure, e.g. `1. gRPC unary`.
    pub figure: String,
    /// What is measured.
    pub measure: String,
    /// The gateway's value, as shown.
    pub gateway: String,
    /// The baseline and its value, as shown.
    pub baseline: String,
    /// gateway / baseline, when the figure is a ratio.
    pub ratio: Option<f64>,
    /// The raw number the target is checked against.
    pub value: f64,
    /// The target, as shown.
    pub target: String,
    /// Whether the target is met; `None` when there is no target.
    pub met: Option<bool>,
}

/// The machine the run happened on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// Online CPUs.
    pub nproc: usize,
    /// CPU model from /proc/cpuinfo.
    pub cpu: String,
    /// Total memory.
    pub memory: String,
    /// Kernel release.
    pub kernel: String,
    /// `rustc --version`.
    pub rustc: String,
    /// `node --version` (Faye's runtime), if present.
    pub node: String,
    /// The open-file limit the bench ran with.
    pub open_files: u64,
    /// How steady the idle machine was once the figures were done ([`crate::canary`], 3 s,
    /// 0.3 s in a smoke run; absent from reports made before it was measured).
    #[serde(default)]
    pub idle_steadiness: Option<Steadiness>,
}

impl Machine {
    /// Describes this machine, its steadiness measured for `idle` ([`crate::canary`]).
    pub fn probe(open_files: u64, idle: std::time::Duration) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".into(), |(_, m)| m.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or_else(
                || "unknown".into(),
                |kib| format!("{:.1} GiB", kib / 1048576.0),
            );
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".into(), |k| k.trim().to_owned());
        Self {
            nproc: std::thread::available_parallelism().map_or(0, usize::from),
            cpu,
            memory,
            kernel,
            rustc: command_line("rustc", &["--version"]),
            node: command_line("node", &["--version"]),
            open_files,
            idle_steadiness: Some(idle_steadiness(idle)),
        }
    }
}

/// Runs the canary for `idle` with nothing else of the bench running.
fn idle_steadiness(idle: std::time::Duration) -> Steadiness {
    let canary = Canary::start();
    std::thread::sleep(idle);
    canary.stop()
}

fn command_line(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "not found".into(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        )
}

/// The whole report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The command that produced it.
    pub command: String,
    /// Whether this was the smoke run (tiny counts).
    pub smoke: bool,
    /// Wall-clock length of the run, seconds.
    pub seconds: f64,
    /// The machine.
    pub machine: Machine,
    /// The table.
    pub rows: Vec<Row>,
    /// Figures that could not be measured, and why.
    pub missing: Vec<String>,
    /// How each figure was measured, and findings.
    pub notes: Vec<String>,
    /// Hand-written profile findings (`bench/FINDINGS.md`), copied verbatim.
    #[serde(default)]
    pub findings: String,
    /// The charts (SVG files in `charts_dir`).
    #[serde(default)]
    pub charts: Vec<Chart>,
    /// The charts' directory as the Markdown links it (relative to the report's own).
    #[serde(default)]
    pub charts_dir: String,
}

fn yes_no(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "**met**",
        Some(false) => "**missed**",
        None => "reported",
    }
}

impl Report {
    /// Renders BENCHMARKS.md.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        out.push_str("# Benchmarks\n\n");
        out.push_str(
            "Every figure is measured against a baseline run in the same invocation on the same \
             machine, because the machine is shared and noisy; only ratios carry over. All load \
             goes to 127.0.0.1, bounded in count and time. Generated by the command below; do \
             not edit by hand.\n\n",
        );
        let _ = writeln!(
            out,
            "Command: `{}`{}\n",
            self.command,
            if self.smoke { " (smoke counts)" } else { "" }
        );
        let _ = writeln!(
            out,
            "Machine: {} CPUs ({}), {}, Linux {}, {}, Node {}; open-file limit {}; run took {:.0} s.\n",
            m.nproc, m.cpu, m.memory, m.kernel, m.rustc, m.node, m.open_files, self.seconds
        );
        if let Some(idle) = &m.idle_steadiness {
            let _ = writeln!(
                out,
                "Machine steadiness, idle after the figures ({} pieces): {}. A steady machine reads \
                 about 1× at p99 and 0 %; the latency figures' notes give the same reading for \
                 their measured windows.\n",
                idle.pieces,
                idle.describe()
            );
        }
        out.push_str("| figure | measure | gateway | baseline | ratio | target | met |\n");
        out.push_str("|---|---|---|---|---|---|---|\n");
        for row in &self.rows {
            let ratio = row.ratio.map_or_else(|| "–".into(), |r| format!("{r:.2}×"));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                row.figure,
                row.measure,
                row.gateway,
                row.baseline,
                ratio,
                row.target,
                yes_no(row.met)
            );
        }
        self.charts_markdown(&mut out);
        if !self.missing.is_empty() {
            out.push_str("\n## Not measured in this run\n\n");
            for line in &self.missing {
                let _ = writeln!(out, "- {line}");
            }
        }
        if !self.notes.is_empty() {
            out.push_str("\n## How each figure is measured\n\n");
            for line in &self.notes {
                let _ = writeln!(out, "- {line}");
            }
        }
        if !self.findings.is_empty() {
            out.push('\n');
            out.push_str(&self.findings);
        }
        out
    }

    /// Embeds the charts under the table, grouped by figure in the order they were made.
    fn charts_markdown(&self, out: &mut String) {
        if self.charts.is_empty() {
            return;
        }
        out.push_str("\n## Charts\n\n");
        let mut figures: Vec<&str> = Vec::new();
        for chart in &self.charts {
            if !figures.contains(&chart.figure.as_str()) {
                figures.push(&chart.figure);
            }
        }
        for figure in figures {
            let _ = writeln!(out, "Figure {figure}:\n");
            for chart in self.charts.iter().filter(|c| c.figure == figure) {
                let _ = writeln!(
                    out,
                    "![Figure {figure}: {}]({}/{})",
                    chart.title, self.charts_dir, chart.file
                );
            }
            out.push('\n');
        }
    }
}
