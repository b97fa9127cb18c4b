//! Latency histograms (HdrHistogram, microseconds) and their summaries.

use hdrhistogram::Histogram;
use serde::Serialize;

/// A latency histogram in microseconds, from 1 µs to 10 minutes at 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self(Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds"))
    }
}

impl Latency {
    /// Records one latency in microseconds (clamped into the histogram's range).
    pub fn record_us(&mut self, us: u64) {
        self.0.saturating_record(us.max(1));
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &Latency) {
        self.0
            .add(&other.0)
            .expect("histograms of the same bounds merge");
    }

    /// Returns the number of samples.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// Returns count, p50, p99 and max, in milliseconds, and the distribution at
    /// [`CURVE_QUANTILES`] (for the charts).
    pub fn summary(&self) -> LatencySummary {
        let ms = |us: u64| us as f64 / 1000.0;
        let mut curve = [0.0; CURVE_QUANTILES.len()];
        if !self.0.is_empty() {
            for (value, q) in curve.iter_mut().zip(CURVE_QUANTILES) {
                *value = ms(if q <= 0.0 {
                    self.0.min()
                } else if q >= 1.0 {
                    self.0.max()
                } else {
                    self.0.value_at_quantile(q)
                });
            }
        }
        LatencySummary {
            count: self.0.len(),
            p50_ms: ms(self.0.value_at_quantile(0.50)),
            p99_ms: ms(self.0.value_at_quantile(0.99)),
            max_ms: ms(self.0.max()),
            curve,
        }
    }
}

/// The quantiles at which a summary keeps the distribution, for the latency charts: from
/// the minimum (0) to the maximum (1), denser in the tail.
pub const CURVE_QUANTILES: [f64; 12] = [
    0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1.0,
];

/// The summary of a latency histogram.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Maximum, ms.
    pub max_ms: f64,
    /// Latency at each of [`CURVE_QUANTILES`], ms (all 0 without samples).
    pub curve: [f64; CURVE_QUANTILES.len()],
}

/// Returns the median of some values (0 for none).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}
