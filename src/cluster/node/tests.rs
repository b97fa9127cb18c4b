use super::*;
use crate::cluster::memory::MemoryEngine;
use crate::cluster::{LeaseTable as _, SharedLog as _};
use crate::core::port::Upstream;
use crate::core::{
    CallId, CallOperation, CallSnapshot, CallState, CallType, CoreLimits, DEFAULT_REPLY_WAIT,
    DeviceRequest, DialRequest, NotificationType, ResumePoint as ResumeAt, User, UserData, UserRef,
    WatchError, WatchScope,
};

fn call_of(user: &str, id: &str) -> CallSnapshot {
    CallSnapshot {
        id: CallId::new(id),
        conn_id: "0071000000000001".into(),
        state: CallState::Ringing,
        call_type: CallType::Internal,
        capabilities: vec![],
        participants: vec![],
        dnis: "15000".into(),
        ani: None,
        user_data: UserData::default(),
        duration_secs: 0,
        muted: false,
        recording_state: None,
        supervisor_listening_in: false,
        monitored_user_muted: false,
        monitoring: false,
        parent_call_id: None,
        user: UserRef {
            name: user.into(),
            contact_center: "demo".into(),
            phone_number: "15000".into(),
            device_id: "d1".into(),
        },
        upstream_fields: None,
    }
}

const TTL: Duration = Duration::from_millis(300);

/// Awaits `future` for at most 5 s (of paused time: the test fails fast, not hangs).
async fn bounded<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), future)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within 5 s"))
}

/// An upstream that is never asked anything here: these tests drive the mirror only.
#[derive(Debug)]
struct NoUpstream;

impl Upstream for NoUpstream {
    fn name(&self) -> &'static str {
        "no upstream"
    }
    fn sign_in(&self, _: String, _: String) -> PortFuture<'_, CoreResult<Arc<User>>> {
        Box::pin(async { Err(CoreError::Unavailable("no upstream".into())) })
    }
    fn dial(&self, _: Arc<User>, _: DialRequest) -> PortFuture<'_, CoreResult<()>> {
        Box::pin(async { Err(CoreError::Unavailable("no upstream".into())) })
    }
    fn execute(&self, _: Arc<User>, _: CallId, _: CallOperation) -> PortFuture<'_, CoreResult<()>> {
        Box::pin(async { Err(CoreError::Unavailable("no upstream".into())) })
    }
    fn device_operation(&self, _: Arc<User>, _: DeviceRequest) -> PortFuture<'_, CoreResult<()>> {
        Box::pin(async { Err(CoreError::Unavailable("no upstream".into())) })
    }
    fn is_available(&self) -> bool {
        true
    }
}

struct Member {
    core: Arc<CallControl>,
    node: Arc<ClusterNode>,
    _stop: tokio_util::sync::DropGuard,
}

async fn member(engine: &Arc<MemoryEngine>) -> Member {
    member_on(Engine::memory(engine.clone())).await
}

async fn member_on(engine_ref: Engine) -> Member {
    let stop = CancellationToken::new();
    let node = ClusterNode::new(engine_ref, TTL, TTL / 3, stop.clone());
    let directory = crate::config::Config::demo().directory().unwrap();
    let core = CallControl::bridged(
        directory,
        Arc::new(NoUpstream),
        CoreLimits::default(),
        DEFAULT_REPLY_WAIT,
    )
    .with_shared_events(node.clone());
    let core = Arc::new(core);
    node.attach(&core);
    node.caught_up_at_start(TTL).await;
    Member {
        core,
        node,
        _stop: stop.drop_guard(),
    }
}

fn user() -> Arc<str> {
    "agent1".into()
}

impl Member {
    /// Tries to take agent1's lease; the token of its ownership when taken.
    async fn acquire(&self) -> Option<CancellationToken> {
        self.node
            .acquire(&user(), &CancellationToken::new())
            .await
            .unwrap()
    }
}

