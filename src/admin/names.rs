//! The name, type, labels and help of every metric the gateway exports, defined once.
//!
//! Names follow the Prometheus conventions: a `voice_gateway_` prefix, base units
//! (`_seconds`), `_total` on counters. Every label has a bounded set of values (a front, an
//! operation of the API, a status code, a transport, a reason): never a call id, a user name
//! or a client address.

/// The kind of a metric, for [`METRICS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A monotonic counter (`_total`).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A histogram (`_bucket`, `_sum`, `_count` series).
    Histogram,
}

/// Requests answered, by `front` (`grpc`, `http`), `operation` (the gRPC method as
/// `package.Service/Method`, or the HTTP method and route) and `code` (the gRPC status name
/// or the HTTP status).
pub const REQUESTS: &str = "voice_gateway_requests_total";
/// Time from a request's arrival to its response head, by `front` and `operation`.
pub const REQUEST_DURATION: &str = "voice_gateway_request_duration_seconds";
/// Open `WatchCalls` / `WatchDevices` streams, by `rpc`.
pub const WATCH_STREAMS: &str = "voice_gateway_watch_streams";
/// Watch streams ended because the watcher fell further behind than `limits.watch_buffer`,
/// by `rpc`.
pub const WATCHERS_LAGGED: &str = "voice_gateway_watchers_lagged_total";
/// Events the core committed to its numbered event stream.
pub const EVENTS_COMMITTED: &str = "voice_gateway_events_committed_total";
/// CometD sessions opened by a handshake, by `transport` (`long-polling`, `websocket`).
pub const COMETD_SESSIONS_OPENED: &str = "voice_gateway_cometd_sessions_opened_total";
/// Live CometD sessions.
pub const COMETD_SESSIONS: &str = "voice_gateway_cometd_sessions";
/// `/meta/connect`s held open by the gateway now (desktops waiting for events), by
/// `transport` (`long-polling`, `websocket`).
pub const COMETD_CONNECTS_HELD: &str = "voice_gateway_cometd_connects_held";
/// CometD sessions ended, by `reason` (`disconnected`, `expired`, `queue limit reached` for
/// those dropped at their queue bound, `events lost`, `http session ended`, `shutdown`).
pub const COMETD_SESSIONS_ENDED: &str = "voice_gateway_cometd_sessions_ended_total";
/// Sign-in attempts refused, by `reason`: `invalid` (wrong credentials) or `throttled`
/// (refused without a check: too many recent failures for the user or from the address).
pub const AUTH_FAILURES: &str = "voice_gateway_auth_failures_total";
/// Bridge mode: 1 while the upstream GWS answers, 0 while it does not.
pub const UPSTREAM_UP: &str = "voice_gateway_upstream_up";
/// Bridge mode: duration of the requests made to the upstream GWS, by `outcome`
/// (`ok`, `error`).
pub const UPSTREAM_REQUEST_DURATION: &str = "voice_gateway_upstream_request_duration_seconds";
/// 1 while the gateway is ready to take traffic (`/readyz`), 0 otherwise.
pub const READY: &str = "voice_gateway_ready";
/// Requests refused at once because a bound on requests in flight was reached, by `bound`
/// (`listener`, `connection`; see `crate::shed`).
pub const REQUESTS_SHED: &str = "voice_gateway_requests_shed_total";
/// Connections closed at once because their listener held `server.max_connections`.
pub const CONNECTIONS_REFUSED: &str = "voice_gateway_connections_refused_total";
/// Cluster mode: whether the engine answers, gauge.
pub const CLUSTER_ENGINE_UP: &str = "voice_gateway_cluster_engine_up";
/// Cluster mode: leases this instance holds, gauge.
pub const CLUSTER_LEASES: &str = "voice_gateway_cluster_leases";
/// Cluster mode: leases taken, released and lost, by `change`.
pub const CLUSTER_LEASE_CHANGES: &str = "voice_gateway_cluster_lease_changes_total";
/// Cluster mode: events appended to the shared log, by `result`.
pub const CLUSTER_APPENDS: &str = "voice_gateway_cluster_appends_total";
/// Cluster mode: times this instance's history started over from the log, by `reason`.
pub const CLUSTER_LOG_RESETS: &str = "voice_gateway_cluster_log_resets_total";
/// Cluster mode: the last shared-log sequence this instance applied, gauge.
pub const CLUSTER_APPLIED: &str = "voice_gateway_cluster_applied_sequence";

