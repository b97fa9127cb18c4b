//! Shared helpers: reading CometD and WatchCalls events until one is wanted, each with a
//! deadline that fails with a message.

use std::time::Duration;

use serde_json::Value;
use voice_gateway::grpc::pb;

use crate::cometd_support::{LpClient, split};

/// How long any awaited event may take.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// Reads `/meta/connect`s until an event matches `wanted`; returns every event read up to
/// and including it. Fails after [`WAIT`].
pub(crate) async fn cometd_until(
    client: &mut LpClient,
    wanted: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let mut events = Vec::new();
    let read = async {
        loop {
            let response = client.connect(Some(1_000), None).await;
            let (got, reply) = split(&response);
            assert_eq!(reply["successful"], true, "{reply}");
            for event in got {
                let done = wanted(&event);
                events.push(event);
                if done {
                    return;
                }
            }
        }
    };
    if tokio::time::timeout(WAIT, read).await.is_err() {
        panic!("no wanted CometD event within {WAIT:?}; got {events:#?}");
    }
    events
}

/// Reads WatchCalls events until one matches `wanted`; returns every event read. Fails
/// after [`WAIT`].
pub(crate) async fn watch_until(
    stream: &mut tonic::Streaming<pb::WatchCallsResponse>,
    wanted: impl Fn(&pb::CallEvent) -> bool,
) -> Vec<pb::CallEvent> {
    let mut events = Vec::new();
    let read = async {
        loop {
            let message = stream.message().await.expect("a healthy stream");
            let message = message.expect("an open stream");
            if let Some(pb::watch_calls_response::Kind::Event(event)) = message.kind {
                let done = wanted(&event);
                events.push(event);
                if done {
                    return;
                }
            }
        }
    };
    if tokio::time::timeout(WAIT, read).await.is_err() {
        panic!("no wanted WatchCalls event within {WAIT:?}; got {events:#?}");
    }
    events
}

/// Wraps a gRPC message with a demo user's Basic credentials.
pub(crate) fn as_user<T>(user: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = crate::cometd_support::basic(user);
    request
        .metadata_mut()
        .insert("authorization", value.parse().unwrap());
    request
}

/// Opens `user`'s WatchCalls and reads past its snapshot.
pub(crate) async fn watch(
    client: &mut pb::call_service_client::CallServiceClient<tonic::transport::Channel>,
    user: &str,
) -> tonic::Streaming<pb::WatchCallsResponse> {
    let mut stream = client
        .watch_calls(as_user(user, pb::WatchCallsRequest::default()))
        .await
        .expect("WatchCalls opens")
        .into_inner();
    let first = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("a snapshot in time")
        .unwrap()
        .unwrap();
    assert!(matches!(
        first.kind,
        Some(pb::watch_calls_response::Kind::Snapshot(_))
    ));
    stream
}
