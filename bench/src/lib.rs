//! voice-bench: the benchmark suite of voice-gateway (issue 6).
//!
//! Every figure is a ratio against a baseline measured in the same run, because the
//! machine is shared and noisy. Servers run as child processes (the `voice-gateway`
//! binary; the bare baselines from this crate's own binary); the load generators and
//! clients run in the bench process and talk to 127.0.0.1 only, bounded in count and time.
//!
//! # Layout
//! - [`servers`]: the baselines (bare tonic, bare axum) and an in-process gateway for the
//!   smoke run; [`process`]: child processes, start-up timing, RSS, the open-file limit.
//! - [`grpc_load`] and [`http_load`]: closed-loop load generators (HTTP/2 gRPC unary,
//!   HTTP/1.1 JSON); [`watchers`]: many WatchCalls streams with commit-to-receipt latency;
//!   [`driver`]: the fixed-rate event driver; [`paced_load`]: an open-loop (fixed-rate) gRPC
//!   unary load generator.
//! - [`crosscheck`]: figures 1 and 2 again with h2load and wrk ([`tools`]); [`charts`]: the
//!   report's SVG pictures, from data the figures collect ([`figure_charts`]).
//! - [`moonshot`]: figure 9, one event to 100,000 subscribers, with its lean clients in
//!   [`moonshot_clients`] and source addresses from [`loopback`].
//! - [`count`]: a fixed number of figure 1 or 2 requests, for instruction counts under
//!   callgrind.
//! - [`setup`]: the generated configuration and established calls; [`plan`]: counts and
//!   durations; [`figures`]: the figures; [`report`]: BENCHMARKS.md.
//! - [`flood`]: figure 6, a password flood against an argon2 user (issue 10), with its
//!   clients in [`flood_load`] (the RSS sampler is [`process::sample_peaks`]);
//!   [`bridge`]: figure 7 (bridge mode, two gateways).
//! - [`chaos`]: figure 8, chaos resume (issue 14): watchers and CometD clients whose
//!   connections die at random, checked for lost and duplicated events; the test suite's
//!   `tests/chaos_resume.rs` runs the same module against an in-process gateway.
//! - [`overload`]: figure 10, saturation then three times its rate against the load
//!   shedding of `[server]` (issue 14), with its open-loop load in [`overload_load`].
//! - [`cluster`]: figure 11, cluster mode (issue 16): three bridge instances on one
//!   `redis-server`, end-to-end latency across instances ([`cluster_load`], its watchers
//!   in [`cluster_watch`]), takeover after SIGKILL and SIGTERM and the Redis memory of a
//!   full log ([`cluster_takeover`]), with its processes in [`cluster_nodes`] and its rows
//!   in [`cluster_report`].

pub mod bridge;
pub mod canary;
pub mod chaos;
pub mod charts;
pub mod cluster;
pub mod cluster_load;
pub mod cluster_nodes;
pub mod cluster_report;
pub mod cluster_takeover;
pub mod cluster_watch;
pub mod cometd;
pub mod count;
pub mod crosscheck;
pub mod driver;
pub mod figure_charts;
pub mod figures;
pub mod flood;
pub mod flood_load;
pub mod grpc_load;
pub mod http_load;
pub mod http_util;
pub mod loopback;
pub mod moonshot;
pub mod moonshot_clients;
pub mod overload;
pub mod overload_load;
pub mod paced_load;
pub mod plan;
pub mod process;
pub mod report;
pub mod servers;
pub mod setup;
pub mod stats;
pub mod tools;
pub mod watchers;
