//! The `voice-bench` binary: runs the whole suite (`all`) and writes BENCHMARKS.md, or
//! serves one of the baselines (used by the suite itself as child processes).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use voice_bench::figures::{Bench, GatewayCommand};
use voice_bench::plan::Plan;
use voice_bench::process::{exe_dir, raise_open_file_limit};
use voice_bench::report::{Machine, Report};
use voice_bench::servers;
use voice_gateway::upstream::bayeux::ConnectionType;

/// The same allocator as the gateway binary, so the baselines served from this binary (bare
/// tonic, bare axum) are compared on equal terms.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The benchmark suite of voice-gateway.
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs every figure and writes the report.
    All {
        /// Tiny counts and durations (the test suite's smoke run).
        #[arg(long)]
        smoke: bool,
        /// Where to write the Markdown report.
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
        /// Where to write the JSON report (default: `WORK/bench-results.json`).
        #[arg(long)]
        json: Option<PathBuf>,
        /// The gateway binary (default: `voice-gateway` next to this binary); with
        /// `--in-process` the gateway runs from this binary's `gateway` subcommand.
        #[arg(long)]
        gateway_bin: Option<PathBuf>,
        /// Serve the gateway from this binary (the library's `run`), not `voice-gateway`.
        #[arg(long)]
        in_process: bool,
        /// Work directory (generated configuration, logs).
        #[arg(long, default_value = "target/bench")]
        work: PathBuf,
        /// The Faye baseline's directory (`npm ci` installs it there).
        #[arg(long, default_value = "bench/faye")]
        faye_dir: PathBuf,
        /// Run only these figure groups: `unary` (1 and 2), `fanout` (3 and 4), `faye`
        /// (3 against Faye and 4's CometD row; needs `fanout`), `startup` (5), `flood` (6),
        /// `bridge` (7), `chaos` (8), `tools` (1 and 2 with h2load and wrk), `moonshot` (9),
        /// `overload` (10), `cluster` (11, needs `redis-server`).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Where to write the SVG charts (default: `bench/charts` beside the report).
        #[arg(long)]
        charts: Option<PathBuf>,
        /// Hand-written profile findings copied into the report.
        #[arg(long, default_value = "bench/FINDINGS.md")]
        findings: PathBuf,
        /// Override the number of WatchCalls streams of figures 3 and 4.
        #[arg(long)]
        streams: Option<usize>,
        /// Override the number of CometD sessions of figures 3 and 4.
        #[arg(long)]
        sessions: Option<usize>,
        /// The command line to print in the report.
        #[arg(long, default_value = "bench/run")]
        command_line: String,
        /// Figure 7: how U's notifications reach B (B's `upstream.transport`),
        /// `websocket` or `long-polling`.
        #[arg(long, default_value = "websocket", value_parser = parse_transport)]
        bridge_transport: ConnectionType,
        /// Figure 10: the gateway's `server.max_requests` (a multiple of the saturating
        /// load's 16 connections; default: the gateway's default).
        #[arg(long)]
        overload_max_requests: Option<usize>,
    },
    /// Serves the bare tonic baseline.
    BareTonic {
        /// Listen address.
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Serves the bare axum baseline.
    BareAxum {
        /// Listen address.
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Sends a fixed number of figure 1 or 2 requests to a running server, or figure 1's
    /// operations to CometD sessions that must receive their messages (figure 3 against
    /// Faye), for instruction counts: run the server under callgrind, zero its counters
    /// with `--before`, dump them with `--after`.
    Count {
        /// What the server is.
        #[arg(long, value_enum)]
        target: voice_bench::count::Target,
        /// Its listener (the gateway's gRPC listener for every gateway target).
        #[arg(long)]
        addr: SocketAddr,
        /// The gateway's HTTP listener (targets `gateway-json` and `gateway-cometd`).
        #[arg(long)]
        http: Option<SocketAddr>,
        /// Measured requests.
        #[arg(long, default_value_t = 20_000)]
        requests: usize,
        /// Connections.
        #[arg(long, default_value_t = 50)]
        connections: usize,
        /// Streams in flight per connection (gRPC).
        #[arg(long, default_value_t = 10)]
        in_flight: usize,
        /// Warm-up requests per slot.
        #[arg(long, default_value_t = 4)]
        warmup: usize,
        /// WatchCalls streams held open on the gateway.
        #[arg(long, default_value_t = 100)]
        watchers: usize,
        /// Shell command run after the warm-up.
        #[arg(long)]
        before: Option<String>,
        /// Shell command run after the measured requests.
        #[arg(long)]
        after: Option<String>,
        /// The gateway's admin listener (target `gateway-bridge`: checks that it committed
        /// two events per measured operation).
        #[arg(long)]
        admin: Option<SocketAddr>,
    },
    /// Serves the gateway library in this process (for the smoke run).
    Gateway {
        /// gRPC listen address.
        #[arg(long)]
        grpc_listen: SocketAddr,
        /// HTTP listen address.
        #[arg(long)]
        http_listen: SocketAddr,
        /// Configuration file (default: the built-in demo).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Bridge mode: the upstream GWS, as the gateway binary's `--upstream`.
        #[arg(long)]
        upstream: Option<String>,
        /// The admin listener (metrics on), or `none` (metrics off), as the gateway
        /// binary's `--admin-listen`.
        #[arg(long, default_value = "none")]
        admin_listen: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::BareTonic { listen } => servers::bare_tonic(listen).await,
        Command::BareAxum { listen } => servers::bare_axum(listen).await,
        Command::Count {
            target,
            addr,
            http,
            requests,
            connections,
            in_flight,
            warmup,
            watchers,
            before,
            after,
            admin,
        } => {
            let ok = voice_bench::count::run(voice_bench::count::CountShape {
                target,
                addr,
                http,
                connections,
                in_flight,
                requests,
                warmup_per_slot: warmup,
                watchers,
                before,
                after,
                admin,
            })
            .await?;
            println!("{ok}");
            Ok(())
        }
        Command::Gateway {
            grpc_listen,
            http_listen,
            config,
            upstream,
            admin_listen,
        } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .init();
            let admin = match admin_listen.as_str() {
                "none" => None,
                addr => Some(addr.parse()?),
            };
            servers::gateway(grpc_listen, http_listen, config.as_deref(), upstream, admin).await
        }
        Command::All {
            smoke,
            out,
            json,
            gateway_bin,
            in_process,
            work,
            command_line,
            only,
            faye_dir,
            streams,
            sessions,
            findings,
            charts,
            bridge_transport,
            overload_max_requests,
        } => {
            let wanted = |group: &str| only.is_empty() || only.iter().any(|o| o == group);
            let began = Instant::now();
            let open_files = raise_open_file_limit();
            let bench_exe = std::env::current_exe()?;
            let gateway = if in_process {
                GatewayCommand {
                    program: bench_exe.clone(),
                    prefix: vec!["gateway".into()],
                    is_binary: false,
                }
            } else {
                let program = match gateway_bin {
                    Some(path) => path,
                    None => exe_dir()?.join("voice-gateway"),
                };
                anyhow::ensure!(
                    program.exists(),
                    "no gateway binary at {}",
                    program.display()
                );
                GatewayCommand {
                    program,
                    prefix: Vec::new(),
                    is_binary: true,
                }
            };
            let mut plan = if smoke { Plan::smoke() } else { Plan::full() };
            plan.streams = streams.unwrap_or(plan.streams);
            plan.sessions = sessions.unwrap_or(plan.sessions);
            plan.bridge.transport = bridge_transport;
            if let Some(bound) = overload_max_requests {
                let conns = plan.overload.saturation.connections;
                anyhow::ensure!(
                    bound >= conns && bound % conns == 0,
                    "--overload-max-requests must be a multiple of {conns}"
                );
                plan.overload.saturation.in_flight = bound / conns;
            }
            let json = json.unwrap_or_else(|| work.join("bench-results.json"));
            let report_dir = out.parent().unwrap_or(Path::new("")).to_path_buf();
            let charts_dir = charts.unwrap_or_else(|| report_dir.join("bench/charts"));
            let mut bench = Bench::new(plan, gateway, bench_exe, work)?;
            bench.faye_dir = Some(faye_dir);
            if wanted("unary") {
                eprintln!("voice-bench: figures 1 and 2 (gRPC unary, legacy JSON)");
                bench.unary_and_json().await?;
            }
            if wanted("tools") {
                eprintln!("voice-bench: figures 1 and 2 with h2load and wrk");
                bench.crosscheck().await?;
            }
            if wanted("fanout") {
                eprintln!("voice-bench: figures 3 and 4 (fan-out, memory)");
                bench.fanout().await?;
            }
            if wanted("faye") {
                eprintln!("voice-bench: figure 3 against Faye, figure 4 (CometD memory)");
                bench.cometd_vs_faye().await?;
            }
            if wanted("startup") {
                eprintln!("voice-bench: figure 5 (start-up)");
                bench.startup().await?;
            }
            if wanted("flood") {
                eprintln!("voice-bench: figure 6 (password flood)");
                bench.password_flood().await?;
            }
            if wanted("moonshot") {
                eprintln!("voice-bench: figure 9 (moonshot)");
                bench.moonshot(open_files).await?;
            }
            if wanted("bridge") {
                eprintln!("voice-bench: figure 7 (bridge mode)");
                bench.bridge().await?;
            }
            if wanted("chaos") {
                eprintln!("voice-bench: figure 8 (chaos resume)");
                bench.chaos().await?;
            }
            if wanted("overload") {
                eprintln!("voice-bench: figure 10 (overload)");
                bench.overload().await?;
            }
            if wanted("cluster") {
                eprintln!("voice-bench: figure 11 (cluster mode)");
                bench.cluster().await?;
            }
            let report = Report {
                command: command_line,
                smoke,
                seconds: began.elapsed().as_secs_f64(),
                machine: Machine::probe(
                    open_files,
                    // A smoke run only shows the probe works; the full run reads the machine.
                    Duration::from_millis(if smoke { 300 } else { 3_000 }),
                ),
                rows: bench.rows,
                missing: bench.missing,
                notes: bench.notes,
                findings: std::fs::read_to_string(&findings).unwrap_or_default(),
                charts_dir: link_to(&report_dir, &charts_dir),
                charts: bench.charts,
            };
            for chart in &report.charts {
                voice_bench::charts::draw(chart, &charts_dir)?;
            }
            std::fs::write(&out, report.to_markdown())
                .with_context(|| format!("cannot write {}", out.display()))?;
            std::fs::write(&json, serde_json::to_string_pretty(&report)?)?;
            eprintln!(
                "voice-bench: wrote {} and {}",
                out.display(),
                json.display()
            );
            Ok(())
        }
    }
}

/// Returns how a report in `from` links to `to`: relative when `to` lies under `from`,
/// otherwise `to` as given.
fn link_to(from: &Path, to: &Path) -> String {
    let relative = if from.as_os_str().is_empty() {
        Some(to)
    } else {
        to.strip_prefix(from).ok()
    };
    relative.unwrap_or(to).display().to_string()
}

/// Reads `--bridge-transport`.
fn parse_transport(text: &str) -> Result<ConnectionType, String> {
    match text {
        "websocket" => Ok(ConnectionType::WebSocket),
        "long-polling" => Ok(ConnectionType::LongPolling),
        other => Err(format!("{other:?} is neither websocket nor long-polling")),
    }
}
