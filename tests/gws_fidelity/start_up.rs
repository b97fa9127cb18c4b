//! Point 4: a desktop's start-up reads (`subresources=settings`, the agent-state settings,
//! the voice environment its device names) and its `/notifications/services` subscription.

use serde_json::{Value, json};

use crate::cometd_support::LpClient;
use crate::common::TestGateway;
use crate::common::basic;
use crate::common::desktop::Agent;

async fn get(gw: &TestGateway, user: &str, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", gw.http_url()))
        .basic_auth(user, Some("demo"))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_up_reads_of_a_desktop_answer() {
    let gw = TestGateway::spawn().await;
    let (status, me) = get(
        &gw,
        "agent1",
        "/api/v2/me?subresources=features,devices,channels,settings",
    )
    .await;
    assert_eq!(status, 200, "{me}");
    let states = &me["user"]["settings"]["agent-states"];
    let (status, settings) = get(&gw, "agent1", "/api/v2/settings/agent-states").await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(&settings["settings"], states);
    assert_eq!(
        settings["settings"][0],
        json!({"id": "9430250E-0A1B-421F-B372-F29E69366DED", "displayName": "Ready", "state": "Ready"})
    );
    assert_eq!(
        settings["settings"][3],
        json!({"id": "2B36138D-C564-4562-A8CB-3C32D564F296", "displayName": "Aux Work",
               "state": "NotReady", "workMode": "AuxWork"})
    );

    let uri = me["user"]["devices"][0]["voiceEnvironmentUri"]
        .as_str()
        .expect("a voiceEnvironmentUri")
        .to_owned();
    let path = uri.strip_prefix(&gw.http_url()).unwrap();
    let (status, environment) = get(&gw, "agent1", path).await;
    assert_eq!(status, 200, "{environment}");
    assert_eq!(environment["voiceEnvironment"]["uri"], uri.as_str());
    assert_eq!(environment["voiceEnvironment"]["name"], "demo");
    // Another contact center's user does not see it, nor anyone an unknown one.
    let (status, refused) = get(&gw, "basic1", path).await;
    assert_eq!((status, &refused["statusCode"]), (404, &json!(6)));
    let (status, _) = get(&gw, "agent1", "/api/v2/voice-environments/nope").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desktop_subscribes_to_service_notifications_and_still_gets_its_calls() {
    let gw = TestGateway::spawn().await;
    let mut client = LpClient::new(&gw, Some(basic("agent1")));
    client.ready("/v2/me/calls").await;
    let reply = client.subscribe(json!("/notifications/services")).await;
    assert_eq!(reply["successful"], true, "{reply}");
    assert_eq!(reply["subscription"], "/notifications/services");
    let agent1 = Agent::login(&gw.http_url(), "agent1").await;
    let call = agent1.dial("15001").await;
    let events =
        crate::support::cometd_until(&mut client, |e| e["data"]["call"]["id"] == call.as_str())
            .await;
    assert!(
        events.iter().all(|e| e["channel"] == "/v2/me/calls"),
        "nothing on /notifications/services: {events:#?}"
    );
    // Channels outside the user's own stay refused.
    let refused = client.subscribe(json!("/notifications/other")).await;
    assert_eq!(refused["successful"], false, "{refused}");
}
