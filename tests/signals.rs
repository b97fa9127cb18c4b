//! The real binary's life cycle, as an orchestrator sees it: SIGTERM and SIGINT end it with
//! status 0 once its clients' streams have ended, logging the shutdown; a listener it cannot
//! bind or a bad flag ends it at once with status 1 and a message naming what to fix.
//! (Bad configuration files: `tests/ops.rs`. What a watch or a long-poll is told while the
//! gateway drains: the drain tests.)

mod common;

use common::binary::{Binary, run_to_exit};
use common::{WAIT, as_user, pb, within};

/// The `fields.message` of every log line, in order.
fn messages(gw: &Binary) -> Vec<String> {
    gw.log()
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str().map(str::to_owned))
        .collect()
}

/// Waits for the process to exit; asserts status 0 and the shutdown's log lines in order.
async fn exits_cleanly(mut gw: Binary) {
    let status = gw.wait_with_timeout(WAIT).await;
    assert_eq!(
        status.code(),
        Some(0),
        "{status}; stderr: {:?}",
        gw.stderr_lines()
    );
    logged_in_order(&gw, "shutting down", "voice-gateway stopped");
    assert!(gw.stderr_lines().is_empty(), "{:?}", gw.stderr_lines());
}

/// Asserts that `later` was logged after `earlier`.
fn logged_in_order(gw: &Binary, earlier: &str, later: &str) {
    let all = messages(gw);
    let at = |m: &str| all.iter().position(|l| l == m);
    match (at(earlier), at(later)) {
        (Some(a), Some(b)) if a < b => {}
        _ => panic!("expected {earlier:?} then {later:?} in {all:#?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_open_watch_streams_and_exits_with_status_0() {
    let gw = Binary::start(&[]).await;
    let mut calls = gw.calls().await;
    let mut watch = common::watch_calls(&mut calls, "agent1").await;

    gw.sigterm();
    // The stream ends (how, and with what resume advice, is the drain's to say).
    let ended = within("the watch stream's end", watch.message()).await;
    assert!(
        !matches!(ended, Ok(Some(_))),
        "a message after SIGTERM: {ended:?}"
    );
    exits_cleanly(gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_exits_with_status_0() {
    let gw = Binary::start(&[]).await;
    // It serves until the signal.
    gw.calls()
        .await
        .list_calls(as_user("agent1", pb::ListCallsRequest {}))
        .await
        .unwrap();
    gw.signal(libc::SIGINT);
    exits_cleanly(gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_ends_the_binary_with_status_1_naming_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    for (flag, other) in [
        ("--grpc-listen", "--http-listen"),
        ("--http-listen", "--grpc-listen"),
    ] {
        let exited =
            run_to_exit(&[flag, &taken, other, "127.0.0.1:0", "--admin-listen", "none"]).await;
        assert_eq!(exited.status.code(), Some(1), "{flag}: {exited:?}");
        assert!(
            exited
                .stderr
                .contains(&format!("cannot listen on {taken} ({flag})")),
            "{flag}: {}",
            exited.stderr
        );
        assert!(
            !exited.stdout.contains("voice-gateway serving"),
            "{exited:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_end_the_binary_with_a_message_before_it_serves() {
    let cases: [(&[&str], &str); 3] = [
        (&["--grpc-listen", "not-an-address"], "--grpc-listen"),
        (&["--admin-listen", "nowhere"], "expected host:port or none"),
        (&["--upstream", "ftp://gws.example"], "--upstream"),
    ];
    for (args, says) in cases {
        let mut all = vec!["--http-listen", "127.0.0.1:0"];
        for (flag, default) in [("--grpc-listen", "127.0.0.1:0"), ("--admin-listen", "none")] {
            if !args.contains(&flag) {
                all.extend([flag, default]);
            }
        }
        all.extend(args);
        let exited = run_to_exit(&all).await;
        assert!(!exited.status.success(), "{args:?}: {exited:?}");
        assert!(exited.stderr.contains(says), "{args:?}: {}", exited.stderr);
        assert!(
            !exited.stdout.contains("voice-gateway serving"),
            "{exited:?}"
        );
    }
}
