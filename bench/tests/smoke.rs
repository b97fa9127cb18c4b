//! A small run of the whole bench (tiny counts, the gateway served in process by the bench
//! binary) so that the suite cannot rot: each figure group must finish, produce nonzero
//! throughput and latency counts, and a report that parses (figure 7 included: two
//! gateways, one bridging to the other; figure 8: a small chaos run without a lost or
//! duplicated event; figure 9 with 40 subscribers; figure 10, the overload, with every
//! reply read and the refusals at once; the h2load/wrk cross-check), with its
//! charts; figure 11, the cluster: three bridge instances on a `redis-server`, end-to-end
//! events counted, a takeover after SIGKILL and after SIGTERM, Redis memory read). The
//! groups run as separate tests, each a few seconds, rather than one run of all
//! of them (15 s and more).

use std::path::PathBuf;
use std::process::Command;

use voice_bench::report::{Report, Row};

/// Runs `voice-bench all --smoke --only <groups>`; returns its JSON report and Markdown.
fn smoke(groups: &str) -> (Report, String) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-smoke-{groups}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let markdown = dir.join("BENCHMARKS.md");
    let status = Command::new(env!("CARGO_BIN_EXE_voice-bench"))
        .args(["all", "--smoke", "--in-process", "--command-line", "smoke"])
        .args(["--only", groups])
        .arg("--out")
        .arg(&markdown)
        .arg("--json")
        .arg(dir.join("report.json"))
        .arg("--faye-dir")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("faye"))
        .arg("--work")
        .arg(dir.join("work"))
        .status()
        .expect("voice-bench starts");
    assert!(
        status.success(),
        "voice-bench all --smoke --only {groups} failed: {status}"
    );
    let report: Report =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap())
            .expect("the JSON report parses");
    assert!(report.smoke);
    for row in &report.rows {
        assert!(row.value.is_finite(), "{row:?}");
    }
    let text = std::fs::read_to_string(&markdown).unwrap();
    assert!(text.contains("| figure | measure | gateway | baseline | ratio | target | met |"));
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| figure"))
            .count(),
        report.rows.len(),
        "one table line per row"
    );
    // Each chart is drawn and embedded under the table.
    for chart in &report.charts {
        let svg = dir.join(&report.charts_dir).join(&chart.file);
        assert!(svg.is_file(), "no {}", svg.display());
        assert!(
            text.contains(&format!("]({}/{})", report.charts_dir, chart.file)),
            "{} not embedded: {text}",
            chart.file
        );
    }
    (report, text)
}

/// The first row whose figure starts with `figure`.
fn row<'a>(report: &'a Report, figure: &str) -> &'a Row {
    report
        .rows
        .iter()
        .find(|r| r.figure.starts_with(figure))
        .unwrap_or_else(|| panic!("no row for figure {figure}: {:?}", report.rows))
}

#[test]
fn figures_1_and_2_unary_grpc_and_json() {
    let (report, _) = smoke("unary");
    let unary = row(&report, "1.");
    assert!(
        unary.ratio.is_some_and(|r| r > 0.0 && r.is_finite()),
        "{unary:?}"
    );
    assert!(unary.gateway.contains("req/s"), "{unary:?}");
    assert!(
        report.charts.iter().any(|c| c.file == "fig1-latency-1.svg"),
        "figure 1's latency chart: {:?}",
        report.charts
    );
    let json = row(&report, "2.");
    assert!(json.gateway.contains("req/s"), "{json:?}");
}

#[test]
fn figures_3_to_5_fan_out_faye_memory_start_up() {
    let (report, _) = smoke("fanout,faye,startup");
    let fanout = row(&report, "3.");
    assert!(fanout.value > 0.0 && fanout.value < 10_000.0, "{fanout:?}");
    assert!(!fanout.gateway.contains("(0 events)"), "{fanout:?}");
    let memory = row(&report, "4.");
    assert!(memory.value > 0.0, "{memory:?}");
    let startup = row(&report, "5.");
    assert!(startup.value > 0.0, "{startup:?}");
    // CometD rows need the endpoint (always built) and, for Faye, `npm ci` in bench/faye
    // (done by scripts/install-test-clients).
    let cometd = row(&report, "3. Fan-out (CometD)");
    assert!(cometd.value > 0.0, "{cometd:?}");
    // The Faye row is required: a missing install fails here, as the README says.
    let faye = report
        .rows
        .iter()
        .find(|r| r.figure == "3. Fan-out vs Faye")
        .unwrap_or_else(|| {
            panic!(
                "no Faye row (run scripts/install-test-clients for bench/faye): {:?}",
                report.rows
            )
        });
    assert!(
        faye.ratio.is_some_and(|r| r > 0.0 && r.is_finite()),
        "{faye:?}"
    );
}

