//! Devices, agent states and supervisor monitoring over the legacy JSON API, with reqwest
//! over real sockets: agent states on `/api/v2/me/channels/voice`, do-not-disturb,
//! forwarding and monitoring on `/api/v2/me/devices/{id}`, the monitoring call's operations
//! on `/api/v2/me/calls/{id}`; and the refusals, each with nothing changed.

mod common;

use common::desktop::{Agent, assert_error, stable};
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const READY: &str = "9430250E-0A1B-421F-B372-F29E69366DED";
const NOT_READY: &str = "900D55CC-2BB0-431F-8BF9-D3525B383BE6";
const AFTER_CALL_WORK: &str = "D3663509-3D82-4DD3-A82E-2EA8EFA02AEF";
const AUX_WORK: &str = "2B36138D-C564-4562-A8CB-3C32D564F296";

fn accepted(reply: (StatusCode, Value), what: &Value) {
    assert_eq!(reply, (StatusCode::OK, json!({"statusCode": 0})), "{what}");
}

/// Returns the agent's device resource from the device list.
async fn device(agent: &Agent) -> Value {
    let (status, body) = agent.get("/api/v2/me/devices?fields=*").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["devices"].as_array().unwrap().len(), 1, "{body}");
    body["devices"][0].clone()
}

/// Returns the agent's voice channel from the channel list.
async fn voice_channel(agent: &Agent) -> Value {
    let (status, body) = agent.get("/api/v2/me/channels?fields=*").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["channels"].as_array().unwrap().len(), 1, "{body}");
    body["channels"][0].clone()
}

/// POSTs an agent-state operation to the voice channel.
async fn on_channel(agent: &Agent, body: Value) -> (StatusCode, Value) {
    agent.post("/api/v2/me/channels/voice", body).await
}

/// POSTs an operation to the agent's own device.
async fn on_device(agent: &Agent, body: Value) -> (StatusCode, Value) {
    let id = agent.device_id().await;
    agent.post(&format!("/api/v2/me/devices/{id}"), body).await
}

/// Everything a refusal must leave alone: each agent's device, channel and calls.
async fn world(agents: &[&Agent]) -> Value {
    let mut views = Vec::new();
    for agent in agents {
        let (_, calls) = agent.get("/api/v2/me/calls?fields=*").await;
        views.push(json!({
            "device": device(agent).await,
            "channel": voice_channel(agent).await,
            "calls": stable(&calls),
        }));
    }
    Value::Array(views)
}

