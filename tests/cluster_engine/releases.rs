//! The releases stream: a release reaches another engine's subscriber, still after a Redis
//! restart, and an idle subscriber pings and replaces a connection gone silent.

use std::time::Duration;

use voice_gateway::cluster::LeaseTable as _;

use crate::common::redis::RedisServer;
use crate::helpers::{BOUND, engine, engine_with, grant, until};

/// Waits until `server` has a subscriber of the releases channel (a fresh connection:
/// a restarted server is another one).
async fn releases_subscribed(server: &RedisServer) {
    let connection = server.connection().await;
    until("a subscriber of vg:released", || {
        let mut connection = connection.clone();
        async move {
            let (_, count): (String, u64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg("vg:released")
                .query_async(&mut connection)
                .await
                .ok()?;
            (count >= 1).then_some(())
        }
    })
    .await;
}

/// The next released user `releases` reports, failing after [`BOUND`].
async fn next_release(releases: &mut voice_gateway::cluster::Releases) -> String {
    use futures::StreamExt as _;
    tokio::time::timeout(BOUND, releases.next())
        .await
        .expect("a release reported within the bound")
        .expect("the releases stream goes on")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_is_reported_to_another_engine_and_still_after_a_redis_restart() {
    let mut server = RedisServer::start().await;
    let a = engine(&server);
    let b = engine_with(&server, |c| {
        c.connect_timeout_ms = 300;
        c.response_timeout_ms = 300;
    });
    let mut releases = b.releases();
    releases_subscribed(&server).await;
    let lease = grant(&a, "agent1", "instance-a").await;
    a.release(&lease).await.expect("release");
    assert_eq!(next_release(&mut releases).await, "agent1");
    // A release of a lease no longer held deletes nothing and tells nothing: the next
    // report is agent2's.
    a.release(&lease).await.expect("a stale release");
    let other = grant(&a, "agent2", "instance-a").await;
    a.release(&other).await.expect("release");
    assert_eq!(next_release(&mut releases).await, "agent2");

    // Redis restarts empty: the subscriber connects again by itself, and a later
    // release reaches it.
    server.restart_empty().await;
    releases_subscribed(&server).await;
    let lease = until("the engine reconnects", || {
        let a = a.clone();
        async move {
            a.acquire("agent3", "instance-a", Duration::from_secs(30))
                .await
                .ok()
                .flatten()
        }
    })
    .await;
    a.release(&lease).await.expect("release");
    assert_eq!(next_release(&mut releases).await, "agent3");
}

/// One connection of `CLIENT LIST TYPE pubsub`: the client's id, its last command and
/// how many channels it is subscribed to.
#[derive(Debug)]
struct Subscriber {
    id: u64,
    cmd: String,
    sub: u64,
}

/// The connections of `server` in pub/sub mode, asked on `connection` (a normal client:
/// not one of them).
async fn subscribers(connection: &mut redis::aio::MultiplexedConnection) -> Vec<Subscriber> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(connection)
        .await
        .expect("CLIENT LIST");
    list.lines()
        .map(|line| {
            let field = |name: &str| {
                line.split(' ')
                    .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                    .unwrap_or_else(|| panic!("no {name} in {line:?}"))
            };
            Subscriber {
                id: field("id").parse().expect("a client id"),
                cmd: field("cmd").to_owned(),
                sub: field("sub").parse().expect("a subscription count"),
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_subscriber_pings_and_replaces_a_connection_gone_silent() {
    let server = RedisServer::start().await;
    // 300 ms rather than the default 5 s, so that the test takes a few seconds.
    let (ping_ms, response_timeout_ms) = (300, 300);
    let ping = Duration::from_millis(ping_ms);
    let publisher = engine(&server);
    let subscriber = engine_with(&server, |c| {
        c.connect_timeout_ms = 300;
        c.response_timeout_ms = response_timeout_ms;
        c.subscriber_ping_ms = ping_ms;
    });
    let mut releases = subscriber.releases();
    let mut connection = server.connection().await;

    // Idle, with Redis answering: the subscriber pings on its connection and keeps it.
    let first = until("the idle subscriber pings", || {
        let mut connection = connection.clone();
        async move {
            match subscribers(&mut connection).await.as_slice() {
                [s] if s.cmd == "ping" && s.sub == 1 => Some(s.id),
                _ => None,
            }
        }
    })
    .await;
    // Three more periods: an answered ping does not cost the connection.
    tokio::time::sleep(3 * ping).await;
    let kept = subscribers(&mut connection).await;
    assert!(
        matches!(kept.as_slice(), [s] if s.id == first),
        "after answered pings: {kept:?}"
    );

    // Paused: the connection stays open and silent. The next ping is due within one period
    // and goes unanswered: the subscriber gives the connection up within the period and the
    // response timeout; 700 ms of slack for a loaded 2-core machine.
    // Without the ping (or its timeout), the old connection would still be subscribed when
    // Redis resumes, and kept for good.
    server.pause();
    tokio::time::sleep(Duration::from_millis(ping_ms + response_timeout_ms + 700)).await;
    server.resume();
    // Redis now reads the old connection's close, and a new connection subscribes.
    until(
        "the silent connection given up in the pause, a new one subscribed",
        || {
            let mut connection = connection.clone();
            async move {
                match subscribers(&mut connection).await.as_slice() {
                    [s] if s.id != first && s.sub == 1 => Some(()),
                    _ => None,
                }
            }
        },
    )
    .await;
    // The new subscription delivers.
    let lease = grant(&publisher, "agent1", "instance-a").await;
    publisher.release(&lease).await.expect("release");
    assert_eq!(next_release(&mut releases).await, "agent1");
}
