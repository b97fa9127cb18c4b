//! Each refusal over gRPC carries the right code and GWS statusCode, and changes nothing.

mod common;

use common::*;
use pb::call_service_client::CallServiceClient;
use tonic::Code;
use tonic::transport::Channel;

/// Returns agent1's view of a call without its duration, to compare before and after.
async fn view(client: &mut CallServiceClient<Channel>, user: &str, id: &str) -> pb::Call {
    let mut call = client
        .get_call(as_user(user, pb::GetCallRequest { call_id: id.into() }))
        .await
        .unwrap()
        .into_inner()
        .call
        .unwrap();
    call.duration_seconds = 0;
    call
}

fn assert_refused(status: &tonic::Status, code: Code, gws: u32) {
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(gws_status(status), gws, "{status:?}");
    assert!(!status.message().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_call_id_is_not_found() {
    let gw = TestGateway::spawn().await;
    let mut client = gw.calls().await;
    let err = client
        .hold(as_user(
            "agent1",
            pb::HoldRequest {
                call_id: "NOPE".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_refused(&err, Code::NotFound, 6);
    assert_eq!(err.message(), "call NOPE not found");
    let err = client
        .hold(as_user(
            "agent1",
            pb::HoldRequest {
                call_id: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_refused(&err, Code::InvalidArgument, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operation_outside_capabilities_is_refused_and_changes_nothing() {
    let gw = TestGateway::spawn().await;
    let mut client = gw.calls().await;
    let dial = pb::DialRequest {
        destination: "15001".into(),
        ..Default::default()
    };
    let id = client
        .dial(as_user("agent1", dial))
        .await
        .unwrap()
        .into_inner()
        .call
        .unwrap()
        .id;
    let before = view(&mut client, "agent1", &id).await;
    assert!(!before.capabilities.contains(&"Hold".to_owned()));
    let err = client
        .hold(as_user(
            "agent1",
            pb::HoldRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_refused(&err, Code::FailedPrecondition, 2);
    assert!(
        err.message().contains("Hold is not possible"),
        "{}",
        err.message()
    );
    assert_eq!(view(&mut client, "agent1", &id).await, before);
    // Released calls have no capabilities at all.
    client
        .hangup(as_user(
            "agent1",
            pb::HangupRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .unwrap();
    let err = client
        .retrieve(as_user(
            "agent1",
            pb::RetrieveRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_refused(&err, Code::FailedPrecondition, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_malformed_destination_is_invalid() {
    let gw = TestGateway::spawn().await;
    let mut client = gw.calls().await;
    let err = client
        .dial(as_user("agent1", pb::DialRequest::default()))
        .await
        .unwrap_err();
    assert_refused(&err, Code::InvalidArgument, 1);
    assert_eq!(err.message(), "parameter destination is required");
    let bad = pb::DialRequest {
        destination: "15-001".into(),
        ..Default::default()
    };
    let err = client.dial(as_user("agent1", bad)).await.unwrap_err();
    assert_refused(&err, Code::InvalidArgument, 2);
    let own = pb::DialRequest {
        destination: "15000".into(),
        ..Default::default()
    };
    assert_refused(
        &client.dial(as_user("agent1", own)).await.unwrap_err(),
        Code::InvalidArgument,
        2,
    );
    assert!(
        client
            .list_calls(as_user("agent1", pb::ListCallsRequest {}))
            .await
            .unwrap()
            .into_inner()
            .calls
            .is_empty()
    );

    let id = established_call(&mut client).await;
    let before = view(&mut client, "agent1", &id).await;
    let transfer = pb::SingleStepTransferRequest {
        call_id: id.clone(),
        ..Default::default()
    };
    let err = client
        .single_step_transfer(as_user("agent1", transfer))
        .await
        .unwrap_err();
    assert_refused(&err, Code::InvalidArgument, 1);
    assert_eq!(view(&mut client, "agent1", &id).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acting_on_another_agents_call_is_denied() {
    let gw = TestGateway::spawn().await;
    let mut client = gw.calls().await;
    let id = established_call(&mut client).await;
    let before = view(&mut client, "agent1", &id).await;
    let err = client
        .hangup(as_user(
            "agent3",
            pb::HangupRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_refused(&err, Code::PermissionDenied, 5);
    let err = client
        .get_call(as_user(
            "agent3",
            pb::GetCallRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_refused(&err, Code::PermissionDenied, 5);
    assert_eq!(view(&mut client, "agent1", &id).await, before);
    // A service account may act for an agent of its contact center only.
    let err = client
        .hangup(as_service(
            Some("basic1"),
            pb::HangupRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_refused(&err, Code::PermissionDenied, 5);
    let err = client
        .hangup(as_service(
            None,
            pb::HangupRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_refused(&err, Code::InvalidArgument, 1);
    assert_eq!(view(&mut client, "agent1", &id).await, before);
    // ...and acting for agent1 works like agent1.
    let held = client
        .hold(as_service(
            Some("agent1"),
            pb::HoldRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(held.into_inner().call.unwrap().state(), pb::CallState::Held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_feature_refuses_recording_for_basic1() {
    let gw = TestGateway::spawn().await;
    let mut client = gw.calls().await;
    let mut watch = common::watch_calls(&mut client, "basic1").await;
    let dial = pb::DialRequest {
        destination: "9165550104".into(),
        ..Default::default()
    };
    let id = client
        .dial(as_user("basic1", dial))
        .await
        .unwrap()
        .into_inner()
        .call
        .unwrap()
        .id;
    next_event(&mut watch).await;
    let established = next_event(&mut watch).await.call.unwrap();
    assert_eq!(established.state(), pb::CallState::Established);
    assert_eq!(
        established.recording_state(),
        pb::RecordingState::Unspecified
    );
    assert!(
        !established
            .capabilities
            .iter()
            .any(|c| c.contains("Recording"))
    );
    let before = view(&mut client, "basic1", &id).await;
    let err = client
        .start_call_recording(as_user(
            "basic1",
            pb::StartCallRecordingRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_refused(&err, Code::PermissionDenied, 3);
    assert!(
        err.message().contains("api-voice-recording"),
        "{}",
        err.message()
    );
    assert_eq!(view(&mut client, "basic1", &id).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_or_missing_credentials_are_unauthenticated() {
    let gw = TestGateway::spawn().await;
    let mut client = gw.calls().await;
    let id = established_call(&mut client).await;
    let before = view(&mut client, "agent1", &id).await;
    let err = client
        .hold(with_basic(
            "agent1",
            "wrong",
            pb::HoldRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_refused(&err, Code::Unauthenticated, 20);
    let err = client
        .hold(tonic::Request::new(pb::HoldRequest {
            call_id: id.clone(),
        }))
        .await
        .unwrap_err();
    assert_refused(&err, Code::Unauthenticated, 20);
    let mut bogus = tonic::Request::new(pb::HoldRequest {
        call_id: id.clone(),
    });
    bogus
        .metadata_mut()
        .insert("authorization", "Basic !!!".parse().unwrap());
    assert_refused(
        &client.hold(bogus).await.unwrap_err(),
        Code::Unauthenticated,
        20,
    );
    let mut bad_token = tonic::Request::new(pb::HoldRequest {
        call_id: id.clone(),
    });
    bad_token
        .metadata_mut()
        .insert("authorization", "Bearer nope".parse().unwrap());
    assert_refused(
        &client.hold(bad_token).await.unwrap_err(),
        Code::Unauthenticated,
        20,
    );
    assert_eq!(view(&mut client, "agent1", &id).await, before);
}

/// Refusals of every kind commit no event: the watch's next event after them is the one
/// that follows the last before them, with the very next sequence number (sequences are
/// gateway-wide: any committed change moves them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_emit_no_event() {
    let gw = TestGateway::spawn().await;
    let mut client = gw.calls().await;
    let id = established_call(&mut client).await;
    // The last event committed anywhere, from a contact-center snapshot.
    let whole_center = |from_sequence| {
        as_service(
            None,
            pb::WatchCallsRequest {
                from_sequence,
                contact_center: true,
                epoch: String::new(),
            },
        )
    };
    let mut center = client
        .watch_calls(whole_center(None))
        .await
        .unwrap()
        .into_inner();
    let last = snapshot(&mut center).await.sequence;
    drop(center);
    let call_id = || id.clone();
    let refusals: Vec<(&str, tonic::Status)> = vec![
        (
            "Hold of an unknown call",
            client
                .hold(as_user(
                    "agent1",
                    pb::HoldRequest {
                        call_id: "NOPE".into(),
                    },
                ))
                .await
                .unwrap_err(),
        ),
        (
            "Retrieve of a call not held",
            client
                .retrieve(as_user(
                    "agent1",
                    pb::RetrieveRequest { call_id: call_id() },
                ))
                .await
                .unwrap_err(),
        ),
        (
            "Dial without a destination",
            client
                .dial(as_user("agent1", pb::DialRequest::default()))
                .await
                .unwrap_err(),
        ),
        (
            "Hold of another agent's call",
            client
                .hold(as_user("agent3", pb::HoldRequest { call_id: call_id() }))
                .await
                .unwrap_err(),
        ),
        (
            "Hold with a wrong password",
            client
                .hold(with_basic(
                    "agent1",
                    "wrong",
                    pb::HoldRequest { call_id: call_id() },
                ))
                .await
                .unwrap_err(),
        ),
    ];
    for (what, status) in &refusals {
        assert_ne!(status.code(), Code::Ok, "{what}");
    }
    client
        .hold(as_user("agent1", pb::HoldRequest { call_id: call_id() }))
        .await
        .unwrap();
    // Resumed after the last event before the refusals, the first event is the Hold's.
    let mut resumed = client
        .watch_calls(whole_center(Some(last)))
        .await
        .unwrap()
        .into_inner();
    let first = next_event(&mut resumed).await;
    assert_eq!(
        (first.sequence, first.call.unwrap().state()),
        (last + 1, pb::CallState::Held),
        "refusals committed events: {refusals:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_outside_the_history_asks_for_resync() {
    let gw = TestGateway::spawn_with(|config| config.limits.event_history = 2).await;
    let mut client = gw.calls().await;
    established_call(&mut client).await; // four events
    let stale = pb::WatchCallsRequest {
        from_sequence: Some(1),
        contact_center: false,
        epoch: String::new(),
    };
    let err = client
        .watch_calls(as_user("agent1", stale))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);
    assert!(err.message().contains("resync"), "{}", err.message());
    let ahead = pb::WatchCallsRequest {
        from_sequence: Some(99),
        contact_center: false,
        epoch: String::new(),
    };
    assert_eq!(
        client
            .watch_calls(as_user("agent1", ahead))
            .await
            .unwrap_err()
            .code(),
        Code::OutOfRange
    );
    // An agent may not watch the whole contact center.
    let cc = pb::WatchCallsRequest {
        from_sequence: None,
        contact_center: true,
        epoch: String::new(),
    };
    assert_eq!(
        client
            .watch_calls(as_user("agent1", cc))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_stops_reading_is_cut_off_with_a_resume_point() {
    let gw = TestGateway::spawn_with(|config| config.limits.watch_buffer = 4).await;
    let mut client = gw.calls().await;
    // The watcher's own connection grants a small HTTP/2 window (hyper's default is 2 MiB),
    // so HTTP/2 flow control stops the server pulling events soon after the reader stops.
    let channel = tonic::transport::Endpoint::from_shared(gw.grpc_url())
        .unwrap()
        .initial_stream_window_size(16 * 1024)
        .initial_connection_window_size(16 * 1024)
        .connect()
        .await
        .unwrap();
    let mut watcher = CallServiceClient::new(channel);
    let mut watch = watcher
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
    let first = snapshot(&mut watch).await;
    // Far more events than the buffer while the watcher does not read.
    for _ in 0..100 {
        let id = established_call(&mut client).await;
        client
            .hangup(as_user("agent1", pb::HangupRequest { call_id: id }))
            .await
            .unwrap();
    }
    let mut delivered = Vec::new();
    let status = loop {
        match within("the watcher's next message", watch.message()).await {
            Ok(Some(message)) => match message.kind {
                Some(pb::watch_calls_response::Kind::Event(event)) => {
                    delivered.push(event.sequence)
                }
                other => panic!("expected an event, got {other:?}"),
            },
            Ok(None) => panic!("stream ended without an error"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    // "... resume from sequence N of epoch E": N, in the epoch of the snapshot.
    let resume_from: u64 = status
        .message()
        .rsplit("resume from sequence ")
        .next()
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no resume point in {:?}", status.message()));
    assert!(
        status.message().contains(&first.epoch),
        "the resume point names the stream's epoch: {:?}",
        status.message()
    );

    // Every event of the contact center since the snapshot, replayed from the history.
    let whole_center = |from_sequence| {
        as_service(
            None,
            pb::WatchCallsRequest {
                from_sequence,
                contact_center: true,
                epoch: first.epoch.clone(),
            },
        )
    };
    let last = snapshot(
        &mut client
            .watch_calls(whole_center(None))
            .await
            .unwrap()
            .into_inner(),
    )
    .await
    .sequence;
    let mut read_to_last = async |from: u64| {
        let mut replay = client
            .watch_calls(whole_center(Some(from)))
            .await
            .unwrap()
            .into_inner();
        let mut sequences = Vec::new();
        while sequences.last().is_none_or(|s| *s < last) {
            sequences.push(next_event(&mut replay).await.sequence);
        }
        sequences
    };
    let all = read_to_last(first.sequence).await;
    assert!(
        delivered.len() < all.len(),
        "the watcher was cut off ({} of {} delivered)",
        delivered.len(),
        all.len()
    );
    // Nothing lost before the cut: the watcher got every event up to its resume point...
    let (before, after): (Vec<u64>, Vec<u64>) = all.iter().partition(|s| **s <= resume_from);
    assert_eq!(delivered, before, "delivered up to sequence {resume_from}");
    // ...and resuming there gets every later one, no gap, no duplicate.
    assert_eq!(read_to_last(resume_from).await, after);
}
