//! The in-process gateway every end-to-end test starts, served exactly as the binary serves
//! it (`voice_gateway::Gateway::build` then `serve`: the production listeners' stack, with
//! its HTTP/1.1 head limit, upgrades and HTTP/2 CONNECT) on port-0 listeners bound before the
//! server task is spawned (so no test sleeps), on a multi-threaded runtime as in production,
//! with a shutdown token cancelled on drop. Also: credentials for requests, bounded readers
//! of watch streams, and the one "established call" helper.
#![allow(dead_code, unreachable_pub)]

pub mod binary;
pub mod desktop;
pub mod redis;
pub mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use voice_gateway::admin::{self, Readiness};
use voice_gateway::app::AppState;
use voice_gateway::config::Config;
use voice_gateway::gws::cometd::BayeuxRegistry;
use voice_gateway::tls::ServerTls;
use voice_gateway::{Gateway, Listeners};

/// How long a test waits for one thing the gateway should do (an event, a reply, a
/// snapshot) before failing with a message.
pub const WAIT: Duration = Duration::from_secs(5);

/// Awaits `future` for at most [`WAIT`], failing with `what` when it takes longer.
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {WAIT:?}"))
}

/// Polls `check` until it holds, failing with `what` after [`WAIT`]: for a state the
/// gateway reaches on its own (a session swept, a connect held) that no stream reports.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {WAIT:?}: {what}"
        );
        // The poll interval of this check, not a wait for the gateway: the deadline bounds it.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The configuration tests start from: the demo, with external parties answering after
/// 50 ms, CometD long-polls held 5 s and sessions swept 5 s after their last connect.
pub fn test_config() -> Config {
    let mut config = Config::demo();
    config.switch.external_answer_ms = 50;
    config.cometd.timeout_ms = 5_000;
    config.cometd.max_interval_ms = 5_000;
    config.cometd.sweep_period_ms = 50;
    config
}

/// How to start a [`TestGateway`]: its configuration, one port or two, given listeners, an
/// admin listener.
pub struct Spawn {
    config: Config,
    one_port: bool,
    admin: bool,
    listeners: Option<Listeners>,
    cluster: Option<voice_gateway::cluster::Engine>,
}

impl Spawn {
    /// Makes the gateway a cluster member over `engine` (bridge mode: set `upstream.url`).
    pub fn cluster(mut self, engine: voice_gateway::cluster::Engine) -> Self {
        self.cluster = Some(engine);
        self
    }

    /// Changes the configuration.
    pub fn config(mut self, adjust: impl FnOnce(&mut Config)) -> Self {
        adjust(&mut self.config);
        self
    }

    /// Serves gRPC and HTTP on one port (the shared HTTP stack).
    pub fn one_port(mut self) -> Self {
        self.one_port = true;
        self
    }

    /// Serves on listeners the test bound (to restart a gateway on one address).
    pub fn listeners(mut self, listeners: Listeners) -> Self {
        self.listeners = Some(listeners);
        self
    }

    /// Serves HTTP on a listener the test bound (gRPC on port 0), to bring a gateway up,
    /// down and up again on one address.
    pub fn http_listener(self, http: TcpListener) -> Spawn {
        let grpc = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        grpc.set_nonblocking(true).unwrap();
        self.listeners(Listeners {
            grpc: TcpListener::from_std(grpc).unwrap(),
            http: Some(http),
        })
    }

    /// Also serves the admin listener (metrics, `/healthz`, `/readyz`) on port 0.
    pub fn admin(mut self) -> Self {
        self.admin = true;
        self
    }

