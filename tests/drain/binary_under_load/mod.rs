//! The binary's drain under load (issue 14): SIGTERM while [`WATCHERS`] watch streams and
//! [`SESSIONS`] CometD sessions are held and unary calls run back to back.
//!
//! The slowest test of the suite: 12 s on 2 cores at a load average of 8, 17 to 26 s at 9
//! to 14 with two busy loops beside it, nearly all of it opening 2,000 clients (debug
//! builds, the gateway's and the test's); the drain itself took 1.3 to 3.8 s.

mod load;
mod sessions;
mod watchers;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{common, within};
use common::binary::Binary;
use load::{LoadTally, load_slot};
use sessions::{CometdEnd, open_sessions, until_all_held};
use watchers::{WatchEnd, open_watchers};

/// Watch streams held (WatchCalls and WatchDevices), over [`WATCH_CHANNELS`] HTTP/2
/// connections.
const WATCHERS: usize = 1_000;
const WATCH_CHANNELS: usize = 10;
/// CometD sessions with a held connect: half long-polling, half WebSocket.
const SESSIONS: usize = 1_000;
/// Unary load: HTTP/2 connections, and calls in flight on each.
const LOAD_CONNECTIONS: usize = 4;
const LOAD_IN_FLIGHT: usize = 8;
/// Replies the load must have had before the signal: every slot has had two on
/// average, so the load runs back to back when the signal comes.
const WARM_REPLIES: u32 = 2 * (LOAD_CONNECTIONS * LOAD_IN_FLIGHT) as u32;
/// CometD sessions opening at once. Opened all together on a loaded machine, a
/// session's first connect could come more than `cometd.max_interval_ms` (10 s) after
/// its handshake, and the gateway rightly forgot it (`402::Unknown client`).
const OPENING: usize = 64;
/// How long opening every watcher and session may take (a shared, busy machine runs
/// the debug binary far slower than an idle one).
const SETUP_BOUND: std::time::Duration = std::time::Duration::from_secs(60);
/// The test gateway's `server.shutdown_grace_ms`: twice the default (5 s). This
/// gateway is a debug build draining 2,000 clients on a machine the test shares with
/// its own clients and other jobs: on 2 cores at a load average of 11 to 14 its drain
/// took 2.5 to 4.3 s (five runs), too close to the default for a test that must not
/// fail on a busy machine. The checks are the issue's: exit 0 within the grace, every
/// client answered before it.
const GRACE: std::time::Duration = std::time::Duration::from_secs(10);
/// Users of the demo configuration the watchers and sessions are spread over.
const USERS: [&str; 6] = [
    "agent1",
    "agent2",
    "agent3",
    "supervisor1",
    "supervisor2",
    "basic1",
];

fn basic(user: &str) -> String {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:demo"));
    format!("Basic {token}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_every_watcher_and_session_and_exits_0_within_the_grace() {
    let began = Instant::now();
    let config = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("drain-under-load-{}.toml", std::process::id()));
    let demo = include_str!("../../../config/demo.toml");
    let grace = format!("\n[server]\nshutdown_grace_ms = {}\n", GRACE.as_millis());
    std::fs::write(&config, format!("{demo}{grace}")).unwrap();
    let mut gw = Binary::launch()
        .admin()
        .args(&["--config", &config.display().to_string()])
        .start()
        .await;
    let mut calls = gw.calls().await;
    let call = common::established_call(&mut calls).await;

    let mut watch_ends = JoinSet::new();
    open_watchers(&gw, &mut watch_ends).await;
    eprintln!("every watcher open {:?} after the start", began.elapsed());
    let mut session_ends = JoinSet::new();
    open_sessions(&gw, &mut session_ends);
    until_all_held(&gw, &mut session_ends).await;

    let tally = Arc::new(LoadTally::default());
    let warm = Arc::new(Semaphore::new(0));
    let mut load = JoinSet::new();
    for _ in 0..LOAD_CONNECTIONS {
        let tcp = TcpStream::connect(gw.grpc).await.unwrap();
        let (sender, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(connection);
        for _ in 0..LOAD_IN_FLIGHT {
            let slot = load_slot(
                sender.clone(),
                gw.grpc,
                call.clone(),
                tally.clone(),
                warm.clone(),
            );
            load.spawn(slot);
        }
    }
    within("the load's first replies", warm.acquire_many(WARM_REPLIES))
        .await
        .unwrap()
        .forget();

    eprintln!("the load warm {:?} after the start", began.elapsed());
    let signalled = Instant::now();
    gw.sigterm();
    let status = gw.wait_with_timeout(GRACE * 2).await;
    let took = signalled.elapsed();
    assert!(status.success(), "exit status 0 after SIGTERM: {status}");
    assert!(
        took < GRACE,
        "exited {took:?} after SIGTERM, within the grace of {GRACE:?}"
    );

    // Every watcher was told where to resume.
    let mut told = 0;
    while let Some(end) = within("the watchers' ends", watch_ends.join_next()).await {
        let WatchEnd {
            epoch,
            last_event,
            status,
        } = end.unwrap();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        let read = |key: &str| {
            status
                .metadata()
                .get(key)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let sequence: u64 = read("resume-sequence")
            .expect("resume-sequence")
            .parse()
            .unwrap();
        assert_eq!(
            read("resume-epoch").as_deref(),
            Some(epoch.as_str()),
            "{status:?}"
        );
        assert!(
            sequence >= last_event,
            "resume from {sequence}, after event {last_event}"
        );
        told += 1;
    }
    assert_eq!(told, WATCHERS);

    // Every held connect was answered with the advice to handshake again.
    let (mut long_polls, mut sockets) = (0, 0);
    while let Some(end) = within("the sessions' ends", session_ends.join_next()).await {
        let CometdEnd { reply, close } = end.unwrap();
        assert_eq!(reply["advice"]["reconnect"], "handshake", "{reply}");
        match close {
            None => long_polls += 1,
            Some(code) => {
                assert_eq!(code, 1001, "a WebSocket closed as going away");
                sockets += 1;
            }
        }
    }
    assert_eq!((long_polls, sockets), (SESSIONS / 2, SESSIONS / 2));

    // No call the gateway took was lost: each was answered, or refused before it was
    // taken.
    while let Some(slot) = within("the load's end", load.join_next()).await {
        slot.unwrap();
    }
    let read = |n: &AtomicU64| n.load(Ordering::Relaxed);
    let (sent, replied, refused, lost) = (
        read(&tally.sent),
        read(&tally.replied),
        read(&tally.refused),
        read(&tally.lost),
    );
    let first_lost = tally.first_lost.lock().unwrap().clone();
    assert_eq!(
        lost, 0,
        "calls lost: {lost} of {sent}, first: {first_lost:?}"
    );
    assert_eq!(sent, replied + refused);
    assert!(replied >= u64::from(WARM_REPLIES));
    eprintln!(
        "load: {sent} sent, {replied} replied, {refused} refused before being taken; drain took {took:?}"
    );
}
