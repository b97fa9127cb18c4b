//! The Redis cluster engine (`voice_gateway::cluster::redis`) against a real `redis-server`
//! (tests/common/redis.rs): what the gateway relies on from the shared log and the leases.
//! Each test has its own server. Every wait is bounded and fails with a message.

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis::RedisServer;
use voice_gateway::cluster::redis::{RedisConfig, RedisEngine};
use voice_gateway::cluster::{EngineError, Entry, Grant, LeaseTable as _, SharedLog as _};

/// How long a test waits for something the engine or Redis does by itself.
const BOUND: Duration = Duration::from_secs(10);

fn engine(server: &RedisServer) -> Arc<RedisEngine> {
    engine_with(server, |_| {})
}

fn engine_with(server: &RedisServer, adjust: impl FnOnce(&mut RedisConfig)) -> Arc<RedisEngine> {
    let mut config = RedisConfig::with_url(server.url());
    adjust(&mut config);
    Arc::new(RedisEngine::new(config).expect("a valid redis URL"))
}

/// Polls `attempt` until it returns `Some`, failing with `what` after [`BOUND`].
async fn until<T, F: Future<Output = Option<T>>>(what: &str, mut attempt: impl FnMut() -> F) -> T {
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

async fn grant(engine: &RedisEngine, user: &str, holder: &str) -> Grant {
    engine
        .acquire(user, holder, Duration::from_secs(30))
        .await
        .expect("acquire")
        .expect("the lease is free")
}

/// Reads everything after `after` until `count` entries came, with blocking reads.
async fn read_all(engine: &RedisEngine, epoch: &str, mut after: u64, count: usize) -> Vec<Entry> {
    let mut entries = Vec::new();
    let deadline = Instant::now() + BOUND;
    while entries.len() < count {
        assert!(
            Instant::now() < deadline,
            "read {} of {count} entries",
            entries.len()
        );
        let batch = engine
            .read(epoch, after, 64, Duration::from_millis(200))
            .await
            .expect("read");
        if let Some(last) = batch.last() {
            after = last.sequence;
        }
        entries.extend(batch);
    }
    entries
}

async fn xlen(server: &RedisServer, key: &str) -> u64 {
    let mut connection = server.connection().await;
    redis::cmd("XLEN")
        .arg(key)
        .query_async(&mut connection)
        .await
        .expect("XLEN")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_get_dense_sequences_every_reader_sees_in_order() {
    let server = RedisServer::start().await;
    let writer = engine(&server);
    let (epoch, last) = writer.open().await.expect("open");
    assert_eq!(last, 0, "a new log is empty");
    let lease = grant(&writer, "agent1", "instance-a").await;

    const TASKS: usize = 4;
    const APPENDS: usize = 40;
    // Two engines (two connections, as two instances' tasks would be) share the appenders.
    let writers = [writer.clone(), engine(&server)];
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let writer = writers[task % 2].clone();
        let (epoch, lease) = (epoch.clone(), lease.clone());
        tasks.push(tokio::spawn(async move {
            let mut written = Vec::new();
            for n in 0..APPENDS {
                // Every other append is a batch of two: a batch is numbered as a block.
                let payloads: Vec<Vec<u8>> = (0..1 + n % 2)
                    .map(|part| {
                        // Payloads are bytes, not text: a NUL and a byte that is not UTF-8.
                        let mut payload = format!("task {task} append {n} part {part}");
                        payload.push('\0');
                        let mut payload = payload.into_bytes();
                        payload.push(0xff);
                        payload
                    })
                    .collect();
                let sequences = writer
                    .append(&epoch, &lease, payloads.clone())
                    .await
                    .expect("append");
                assert_eq!(sequences.len(), payloads.len());
                assert!(
                    sequences.windows(2).all(|w| w[1] == w[0] + 1),
                    "{sequences:?}"
                );
                written.extend(sequences.into_iter().zip(payloads));
            }
            written
        }));
    }
    let mut expected = BTreeMap::new();
    for task in tasks {
        for (sequence, payload) in task.await.expect("an appender") {
            assert!(
                expected.insert(sequence, payload).is_none(),
                "sequence {sequence} given twice"
            );
        }
    }
    let total = expected.len();
    assert_eq!(
        expected.keys().copied().collect::<Vec<_>>(),
        (1..=total as u64).collect::<Vec<_>>(),
        "sequences are dense from 1"
    );

    // Two readers on other engines (other connections): one from the start, one from the middle.
    for (reader, after) in [(engine(&server), 0), (engine(&server), total as u64 / 2)] {
        let entries = read_all(&reader, &epoch, after, total - after as usize).await;
        let seen: Vec<(u64, Vec<u8>)> = entries
            .into_iter()
            .map(|e| (e.sequence, e.payload))
            .collect();
        let want: Vec<(u64, Vec<u8>)> = expected
            .range(after + 1..)
            .map(|(s, p)| (*s, p.clone()))
            .collect();
        assert_eq!(
            seen, want,
            "a reader after {after} sees each entry once, in order"
        );
        let more = reader
            .read(&epoch, total as u64, 10, Duration::ZERO)
            .await
            .expect("read");
        assert!(more.is_empty(), "nothing past the last entry");
    }
    assert_eq!(
        writer.open().await.expect("open again"),
        (epoch, total as u64)
    );
}

#[tokio::test]
async fn a_lost_lease_fences_its_appends_renewals_and_releases() {
    let server = RedisServer::start().await;
    let (a, b) = (engine(&server), engine(&server));
    let (epoch, _) = a.open().await.expect("open");

    let short = a
        .acquire("agent1", "instance-a", Duration::from_millis(200))
        .await
        .expect("acquire")
        .expect("free");
    assert_eq!(
        b.holder("agent1").await.expect("holder"),
        Some(short.clone())
    );
    assert_eq!(
        b.acquire("agent1", "instance-b", Duration::from_secs(30))
            .await
            .expect("acquire"),
        None
    );
    assert_eq!(
        a.append(&epoch, &short, vec![b"one".to_vec()])
            .await
            .expect("append"),
        vec![1]
    );

    // The lease expires (A was paused); B takes it over with a larger fence.
    let taken = until("the lease expires and B takes it", || {
        let b = b.clone();
        async move {
            b.acquire("agent1", "instance-b", Duration::from_secs(30))
                .await
                .expect("acquire")
        }
    })
    .await;
    assert!(taken.fence > short.fence, "{taken:?} after {short:?}");
    let refused = a.append(&epoch, &short, vec![b"stale".to_vec()]).await;
    assert_eq!(
        refused,
        Err(EngineError::Fenced {
            user: "agent1".into(),
            fence: short.fence
        })
    );
    assert!(
        matches!(
            a.append(&epoch, &short, Vec::new()).await,
            Err(EngineError::Fenced { .. })
        ),
        "an empty append checks the fence too"
    );
    assert!(
        !a.renew(&short, Duration::from_secs(30))
            .await
            .expect("renew"),
        "a lost grant is not renewed"
    );
    a.release(&short).await.expect("release");
    assert_eq!(
        b.holder("agent1").await.expect("holder"),
        Some(taken.clone()),
        "A released nothing of B's"
    );
    assert_eq!(
        b.append(&epoch, &taken, vec![b"two".to_vec()])
            .await
            .expect("append"),
        vec![2]
    );
    let entries = a.read(&epoch, 0, 10, Duration::ZERO).await.expect("read");
    let payloads: Vec<&[u8]> = entries.iter().map(|e| e.payload.as_slice()).collect();
    assert_eq!(
        payloads,
        [&b"one"[..], b"two"],
        "the fenced append wrote nothing"
    );

    // The holder itself re-acquiring gets a new fence, which fences its own old grant.
    assert!(
        b.renew(&taken, Duration::from_secs(30))
            .await
            .expect("renew")
    );
    let again = grant(&b, "agent1", "instance-b").await;
    assert!(again.fence > taken.fence);
    assert!(matches!(
        b.append(&epoch, &taken, vec![b"x".to_vec()]).await,
        Err(EngineError::Fenced { .. })
    ));

    // A graceful hand-off: released, then another holder acquires at once.
    b.release(&again).await.expect("release");
    assert_eq!(a.holder("agent1").await.expect("holder"), None);
    let handed = grant(&a, "agent1", "instance-a").await;
    assert!(handed.fence > again.fence);
    assert!(matches!(
        b.append(&epoch, &again, vec![b"x".to_vec()]).await,
        Err(EngineError::Fenced { .. })
    ));
    // Another user's lease is another key: no interference.
    assert!(
        b.acquire("agent2", "instance-b", Duration::from_secs(30))
            .await
            .expect("acquire")
            .is_some()
    );
}

#[tokio::test]
async fn a_log_lost_by_redis_changes_the_epoch() {
    let mut server = RedisServer::start().await;
    let engine = engine(&server);
    let (first, _) = engine.open().await.expect("open");
    let lease = grant(&engine, "agent1", "instance-a").await;
    engine
        .append(&first, &lease, vec![b"a".to_vec(), b"b".to_vec()])
        .await
        .expect("append");

    // Redis restarts empty: the same engine, no rebuild; the old epoch is refused.
    server.restart_empty().await;
    // The first call finds the connection dropped; a read is sent again on a new one, so
    // a restart costs the caller no failure.
    assert_eq!(
        engine.read(&first, 2, 10, Duration::ZERO).await,
        Err(EngineError::EpochChanged {
            given: first.clone(),
            current: None
        })
    );
    assert_eq!(
        engine.append(&first, &lease, vec![b"c".to_vec()]).await,
        Err(EngineError::EpochChanged {
            given: first.clone(),
            current: None
        })
    );
    let (second, last) = engine.open().await.expect("open");
    assert_ne!(second, first, "a new epoch");
    assert_eq!(last, 0, "the new epoch's log is empty");
    assert_eq!(
        engine.read(&first, 2, 10, Duration::ZERO).await,
        Err(EngineError::EpochChanged {
            given: first.clone(),
            current: Some(second.clone())
        })
    );
    let lease = grant(&engine, "agent1", "instance-a").await;
    assert_eq!(
        engine
            .append(&second, &lease, vec![b"c".to_vec()])
            .await
            .expect("append"),
        vec![1]
    );

    // FLUSHALL behind the engine's back: the same.
    let mut connection = server.connection().await;
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut connection)
        .await
        .expect("FLUSHALL");
    assert!(matches!(
        engine.append(&second, &lease, vec![b"d".to_vec()]).await,
        Err(EngineError::EpochChanged { current: None, .. })
    ));
    assert!(matches!(
        engine.read(&second, 0, 10, Duration::from_millis(50)).await,
        Err(EngineError::EpochChanged { current: None, .. })
    ));
    let (third, last) = engine.open().await.expect("open");
    assert!(third != second && third != first && last == 0);
    // Every instance opening the log agrees on the epoch.
    assert_eq!(
        self::engine(&server).open().await.expect("open"),
        (third, 0)
    );
}

