//! Bridge mode end to end, with two gateway processes (the real binary): U (embedded)
//! plays the upstream GWS; B bridges to it. What B's clients do reaches U, what happens on U
//! reaches B's watchers, U's refusals reach B's clients with the codes embedded mode gives,
//! and B survives U being killed and restarted empty.

mod common;
#[allow(dead_code, unreachable_pub)]
#[path = "cometd_support/node.rs"]
mod node;
mod tls_support;

use common::binary::Binary as Gateway;
use common::desktop::Agent;
use common::{as_user, next_event, pb, snapshot, with_basic};
use reqwest::StatusCode;
use serde_json::json;
use tonic::Code;

/// A Dial of `destination` by `user` with the demo password.
fn dial_request(user: &str, destination: &str) -> tonic::Request<pb::DialRequest> {
    as_user(
        user,
        pb::DialRequest {
            destination: destination.into(),
            ..Default::default()
        },
    )
}

/// Dials through `calls` and returns the new call's id, failing the test on a refusal.
async fn dial(calls: &mut CallClient, user: &str, destination: &str) -> String {
    calls
        .dial(dial_request(user, destination))
        .await
        .unwrap_or_else(|status| panic!("{user} dials {destination}: {status:?}"))
        .into_inner()
        .call
        .expect("the reply carries the call")
        .id
}

type CallClient = pb::call_service_client::CallServiceClient<tonic::transport::Channel>;

/// Starts U (the embedded demo) and B (bridging to U's HTTP listener).
async fn pair() -> (Gateway, Gateway) {
    let upstream = Gateway::start(&[]).await;
    let bridge = Gateway::start(&["--upstream", &upstream.http_url()]).await;
    (upstream, bridge)
}

/// Writes the demo configuration followed by `extra` to a file of this test process, under
/// cargo's scratch directory for integration tests (in `target/`, so nothing is left in the
/// system's temp directory); returns its path.
fn demo_config_with(name: &str, extra: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bridge-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gateway.toml");
    std::fs::write(
        &path,
        format!("{}\n{extra}", voice_gateway::config::DEMO_TOML),
    )
    .unwrap();
    path.display().to_string()
}

/// Starts U (the embedded demo plus `upstream_extra`, with its admin listener) and B
/// asking for the upstream CometD `websocket` transport.
async fn websocket_pair(name: &str, upstream_extra: &str) -> (Gateway, Gateway) {
    let upstream_config = demo_config_with(&format!("{name}-u"), upstream_extra);
    let upstream = Gateway::launch()
        .admin()
        .args(&["--config", &upstream_config])
        .start()
        .await;
    let bridge_config = demo_config_with(
        &format!("{name}-b"),
        "[upstream]\ntransport = \"websocket\"\n",
    );
    let bridge = Gateway::start(&[
        "--config",
        &bridge_config,
        "--upstream",
        &upstream.http_url(),
    ])
    .await;
    (upstream, bridge)
}

