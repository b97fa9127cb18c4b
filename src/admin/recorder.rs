//! The process-wide metrics recorder: `metrics-exporter-prometheus`, installed once, and
//! rendered by the admin listener's `/metrics` route.
//!
//! Until [`install`] runs, every `metrics::counter!`/`gauge!`/`histogram!` of the gateway
//! goes to the `metrics` crate's no-op recorder: `--admin-listen none` never installs it,
//! which is how the bench measures the gateway with metrics off.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context as _;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::names::{self, MetricKind};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often histogram samples are folded into their buckets when nobody scrapes: the
/// exporter keeps raw samples until then, so this bounds their memory to one period's worth.
const UPKEEP_PERIOD: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder as the process's global recorder (once; later calls
/// return the same handle) and describes every metric of [`names::METRICS`].
pub fn install() -> anyhow::Result<PrometheusHandle> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), names::SECONDS_BUCKETS)
        .context("histogram buckets")?
        .build_recorder();
    let handle = recorder.handle();
    // Another thread may have won the race; then its recorder is the one in place.
    if metrics::set_global_recorder(recorder).is_ok() {
        let _ = HANDLE.set(handle);
        describe();
        initialize();
        // The exporter has no task of its own without its `async-runtime` feature.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let upkeep = HANDLE.get().cloned();
            runtime.spawn(async move {
                let Some(upkeep) = upkeep else { return };
                loop {
                    tokio::time::sleep(UPKEEP_PERIOD).await;
                    upkeep.run_upkeep();
                }
            });
        }
    }
    HANDLE
        .get()
        .cloned()
        .context("another metrics recorder is installed in this process")
}

/// Returns the installed recorder's handle, if [`install`] ran.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE.get()
}

fn describe() {
    for &(name, kind, help) in names::METRICS {
        match kind {
            MetricKind::Counter => metrics::describe_counter!(name, help),
            MetricKind::Gauge => metrics::describe_gauge!(name, help),
            MetricKind::Histogram => {
                metrics::describe_histogram!(name, metrics::Unit::Seconds, help);
            }
        }
    }
}

/// Starts the series of [`names::INITIAL_SERIES`] (and the unlabelled gauge of CometD
/// sessions and counter of refused connections) at zero.
fn initialize() {
    for &(name, label, values) in names::INITIAL_SERIES {
        for &value in values {
            let kind = names::METRICS.iter().find(|m| m.0 == name).map(|m| m.1);
            if kind == Some(MetricKind::Gauge) {
                metrics::gauge!(name, label => value).increment(0.0);
            } else {
                metrics::counter!(name, label => value).increment(0);
            }
        }
    }
    metrics::gauge!(names::COMETD_SESSIONS).increment(0.0);
    metrics::counter!(names::CONNECTIONS_REFUSED).increment(0);
}
