//! The device side with the real CometD JavaScript client 9.0 in Node, over long-polling and
//! WebSocket: desktops log in over JSON, the client (`tests/interop/cometd9/listen.mjs`)
//! handshakes with the session cookie and subscribes to `/v2/me/devices`,
//! `/v2/me/channels` and `/v2/me/calls`; the test drives agent states, do-not-disturb and
//! supervisor monitoring over gRPC and checks every message each desktop receives, in
//! order, and that nothing else arrives.

mod cometd_support;
mod common;

use cometd_support::node::NodeClient;
use common::TestGateway;
use common::desktop::Agent;
use common::{as_user, pb};
use serde_json::{Value, json};

const ALL: &str = "/v2/me/devices,/v2/me/channels,/v2/me/calls";

async fn gateway() -> TestGateway {
    TestGateway::spawn_with(|c| {
        c.cometd.timeout_ms = 2_000;
        c.cometd.max_interval_ms = 5_000;
    })
    .await
}

/// Starts a CometD JS 9 client for a logged-in desktop and waits until it is subscribed.
async fn listen(gw: &TestGateway, desktop: &Agent, transport: &str) -> NodeClient {
    let url = gw.http_url();
    let args = [&*url, transport, &desktop.jsessionid, ALL];
    let mut node = NodeClient::start("cometd9", "listen.mjs", &args);
    let ready = node.expect("READY").await;
    assert_eq!(ready["transport"], transport, "{ready}");
    node
}

/// Reads the next message, which must be on `channel` with `messageType`; returns its data.
async fn next(node: &mut NodeClient, channel: &str, message_type: &str) -> Value {
    let message = node.message().await;
    assert_eq!(message["channel"], channel, "{}: {message}", node.name);
    assert_eq!(
        message["data"]["messageType"], message_type,
        "{}: {message}",
        node.name
    );
    message["data"].clone()
}

