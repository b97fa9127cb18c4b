//! The admin listener in process: `/healthz`, `/readyz` (starting, ready, draining, and in
//! bridge mode down while the upstream is), and the request id both fronts echo.

mod common;

use std::time::Duration;

use common::{TestGateway, as_user, pb, within};
use tokio::net::TcpListener;
use voice_gateway::admin::{self, Readiness};
use voice_gateway::config::Config;

/// Starts the test gateway with its admin listener, one port for gRPC and HTTP.
async fn spawn(adjust: impl FnOnce(&mut Config)) -> TestGateway {
    TestGateway::builder()
        .one_port()
        .admin()
        .config(adjust)
        .start()
        .await
}

/// GETs a path of the admin listener.
async fn get(gw: &TestGateway, path: &str) -> (u16, String) {
    let reply = within(
        "an admin answer",
        reqwest::get(format!("{}{path}", gw.admin_url())),
    )
    .await
    .unwrap();
    (reply.status().as_u16(), reply.text().await.unwrap())
}

/// Polls `/readyz` until it answers `status`; a load balancer polls the same way.
async fn readyz_becomes(gw: &TestGateway, status: u16) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (now, body) = get(gw, "/readyz").await;
        if now == status {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz stayed {now} ({body:?}), not {status}, for 10 s"
        );
        // The poll interval of a load balancer, bounded by the deadline above.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_and_readyz_turns_unready_while_draining() {
    let gw = spawn(|_| {}).await;
    assert_eq!(get(&gw, "/healthz").await, (200, "alive\n".into()));
    assert_eq!(readyz_becomes(&gw, 200).await, "ready\n");

    // SIGTERM's first step: the load balancer must stop sending before the listeners go.
    gw.readiness.start_draining();
    assert_eq!(
        get(&gw, "/readyz").await,
        (503, "not ready: draining\n".into())
    );
    assert_eq!(get(&gw, "/healthz").await.0, 200, "draining is still alive");
    // The API still answers the requests that arrive meanwhile.
    let mut calls = pb::call_service_client::CallServiceClient::connect(gw.grpc_url())
        .await
        .unwrap();
    calls
        .list_calls(as_user("agent1", pb::ListCallsRequest::default()))
        .await
        .expect("a draining gateway still serves");
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_starting_until_the_listeners_serve() {
    let readiness = Readiness::new();
    assert_eq!(readiness.check(), Err(admin::NotReady::Starting));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_bridge_mode_readyz_follows_the_upstream() {
    // The upstream's port: free now, and served later by an embedded gateway.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_addr = probe.local_addr().unwrap();
    drop(probe);
    let bridge = spawn(|config| {
        config.upstream.url = Some(format!("http://{upstream_addr}"));
        config.upstream.probe_interval_ms = 100;
    })
    .await;

    // A sign-in finds the upstream down; readiness says so.
    let mut calls = pb::call_service_client::CallServiceClient::connect(bridge.grpc_url())
        .await
        .unwrap();
    let refused = calls
        .list_calls(as_user("agent1", pb::ListCallsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert_eq!(
        readyz_becomes(&bridge, 503).await,
        "not ready: upstream unavailable\n"
    );

    // The upstream comes up: ready again, without a client request.
    let upstream = TestGateway::builder()
        .http_listener(TcpListener::bind(upstream_addr).await.unwrap())
        .start()
        .await;
    assert_eq!(readyz_becomes(&bridge, 200).await, "ready\n");
    bridge.stop().await.unwrap();
    upstream.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_id_is_taken_from_the_client_or_made_and_echoed_on_both_fronts() {
    let gw = spawn(|_| {}).await;
    let http = reqwest::Client::new();
    let given = http
        .get(format!("{}/api/v2/me", gw.http_url()))
        .basic_auth("agent1", Some("demo"))
        .header("x-request-id", "ops-test-17")
        .send()
        .await
        .unwrap();
    assert_eq!(given.status(), 200);
    assert_eq!(given.headers()["x-request-id"], "ops-test-17");
    let made = http
        .get(format!("{}/api/v2/me", gw.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 401, "no credentials");
    let id = made.headers()["x-request-id"].to_str().unwrap();
    assert!(
        uuid::Uuid::parse_str(id).is_ok(),
        "a made id is a UUID: {id}"
    );

    let mut calls = pb::call_service_client::CallServiceClient::connect(gw.grpc_url())
        .await
        .unwrap();
    let mut request = as_user("agent1", pb::ListCallsRequest::default());
    request
        .metadata_mut()
        .insert("x-request-id", "grpc-ops-18".parse().unwrap());
    let reply = calls.list_calls(request).await.unwrap();
    assert_eq!(reply.metadata().get("x-request-id").unwrap(), "grpc-ops-18");
    // A refused call carries it too (in its trailers-only reply).
    let status = calls
        .get_call(as_user(
            "agent1",
            pb::GetCallRequest {
                call_id: "no-such-call".into(),
            },
        ))
        .await
        .unwrap_err();
    let id = status
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    gw.stop().await.unwrap();
}
