//! Figure 9, the moonshot (issue 13; the issue calls it "figure 6", a number already
//! taken): 100,000 subscribers held at once on one gateway, 50,000 `WatchCalls` streams
//! (many per HTTP/2 connection) and 50,000 CometD long-poll sessions, then ONE operation
//! whose event every subscriber must receive. Reported: commit → receipt over the
//! subscribers (p50, p99, the last one) and the gateway's RSS before, while holding, and at
//! its peak. Bounded: the event has `wait` to reach everyone, and opening has `open_limit`.
//!
//! A call event goes to the subscribers of its parties only (per-user dispatch), so every
//! subscriber is one of the two parties of one established call: even subscriber indexes
//! are the caller's, odd ones the callee's. One StartCallRecording commits one event per
//! party. A WatchCalls event carries its commit time; a CometD message does not, so a
//! session's receipt is timed from the commit time that party's WatchCalls streams read
//! (the same event), or from the operation's send time when no stream of that party is open.
//!
//! Client connections bind to 127.0.0.2, 127.0.0.3, … ([`SourceSpread`]). A CometD session
//! has an HTTP/1.1 connection of its own, as a desktop, when the open-file limit allows one
//! per session in both processes; otherwise (a hard limit this process cannot raise) the
//! sessions share HTTP/2 connections, `sessions_per_h2_connection` each, and the row says so.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{StreamExt as _, TryStreamExt as _};
use tokio_util::sync::CancellationToken;
use voice_gateway::grpc::pb;
use voice_gateway::grpc::pb::call_service_client::CallServiceClient;

use crate::figures::Bench;
use crate::loopback::SourceSpread;
use crate::moonshot_clients::{Board, LeanSession, Link, h2_connection, now_us, open_watch};
use crate::process::ProcStatus;
use crate::report::Row;
use crate::setup::{self, as_agent};
use crate::stats::{Latency, LatencySummary};

const FIGURE: &str = "9. Moonshot";

/// The shape of the moonshot.
#[derive(Debug, Clone, Copy)]
pub struct MoonshotPlan {
    /// WatchCalls streams.
    pub streams: usize,
    /// CometD long-poll sessions.
    pub sessions: usize,
    /// WatchCalls streams per HTTP/2 connection.
    pub streams_per_connection: usize,
    /// CometD sessions per HTTP/2 connection, when they cannot have one each.
    pub sessions_per_h2_connection: usize,
    /// Subscribers being opened at once.
    pub opening_in_flight: usize,
    /// How long opening every subscriber may take.
    pub open_limit: Duration,
    /// How long the one event may take to reach every subscriber.
    pub wait: Duration,
    /// Whether CometD sessions share HTTP/2 connections even when the open-file limit
    /// would give each one of its own (the smoke run takes the path the full run takes
    /// under a limit of 20,000).
    pub sessions_on_http2: bool,
}

impl MoonshotPlan {
    /// The full figure: 50,000 + 50,000.
    pub fn bench() -> Self {
        Self {
            streams: 50_000,
            sessions: 50_000,
            streams_per_connection: 100,
            sessions_per_h2_connection: 100,
            opening_in_flight: 256,
            open_limit: Duration::from_secs(300),
            wait: Duration::from_secs(30),
            sessions_on_http2: false,
        }
    }

    /// The smoke run's tiny counts.
    pub fn smoke() -> Self {
        Self {
            streams: 20,
            sessions: 20,
            streams_per_connection: 10,
            sessions_per_h2_connection: 10,
            opening_in_flight: 8,
            open_limit: Duration::from_secs(30),
            wait: Duration::from_secs(5),
            sessions_on_http2: true,
        }
    }

    /// Returns whether each CometD session can have an HTTP/1.1 connection of its own
    /// under `open_files` (both this process and the gateway hold one descriptor per
    /// connection, plus a margin for everything else).
    pub fn sessions_on_http1(&self, open_files: u64) -> bool {
        let connections = self.sessions + self.streams.div_ceil(self.streams_per_connection);
        !self.sessions_on_http2 && open_files >= connections as u64 + 1024
    }
}

/// What the subscribers saw of the one event.
struct Receipts {
    watch: Latency,
    cometd: Latency,
    all: Latency,
    /// Commit → the last receipt, ms.
    last_ms: f64,
    received: usize,
}

