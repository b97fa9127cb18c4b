//! A fixed number of figure 1 or figure 2 requests against one server that is already
//! running (the gateway, bare tonic or bare axum), for instruction counting: on a shared
//! machine req/s and CPU time move with whatever else runs, but the instructions a server
//! executes for a fixed request count do not. Run the server under
//! `valgrind --tool=callgrind` and pass `--before "callgrind_control -z PID"` and
//! `--after "callgrind_control -d PID"`: the counters then cover exactly the measured
//! requests (after the set-up and a warm-up that fills caches, hpack tables and sessions).
//!
//! The requests are figure 1's and figure 2's: Start/StopCallRecording in turn on one
//! established call per slot with Basic credentials (the gateway, with figure 1's
//! WatchCalls streams open), or the bare RPC / bare JSON handler with the same headers.
//!
//! `gateway-cometd` counts figure 3 against Faye's unit, a delivered CometD message: figure
//! 1's gRPC operations with a long-polling session (one HTTP/1.1 connection each, the
//! figure's client) held by both parties of every call, so each operation delivers two
//! messages; the run checks that they all arrived. The operations go in rounds, one per
//! slot, each waiting for its messages and the clients' re-polls, so that every message
//! is one long-poll cycle whatever the timing under valgrind. Its count less a
//! `gateway-grpc` count without watchers (`--watchers 0`), over twice the requests, is
//! what a message's long-poll cycle costs beyond its operation.
//!
//! `gateway-bridge` counts figure 7's B: `--addr` is a gateway in bridge mode whose
//! upstream (U, run natively) already runs. The agents sign in on B and the calls are set
//! up through it as in figure 7, then figure 1's operations go in rounds, one per slot,
//! each followed by a pause in which U's two notifications of each operation reach B and
//! are mirrored: what B spends on an operation, its upstream request and the mirroring of
//! what the operation changed, each notification one connect cycle as at figure 7's rate.
//! With `--admin` (B's admin listener) the run checks, after `--after`, that B committed
//! two events per measured operation.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::cometd::{Flavor, SessionFleet};
use crate::driver::SendTimes;
use crate::grpc_load::{self, SlotPlan, grpc_frame};
use crate::setup::{self, EstablishedCall, basic_auth};
use crate::watchers::WatchFleet;

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// The gateway's gRPC listener (figure 1).
    GatewayGrpc,
    /// The gateway's HTTP listener (figure 2).
    GatewayJson,
    /// The bare tonic baseline.
    BareTonic,
    /// The bare axum baseline.
    BareAxum,
    /// The gateway's gRPC listener, with a CometD long-poll session per party on its HTTP
    /// listener (figure 3 against Faye).
    GatewayCometd,
    /// A gateway in bridge mode (figure 7's B), its upstream already running.
    GatewayBridge,
}

/// The shape of a counted run.
#[derive(Debug, Clone)]
pub struct CountShape {
    /// The server.
    pub target: Target,
    /// Its listener (the gRPC one for the gateway, which also serves the set-up calls).
    pub addr: SocketAddr,
    /// The gateway's HTTP listener (for [`Target::GatewayJson`] and
    /// [`Target::GatewayCometd`]).
    pub http: Option<SocketAddr>,
    /// Connections.
    pub connections: usize,
    /// Requests in flight per connection (gRPC only; HTTP/1.1 has one).
    pub in_flight: usize,
    /// Measured requests, spread evenly over the slots (rounded up to an even count per
    /// slot, so that every call ends as it started).
    pub requests: usize,
    /// Warm-up requests per slot, before `before` runs.
    pub warmup_per_slot: usize,
    /// WatchCalls streams held open on the gateway (figure 1 holds 100).
    pub watchers: usize,
    /// Shell command run after the warm-up (e.g. `callgrind_control -z PID`).
    pub before: Option<String>,
    /// Shell command run after the measured requests and a pause (e.g. `callgrind_control -d PID`).
    pub after: Option<String>,
    /// The gateway's admin listener ([`Target::GatewayBridge`]: to check what B committed).
    pub admin: Option<SocketAddr>,
}

