//! A small run of the whole bench (tiny counts, a few seconds, the gateway served in
//! process by the bench binary) so that the suite cannot rot: it must finish, produce
//! nonzero throughput and latency counts, and a report that parses (figure 7 included: two
//! gateways, one bridging to the other; figure 8: a small chaos run without a lost or
//! duplicated event).

use std::process::Command;

use voice_bench::report::Report;

#[test]
fn the_bench_runs_end_to_end_and_reports_sane_numbers() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-smoke");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let markdown = dir.join("BENCHMARKS.md");
    let status = Command::new(env!("CARGO_BIN_EXE_voice-bench"))
        .args(["all", "--smoke", "--in-process", "--command-line", "smoke"])
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
    assert!(status.success(), "voice-bench all --smoke failed: {status}");

    let report: Report =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap())
            .expect("the JSON report parses");
    assert!(report.smoke);
    let row = |figure: &str| {
        report
            .rows
            .iter()
            .find(|r| r.figure.starts_with(figure))
            .unwrap_or_else(|| panic!("no row for figure {figure}: {:?}", report.rows))
    };
    let unary = row("1.");
    assert!(
        unary.ratio.is_some_and(|r| r > 0.0 && r.is_finite()),
        "{unary:?}"
    );
    assert!(unary.gateway.contains("req/s"), "{unary:?}");
    let fanout = row("3.");
    assert!(fanout.value > 0.0 && fanout.value < 10_000.0, "{fanout:?}");
    assert!(!fanout.gateway.contains("(0 events)"), "{fanout:?}");
    let memory = row("4.");
    assert!(memory.value > 0.0, "{memory:?}");
    let startup = row("5.");
    assert!(startup.value > 0.0, "{startup:?}");
    // CometD rows need the endpoint (always built) and, for Faye, `npm ci` in bench/faye
    // (done by scripts/install-test-clients).
    let cometd = row("3. Fan-out (CometD)");
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
    let bridge = row("7. Bridge mode");
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
    // Figure 8: the chaos run's clients lost and duplicated nothing.
    let chaos = row("8. Chaos resume");
    assert_eq!(chaos.met, Some(true), "{chaos:?}");
    assert!(chaos.gateway.contains("lost 0, duplicated 0"), "{chaos:?}");
    // Figure 9: saturation, then three times its rate against the load shedding: the
    // smoke's listener admits as many calls as its saturating load keeps in flight, so
    // the overload has both answers.
    let overload: Vec<_> = report
        .rows
        .iter()
        .filter(|r| r.figure.starts_with("9."))
        .collect();
    assert_eq!(overload.len(), 3, "{overload:?}");
    assert!(
        !overload[0].gateway.contains("(0 refused"),
        "{:?}",
        overload[0]
    );
    assert!(
        overload[1].ratio.is_some_and(|r| r > 0.0 && r.is_finite()),
        "{:?}",
        overload[1]
    );
    assert!(overload[2].gateway.contains("MiB"), "{:?}", overload[2]);
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
}