#[tokio::test(start_paused = true)]
async fn an_owners_report_reaches_every_member_with_the_logs_sequence_and_epoch() {
    let engine = Arc::new(MemoryEngine::default());
    let (a, b) = (member(&engine).await, member(&engine).await);
    let mut watch = b.core.watch(WatchScope::All, None).unwrap();
    assert!(a.acquire().await.is_some());
    let call = call_of("agent1", "C1");
    a.core
        .mirror_call(NotificationType::StatusChange, call.clone(), None)
        .await
        .unwrap();
    // Back from the tail before the report returns: the owner's own log has it.
    assert_eq!(a.core.log_position().1, 1);
    let event = bounded("the event", watch.watch.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.sequence(), 1);
    assert_eq!(a.core.log_position(), b.core.log_position());
    assert_eq!(*watch.epoch, *engine.entries().0.unwrap());
    // A member without the lease cannot publish (a change: the same call again is
    // nothing to publish).
    let mut changed = call;
    changed.state = CallState::Established;
    assert!(
        b.core
            .mirror_call(NotificationType::StatusChange, changed, None)
            .await
            .is_err()
    );
    assert_eq!(engine.entries().1.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn two_reports_at_once_are_diffed_one_after_the_other() {
    let engine = Arc::new(MemoryEngine::default());
    let a = member(&engine).await;
    a.acquire().await;
    let calls = vec![call_of("agent1", "C1")];
    // Both re-reads list the same new call: only the first one is a difference.
    let (one, two) = tokio::join!(
        a.core.mirror_resync("agent1", calls.clone(), None),
        a.core.mirror_resync("agent1", calls, None),
    );
    one.unwrap();
    two.unwrap();
    assert_eq!(
        engine.entries().1.len(),
        1,
        "the same change appended twice"
    );
}

#[tokio::test(start_paused = true)]
async fn a_notification_of_what_a_re_read_already_appended_is_not_appended_again() {
    // The new owner's race after a takeover (tests/cluster_chaos.rs found it): it
    // subscribes, re-reads the user, and a change made in between is both in the
    // re-read and notified right after it.
    let engine = Arc::new(MemoryEngine::default());
    let a = member(&engine).await;
    a.acquire().await;
    let call = call_of("agent1", "C1");
    a.core
        .mirror_resync("agent1", vec![call.clone()], None)
        .await
        .unwrap();
    a.core
        .mirror_call(NotificationType::StatusChange, call.clone(), None)
        .await
        .unwrap();
    assert_eq!(
        engine.entries().1.len(),
        1,
        "the same change appended twice"
    );
    let mut changed = call;
    changed.state = CallState::Established;
    a.core
        .mirror_call(NotificationType::StatusChange, changed, None)
        .await
        .unwrap();
    assert_eq!(engine.entries().1.len(), 2, "a change is appended");
}

/// Leases whose release takes a while (a round trip to a remote engine).
struct SlowRelease(Arc<MemoryEngine>);

impl crate::cluster::LeaseTable for SlowRelease {
    fn acquire<'a>(
        &'a self,
        user: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> crate::cluster::EngineFuture<'a, Option<Grant>> {
        self.0.acquire(user, holder, ttl)
    }
    fn renew<'a>(
        &'a self,
        grant: &'a Grant,
        ttl: Duration,
    ) -> crate::cluster::EngineFuture<'a, bool> {
        self.0.renew(grant, ttl)
    }
    fn release<'a>(&'a self, grant: &'a Grant) -> crate::cluster::EngineFuture<'a, ()> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.0.release(grant).await
        })
    }
    fn holder<'a>(&'a self, user: &'a str) -> crate::cluster::EngineFuture<'a, Option<Grant>> {
        self.0.holder(user)
    }
    fn releases(&self) -> crate::cluster::Releases {
        self.0.releases()
    }
}

#[tokio::test(start_paused = true)]
async fn a_drain_releases_a_lease_whose_release_is_already_under_way() {
    // SIGTERM cancels the sessions (their owner loops release their user) and starts
    // the drain (release_all, which the gateway waits for) at once; the process exits
    // when the drain is done. tests/cluster_chaos.rs saw the lease lapse instead.
    let engine = Arc::new(MemoryEngine::default());
    let m = member_on(Engine {
        log: engine.clone(),
        leases: Arc::new(SlowRelease(engine.clone())),
        sessions: engine.clone(),
        name: "slow".into(),
    })
    .await;
    m.acquire().await.unwrap();
    let node = m.node.clone();
    let session = tokio::spawn(async move { node.release("agent1").await });
    tokio::task::yield_now().await;
    bounded("the drain", m.node.release_all()).await;
    // The process exits: the session's own release never finishes.
    session.abort();
    assert_eq!(
        engine.holder("agent1").await.unwrap(),
        None,
        "the drain left the lease to lapse"
    );
}

