//! The gateway starts on port-0 listeners and answers health checks on both fronts.

mod common;

use common::TestGateway;

#[tokio::test]
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
