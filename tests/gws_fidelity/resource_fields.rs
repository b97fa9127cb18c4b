//! Point 3: a call from outside carries `ani`, its outside participant `country` and
//! `location`, and a device its `voiceEnvironmentUri`; the same on the JSON API and gRPC.

use serde_json::json;
use voice_gateway::grpc::pb;

use crate::common::TestGateway;
use crate::common::desktop::Agent;
use crate::support::as_user;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_call_has_ani_and_a_located_caller_and_devices_a_voice_environment() {
    let gw = TestGateway::spawn().await;
    let mut sim = pb::simulator_service_client::SimulatorServiceClient::connect(format!(
        "http://{}",
        gw.grpc_addr
    ))
    .await
    .unwrap();
    let inbound = sim
        .inbound_call(as_user(
            "admin",
            pb::InboundCallRequest {
                from: "9165550104".into(),
                to: "15001".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("an inbound call")
        .into_inner()
        .call
        .unwrap();
    assert_eq!(inbound.ani, "9165550104");
    let caller = &inbound.participants[0];
    assert_eq!(caller.e164_number, "+19165550104");
    assert_eq!(
        caller.country,
        Some(pb::Country {
            name: "United States of America".into(),
            code: "US".into(),
            calling_code: "1".into(),
        })
    );
    assert_eq!(caller.location, "United States of America");

    let agent2 = Agent::login(&gw.http_url(), "agent2").await;
    let call = agent2
        .get_ok(&format!("/api/v2/me/calls/{}", inbound.id))
        .await;
    let call = &call["call"];
    assert_eq!(call["ani"], "9165550104");
    assert_eq!(
        call["participants"][0]["location"],
        "United States of America"
    );
    assert_eq!(
        call["participants"][0]["country"],
        json!({"name": "United States of America", "code": "US", "callingCode": "1"})
    );

    // An internal call has no ANI, and its internal party no country.
    let internal = gw.established_call("agent1", "agent3", "15002").await;
    let agent1 = Agent::login(&gw.http_url(), "agent1").await;
    let call = agent1
        .get_ok(&format!("/api/v2/me/calls/{}", internal.as_str()))
        .await;
    assert!(call["call"].get("ani").is_none(), "{call}");
    let party = &call["call"]["participants"][0];
    assert!(party.get("country").is_none() && party.get("location").is_none());

    // Devices name their voice environment, the same on both fronts.
    let (_, device) = agent2.device().await;
    let uri = device["voiceEnvironmentUri"]
        .as_str()
        .expect("a voiceEnvironmentUri");
    let mut devices = gw.devices().await;
    let listed = devices
        .list_devices(as_user("agent2", pb::ListDevicesRequest {}))
        .await
        .unwrap()
        .into_inner();
    let id = &listed.devices[0].voice_environment_id;
    assert!(!id.is_empty());
    assert_eq!(
        uri,
        format!("{}/api/v2/voice-environments/{id}", gw.http_url())
    );
    // One switch per contact center: agent1 is on the same one, basic1 on another.
    let (_, agent1_device) = agent1.device().await;
    assert_eq!(agent1_device["voiceEnvironmentUri"], uri);
    let basic = devices
        .list_devices(as_user("basic1", pb::ListDevicesRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(&basic.devices[0].voice_environment_id, id);
}
