//! A closed-loop gRPC unary load generator over raw HTTP/2 (the `h2` crate), like
//! `h2load -c C -m M`: C connections, M streams in flight on each, every request a
//! pre-encoded gRPC frame. A request counts as done only when its trailers say
//! `grpc-status: 0`; anything else is an error. The same generator drives the gateway and
//! the bare tonic server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderValue, Request};
use tokio::net::TcpStream;

use crate::stats::{Latency, LatencySummary};

/// The shape of a closed-loop run.
#[derive(Debug, Clone, Copy)]
pub struct LoadShape {
    /// Connections.
    pub connections: usize,
    /// Requests in flight per connection (HTTP/2 streams; 1 for HTTP/1.1).
    pub in_flight: usize,
    /// Time before measuring.
    pub warmup: Duration,
    /// Measured time.
    pub duration: Duration,
}

/// What one in-flight slot sends, in turn (e.g. StartCallRecording, then Stop, on its call).
#[derive(Debug, Clone)]
pub struct SlotPlan {
    /// The `authorization` value, if any.
    pub authorization: Option<String>,
    /// The requests (path, body) sent in rotation.
    pub requests: Vec<(String, Bytes)>,
}

/// The outcome of a run.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct LoadResult {
    /// Requests completed successfully in the measured window.
    pub requests: u64,
    /// Failed requests in the measured window.
    pub errors: u64,
    /// Successful requests per second.
    pub rps: f64,
    /// Latency of the successful requests.
    pub latency: LatencySummary,
    /// The server process's CPU time (user + system) in the measured window divided by
    /// the successful requests, in µs; `None` when the server's pid is unknown.
    pub server_cpu_us: Option<f64>,
}

/// Opens one HTTP/2 connection with the load generators' flow-control windows; its driver
/// runs as a task of its own.
pub(crate) async fn connect(addr: SocketAddr) -> anyhow::Result<h2::client::SendRequest<Bytes>> {
    let tcp = TcpStream::connect(addr).await.context("cannot connect")?;
    tcp.set_nodelay(true)?;
    handshake(
        tcp,
        h2::client::Builder::new()
            .initial_window_size(1 << 20)
            .initial_connection_window_size(1 << 24),
    )
    .await
}

/// Runs the HTTP/2 handshake on `tcp` with `builder`; the connection's driver runs as a task
/// of its own.
pub(crate) async fn handshake(
    tcp: TcpStream,
    builder: &h2::client::Builder,
) -> anyhow::Result<h2::client::SendRequest<Bytes>> {
    let (sender, connection) = builder
        .handshake::<_, Bytes>(tcp)
        .await
        .context("HTTP/2 handshake failed")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// The StartCallRecording and StopCallRecording requests (path, gRPC frame) on one call,
/// which figures 1 and 7 send in rotation.
pub fn recording_requests(call_id: &str) -> Vec<(String, Bytes)> {
    use voice_gateway::grpc::pb;
    vec![
        (
            "/voice.v1.CallService/StartCallRecording".into(),
            grpc_frame(&pb::StartCallRecordingRequest {
                call_id: call_id.to_owned(),
            }),
        ),
        (
            "/voice.v1.CallService/StopCallRecording".into(),
            grpc_frame(&pb::StopCallRecordingRequest {
                call_id: call_id.to_owned(),
            }),
        ),
    ]
}

/// Frames a protobuf message as a gRPC message (uncompressed).
pub fn grpc_frame(message: &impl prost::Message) -> Bytes {
    let body = message.encode_to_vec();
    let mut frame = Vec::with_capacity(body.len() + 5);
    frame.push(0);
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    frame.into()
}

/// Window of a run, shared by its tasks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) start: Instant,
    pub(crate) end: Instant,
}

impl Window {
    pub(crate) fn new(shape: &LoadShape) -> Self {
        let start = Instant::now() + shape.warmup;
        Self {
            start,
            end: start + shape.duration,
        }
    }

    /// Spawns a task that returns the CPU seconds process `pid` used inside the window.
    pub(crate) fn cpu_of(self, pid: Option<u32>) -> tokio::task::JoinHandle<Option<f64>> {
        tokio::spawn(async move {
            let pid = pid?;
            tokio::time::sleep_until(self.start.into()).await;
            let before = crate::process::cpu_seconds(pid).ok()?;
            tokio::time::sleep_until(self.end.into()).await;
            let after = crate::process::cpu_seconds(pid).ok()?;
            Some(after - before)
        })
    }

