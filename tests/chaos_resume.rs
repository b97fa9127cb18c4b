//! Chaos resume (issue 14): 100 `WatchCalls` clients and 50 CometD clients (ack extension
//! on, long-polling and WebSocket) while at least [`ChaosPlan::TEST_EVENTS`] events (call
//! events, and the asynchronous errors of busy conference parties) are committed; their
//! connections are killed at random, by the clients themselves and by a proxy that cuts
//! them mid-frame, and some clients go away long enough that they must resync. Every
//! client must end up having seen every event of its scope exactly once, in order, or
//! have been told to resync and have resynced. The clients, the proxy and the comparison
//! are the bench's (`bench/src/chaos`), whose longer run is `bench/run --only chaos`
//! (figure 8, 100,000 events). The run is sized for the suite's ten seconds; its waits end
//! on events, and their limits (the plan's) only name what hung. On failure it prints, for
//! the first failing clients, what each missed and its journal.

mod common;

use std::time::Duration;

use common::TestGateway;
use voice_bench::chaos::{self, ChaosPlan, ChaosTarget};
use voice_gateway::config::Config;

#[tokio::test(flavor = "multi_thread")]
async fn every_client_sees_every_event_of_its_scope_once_across_connection_chaos() {
    let plan = ChaosPlan::test();
    let (events, away) = (plan.events, plan.away as u64);
    let config = Config::parse(&plan.config_toml()).expect("the chaos configuration parses");
    let gateway = TestGateway::spawn_with(|c| *c = config).await;
    let target = ChaosTarget {
        grpc: gateway.grpc_addr,
        http: gateway.http_addr,
    };
    let limit = plan.drive_limit + plan.settle + Duration::from_secs(60);
    let report = tokio::time::timeout(limit, chaos::run(target, plan))
        .await
        .unwrap_or_else(|_| panic!("the chaos run did not end within {limit:?}"))
        .expect("the chaos run completes");
    println!("{}", report.summary());
    for detail in &report.details {
        println!("{detail}");
    }
    assert!(report.passed(), "{}", report.summary());
    assert!(report.events >= events, "{}", report.summary());
    assert_eq!(report.clients, 150, "{}", report.summary());
    assert!(
        report.cuts > 0 && report.kills > 0 && report.reconnects > report.cuts,
        "the chaos happened: {}",
        report.summary()
    );
    assert!(
        report.errors > 0,
        "the conferences' busy parties made asynchronous errors: {}",
        report.summary()
    );
    assert!(
        report.resyncs >= 2 * away,
        "every client that went away had to resync: {}",
        report.summary()
    );
}
