//! Cluster mode: one user's lease, for as long as the user's upstream session is open
//! here. While this instance holds it, the user's upstream CometD client runs here
//! ([`super::notifications`]) and its reports go to the shared log; otherwise the client
//! runs nowhere here, and the lease is tried again as soon as the engine reports it
//! released (an owner's graceful hand-off: within the notification's round trip and
//! [`RELEASE_JITTER`](crate::cluster::node::RELEASE_JITTER)), and in any case every renew
//! interval: an owner that died releases nothing, and is replaced within the lease TTL
//! plus that interval; a notification lost costs the same interval.

use std::sync::Arc;

use super::{GwsBridge, Session, notifications};
use crate::cluster::node::ClusterNode;

/// Holds or waits for `session`'s user's lease until the session closes (then releases
/// it: a graceful hand-off on shutdown, as the session's token is a child of the
/// gateway's).
pub(super) async fn run(bridge: Arc<GwsBridge>, node: Arc<ClusterNode>, session: Arc<Session>) {
    let user = session.user.name.clone();
    let period = node.renew_interval();
    let mut resyncs = node.resyncs();
    let mut releases = node.releases_of(&user);
    loop {
        // Before the try: a release reported after it wakes the wait below.
        releases.mark_seen();
        match node.acquire(&user, &session.stop).await {
            Ok(Some(owned)) => {
                resyncs.mark_unchanged();
                // The client's first subscription re-reads the user: the takeover's diff.
                let client = notifications::run(bridge.clone(), session.clone(), owned.clone());
                tokio::spawn(client);
                loop {
                    tokio::select! {
                        () = session.stop.cancelled() => {
                            node.release(&user).await;
                            return;
                        }
                        () = owned.cancelled() => break,
                        () = tokio::time::sleep(period) => {
                            if !node.renew(&user).await {
                                break;
                            }
                        }
                        changed = resyncs.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            if let Err(error) = bridge.resync(&session).await {
                                tracing::warn!(%user, %error, "upstream re-read failed");
                            }
                        }
                    }
                }
            }
            Ok(None) => {
                // Another instance holds the lease: its client reports the user's changes,
                // which reach this instance through the log.
                session.subscribed.send_replace(true);
            }
            Err(error) => tracing::debug!(%user, %error, "cluster: lease not taken"),
        }
        tokio::select! {
            () = session.stop.cancelled() => return,
            () = tokio::time::sleep(period) => {}
            () = releases.released() => {}
        }
    }
}