/// Reads a DeviceStateChangeMessage; returns its one device.
async fn device_message(node: &mut NodeClient) -> Value {
    let data = next(node, "/v2/me/devices", "DeviceStateChangeMessage").await;
    assert!(data.get("notificationType").is_none(), "{data}");
    let devices = data["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1, "{data}");
    devices[0].clone()
}

/// Reads a ChannelStateChangeMessageV2; returns its one (voice) channel.
async fn channel_message(node: &mut NodeClient) -> Value {
    let data = next(node, "/v2/me/channels", "ChannelStateChangeMessageV2").await;
    let channels = data["channels"].as_array().unwrap();
    assert_eq!(channels.len(), 1, "{data}");
    assert_eq!(channels[0]["channel"], "voice");
    channels[0].clone()
}

/// Reads a CallStateChangeMessage with `notificationType`; returns the call.
async fn call_message(node: &mut NodeClient, notification: &str) -> Value {
    let data = next(node, "/v2/me/calls", "CallStateChangeMessage").await;
    assert_eq!(data["notificationType"], notification, "{data}");
    data["call"].clone()
}

/// Reads the device and channel messages of an agent-state change; checks they agree with
/// each other and with `GET /api/v2/me/devices`, and returns the userState.
async fn agent_state(node: &mut NodeClient, desktop: &Agent, dnd: &str) -> Value {
    let device = device_message(node).await;
    let channel = channel_message(node).await;
    assert_eq!(device, desktop.device().await.1);
    assert_eq!(channel["userState"], device["userState"]);
    assert_eq!(
        (&channel["dndState"], &device["doNotDisturb"]),
        (&json!(dnd), &json!(dnd))
    );
    device["userState"].clone()
}

fn user_state(id: &str, display: &str, state: &str, work_mode: Option<&str>) -> Value {
    let mut value = json!({"id": id, "displayName": display, "state": state});
    if let Some(mode) = work_mode {
        value["workMode"] = json!(mode);
    }
    value
}

async fn agent_states_and_dnd(transport: &str) {
    let gw = gateway().await;
    let desktop = Agent::login(&gw.http_url(), "agent1").await;
    let mut node = listen(&gw, &desktop, transport).await;
    let mut devices = gw.devices().await;
    const READY: &str = "9430250E-0A1B-421F-B372-F29E69366DED";

    let ready = pb::ReadyRequest {
        workmode: "ManualIn".into(),
    };
    devices.ready(agent1_req(ready)).await.unwrap();
    assert_eq!(
        agent_state(&mut node, &desktop, "Off").await,
        user_state(READY, "Ready", "Ready", Some("ManualIn"))
    );
    devices
        .not_ready(agent1_req(pb::NotReadyRequest {}))
        .await
        .unwrap();
    assert_eq!(
        agent_state(&mut node, &desktop, "Off").await,
        user_state(
            "900D55CC-2BB0-431F-8BF9-D3525B383BE6",
            "Not Ready",
            "NotReady",
            None
        )
    );
    let acw = pb::AfterCallWorkRequest { wrap_up_time: 0 };
    devices.after_call_work(agent1_req(acw)).await.unwrap();
    assert_eq!(
        agent_state(&mut node, &desktop, "Off").await,
        user_state(
            "D3663509-3D82-4DD3-A82E-2EA8EFA02AEF",
            "After Call Work",
            "NotReady",
            Some("AfterCallWork")
        )
    );
    devices
        .ready(agent1_req(pb::ReadyRequest::default()))
        .await
        .unwrap();
    let ready_state = user_state(READY, "Ready", "Ready", None);
    assert_eq!(agent_state(&mut node, &desktop, "Off").await, ready_state);

    devices
        .do_not_disturb_on(agent1_req(pb::DoNotDisturbOnRequest::default()))
        .await
        .unwrap();
    assert_eq!(agent_state(&mut node, &desktop, "On").await, ready_state);
    devices
        .do_not_disturb_off(agent1_req(pb::DoNotDisturbOffRequest::default()))
        .await
        .unwrap();
    assert_eq!(agent_state(&mut node, &desktop, "Off").await, ready_state);
    assert_eq!(node.finish().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cometd9_agent_states_and_dnd_long_polling() {
    agent_states_and_dnd("long-polling").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cometd9_agent_states_and_dnd_websocket() {
    agent_states_and_dnd("websocket").await;
}

async fn supervisor_monitoring(transport: &str) {
    let gw = gateway().await;
    let agent1 = Agent::login(&gw.http_url(), "agent1").await;
    let supervisor = Agent::login(&gw.http_url(), "supervisor1").await;
    let call = gw.established_call("agent1", "agent2", "15001").await;
    let mut agent_node = listen(&gw, &agent1, transport).await;
    let mut sup_node = listen(&gw, &supervisor, transport).await;
    let (mut devices, mut calls) = (gw.devices().await, gw.calls().await);
    let (agent_device, _) = agent1.device().await;

    // ListenIn: the supervisor's device shows the monitoring, then its leg appears muted.
    let target = pb::MonitorTarget {
        device_id: agent_device.clone(),
        ..Default::default()
    };
    let listen_in = pb::ListenInRequest {
        target: Some(target),
    };
    devices.listen_in(supervisor1_req(listen_in)).await.unwrap();
    let device = device_message(&mut sup_node).await;
    assert_eq!(
        device["supervisorMonitoringState"],
        json!({"state": "ListenIn", "mode": "AllCalls", "scope": "Call",
               "targetDeviceUri": format!("{}/api/v2/devices/{agent_device}", gw.http_url())})
    );
    assert!(has(&device["capabilities"], "CancelSupervisorMonitoring"));
    assert_eq!(device, supervisor.device().await.1);
    let leg = call_message(&mut sup_node, "StatusChange").await;
    assert_eq!(
        (&leg["id"], &leg["monitoring"]),
        (&json!(call), &json!(true))
    );
    assert_eq!(leg["mute"], "On");
    assert!(has(&leg["capabilities"], "SwitchToBargeIn"));
    let seen = call_message(&mut agent_node, "StatusChange").await;
    assert_eq!(seen["id"], call.as_str());
    assert_eq!(seen["supervisorListeningIn"], true);
    assert_eq!(seen["participants"].as_array().unwrap().len(), 1);

    // SwitchToBargeIn: the supervisor is heard; agent1 sees a new participant.
    let on_call = || pb::SwitchToBargeInRequest {
        call_id: call.clone(),
    };
    calls
        .switch_to_barge_in(supervisor1_req(on_call()))
        .await
        .unwrap();
    let device = device_message(&mut sup_node).await;
    assert_eq!(device["supervisorMonitoringState"]["state"], "BargeIn");
    let leg = call_message(&mut sup_node, "StatusChange").await;
    assert_eq!(
        (&leg["monitoring"], &leg["mute"]),
        (&json!(true), &json!("Off"))
    );
    let seen = call_message(&mut agent_node, "ParticipantsUpdated").await;
    assert_eq!(seen["supervisorListeningIn"], false);
    assert_eq!(seen["participants"].as_array().unwrap().len(), 2);

    // MuteMonitoredUser / UnmuteMonitoredUser.
    for (muted, request) in [(true, "mute"), (false, "unmute")] {
        if muted {
            let mute = pb::MuteMonitoredUserRequest {
                call_id: call.clone(),
            };
            calls
                .mute_monitored_user(supervisor1_req(mute))
                .await
                .unwrap();
        } else {
            let unmute = pb::UnmuteMonitoredUserRequest {
                call_id: call.clone(),
            };
            calls
                .unmute_monitored_user(supervisor1_req(unmute))
                .await
                .unwrap();
        }
        let seen = call_message(&mut agent_node, "MonitoredUserMutedStateChange").await;
        assert_eq!(seen["monitoredUserMuted"], muted, "{request}");
        assert_eq!(seen["id"], call.as_str());
        let leg = call_message(&mut sup_node, "MonitoredUserMutedStateChange").await;
        assert_eq!(leg["monitoredUserMuted"], muted, "{request}");
    }

    // CancelSupervisorMonitoring: the monitoring goes, the supervisor's leg is released.
    let cancel = pb::CancelSupervisorMonitoringRequest {};
    devices
        .cancel_supervisor_monitoring(supervisor1_req(cancel))
        .await
        .unwrap();
    let device = device_message(&mut sup_node).await;
    assert!(
        device.get("supervisorMonitoringState").is_none(),
        "{device}"
    );
    assert!(has(&device["capabilities"], "ListenIn"));
    let leg = call_message(&mut sup_node, "StatusChange").await;
    assert_eq!(leg["state"], "Released");
    let seen = call_message(&mut agent_node, "ParticipantsUpdated").await;
    assert_eq!(seen["participants"].as_array().unwrap().len(), 1);
    assert_eq!(seen["state"], "Established");

    // Nothing else reached either desktop (no device message for the monitored agent).
    assert_eq!(sup_node.finish().await, Vec::<String>::new());
    assert_eq!(agent_node.finish().await, Vec::<String>::new());
}

fn agent1_req<T>(message: T) -> tonic::Request<T> {
    as_user("agent1", message)
}

fn supervisor1_req<T>(message: T) -> tonic::Request<T> {
    as_user("supervisor1", message)
}

fn has(list: &Value, name: &str) -> bool {
    list.as_array().unwrap().contains(&json!(name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cometd9_supervisor_monitoring_long_polling() {
    supervisor_monitoring("long-polling").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cometd9_supervisor_monitoring_websocket() {
    supervisor_monitoring("websocket").await;
}