/// [`Target::GatewayBridge`]: the pause after each round, long enough under callgrind for
/// U's notifications of the round to be mirrored and B's client to connect again.
const BRIDGE_ROUND_PAUSE: Duration = Duration::from_millis(400);

/// Runs the counted load; returns the measured requests that succeeded.
pub async fn run(shape: CountShape) -> anyhow::Result<u64> {
    let slots = match shape.target {
        Target::GatewayGrpc | Target::BareTonic | Target::GatewayCometd | Target::GatewayBridge => {
            shape.connections * shape.in_flight
        }
        Target::GatewayJson | Target::BareAxum => shape.connections,
    };
    let gateway = !matches!(shape.target, Target::BareTonic | Target::BareAxum);
    let grpc_url = format!("http://{}", shape.addr);
    let calls = if shape.target == Target::GatewayBridge {
        crate::bridge::establish_through(&grpc_url, slots).await?
    } else if gateway {
        setup::establish_calls(&grpc_url, slots).await?
    } else {
        (0..slots)
            .map(|k| EstablishedCall {
                id: format!("bare-{k}"),
                caller: 2 * k,
                callee: 2 * k + 1,
            })
            .collect()
    };
    let fleet = if gateway && shape.watchers > 0 {
        Some(WatchFleet::open(&grpc_url, 0..shape.watchers, 50).await?)
    } else {
        None
    };
    // Both parties of every call (agents 2k and 2k + 1), as figure 3 against Faye.
    let sessions = if shape.target == Target::GatewayCometd {
        let http = shape.http.context("--http is required")?;
        let flavor = Flavor::Gateway(SendTimes::default());
        Some(SessionFleet::open(http, 0..2 * slots, flavor).await?)
    } else {
        None
    };
    let plans = plans(shape.target, &calls);
    let per_slot = shape.requests.div_ceil(slots).next_multiple_of(2);
    let warmup = shape.warmup_per_slot.next_multiple_of(2);
    let ok = match shape.target {
        Target::GatewayGrpc | Target::BareTonic | Target::GatewayCometd | Target::GatewayBridge => {
            grpc(&shape, &plans, warmup, per_slot, sessions.as_ref()).await?
        }
        Target::GatewayJson | Target::BareAxum => {
            let addr = match shape.target {
                Target::GatewayJson => shape.http.context("--http is required")?,
                _ => shape.addr,
            };
            json(&shape, addr, &plans, warmup, per_slot).await?
        }
    };
    if let Some(sessions) = sessions {
        let seen = sessions.close().await?;
        eprintln!(
            "count: CometD sessions received {} messages, {} failed",
            seen.all_messages, seen.failed
        );
        anyhow::ensure!(
            seen.failed == 0,
            "a CometD session failed: {:?}",
            seen.first_error
        );
    }
    if let Some(fleet) = fleet {
        let watched = fleet.close().await?;
        eprintln!(
            "count: watchers received {} events, {} failed",
            watched.all_events, watched.failed_streams
        );
    }
    Ok(ok)
}