/// Runs an attempt and asserts its refusal: HTTP status, `statusCode`, a message, and
/// nothing changed for `agents`. Returns the message.
async fn refused<Fut>(agents: &[&Agent], status: u16, code: u64, attempt: Fut) -> String
where
    Fut: std::future::Future<Output = (StatusCode, Value)>,
{
    let before = world(agents).await;
    let reply = attempt.await;
    assert_error(&reply, status, code);
    assert_eq!(world(agents).await, before, "{}", reply.1);
    reply.1["statusMessage"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_goes_ready_not_ready_after_call_work_ready_over_json() {
    let gw = TestGateway::spawn().await;
    let a1 = Agent::new(&gw.http_url(), "agent1");
    let steps = [
        (
            json!({"operationName": "Ready", "workmode": "ManualIn"}),
            json!({"id": READY, "displayName": "Ready", "state": "Ready", "workMode": "ManualIn"}),
        ),
        (
            json!({"operationName": "NotReady"}),
            json!({"id": NOT_READY, "displayName": "Not Ready", "state": "NotReady"}),
        ),
        (
            json!({"operationName": "AfterCallWork"}),
            json!({"id": AFTER_CALL_WORK, "displayName": "After Call Work", "state": "NotReady",
                "workMode": "AfterCallWork"}),
        ),
        (
            json!({"operationName": "Ready"}),
            json!({"id": READY, "displayName": "Ready", "state": "Ready"}),
        ),
        (
            json!({"operationName": "AuxWork"}),
            json!({"id": AUX_WORK, "displayName": "Aux Work", "state": "NotReady",
                "workMode": "AuxWork"}),
        ),
        (
            json!({"operationName": "Ready", "workmode": "AutoIn"}),
            json!({"id": READY, "displayName": "Ready", "state": "Ready", "workMode": "AutoIn"}),
        ),
    ];
    for (op, user_state) in steps {
        accepted(on_channel(&a1, op.clone()).await, &op);
        let device = device(&a1).await;
        assert_eq!(device["userState"], user_state, "after {op}");
        assert_eq!(device["deviceState"], "Active");
        let channel = voice_channel(&a1).await;
        assert_eq!(channel["userState"], user_state, "after {op}");
    }

    let base = gw.http_url();
    let (_, uris) = a1.get("/api/v2/me/channels").await;
    let voice = format!("{base}/api/v2/me/channels/voice");
    assert_eq!(uris, json!({"statusCode": 0, "uris": [voice]}));
    let (status, one) = a1.get("/api/v2/me/channels/voice").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        one,
        json!({"statusCode": 0, "channel": {"channel": "voice", "dndState": "Off",
            "userState": {"id": READY, "displayName": "Ready", "state": "Ready",
                "workMode": "AutoIn"},
            "uri": voice, "path": "/channels/voice"}})
    );
    let (_, me) = a1.get("/api/v2/me?subresources=channels").await;
    assert_eq!(me["user"]["channels"], json!([one["channel"]]));
    assert!(me["user"].get("devices").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_call_work_with_a_wrap_up_time_returns_to_ready() {
    let gw = TestGateway::spawn().await;
    let a1 = Agent::new(&gw.http_url(), "agent1");
    let mut watch = gw
        .devices()
        .await
        .watch_devices(as_user("agent1", pb::WatchDevicesRequest::default()))
        .await
        .unwrap()
        .into_inner();
    watch.message().await.unwrap().unwrap();
    let op = json!({"operationName": "AfterCallWork", "wrapUpTime": "1"});
    accepted(on_channel(&a1, op.clone()).await, &op);
    let work_mode = |event: pb::DeviceEvent| {
        let state = event.device.unwrap().user_state.unwrap();
        (state.state, state.work_mode)
    };
    let expect = |state: &str, mode: &str| (state.to_owned(), mode.to_owned());
    assert_eq!(
        work_mode(next_device_event(&mut watch).await),
        expect("NotReady", "AfterCallWork")
    );
    // The wrap-up time is up after one second; the watch waits for it (five at most).
    assert_eq!(
        work_mode(next_device_event(&mut watch).await),
        expect("Ready", "")
    );
    assert_eq!(
        device(&a1).await["userState"],
        json!({"id": READY, "displayName": "Ready", "state": "Ready"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn do_not_disturb_refuses_calls_and_forwarding_rings_the_target() {
    let gw = TestGateway::spawn().await;
    let base = gw.http_url();
    let (a1, a2, a3) = (
        Agent::new(&base, "agent1"),
        Agent::new(&base, "agent2"),
        Agent::new(&base, "agent3"),
    );
    let dnd = json!({"operationName": "DoNotDisturbOn"});
    accepted(on_device(&a2, dnd.clone()).await, &dnd);
    let d2 = device(&a2).await;
    assert_eq!(d2["doNotDisturb"], "On");
    let caps = d2["capabilities"].as_array().unwrap();
    assert!(caps.contains(&json!("DoNotDisturbOff")), "{caps:?}");
    assert!(!caps.contains(&json!("DoNotDisturbOn")), "{caps:?}");
    assert_eq!(voice_channel(&a2).await["dndState"], "On");

    let before = world(&[&a1, &a2]).await;
    let a1_device = a1.device_id().await;
    let dial = json!({"operationName": "Dial", "destination": {"phoneNumber": "15001"}});
    let reply = a1
        .post(&format!("/api/v2/me/devices/{a1_device}/calls"), dial)
        .await;
    assert_error(&reply, 409, 19);
    assert!(
        reply.1["statusMessage"].as_str().unwrap().contains("busy"),
        "{}",
        reply.1
    );
    assert_eq!(world(&[&a1, &a2]).await, before, "no call was created");

    let off = json!({"operationName": "DoNotDisturbOff"});
    accepted(on_device(&a2, off.clone()).await, &off);
    assert_eq!(device(&a2).await["doNotDisturb"], "Off");
    let forward = json!({"operationName": "ForwardCallsOn", "destination": "15002"});
    accepted(on_device(&a2, forward.clone()).await, &forward);
    let d2 = device(&a2).await;
    assert_eq!(d2["forwardTo"], "15002");
    assert!(
        d2["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("ForwardCallsOff"))
    );

    let id = a1.dial("15001").await;
    let ringing = a3.call(&id).await;
    assert_eq!(
        (&ringing["state"], &ringing["dnis"]),
        (&json!("Ringing"), &json!("15001"))
    );
    assert!(a2.call_ids().await.is_empty(), "agent2's line forwards");
    a3.op(&id, json!({"operationName": "Answer"})).await;
    assert_eq!(a1.call(&id).await["state"], "Established");

    let stop = json!({"operationName": "ForwardCallsOff"});
    accepted(on_device(&a2, stop.clone()).await, &stop);
    assert!(device(&a2).await.get("forwardTo").is_none());
}

/// Returns the supervisor's one call (the monitoring leg) with the given id.
async fn leg(supervisor: &Agent, id: &str) -> Value {
    assert_eq!(supervisor.call_ids().await, vec![id.to_owned()]);
    supervisor.call(id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_listens_in_barges_in_mutes_unmutes_and_cancels_over_json() {
    let gw = TestGateway::spawn().await;
    let base = gw.http_url();
    let (a1, sup) = (
        Agent::new(&base, "agent1"),
        Agent::new(&base, "supervisor1"),
    );
    let id = gw.established_call("agent1", "agent2", "15001").await;
    let call = a1.call(&id).await;
    assert!(!call["supervisorListeningIn"].as_bool().unwrap());
    // The call names agent1's device by its deviceUri, which answers as agent1's device.
    let target = call["deviceUri"].as_str().unwrap().to_owned();
    let path = target.strip_prefix(&base).unwrap();
    let (status, own) = a1.get(path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(own["device"], device(&a1).await);

    let listen = json!({"operationName": "ListenIn", "targetDeviceUri": target});
    accepted(on_device(&sup, listen.clone()).await, &listen);
    let sup_device = device(&sup).await;
    assert_eq!(
        sup_device["supervisorMonitoringState"],
        json!({"state": "ListenIn", "mode": "AllCalls", "scope": "Call",
            "targetDeviceUri": target})
    );
    let caps = sup_device["capabilities"].as_array().unwrap();
    assert!(
        caps.contains(&json!("CancelSupervisorMonitoring")),
        "{caps:?}"
    );
    assert!(!caps.contains(&json!("ListenIn")), "{caps:?}");
    let monitoring = leg(&sup, &id).await;
    assert_eq!(
        (&monitoring["monitoring"], &monitoring["mute"]),
        (&json!(true), &json!("On"))
    );
    let caps = monitoring["capabilities"].as_array().unwrap();
    assert!(caps.contains(&json!("SwitchToBargeIn")), "{caps:?}");
    let agent_view = a1.call(&id).await;
    assert_eq!(agent_view["supervisorListeningIn"], true);
    assert_eq!(agent_view["participants"].as_array().unwrap().len(), 1);

    sup.op(&id, json!({"operationName": "SwitchToBargeIn"}))
        .await;
    let state = &device(&sup).await["supervisorMonitoringState"];
    assert_eq!(state["state"], "BargeIn");
    assert_eq!(leg(&sup, &id).await["mute"], "Off");
    let agent_view = a1.call(&id).await;
    assert_eq!(agent_view["supervisorListeningIn"], false);
    assert_eq!(agent_view["participants"].as_array().unwrap().len(), 2);

    sup.op(&id, json!({"operationName": "MuteMonitoredUser"}))
        .await;
    assert_eq!(a1.call(&id).await["monitoredUserMuted"], true);
    assert_eq!(leg(&sup, &id).await["monitoredUserMuted"], true);
    sup.op(&id, json!({"operationName": "UnmuteMonitoredUser"}))
        .await;
    assert_eq!(a1.call(&id).await["monitoredUserMuted"], false);

    let cancel = json!({"operationName": "CancelSupervisorMonitoring"});
    accepted(on_device(&sup, cancel.clone()).await, &cancel);
    let sup_device = device(&sup).await;
    assert!(
        sup_device.get("supervisorMonitoringState").is_none(),
        "{sup_device}"
    );
    assert!(
        sup_device["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("ListenIn"))
    );
    assert!(sup.call_ids().await.is_empty(), "the monitoring leg ended");
    let agent_view = a1.call(&id).await;
    assert_eq!(agent_view["state"], "Established");
    assert_eq!(agent_view["participants"].as_array().unwrap().len(), 1);
    assert_eq!(agent_view["supervisorListeningIn"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_refusals_change_nothing() {
    let gw = TestGateway::spawn_with(|config| {
        config.users.push(voice_gateway::config::UserConfig {
            name: "basicsup".into(),
            first_name: String::new(),
            last_name: String::new(),
            contact_center: "basic".into(),
            phone_number: "16100".into(),
            password: Some("demo".into()),
            password_hash: None,
            roles: vec!["supervisor".into()],
        });
    })
    .await;
    let base = gw.http_url();
    let agent = |name: &str| Agent::new(&base, name);
    let (a1, a2, sup1, sup2) = (
        agent("agent1"),
        agent("agent2"),
        agent("supervisor1"),
        agent("supervisor2"),
    );
    let (basic1, basicsup) = (agent("basic1"), agent("basicsup"));
    let id = gw.established_call("agent1", "agent2", "15001").await;
    let target = a1.call(&id).await["deviceUri"].as_str().unwrap().to_owned();
    let listen = |extra: Value| {
        let mut body = json!({"operationName": "ListenIn", "targetDeviceUri": target});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let everyone = [&a1, &a2, &sup1, &sup2];

    let message = refused(&everyone, 403, 5, on_device(&a2, listen(json!({})))).await;
    assert!(message.contains("not a supervisor"), "{message}");
    let by_number = json!({"operationName": "ListenIn", "phoneNumber": "16000"});
    let message = refused(
        &[&basic1, &basicsup],
        403,
        3,
        on_device(&basicsup, by_number),
    )
    .await;
    assert!(message.contains("api-supervisor-monitoring"), "{message}");
    let unknown = json!({"operationName": "ListenIn",
        "targetDeviceUri": format!("{base}/api/v2/devices/no-such-device")});
    refused(&everyone, 404, 6, on_device(&sup1, unknown)).await;
    let wrong_device = sup1.post("/api/v2/me/devices/not-my-device", listen(json!({})));
    refused(&everyone, 404, 6, wrong_device).await;
    let bad_mode = listen(json!({"supervisorMonitoringMode": "Sometimes"}));
    refused(&everyone, 400, 2, on_device(&sup1, bad_mode)).await;
    let bad_scope = listen(json!({"supervisorMonitoringScope": "Everything"}));
    refused(&everyone, 400, 2, on_device(&sup1, bad_scope)).await;
    let no_target = json!({"operationName": "Coach"});
    refused(&everyone, 400, 1, on_device(&sup1, no_target)).await;
    let cancel = json!({"operationName": "CancelSupervisorMonitoring"});
    refused(&everyone, 400, 2, on_device(&sup1, cancel)).await;

    let scoped = listen(json!({"supervisorMonitoringMode": "NextCall",
        "supervisorMonitoringScope": "Agent"}));
    accepted(on_device(&sup1, scoped.clone()).await, &scoped);
    let state = json!({"state": "ListenIn", "mode": "NextCall", "scope": "Agent",
        "targetDeviceUri": target});
    assert_eq!(device(&sup1).await["supervisorMonitoringState"], state);
    let coach = json!({"operationName": "Coach", "phoneNumber": "15000"});
    let message = refused(&everyone, 409, 19, on_device(&sup2, coach)).await;
    assert!(message.contains("already monitored"), "{message}");
    assert!(
        device(&sup2)
            .await
            .get("supervisorMonitoringState")
            .is_none()
    );
    assert_eq!(device(&sup1).await["supervisorMonitoringState"], state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_and_agent_state_refusals_change_nothing() {
    let gw = TestGateway::spawn().await;
    let base = gw.http_url();
    let (a1, a2) = (Agent::new(&base, "agent1"), Agent::new(&base, "agent2"));
    let both = [&a1, &a2];
    let ready = json!({"operationName": "Ready", "workmode": "ManualIn"});
    accepted(on_channel(&a1, ready.clone()).await, &ready);

    let op = |name: &str, extra: Value| {
        let mut body = json!({"operationName": name});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    for bad in [json!("Turbo"), json!("manualin"), json!(""), json!(1)] {
        let body = op("Ready", json!({"workmode": bad}));
        refused(&both, 400, 2, on_channel(&a1, body)).await;
    }
    for bad in [
        json!("soon"),
        json!("-1"),
        json!(-1),
        json!(1.5),
        json!([1]),
    ] {
        let body = op("AfterCallWork", json!({"wrapUpTime": bad}));
        refused(&both, 400, 2, on_channel(&a1, body)).await;
    }
    // Unknown names, and operations posted to a resource they do not act on.
    let dial = op("Dial", json!({"destination": {"phoneNumber": "15001"}}));
    let start = op("StartContactCenterSession", json!({"channels": ["voice"]}));
    for body in [op("Fly", json!({})), op("DoNotDisturbOn", json!({})), start] {
        refused(&both, 400, 2, on_channel(&a1, body)).await;
    }
    for body in [
        op("Fly", json!({})),
        op("Ready", json!({})),
        op("Hangup", json!({})),
        op("SwitchToBargeIn", json!({})),
        dial,
    ] {
        refused(&both, 400, 2, on_device(&a1, body)).await;
    }
    refused(
        &both,
        400,
        2,
        a1.post("/api/v2/me", op("NotReady", json!({}))),
    )
    .await;

    // Unknown devices and channels.
    let a2_device = a2.device_id().await;
    for path in [
        "/api/v2/me/devices/no-such-device".to_owned(),
        format!("/api/v2/me/devices/{a2_device}"),
    ] {
        let body = op("DoNotDisturbOn", json!({}));
        refused(&both, 404, 6, a1.post(&path, body)).await;
    }
    refused(
        &both,
        404,
        6,
        a1.get(&format!("/api/v2/devices/{a2_device}")),
    )
    .await;
    refused(&both, 404, 6, a1.get("/api/v2/me/channels/chat")).await;
    let chat_ready = a1.post("/api/v2/me/channels/chat", op("Ready", json!({})));
    refused(&both, 404, 6, chat_ready).await;

    // Forwarding takes a plain string, and ForwardCallsOff needs forwarding on.
    for bad in [
        json!({"phoneNumber": "15002"}),
        json!(15002),
        json!("15-002"),
    ] {
        let body = op("ForwardCallsOn", json!({"destination": bad}));
        refused(&both, 400, 2, on_device(&a1, body)).await;
    }
    let no_destination = op("ForwardCallsOn", json!({}));
    refused(&both, 400, 1, on_device(&a1, no_destination)).await;
    let to_self = op("ForwardCallsOn", json!({"destination": "15000"}));
    refused(&both, 400, 2, on_device(&a1, to_self)).await;
    let off = op("ForwardCallsOff", json!({}));
    refused(&both, 400, 2, on_device(&a1, off)).await;
    assert_eq!(device(&a1).await["userState"]["workMode"], "ManualIn");

    // Without a contact-center session, agent states are refused with the core's message.
    let end = op("EndContactCenterSession", json!({}));
    accepted(a1.post("/api/v2/me", end.clone()).await, &end);
    let ended = device(&a1).await;
    assert_eq!(ended["deviceState"], "Inactive");
    let message = refused(&both, 400, 2, on_channel(&a1, op("Ready", json!({})))).await;
    assert!(
        message.contains("StartContactCenterSession first"),
        "{message}"
    );
    assert_eq!(device(&a1).await, ended);
}
