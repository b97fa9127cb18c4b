//! Cluster mode end to end, in one process: an embedded gateway plays the upstream GWS, and
//! two or three bridge gateways share one in-memory engine (the Redis engine's contract,
//! with test hooks: lose its data, take it down). Only agent1 signs in on the bridges, so
//! every entry of the shared log is agent1's and agent1's watchers must see dense
//! sequences; the other agents act on the upstream directly.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TestGateway, as_user, next_event, pb, snapshot, watch_calls, within};
use tonic::Code;
use voice_gateway::cluster::Engine;
use voice_gateway::cluster::memory::MemoryEngine;

type Calls = pb::call_service_client::CallServiceClient<tonic::transport::Channel>;
type Watch = tonic::Streaming<pb::WatchCallsResponse>;

/// The lease TTL of the bridges: short, so a takeover happens within a test's wait.
const LEASE_TTL_MS: u64 = 300;

struct Cluster {
    engine: Arc<MemoryEngine>,
    upstream: TestGateway,
}

impl Cluster {
    async fn new() -> Self {
        Self {
            engine: Arc::new(MemoryEngine::default()),
            upstream: TestGateway::spawn().await,
        }
    }

    /// Starts one more bridge instance in the cluster.
    async fn instance(&self) -> TestGateway {
        self.instance_with(LEASE_TTL_MS, None).await
    }

    /// Starts one more bridge instance in the cluster with its own lease TTL and renew
    /// interval.
    async fn instance_with(&self, ttl_ms: u64, renew_ms: Option<u64>) -> TestGateway {
        let url = self.upstream.http_url();
        TestGateway::builder()
            .config(move |config| {
                config.upstream.url = Some(url);
                config.cluster.lease_ttl_ms = ttl_ms;
                config.cluster.renew_interval_ms = renew_ms;
            })
            .cluster(Engine::memory(self.engine.clone()))
            .start()
            .await
    }

