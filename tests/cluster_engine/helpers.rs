//! Shared helpers of the engine tests: the engine on a test server, the bound every wait
//! fails at, polling until something holds, a granted lease, and what Redis itself reports
//! (a stream's length, a reader blocked in XREAD).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use voice_gateway::cluster::redis::{RedisConfig, RedisEngine};
use voice_gateway::cluster::{Grant, LeaseTable as _};

use crate::common::redis::RedisServer;

/// How long a test waits for something the engine or Redis does by itself.
pub(crate) const BOUND: Duration = Duration::from_secs(10);

pub(crate) fn engine(server: &RedisServer) -> Arc<RedisEngine> {
    engine_with(server, |_| {})
}

pub(crate) fn engine_with(
    server: &RedisServer,
    adjust: impl FnOnce(&mut RedisConfig),
) -> Arc<RedisEngine> {
    let mut config = RedisConfig::with_url(server.url());
    adjust(&mut config);
    Arc::new(RedisEngine::new(config).expect("a valid redis URL"))
}

/// Polls `attempt` until it returns `Some`, failing with `what` after [`BOUND`].
pub(crate) async fn until<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + BOUND;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(Instant::now() < deadline, "not within {BOUND:?}: {what}");
        // The poll interval; the deadline bounds the wait.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(crate) async fn grant(engine: &RedisEngine, user: &str, holder: &str) -> Grant {
    engine
        .acquire(user, holder, Duration::from_secs(30))
        .await
        .expect("acquire")
        .expect("the lease is free")
}

pub(crate) async fn xlen(server: &RedisServer, key: &str) -> u64 {
    let mut connection = server.connection().await;
    redis::cmd("XLEN")
        .arg(key)
        .query_async(&mut connection)
        .await
        .expect("XLEN")
}

/// Waits until one client of `server` is blocked (a reader in XREAD).
pub(crate) async fn reader_blocked(server: &RedisServer) {
    let connection = server.connection().await;
    until("the reader blocks in XREAD", || {
        let mut connection = connection.clone();
        async move {
            let info: String = redis::cmd("INFO")
                .arg("clients")
                .query_async(&mut connection)
                .await
                .ok()?;
            info.contains("blocked_clients:1").then_some(())
        }
    })
    .await;
}
