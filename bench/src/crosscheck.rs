//! Figures 1 and 2 cross-checked with standard tools (issue 13): the same gateway set-up
//! and the same bare tonic and bare axum baselines, loaded by h2load and wrk next to the
//! suite's own generator, one round each, baseline then gateway, all in this run.
//!
//! - gRPC (figure 1's shape): h2load sends one fixed body, so figure 1's alternating
//!   Start/StopCallRecording cannot be sent with it (a second Start on a call fails); the
//!   request is UpdateUserData with a fixed pair on one call, which succeeds every time
//!   (the same pair again changes nothing, so it commits no event). The suite's generator
//!   sends the same request, so the two tools are compared on equal terms.
//! - JSON over HTTP/1.1 (figure 2's shape): wrk sends figure 2's own requests, built by a
//!   Lua script: StartCallRecording then StopCallRecording in turn on four calls per
//!   connection (four others for the warm-up), one wrk thread per connection, with each
//!   call's user's Basic credentials and session cookie.
//! - JSON over h2c: h2load, figure 1's shape, the fixed UpdateUserData POST with the
//!   user's credentials and cookie.
//!
//! h2load counts any HTTP 200 as a success, and gRPC errors are HTTP 200: before the runs,
//! the fixed requests are sent three times by the suite's own clients and must succeed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bytes::Bytes;
use voice_gateway::grpc::pb;

use crate::charts::BarGroup;
use crate::figures::{Bench, RunningGateway, check_errors};
use crate::grpc_load::{self, LoadResult, SlotPlan, grpc_frame};
use crate::http_util::KeepAlive;
use crate::report::Row;
use crate::setup::{self, EstablishedCall, basic_auth};
use crate::tools::{self, FixedRequest, ToolRun};
use crate::{http_util, servers};

const GRPC: &str = "1. gRPC unary";
const JSON: &str = "2. Legacy JSON";
const UPDATE_PATH: &str = "/voice.v1.CallService/UpdateUserData";
const UPDATE_JSON: &[u8] = br#"{"operationName":"UpdateUserData","userData":{"bench":"fixed"}}"#;
/// The bar chart of req/s per load generator.
pub const RPS_BARS: &str = "req/s by load generator, gateway against baseline";
/// The bar chart of server CPU per request per load generator.
pub const CPU_BARS: &str = "server CPU per request by load generator";

/// One tool's (or the suite's) result against the gateway and the baseline.
struct Pair {
    gateway: Outcome,
    baseline: Outcome,
}

/// A run as the table shows it: description, req/s, CPU per request.
struct Outcome {
    text: String,
    rps: f64,
    cpu_us: Option<f64>,
}

impl From<&LoadResult> for Outcome {
    fn from(run: &LoadResult) -> Self {
        Self {
            text: format!(
                "{:.0} req/s (p50 {:.2} ms, p99 {:.2} ms{})",
                run.rps,
                run.latency.p50_ms,
                run.latency.p99_ms,
                run.server_cpu_us
                    .map(|us| format!(", server CPU {us:.1} µs/req"))
                    .unwrap_or_default()
            ),
            rps: run.rps,
            cpu_us: run.server_cpu_us,
        }
    }
}

impl From<&ToolRun> for Outcome {
    fn from(run: &ToolRun) -> Self {
        Self {
            text: run.describe(),
            rps: run.rps,
            cpu_us: run.server_cpu_us,
        }
    }
}

/// Fails on a tool run without successes or with more than 0.1 % errors.
fn check_tool(what: &str, run: ToolRun) -> anyhow::Result<ToolRun> {
    anyhow::ensure!(
        run.requests > 0,
        "{what}: no successful request:\n{}",
        run.output
    );
    anyhow::ensure!(
        run.errors * 1000 <= run.requests + run.errors,
        "{what}: {} of {} requests failed:\n{}",
        run.errors,
        run.requests + run.errors,
        run.output
    );
    Ok(run)
}

