//! Chaos resume (issue 14): many `WatchCalls` and CometD clients whose connections die at
//! random while a driver commits call events through the gateway; each client reconnects
//! as real clients do, and at the end every client must have seen every event of its scope
//! exactly once, in order, or have been told to resync and have resynced.
//!
//! Shared by the test suite (`tests/chaos_resume.rs`, an in-process gateway, a few seconds)
//! and the bench (`bench/run --only chaos`, the release gateway, a longer run).
//!
//! # Pieces
//! - [`proxy`]: a loopback TCP proxy in front of each gateway listener that cuts some
//!   connections after a random number of bytes, i.e. mid-frame.
//! - [`reference`]: one contact-center watcher, never killed and not proxied, whose log
//!   is the truth every client is compared with; [`keys`]: how an event is recognised on
//!   both fronts.
//! - [`driver`]: groups of agents in conference calls (Dial, Answer, SingleStepConference,
//!   UpdateUserData, recording, Hold, Retrieve, ClearCall) until enough events are
//!   committed.
//! - [`watcher`]: a chaotic `WatchCalls` client (resume with `from_sequence` + `epoch`,
//!   resync on OUT_OF_RANGE); [`bayeux`]: a chaotic CometD client, long-polling or
//!   WebSocket, ack extension on (re-connect with the same `clientId`, re-handshake on
//!   `402`), over the links of [`link`].
//! - [`verify`]: the comparison, and the counts of the report.
//! - [`plan`]: counts, durations and odds; [`life`]: how a client's connections live and
//!   die; [`figure`]: the bench's figure 8.
//!
//! # Chaos
//! Each connection a client opens lives until the proxy cuts it, or until the client kills
//! it at a random moment (dropping the stream or the socket, or aborting the task that reads
//! it), or until the server ends it. Now and then a client pauses before reconnecting, long
//! enough to fall out of the gateway's history or CometD queue, so resyncs happen too.
//! Once the driver is done the chaos stops, and every client must catch up within
//! [`ChaosPlan::settle`].

pub mod bayeux;
pub mod driver;
pub mod figure;
pub mod journal;
pub mod keys;
pub mod life;
pub mod link;
pub mod plan;
pub mod proxy;
pub mod reference;
pub mod verify;
pub mod watcher;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use self::bayeux::{BayeuxSpec, CometdProgress, CometdRecord, Transport};
pub use self::life::{Chaos, Kill, LifeEnd, Lives, keep_connecting, live};
pub use self::plan::{ChaosPlan, ChaosRng};
use self::proxy::ChaosProxy;
use self::reference::ReferenceWatcher;
pub use self::verify::ChaosReport;
use self::verify::Verdict;
use self::watcher::{GrpcRecord, Scope, WatcherSpec};
use crate::setup;

/// The service account the reference and the contact-center watchers use.
pub const SERVICE_ACCOUNT: &str = "chaos-reference";
/// Its token (bench configuration only).
pub const SERVICE_TOKEN: &str = "chaos-token";

/// Where the gateway listens.
#[derive(Debug, Clone, Copy)]
pub struct ChaosTarget {
    /// The gRPC listener.
    pub grpc: SocketAddr,
    /// The HTTP listener (JSON API and CometD).
    pub http: SocketAddr,
}

/// Locks a mutex, recovering from poisoning (a panicking client fails the run anyway).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A client of the run, with what the run waits on.
enum Client {
    Grpc {
        name: String,
        scope: Scope,
        task: JoinHandle<GrpcRecord>,
        progress: watch::Receiver<u64>,
    },
    Cometd {
        name: String,
        agent: usize,
        task: JoinHandle<CometdRecord>,
        progress: watch::Receiver<CometdProgress>,
        renew: Arc<Notify>,
    },
}

/// Runs the chaos against a gateway configured with [`ChaosPlan::config_toml`].
pub async fn run(target: ChaosTarget, plan: ChaosPlan) -> anyhow::Result<ChaosReport> {
    let began = Instant::now();
    let mut rng = ChaosRng::new(plan.seed);
    let grpc_proxy = ChaosProxy::start(target.grpc, plan.cuts, rng.next_u64()).await?;
    let http_proxy = ChaosProxy::start(target.http, plan.cuts, rng.next_u64()).await?;
    let reference = ReferenceWatcher::start(target.grpc).await?;
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let chaos = Chaos::new(plan.clone(), reference.counter(), ready_tx);
    // Stops every client however this function returns.
    let _stop = chaos.stop.clone().drop_guard();
    let clients = spawn_clients(&chaos, &mut rng, grpc_proxy.addr, http_proxy.addr);
    wait_ready(&mut ready_rx, clients.len(), Duration::from_secs(60)).await?;
    let driving = Instant::now();
    let driven = driver::drive(target.grpc, &plan, &reference).await;
    let drive = driving.elapsed();
    chaos.calm.cancel();
    grpc_proxy.calm();
    http_proxy.calm();
    driven?;
    let log = reference.finish().await?;
    let mut report = ChaosReport {
        seed: plan.seed,
        drive,
        ..ChaosReport::default()
    };
    let caught = catch_up(&clients, &log, plan.settle, chaos.began, &mut report).await;
    chaos.stop.cancel();
    report.cuts = grpc_proxy.cuts() + http_proxy.cuts();
    let mut verdict = Verdict::new(&log);
    verdict.caught = caught;
    for client in clients {
        match client {
            Client::Grpc { task, .. } => verdict.grpc(&task.await.context("a watcher panicked")?),
            Client::Cometd { task, .. } => {
                verdict.cometd(&task.await.context("a CometD client panicked")?);
            }
        }
    }
    verdict.into_report(&mut report);
    report.elapsed = began.elapsed();
    Ok(report)
}

