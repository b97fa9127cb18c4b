//! The figures of issue 6, each measured against its baseline in the same run:
//! 1. gRPC unary, 2. legacy JSON, 3. fan-out, 4. memory per idle stream or session,
//! 5. start-up. Servers run as child processes; the load comes from this process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use voice_gateway::grpc::pb;
use voice_gateway::grpc::pb::call_service_client::CallServiceClient;

use crate::cometd::{Flavor, SessionFleet};
use crate::grpc_load::{self, LoadResult, SlotPlan, grpc_frame};
use crate::plan::Plan;
use crate::process::{Server, free_addr};
use crate::report::Row;
use crate::setup::{self, EstablishedCall, as_agent, basic_auth};
use crate::stats::median;
use crate::watchers::WatchFleet;
use crate::{driver, http_load, http_util, servers};

/// How to start the gateway: a program and the arguments before the listen flags.
#[derive(Debug, Clone)]
pub struct GatewayCommand {
    /// The program (`voice-gateway`, or `voice-bench` with `gateway`).
    pub program: PathBuf,
    /// Leading arguments.
    pub prefix: Vec<String>,
    /// Whether this is the `voice-gateway` binary itself.
    pub is_binary: bool,
}

/// A running gateway.
#[derive(Debug)]
pub struct RunningGateway {
    /// The process.
    pub server: Server,
    /// The gRPC listener.
    pub grpc: SocketAddr,
    /// The HTTP listener.
    pub http: SocketAddr,
    /// Time from exec to both listeners accepting.
    pub startup: Duration,
}

impl RunningGateway {
    /// Returns `http://<grpc>`.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }
}

/// The bench: what to run and where, and the rows gathered so far.
#[derive(Debug)]
pub struct Bench {
    /// Counts and durations.
    pub plan: Plan,
    /// How to start the gateway.
    pub gateway: GatewayCommand,
    /// The bench binary (serves the baselines).
    pub bench_exe: PathBuf,
    /// Work directory: generated configuration, logs.
    pub work: PathBuf,
    /// The generated configuration with `plan.users` agents.
    pub config: PathBuf,
    /// Table rows.
    pub rows: Vec<Row>,
    /// Figures not measured, and why.
    pub missing: Vec<String>,
    /// Method notes and findings.
    pub notes: Vec<String>,
    /// The report's charts, drawn at the end of the run.
    pub charts: Vec<crate::charts::Chart>,
    /// The Faye baseline's directory (with `server.js` and `node_modules`).
    pub faye_dir: Option<PathBuf>,
    /// Figure 4's CometD reading: bytes per session, RSS before and after (KiB).
    session_memory: Option<(f64, u64, u64)>,
    /// A gateway CometD message's data, the payload of Faye's messages.
    payload: Option<serde_json::Value>,
}

fn kib(bytes: f64) -> String {
    format!("{:.2} KiB", bytes / 1024.0)
}

fn rps(result: &LoadResult) -> String {
    let cpu = result
        .server_cpu_us
        .map(|us| format!(", server CPU {us:.1} µs/req"))
        .unwrap_or_default();
    format!(
        "{:.0} req/s (p50 {:.2} ms, p99 {:.2} ms{cpu})",
        result.rps, result.latency.p50_ms, result.latency.p99_ms
    )
}

