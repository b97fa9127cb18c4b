//! The foundation scenario end to end over gRPC with a tonic client: dial, answer,
//! recording, hold, consult transfer; watched from a stream opened before, and resumed.

mod common;

use common::*;
use pb::{CallState as S, NotificationType as N, RecordingState as R};

fn call_of<T>(response: tonic::Response<T>, get: impl Fn(T) -> Option<pb::Call>) -> pb::Call {
    get(response.into_inner()).expect("a call in the response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_answer_record_hold_transfer_watched_and_resumed() {
    let gw = TestGateway::spawn().await;
    let mut client = gw.calls().await;
    let mut cc_watch = client
        .watch_calls(as_service(
            None,
            pb::WatchCallsRequest {
                from_sequence: None,
                contact_center: true,
                epoch: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let first = snapshot(&mut cc_watch).await;
    assert_eq!((first.sequence, first.calls.len()), (0, 0));
    let mut agent1_watch = common::watch_calls(&mut client, "agent1").await;

    let dial = pb::DialRequest {
        destination: "15001".into(),
        ..Default::default()
    };
    let call = call_of(client.dial(as_user("agent1", dial)).await.unwrap(), |r| {
        r.call
    });
    assert_eq!(call.state(), S::Dialing);
    let id = call.id.clone();
    let ringing = client
        .list_calls(as_user("agent2", pb::ListCallsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ringing.calls[0].state(), S::Ringing);
    assert_eq!(ringing.calls[0].id, id);
    let answered = call_of(
        client
            .answer(as_user(
                "agent2",
                pb::AnswerRequest {
                    call_id: id.clone(),
                },
            ))
            .await
            .unwrap(),
        |r| r.call,
    );
    assert_eq!(answered.state(), S::Established);

    let req = || pb::StartCallRecordingRequest {
        call_id: id.clone(),
    };
    let rec = call_of(
        client
            .start_call_recording(as_user("agent1", req()))
            .await
            .unwrap(),
        |r| r.call,
    );
    assert_eq!(rec.recording_state(), R::Recording);
    let paused = call_of(
        client
            .pause_call_recording(as_user(
                "agent1",
                pb::PauseCallRecordingRequest {
                    call_id: id.clone(),
                },
            ))
            .await
            .unwrap(),
        |r| r.call,
    );
    assert_eq!(paused.recording_state(), R::Paused);
    assert!(
        paused
            .capabilities
            .contains(&"ResumeCallRecording".to_owned())
    );
    client
        .resume_call_recording(as_user(
            "agent1",
            pb::ResumeCallRecordingRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .unwrap();
    let stopped = call_of(
        client
            .stop_call_recording(as_user(
                "agent1",
                pb::StopCallRecordingRequest {
                    call_id: id.clone(),
                },
            ))
            .await
            .unwrap(),
        |r| r.call,
    );
    assert_eq!(stopped.recording_state(), R::Stopped);
    assert!(
        stopped
            .capabilities
            .contains(&"StartCallRecording".to_owned())
    );
    let gsip = stopped
        .user_data
        .iter()
        .find(|kv| kv.key == "GSIP_RECORD")
        .unwrap();
    assert_eq!(
        gsip.value,
        Some(pb::key_value::Value::StringValue("OFF".into()))
    );

    let held = call_of(
        client
            .hold(as_user(
                "agent1",
                pb::HoldRequest {
                    call_id: id.clone(),
                },
            ))
            .await
            .unwrap(),
        |r| r.call,
    );
    assert_eq!(held.state(), S::Held);
    let retrieved = call_of(
        client
            .retrieve(as_user(
                "agent1",
                pb::RetrieveRequest {
                    call_id: id.clone(),
                },
            ))
            .await
            .unwrap(),
        |r| r.call,
    );
    assert_eq!(retrieved.state(), S::Established);

    let transfer = pb::InitiateTransferRequest {
        call_id: id.clone(),
        destination: "15002".into(),
        ..Default::default()
    };
    let original = call_of(
        client
            .initiate_transfer(as_user("agent1", transfer))
            .await
            .unwrap(),
        |r| r.call,
    );
    assert_eq!(original.state(), S::Held);
    assert!(
        original
            .capabilities
            .contains(&"CompleteTransfer".to_owned())
    );
    let consult = client
        .list_calls(as_user("agent3", pb::ListCallsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .calls
        .remove(0);
    assert_eq!(
        (
            consult.state(),
            consult.call_type(),
            &consult.parent_call_id
        ),
        (S::Ringing, pb::CallType::Consult, &id)
    );
    client
        .answer(as_user(
            "agent3",
            pb::AnswerRequest {
                call_id: consult.id.clone(),
            },
        ))
        .await
        .unwrap();
    let done = call_of(
        client
            .complete_transfer(as_user(
                "agent1",
                pb::CompleteTransferRequest {
                    call_id: id.clone(),
                    consult_call_id: String::new(),
                },
            ))
            .await
            .unwrap(),
        |r| r.call,
    );
    assert_eq!(done.state(), S::Released);
    let agent2_view = call_of(
        client
            .get_call(as_user(
                "agent2",
                pb::GetCallRequest {
                    call_id: id.clone(),
                },
            ))
            .await
            .unwrap(),
        |r| r.call,
    );
    assert_eq!(agent2_view.participants[0].phone_number, "15002");

    // The contact-center watch saw every notification, numbered without gaps, in order.
    let expected: Vec<(&str, N, S, Option<R>)> = vec![
        ("15000", N::StatusChange, S::Dialing, None),
        ("15001", N::StatusChange, S::Ringing, None),
        ("15000", N::StatusChange, S::Established, None),
        ("15001", N::StatusChange, S::Established, None),
        (
            "15000",
            N::CallRecordingStateChange,
            S::Established,
            Some(R::Recording),
        ),
        (
            "15001",
            N::CallRecordingStateChange,
            S::Established,
            Some(R::Recording),
        ),
        (
            "15000",
            N::CallRecordingStateChange,
            S::Established,
            Some(R::Paused),
        ),
        (
            "15001",
            N::CallRecordingStateChange,
            S::Established,
            Some(R::Paused),
        ),
        (
            "15000",
            N::CallRecordingStateChange,
            S::Established,
            Some(R::Recording),
        ),
        (
            "15001",
            N::CallRecordingStateChange,
            S::Established,
            Some(R::Recording),
        ),
        (
            "15000",
            N::CallRecordingStateChange,
            S::Established,
            Some(R::Stopped),
        ),
        (
            "15001",
            N::CallRecordingStateChange,
            S::Established,
            Some(R::Stopped),
        ),
        ("15000", N::StatusChange, S::Held, None),
        ("15000", N::StatusChange, S::Established, None),
        ("15000", N::StatusChange, S::Held, None),
        ("15000", N::StatusChange, S::Dialing, None),
        ("15002", N::StatusChange, S::Ringing, None),
        ("15000", N::StatusChange, S::Established, None),
        ("15002", N::StatusChange, S::Established, None),
        ("15000", N::StatusChange, S::Released, None),
        ("15001", N::ParticipantsUpdated, S::Established, None),
        ("15002", N::StatusChange, S::Established, None),
        ("15000", N::StatusChange, S::Released, None),
        ("15002", N::StatusChange, S::Released, None),
    ];
    let mut seen = Vec::new();
    for (index, want) in expected.iter().enumerate() {
        let event = next_event(&mut cc_watch).await;
        assert_eq!(
            event.sequence,
            index as u64 + 1,
            "sequence numbers have no gap"
        );
        let call = event.call.clone().unwrap();
        let got = (
            event.phone_number.as_str(),
            event.notification_type(),
            call.state(),
            (want.3.is_some()).then(|| call.recording_state()),
        );
        assert_eq!(got, (want.0, want.1, want.2, want.3), "event {}", index + 1);
        seen.push(event);
    }

    // agent1's own watch saw only agent1's events, in the same order.
    let mine: Vec<u64> = seen
        .iter()
        .filter(|e| e.phone_number == "15000")
        .map(|e| e.sequence)
        .collect();
    for sequence in &mine {
        assert_eq!(next_event(&mut agent1_watch).await.sequence, *sequence);
    }

    // A watch resumed after event 10 gets exactly events 11.. of agent1, no gap, no duplicate.
    let mut resumed = client
        .watch_calls(as_user(
            "agent1",
            pb::WatchCallsRequest {
                from_sequence: Some(10),
                contact_center: false,
                epoch: first.epoch.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    for sequence in mine.iter().filter(|s| **s > 10) {
        assert_eq!(next_event(&mut resumed).await.sequence, *sequence);
    }
    // Nothing more is pending for agent1: the next event is a new one.
    client
        .dial(as_user(
            "agent1",
            pb::DialRequest {
                destination: "15001".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let fresh = next_event(&mut resumed).await;
    assert_eq!(fresh.sequence, seen.len() as u64 + 1);
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_call_from_the_simulator_rings_and_is_answered() {
    let gw = TestGateway::spawn().await;
    let mut sim = pb::simulator_service_client::SimulatorServiceClient::connect(gw.grpc_url())
        .await
        .unwrap();
    let request = pb::InboundCallRequest {
        from: "9165550104".into(),
        to: "15001".into(),
        ..Default::default()
    };
    let denied = sim
        .inbound_call(as_user("agent1", request.clone()))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let ringing = sim
        .inbound_call(as_user("admin", request))
        .await
        .unwrap()
        .into_inner()
        .call
        .unwrap();
    assert_eq!(
        (ringing.state(), ringing.call_type()),
        (S::Ringing, pb::CallType::Inbound)
    );
    assert!(ringing.capabilities.contains(&"Answer".to_owned()));
    assert_eq!(ringing.participants[0].e164_number, "+19165550104");
    let mut client = gw.calls().await;
    let answered = client
        .answer(as_user(
            "agent2",
            pb::AnswerRequest {
                call_id: ringing.id,
            },
        ))
        .await
        .unwrap();
    assert_eq!(answered.into_inner().call.unwrap().state(), S::Established);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_party_answers_a_dialed_call() {
    let gw = TestGateway::spawn().await;
    let mut client = gw.calls().await;
    let mut watch = common::watch_calls(&mut client, "agent1").await;
    let dial = pb::DialRequest {
        destination: "9165550104".into(),
        ..Default::default()
    };
    client.dial(as_user("agent1", dial)).await.unwrap();
    assert_eq!(
        next_event(&mut watch).await.call.unwrap().state(),
        S::Dialing
    );
    let answered = next_event(&mut watch).await.call.unwrap();
    assert_eq!(
        (answered.state(), answered.call_type()),
        (S::Established, pb::CallType::Outbound)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_port_serves_grpc_and_http() {
    let gw = TestGateway::spawn_single_port().await;
    let mut client = gw.calls().await;
    let calls = client
        .list_calls(as_user("agent1", pb::ListCallsRequest {}))
        .await
        .unwrap();
    assert!(calls.into_inner().calls.is_empty());
    let health = reqwest::get(format!("{}/healthz", gw.http_url()))
        .await
        .unwrap();
    assert!(health.status().is_success());
    let missing = reqwest::get(format!("{}/nowhere", gw.http_url()))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_watch_streams() {
    let gw = TestGateway::spawn().await;
    let mut client = gw.calls().await;
    let mut watch = common::watch_calls(&mut client, "agent1").await;
    gw.shutdown.cancel();
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), watch.message())
        .await
        .expect("the stream ends");
    // UNAVAILABLE, naming where to resume (tests/drain/main.rs checks the position).
    let status = end.expect_err("the stream ends with a status");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.metadata().get("resume-sequence").is_some(),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_caller_hangs_up_and_the_call_is_released() {
    let gw = TestGateway::spawn().await;
    let mut sim = pb::simulator_service_client::SimulatorServiceClient::connect(gw.grpc_url())
        .await
        .unwrap();
    let inbound = pb::InboundCallRequest {
        from: "9165550104".into(),
        to: "15001".into(),
        ..Default::default()
    };
    let call = sim
        .inbound_call(as_user("admin", inbound))
        .await
        .unwrap()
        .into_inner()
        .call
        .unwrap();
    let mut client = gw.calls().await;
    client
        .answer(as_user(
            "agent2",
            pb::AnswerRequest {
                call_id: call.id.clone(),
            },
        ))
        .await
        .unwrap();
    let hangup = |number: &str| pb::ExternalHangupRequest {
        call_id: call.id.clone(),
        number: number.into(),
    };
    let err = sim
        .external_hangup(as_user("agent2", hangup("9165550104")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let err = sim
        .external_hangup(as_user("admin", hangup("15000")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let released = sim
        .external_hangup(as_user("admin", hangup("9165550104")))
        .await
        .unwrap()
        .into_inner()
        .call
        .unwrap();
    assert_eq!(released.state(), S::Released);
    let view = client
        .get_call(as_user("agent2", pb::GetCallRequest { call_id: call.id }))
        .await
        .unwrap();
    assert_eq!(view.into_inner().call.unwrap().state(), S::Released);
}