#[test]
fn figures_6_and_7_password_flood_and_bridge() {
    let (report, _) = smoke("flood,bridge");
    // Figure 6: peak RSS, the legitimate client, the fresh login, and the flood's answers.
    let flood: Vec<_> = report
        .rows
        .iter()
        .filter(|r| r.figure.starts_with("6."))
        .collect();
    assert_eq!(flood.len(), 3, "{flood:?}");
    assert!(flood[0].gateway.contains("MiB"), "{:?}", flood[0]);
    assert!(
        flood[1].value > 0.0 && !flood[1].gateway.contains("(0 answers"),
        "{:?}",
        flood[1]
    );
    assert!(flood[2].value > 0.0, "{:?}", flood[2]);
    let note = report
        .notes
        .iter()
        .find(|n| n.starts_with("Figure 6"))
        .expect("a note on figure 6");
    assert!(!note.contains(" got 0 answers"), "{note}");
    // Figure 7: two gateways (B bridging to U), operations through B and directly on U.
    let bridge = row(&report, "7. Bridge mode");
    assert!(
        bridge.gateway.contains("B: p50") && bridge.baseline.contains("U direct: p50"),
        "{bridge:?}"
    );
    let bridge_note = report
        .notes
        .iter()
        .find(|n| n.starts_with("Figure 7"))
        .expect("a note for figure 7");
    assert!(bridge_note.contains(" 0 failed in all"), "{bridge_note}");
    // Each round's window was probed for the host's steadiness, and the steadiest rounds
    // get a row of their own.
    assert!(bridge_note.contains("canary ("), "{bridge_note}");
    let steady = report
        .rows
        .iter()
        .find(|r| r.figure.starts_with("7.") && r.measure.contains("steadiest round"))
        .expect("a row for the steadiest rounds");
    assert!(
        steady.gateway.contains("slow by its CPU clock") && steady.met.is_none(),
        "{steady:?}"
    );
    assert!(
        report
            .machine
            .idle_steadiness
            .is_some_and(|s| s.pieces >= 5 && s.p50_us > 0.0),
        "{:?}",
        report.machine
    );
}

#[test]
fn figure_8_chaos_loses_and_duplicates_nothing() {
    let (report, _) = smoke("chaos");
    let chaos = row(&report, "8. Chaos resume");
    assert_eq!(chaos.met, Some(true), "{chaos:?}");
    assert!(chaos.gateway.contains("lost 0, duplicated 0"), "{chaos:?}");
}

#[test]
fn figures_1_and_2_cross_checked_with_h2load_and_wrk() {
    let (report, _) = smoke("tools");
    // A row per tool, measured or saying the tool is not installed (the test suite does
    // not install h2load or wrk; `bench/run` does).
    for tool in ["suite's generator", "h2load", "wrk"] {
        let checks: Vec<_> = report
            .rows
            .iter()
            .filter(|r| r.measure.starts_with("cross-check") && r.measure.contains(tool))
            .collect();
        assert!(!checks.is_empty(), "no cross-check row for {tool}");
        for check in checks {
            assert!(
                check.gateway.contains("not installed")
                    || check.ratio.is_some_and(|r| r > 0.0 && r.is_finite()),
                "{check:?}"
            );
        }
    }
}

#[test]
fn figure_9_moonshot_reaches_every_subscriber() {
    let (report, _) = smoke("moonshot");
    let moonshot = row(&report, "9. Moonshot");
    assert_eq!(moonshot.met, Some(true), "{moonshot:?}");
    assert!(
        moonshot.gateway.contains("received by 40 of 40"),
        "{moonshot:?}"
    );
}

/// The number before `word` in `text` ("… 12 refused …" → 12).
fn count_before(text: &str, word: &str) -> u64 {
    let at = text
        .find(&format!(" {word}"))
        .unwrap_or_else(|| panic!("no \"{word}\" in {text}"));
    let digits: String = text[..at]
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.chars().rev().collect::<String>().parse().unwrap()
}

