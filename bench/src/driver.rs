//! The event driver of the fan-out figure: StartCallRecording and StopCallRecording, in
//! turn, on established calls taken round-robin, sent at a fixed rate (open loop) through
//! the gateway's gRPC API. Each operation commits one call event per party. The send time
//! of each operation is kept by (call id, recording after it) so that a notification
//! without a commit time (CometD) can be timed from the operation that caused it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use voice_gateway::grpc::pb;
use voice_gateway::grpc::pb::call_service_client::CallServiceClient;

use crate::setup::{EstablishedCall, as_agent};

/// Send times of operations, by (call id, recording after the operation).
pub type SendTimes = Arc<Mutex<HashMap<(String, bool), SystemTime>>>;

/// What the driver did.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct DriveResult {
    /// Operations that succeeded.
    pub ops: u64,
    /// Operations that failed.
    pub errors: u64,
    /// Operations per second actually achieved.
    pub ops_per_sec: f64,
}

/// Runs operations at `ops_per_sec` for `duration`. Each call starts not recording.
pub async fn drive(
    grpc_url: &str,
    calls: &[EstablishedCall],
    ops_per_sec: f64,
    duration: Duration,
    sent: SendTimes,
) -> anyhow::Result<DriveResult> {
    anyhow::ensure!(!calls.is_empty(), "no calls to drive");
    let channel = tonic::transport::Endpoint::from_shared(grpc_url.to_owned())?
        .connect()
        .await
        .context("cannot connect to the gateway")?;
    let client = CallServiceClient::new(channel);
    let mut recording = vec![false; calls.len()];
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / ops_per_sec));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = (ops_per_sec * duration.as_secs_f64()).round() as u64;
    let began = tokio::time::Instant::now();
    let mut pending = Vec::with_capacity(total as usize);
    for n in 0..total as usize {
        ticker.tick().await;
        let k = n % calls.len();
        let call = &calls[k];
        let start = !recording[k];
        recording[k] = start;
        let mut client = client.clone();
        let id = call.id.clone();
        let caller = call.caller;
        sent.lock()
            .expect("send times lock")
            .insert((id.clone(), start), SystemTime::now());
        pending.push(tokio::spawn(async move {
            let result = if start {
                let request = pb::StartCallRecordingRequest { call_id: id };
                client
                    .start_call_recording(as_agent(caller, request))
                    .await
                    .map(drop)
            } else {
                let request = pb::StopCallRecordingRequest { call_id: id };
                client
                    .stop_call_recording(as_agent(caller, request))
                    .await
                    .map(drop)
            };
            result.is_ok()
        }));
    }
    let mut result = DriveResult::default();
    for task in pending {
        if task.await? {
            result.ops += 1;
        } else {
            result.errors += 1;
        }
    }
    result.ops_per_sec = result.ops as f64 / began.elapsed().as_secs_f64();
    Ok(result)
}

/// Runs operations closed-loop, `in_flight` at a time, until `until` (a saturating
/// driver); each task owns every `in_flight`-th call and alternates on it.
pub async fn saturate_gateway(
    grpc_url: &str,
    calls: &[EstablishedCall],
    in_flight: usize,
    until: tokio::time::Instant,
    sent: SendTimes,
) -> anyhow::Result<DriveResult> {
    let channel = tonic::transport::Endpoint::from_shared(grpc_url.to_owned())?
        .connect()
        .await
        .context("cannot connect to the gateway")?;
    let client = CallServiceClient::new(channel);
    let began = tokio::time::Instant::now();
    let tasks: Vec<_> = (0..in_flight.min(calls.len()))
        .map(|j| {
            let mut client = client.clone();
            let owned: Vec<EstablishedCall> =
                calls.iter().skip(j).step_by(in_flight).cloned().collect();
            let sent = sent.clone();
            tokio::spawn(async move {
                let mut result = DriveResult::default();
                let mut recording = vec![false; owned.len()];
                let mut n = 0usize;
                while tokio::time::Instant::now() < until {
                    let k = n % owned.len();
                    n += 1;
                    let start = !recording[k];
                    recording[k] = start;
                    let call = &owned[k];
                    sent.lock()
                        .expect("send times lock")
                        .insert((call.id.clone(), start), SystemTime::now());
                    let ok = if start {
                        let request = pb::StartCallRecordingRequest {
                            call_id: call.id.clone(),
                        };
                        client
                            .start_call_recording(as_agent(call.caller, request))
                            .await
                            .is_ok()
                    } else {
                        let request = pb::StopCallRecordingRequest {
                            call_id: call.id.clone(),
                        };
                        client
                            .stop_call_recording(as_agent(call.caller, request))
                            .await
                            .is_ok()
                    };
                    if ok {
                        result.ops += 1;
                    } else {
                        result.errors += 1;
                        recording[k] = !start;
                    }
                }
                result
            })
        })
        .collect();
    let mut total = DriveResult::default();
    for task in tasks {
        let result = task.await?;
        total.ops += result.ops;
        total.errors += result.errors;
    }
    total.ops_per_sec = total.ops as f64 / began.elapsed().as_secs_f64();
    Ok(total)
}

/// Publishes to Faye closed-loop, `in_flight` publishers on their own connections, until
/// `until`: each publish is one batch of two messages, to the channels of agents `2k` and
/// `2k+1` for `k` in turn below `pairs` (as one gateway operation notifies both parties),
/// with `payload` as data plus `sent_us`.
pub async fn saturate_faye(
    addr: std::net::SocketAddr,
    pairs: usize,
    in_flight: usize,
    until: tokio::time::Instant,
    payload: serde_json::Value,
) -> anyhow::Result<DriveResult> {
    use crate::cometd::{Session, faye_channel};
    let began = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for j in 0..in_flight.min(pairs.max(1)) {
        let mut session = Session::connect(addr, None).await?;
        session.handshake_and_subscribe("").await?;
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let mut result = DriveResult::default();
            let mut k = j;
            while tokio::time::Instant::now() < until {
                let sent_us = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros() as u64);
                let mut data = payload.clone();
                data["sent_us"] = serde_json::json!(sent_us);
                let batch = [2 * k, 2 * k + 1]
                    .iter()
                    .map(|&agent| serde_json::json!({"channel": faye_channel(agent), "data": data}))
                    .collect();
                k = (k + in_flight) % pairs.max(1);
                match session.post_batch("", batch).await {
                    Ok(replies)
                        if replies
                            .iter()
                            .all(|r| r["successful"] == serde_json::json!(true)) =>
                    {
                        result.ops += 1;
                    }
                    _ => result.errors += 1,
                }
            }
            result
        }));
    }
    let mut total = DriveResult::default();
    for task in tasks {
        let result = task.await?;
        total.ops += result.ops;
        total.errors += result.errors;
    }
    total.ops_per_sec = total.ops as f64 / began.elapsed().as_secs_f64();
    Ok(total)
}
