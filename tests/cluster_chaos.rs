//! Cluster chaos on one box (issue 16): `redis-server`, an embedded gateway binary as the
//! upstream GWS, three bridge instances as real binaries in one cluster, a watcher of every
//! user on every instance and a driver making calls through all of them; each test is one
//! failure, and asserts at every watcher that no event was lost or duplicated (the checks of
//! `cluster_chaos_support::checks`) and that no old owner wrote past its lease (Redis'
//! `MONITOR`: per user, the fences of the entries written only grow).

mod cluster_chaos_support;
mod common;

use std::time::{Duration, Instant};

use cluster_chaos_support::Cluster;
use cluster_chaos_support::driver::Driver;

/// A short lease, so a takeover after a crash is quick.
const SHORT_LEASE: &str = "lease_ttl_ms = 600";

/// Asserts that every watcher that started on `gone` resumed on another instance.
fn assert_moved_off(cluster: &Cluster, gone: usize) {
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
