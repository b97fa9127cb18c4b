//! The authorization audit: one table entry per RPC of the compiled descriptors and per
//! route of the HTTP listener, saying who may call it; each entry's promises are checked
//! against a running gateway (the refusal's code, and that nothing changed), and an RPC or
//! route without an entry (or an entry naming none) fails the audit.
//!
//! How to read an entry: `owner` is the user for whom the request, with valid credentials,
//! would be legitimate; each [`Check`] says who else tries it and what they must get
//! (`tests/authz_support/checks.rs` spells out the attempts). Requests are valid
//! (`tests/authz_support/bodies.rs`), so a refusal is never a parameter error. After every
//! attempt, the gateway-wide event sequence and every demo user's calls and devices must
//! be as before.

mod authz_support;
mod common;

use std::collections::{BTreeMap, BTreeSet};

use authz_support::bodies::{grpc_body, legacy_body};
use authz_support::surface::{announced_services, compare, served_methods, served_routes};
use authz_support::{
    Check, Credentials, Findings, Fixture, Front, MISSING_FEATURE, NOT_FOUND, NOT_PERMITTED,
    Subject, attempts, bayeux, call_raw, judge_grpc, judge_http, send_http, unchanged, with_slash,
};
use serde_json::{Value, json};
use voice_gateway::config::Config;

use Check::*;

/// The configuration of every gateway the audit starts: the demo, with outside parties
/// answering after 50 ms.
fn audit_config() -> Config {
    let mut config = Config::demo();
    config.switch.external_answer_ms = 50;
    // The audit sends hundreds of wrong credentials from 127.0.0.1 on purpose; the
    // failed-sign-in throttle (tested in tests/auth_limits.rs) would refuse them with 429
    // before the check under audit, so it is off here.
    config.auth.max_failures = 0;
    config.auth.max_failures_per_address = 0;
    config
}

/// A gRPC method and its promises.
struct Rpc {
    /// `/package.Service/Method`.
    method: &'static str,
    /// The user the request is legitimate for.
    owner: &'static str,
    checks: &'static [Check],
}

const PUBLIC: &[Check] = &[Public];
/// Reads and agent-state operations on the caller's own things.
const SELF_ONLY: &[Check] = &[NeedsAuth, ActAs];
/// Watches: an agent may not watch the whole contact center.
const WATCH: &[Check] = &[NeedsAuth, ActAs, Role(NOT_PERMITTED)];
const CALL_OP: &[Check] = &[NeedsAuth, ActAs, OwnCall(NOT_PERMITTED)];
/// Call operations that need `api-voice-recording` or `api-supervisor-monitoring`. The
/// monitoring-leg operations have no role check: only a supervisor has a monitoring leg,
/// so an agent is refused them by the call's capabilities (FAILED_PRECONDITION).
const GATED_CALL_OP: &[Check] = &[
    NeedsAuth,
    ActAs,
    OwnCall(NOT_PERMITTED),
    Feature(MISSING_FEATURE),
];
const DEVICE_OP: &[Check] = &[NeedsAuth, ActAs, OwnDevice(NOT_FOUND)];
const MONITOR: &[Check] = &[
    NeedsAuth,
    ActAs,
    OtherTenant(NOT_FOUND),
    Feature(MISSING_FEATURE),
    Role(NOT_PERMITTED),
];
/// A supervisor's control of an agent's state (`api-supervisor-agent-control`).
const AGENT_CONTROL: &[Check] = &[
    NeedsAuth,
    ActAs,
    OtherTenant(NOT_FOUND),
    Feature(MISSING_FEATURE),
    Role(NOT_PERMITTED),
];
const CANCEL_MONITOR: &[Check] = &[
    NeedsAuth,
    ActAs,
    Feature(MISSING_FEATURE),
    Role(NOT_PERMITTED),
];

