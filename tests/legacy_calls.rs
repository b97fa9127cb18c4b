//! The GWS JSON API end to end over a socket: the recording scenario, the resources and
//! the call operations with their parameter forms.

mod common;

use common::desktop::{Agent, assert_error, stable};
use common::{TestGateway, pb, watch_until};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent1_dials_agent2_answers_and_recording_starts_and_stops() {
    let gw = TestGateway::spawn().await;
    let (a1, a2) = (
        Agent::new(&gw.http_url(), "agent1"),
        Agent::new(&gw.http_url(), "agent2"),
    );
    let device = a1.device_id().await;
    let dial = json!({"operationName": "Dial", "destination": {"phoneNumber": "15001"}});
    let reply = a1
        .post(&format!("/api/v2/me/devices/{device}/calls"), dial)
        .await;
    assert_eq!(reply, (StatusCode::OK, json!({"statusCode": 0})));
    let ids = a2.call_ids().await;
    assert_eq!(ids.len(), 1);
    let id = ids[0].clone();
    assert_eq!(a2.call(&id).await["state"], "Ringing");
    a2.op(&id, json!({"operationName": "Answer"})).await;

    let recording = a1
        .post(
            &format!("/api/v2/me/calls/{id}"),
            json!({"operationName": "StartCallRecording"}),
        )
        .await;
    assert_eq!(recording, (StatusCode::OK, json!({"statusCode": 0})));
    let during = a1.call(&id).await;
    assert_eq!(during["recordingState"], "Recording");
    assert_eq!(during["userData"]["GSIP_RECORD"], "ON");
    let stopped = a1
        .post(
            &format!("/api/v2/me/calls/{id}"),
            json!({"operationName": "StopCallRecording"}),
        )
        .await;
    assert_eq!(stopped, (StatusCode::OK, json!({"statusCode": 0})));

    let call = a1.call(&id).await;
    assert_eq!(call["state"], "Established");
    assert_eq!(call["recordingState"], "Stopped");
    assert_eq!(call["userData"]["GSIP_RECORD"], "OFF");
    let caps: Vec<&str> = call["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(caps.contains(&"StartCallRecording"), "{caps:?}");
    assert!(!caps.contains(&"StopCallRecording"), "{caps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_call_resource_has_every_field_of_the_spec() {
    let gw = TestGateway::spawn().await;
    let base = gw.http_url();
    let a1 = Agent::new(&base, "agent1");
    let id = gw.established_call("agent1", "agent2", "15001").await;
    let call = a1.call(&id).await;
    assert_eq!(call["id"], id);
    assert_eq!(call["callUuid"], id);
    assert_eq!(call["connId"].as_str().unwrap().len(), 16);
    assert_eq!(call["callType"], "Internal");
    assert_eq!(call["dnis"], "15001");
    assert!(call["duration"].is_string());
    assert_eq!(call["mute"], "Off");
    assert_eq!(call["uri"], format!("{base}/api/v2/me/calls/{id}"));
    assert_eq!(call["path"], format!("/calls/{id}"));
    let device = a1.device_id().await;
    assert_eq!(call["deviceUri"], format!("{base}/api/v2/devices/{device}"));
    assert_eq!(
        call["participants"],
        json!([{"phoneNumber": "15001", "digits": "15001", "formattedPhoneNumber": "15001", "e164Number": ""}])
    );
    for flag in ["supervisorListeningIn", "monitoredUserMuted", "monitoring"] {
        assert_eq!(call[flag], false, "{flag}");
    }
    let (status, list) = a1.get("/api/v2/me/calls?fields=*").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["statusCode"], 0);
    assert_eq!(stable(&list["calls"][0]), stable(&call));
    let (_, uris) = a1.get("/api/v2/me/calls").await;
    assert_eq!(
        uris,
        json!({"statusCode": 0, "uris": [format!("{base}/api/v2/me/calls/{id}")]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_with_and_without_a_trailing_slash_are_the_same() {
    let gw = TestGateway::spawn().await;
    let a1 = Agent::new(&gw.http_url(), "agent1");
    let id = gw.established_call("agent1", "agent2", "15001").await;
    for path in [
        "/api/v2/me",
        "/api/v2/me/devices",
        "/api/v2/me/calls",
        "/api/v2/features",
        "/api/v2/diagnostics/version",
        &format!("/api/v2/me/calls/{id}"),
    ] {
        let plain = a1.get(path).await;
        let slash = a1.get(&format!("{path}/")).await;
        assert_eq!(
            (plain.0, slash.0),
            (StatusCode::OK, StatusCode::OK),
            "{path}"
        );
        assert_eq!(stable(&plain.1), stable(&slash.1), "{path}");
    }
    a1.op(&format!("{id}/"), json!({"operationName": "Hold"}))
        .await;
    assert_eq!(a1.call(&id).await["state"], "Held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_devices_features_and_version_render_what_the_gateway_serves() {
    let gw = TestGateway::spawn().await;
    let base = gw.http_url();
    let a1 = Agent::new(&base, "agent1");
    let (status, me) = a1.get("/api/v2/me").await;
    assert_eq!(status, StatusCode::OK);
    let user = &me["user"];
    assert_eq!(user["userName"], "agent1");
    assert_eq!(user["firstName"], "Ada");
    assert_eq!(user["roles"], json!(["ROLE_AGENT"]));
    assert_eq!(user["uri"], format!("{base}/api/v2/me"));
    assert!(user.get("devices").is_none());

    let (_, full) = a1
        .get("/api/v2/me?subresources=features,devices,channels,settings")
        .await;
    let device = &full["user"]["devices"][0];
    assert_eq!(device["phoneNumber"], "15000");
    assert_eq!(device["deviceState"], "Active");
    assert_eq!(device["telephonyNetwork"], "Private");
    assert_eq!(device["doNotDisturb"], "Off");
    assert_eq!(device["userState"]["state"], "NotReady");
    assert_eq!(device["userState"]["displayName"], "Not Ready");
    let caps = device["capabilities"].as_array().unwrap();
    assert!(caps.contains(&json!("DoNotDisturbOn")), "{caps:?}");
    assert!(device.get("supervisorMonitoringState").is_none());
    let names: Vec<_> = full["user"]["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].clone())
        .collect();
    assert!(names.contains(&json!("api-voice-recording")));
    let channel = &full["user"]["channels"][0];
    assert_eq!(channel["channel"], "voice");
    assert_eq!(channel["userState"], device["userState"]);
    assert_eq!(channel["dndState"], "Off");
    // `*` embeds the agent-state settings too (issue 17: they were left out before).
    assert_eq!(
        full["user"]["settings"]["agent-states"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );

    let id = device["id"].as_str().unwrap();
    let (_, devices) = a1.get("/api/v2/me/devices").await;
    assert_eq!(
        devices,
        json!({"statusCode": 0, "uris": [format!("{base}/api/v2/me/devices/{id}")]})
    );
    let (_, one) = a1.get(&format!("/api/v2/me/devices/{id}")).await;
    assert_eq!(&one["device"], device);
    let (_, only) = a1.get("/api/v2/me/devices?fields=id,phoneNumber").await;
    assert_eq!(only["devices"], json!([{"id": id, "phoneNumber": "15000"}]));

    let basic = Agent::new(&base, "basic1");
    let (_, features) = basic.get("/api/v2/features?fields=*").await;
    assert_eq!(features["features"].as_array().unwrap().len(), 1);
    assert_eq!(features["features"][0]["name"], "api-voice");
    let (_, uris) = basic.get("/api/v2/features").await;
    assert_eq!(
        uris["uris"],
        json!([format!("{base}/api/v2/features/api-voice")])
    );
    assert_eq!(
        basic.get("/api/v2/features/api-voice-recording").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        basic.get("/api/v2/features/api-voice").await.1["feature"]["name"],
        "api-voice"
    );

    let (_, version) = a1.get("/api/v2/diagnostics/version").await;
    assert_eq!(
        version,
        json!({"statusCode": 0, "version": env!("CARGO_PKG_VERSION")})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_center_sessions_end_and_start_the_device() {
    let gw = TestGateway::spawn().await;
    let a1 = Agent::new(&gw.http_url(), "agent1");
    let device_state = || async { a1.get("/api/v2/me/devices?fields=deviceState").await.1 };
    let end = json!({"operationName": "EndContactCenterSession"});
    assert_eq!(
        a1.post("/api/v2/me", end).await,
        (StatusCode::OK, json!({"statusCode": 0}))
    );
    assert_eq!(
        device_state().await["devices"][0]["deviceState"],
        "Inactive"
    );
    // An inactive device places no call.
    let device = a1.device_id().await;
    let dial = json!({"operationName": "Dial", "destination": {"phoneNumber": "15001"}});
    let path = format!("/api/v2/me/devices/{device}/calls");
    assert_error(&a1.post(&path, dial.clone()).await, 400, 2);

    let other_place = json!({"operationName": "StartContactCenterSession", "channels": ["voice"], "place": "15001"});
    assert_error(&a1.post("/api/v2/me", other_place).await, 404, 6);
    let none = json!({"operationName": "StartContactCenterSession"});
    assert_error(&a1.post("/api/v2/me", none).await, 400, 1);
    let chat = json!({"operationName": "StartContactCenterSession", "channels": ["chat"]});
    assert_error(&a1.post("/api/v2/me", chat).await, 400, 2);
    let misplaced = json!({"operationName": "Hangup"});
    assert_error(&a1.post("/api/v2/me", misplaced).await, 400, 2);
    assert_eq!(
        device_state().await["devices"][0]["deviceState"],
        "Inactive"
    );

    let start = json!({"operationName": "StartContactCenterSession", "channels": ["voice"], "place": "15000"});
    assert_eq!(
        a1.post("/api/v2/me", start).await,
        (StatusCode::OK, json!({"statusCode": 0}))
    );
    assert_eq!(device_state().await["devices"][0]["deviceState"], "Active");
    assert_eq!(a1.post(&path, dial).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_operations_take_their_parameters_from_json() {
    let gw = TestGateway::spawn().await;
    let base = gw.http_url();
    let (a1, a2, a3) = (
        Agent::new(&base, "agent1"),
        Agent::new(&base, "agent2"),
        Agent::new(&base, "agent3"),
    );
    let id = gw.established_call("agent1", "agent2", "15001").await;
    let mut watch = common::watch_calls(&mut gw.calls().await, "agent1").await;

    a1.op(&id, json!({"operationName": "MuteCall"})).await;
    assert_eq!(a1.call(&id).await["mute"], "On");
    a1.op(&id, json!({"operationName": "UnmuteCall"})).await;
    assert_eq!(a1.call(&id).await["mute"], "Off");
    a1.op(&id, json!({"operationName": "SendDtmf", "digits": "12#"}))
        .await;
    // DTMF changes no field of the call: its event carries the digits sent.
    let dtmf = watch_until(&mut watch, |e| {
        e.notification_type() == pb::NotificationType::DtmfSent
    })
    .await;
    assert_eq!(dtmf.last().unwrap().digits, "12#");
    a1.op(
        &id,
        json!({"operationName": "AttachUserData", "userData": {"Case": "A-1", "Score": 7}}),
    )
    .await;
    a1.op(
        &id,
        json!({"operationName": "UpdateUserData", "userData": {"Case": "A-2"}}),
    )
    .await;
    let data = a1.call(&id).await["userData"].clone();
    assert_eq!(
        (data["Case"].clone(), data["Score"].clone()),
        (json!("A-2"), json!(7))
    );
    a1.op(
        &id,
        json!({"operationName": "DeleteUserDataPair", "key": "Score"}),
    )
    .await;
    assert!(a1.call(&id).await["userData"].get("Score").is_none());
    a1.op(&id, json!({"operationName": "DeleteUserData"})).await;
    // No data left: the call resource has no userData (as GWS omits an empty one).
    assert!(a1.call(&id).await.get("userData").is_none());
    a1.op(&id, json!({"operationName": "SetCallDisposition", "disposition": "Sale", "dispositionKey": "Outcome"})).await;
    assert_eq!(a1.call(&id).await["userData"]["Outcome"], "Sale");

    // Consult transfer to agent3, completed with an absolute consultCallUri.
    a1.op(&id, json!({"operationName": "InitiateTransfer", "destination": {"phoneNumber": "15002"}, "userData": {"Why": "help"}})).await;
    let consult = a1.call_ids().await.into_iter().find(|c| *c != id).unwrap();
    let consult_call = a1.call(&consult).await;
    assert_eq!(consult_call["callType"], "Consult");
    assert_eq!(
        consult_call["parentCallUri"],
        format!("{base}/api/v2/me/calls/{id}")
    );
    a3.op(&consult, json!({"operationName": "Answer"})).await;
    // Swap with a path, then back with a bare id.
    a1.op(
        &consult,
        json!({"operationName": "SwapCalls", "otherCallUri": format!("/calls/{id}")}),
    )
    .await;
    assert_eq!(a1.call(&id).await["state"], "Established");
    a1.op(
        &id,
        json!({"operationName": "SwapCalls", "otherCallUri": consult}),
    )
    .await;
    let uri = format!("{base}/api/v2/me/calls/{consult}");
    a1.op(
        &id,
        json!({"operationName": "CompleteTransfer", "consultCallUri": uri}),
    )
    .await;
    assert_eq!(a1.call(&id).await["state"], "Released");
    assert!(a1.call_ids().await.is_empty());
    let (_, on_a2) = a2.get(&format!("/api/v2/me/calls/{id}")).await;
    assert_eq!(on_a2["call"]["participants"][0]["phoneNumber"], "15002");

    // A conference: agent2 adds agent1 in one step, removes them again, then clears.
    a2.op(
        &id,
        json!({"operationName": "SingleStepConference", "destination": {"phoneNumber": "15000"}}),
    )
    .await;
    a1.op(&id, json!({"operationName": "Answer"})).await;
    assert_eq!(
        a2.call(&id).await["participants"].as_array().unwrap().len(),
        2
    );
    a2.op(
        &id,
        json!({"operationName": "RemoveParticipantFromConference", "participant": "15000"}),
    )
    .await;
    assert_eq!(a1.call(&id).await["state"], "Released");
    a2.op(&id, json!({"operationName": "Hangup"})).await;
    assert_eq!(a3.call(&id).await["state"], "Released");
}
