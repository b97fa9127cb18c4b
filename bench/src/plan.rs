//! The counts and durations of a run: the full bench, or the smoke run of the test suite.

use std::time::Duration;

use crate::bridge::BridgePlan;
use crate::chaos::ChaosPlan;
use crate::cluster::ClusterPlan;
use crate::grpc_load::LoadShape;
use crate::moonshot::MoonshotPlan;
use crate::overload::OverloadPlan;
use crate::paced_load::PacedShape;
use voice_gateway::upstream::bayeux::ConnectionType;

/// Counts and durations of every figure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Agents in the generated configuration.
    pub users: usize,
    /// Figure 1: connections, streams per connection, warm-up, duration.
    pub unary: LoadShape,
    /// Figure 1 and 2: rounds (baseline, then gateway, alternating); medians are reported.
    pub rounds: usize,
    /// Figure 1: WatchCalls streams held open during the gateway runs.
    pub unary_watchers: usize,
    /// Figure 2: connections (HTTP/1.1 keep-alive, one request in flight each).
    pub json: LoadShape,
    /// Figure 3 and 4: WatchCalls streams.
    pub streams: usize,
    /// Figure 3 and 4: CometD long-poll sessions.
    pub sessions: usize,
    /// Figure 3 and 4: streams per HTTP/2 connection.
    pub streams_per_connection: usize,
    /// Figure 3: call events per second.
    pub events_per_sec: f64,
    /// Figure 3: calls the driver cycles through.
    pub driven_calls: usize,
    /// Figure 3: driving time.
    pub fanout_duration: Duration,
    /// Figure 3 (Faye comparison): in-flight publishes of the saturating driver.
    pub saturation_in_flight: usize,
    /// Figure 3 (Faye comparison): saturating time.
    pub saturation_duration: Duration,
    /// Figure 5: start-ups measured (median reported).
    pub startups: usize,
    /// Settling time before an RSS reading.
    pub settle: Duration,
    /// Figure 7: calls and the open-loop load, in `rounds` rounds.
    pub bridge: BridgePlan,
    /// Figure 6: the password flood.
    pub flood: FloodShape,
    /// Figure 9: the moonshot.
    pub moonshot: MoonshotPlan,
    /// Figure 8: the chaos resume run.
    pub chaos: ChaosPlan,
    /// Figure 10: saturation, then overload.
    pub overload: OverloadPlan,
    /// Figure 11: cluster mode.
    pub cluster: ClusterPlan,
}

/// The shape of the password flood (figure 6, issue 10).
#[derive(Debug, Clone, Copy)]
pub struct FloodShape {
    /// Flooding connections, each sending wrong passwords back to back.
    pub connections: usize,
    /// Flooding time.
    pub duration: Duration,
    /// Requests per second of the legitimate client during the flood.
    pub legit_rate: f64,
    /// When the fresh login is sent, counted from the flood's start.
    pub fresh_login_at: Duration,
    /// How long the gateway's RSS is still sampled after the flood.
    pub after: Duration,
    /// Sampling period of the gateway's RSS and threads.
    pub sample_every: Duration,
    /// The bench's own safety: the flood stops and the gateway is killed when its RSS
    /// passes this many KiB.
    pub rss_cap_kib: u64,
}