/// Starts every client: user watchers spread over the agents, contact-center watchers,
/// and CometD clients alternating transports and subscriptions.
fn spawn_clients(
    chaos: &Chaos,
    rng: &mut ChaosRng,
    grpc: SocketAddr,
    http: SocketAddr,
) -> Vec<Client> {
    let plan = &chaos.plan;
    let mut clients = Vec::new();
    let scopes = (0..plan.user_watchers)
        .map(|i| Scope::User(i % plan.users))
        .chain((0..plan.center_watchers).map(|_| Scope::ContactCenter));
    for (index, scope) in scopes.enumerate() {
        let (tx, progress) = watch::channel(0);
        let spec = WatcherSpec {
            index,
            scope,
            addr: grpc,
        };
        let name = spec.name();
        let task = tokio::spawn(watcher::run(spec, chaos.clone(), rng.fork(), tx));
        clients.push(Client::Grpc {
            name,
            scope,
            task,
            progress,
        });
    }
    for index in 0..plan.cometd_clients {
        let (tx, progress) = watch::channel(CometdProgress::default());
        let agent = index % plan.users;
        let spec = BayeuxSpec {
            index,
            agent,
            transport: if index % 2 == 0 {
                Transport::LongPolling
            } else {
                Transport::WebSocket
            },
            // Half also subscribe to `/v2/me/*`: a message must still arrive once.
            wildcard: index % 4 >= 2,
            addr: http,
        };
        let name = spec.name();
        let renew = Arc::new(Notify::new());
        let task = tokio::spawn(bayeux::run(
            spec,
            chaos.clone(),
            rng.fork(),
            tx,
            renew.clone(),
        ));
        clients.push(Client::Cometd {
            name,
            agent,
            task,
            progress,
            renew,
        });
    }
    clients
}

async fn wait_ready(
    ready: &mut mpsc::UnboundedReceiver<()>,
    wanted: usize,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    for got in 0..wanted {
        tokio::time::timeout_at(deadline, ready.recv())
            .await
            .ok()
            .flatten()
            .with_context(|| {
                format!(
                    "only {got} of {wanted} chaos clients got their first snapshot within {limit:?}"
                )
            })?;
    }
    Ok(())
}

/// Waits until every client has received the last event of its scope (or, for a CometD
/// client that subscribed after the reference saw it, has the user's final calls in a
/// snapshot nothing followed; one that subscribed too close to it to tell is asked for a
/// new session, see [`bayeux::run`]); a client that does not within `settle` is a failure
/// of the report. Returns, by client,
/// when (since `began`) and how it was seen to have caught up.
async fn catch_up(
    clients: &[Client],
    log: &reference::ReferenceLog,
    settle: Duration,
    began: Instant,
    report: &mut ChaosReport,
) -> HashMap<String, String> {
    let deadline = tokio::time::Instant::now() + settle;
    let mut caught = HashMap::new();
    for client in clients {
        let failure = match client {
            Client::Grpc {
                name,
                scope,
                progress,
                ..
            } => {
                let last = log.last_seq(scope.dn().as_deref());
                let mut progress = progress.clone();
                let reached =
                    tokio::time::timeout_at(deadline, progress.wait_for(|&seen| seen >= last))
                        .await
                        .is_ok();
                let at = *progress.borrow();
                let when = began.elapsed().as_secs_f64();
                caught.insert(name.clone(), format!("at sequence {at} at {when:.3} s"));
                (!reached).then(|| format!("{name} is at sequence {at}, not {last}"))
            }
            Client::Cometd {
                name,
                agent,
                progress,
                renew,
                ..
            } => {
                let dn = setup::phone(*agent);
                let (last, calls) = log.user_end(&dn);
                // Events up to the user's last one that the reference had seen before the
                // client subscribed are in its snapshot; later ones must come as messages.
                let needed = log
                    .events
                    .iter()
                    .rposition(|e| e.dn == dn)
                    .map_or(0, |i| i + 1) as u64;
                let mut progress = progress.clone();
                let done = |p: &CometdProgress| p.caught_up(last.as_ref(), &calls, needed);
                // Nothing came, and the snapshot is final, but the subscription may have
                // come before the user's last event: a new session settles it.
                let unsure = |p: &CometdProgress| {
                    p.quiet_snapshot.as_ref() == Some(&calls) && p.subscribed_after < needed
                };
                let wait = progress.wait_for(|p| done(p) || unsure(p));
                let first = match tokio::time::timeout_at(deadline, wait).await {
                    Ok(Ok(p)) => Some(done(&p)),
                    _ => None,
                };
                let reached = match first {
                    Some(true) => true,
                    Some(false) => {
                        renew.notify_one();
                        tokio::time::timeout_at(deadline, progress.wait_for(done))
                            .await
                            .is_ok()
                    }
                    None => false,
                };
                let at = progress.borrow().clone();
                let when = began.elapsed().as_secs_f64();
                let how = match (&at.last, &at.quiet_snapshot) {
                    (_, Some(calls)) => format!("a quiet snapshot of {} calls", calls.len()),
                    (Some(key), None) => key.short(),
                    (None, None) => "nothing".into(),
                };
                caught.insert(name.clone(), format!("at {how} at {when:.3} s"));
                (!reached).then(|| format!("{name} did not catch up: {at:?}"))
            }
        };
        report.failures.extend(failure);
    }
    caught
}