    pub(crate) fn contains(&self, at: Instant) -> bool {
        at >= self.start && at < self.end
    }
}

/// Per-slot tallies, merged at the end.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) latency: Latency,
    pub(crate) first_error: Option<String>,
}

impl Tally {
    pub(crate) fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.latency.merge(&other.latency);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    pub(crate) fn result(
        self,
        shape: &LoadShape,
        server_cpu: Option<f64>,
    ) -> (LoadResult, Option<String>) {
        let result = LoadResult {
            requests: self.ok,
            errors: self.errors,
            rps: self.ok as f64 / shape.duration.as_secs_f64(),
            latency: self.latency.summary(),
            server_cpu_us: server_cpu
                .filter(|_| self.ok > 0)
                .map(|secs| secs * 1e6 / self.ok as f64),
        };
        (result, self.first_error)
    }
}

/// Runs the load; `plans` has one entry per slot (`connections * in_flight`), reused
/// cyclically if shorter. With the server's `pid`, its CPU time per request is measured too.
pub async fn run(
    addr: SocketAddr,
    pid: Option<u32>,
    shape: LoadShape,
    plans: &[SlotPlan],
) -> anyhow::Result<(LoadResult, Option<String>)> {
    anyhow::ensure!(!plans.is_empty(), "no request plans");
    let authority = Arc::<str>::from(addr.to_string());
    let mut senders = Vec::with_capacity(shape.connections);
    for _ in 0..shape.connections {
        senders.push(connect(addr).await?);
    }
    let window = Window::new(&shape);
    let cpu = window.cpu_of(pid);
    let mut tasks = Vec::new();
    for (c, sender) in senders.iter().enumerate() {
        for m in 0..shape.in_flight {
            let plan = plans[(c * shape.in_flight + m) % plans.len()].clone();
            let sender = sender.clone();
            let authority = authority.clone();
            tasks.push(tokio::spawn(slot(sender, authority, plan, window)));
        }
    }
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(task.await?);
    }
    Ok(tally.result(&shape, cpu.await?))
}

async fn slot(
    sender: h2::client::SendRequest<Bytes>,
    authority: Arc<str>,
    plan: SlotPlan,
    window: Window,
) -> Tally {
    let mut tally = Tally::default();
    let uris: Vec<String> = plan
        .requests
        .iter()
        .map(|(path, _)| format!("http://{authority}{path}"))
        .collect();
    let authorization = plan
        .authorization
        .as_deref()
        .map(|v| HeaderValue::from_str(v).expect("ascii authorization"));
    let mut turn = 0usize;
    loop {
        let began = Instant::now();
        if began >= window.end {
            return tally;
        }
        let index = turn % plan.requests.len();
        let body = plan.requests[index].1.clone();
        turn += 1;
        let mut request = Request::post(uris[index].as_str())
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .expect("valid request");
        if let Some(value) = &authorization {
            request.headers_mut().insert("authorization", value.clone());
        }
        let outcome = unary(&sender, request, body).await;
        let done = Instant::now();
        if !window.contains(done) {
            if outcome.is_err() && done >= window.end {
                return tally;
            }
            continue;
        }
        match outcome {
            Ok(()) => {
                tally.ok += 1;
                tally.latency.record_us((done - began).as_micros() as u64);
            }
            Err(error) => {
                tally.errors += 1;
                if tally.first_error.is_none() {
                    tally.first_error = Some(format!("{error:#}"));
                }
            }
        }
    }
}

/// Sends one unary call and reads it to the end; `Err` unless `grpc-status` is 0.
pub(crate) async fn unary(
    sender: &h2::client::SendRequest<Bytes>,
    request: Request<()>,
    body: Bytes,
) -> anyhow::Result<()> {
    let mut ready = sender.clone().ready().await?;
    let (response, mut stream) = ready.send_request(request, false)?;
    stream.send_data(body, true)?;
    let response = response.await?;
    let (parts, mut body) = response.into_parts();
    anyhow::ensure!(
        parts.status == http::StatusCode::OK,
        "HTTP {}",
        parts.status
    );
    if let Some(status) = parts.headers.get("grpc-status") {
        // Trailers-only response: an error (or an empty OK).
        anyhow::ensure!(status == "0", "grpc-status {status:?}");
        return Ok(());
    }
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body.trailers().await?.context("no trailers")?;
    let status = trailers.get("grpc-status").context("no grpc-status")?;
    if status != "0" {
        let message = trailers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        anyhow::bail!("grpc-status {status:?} {message}");
    }
    Ok(())
}
