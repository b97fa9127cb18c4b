//! The agent desktop page (`desktop/`) in a real browser: headless Chromium, driven over
//! WebDriver by Debian's chromedriver. The API is always the gateway's
//! `http://127.0.0.1:PORT`; the page comes from `http://localhost:PORT/desktop/` (another
//! origin and another site: the browser applies CORS to every JSON request and CometD
//! long-poll, and sends the session cookies back only because they are `SameSite=None;
//! Secure`, which Chromium accepts over plain http on loopback, and because the profile allows
//! third-party cookies), from a second static server on another port (another origin, same
//! site: default cookies, default browser), or from the gateway itself (same origin). The page
//! logs in as agent1 with the password typed into its form and follows `/v2/me/calls` over
//! WebSocket or long-polling; the seed call is driven over gRPC by agent1 and agent2 (another
//! client), and the test reads what the page shows. Buttons clicked on the page must change the
//! call and the agent state on the gateway. A page from an origin not allowed cannot log in.
//!
//! Needs `chromium` and `chromium-driver` (Debian) and `npm ci` in `desktop/`, both done by
//! `scripts/install-test-clients`; a missing install fails the test. Set
//! `VOICE_GATEWAY_DESKTOP_SCREENSHOT=FILE.png` to save the page's screenshot while the call
//! is recorded (how `desktop/screenshot.png` in the README was made).

mod common;
mod desktop_support;

use std::path::Path;
use std::time::Duration;

use common::{TestGateway, as_user, established_call, pb};
use desktop_support::webdriver::Browser;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use voice_gateway::Listeners;
use voice_gateway::desktop::DesktopConfig;
use voice_gateway::gws::config::CookieSameSite;

/// How long the page may take to show one change.
const SHOW_MS: u64 = 10_000;
/// Bound on a whole scenario.
const SCENARIO: Duration = Duration::from_secs(120);

/// Where the page comes from; the API is always the gateway's `http://127.0.0.1:PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageOrigin {
    /// `http://localhost:PORT/desktop/`, served by the gateway itself: another origin and
    /// another site. The cookies are `SameSite=None; Secure`, and the browser allows
    /// third-party cookies (as desktop Chrome does by default).
    OtherSite,
    /// `http://127.0.0.1:PORT/desktop/`, served by the gateway on the API's own origin; the
    /// page finds the gateway at its own origin (no `?gateway=`), and needs no CORS.
    SameOrigin,
    /// `http://127.0.0.1:OTHER/desktop/`, from a second static server (the gateway's own
    /// desktop router on another listener): another origin of the same site. The cookies
    /// keep their default attributes and the browser its default of blocking third-party
    /// cookies.
    OtherPort,
}

/// A gateway and the page's URL.
struct Fixture {
    gw: TestGateway,
    page: String,
    /// Ends the second static server, if any.
    static_server: CancellationToken,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.static_server.cancel();
    }
}

/// The repository's desktop folder (`npm ci` in it by `scripts/install-test-clients`).
fn desktop_config() -> DesktopConfig {
    DesktopConfig {
        dir: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("desktop")),
    }
}

/// Starts the demo gateway serving `desktop/` and the page's server; CORS allows the
/// page's origin when `allow` is true.
async fn fixture(origin: PageOrigin, allow: bool) -> Fixture {
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_addr = http.local_addr().unwrap();
    let static_server = CancellationToken::new();
    let page_origin = match origin {
        PageOrigin::OtherSite => format!("http://localhost:{}", http_addr.port()),
        PageOrigin::SameOrigin => format!("http://{http_addr}"),
        PageOrigin::OtherPort => {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let origin = format!("http://{}", listener.local_addr().unwrap());
            let stop = static_server.clone();
            let router = voice_gateway::desktop::router(&desktop_config());
            tokio::spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
            });
            origin
        }
    };
    let allowed = page_origin.clone();
    let gw = TestGateway::builder()
        .listeners(Listeners {
            grpc,
            http: Some(http),
        })
        .config(|config| {
            if allow && origin != PageOrigin::SameOrigin {
                config.legacy.allowed_origins = vec![allowed];
            }
            if origin == PageOrigin::OtherSite {
                config.legacy.cookie_same_site = Some(CookieSameSite::None);
                config.legacy.cookie_secure = true;
            }
            config.desktop = desktop_config();
        })
        .start()
        .await;
    let page = match origin {
        PageOrigin::SameOrigin => format!("{page_origin}/desktop/?user=agent1"),
        _ => format!("{page_origin}/desktop/?gateway={}", gw.http_url()),
    };
    Fixture {
        gw,
        page,
        static_server,
    }
}

