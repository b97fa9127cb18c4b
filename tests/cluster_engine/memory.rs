//! The measurement (ignored by default): Redis memory for a full log of call events, and
//! append latency and throughput on loopback.

use std::time::{Duration, Instant};

use voice_gateway::cluster::{LeaseTable as _, SharedLog as _};

use crate::common::redis::RedisServer;
use crate::helpers::{engine, grant, xlen};

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