    /// Starts the gateway; returns once its listeners are bound and its state is built.
    pub async fn start(self) -> TestGateway {
        assert_eq!(
            tokio::runtime::Handle::current().runtime_flavor(),
            tokio::runtime::RuntimeFlavor::MultiThread,
            "the gateway runs on a multi-threaded runtime in production: use \
             #[tokio::test(flavor = \"multi_thread\", worker_threads = 2)]"
        );
        // reqwest has TLS without a built-in provider: the tests' clients need one.
        voice_gateway::upstream::bayeux::install_crypto_provider();
        let listeners = match self.listeners {
            Some(listeners) => listeners,
            None => Listeners {
                grpc: bind().await,
                http: if self.one_port {
                    None
                } else {
                    Some(bind().await)
                },
            },
        };
        let grpc_addr = listeners.grpc.local_addr().unwrap();
        let http_addr = listeners
            .http
            .as_ref()
            .map_or(grpc_addr, |l| l.local_addr().unwrap());
        // As the binary does: TLS checked first, then the gateway built, then served.
        let tls = ServerTls::from_config(&self.config, listeners.http.is_none())
            .expect("the test's TLS configuration loads");
        let shutdown = CancellationToken::new();
        let readiness = Readiness::new();
        let admin_stop = CancellationToken::new();
        let admin_addr = if self.admin {
            let listener = bind().await;
            let addr = listener.local_addr().unwrap();
            tokio::spawn(admin::serve(
                listener,
                readiness.clone(),
                admin_stop.clone(),
            ));
            Some(addr)
        } else {
            None
        };
        let gateway = match self.cluster {
            None => Gateway::build(self.config, &tls, &listeners, shutdown.clone()).await,
            Some(engine) => {
                Gateway::build_in_cluster(self.config, &tls, &listeners, shutdown.clone(), engine)
                    .await
            }
        }
        .expect("the test's configuration is valid");
        let state = gateway.state.clone();
        let registry = gateway.registry.clone();
        let task = tokio::spawn(gateway.serve(tls, listeners, readiness.clone()));
        TestGateway {
            grpc_addr,
            http_addr,
            admin_addr,
            state,
            registry,
            readiness,
            shutdown,
            admin_stop,
            task: Some(task),
        }
    }
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// A running gateway on loopback.
pub struct TestGateway {
    /// The gRPC address.
    pub grpc_addr: SocketAddr,
    /// The HTTP address (the gRPC one on one port).
    pub http_addr: SocketAddr,
    /// The admin listener's address, when started with [`Spawn::admin`].
    pub admin_addr: Option<SocketAddr>,
    /// The state the fronts share, to inspect the core.
    pub state: AppState,
    /// The CometD sessions (a test may drop one, as the server does at its queue limit).
    pub registry: Arc<BayeuxRegistry>,
    /// What `/readyz` reports.
    pub readiness: Arc<Readiness>,
    /// Cancelled on drop.
    pub shutdown: CancellationToken,
    admin_stop: CancellationToken,
    /// The server task.
    pub task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestGateway {
    /// Describes a gateway on [`test_config`], gRPC and HTTP on two port-0 listeners.
    pub fn builder() -> Spawn {
        Spawn {
            config: test_config(),
            one_port: false,
            admin: false,
            listeners: None,
            cluster: None,
        }
    }

    /// Starts the test gateway ([`test_config`]).
    pub async fn spawn() -> Self {
        Self::builder().start().await
    }

    /// Starts the test gateway after `adjust` has changed its configuration.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::builder().config(adjust).start().await
    }

    /// Starts the test gateway serving gRPC and HTTP on one port.
    pub async fn spawn_single_port() -> Self {
        Self::builder().one_port().start().await
    }

    /// Starts the test gateway serving gRPC and HTTP on one port, after `adjust` has changed
    /// its configuration.
    pub async fn spawn_single_port_with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::builder().one_port().config(adjust).start().await
    }

    /// Returns `http://<grpc addr>`.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// Returns `http://<http addr>`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// Returns the CometD notifications URL.
    pub fn url(&self) -> String {
        format!("{}/api/v2/notifications", self.http_url())
    }

    /// Returns the WebSocket URL of the notifications endpoint.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/api/v2/notifications", self.http_addr)
    }

    /// Returns `http://<admin addr>`, failing without an admin listener.
    pub fn admin_url(&self) -> String {
        let admin = self.admin_addr.expect("started with Spawn::admin");
        format!("http://{admin}")
    }

    /// Shuts the gateway down and waits, at most 10 s, for it to stop.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let task = self.task.take().unwrap();
        let served = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the gateway stops within 10 s of its shutdown")
            .unwrap();
        self.admin_stop.cancel();
        served
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.admin_stop.cancel();
    }
}

use pb::call_service_client::CallServiceClient;
use pb::device_service_client::DeviceServiceClient;
use tonic::transport::Channel;
/// Generated gRPC types.
pub use voice_gateway::grpc::pb;

/// The demo password of every demo user.
pub const DEMO_PASSWORD: &str = "demo";

impl TestGateway {
    /// Connects a CallService client.
    pub async fn calls(&self) -> CallServiceClient<Channel> {
        within(
            "a gRPC connection",
            CallServiceClient::connect(self.grpc_url()),
        )
        .await
        .unwrap()
    }

    /// Connects a DeviceService client.
    pub async fn devices(&self) -> DeviceServiceClient<Channel> {
        within(
            "a gRPC connection",
            DeviceServiceClient::connect(self.grpc_url()),
        )
        .await
        .unwrap()
    }

    /// `from` dials `to_number` and `to_user` answers, over gRPC; returns the call id.
    pub async fn established_call(&self, from: &str, to_user: &str, to_number: &str) -> String {
        established_call_between(&mut self.calls().await, from, to_user, to_number).await
    }

    /// The seed scenario: agent1 calls agent2, agent2 answers, agent1 records and stops.
    pub async fn seed_recording_scenario(&self) -> String {
        let mut calls = self.calls().await;
        let id = established_call_between(&mut calls, "agent1", "agent2", "15001").await;
        record_and_stop(&mut calls, "agent1", &id).await;
        id
    }
}

/// `user` starts, then stops recording `call`.
pub async fn record_and_stop(client: &mut CallServiceClient<Channel>, user: &str, call: &str) {
    let call_id = call.to_owned();
    client
        .start_call_recording(as_user(user, pb::StartCallRecordingRequest { call_id }))
        .await
        .unwrap();
    let call_id = call.to_owned();
    client
        .stop_call_recording(as_user(user, pb::StopCallRecordingRequest { call_id }))
        .await
        .unwrap();
}

