#![allow(dead_code, unreachable_pub)]
//! The cluster chaos fixture: `redis-server`, one embedded gateway binary as the upstream
//! GWS, three bridge instances as real binaries in one cluster, a watcher of each user on
//! each instance (so every user signed in on every instance and any of them can own it),
//! a CometD desktop of each user on each instance (ack on; long-polling and WebSocket),
//! a Redis `MONITOR` recording who wrote which entry, and a driver making calls.

pub mod checks;
pub mod desk;
pub mod desk_checks;
pub mod driver;
pub mod monitor;
pub mod watcher;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::common::binary::Binary;
use crate::common::redis::RedisServer;
use desk::{Desk, Transport};
use monitor::Monitor;
use watcher::{Instances, Watcher};

/// The users watched and called.
pub const USERS: [&str; 3] = ["agent1", "agent2", "agent3"];

/// How many instances the cluster has.
pub const INSTANCES: usize = 3;

/// The running cluster.
pub struct Cluster {
    pub redis: RedisServer,
    pub upstream: Binary,
    pub nodes: Vec<Binary>,
    pub instances: Arc<Instances>,
    pub monitor: Monitor,
    pub watchers: Vec<Watcher>,
    /// A CometD desk of each user on each instance.
    pub desks: Vec<Desk>,
    /// Whether a desk may have been told to handshake again (the case changed the log's
    /// epoch); otherwise every desk keeps its session.
    pub desks_may_resync: bool,
    /// A watcher of each user on the upstream: the reference.
    pub reference: Vec<Watcher>,
    pub lease_ttl: Duration,
    config: String,
    stop: CancellationToken,
}

impl Cluster {
    /// Starts the cluster with `[cluster]` keys `cluster_keys` (TOML lines) and
    /// `watchers_per_user` watchers of each user on each instance.
    pub async fn start(name: &str, cluster_keys: &str, watchers_per_user: usize) -> Self {
        let redis = RedisServer::start().await;
        let monitor = Monitor::start(redis.port()).await;
        let upstream = Binary::start(&[]).await;
        let config = config_file(name, cluster_keys);
        let start = || {
            Binary::launch()
                .args(&["--config", &config, "--upstream", &upstream.http_url()])
                .args(&["--cluster", &redis.url()])
                .start()
        };
        let (a, b, c) = tokio::join!(start(), start(), start());
        let nodes = vec![a, b, c];
        let instances = Arc::new(Instances {
            urls: nodes.iter().map(Binary::grpc_url).collect(),
            up: (0..INSTANCES).map(|_| AtomicBool::new(true)).collect(),
        });
        let stop = CancellationToken::new();
        let mut watchers = Vec::new();
        for _ in 0..watchers_per_user {
            for user in USERS {
                for home in 0..INSTANCES {
                    let watcher = Watcher::start(user, home, instances.clone(), stop.clone());
                    watchers.push(watcher.await);
                }
            }
        }
        let http = Arc::new(nodes.iter().map(Binary::http_url).collect::<Vec<_>>());
        let mut desks = Vec::new();
        for (u, user) in USERS.into_iter().enumerate() {
            for home in 0..INSTANCES {
                let transport = if (u + home) % 2 == 0 {
                    Transport::LongPolling
                } else {
                    Transport::WebSocket
                };
                let (http, instances) = (http.clone(), instances.clone());
                desks.push(Desk::start(user, transport, home, http, instances, stop.clone()).await);
            }
        }
        let on_upstream = Arc::new(Instances {
            urls: vec![upstream.grpc_url()],
            up: vec![AtomicBool::new(true)],
        });
        let mut reference = Vec::new();
        for user in USERS {
            reference.push(Watcher::start(user, 0, on_upstream.clone(), stop.clone()).await);
        }
        let lease_ttl = lease_ttl(cluster_keys);
        let cluster = Self {
            redis,
            upstream,
            nodes,
            instances,
            monitor,
            watchers,
            desks,
            desks_may_resync: false,
            reference,
            lease_ttl,
            config,
            stop,
        };
        for user in USERS {
            cluster.owner(user).await;
        }
        cluster
    }

    /// Starts one more instance of the cluster (not watched, not driven).
    pub async fn another_instance(&self) -> Binary {
        Binary::launch()
            .args(&[
                "--config",
                &self.config,
                "--upstream",
                &self.upstream.http_url(),
            ])
            .args(&["--cluster", &self.redis.url()])
            .start()
            .await
    }

    /// `user`'s lease now: (fence, holder).
    pub async fn lease(&self, user: &str) -> Option<(u64, String)> {
        let mut connection = self.redis.connection().await;
        let value: Option<String> = ::redis::cmd("GET")
            .arg(format!("vg:lease:{user}"))
            .query_async(&mut connection)
            .await
            .ok()
            .flatten();
        let value = value?;
        let (fence, holder) = value.split_once(':').expect("<fence>:<holder>");
        Some((fence.parse().expect("a fence"), holder.to_owned()))
    }

