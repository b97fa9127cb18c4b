//! The real gateway binary (`CARGO_BIN_EXE_voice-gateway`) as a child process, for the tests
//! that need what only `main.rs` does: signals, exit codes, the admin listener, bridge mode
//! across two processes, a restart on the same port.
//!
//! Listeners are on port 0 by default and the bound addresses are read from the JSON log line
//! `voice-gateway serving`, so no test guesses a free port. The admin listener is off unless
//! asked for (tests run side by side; its default port is one). Every log line (stdout) and
//! every standard-error line is collected; every wait is bounded and fails with a message.
//! The process is killed when the handle is dropped.

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::pb;

/// How long the binary may take to log that it serves, or to exit when told to.
pub const BINARY_BOUND: Duration = Duration::from_secs(20);

/// How to start the binary: listen addresses, admin listener, extra arguments.
#[derive(Clone, Debug)]
pub struct Launch {
    grpc: String,
    http: String,
    admin: String,
    args: Vec<String>,
}

impl Default for Launch {
    fn default() -> Self {
        Self {
            grpc: "127.0.0.1:0".into(),
            http: "127.0.0.1:0".into(),
            admin: "none".into(),
            args: Vec::new(),
        }
    }
}

impl Launch {
    /// Serves gRPC and HTTP on one listener, on a port free a moment ago (the gateway takes
    /// two port-0 addresses as two listeners).
    pub fn one_port(mut self) -> Self {
        let free = voice_bench::process::free_addr().expect("a free loopback port");
        self.grpc = free.to_string();
        self.http = self.grpc.clone();
        self
    }

    /// Turns the admin listener on, on port 0.
    pub fn admin(mut self) -> Self {
        self.admin = "127.0.0.1:0".into();
        self
    }

    /// Adds command-line arguments.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// Starts the binary; returns once it logged the addresses it bound.
    pub async fn start(self) -> Binary {
        Binary::spawn(self).await
    }
}

/// Lines a child process wrote, shared with the task that reads them.
#[derive(Clone, Default)]
struct Collected {
    lines: Arc<Mutex<Vec<String>>>,
    added: Arc<Notify>,
}

