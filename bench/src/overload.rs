//! Figure 10 (issue 14): overload. The gateway with the default `[server]` bounds is first
//! driven open loop ([`crate::overload_load`]) at rising rates, from half of what a
//! closed-loop load with as many calls in flight as the listener admits
//! (`server.max_requests`) got through, each step `growth` times the last, until the calls
//! it accepts per second stop rising: the step that accepted the most gives the saturating
//! rate and the accepted calls' p99 at saturation. Then the same load offers
//! `factor` times that rate for a bounded time. Reported: how fast refusals come (they must
//! be immediate) and that no call went unanswered, the accepted calls' p99 against their
//! p99 at saturation (at most 2×), and the gateway's RSS before, at its peak and after
//! (bounded: the shed keeps queues from growing).

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use voice_gateway::grpc::pb;

use crate::canary::{Canary, Steadiness};
use crate::figures::Bench;
use crate::grpc_load::{self, LoadResult, LoadShape, SlotPlan, grpc_frame};
use crate::overload_load::{self, OverloadCall, OverloadResult, OverloadShape, ProbeResult};
use crate::process::{Peaks, ProcStatus, cpu_seconds, sample_peaks};
use crate::report::Row;
use crate::setup::{self, basic_auth};

const FIGURE: &str = "10. Overload";
/// What "immediate" means for a refusal: its p99, send to answer, on loopback.
const IMMEDIATE_MS: f64 = 10.0;
/// The ramp goes on while a step accepts at least this many times the most calls per
/// second a step before it accepted: throughput still rising with the offer. A criterion on
/// the offer (accepted ≥ 90% of it) stopped the first full run at 9,835 accepted/s, when a
/// latency spike of the shared machine filled the listener's bound, while three times that
/// offer then got 22,444 accepted/s through.
const RISING: f64 = 1.05;

/// The shape of figure 10.
#[derive(Debug, Clone, Copy)]
pub struct OverloadPlan {
    /// Established calls the load reads (GetCall by each call's caller).
    pub calls: usize,
    /// The closed-loop load whose throughput starts the ramp: connections × streams is
    /// the gateway's `server.max_requests` (the default in the full run).
    pub saturation: LoadShape,
    /// Each ramp step's warm-up and measured time.
    pub step: (Duration, Duration),
    /// Each ramp step offers this many times the last.
    pub growth: f64,
    /// The ramp stops after this many steps, saturated or not.
    pub max_steps: usize,
    /// Refusals measured one by one with every slot held and the CPU idle.
    pub probes: usize,
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
    /// The closed-loop estimate.
    estimate: LoadResult,
    /// The ramp's steps, offered rate and result.
    ramp: Vec<(f64, OverloadResult)>,
    /// The step that accepted the most calls per second.
    saturated: usize,
    saturation_peak: Peaks,
    rate: f64,
    overload: OverloadResult,
    overload_peak: Peaks,
    /// RSS once the overload is over and the gateway settled.
    after_kib: u64,
    /// Refusals with every slot held and the CPU idle.
    probe: ProbeResult,
    overload_cpu_us: Option<f64>,
    /// How steady the machine was in the overload's window.
    steadiness: Steadiness,
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

        let shape = |rate: f64, warmup: Duration, duration: Duration| OverloadShape {
            rate,
            connections: plan.connections,
            // A connection's streams (`server.http2_max_streams`): the client never queues
            // for stream capacity.
            max_outstanding: voice_gateway::server::config::DEFAULT_HTTP2_MAX_STREAMS as usize,
            warmup,
            duration,
        };
        let stop = CancellationToken::new();
        let (estimate, error) = grpc_load::run(gw.grpc, Some(pid), plan.saturation, &slots).await?;
        anyhow::ensure!(
            estimate.requests > 0 && estimate.errors * 1000 <= estimate.requests,
            "the closed-loop load failed: {} of {} calls, first: {error:?}",
            estimate.errors,
            estimate.requests + estimate.errors
        );
        let mut ramp = Vec::new();
        let mut saturation_peak = Peaks::default();
        let mut rate = estimate.rps / 2.0;
        while ramp.len() < plan.max_steps {
            let (warmup, duration) = plan.step;
            let sampler = self.sample(pid, warmup + duration, &stop);
            let step =
                overload_load::run(gw.grpc, shape(rate, warmup, duration), &open_loop).await?;
            let peak = join(sampler).await?;
            let most = ramp
                .iter()
                .map(|(_, r): &(f64, OverloadResult)| r.accepted_rate())
                .fold(0.0, f64::max);
            let rising = step.accepted_rate() >= RISING * most;
            if step.accepted_rate() > most {
                saturation_peak = peak;
            }
            ramp.push((rate, step));
            if !rising {
                break;
            }
            rate *= plan.growth;
        }
        let saturated = (0..ramp.len())
            .max_by(|&a, &b| {
                ramp[a]
                    .1
                    .accepted_rate()
                    .total_cmp(&ramp[b].1.accepted_rate())
            })
            .expect("at least one step");
        anyhow::ensure!(
            ramp[saturated].1.accepted > 0 && !stop.is_cancelled(),
            "the ramp accepted no call"
        );

