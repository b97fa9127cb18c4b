//! The real Node clients of the interop tests (installed by `scripts/install-test-clients`):
//! a process whose stdout lines the test reads, one line per event, and whose stdin tells
//! it to disconnect.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Returns `tests/interop/<name>`, failing when its clients are not installed.
pub fn interop_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name);
    assert!(
        dir.join("node_modules").is_dir(),
        "{} has no node_modules: run scripts/install-test-clients first",
        dir.display()
    );
    dir
}

/// A running client script.
pub struct NodeClient {
    /// What the test calls the client in failure messages.
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

impl NodeClient {
    /// Starts `node <script> <args...>` in `tests/interop/<client>`.
    pub fn start(client: &str, script: &str, args: &[&str]) -> Self {
        Self::start_with_env(client, script, args, &[])
    }

    /// Like [`Self::start`], with extra environment variables (`NODE_EXTRA_CA_CERTS`).
    pub fn start_with_env(client: &str, script: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = interop_dir(client);
        let mut child = Command::new("node")
            .arg(dir.join(script))
            .args(args)
            .envs(env.iter().copied())
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let stdin = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            name: format!("{client}/{script} {}", args.get(1).unwrap_or(&"")),
            child,
            stdin,
            lines,
        }
    }

    /// Reads the next line, failing after 10 s.
    pub async fn line(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{}: no line within 10 s", self.name))
            .unwrap()
            .unwrap_or_else(|| panic!("{}: exited without a line", self.name))
    }

    /// Reads the next line, which must be `<tag> <json>`; returns the JSON.
    pub async fn expect(&mut self, tag: &str) -> Value {
        let line = self.line().await;
        let json = line
            .strip_prefix(tag)
            .and_then(|rest| rest.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{}: expected {tag}, got {line}", self.name));
        serde_json::from_str(json).unwrap()
    }

    /// Reads the next received message (`MESSAGE {channel, data}`).
    pub async fn message(&mut self) -> Value {
        self.expect("MESSAGE").await
    }

    /// Waits for a client that ends by itself to exit successfully.
    pub async fn exit(mut self) {
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("the client exits")
            .unwrap();
        assert!(status.success(), "{}: exit {status}", self.name);
    }

    /// Asks the client to disconnect; returns the lines it printed before `BYE` (which a
    /// test expects to be none) once it has exited successfully.
    pub async fn finish(mut self) -> Vec<String> {
        let mut stdin = self.stdin.take().unwrap();
        stdin.write_all(b"DISCONNECT\n").await.unwrap();
        stdin.flush().await.unwrap();
        let mut before = Vec::new();
        loop {
            let line = self.line().await;
            if line == "BYE" {
                break;
            }
            before.push(line);
        }
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("the client exits")
            .unwrap();
        assert!(status.success(), "{}: exit {status}", self.name);
        before
    }
}