fn plans(target: Target, calls: &[EstablishedCall]) -> Vec<SlotPlan> {
    calls
        .iter()
        .map(|c| {
            let path = format!("/api/v2/me/calls/{}", c.id);
            let start = Bytes::from_static(br#"{"operationName":"StartCallRecording"}"#);
            let stop = Bytes::from_static(br#"{"operationName":"StopCallRecording"}"#);
            let requests = match target {
                Target::GatewayGrpc | Target::GatewayCometd | Target::GatewayBridge => {
                    grpc_load::recording_requests(&c.id)
                }
                Target::BareTonic => vec![(
                    crate::servers::BARE_PATH.into(),
                    grpc_frame(&crate::servers::pb::EmptyRequest {}),
                )],
                Target::GatewayJson | Target::BareAxum => {
                    vec![(path.clone(), start), (path, stop)]
                }
            };
            SlotPlan {
                authorization: Some(basic_auth(c.caller)),
                requests,
            }
        })
        .collect()
}

async fn hook(command: Option<&String>) -> anyhow::Result<()> {
    if let Some(command) = command {
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .status()
            .await?;
        anyhow::ensure!(status.success(), "{command:?} failed: {status}");
    }
    Ok(())
}

/// Warms up, runs `before`, sends the measured requests, lets their consequences go out,
/// runs `after`. With `sessions` ([`Target::GatewayCometd`]) each phase ends once the
/// sessions received two messages per operation (then a pause for the clients' next
/// connects); otherwise after a pause in which the watchers' events go out.
async fn measured<F, Fut>(
    shape: &CountShape,
    warmup: usize,
    per_slot: usize,
    sessions: Option<&SessionFleet>,
    mut phase: F,
) -> anyhow::Result<u64>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>>,
{
    if let Some(sessions) = sessions {
        sessions.set_recording(true);
    }
    let warm = phase(warmup).await?;
    delivered(sessions, warm).await?;
    let committed = match shape.admin {
        Some(admin) => Some(events_committed(admin).await?),
        None => None,
    };
    hook(shape.before.as_ref()).await?;
    let began = Instant::now();
    let ok = phase(per_slot).await?;
    eprintln!("count: {ok} requests in {:?}", began.elapsed());
    match sessions {
        Some(sessions) => {
            delivered(Some(sessions), ok).await?;
            eprintln!("count: {} CometD messages in {:?}", 2 * ok, began.elapsed());
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        None => tokio::time::sleep(Duration::from_secs(2)).await,
    }
    hook(shape.after.as_ref()).await?;
    if let (Some(admin), Some(before)) = (shape.admin, committed) {
        let events = events_committed(admin).await? - before;
        eprintln!("count: the gateway committed {events} events");
        anyhow::ensure!(
            events == 2.0 * ok as f64,
            "the gateway committed {events} events for {ok} operations, not two each"
        );
    }
    Ok(ok)
}

/// Reads `voice_gateway_events_committed_total` from a gateway's admin listener.
async fn events_committed(admin: SocketAddr) -> anyhow::Result<f64> {
    let (status, body) =
        crate::http_util::request(admin, http::Method::GET, "/metrics", &[], Bytes::new()).await?;
    anyhow::ensure!(status.is_success(), "{admin}/metrics answered {status}");
    let text = std::str::from_utf8(&body)?;
    text.lines()
        .find_map(|line| {
            let value = line.strip_prefix(voice_gateway::admin::names::EVENTS_COMMITTED)?;
            value.trim().parse().ok()
        })
        .with_context(|| {
            format!(
                "no {} at {admin}",
                voice_gateway::admin::names::EVENTS_COMMITTED
            )
        })
}

/// Waits (bounded) until `sessions` received the two messages of each of `operations`,
/// then starts their count over; at once without sessions.
async fn delivered(sessions: Option<&SessionFleet>, operations: u64) -> anyhow::Result<()> {
    let Some(sessions) = sessions else {
        return Ok(());
    };
    arrived(sessions, 2 * operations).await?;
    sessions.reset_window();
    Ok(())
}

/// Waits (bounded) until `sessions` recorded `expected` messages since the last reset.
async fn arrived(sessions: &SessionFleet, expected: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while sessions.window().await.0 < expected {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {expected} CometD messages arrived",
            sessions.window().await.0
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

async fn grpc(
    shape: &CountShape,
    plans: &[SlotPlan],
    warmup: usize,
    per_slot: usize,
    sessions: Option<&SessionFleet>,
) -> anyhow::Result<u64> {
    let authority = Arc::<str>::from(shape.addr.to_string());
    let mut senders = Vec::with_capacity(shape.connections);
    for _ in 0..shape.connections {
        senders.push(grpc_load::connect(shape.addr).await?);
    }
    // With sessions, the slots go in rounds of one operation each, and a round waits for
    // its messages before the next begins: every session then has one message per round,
    // so each message is one long-poll cycle (as in figure 3, where 64 operations in
    // flight over 10,000 sessions seldom meet one session twice). Without the rounds a
    // session whose next message came before its re-poll took both in one reply, and the
    // count per message moved by a few percent from run to run with that share.
    // `--warmup` and `--requests` then count rounds: `--requests` ÷ slots of them.
    // The bridge's rounds, likewise: one operation per slot, then a pause for the
    // mirroring (see the module docs).
    let slots = (shape.connections * shape.in_flight) as u64;
    let bridge = shape.target == Target::GatewayBridge;
    measured(shape, warmup, per_slot, sessions, |count| {
        let (rounds, per_round) = if sessions.is_some() || bridge {
            (count, 1)
        } else {
            (1, count)
        };
        let senders = senders.clone();
        let authority = authority.clone();
        let plans = plans.to_vec();
        let in_flight = shape.in_flight;
        async move {
            let mut ok = 0;
            for round in 0..rounds {
                let mut tasks = Vec::new();
                for (c, sender) in senders.iter().enumerate() {
                    for m in 0..in_flight {
                        let plan = plans[c * in_flight + m].clone();
                        let (sender, authority) = (sender.clone(), authority.clone());
                        tasks.push(tokio::spawn(async move {
                            for turn in round * per_round..(round + 1) * per_round {
                                let (path, body) = &plan.requests[turn % plan.requests.len()];
                                let mut request =
                                    http::Request::post(format!("http://{authority}{path}"))
                                        .header("content-type", "application/grpc")
                                        .header("te", "trailers")
                                        .body(())?;
                                if let Some(value) = &plan.authorization {
                                    request
                                        .headers_mut()
                                        .insert("authorization", value.parse()?);
                                }
                                grpc_load::unary(&sender, request, body.clone()).await?;
                            }
                            anyhow::Ok(per_round as u64)
                        }));
                    }
                }
                for task in tasks {
                    ok += task.await??;
                }
                if let Some(sessions) = sessions {
                    arrived(sessions, 2 * slots * (round as u64 + 1)).await?;
                    // Time for the clients' re-polls to be held before the next round's
                    // messages come (a message that finds its session without a held
                    // connect waits in its queue and costs a different path).
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                if bridge {
                    tokio::time::sleep(BRIDGE_ROUND_PAUSE).await;
                }
            }
            Ok(ok)
        }
    })
    .await
}

async fn json(
    shape: &CountShape,
    addr: SocketAddr,
    plans: &[SlotPlan],
    warmup: usize,
    per_slot: usize,
) -> anyhow::Result<u64> {
    type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;
    let mut connections: Vec<(Sender, Option<String>)> = Vec::new();
    for _ in 0..shape.connections {
        let tcp = TcpStream::connect(addr).await.context("cannot connect")?;
        tcp.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        connections.push((sender, None));
    }
    let connections = Arc::new(tokio::sync::Mutex::new(connections));
    let host = addr.to_string();
    measured(shape, warmup, per_slot, None, |count| {
        let (connections, host) = (connections.clone(), host.clone());
        let plans = plans.to_vec();
        async move {
            let taken = std::mem::take(&mut *connections.lock().await);
            let tasks: Vec<_> = taken
                .into_iter()
                .enumerate()
                .map(|(c, (mut sender, mut cookie))| {
                    let plan = plans[c].clone();
                    let host = host.clone();
                    tokio::spawn(async move {
                        for turn in 0..count {
                            let (path, body) = plan.requests[turn % plan.requests.len()].clone();
                            let mut request = http::Request::post(path.as_str())
                                .header("host", host.as_str())
                                .header("content-type", "application/json")
                                .body(Full::new(body))?;
                            if let Some(value) = &plan.authorization {
                                request
                                    .headers_mut()
                                    .insert("authorization", value.parse()?);
                            }
                            if let Some(value) = &cookie {
                                request.headers_mut().insert("cookie", value.parse()?);
                            }
                            crate::http_load::post(&mut sender, request, &mut cookie).await?;
                        }
                        anyhow::Ok((sender, cookie))
                    })
                })
                .collect();
            let mut back = Vec::new();
            for task in tasks {
                back.push(task.await??);
            }
            let ok = (back.len() * count) as u64;
            *connections.lock().await = back;
            Ok(ok)
        }
    })
    .await
}
