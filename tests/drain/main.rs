//! The drain on shutdown (`src/server`): watch streams end with `UNAVAILABLE` naming where
//! to resume, the gRPC health service turns `NOT_SERVING`, requests in flight finish and
//! get their replies while new connections are refused, and what is still open after
//! `server.shutdown_grace_ms` is cut.
//!
//! In process, on port-0 listeners; every wait gives up after [`BOUND`].

mod binary_under_load;
#[path = "../common/mod.rs"]
mod common;
mod helpers;

use std::time::Duration;

use axum::body::Bytes;
use axum::http::Request;
use common::desktop::Agent;
use common::{TestGateway, as_user, pb, snapshot};
use helpers::{
    grpc_call_in_flight, json_dial_in_flight, read_to_end, resume_position, until_refused,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Every wait of this file gives up after this long, failing with a message.
const BOUND: Duration = Duration::from_secs(5);

/// Runs `what` under [`BOUND`], failing with `doing` if it takes longer.
async fn within<T>(doing: &str, what: impl Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, what)
        .await
        .unwrap_or_else(|_| panic!("{doing}: nothing after {BOUND:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_end_with_unavailable_naming_where_to_resume() {
    let gw = TestGateway::spawn().await;
    let mut calls = gw.calls().await;
    let mut devices = gw.devices().await;
    let watch = |user: &str| as_user(user, pb::WatchCallsRequest::default());
    let mut quiet = calls
        .watch_calls(watch("agent1"))
        .await
        .unwrap()
        .into_inner();
    let epoch = snapshot(&mut quiet).await.epoch;
    let mut busy = calls
        .watch_calls(watch("agent2"))
        .await
        .unwrap()
        .into_inner();
    snapshot(&mut busy).await;
    let device_watch = as_user("agent1", pb::WatchDevicesRequest::default());
    let mut device_stream = devices
        .watch_devices(device_watch)
        .await
        .unwrap()
        .into_inner();
    device_stream.message().await.unwrap().unwrap();
    // agent2 calls agent3, who answers: events of their scopes only.
    let dial = pb::DialRequest {
        destination: "15002".into(),
        ..Default::default()
    };
    let call = calls
        .dial(as_user("agent2", dial))
        .await
        .unwrap()
        .into_inner();
    let answer = pb::AnswerRequest {
        call_id: call.call.unwrap().id,
    };
    calls.answer(as_user("agent3", answer)).await.unwrap();
    // The last committed sequence, read from a new watch's snapshot.
    let mut probe = calls
        .watch_calls(watch("admin"))
        .await
        .unwrap()
        .into_inner();
    let last = snapshot(&mut probe).await.sequence;
    gw.shutdown.cancel();

    let event_sequence = |m: &pb::WatchCallsResponse| match &m.kind {
        Some(pb::watch_calls_response::Kind::Event(event)) => Some(event.sequence),
        _ => None,
    };
    let (seen, status) = read_to_end(&mut quiet, event_sequence).await;
    assert!(seen.is_empty(), "agent1 had no event: {seen:?}");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert_eq!(resume_position(&status), (last, epoch.clone()));
    assert_eq!(
        status.message(),
        format!("the gateway is shutting down; resume from sequence {last} of epoch {epoch}")
    );
    // agent2's watch had events; it names a position at or after the last one it got, and
    // no later than the log's end.
    let (seen, status) = read_to_end(&mut busy, event_sequence).await;
    assert!(!seen.is_empty(), "agent2 saw its call");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order: {seen:?}");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    let (resume, resume_epoch) = resume_position(&status);
    assert!(
        *seen.last().unwrap() <= resume && resume <= last,
        "{seen:?} {resume} {last}"
    );
    assert_eq!(resume_epoch, epoch);
    let (_, status) = read_to_end(&mut device_stream, |_| None).await;
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert_eq!(resume_position(&status), (last, epoch));
    within("the gateway stops", gw.stop()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_not_serving_at_once_and_its_watch_ends() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let gw = TestGateway::spawn().await;
    let channel = tonic::transport::Endpoint::from_shared(gw.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut watches = Vec::new();
    for service in ["", "voice.v1.CallService", "voice.v1.DeviceService"] {
        let request = tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        };
        let mut watch = health.watch(request).await.unwrap().into_inner();
        let first = watch.message().await.unwrap().unwrap();
        assert_eq!(first.status, ServingStatus::Serving as i32, "{service:?}");
        watches.push((service, watch));
    }
    gw.shutdown.cancel();
    for (service, mut watch) in watches {
        let next = within("NOT_SERVING", watch.message())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next.status, ServingStatus::NotServing as i32, "{service:?}");
        let end = within("the health watch's end", watch.message()).await;
        assert!(matches!(end, Ok(None)), "the health watch ends: {end:?}");
    }
    within("the gateway stops", gw.stop()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_finish_while_new_connections_are_refused() {
    let gw = TestGateway::spawn_with(|c| c.server.max_requests = 1).await;
    let device = Agent::new(&gw.http_url(), "agent1").device_id().await;
    let (mut json, last_byte) = json_dial_in_flight(&gw, &device).await;
    let (sender, response, mut body) = grpc_call_in_flight(&gw).await;
    gw.shutdown.cancel();
    until_refused(gw.http_addr).await;
    until_refused(gw.grpc_addr).await;

    json.write_all(last_byte).await.unwrap();
    let mut reply = String::new();
    within("the held Dial's reply", json.read_to_string(&mut reply))
        .await
        .unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.ends_with(r#"{"statusCode":0}"#), "{reply}");

    body.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .unwrap();
    let response = within("the held ListCalls' reply", response).await.unwrap();
    let mut response = response.into_body();
    while let Some(chunk) = within("the reply's body", response.data()).await {
        chunk.unwrap();
    }
    let trailers = response.trailers().await.unwrap().unwrap();
    assert_eq!(trailers["grpc-status"], "0");
    // The connection got its GOAWAY: it takes no new stream.
    let usable = within("the sender's readiness", sender.ready())
        .await
        .and_then(|mut ready| {
            let request = Request::get("http://gw/").body(()).unwrap();
            ready.send_request(request, true)
        });
    assert!(usable.is_err(), "no stream after the GOAWAY");
    within("the gateway stops", gw.stop()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_still_open_after_the_grace_is_cut() {
    let gw = TestGateway::spawn_with(|c| {
        c.server.shutdown_grace_ms = 300;
        c.server.max_requests = 1;
    })
    .await;
    let device = Agent::new(&gw.http_url(), "agent1").device_id().await;
    let (mut json, _never_sent) = json_dial_in_flight(&gw, &device).await;
    let held_grpc = grpc_call_in_flight(&gw).await;
    let started = tokio::time::Instant::now();
    // The gateway returns at the cut, although neither request can finish.
    within("the gateway stops at the cut", gw.stop())
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "not before the grace"
    );
    let mut rest = Vec::new();
    let closed = within(
        "the held HTTP connection closed",
        json.read_to_end(&mut rest),
    )
    .await;
    assert!(
        closed.is_err() || rest.is_empty(),
        "cut without a reply: {:?}",
        String::from_utf8_lossy(&rest)
    );
    drop(held_grpc);
}
