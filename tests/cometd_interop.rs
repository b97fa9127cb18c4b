//! Interoperability with real Bayeux clients in Node: CometD JS 9.0 and 3.1 (the library
//! GWS pages embed) and Faye 1.4, each over long-polling and WebSocket. Each desktop logs
//! in as a browser does (`GET /api/v2/me` with Basic sets `JSESSIONID`); the client script
//! handshakes with that cookie only, subscribes to `/v2/me/calls` and prints `READY`; the
//! test then drives the seed call (agent1 dials agent2 and agent2 answers, over gRPC; agent1
//! starts and stops recording over the JSON API, with its session cookie) and checks the
//! `RESULT` the client printed: every notification of the call, each once, in order. Also: CometD JS 9 re-handshakes and re-subscribes after a `402`.
//! Install the clients with `scripts/install-test-clients`; a missing install fails the test.

mod cometd_support;
mod common;

use cometd_support::node::NodeClient;
use common::TestGateway;
use common::desktop::Agent;
use serde_json::{Value, json};
use voice_gateway::gws::cometd::session::BayeuxRemoval;

async fn gateway() -> TestGateway {
    TestGateway::spawn_with(|c| {
        c.cometd.timeout_ms = 2_000;
        c.cometd.max_interval_ms = 5_000;
    })
    .await
}

/// Runs one client scenario against a fresh gateway; returns the client's RESULT.
async fn run_scenario(client: &str, script: &str, transport: &str) -> Value {
    let gw = gateway().await;
    let agent1 = Agent::login(&gw.http_url(), "agent1").await;
    let url = gw.http_url();
    let mut node = NodeClient::start(client, script, &[&url, transport, &agent1.jsessionid]);
    let ready = node.line().await;
    assert!(ready.starts_with("READY "), "{client} {transport}: {ready}");
    // The seed: the call is set up over gRPC, its recording driven over the JSON API with
    // the desktop's session cookie.
    let call = gw.established_call("agent1", "agent2", "15001").await;
    agent1.call_op(&call, "StartCallRecording").await;
    agent1.call_op(&call, "StopCallRecording").await;
    let result = node.expect("RESULT").await;
    node.exit().await;
    assert_eq!(result["message"]["data"]["call"]["id"], call.as_str());
    result
}

/// The checks of the issue on the received StopCallRecording notification.
fn assert_recording_stopped(result: &Value, transport: &str) {
    assert_eq!(result["transport"], transport, "{result}");
    // Faye also lists every transport its connects used: no fallback.
    if let Some(used) = result.get("transports") {
        assert_eq!(used, &json!([transport]), "{result}");
    }
    let message = &result["message"];
    assert_eq!(message["channel"], "/v2/me/calls");
    let data = &message["data"];
    assert_eq!(data["messageType"], "CallStateChangeMessage");
    assert_eq!(data["notificationType"], "CallRecordingStateChange");
    assert_eq!(data["phoneNumber"], "15000");
    let call = &data["call"];
    assert_eq!(call["recordingState"], "Stopped");
    assert_eq!(call["state"], "Established");
    assert_eq!(call["userData"], json!({"GSIP_RECORD": "OFF"}));
    let capabilities = call["capabilities"].as_array().unwrap();
    assert!(
        capabilities.contains(&json!("StartCallRecording")),
        "{call}"
    );
    assert!(
        !capabilities.contains(&json!("StopCallRecording")),
        "{call}"
    );
    let received: Vec<&str> = result["received"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // Dialing, established, recording on, recording off: in order, each once.
    assert_eq!(
        received,
        [
            "StatusChange",
            "StatusChange",
            "CallRecordingStateChange",
            "CallRecordingStateChange"
        ],
        "{result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cometd9_long_polling() {
    let result = run_scenario("cometd9", "scenario.mjs", "long-polling").await;
    assert_recording_stopped(&result, "long-polling");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cometd9_websocket() {
    let result = run_scenario("cometd9", "scenario.mjs", "websocket").await;
    assert_recording_stopped(&result, "websocket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cometd3_long_polling() {
    let result = run_scenario("cometd3", "scenario.js", "long-polling").await;
    assert_recording_stopped(&result, "long-polling");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cometd3_websocket() {
    let result = run_scenario("cometd3", "scenario.js", "websocket").await;
    assert_recording_stopped(&result, "websocket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faye_long_polling() {
    let result = run_scenario("faye", "scenario.js", "long-polling").await;
    assert_recording_stopped(&result, "long-polling");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faye_websocket() {
    let result = run_scenario("faye", "scenario.js", "websocket").await;
    assert_recording_stopped(&result, "websocket");
}

/// The server drops a CometD JS 9 session while its connect is held: the client gets
/// `402::Unknown client` with `reconnect:"handshake"`, handshakes again with its cookie,
/// re-subscribes in its `/meta/handshake` listener and receives the next event.
async fn rehandshake_after_402(transport: &str) {
    let gw = gateway().await;
    let agent1 = Agent::login(&gw.http_url(), "agent1").await;
    let url = gw.http_url();
    let args = [&*url, transport, &agent1.jsessionid, "/v2/me/calls"];
    let mut node = NodeClient::start("cometd9", "listen.mjs", &args);
    let ready = node.expect("READY").await;
    assert_eq!(
        (&ready["transport"], &ready["handshakes"]),
        (&json!(transport), &json!(1))
    );
    let call = gw.established_call("agent1", "agent2", "15001").await;
    loop {
        let message = node.message().await;
        assert_eq!(message["data"]["call"]["id"], call.as_str());
        if message["data"]["call"]["state"] == "Established" {
            break;
        }
    }
    let first_id = ready["clientId"].as_str().unwrap().to_owned();
    let session = gw.registry.get(&first_id).expect("the client's session");
    assert!(gw.registry.remove(&session, BayeuxRemoval::EventsLost));

    let failed = node.expect("CONNECT_FAILED").await;
    assert_eq!(failed["error"], "402::Unknown client");
    assert_eq!(failed["advice"]["reconnect"], "handshake");
    let again = node.expect("READY").await;
    assert_eq!(again["handshakes"], 2);
    assert_eq!(again["reestablish"], true);
    assert_eq!(again["transport"], transport);
    let second_id = again["clientId"].as_str().unwrap();
    assert_ne!(second_id, first_id);
    assert!(gw.registry.get(&first_id).is_none());
    assert_eq!(gw.registry.len(), 1);

    agent1.call_op(&call, "Hold").await;
    let held = node.message().await;
    assert_eq!(held["channel"], "/v2/me/calls");
    assert_eq!(held["data"]["notificationType"], "StatusChange");
    assert_eq!(held["data"]["call"]["id"], call.as_str());
    assert_eq!(held["data"]["call"]["state"], "Held");
    assert_eq!(node.finish().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cometd9_rehandshakes_after_402_long_polling() {
    rehandshake_after_402("long-polling").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cometd9_rehandshakes_after_402_websocket() {
    rehandshake_after_402("websocket").await;
}
