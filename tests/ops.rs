//! The operator's view of the real binary: JSON logs with request ids and without
//! credentials, `promtool check metrics`, a real Prometheus scraping the admin listener,
//! start-up refusals of bad configuration files before any listener binds, and
//! `hash-password`.
//!
//! `promtool` and `prometheus` come from the Debian `prometheus` package
//! (`scripts/install-test-clients`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::binary::Binary;
use common::redis::RedisServer;
use common::{as_user, established_call, pb, with_basic};
use serde_json::Value;

/// Every wait of this file gives up after this long, failing with a message.
const BOUND: Duration = Duration::from_secs(20);

/// Starts the gateway binary on port-0 listeners (gRPC and HTTP on one port, and the admin
/// listener), JSON logs collected.
async fn start() -> Binary {
    let gw = Binary::launch().one_port().admin().start().await;
    assert_eq!(gw.http, gw.grpc, "one port serves both");
    gw
}

/// Reads the admin listener's `/metrics`.
async fn metrics(gw: &Binary) -> String {
    let reply = reqwest::get(format!("{}/metrics", gw.admin_url()))
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    reply.text().await.unwrap()
}

/// The log lines whose request span has id `id`.
fn lines_of(lines: &[String], id: &str) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["span"]["id"] == id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_id_and_the_user_and_never_a_credential() {
    const PASSWORD: &str = "wrong-pw-Zq81x";
    const TOKEN: &str = "bearer-tok-Vb33k";
    let gw = start().await;
    let http = reqwest::Client::new();
    let basic = http
        .get(format!("{}/api/v2/me", gw.http_url()))
        .basic_auth("agent1", Some(PASSWORD))
        .header("x-request-id", "ops-basic-1")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    let bearer = http
        .get(format!("{}/api/v2/me", gw.http_url()))
        .bearer_auth(TOKEN)
        .header("x-request-id", "ops-bearer-2")
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 401);
    let mut calls = gw.calls().await;
    let mut request = with_basic("agent2", PASSWORD, pb::ListCallsRequest::default());
    request
        .metadata_mut()
        .insert("x-request-id", "ops-grpc-3".parse().unwrap());
    let refused = calls.list_calls(request).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let mut request = tonic::Request::new(pb::ListCallsRequest::default());
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    request
        .metadata_mut()
        .insert("x-request-id", "ops-grpc-4".parse().unwrap());
    assert_eq!(
        calls.list_calls(request).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
    let lines = gw.stop().await;

    for (id, front, code, user) in [
        ("ops-basic-1", "http", "401", Some("agent1")),
        ("ops-bearer-2", "http", "401", None),
        ("ops-grpc-3", "grpc", "UNAUTHENTICATED", Some("agent2")),
        ("ops-grpc-4", "grpc", "UNAUTHENTICATED", None),
    ] {
        let of_request = lines_of(&lines, id);
        let failed: Vec<&Value> = of_request
            .iter()
            .filter(|l| l["fields"]["message"] == "request failed")
            .collect();
        assert_eq!(
            failed.len(),
            1,
            "one failure line for {id}: {of_request:#?}"
        );
        let failed = failed[0];
        assert_eq!(failed["fields"]["front"], front, "{failed}");
        assert_eq!(failed["fields"]["code"], code, "{failed}");
        assert_eq!(failed["span"]["user"].as_str(), user, "{failed}");
        assert!(failed["fields"]["operation"].as_str().is_some(), "{failed}");
    }
    let encoded = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("agent1:{PASSWORD}"))
    };
    for line in &lines {
        for secret in [PASSWORD, TOKEN, encoded.as_str()] {
            assert!(
                !line.contains(secret),
                "a log line holds a credential: {line}"
            );
        }
    }
}

/// The seed scenario (agent1 calls agent2, who answers, with a watcher on agent1), then
/// `n` StopCallRecording requests (each after a StartCallRecording).
async fn seed_and_stop_recordings(gw: &Binary, n: usize) {
    let mut calls = gw.calls().await;
    let watch = common::watch_calls(&mut calls, "agent1").await;
    let id = established_call(&mut calls).await;
    for _ in 0..n {
        common::record_and_stop(&mut calls, "agent1", &id).await;
    }
    // Keep the watcher open until the metrics are read? No: it ends here; the gauge
    // returns to zero, which promtool checks as well as any other value.
    drop(watch);
}

