//! Cluster chaos on one box (issue 16): `redis-server`, an embedded gateway binary as the
//! upstream GWS, three bridge instances as real binaries in one cluster, a watcher of every
//! user on every instance and a driver making calls through all of them; each test is one
//! failure, and asserts at every watcher that no event was lost or duplicated (the checks of
//! `cluster_chaos_support::checks`), the same at every CometD desk (ack on, long-polling
//! and WebSocket, moving to another instance when its own goes away, as behind a sticky
//! balancer: `cluster_chaos_support::desk_checks`), and that no old owner wrote past its
//! lease (Redis' `MONITOR`: per user, the fences of the entries written only grow).

mod cluster_chaos_support;
mod common;

use std::time::{Duration, Instant};

use cluster_chaos_support::Cluster;
use cluster_chaos_support::driver::Driver;

/// A short lease, so a takeover after a crash is quick.
const SHORT_LEASE: &str = "lease_ttl_ms = 600";

/// Asserts that every watcher and every desk that started on `gone` resumed on another
/// instance (a desk: its session adopted there, no new handshake).
fn assert_moved_off(cluster: &Cluster, gone: usize) {
    for d in cluster.desks.iter().filter(|d| d.first_home == gone) {
        let record = d.record();
        assert!(
            record.on != gone && record.moves >= 1 && record.unknown == 0,
            "a {:?} desk of {} that was on {gone} is on {} after {} moves, {} 402s",
            d.transport,
            d.user,
            record.on,
            record.moves,
            record.unknown
        );
    }
    for w in cluster.watchers.iter().filter(|w| w.first_home == gone) {
        let record = w.record();
        assert!(
            record.on != gone && record.resumes >= 1 && record.out_of_range == 0,
            "a watcher of {} that was on {gone} is on {} after {} resumes, {} OUT_OF_RANGE",
            w.user,
            record.on,
            record.resumes,
            record.out_of_range
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_an_owner_is_taken_over_within_the_lease_and_watchers_resume_elsewhere() {
    let mut cluster = Cluster::start("sigkill", SHORT_LEASE, 1).await;
    let driver = Driver::start(cluster.instances.clone());
    cluster.calls_go_on(&driver, 3).await;
    let (owner, _) = cluster.owner("agent1").await;
    cluster.instances.down(owner);
    let killed = Instant::now();
    cluster.nodes[owner].kill().await;
    let bound = cluster.lease_ttl + Duration::from_secs(1);
    let (took, new_owner) = cluster.takeover("agent1", owner, killed, bound).await;
    eprintln!("takeover after SIGKILL: {took:?} (instance {owner} -> {new_owner})");
    cluster.calls_go_on(&driver, 3).await;
    let done = driver.stop().await;
    cluster.assert_all(&done).await;
    assert_moved_off(&cluster, owner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_the_users_off_within_half_a_second() {
    // A lease and a renew interval far longer than the bound, so only the drain's release,
    // reported to the others through Redis, can meet it: their periodic try comes every
    // 10 s. Measured on the shared 2-core VM: 20-87 ms in twelve runs (before the release
    // was reported, with a 300 ms renew interval: 41-317 ms, the period's phase).
    let keys = "lease_ttl_ms = 30000\nrenew_interval_ms = 10000";
    let mut cluster = Cluster::start("sigterm", keys, 1).await;
    let driver = Driver::start(cluster.instances.clone());
    cluster.calls_go_on(&driver, 3).await;
    let (owner, _) = cluster.owner("agent1").await;
    cluster.instances.down(owner);
    let terminated = Instant::now();
    cluster.nodes[owner].sigterm();
    // Measured up to the lease's expiry, asserted against the graceful bound.
    let (took, new_owner) = cluster
        .takeover("agent1", owner, terminated, cluster.lease_ttl * 2)
        .await;
    eprintln!("hand-off after SIGTERM: {took:?} (instance {owner} -> {new_owner})");
    assert!(
        took <= Duration::from_millis(500),
        "the hand-off after SIGTERM took {took:?}; log of the drained instance:\n{}",
        cluster.nodes[owner].log_lines().join("\n")
    );
    let status = cluster.nodes[owner]
        .wait_with_timeout(common::binary::BINARY_BOUND)
        .await;
    assert!(
        status.success(),
        "the drained instance exits cleanly: {status}"
    );
    cluster.calls_go_on(&driver, 3).await;
    let done = driver.stop().await;
    cluster.assert_all(&done).await;
    assert_moved_off(&cluster, owner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restarted_empty_makes_every_watcher_resync_onto_a_new_epoch_and_calls_go_on() {
    let mut cluster = Cluster::start("redis-restart", SHORT_LEASE, 1).await;
    cluster.desks_may_resync = true;
    let driver = Driver::start(cluster.instances.clone());
    cluster.calls_go_on(&driver, 3).await;
    let mut done = driver.stop().await;
    // A call that lives across the restart: the new log must rebuild it.
    let mut calls = common::pb::call_service_client::CallServiceClient::connect(
        cluster.instances.urls[0].clone(),
    )
    .await
    .unwrap();
    let id = common::established_call_between(&mut calls, "agent1", "agent2", "15001").await;
    let old = cluster.epoch().await.expect("an epoch");
    cluster.redis.restart_empty().await;
    let resynced = |w: &cluster_chaos_support::watcher::Watcher| {
        let record = w.record();
        let Some((epoch, _, _)) = record.snapshots.last() else {
            return false;
        };
        *epoch != old && record.out_of_range >= 1
    };
    cluster
        .every_watcher("got OUT_OF_RANGE and a snapshot of a new epoch", resynced)
        .await;
    let new = cluster.epoch().await.expect("a new epoch");
    assert_ne!(new, old);
    // The call is back in the new log: in the snapshot, or as an event right after it.
    let parties = ["agent1", "agent2"];
    let knows_the_call = |w: &cluster_chaos_support::watcher::Watcher| {
        let record = w.record();
        !parties.contains(&w.user)
            || record
                .snapshots
                .iter()
                .any(|(epoch, _, calls)| *epoch == new && calls.contains(&id))
            || record.events.iter().any(|e| e.epoch == new && e.call == id)
    };
    cluster
        .every_watcher("has the call rebuilt in the new epoch", knows_the_call)
        .await;
    // In the new log itself: an instance that starts now knows only that log.
    let late = cluster.another_instance().await;
    let mut on_late = late.calls().await;
    let request = common::as_user("agent2", common::pb::WatchCallsRequest::default());
    let watch = common::within("a watch on a new instance", on_late.watch_calls(request));
    let snap = common::snapshot(&mut watch.await.expect("a watch").into_inner()).await;
    assert_eq!(snap.epoch, new);
    assert!(
        snap.calls.iter().any(|c| c.id == id),
        "a new instance's snapshot has the call: {snap:?}"
    );
    // The instances recovered by themselves: calls go through all of them again.
    let driver = Driver::start(cluster.instances.clone());
    cluster.calls_go_on(&driver, 3).await;
    let hangup = common::pb::HangupRequest {
        call_id: id.clone(),
    };
    calls
        .hangup(common::as_user("agent1", hangup))
        .await
        .expect("a hang-up after the restart");
    let released = |w: &cluster_chaos_support::watcher::Watcher| {
        !parties.contains(&w.user)
            || w.record().events.iter().any(|e| {
                e.epoch == new && e.call == id && e.state == common::pb::CallState::Released
            })
    };
    cluster
        .every_watcher("saw the rebuilt call released", released)
        .await;
    done.extend(driver.stop().await);
    cluster.assert_all(&done).await;
    for d in &cluster.desks {
        let record = d.record();
        assert!(
            record.unknown >= 1 && record.segments.len() >= 2,
            "a desk of {} was told to handshake again and did: {} 402s, {} sessions",
            d.user,
            record.unknown,
            record.segments.len()
        );
    }
    // (A watcher may be told OUT_OF_RANGE twice: its resync opened on an instance whose
    // tail was still switching epochs.)
    for w in &cluster.watchers {
        let record = w.record();
        assert!(
            record
                .snapshots
                .last()
                .is_some_and(|(epoch, _, _)| *epoch == new),
            "a watcher of {} ends on the new epoch: {:?}",
            w.user,
            record.snapshots
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_paused_past_its_lease_is_fenced_and_the_new_owner_goes_on() {
    let cluster = Cluster::start("sigstop", SHORT_LEASE, 1).await;
    let driver = Driver::start(cluster.instances.clone());
    cluster.calls_go_on(&driver, 3).await;
    let (owner, _) = cluster.owner("agent1").await;
    cluster.instances.down(owner);
    let paused = Instant::now();
    cluster.nodes[owner].signal(libc::SIGSTOP);
    // The balancer's health check finds it unresponsive: its desks' held connects are
    // dropped, and their next ones go elsewhere (and back home once it is up again).
    for d in cluster.desks.iter().filter(|d| d.first_home == owner) {
        d.kick();
    }
    let bound = cluster.lease_ttl + Duration::from_secs(1);
    let (took, new_owner) = cluster.takeover("agent1", owner, paused, bound).await;
    eprintln!("takeover after SIGSTOP: {took:?} (instance {owner} -> {new_owner})");
    // The old owner's upstream CometD client has these calls' notifications waiting for
    // it when it wakes up: what it makes of them must be refused.
    cluster.calls_go_on(&driver, 3).await;
    cluster.nodes[owner].signal(libc::SIGCONT);
    cluster.nodes[owner]
        .wait_for_log(
            "cluster: lease lost; this instance stops acting for the user",
            common::WAIT,
        )
        .await;
    cluster.instances.up(owner);
    cluster.calls_go_on(&driver, 3).await;
    let done = driver.stop().await;
    cluster.assert_all(&done).await;
    let (holder, _) = cluster.owner("agent1").await;
    assert_ne!(holder, owner, "the paused owner did not take agent1 back");
    for d in cluster.desks.iter().filter(|d| d.first_home == owner) {
        let record = d.record();
        assert!(
            record.moves >= 1 && record.unknown == 0,
            "a desk of {} on the paused instance moved without a new handshake: {} moves, \
             {} 402s",
            d.user,
            record.moves,
            record.unknown
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_storm_of_every_watcher_onto_one_instance_loses_and_repeats_nothing() {
    let cluster = Cluster::start("storm", SHORT_LEASE, 2).await;
    let driver = Driver::start(cluster.instances.clone());
    cluster.calls_go_on(&driver, 3).await;
    // All at once, while the driver goes on.
    for w in &cluster.watchers {
        w.move_to(0);
    }
    for d in &cluster.desks {
        d.move_to(0);
    }
    let moved = |w: &cluster_chaos_support::watcher::Watcher| {
        let record = w.record();
        record.on == 0 && (w.first_home == 0 || record.resumes >= 1)
    };
    cluster.every_watcher("resumed on instance 0", moved).await;
    common::eventually("every desk connects to instance 0", || {
        cluster.desks.iter().all(|d| d.record().on == 0)
    })
    .await;
    cluster.calls_go_on(&driver, 3).await;
    let done = driver.stop().await;
    cluster.assert_all(&done).await;
    for w in &cluster.watchers {
        let record = w.record();
        assert_eq!(
            (record.out_of_range, record.snapshots.len()),
            (0, 1),
            "a watcher of {} resumed without a resync",
            w.user
        );
    }
    for d in cluster.desks.iter().filter(|d| d.first_home != 0) {
        let record = d.record();
        assert!(
            record.moves >= 1 && record.unknown == 0,
            "a desk of {} moved without a new handshake: {} moves, {} 402s",
            d.user,
            record.moves,
            record.unknown
        );
    }
}