/// What "immediate" means for a refusal here: a debug build on a shared, busy machine
/// (the full run's target, 10 ms at p99, is for the release build). A refusal that waited
/// for a slot would wait here as long as the held calls (the whole probe) and time out;
/// one that waited for a queue's timeout would take that long.
const SMOKE_IMMEDIATE_MS: f64 = 250.0;

#[test]
fn figure_10_overload_refuses_at_once_and_loses_no_reply() {
    let (report, _) = smoke("overload");
    let rows: Vec<_> = report
        .rows
        .iter()
        .filter(|r| r.figure.starts_with("10."))
        .collect();
    assert_eq!(rows.len(), 4, "{rows:?}");
    let find = |measure: &str| {
        rows.iter()
            .find(|r| r.measure.starts_with(measure))
            .unwrap_or_else(|| panic!("no row \"{measure}\": {rows:?}"))
    };
    // At three times the saturating rate: every call sent was answered, accepted or
    // refused, and some were refused.
    let overload = find("refusals at 3×");
    let sent = count_before(&overload.gateway, "sent");
    let accepted = count_before(&overload.gateway, "accepted");
    let refused = count_before(&overload.gateway, "refused");
    assert_eq!(
        count_before(&overload.gateway, "lost"),
        0,
        "a reply was lost: {overload:?}"
    );
    assert_eq!(sent, accepted + refused, "{overload:?}");
    assert!(accepted > 0 && refused > 0, "{overload:?}");
    // With every slot held: each probe refused, at once.
    let probe = find("refusals with every slot held");
    let (refused_probes, probes) = (
        count_before(&probe.gateway, "of"),
        count_before(&probe.gateway, "refused"),
    );
    assert!(
        probes > 0 && refused_probes == probes,
        "a probe was not refused: {probe:?}"
    );
    let p50: f64 = probe.gateway["p50 ".len()..]
        .split(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no p50 in {probe:?}"));
    assert!(
        p50 <= SMOKE_IMMEDIATE_MS,
        "refusals not immediate: {probe:?}"
    );
    // The accepted calls' p99 against saturation, and the RSS, are measured.
    let accepted_p99 = find("accepted calls' p99");
    assert!(
        accepted_p99.ratio.is_some_and(|r| r > 0.0 && r.is_finite()),
        "{accepted_p99:?}"
    );
    let rss = find("gateway RSS");
    assert!(rss.gateway.contains("MiB, after"), "{rss:?}");
    assert!(
        report
            .charts
            .iter()
            .any(|c| c.file == "fig10-latency-1.svg"),
        "figure 10's latency chart: {:?}",
        report.charts
    );
}

#[test]
fn figure_11_cluster_latency_takeovers_and_redis_memory() {
    let (report, _) = smoke("cluster");
    let rows: Vec<_> = report
        .rows
        .iter()
        .filter(|r| r.figure.starts_with("11."))
        .collect();
    assert_eq!(
        rows.len(),
        4,
        "redis-server installed? {rows:?} {:?}",
        report.missing
    );
    // End to end: events counted at C, none missing, no operation failed.
    let e2e = rows[0];
    assert!(
        e2e.value > 0.0 && !e2e.gateway.contains("(0 events)"),
        "{e2e:?}"
    );
    let note = report
        .notes
        .iter()
        .find(|n| n.starts_with("Figure 11"))
        .expect("a note on figure 11");
    assert!(
        note.contains(" 0 failed, 0 without an event at C"),
        "{note}"
    );
    // A takeover measured after each signal, within its bound.
    for (row, signal) in [(rows[1], "SIGKILL"), (rows[2], "SIGTERM")] {
        assert!(row.measure.contains(signal), "{row:?}");
        assert!(row.value > 0.0, "no takeover measured: {row:?}");
        assert_eq!(row.met, Some(true), "{row:?}");
    }
    // Redis memory read, and grown by the log.
    let memory = rows[3];
    assert!(memory.value > 0.0, "{memory:?}");
    assert!(
        report
            .charts
            .iter()
            .any(|c| c.file == "fig11-latency-1.svg"),
        "figure 11's latency chart: {:?}",
        report.charts
    );
}

/// `voice-bench count` against a gateway served by the bench binary: each gateway target
/// sends its requests and, for `gateway-cometd`, sees every operation's two messages
/// arrive (the command fails otherwise); `--before` and `--after` run around the measured
/// requests. `gateway-bridge` runs against a second gateway bridging to the first and
/// checks on its metrics that it mirrored every operation's two events.
#[test]
fn count_runs_each_gateway_target() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-smoke-count");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gateway.toml");
    std::fs::write(&config, voice_bench::setup::config_toml(16, "")).unwrap();
    let grpc = voice_bench::process::free_addr().unwrap();
    let http = voice_bench::process::free_addr().unwrap();
    // The bench's own child-process handle: output to `dir`, stopped when dropped.
    let bench_exe = PathBuf::from(env!("CARGO_BIN_EXE_voice-bench"));
    let serve = |name: &str, args: Vec<String>, addrs: &[std::net::SocketAddr]| {
        let mut server = voice_bench::process::Server::spawn(name, &bench_exe, &args, &[], &dir)
            .expect("voice-bench gateway starts");
        server
            .wait_listening(addrs, std::time::Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{e:#}"));
        server
    };
    let _gateway = serve(
        "gateway",
        vec![
            "gateway".into(),
            "--grpc-listen".into(),
            grpc.to_string(),
            "--http-listen".into(),
            http.to_string(),
            "--config".into(),
            config.display().to_string(),
        ],
        &[grpc, http],
    );
    for target in ["gateway-grpc", "gateway-json", "gateway-cometd"] {
        let hooks = dir.join(format!("{target}.hooks"));
        let output = Command::new(env!("CARGO_BIN_EXE_voice-bench"))
            .args(["count", "--target", target])
            .args(["--addr", &grpc.to_string(), "--http", &http.to_string()])
            .args(["--requests", "16", "--connections", "2", "--in-flight", "2"])
            .args(["--warmup", "2", "--watchers", "2"])
            .arg("--before")
            .arg(format!("echo before >> {}", hooks.display()))
            .arg("--after")
            .arg(format!("echo after >> {}", hooks.display()))
            .output()
            .expect("voice-bench count starts");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "count {target} failed: {stderr}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            "16",
            "count {target}: {stderr}"
        );
        assert_eq!(
            std::fs::read_to_string(&hooks).unwrap(),
            "before\nafter\n",
            "count {target}"
        );
        if target == "gateway-cometd" {
            // Four calls, a session per party: the warm-up's 8 operations and the 16
            // measured ones, two messages each.
            assert!(
                stderr.contains("CometD sessions received 48 messages, 0 failed"),
                "{stderr}"
            );
        }
    }
    // Figure 7's B: a second gateway bridging to the first, its admin listener on so that
    // the run can check that it mirrored two events per measured operation.
    let (b_grpc, b_http, b_admin) = (
        voice_bench::process::free_addr().unwrap(),
        voice_bench::process::free_addr().unwrap(),
        voice_bench::process::free_addr().unwrap(),
    );
    let b_config = dir.join("bridge.toml");
    std::fs::write(
        &b_config,
        format!(
            "{}\n[upstream]\ntransport = \"websocket\"\n",
            voice_gateway::config::DEMO_TOML
        ),
    )
    .unwrap();
    let _bridge = serve(
        "bridge",
        vec![
            "gateway".into(),
            "--grpc-listen".into(),
            b_grpc.to_string(),
            "--http-listen".into(),
            b_http.to_string(),
            "--admin-listen".into(),
            b_admin.to_string(),
            "--upstream".into(),
            format!("http://{http}"),
            "--config".into(),
            b_config.display().to_string(),
        ],
        &[b_grpc, b_http, b_admin],
    );
    let output = Command::new(env!("CARGO_BIN_EXE_voice-bench"))
        .args(["count", "--target", "gateway-bridge"])
        .args([
            "--addr",
            &b_grpc.to_string(),
            "--admin",
            &b_admin.to_string(),
        ])
        .args(["--requests", "16", "--connections", "2", "--in-flight", "2"])
        .args(["--warmup", "2", "--watchers", "0"])
        .output()
        .expect("voice-bench count starts");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "count gateway-bridge failed: {stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "16");
    assert!(
        stderr.contains("the gateway committed 32 events"),
        "{stderr}"
    );
}