        let rate = plan.factor * ramp[saturated].1.accepted_rate();
        let sampler = self.sample(pid, plan.warmup + plan.duration, &stop);
        let cpu = tokio::spawn(cpu_in_window(pid, plan.warmup, plan.duration));
        let overload =
            overload_load::run(gw.grpc, shape(rate, plan.warmup, plan.duration), &open_loop)
                .await?;
        let overload_peak = join(sampler).await?;
        let (cpu, steadiness) = cpu.await?;
        anyhow::ensure!(
            !stop.is_cancelled(),
            "the gateway passed {} MiB and was killed",
            plan.rss_cap_kib / 1024
        );
        tokio::time::sleep(self.plan.settle).await;
        let after_kib = ProcStatus::read(pid)?.rss_kib;
        let probe =
            overload_load::probe_full_listener(gw.grpc, bound, plan.probes, &open_loop[0]).await?;
        drop(gw);
        let overload_cpu_us = cpu
            .filter(|_| overload.sent > 0)
            .map(|s| s * 1e6 / overload.sent as f64);
        self.push_overload(&OverloadRun {
            idle_kib,
            estimate,
            ramp,
            saturated,
            saturation_peak,
            rate,
            overload,
            overload_peak,
            after_kib,
            probe,
            overload_cpu_us,
            steadiness,
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
        let (sat_rate, sat) = &run.ramp[run.saturated];
        let over = &run.overload;
        let mib = |kib: u64| kib as f64 / 1024.0;
        let refusals = over.refused_latency;
        self.rows.push(Row {
            figure: FIGURE.into(),
            measure: format!(
                "refusals at {:.0}× the saturating rate (gRPC GetCall, {} conns, open loop): send → RESOURCE_EXHAUSTED",
                plan.factor, plan.connections
            ),
            gateway: format!(
                "p50 {:.2} ms, p99 {:.2} ms ({} sent: {} accepted, {} refused, {} lost)",
                refusals.p50_ms,
                refusals.p99_ms,
                over.sent,
                over.accepted,
                over.refused,
                over.failed
            ),
            baseline: "–".into(),
            ratio: None,
            value: refusals.p99_ms,
            target: format!("p99 ≤ {IMMEDIATE_MS} ms, none lost"),
            met: Some(over.refused > 0 && over.failed == 0 && refusals.p99_ms <= IMMEDIATE_MS),
        });
        let probe = &run.probe;
        self.rows.push(Row {
            figure: FIGURE.into(),
            measure: format!(
                "refusals with every slot held and the CPU idle ({} calls held, {} sent one by one): send → RESOURCE_EXHAUSTED",
                probe.held, probe.sent
            ),
            gateway: format!(
                "p50 {:.2} ms, p99 {:.2} ms ({} of {} refused{})",
                probe.refused_latency.p50_ms,
                probe.refused_latency.p99_ms,
                probe.refused,
                probe.sent,
                probe
                    .first_other
                    .as_ref()
                    .map(|e| format!("; first other answer: {e}"))
                    .unwrap_or_default()
            ),
            baseline: "–".into(),
            ratio: None,
            value: probe.refused_latency.p99_ms,
            target: format!("p99 ≤ {IMMEDIATE_MS} ms, all refused"),
            met: Some(
                probe.sent > 0
                    && probe.refused == probe.sent
                    && probe.refused_latency.p99_ms <= IMMEDIATE_MS,
            ),
        });
        let accepted = over.accepted_latency;
        let ratio = accepted.p99_ms / sat.accepted_latency.p99_ms.max(0.001);
        self.rows.push(Row {
            figure: FIGURE.into(),
            measure: format!(
                "accepted calls' p99 at {:.0}× vs at saturation (open loop, the ramp step that accepted the most)",
                plan.factor,
            ),
            gateway: format!(
                "{:.0}×: p99 {:.2} ms, {:.0} accepted/s",
                plan.factor,
                accepted.p99_ms,
                over.accepted_rate()
            ),
            baseline: format!(
                "saturation ({sat_rate:.0}/s offered): p99 {:.2} ms, {:.0} accepted/s",
                sat.accepted_latency.p99_ms,
                sat.accepted_rate()
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
            measure: format!("gateway RSS: peak at {:.0}× vs at saturation", plan.factor),
            gateway: format!(
                "peak {:.1} MiB, after {:.1} MiB",
                mib(run.overload_peak.rss_kib),
                mib(run.after_kib)
            ),
            baseline: format!(
                "saturation: {:.1} MiB (before: {:.1} MiB)",
                mib(run.saturation_peak.rss_kib),
                mib(run.idle_kib)
            ),
            ratio: Some(rss_ratio),
            value: rss_ratio,
            target: "≤ 1.5×".into(),
            met: Some(rss_ratio <= 1.5),
        });
        self.chart_latency(
            FIGURE,
            &format!("latency at saturation and at {:.0}× its rate", plan.factor),
            vec![
                ("accepted, saturation".into(), sat.accepted_latency),
                (format!("accepted, {:.0}×", plan.factor), accepted),
                (format!("refused, {:.0}×", plan.factor), refusals),
            ],
        );
        self.notes.push(overload_note(&plan, run));
    }
}

/// The figure's note: the configuration, the ramp, and the overload's counts.
fn overload_note(plan: &OverloadPlan, run: &OverloadRun) -> String {
    let (est, over) = (&run.estimate, &run.overload);
    let steps: Vec<String> = run
        .ramp
        .iter()
        .map(|(rate, r)| {
            format!(
                "{rate:.0} → {:.0} accepted/s (p99 {:.2} ms, {} refused)",
                r.accepted_rate(),
                r.accepted_latency.p99_ms,
                r.refused
            )
        })
        .collect();
    let cpu = run.overload_cpu_us.map_or_else(String::new, |us| {
        format!("; gateway CPU {us:.1} µs per call sent")
    });
    format!(
        "Figure 10: the gateway with `server.max_requests = {}` (the default is {}) and the other `[server]` bounds at their defaults; {} established calls read with GetCall by their callers. Closed loop, {} conns × {} streams, {:?} after {:?} warm-up: {:.0} req/s (p99 {:.2} ms); the open-loop ramp from half that, {:?} per step after {:?}, ×{} each, until a step accepts less than {:.0}% more calls per second than the best before it: {}. Overload: {:.0} calls/s offered over {} HTTP/2 connections for {:?} after {:?} warm-up: {} due, {} sent ({:.0}/s), {} dropped by the client (a connection held {} calls), {} accepted, {} refused, {} other{}; the pacer handed out calls at most {:.2} ms late at p99{}; in the overload's window, {}.",
        plan.saturation.connections * plan.saturation.in_flight,
        voice_gateway::server::config::DEFAULT_MAX_REQUESTS,
        plan.calls,
        plan.saturation.connections,
        plan.saturation.in_flight,
        plan.saturation.duration,
        plan.saturation.warmup,
        est.rps,
        est.latency.p99_ms,
        plan.step.1,
        plan.step.0,
        plan.growth,
        (RISING - 1.0) * 100.0,
        steps.join("; "),
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
        cpu,
        run.steadiness.describe()
    )
}

/// Waits for an RSS sampler's thread.
async fn join(sampler: std::thread::JoinHandle<anyhow::Result<Peaks>>) -> anyhow::Result<Peaks> {
    tokio::task::spawn_blocking(move || sampler.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the RSS sampler panicked"))?
}

/// Returns the CPU seconds process `pid` used in the window that starts `warmup` from now
/// (plus the load generator's lead-in) and lasts `duration`, and how steady the machine
/// was meanwhile.
async fn cpu_in_window(
    pid: u32,
    warmup: Duration,
    duration: Duration,
) -> (Option<f64>, Steadiness) {
    tokio::time::sleep(warmup + Duration::from_millis(20)).await;
    let before = cpu_seconds(pid).ok();
    let canary = Canary::start();
    tokio::time::sleep(duration).await;
    let steadiness = canary.stop_async().await;
    let after = cpu_seconds(pid).ok();
    (before.zip(after).map(|(b, a)| a - b), steadiness)
}