/// Every metric: name, kind and help text (the `# HELP` line). The dashboard test checks
/// that `ops/grafana-dashboard.json` queries only these.
pub const METRICS: &[(&str, MetricKind, &str)] = &[
    (
        REQUESTS,
        MetricKind::Counter,
        "Requests answered, by front, operation and result code.",
    ),
    (
        REQUEST_DURATION,
        MetricKind::Histogram,
        "Time from a request's arrival to its response head, by front and operation.",
    ),
    (
        WATCH_STREAMS,
        MetricKind::Gauge,
        "Open WatchCalls and WatchDevices streams.",
    ),
    (
        WATCHERS_LAGGED,
        MetricKind::Counter,
        "Watch streams ended because the watcher fell too far behind.",
    ),
    (
        EVENTS_COMMITTED,
        MetricKind::Counter,
        "Events committed to the core's numbered event stream.",
    ),
    (
        COMETD_SESSIONS_OPENED,
        MetricKind::Counter,
        "CometD sessions opened, by transport of the handshake.",
    ),
    (COMETD_SESSIONS, MetricKind::Gauge, "Live CometD sessions."),
    (
        COMETD_CONNECTS_HELD,
        MetricKind::Gauge,
        "CometD /meta/connect messages held open now, by transport.",
    ),
    (
        COMETD_SESSIONS_ENDED,
        MetricKind::Counter,
        "CometD sessions ended, by reason (queue limit reached: dropped at the queue bound).",
    ),
    (
        AUTH_FAILURES,
        MetricKind::Counter,
        "Sign-in attempts refused: invalid credentials or throttled.",
    ),
    (
        UPSTREAM_UP,
        MetricKind::Gauge,
        "Bridge mode: whether the upstream GWS answers (1) or not (0).",
    ),
    (
        UPSTREAM_REQUEST_DURATION,
        MetricKind::Histogram,
        "Bridge mode: duration of requests to the upstream GWS, by outcome.",
    ),
    (
        READY,
        MetricKind::Gauge,
        "Whether the gateway is ready to take traffic (1) or not (0).",
    ),
    (
        REQUESTS_SHED,
        MetricKind::Counter,
        "Requests refused at once at a bound on requests in flight, by bound.",
    ),
    (
        CONNECTIONS_REFUSED,
        MetricKind::Counter,
        "Connections closed at once because their listener was full.",
    ),
    (
        CLUSTER_ENGINE_UP,
        MetricKind::Gauge,
        "Cluster mode: whether the shared log's engine (Redis) answers (1) or not (0).",
    ),
    (
        CLUSTER_LEASES,
        MetricKind::Gauge,
        "Cluster mode: users whose upstream session this instance owns (leases held).",
    ),
    (
        CLUSTER_LEASE_CHANGES,
        MetricKind::Counter,
        "Cluster mode: user leases acquired, released (hand-off) and lost (expired or fenced), by change.",
    ),
    (
        CLUSTER_APPENDS,
        MetricKind::Counter,
        "Cluster mode: events this instance appended to the shared log, by result (ok, fenced: refused for a lost lease, failed).",
    ),
    (
        CLUSTER_LOG_RESETS,
        MetricKind::Counter,
        "Cluster mode: times this instance's history started over from the shared log (watchers resync), by reason.",
    ),
    (
        CLUSTER_APPLIED,
        MetricKind::Gauge,
        "Cluster mode: the last shared-log sequence this instance applied (compare instances for tail lag).",
    ),
];

/// The bucket bounds of every `_seconds` histogram: 100 µs to 10 s, roughly ×2.5 apart,
/// which covers an in-memory operation (tens of µs) up to a slow upstream.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The label values of the labelled counters and gauges whose sets are known up front: each
/// series starts at zero when the recorder is installed, so that a dashboard's `rate()` and
/// an alert see it before its first event.
pub const INITIAL_SERIES: &[(&str, &str, &[&str])] = &[
    (WATCH_STREAMS, "rpc", WATCH_RPCS),
    (WATCHERS_LAGGED, "rpc", WATCH_RPCS),
    (AUTH_FAILURES, "reason", &["invalid", "throttled"]),
    (REQUESTS_SHED, "bound", &["listener", "connection"]),
    (
        COMETD_SESSIONS_OPENED,
        "transport",
        &["long-polling", "websocket"],
    ),
    (
        COMETD_CONNECTS_HELD,
        "transport",
        &["long-polling", "websocket"],
    ),
    (
        COMETD_SESSIONS_ENDED,
        "reason",
        &[
            "disconnected",
            "expired",
            "queue limit reached",
            "events lost",
            "http session ended",
            "shutdown",
        ],
    ),
];

/// The `rpc` label values of the watch metrics.
pub const WATCH_RPCS: &[&str] = &["WatchCalls", "WatchDevices"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_starts_for_every_cometd_removal_reason() {
        use crate::gws::cometd::session::BayeuxRemoval as R;
        let reasons = INITIAL_SERIES
            .iter()
            .find(|s| s.0 == COMETD_SESSIONS_ENDED)
            .unwrap()
            .2;
        let all = [
            R::Disconnected,
            R::Expired,
            R::QueueFull,
            R::EventsLost,
            R::LoggedOut,
            R::Shutdown,
        ];
        assert_eq!(reasons, all.map(R::as_str));
    }

    #[test]
    fn names_follow_the_prometheus_conventions() {
        for &(name, kind, _) in METRICS {
            assert!(name.starts_with("voice_gateway_"), "{name}");
            match kind {
                MetricKind::Counter => assert!(name.ends_with("_total"), "{name}"),
                MetricKind::Histogram => assert!(name.ends_with("_seconds"), "{name}"),
                MetricKind::Gauge => assert!(!name.ends_with("_total"), "{name}"),
            }
        }
    }

    /// Returns the metric names a PromQL expression reads.
    fn metric_names(expr: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut rest = expr;
        while let Some(at) = rest.find("voice_gateway_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            found.push(name);
        }
        found
    }

    #[test]
    fn the_grafana_dashboard_parses_and_queries_only_and_all_our_metrics() {
        let text = include_str!("../../ops/grafana-dashboard.json");
        let dashboard: serde_json::Value = serde_json::from_str(text).unwrap();
        let mut queried = std::collections::BTreeSet::new();
        let panels = dashboard["panels"].as_array().unwrap();
        for panel in panels {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                for name in metric_names(expr) {
                    let known = METRICS.iter().find(|&&(metric, kind, _)| {
                        metric == name
                            || (kind == MetricKind::Histogram
                                && ["_bucket", "_sum", "_count"]
                                    .iter()
                                    .any(|suffix| name == format!("{metric}{suffix}")))
                    });
                    let (metric, ..) = known.unwrap_or_else(|| {
                        panic!("panel {:?} queries unknown metric {name}", panel["title"])
                    });
                    queried.insert(*metric);
                }
            }
        }
        let all: std::collections::BTreeSet<&str> = METRICS.iter().map(|m| m.0).collect();
        assert_eq!(queried, all, "every metric has a panel");
    }
}
