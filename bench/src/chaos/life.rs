//! The life of a chaotic client: one connection after another, each ended by the server,
//! the proxy, or the client itself at a random moment; a random pause now and then before
//! the next; and, for some clients, one long absence in the middle of the run.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::plan::{ChaosPlan, ChaosRng};

/// How a client kills its own connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kill {
    /// Drops the stream or socket where it stands.
    Drop,
    /// Aborts the task that reads it.
    Abort,
}

/// What every chaotic client shares: the plan, the run's end, the end of the chaos, and
/// where to say it is ready.
#[derive(Debug, Clone)]
pub struct Chaos {
    /// The plan.
    pub plan: Arc<ChaosPlan>,
    /// Cancelled at the end of the run: clients stop.
    pub stop: CancellationToken,
    /// Cancelled when the chaos stops: no more kills or pauses.
    pub calm: CancellationToken,
    /// The number of call events the reference has seen.
    pub events: watch::Receiver<u64>,
    /// When the run began (the clients' journals count from it).
    pub began: Instant,
    ready: mpsc::UnboundedSender<()>,
}

impl Chaos {
    /// Starts the chaos of `plan`; `events` counts the reference's events, `ready` hears
    /// each client's first snapshot.
    pub fn new(
        plan: ChaosPlan,
        events: watch::Receiver<u64>,
        ready: mpsc::UnboundedSender<()>,
    ) -> Self {
        Self {
            plan: Arc::new(plan),
            stop: CancellationToken::new(),
            calm: CancellationToken::new(),
            events,
            began: Instant::now(),
            ready,
        }
    }

    /// Chooses whether and when the client kills the connection it is opening.
    fn kill(&self, rng: &mut ChaosRng) -> Option<(Duration, Kill)> {
        if self.calm.is_cancelled() || !rng.chance(self.plan.kill_chance) {
            return None;
        }
        let how = if rng.chance(0.5) {
            Kill::Drop
        } else {
            Kill::Abort
        };
        Some((rng.duration(self.plan.life), how))
    }

    /// Before a reconnect: now and then a long pause (the chaos itself: a client that was
    /// away), cut short when the chaos stops; otherwise a short jittered backoff, as real
    /// clients wait before reconnecting. Neither synchronises anything.
    async fn before_reconnect(&self, rng: &mut ChaosRng) {
        let paused = !self.calm.is_cancelled() && rng.chance(self.plan.pause_chance);
        let wait = if paused {
            rng.duration(self.plan.pause)
        } else {
            Duration::from_millis(rng.range(0, 20))
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = self.calm.cancelled(), if paused => {}
            () = self.stop.cancelled() => {}
        }
    }

    /// Stays away until the reference has counted `count` events, or the chaos stops.
    pub async fn stay_away(&self, count: u64) {
        let mut events = self.events.clone();
        tokio::select! {
            _ = events.wait_for(|&n| n >= count) => {}
            () = self.calm.cancelled() => {}
            () = self.stop.cancelled() => {}
        }
    }

    /// Tells the run the client has its first snapshot and is subscribed.
    pub fn ready(&self) {
        let _ = self.ready.send(());
    }
}

/// How one connection of a client ended.
#[derive(Debug)]
pub enum LifeEnd {
    /// By itself: the server or the proxy ended it, or the client resyncs.
    Ended(anyhow::Result<()>),
    /// The client killed it; `away` when it goes away for a while.
    Killed {
        /// Whether the client now stays away.
        away: bool,
    },
    /// The run stopped.
    Stopped,
}

/// Runs one connection of a client (`life`, which keeps the client's state outside itself)
/// until it ends, `trigger` fires (the client kills it; `trigger` says whether it goes away
/// then), or the run stops. With `abort` the life runs as a task that is aborted, and
/// waited for, so that two lives of a client never overlap; otherwise the future is
/// dropped where it stands.
pub async fn live<F, T>(life: F, abort: bool, trigger: T, stop: &CancellationToken) -> LifeEnd
where
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
    T: Future<Output = bool>,
{
    if abort {
        let mut task = tokio::spawn(life);
        let end = tokio::select! {
            ended = &mut task => {
                return LifeEnd::Ended(ended.unwrap_or_else(|e| Err(anyhow::anyhow!("the life panicked: {e}"))));
            }
            away = trigger => LifeEnd::Killed { away },
            () = stop.cancelled() => LifeEnd::Stopped,
        };
        task.abort();
        let _ = task.await;
        return end;
    }
    tokio::select! {
        ended = life => LifeEnd::Ended(ended),
        away = trigger => LifeEnd::Killed { away },
        () = stop.cancelled() => LifeEnd::Stopped,
    }
}

/// How a client's connections went.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lives {
    /// Connections opened after the first.
    pub reconnects: u64,
    /// Connections the client killed (going away included).
    pub kills: u64,
    /// Connections that ended in an error (mostly the proxy's cuts).
    pub broken: u64,
}

/// Opens connection after connection (`life` makes each) until the run stops, killing some
/// at random, and, when `away`, going away once in the middle of the run: the connection
/// is dropped and the next one waits until `plan.away_events` more events were committed,
/// which is more than the gateway keeps for it (a resync follows). `note` hears how each
/// connection ended, for the client's journal.
pub async fn keep_connecting<F, Fut, N>(
    chaos: &Chaos,
    rng: &mut ChaosRng,
    away: bool,
    mut life: F,
    mut note: N,
) -> Lives
where
    F: FnMut() -> Fut,
    N: FnMut(String),
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let plan = &chaos.plan;
    let mut away_at = away.then(|| rng.range(plan.events / 5, plan.events / 2));
    let mut lives = Lives::default();
    let mut first = true;
    while !chaos.stop.is_cancelled() {
        if !first {
            chaos.before_reconnect(rng).await;
            if chaos.stop.is_cancelled() {
                break;
            }
            lives.reconnects += 1;
        }
        first = false;
        let kill = chaos.kill(rng);
        let mut events = chaos.events.clone();
        let leave_at = away_at.filter(|_| !chaos.calm.is_cancelled());
        // The kill timer and the moment to go away are the chaos itself.
        let trigger = async move {
            let timer = async {
                match kill {
                    Some((after, _)) => tokio::time::sleep(after).await,
                    None => std::future::pending().await,
                }
            };
            let leave = async {
                match leave_at {
                    Some(at) => drop(events.wait_for(|&n| n >= at).await),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = timer => false,
                () = leave => true,
            }
        };
        let abort = kill.is_some_and(|(_, how)| how == Kill::Abort);
        match live(life(), abort, trigger, &chaos.stop).await {
            LifeEnd::Killed { away } => {
                lives.kills += 1;
                let how = kill.map_or(Kill::Drop, |(_, how)| how);
                if away && let Some(at) = away_at.take() {
                    note(format!(
                        "killed ({how:?}), away until event {}",
                        at + plan.away_events
                    ));
                    chaos.stay_away(at + plan.away_events).await;
                    note(format!("back at event {}", *chaos.events.borrow()));
                } else {
                    note(format!("killed ({how:?})"));
                }
            }
            LifeEnd::Ended(Err(error)) => {
                lives.broken += 1;
                note(format!("ended: {error:#}"));
            }
            LifeEnd::Ended(Ok(())) => note("ended to resync".into()),
            LifeEnd::Stopped => note("stopped".into()),
        }
    }
    lives
}
