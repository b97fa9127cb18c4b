//! Wire tests of the device side of `/api/v2/notifications` with raw long-polling requests:
//! DeviceStateChangeMessage on `/v2/me/devices` (the device exactly as the JSON API's GET
//! shows it) and ChannelStateChangeMessageV2 on `/v2/me/channels`, driven over gRPC.

mod cometd_support;
mod common;

use cometd_support::{LpClient, split};
use common::TestGateway;
use common::basic;
use common::desktop::Agent;
use common::{as_user, pb};
use serde_json::{Value, json};

/// Connects until `count` events arrived (the bridge may still be dispatching when the
/// first connect is answered); returns them in order.
async fn events(client: &mut LpClient, count: usize) -> Vec<Value> {
    let mut all = Vec::new();
    while all.len() < count {
        let (events, reply) = split(&client.connect(None, None).await);
        assert_eq!(reply["successful"], true, "{reply}");
        assert!(!events.is_empty(), "no event within the timeout: {all:?}");
        all.extend(events);
    }
    assert_eq!(all.len(), count, "{all:?}");
    all
}

/// Proves that nothing more was queued for `client` (of `user`): `user` changes its
/// forwarding (on to 15100, or off when `forwarding`), a change later in the gateway's
/// stream than anything before it, and that change's device message must be the next and
/// only message.
async fn nothing_more(gw: &TestGateway, client: &mut LpClient, user: &str, forwarding: bool) {
    let mut devices = gw.devices().await;
    if forwarding {
        let off = pb::ForwardCallsOffRequest::default();
        devices.forward_calls_off(as_user(user, off)).await.unwrap();
    } else {
        let on = pb::ForwardCallsOnRequest {
            destination: "15100".into(),
            ..Default::default()
        };
        devices.forward_calls_on(as_user(user, on)).await.unwrap();
    }
    let marker = client
        .connect_until(|e| {
            let to = &e["data"]["devices"][0]["forwardTo"];
            e["channel"] == "/v2/me/devices"
                && if forwarding {
                    to.is_null()
                } else {
                    to == "15100"
                }
        })
        .await;
    assert_eq!(marker.len(), 1, "more was delivered: {marker:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_states_go_on_devices_and_channels_as_the_json_api_shows_the_device() {
    let gw = TestGateway::spawn().await;
    let desktop = Agent::login(&gw.http_url(), "agent1").await;
    let mut client = LpClient::new(&gw, Some(basic("agent1")));
    client.ready("/v2/me/devices").await;
    assert_eq!(
        client.subscribe(json!("/v2/me/channels")).await["successful"],
        true
    );
    let mut devices = gw.devices().await;
    let ready = pb::ReadyRequest {
        workmode: "ManualIn".into(),
    };
    devices.ready(as_user("agent1", ready)).await.unwrap();
    let got = events(&mut client, 2).await;

    let (id, device) = desktop.device().await;
    assert_eq!(
        desktop.get_ok(&format!("/api/v2/me/devices/{id}")).await["device"],
        device
    );
    let user_state = json!({"id": "9430250E-0A1B-421F-B372-F29E69366DED",
        "displayName": "Ready", "state": "Ready", "workMode": "ManualIn"});
    assert_eq!(device["userState"], user_state);
    assert_eq!(
        got,
        vec![
            json!({"channel": "/v2/me/devices", "data": {
                "messageType": "DeviceStateChangeMessage", "devices": [device]}}),
            json!({"channel": "/v2/me/channels", "data": {
                "messageType": "ChannelStateChangeMessageV2",
                "channels": [{"channel": "voice", "dndState": "Off", "userState": user_state}]}}),
        ]
    );
    assert_eq!(device["phoneNumber"], "15000");
    assert_eq!(device["deviceState"], "Active");
    assert_eq!(
        device["uri"],
        format!("{}/api/v2/me/devices/{id}", gw.http_url())
    );

    devices
        .after_call_work(as_user(
            "agent1",
            pb::AfterCallWorkRequest { wrap_up_time: 0 },
        ))
        .await
        .unwrap();
    let got = events(&mut client, 2).await;
    let acw = json!({"id": "D3663509-3D82-4DD3-A82E-2EA8EFA02AEF",
        "displayName": "After Call Work", "state": "NotReady", "workMode": "AfterCallWork"});
    assert_eq!(got[0]["data"]["devices"][0]["userState"], acw);
    assert_eq!(got[1]["data"]["channels"][0]["userState"], acw);
    assert_eq!(
        got[0]["data"]["devices"][0],
        desktop.device().await.1,
        "the notification and the JSON GET agree"
    );
    nothing_more(&gw, &mut client, "agent1", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_get_each_device_message_once_and_forwarding_is_not_a_channel_change() {
    let gw = TestGateway::spawn().await;
    let mut client = LpClient::new(&gw, Some(basic("agent2")));
    client.ready("/v2/me/*").await;
    let more = client
        .subscribe(json!(["/v2/me/**", "/v2/me/devices", "/v2/me/channels"]))
        .await;
    assert_eq!(more["successful"], true, "{more}");
    let mut devices = gw.devices().await;
    devices
        .do_not_disturb_on(as_user("agent2", pb::DoNotDisturbOnRequest::default()))
        .await
        .unwrap();
    let got = events(&mut client, 2).await;
    let channels: Vec<&Value> = got.iter().map(|e| &e["channel"]).collect();
    assert_eq!(channels, vec!["/v2/me/devices", "/v2/me/channels"]);
    let device = &got[0]["data"]["devices"][0];
    assert_eq!(device["doNotDisturb"], "On");
    assert!(
        device["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("DoNotDisturbOff"))
    );
    assert_eq!(got[1]["data"]["channels"][0]["dndState"], "On");
    assert_eq!(
        got[1]["data"]["channels"][0]["userState"],
        device["userState"]
    );

    let forward = pb::ForwardCallsOnRequest {
        destination: "15002".into(),
        ..Default::default()
    };
    devices
        .forward_calls_on(as_user("agent2", forward))
        .await
        .unwrap();
    let got = events(&mut client, 1).await;
    assert_eq!(got[0]["channel"], "/v2/me/devices");
    assert_eq!(got[0]["data"]["messageType"], "DeviceStateChangeMessage");
    assert!(got[0]["data"].get("notificationType").is_none());
    assert_eq!(got[0]["data"]["devices"][0]["forwardTo"], "15002");
    nothing_more(&gw, &mut client, "agent2", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_device_changes_are_never_delivered() {
    let gw = TestGateway::spawn().await;
    let mut agent1 = LpClient::new(&gw, Some(basic("agent1")));
    agent1.ready("/v2/me/**").await;
    let mut agent3 = LpClient::new(&gw, Some(basic("agent3")));
    agent3.ready("/v2/me/**").await;
    let mut devices = gw.devices().await;
    devices
        .do_not_disturb_on(as_user("agent3", pb::DoNotDisturbOnRequest::default()))
        .await
        .unwrap();
    let mine = events(&mut agent3, 2).await;
    assert!(mine.iter().all(|e| {
        e["channel"] == "/v2/me/channels" || e["data"]["devices"][0]["phoneNumber"] == "15002"
    }));
    nothing_more(&gw, &mut agent1, "agent1", false).await;
}
