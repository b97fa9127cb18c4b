//! Point 2: the `userData` of SingleStepTransfer and SingleStepConference lands on the call
//! the new party joins, over the JSON API (seen on CometD and by a GET) and over gRPC (seen
//! in the reply and on the new party's WatchCalls).

use serde_json::json;
use voice_gateway::grpc::pb;

use crate::cometd_support::{BayeuxGateway, Desktop, LpClient, basic};
use crate::support::{as_user, cometd_until, watch, watch_until};

#[tokio::test]
async fn single_step_transfer_carries_user_data_over_json_and_cometd() {
    let gw = BayeuxGateway::spawn().await;
    let call = gw.established_call("agent1", "agent2", "15001");
    let mut agent3 = LpClient::new(&gw, Some(basic("agent3")));
    agent3.ready("/v2/me/calls").await;
    let agent1 = Desktop::login(&gw, "agent1").await;

    let body = json!({
        "operationName": "SingleStepTransfer",
        "destination": {"phoneNumber": "15002"},
        "userData": {"CaseId": "c-42", "Priority": 3}
    });
    agent1
        .post_ok(&format!("/api/v2/me/calls/{}", call.as_str()), body)
        .await;
    let events = cometd_until(&mut agent3, |e| e["data"]["call"]["id"] == call.as_str()).await;
    let ringing = &events.last().unwrap()["data"]["call"];
    assert_eq!(ringing["state"], "Ringing");
    assert_eq!(
        ringing["userData"],
        json!({"CaseId": "c-42", "Priority": 3})
    );
    let desk3 = Desktop::login(&gw, "agent3").await;
    let read = desk3
        .get(&format!("/api/v2/me/calls/{}", call.as_str()))
        .await;
    assert_eq!(read["call"]["userData"]["CaseId"], "c-42");
    let released = agent1
        .get(&format!("/api/v2/me/calls/{}", call.as_str()))
        .await;
    assert_eq!(released["call"]["state"], "Released");
}

#[tokio::test]
async fn single_step_conference_carries_user_data_over_grpc() {
    let gw = BayeuxGateway::spawn().await;
    let call = gw.established_call("agent1", "agent2", "15001");
    let mut grpc = gw.call_service().await;
    let mut agent3 = watch(&mut grpc, "agent3").await;
    let pair = |key: &str, value: &str| pb::KeyValue {
        key: key.into(),
        value: Some(pb::key_value::Value::StringValue(value.into())),
    };

    let reply = grpc
        .single_step_conference(as_user(
            "agent1",
            pb::SingleStepConferenceRequest {
                call_id: call.as_str().into(),
                destination: "15002".into(),
                location: String::new(),
                user_data: vec![pair("CaseId", "c-43")],
            },
        ))
        .await
        .expect("SingleStepConference is accepted")
        .into_inner();
    let after = reply.call.expect("the call");
    assert_eq!(after.user_data, vec![pair("CaseId", "c-43")]);
    let events = watch_until(&mut agent3, |e| {
        e.call.as_ref().is_some_and(|c| c.id == call.as_str())
    })
    .await;
    let seen = events.last().unwrap().call.as_ref().unwrap();
    assert_eq!(seen.state(), pb::CallState::Ringing);
    assert_eq!(seen.user_data, vec![pair("CaseId", "c-43")]);
}