impl Bench {
    /// Figure 9 on a fresh gateway configured for the subscribers.
    pub async fn moonshot(&mut self, open_files: u64) -> anyhow::Result<()> {
        let shape = self.plan.moonshot;
        let http1 = shape.sessions_on_http1(open_files);
        let total = shape.streams + shape.sessions;
        let config = self.work.join("bench-moonshot.toml");
        // Room for every session (and for the HTTP/1.1 case, a connection each).
        let extra = format!(
            "\n[cometd]\nmax_sessions = {}\n\n[server]\nmax_connections = {}\n",
            shape.sessions + shape.sessions / 10 + 100,
            connection_count(&shape, http1) + 1000
        );
        std::fs::write(&config, setup::config_toml(2, &extra))?;
        let gw = self.spawn_gateway("gateway-moonshot", Some(&config))?;
        let call = setup::establish_calls(&gw.grpc_url(), 1)
            .await?
            .pop()
            .context("one call")?;
        tokio::time::sleep(self.plan.settle).await;
        let idle = ProcStatus::read(gw.server.pid())?;

        let board = Board::new(total);
        let stop = CancellationToken::new();
        let spread = SourceSpread::default();
        let began = Instant::now();
        let opened = self
            .open_subscribers(gw.grpc, gw.http, http1, &board, &stop, spread)
            .await;
        let open_time = began.elapsed();
        if let Err(error) = opened {
            stop.cancel();
            return Err(error.context(format!(
                "figure 9: {} of {total} subscribers ready, {} failed",
                board.ready.load(Ordering::Acquire),
                board.failed.load(Ordering::Acquire)
            )));
        }
        tokio::time::sleep(self.plan.settle).await;
        let held = ProcStatus::read(gw.server.pid())?;

        // The one event.
        let channel = tonic::transport::Endpoint::from_shared(gw.grpc_url())?
            .connect()
            .await?;
        let mut client = CallServiceClient::new(channel);
        let pids = [gw.server.pid(), std::process::id()];
        let before = Usage::read(pids);
        board.armed.store(true, Ordering::Release);
        let sent_us = now_us();
        let sent = Instant::now();
        client
            .start_call_recording(as_agent(
                call.caller,
                pb::StartCallRecordingRequest {
                    call_id: call.id.clone(),
                },
            ))
            .await
            .context("the moonshot's StartCallRecording")?;
        let replied = sent.elapsed();
        let deadline = sent + shape.wait;
        while board.received.load(Ordering::Acquire)
            + board.failed_unreceived.load(Ordering::Acquire)
            < total
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let waited = sent.elapsed();
        let usage = Usage::read(pids).since(&before);
        let after = ProcStatus::read(gw.server.pid())?;
        let (failed, failed_unreceived) = (
            board.failed.load(Ordering::Acquire),
            board.failed_unreceived.load(Ordering::Acquire),
        );
        let first_error = board
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // Failures from here on are the teardown (connections closing), not the figure.
        stop.cancel();
        drop(gw);

        let receipts = receipts(&board, shape.streams, sent_us);
        self.push_moonshot_rows(http1, open_files, &receipts, total, (idle, held, after));
        self.notes.push(format!(
            "Figure 9: one established call between two agents; subscriber i is agent i mod 2's (its WatchCalls stream or CometD session), so one StartCallRecording (one event per party) must reach all {total}. {} WatchCalls streams over {} HTTP/2 connections; {} CometD long-poll sessions {}; client connections bound to {} loopback source address(es) from 127.0.0.2 ({} connections each at most); open-file limit {open_files}. Opening took {:.1}s ({} in flight). The operation's reply came after {:.1} ms; the bench waited {:.0} ms for the receipts (limit {:?}). Received by {} of {total}; {} subscribers failed ({} before the event reached them){}; {} receipts beyond the first. {} WatchCalls (commit → receipt): p50 {:.1} ms, p99 {:.1} ms ({} receipts); CometD (the party's commit → receipt): p50 {:.1} ms, p99 {:.1} ms ({} receipts). Gateway threads {}.",
            shape.streams,
            shape.streams.div_ceil(shape.streams_per_connection),
            shape.sessions,
            if http1 {
                "on one HTTP/1.1 connection each, as desktops".to_owned()
            } else {
                format!(
                    "over {} HTTP/2 connections ({} each: {})",
                    shape.sessions.div_ceil(shape.sessions_per_h2_connection),
                    shape.sessions_per_h2_connection,
                    if shape.sessions_on_http2 {
                        "as planned".to_owned()
                    } else {
                        format!("the open-file limit {open_files} cannot hold one connection per session in both processes")
                    }
                )
            },
            spread.addresses(connection_count(&shape, http1)),
            spread.per_address,
            open_time.as_secs_f64(),
            shape.opening_in_flight,
            replied.as_secs_f64() * 1000.0,
            waited.as_secs_f64() * 1000.0,
            shape.wait,
            receipts.received,
            failed,
            failed_unreceived,
            first_error.map(|e| format!(" (first: {e})")).unwrap_or_default(),
            board.extra.load(Ordering::Acquire),
            usage.describe(waited),
            receipts.watch.summary().p50_ms,
            receipts.watch.summary().p99_ms,
            receipts.watch.count(),
            receipts.cometd.summary().p50_ms,
            receipts.cometd.summary().p99_ms,
            receipts.cometd.count(),
            after.threads,
        ));
        self.chart_latency(
            FIGURE,
            "commit → receipt of the one event, over the subscribers",
            vec![
                ("WatchCalls streams".into(), receipts.watch.summary()),
                ("CometD sessions".into(), receipts.cometd.summary()),
            ],
        );
        Ok(())
    }

