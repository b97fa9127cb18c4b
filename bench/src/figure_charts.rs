//! What each figure puts in its charts: the [`Bench`] helpers that collect chart data
//! while the figures run ([`crate::charts`] draws it at the end).

use crate::charts::{BarGroup, Chart, ChartKind, curve_points};
use crate::figures::{Bench, Saturation};
use crate::grpc_load::LoadResult;
use crate::stats::LatencySummary;

impl Bench {
    /// Adds a latency chart of `figure`: one line per (name, summary) with samples.
    pub fn chart_latency(
        &mut self,
        figure: &str,
        title: &str,
        series: Vec<(String, LatencySummary)>,
    ) {
        let series: Vec<(String, Vec<(f64, f64)>)> = series
            .into_iter()
            .map(|(name, summary)| (name, curve_points(&summary)))
            .filter(|(_, points)| !points.is_empty())
            .collect();
        if series.is_empty() {
            return;
        }
        let file = self.chart_file(figure, "latency");
        self.charts.push(Chart {
            figure: figure.into(),
            title: title.into(),
            file,
            kind: ChartKind::Latency(series),
        });
    }

    /// Adds a group of bars to the bar chart of `figure` titled `title` (made on first use).
    pub fn chart_bars(&mut self, figure: &str, title: &str, unit: &str, group: BarGroup) {
        let existing = self.charts.iter_mut().find(|c| {
            c.figure == figure && c.title == title && matches!(c.kind, ChartKind::Bars { .. })
        });
        if let Some(Chart {
            kind: ChartKind::Bars { groups, .. },
            ..
        }) = existing
        {
            groups.push(group);
            return;
        }
        let file = self.chart_file(figure, "bars");
        self.charts.push(Chart {
            figure: figure.into(),
            title: title.into(),
            file,
            kind: ChartKind::Bars {
                unit: unit.into(),
                groups: vec![group],
            },
        });
    }

    /// Adds the latency chart of a gateway run and its baseline's, and their req/s and
    /// CPU bars under `label` (figures 1 and 2, and their cross-check).
    pub(crate) fn chart_unary_pair(
        &mut self,
        figure: &str,
        label: &str,
        baseline: &str,
        gateway_run: &LoadResult,
        baseline_run: &LoadResult,
    ) {
        self.chart_latency(
            figure,
            &format!("latency at saturation, {label} (median round)"),
            vec![
                ("gateway".into(), gateway_run.latency),
                (baseline.into(), baseline_run.latency),
            ],
        );
        self.chart_bars(
            figure,
            crate::crosscheck::RPS_BARS,
            "req/s",
            BarGroup {
                label: label.into(),
                gateway: gateway_run.rps,
                baseline: Some((baseline.into(), baseline_run.rps)),
            },
        );
        if let (Some(gw), Some(base)) = (gateway_run.server_cpu_us, baseline_run.server_cpu_us) {
            self.chart_bars(
                figure,
                crate::crosscheck::CPU_BARS,
                "server CPU, µs per request",
                BarGroup {
                    label: label.into(),
                    gateway: gw,
                    baseline: Some((baseline.into(), base)),
                },
            );
        }
    }

    /// Adds figure 3's comparison with Faye: latency at saturation, messages/s and CPU.
    pub(crate) fn chart_faye(&mut self, gateway: &Saturation, faye: &Saturation) {
        const FIGURE: &str = "3. Fan-out vs Faye";
        self.chart_latency(
            FIGURE,
            "send → receipt at saturation",
            vec![
                ("gateway".into(), gateway.latency),
                ("Faye 1.4.3".into(), faye.latency),
            ],
        );
        let label = format!("{} long-poll sessions", self.plan.sessions);
        let mut group = |title: &str, unit: &str, gw: f64, base: f64| {
            self.chart_bars(
                FIGURE,
                title,
                unit,
                BarGroup {
                    label: label.clone(),
                    gateway: gw,
                    baseline: Some(("Faye 1.4.3".into(), base)),
                },
            );
        };
        group(
            "delivered messages/s",
            "messages/s",
            gateway.rate,
            faye.rate,
        );
        if let (Some(gw), Some(base)) = (gateway.cpu_us_per_message, faye.cpu_us_per_message) {
            group(
                "server CPU per delivered message",
                "µs per message",
                gw,
                base,
            );
        }
    }

    /// Returns `fig<N>-<kind>-<k>.svg`, k counting this figure's charts of that kind.
    fn chart_file(&self, figure: &str, kind: &str) -> String {
        let number = figure.split('.').next().unwrap_or("x").trim();
        let k = self
            .charts
            .iter()
            .filter(|c| c.figure.split('.').next().unwrap_or("x").trim() == number)
            .filter(|c| c.file.contains(&format!("-{kind}-")))
            .count()
            + 1;
        format!("fig{number}-{kind}-{k}.svg")
    }
}
