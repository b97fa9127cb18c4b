//! Devices, agent states and supervisor monitoring over gRPC, watched on WatchDevices and
//! WatchCalls; and the refusals, each with nothing changed.

mod common;

use common::state::GatewayState;
use common::*;
use pb::CallState as S;
use tonic::Code;

fn user_state(device: &pb::Device) -> (String, String) {
    let state = device.user_state.clone().unwrap();
    (state.state, state.work_mode)
}

async fn device_watch(gw: &TestGateway, user: &str) -> tonic::Streaming<pb::WatchDevicesResponse> {
    let mut stream = gw
        .devices()
        .await
        .watch_devices(as_user(user, pb::WatchDevicesRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(device_snapshot(&mut stream).await.devices.len(), 1);
    stream
}

async fn call_watch(gw: &TestGateway, user: &str) -> tonic::Streaming<pb::WatchCallsResponse> {
    let mut stream = gw
        .calls()
        .await
        .watch_calls(as_user(user, pb::WatchCallsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    snapshot(&mut stream).await;
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_goes_ready_not_ready_after_call_work_ready() {
    let gw = TestGateway::spawn().await;
    let mut devices = gw.devices().await;
    let mut watch = device_watch(&gw, "agent1").await;
    let ready = pb::ReadyRequest {
        workmode: "ManualIn".into(),
    };
    devices.ready(as_user("agent1", ready)).await.unwrap();
    devices
        .not_ready(as_user("agent1", pb::NotReadyRequest {}))
        .await
        .unwrap();
    devices
        .after_call_work(as_user(
            "agent1",
            pb::AfterCallWorkRequest { wrap_up_time: 0 },
        ))
        .await
        .unwrap();
    devices
        .ready(as_user("agent1", pb::ReadyRequest::default()))
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let event = next_device_event(&mut watch).await;
        assert_eq!(event.phone_number, "15000");
        seen.push(user_state(&event.device.unwrap()));
    }
    let expect = |s: &str, w: &str| (s.to_owned(), w.to_owned());
    assert_eq!(
        seen,
        vec![
            expect("Ready", "ManualIn"),
            expect("NotReady", ""),
            expect("NotReady", "AfterCallWork"),
            expect("Ready", "")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_call_work_with_wrap_up_time_returns_to_ready() {
    let gw = TestGateway::spawn().await;
    let mut devices = gw.devices().await;
    let mut watch = device_watch(&gw, "agent1").await;
    let acw = pb::AfterCallWorkRequest { wrap_up_time: 1 };
    let device = devices
        .after_call_work(as_user("agent1", acw))
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap();
    assert_eq!(user_state(&device).1, "AfterCallWork");
    assert_eq!(
        user_state(&next_device_event(&mut watch).await.device.unwrap()).1,
        "AfterCallWork"
    );
    let back = next_device_event(&mut watch).await.device.unwrap();
    assert_eq!(user_state(&back), ("Ready".to_owned(), String::new()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn do_not_disturb_fails_calls_and_forwarding_rings_the_target() {
    let gw = TestGateway::spawn().await;
    let (mut calls, mut devices) = (gw.calls().await, gw.devices().await);
    let dnd = devices
        .do_not_disturb_on(as_user("agent2", pb::DoNotDisturbOnRequest::default()))
        .await
        .unwrap();
    let dnd = dnd.into_inner().device.unwrap();
    assert!(dnd.do_not_disturb && dnd.capabilities.contains(&"DoNotDisturbOff".to_owned()));
    let to_agent2 = || pb::DialRequest {
        destination: "15001".into(),
        ..Default::default()
    };
    let err = calls
        .dial(as_user("agent1", to_agent2()))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), gws_status(&err)),
        (Code::FailedPrecondition, 19)
    );
    assert!(err.message().contains("busy"), "{}", err.message());
    assert!(
        calls
            .list_calls(as_user("agent1", pb::ListCallsRequest {}))
            .await
            .unwrap()
            .into_inner()
            .calls
            .is_empty()
    );

    devices
        .do_not_disturb_off(as_user("agent2", pb::DoNotDisturbOffRequest::default()))
        .await
        .unwrap();
    let forward = pb::ForwardCallsOnRequest {
        destination: "15002".into(),
        ..Default::default()
    };
    let fwd = devices
        .forward_calls_on(as_user("agent2", forward))
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap();
    assert_eq!(fwd.forward_to, "15002");
    let mut agent3 = call_watch(&gw, "agent3").await;
    calls.dial(as_user("agent1", to_agent2())).await.unwrap();
    let ringing = next_event(&mut agent3).await.call.unwrap();
    assert_eq!(
        (ringing.state(), ringing.dnis.as_str()),
        (S::Ringing, "15001")
    );
    assert!(
        calls
            .list_calls(as_user("agent2", pb::ListCallsRequest {}))
            .await
            .unwrap()
            .into_inner()
            .calls
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_listens_in_barges_in_mutes_unmutes_and_cancels() {
    let gw = TestGateway::spawn().await;
    let (mut calls, mut devices) = (gw.calls().await, gw.devices().await);
    let id = established_call(&mut calls).await;
    let mut sup_devices = device_watch(&gw, "supervisor1").await;
    let mut sup_calls = call_watch(&gw, "supervisor1").await;
    let mut agent_calls = call_watch(&gw, "agent1").await;

    let agent1_device = devices
        .list_devices(as_user("agent1", pb::ListDevicesRequest {}))
        .await
        .unwrap();
    let target_id = agent1_device.into_inner().devices[0].id.clone();
    let target = pb::MonitorTarget {
        device_id: target_id.clone(),
        ..Default::default()
    };
    let device = devices
        .listen_in(as_user(
            "supervisor1",
            pb::ListenInRequest {
                target: Some(target.clone()),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap();
    let monitoring = device.supervisor_monitoring_state.clone().unwrap();
    assert_eq!(
        (
            monitoring.state.as_str(),
            monitoring.mode.as_str(),
            monitoring.scope.as_str()
        ),
        ("ListenIn", "AllCalls", "Call")
    );
    assert_eq!(monitoring.target_device_id, target_id);
    assert!(
        device
            .capabilities
            .contains(&"CancelSupervisorMonitoring".to_owned())
    );
    let event = next_device_event(&mut sup_devices).await.device.unwrap();
    assert_eq!(event.supervisor_monitoring_state.unwrap().state, "ListenIn");

    let leg = next_event(&mut sup_calls).await;
    assert_eq!(leg.notification_type(), pb::NotificationType::StatusChange);
    let leg = leg.call.unwrap();
    assert!(leg.monitoring && leg.muted && leg.id == id);
    assert!(leg.capabilities.contains(&"SwitchToBargeIn".to_owned()));
    let agent_view = next_event(&mut agent_calls).await.call.unwrap();
    assert!(agent_view.supervisor_listening_in);
    assert_eq!(agent_view.participants.len(), 1);

    let barged = calls
        .switch_to_barge_in(as_user(
            "supervisor1",
            pb::SwitchToBargeInRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .unwrap();
    assert!(!barged.into_inner().call.unwrap().muted);
    assert_eq!(
        next_device_event(&mut sup_devices)
            .await
            .device
            .unwrap()
            .supervisor_monitoring_state
            .unwrap()
            .state,
        "BargeIn"
    );
    let leg = next_event(&mut sup_calls).await;
    assert_eq!(
        (leg.notification_type(), leg.call.unwrap().muted),
        (pb::NotificationType::StatusChange, false)
    );
    let agent_view = next_event(&mut agent_calls).await;
    assert_eq!(
        agent_view.notification_type(),
        pb::NotificationType::ParticipantsUpdated
    );
    let agent_view = agent_view.call.unwrap();
    assert!(!agent_view.supervisor_listening_in);
    assert_eq!(agent_view.participants.len(), 2);

    calls
        .mute_monitored_user(as_user(
            "supervisor1",
            pb::MuteMonitoredUserRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .unwrap();
    let muted = next_event(&mut agent_calls).await;
    assert_eq!(
        muted.notification_type(),
        pb::NotificationType::MonitoredUserMutedStateChange
    );
    assert!(muted.call.unwrap().monitored_user_muted);
    calls
        .unmute_monitored_user(as_user(
            "supervisor1",
            pb::UnmuteMonitoredUserRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .unwrap();
    let unmuted = next_event(&mut agent_calls).await;
    assert_eq!(
        unmuted.notification_type(),
        pb::NotificationType::MonitoredUserMutedStateChange
    );
    assert!(!unmuted.call.unwrap().monitored_user_muted);

    let cancelled = devices
        .cancel_supervisor_monitoring(as_user(
            "supervisor1",
            pb::CancelSupervisorMonitoringRequest {},
        ))
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap();
    assert!(cancelled.supervisor_monitoring_state.is_none());
    assert!(
        next_device_event(&mut sup_devices)
            .await
            .device
            .unwrap()
            .supervisor_monitoring_state
            .is_none()
    );
    // The supervisor saw the mute changes on its leg, then its leg released.
    let mut last = next_event(&mut sup_calls).await;
    while last.call.as_ref().unwrap().state() != S::Released {
        last = next_event(&mut sup_calls).await;
    }
    let agent_view = next_event(&mut agent_calls).await.call.unwrap();
    assert_eq!(agent_view.participants.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_refusals_change_nothing() {
    let gw = TestGateway::spawn_with(|config| {
        config.users.push(voice_gateway::config::UserConfig {
            name: "basicsup".into(),
            first_name: String::new(),
            last_name: String::new(),
            contact_center: "basic".into(),
            phone_number: "16100".into(),
            password: Some("demo".into()),
            password_hash: None,
            roles: vec!["supervisor".into()],
        });
    })
    .await;
    let mut devices = gw.devices().await;
    let before = GatewayState::read(&gw).await;
    let by_number = |n: &str| pb::ListenInRequest {
        target: Some(pb::MonitorTarget {
            phone_number: n.into(),
            ..Default::default()
        }),
    };
    let err = devices
        .listen_in(as_user("agent2", by_number("15000")))
        .await
        .unwrap_err();
    assert_eq!((err.code(), gws_status(&err)), (Code::PermissionDenied, 5));
    before.assert_unchanged(&gw, "an agent's ListenIn").await;
    let err = devices
        .listen_in(as_user("basicsup", by_number("16000")))
        .await
        .unwrap_err();
    assert_eq!((err.code(), gws_status(&err)), (Code::PermissionDenied, 3));
    before
        .assert_unchanged(&gw, "ListenIn without the feature")
        .await;
    let unknown = pb::ListenInRequest {
        target: Some(pb::MonitorTarget {
            device_id: "no-such-device".into(),
            ..Default::default()
        }),
    };
    let err = devices
        .listen_in(as_user("supervisor1", unknown))
        .await
        .unwrap_err();
    assert_eq!((err.code(), gws_status(&err)), (Code::NotFound, 6));
    before
        .assert_unchanged(&gw, "ListenIn on an unknown device")
        .await;
    let bad_mode = pb::ListenInRequest {
        target: Some(pb::MonitorTarget {
            phone_number: "15000".into(),
            mode: "Sometimes".into(),
            ..Default::default()
        }),
    };
    let err = devices
        .listen_in(as_user("supervisor1", bad_mode))
        .await
        .unwrap_err();
    assert_eq!((err.code(), gws_status(&err)), (Code::InvalidArgument, 2));
    before
        .assert_unchanged(&gw, "ListenIn with a bad mode")
        .await;

    devices
        .listen_in(as_user("supervisor1", by_number("15000")))
        .await
        .unwrap();
    let listening = GatewayState::read(&gw).await;
    let err = devices
        .coach(as_user(
            "supervisor2",
            pb::CoachRequest {
                target: by_number("15000").target,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), gws_status(&err)),
        (Code::FailedPrecondition, 19)
    );
    listening
        .assert_unchanged(&gw, "a second supervisor's Coach")
        .await;
    let sup1 = listening
        .devices
        .iter()
        .find(|d| d.user_name == "supervisor1")
        .unwrap();
    assert_eq!(
        sup1.supervisor_monitoring_state.as_ref().unwrap().state,
        "ListenIn"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_refusals_change_nothing() {
    let gw = TestGateway::spawn().await;
    let mut devices = gw.devices().await;
    let before = GatewayState::read(&gw).await;
    let err = devices
        .ready(as_user(
            "agent1",
            pb::ReadyRequest {
                workmode: "Turbo".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!((err.code(), gws_status(&err)), (Code::InvalidArgument, 2));
    before
        .assert_unchanged(&gw, "Ready with a bad workmode")
        .await;
    let other = pb::DoNotDisturbOnRequest {
        device_id: "not-my-device".into(),
    };
    let err = devices
        .do_not_disturb_on(as_user("agent1", other))
        .await
        .unwrap_err();
    assert_eq!((err.code(), gws_status(&err)), (Code::NotFound, 6));
    before
        .assert_unchanged(&gw, "DoNotDisturbOn on no device")
        .await;
    let err = devices
        .forward_calls_on(as_user("agent1", pb::ForwardCallsOnRequest::default()))
        .await
        .unwrap_err();
    assert_eq!((err.code(), gws_status(&err)), (Code::InvalidArgument, 1));
    before
        .assert_unchanged(&gw, "ForwardCallsOn without a number")
        .await;
    let err = devices
        .forward_calls_off(as_user("agent1", pb::ForwardCallsOffRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), gws_status(&err)),
        (Code::FailedPrecondition, 2)
    );
    before
        .assert_unchanged(&gw, "ForwardCallsOff when not forwarding")
        .await;
    let err = devices
        .start_contact_center_session(as_user(
            "agent1",
            pb::StartContactCenterSessionRequest {
                channels: vec![],
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!((err.code(), gws_status(&err)), (Code::InvalidArgument, 1));
    before
        .assert_unchanged(&gw, "StartContactCenterSession without channels")
        .await;
}

/// agent1 names agent2's real device id: refused as if it did not exist (no probing of
/// another agent's devices), and agent2's device is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_agents_real_device_is_refused() {
    let gw = TestGateway::spawn().await;
    let mut devices = gw.devices().await;
    let agent2_device = devices
        .list_devices(as_user("agent2", pb::ListDevicesRequest {}))
        .await
        .unwrap()
        .into_inner()
        .devices[0]
        .id
        .clone();
    let before = GatewayState::read(&gw).await;
    let err = devices
        .do_not_disturb_on(as_user(
            "agent1",
            pb::DoNotDisturbOnRequest {
                device_id: agent2_device.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), gws_status(&err)),
        (Code::NotFound, 6),
        "{err:?}"
    );
    before
        .assert_unchanged(&gw, "DoNotDisturbOn on agent2's device")
        .await;
    let forward = pb::ForwardCallsOnRequest {
        device_id: agent2_device.clone(),
        destination: "15002".into(),
    };
    let err = devices
        .forward_calls_on(as_user("agent1", forward))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), gws_status(&err)),
        (Code::NotFound, 6),
        "{err:?}"
    );
    before
        .assert_unchanged(&gw, "ForwardCallsOn on agent2's device")
        .await;
    // The same requests on agent2's own device work: the id was real.
    let own = pb::DoNotDisturbOnRequest {
        device_id: agent2_device,
    };
    devices
        .do_not_disturb_on(as_user("agent2", own))
        .await
        .unwrap();
}

/// A WatchDevices resumed after a noted event gets every later event of the user, in
/// order, none twice, then new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_watch_resumes_after_a_noted_event() {
    let gw = TestGateway::spawn().await;
    let mut devices = gw.devices().await;
    let mut watch = device_watch(&gw, "agent1").await;
    let ready = || pb::ReadyRequest {
        workmode: "ManualIn".into(),
    };
    devices.ready(as_user("agent1", ready())).await.unwrap();
    let noted = next_device_event(&mut watch).await;
    drop(watch);
    // Missed while disconnected: NotReady, do-not-disturb on (agent1), and agent2 going
    // Ready, which agent1's watch must not get.
    devices
        .not_ready(as_user("agent1", pb::NotReadyRequest {}))
        .await
        .unwrap();
    devices.ready(as_user("agent2", ready())).await.unwrap();
    devices
        .do_not_disturb_on(as_user("agent1", pb::DoNotDisturbOnRequest::default()))
        .await
        .unwrap();
    let mut resumed = devices
        .watch_devices(as_user(
            "agent1",
            pb::WatchDevicesRequest {
                from_sequence: Some(noted.sequence),
                contact_center: false,
                epoch: noted.epoch.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let not_ready = next_device_event(&mut resumed).await;
    assert_eq!(not_ready.sequence, noted.sequence + 1, "no gap, no repeat");
    assert_eq!(user_state(not_ready.device.as_ref().unwrap()).0, "NotReady");
    let dnd = next_device_event(&mut resumed).await;
    // agent2's event came between: its sequence was skipped, not delivered.
    assert_eq!(dnd.sequence, noted.sequence + 3, "{dnd:?}");
    assert!(dnd.device.as_ref().unwrap().do_not_disturb);
    assert_eq!(dnd.epoch, noted.epoch);
    // Then live events follow on the same stream.
    devices.ready(as_user("agent1", ready())).await.unwrap();
    let live = next_device_event(&mut resumed).await;
    assert_eq!(live.sequence, dnd.sequence + 1);
    assert_eq!(user_state(live.device.as_ref().unwrap()).0, "Ready");
}
