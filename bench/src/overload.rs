//! Figure 10 (issue 14): overload. The gateway as shipped (the default `[server]` bounds)
//! is first saturated with gRPC unary calls, closed loop, as many in flight as its
//! listener admits (`server.max_requests`): that gives the saturating rate and the
//! accepted calls' p99 at saturation. Then the open-loop load of [`crate::overload_load`]
//! offers `factor` times that rate for a bounded time. Reported: how fast refusals come
//! (they must be immediate), the accepted calls' p99 against their p99 at saturation (at
//! most 2×), and the gateway's peak RSS against its peak at saturation (bounded: the shed
//! keeps queues from growing).

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use voice_gateway::grpc::pb;

use crate::figures::Bench;
use crate::grpc_load::{self, LoadResult, LoadShape, SlotPlan, grpc_frame};
use crate::overload_load::{self, OverloadCall, OverloadResult, OverloadShape};
use crate::process::{Peaks, ProcStatus, cpu_seconds, sample_peaks};
use crate::report::Row;
use crate::setup::{self, basic_auth};

const FIGURE: &str = "10. Overload";
/// What "immediate" means for a refusal: its p99, send to answer, on loopback.
const IMMEDIATE_MS: f64 = 10.0;

/// The shape of figure 10.
#[derive(Debug, Clone, Copy)]
pub struct OverloadPlan {
    /// Established calls the load reads (GetCall by each call's caller).
    pub calls: usize,
    /// The saturating closed-loop load: connections × streams is the gateway's
    /// `server.max_requests` in the full run.
    pub saturation: LoadShape,
    /// The overload: this many times the saturating rate.
    pub factor: f64,
    /// HTTP/2 connections of the overload.
    pub connections: usize,
    /// The overload's warm-up and measured time.
    pub warmup: Duration,
    /// The overload's measured time.
    pub duration: Duration,
    /// RSS sampling period.
    pub sample_every: Duration,
    /// The bench's own safety: past this RSS, in KiB, the gateway is killed.
    pub rss_cap_kib: u64,
}

/// What the figure measured.
struct OverloadRun {
    idle_kib: u64,
    saturation: LoadResult,
    saturation_peak: Peaks,
    rate: f64,
    overload: OverloadResult,
    overload_peak: Peaks,
    overload_cpu_us: Option<f64>,
}

impl Bench {
    /// Figure 10 on a fresh gateway with the generated configuration, `server.max_requests`
    /// set to the saturating load's calls in flight (the default in the full run).
    pub async fn overload(&mut self) -> anyhow::Result<()> {
        let plan = self.plan.overload;
        // The listener admits exactly the saturating load's calls in flight: in the full
        // run that is the default bound, so the figure shows the gateway as shipped.
        let bound = plan.saturation.connections * plan.saturation.in_flight;
        let config = self.work.join("bench-overload.toml");
        let extra = format!("\n[server]\nmax_requests = {bound}\n");
        std::fs::write(&config, setup::config_toml(self.plan.users, &extra))?;
        let gw = self.spawn_gateway("gateway-overload", Some(&config))?;
        let pid = gw.server.pid();
        let calls = setup::establish_calls(&gw.grpc_url(), plan.calls).await?;
        let get_call = |call: &setup::EstablishedCall| {
            let request = pb::GetCallRequest {
                call_id: call.id.clone(),
            };
            (
                "/voice.v1.CallService/GetCall".to_owned(),
                grpc_frame(&request),
            )
        };
        let slots: Vec<SlotPlan> = calls
            .iter()
            .map(|c| SlotPlan {
                authorization: Some(basic_auth(c.caller)),
                requests: vec![get_call(c)],
            })
            .collect();
        let open_loop: Vec<OverloadCall> = calls
            .iter()
            .map(|c| {
                let (path, frame) = get_call(c);
                OverloadCall {
                    authorization: basic_auth(c.caller),
                    path,
                    frame,
                }
            })
            .collect();
        tokio::time::sleep(self.plan.settle).await;
        let idle_kib = ProcStatus::read(pid)?.rss_kib;

        let stop = CancellationToken::new();
        let phase = plan.saturation.warmup + plan.saturation.duration;
        let sampler = self.sample(pid, phase, &stop);
        let (saturation, error) =
            grpc_load::run(gw.grpc, Some(pid), plan.saturation, &slots).await?;
        let saturation_peak = join(sampler).await?;
        anyhow::ensure!(
            saturation.requests > 0 && saturation.errors * 1000 <= saturation.requests,
            "the saturating load failed: {} of {} calls, first: {error:?}",
            saturation.errors,
            saturation.requests + saturation.errors
        );

        let rate = plan.factor * saturation.rps;
        let shape = OverloadShape {
            rate,
            connections: plan.connections,
            // A connection's streams (`server.http2_max_streams`): the client never queues
            // for stream capacity.
            max_outstanding: voice_gateway::server::config::DEFAULT_HTTP2_MAX_STREAMS as usize,
            warmup: plan.warmup,
            duration: plan.duration,
        };
        let sampler = self.sample(pid, plan.warmup + plan.duration, &stop);
        let cpu = tokio::spawn(cpu_in_window(pid, plan.warmup, plan.duration));
        let overload = overload_load::run(gw.grpc, shape, &open_loop).await?;
        let overload_peak = join(sampler).await?;
        let cpu = cpu.await?;
        anyhow::ensure!(
            !stop.is_cancelled(),
            "the gateway passed {} MiB and was killed",
            plan.rss_cap_kib / 1024
        );
        drop(gw);
        let overload_cpu_us = cpu
            .filter(|_| overload.sent > 0)
            .map(|s| s * 1e6 / overload.sent as f64);
        self.push_overload(&OverloadRun {
            idle_kib,
            saturation,
            saturation_peak,
            rate,
            overload,
            overload_peak,
            overload_cpu_us,
        });
        Ok(())
    }

