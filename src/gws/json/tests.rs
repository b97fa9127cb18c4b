//! Router tests without sockets (`oneshot`): the paths a socket client cannot easily take,
//! such as a body without `Content-Length` or a client that never finishes its body.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::config::Config;

fn router(adjust: impl FnOnce(&mut Config)) -> axum::Router {
    let mut config = Config::demo();
    adjust(&mut config);
    let state = crate::build_state(config, CancellationToken::new()).unwrap();
    super::router(state)
}

fn post(body: Body) -> Request<Body> {
    // agent1:demo
    Request::post("/api/v2/me/calls/X")
        .header(header::AUTHORIZATION, "Basic YWdlbnQxOmRlbW8=")
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap()
}

async fn json(response: axum::response::Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn a_streamed_body_over_the_limit_is_413_with_a_gws_body() {
    let app = router(|c| c.legacy.max_body_bytes = 1024);
    let chunks = (0..8).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 512])));
    let body = Body::from_stream(futures::stream::iter(chunks));
    let (status, body) = json(app.oneshot(post(body)).await.unwrap()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["statusCode"], 2);
}

#[tokio::test(start_paused = true)]
async fn a_body_that_never_ends_times_out_with_408_and_a_gws_body() {
    let app = router(|c| c.legacy.request_timeout_ms = 5_000);
    let stream = futures::stream::pending::<Result<Bytes, std::io::Error>>();
    let request = app.oneshot(post(Body::from_stream(stream)));
    let response = tokio::time::timeout(Duration::from_secs(60), request)
        .await
        .expect("the gateway's timeout fires first")
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(body["statusCode"], 4);
}

#[tokio::test]
async fn unknown_paths_answer_404_without_credentials() {
    let app = router(|_| {});
    let request = Request::get("/api/v2/nowhere").body(Body::empty()).unwrap();
    let (status, body) = json(app.oneshot(request).await.unwrap()).await;
    assert_eq!(
        (status, body["statusCode"].clone()),
        (StatusCode::NOT_FOUND, 6.into())
    );
}
