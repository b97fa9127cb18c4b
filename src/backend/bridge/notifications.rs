//! One upstream CometD session per user: `/v2/me/calls` and `/v2/me/devices`
//! notifications (and the Voice `ErrorMessage` of `/v2/me/calls`) mirrored into the core,
//! and a re-read of the user's state whenever some may have been lost.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::convert::{self, Notification};
use super::{GwsBridge, SESSION_COOKIE, Session};
use crate::core::port::PortFuture;
use crate::upstream::bayeux::{BayeuxClient, BayeuxDelivery, BayeuxEvent};

/// The channels every session subscribes to.
const CHANNELS: [&str; 2] = ["/v2/me/calls", "/v2/me/devices"];
/// The longest pause before a refused client starts over.
const MAX_RESTART_PAUSE: Duration = Duration::from_secs(10);

/// Runs a session's notifications until the session is closed or the gateway stops.
///
/// The client re-handshakes by itself after a lost connection or an upstream `402`; each
/// time it says so, the user's state is re-read. When the upstream refuses the session
/// outright (its `JSESSIONID` is void after a restart), the bridge signs in again with the
/// session's credentials and starts a new client, pausing with a doubling, jittered delay
/// between attempts.
///
/// Boxed with an explicit `Send` because signing in again starts this task too: the cycle
/// would otherwise leave the compiler unable to infer that the future is `Send`.
///
/// `stop` ends it: the session's own token in a single instance; in cluster mode the token
/// of this instance's lease on the user, cancelled as soon as the lease is lost.
pub(super) fn run(
    bridge: Arc<GwsBridge>,
    session: Arc<Session>,
    stop: CancellationToken,
) -> PortFuture<'static, ()> {
    Box::pin(run_session(bridge, session, stop))
}

async fn run_session(bridge: Arc<GwsBridge>, session: Arc<Session>, stop: CancellationToken) {
    let endpoint = format!("{}/api/v2/notifications", bridge.base);
    let mut pause = Duration::from_millis(100);
    loop {
        let client = match BayeuxClient::new(&endpoint, bridge.notify_http.clone(), CHANNELS) {
            Ok(client) => client
                .cookie(SESSION_COOKIE, &session.cookie())
                .options(bridge.notify_options.clone()),
            Err(error) => {
                tracing::error!(%error, "cannot start the upstream CometD client");
                return;
            }
        };
        let mut events = client.spawn(stop.clone());
        while let Some(event) = events.recv().await {
            match event {
                BayeuxEvent::Subscribed {
                    connection_type, ..
                } => {
                    tracing::debug!(user = %session.user.name, %connection_type, "upstream CometD subscribed");
                    bridge.set_available(true);
                    pause = Duration::from_millis(100);
                    // Re-read even after the first subscription: a change between the
                    // sign-in's read and the subscription was notified to nobody.
                    if let Err(error) = bridge.resync(&session).await {
                        tracing::warn!(user = %session.user.name, %error, "upstream re-read failed");
                    }
                    session.subscribed.send_replace(true);
                }
                BayeuxEvent::Message(delivery) => on_message(&bridge, &session, &delivery).await,
                BayeuxEvent::Disconnected { error, attempt, .. } => {
                    if error.is_transport() {
                        bridge.set_available(false);
                    }
                    tracing::debug!(user = %session.user.name, %error, attempt, "upstream CometD retrying");
                }
                BayeuxEvent::Stopped { error } => {
                    tracing::info!(user = %session.user.name, %error, "upstream CometD session refused");
                    break;
                }
            }
        }
        let jitter = Duration::from_millis(u64::from(uuid::Uuid::new_v4().as_bytes()[0]));
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pause + jitter) => {}
        }
        pause = (pause * 2).min(MAX_RESTART_PAUSE);
        if let Err(error) = bridge.resync(&session).await {
            tracing::warn!(user = %session.user.name, %error, "upstream sign-in again failed");
        }
    }
}

/// Mirrors one notification. A report the core could not publish (cluster mode: the
/// engine is down or the lease was lost) is logged; the re-read that follows recovery or
/// takeover reports its change.
async fn on_message(bridge: &GwsBridge, session: &Session, delivery: &BayeuxDelivery) {
    let Ok(core) = bridge.core() else {
        return;
    };
    session.touch();
    let user = session.user.to_ref();
    let mirrored = match convert::notification(delivery.data(), &user) {
        Notification::Call(notification, call, digits) => {
            core.mirror_call(notification, call, digits).await
        }
        Notification::UnreadableCall => {
            tracing::warn!(user = %user.name, "unreadable upstream call notification");
            Ok(())
        }
        Notification::Error(error) => core.mirror_error(error).await,
        Notification::Devices(devices) => {
            let mut mirrored = Ok(());
            for device in devices {
                mirrored = mirrored.and(core.mirror_device(device).await);
            }
            mirrored
        }
        Notification::Other(other) => {
            tracing::debug!(
                channel = delivery.channel(),
                ?other,
                "upstream message ignored"
            );
            Ok(())
        }
    };
    if let Err(error) = mirrored {
        tracing::warn!(user = %user.name, %error, "upstream notification not mirrored");
    }
}
