//! Password checks that cannot be turned against the gateway, end to end on every front:
//! repeated failures are throttled (HTTP 429 / gRPC RESOURCE_EXHAUSTED / Bayeux `429::`),
//! a full check pool refuses at once (HTTP 503 / UNAVAILABLE / Bayeux `503::`), each with
//! the time to wait, and a client whose check is cached never notices.

mod common;

use common::{TestGateway, pb, with_basic};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tonic::Code;
use voice_gateway::auth::AuthConfig;
use voice_gateway::config::{Config, hash_secret};

/// agent1's password, hashed in the configuration.
const SECRET: &str = "s3cret";

/// Hashes agent1's password (`s3cret`) and sets the `[auth]` table.
fn hashed(config: &mut Config, auth: AuthConfig) {
    let agent = config
        .users
        .iter_mut()
        .find(|u| u.name == "agent1")
        .expect("the demo has agent1");
    agent.password = None;
    agent.password_hash = Some(hash_secret(SECRET).expect("hashes"));
    config.auth = auth;
}

fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(Some(address.parse().expect("an address")))
        .build()
        .expect("a client")
}

async fn get_me(client: &reqwest::Client, gw: &TestGateway, password: &str) -> reqwest::Response {
    client
        .get(format!("{}/api/v2/me", gw.http_url()))
        .basic_auth("agent1", Some(password))
        .send()
        .await
        .expect("the gateway answers")
}

async fn body(response: reqwest::Response) -> Value {
    response.json().await.expect("a JSON body")
}

/// A CometD handshake with agent1's Basic credentials, as the JS client sends it.
async fn handshake(client: &reqwest::Client, gw: &TestGateway, password: &str) -> Value {
    let reply: Value = client
        .post(format!("{}/api/v2/notifications", gw.http_url()))
        .basic_auth("agent1", Some(password))
        .json(&json!([{
            "channel": "/meta/handshake",
            "version": "1.0",
            "supportedConnectionTypes": ["long-polling"],
        }]))
        .send()
        .await
        .expect("the gateway answers")
        .json()
        .await
        .expect("a Bayeux reply");
    reply[0].clone()
}

fn trailer(status: &tonic::Status, key: &str) -> Option<u64> {
    status.metadata().get(key)?.to_str().ok()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_are_throttled_on_every_front_but_not_a_cached_client() {
    let gw = TestGateway::spawn_with(|c| {
        hashed(
            c,
            AuthConfig {
                max_failures: 2,
                max_failures_per_address: 0,
                // Long enough that the lockout outlives the test on any machine.
                lockout_ms: 600_000,
                max_lockout_ms: 600_000,
                ..AuthConfig::default()
            },
        )
    })
    .await;
    let http = reqwest::Client::new();
    let mut grpc = gw.calls().await;
    // The real agent1 signs in first, so its check is cached.
    assert_eq!(get_me(&http, &gw, SECRET).await.status(), StatusCode::OK);

    for _ in 0..2 {
        let reply = get_me(&http, &gw, "guess").await;
        assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(body(reply).await["statusCode"], 20);
    }
    let reply = get_me(&http, &gw, "guess").await;
    assert_eq!(reply.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = reply.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=600).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    let refusal = body(reply).await;
    assert_eq!(refusal["statusCode"], 3, "{refusal}");
    let message = refusal["statusMessage"].as_str().unwrap();
    assert!(
        message.contains("too many failed sign-in attempts"),
        "{message}"
    );

    let status = grpc
        .list_calls(with_basic("agent1", "guess", pb::ListCallsRequest {}))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(trailer(&status, "gws-status-code"), Some(3));
    let pushback = trailer(&status, "grpc-retry-pushback-ms").expect("a pushback trailer");
    assert!(pushback > 0 && pushback <= 600_000, "{pushback}");

    let reply = handshake(&http, &gw, "guess").await;
    assert_eq!(reply["successful"], false, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().starts_with("429::"),
        "{reply}"
    );
    assert_eq!(reply["advice"]["reconnect"], "handshake");
    assert!(reply["advice"]["interval"].as_u64().unwrap() > 0, "{reply}");

    // The real agent1 goes on, on every front.
    assert_eq!(get_me(&http, &gw, SECRET).await.status(), StatusCode::OK);
    grpc.list_calls(with_basic("agent1", SECRET, pb::ListCallsRequest {}))
        .await
        .expect("a cached check is never throttled");
    let reply = handshake(&http, &gw, SECRET).await;
    assert_eq!(reply["successful"], true, "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_from_one_address_lock_out_that_address_only() {
    let gw = TestGateway::spawn_with(|c| {
        hashed(
            c,
            AuthConfig {
                max_failures: 0,
                max_failures_per_address: 2,
                lockout_ms: 600_000,
                max_lockout_ms: 600_000,
                ..AuthConfig::default()
            },
        )
    })
    .await;
    let attacker = client_from("127.0.0.2");
    let desktop = client_from("127.0.0.1");
    for _ in 0..2 {
        let reply = get_me(&attacker, &gw, "guess").await;
        assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    }
    let reply = get_me(&attacker, &gw, SECRET).await;
    assert_eq!(reply.status(), StatusCode::TOO_MANY_REQUESTS);
    let message = body(reply).await["statusMessage"].to_string();
    assert!(message.contains("from this address"), "{message}");
    assert_eq!(get_me(&desktop, &gw, SECRET).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_check_pool_refuses_with_a_time_to_retry() {
    let gw = TestGateway::spawn_with(|c| {
        hashed(
            c,
            AuthConfig {
                max_concurrent_checks: 1,
                check_wait_ms: 1,
                max_failures: 0,
                max_failures_per_address: 0,
                ..AuthConfig::default()
            },
        )
    })
    .await;
    // Sixteen wrong passwords at once: one argon2 check (milliseconds of CPU and 19 MiB)
    // runs, the others find the only slot taken and are refused after 1 ms.
    let http = reqwest::Client::new();
    let replies = futures::future::join_all((0..16).map(|_| get_me(&http, &gw, "guess"))).await;
    let mut busy = 0;
    for reply in replies {
        match reply.status() {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                busy += 1;
                assert_eq!(reply.headers()["retry-after"], "1");
                assert_eq!(body(reply).await["statusCode"], 4);
            }
            other => panic!("a wrong password got {other}"),
        }
    }
    assert!(busy > 0, "no request found the pool full");

    let grpc = gw.calls().await;
    let statuses = futures::future::join_all((0..16).map(|_| {
        let mut grpc = grpc.clone();
        async move {
            grpc.list_calls(with_basic("agent1", "guess", pb::ListCallsRequest {}))
                .await
                .unwrap_err()
        }
    }))
    .await;
    let unavailable: Vec<_> = statuses
        .iter()
        .filter(|s| s.code() == Code::Unavailable)
        .collect();
    assert!(
        statuses
            .iter()
            .all(|s| matches!(s.code(), Code::Unauthenticated | Code::Unavailable)),
        "{statuses:?}"
    );
    assert!(!unavailable.is_empty(), "no gRPC call found the pool full");
    assert_eq!(trailer(unavailable[0], "gws-status-code"), Some(4));
    assert_eq!(
        trailer(unavailable[0], "grpc-retry-pushback-ms"),
        Some(1000)
    );

    // Once the flood is over, the right password gets through.
    assert_eq!(get_me(&http, &gw, SECRET).await.status(), StatusCode::OK);
}
