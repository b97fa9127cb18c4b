//! The shared log: concurrent appenders get dense sequences every reader sees in order, a
//! log Redis lost changes the epoch, trimming by length and by age, and a waiting read.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use voice_gateway::cluster::redis::RedisEngine;
use voice_gateway::cluster::{EngineError, Entry, LeaseTable as _, SharedLog as _};

use crate::common::redis::RedisServer;
use crate::helpers::{BOUND, engine, engine_with, grant, reader_blocked, until, xlen};

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

/// Redis' clock (`TIME`) in milliseconds.
async fn redis_time_ms(server: &RedisServer) -> u64 {
    let mut connection = server.connection().await;
    let (seconds, micros): (u64, u64) = redis::cmd("TIME")
        .query_async(&mut connection)
        .await
        .expect("TIME");
    seconds * 1000 + micros / 1000
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