impl Plan {
    /// The full bench (about ten minutes).
    pub fn full() -> Self {
        Self {
            users: 10_000,
            unary: LoadShape {
                connections: 50,
                in_flight: 10,
                warmup: Duration::from_secs(1),
                duration: Duration::from_secs(5),
            },
            rounds: 3,
            unary_watchers: 100,
            json: LoadShape {
                connections: 50,
                in_flight: 1,
                warmup: Duration::from_secs(1),
                duration: Duration::from_secs(5),
            },
            streams: 10_000,
            sessions: 10_000,
            streams_per_connection: 100,
            events_per_sec: 100.0,
            driven_calls: 500,
            fanout_duration: Duration::from_secs(10),
            saturation_in_flight: 64,
            saturation_duration: Duration::from_secs(5),
            startups: 5,
            settle: Duration::from_secs(2),
            flood: FloodShape {
                connections: 200,
                duration: Duration::from_secs(10),
                legit_rate: 50.0,
                fresh_login_at: Duration::from_secs(5),
                after: Duration::from_secs(2),
                sample_every: Duration::from_millis(50),
                rss_cap_kib: 2 << 20,
            },
            bridge: BridgePlan {
                calls: 50,
                load: PacedShape {
                    ops_per_sec: 1_000.0,
                    connections: 4,
                    warmup: Duration::from_secs(1),
                    duration: Duration::from_secs(5),
                },
                transport: ConnectionType::WebSocket,
            },
            moonshot: MoonshotPlan::bench(),
            chaos: ChaosPlan::bench(),
            overload: OverloadPlan {
                calls: 64,
                // 16 × 64 = 1024: the default `server.max_requests`.
                saturation: LoadShape {
                    connections: 16,
                    in_flight: 64,
                    warmup: Duration::from_secs(1),
                    duration: Duration::from_secs(5),
                },
                step: (Duration::from_millis(500), Duration::from_secs(2)),
                growth: 1.25,
                max_steps: 10,
                probes: 500,
                factor: 3.0,
                // A client keeps at most `server.http2_max_streams` (128) calls in flight
                // on a connection: with 16, three times the saturating rate could not be
                // put on the wire (bench/FINDINGS.md, "Overload (figure 10)").
                connections: 48,
                warmup: Duration::from_secs(1),
                duration: Duration::from_secs(5),
                sample_every: Duration::from_millis(50),
                rss_cap_kib: 2 << 20,
            },
            cluster: ClusterPlan {
                calls: 50,
                events_per_sec: 500.0,
                warmup: Duration::from_secs(2),
                duration: Duration::from_secs(5),
                connections: 4,
                trials: 5,
                lease_ttl_ms: voice_gateway::cluster::DEFAULT_LEASE_TTL_MS,
                log_entries: 100_000,
            },
        }
    }

    /// The smoke run: tiny counts, a few seconds.
    pub fn smoke() -> Self {
        Self {
            users: 64,
            unary: LoadShape {
                connections: 2,
                in_flight: 2,
                warmup: Duration::from_millis(100),
                duration: Duration::from_millis(500),
            },
            rounds: 1,
            unary_watchers: 4,
            json: LoadShape {
                connections: 2,
                in_flight: 1,
                warmup: Duration::from_millis(100),
                duration: Duration::from_millis(500),
            },
            streams: 20,
            sessions: 10,
            streams_per_connection: 10,
            events_per_sec: 40.0,
            driven_calls: 8,
            fanout_duration: Duration::from_secs(1),
            saturation_in_flight: 4,
            saturation_duration: Duration::from_millis(500),
            startups: 1,
            settle: Duration::from_millis(200),
            flood: FloodShape {
                connections: 4,
                duration: Duration::from_secs(1),
                legit_rate: 50.0,
                fresh_login_at: Duration::from_millis(500),
                after: Duration::from_millis(300),
                sample_every: Duration::from_millis(50),
                rss_cap_kib: 1 << 20,
            },
            bridge: BridgePlan {
                calls: 4,
                load: PacedShape {
                    ops_per_sec: 200.0,
                    connections: 2,
                    warmup: Duration::from_millis(100),
                    duration: Duration::from_millis(500),
                },
                transport: ConnectionType::WebSocket,
            },
            moonshot: MoonshotPlan::smoke(),
            chaos: ChaosPlan::smoke(),
            overload: OverloadPlan {
                calls: 4,
                saturation: LoadShape {
                    connections: 2,
                    in_flight: 4,
                    warmup: Duration::from_millis(100),
                    duration: Duration::from_millis(500),
                },
                step: (Duration::from_millis(100), Duration::from_millis(300)),
                growth: 1.5,
                max_steps: 6,
                probes: 50,
                factor: 3.0,
                connections: 2,
                warmup: Duration::from_millis(100),
                duration: Duration::from_millis(500),
                sample_every: Duration::from_millis(50),
                rss_cap_kib: 1 << 20,
            },
            // A short lease, so that the SIGKILL trial takes two seconds, not four; not as
            // short as the chaos test's 600 ms: a debug build on a busy machine must not
            // miss B's renewals during the rounds.
            cluster: ClusterPlan {
                calls: 4,
                events_per_sec: 100.0,
                warmup: Duration::from_millis(300),
                duration: Duration::from_secs(1),
                connections: 2,
                trials: 1,
                lease_ttl_ms: 1_500,
                log_entries: 1_000,
            },
        }
    }
}
