//! Resume across a restart, tried as a client would: watch the real gateway binary, note a
//! sequence, restart the gateway on the same ports, let it commit a few events, and resume
//! with the old epoch and sequence: OUT_OF_RANGE saying to resync, and the resync (a watch
//! without from_sequence) gets the new process's snapshot. For WatchCalls and WatchDevices.

mod common;

use common::binary::Binary as Gateway;
use common::{as_user, device_snapshot, next_device_event, next_event, pb, snapshot};
use tonic::Code;

/// agent1 dials agent2 (15001): events for both.
async fn dial(gw: &Gateway) -> String {
    let dial = pb::DialRequest {
        destination: "15001".into(),
        ..Default::default()
    };
    let reply = gw
        .calls()
        .await
        .dial(as_user("agent1", dial))
        .await
        .unwrap();
    reply.into_inner().call.unwrap().id
}

fn watch_calls(from: Option<u64>, epoch: &str) -> tonic::Request<pb::WatchCallsRequest> {
    as_user(
        "agent1",
        pb::WatchCallsRequest {
            from_sequence: from,
            epoch: epoch.into(),
            ..Default::default()
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_watch_resumed_across_a_restart_is_told_to_resync() {
    let mut gw = Gateway::launch().one_port().start().await;
    let mut watch = gw
        .calls()
        .await
        .watch_calls(watch_calls(None, ""))
        .await
        .unwrap()
        .into_inner();
    let first = snapshot(&mut watch).await;
    assert_eq!(first.epoch.len(), 32, "a random id: {:?}", first.epoch);
    let old_call = dial(&gw).await;
    let event = next_event(&mut watch).await;
    assert_eq!(event.epoch, first.epoch, "every event names its stream");
    let noted = event.sequence;
    drop(watch);

    gw.restart().await;
    // The new process commits at least as many events as the old one had, so the old
    // sequence is a valid position in the new stream and only the epoch can tell them apart.
    let mut new_calls = Vec::new();
    for _ in 0..2 {
        new_calls.push(dial(&gw).await);
    }
    let mut client = gw.calls().await;
    let refused = client
        .watch_calls(watch_calls(Some(noted), &first.epoch))
        .await
        .expect_err("a resume against the old epoch is refused");
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
    assert!(refused.message().contains("resync"), "{refused:?}");

    // The resync: a new watch without from_sequence gets the new process's snapshot.
    let mut watch = client
        .watch_calls(watch_calls(None, ""))
        .await
        .unwrap()
        .into_inner();
    let resync = snapshot(&mut watch).await;
    assert_ne!(resync.epoch, first.epoch, "a new process, a new epoch");
    assert!(resync.sequence >= noted, "{} < {noted}", resync.sequence);
    let mut ids: Vec<String> = resync.calls.iter().map(|c| c.id.clone()).collect();
    ids.sort();
    new_calls.sort();
    assert_eq!(ids, new_calls, "the new process's calls only");
    assert!(!ids.contains(&old_call));

    // The new epoch resumes; an epoch-less resume (older clients) is accepted unchecked.
    let next = dial(&gw).await;
    for epoch in [resync.epoch.as_str(), ""] {
        let mut resumed = client
            .watch_calls(watch_calls(Some(resync.sequence), epoch))
            .await
            .unwrap()
            .into_inner();
        let event = next_event(&mut resumed).await;
        assert_eq!(event.sequence, resync.sequence + 1);
        assert_eq!(event.call.unwrap().id, next);
        assert_eq!(event.epoch, resync.epoch);
    }
}

fn watch_devices(from: Option<u64>, epoch: &str) -> tonic::Request<pb::WatchDevicesRequest> {
    as_user(
        "agent1",
        pb::WatchDevicesRequest {
            from_sequence: from,
            epoch: epoch.into(),
            ..Default::default()
        },
    )
}

/// agent1 goes Ready then NotReady: two device events.
async fn toggle_state(gw: &Gateway) {
    let mut devices = gw.devices().await;
    let ready = pb::ReadyRequest {
        workmode: "ManualIn".into(),
    };
    devices.ready(as_user("agent1", ready)).await.unwrap();
    devices
        .not_ready(as_user("agent1", pb::NotReadyRequest {}))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_watch_resumed_across_a_restart_is_told_to_resync() {
    let mut gw = Gateway::launch().one_port().start().await;
    let mut watch = gw
        .devices()
        .await
        .watch_devices(watch_devices(None, ""))
        .await
        .unwrap()
        .into_inner();
    let first = device_snapshot(&mut watch).await;
    toggle_state(&gw).await;
    let event = next_device_event(&mut watch).await;
    assert_eq!(event.epoch, first.epoch, "every event names its stream");
    let noted = event.sequence;
    drop(watch);

    gw.restart().await;
    toggle_state(&gw).await;
    let mut client = gw.devices().await;
    let refused = client
        .watch_devices(watch_devices(Some(noted), &first.epoch))
        .await
        .expect_err("a resume against the old epoch is refused");
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
    assert!(refused.message().contains("resync"), "{refused:?}");

    let mut watch = client
        .watch_devices(watch_devices(None, ""))
        .await
        .unwrap()
        .into_inner();
    let resync = device_snapshot(&mut watch).await;
    assert_ne!(resync.epoch, first.epoch);
    assert!(resync.sequence >= noted, "{} < {noted}", resync.sequence);
    let state = resync.devices[0].user_state.clone().unwrap();
    assert_eq!(state.state, "NotReady", "the new process's state");
    toggle_state(&gw).await;
    let event = next_device_event(&mut watch).await;
    assert_eq!(
        (event.sequence, event.epoch),
        (resync.sequence + 1, resync.epoch)
    );
}
