//! The in-process gateway every end-to-end test starts: port-0 listeners bound before the
//! server task is spawned (so no test sleeps), the demo configuration, and a shutdown token
//! cancelled on drop.
#![allow(dead_code, unreachable_pub)]

pub mod binary;

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
        // reqwest has TLS without a built-in provider: the tests' clients need one.
        voice_gateway::upstream::bayeux::install_crypto_provider();
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
        Self::spawn_single_port_with(|_| {}).await
    }

    /// Starts the demo gateway serving gRPC and HTTP on one port, after `adjust` has changed
    /// its configuration.
    pub async fn spawn_single_port_with(adjust: impl FnOnce(&mut Config)) -> Self {
        voice_gateway::upstream::bayeux::install_crypto_provider();
        let mut config = Config::demo();
        config.switch.external_answer_ms = 50;
        adjust(&mut config);
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

use pb::call_service_client::CallServiceClient;
use tonic::transport::Channel;
/// Generated gRPC types.
pub use voice_gateway::grpc::pb;

/// The demo password of every demo user.
pub const DEMO_PASSWORD: &str = "demo";

impl TestGateway {
    /// Connects a CallService client.
    pub async fn calls(&self) -> CallServiceClient<Channel> {
        CallServiceClient::connect(self.grpc_url()).await.unwrap()
    }
}

/// Wraps a message with Basic credentials of a demo user.
pub fn as_user<T>(user: &str, message: T) -> tonic::Request<T> {
    with_basic(user, DEMO_PASSWORD, message)
}

/// Wraps a message with Basic credentials.
pub fn with_basic<T>(user: &str, password: &str, message: T) -> tonic::Request<T> {
    use base64::Engine as _;
    let mut request = tonic::Request::new(message);
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    request
        .metadata_mut()
        .insert("authorization", format!("Basic {token}").parse().unwrap());
    request
}

/// Wraps a message with the demo service account's token, acting for `user` if given.
pub fn as_service<T>(user: Option<&str>, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", "Bearer demo-token".parse().unwrap());
    if let Some(user) = user {
        request
            .metadata_mut()
            .insert("x-voice-user", user.parse().unwrap());
    }
    request
}

/// Returns the GWS statusCode a gRPC error carries.
pub fn gws_status(status: &tonic::Status) -> u32 {
    status
        .metadata()
        .get("gws-status-code")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no gws-status-code on {status:?}"))
}

/// Reads the next WatchCalls event, failing after five seconds.
pub async fn next_event(stream: &mut tonic::Streaming<pb::WatchCallsResponse>) -> pb::CallEvent {
    let message = tokio::time::timeout(std::time::Duration::from_secs(5), stream.message())
        .await
        .expect("an event within 5 s")
        .expect("a healthy stream")
        .expect("an open stream");
    match message.kind {
        Some(pb::watch_calls_response::Kind::Event(event)) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Reads the snapshot that opens a WatchCalls stream.
pub async fn snapshot(stream: &mut tonic::Streaming<pb::WatchCallsResponse>) -> pb::CallSnapshot {
    let message = stream.message().await.unwrap().unwrap();
    match message.kind {
        Some(pb::watch_calls_response::Kind::Snapshot(snapshot)) => snapshot,
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

use pb::device_service_client::DeviceServiceClient;

impl TestGateway {
    /// Connects a DeviceService client.
    pub async fn devices(&self) -> DeviceServiceClient<Channel> {
        DeviceServiceClient::connect(self.grpc_url()).await.unwrap()
    }
}

/// Reads the next WatchDevices event, failing after five seconds.
pub async fn next_device_event(
    stream: &mut tonic::Streaming<pb::WatchDevicesResponse>,
) -> pb::DeviceEvent {
    let message = tokio::time::timeout(std::time::Duration::from_secs(5), stream.message())
        .await
        .expect("a device event within 5 s")
        .expect("a healthy stream")
        .expect("an open stream");
    match message.kind {
        Some(pb::watch_devices_response::Kind::Event(event)) => event,
        other => panic!("expected a device event, got {other:?}"),
    }
}

/// Dials 15001 from agent1 and lets agent2 answer; returns the call id.
pub async fn established_call(client: &mut CallServiceClient<Channel>) -> String {
    let dial = pb::DialRequest {
        destination: "15001".into(),
        ..Default::default()
    };
    let id = client
        .dial(as_user("agent1", dial))
        .await
        .unwrap()
        .into_inner()
        .call
        .unwrap()
        .id;
    client
        .answer(as_user(
            "agent2",
            pb::AnswerRequest {
                call_id: id.clone(),
            },
        ))
        .await
        .unwrap();
    id
}