/// Every RPC the gateway serves: `voice.v1`, health and reflection.
fn rpc_table() -> Vec<Rpc> {
    let rpc = |method, checks| Rpc {
        method,
        owner: "agent1",
        checks,
    };
    let rpc_of = |owner, method, checks| Rpc {
        method,
        owner,
        checks,
    };
    vec![
        rpc("/voice.v1.CallService/Dial", DEVICE_OP),
        rpc("/voice.v1.CallService/Answer", CALL_OP),
        rpc("/voice.v1.CallService/Reject", CALL_OP),
        rpc("/voice.v1.CallService/Hangup", CALL_OP),
        rpc("/voice.v1.CallService/ClearCall", CALL_OP),
        rpc("/voice.v1.CallService/Hold", CALL_OP),
        rpc("/voice.v1.CallService/Retrieve", CALL_OP),
        rpc("/voice.v1.CallService/MuteCall", CALL_OP),
        rpc("/voice.v1.CallService/UnmuteCall", CALL_OP),
        rpc("/voice.v1.CallService/DeleteUserData", CALL_OP),
        rpc("/voice.v1.CallService/SendDtmf", CALL_OP),
        rpc("/voice.v1.CallService/SingleStepTransfer", CALL_OP),
        rpc("/voice.v1.CallService/InitiateTransfer", CALL_OP),
        rpc("/voice.v1.CallService/InitiateConference", CALL_OP),
        rpc("/voice.v1.CallService/SingleStepConference", CALL_OP),
        rpc("/voice.v1.CallService/CompleteTransfer", CALL_OP),
        rpc("/voice.v1.CallService/CompleteConference", CALL_OP),
        rpc(
            "/voice.v1.CallService/RemoveParticipantFromConference",
            CALL_OP,
        ),
        rpc("/voice.v1.CallService/SwapCalls", CALL_OP),
        rpc("/voice.v1.CallService/AttachUserData", CALL_OP),
        rpc("/voice.v1.CallService/UpdateUserData", CALL_OP),
        rpc("/voice.v1.CallService/DeleteUserDataPair", CALL_OP),
        rpc("/voice.v1.CallService/SetCallDisposition", CALL_OP),
        rpc("/voice.v1.CallService/StartCallRecording", GATED_CALL_OP),
        rpc("/voice.v1.CallService/StopCallRecording", GATED_CALL_OP),
        rpc("/voice.v1.CallService/PauseCallRecording", GATED_CALL_OP),
        rpc("/voice.v1.CallService/ResumeCallRecording", GATED_CALL_OP),
        rpc("/voice.v1.CallService/SwitchToListenIn", GATED_CALL_OP),
        rpc("/voice.v1.CallService/SwitchToBargeIn", GATED_CALL_OP),
        rpc("/voice.v1.CallService/MuteMonitoredUser", GATED_CALL_OP),
        rpc("/voice.v1.CallService/UnmuteMonitoredUser", GATED_CALL_OP),
        rpc("/voice.v1.CallService/GetCall", CALL_OP),
        rpc("/voice.v1.CallService/ListCalls", SELF_ONLY),
        rpc("/voice.v1.CallService/WatchCalls", WATCH),
        rpc(
            "/voice.v1.DeviceService/StartContactCenterSession",
            SELF_ONLY,
        ),
        rpc("/voice.v1.DeviceService/EndContactCenterSession", SELF_ONLY),
        rpc("/voice.v1.DeviceService/Ready", SELF_ONLY),
        rpc("/voice.v1.DeviceService/NotReady", SELF_ONLY),
        rpc("/voice.v1.DeviceService/AfterCallWork", SELF_ONLY),
        rpc("/voice.v1.DeviceService/AuxWork", SELF_ONLY),
        rpc("/voice.v1.DeviceService/DoNotDisturbOn", DEVICE_OP),
        rpc("/voice.v1.DeviceService/DoNotDisturbOff", DEVICE_OP),
        rpc("/voice.v1.DeviceService/ForwardCallsOn", DEVICE_OP),
        rpc("/voice.v1.DeviceService/ForwardCallsOff", DEVICE_OP),
        rpc_of("supervisor1", "/voice.v1.DeviceService/ListenIn", MONITOR),
        rpc_of("supervisor1", "/voice.v1.DeviceService/Coach", MONITOR),
        rpc_of("supervisor1", "/voice.v1.DeviceService/BargeIn", MONITOR),
        rpc_of(
            "supervisor2",
            "/voice.v1.DeviceService/CancelSupervisorMonitoring",
            CANCEL_MONITOR,
        ),
        rpc_of(
            "supervisor1",
            "/voice.v1.DeviceService/ControlAgentState",
            AGENT_CONTROL,
        ),
        rpc("/voice.v1.DeviceService/ListDevices", SELF_ONLY),
        rpc("/voice.v1.DeviceService/WatchDevices", WATCH),
        rpc_of(
            "admin",
            "/voice.v1.SimulatorService/InboundCall",
            &[
                NeedsAuth,
                ActAs,
                Role(NOT_PERMITTED),
                OtherTenant(NOT_PERMITTED),
            ],
        ),
        rpc_of(
            "admin",
            "/voice.v1.SimulatorService/ExternalHangup",
            &[
                NeedsAuth,
                ActAs,
                Role(NOT_PERMITTED),
                OtherTenant(NOT_FOUND),
            ],
        ),
        rpc("/grpc.health.v1.Health/Check", PUBLIC),
        rpc("/grpc.health.v1.Health/Watch", PUBLIC),
        rpc(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            PUBLIC,
        ),
        rpc(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            PUBLIC,
        ),
    ]
}