/// Returns the path of a Debian `prometheus` package tool, failing with what to run.
fn tool(name: &str) -> PathBuf {
    let path = Path::new("/usr/bin").join(name);
    assert!(
        path.is_file(),
        "{name} not found: run scripts/install-test-clients (Debian package prometheus)"
    );
    path
}

/// Asserts that `promtool check metrics` accepts `text`.
async fn promtool_check_metrics(text: &str) {
    let mut promtool = tokio::process::Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = promtool.stdin.take().unwrap();
        stdin.write_all(text.as_bytes()).await.unwrap();
    }
    let out = tokio::time::timeout(BOUND, promtool.wait_with_output())
        .await
        .expect("promtool answers in time")
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_the_metrics_after_the_seed_scenario() {
    let gw = start().await;
    seed_and_stop_recordings(&gw, 2).await;
    let text = metrics(&gw).await;
    for name in voice_gateway::admin::names::METRICS.iter().map(|m| m.0) {
        // Bridge-mode and cluster-mode metrics appear only in those modes (the cluster's
        // are checked by the last test of this file).
        if name.contains("upstream") || name.contains("cluster") {
            continue;
        }
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} is missing from /metrics:\n{text}"
        );
    }
    promtool_check_metrics(&text).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_reads_back_the_stop_call_recording_count() {
    const N: usize = 7;
    let gw = start().await;
    seed_and_stop_recordings(&gw, N).await;

    let dir = tempdir("prometheus");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: voice-gateway\n    scrape_interval: 1s\n    \
             static_configs:\n      - targets: ['{}']\n",
            gw.admin.unwrap()
        ),
    )
    .unwrap();
    let port = voice_bench::process::free_addr().unwrap().port();
    let _prometheus = tokio::process::Command::new(tool("prometheus"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus starts");
    let query = "sum(voice_gateway_requests_total{front=\"grpc\",\
                 operation=\"voice.v1.CallService/StopCallRecording\",code=\"OK\"})";
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    loop {
        // Prometheus is polled until a scrape has landed: its start and first scrape take
        // a variable time; the deadline bounds the wait.
        let url = reqwest::Url::parse_with_params(
            &format!("http://127.0.0.1:{port}/api/v1/query"),
            &[("query", query)],
        )
        .unwrap();
        let reply = client.get(url).send().await;
        if let Ok(reply) = reply
            && let Ok(body) = reply.json::<Value>().await
        {
            let value = &body["data"]["result"][0]["value"][1];
            if let Some(value) = value.as_str() {
                assert_eq!(value, N.to_string(), "Prometheus reads {body}");
                break;
            }
            last = body.to_string();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Prometheus has no sample of {query} after 60 s; last answer: {last}"
        );
        // The poll interval of a Prometheus query (Prometheus reports no event), bounded
        // by the deadline above; the gateway is not waited for.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh folder under the target directory's tmp folder.
fn tempdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{name}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts the binary on `file`, with the API and admin addresses held by this test (so a
/// binary that bound before checking would fail with "cannot listen" instead), and returns
/// its exit status, standard output and standard error.
fn start_with_config(file: &Path) -> (std::process::ExitStatus, String, String) {
    let held: Vec<std::net::TcpListener> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let addr = |i: usize| held[i].local_addr().unwrap().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_voice-gateway"))
        .args(["--config", &file.display().to_string()])
        .args(["--grpc-listen", &addr(0), "--http-listen", &addr(1)])
        .args(["--admin-listen", &addr(2)])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A demo-like file with `body` after one contact center and its user.
const BASE: &str = "[[contact_centers]]\nname = \"c\"\nfeatures = [\"api-voice\"]\n\n";

#[test]
fn configuration_mistakes_are_refused_before_any_listener_binds() {
    let dir = tempdir("config");
    let user = |extra: &str| {
        format!(
            "{BASE}[[users]]\nname = \"u\"\ncontact_center = \"c\"\nphone_number = \"100\"\n{extra}"
        )
    };
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "misspelled-feature",
            "[[contact_centers]]\nname = \"c\"\nfeatures = [\"api-vioce\"]\n".into(),
            &[
                "contact_centers[0] (c).features",
                "unknown feature \"api-vioce\"",
                "expected one of api-voice",
            ],
        ),
        (
            "empty",
            "# nothing but a comment\n".into(),
            &[
                "the file sets nothing",
                "expected at least one [[contact_centers]]",
            ],
        ),
        (
            "both-secrets",
            user(
                "password = \"p\"\npassword_hash = \"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\"\n",
            ),
            &[
                "users[0] (u)",
                "both password and password_hash",
                "expected exactly one",
            ],
        ),
        (
            "no-secret",
            user(""),
            &[
                "users[0] (u)",
                "neither password nor password_hash",
                "expected exactly one",
            ],
        ),
        (
            "bad-hash",
            user("password_hash = \"not-a-hash\"\n"),
            &[
                "users[0] (u).password_hash",
                "expected an argon2 PHC string",
            ],
        ),
        (
            "unknown-role",
            user("password = \"p\"\nroles = [\"agnet\"]\n"),
            &[
                "users[0] (u).roles",
                "unknown role \"agnet\"",
                "expected agent, supervisor or admin",
            ],
        ),
        (
            "token-of-account",
            format!("{BASE}[[service_accounts]]\nname = \"s\"\ncontact_center = \"c\"\n"),
            &["service_accounts[0] (s)", "neither token nor token_hash"],
        ),
        (
            "after-call-work",
            format!("{BASE}[agent]\nafter_call_work_state = \"Busy\"\n"),
            &["agent.after_call_work_state", "expected Ready or NotReady"],
        ),
        (
            "unknown-key",
            format!("{BASE}[switch]\nexternal_answer = 1\n"),
            &[
                "unknown field `external_answer`",
                "expected one of `external_answer_ms`",
            ],
        ),
        (
            "failing-dn",
            format!(
                "{}[switch]\nbusy_numbers = [\"100\"]\n",
                user("password = \"p\"\n")
            ),
            &["switch.busy_numbers", "100 is a user's phone number"],
        ),
    ];
    for (name, text, wanted) in cases {
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, text).unwrap();
        let (status, stdout, stderr) = start_with_config(&file);
        assert_eq!(status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("invalid config {}", file.display())),
            "{name}: the error names the file: {stderr}"
        );
        for want in wanted {
            assert!(
                stderr.contains(want),
                "{name}: {want:?} is not in: {stderr}"
            );
        }
        assert!(
            !stderr.contains("cannot listen"),
            "{name}: it tried to bind: {stderr}"
        );
        assert!(!stdout.contains("serving"), "{name}: it served: {stdout}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hash_password_refuses_an_empty_input_and_hashes_a_given_one() {
    let run = |input: &str| {
        use std::io::Write as _;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_voice-gateway"))
            .arg("hash-password")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    for empty in ["", "\n"] {
        let out = run(empty);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("refusing to hash an empty"),
            "{out:?}"
        );
        assert!(out.stdout.is_empty());
    }
    let out = run("s3cret\n");
    assert!(out.status.success(), "{out:?}");
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    // No prompt when standard input is not a terminal: the output is the hash alone.
    assert!(
        out.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_password_prompts_on_a_terminal_without_echoing() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // util-linux `script` runs the command on a pseudo-terminal fed from our pipe.
    let script = Path::new("/usr/bin/script");
    assert!(script.is_file(), "script (util-linux) not found");
    let command = format!("{} hash-password", env!("CARGO_BIN_EXE_voice-gateway"));
    let mut child = tokio::process::Command::new(script)
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut screen = Vec::new();
    // The secret is typed once the prompt is on the screen, as a person would: from then
    // on nothing typed may be echoed. (Typed before the prompt, it would be: echo is on
    // until the prompt. The binary turned echo off only after prompting until this test,
    // failing about one run in two, showed it.)
    tokio::time::timeout(BOUND, async {
        while !String::from_utf8_lossy(&screen).contains("password or token to hash: ") {
            let mut chunk = [0u8; 256];
            let n = stdout.read(&mut chunk).await.unwrap();
            assert!(n > 0, "no prompt: {:?}", String::from_utf8_lossy(&screen));
            screen.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("the prompt appears in time");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"s3cret-on-tty\n").await.unwrap();
    tokio::time::timeout(BOUND, stdout.read_to_end(&mut screen))
        .await
        .expect("the hash is printed in time")
        .unwrap();
    drop(stdin);
    assert!(child.wait().await.unwrap().success());
    let screen = String::from_utf8_lossy(&screen);
    assert!(screen.contains("$argon2id$"), "{screen:?}");
    assert!(
        !screen.contains("s3cret-on-tty"),
        "the secret was echoed: {screen:?}"
    );
}

/// Text logs written to a pipe (a file, a log collector) carry no colour codes: the
/// gateway colours its logs only on a terminal.
#[tokio::test]
async fn text_logs_to_a_pipe_have_no_colour_codes() {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_voice-gateway"))
        .args([
            "--grpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .args(["--admin-listen", "none", "--log-format", "text"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the gateway binary starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    tokio::time::timeout(BOUND, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let serving = line.contains("voice-gateway serving");
            seen.push(line);
            if serving {
                return;
            }
        }
        panic!("the gateway exited before serving: {seen:?}");
    })
    .await
    .expect("the gateway serves in time");
    assert!(
        seen.iter().all(|line| !line.contains('\u{1b}')),
        "colour codes in piped logs: {seen:?}"
    );
    assert!(
        seen.iter().any(|line| line.contains(" INFO ")),
        "plain text lines with their level: {seen:?}"
    );
    child.kill().await.unwrap();
}

/// The value of the series `series` (name and labels, as the exporter writes them) in a
/// `/metrics` text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Polls `/metrics` until `check` holds for it, failing with `what` and the last text.
async fn metrics_until(gw: &Binary, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let text = metrics(gw).await;
        if check(&text) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {BOUND:?}: {what}\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Cluster mode's metrics on a bridge instance in a cluster on `redis-server`: the lease it
/// takes for a user who signs in, the events it appends and the log position it applied,
/// the engine going down and coming back, and the history starting over when Redis comes
/// back empty (a new epoch); then `promtool check metrics` accepts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_metrics_follow_the_leases_the_log_and_the_engine() {
    let mut redis = RedisServer::start().await;
    let upstream = Binary::start(&[]).await;
    let (upstream_url, redis_url) = (upstream.http_url(), redis.url());
    let node = Binary::launch()
        .admin()
        .args(&["--upstream", &upstream_url, "--cluster", &redis_url])
        .start()
        .await;
    let engine_up = "voice_gateway_cluster_engine_up";
    let leases = "voice_gateway_cluster_leases";
    let acquired = r#"voice_gateway_cluster_lease_changes_total{change="acquired"}"#;
    let appended = r#"voice_gateway_cluster_appends_total{result="ok"}"#;
    let applied = "voice_gateway_cluster_applied_sequence";
    let epoch_resets = r#"voice_gateway_cluster_log_resets_total{reason="epoch"}"#;
    // The series start once the instance has joined (after "voice-gateway serving").
    let text = metrics_until(&node, "the cluster's series", |t| {
        sample(t, engine_up).is_some()
    })
    .await;
    assert_eq!(sample(&text, engine_up), Some(1.0), "{text}");
    assert_eq!(sample(&text, leases), Some(0.0), "{text}");
    assert_eq!(
        sample(&text, epoch_resets),
        Some(0.0),
        "the start is no reset: {text}"
    );

    // agent1 signs in on the instance by dialing through it: the instance takes agent1's
    // lease and appends the call's events, which its tail applies.
    let dial = pb::DialRequest {
        destination: "15001".into(),
        ..Default::default()
    };
    node.calls()
        .await
        .dial(as_user("agent1", dial))
        .await
        .unwrap();
    let text = metrics_until(&node, "agent1's lease taken and its events appended", |t| {
        sample(t, leases) == Some(1.0)
            && sample(t, acquired) == Some(1.0)
            && sample(t, appended).is_some_and(|n| n >= 1.0)
            && sample(t, applied).is_some_and(|n| n >= 1.0)
    })
    .await;
    let appended_before = sample(&text, appended).unwrap();

    // Redis goes away: the instance says so.
    redis.kill();
    metrics_until(&node, "the engine seen down", |t| {
        sample(t, engine_up) == Some(0.0)
    })
    .await;

    // It comes back empty: up again, and the history started over on the new epoch.
    redis.restart_empty().await;
    let text = metrics_until(&node, "the engine back, on a new epoch", |t| {
        sample(t, engine_up) == Some(1.0) && sample(t, epoch_resets) == Some(1.0)
    })
    .await;
    assert!(
        sample(&text, appended).unwrap() >= appended_before,
        "a counter never goes back: {text}"
    );

    promtool_check_metrics(&text).await;
}
