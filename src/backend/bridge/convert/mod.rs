//! GWS v2 JSON to and from the core's types, for talking to an upstream GWS: operations
//! become the `{"operationName": ...}` bodies the GWS JSON API takes (exactly what the
//! gateway's own legacy front parses, which a test checks by round-trip), and the call,
//! device and user resources the upstream sends become core snapshots.
//!
//! Reading is lenient where GWS servers differ (a missing `duration`, `mute` or
//! `recordingState`, unknown capabilities or fields are skipped) and strict where the core
//! cannot do without (a call without `id` or `state` is refused).

mod bodies;
mod calls;
mod devices;
mod notification;
mod user;

use std::sync::Arc;

use sonic_rs::{JsonContainerTrait as _, JsonValueTrait as _, Value};

pub use bodies::{UpstreamRequest, call_operation, device_operation, dial};
pub use calls::{call, call_notification, error_kind, error_message};
pub use devices::device;
pub use notification::{Notification, notification};
pub use user::{Me, me};

fn text<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.get(key).and_then(|v| v.as_str())
}

/// Returns the last path segment of a URI or path (`.../calls/{id}` → `{id}`).
fn last_segment(uri: &str) -> &str {
    uri.trim_end_matches('/').rsplit('/').next().unwrap_or(uri)
}

/// The fields of an upstream resource the core does not model (not in `modeled`), as JSON
/// text, so that a GWS client behind the bridge still sees them; `None` when there are none.
fn unmodeled(value: &Value, modeled: &[&str]) -> Option<Arc<str>> {
    fields_text(
        value
            .as_object()?
            .iter()
            .filter(|(key, _)| !modeled.contains(key)),
    )
}

/// `fields` as the text of one JSON object, in the order given (the upstream's);
/// `None` when there are none.
fn fields_text<'a>(fields: impl IntoIterator<Item = (&'a str, &'a Value)>) -> Option<Arc<str>> {
    let mut object = sonic_rs::Object::new();
    for (key, value) in fields {
        object.insert(&key, value.clone());
    }
    if object.is_empty() {
        return None;
    }
    sonic_rs::to_string(&object).ok().map(Into::into)
}

#[cfg(test)]
mod tests;