/// An `operationName` posted to a legacy route, and its promises over HTTP.
struct Op {
    name: &'static str,
    owner: &'static str,
    checks: Vec<Check>,
}

/// An HTTP route and its promises.
struct Route {
    /// `GET`, `POST`, or `ANY` for every method.
    method: &'static str,
    /// The path pattern, as the router declares it.
    path: &'static str,
    owner: &'static str,
    /// The promises of a route without operations.
    checks: &'static [Check],
    /// For a POST of the JSON API: each operation it accepts, with its promises.
    ops: Vec<Op>,
    /// The concrete path, naming a subject's resources.
    url: fn(&Subject) -> String,
}

const BAYEUX_LONG_POLLING: &[Check] = &[BayeuxAuth, BayeuxOwnSession, BayeuxOwnChannels];
/// A WebSocket may adopt a session by `clientId` alone, as CometD does by default
/// (`ws.requireHandshakePerConnection=false`; `cometd_websocket.rs` pins it), so only a
/// handshake and the channels are checked here.
const BAYEUX_WEBSOCKET: &[Check] = &[BayeuxAuth, BayeuxOwnChannels];

/// Every route of the HTTP listener. The POST of `/api/v2/me/calls/{id}` takes every
/// call operation of CallService, with the promises of its gRPC entry (less `ActAs`).
fn route_table(rpcs: &[Rpc]) -> Vec<Route> {
    let route = |method, path, checks, url: fn(&Subject) -> String| Route {
        method,
        path,
        owner: "agent1",
        checks,
        ops: Vec::new(),
        url,
    };
    let post = |path, ops, url: fn(&Subject) -> String| Route {
        method: "POST",
        path,
        owner: "agent1",
        checks: &[],
        ops,
        url,
    };
    let op_of = |owner, name, checks: &[Check]| Op {
        name,
        owner,
        checks: checks.to_vec(),
    };
    let op = |name, checks: &[Check]| op_of("agent1", name, checks);
    let own_device = &[NeedsAuth, OwnDevice(NOT_FOUND)];
    let monitor = &[
        NeedsAuth,
        OwnDevice(NOT_FOUND),
        OtherTenant(NOT_FOUND),
        Feature(MISSING_FEATURE),
        Role(NOT_PERMITTED),
    ];
    let cancel = &[
        NeedsAuth,
        OwnDevice(NOT_FOUND),
        Feature(MISSING_FEATURE),
        Role(NOT_PERMITTED),
    ];
    let call_ops = rpcs
        .iter()
        .filter_map(|rpc| {
            let name = rpc.method.strip_prefix("/voice.v1.CallService/")?;
            let reads = ["Dial", "GetCall", "ListCalls", "WatchCalls"];
            (!reads.contains(&name)).then(|| Op {
                name,
                owner: rpc.owner,
                checks: rpc.checks.iter().copied().filter(|c| *c != ActAs).collect(),
            })
        })
        .collect();
    let auth: &'static [Check] = &[NeedsAuth];
    vec![
        route("GET", "/healthz", PUBLIC, |_| "/healthz".into()),
        route("GET", "/api/v2/me", auth, |_| {
            "/api/v2/me?subresources=*".into()
        }),
        post(
            "/api/v2/me",
            vec![
                // `place` names the caller's own number.
                op("StartContactCenterSession", own_device),
                op("EndContactCenterSession", auth),
            ],
            |_| "/api/v2/me".into(),
        ),
        route("GET", "/api/v2/me/devices", auth, |_| {
            "/api/v2/me/devices?fields=*".into()
        }),
        route(
            "GET",
            "/api/v2/me/devices/{id}",
            &[NeedsAuth, OwnDevice(NOT_FOUND)],
            |s| format!("/api/v2/me/devices/{}", s.device),
        ),
        post(
            "/api/v2/me/devices/{id}",
            vec![
                op("DoNotDisturbOn", own_device),
                op("DoNotDisturbOff", own_device),
                op("ForwardCallsOn", own_device),
                op("ForwardCallsOff", own_device),
                op_of("supervisor1", "ListenIn", monitor),
                op_of("supervisor1", "Coach", monitor),
                op_of("supervisor1", "BargeIn", monitor),
                op_of("supervisor2", "CancelSupervisorMonitoring", cancel),
            ],
            |s| format!("/api/v2/me/devices/{}", s.device),
        ),
        route(
            "GET",
            "/api/v2/devices/{id}",
            &[NeedsAuth, OwnDevice(NOT_FOUND)],
            |s| format!("/api/v2/devices/{}", s.device),
        ),
        route("GET", "/api/v2/me/channels", auth, |_| {
            "/api/v2/me/channels?fields=*".into()
        }),
        route("GET", "/api/v2/me/channels/voice", auth, |_| {
            "/api/v2/me/channels/voice".into()
        }),
        post(
            "/api/v2/me/channels/voice",
            ["Ready", "NotReady", "AfterCallWork", "AuxWork"]
                .into_iter()
                .map(|name| op(name, auth))
                .collect(),
            |_| "/api/v2/me/channels/voice".into(),
        ),
        post(
            "/api/v2/users/{id}/channels/voice",
            ["Ready", "NotReady", "AfterCallWork", "AuxWork"]
                .into_iter()
                .map(|name| {
                    let checks: Vec<Check> = AGENT_CONTROL
                        .iter()
                        .copied()
                        .filter(|c| *c != ActAs)
                        .collect();
                    op_of("supervisor1", name, &checks)
                })
                .collect(),
            |s| format!("/api/v2/users/{}/channels/voice", s.peer),
        ),
        post(
            "/api/v2/me/devices/{id}/calls",
            vec![op("Dial", own_device)],
            |s| format!("/api/v2/me/devices/{}/calls", s.device),
        ),
        route("GET", "/api/v2/me/calls", auth, |_| {
            "/api/v2/me/calls?fields=*".into()
        }),
        route(
            "GET",
            "/api/v2/me/calls/{id}",
            &[NeedsAuth, OwnCall(NOT_PERMITTED)],
            |s| format!("/api/v2/me/calls/{}", s.call),
        ),
        post("/api/v2/me/calls/{id}", call_ops, |s| {
            format!("/api/v2/me/calls/{}", s.call)
        }),
        route("GET", "/api/v2/features", auth, |_| {
            "/api/v2/features?fields=*".into()
        }),
        // A feature the contact center lacks reads as if it did not exist.
        route(
            "GET",
            "/api/v2/features/{name}",
            &[NeedsAuth, Feature(NOT_FOUND)],
            |_| "/api/v2/features/api-voice-recording".into(),
        ),
        route("GET", "/api/v2/diagnostics/version", auth, |_| {
            "/api/v2/diagnostics/version".into()
        }),
        route("GET", "/api/v2/settings/agent-states", auth, |_| {
            "/api/v2/settings/agent-states".into()
        }),
        route(
            "GET",
            "/api/v2/voice-environments/{id}",
            &[NeedsAuth, OtherTenant(NOT_FOUND)],
            |s| {
                let center = if s.user.starts_with("basic") {
                    "basic"
                } else {
                    "demo"
                };
                format!(
                    "/api/v2/voice-environments/{}",
                    voice_gateway::core::voice_environment_id(center)
                )
            },
        ),
        route("ANY", "/api", &[Unrouted], |_| "/api".into()),
        route("ANY", "/api/", &[Unrouted], |_| "/api/".into()),
        route("ANY", "/api/{*rest}", &[Unrouted], |_| {
            "/api/v2/nowhere".into()
        }),
        route("POST", "/api/v2/notifications", BAYEUX_LONG_POLLING, |_| {
            "/api/v2/notifications".into()
        }),
        route(
            "POST",
            "/api/v2/notifications/",
            BAYEUX_LONG_POLLING,
            |_| "/api/v2/notifications/".into(),
        ),
        route(
            "POST",
            "/api/v2/notifications/{*rest}",
            BAYEUX_LONG_POLLING,
            |_| "/api/v2/notifications/handshake".into(),
        ),
        route("GET", "/api/v2/notifications", BAYEUX_WEBSOCKET, |_| {
            "/api/v2/notifications".into()
        }),
        route("GET", "/api/v2/notifications/", BAYEUX_WEBSOCKET, |_| {
            "/api/v2/notifications/".into()
        }),
        route(
            "GET",
            "/api/v2/notifications/{*rest}",
            BAYEUX_WEBSOCKET,
            |_| "/api/v2/notifications/websocket".into(),
        ),
    ]
}