impl Bench {
    /// Runs the cross-check on a gateway of its own, set up as figure 1's.
    pub async fn crosscheck(&mut self) -> anyhow::Result<()> {
        let dir = self.work.join("crosscheck");
        std::fs::create_dir_all(&dir)?;
        let h2load = tools::find("h2load");
        let wrk = tools::find("wrk");
        let gw = self.spawn_gateway("gateway-crosscheck", Some(&self.config.clone()))?;
        // wrk's requests for figure 2 alternate Start/StopCallRecording per call, so a call's
        // requests must go in order: each wrk thread has one connection and calls of its own
        // (see `wrk_script`), four for the warm-up and four others for the measured run, so
        // a warm-up request still in flight when wrk exits cannot meet the measured run.
        let count = (8 * self.plan.json.connections).min(self.plan.users / 2);
        let calls = setup::establish_calls(&gw.grpc_url(), count).await?;
        self.crosscheck_grpc(&gw, &calls[0], h2load.as_deref(), &dir)
            .await?;
        self.crosscheck_json(&gw, &calls, h2load.as_deref(), wrk.as_deref(), &dir)
            .await
    }

    async fn crosscheck_grpc(
        &mut self,
        gw: &RunningGateway,
        call: &EstablishedCall,
        h2load: Option<&Path>,
        dir: &Path,
    ) -> anyhow::Result<()> {
        let shape = self.plan.unary;
        let auth = basic_auth(call.caller);
        let body = grpc_frame(&pb::UpdateUserDataRequest {
            call_id: call.id.clone(),
            user_data: vec![pb::KeyValue {
                key: "bench".into(),
                value: Some(pb::key_value::Value::StringValue("fixed".into())),
            }],
        });
        let bare_body = grpc_frame(&servers::pb::EmptyRequest {});
        for _ in 0..3 {
            probe_grpc(gw, UPDATE_PATH, &auth, body.clone())
                .await
                .context("the cross-check's fixed UpdateUserData failed")?;
        }
        let (bare, bare_addr, _) = self.spawn_baseline("bare-tonic")?;
        let gw_plan = [SlotPlan {
            authorization: Some(auth.clone()),
            requests: vec![(UPDATE_PATH.into(), body.clone())],
        }];
        let bare_plan = [SlotPlan {
            authorization: Some(auth.clone()),
            requests: vec![(servers::BARE_PATH.into(), bare_body.clone())],
        }];
        let (run, error) = grpc_load::run(bare_addr, Some(bare.pid()), shape, &bare_plan).await?;
        let bare_suite = check_errors("bare tonic (cross-check)", run, error)?;
        let (run, error) = grpc_load::run(gw.grpc, Some(gw.server.pid()), shape, &gw_plan).await?;
        let gw_suite = check_errors("gateway (cross-check)", run, error)?;
        let shape_text = format!("{} conns × {} streams", shape.connections, shape.in_flight);
        self.push_pair(
            GRPC,
            &format!(
                "cross-check, UpdateUserData with a fixed body, {shape_text}: the suite's generator"
            ),
            "suite, fixed",
            "bare tonic",
            Some(Pair {
                gateway: (&gw_suite).into(),
                baseline: (&bare_suite).into(),
            }),
        );
        self.chart_latency(
            GRPC,
            "latency, UpdateUserData with a fixed body (suite's generator)",
            vec![
                ("gateway".into(), gw_suite.latency),
                ("bare tonic".into(), bare_suite.latency),
            ],
        );
        let pair = match h2load {
            None => None,
            Some(program) => {
                let gw_file = write(dir, "update-user-data.grpc", &body)?;
                let bare_file = write(dir, "empty.grpc", &bare_body)?;
                let grpc_headers = |auth: &str| {
                    vec![
                        "content-type: application/grpc".to_owned(),
                        "te: trailers".into(),
                        format!("authorization: {auth}"),
                    ]
                };
                let bare_request = FixedRequest {
                    path: servers::BARE_PATH.into(),
                    headers: grpc_headers(&auth),
                    body: bare_file,
                };
                let gw_request = FixedRequest {
                    path: UPDATE_PATH.into(),
                    headers: grpc_headers(&auth),
                    body: gw_file,
                };
                let bare_run =
                    tools::h2load(program, bare_addr, &bare_request, shape, Some(bare.pid()))
                        .await
                        .and_then(|r| check_tool("h2load, bare tonic", r))?;
                let gw_run =
                    tools::h2load(program, gw.grpc, &gw_request, shape, Some(gw.server.pid()))
                        .await
                        .and_then(|r| check_tool("h2load, gateway", r))?;
                Some(Pair {
                    gateway: (&gw_run).into(),
                    baseline: (&bare_run).into(),
                })
            }
        };
        drop(bare);
        let label = tool_label("h2load", h2load, "--version");
        self.push_pair(
            GRPC,
            &format!("cross-check, UpdateUserData with a fixed body, {shape_text}: {label}"),
            "h2load, fixed",
            "bare tonic",
            pair,
        );
        Ok(())
    }