/// Waits until U holds at least one CometD connect, and then every held connect on
/// `transport`: B's sessions are there, all on that transport.
async fn upstream_holds_connects_on(upstream: &Gateway, transport: &str) {
    let url = format!("{}/metrics", upstream.admin_url());
    let held = |text: &str, transport: &str| -> f64 {
        let series = format!("voice_gateway_cometd_connects_held{{transport=\"{transport}\"}}");
        text.lines()
            .find_map(|line| line.strip_prefix(series.as_str())?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let other = if transport == "websocket" {
        "long-polling"
    } else {
        "websocket"
    };
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
        let (on, off) = (held(&text, transport), held(&text, other));
        if on >= 1.0 && off == 0.0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "U holds {on} connects on {transport} and {off} on {other}"
        );
        // The poll interval of this check; the deadline bounds it.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_scenario_over_grpc_on_the_bridge() {
    let (upstream, bridge) = pair().await;
    seed_scenario_over_grpc(&upstream, &bridge).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_scenario_with_the_upstream_notifications_over_websocket() {
    let (upstream, bridge) = websocket_pair("ws", "").await;
    seed_scenario_over_grpc(&upstream, &bridge).await;
    upstream_holds_connects_on(&upstream, "websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_falls_back_to_long_polling_when_the_upstream_does_not_offer_it() {
    let (upstream, bridge) = websocket_pair("ws-off", "[cometd]\nwebsocket = false\n").await;
    seed_scenario_over_grpc(&upstream, &bridge).await;
    upstream_holds_connects_on(&upstream, "long-polling").await;
}

/// Starts U serving its HTTP listener (the JSON API and CometD) over TLS with a certificate
/// of the test PKI's private CA, and B bridging to `https://` U with that CA in
/// `upstream.ca_file` and the upstream CometD `transport`.
async fn tls_pair(pki: &tls_support::Pki, name: &str, transport: &str) -> (Gateway, Gateway) {
    let upstream_config = demo_config_with(
        &format!("{name}-u"),
        &format!(
            "[tls]\ncert_file = '{}'\nkey_file = '{}'\ngrpc = false\n",
            pki.server.cert.display(),
            pki.server.key.display()
        ),
    );
    let upstream = Gateway::start(&["--config", &upstream_config]).await;
    let bridge_config = demo_config_with(
        &format!("{name}-b"),
        &format!(
            "[upstream]\nca_file = '{}'\ntransport = \"{transport}\"\n",
            pki.ca.display()
        ),
    );
    let url = format!("https://127.0.0.1:{}", upstream.http.port());
    let bridge = Gateway::start(&["--config", &bridge_config, "--upstream", &url]).await;
    (upstream, bridge)
}

/// agent1 dials through B: the reply carries the call as U's notification reported it, and
/// B's watch sees it. Neither can happen unless B's CometD client reaches U.
async fn dial_through_the_bridge_sees_the_upstream_notification(bridge: &Gateway) {
    let mut calls = bridge.calls().await;
    let mut watch = calls
        .watch_calls(as_user("agent1", pb::WatchCallsRequest::default()))
        .await
        .expect("agent1 signs in through the upstream")
        .into_inner();
    assert!(snapshot(&mut watch).await.calls.is_empty());
    let id = dial(&mut calls, "agent1", "15001").await;
    let event = next_event(&mut watch).await;
    assert_eq!(event.call.as_ref().unwrap().id, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_upstream_of_a_private_ca_is_trusted_for_operations_and_notifications() {
    let pki = tls_support::Pki::new();
    for transport in ["long-polling", "websocket"] {
        let (_upstream, bridge) = tls_pair(&pki, &format!("tls-{transport}"), transport).await;
        dial_through_the_bridge_sees_the_upstream_notification(&bridge).await;
    }
}

/// agent1 dials agent2 through B, agent2 answers on U, agent1 starts and stops recording
/// through B: each reply carries the call as U reported it, B's watch sees every step.
async fn seed_scenario_over_grpc(upstream: &Gateway, bridge: &Gateway) {
    let mut calls = bridge.calls().await;
    let mut watch = calls
        .watch_calls(as_user("agent1", pb::WatchCallsRequest::default()))
        .await
        .expect("agent1 signs in through the upstream")
        .into_inner();
    assert!(snapshot(&mut watch).await.calls.is_empty());

    let dialed = calls
        .dial(as_user(
            "agent1",
            pb::DialRequest {
                destination: "15001".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("Dial through the bridge")
        .into_inner()
        .call
        .expect("the upstream's call");
    assert_eq!(dialed.state(), pb::CallState::Dialing);
    let id = dialed.id.clone();
    let event = next_event(&mut watch).await;
    assert_eq!(event.call.as_ref().unwrap().id, id);

    // agent2 answers on U's own JSON API: the bridge sees it happen.
    let agent2 = Agent::new(&upstream.http_url(), "agent2");
    agent2.op(&id, json!({"operationName": "Answer"})).await;
    loop {
        let event = next_event(&mut watch).await;
        if event.call.as_ref().unwrap().state() == pb::CallState::Established {
            break;
        }
    }

    let started = calls
        .start_call_recording(as_user(
            "agent1",
            pb::StartCallRecordingRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .expect("StartCallRecording through the bridge")
        .into_inner()
        .call
        .unwrap();
    assert_eq!(started.recording_state(), pb::RecordingState::Recording);
    let stopped = calls
        .stop_call_recording(as_user(
            "agent1",
            pb::StopCallRecordingRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .expect("StopCallRecording through the bridge")
        .into_inner()
        .call
        .unwrap();
    assert_eq!(stopped.recording_state(), pb::RecordingState::Stopped);
    let mut recording = Vec::new();
    while recording.len() < 2 {
        let event = next_event(&mut watch).await;
        if event.notification_type() == pb::NotificationType::CallRecordingStateChange {
            recording.push(event.call.unwrap().recording_state());
        }
    }
    assert_eq!(
        recording,
        [pb::RecordingState::Recording, pb::RecordingState::Stopped]
    );
    // U holds the same call in the same state.
    let on_upstream = upstream
        .calls()
        .await
        .get_call(as_user("agent1", pb::GetCallRequest { call_id: id }))
        .await
        .unwrap()
        .into_inner()
        .call
        .unwrap();
    assert_eq!(on_upstream.recording_state(), pb::RecordingState::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_scenario_over_the_bridge_json_api() {
    let (upstream, bridge) = pair().await;
    let agent1 = Agent::new(&bridge.http_url(), "agent1");
    // The JSON API answers at acceptance, as GWS does, and the state follows by
    // notification: a watcher on the bridge tells when it has arrived.
    let mut watch = common::watch_calls(&mut bridge.calls().await, "agent1").await;
    let id = agent1.dial("15001").await;
    Agent::new(&upstream.http_url(), "agent2")
        .op(&id, json!({"operationName": "Answer"}))
        .await;
    while next_event(&mut watch).await.call.unwrap().state() != pb::CallState::Established {}
    assert_eq!(agent1.call(&id).await["state"], "Established");
    for (op, state) in [
        ("StartCallRecording", "Recording"),
        ("StopCallRecording", "Stopped"),
    ] {
        agent1.op(&id, json!({"operationName": op})).await;
        let event = next_event(&mut watch).await;
        assert_eq!(
            event.notification_type(),
            pb::NotificationType::CallRecordingStateChange
        );
        assert_eq!(agent1.call(&id).await["recordingState"], state);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_made_on_the_upstream_appear_on_the_bridge() {
    let (upstream, bridge) = pair().await;
    let mut watch = common::watch_calls(&mut bridge.calls().await, "agent2").await;
    let mut on_u = upstream.calls().await;
    let id = dial(&mut on_u, "agent1", "15001").await;
    let event = next_event(&mut watch).await;
    let call = event.call.unwrap();
    assert_eq!(call.id, id);
    assert_eq!(call.state(), pb::CallState::Ringing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_refusals_reach_the_bridge_clients_with_embedded_codes() {
    let (_upstream, bridge) = pair().await;
    let mut calls = bridge.calls().await;
    // Bad credentials: the upstream says no.
    let status = calls
        .list_calls(with_basic("agent1", "wrong", pb::ListCallsRequest {}))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(common::gws_status(&status), 20);
    // An unknown call.
    let status = calls
        .hangup(as_user(
            "agent1",
            pb::HangupRequest {
                call_id: "NOPE".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(common::gws_status(&status), 6);
    // A missing feature: basic1's contact center has no recording.
    let id = dial(&mut calls, "basic1", "5550100").await;
    let status = calls
        .start_call_recording(as_user(
            "basic1",
            pb::StartCallRecordingRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(common::gws_status(&status), 3);
    // An operation outside the call's capabilities: Answer on one's own dialing call.
    let status = calls
        .answer(as_user("basic1", pb::AnswerRequest { call_id: id }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(common::gws_status(&status), 2);
    // The JSON front says the same.
    let basic = Agent::new(&bridge.http_url(), "basic1");
    let (status, body) = basic
        .post("/api/v2/me/calls/NOPE", json!({"operationName": "Hangup"}))
        .await;
    assert_eq!(
        (status, body["statusCode"].as_u64()),
        (StatusCode::NOT_FOUND, Some(6))
    );
}

/// Watches the bridge's gRPC health of CallService (the health service's Watch stream,
/// which sends every change) until it is `want`, for at most `bound`.
async fn health_becomes(bridge: &Gateway, want: i32, bound: std::time::Duration) {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let channel = tonic::transport::Endpoint::from_shared(bridge.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let ask = HealthCheckRequest {
        service: "voice.v1.CallService".into(),
    };
    let mut changes = health.watch(ask).await.unwrap().into_inner();
    let mut seen = Vec::new();
    let reached = tokio::time::timeout(bound, async {
        while let Some(status) = changes.message().await.unwrap() {
            seen.push(status.status);
            if status.status == want {
                return;
            }
        }
        panic!("the health watch ended");
    })
    .await;
    assert!(
        reached.is_ok(),
        "health went through {seen:?}, never {want}, in {bound:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_restart_is_survived_and_the_vanished_call_released() {
    const SERVING: i32 = 1;
    const NOT_SERVING: i32 = 2;
    let bound = std::time::Duration::from_secs(10);
    let (mut upstream, bridge) = pair().await;
    let mut calls = bridge.calls().await;
    let mut watch = common::watch_calls(&mut calls, "agent1").await;
    let id = dial(&mut calls, "agent1", "15001").await;
    next_event(&mut watch).await;

    // U is killed mid-call (SIGKILL: no goodbye to its clients).
    upstream.kill().await;
    health_becomes(&bridge, NOT_SERVING, bound).await;
    let status = calls
        .hangup(as_user(
            "agent1",
            pb::HangupRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(common::gws_status(&status), 4);
    let (status, body) = Agent::new(&bridge.http_url(), "agent1")
        .post(
            &format!("/api/v2/me/calls/{id}"),
            json!({"operationName": "Hangup"}),
        )
        .await;
    assert_eq!(
        (status, body["statusCode"].as_u64()),
        (StatusCode::SERVICE_UNAVAILABLE, Some(4))
    );

    // U comes back empty on the same address: the bridge recovers by itself, and the
    // watcher that stayed connected learns that the call is gone.
    upstream.restart().await;
    health_becomes(&bridge, SERVING, bound).await;
    let released = tokio::time::timeout(bound, async {
        loop {
            let call = next_event(&mut watch).await.call.unwrap();
            if call.id == id && call.state() == pb::CallState::Released {
                return call;
            }
        }
    })
    .await
    .expect("the vanished call is reported Released");
    assert!(released.capabilities.is_empty());
    let listed = calls
        .list_calls(as_user("agent1", pb::ListCallsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .calls;
    assert!(listed.is_empty(), "{listed:?}");
}

/// Logs a user in on a gateway's JSON API as a desktop does; returns its `JSESSIONID`.
async fn jsessionid(gateway: &Gateway, user: &str) -> String {
    let response = reqwest::Client::new()
        .get(format!("{}/api/v2/me", gateway.http_url()))
        .basic_auth(user, Some("demo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response
        .cookies()
        .find(|c| c.name() == "JSESSIONID")
        .expect("the login sets JSESSIONID")
        .value()
        .to_owned()
}

/// Reads the client's MESSAGE lines until one whose data satisfies `done`; returns the
/// notification types seen on the way, and that message's data.
async fn messages_until(
    client: &mut node::NodeClient,
    done: impl Fn(&serde_json::Value) -> bool,
) -> (Vec<String>, serde_json::Value) {
    let mut seen = Vec::new();
    loop {
        let message = client.expect("MESSAGE").await;
        let data = message["data"].clone();
        assert_eq!(message["channel"], "/v2/me/calls", "{message}");
        assert_eq!(data["messageType"], "CallStateChangeMessage", "{message}");
        seen.push(data["notificationType"].as_str().unwrap().to_owned());
        if done(&data) {
            return (seen, data);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cometd_js_desktop_on_the_bridge_receives_the_seed_and_upstream_calls() {
    for transport in ["long-polling", "websocket"] {
        let (upstream, bridge) = pair().await;
        let cookie = jsessionid(&bridge, "agent1").await;
        let base = bridge.http_url();
        let mut desktop = node::NodeClient::start(
            "cometd9",
            "listen.mjs",
            &[&base, transport, &cookie, "/v2/me/calls"],
        );
        let ready = desktop.expect("READY").await;
        assert_eq!(ready["transport"], transport, "{ready}");

        // The seed: agent1 dials through B, agent2 answers on U, agent1 records through B.
        let mut calls = bridge.calls().await;
        let id = dial(&mut calls, "agent1", "15001").await;
        upstream
            .calls()
            .await
            .answer(as_user(
                "agent2",
                pb::AnswerRequest {
                    call_id: id.clone(),
                },
            ))
            .await
            .unwrap();
        for op in ["start", "stop"] {
            let call_id = id.clone();
            if op == "start" {
                calls
                    .start_call_recording(as_user(
                        "agent1",
                        pb::StartCallRecordingRequest { call_id },
                    ))
                    .await
                    .unwrap();
            } else {
                calls
                    .stop_call_recording(as_user(
                        "agent1",
                        pb::StopCallRecordingRequest { call_id },
                    ))
                    .await
                    .unwrap();
            }
        }
        let (seen, data) = messages_until(&mut desktop, |data| {
            data["notificationType"] == "CallRecordingStateChange"
                && data["call"]["recordingState"] == "Stopped"
        })
        .await;
        assert_eq!(
            seen.first().map(String::as_str),
            Some("StatusChange"),
            "{seen:?}"
        );
        assert_eq!(
            seen.iter()
                .filter(|t| *t == "CallRecordingStateChange")
                .count(),
            2,
            "{seen:?}"
        );
        assert_eq!(data["phoneNumber"], "15000");
        assert_eq!(data["call"]["id"], id.as_str());
        assert_eq!(data["call"]["state"], "Established");
        // Links name the bridge, where the desktop reads.
        assert!(
            data["call"]["uri"].as_str().unwrap().starts_with(&base),
            "{data}"
        );

        // A call made on U alone reaches agent1's desktop on B.
        let inbound = dial(&mut upstream.calls().await, "agent2", "15000").await;
        let (_, data) =
            messages_until(&mut desktop, |data| data["call"]["id"] == inbound.as_str()).await;
        assert_eq!(data["call"]["state"], "Ringing", "{transport}: {data}");
        desktop.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_acts_for_users_with_an_upstream_session_only() {
    let (_upstream, bridge) = pair().await;
    let mut calls = bridge.calls().await;
    // agent2 has not signed in through the bridge: the bridge does not know the user.
    let status = calls
        .list_calls(common::as_service(Some("agent2"), pb::ListCallsRequest {}))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("agent2"), "{status:?}");
    // Once agent1 has signed in, the service may act for agent1, through agent1's session.
    calls
        .list_calls(as_user("agent1", pb::ListCallsRequest {}))
        .await
        .unwrap();
    let call = calls
        .dial(common::as_service(
            Some("agent1"),
            pb::DialRequest {
                destination: "15001".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("the service dials for agent1")
        .into_inner()
        .call
        .unwrap();
    assert_eq!(call.state(), pb::CallState::Dialing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_sessions_are_bounded() {
    let upstream = Gateway::start(&[]).await;
    let dir = std::env::temp_dir().join(format!("bridge-bound-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bridge.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[upstream]\nurl = \"{}\"\nmax_sessions = 1\n",
            voice_gateway::config::DEMO_TOML,
            upstream.http_url()
        ),
    )
    .unwrap();
    let bridge = Gateway::start(&["--config", &config.display().to_string()]).await;
    let mut calls = bridge.calls().await;
    calls
        .list_calls(as_user("agent1", pb::ListCallsRequest {}))
        .await
        .expect("the first user gets the one session");
    let status = calls
        .list_calls(as_user("agent2", pb::ListCallsRequest {}))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("session"), "{status:?}");
    // The user who has the session goes on.
    calls
        .list_calls(as_user("agent1", pb::ListCallsRequest {}))
        .await
        .unwrap();
    std::fs::remove_dir_all(dir).ok();
}

/// Reads WatchCalls until a CallError, each message within 5 s; returns the call events
/// read before it, and the error.
async fn next_call_error(
    stream: &mut tonic::Streaming<pb::WatchCallsResponse>,
) -> (Vec<pb::CallEvent>, pb::CallError) {
    let mut before = Vec::new();
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(5), stream.message())
            .await
            .unwrap_or_else(|_| panic!("no CallError within 5 s; read {before:#?}"))
            .expect("a healthy stream")
            .expect("an open stream");
        match message.kind {
            Some(pb::watch_calls_response::Kind::Error(error)) => return (before, error),
            Some(pb::watch_calls_response::Kind::Event(event)) => before.push(event),
            other => panic!("expected an event or an error, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_error_message_reaches_the_user_on_every_front_of_the_bridge() {
    const BUSY: &str = "9165550486";
    let (_upstream, bridge) = pair().await;
    let mut calls = bridge.calls().await;
    let mut watches = Vec::new();
    for user in ["agent1", "agent2"] {
        let request = as_user(user, pb::WatchCallsRequest::default());
        let mut watch = calls.watch_calls(request).await.unwrap().into_inner();
        snapshot(&mut watch).await;
        watches.push(watch);
    }
    let cookie = jsessionid(&bridge, "agent1").await;
    let base = bridge.http_url();
    let mut desktop = node::NodeClient::start(
        "cometd9",
        "listen.mjs",
        &[&base, "long-polling", &cookie, "/v2/me/calls"],
    );
    desktop.expect("READY").await;

    // U accepts the Dial (B answers with U's dialing call), then U's network says busy: U
    // sends agent1 an ErrorMessage, which B mirrors to agent1's watchers.
    let id = dial(&mut calls, "agent1", BUSY).await;
    let (before, error) = next_call_error(&mut watches[0]).await;
    let released = before.iter().any(|e| {
        e.call
            .as_ref()
            .is_some_and(|c| c.id == id && c.state() == pb::CallState::Released)
    });
    assert!(released, "the release comes first: {before:#?}");
    assert_eq!(error.operation_name, "Dial");
    assert_eq!(error.status_code, 19);
    assert_eq!(error.grpc_code, Code::FailedPrecondition as i32);
    assert_eq!(error.message, format!("{BUSY} is busy"));
    assert_eq!(error.phone_number, "15000");
    let call = error.call.expect("the upstream's call");
    assert_eq!(
        (call.id.as_str(), call.state()),
        (id.as_str(), pb::CallState::Released)
    );

    let data = loop {
        let message = desktop.message().await;
        assert_eq!(message["channel"], "/v2/me/calls", "{message}");
        if message["data"]["messageType"] == "ErrorMessage" {
            break message["data"].clone();
        }
    };
    assert_eq!(data["errorCode"], 19, "{data}");
    assert_eq!(data["errorMessage"], format!("{BUSY} is busy"));
    assert_eq!(data["operationName"], "Dial");
    assert_eq!(data["phoneNumber"], "15000");
    assert_eq!(data["call"]["id"], id.as_str());
    assert_eq!(data["call"]["state"], "Released");
    // Links name the bridge, where the desktop reads.
    assert!(
        data["call"]["uri"].as_str().unwrap().starts_with(&base),
        "{data}"
    );

    // agent2 is not told: a call to agent2 committed after the error reaches agent2's watch
    // with no error before it.
    let marker = dial(&mut calls, "agent1", "15001").await;
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(5), watches[1].message())
            .await
            .expect("agent2's watch sees the marker call within 5 s")
            .unwrap()
            .unwrap();
        match message.kind {
            Some(pb::watch_calls_response::Kind::Event(event))
                if event.call.as_ref().is_some_and(|c| c.id == marker) =>
            {
                break;
            }
            Some(pb::watch_calls_response::Kind::Event(_)) => {}
            other => panic!("agent2 received {other:?}"),
        }
    }
    desktop.finish().await;
}