#[tokio::test]
async fn the_log_is_trimmed_by_length_and_by_age() {
    let server = RedisServer::start().await;
    let engine = engine_with(&server, |c| {
        c.max_len = 50;
        c.max_age_ms = 0;
    });
    let (epoch, _) = engine.open().await.expect("open");
    let lease = grant(&engine, "agent1", "instance-a").await;
    for n in 0..60 {
        let batch = (0..10)
            .map(|i| format!("entry {n}.{i}").into_bytes())
            .collect();
        engine.append(&epoch, &lease, batch).await.expect("append");
    }
    let len = xlen(&server, "vg:log").await;
    // MAXLEN ~ trims whole stream nodes: up to one node (100 entries) over the bound.
    assert!(
        (50..=150).contains(&len),
        "600 appended, {len} kept with max_len 50"
    );
    let Err(EngineError::Trimmed { after: 0, first }) =
        engine.read(&epoch, 0, 10, Duration::ZERO).await
    else {
        panic!("reading from the start of a trimmed log is Trimmed");
    };
    assert_eq!(first, 600 - len + 1, "the oldest kept entry");
    let kept = engine
        .read(&epoch, first - 1, 1000, Duration::ZERO)
        .await
        .expect("read");
    assert_eq!(kept.len() as u64, len);
    assert_eq!(kept.last().map(|e| e.sequence), Some(600));

    // By age: two batches 300 ms apart (by Redis' clock, which the engine uses); once the
    // first is older than max_age and the second is not, the next append drops exactly the
    // first batch.
    let aging = engine_with(&server, |c| {
        c.prefix = "aging:".into();
        c.max_age_ms = 500;
    });
    let (epoch, _) = aging.open().await.expect("open");
    let lease = grant(&aging, "agent1", "instance-a").await;
    let batch = |name: &str| {
        (0..20)
            .map(|i| format!("{name} {i}").into_bytes())
            .collect()
    };
    aging
        .append(&epoch, &lease, batch("old"))
        .await
        .expect("append");
    let old_at = redis_time_ms(&server).await;
    until("redis' clock moves 300 ms on", || async {
        (redis_time_ms(&server).await >= old_at + 300).then_some(())
    })
    .await;
    aging
        .append(&epoch, &lease, batch("young"))
        .await
        .expect("append");
    let young_at = redis_time_ms(&server).await;
    let (first, probe) = until("the old batch ages out", || {
        let (aging, epoch, lease) = (aging.clone(), epoch.clone(), lease.clone());
        async move {
            let probe = aging
                .append(&epoch, &lease, vec![b"probe".to_vec()])
                .await
                .expect("append")[0];
            match aging.read(&epoch, 0, 100, Duration::ZERO).await {
                Err(EngineError::Trimmed { first, .. }) => Some((first, probe)),
                _ => None,
            }
        }
    })
    .await;
    let trimmed_at = redis_time_ms(&server).await;
    assert!(trimmed_at >= old_at + 500, "trimmed before max_age");
    assert!(
        trimmed_at < young_at + 500,
        "the machine stalled past the young batch's max_age: the test cannot tell"
    );
    assert_eq!(first, 21, "exactly the old batch is trimmed");
    let kept = aging
        .read(&epoch, 20, 1000, Duration::ZERO)
        .await
        .expect("read");
    assert_eq!(
        kept.len() as u64,
        probe - 20,
        "the young batch and the probes are kept"
    );
}

