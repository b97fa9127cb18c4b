//! A desktop on another origin and its notifications: `/api/v2/notifications` answers
//! browsers with the JSON API's CORS policy (preflight and actual long-polling request from
//! an allowed origin get the headers, with credentials; another origin gets none and its
//! preflight is refused), the WebSocket upgrade checks `Origin`, and the session cookies
//! (`JSESSIONID`, `BAYEUX_BROWSER`) carry the configured `SameSite` and `Secure`.

mod common;

use common::TestGateway;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use voice_gateway::gws::config::CookieSameSite;

const DESK: &str = "http://desk.example:8000";
const EVIL: &str = "http://evil.example";

async fn gateway(same_site: Option<CookieSameSite>, secure: bool) -> TestGateway {
    TestGateway::spawn_with(|c| {
        c.legacy.allowed_origins = vec![DESK.into()];
        c.legacy.cookie_same_site = same_site;
        c.legacy.cookie_secure = secure;
    })
    .await
}

fn notifications(gw: &TestGateway, suffix: &str) -> String {
    format!("{}/api/v2/notifications{suffix}", gw.http_url())
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

/// The CometD JS handshake a browser page sends, with Basic credentials.
fn handshake() -> Value {
    json!([{"id": "1", "channel": "/meta/handshake", "version": "1.0",
            "supportedConnectionTypes": ["long-polling"]}])
}

async fn preflight(gw: &TestGateway, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, notifications(gw, "/handshake"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,authorization",
        )
        .send()
        .await
        .unwrap()
}

async fn post_handshake(gw: &TestGateway, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(notifications(gw, "/handshake"))
        .header("origin", origin)
        .basic_auth("agent1", Some("demo"))
        .json(&handshake())
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_origin_gets_cors_headers_on_preflight_and_long_poll() {
    let gw = gateway(None, false).await;
    let response = preflight(&gw, DESK).await;
    assert!(response.status().is_success(), "{}", response.status());
    let h = response.headers();
    assert_eq!(header(h, "access-control-allow-origin"), Some(DESK));
    assert_eq!(header(h, "access-control-allow-credentials"), Some("true"));
    let methods = header(h, "access-control-allow-methods").unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let allowed = header(h, "access-control-allow-headers").unwrap();
    assert!(
        allowed.contains("content-type") && allowed.contains("authorization"),
        "{allowed}"
    );

    let response = post_handshake(&gw, DESK).await;
    assert_eq!(response.status(), StatusCode::OK);
    let h = response.headers().clone();
    assert_eq!(header(&h, "access-control-allow-origin"), Some(DESK));
    assert_eq!(header(&h, "access-control-allow-credentials"), Some("true"));
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply[0]["successful"], true, "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_origin_gets_no_cors_headers_and_its_preflight_is_refused() {
    let gw = gateway(None, false).await;
    let response = preflight(&gw, EVIL).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        !response
            .headers()
            .keys()
            .any(|k| k.as_str().starts_with("access-control-")),
        "{:?}",
        response.headers()
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["statusCode"], 3, "{body}");

    // A request that skips the preflight is answered, but without CORS headers the
    // browser keeps the answer from the page.
    let response = post_handshake(&gw, EVIL).await;
    assert!(
        !response
            .headers()
            .keys()
            .any(|k| k.as_str().starts_with("access-control-")),
        "{:?}",
        response.headers()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookies_carry_the_configured_attributes() {
    let gw = gateway(Some(CookieSameSite::None), true).await;
    let login = reqwest::Client::new()
        .get(format!("{}/api/v2/me", gw.http_url()))
        .header("origin", DESK)
        .basic_auth("agent1", Some("demo"))
        .send()
        .await
        .unwrap();
    let jsessionid = cookie(login.headers(), "JSESSIONID")
        .expect("JSESSIONID")
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=None", "Secure", "Path=/"] {
        assert!(jsessionid.contains(attribute), "{jsessionid}");
    }
    let response = post_handshake(&gw, DESK).await;
    let browser = cookie(response.headers(), "BAYEUX_BROWSER")
        .expect("BAYEUX_BROWSER")
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=None", "Secure", "Path=/"] {
        assert!(browser.contains(attribute), "{browser}");
    }

    // EndContactCenterSession clears the cookie with the same attributes (a browser
    // ignores a cross-site removal without them).
    let pair = jsessionid.split(';').next().unwrap().to_owned();
    let end = reqwest::Client::new()
        .post(format!("{}/api/v2/me", gw.http_url()))
        .header("cookie", pair)
        .json(&json!({"operationName": "EndContactCenterSession"}))
        .send()
        .await
        .unwrap();
    assert_eq!(end.status(), StatusCode::OK);
    let removal = cookie(end.headers(), "JSESSIONID")
        .expect("a removal")
        .to_owned();
    assert!(
        removal.contains("Max-Age=0")
            && removal.contains("SameSite=None")
            && removal.contains("Secure"),
        "{removal}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_the_cookies_have_no_same_site_and_are_not_secure() {
    let gw = gateway(None, false).await;
    let response = post_handshake(&gw, DESK).await;
    let browser = cookie(response.headers(), "BAYEUX_BROWSER").unwrap();
    assert_eq!(
        browser.split("; ").skip(1).collect::<Vec<_>>(),
        ["HttpOnly", "Path=/"],
        "{browser}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgrade_from_another_origin_is_refused() {
    let gw = gateway(None, false).await;
    let ws_url = notifications(&gw, "").replacen("http", "ws", 1);
    let upgrade = |origin: Option<&str>| {
        let mut request = ws_url.as_str().into_client_request().unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        tokio_tungstenite::connect_async(request)
    };
    match upgrade(Some(EVIL)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::FORBIDDEN);
        }
        other => panic!("expected 403, got {:?}", other.map(|(_, r)| r.status())),
    }
    for origin in [Some(DESK), None, Some(&*gw.http_url())] {
        let (_, response) = upgrade(origin)
            .await
            .unwrap_or_else(|e| panic!("{origin:?}: {e}"));
        assert_eq!(
            response.status(),
            StatusCode::SWITCHING_PROTOCOLS,
            "{origin:?}"
        );
    }
}
