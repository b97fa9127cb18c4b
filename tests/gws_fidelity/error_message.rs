//! Point 7: the asynchronous Voice `ErrorMessage`. An operation the gateway accepted that
//! fails afterwards (the demo's outside world answers busy at 9165550486 and cannot reach
//! 9165550404) is, after the call events of the failure, an `ErrorMessage` on the user's
//! `/v2/me/calls` (raw long-polling, and the real CometD JS 9 client) and a `CallError` on
//! the user's WatchCalls; another user receives neither, and a resume replays it.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use voice_gateway::grpc::pb;
use voice_gateway::grpc::pb::watch_calls_response::Kind;

use crate::cometd_support::LpClient;
use crate::cometd_support::node::NodeClient;
use crate::common::desktop::Agent;
use crate::common::{TestGateway, basic};
use crate::support::{WAIT, as_user, cometd_until, watch};

const BUSY: &str = "9165550486";
const UNREACHABLE: &str = "9165550404";

fn is_error(event: &Value) -> bool {
    event["data"]["messageType"] == "ErrorMessage"
}

fn call_state(event: &Value, call: &str) -> Option<String> {
    let seen = &event["data"]["call"];
    (event["data"]["messageType"] == "CallStateChangeMessage" && seen["id"] == call)
        .then(|| seen["state"].as_str().unwrap_or_default().to_owned())
}

/// Reads WatchCalls messages until one matches `wanted`; returns every message read. Fails
/// after [`WAIT`].
async fn watch_kinds_until(
    stream: &mut tonic::Streaming<pb::WatchCallsResponse>,
    wanted: impl Fn(&Kind) -> bool,
) -> Vec<Kind> {
    let mut read = Vec::new();
    let reading = async {
        loop {
            let message = stream.message().await.expect("a healthy stream");
            let kind = message.expect("an open stream").kind.expect("a kind");
            let done = wanted(&kind);
            read.push(kind);
            if done {
                return;
            }
        }
    };
    if tokio::time::timeout(WAIT, reading).await.is_err() {
        panic!("no wanted WatchCalls message within {WAIT:?}; got {read:#?}");
    }
    read
}

/// Reads WatchCalls until a CallError; returns it.
async fn next_call_error(stream: &mut tonic::Streaming<pb::WatchCallsResponse>) -> pb::CallError {
    let read = watch_kinds_until(stream, |k| matches!(k, Kind::Error(_))).await;
    match read.into_iter().last() {
        Some(Kind::Error(error)) => error,
        other => unreachable!("{other:?}"),
    }
}

