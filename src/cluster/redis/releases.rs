//! Release notifications on Redis: the release script `PUBLISH`es the user on
//! `{prefix}released` when it deleted the lease, and each
//! [`LeaseTable::releases`](crate::cluster::LeaseTable::releases) stream is one subscriber
//! connection (RESP2 pub/sub, outside the shared connection: a subscribed connection takes
//! no other command) run by its own task.
//!
//! Bounds, and what happens at each (a notification is a hint: a missed one costs the
//! waiter its periodic try, nothing else):
//! - **Connecting** takes at most `connect_timeout_ms`, the `SUBSCRIBE` and every `PING`
//!   at most `response_timeout_ms`; past a bound, or when the connection drops (a Redis
//!   restart), the task connects again after a pause that doubles from
//!   [`MIN_RESUBSCRIBE_PAUSE`] to [`MAX_RESUBSCRIBE_PAUSE`]. Releases published meanwhile
//!   are lost (Redis keeps no pub/sub history).
//! - **Silence**: a subscriber idle for `subscriber_ping_ms`
//!   ([`DEFAULT_SUBSCRIBER_PING_MS`](super::DEFAULT_SUBSCRIBER_PING_MS), 5 s) pings Redis, so
//!   a connection that died without a word (a partition, a paused Redis) is found and
//!   replaced within that period plus the response timeout.
//! - **Memory**: at most [`RELEASES_BUFFER`] users wait for the stream's reader; further
//!   releases are dropped until it reads (redis' own queue between the connection and this
//!   task is emptied at once).
//!
//! The task ends when the stream is dropped.

use std::time::Duration;

use ::redis::aio::{PubSubSink, PubSubStream};
use ::redis::{Client, Value};
use futures::StreamExt as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::RedisEngine;
use super::reply::{timed_out, unavailable};
use crate::cluster::{EngineError, Releases};

/// Releases buffered for one stream's reader; further ones are dropped until it reads.
pub const RELEASES_BUFFER: usize = 4_096;
/// The first pause before a subscriber connects again.
pub const MIN_RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause before a subscriber connects again.
pub const MAX_RESUBSCRIBE_PAUSE: Duration = Duration::from_secs(1);

impl RedisEngine {
    /// Starts a subscriber task; returns what it receives.
    pub(super) fn subscribe_releases(&self) -> Releases {
        let (sender, receiver) = mpsc::channel(RELEASES_BUFFER);
        let subscriber = Subscriber {
            client: self.client.clone(),
            channel: self.keys.released.clone(),
            connect_timeout: self.config.connect_timeout(),
            response_timeout: self.config.response_timeout(),
            ping_after: self.config.subscriber_ping(),
        };
        tokio::spawn(subscriber.run(sender));
        Box::pin(ReceiverStream::new(receiver))
    }
}

/// One subscription to the releases channel, connected again whenever it is lost.
struct Subscriber {
    client: Client,
    channel: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    /// The idle time after which the connection is checked with a `PING`.
    ping_after: Duration,
}

impl Subscriber {
    /// Subscribes and forwards releases to `sender` until it is dropped.
    async fn run(self, sender: mpsc::Sender<String>) {
        let mut pause = MIN_RESUBSCRIBE_PAUSE;
        let mut subscribed_before = false;
        loop {
            let error = tokio::select! {
                () = sender.closed() => return,
                error = self.listen(&sender, &mut pause, &mut subscribed_before) => error,
            };
            tracing::debug!(%error, ?pause, "cluster: release notifications lost; subscribing again");
            tokio::select! {
                () = sender.closed() => return,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(MAX_RESUBSCRIBE_PAUSE);
        }
    }

    /// Subscribes, then forwards until the connection is lost; returns why it was. A
    /// subscription resets `pause`.
    async fn listen(
        &self,
        sender: &mpsc::Sender<String>,
        pause: &mut Duration,
        subscribed_before: &mut bool,
    ) -> EngineError {
        let (sink, messages) = match self.subscribe().await {
            Ok(subscribed) => subscribed,
            Err(error) => return error,
        };
        if *subscribed_before {
            tracing::info!(channel = %self.channel, "cluster: release notifications subscribed again");
        }
        *subscribed_before = true;
        *pause = MIN_RESUBSCRIBE_PAUSE;
        self.forward(sink, messages, sender).await
    }

    /// Connects and subscribes, each within its bound.
    async fn subscribe(&self) -> Result<(PubSubSink, PubSubStream), EngineError> {
        let connect = tokio::time::timeout(self.connect_timeout, self.client.get_async_pubsub());
        let (mut sink, messages) = connect
            .await
            .map_err(|_| timed_out(self.connect_timeout))?
            .map_err(unavailable)?
            .split();
        tokio::time::timeout(self.response_timeout, sink.subscribe(&self.channel))
            .await
            .map_err(|_| timed_out(self.response_timeout))?
            .map_err(unavailable)?;
        Ok((sink, messages))
    }

    /// Forwards released users to `sender`, pinging Redis when idle, until the connection
    /// is lost or a ping is not answered within its bound; returns why.
    async fn forward(
        &self,
        mut sink: PubSubSink,
        mut messages: PubSubStream,
        sender: &mpsc::Sender<String>,
    ) -> EngineError {
        let start = tokio::time::Instant::now() + self.ping_after;
        let mut ping = tokio::time::interval_at(start, self.ping_after);
        loop {
            tokio::select! {
                message = messages.next() => {
                    let Some(message) = message else {
                        return EngineError::Unavailable("the subscriber's connection closed".into());
                    };
                    // A message proves the connection: ping only when idle.
                    ping.reset();
                    let Ok(user) = message.get_payload::<String>() else {
                        continue;
                    };
                    if sender.try_send(user).is_err() {
                        tracing::debug!("cluster: a release notification dropped (reader behind)");
                    }
                }
                _ = ping.tick() => {
                    let pong = tokio::time::timeout(self.response_timeout, sink.ping::<Value>());
                    match pong.await {
                        Ok(Ok(_)) => {}
                        Ok(Err(error)) => return unavailable(error),
                        Err(_) => return timed_out(self.response_timeout),
                    }
                }
            }
        }
    }
}
