//! Who wrote which entry of the shared log, as Redis itself saw it: a `MONITOR` connection
//! (raw RESP on loopback) records every append script (`EVALSHA … 4 epoch lease:<user> seq
//! log <epoch> <fence>:<holder> …`) and the `XADD`s it ran (Redis 7 shows a script's own
//! commands, tagged `[0 lua]`, right after the script's line). An `XADD` is an entry the log
//! took, so a fenced-out append (no `XADD`) records nothing; an old owner that wrote past
//! its lease shows up as an entry whose fence is older than one already written for that
//! user. A Redis killed and restarted is reconnected to, until the test ends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// One entry the log took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The user whose lease the append named.
    pub user: String,
    /// The grant's fence.
    pub fence: u64,
    /// The grant's holder (an instance id).
    pub holder: String,
    /// The epoch the append named.
    pub epoch: String,
    /// The entry's sequence.
    pub sequence: u64,
}

/// The append script being run, between its line and its `XADD`s.
#[derive(Debug, Clone)]
struct Running {
    user: String,
    fence: u64,
    holder: String,
    epoch: String,
}

/// The recorder; stops when dropped.
pub struct Monitor {
    written: Arc<Mutex<Vec<Written>>>,
    stop: CancellationToken,
}

impl Monitor {
    /// Starts recording what the Redis on `port` runs; returns once the first `MONITOR` is
    /// acknowledged.
    pub async fn start(port: u16) -> Self {
        let written = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let first = tokio::time::timeout(Duration::from_secs(5), connect(port))
            .await
            .expect("MONITOR acknowledged within 5 s")
            .expect("a MONITOR connection");
        tokio::spawn(record(port, first, written.clone(), stop.clone()));
        Self { written, stop }
    }

    /// Returns the entries recorded so far, in the order Redis ran them.
    pub fn written(&self) -> Vec<Written> {
        self.written.lock().unwrap().clone()
    }

    /// Fails when an entry of a user was written under an older fence than an entry of that
    /// user before it: two owners wrote for one user, the old one past its lease.
    pub fn assert_one_writer_at_a_time(&self) {
        let written = self.written();
        let mut last: std::collections::HashMap<&str, &Written> = Default::default();
        for entry in &written {
            if let Some(before) = last.get(entry.user.as_str()) {
                assert!(
                    entry.fence >= before.fence,
                    "{}'s entry {} (epoch {}) was written by fence {} ({}) after fence {} ({}) \
                     wrote entry {}: an old owner wrote past its lease",
                    entry.user,
                    entry.sequence,
                    entry.epoch,
                    entry.fence,
                    entry.holder,
                    before.fence,
                    before.holder,
                    before.sequence
                );
            }
            last.insert(&entry.user, entry);
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

type Lines = tokio::io::Lines<BufReader<TcpStream>>;

async fn connect(port: u16) -> std::io::Result<Lines> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(b"MONITOR\r\n").await?;
    let mut lines = BufReader::new(stream).lines();
    match lines.next_line().await? {
        Some(ok) if ok == "+OK" => Ok(lines),
        other => Err(std::io::Error::other(format!("MONITOR said {other:?}"))),
    }
}

async fn record(
    port: u16,
    mut lines: Lines,
    written: Arc<Mutex<Vec<Written>>>,
    stop: CancellationToken,
) {
    let mut running: Option<Running> = None;
    loop {
        let line = tokio::select! {
            () = stop.cancelled() => return,
            line = lines.next_line() => line,
        };
        match line {
            Ok(Some(line)) => observe(&line, &mut running, &written),
            _ => {
                // Redis went away (a case kills it): monitor the next one on the same port.
                running = None;
                lines = loop {
                    if stop.is_cancelled() {
                        return;
                    }
                    if let Ok(lines) = connect(port).await {
                        break lines;
                    }
                    // The retry period while Redis is down; the test's own waits bound it.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                };
            }
        }
    }
}

fn observe(line: &str, running: &mut Option<Running>, written: &Mutex<Vec<Written>>) {
    let from_script = line.contains("[0 lua]");
    let args = quoted(line);
    let Some(command) = args.first() else { return };
    if from_script {
        if command == "XADD" {
            let run = running
                .as_ref()
                .unwrap_or_else(|| panic!("an XADD outside an append script: {line}"));
            let id = &args[5];
            let sequence = id
                .strip_suffix("-0")
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("an entry id {id:?}: {line}"));
            written.lock().unwrap().push(Written {
                user: run.user.clone(),
                fence: run.fence,
                holder: run.holder.clone(),
                epoch: run.epoch.clone(),
                sequence,
            });
        }
        return;
    }
    *running = None;
    let is_script = command.eq_ignore_ascii_case("evalsha") || command.eq_ignore_ascii_case("eval");
    if !(is_script && args.len() > 8 && args[2] == "4" && args[6].ends_with("log")) {
        return;
    }
    let user = args[4]
        .rsplit_once("lease:")
        .map(|(_, user)| user.to_owned())
        .unwrap_or_else(|| panic!("an append's lease key: {line}"));
    let (fence, holder) = args[8]
        .split_once(':')
        .unwrap_or_else(|| panic!("an append's grant: {line}"));
    *running = Some(Running {
        user,
        fence: fence.parse().expect("a numeric fence"),
        holder: holder.to_owned(),
        epoch: args[7].clone(),
    });
}

/// The double-quoted arguments of a MONITOR line (escapes kept as written but for `\"`).
fn quoted(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut arg = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(next) = chars.next() {
                        if next != '"' && next != '\\' {
                            arg.push('\\');
                        }
                        arg.push(next);
                    }
                }
                '"' => break,
                c => arg.push(c),
            }
        }
        args.push(arg);
    }
    args
}
