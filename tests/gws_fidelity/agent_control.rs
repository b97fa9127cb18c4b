//! Point 5: a supervisor sets an agent's state (`api-supervisor-agent-control`,
//! `POST /api/v2/users/{userId}/channels/voice`, gRPC ControlAgentState); refusals change
//! nothing.

use serde_json::{Value, json};
use voice_gateway::grpc::pb;

use crate::common::TestGateway;
use crate::support::as_user;

async fn post(gw: &TestGateway, who: &str, agent: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/api/v2/users/{agent}/channels/voice",
            gw.http_url()
        ))
        .basic_auth(who, Some("demo"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The `userState.state` of `user`'s device, read by the user.
async fn state_of(gw: &TestGateway, user: &str) -> Value {
    let response = reqwest::Client::new()
        .get(format!("{}/api/v2/me/devices?fields=*", gw.http_url()))
        .basic_auth(user, Some("demo"))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    body["devices"][0]["userState"].clone()
}

/// agent1's user id, as `GET /api/v2/me` shows it.
async fn user_id(gw: &TestGateway, user: &str) -> String {
    let response = reqwest::Client::new()
        .get(format!("{}/api/v2/me", gw.http_url()))
        .basic_auth(user, Some("demo"))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    body["user"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_sets_an_agents_state_over_json_and_grpc() {
    let gw = TestGateway::spawn().await;
    let agent1 = user_id(&gw, "agent1").await;
    let ready = json!({"operationName": "Ready", "workmode": "ManualIn"});
    let (status, body) = post(&gw, "supervisor1", &agent1, ready).await;
    assert_eq!((status, &body), (200, &json!({"statusCode": 0})));
    let state = state_of(&gw, "agent1").await;
    assert_eq!(
        (&state["state"], &state["workMode"]),
        (&json!("Ready"), &json!("ManualIn"))
    );

    let mut devices = gw.devices().await;
    let device = devices
        .control_agent_state(as_user(
            "supervisor1",
            pb::ControlAgentStateRequest {
                user: "agent1".into(),
                operation_name: "AuxWork".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("ControlAgentState")
        .into_inner()
        .device
        .unwrap();
    assert_eq!(device.user_name, "agent1");
    assert_eq!(state_of(&gw, "agent1").await["workMode"], "AuxWork");

    // Logging the agent out ends the contact-center session.
    let logout = json!({"operationName": "EndContactCenterSession"});
    assert_eq!(post(&gw, "supervisor1", "agent1", logout).await.0, 200);
    let response = reqwest::Client::new()
        .get(format!("{}/api/v2/me/devices?fields=*", gw.http_url()))
        .basic_auth("agent1", Some("demo"))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["devices"][0]["deviceState"], "Inactive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_of_agent_control_change_nothing() {
    let gw = TestGateway::spawn().await;
    let before = [state_of(&gw, "agent1").await, state_of(&gw, "basic1").await];
    let ready = json!({"operationName": "Ready"});
    let refusals = [
        ("agent2", "agent1", 403, 5, "not a supervisor"),
        ("basic1", "basic1", 403, 3, "api-supervisor-agent-control"),
        ("supervisor1", "basic1", 404, 6, "basic1"),
        ("supervisor1", "nobody", 404, 6, "nobody"),
    ];
    for (who, agent, status, code, says) in refusals {
        let (got, body) = post(&gw, who, agent, ready.clone()).await;
        assert_eq!(
            (got, &body["statusCode"]),
            (status, &json!(code)),
            "{who} on {agent}: {body}"
        );
        let message = body["statusMessage"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }
    let (got, body) = post(
        &gw,
        "supervisor1",
        "agent1",
        json!({"operationName": "Hangup"}),
    )
    .await;
    assert_eq!((got, &body["statusCode"]), (400, &json!(2)), "{body}");

    let mut devices = gw.devices().await;
    for (who, agent, code) in [
        ("agent2", "agent1", tonic::Code::PermissionDenied),
        ("basic1", "basic1", tonic::Code::PermissionDenied),
        ("supervisor1", "basic1", tonic::Code::NotFound),
        ("supervisor1", "nobody", tonic::Code::NotFound),
    ] {
        let status = devices
            .control_agent_state(as_user(
                who,
                pb::ControlAgentStateRequest {
                    user: agent.into(),
                    operation_name: "Ready".into(),
                    ..Default::default()
                },
            ))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), code, "{who} on {agent}: {status:?}");
    }
    let after = [state_of(&gw, "agent1").await, state_of(&gw, "basic1").await];
    assert_eq!(before, after, "nothing changed");
}