/// A JS expression: the text of one cell of the call's row, or "" without a row.
fn cell(call: &str, class: &str) -> String {
    format!(
        "(document.querySelector('tr[data-call-id=\"{call}\"] td.{class}') || {{}}).textContent"
    )
}

/// Reads a resource over the JSON API as agent1 (another client than the page).
async fn json_get(gw: &TestGateway, path: &str) -> Value {
    let reply: Value = reqwest::Client::new()
        .get(format!("{}{path}", gw.http_url()))
        .basic_auth("agent1", Some("demo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["statusCode"], 0, "{path}: {reply}");
    reply
}

/// Opens the page in a fresh browser and logs agent1 in over `transport`.
async fn logged_in_page(fx: &Fixture, origin: PageOrigin, transport: &str) -> Browser {
    let browser = Browser::start(origin == PageOrigin::OtherSite).await;
    browser
        .goto(&format!("{}&transport={transport}", fx.page))
        .await;
    browser
        .wait_for("the page's script", "document.body.dataset.ready", SHOW_MS)
        .await;
    browser.type_into("#password", "demo").await;
    browser.click("#login-button").await;
    let connected =
        format!("document.querySelector('#connection').textContent === 'connected ({transport})'");
    browser
        .wait_for(&format!("connected ({transport})"), &connected, SHOW_MS)
        .await;
    browser
}

/// The scenario of the issue over one transport.
async fn the_page_follows_and_controls_the_seed_call(origin: PageOrigin, transport: &str) {
    let fx = fixture(origin, true).await;
    let gw = &fx.gw;
    let browser = logged_in_page(&fx, origin, transport).await;
    if origin == PageOrigin::SameOrigin {
        let gateway = browser
            .eval("document.querySelector('#gateway').value")
            .await;
        assert_eq!(gateway, gw.http_url().as_str(), "the page's own origin");
    }
    assert_eq!(
        browser
            .eval("document.querySelector('#error').hidden")
            .await,
        json!(true)
    );
    assert_eq!(
        browser
            .eval("document.querySelector('#agent-state').textContent")
            .await,
        "NotReady"
    );

    // Another client drives the seed: agent1 dials agent2, agent2 answers, agent1 records.
    let mut calls = gw.calls().await;
    let call = established_call(&mut calls).await;
    let state = cell(&call, "state");
    browser
        .wait_for(
            "the established call",
            &format!("{state} === 'Established'"),
            SHOW_MS,
        )
        .await;
    let id = pb::StartCallRecordingRequest {
        call_id: call.clone(),
    };
    calls
        .start_call_recording(as_user("agent1", id))
        .await
        .unwrap();
    let recording = format!(
        "{} === 'Recording' && {} === 'CallRecordingStateChange'",
        cell(&call, "recording"),
        cell(&call, "notification")
    );
    browser
        .wait_for(
            "the CallRecordingStateChange (Recording)",
            &recording,
            SHOW_MS,
        )
        .await;
    if let Some(file) = std::env::var_os("VOICE_GATEWAY_DESKTOP_SCREENSHOT") {
        std::fs::write(file, browser.screenshot().await).unwrap();
    }

    // Hold from the page: the gateway has the call held, and the page shows it.
    let button = |op: &str| format!("tr[data-call-id=\"{call}\"] button[data-op=\"{op}\"]");
    browser.click(&button("Hold")).await;
    browser
        .wait_for("the held call", &format!("{state} === 'Held'"), SHOW_MS)
        .await;
    let held = json_get(gw, &format!("/api/v2/me/calls/{call}")).await;
    assert_eq!(held["call"]["state"], "Held", "{held}");

    let id = pb::StopCallRecordingRequest {
        call_id: call.clone(),
    };
    calls
        .stop_call_recording(as_user("agent1", id))
        .await
        .unwrap();
    let stopped = format!("{} === 'Stopped'", cell(&call, "recording"));
    browser
        .wait_for("the CallRecordingStateChange (Stopped)", &stopped, SHOW_MS)
        .await;

    browser.click(&button("Retrieve")).await;
    browser
        .wait_for(
            "the retrieved call",
            &format!("{state} === 'Established'"),
            SHOW_MS,
        )
        .await;
    browser.click(&button("Hangup")).await;
    let gone = format!("!document.querySelector('tr[data-call-id=\"{call}\"]')");
    browser.wait_for("the call gone", &gone, SHOW_MS).await;
    let released = calls
        .get_call(as_user("agent1", pb::GetCallRequest { call_id: call }))
        .await
        .unwrap()
        .into_inner()
        .call
        .unwrap();
    assert_eq!(released.state(), pb::CallState::Released);

    // Agent state from the page, back over /v2/me/channels.
    let agent_state =
        |s: &str| format!("document.querySelector('#agent-state').textContent === '{s}'");
    browser.click("#ready-button").await;
    browser
        .wait_for("Ready", &agent_state("Ready"), SHOW_MS)
        .await;
    let voice = json_get(gw, "/api/v2/me/channels/voice").await;
    assert_eq!(voice["channel"]["userState"]["state"], "Ready", "{voice}");
    browser.click("#not-ready-button").await;
    browser
        .wait_for("NotReady", &agent_state("NotReady"), SHOW_MS)
        .await;

    // The session cookie is HttpOnly: the page's script cannot read it.
    let cookies = browser.eval("document.cookie").await;
    assert!(
        !cookies.as_str().unwrap().contains("JSESSIONID"),
        "{cookies}"
    );
    browser.quit().await;
}

/// Runs one scenario, one browser at a time, within its bound.
async fn scenario(origin: PageOrigin, transport: &str) {
    let run = the_page_follows_and_controls_the_seed_call(origin, transport);
    tokio::time::timeout(SCENARIO, run)
        .await
        .unwrap_or_else(|_| panic!("the {origin:?} {transport} scenario within {SCENARIO:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_from_another_site_follows_the_seed_over_websocket() {
    scenario(PageOrigin::OtherSite, "websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_from_another_site_follows_the_seed_over_long_polling() {
    scenario(PageOrigin::OtherSite, "long-polling").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_served_by_the_gateway_follows_the_seed_on_its_own_origin() {
    scenario(PageOrigin::SameOrigin, "websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_from_another_port_follows_the_seed_with_default_cookies() {
    scenario(PageOrigin::OtherPort, "long-polling").await;
}

/// The same page from an origin the gateway does not allow: the browser's preflight is
/// refused, the page shows the failure, and agent1's device is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_from_a_disallowed_origin_cannot_log_in() {
    let scenario = async {
        let fx = fixture(PageOrigin::OtherSite, false).await;
        let gw = &fx.gw;
        let before = json_get(gw, "/api/v2/me/devices").await;
        let browser = Browser::start(true).await;
        browser.goto(&fx.page).await;
        browser
            .wait_for("the page's script", "document.body.dataset.ready", SHOW_MS)
            .await;
        browser.type_into("#password", "demo").await;
        browser.click("#login-button").await;
        browser
            .wait_for(
                "the login error",
                "!document.querySelector('#error').hidden",
                SHOW_MS,
            )
            .await;
        assert_eq!(
            browser
                .eval("document.querySelector('#connection').dataset.state")
                .await,
            "offline"
        );
        assert_eq!(json_get(gw, "/api/v2/me/devices").await, before);
        browser.quit().await;
    };
    tokio::time::timeout(SCENARIO, scenario)
        .await
        .expect("the refused scenario within its bound");
}
