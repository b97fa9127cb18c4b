//! Point 1: a release is `StatusChange` + `Released` for every party, even when it also ends
//! a recording or a supervisor's mute of the agent.

use serde_json::{Value, json};
use voice_gateway::core::{
    CallOperation, DeviceRequest, MonitorKind, MonitorMode, MonitorScope, MonitorTarget,
};
use voice_gateway::grpc::pb;

use crate::cometd_support::{BayeuxGateway, LpClient, basic};
use crate::support::{cometd_until, watch, watch_until};

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

#[tokio::test]
async fn hanging_up_a_recorded_call_is_status_change_released_on_cometd_and_grpc() {
    let gw = BayeuxGateway::spawn().await;
    let mut grpc = gw.call_service().await;
    let call = gw.established_call("agent1", "agent2", "15001");
    let core = &gw.state.core;
    core.execute(
        &gw.principal("agent1"),
        &call,
        CallOperation::StartCallRecording,
    )
    .unwrap();
    let mut cometd = Vec::new();
    let mut watches = Vec::new();
    for who in ["agent1", "agent2"] {
        let mut client = LpClient::new(&gw, Some(basic(who)));
        client.ready("/v2/me/calls").await;
        cometd.push(client);
        watches.push(watch(&mut grpc, who).await);
    }

    core.execute(&gw.principal("agent2"), &call, CallOperation::Hangup)
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

#[tokio::test]
async fn releasing_a_monitored_muted_leg_is_status_change_released_on_cometd_and_grpc() {
    let gw = BayeuxGateway::spawn().await;
    let mut grpc = gw.call_service().await;
    let call = gw.established_call("agent1", "agent2", "15001");
    let core = &gw.state.core;
    let supervisor = gw.principal("supervisor1");
    let barge_in = DeviceRequest::Monitor {
        kind: MonitorKind::BargeIn,
        target: MonitorTarget::PhoneNumber("15000".into()),
        mode: MonitorMode::AllCalls,
        scope: MonitorScope::Call,
    };
    core.device_operation(&supervisor, None, barge_in).unwrap();
    core.execute(&supervisor, &call, CallOperation::MuteMonitoredUser)
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

    core.execute(&gw.principal("agent1"), &call, CallOperation::Hangup)
        .unwrap();
    for ((client, stream), who) in cometd.iter_mut().zip(&mut watches).zip(users) {
        let events = cometd_until(client, |e| released(e, call.as_str())).await;
        assert_cometd_release(&events, call.as_str(), who);
        assert_grpc_release(stream, call.as_str(), who).await;
    }
}
