//! The GWS wing's links, end to end with reqwest over JSON and CometD long-polling: a call
//! reads the same in a GET and in a notification (one renderer, one base URL), and the
//! base URL follows its rules (`src/gws/base_url.rs`): the listener's scheme and the host
//! by default, proxy headers only when `legacy.trust_forwarded` is on, and a configured
//! `legacy.public_url` above all. The https listener is covered in `tls.rs`.

mod cometd_support;
mod common;

use std::time::Duration;

use cometd_support::{LpClient, split};
use common::TestGateway;
use common::basic;
use common::desktop::Agent;
use serde_json::Value;
use voice_gateway::config::Config;
use voice_gateway::gws::config::PublicUrl;

/// How long the next notification may take before the test fails.
const NOTIFICATION_WAIT: Duration = Duration::from_secs(10);

/// A reqwest client sending `headers` with every request, with its own cookie store.
fn client_with(headers: &[(&'static str, &'static str)]) -> reqwest::Client {
    let mut map = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, value.parse().unwrap());
    }
    reqwest::Client::builder()
        .default_headers(map)
        .cookie_store(true)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// GETs `/api/v2/me/calls/{call}` as agent1 with `headers`; returns the call.
async fn get_call(gw: &TestGateway, call: &str, headers: &[(&'static str, &'static str)]) -> Value {
    let response = client_with(headers)
        .get(format!("{}/api/v2/me/calls/{call}", gw.http_url()))
        .header("authorization", basic("agent1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["call"].clone()
}

/// Waits for the next notification on `channel` whose `data` `is_it`; returns its `data`.
async fn next_notification(
    lp: &mut LpClient,
    channel: &str,
    is_it: impl Fn(&Value) -> bool,
) -> Value {
    let wait = async {
        loop {
            let (events, reply) = split(&lp.connect(None, None).await);
            assert_eq!(reply["successful"], true, "{reply}");
            if let Some(event) = events
                .iter()
                .find(|e| e["channel"] == channel && is_it(&e["data"]))
            {
                return event["data"].clone();
            }
        }
    };
    tokio::time::timeout(NOTIFICATION_WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("no notification on {channel} within {NOTIFICATION_WAIT:?}"))
}

/// Waits for the next `/v2/me/calls` notification about `call`; returns its `data`.
async fn next_call_notification(lp: &mut LpClient, call: &str) -> Value {
    next_notification(lp, "/v2/me/calls", |data| data["call"]["id"] == call).await
}

/// What agent1 sees of one call, every request sending `headers`: the call in a GET, then
/// the call in the notification of `StartCallRecording`, then the call in a GET again.
struct Seen {
    call: String,
    before: Value,
    notified: Value,
    after: Value,
}

async fn seen_with(gw: &TestGateway, headers: &[(&'static str, &'static str)]) -> Seen {
    let agent1 = Agent::login(&gw.http_url(), "agent1").await;
    let call = gw.established_call("agent1", "agent2", "15001").await;
    let mut lp = LpClient::new(gw, Some(basic("agent1")));
    lp.http = client_with(headers);
    lp.ready("/v2/me/calls").await;
    let before = get_call(gw, &call, headers).await;
    agent1.call_op(&call, "StartCallRecording").await;
    let data = next_call_notification(&mut lp, &call).await;
    assert_eq!(
        data["notificationType"], "CallRecordingStateChange",
        "{data}"
    );
    let after = get_call(gw, &call, headers).await;
    Seen {
        call,
        before,
        notified: data["call"].clone(),
        after,
    }
}

/// Returns the fields whose values differ between two call objects (either side missing
/// counts as a difference).
fn differing(a: &Value, b: &Value) -> Vec<String> {
    let (a, b) = (a.as_object().unwrap(), b.as_object().unwrap());
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// Asserts that a GET and the notification link the call to `base`.
fn assert_links(seen: &Seen, base: &str) {
    let uri = format!("{base}/api/v2/me/calls/{}", seen.call);
    assert_eq!(seen.before["uri"], uri.as_str(), "GET: {}", seen.before);
    assert_eq!(
        seen.notified["uri"],
        uri.as_str(),
        "notification: {}",
        seen.notified
    );
    let device = seen.before["deviceUri"].as_str().unwrap();
    assert!(
        device.starts_with(&format!("{base}/api/v2/devices/")),
        "{device}"
    );
    assert_eq!(seen.notified["deviceUri"], device);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_and_the_next_notification_render_a_call_alike() {
    let gw = TestGateway::spawn().await;
    let seen = seen_with(&gw, &[]).await;
    assert_eq!(seen.before["uri"], seen.notified["uri"]);
    assert_eq!(
        seen.notified["recordingState"], "Recording",
        "{}",
        seen.notified
    );
    // Before the change, only what recording changes differs (and the clock).
    let changed = ["capabilities", "duration", "recordingState", "userData"];
    for field in differing(&seen.before, &seen.notified) {
        assert!(
            changed.contains(&field.as_str()),
            "{field} differs: {} vs {}",
            seen.before,
            seen.notified
        );
    }
    // After it, the GET shows exactly what the notification showed (but the clock).
    let after: Vec<String> = differing(&seen.after, &seen.notified)
        .into_iter()
        .filter(|f| f != "duration")
        .collect();
    assert!(
        after.is_empty(),
        "{after:?}: {} vs {}",
        seen.after,
        seen.notified
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_and_the_next_notification_render_a_device_alike() {
    let gw = TestGateway::spawn().await;
    let agent1 = Agent::login(&gw.http_url(), "agent1").await;
    let (id, _) = agent1.device().await;
    let mut lp = LpClient::new(&gw, Some(basic("agent1")));
    lp.ready("/v2/me/devices").await;
    let path = format!("/api/v2/me/devices/{id}");
    let before = agent1.get_ok(&path).await["device"].clone();
    agent1
        .post_ok(
            &path,
            serde_json::json!({"operationName": "DoNotDisturbOn"}),
        )
        .await;
    let data = next_notification(&mut lp, "/v2/me/devices", |d| {
        d["devices"][0]["id"] == id.as_str()
    })
    .await;
    let notified = &data["devices"][0];
    let after = agent1.get_ok(&path).await["device"].clone();
    assert_eq!(notified["doNotDisturb"], "On", "{data}");
    assert_eq!(before["uri"], notified["uri"]);
    assert_eq!(
        notified["uri"],
        format!("{}/api/v2/me/devices/{id}", gw.http_url()).as_str()
    );
    let changed = ["capabilities", "doNotDisturb"];
    for field in differing(&before, notified) {
        assert!(
            changed.contains(&field.as_str()),
            "{field} differs: {before} vs {notified}"
        );
    }
    assert_eq!(&after, notified);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_use_the_listener_scheme_and_the_host_by_default() {
    let gw = TestGateway::spawn().await;
    let seen = seen_with(&gw, &[]).await;
    assert!(gw.http_url().starts_with("http://127.0.0.1:"));
    assert_links(&seen, &gw.http_url());
}

const PROXY_HEADERS: [(&str, &str); 3] = [
    (
        "forwarded",
        "for=192.0.2.60;proto=https;host=gws.example.com",
    ),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "other.example.com"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_headers_are_ignored_unless_trusted() {
    let gw = TestGateway::spawn().await;
    let seen = seen_with(&gw, &PROXY_HEADERS).await;
    assert_links(&seen, &gw.http_url());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_forwarded_comes_before_x_forwarded() {
    let gw = TestGateway::spawn_with(|c| c.legacy.trust_forwarded = true).await;
    let seen = seen_with(&gw, &PROXY_HEADERS).await;
    assert_links(&seen, "https://gws.example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_x_forwarded_headers_give_scheme_and_host() {
    let gw = TestGateway::spawn_with(|c| c.legacy.trust_forwarded = true).await;
    let headers = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "desk.example.com:8443"),
    ];
    let seen = seen_with(&gw, &headers).await;
    assert_links(&seen, "https://desk.example.com:8443");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_url_wins_over_proxy_headers_and_host() {
    let public = PublicUrl::try_from("https://gws.example.com/".to_owned()).unwrap();
    let gw = TestGateway::spawn_with(|c| {
        c.legacy.public_url = Some(public);
        c.legacy.trust_forwarded = true;
    })
    .await;
    let headers = [("forwarded", "proto=http;host=elsewhere.example.com")];
    let seen = seen_with(&gw, &headers).await;
    assert_links(&seen, "https://gws.example.com");
}

#[test]
fn the_configuration_reads_and_checks_the_public_url() {
    let config = Config::parse(
        "[legacy]\npublic_url = \"https://gws.example.com:8443\"\ntrust_forwarded = true\n",
    )
    .unwrap();
    let public = config.legacy.public_url.as_ref().map(PublicUrl::as_str);
    assert_eq!(public, Some("https://gws.example.com:8443"));
    assert!(config.legacy.trust_forwarded);
    assert!(!Config::demo().legacy.trust_forwarded);
    let error =
        Config::parse("[legacy]\npublic_url = \"https://gws.example.com/gws\"\n").unwrap_err();
    assert!(
        format!("{error:#}").contains("invalid public_url"),
        "{error:#}"
    );
}
