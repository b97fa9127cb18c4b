//! Figure 11's processes: a `redis-server` on loopback (no persistence, its own directory
//! under the work directory), the bridge instances of one cluster (the gateway with
//! `--upstream` and a `[cluster]` table naming that Redis), and what the figure reads from
//! Redis: leases and the log's head through the gateway's own engine
//! ([`voice_gateway::cluster`]), `used_memory` through `INFO memory`. Every process is a
//! [`Server`], stopped when dropped.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use futures::{StreamExt as _, TryStreamExt as _};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use voice_gateway::cluster::{ClusterConfig, Engine};
use voice_gateway::grpc::pb;

use crate::bridge::connect;
use crate::figures::{Bench, RunningGateway};
use crate::process::{Server, free_addr};
use crate::setup::{as_agent, user};

/// Bound on each wait of the set-up (Redis answering, a lease taken).
const SETUP_WAIT: Duration = Duration::from_secs(10);
/// Agents signing in on one instance at once (as figure 7: an instance holds one of its
/// credential-check slots per core through each upstream sign-in).
const SIGN_IN_CONCURRENCY: usize = 2;

/// A `redis-server` child process on loopback.
#[derive(Debug)]
pub struct RedisProcess {
    /// The process.
    pub server: Server,
    /// Its address.
    pub addr: SocketAddr,
}

impl RedisProcess {
    /// Starts `redis-server` without persistence (`--save "" --appendonly no`, as
    /// `src/cluster/redis.rs` says to run it) in `dir`; `None` when it is not installed.
    pub fn start(dir: &Path, log_dir: &Path) -> anyhow::Result<Option<Self>> {
        let installed = std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            return Ok(None);
        }
        std::fs::create_dir_all(dir)?;
        let addr = free_addr()?;
        let args: Vec<String> = [
            "--port",
            &addr.port().to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir.display().to_string(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let mut server = Server::spawn("redis", Path::new("redis-server"), &args, &[], log_dir)?;
        server.wait_listening(&[addr], SETUP_WAIT)?;
        Ok(Some(Self { server, addr }))
    }

    /// Returns `redis://<addr>`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Returns the engine under the gateway's default key prefix, as the instances use it.
    pub fn engine(&self) -> anyhow::Result<Engine> {
        self.engine_with_prefix(&ClusterConfig::default().prefix)
    }

    /// Returns the gateway's Redis engine on this server with keys under `prefix`.
    pub fn engine_with_prefix(&self, prefix: &str) -> anyhow::Result<Engine> {
        voice_gateway::cluster::connect(&ClusterConfig {
            url: Some(self.url()),
            prefix: prefix.to_owned(),
            ..ClusterConfig::default()
        })
    }

    /// Reads `used_memory` (bytes) from `INFO memory`.
    pub async fn used_memory(&self) -> anyhow::Result<u64> {
        let info = tokio::time::timeout(SETUP_WAIT, info_memory(self.addr))
            .await
            .context("INFO memory: no answer")??;
        info.lines()
            .find_map(|line| line.strip_prefix("used_memory:"))
            .and_then(|value| value.trim().parse().ok())
            .context("no used_memory in INFO memory")
    }
}

/// Sends `INFO memory` (inline command) and reads its bulk-string reply.
async fn info_memory(addr: SocketAddr) -> anyhow::Result<String> {
    let mut stream = tokio::io::BufReader::new(tokio::net::TcpStream::connect(addr).await?);
    stream.get_mut().write_all(b"INFO memory\r\n").await?;
    let mut header = String::new();
    stream.read_line(&mut header).await?;
    let len: usize = header
        .trim_end()
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("INFO memory answered {header:?}"))?;
    let mut body = vec![0; len];
    stream.read_exact(&mut body).await?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

impl Bench {
    /// Starts one bridge instance of the cluster on `redis`: the demo configuration with
    /// `[upstream]` `url = "http://<upstream>"` and `transport = "websocket"`, and
    /// `[cluster]` `url` and `lease_ttl_ms` (in the file, not as `--upstream` and
    /// `--cluster`: the configuration is checked before the flags apply, and the smoke
    /// run's in-process gateway has no `--cluster`).
    pub(crate) fn spawn_instance(
        &self,
        name: &str,
        upstream: SocketAddr,
        redis: &RedisProcess,
    ) -> anyhow::Result<RunningGateway> {
        let config = self.work.join("cluster-instance.toml");
        std::fs::write(
            &config,
            format!(
                "{}\n[upstream]\nurl = \"http://{upstream}\"\ntransport = \"websocket\"\n\n[cluster]\nurl = \"{}\"\nlease_ttl_ms = {}\n",
                voice_gateway::config::DEMO_TOML,
                redis.url(),
                self.plan.cluster.lease_ttl_ms
            ),
        )
        .with_context(|| format!("cannot write {}", config.display()))?;
        self.launch_gateway(
            name,
            &["--config".into(), config.display().to_string()],
            true,
        )
    }
}

/// Signs `agents` in on the instance at `grpc_url` (a ListCalls with Basic credentials:
/// the instance checks them at U, opens its upstream session and tries the user's lease).
pub async fn sign_in(grpc_url: &str, agents: &[usize]) -> anyhow::Result<()> {
    let client = connect(grpc_url).await?;
    futures::stream::iter(agents.iter().copied())
        .map(|agent| {
            let mut client = client.clone();
            async move {
                client
                    .list_calls(as_agent(agent, pb::ListCallsRequest {}))
                    .await
                    .with_context(|| format!("{} cannot sign in on {grpc_url}", user(agent)))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(SIGN_IN_CONCURRENCY)
        .try_collect()
        .await
}

/// Waits (bounded) until every agent's lease is held; returns the holder, which must be
/// the same instance for all.
pub async fn common_holder(engine: &Engine, agents: &[usize]) -> anyhow::Result<String> {
    let mut holder: Option<String> = None;
    for &agent in agents {
        let name = user(agent);
        let grant = held(engine, &name).await?;
        match &holder {
            None => holder = Some(grant.holder),
            Some(first) => anyhow::ensure!(
                *first == grant.holder,
                "{name}'s lease is held by {}, not by {first}",
                grant.holder
            ),
        }
    }
    holder.context("no agents")
}

/// Waits (bounded) until `user`'s lease is held; returns the grant.
pub async fn held(engine: &Engine, user: &str) -> anyhow::Result<voice_gateway::cluster::Grant> {
    let deadline = tokio::time::Instant::now() + SETUP_WAIT;
    loop {
        if let Some(grant) = engine.leases.holder(user).await? {
            return Ok(grant);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no instance took {user}'s lease within {SETUP_WAIT:?}"
        );
        // The poll period of a lease being taken; the deadline bounds it.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
