//! The in-process gateway every end-to-end test starts: port-0 listeners bound before the
//! server task is spawned (so no test sleeps), the demo configuration, and a shutdown token
//! cancelled on drop.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use voice_gateway::config::Config;
use voice_gateway::{Listeners, run};

/// A running gateway on loopback.
pub struct TestGateway {
    /// The gRPC address.
    pub grpc_addr: SocketAddr,
    /// The HTTP address.
    pub http_addr: SocketAddr,
    /// Cancelled on drop.
    pub shutdown: CancellationToken,
    /// The server task.
    pub task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestGateway {
    /// Starts the demo gateway with external parties answering after 50 ms.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts the demo gateway after `adjust` has changed its configuration.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::demo();
        config.switch.external_answer_ms = 50;
        adjust(&mut config);
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc_addr = grpc.local_addr().unwrap();
        let http_addr = http.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            config,
            Listeners {
                grpc,
                http: Some(http),
            },
            shutdown.clone(),
        ));
        Self {
            grpc_addr,
            http_addr,
            shutdown,
            task: Some(task),
        }
    }

    /// Starts the demo gateway serving gRPC and HTTP on one port.
    pub async fn spawn_single_port() -> Self {
        let mut config = Config::demo();
        config.switch.external_answer_ms = 50;
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = grpc.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            config,
            Listeners { grpc, http: None },
            shutdown.clone(),
        ));
        Self {
            grpc_addr: addr,
            http_addr: addr,
            shutdown,
            task: Some(task),
        }
    }

    /// Returns `http://<grpc addr>`.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// Returns `http://<http addr>`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// Shuts the gateway down and waits for it to stop.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.take().unwrap().await.unwrap()
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
