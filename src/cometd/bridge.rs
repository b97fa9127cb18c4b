//! The one task that feeds CometD from the core: it reads the whole event stream
//! (`WatchScope::All`) once and hands each event to the sessions of the user it belongs to,
//! instead of one core watch per session, so 10,000 long-polls cost one broadcast reader.

use std::sync::Arc;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::channel::CALLS_CHANNEL;
use super::registry::BayeuxRegistry;
use super::session::BayeuxRemoval;
use crate::core::{CallControl, CallEvent, CallWatch, WatchError, WatchScope};
use crate::legacy::model::CallStateChangeJson;

/// Renders a call event as the `/v2/me/calls` message (spec §8.3) for one base URL.
pub fn render_call_event(event: &CallEvent, base_url: &str) -> Option<Arc<str>> {
    let data = CallStateChangeJson::from_event(event, base_url);
    let message = json!({ "channel": CALLS_CHANNEL, "data": data });
    serde_json::to_string(&message).ok().map(Into::into)
}

/// Delivers one event to its user's subscribed sessions; returns how many got it.
pub fn dispatch(registry: &BayeuxRegistry, event: &CallEvent) -> usize {
    registry.publish_to_user(&event.call.user.name, CALLS_CHANNEL, |base| {
        render_call_event(event, base)
    })
}

/// Starts the bridge's watch; returns `None` (after logging) if the core refuses.
pub fn start_watch(core: &CallControl, from: Option<u64>) -> Option<CallWatch> {
    match core.watch(WatchScope::All, from) {
        Ok(start) => Some(start.watch),
        Err(error) => {
            tracing::error!(%error, "cometd bridge cannot watch the core");
            None
        }
    }
}

/// Runs until `shutdown`. If the bridge falls behind the core's broadcast ring it resumes
/// from the core's history; if that is gone too, every session is dropped (clients get
/// `402` and re-handshake, which tells them to reload their calls) rather than silently
/// missing events.
pub async fn run_bridge(
    core: Arc<CallControl>,
    registry: Arc<BayeuxRegistry>,
    mut watch: CallWatch,
    shutdown: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return,
            next = watch.next() => next,
        };
        match next {
            Ok(Some(event)) => {
                dispatch(&registry, &event);
            }
            Ok(None) => return,
            Err(WatchError::Lagged { last_delivered }) => {
                tracing::warn!(last_delivered, "cometd bridge fell behind the core");
                watch = match start_watch(&core, Some(last_delivered)) {
                    Some(resumed) => resumed,
                    None => {
                        registry.remove_all(BayeuxRemoval::EventsLost);
                        match start_watch(&core, None) {
                            Some(fresh) => fresh,
                            None => return,
                        }
                    }
                };
            }
        }
    }
}
