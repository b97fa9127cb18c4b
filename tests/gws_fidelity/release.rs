//! Point 1: a release is `StatusChange` + `Released` for every party, even when it also ends
//! a recording or a supervisor's mute of the agent.

use serde_json::{Value, json};
use voice_gateway::grpc::pb;

use crate::cometd_support::LpClient;
use crate::common::{TestGateway, basic};
use crate::support::{as_user, cometd_until, watch, watch_until};

fn released(event: &Value, call: &str) -> bool {
    event["data"]["call"]["id"] == call && event["data"]["call"]["state"] == "Released"
}

/// The release events of `call` among `events`: exactly one, a StatusChange with no
/// capabilities.
fn assert_cometd_release(events: &[Value], call: &str, who: &str) {
    let releases: Vec<&Value> = events.iter().filter(|e| released(e, call)).collect();
    assert_eq!(releases.len(), 1, "{who}: {events:#?}");
    let data = &releases[0]["data"];
    assert_eq!(data["messageType"], "CallStateChangeMessage", "{who}");
    assert_eq!(data["notificationType"], "StatusChange", "{who}: {data}");
    assert_eq!(data["call"]["capabilities"], json!([]), "{who}");
}

async fn assert_grpc_release(
    stream: &mut tonic::Streaming<pb::WatchCallsResponse>,
    call: &str,
    who: &str,
) {
    let events = watch_until(stream, |e| {
        e.call
            .as_ref()
            .is_some_and(|c| c.id == call && c.state() == pb::CallState::Released)
    })
    .await;
    let release = events.last().unwrap();
    assert_eq!(
        release.notification_type(),
        pb::NotificationType::StatusChange,
        "{who}: {release:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_up_a_recorded_call_is_status_change_released_on_cometd_and_grpc() {
    let gw = TestGateway::spawn().await;
    let mut grpc = gw.calls().await;
    let call = gw.established_call("agent1", "agent2", "15001").await;
    let call_id = call.clone();
    grpc.start_call_recording(as_user("agent1", pb::StartCallRecordingRequest { call_id }))
        .await
        .unwrap();
    let mut cometd = Vec::new();
    let mut watches = Vec::new();
    for who in ["agent1", "agent2"] {
        let mut client = LpClient::new(&gw, Some(basic(who)));
        client.ready("/v2/me/calls").await;
        cometd.push(client);
        watches.push(watch(&mut grpc, who).await);
    }

    let call_id = call.clone();
    grpc.hangup(as_user("agent2", pb::HangupRequest { call_id }))
        .await
        .unwrap();
    for ((client, stream), who) in cometd
        .iter_mut()
        .zip(&mut watches)
        .zip(["agent1", "agent2"])
    {
        let events = cometd_until(client, |e| released(e, call.as_str())).await;
        assert_cometd_release(&events, call.as_str(), who);
        assert_eq!(
            events.last().unwrap()["data"]["call"]["recordingState"],
            "Stopped"
        );
        assert_grpc_release(stream, call.as_str(), who).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releasing_a_monitored_muted_leg_is_status_change_released_on_cometd_and_grpc() {
    let gw = TestGateway::spawn().await;
    let mut grpc = gw.calls().await;
    let call = gw.established_call("agent1", "agent2", "15001").await;
    let target = Some(pb::MonitorTarget {
        phone_number: "15000".into(),
        mode: "AllCalls".into(),
        scope: "Call".into(),
        ..Default::default()
    });
    gw.devices()
        .await
        .barge_in(as_user("supervisor1", pb::BargeInRequest { target }))
        .await
        .unwrap();
    let call_id = call.clone();
    grpc.mute_monitored_user(as_user(
        "supervisor1",
        pb::MuteMonitoredUserRequest { call_id },
    ))
    .await
    .unwrap();
    let users = ["agent1", "supervisor1"];
    let mut cometd = Vec::new();
    let mut watches = Vec::new();
    for who in users {
        let mut client = LpClient::new(&gw, Some(basic(who)));
        client.ready("/v2/me/calls").await;
        cometd.push(client);
        watches.push(watch(&mut grpc, who).await);
    }

    let call_id = call.clone();
    grpc.hangup(as_user("agent1", pb::HangupRequest { call_id }))
        .await
        .unwrap();
    for ((client, stream), who) in cometd.iter_mut().zip(&mut watches).zip(users) {
        let events = cometd_until(client, |e| released(e, call.as_str())).await;
        assert_cometd_release(&events, call.as_str(), who);
        assert_grpc_release(stream, call.as_str(), who).await;
    }
}
