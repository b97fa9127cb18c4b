//! A real `redis-server` (Debian's, on PATH) for the cluster engine's tests: on loopback, on
//! a port free a moment ago, with no persistence (`--save "" --appendonly no`), no config
//! file and its own directory under the temp dir. It can be restarted empty on the same port,
//! paused (SIGSTOP), resumed (SIGCONT) and killed; it is killed when the handle is dropped.
//! Every wait is bounded and fails with a message.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long a started server may take to answer PING.
pub const REDIS_START_BOUND: Duration = Duration::from_secs(10);

/// A `redis-server` child process.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server and waits until it answers PING.
    pub async fn start() -> Self {
        // Below the ephemeral range (see `free_addr`): `restart_empty` binds this port
        // again, after the client connections of a test could have taken a port-0 pick.
        let port = voice_bench::process::free_addr()
            .expect("a free loopback port")
            .port();
        let dir = std::env::temp_dir().join(format!("vg-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the redis-server directory");
        let mut server = Self {
            port,
            dir,
            child: None,
        };
        server.spawn().await;
        server
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A client connection to the server, for what a test inspects (XLEN, INFO) or does
    /// behind the engine's back (FLUSHALL).
    pub async fn connection(&self) -> ::redis::aio::MultiplexedConnection {
        let client = ::redis::Client::open(self.url()).expect("a redis URL");
        tokio::time::timeout(REDIS_START_BOUND, client.get_multiplexed_async_connection())
            .await
            .expect("a connection to redis-server within the bound")
            .expect("a connection to redis-server")
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A stopped process dies of SIGKILL too.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts an empty one on the same port.
    pub async fn restart_empty(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// Stops the server (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Continues a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        let child = self.child.as_ref().expect("redis-server is running");
        let pid = libc::pid_t::try_from(child.id()).expect("a pid");
        // SAFETY: kill(2) on our own child's pid, which we have not waited for yet.
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(sent, 0, "kill({pid}, {signal}) failed");
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): install it with scripts/install-test-clients \
                     (Debian package redis-server)"
                )
            });
        self.child = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let deadline = tokio::time::Instant::now() + REDIS_START_BOUND;
        loop {
            if ping(self.port).await {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("redis-server on port {} exited: {status}", self.port);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server on port {} did not answer PING within {REDIS_START_BOUND:?}",
                self.port
            );
            // The poll interval of the readiness check; the deadline bounds it.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Whether a server on `port` answers PING within a short bound.
async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).await.ok()?;
        Some(&reply == b"+PONG\r\n")
    };
    tokio::time::timeout(Duration::from_millis(500), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