    fn push_moonshot_rows(
        &mut self,
        http1: bool,
        open_files: u64,
        receipts: &Receipts,
        total: usize,
        (idle, held, after): (ProcStatus, ProcStatus, ProcStatus),
    ) {
        let shape = self.plan.moonshot;
        let all = receipts.all.summary();
        let everyone = receipts.received == total;
        self.rows.push(Row {
            figure: FIGURE.into(),
            measure: format!(
                "one event to {total} subscribers held at once ({} WatchCalls, {} per HTTP/2 connection; {} CometD long-polls, {}): commit → receipt",
                shape.streams,
                shape.streams_per_connection,
                shape.sessions,
                if http1 {
                    "one HTTP/1.1 connection each".to_owned()
                } else {
                    format!(
                        "{} per HTTP/2 connection (open-file limit {open_files})",
                        shape.sessions_per_h2_connection
                    )
                }
            ),
            gateway: format!(
                "p50 {:.1} ms, p99 {:.1} ms, last {:.1} ms; received by {} of {total}",
                all.p50_ms, all.p99_ms, receipts.last_ms, receipts.received
            ),
            baseline: "–".into(),
            ratio: None,
            value: all.p99_ms,
            target: "p99 < 1 s, all received".into(),
            met: Some(everyone && all.p99_ms < 1000.0),
        });
        let mib = |kib: u64| kib as f64 / 1024.0;
        let per_subscriber =
            held.rss_kib.saturating_sub(idle.rss_kib) as f64 * 1024.0 / total.max(1) as f64;
        self.rows.push(Row {
            figure: FIGURE.into(),
            measure: format!(
                "gateway RSS: idle (one call) → {total} subscribers held; peak (VmHWM) after the event"
            ),
            gateway: format!(
                "{:.1} → {:.1} MiB ({:.2} KiB per subscriber); peak {:.1} MiB",
                mib(idle.rss_kib),
                mib(held.rss_kib),
                per_subscriber / 1024.0,
                mib(after.peak_rss_kib.max(after.rss_kib))
            ),
            baseline: "–".into(),
            ratio: None,
            value: mib(held.rss_kib),
            target: "reported".into(),
            met: None,
        });
    }

