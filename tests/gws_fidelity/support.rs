//! Shared helpers: reading CometD and WatchCalls events until one is wanted (with the
//! common deadline), and opening a watch.

use serde_json::Value;
use voice_gateway::grpc::pb;

use crate::cometd_support::LpClient;
pub(crate) use crate::common::{WAIT, as_user, watch_until};

/// Reads `/meta/connect`s until an event matches `wanted`; returns every event read up to
/// and including it.
pub(crate) async fn cometd_until(
    client: &mut LpClient,
    wanted: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    client.connect_until(wanted).await
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
    crate::common::snapshot(&mut stream).await;
    stream
}
