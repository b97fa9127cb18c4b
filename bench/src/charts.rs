//! The report's pictures: each figure's latency distribution (latency against percentile,
//! one line per series) and its gateway-vs-baseline bars, drawn as SVG with plotters' SVG
//! backend (no fonts or bitmaps: text stays SVG `<text>`), written next to BENCHMARKS.md
//! and embedded by [`crate::report`] under the table.

use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::stats::{CURVE_QUANTILES, LatencySummary};

/// One chart of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Chart {
    /// The figure it belongs to, as in the table (e.g. `1. gRPC unary`).
    pub figure: String,
    /// The caption.
    pub title: String,
    /// The SVG file's name (in the charts directory).
    pub file: String,
    /// What is drawn.
    pub kind: ChartKind,
}

/// What a chart draws.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ChartKind {
    /// Latency (ms, log scale) against percentile, one line per series of
    /// (quantile, ms) points.
    Latency(Vec<(String, Vec<(f64, f64)>)>),
    /// Gateway and baseline bars per group, in `unit`.
    Bars {
        /// The unit of the values (e.g. `req/s`).
        unit: String,
        /// The groups.
        groups: Vec<BarGroup>,
    },
}

/// Two bars side by side: the gateway's and its baseline's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BarGroup {
    /// The group's label (e.g. the load tool).
    pub label: String,
    /// The gateway's value.
    pub gateway: f64,
    /// The baseline's name and value, if there is one.
    pub baseline: Option<(String, f64)>,
}

/// Returns a series' points from a latency summary (empty without samples).
pub fn curve_points(summary: &LatencySummary) -> Vec<(f64, f64)> {
    if summary.count == 0 {
        return Vec::new();
    }
    CURVE_QUANTILES.iter().copied().zip(summary.curve).collect()
}

/// Where a quantile sits on the x axis: its "nines", -log10(1 - q), with the maximum one
/// step past 99.99 %.
fn nines(q: f64) -> f64 {
    if q >= 1.0 {
        MAX_NINES
    } else {
        -(1.0 - q).log10()
    }
}

const MAX_NINES: f64 = 5.0;
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];
const SIZE: (u32, u32) = (760, 420);

