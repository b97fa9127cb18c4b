//! Shared helpers: reading CometD and WatchCalls events until one is wanted (with the
//! common deadline), and opening a watch.

use serde_json::Value;

use crate::cometd_support::LpClient;
pub(crate) use crate::common::{WAIT, as_user, watch_calls as watch, watch_until};

/// Reads `/meta/connect`s until an event matches `wanted`; returns every event read up to
/// and including it.
pub(crate) async fn cometd_until(
    client: &mut LpClient,
    wanted: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    client.connect_until(wanted).await
}