impl Collected {
    /// Reads `from` line by line until it closes.
    fn drain(&self, from: impl AsyncRead + Unpin + Send + 'static) -> JoinHandle<()> {
        let sink = self.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(from).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                sink.lines.lock().unwrap().push(line);
                sink.added.notify_waiters();
            }
            sink.added.notify_waiters();
        })
    }

    fn snapshot(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// The gateway binary, running.
pub struct Binary {
    child: tokio::process::Child,
    launch: Launch,
    /// The bound gRPC address.
    pub grpc: SocketAddr,
    /// The bound HTTP address (the gRPC one with [`Launch::one_port`]).
    pub http: SocketAddr,
    /// The bound admin address, when [`Launch::admin`] turned it on.
    pub admin: Option<SocketAddr>,
    stdout: Collected,
    stderr: Collected,
    readers: Vec<JoinHandle<()>>,
}

impl Binary {
    /// Starts how `launch` says.
    pub fn launch() -> Launch {
        Launch::default()
    }

    /// Starts the binary on port-0 listeners (gRPC and HTTP apart, no admin listener) with
    /// `args`; returns once it serves.
    pub async fn start(args: &[&str]) -> Self {
        Launch::default().args(args).start().await
    }

    async fn spawn(launch: Launch) -> Self {
        // The tests' reqwest clients share the gateway's rustls build (no default provider).
        voice_gateway::upstream::bayeux::install_crypto_provider();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_voice-gateway"))
            .args(["--grpc-listen", &launch.grpc, "--http-listen", &launch.http])
            .args(["--admin-listen", &launch.admin, "--log-format", "json"])
            .args(&launch.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the gateway binary starts");
        let (stdout, stderr) = (Collected::default(), Collected::default());
        let readers = vec![
            stdout.drain(child.stdout.take().unwrap()),
            stderr.drain(child.stderr.take().unwrap()),
        ];
        let mut binary = Self {
            child,
            launch,
            grpc: ([0, 0, 0, 0], 0).into(),
            http: ([0, 0, 0, 0], 0).into(),
            admin: None,
            stdout,
            stderr,
            readers,
        };
        let serving = binary.serving().await;
        let addr = |key: &str| -> SocketAddr {
            let text = serving["fields"][key].as_str().unwrap_or_default();
            let addr: SocketAddr = text
                .parse()
                .unwrap_or_else(|e| panic!("{key} in the serving line ({e}): {serving}"));
            assert_ne!(addr.port(), 0, "the log names the bound {key}: {serving}");
            addr
        };
        binary.grpc = addr("grpc");
        binary.http = addr("http");
        if binary.launch.admin != "none" {
            binary.admin = Some(addr("admin"));
        }
        binary
    }

    /// Waits for the `voice-gateway serving` line, failing with the process's output if it
    /// exits first or takes too long.
    async fn serving(&mut self) -> Value {
        let found = tokio::time::timeout(BINARY_BOUND, async {
            loop {
                let added = self.stdout.added.notified();
                if let Some(line) = self
                    .log()
                    .into_iter()
                    .find(|l| is_message(l, "voice-gateway serving"))
                {
                    return Ok(line);
                }
                if let Ok(Some(status)) = self.child.try_wait() {
                    return Err(status);
                }
                // Woken by a new line or the pipe closing; re-checked every 100 ms for an
                // exit that closes nothing we read.
                let _ = tokio::time::timeout(Duration::from_millis(100), added).await;
            }
        })
        .await;
        match found {
            Ok(Ok(line)) => line,
            Ok(Err(status)) => panic!(
                "the gateway exited ({status}) before serving; stderr:\n{}",
                self.stderr_lines().join("\n")
            ),
            Err(_) => panic!(
                "the gateway did not serve within {BINARY_BOUND:?}; stdout:\n{}\nstderr:\n{}",
                self.stdout.snapshot().join("\n"),
                self.stderr_lines().join("\n")
            ),
        }
    }

    /// Returns `http://<grpc addr>`.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// Returns `http://<http addr>`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// Returns `http://<admin addr>`, failing if the admin listener is off.
    pub fn admin_url(&self) -> String {
        let admin = self.admin.expect("started with Launch::admin");
        format!("http://{admin}")
    }

    /// Connects a CallService client.
    pub async fn calls(
        &self,
    ) -> pb::call_service_client::CallServiceClient<tonic::transport::Channel> {
        pb::call_service_client::CallServiceClient::connect(self.grpc_url())
            .await
            .unwrap()
    }

    /// Connects a DeviceService client.
    pub async fn devices(
        &self,
    ) -> pb::device_service_client::DeviceServiceClient<tonic::transport::Channel> {
        pb::device_service_client::DeviceServiceClient::connect(self.grpc_url())
            .await
            .unwrap()
    }

    /// Returns the JSON log lines written so far (stdout), parsed.
    pub fn log(&self) -> Vec<Value> {
        self.stdout
            .snapshot()
            .iter()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// Returns the log lines written so far (stdout), as written.
    pub fn log_lines(&self) -> Vec<String> {
        self.stdout.snapshot()
    }

    /// Returns the standard-error lines written so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.snapshot()
    }

    /// Waits, at most `bound`, for a log line whose `fields.message` is `message`.
    pub async fn wait_for_log(&self, message: &str, bound: Duration) -> Value {
        tokio::time::timeout(bound, async {
            loop {
                let added = self.stdout.added.notified();
                if let Some(line) = self.log().into_iter().find(|l| is_message(l, message)) {
                    return line;
                }
                added.await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no log line {message:?} within {bound:?}; log:\n{}",
                self.stdout.snapshot().join("\n")
            )
        })
    }

    /// Sends the process `signal` (`libc::SIGTERM`, `libc::SIGINT`, ...).
    pub fn signal(&self, signal: libc::c_int) {
        let pid = self.child.id().expect("the gateway still runs");
        let pid = libc::pid_t::try_from(pid).unwrap();
        // SAFETY: kill(2) on our own child's pid; it has not been reaped (`id()` is Some).
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(sent, 0, "kill({pid}, {signal}) failed");
    }

    /// Sends SIGTERM, as an orchestrator stopping the gateway does.
    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Waits at most `bound` for the process to exit and returns its status; then waits for
    /// its output to be read to the end.
    pub async fn wait_with_timeout(&mut self, bound: Duration) -> ExitStatus {
        let status = tokio::time::timeout(bound, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the gateway did not exit within {bound:?}; log:\n{}",
                    self.stdout.snapshot().join("\n")
                )
            })
            .unwrap();
        for reader in self.readers.drain(..) {
            tokio::time::timeout(bound, reader)
                .await
                .expect("the output pipes close after exit")
                .unwrap();
        }
        status
    }

    /// Stops the gateway with SIGTERM, checks that it exits with status 0, and returns its
    /// log lines.
    pub async fn stop(mut self) -> Vec<String> {
        self.sigterm();
        let status = self.wait_with_timeout(BINARY_BOUND).await;
        assert!(
            status.success(),
            "the gateway exits cleanly on SIGTERM: {status}; stderr:\n{}",
            self.stderr_lines().join("\n")
        );
        self.log_lines()
    }

    /// Kills the process (SIGKILL: no goodbye to its clients) and waits for it to exit.
    pub async fn kill(&mut self) {
        // Already exited is fine: `wait` then returns the status it collected.
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Kills the process if it runs, and starts it again with the same arguments on the
    /// addresses it had bound, as a restart does.
    pub async fn restart(&mut self) {
        self.kill().await;
        let mut launch = self.launch.clone();
        launch.grpc = self.grpc.to_string();
        launch.http = self.http.to_string();
        if let Some(admin) = self.admin {
            launch.admin = admin.to_string();
        }
        *self = launch.start().await;
    }
}

/// How a run of the binary that was not meant to serve ended.
#[derive(Debug)]
pub struct Exited {
    /// The exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs the binary with `args` (nothing on standard input) until it exits, at most
/// [`BINARY_BOUND`]: for runs that must stop on their own (bad flags, a taken port).
pub async fn run_to_exit(args: &[&str]) -> Exited {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_voice-gateway"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the gateway binary starts");
    let output = tokio::time::timeout(BINARY_BOUND, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("voice-gateway {args:?} did not exit within {BINARY_BOUND:?}"))
        .unwrap();
    Exited {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Whether a log line's `fields.message` is `message`.
fn is_message(line: &Value, message: &str) -> bool {
    line["fields"]["message"] == message
}