    /// Waits until someone holds agent1's lease; returns the holder.
    async fn owner(&self) -> String {
        let deadline = tokio::time::Instant::now() + common::WAIT;
        loop {
            if let Some(grant) = self.engine.holder_now("agent1") {
                return grant.holder;
            }
            assert!(tokio::time::Instant::now() < deadline, "no owner of agent1");
            // The poll interval of this check; the deadline bounds it.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// What two watchers must agree on about an event.
fn seen(event: &pb::CallEvent) -> (u64, String, i32, String, i32) {
    let call = event.call.as_ref().expect("a call event");
    (
        event.sequence,
        event.epoch.clone(),
        event.notification_type,
        call.id.clone(),
        call.state,
    )
}

fn released(id: &str) -> impl Fn(&pb::CallEvent) -> bool + '_ {
    move |e| {
        let call = e.call.as_ref().unwrap();
        call.id == id && call.state() == pb::CallState::Released
    }
}

/// `user` dials `to` through `calls`; returns the call id.
async fn dial(calls: &mut Calls, user: &str, to: &str) -> String {
    let dial = pb::DialRequest {
        destination: to.into(),
        ..Default::default()
    };
    calls
        .dial(as_user(user, dial))
        .await
        .unwrap_or_else(|status| panic!("{user} dials {to}: {status:?}"))
        .into_inner()
        .call
        .unwrap()
        .id
}

async fn hangup(calls: &mut Calls, user: &str, id: &str) {
    let request = pb::HangupRequest { call_id: id.into() };
    calls
        .hangup(as_user(user, request))
        .await
        .unwrap_or_else(|status| panic!("{user} hangs up {id}: {status:?}"));
}

fn resume(from: u64, epoch: &str) -> tonic::Request<pb::WatchCallsRequest> {
    as_user(
        "agent1",
        pb::WatchCallsRequest {
            from_sequence: Some(from),
            epoch: epoch.into(),
            ..Default::default()
        },
    )
}

/// Polls `check` until it holds, failing with `what` after [`common::WAIT`].
async fn eventually_async<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {:?}: {what}",
            common::WAIT
        );
        // The poll interval of this check; the deadline bounds it.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Watches `gateway`'s gRPC health of CallService until it is `want` (1 SERVING, 2
/// NOT_SERVING), failing after [`common::WAIT`].
async fn health_becomes(gateway: &TestGateway, want: i32) {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let channel = tonic::transport::Endpoint::from_shared(gateway.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let ask = HealthCheckRequest {
        service: "voice.v1.CallService".into(),
    };
    let mut changes = HealthClient::new(channel)
        .watch(ask)
        .await
        .unwrap()
        .into_inner();
    within("the health change", async {
        while let Some(status) = changes.message().await.unwrap() {
            if status.status == want {
                return;
            }
        }
        panic!("the health watch ended");
    })
    .await;
}

/// Reads events until `wanted`; returns them all.
async fn read_until(
    watch: &mut Watch,
    wanted: impl Fn(&pb::CallEvent) -> bool,
) -> Vec<pb::CallEvent> {
    common::watch_until(watch, wanted).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_on_one_instance_reaches_every_instance_with_one_numbering() {
    let cluster = Cluster::new().await;
    let (a, b, c) = (
        cluster.instance().await,
        cluster.instance().await,
        cluster.instance().await,
    );
    let mut on_a = watch_calls(&mut a.calls().await, "agent1").await;
    let mut on_b = watch_calls(&mut b.calls().await, "agent1").await;
    let mut on_c = watch_calls(&mut c.calls().await, "agent1").await;
    let id = dial(&mut a.calls().await, "agent1", "15001").await;
    hangup(&mut b.calls().await, "agent1", &id).await;
    let seen_on_a: Vec<_> = read_until(&mut on_a, released(&id))
        .await
        .iter()
        .map(seen)
        .collect();
    let seen_on_b: Vec<_> = read_until(&mut on_b, released(&id))
        .await
        .iter()
        .map(seen)
        .collect();
    let seen_on_c: Vec<_> = read_until(&mut on_c, released(&id))
        .await
        .iter()
        .map(seen)
        .collect();
    assert_eq!(seen_on_a, seen_on_c, "A and C disagree");
    assert_eq!(seen_on_a, seen_on_b, "A and B disagree");
    let epoch = cluster.engine.entries().0.unwrap();
    assert!(seen_on_a.iter().all(|e| e.1 == epoch), "the engine's epoch");
    // Exactly one instance runs agent1's upstream CometD client.
    cluster.owner().await;
    assert_eq!(
        cluster.upstream.registry.len(),
        1,
        "one upstream client for agent1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_noted_on_one_instance_resumes_on_another_with_exactly_the_missed_events() {
    let cluster = Cluster::new().await;
    let (a, b) = (cluster.instance().await, cluster.instance().await);
    let mut reference = watch_calls(&mut a.calls().await, "agent1").await;
    let mut noting = watch_calls(&mut a.calls().await, "agent1").await;
    // Signs agent1 in on B too.
    drop(watch_calls(&mut b.calls().await, "agent1").await);
    let first = dial(&mut a.calls().await, "agent1", "15001").await;
    let noted = next_event(&mut noting).await;
    drop(noting);
    hangup(&mut a.calls().await, "agent1", &first).await;
    let second = dial(&mut a.calls().await, "agent1", "15002").await;
    hangup(&mut a.calls().await, "agent1", &second).await;
    let all = read_until(&mut reference, released(&second)).await;
    let missed: Vec<_> = all
        .iter()
        .filter(|e| e.sequence > noted.sequence)
        .map(seen)
        .collect();
    assert!(missed.len() >= 3, "{missed:?}");

    let mut calls_b = b.calls().await;
    let mut resumed = within(
        "the resume on B",
        calls_b.watch_calls(resume(noted.sequence, &noted.epoch)),
    )
    .await
    .unwrap()
    .into_inner();
    let got: Vec<_> = read_until(&mut resumed, released(&second))
        .await
        .iter()
        .map(seen)
        .collect();
    assert_eq!(
        got, missed,
        "exactly the missed events, on another instance"
    );

    let refused = calls_b
        .watch_calls(resume(noted.sequence, "0123456789abcdef0123456789abcdef"))
        .await
        .expect_err("another epoch is refused");
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
}

/// agent1's calls on the upstream, by id, with their states.
async fn upstream_calls_of_agent1(upstream: &TestGateway) -> Vec<(String, i32)> {
    let list = upstream
        .calls()
        .await
        .list_calls(as_user("agent1", pb::ListCallsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let mut calls: Vec<_> = list.calls.into_iter().map(|c| (c.id, c.state)).collect();
    calls.sort();
    calls
}

/// A and then B sign agent1 in (A owns the lease), and agent2 calls agent1 on the
/// upstream, who answers there: a call that stays established across what follows.
struct Takeover {
    a: TestGateway,
    b: TestGateway,
    on_b: Watch,
    long: String,
    upstream_calls: Calls,
}

impl Takeover {
    async fn new(cluster: &Cluster) -> Self {
        let a = cluster.instance().await;
        let mut on_a = watch_calls(&mut a.calls().await, "agent1").await;
        let first_owner = cluster.owner().await;
        let b = cluster.instance().await;
        let mut on_b = watch_calls(&mut b.calls().await, "agent1").await;
        assert_eq!(
            cluster.owner().await,
            first_owner,
            "A keeps it while it lives"
        );
        let mut upstream_calls = cluster.upstream.calls().await;
        let long = dial(&mut upstream_calls, "agent2", "15000").await;
        let answer = pb::AnswerRequest {
            call_id: long.clone(),
        };
        upstream_calls
            .answer(as_user("agent1", answer))
            .await
            .unwrap();
        let established = |e: &pb::CallEvent| {
            let call = e.call.as_ref().unwrap();
            call.id == long && call.state() == pb::CallState::Established
        };
        read_until(&mut on_a, established).await;
        read_until(&mut on_b, established).await;
        Self {
            a,
            b,
            on_b,
            long,
            upstream_calls,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_owner_stops_another_instance_takes_over_without_a_gap_while_calls_go_on() {
    let cluster = Cluster::new().await;
    let Takeover {
        a,
        b,
        mut on_b,
        long,
        mut upstream_calls,
        ..
    } = Takeover::new(&cluster).await;
    let driver = {
        let mut calls = cluster.upstream.calls().await;
        tokio::spawn(async move {
            for _ in 0..6 {
                let id = dial(&mut calls, "agent3", "15000").await;
                hangup(&mut calls, "agent3", &id).await;
            }
        })
    };
    // The owner stops while the calls go on (a graceful stop: its lease is released
    // before it returns, not left to lapse).
    let third_caller = |e: &pb::CallEvent| e.call.as_ref().unwrap().id != long;
    let mut events = read_until(&mut on_b, third_caller).await;
    let grant = cluster.engine.holder_now("agent1").unwrap();
    a.stop().await.unwrap();
    assert_ne!(
        cluster.engine.holder_now("agent1").as_ref(),
        Some(&grant),
        "the stopped owner's lease is released"
    );
    within("the driver", driver).await.unwrap();
    hangup(&mut upstream_calls, "agent2", &long).await;
    events.extend(read_until(&mut on_b, released(&long)).await);
    // One numbering: neither a gap nor a sequence twice at the watcher on B.
    for pair in events.windows(2) {
        assert_eq!(
            pair[1].sequence,
            pair[0].sequence + 1,
            "a gap or a duplicate: {pair:#?}"
        );
    }
    // And B ends with the upstream's truth (calls rung and released while no one owned
    // agent1 are not reported: the re-read finds them gone, as they were never mirrored).
    let calls_b = b.calls().await;
    let upstream = &cluster.upstream;
    eventually_async("B mirrors the upstream", || {
        let mut calls_b = calls_b.clone();
        async move {
            let list = calls_b
                .list_calls(as_user("agent1", pb::ListCallsRequest::default()))
                .await
                .unwrap()
                .into_inner();
            let mut mine: Vec<_> = list.calls.into_iter().map(|c| (c.id, c.state)).collect();
            mine.sort();
            mine == upstream_calls_of_agent1(upstream).await
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_lease_is_taken_over_at_once_not_at_the_next_periodic_try() {
    // Tries every 10 s: only the release's notification can hand the user off within
    // the bound.
    let (ttl, renew) = (30_000, Some(10_000));
    let bound = Duration::from_millis(500);
    let cluster = Cluster::new().await;
    let a = cluster.instance_with(ttl, renew).await;
    let mut on_a = watch_calls(&mut a.calls().await, "agent1").await;
    let first = cluster.owner().await;
    // B's sign-in returns once B tried the lease (and found A's): B now waits.
    let b = cluster.instance_with(ttl, renew).await;
    let mut on_b = watch_calls(&mut b.calls().await, "agent1").await;
    let mut upstream_calls = cluster.upstream.calls().await;
    let long = dial(&mut upstream_calls, "agent2", "15000").await;
    let ringing = |e: &pb::CallEvent| e.call.as_ref().unwrap().id == long;
    read_until(&mut on_a, ringing).await;
    let mut events = read_until(&mut on_b, ringing).await;

    let stopping = std::time::Instant::now();
    a.stop().await.unwrap();
    let deadline = stopping + bound;
    let took = loop {
        if cluster
            .engine
            .holder_now("agent1")
            .is_some_and(|grant| grant.holder != first)
        {
            break stopping.elapsed();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "agent1 not handed off within {bound:?} of A's stop (renew interval 10 s)"
        );
        // The poll interval of this check; the deadline bounds it.
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    eprintln!("hand-off after a graceful stop: {took:?}");

    // The new owner reports what follows, after the events B had: no gap, no duplicate.
    hangup(&mut upstream_calls, "agent2", &long).await;
    events.extend(read_until(&mut on_b, released(&long)).await);
    for pair in events.windows(2) {
        assert_eq!(
            pair[1].sequence,
            pair[0].sequence + 1,
            "a gap or a duplicate: {pair:#?}"
        );
    }
    let ids: Vec<_> = events
        .iter()
        .map(|e| e.call.as_ref().unwrap().id.clone())
        .collect();
    assert!(ids.iter().all(|id| *id == long), "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_reports_only_what_changed() {
    let cluster = Cluster::new().await;
    let takeover = Takeover::new(&cluster).await;
    let Takeover {
        mut on_b,
        long,
        mut upstream_calls,
        ..
    } = takeover;
    // The owner is paused past its lease: the lease lapses, a new grant follows (B's, or
    // A's again once its refused renew stopped it: a takeover either way).
    let old = cluster.engine.holder_now("agent1").unwrap();
    cluster.engine.lapse("agent1");
    eventually_async("a new owner", || async {
        cluster
            .engine
            .holder_now("agent1")
            .is_some_and(|grant| grant.fence > old.fence)
    })
    .await;
    // A change after the takeover: the new owner reports it only once it has subscribed
    // and re-read the user, so every report of the re-read comes before it.
    let marker = dial(&mut upstream_calls, "agent3", "15000").await;
    let ringing = |e: &pb::CallEvent| e.call.as_ref().unwrap().id == marker;
    let events = read_until(&mut on_b, ringing).await;
    let again: Vec<_> = events
        .iter()
        .filter(|e| e.call.as_ref().unwrap().id == long)
        .collect();
    assert!(
        again.is_empty(),
        "the unchanged call reported again after the takeover: {again:#?}"
    );
    assert_eq!(events.len(), 1, "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_engine_log_tells_watchers_to_resync_and_the_state_is_rebuilt() {
    let cluster = Cluster::new().await;
    let (a, b) = (cluster.instance().await, cluster.instance().await);
    let mut on_a = watch_calls(&mut a.calls().await, "agent1").await;
    let mut on_b = watch_calls(&mut b.calls().await, "agent1").await;
    let id = dial(&mut a.calls().await, "agent1", "15001").await;
    let before = next_event(&mut on_b).await;
    cluster.engine.lose_data();
    for (name, watch) in [("A", &mut on_a), ("B", &mut on_b)] {
        let ended = common::ending_status(watch).await;
        assert_eq!(ended.code(), Code::OutOfRange, "{name}: {ended:?}");
        assert!(ended.message().contains("resync"), "{ended:?}");
    }
    // The resync: a new snapshot on the new epoch holds the call again, once the owner
    // re-read the upstream.
    let mut calls_b = b.calls().await;
    let rebuilt = within("the rebuilt snapshot", async {
        loop {
            let mut watch = calls_b
                .watch_calls(as_user("agent1", pb::WatchCallsRequest::default()))
                .await
                .unwrap()
                .into_inner();
            let snap = snapshot(&mut watch).await;
            if snap.calls.iter().any(|c| c.id == id) {
                return snap;
            }
            // The poll interval of this check; `within` bounds it.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_ne!(rebuilt.epoch, before.epoch, "a new epoch");
    assert_eq!(Some(rebuilt.epoch), cluster.engine.entries().0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_engine_is_down_operations_fail_fast_and_recover_by_themselves() {
    let cluster = Cluster::new().await;
    let a = cluster.instance().await;
    let mut calls = a.calls().await;
    drop(watch_calls(&mut calls, "agent1").await);
    cluster.owner().await;
    cluster.engine.set_available(false);
    // The engine is found down at the next renew or read.
    let refused = within("a refusal", async {
        loop {
            let dial = pb::DialRequest {
                destination: "15001".into(),
                ..Default::default()
            };
            match calls.dial(as_user("agent1", dial)).await {
                Err(status) if status.code() == Code::Unavailable => return status,
                Err(status) => panic!("{status:?}"),
                // A Dial that went through before the engine was found down: hang it up.
                Ok(reply) => {
                    let id = reply.into_inner().call.unwrap().id;
                    let _ = calls
                        .hangup(as_user("agent1", pb::HangupRequest { call_id: id }))
                        .await;
                }
            }
        }
    })
    .await;
    assert!(refused.message().contains("cluster engine"), "{refused:?}");
    assert_eq!(common::gws_status(&refused), 4);
    health_becomes(&a, 2).await;
    cluster.engine.set_available(true);
    health_becomes(&a, 1).await;
    let id = within("a Dial after recovery", async {
        loop {
            let dial = pb::DialRequest {
                destination: "15001".into(),
                ..Default::default()
            };
            if let Ok(reply) = calls.dial(as_user("agent1", dial)).await {
                return reply.into_inner().call.unwrap().id;
            }
            // The poll interval of this check; `within` bounds it.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    hangup(&mut calls, "agent1", &id).await;
}
