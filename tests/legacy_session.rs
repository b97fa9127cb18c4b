//! Sessions (`JSESSIONID`), the optional CSRF protection and CORS of the legacy API.

mod common;

use common::TestGateway;
use common::desktop::{Agent, assert_error, stable};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{Value, json};

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("JSESSIONID="))
}

/// Returns `JSESSIONID=<id>` from a Set-Cookie value.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, HeaderMap, Value) {
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_basic_request_opens_a_session_that_the_cookie_alone_keeps_using() {
    let gw = TestGateway::spawn().await;
    let url = |path: &str| format!("{}{path}", gw.http_url());
    let client = reqwest::Client::new();
    let (status, headers, _) = send(
        client
            .get(url("/api/v2/me"))
            .basic_auth("agent1", Some("demo")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let set_cookie = session_cookie(&headers).expect("a session cookie");
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("Path=/"),
        "{set_cookie}"
    );
    let cookie = cookie_pair(&set_cookie);

    let (status, headers, me) = send(client.get(url("/api/v2/me")).header("cookie", &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user"]["userName"], "agent1");
    assert!(
        session_cookie(&headers).is_none(),
        "a valid session is reused"
    );
    // The cookie alone may operate too: dial agent2.
    let (_, _, devices) = send(
        client
            .get(url("/api/v2/me/devices?fields=*"))
            .header("cookie", &cookie),
    )
    .await;
    let device = devices["devices"][0]["id"].as_str().unwrap();
    let dial = json!({"operationName": "Dial", "destination": {"phoneNumber": "15001"}});
    let path = url(&format!("/api/v2/me/devices/{device}/calls"));
    let (status, _, reply) = send(client.post(path).header("cookie", &cookie).json(&dial)).await;
    assert_eq!((status, reply), (StatusCode::OK, json!({"statusCode": 0})));
    assert_eq!(
        Agent::new(&gw.http_url(), "agent2").call_ids().await.len(),
        1
    );

    // A made-up session is no session.
    let (status, _, body) = send(
        client
            .get(url("/api/v2/me"))
            .header("cookie", "JSESSIONID=FORGED"),
    )
    .await;
    assert_eq!(
        (status, body["statusCode"].clone()),
        (StatusCode::UNAUTHORIZED, json!(20))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_store_client_needs_credentials_only_once() {
    let gw = TestGateway::spawn().await;
    let mut a1 = Agent::with_cookies(&gw.http_url(), "agent1");
    assert_eq!(a1.get("/api/v2/me").await.0, StatusCode::OK);
    a1.basic = false;
    let (status, me) = a1.get("/api/v2/me").await;
    assert_eq!(
        (status, me["user"]["userName"].clone()),
        (StatusCode::OK, json!("agent1"))
    );
    let fresh = Agent {
        basic: false,
        ..Agent::new(&gw.http_url(), "agent1")
    };
    assert_error(&fresh.get("/api/v2/me").await, 401, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_win_over_the_cookie_of_another_session() {
    let gw = TestGateway::spawn().await;
    let url = format!("{}/api/v2/me", gw.http_url());
    let client = reqwest::Client::new();
    let (_, headers, _) = send(client.get(&url).basic_auth("agent1", Some("demo"))).await;
    let agent1_cookie = cookie_pair(&session_cookie(&headers).unwrap());
    let (status, headers, me) = send(
        client
            .get(&url)
            .header("cookie", &agent1_cookie)
            .basic_auth("agent2", Some("demo")),
    )
    .await;
    assert_eq!(
        (status, me["user"]["userName"].clone()),
        (StatusCode::OK, json!("agent2"))
    );
    let agent2_cookie = cookie_pair(&session_cookie(&headers).expect("a session of agent2"));
    assert_ne!(agent1_cookie, agent2_cookie);
    // Wrong credentials are refused even with a valid cookie.
    let (status, _, _) = send(
        client
            .get(&url)
            .header("cookie", &agent1_cookie)
            .basic_auth("agent1", Some("bad")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The first session still belongs to agent1.
    let (_, _, me) = send(client.get(&url).header("cookie", &agent1_cookie)).await;
    assert_eq!(me["user"]["userName"], "agent1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_contact_center_session_ends_the_http_session() {
    let gw = TestGateway::spawn().await;
    let url = format!("{}/api/v2/me", gw.http_url());
    let client = reqwest::Client::new();
    let (_, headers, _) = send(client.get(&url).basic_auth("agent1", Some("demo"))).await;
    let cookie = cookie_pair(&session_cookie(&headers).unwrap());
    let end = json!({"operationName": "EndContactCenterSession"});
    let (status, headers, reply) =
        send(client.post(&url).header("cookie", &cookie).json(&end)).await;
    assert_eq!((status, reply), (StatusCode::OK, json!({"statusCode": 0})));
    let cleared = session_cookie(&headers).expect("the cookie is cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let (status, _, body) = send(client.get(&url).header("cookie", &cookie)).await;
    assert_eq!(
        (status, body["statusCode"].clone()),
        (StatusCode::UNAUTHORIZED, json!(20))
    );
    // Basic credentials still open a new session.
    let (status, headers, _) = send(client.get(&url).basic_auth("agent1", Some("demo"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(cookie_pair(&session_cookie(&headers).unwrap()), cookie);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_csrf_on_gets_hand_out_the_token_and_posts_need_it() {
    let gw = TestGateway::spawn_with(|c| c.legacy.csrf = true).await;
    let base = gw.http_url();
    let (a1, a2) = (Agent::new(&base, "agent1"), Agent::new(&base, "agent2"));
    // Dial and answer with proper sessions and tokens, as a desktop does.
    let client = reqwest::Client::new();
    let login = |user: &'static str| {
        let client = client.clone();
        let url = format!("{base}/api/v2/me");
        async move {
            let (_, headers, _) = send(client.get(url).basic_auth(user, Some("demo"))).await;
            assert_eq!(headers["x-csrf-header"], "X-CSRF-TOKEN");
            let token = headers["x-csrf-token"].to_str().unwrap().to_owned();
            (cookie_pair(&session_cookie(&headers).unwrap()), token)
        }
    };
    let (cookie1, token1) = login("agent1").await;
    let (cookie2, token2) = login("agent2").await;
    assert_ne!(token1, token2);
    let device = a1.device_id().await;
    let dial = json!({"operationName": "Dial", "destination": {"phoneNumber": "15001"}});
    let post = |path: String, body: Value| client.post(format!("{base}{path}")).json(&body);
    let (status, _, _) = send(
        post(format!("/api/v2/me/devices/{device}/calls"), dial)
            .header("cookie", &cookie1)
            .header("x-csrf-token", &token1),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let id = a2.call_ids().await[0].clone();
    let call = format!("/api/v2/me/calls/{id}");
    let answer = json!({"operationName": "Answer"});
    let (status, _, _) = send(
        post(call.clone(), answer)
            .header("cookie", &cookie2)
            .header("x-csrf-token", &token2),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let hold = json!({"operationName": "Hold"});
    let before = stable(&a1.call(&id).await);
    let refusals = [
        post(call.clone(), hold.clone()).header("cookie", &cookie1),
        post(call.clone(), hold.clone())
            .header("cookie", &cookie1)
            .header("x-csrf-token", &token2),
        post(call.clone(), hold.clone())
            .basic_auth("agent1", Some("demo"))
            .header("x-csrf-token", &token1),
        post(call.clone(), hold.clone()).basic_auth("agent1", Some("demo")),
    ];
    for request in refusals {
        let (status, _, body) = send(request).await;
        assert_error(&(status, body.clone()), 403, 3);
        assert_eq!(body["statusMessage"], "Missing or invalid Csrf token");
        assert_eq!(stable(&a1.call(&id).await), before);
    }
    let (status, _, _) = send(
        post(call, hold)
            .header("cookie", &cookie1)
            .header("x-csrf-token", &token1),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(a1.call(&id).await["state"], "Held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_csrf_off_no_token_is_handed_out_or_needed() {
    let gw = TestGateway::spawn().await;
    let a1 = Agent::new(&gw.http_url(), "agent1");
    let response = a1.get_raw("/api/v2/me").await;
    assert!(response.headers().get("x-csrf-token").is_none());
    assert!(response.headers().get("x-csrf-header").is_none());
    let id = gw.established_call("agent1", "agent2", "15001").await;
    a1.op(&id, json!({"operationName": "Hold"})).await;
}

const DESK: &str = "http://desk.example:8080";

async fn preflight(gw: &TestGateway, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/v2/me/calls/abc", gw.http_url()),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-csrf-token,authorization",
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_preflights_of_allowed_origins_and_refuses_others() {
    let gw = TestGateway::spawn_with(|c| c.legacy.allowed_origins = vec![DESK.into()]).await;
    let ok = preflight(&gw, DESK).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let h = ok.headers();
    assert_eq!(h["access-control-allow-origin"], DESK);
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-max-age"], "120");
    let methods = h["access-control-allow-methods"].to_str().unwrap();
    for m in ["GET", "POST", "PUT", "DELETE", "OPTIONS"] {
        assert!(methods.contains(m), "{methods}");
    }
    let headers = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for name in [
        "content-type",
        "x-csrf-token",
        "authorization",
        "contactcenterid",
        "idempotency-key",
    ] {
        assert!(headers.contains(name), "{headers}");
    }

    let refused = preflight(&gw, "http://evil.example").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(
        refused
            .headers()
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-"))
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["statusCode"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_headers_go_only_to_allowed_origins() {
    let gw = TestGateway::spawn_with(|c| c.legacy.allowed_origins = vec![DESK.into()]).await;
    let client = reqwest::Client::new();
    let get = |origin: &str| {
        client
            .get(format!("{}/api/v2/me", gw.http_url()))
            .basic_auth("agent1", Some("demo"))
            .header("origin", origin)
            .send()
    };
    let allowed = get(DESK).await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(allowed.headers()["access-control-allow-origin"], DESK);
    assert_eq!(
        allowed.headers()["access-control-allow-credentials"],
        "true"
    );
    let exposed = allowed.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        exposed.contains("x-csrf-header") && exposed.contains("x-csrf-token"),
        "{exposed}"
    );
    let other = get("http://evil.example").await.unwrap();
    assert!(
        other
            .headers()
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_configured_origins_every_preflight_is_refused() {
    let gw = TestGateway::spawn().await;
    assert_eq!(preflight(&gw, DESK).await.status(), StatusCode::FORBIDDEN);
}
