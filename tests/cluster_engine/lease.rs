//! The leases: a lost lease fences its holder's appends, renewals and releases; a
//! re-acquired or handed-off lease fences the old grant; users' leases are independent.

use std::time::Duration;

use voice_gateway::cluster::{EngineError, LeaseTable as _, SharedLog as _};

use crate::common::redis::RedisServer;
use crate::helpers::{engine, grant, until};

#[tokio::test]
async fn a_lost_lease_fences_its_appends_renewals_and_releases() {
    let server = RedisServer::start().await;
    let (a, b) = (engine(&server), engine(&server));
    let (epoch, _) = a.open().await.expect("open");

    let short = a
        .acquire("agent1", "instance-a", Duration::from_millis(200))
        .await
        .expect("acquire")
        .expect("free");
    assert_eq!(
        b.holder("agent1").await.expect("holder"),
        Some(short.clone())
    );
    assert_eq!(
        b.acquire("agent1", "instance-b", Duration::from_secs(30))
            .await
            .expect("acquire"),
        None
    );
    assert_eq!(
        a.append(&epoch, &short, vec![b"one".to_vec()])
            .await
            .expect("append"),
        vec![1]
    );

    // The lease expires (A was paused); B takes it over with a larger fence.
    let taken = until("the lease expires and B takes it", || {
        let b = b.clone();
        async move {
            b.acquire("agent1", "instance-b", Duration::from_secs(30))
                .await
                .expect("acquire")
        }
    })
    .await;
    assert!(taken.fence > short.fence, "{taken:?} after {short:?}");
    let refused = a.append(&epoch, &short, vec![b"stale".to_vec()]).await;
    assert_eq!(
        refused,
        Err(EngineError::Fenced {
            user: "agent1".into(),
            fence: short.fence
        })
    );
    assert!(
        matches!(
            a.append(&epoch, &short, Vec::new()).await,
            Err(EngineError::Fenced { .. })
        ),
        "an empty append checks the fence too"
    );
    assert!(
        !a.renew(&short, Duration::from_secs(30))
            .await
            .expect("renew"),
        "a lost grant is not renewed"
    );
    a.release(&short).await.expect("release");
    assert_eq!(
        b.holder("agent1").await.expect("holder"),
        Some(taken.clone()),
        "A released nothing of B's"
    );
    assert_eq!(
        b.append(&epoch, &taken, vec![b"two".to_vec()])
            .await
            .expect("append"),
        vec![2]
    );
    let entries = a.read(&epoch, 0, 10, Duration::ZERO).await.expect("read");
    let payloads: Vec<&[u8]> = entries.iter().map(|e| e.payload.as_slice()).collect();
    assert_eq!(
        payloads,
        [&b"one"[..], b"two"],
        "the fenced append wrote nothing"
    );

    // The holder itself re-acquiring gets a new fence, which fences its own old grant.
    assert!(
        b.renew(&taken, Duration::from_secs(30))
            .await
            .expect("renew")
    );
    let again = grant(&b, "agent1", "instance-b").await;
    assert!(again.fence > taken.fence);
    assert!(matches!(
        b.append(&epoch, &taken, vec![b"x".to_vec()]).await,
        Err(EngineError::Fenced { .. })
    ));

    // A graceful hand-off: released, then another holder acquires at once.
    b.release(&again).await.expect("release");
    assert_eq!(a.holder("agent1").await.expect("holder"), None);
    let handed = grant(&a, "agent1", "instance-a").await;
    assert!(handed.fence > again.fence);
    assert!(matches!(
        b.append(&epoch, &again, vec![b"x".to_vec()]).await,
        Err(EngineError::Fenced { .. })
    ));
    // Another user's lease is another key: no interference.
    assert!(
        b.acquire("agent2", "instance-b", Duration::from_secs(30))
            .await
            .expect("acquire")
            .is_some()
    );
}