/// Writes `chart` into `dir`.
pub fn draw(chart: &Chart, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(&chart.file);
    let root = SVGBackend::new(&path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let caption = format!("Figure {} — {}", chart.figure, chart.title);
    match &chart.kind {
        ChartKind::Latency(series) => draw_latency(&root, &caption, series)?,
        ChartKind::Bars { unit, groups } => draw_bars(&root, &caption, unit, groups)?,
    }
    root.present().map_err(plot_error)?;
    Ok(())
}

fn plot_error(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("chart: {error}")
}

fn draw_latency(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> anyhow::Result<()> {
    let values = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.1));
    let (low, high) = values.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    // Whole decades, so that both ends of the log axis carry a label.
    let (low, high) = if high > 0.0 {
        (
            10f64.powf(low.max(0.001).log10().floor()),
            10f64.powf((high * 1.05).log10().ceil()),
        )
    } else {
        (0.001, 1.0)
    };
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..MAX_NINES + 0.1, (low..high).log_scale())
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency, ms (log)")
        .x_labels(12)
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| format!("{y}"))
        .draw()
        .map_err(plot_error)?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let line: Vec<(f64, f64)> = points.iter().map(|&(q, ms)| (nines(q), ms)).collect();
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
            .map_err(plot_error)?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(line.into_iter().map(|p| Circle::new(p, 3, color.filled())))
            .map_err(plot_error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

/// Labels the integer nines (p0, p90, p99, …) and the maximum.
fn percentile_label(x: f64) -> String {
    let near = |n: f64| (x - n).abs() < 0.05;
    match () {
        () if near(0.0) => "min".into(),
        () if near(MAX_NINES) => "max".into(),
        () if near(x.round()) && x.round() >= 1.0 => {
            let q = 100.0 * (1.0 - 10f64.powf(-x.round()));
            format!("p{}", trim(q))
        }
        () if near(nines(0.5)) => "p50".into(),
        () => String::new(),
    }
}

fn trim(value: f64) -> String {
    let text = format!("{value:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn draw_bars(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    unit: &str,
    groups: &[BarGroup],
) -> anyhow::Result<()> {
    let top = groups
        .iter()
        .flat_map(|g| std::iter::once(g.gateway).chain(g.baseline.as_ref().map(|b| b.1)))
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.2;
    let n = groups.len().max(1) as f64;
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(72)
        .build_cartesian_2d(-0.5..n - 0.5, 0.0..top)
        .map_err(plot_error)?;
    let labels: Vec<String> = groups.iter().map(|g| g.label.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len().max(1) * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 0.01 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(unit)
        .y_label_formatter(&|y| short_number(*y))
        .draw()
        .map_err(plot_error)?;
    let (gateway_color, baseline_color) = (COLORS[0], RGBColor(160, 160, 160));
    for (i, group) in groups.iter().enumerate() {
        let x = i as f64;
        let mut bars = vec![(x - 0.36, x - 0.01, group.gateway, gateway_color)];
        if let Some((_, value)) = &group.baseline {
            bars.push((x + 0.01, x + 0.36, *value, baseline_color));
        }
        for (left, right, value, color) in bars {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(left, 0.0), (right, value)],
                    color.filled(),
                )))
                .map_err(plot_error)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    short_number(value),
                    (left, value + top * 0.02),
                    ("sans-serif", 12),
                )))
                .map_err(plot_error)?;
        }
    }
    let baseline_names: Vec<&str> = groups
        .iter()
        .filter_map(|g| g.baseline.as_ref().map(|b| b.0.as_str()))
        .collect();
    let mut legend = vec![("gateway".to_owned(), gateway_color)];
    if let Some(first) = baseline_names.first() {
        legend.push(((*first).to_owned(), baseline_color));
    }
    for (name, color) in legend {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(-0.5, 0.0), (-0.5, 0.0)],
                color.filled(),
            )))
            .map_err(plot_error)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

/// Formats a bar's value: 27024 → "27.0k", 49.3 → "49.3".
fn short_number(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.1}k", value / 1000.0)
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_labelled_on_the_nines_axis() {
        assert_eq!(percentile_label(nines(0.0)), "min");
        assert_eq!(percentile_label(nines(0.9)), "p90");
        assert_eq!(percentile_label(nines(0.99)), "p99");
        assert_eq!(percentile_label(nines(0.999)), "p99.9");
        assert_eq!(percentile_label(nines(1.0)), "max");
        assert_eq!(percentile_label(1.5), "");
        assert_eq!(short_number(27024.0), "27.0k");
        assert_eq!(short_number(49.34), "49.3");
    }

    #[test]
    fn both_kinds_draw_an_svg() {
        let dir = std::env::temp_dir().join(format!("voice-bench-charts-{}", std::process::id()));
        let mut latency = crate::stats::Latency::default();
        for us in [100, 200, 300, 5_000] {
            latency.record_us(us);
        }
        let charts = [
            Chart {
                figure: "1. gRPC unary".into(),
                title: "latency".into(),
                file: "a.svg".into(),
                kind: ChartKind::Latency(vec![(
                    "gateway".into(),
                    curve_points(&latency.summary()),
                )]),
            },
            Chart {
                figure: "1. gRPC unary".into(),
                title: "req/s".into(),
                file: "b.svg".into(),
                kind: ChartKind::Bars {
                    unit: "req/s".into(),
                    groups: vec![BarGroup {
                        label: "suite".into(),
                        gateway: 27_000.0,
                        baseline: Some(("bare tonic".into(), 64_000.0)),
                    }],
                },
            },
        ];
        for chart in &charts {
            draw(chart, &dir).unwrap();
            let svg = std::fs::read_to_string(dir.join(&chart.file)).unwrap();
            assert!(
                svg.starts_with("<svg") && svg.contains("gRPC unary"),
                "{svg}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
