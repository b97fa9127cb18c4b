//! Interoperability with real Bayeux clients in Node: CometD JS 9.0 and 3.1 (the library
//! GWS pages embed) and Faye 1.4, each over long-polling and WebSocket. Each scenario
//! script handshakes with the session cookie, subscribes to `/v2/me/calls` and prints
//! `READY`; the test then drives the seed call (agent1 calls agent2, records, stops) and
//! checks the `RESULT` the client printed. Install the clients with
//! `scripts/install-test-clients`; a missing install fails the test.

mod cometd_support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cometd_support::BayeuxGateway;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

fn interop_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name);
    assert!(
        dir.join("node_modules").is_dir(),
        "{} has no node_modules: run scripts/install-test-clients first",
        dir.display()
    );
    dir
}

/// Runs one client scenario against a fresh gateway; returns the client's RESULT.
async fn run_scenario(client: &str, script: &str, transport: &str) -> Value {
    let gw = BayeuxGateway::spawn_with(|c| {
        c.cometd.timeout_ms = 2_000;
        c.cometd.max_interval_ms = 5_000;
    })
    .await;
    let jsession = gw.session_cookie("agent1");
    let dir = interop_dir(client);
    let mut child = Command::new("node")
        .arg(dir.join(script))
        .arg(gw.http_url())
        .arg(transport)
        .arg(&jsession)
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the client answers within 20 s")
            .unwrap()
            .expect("the client printed a line")
    };
    let ready = next_line().await;
    assert!(ready.starts_with("READY "), "{client} {transport}: {ready}");
    let call = gw.seed_recording_scenario();
    let result = next_line().await;
    let json = result
        .strip_prefix("RESULT ")
        .unwrap_or_else(|| panic!("{client} {transport}: {result}"));
    let result: Value = serde_json::from_str(json).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the client exits")
        .unwrap();
    assert!(status.success(), "{client} {transport}: exit {status}");
    assert_eq!(result["message"]["data"]["call"]["id"], call.as_str());
    result
}

/// The checks of the issue on the received StopCallRecording notification.
fn assert_recording_stopped(result: &Value, transport: &str) {
    assert_eq!(result["transport"], transport, "{result}");
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
    assert_eq!(received.first(), Some(&"StatusChange"), "{received:?}");
    assert_eq!(
        received
            .iter()
            .filter(|t| **t == "CallRecordingStateChange")
            .count(),
        2,
        "{received:?}"
    );
}

#[tokio::test]
async fn cometd9_long_polling() {
    let result = run_scenario("cometd9", "scenario.mjs", "long-polling").await;
    assert_recording_stopped(&result, "long-polling");
}

#[tokio::test]
async fn cometd9_websocket() {
    let result = run_scenario("cometd9", "scenario.mjs", "websocket").await;
    assert_recording_stopped(&result, "websocket");
}

#[tokio::test]
async fn cometd3_long_polling() {
    let result = run_scenario("cometd3", "scenario.js", "long-polling").await;
    assert_recording_stopped(&result, "long-polling");
}

#[tokio::test]
async fn cometd3_websocket() {
    let result = run_scenario("cometd3", "scenario.js", "websocket").await;
    assert_recording_stopped(&result, "websocket");
}

#[tokio::test]
async fn faye_long_polling() {
    let result = run_scenario("faye", "scenario.js", "long-polling").await;
    assert_recording_stopped(&result, "long-polling");
}

#[tokio::test]
async fn faye_websocket() {
    let result = run_scenario("faye", "scenario.js", "websocket").await;
    assert_recording_stopped(&result, "websocket");
}
