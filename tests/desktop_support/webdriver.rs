//! A headless Chromium driven over the W3C WebDriver protocol: Debian's `chromedriver` (and
//! `chromium`), installed by `scripts/install-test-clients`, started on a port it picks.
//!
//! Hand-written over reqwest (already a dev-dependency) rather than a WebDriver crate: the
//! test needs six commands (new session, navigate, find, click, send keys, execute an async
//! script, screenshot), and the crates (fantoccini, thirtyfour) would add their own HTTP and
//! TLS stacks to the build for that.

use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// The Chromium binary of Debian's package.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The ChromeDriver binary of Debian's package.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The WebDriver key of an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long one WebDriver command may take (a page load, an async script's wait included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A browser session; the driver and the browser are killed on drop.
pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
    _profile: TempDir,
}

impl Drop for Browser {
    /// Kills chromedriver's process group: the driver leads it and Chromium's processes
    /// inherit it, so one signal ends them all, also when a failing test never reached
    /// [`Browser::quit`] (killing the driver alone leaves the browser running).
    fn drop(&mut self) {
        if let Some(pid) = self.driver.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A folder removed on drop (the browser's fresh `--user-data-dir`).
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with the flags known to work on this
    /// machine kind (no sandbox as root, no GPU, no background networking to the closed
    /// network) and a fresh profile. With `third_party_cookies` the profile allows them, as
    /// desktop Chrome does by default; headless Chromium 156 blocks them by default
    /// (DevTools reports such a cookie blocked for `UserPreferences`).
    pub async fn start(third_party_cookies: bool) -> Self {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(binary).is_file(),
                "{binary} is missing: run scripts/install-test-clients first"
            );
        }
        let (driver, port) = start_driver().await;
        let profile = TempDir(std::env::temp_dir().join(format!(
            "voice-gateway-chromium-{}-{port}",
            std::process::id()
        )));
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1000,640",
            &format!("--user-data-dir={}", profile.0.display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args, "prefs": {
                // 0: allow every cookie; 2: block third-party cookies.
                "profile.cookie_controls_mode": if third_party_cookies { 0 } else { 2 },
                "profile.block_third_party_cookies": !third_party_cookies,
            }},
            "timeouts": {"script": 15_000, "pageLoad": 15_000},
        }}});
        let http = reqwest::Client::builder()
            .timeout(COMMAND_TIMEOUT)
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let reply = command(&http, "POST", &format!("{base}/session"), capabilities).await;
        let session = reply["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        Self {
            http,
            session: format!("{base}/session/{session}"),
            driver,
            _profile: profile,
        }
    }

    async fn send(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.session);
        command(&self.http, method, &url, body).await
    }

    /// Loads a page and waits for its load event.
    pub async fn goto(&self, url: &str) {
        self.send("POST", "/url", json!({ "url": url })).await;
    }

    /// Returns the element a CSS selector finds first; fails when there is none.
    pub async fn find(&self, css: &str) -> String {
        let reply = self
            .send(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        reply[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {reply}"))
            .to_owned()
    }

    /// Clicks the element a CSS selector finds.
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.send("POST", &format!("/element/{element}/click"), json!({}))
            .await;
    }

    /// Clears an input and types `text` into it.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.send("POST", &format!("/element/{element}/clear"), json!({}))
            .await;
        self.send(
            "POST",
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// Runs `script` as an async function body with `args`; returns what it resolves to.
    pub async fn execute_async(&self, script: &str, args: Value) -> Value {
        self.send(
            "POST",
            "/execute/async",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// Waits until `condition` (a JS expression over the page's `document`) is truthy, on
    /// DOM changes rather than by polling; fails after `timeout_ms` with `what` and the
    /// page's text.
    pub async fn wait_for(&self, what: &str, condition: &str, timeout_ms: u64) {
        let script = format!(
            "const done = arguments[arguments.length - 1];
             const check = () => {{ try {{ return !!({condition}); }} catch (e) {{ return false; }} }};
             if (check()) {{ done(true); return; }}
             const observer = new MutationObserver(() => {{
                 if (check()) {{ observer.disconnect(); done(true); }}
             }});
             observer.observe(document, {{subtree: true, childList: true, characterData: true, attributes: true}});
             setTimeout(() => {{ observer.disconnect(); done(check()); }}, {timeout_ms});"
        );
        let ok = self.execute_async(&script, json!([])).await;
        if ok != json!(true) {
            let text = self
                .execute_async("arguments[0](document.body.innerText)", json!([]))
                .await;
            panic!(
                "the page did not show {what} within {timeout_ms} ms; it shows:\n{}",
                text.as_str().unwrap_or_default()
            );
        }
    }

    /// Returns the value of a JS expression over the page.
    pub async fn eval(&self, expression: &str) -> Value {
        let script = format!("arguments[arguments.length - 1]({expression})");
        self.execute_async(&script, json!([])).await
    }

    /// Returns a PNG screenshot of the window.
    pub async fn screenshot(&self) -> Vec<u8> {
        let reply = self.send("GET", "/screenshot", Value::Null).await;
        base64::engine::general_purpose::STANDARD
            .decode(reply.as_str().expect("base64 PNG"))
            .expect("valid base64")
    }

    /// Ends the session (the browser quits); the driver is killed on drop.
    pub async fn quit(self) {
        self.send("DELETE", "", Value::Null).await;
    }
}

/// Starts chromedriver on a port it picks; returns the process and the port it printed.
async fn start_driver() -> (Child, u16) {
    let mut driver = Command::new(CHROMEDRIVER)
        .arg("--port=0")
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    let mut lines = BufReader::new(driver.stdout.take().unwrap()).lines();
    let port = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                return rest.trim_end_matches('.').parse::<u16>().ok();
            }
        }
        None
    })
    .await
    .expect("chromedriver says its port within 10 s")
    .expect("chromedriver prints its port");
    // Keep reading its stdout so that the driver never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (driver, port)
}

/// Sends one WebDriver command; fails with the driver's error message.
async fn command(http: &reqwest::Client, method: &str, url: &str, body: Value) -> Value {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = http.request(method.clone(), url);
    if !body.is_null() {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("WebDriver {method} {url}: {e}"));
    let status = response.status();
    let reply: Value = response.json().await.expect("a WebDriver JSON reply");
    assert!(
        status.is_success(),
        "WebDriver {method} {url} failed ({status}): {}",
        reply["value"]
    );
    reply["value"].clone()
}
