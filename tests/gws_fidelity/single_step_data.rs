//! Point 2: the `userData` of SingleStepTransfer and SingleStepConference lands on the call
//! the new party joins, over the JSON API (seen on CometD and by a GET) and over gRPC (seen
//! in the reply and on the new party's WatchCalls).

use serde_json::json;
use voice_gateway::grpc::pb;

use crate::cometd_support::LpClient;
use crate::common::TestGateway;
use crate::common::basic;
use crate::common::desktop::Agent;
use crate::support::{as_user, cometd_until, watch, watch_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_step_transfer_carries_user_data_over_json_and_cometd() {
    let gw = TestGateway::spawn().await;
    let call = gw.established_call("agent1", "agent2", "15001").await;
    let mut agent3 = LpClient::new(&gw, Some(basic("agent3")));
    agent3.ready("/v2/me/calls").await;
    let agent1 = Agent::login(&gw.http_url(), "agent1").await;

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
    let desk3 = Agent::login(&gw.http_url(), "agent3").await;
    let read = desk3
        .get_ok(&format!("/api/v2/me/calls/{}", call.as_str()))
        .await;
    assert_eq!(read["call"]["userData"]["CaseId"], "c-42");
    let released = agent1
        .get_ok(&format!("/api/v2/me/calls/{}", call.as_str()))
        .await;
    assert_eq!(released["call"]["state"], "Released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_step_conference_carries_user_data_over_grpc() {
    let gw = TestGateway::spawn().await;
    let call = gw.established_call("agent1", "agent2", "15001").await;
    let mut grpc = gw.calls().await;
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
