//! What a chaos run does: its counts, durations and odds ([`ChaosPlan`], one for the test
//! suite, one for the bench, one for the bench's smoke run), the gateway configuration it
//! needs, and the seeded generator of its random choices.

use std::time::Duration;

use super::driver::{BUSY_NUMBER, EXTERNAL_ANSWER_MS};
use super::proxy::CutPlan;
use super::{SERVICE_ACCOUNT, SERVICE_TOKEN};
use crate::setup;

/// Counts, durations and odds of a chaos run.
#[derive(Debug, Clone)]
pub struct ChaosPlan {
    /// Agents, in groups of `party_size` that call each other.
    pub users: usize,
    /// Parties of each call (more than two make a conference).
    pub party_size: usize,
    /// `WatchCalls` clients scoped to one agent (spread evenly over the agents).
    pub user_watchers: usize,
    /// `WatchCalls` clients of the whole contact center.
    pub center_watchers: usize,
    /// CometD clients (every other one on WebSocket, the rest long-polling).
    pub cometd_clients: usize,
    /// Call events to commit, at least.
    pub events: u64,
    /// UpdateUserData-plus-operation cycles per call (a multiple of 4).
    pub cycles_per_call: usize,
    /// A client-side kill comes after a uniform delay in this range.
    pub life: (Duration, Duration),
    /// Share of connections a client kills itself.
    pub kill_chance: f64,
    /// Share of reconnects that wait first, for a uniform delay in `pause`.
    pub pause_chance: f64,
    /// The range of those waits.
    pub pause: (Duration, Duration),
    /// Watchers, and as many CometD clients, that go away once in the middle of the run.
    pub away: usize,
    /// For how many events they stay away: more than the gateway's history and CometD
    /// queue hold for them, so they must resync.
    pub away_events: u64,
    /// What the proxies cut.
    pub cuts: CutPlan,
    /// `limits.event_history` of the gateway.
    pub event_history: usize,
    /// `limits.watch_buffer` of the gateway (small, so contact-center watchers lag now
    /// and then, are ended with ABORTED and resume).
    pub watch_buffer: usize,
    /// `cometd.max_queue` of the gateway.
    pub cometd_max_queue: usize,
    /// `cometd.timeout_ms` of the gateway.
    pub cometd_timeout_ms: u64,
    /// How long clients may take to catch up once the chaos stops.
    pub settle: Duration,
    /// Longest time the driver may take.
    pub drive_limit: Duration,
    /// Seed of every random choice.
    pub seed: u64,
}

impl ChaosPlan {
    /// The test suite's run: 100 watchers (about two per agent, and two of the whole
    /// contact center), 50 CometD clients (about one per agent), [`Self::TEST_EVENTS`]
    /// events from twelve conferences of four agents at a time. Sized for the suite's
    /// ten seconds in a debug build on two shared cores (the bench's run, figure 8, has
    /// 100,000 events and more clients of each kind); see [`Self::test_of`].
    pub fn test() -> Self {
        Self::test_of(Self::TEST_EVENTS)
    }

    /// Events of the test suite's run.
    pub const TEST_EVENTS: u64 = 1_000;

    /// The test suite's clients, chaos and bounds for a run of `events` events: a client
    /// that goes away does so between a fifth and half of the run, for half of it, which
    /// is more than the gateway's history (a fifth) and, spread over 48 agents, more
    /// messages than a CometD queue holds (6, acknowledged or not), so it must resync.
    /// The limits are generous: waits end on events, the limits only name what hung.
    pub fn test_of(events: u64) -> Self {
        Self {
            users: 48,
            party_size: 4,
            user_watchers: 98,
            center_watchers: 2,
            cometd_clients: 50,
            events,
            // Short calls: the groups' calls in flight when the count is reached end
            // anyway, and add less to a short run.
            cycles_per_call: 4,
            life: (Duration::from_millis(20), Duration::from_millis(600)),
            kill_chance: 0.6,
            pause_chance: 0.04,
            pause: (Duration::from_millis(400), Duration::from_millis(1500)),
            away: 5,
            away_events: events / 2,
            cuts: CutPlan {
                down_chance: 0.4,
                down_max: 16 * 1024,
                up_chance: 0.05,
                up_max: 2048,
            },
            event_history: (events / 5) as usize,
            watch_buffer: 256,
            cometd_max_queue: 6,
            cometd_timeout_ms: 1_000,
            settle: Duration::from_secs(60),
            drive_limit: Duration::from_secs(120),
            seed: seed_from_env(),
        }
    }

    /// The bench's run: 100,000 events, 400 watchers (six per agent, and sixteen of the
    /// whole contact center), 200 CometD clients (three per agent).
    pub fn bench() -> Self {
        Self {
            users: 64,
            user_watchers: 384,
            center_watchers: 16,
            cometd_clients: 200,
            events: 100_000,
            cycles_per_call: 8,
            away: 20,
            away_events: 12_000,
            event_history: 10_000,
            cometd_max_queue: 128,
            settle: Duration::from_secs(60),
            drive_limit: Duration::from_secs(600),
            ..Self::test()
        }
    }

    /// The bench's smoke run: a few seconds.
    pub fn smoke() -> Self {
        Self {
            users: 4,
            user_watchers: 8,
            center_watchers: 1,
            cometd_clients: 4,
            events: 500,
            cycles_per_call: 8,
            away: 1,
            away_events: 250,
            event_history: 200,
            cometd_max_queue: 32,
            ..Self::test()
        }
    }

    /// Renders the gateway configuration of the run: the bench agents, a service account
    /// for the reference watcher, the history and queue bounds of the plan, and a busy
    /// outside number answering after a short delay (the driver's asynchronous errors).
    pub fn config_toml(&self) -> String {
        let extra = format!(
            "[[service_accounts]]\nname = \"{SERVICE_ACCOUNT}\"\ncontact_center = \"{}\"\ntoken = \"{SERVICE_TOKEN}\"\n\n\
             [limits]\nevent_history = {}\nwatch_buffer = {}\n\n\
             [cometd]\ntimeout_ms = {}\nmax_queue = {}\n",
            setup::CONTACT_CENTER,
            self.event_history,
            self.watch_buffer,
            self.cometd_timeout_ms,
            self.cometd_max_queue,
        );
        let switch = format!(
            "external_answer_ms = {EXTERNAL_ANSWER_MS}\nbusy_numbers = [\"{BUSY_NUMBER}\"]\n"
        );
        setup::config_toml_with(self.users, &switch, &extra)
    }
}

/// Returns `CHAOS_SEED` when set, else a seed from the clock (printed in the report, so a
/// failing run can be repeated with the same choices, as far as scheduling allows).
fn seed_from_env() -> u64 {
    std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

/// A small deterministic generator (SplitMix64) for the chaos choices.
#[derive(Debug, Clone)]
pub struct ChaosRng(u64);

impl ChaosRng {
    /// Starts from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Returns the next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Returns a number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi.saturating_sub(lo) + 1)
    }

    /// Returns true with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// Returns a duration uniform in `lo..=hi`.
    pub fn duration(&mut self, (lo, hi): (Duration, Duration)) -> Duration {
        Duration::from_micros(self.range(lo.as_micros() as u64, hi.as_micros() as u64))
    }

    /// Returns an independent generator.
    pub fn fork(&mut self) -> Self {
        Self::new(self.next_u64())
    }
}