/// Whether a route belongs to the CometD endpoint.
fn is_bayeux(route: &Route) -> bool {
    route
        .path
        .starts_with(voice_gateway::gws::cometd::NOTIFICATIONS_PATH)
}

#[test]
fn every_rpc_has_exactly_one_entry() {
    let table = rpc_table();
    let listed: Vec<String> = table.iter().map(|rpc| rpc.method.to_owned()).collect();
    let mut problems = compare(&served_methods(), &listed, "RPC");
    for rpc in &table {
        let public = rpc.checks == PUBLIC;
        if public && rpc.method.starts_with("/voice.") {
            problems.push(format!("{} is a voice.v1 RPC marked public", rpc.method));
        }
        if !public && !rpc.checks.contains(&NeedsAuth) {
            problems.push(format!(
                "{} neither is public nor needs credentials",
                rpc.method
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_http_route_and_operation_has_exactly_one_entry() {
    let rpcs = rpc_table();
    let table = route_table(&rpcs);
    let listed: Vec<(String, String)> = table
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    let mut problems = compare(&served_routes(), &listed, "route");
    for route in &table {
        let guarded = |checks: &[Check]| {
            checks == PUBLIC
                || checks == [Unrouted]
                || checks.contains(&NeedsAuth)
                || checks.contains(&BayeuxAuth)
        };
        let unguarded = if route.ops.is_empty() {
            !guarded(route.checks)
        } else {
            route.ops.iter().any(|op| !guarded(&op.checks))
        };
        if unguarded {
            problems.push(format!(
                "{} {} has an unguarded entry",
                route.method, route.path
            ));
        }
        let json_post = route.method == "POST" && !is_bayeux(route);
        if json_post == route.ops.is_empty() {
            problems.push(format!(
                "{} {}: POSTs of the JSON API list their operations, nothing else does",
                route.method, route.path
            ));
        }
    }
    // Every operation of CallService and DeviceService is posted to exactly one route.
    let reads = [
        "GetCall",
        "ListCalls",
        "WatchCalls",
        "ListDevices",
        "WatchDevices",
    ];
    let operations: BTreeSet<String> = served_methods()
        .iter()
        .filter(|m| {
            m.starts_with("/voice.v1.CallService/") || m.starts_with("/voice.v1.DeviceService/")
        })
        .map(|m| m.rsplit('/').next().unwrap().to_owned())
        .filter(|name| !reads.contains(&name.as_str()))
        .collect();
    // The agent-state operations a supervisor posts for an agent are the one RPC
    // ControlAgentState, whose `operation_name` names them.
    let posted: Vec<String> = table
        .iter()
        .flat_map(|r| match r.path {
            "/api/v2/users/{id}/channels/voice" => vec!["ControlAgentState".to_owned()],
            _ => r.ops.iter().map(|op| op.name.to_owned()).collect(),
        })
        .collect();
    problems.extend(compare(&operations, &posted, "operationName"));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_refuses_what_its_entry_says_and_changes_nothing() {
    let fixture = Fixture::start(audit_config()).await;
    let mut baseline = fixture.state().await;
    let mut findings = Findings::default();
    for rpc in rpc_table() {
        for &check in rpc.checks {
            for attempt in attempts(check, rpc.owner, Front::Grpc, &fixture.sessions) {
                let subject = fixture.subject(attempt.subject, attempt.whole_center);
                let body = grpc_body(rpc.method, &subject);
                let outcome =
                    call_raw(&fixture.channel, rpc.method, body, &attempt.credentials).await;
                let what = format!("{} {check:?} ({})", rpc.method, attempt.label);
                findings.record(&what, judge_grpc(&outcome, attempt.expect));
                unchanged(&fixture, &mut baseline, &mut findings, &what).await;
            }
        }
    }
    findings.assert_none("gRPC");
    assert!(
        findings.attempts() > 200,
        "{} attempts",
        findings.attempts()
    );
}

/// One HTTP request of the audit.
struct HttpAttempt {
    what: String,
    method: &'static str,
    path: String,
    body: Option<Value>,
    credentials: Credentials,
    expect: authz_support::Expect,
}

/// The requests that test a route of the JSON API (or the health check): each check of the
/// route, or of each operation it accepts, with the attempts the check stands for. A route
/// that needs credentials is also tried without them on its trailing-slash form.
fn http_attempts(route: &Route, fixture: &Fixture) -> Vec<HttpAttempt> {
    let promises: Vec<(Option<&str>, &str, &[Check])> = if route.ops.is_empty() {
        vec![(None, route.owner, route.checks)]
    } else {
        let ops = route.ops.iter();
        ops.map(|op| (Some(op.name), op.owner, &op.checks[..]))
            .collect()
    };
    let methods: &[&'static str] = match route.method {
        "ANY" => &["GET", "POST", "DELETE"],
        "GET" => &["GET"],
        "POST" => &["POST"],
        other => panic!("no attempts for method {other}"),
    };
    let mut all = Vec::new();
    for (operation, owner, checks) in promises {
        for &check in checks {
            let mut tries: Vec<_> = attempts(check, owner, Front::Http, &fixture.sessions)
                .into_iter()
                .map(|attempt| (attempt, false))
                .collect();
            if check == NeedsAuth && route.path.starts_with("/api/v2/") {
                let mut slash = tries[0].0.clone();
                slash.label = "no credentials, path with a trailing slash".into();
                tries.push((slash, true));
            }
            for (attempt, slash) in tries {
                let subject = fixture.subject(attempt.subject, attempt.whole_center);
                let path = (route.url)(&subject);
                let path = if slash { with_slash(&path) } else { path };
                let body = operation.map(|name| legacy_body(name, &subject));
                for &method in methods {
                    all.push(HttpAttempt {
                        what: format!(
                            "{method} {path} {}{check:?} ({})",
                            operation.map(|op| format!("{op} ")).unwrap_or_default(),
                            attempt.label
                        ),
                        method,
                        path: path.clone(),
                        body: body.clone(),
                        credentials: attempt.credentials.clone(),
                        expect: attempt.expect,
                    });
                }
            }
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_json_route_refuses_what_its_entry_says_and_changes_nothing() {
    let fixture = Fixture::start(audit_config()).await;
    let mut baseline = fixture.state().await;
    let mut findings = Findings::default();
    let rpcs = rpc_table();
    for route in route_table(&rpcs).iter().filter(|r| !is_bayeux(r)) {
        for attempt in http_attempts(route, &fixture) {
            let HttpAttempt {
                what,
                method,
                path,
                body,
                credentials,
                expect,
            } = attempt;
            let (status, text) =
                send_http(&fixture, method, &path, body.as_ref(), &credentials).await;
            findings.record(&what, judge_http(status, &text, expect));
            unchanged(&fixture, &mut baseline, &mut findings, &what).await;
        }
    }
    findings.assert_none("HTTP");
    assert!(
        findings.attempts() > 200,
        "{} attempts",
        findings.attempts()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notifications_endpoint_refuses_what_its_entries_say() {
    let fixture = Fixture::start(audit_config()).await;
    let mut baseline = fixture.state().await;
    let mut findings = Findings::default();
    let rpcs = rpc_table();
    for route in route_table(&rpcs).iter().filter(|r| is_bayeux(r)) {
        let path = (route.url)(&fixture.subject(route.owner, false));
        for &check in route.checks {
            let outcomes = match (route.method, check) {
                ("POST", BayeuxAuth) => bayeux::long_polling_auth(&fixture, &path).await,
                ("POST", BayeuxOwnSession) => {
                    bayeux::long_polling_own_session(&fixture, &path).await
                }
                ("POST", BayeuxOwnChannels) => bayeux::long_polling_channels(&fixture, &path).await,
                ("GET", BayeuxAuth) => bayeux::websocket_auth(&fixture, &path).await,
                ("GET", BayeuxOwnChannels) => bayeux::websocket_channels(&fixture, &path).await,
                other => panic!("no CometD check for {other:?}"),
            };
            for (label, outcome) in outcomes {
                let what = format!("{} {path} {check:?} ({label})", route.method);
                findings.record(&what, outcome);
                unchanged(&fixture, &mut baseline, &mut findings, &what).await;
            }
        }
    }
    findings.assert_none("CometD");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_nothing_the_tables_do_not_list() {
    let fixture = Fixture::start(audit_config()).await;
    let rpcs = rpc_table();
    // gRPC: the services reflection announces are those of the table.
    let listed: BTreeSet<String> = rpcs
        .iter()
        .map(|rpc| rpc.method[1..].rsplit_once('/').unwrap().0.to_owned())
        .collect();
    let announced = announced_services(&fixture).await;
    assert_eq!(
        announced, listed,
        "reflection announces exactly the table's services"
    );

    // HTTP: on every listed path, a method the table does not list is 405.
    let table = route_table(&rpcs);
    let mut allowed: BTreeMap<&str, (Vec<&str>, &Route)> = BTreeMap::new();
    for route in table.iter().filter(|r| r.method != "ANY") {
        allowed
            .entry(route.path)
            .or_insert((Vec::new(), route))
            .0
            .push(route.method);
    }
    let mut problems = Vec::new();
    for (pattern, (methods, route)) in allowed {
        let path = (route.url)(&fixture.subject(route.owner, false));
        let credentials = Credentials::user(route.owner);
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            if methods.contains(&method) {
                continue;
            }
            let body = (method != "GET").then(|| json!({}));
            let (status, text) =
                send_http(&fixture, method, &path, body.as_ref(), &credentials).await;
            let json_api = !pattern.starts_with(voice_gateway::gws::cometd::NOTIFICATIONS_PATH)
                && pattern != voice_gateway::HEALTH_PATH;
            let gws_ok = !json_api
                || serde_json::from_str::<Value>(&text).is_ok_and(|v| v["statusCode"] == 3);
            if status != 405 || !gws_ok {
                problems.push(format!(
                    "{method} {path} (route {pattern}, which lists {methods:?}): {status} {text}"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "methods served beyond the table:\n{}",
        problems.join("\n")
    );
}
