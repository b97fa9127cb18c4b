//! Cluster mode on a real `redis-server`, through the production wiring (`[cluster] url =
//! "redis://…"`, `cluster::connect`): two bridge instances in front of one embedded
//! upstream share Redis' log and leases. `tests/cluster.rs` covers the design in depth on
//! the in-memory engine; this file shows the Redis engine carries it: one numbering on both
//! instances under Redis' own epoch, and a Redis that restarts empty making every watcher
//! resync onto a new epoch with the calls rebuilt.

mod common;

use std::time::Duration;

use common::redis::RedisServer;
use common::{TestGateway, as_user, next_event, pb, snapshot, watch_calls, within};
use tonic::Code;

type Watch = tonic::Streaming<pb::WatchCallsResponse>;

/// Starts a bridge instance on `upstream` in the cluster on `redis`.
async fn instance(upstream: &TestGateway, redis: &RedisServer) -> TestGateway {
    instance_with(upstream, redis, 600, None).await
}

/// Starts a bridge instance with its own lease TTL and renew interval.
async fn instance_with(
    upstream: &TestGateway,
    redis: &RedisServer,
    ttl_ms: u64,
    renew_ms: Option<u64>,
) -> TestGateway {
    let (upstream, redis) = (upstream.http_url(), redis.url());
    TestGateway::builder()
        .config(move |config| {
            config.upstream.url = Some(upstream);
            config.cluster.url = Some(redis);
            config.cluster.lease_ttl_ms = ttl_ms;
            config.cluster.renew_interval_ms = renew_ms;
        })
        .start()
        .await
}

/// agent1's lease as Redis holds it (`<fence>:<holder>`).
async fn agent1_lease(redis: &RedisServer) -> Option<String> {
    let mut connection = redis.connection().await;
    ::redis::cmd("GET")
        .arg("vg:lease:agent1")
        .query_async(&mut connection)
        .await
        .unwrap()
}

/// Redis' epoch key, as the engine set it.
async fn redis_epoch(redis: &RedisServer) -> Option<String> {
    let mut connection = redis.connection().await;
    ::redis::cmd("GET")
        .arg("vg:epoch")
        .query_async(&mut connection)
        .await
        .unwrap()
}

/// `user` dials `to` on `gateway`; returns the call id.
async fn dial(gateway: &TestGateway, user: &str, to: &str) -> String {
    let dial = pb::DialRequest {
        destination: to.into(),
        ..Default::default()
    };
    gateway
        .calls()
        .await
        .dial(as_user(user, dial))
        .await
        .unwrap_or_else(|status| panic!("{user} dials {to}: {status:?}"))
        .into_inner()
        .call
        .unwrap()
        .id
}

/// `user` hangs the call `id` up on `gateway`.
async fn hangup(gateway: &TestGateway, user: &str, id: &str) {
    let hangup = pb::HangupRequest {
        call_id: id.to_owned(),
    };
    gateway
        .calls()
        .await
        .hangup(as_user(user, hangup))
        .await
        .unwrap_or_else(|status| panic!("{user} hangs up {id}: {status:?}"));
}