    /// Waits (bounded) for `user` to have an owner; returns its index and fence.
    pub async fn owner(&self, user: &str) -> (usize, u64) {
        crate::common::within(&format!("an owner of {user}"), async {
            loop {
                if let Some((fence, _)) = self.lease(user).await
                    && let Some(index) = self.holder_of(user, fence)
                {
                    return (index, fence);
                }
                // The poll interval of the lease; `within` bounds it.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
    }

    /// The instance whose log says it took `user`'s lease with `fence`.
    fn holder_of(&self, user: &str, fence: u64) -> Option<usize> {
        self.nodes.iter().position(|node| {
            node.log().iter().any(|line| {
                let fields = &line["fields"];
                fields["message"] == "cluster: this instance owns the user's upstream session"
                    && fields["user"] == user
                    && fields["fence"].to_string().trim_matches('"') == fence.to_string()
            })
        })
    }

    /// Waits at most `bound` for an instance other than `old` to hold `user`'s lease;
    /// returns how long it took from `since` and the new owner.
    pub async fn takeover(
        &self,
        user: &str,
        old: usize,
        since: Instant,
        bound: Duration,
    ) -> (Duration, usize) {
        let found = tokio::time::timeout(bound.saturating_sub(since.elapsed()), async {
            loop {
                if let Some((fence, _)) = self.lease(user).await
                    && let Some(index) = self.holder_of(user, fence)
                    && index != old
                {
                    return (since.elapsed(), index);
                }
                // The poll interval of the lease (the measure's resolution).
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            panic!("no instance but {old} took {user}'s lease within {bound:?}")
        })
    }

    /// The log's epoch in Redis now.
    pub async fn epoch(&self) -> Option<String> {
        let mut connection = self.redis.connection().await;
        ::redis::cmd("GET")
            .arg("vg:epoch")
            .query_async(&mut connection)
            .await
            .unwrap()
    }

    /// Waits (bounded) until `check` holds for every watcher, failing with `what` and
    /// each watcher's record.
    pub async fn every_watcher(&self, what: &str, check: impl Fn(&Watcher) -> bool) {
        let waited = tokio::time::timeout(crate::common::WAIT, async {
            while !self.watchers.iter().all(&check) {
                // The poll interval of this check; the timeout bounds it.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        if waited.is_err() {
            for w in self.watchers.iter().filter(|w| !check(w)) {
                let record = w.record();
                eprintln!(
                    "a watcher of {} not there: on {}, {} resumes, {} OUT_OF_RANGE, \
                     snapshots {:?}, last {:?}",
                    w.user,
                    record.on,
                    record.resumes,
                    record.out_of_range,
                    record.snapshots,
                    record.events.last()
                );
            }
            panic!("not every watcher {what} within {:?}", crate::common::WAIT);
        }
    }

    /// Waits (bounded) until the driver carried out `more` calls more than now.
    pub async fn calls_go_on(&self, driver: &driver::Driver, more: usize) {
        let from = driver.count();
        let waited = tokio::time::timeout(Duration::from_secs(5), async {
            while driver.count() < from + more {
                // The poll interval of this check; the timeout bounds it.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "the driver carried out {} calls of {more} within 5 s; failures: {:#?}",
            driver.count() - from,
            driver.failed.lock().unwrap()
        );
    }

    /// Asserts the checks of every case: every watcher lost and repeated nothing, and no
    /// old owner wrote past its lease.
    pub async fn assert_all(&self, done: &[driver::Done]) {
        if std::env::var_os("CHAOS_DUMP").is_some() {
            for w in self.monitor.written() {
                eprintln!("written: {w:?}");
            }
        }
        // First, as it needs no wait: an old owner that wrote shows here by name.
        self.monitor.assert_one_writer_at_a_time();
        checks::assert_no_loss_no_duplicate(&self.watchers, &self.reference, done).await;
        desk_checks::assert_desks(&self.desks, &self.watchers, done, self.desks_may_resync).await;
        for d in &self.desks {
            let record = d.record();
            eprintln!(
                "{:?} desk of {}: on {} (first {}), {} messages, {} sessions, {} moves, {} 402s",
                d.transport,
                d.user,
                record.on,
                d.first_home,
                record.all().len(),
                record.segments.len(),
                record.moves,
                record.unknown
            );
        }
        for w in &self.watchers {
            let record = w.record();
            eprintln!(
                "watcher of {}: on {}, {} events, {} snapshots, {} resumes, {} OUT_OF_RANGE",
                w.user,
                record.on,
                record.events.len(),
                record.snapshots.len(),
                record.resumes,
                record.out_of_range
            );
        }
        eprintln!(
            "{} calls dialed, {} carried out, {} entries written",
            done.len(),
            done.iter().filter(|d| d.completed).count(),
            self.monitor.written().len()
        );

        assert!(
            !self.monitor.written().is_empty(),
            "the monitor saw the log's entries"
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn lease_ttl(keys: &str) -> Duration {
    let ms = keys
        .lines()
        .find_map(|l| l.strip_prefix("lease_ttl_ms = "))
        .map_or(voice_gateway::cluster::DEFAULT_LEASE_TTL_MS, |v| {
            v.trim().parse().unwrap()
        });
    Duration::from_millis(ms)
}

/// The demo configuration with `[cluster]` `keys`, in a file of this test process.
fn config_file(name: &str, keys: &str) -> String {
    let dir = std::env::temp_dir().join(format!("cluster-chaos-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gateway.toml");
    let text = format!("{}\n[cluster]\n{keys}\n", voice_gateway::config::DEMO_TOML);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}