/// Wraps a message with Basic credentials of a demo user.
pub fn as_user<T>(user: &str, message: T) -> tonic::Request<T> {
    with_basic(user, DEMO_PASSWORD, message)
}

/// Returns an `Authorization: Basic` value for a demo user.
pub fn basic(user: &str) -> String {
    use base64::Engine as _;
    let raw = format!("{user}:{DEMO_PASSWORD}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
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

/// Reads the next message of a stream, failing after [`WAIT`] or at its end.
async fn next_message<T>(stream: &mut tonic::Streaming<T>, what: &str) -> T {
    within(what, stream.message())
        .await
        .unwrap_or_else(|status| panic!("{what}: the stream failed: {status:?}"))
        .unwrap_or_else(|| panic!("{what}: the stream ended"))
}

/// Reads the next WatchCalls event, failing after [`WAIT`].
pub async fn next_event(stream: &mut tonic::Streaming<pb::WatchCallsResponse>) -> pb::CallEvent {
    match next_message(stream, "a call event").await.kind {
        Some(pb::watch_calls_response::Kind::Event(event)) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Opens `user`'s WatchCalls and reads past its snapshot.
pub async fn watch_calls(
    client: &mut CallServiceClient<Channel>,
    user: &str,
) -> tonic::Streaming<pb::WatchCallsResponse> {
    let mut stream = within(
        "WatchCalls opens",
        client.watch_calls(as_user(user, pb::WatchCallsRequest::default())),
    )
    .await
    .unwrap_or_else(|status| panic!("{user}'s WatchCalls: {status:?}"))
    .into_inner();
    snapshot(&mut stream).await;
    stream
}

/// Reads WatchCalls events until one matches `wanted`; returns every event read, in order.
/// Fails after [`WAIT`].
pub async fn watch_until(
    stream: &mut tonic::Streaming<pb::WatchCallsResponse>,
    wanted: impl Fn(&pb::CallEvent) -> bool,
) -> Vec<pb::CallEvent> {
    let mut events = Vec::new();
    let read = async {
        loop {
            let event = next_event(stream).await;
            let done = wanted(&event);
            events.push(event);
            if done {
                return;
            }
        }
    };
    if tokio::time::timeout(WAIT, read).await.is_err() {
        panic!("no wanted WatchCalls event within {WAIT:?}; got {events:#?}");
    }
    events
}

/// Reads a watch stream past whatever it still carries to the status it ends with, failing
/// after [`WAIT`] or if it ends without one.
pub async fn ending_status<M>(stream: &mut tonic::Streaming<M>) -> tonic::Status {
    within("the watch's end", async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the watch ended without a status"),
                Err(status) => return status,
            }
        }
    })
    .await
}

/// Reads the snapshot that opens a WatchCalls stream, failing after [`WAIT`].
pub async fn snapshot(stream: &mut tonic::Streaming<pb::WatchCallsResponse>) -> pb::CallSnapshot {
    match next_message(stream, "a call snapshot").await.kind {
        Some(pb::watch_calls_response::Kind::Snapshot(snapshot)) => snapshot,
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

/// Reads the next WatchDevices event, failing after [`WAIT`].
pub async fn next_device_event(
    stream: &mut tonic::Streaming<pb::WatchDevicesResponse>,
) -> pb::DeviceEvent {
    match next_message(stream, "a device event").await.kind {
        Some(pb::watch_devices_response::Kind::Event(event)) => event,
        other => panic!("expected a device event, got {other:?}"),
    }
}

/// Reads the snapshot that opens a WatchDevices stream, failing after [`WAIT`].
pub async fn device_snapshot(
    stream: &mut tonic::Streaming<pb::WatchDevicesResponse>,
) -> pb::DeviceSnapshot {
    match next_message(stream, "a device snapshot").await.kind {
        Some(pb::watch_devices_response::Kind::Snapshot(snapshot)) => snapshot,
        other => panic!("expected a device snapshot, got {other:?}"),
    }
}

/// Dials 15001 from agent1 and lets agent2 answer; returns the call id.
pub async fn established_call(client: &mut CallServiceClient<Channel>) -> String {
    established_call_between(client, "agent1", "agent2", "15001").await
}

/// `from` dials `to_number`, and `to_user` answers; returns the call id. The one
/// "established call" of the suite (over gRPC: the call is the same on every front).
pub async fn established_call_between(
    client: &mut CallServiceClient<Channel>,
    from: &str,
    to_user: &str,
    to_number: &str,
) -> String {
    let dial = pb::DialRequest {
        destination: to_number.into(),
        ..Default::default()
    };
    let id = client
        .dial(as_user(from, dial))
        .await
        .unwrap_or_else(|status| panic!("{from} dials {to_number}: {status:?}"))
        .into_inner()
        .call
        .unwrap()
        .id;
    let answer = pb::AnswerRequest {
        call_id: id.clone(),
    };
    client
        .answer(as_user(to_user, answer))
        .await
        .unwrap_or_else(|status| panic!("{to_user} answers: {status:?}"));
    id
}