impl Bench {
    /// Prepares the work directory and the generated configuration.
    pub fn new(
        plan: Plan,
        gateway: GatewayCommand,
        bench_exe: PathBuf,
        work: PathBuf,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&work)?;
        let config = work.join("bench-gateway.toml");
        std::fs::write(&config, setup::config_toml(plan.users, ""))?;
        Ok(Self {
            plan,
            gateway,
            bench_exe,
            work,
            config,
            rows: Vec::new(),
            missing: Vec::new(),
            notes: Vec::new(),
            charts: Vec::new(),
            faye_dir: None,
            session_memory: None,
            payload: None,
        })
    }

    fn log_dir(&self) -> PathBuf {
        self.work.join("logs")
    }

    /// Starts a gateway with `config` (the built-in demo when `None`), metrics on (its
    /// admin listener on a port of its own), as the gateway runs by default.
    pub fn spawn_gateway(
        &self,
        name: &str,
        config: Option<&Path>,
    ) -> anyhow::Result<RunningGateway> {
        self.spawn_gateway_with(name, config, true)
    }

    /// Starts a gateway with `config`, with metrics on or off (`--admin-listen none`).
    pub fn spawn_gateway_with(
        &self,
        name: &str,
        config: Option<&Path>,
        metrics: bool,
    ) -> anyhow::Result<RunningGateway> {
        let mut extra = Vec::new();
        if let Some(config) = config {
            extra.extend(["--config".into(), config.display().to_string()]);
        }
        self.launch_gateway(name, &extra, metrics)
    }

    /// Starts the gateway binary on listeners of its own (and an admin listener when
    /// `metrics`), with `extra` arguments, and waits until it accepts connections.
    pub(crate) fn launch_gateway(
        &self,
        name: &str,
        extra: &[String],
        metrics: bool,
    ) -> anyhow::Result<RunningGateway> {
        let (grpc, http) = (free_addr()?, free_addr()?);
        let admin = if metrics {
            free_addr()?.to_string()
        } else {
            "none".into()
        };
        let mut args = self.gateway.prefix.clone();
        args.extend([
            "--grpc-listen".into(),
            grpc.to_string(),
            "--http-listen".into(),
            http.to_string(),
            "--admin-listen".into(),
            admin,
        ]);
        args.extend_from_slice(extra);
        let mut server = Server::spawn(
            name,
            &self.gateway.program,
            &args,
            &[("RUST_LOG", "info")],
            &self.log_dir(),
        )?;
        let startup = server.wait_listening(&[grpc, http], Duration::from_secs(60))?;
        Ok(RunningGateway {
            server,
            grpc,
            http,
            startup,
        })
    }

    /// Starts a baseline server of the bench binary (`bare-tonic` or `bare-axum`).
    pub fn spawn_baseline(&self, kind: &str) -> anyhow::Result<(Server, SocketAddr, Duration)> {
        let addr = free_addr()?;
        let args = vec![kind.to_owned(), "--listen".into(), addr.to_string()];
        let mut server = Server::spawn(kind, &self.bench_exe, &args, &[], &self.log_dir())?;
        let startup = server.wait_listening(&[addr], Duration::from_secs(30))?;
        Ok((server, addr, startup))
    }

    /// Figure 1 and 2 share one gateway: calls, 100 watchers, then both loads.
    pub async fn unary_and_json(&mut self) -> anyhow::Result<()> {
        let plan = self.plan.clone();
        let gw = self.spawn_gateway("gateway-unary", Some(&self.config.clone()))?;
        let slots = plan.unary.connections * plan.unary.in_flight;
        let calls =
            setup::establish_calls(&gw.grpc_url(), slots.max(plan.json.connections)).await?;
        let fleet = WatchFleet::open(&gw.grpc_url(), 0..plan.unary_watchers, 50).await?;
        self.figure_unary(&gw, &calls).await?;
        self.figure_metrics_cost(&gw, &calls).await?;
        let watched = fleet.close().await?;
        self.notes.push(format!(
            "Figure 1: the {} WatchCalls streams open during the gateway runs received {} events; {} ended with an error{}.",
            plan.unary_watchers,
            watched.all_events,
            watched.failed_streams,
            watched.first_error.map(|e| format!(" (first: {e})")).unwrap_or_default()
        ));
        self.figure_json(&gw, &calls).await
    }

    async fn figure_unary(
        &mut self,
        gw: &RunningGateway,
        calls: &[EstablishedCall],
    ) -> anyhow::Result<()> {
        let plan = self.plan.clone();
        let (bare, bare_addr, _) = self.spawn_baseline("bare-tonic")?;
        let gateway_plans: Vec<SlotPlan> = calls
            .iter()
            .map(|c| SlotPlan {
                authorization: Some(basic_auth(c.caller)),
                requests: grpc_load::recording_requests(&c.id),
            })
            .collect();
        let bare_plans: Vec<SlotPlan> = calls
            .iter()
            .map(|c| SlotPlan {
                authorization: Some(basic_auth(c.caller)),
                requests: vec![(
                    servers::BARE_PATH.into(),
                    grpc_frame(&servers::pb::EmptyRequest {}),
                )],
            })
            .collect();
        let (gw_runs, bare_runs) = alternate(
            plan.rounds,
            async || {
                let (run, error) =
                    grpc_load::run(bare_addr, Some(bare.pid()), plan.unary, &bare_plans).await?;
                check_errors("bare tonic", run, error)
            },
            async || {
                reset_recording(&gw.grpc_url(), calls).await?;
                let (run, error) =
                    grpc_load::run(gw.grpc, Some(gw.server.pid()), plan.unary, &gateway_plans)
                        .await?;
                check_errors("gateway gRPC", run, error)
            },
        )
        .await?;
        drop(bare);
        let gw_mid = median_run(&gw_runs);
        let bare_mid = median_run(&bare_runs);
        let ratio = gw_mid.rps / bare_mid.rps;
        self.rows.push(Row {
            figure: "1. gRPC unary".into(),
            measure: format!(
                "Start/StopCallRecording, {} conns × {} streams, {} WatchCalls open",
                plan.unary.connections, plan.unary.in_flight, plan.unary_watchers
            ),
            gateway: rps(&gw_mid),
            baseline: format!("bare tonic: {}", rps(&bare_mid)),
            ratio: Some(ratio),
            value: ratio,
            target: "≥ 0.8×".into(),
            met: Some(ratio >= 0.8),
        });
        self.chart_unary_pair(
            "1. gRPC unary",
            "suite, Start/Stop",
            "bare tonic",
            &gw_mid,
            &bare_mid,
        );
        let tail = gw_mid.latency.p99_ms / gw_mid.latency.p50_ms.max(0.001);
        self.rows.push(Row {
            figure: "1. gRPC unary".into(),
            measure: "p99 / p50 at saturation (gateway)".into(),
            gateway: format!(
                "{:.2} / {:.2} ms",
                gw_mid.latency.p99_ms, gw_mid.latency.p50_ms
            ),
            baseline: format!(
                "bare tonic: {:.2} / {:.2} ms = {:.1}",
                bare_mid.latency.p99_ms,
                bare_mid.latency.p50_ms,
                bare_mid.latency.p99_ms / bare_mid.latency.p50_ms.max(0.001)
            ),
            ratio: None,
            value: tail,
            target: "p99 ≤ 5 × p50".into(),
            met: Some(tail <= 5.0),
        });
        self.notes.push(format!(
            "Figure 1: {} rounds of {:?} after {:?} warm-up, bare tonic then gateway in turn; the round with the median req/s is shown. All runs (gateway / bare req/s): {}.",
            plan.rounds,
            plan.unary.duration,
            plan.unary.warmup,
            run_pairs(&gw_runs, &bare_runs)
        ));
        Ok(())
    }

    /// Figure 1, metrics on against off: the same load on `gw` (metrics on) and on a
    /// second gateway started with `--admin-listen none` and set up the same way (its own
    /// calls and watchers), in alternating rounds; compares the server CPU per request.
    async fn figure_metrics_cost(
        &mut self,
        gw: &RunningGateway,
        calls: &[EstablishedCall],
    ) -> anyhow::Result<()> {
        let plan = self.plan.clone();
        let off = self.spawn_gateway_with(
            "gateway-unary-metrics-off",
            Some(&self.config.clone()),
            false,
        )?;
        let off_calls = setup::establish_calls(&off.grpc_url(), calls.len()).await?;
        let off_fleet = WatchFleet::open(&off.grpc_url(), 0..plan.unary_watchers, 50).await?;
        let plans = |calls: &[EstablishedCall]| -> Vec<SlotPlan> {
            calls
                .iter()
                .map(|c| SlotPlan {
                    authorization: Some(basic_auth(c.caller)),
                    requests: grpc_load::recording_requests(&c.id),
                })
                .collect()
        };
        let (on_plans, off_plans) = (plans(calls), plans(&off_calls));
        let (on_runs, off_runs) = alternate(
            plan.rounds,
            async || {
                reset_recording(&off.grpc_url(), &off_calls).await?;
                let (run, error) =
                    grpc_load::run(off.grpc, Some(off.server.pid()), plan.unary, &off_plans)
                        .await?;
                check_errors("gateway gRPC, metrics off", run, error)
            },
            async || {
                reset_recording(&gw.grpc_url(), calls).await?;
                let (run, error) =
                    grpc_load::run(gw.grpc, Some(gw.server.pid()), plan.unary, &on_plans).await?;
                check_errors("gateway gRPC, metrics on", run, error)
            },
        )
        .await?;
        off_fleet.close().await?;
        drop(off);
        let cpu = |runs: &[LoadResult]| -> Option<f64> {
            let mut each: Vec<f64> = runs.iter().filter_map(|r| r.server_cpu_us).collect();
            each.sort_by(f64::total_cmp);
            each.get(each.len() / 2).copied()
        };
        let (Some(on), Some(off)) = (cpu(&on_runs), cpu(&off_runs)) else {
            self.missing
                .push("Figure 1, metrics on vs off: the server CPU was not measured".into());
            return Ok(());
        };
        let ratio = on / off;
        self.rows.push(Row {
            figure: "1. gRPC unary".into(),
            measure:
                "server CPU per request, metrics on (admin listener) vs off (--admin-listen none)"
                    .into(),
            gateway: format!("on: {on:.1} µs/req ({})", rps(&median_run(&on_runs))),
            baseline: format!("off: {off:.1} µs/req ({})", rps(&median_run(&off_runs))),
            ratio: Some(ratio),
            value: ratio,
            target: "≤ 1.03×".into(),
            met: Some(ratio <= 1.03),
        });
        let each = |runs: &[LoadResult]| {
            runs.iter()
                .map(|r| r.server_cpu_us.map_or("?".into(), |us| format!("{us:.1}")))
                .collect::<Vec<_>>()
                .join(", ")
        };
        self.notes.push(format!(
            "Figure 1, metrics on vs off: {} rounds each, off then on in turn, two gateways set up alike; the median server CPU per request of each is shown. All runs (µs/req), on: {}; off: {}.",
            plan.rounds,
            each(&on_runs),
            each(&off_runs)
        ));
        Ok(())
    }

    async fn figure_json(
        &mut self,
        gw: &RunningGateway,
        calls: &[EstablishedCall],
    ) -> anyhow::Result<()> {
        let plan = self.plan.clone();
        let calls = &calls[..plan.json.connections.min(calls.len())];
        reset_recording(&gw.grpc_url(), calls).await?;
        let probe_path = format!("/api/v2/me/calls/{}", calls[0].id);
        let auth = basic_auth(calls[0].caller);
        let (status, _) = http_util::request(
            gw.http,
            http::Method::POST,
            &probe_path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            Bytes::from_static(br#"{"operationName":"StartCallRecording"}"#),
        )
        .await?;
        if status == http::StatusCode::NOT_FOUND {
            self.missing.push(
                "2. Legacy JSON: this gateway build has no `/api/v2/me/calls/{id}` route (legacy adapter not merged)".into(),
            );
            return Ok(());
        }
        anyhow::ensure!(
            status.is_success(),
            "legacy StartCallRecording probe answered {status}"
        );
        reset_recording(&gw.grpc_url(), calls).await?;
        let (bare, bare_addr, _) = self.spawn_baseline("bare-axum")?;
        let json_plans: Vec<SlotPlan> = calls
            .iter()
            .map(|c| {
                let path = format!("/api/v2/me/calls/{}", c.id);
                SlotPlan {
                    authorization: Some(basic_auth(c.caller)),
                    requests: vec![
                        (
                            path.clone(),
                            Bytes::from_static(br#"{"operationName":"StartCallRecording"}"#),
                        ),
                        (
                            path,
                            Bytes::from_static(br#"{"operationName":"StopCallRecording"}"#),
                        ),
                    ],
                }
            })
            .collect();
        let (gw_runs, bare_runs) = alternate(
            plan.rounds,
            async || {
                let (run, error) =
                    http_load::run(bare_addr, Some(bare.pid()), plan.json, &json_plans).await?;
                check_errors("bare axum", run, error)
            },
            async || {
                reset_recording(&gw.grpc_url(), calls).await?;
                let (run, error) =
                    http_load::run(gw.http, Some(gw.server.pid()), plan.json, &json_plans).await?;
                check_errors("gateway JSON", run, error)
            },
        )
        .await?;
        drop(bare);
        let gw_mid = median_run(&gw_runs);
        let bare_mid = median_run(&bare_runs);
        let ratio = gw_mid.rps / bare_mid.rps;
        self.rows.push(Row {
            figure: "2. Legacy JSON".into(),
            measure: format!(
                "POST /api/v2/me/calls/{{id}} Start/StopCallRecording, HTTP/1.1, {} conns",
                plan.json.connections
            ),
            gateway: rps(&gw_mid),
            baseline: format!("bare axum: {}", rps(&bare_mid)),
            ratio: Some(ratio),
            value: ratio,
            target: "≥ 0.8×".into(),
            met: Some(ratio >= 0.8),
        });
        self.chart_unary_pair(
            "2. Legacy JSON",
            "suite, Start/Stop",
            "bare axum",
            &gw_mid,
            &bare_mid,
        );
        self.notes.push(format!(
            "Figure 2: {} rounds, bare axum then gateway in turn, median shown. All runs (gateway / bare req/s): {}.",
            plan.rounds,
            run_pairs(&gw_runs, &bare_runs)
        ));
        Ok(())
    }

    /// Figures 3 and 4 on one fresh gateway: idle memory per stream and per session, then
    /// latency at a fixed event rate with both held.
    pub async fn fanout(&mut self) -> anyhow::Result<()> {
        let plan = self.plan.clone();
        let gw = self.spawn_gateway("gateway-fanout", Some(&self.config.clone()))?;
        let calls = setup::establish_calls(&gw.grpc_url(), plan.driven_calls).await?;
        tokio::time::sleep(plan.settle).await;
        let rss_before = gw.server.rss_kib()?;
        let fleet =
            WatchFleet::open(&gw.grpc_url(), 0..plan.streams, plan.streams_per_connection).await?;
        tokio::time::sleep(plan.settle).await;
        let rss_streams = gw.server.rss_kib()?;
        let per_stream =
            (rss_streams.saturating_sub(rss_before)) as f64 * 1024.0 / plan.streams as f64;
        self.rows.push(Row {
            figure: "4. Memory".into(),
            measure: format!(
                "RSS per idle WatchCalls stream ({} streams, {} per HTTP/2 connection)",
                plan.streams, plan.streams_per_connection
            ),
            gateway: format!("{} ({} → {} KiB)", kib(per_stream), rss_before, rss_streams),
            baseline: "–".into(),
            ratio: None,
            value: per_stream / 1024.0,
            target: "≤ 8 KiB".into(),
            met: Some(per_stream <= 8.0 * 1024.0),
        });
        let sent = driver::SendTimes::default();
        let sessions = if self.cometd_available(gw.http).await? {
            let sessions =
                SessionFleet::open(gw.http, 0..plan.sessions, Flavor::Gateway(sent.clone()))
                    .await?;
            tokio::time::sleep(plan.settle).await;
            let rss_sessions = gw.server.rss_kib()?;
            let per_session =
                (rss_sessions.saturating_sub(rss_streams)) as f64 * 1024.0 / plan.sessions as f64;
            self.session_memory = Some((per_session, rss_streams, rss_sessions));
            Some(sessions)
        } else {
            None
        };
        fleet.set_recording(true);
        if let Some(sessions) = &sessions {
            sessions.set_recording(true);
        }
        let driven = driver::drive(
            &gw.grpc_url(),
            &calls,
            plan.events_per_sec / 2.0,
            plan.fanout_duration,
            sent,
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        fleet.set_recording(false);
        let tally = fleet.close().await?;
        let latency = tally.latency.summary();
        let mut fanout_series = vec![("WatchCalls, commit → receipt".to_owned(), latency)];
        let rate = driven.ops_per_sec * 2.0;
        self.rows.push(Row {
            figure: "3. Fan-out (gRPC)".into(),
            measure: format!(
                "commit → receipt, {} WatchCalls streams{}, {rate:.0} events/s for {:?}",
                plan.streams,
                if sessions.is_some() {
                    format!(" + {} CometD sessions held", plan.sessions)
                } else {
                    String::new()
                },
                plan.fanout_duration
            ),
            gateway: format!(
                "p50 {:.2} ms, p99 {:.2} ms ({} events)",
                latency.p50_ms, latency.p99_ms, latency.count
            ),
            baseline: "–".into(),
            ratio: None,
            value: latency.p99_ms,
            target: "p99 < 50 ms".into(),
            met: Some(latency.p99_ms < 50.0 && latency.count > 0),
        });
        self.notes.push(format!(
            "Figure 3 (gRPC): the driver made {} operations ({} failed), each committing one event per party, so {} events were expected at the watchers; {} arrived while recording, {} streams failed{}.",
            driven.ops,
            driven.errors,
            driven.ops * 2,
            tally.events,
            tally.failed_streams,
            tally.first_error.map(|e| format!(" (first: {e})")).unwrap_or_default()
        ));
        if let Some(sessions) = sessions {
            sessions.set_recording(false);
            let seen = sessions.close().await?;
            let latency = seen.latency.summary();
            fanout_series.push(("CometD, operation sent → receipt".to_owned(), latency));
            self.rows.push(Row {
                figure: "3. Fan-out (CometD)".into(),
                measure: format!(
                    "operation sent → receipt (bounds commit → receipt), {} long-poll sessions{}, {rate:.0} events/s",
                    plan.sessions,
                    format_args!(" + {} WatchCalls held", plan.streams)
                ),
                gateway: format!(
                    "p50 {:.2} ms, p99 {:.2} ms ({} messages)",
                    latency.p50_ms, latency.p99_ms, latency.count
                ),
                baseline: "–".into(),
                ratio: None,
                value: latency.p99_ms,
                target: "p99 < 50 ms".into(),
                met: Some(latency.p99_ms < 50.0 && latency.count > 0),
            });
            self.notes.push(format!(
                "Figure 3 (CometD): {} messages arrived while recording ({} events were for agents holding a session), {} sessions failed{}.",
                seen.messages,
                driven.ops * 2 * calls.iter().filter(|c| c.callee < plan.sessions).count() as u64 / calls.len() as u64,
                seen.failed,
                seen.first_error.map(|e| format!(" (first: {e})")).unwrap_or_default()
            ));
            self.payload = seen.sample;
        } else {
            self.missing.push(
                "3./4. CometD: this gateway build has no `/api/v2/notifications` endpoint".into(),
            );
        }
        self.chart_latency(
            "3. Fan-out",
            &format!("latency at {:.0} events/s", plan.events_per_sec),
            fanout_series,
        );
        Ok(())
    }

    /// Returns whether the gateway serves the CometD endpoint.
    async fn cometd_available(&self, http: SocketAddr) -> anyhow::Result<bool> {
        let (status, _) = http_util::request(
            http,
            http::Method::POST,
            "/api/v2/notifications/handshake",
            &[("content-type", "application/json")],
            Bytes::from_static(b"[]"),
        )
        .await?;
        Ok(status != http::StatusCode::NOT_FOUND)
    }

    /// Figure 3 against Faye, and figure 4's CometD row with Faye's memory as baseline: the
    /// same sessions on a fresh gateway and on Faye, idle RSS per session, then a saturating
    /// driver (closed loop) for delivered messages/s and p99.
    pub async fn cometd_vs_faye(&mut self) -> anyhow::Result<()> {
        let plan = self.plan.clone();
        let Some(faye_dir) = self
            .faye_dir
            .clone()
            .filter(|d| d.join("node_modules/faye").is_dir())
        else {
            self.missing.push(
                "3. Fan-out against Faye: Faye is not installed (`npm ci --prefix bench/faye`)"
                    .into(),
            );
            return self.push_session_memory(None);
        };
        if self.session_memory.is_none() {
            return Ok(());
        }
        // Faye first: its memory per session, then saturation.
        let addr = free_addr()?;
        let script = faye_dir.join("server.js");
        let args = vec![script.display().to_string(), addr.port().to_string()];
        let mut faye = Server::spawn("faye", Path::new("node"), &args, &[], &self.log_dir())?;
        faye.wait_listening(&[addr], Duration::from_secs(30))?;
        tokio::time::sleep(plan.settle).await;
        let rss_before = faye.rss_kib()?;
        let sessions = SessionFleet::open(addr, 0..plan.sessions, Flavor::Faye).await?;
        tokio::time::sleep(plan.settle).await;
        let rss_after = faye.rss_kib()?;
        let faye_per_session =
            rss_after.saturating_sub(rss_before) as f64 * 1024.0 / plan.sessions as f64;
        self.push_session_memory(Some(faye_per_session))?;
        let payload = self
            .payload
            .clone()
            .unwrap_or_else(|| serde_json::json!({"messageType": "CallStateChangeMessage"}));
        let pairs = (plan.driven_calls).min(plan.sessions / 2).max(1);
        let faye_run = saturate(&plan, &sessions, faye.pid(), |until| {
            driver::saturate_faye(
                addr,
                pairs,
                plan.saturation_in_flight,
                until,
                payload.clone(),
            )
        })
        .await?;
        sessions.close().await?;
        drop(faye);

        let gw = self.spawn_gateway("gateway-cometd", Some(&self.config.clone()))?;
        let calls = setup::establish_calls(&gw.grpc_url(), pairs).await?;
        let sent = driver::SendTimes::default();
        let sessions =
            SessionFleet::open(gw.http, 0..plan.sessions, Flavor::Gateway(sent.clone())).await?;
        let url = gw.grpc_url();
        let gw_run = saturate(&plan, &sessions, gw.server.pid(), |until| {
            driver::saturate_gateway(&url, &calls, plan.saturation_in_flight, until, sent.clone())
        })
        .await?;
        let seen = sessions.close().await?;
        drop(gw);
        let (gw_rate, gw_latency, gw_driven) = (gw_run.rate, gw_run.latency, gw_run.driven);
        let (faye_rate, faye_latency, faye_driven) =
            (faye_run.rate, faye_run.latency, faye_run.driven);
        let ratio = gw_rate / faye_rate.max(f64::MIN_POSITIVE);
        self.chart_faye(&gw_run, &faye_run);
        self.rows.push(Row {
            figure: "3. Fan-out vs Faye".into(),
            measure: format!(
                "delivered messages/s at saturation, {} long-poll sessions, {} in-flight operations (gateway) or publishes of 2 messages (Faye)",
                plan.sessions, plan.saturation_in_flight
            ),
            gateway: format!(
                "{gw_rate:.0} msg/s, p99 {:.2} ms{}",
                gw_latency.p99_ms,
                cpu_per_message(gw_run.cpu_us_per_message)
            ),
            baseline: format!(
                "Faye 1.4.3: {faye_rate:.0} msg/s, p99 {:.2} ms{}",
                faye_latency.p99_ms,
                cpu_per_message(faye_run.cpu_us_per_message)
            ),
            ratio: Some(ratio),
            value: ratio,
            target: "≥ 5× at equal or better p99".into(),
            met: Some(ratio >= 5.0 && gw_latency.p99_ms <= faye_latency.p99_ms),
        });
        self.notes.push(format!(
            "Figure 3 vs Faye: {:?} warm-up then {:?} measured, the same Rust long-polling client for both (one HTTP/1.1 connection per session). Gateway: {} operations ({} failed), p50 {:.2} ms, {} sessions failed{}. Faye: {} publishes ({} failed), p50 {:.2} ms; each Faye message carries the gateway's own CallStateChangeMessage as data, so payloads match. Faye has no per-session identity, so each session subscribes to its user's channel `/v2/me/calls/<user>`; the gateway routes `/v2/me/calls` by the session's user.",
            plan.unary.warmup,
            plan.saturation_duration,
            gw_driven.ops,
            gw_driven.errors,
            gw_latency.p50_ms,
            seen.failed,
            seen.first_error.map(|e| format!(" (first: {e})")).unwrap_or_default(),
            faye_driven.ops,
            faye_driven.errors,
            faye_latency.p50_ms,
        ));
        Ok(())
    }

    fn push_session_memory(&mut self, faye_per_session: Option<f64>) -> anyhow::Result<()> {
        let Some((per_session, before, after)) = self.session_memory else {
            return Ok(());
        };
        self.rows.push(Row {
            figure: "4. Memory".into(),
            measure: format!(
                "RSS per idle CometD long-poll session ({} sessions, one connection each, connect held)",
                self.plan.sessions
            ),
            gateway: format!("{} ({before} → {after} KiB)", kib(per_session)),
            baseline: faye_per_session.map_or_else(|| "–".into(), |f| format!("Faye 1.4.3: {}", kib(f))),
            ratio: faye_per_session.map(|f| per_session / f),
            value: per_session / 1024.0,
            target: "≤ 16 KiB".into(),
            met: Some(per_session <= 16.0 * 1024.0),
        });
        Ok(())
    }

    /// Figure 5: time from exec to both listeners accepting, and idle RSS.
    pub async fn startup(&mut self) -> anyhow::Result<()> {
        let plan = self.plan.clone();
        let measure = |name: &str, config: Option<PathBuf>| -> anyhow::Result<(f64, f64)> {
            let (mut times, mut rss) = (Vec::new(), Vec::new());
            for _ in 0..plan.startups {
                let gw = self.spawn_gateway(name, config.as_deref())?;
                std::thread::sleep(plan.settle);
                times.push(gw.startup.as_secs_f64() * 1000.0);
                rss.push(gw.server.rss_kib()? as f64 / 1024.0);
            }
            Ok((median(&times), median(&rss)))
        };
        let (demo_ms, demo_mib) = measure("gateway-startup-demo", None)?;
        let (bench_ms, bench_mib) = measure("gateway-startup-bench", Some(self.config.clone()))?;
        let (mut bare_times, mut bare_rss) = (Vec::new(), Vec::new());
        for _ in 0..plan.startups {
            let (server, _, startup) = self.spawn_baseline("bare-tonic")?;
            std::thread::sleep(plan.settle);
            bare_times.push(startup.as_secs_f64() * 1000.0);
            bare_rss.push(server.rss_kib()? as f64 / 1024.0);
        }
        let (bare_ms, bare_mib) = (median(&bare_times), median(&bare_rss));
        for (label, ms, mib) in [
            ("demo config".to_owned(), demo_ms, demo_mib),
            (format!("{} agents", plan.users), bench_ms, bench_mib),
        ] {
            self.rows.push(Row {
                figure: "5. Start-up".into(),
                measure: format!("exec → gRPC and HTTP listeners accept; idle RSS ({label})"),
                gateway: format!("{ms:.1} ms, {mib:.1} MiB"),
                baseline: format!("bare tonic: {bare_ms:.1} ms, {bare_mib:.1} MiB"),
                ratio: Some(ms / bare_ms),
                value: ms,
                target: "reported".into(),
                met: None,
            });
        }
        self.notes.push(format!(
            "Figure 5: median of {} start-ups each; idle RSS read {:?} after the listeners accept.",
            plan.startups, plan.settle
        ));
        Ok(())
    }
}

/// What a saturating run measured.
pub(crate) struct Saturation {
    /// Delivered messages per second.
    pub(crate) rate: f64,
    /// Delivery latency.
    pub(crate) latency: crate::stats::LatencySummary,
    /// The driver's tally.
    driven: driver::DriveResult,
    /// The server's CPU time per delivered message, µs (when it could be read).
    pub(crate) cpu_us_per_message: Option<f64>,
}

/// Drives a server to saturation; `pid` is the server process, whose CPU time in the
/// measured window is divided by the delivered messages.
async fn saturate<F, Fut>(
    plan: &Plan,
    sessions: &SessionFleet,
    pid: u32,
    drive: F,
) -> anyhow::Result<Saturation>
where
    F: FnOnce(tokio::time::Instant) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<driver::DriveResult>>,
{
    let warmup = plan.unary.warmup;
    let until = tokio::time::Instant::now() + warmup + plan.saturation_duration;
    let driving = drive(until);
    let window = async {
        tokio::time::sleep(warmup).await;
        sessions.reset_window();
        sessions.set_recording(true);
        let before = crate::process::cpu_seconds(pid).ok();
        tokio::time::sleep(plan.saturation_duration).await;
        sessions.set_recording(false);
        let after = crate::process::cpu_seconds(pid).ok();
        before.zip(after).map(|(b, a)| a - b)
    };
    let (driven, cpu) = tokio::join!(driving, window);
    let driven = driven?;
    let (messages, latency) = sessions.window().await;
    Ok(Saturation {
        rate: messages as f64 / plan.saturation_duration.as_secs_f64(),
        latency,
        driven,
        cpu_us_per_message: cpu
            .filter(|_| messages > 0)
            .map(|secs| secs * 1e6 / messages as f64),
    })
}

/// Formats a CPU time per message, or nothing.
fn cpu_per_message(us: Option<f64>) -> String {
    us.map(|us| format!(", server CPU {us:.1} µs/msg"))
        .unwrap_or_default()
}

/// Runs the baseline, then the gateway, `rounds` times in turn (so both see the same drift
/// of a shared machine); returns the gateway's runs and the baseline's.
async fn alternate(
    rounds: usize,
    mut baseline: impl AsyncFnMut() -> anyhow::Result<LoadResult>,
    mut gateway: impl AsyncFnMut() -> anyhow::Result<LoadResult>,
) -> anyhow::Result<(Vec<LoadResult>, Vec<LoadResult>)> {
    let (mut gw_runs, mut bare_runs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        bare_runs.push(baseline().await?);
        gw_runs.push(gateway().await?);
    }
    Ok((gw_runs, bare_runs))
}

/// Lists the req/s of each round as `gateway / baseline`.
fn run_pairs(gw_runs: &[LoadResult], bare_runs: &[LoadResult]) -> String {
    gw_runs
        .iter()
        .zip(bare_runs)
        .map(|(g, b)| format!("{:.0} / {:.0}", g.rps, b.rps))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Fails on a run without successes or with more than 0.1 % errors; returns the run.
pub(crate) fn check_errors(
    what: &str,
    run: LoadResult,
    first: Option<String>,
) -> anyhow::Result<LoadResult> {
    anyhow::ensure!(
        run.requests > 0,
        "{what}: no successful request ({first:?})"
    );
    let total = run.requests + run.errors;
    anyhow::ensure!(
        run.errors * 1000 <= total,
        "{what}: {} of {total} requests failed, first: {}",
        run.errors,
        first.unwrap_or_default()
    );
    Ok(run)
}

fn median_run(runs: &[LoadResult]) -> LoadResult {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    sorted[sorted.len() / 2]
}

/// Stops recording on every call that records, so each slot starts with StartCallRecording.
pub async fn reset_recording(grpc_url: &str, calls: &[EstablishedCall]) -> anyhow::Result<()> {
    let channel = tonic::transport::Endpoint::from_shared(grpc_url.to_owned())?
        .connect()
        .await
        .context("cannot connect to the gateway")?;
    let client = CallServiceClient::new(channel);
    futures::stream::iter(calls)
        .map(|call| {
            let mut client = client.clone();
            async move {
                let request = pb::GetCallRequest {
                    call_id: call.id.clone(),
                };
                let got = client
                    .get_call(as_agent(call.caller, request))
                    .await?
                    .into_inner();
                let recording = got
                    .call
                    .is_some_and(|c| c.recording_state() == pb::RecordingState::Recording);
                if recording {
                    let request = pb::StopCallRecordingRequest {
                        call_id: call.id.clone(),
                    };
                    client
                        .stop_call_recording(as_agent(call.caller, request))
                        .await?;
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<()>()
        .await
}