    async fn crosscheck_json(
        &mut self,
        gw: &RunningGateway,
        calls: &[EstablishedCall],
        h2load: Option<&Path>,
        wrk: Option<&Path>,
        dir: &Path,
    ) -> anyhow::Result<()> {
        let (json_shape, h2_shape) = (self.plan.json, self.plan.unary);
        let mut cookies = Vec::with_capacity(calls.len());
        for call in calls {
            cookies.push(session_cookie(gw, call).await?);
        }
        let path = format!("/api/v2/me/calls/{}", calls[0].id);
        let auth = basic_auth(calls[0].caller);
        let headers = [
            ("authorization", auth.as_str()),
            ("cookie", cookies[0].as_str()),
            ("content-type", "application/json"),
        ];
        for _ in 0..3 {
            let (status, body) = http_util::request(
                gw.http,
                http::Method::POST,
                &path,
                &headers,
                Bytes::from_static(UPDATE_JSON),
            )
            .await?;
            anyhow::ensure!(
                status.is_success() && body.as_ref() == br#"{"statusCode":0}"#,
                "the cross-check's fixed JSON UpdateUserData answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        let (bare, bare_addr, _) = self.spawn_baseline("bare-axum")?;
        let wrk_pair = match wrk {
            None => None,
            Some(program) => {
                let connections = json_shape.connections;
                let half = calls.len() / 2;
                anyhow::ensure!(
                    half >= connections,
                    "wrk needs a call per connection for each run: {} calls for {connections} connections",
                    calls.len()
                );
                let (warm_calls, measured_calls) = calls.split_at(half);
                let (warm_cookies, measured_cookies) = cookies.split_at(half);
                let warmup = write(
                    dir,
                    "recording-warmup.lua",
                    wrk_script(warm_calls, warm_cookies, connections).as_bytes(),
                )?;
                let measured = write(
                    dir,
                    "recording.lua",
                    wrk_script(measured_calls, measured_cookies, connections).as_bytes(),
                )?;
                let run = async |addr, pid| -> anyhow::Result<ToolRun> {
                    tools::wrk(program, addr, &warmup, connections, json_shape.warmup, None)
                        .await?;
                    tools::wrk(
                        program,
                        addr,
                        &measured,
                        connections,
                        json_shape.duration,
                        pid,
                    )
                    .await
                };
                let bare_run = run(bare_addr, Some(bare.pid()))
                    .await
                    .and_then(|r| check_tool("wrk, bare axum", r))?;
                let gw_run = run(gw.http, Some(gw.server.pid()))
                    .await
                    .and_then(|r| check_tool("wrk, gateway", r))?;
                Some(Pair {
                    gateway: (&gw_run).into(),
                    baseline: (&bare_run).into(),
                })
            }
        };
        let label = tool_label("wrk", wrk, "-v");
        self.push_pair(
            JSON,
            &format!(
                "cross-check, figure 2's Start/StopCallRecording POSTs with session cookies, HTTP/1.1, {} conns: {label}",
                json_shape.connections
            ),
            "wrk",
            "bare axum",
            wrk_pair,
        );
        let h2_pair = match h2load {
            None => None,
            Some(program) => {
                let body = write(dir, "update-user-data.json", UPDATE_JSON)?;
                let request = FixedRequest {
                    path: path.clone(),
                    headers: headers.iter().map(|(k, v)| format!("{k}: {v}")).collect(),
                    body,
                };
                let bare_run =
                    tools::h2load(program, bare_addr, &request, h2_shape, Some(bare.pid()))
                        .await
                        .and_then(|r| check_tool("h2load h2c, bare axum", r))?;
                let gw_run =
                    tools::h2load(program, gw.http, &request, h2_shape, Some(gw.server.pid()))
                        .await
                        .and_then(|r| check_tool("h2load h2c, gateway", r))?;
                Some(Pair {
                    gateway: (&gw_run).into(),
                    baseline: (&bare_run).into(),
                })
            }
        };
        drop(bare);
        let label = tool_label("h2load", h2load, "--version");
        self.push_pair(
            JSON,
            &format!(
                "cross-check, POST UpdateUserData with a fixed body and session cookie, h2c, {} conns × {} streams: {label}",
                h2_shape.connections, h2_shape.in_flight
            ),
            "h2load h2c, fixed",
            "bare axum",
            h2_pair,
        );
        self.notes.push(
            "Figures 1 and 2, cross-check: one round each (baseline, then gateway) on a gateway of its own set up as figure 1's; h2load sends one fixed body, so its gRPC request (and the suite's, to compare alike) is UpdateUserData with a fixed pair, which succeeds every time and commits no event (figure 1's Start/Stop commits two); wrk sends figure 2's own requests from a Lua script (one thread per connection, each with four calls of its own that it alternates Start/StopCallRecording on, so a call's requests go in order; four other calls per connection for the warm-up; each request with its user's Basic credentials and JSESSIONID; any non-2xx reply counts as failed). h2load reports mean ± sd and max, wrk percentiles. Before the runs the fixed requests were sent three times and answered `grpc-status: 0` / `{\"statusCode\":0}` (h2load counts any HTTP 200).".into(),
        );
        Ok(())
    }

    /// Pushes a cross-check row (or a "not installed" row) and its bars.
    fn push_pair(
        &mut self,
        figure: &str,
        measure: &str,
        bar: &str,
        baseline: &str,
        pair: Option<Pair>,
    ) {
        let Some(pair) = pair else {
            let tool = bar.split([',', ' ']).next().unwrap_or(bar);
            self.rows.push(Row {
                figure: figure.into(),
                measure: measure.into(),
                gateway: format!("{tool} not installed (`bench/run` installs it)"),
                baseline: "–".into(),
                ratio: None,
                value: 0.0,
                target: "reported".into(),
                met: None,
            });
            return;
        };
        let ratio = pair.gateway.rps / pair.baseline.rps.max(f64::MIN_POSITIVE);
        self.rows.push(Row {
            figure: figure.into(),
            measure: measure.into(),
            gateway: pair.gateway.text.clone(),
            baseline: format!("{baseline}: {}", pair.baseline.text),
            ratio: Some(ratio),
            value: ratio,
            target: "reported".into(),
            met: None,
        });
        self.chart_bars(
            figure,
            RPS_BARS,
            "req/s",
            BarGroup {
                label: bar.into(),
                gateway: pair.gateway.rps,
                baseline: Some((baseline.into(), pair.baseline.rps)),
            },
        );
        if let (Some(gw), Some(base)) = (pair.gateway.cpu_us, pair.baseline.cpu_us) {
            self.chart_bars(
                figure,
                CPU_BARS,
                "server CPU, µs per request",
                BarGroup {
                    label: bar.into(),
                    gateway: gw,
                    baseline: Some((baseline.into(), base)),
                },
            );
        }
    }
}

/// Names a tool with its version, or says it is missing.
fn tool_label(name: &str, program: Option<&Path>, flag: &str) -> String {
    match program {
        Some(program) => {
            let version = tools::version(program, flag);
            if version.is_empty() {
                name.to_owned()
            } else {
                version
            }
        }
        None => format!("{name} (not installed)"),
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, bytes)?;
    Ok(path)
}

/// Sends one gRPC unary request through the suite's client; fails unless `grpc-status: 0`.
async fn probe_grpc(
    gw: &RunningGateway,
    path: &str,
    authorization: &str,
    body: Bytes,
) -> anyhow::Result<()> {
    let sender = grpc_load::connect(gw.grpc).await?;
    let request = http::Request::post(format!("http://{}{path}", gw.grpc))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", authorization)
        .body(())?;
    grpc_load::unary(&sender, request, body).await
}

/// Signs in `call`'s caller with Basic; returns its `JSESSIONID=…` cookie.
async fn session_cookie(gw: &RunningGateway, call: &EstablishedCall) -> anyhow::Result<String> {
    let mut connection = KeepAlive::open(gw.http, None).await?;
    let answer = connection
        .get(
            &gw.http.to_string(),
            "/api/v2/me",
            &basic_auth(call.caller),
            None,
        )
        .await?;
    anyhow::ensure!(
        answer.status.is_success(),
        "sign-in answered {}",
        answer.status
    );
    answer.cookie.context("no session cookie")
}

/// Renders wrk's Lua script for `threads` threads of one connection each (`tools::wrk`):
/// thread `t` sends to calls `t`, `t + threads`, `t + 2 threads`, … in turn, with
/// StartCallRecording in even passes over its calls and StopCallRecording in odd ones. A
/// call's requests thus go one after the other on one connection, each answered before the
/// next is sent, so none can overtake the one before and find the recording in the wrong
/// state (with one thread for all connections, a stalled request could be overtaken).
fn wrk_script(calls: &[EstablishedCall], cookies: &[String], threads: usize) -> String {
    let mut script =
        String::from("-- Generated by voice-bench: figure 2's requests for wrk.\ncalls = {\n");
    for (call, cookie) in calls.iter().zip(cookies) {
        let _ = writeln!(
            script,
            "  {{ \"/api/v2/me/calls/{}\", \"{}\", \"{cookie}\" }},",
            call.id,
            basic_auth(call.caller)
        );
    }
    let _ = writeln!(script, "}}\nthreads = {threads}");
    script.push_str(
        "bodies = { '{\"operationName\":\"StartCallRecording\"}', '{\"operationName\":\"StopCallRecording\"}' }\n\
         -- setup runs in wrk's main Lua state once per thread, before the thread's init.\n\
         next_id = 0\n\
         setup = function(thread)\n\
         \x20 thread:set(\"tid\", next_id)\n\
         \x20 next_id = next_id + 1\n\
         end\n\
         -- wrk calls request() once on thread 0 before the run to check the script\n\
         -- (script_verify_request) and never sends that request: there it takes i = -1.\n\
         init = function(args)\n\
         \x20 if tid == 0 then i = -1 else i = 0 end\n\
         \x20 mine = math.floor((#calls - tid - 1) / threads) + 1\n\
         end\n\
         request = function()\n\
         \x20 local c = calls[tid + (i % mine) * threads + 1]\n\
         \x20 local body = bodies[(math.floor(i / mine) % 2) + 1]\n\
         \x20 i = i + 1\n\
         \x20 return wrk.format(\"POST\", c[1], { [\"Content-Type\"] = \"application/json\", [\"Authorization\"] = c[2], [\"Cookie\"] = c[3] }, body)\n\
         end\n",
    );
    script
}
