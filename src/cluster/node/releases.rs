//! Release notifications in the node: one task reads the engine's
//! [`LeaseTable::releases`](crate::cluster::LeaseTable::releases) and wakes the tasks
//! waiting for that user's lease, through one `watch` channel per waited-for user (see
//! the module docs of [`super`]).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::watch;

use super::{ClusterNode, MAX_RETRY_PAUSE, lock};

/// The longest random delay between a release's notification and the waiter's try, so
/// that the instances waiting for one user do not all try at the same instant (the lease
/// decides who wins anyway).
pub const RELEASE_JITTER: Duration = Duration::from_millis(20);

impl ClusterNode {
    /// Returns a watch on releases of `user`'s lease anywhere in the cluster, for a task
    /// that waits to own the user (see [`ReleaseWatch`]).
    pub fn releases_of(self: &Arc<Self>, user: &Arc<str>) -> ReleaseWatch {
        let receiver = lock(&self.waiting)
            .entry(user.clone())
            .or_insert_with(|| watch::Sender::new(()))
            .subscribe();
        ReleaseWatch {
            node: self.clone(),
            user: user.clone(),
            receiver: Some(receiver),
        }
    }

    /// Wakes the tasks waiting for `user`'s lease, if any.
    fn wake(&self, user: &str) {
        if let Some(waiting) = lock(&self.waiting).get(user) {
            waiting.send_replace(());
        }
    }

    /// Routes the engine's release notifications to the waiting tasks until shutdown.
    pub(super) async fn run_releases(self: Arc<Self>) {
        loop {
            let mut releases = self.engine.leases.releases();
            loop {
                let next = tokio::select! {
                    () = self.shutdown.cancelled() => return,
                    next = releases.next() => next,
                };
                let Some(user) = next else {
                    break;
                };
                self.wake(&user);
            }
            // The engine gave up its notifications: ask again, not in a busy loop.
            tracing::debug!("cluster: release notifications ended; asking again");
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = tokio::time::sleep(MAX_RETRY_PAUSE) => {}
            }
        }
    }
}

/// A task's watch on releases of one user's lease ([`ClusterNode::releases_of`]): the
/// waiter marks what it has seen before it tries the lease, then waits for
/// [`Self::released`] or its periodic try, whichever comes first. A release reported
/// between the two is not missed.
#[derive(Debug)]
pub struct ReleaseWatch {
    node: Arc<ClusterNode>,
    user: Arc<str>,
    /// Always `Some` until dropped.
    receiver: Option<watch::Receiver<()>>,
}

impl ReleaseWatch {
    /// Marks every release reported so far as seen: call before trying the lease.
    pub fn mark_seen(&mut self) {
        if let Some(receiver) = &mut self.receiver {
            receiver.mark_unchanged();
        }
    }

    /// Returns once a release of the user's lease was reported since [`Self::mark_seen`],
    /// after a random delay of up to [`RELEASE_JITTER`]. Never returns if notifications
    /// stopped: the waiter's periodic try is its fallback.
    pub async fn released(&mut self) {
        let Some(receiver) = &mut self.receiver else {
            return std::future::pending().await;
        };
        if receiver.changed().await.is_err() {
            return std::future::pending().await;
        }
        tokio::time::sleep(jitter()).await;
    }
}

impl Drop for ReleaseWatch {
    fn drop(&mut self) {
        // Under the map's lock, as in `releases_of`: the last watch of a user removes the
        // entry, and a new one cannot subscribe to it in between.
        let mut waiting = lock(&self.node.waiting);
        drop(self.receiver.take());
        if waiting
            .get(&self.user)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            waiting.remove(&self.user);
        }
    }
}

/// A random delay of up to [`RELEASE_JITTER`].
fn jitter() -> Duration {
    let max = u64::try_from(RELEASE_JITTER.as_micros()).unwrap_or(u64::MAX);
    let random = uuid::Uuid::new_v4().as_u64_pair().0;
    Duration::from_micros(random % (max + 1))
}