/// Reads `watch` until the call `id` is released; returns (sequence, epoch, call state) of
/// every event read.
async fn until_released(watch: &mut Watch, id: &str) -> Vec<(u64, String, i32)> {
    common::watch_until(watch, |e| {
        let call = e.call.as_ref().unwrap();
        call.id == id && call.state() == pb::CallState::Released
    })
    .await
    .iter()
    .map(|e| (e.sequence, e.epoch.clone(), e.call.as_ref().unwrap().state))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_redis_number_every_event_alike_under_redis_epoch() {
    let redis = RedisServer::start().await;
    let upstream = TestGateway::spawn().await;
    let (a, b) = (
        instance(&upstream, &redis).await,
        instance(&upstream, &redis).await,
    );
    let mut on_a = watch_calls(&mut a.calls().await, "agent1").await;
    let mut on_b = watch_calls(&mut b.calls().await, "agent1").await;
    let id = dial(&a, "agent1", "15001").await;
    hangup(&b, "agent1", &id).await;
    let seen_on_a = until_released(&mut on_a, &id).await;
    let seen_on_b = until_released(&mut on_b, &id).await;
    assert_eq!(seen_on_a, seen_on_b, "A and B disagree");
    let epoch = redis_epoch(&redis).await.expect("the engine set an epoch");
    assert!(
        seen_on_a.iter().all(|(_, e, _)| *e == epoch),
        "{seen_on_a:?}"
    );
    let sequences: Vec<_> = seen_on_a.iter().map(|(s, _, _)| *s).collect();
    assert!(
        sequences.windows(2).all(|w| w[1] == w[0] + 1),
        "agent1's entries are the whole log: dense sequences, {sequences:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restarted_empty_makes_watchers_resync_onto_a_new_epoch() {
    let mut redis = RedisServer::start().await;
    let upstream = TestGateway::spawn().await;
    let (a, b) = (
        instance(&upstream, &redis).await,
        instance(&upstream, &redis).await,
    );
    let mut on_b = watch_calls(&mut b.calls().await, "agent1").await;
    let id = dial(&a, "agent1", "15001").await;
    let before = next_event(&mut on_b).await;
    redis.restart_empty().await;
    let ended = common::ending_status(&mut on_b).await;
    assert_eq!(ended.code(), Code::OutOfRange, "{ended:?}");
    // The resync: a new snapshot on Redis' new epoch holds the call again, once its owner
    // re-read the upstream into the new log.
    let mut calls_b = b.calls().await;
    let rebuilt = within("the rebuilt snapshot", async {
        loop {
            if let Ok(watch) = calls_b
                .watch_calls(as_user("agent1", pb::WatchCallsRequest::default()))
                .await
            {
                let snap = snapshot(&mut watch.into_inner()).await;
                if snap.calls.iter().any(|c| c.id == id) {
                    return snap;
                }
            }
            // The poll interval of this check; `within` bounds it.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_ne!(rebuilt.epoch, before.epoch, "a new epoch");
    assert_eq!(Some(rebuilt.epoch), redis_epoch(&redis).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_hands_the_user_off_through_redis_at_once() {
    // Tries every 10 s: only the release's pub/sub message can hand agent1 off within the
    // bound.
    let (ttl, renew) = (30_000, Some(10_000));
    let bound = Duration::from_millis(500);
    let redis = RedisServer::start().await;
    let upstream = TestGateway::spawn().await;
    let a = instance_with(&upstream, &redis, ttl, renew).await;
    drop(watch_calls(&mut a.calls().await, "agent1").await);
    let first = agent1_lease(&redis).await.expect("A owns agent1");
    // B's sign-in returns once B tried the lease (and found A's): B now waits.
    let b = instance_with(&upstream, &redis, ttl, renew).await;
    let mut on_b = watch_calls(&mut b.calls().await, "agent1").await;
    let stopping = std::time::Instant::now();
    a.stop().await.unwrap();
    let took = loop {
        if agent1_lease(&redis)
            .await
            .is_some_and(|lease| lease != first)
        {
            break stopping.elapsed();
        }
        assert!(
            stopping.elapsed() < bound,
            "agent1 not handed off within {bound:?} of A's stop (renew interval 10 s)"
        );
        // The poll interval of this check; the bound above ends it.
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    eprintln!("hand-off through Redis after a graceful stop: {took:?}");
    // B owns agent1 now: an operation's events reach B's watcher.
    let id = dial(&b, "agent1", "15001").await;
    hangup(&b, "agent1", &id).await;
    let seen = until_released(&mut on_b, &id).await;
    let sequences: Vec<_> = seen.iter().map(|(s, _, _)| *s).collect();
    assert!(
        sequences.windows(2).all(|w| w[1] == w[0] + 1),
        "dense sequences after the hand-off: {sequences:?}"
    );
}

/// The session records of movable CometD sessions on Redis: written with a TTL, only by
/// their owner unless adopted, deleted only by their owner.
#[tokio::test]
async fn session_records_belong_to_their_owner_until_another_instance_adopts_them() {
    use voice_gateway::cluster::SessionRecords as _;
    use voice_gateway::cluster::redis::{RedisConfig, RedisEngine};
    let redis = RedisServer::start().await;
    let engine = RedisEngine::new(RedisConfig::with_url(redis.url())).unwrap();
    let mut record = voice_gateway::cluster::SessionRecord {
        client_id: "c1".into(),
        owner: "a".into(),
        user: "agent1".into(),
        browser_id: Some("b1".into()),
        http_session: false,
        subscriptions: vec!["/v2/me/calls".into()],
        ack: true,
        epoch: "e1".into(),
    };
    let ttl = Duration::from_secs(30);
    assert!(engine.put(&record, ttl, false).await.unwrap());
    assert_eq!(engine.get("c1").await.unwrap().as_ref(), Some(&record));
    let mut connection = redis.connection().await;
    let pttl: i64 = ::redis::cmd("PTTL")
        .arg("vg:session:c1")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= 30_000, "a TTL: {pttl}");
    // Another instance writes only by adopting.
    let mut moved = record.clone();
    moved.owner = "b".into();
    assert!(!engine.put(&moved, ttl, false).await.unwrap());
    assert!(engine.put(&moved, ttl, true).await.unwrap());
    // The old owner can neither overwrite nor delete it now.
    record.subscriptions.clear();
    assert!(!engine.put(&record, ttl, false).await.unwrap());
    engine.delete("c1", "a").await.unwrap();
    assert_eq!(engine.get("c1").await.unwrap(), Some(moved));
    engine.delete("c1", "b").await.unwrap();
    assert_eq!(engine.get("c1").await.unwrap(), None);
}