/// Whether a WatchCalls message is an event of `call`.
fn is_event_of(kind: &Kind, call: &str) -> bool {
    matches!(kind, Kind::Event(e) if e.call.as_ref().is_some_and(|c| c.id == call))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_that_turns_out_busy_is_an_error_message_to_the_dialer_on_both_fronts() {
    let gw = TestGateway::spawn().await;
    let mut grpc = gw.calls().await;
    let mut cometd1 = LpClient::new(&gw, Some(basic("agent1")));
    cometd1.ready("/v2/me/calls").await;
    let mut cometd2 = LpClient::new(&gw, Some(basic("agent2")));
    cometd2.ready("/v2/me/*").await;
    let mut watch1 = watch(&mut grpc, "agent1").await;
    let mut watch2 = watch(&mut grpc, "agent2").await;
    let desktop = Agent::login(&gw.http_url(), "agent1").await;
    let (device, _) = desktop.device().await;

    // Accepted: statusCode 0 (post_ok), and the call is dialing.
    let dial = json!({"operationName": "Dial", "destination": {"phoneNumber": BUSY}});
    desktop
        .post_ok(&format!("/api/v2/me/devices/{device}/calls"), dial)
        .await;

    let events = cometd_until(&mut cometd1, is_error).await;
    let error = events.last().unwrap();
    let data = &error["data"];
    let call = data["call"]["id"]
        .as_str()
        .expect("the error names its call");
    let states: Vec<String> = events.iter().filter_map(|e| call_state(e, call)).collect();
    assert_eq!(states, ["Dialing", "Released"], "{events:#?}");
    let release = &events[events.len() - 2];
    assert_eq!(error["channel"], "/v2/me/calls");
    let keys: BTreeSet<&str> = data
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected = [
        "call",
        "errorCode",
        "errorMessage",
        "messageType",
        "operationName",
        "phoneNumber",
    ];
    assert_eq!(keys, BTreeSet::from(expected), "{data:#}");
    assert_eq!(data["messageType"], "ErrorMessage");
    assert_eq!(data["errorCode"], 19);
    assert_eq!(data["errorMessage"], format!("{BUSY} is busy"));
    assert_eq!(data["operationName"], "Dial");
    assert_eq!(data["phoneNumber"], "15000");
    // The call as the user last saw it: the release just before, rendered alike.
    assert_eq!(data["call"], release["data"]["call"]);
    assert_eq!(data["call"]["state"], "Released");
    assert_eq!(
        data["call"]["uri"],
        format!("{}/api/v2/me/calls/{call}", gw.http_url())
    );

    let grpc_error = next_call_error(&mut watch1).await;
    assert_eq!(grpc_error.operation_name, "Dial");
    assert_eq!(grpc_error.grpc_code, tonic::Code::FailedPrecondition as i32);
    assert_eq!(grpc_error.status_code, 19);
    assert_eq!(grpc_error.message, format!("{BUSY} is busy"));
    assert_eq!(grpc_error.phone_number, "15000");
    let seen = grpc_error.call.as_ref().expect("the error names its call");
    assert_eq!(
        (seen.id.as_str(), seen.state()),
        (call, pb::CallState::Released)
    );
    assert!(grpc_error.commit_time.is_some() && !grpc_error.epoch.is_empty());

    // agent2 is not told: a call to agent2 committed after the error reaches agent2 with
    // nothing before it, on either front (each delivers in commit order).
    let marker = desktop.dial("15001").await;
    let seen2 = cometd_until(&mut cometd2, |e| e["data"]["call"]["id"] == marker.as_str()).await;
    assert!(!seen2.iter().any(is_error), "{seen2:#?}");
    let seen2 = watch_kinds_until(&mut watch2, |k| is_event_of(k, &marker)).await;
    assert!(
        !seen2.iter().any(|k| matches!(k, Kind::Error(_))),
        "{seen2:#?}"
    );

    // A resume from just before the error replays it, unchanged, first.
    let resume = pb::WatchCallsRequest {
        from_sequence: Some(grpc_error.sequence - 1),
        epoch: grpc_error.epoch.clone(),
        ..Default::default()
    };
    let mut resumed = grpc
        .watch_calls(as_user("agent1", resume))
        .await
        .expect("the resume is accepted")
        .into_inner();
    let replay = watch_kinds_until(&mut resumed, |_| true).await;
    assert_eq!(replay, [Kind::Error(grpc_error)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consult_to_an_unreachable_number_fails_after_acceptance_and_leaves_the_call_held() {
    let gw = TestGateway::spawn().await;
    let mut grpc = gw.calls().await;
    let call = gw.established_call("agent1", "agent2", "15001").await;
    let mut cometd1 = LpClient::new(&gw, Some(basic("agent1")));
    cometd1.ready("/v2/me/calls").await;
    let mut watch1 = watch(&mut grpc, "agent1").await;

    let initiate = pb::InitiateTransferRequest {
        call_id: call.as_str().into(),
        destination: UNREACHABLE.into(),
        ..Default::default()
    };
    let reply = grpc
        .initiate_transfer(as_user("agent1", initiate))
        .await
        .expect("InitiateTransfer is accepted")
        .into_inner();
    assert_eq!(reply.call.unwrap().state(), pb::CallState::Held);

    let grpc_error = next_call_error(&mut watch1).await;
    assert_eq!(grpc_error.operation_name, "InitiateTransfer");
    assert_eq!(grpc_error.grpc_code, tonic::Code::NotFound as i32);
    assert_eq!(grpc_error.status_code, 6);
    assert_eq!(
        grpc_error.message,
        format!("{UNREACHABLE} cannot be reached")
    );
    let consult = grpc_error.call.expect("the consult call");
    assert_eq!(consult.call_type(), pb::CallType::Consult);
    assert_eq!(consult.state(), pb::CallState::Released);
    assert_eq!(consult.parent_call_id, call.as_str());

    let events = cometd_until(&mut cometd1, is_error).await;
    let data = &events.last().unwrap()["data"];
    assert_eq!(data["operationName"], "InitiateTransfer");
    assert_eq!(data["errorCode"], 6);
    assert_eq!(data["call"]["id"], consult.id);
    assert_eq!(data["call"]["callType"], "Consult");

    let original = grpc
        .get_call(as_user(
            "agent1",
            pb::GetCallRequest {
                call_id: call.as_str().into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .call
        .unwrap();
    assert_eq!(original.state(), pb::CallState::Held);
    assert!(original.capabilities.iter().any(|c| c == "Retrieve"));
}

/// The real CometD JS 9 client of a desktop receives the ErrorMessage, over `transport`.
async fn cometd_js_receives_the_error_message(transport: &str) {
    let gw = TestGateway::spawn().await;
    let desktop = Agent::login(&gw.http_url(), "agent1").await;
    let url = gw.http_url();
    let args = [url.as_str(), transport, &desktop.jsessionid, "/v2/me/calls"];
    let mut client = NodeClient::start("cometd9", "listen.mjs", &args);
    let ready = client.expect("READY").await;
    assert_eq!(ready["transport"], transport);
    let (device, _) = desktop.device().await;
    let dial = json!({"operationName": "Dial", "destination": {"phoneNumber": BUSY}});
    desktop
        .post_ok(&format!("/api/v2/me/devices/{device}/calls"), dial)
        .await;
    // Each read fails after 10 s; a CallStateChangeMessage before the error is read past.
    let error = loop {
        let message = client.message().await;
        if is_error(&message) {
            break message;
        }
        assert_eq!(
            message["data"]["messageType"], "CallStateChangeMessage",
            "{message}"
        );
    };
    assert_eq!(error["channel"], "/v2/me/calls");
    let data = &error["data"];
    assert_eq!(data["errorCode"], 19, "{data}");
    assert_eq!(data["errorMessage"], format!("{BUSY} is busy"));
    assert_eq!(data["operationName"], "Dial");
    assert_eq!(data["phoneNumber"], "15000");
    assert_eq!(data["call"]["state"], "Released");
    assert_eq!(client.finish().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cometd_js_client_receives_the_error_message_over_long_polling() {
    cometd_js_receives_the_error_message("long-polling").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cometd_js_client_receives_the_error_message_over_websocket() {
    cometd_js_receives_the_error_message("websocket").await;
}