#[tokio::test(start_paused = true)]
async fn an_owner_whose_lease_was_taken_is_fenced_and_stops() {
    let engine = Arc::new(MemoryEngine::default());
    let (a, b) = (member(&engine).await, member(&engine).await);
    let owned = a.acquire().await.unwrap();
    // A pauses past its lease (no renew): B takes it over.
    tokio::time::sleep(TTL * 2).await;
    assert!(b.acquire().await.is_some());
    let refused = a
        .core
        .mirror_call(
            NotificationType::StatusChange,
            call_of("agent1", "C1"),
            None,
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(engine.entries().1.is_empty(), "nothing written");
    assert!(owned.is_cancelled(), "the old owner's client is stopped");
    assert!(!a.node.owns("agent1"));
    // B writes.
    b.core
        .mirror_call(
            NotificationType::StatusChange,
            call_of("agent1", "C1"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(engine.entries().1.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_lost_log_ends_every_watch_and_asks_owners_to_read_again() {
    let engine = Arc::new(MemoryEngine::default());
    let a = member(&engine).await;
    a.acquire().await;
    a.core
        .mirror_call(
            NotificationType::StatusChange,
            call_of("agent1", "C1"),
            None,
        )
        .await
        .unwrap();
    let mut watch = a.core.watch(WatchScope::All, None).unwrap();
    let mut resyncs = a.node.resyncs();
    resyncs.mark_unchanged();
    engine.lose_data();
    let ended = bounded("the end of the watch", watch.watch.next()).await;
    let Err(WatchError::EpochChanged { epoch }) = ended else {
        panic!("{ended:?}");
    };
    assert_eq!(Some(epoch), engine.entries().0);
    bounded("a re-read asked for", resyncs.changed())
        .await
        .unwrap();
    // The mirror is empty: the call is not there until an owner reports it again.
    let fresh = a.core.watch(WatchScope::All, None).unwrap();
    assert_eq!(fresh.snapshot.unwrap().len(), 0);
    assert_eq!(fresh.sequence, 0);
}

#[tokio::test(start_paused = true)]
async fn an_engine_that_is_down_is_said_so_and_recovers_by_itself() {
    let engine = Arc::new(MemoryEngine::default());
    let a = member(&engine).await;
    a.acquire().await;
    let mut resyncs = a.node.resyncs();
    resyncs.mark_unchanged();
    engine.set_available(false);
    let refused = a
        .core
        .mirror_call(
            NotificationType::StatusChange,
            call_of("agent1", "C1"),
            None,
        )
        .await;
    assert!(
        matches!(refused, Err(CoreError::Unavailable(_))),
        "{refused:?}"
    );
    assert!(!a.node.is_available());
    engine.set_available(true);
    bounded("a re-read asked for", resyncs.changed())
        .await
        .unwrap();
    assert!(a.node.is_available());
}

#[tokio::test(start_paused = true)]
async fn a_member_behind_a_trimmed_log_starts_at_its_oldest_entry() {
    let engine = Arc::new(MemoryEngine::new(2));
    let (epoch, _) = engine.open().await.unwrap();
    let grant = engine
        .acquire("agent1", "elsewhere", TTL)
        .await
        .unwrap()
        .unwrap();
    let event = Event::Call(Arc::new(crate::core::CallEvent {
        sequence: 0,
        notification: NotificationType::StatusChange,
        call: call_of("agent1", "C1"),
        digits: None,
        committed_at: std::time::SystemTime::now(),
    }));
    let payloads = vec![entry::encode(&event); 5];
    engine.append(&epoch, &grant, payloads).await.unwrap();
    // Entries 1 to 3 are gone: the member starts after them.
    let a = member(&engine).await;
    assert_eq!(a.core.log_position(), (epoch.as_str().into(), 5));
    let watch = a.core.watch(WatchScope::All, Some(ResumeAt::sequence(3)));
    assert!(watch.is_ok(), "4 and 5 are kept");
    let gone = a.core.watch(WatchScope::All, Some(ResumeAt::sequence(2)));
    assert!(gone.is_err(), "3 was trimmed before this member read it");
}

#[tokio::test(start_paused = true)]
async fn a_release_wakes_only_the_waiters_of_its_user_even_between_their_try_and_wait() {
    let engine = Arc::new(MemoryEngine::default());
    let (a, b) = (member(&engine).await, member(&engine).await);
    let other: Arc<str> = "agent2".into();
    let mut waiting = b.node.releases_of(&user());
    let mut waiting_other = b.node.releases_of(&other);
    waiting.mark_seen();
    waiting_other.mark_seen();
    assert!(a.acquire().await.is_some());
    assert!(
        a.node
            .acquire(&other, &CancellationToken::new())
            .await
            .unwrap()
            .is_some()
    );
    // Released before the waiter waits (after its try): not missed.
    a.node.release("agent1").await;
    bounded("agent1's release wakes its waiter", waiting.released()).await;
    assert!(
        // Within the lease TTL, so agent2's lease is still there to release below.
        tokio::time::timeout(TTL / 3, waiting_other.released())
            .await
            .is_err(),
        "agent1's release woke agent2's waiter"
    );
    a.node.release("agent2").await;
    bounded(
        "agent2's release wakes its waiter",
        waiting_other.released(),
    )
    .await;
    // The last watch of a user leaves nothing behind.
    drop((waiting, waiting_other));
    assert!(lock(&b.node.waiting).is_empty());
}