    /// Opens every WatchCalls stream, then every CometD session; returns once all are ready.
    async fn open_subscribers(
        &self,
        grpc: std::net::SocketAddr,
        http: std::net::SocketAddr,
        http1: bool,
        board: &Arc<Board>,
        stop: &CancellationToken,
        spread: SourceSpread,
    ) -> anyhow::Result<()> {
        let shape = self.plan.moonshot;
        let deadline = tokio::time::Instant::now() + shape.open_limit;
        let authority = grpc.to_string();
        let mut next_connection = 0usize;
        let mut senders = Vec::new();
        for _ in 0..shape.streams.div_ceil(shape.streams_per_connection.max(1)) {
            senders.push(h2_connection(grpc, spread.source(next_connection)).await?);
            next_connection += 1;
        }
        let opening = futures::stream::iter(0..shape.streams)
            .map(|i| {
                let sender = &senders[i / shape.streams_per_connection.max(1)];
                open_watch(sender, &authority, i % 2, i, board.clone(), stop.clone())
            })
            .buffer_unordered(shape.opening_in_flight)
            .try_collect::<()>();
        tokio::time::timeout_at(deadline, opening)
            .await
            .context("opening the WatchCalls streams took too long")??;
        wait_ready(board, shape.streams, deadline, "WatchCalls snapshots").await?;

        let host: Arc<str> = http.to_string().into();
        let per_link = if http1 {
            1
        } else {
            shape.sessions_per_h2_connection.max(1)
        };
        let mut shared = Vec::new();
        if !http1 {
            for _ in 0..shape.sessions.div_ceil(per_link) {
                shared.push(Link::http2(http, spread.source(next_connection)).await?);
                next_connection += 1;
            }
        }
        let (shared, first_own) = (&shared, next_connection);
        let opening = futures::stream::iter(0..shape.sessions)
            .map(|k| {
                let host = host.clone();
                let (board, stop) = (board.clone(), stop.clone());
                let index = shape.streams + k;
                async move {
                    let link = match shared.get(k / per_link) {
                        Some(sender) if !http1 => Link::Http2(sender.clone()),
                        _ => Link::http1(http, spread.source(first_own + k)).await?,
                    };
                    let session = LeanSession::start(link, host, index % 2).await?;
                    tokio::spawn(session.hold(index, board, stop));
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(shape.opening_in_flight)
            .try_collect::<()>();
        tokio::time::timeout_at(deadline, opening)
            .await
            .context("opening the CometD sessions took too long")??;
        wait_ready(
            board,
            shape.streams + shape.sessions,
            deadline,
            "CometD first connects",
        )
        .await
    }
}

/// CPU time and run-queue wait of the gateway and of this process (its clients), and the
/// machine's busy jiffies, at one moment or over a span.
struct Usage {
    cpu: [f64; 2],
    run_queue: [f64; 2],
    machine: (u64, u64),
}

impl Usage {
    fn read(pids: [u32; 2]) -> Self {
        Self {
            cpu: pids.map(|p| crate::process::cpu_seconds(p).unwrap_or(0.0)),
            run_queue: pids.map(|p| crate::paced_load::run_queue_seconds(p).unwrap_or(0.0)),
            machine: crate::paced_load::machine_jiffies().unwrap_or_default(),
        }
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            cpu: [0, 1].map(|i| self.cpu[i] - before.cpu[i]),
            run_queue: [0, 1].map(|i| self.run_queue[i] - before.run_queue[i]),
            machine: (
                self.machine.0.saturating_sub(before.machine.0),
                self.machine.1.saturating_sub(before.machine.1),
            ),
        }
    }

    fn describe(&self, span: Duration) -> String {
        format!(
            "From the send to the end of the wait ({:.1}s) the gateway used {:.1}s of CPU and waited {:.1}s for a core, the bench's clients {:.1}s and {:.1}s; the machine was {:.0} % busy (all processes, both cores).",
            span.as_secs_f64(),
            self.cpu[0],
            self.run_queue[0],
            self.cpu[1],
            self.run_queue[1],
            100.0 * self.machine.0 as f64 / self.machine.1.max(1) as f64
        )
    }
}

/// Returns the client connections of the figure.
fn connection_count(shape: &MoonshotPlan, http1: bool) -> usize {
    let per_link = if http1 {
        1
    } else {
        shape.sessions_per_h2_connection.max(1)
    };
    shape.streams.div_ceil(shape.streams_per_connection.max(1)) + shape.sessions.div_ceil(per_link)
}

/// Waits until `wanted` subscribers are ready; fails on a subscriber's failure or at
/// `deadline`.
async fn wait_ready(
    board: &Board,
    wanted: usize,
    deadline: tokio::time::Instant,
    what: &str,
) -> anyhow::Result<()> {
    loop {
        let ready = board.ready.load(Ordering::Acquire);
        if ready >= wanted {
            return Ok(());
        }
        if board.failed.load(Ordering::Acquire) > 0 {
            let first = board
                .first_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            anyhow::bail!("a subscriber failed while opening: {first:?}");
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "only {ready} of {wanted} {what} arrived in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Computes commit → receipt per subscriber: a stream's from its event's commit time, a
/// session's from the commit time its party's streams read (else the send time).
fn receipts(board: &Board, streams: usize, sent_us: u64) -> Receipts {
    let mut party_commit = [0u64; 2];
    for i in 0..streams {
        let commit = board.commit_us[i].load(Ordering::Acquire);
        if commit > 0 && party_commit[i % 2] == 0 {
            party_commit[i % 2] = commit;
        }
    }
    let (mut watch, mut cometd, mut all) =
        (Latency::default(), Latency::default(), Latency::default());
    let (mut received, mut last_us) = (0, 0u64);
    for (i, receipt) in board.receipt_us.iter().enumerate() {
        let at = receipt.load(Ordering::Acquire);
        if at == 0 {
            continue;
        }
        received += 1;
        let commit = if i < streams {
            board.commit_us[i].load(Ordering::Acquire)
        } else {
            party_commit[i % 2]
        };
        let from = if commit > 0 { commit } else { sent_us };
        let us = at.saturating_sub(from);
        last_us = last_us.max(us);
        all.record_us(us);
        if i < streams {
            watch.record_us(us);
        } else {
            cometd.record_us(us);
        }
    }
    Receipts {
        watch,
        cometd,
        all,
        last_ms: last_us as f64 / 1000.0,
        received,
    }
}

/// The summaries of a figure's latency series, for its chart.
pub type Series = Vec<(String, LatencySummary)>;
