//! Redis down: paused or killed, every call is unavailable within its timeouts, and the
//! same engine recovers by itself when Redis is back.

use std::time::{Duration, Instant};

use voice_gateway::cluster::redis::RedisEngine;
use voice_gateway::cluster::{EngineError, Grant, LeaseTable as _, SharedLog as _};

use crate::common::redis::RedisServer;
use crate::helpers::{BOUND, engine_with, grant, reader_blocked, until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_unavailable_fast_and_the_engine_recovers_by_itself() {
    let mut server = RedisServer::start().await;
    let engine = engine_with(&server, |c| {
        c.connect_timeout_ms = 300;
        c.response_timeout_ms = 300;
    });
    let (epoch, _) = engine.open().await.expect("open");
    let lease = grant(&engine, "agent1", "instance-a").await;
    // connect + response timeouts, and slack for a loaded 2-core machine.
    let fast = Duration::from_millis(600 + 700);

    // Paused while a read waits: the read ends at its wait plus the response timeout.
    let reading = tokio::spawn({
        let (engine, epoch) = (engine.clone(), epoch.clone());
        async move { engine.read(&epoch, 0, 10, Duration::from_millis(300)).await }
    });
    reader_blocked(&server).await;
    server.pause();
    let paused = Instant::now();
    let read = tokio::time::timeout(BOUND, reading)
        .await
        .expect("a read waiting on a paused redis ends")
        .expect("the reading task");
    assert!(matches!(read, Err(EngineError::Unavailable(_))), "{read:?}");
    let took = paused.elapsed();
    assert!(
        took < fast + Duration::from_millis(300),
        "a waiting read took {took:?}"
    );

    // Paused: connections stay open and nothing answers; every call ends at the timeout.
    for (what, result, took) in calls(&engine, &epoch, &lease).await {
        assert!(
            matches!(result, Err(EngineError::Unavailable(_))),
            "{what} on a paused redis: {result:?}"
        );
        assert!(took < fast, "{what} on a paused redis took {took:?}");
    }
    let started = Instant::now();
    let waiting = tokio::time::timeout(
        BOUND,
        engine.read(&epoch, 0, 10, Duration::from_millis(200)),
    )
    .await
    .expect("a waiting read on a paused redis ends");
    assert!(
        matches!(waiting, Err(EngineError::Unavailable(_))),
        "{waiting:?}"
    );
    assert!(
        started.elapsed() < fast + Duration::from_millis(200),
        "a waiting read took {:?}",
        started.elapsed()
    );
    server.resume();
    let (reopened, last) = until("the engine answers once redis resumes", || {
        let engine = engine.clone();
        async move { engine.open().await.ok() }
    })
    .await;
    assert_eq!(reopened, epoch, "a pause loses nothing");
    // A waiting read that ends empty leaves its connection idle, for the next one.
    let waited = engine
        .read(&epoch, last, 10, Duration::from_millis(50))
        .await;
    assert_eq!(waited, Ok(Vec::new()));

    // Killed: refused connections; every call fails fast too.
    server.kill();
    for (what, result, took) in calls(&engine, &epoch, &lease).await {
        assert!(
            matches!(result, Err(EngineError::Unavailable(_))),
            "{what} on a dead redis: {result:?}"
        );
        assert!(took < fast, "{what} on a dead redis took {took:?}");
    }
    // Back (empty): the same engine works again, in a new epoch.
    server.restart_empty().await;
    let (epoch, last) = until("the engine reconnects", || {
        let engine = engine.clone();
        async move { engine.open().await.ok() }
    })
    .await;
    assert_eq!(last, 0);
    let lease = grant(&engine, "agent1", "instance-a").await;
    assert_eq!(
        engine
            .append(&epoch, &lease, vec![b"back".to_vec()])
            .await
            .expect("append"),
        vec![1]
    );
    let entries = engine
        .read(&epoch, 0, 10, Duration::from_millis(100))
        .await
        .expect("read");
    assert_eq!(entries.len(), 1);
    // The idle connection of the waiting read died with the old server: a new one waits.
    let waited = engine.read(&epoch, 1, 10, Duration::from_millis(50)).await;
    assert_eq!(waited, Ok(Vec::new()), "a waiting read after the restart");
}

/// One call of each kind, with its result (as unit) and how long it took.
async fn calls(
    engine: &RedisEngine,
    epoch: &str,
    lease: &Grant,
) -> Vec<(&'static str, Result<(), EngineError>, Duration)> {
    let mut results = Vec::new();
    macro_rules! timed {
        ($what:expr, $call:expr) => {{
            let started = Instant::now();
            let result = tokio::time::timeout(BOUND, $call)
                .await
                .unwrap_or_else(|_| panic!("{} hung for {BOUND:?}", $what))
                .map(|_| ());
            results.push(($what, result, started.elapsed()));
        }};
    }
    timed!("open", engine.open());
    timed!("append", engine.append(epoch, lease, vec![b"x".to_vec()]));
    timed!("read", engine.read(epoch, 0, 10, Duration::ZERO));
    timed!(
        "acquire",
        engine.acquire("agent2", "instance-a", Duration::from_secs(5))
    );
    timed!("renew", engine.renew(lease, Duration::from_secs(5)));
    timed!("release", engine.release(lease));
    timed!("holder", engine.holder("agent1"));
    results
}