    /// Samples the gateway's RSS for `phase` (plus the load generators' lead-in).
    fn sample(
        &self,
        pid: u32,
        phase: Duration,
        stop: &CancellationToken,
    ) -> std::thread::JoinHandle<anyhow::Result<Peaks>> {
        let plan = self.plan.overload;
        let until = std::time::Instant::now() + phase + Duration::from_millis(50);
        sample_peaks(
            pid,
            plan.sample_every,
            until,
            plan.rss_cap_kib,
            stop.clone(),
        )
    }

    fn push_overload(&mut self, run: &OverloadRun) {
        let plan = self.plan.overload;
        let (sat, over) = (&run.saturation, &run.overload);
        let mib = |kib: u64| kib as f64 / 1024.0;
        let refusals = over.refused_latency;
        self.rows.push(Row {
            figure: FIGURE.into(),
            measure: format!(
                "refusals at {:.0}× the saturating rate (gRPC GetCall, {} conns, open loop): send → RESOURCE_EXHAUSTED",
                plan.factor, plan.connections
            ),
            gateway: format!(
                "p50 {:.2} ms, p99 {:.2} ms ({} refused of {} sent)",
                refusals.p50_ms, refusals.p99_ms, over.refused, over.sent
            ),
            baseline: "–".into(),
            ratio: None,
            value: refusals.p99_ms,
            target: format!("p99 ≤ {IMMEDIATE_MS} ms"),
            met: Some(over.refused > 0 && refusals.p99_ms <= IMMEDIATE_MS),
        });
        let accepted = over.accepted_latency;
        let ratio = accepted.p99_ms / sat.latency.p99_ms.max(0.001);
        self.rows.push(Row {
            figure: FIGURE.into(),
            measure: format!(
                "accepted calls' p99 at {:.0}× vs at saturation ({} in flight, closed loop)",
                plan.factor,
                plan.saturation.connections * plan.saturation.in_flight
            ),
            gateway: format!(
                "{:.0}×: p99 {:.2} ms, {:.0} accepted/s",
                plan.factor,
                accepted.p99_ms,
                over.accepted_rate()
            ),
            baseline: format!(
                "saturation: p99 {:.2} ms, {:.0} req/s",
                sat.latency.p99_ms, sat.rps
            ),
            ratio: Some(ratio),
            value: ratio,
            target: "≤ 2×".into(),
            met: Some(over.accepted > 0 && ratio <= 2.0),
        });
        let rss_ratio =
            run.overload_peak.rss_kib as f64 / run.saturation_peak.rss_kib.max(1) as f64;
        self.rows.push(Row {
            figure: FIGURE.into(),
            measure: format!("gateway peak RSS at {:.0}× vs at saturation", plan.factor),
            gateway: format!("{:.1} MiB", mib(run.overload_peak.rss_kib)),
            baseline: format!(
                "saturation: {:.1} MiB (idle {:.1} MiB)",
                mib(run.saturation_peak.rss_kib),
                mib(run.idle_kib)
            ),
            ratio: Some(rss_ratio),
            value: rss_ratio,
            target: "≤ 1.5×".into(),
            met: Some(rss_ratio <= 1.5),
        });
        let cpu = run.overload_cpu_us.map_or_else(String::new, |us| {
            format!("; gateway CPU {us:.1} µs per call sent")
        });
        self.notes.push(format!(
            "Figure 10: the gateway with `server.max_requests = {}` (the default is {}) and the other `[server]` bounds at their defaults; {} established calls read with GetCall by their callers. Saturation: closed loop, {} conns × {} streams, {:?} after {:?} warm-up: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors{}. Overload: {:.0} calls/s offered over {} HTTP/2 connections for {:?} after {:?} warm-up: {} due, {} sent ({:.0}/s), {} dropped by the client (a connection held {} calls), {} accepted, {} refused, {} other{}; the pacer handed out calls at most {:.2} ms late at p99{}.",
            plan.saturation.connections * plan.saturation.in_flight,
            voice_gateway::server::config::DEFAULT_MAX_REQUESTS,
            plan.calls,
            plan.saturation.connections,
            plan.saturation.in_flight,
            plan.saturation.duration,
            plan.saturation.warmup,
            sat.rps,
            sat.latency.p50_ms,
            sat.latency.p99_ms,
            sat.errors,
            sat.server_cpu_us
                .map(|us| format!(", gateway CPU {us:.1} µs per call"))
                .unwrap_or_default(),
            run.rate,
            plan.connections,
            plan.duration,
            plan.warmup,
            over.offered,
            over.sent,
            over.sent_rate(),
            over.dropped,
            voice_gateway::server::config::DEFAULT_HTTP2_MAX_STREAMS,
            over.accepted,
            over.refused,
            over.failed,
            over.first_error
                .as_ref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default(),
            over.lag.p99_ms,
            cpu
        ));
    }
}

/// Waits for an RSS sampler's thread.
async fn join(sampler: std::thread::JoinHandle<anyhow::Result<Peaks>>) -> anyhow::Result<Peaks> {
    tokio::task::spawn_blocking(move || sampler.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the RSS sampler panicked"))?
}

/// Returns the CPU seconds process `pid` used in the window that starts `warmup` from now
/// (plus the load generator's lead-in) and lasts `duration`.
async fn cpu_in_window(pid: u32, warmup: Duration, duration: Duration) -> Option<f64> {
    tokio::time::sleep(warmup + Duration::from_millis(20)).await;
    let before = cpu_seconds(pid).ok()?;
    tokio::time::sleep(duration).await;
    let after = cpu_seconds(pid).ok()?;
    Some(after - before)
}
