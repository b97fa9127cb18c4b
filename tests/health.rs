//! The gateway starts on port-0 listeners and answers health checks on both fronts.

mod common;

use common::TestGateway;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_grpc_health_answer() {
    let gw = TestGateway::spawn().await;
    let body: serde_json::Value = reqwest::get(format!("{}/healthz", gw.http_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "serving");
    let channel = tonic::transport::Endpoint::from_shared(gw.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_grpc_method_is_answered_in_grpc_terms() {
    let gw = TestGateway::spawn().await;
    // Raw HTTP/2, as any gRPC client sends it: the answer must be a gRPC status
    // (UNIMPLEMENTED = 12 in an HTTP 200), not an HTTP error page.
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = client
        .post(format!(
            "{}/voice.v1.CallService/NoSuchMethod",
            gw.grpc_url()
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "12");
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_over_8_kib_is_refused_with_431() {
    let gw = TestGateway::spawn().await;
    let client = reqwest::Client::new();
    let get = |padding: usize| {
        client
            .get(format!("{}/healthz", gw.http_url()))
            .header("x-padding", "a".repeat(padding))
            .send()
    };
    assert_eq!(get(6 * 1024).await.unwrap().status(), 200);
    let refused = get(9 * 1024).await.unwrap();
    assert_eq!(
        refused.status(),
        reqwest::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    // The connection limit refuses one request, not the gateway.
    assert_eq!(get(10).await.unwrap().status(), 200);
    gw.stop().await.unwrap();
}