/// Waits until one client of `server` is blocked (a reader in XREAD).
async fn reader_blocked(server: &RedisServer) {
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

/// Redis' clock (`TIME`) in milliseconds.
async fn redis_time_ms(server: &RedisServer) -> u64 {
    let mut connection = server.connection().await;
    let (seconds, micros): (u64, u64) = redis::cmd("TIME")
        .query_async(&mut connection)
        .await
        .expect("TIME");
    seconds * 1000 + micros / 1000
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_read_wakes_on_an_append_and_ends_empty_after_its_wait() {
    let server = RedisServer::start().await;
    let (reader, writer) = (engine(&server), engine(&server));
    let (epoch, _) = writer.open().await.expect("open");
    let lease = grant(&writer, "agent1", "instance-a").await;

    let started = Instant::now();
    let empty = reader
        .read(&epoch, 0, 10, Duration::from_millis(300))
        .await
        .expect("read");
    let waited = started.elapsed();
    assert!(empty.is_empty());
    assert!(
        waited >= Duration::from_millis(290) && waited < Duration::from_millis(1300),
        "{waited:?}"
    );

    let waiting = tokio::spawn({
        let (reader, epoch) = (reader.clone(), epoch.clone());
        async move {
            let entries = reader.read(&epoch, 0, 10, Duration::from_secs(8)).await;
            (entries, Instant::now())
        }
    });
    reader_blocked(&server).await;
    // The reader's shared connection is not the blocked one: its other calls go through.
    assert_eq!(
        reader.holder("agent1").await.expect("holder"),
        Some(lease.clone())
    );
    let appended = Instant::now();
    writer
        .append(&epoch, &lease, vec![b"wake".to_vec()])
        .await
        .expect("append");
    let (entries, woke) = tokio::time::timeout(BOUND, waiting)
        .await
        .expect("the reader wakes")
        .expect("task");
    let entries = entries.expect("read");
    assert_eq!(
        entries,
        vec![Entry {
            sequence: 1,
            payload: b"wake".to_vec()
        }]
    );
    let latency = woke - appended;
    assert!(
        latency < Duration::from_millis(500),
        "woke {latency:?} after the append"
    );
}

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

/// A call event as the gateway would append it (~700 bytes of JSON): the measurements use it.
fn call_event(n: u64) -> Vec<u8> {
    format!(
        concat!(
            r#"{{"kind":"call","user":"agent-{agent:04}","fence":1795983715605932,"#,
            r#""event":{{"type":"CallStateChanged","at":"2026-11-29T20:{min:02}:{sec:02}.{ms:03}Z","#,
            r#""call":{{"id":"7f3c2a1e-9b4d-4c8e-a2f1-{n:012}","connId":"007a02a6{n:08x}","#,
            r#""state":"Established","callType":"Inbound","ani":"+1415555{ani:04}","dnis":"5001","#,
            r#""participants":[{{"number":"+1415555{ani:04}","role":"Caller","country":"US"}},"#,
            r#"{{"number":"5001","role":"Agent","agentId":"agent-{agent:04}","place":"place-{agent:04}"}}],"#,
            r#""capabilities":["Hold","Transfer","Conference","Release","SendDtmf","Record"],"#,
            r#""userData":{{"CaseId":"CS-{n:08}","Language":"en","Segment":"gold","Queue":"sales"}},"#,
            r#""recording":false,"muted":false,"startedAt":"2026-11-29T20:{min:02}:{sec:02}.000Z"}},"#,
            r#""device":{{"dn":"5001","agent":"agent-{agent:04}","state":"Busy","reason":"OnCall"}}}}}}"#
        ),
        agent = n % 1000,
        min = n / 60_000 % 60,
        sec = n / 1000 % 60,
        ms = n % 1000,
        n = n,
        ani = n % 10_000,
    )
    .into_bytes()
}

async fn used_memory(server: &RedisServer) -> u64 {
    let mut connection = server.connection().await;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut connection)
        .await
        .expect("INFO memory");
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|value| value.trim().parse().ok())
        .expect("used_memory in INFO memory")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Redis memory for a 100,000-entry log of call events, and append latency and throughput
/// on loopback. Prints its figures:
/// `cargo test --test cluster_engine -- --ignored --nocapture measure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: minutes of appends, figures printed"]
async fn measure_memory_and_append_latency() {
    let server = RedisServer::start().await;
    let engine = engine(&server);
    let (epoch, _) = engine.open().await.expect("open");
    let lease = grant(&engine, "agent-0001", "instance-a").await;
    let sizes: Vec<usize> = (0..100).map(|n| call_event(n).len()).collect();
    println!(
        "payload: {}..{} bytes",
        sizes.iter().min().unwrap_or(&0),
        sizes.iter().max().unwrap_or(&0)
    );

    // One append at a time, one entry each: the latency an owner sees.
    let mut latencies = Vec::new();
    for n in 0..10_000 {
        let started = Instant::now();
        engine
            .append(&epoch, &lease, vec![call_event(n)])
            .await
            .expect("append");
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let total: Duration = latencies.iter().sum();
    println!(
        "sequential single appends: p50 {:?}, p99 {:?}, max {:?}, {:.0}/s",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
        latencies.len() as f64 / total.as_secs_f64()
    );

    // Eight owners appending at once, one entry per append.
    let started = Instant::now();
    let tasks: Vec<_> = (0..8u64)
        .map(|task| {
            let (engine, epoch, lease) = (engine.clone(), epoch.clone(), lease.clone());
            tokio::spawn(async move {
                for n in 0..2_500 {
                    let payload = call_event(100_000 + task * 10_000 + n);
                    engine
                        .append(&epoch, &lease, vec![payload])
                        .await
                        .expect("append");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("an appender");
    }
    println!(
        "8 concurrent appenders: {:.0} appends/s",
        20_000.0 / started.elapsed().as_secs_f64()
    );

    // The log full: 100,000 more entries (trimmed to max_len = 100,000), with Redis'
    // default stream nodes (at most 4096 bytes: ~5 call events a node), then with nodes
    // bounded by their 100 entries only; then the payloads deflated as the gateway's
    // entries are (`cluster::entry`: zlib, default level).
    let mut next = 200_000;
    for (node_bytes, deflated) in [("4096", false), ("0", false), ("4096", true)] {
        // Each round takes tens of seconds in a debug build: the lease must outlive it.
        assert!(
            engine
                .renew(&lease, Duration::from_secs(600))
                .await
                .unwrap()
        );
        let mut connection = server.connection().await;
        let () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("stream-node-max-bytes")
            .arg(node_bytes)
            .query_async(&mut connection)
            .await
            .expect("CONFIG SET");
        for _ in 0..1_000u64 {
            let payloads = (0..100)
                .map(|n| {
                    let payload = call_event(next + n);
                    if deflated {
                        let mut z = flate2::write::ZlibEncoder::new(
                            Vec::new(),
                            flate2::Compression::default(),
                        );
                        std::io::Write::write_all(&mut z, &payload).unwrap();
                        z.finish().unwrap()
                    } else {
                        payload
                    }
                })
                .collect();
            next += 100;
            engine
                .append(&epoch, &lease, payloads)
                .await
                .expect("append");
        }
        let len = xlen(&server, "vg:log").await;
        assert!(len >= 100_000, "the log holds 100,000 entries");
        let full = used_memory(&server).await;
        let () = redis::cmd("DEL")
            .arg("vg:log")
            .query_async(&mut connection)
            .await
            .expect("DEL");
        let empty = used_memory(&server).await;
        println!(
            "payload {} bytes{}, stream-node-max-bytes {node_bytes}: log of {len} entries: \
             used_memory {:.1} MB ({:.1} MB without it), {} bytes per entry",
            call_event(next).len(),
            if deflated { " deflated" } else { "" },
            full as f64 / 1e6,
            empty as f64 / 1e6,
            (full - empty) / len
        );
    }
}
