//! Figure 7's paced load (Start/StopCallRecording on 50 calls, open loop) against one
//! embedded gateway, with or without subscribers, to tell the gateway's own latency tail
//! from the machine's (bench/FINDINGS.md, session 10):
//!
//! ```text
//! voice-gateway --grpc-listen 127.0.0.1:29061 --http-listen 127.0.0.1:29080 \
//!     --config target/bench/bench-gateway.toml &
//! cargo run --release -p voice-bench --example paced_subscribers -- \
//!     127.0.0.1:29061 GATEWAY_PID [none|watchers|cometd=127.0.0.1:29080] [OPS_PER_SEC]
//! ```
//!
//! `target/bench/bench-gateway.toml` (the bench agents with clear passwords) is written by
//! any `voice-bench all` run, `bench/run` included, into its work directory. `watchers`
//! holds 100 WatchCalls streams, `cometd=ADDR` 100 long-polling CometD sessions (the agents
//! of the 50 calls) in this process while three rounds of 5 s run.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use voice_bench::cometd::{Flavor, SessionFleet};
use voice_bench::driver::SendTimes;
use voice_bench::watchers::WatchFleet;
use voice_bench::{bridge, paced_load, setup};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage =
        "usage: paced_subscribers GRPC_ADDR GATEWAY_PID [none|watchers|cometd=ADDR] [OPS_PER_SEC]";
    let addr: SocketAddr = args.first().context(usage)?.parse().context(usage)?;
    let pid: u32 = args.get(1).context(usage)?.parse().context(usage)?;
    let subscribers = args.get(2).map_or("none", String::as_str);
    let rate: f64 = args
        .get(3)
        .map_or(Ok(1000.0), |r| r.parse())
        .context(usage)?;
    let url = format!("http://{addr}");
    let calls = setup::establish_calls(&url, 50).await?;
    let plans = bridge::call_plans(&calls);
    let agents = 0..2 * calls.len();
    let (_watchers, _sessions) = match subscribers {
        "none" => (None, None),
        "watchers" => (Some(WatchFleet::open(&url, agents, 50).await?), None),
        other => {
            let http: SocketAddr = other
                .strip_prefix("cometd=")
                .context(usage)?
                .parse()
                .context(usage)?;
            let flavor = Flavor::Gateway(SendTimes::default());
            (None, Some(SessionFleet::open(http, agents, flavor).await?))
        }
    };
    for _ in 0..3 {
        let shape = paced_load::PacedShape {
            ops_per_sec: rate,
            connections: 4,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(5),
        };
        let r = paced_load::run(addr, &[pid], shape, &plans).await?;
        println!(
            "{} sent, {} ok, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; gateway CPU {:.0} µs/op, run-queue wait {:.0} ms/s; machine {:.0} % busy; {}",
            r.sent,
            r.ok,
            r.latency.p50_ms,
            r.latency.p99_ms,
            r.latency.max_ms,
            r.cpu_us_per_op
                .first()
                .copied()
                .flatten()
                .unwrap_or(f64::NAN),
            r.run_queue_ms_per_s
                .first()
                .copied()
                .flatten()
                .unwrap_or(f64::NAN),
            r.machine_busy.unwrap_or(f64::NAN) * 100.0,
            r.steadiness.describe()
        );
    }
    Ok(())
}
