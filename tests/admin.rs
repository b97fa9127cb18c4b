//! The admin listener in process: `/healthz`, `/readyz` (starting, ready, draining, and in
//! bridge mode down while the upstream is), and the request id both fronts echo.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{as_user, pb};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use voice_gateway::admin::{self, Readiness};
use voice_gateway::config::Config;
use voice_gateway::tls::ServerTls;
use voice_gateway::{Listeners, run, run_with_admin};

/// A gateway in process with its admin listener, one port for gRPC and HTTP.
struct AdminGateway {
    api: SocketAddr,
    admin: SocketAddr,
    readiness: Arc<Readiness>,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl AdminGateway {
    async fn spawn(config: Config) -> Self {
        voice_gateway::upstream::bayeux::install_crypto_provider();
        let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (api_addr, admin) = (
            api.local_addr().unwrap(),
            admin_listener.local_addr().unwrap(),
        );
        let readiness = Readiness::new();
        let shutdown = CancellationToken::new();
        tokio::spawn(admin::serve(
            admin_listener,
            readiness.clone(),
            shutdown.child_token(),
        ));
        let tls = ServerTls::from_config(&config, true).unwrap();
        let task = tokio::spawn(run_with_admin(
            config,
            tls,
            Listeners {
                grpc: api,
                http: None,
            },
            readiness.clone(),
            shutdown.clone(),
        ));
        Self {
            api: api_addr,
            admin,
            readiness,
            shutdown,
            task,
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let reply = reqwest::get(format!("http://{}{path}", self.admin))
            .await
            .unwrap();
        (reply.status().as_u16(), reply.text().await.unwrap())
    }

    /// Polls `/readyz` until it answers `status`; a load balancer polls the same way.
    async fn readyz_becomes(&self, status: u16) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (now, body) = self.get("/readyz").await;
            if now == status {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "/readyz stayed {now} ({body:?}), not {status}, for 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

fn demo() -> Config {
    let mut config = Config::demo();
    config.switch.external_answer_ms = 50;
    config
}

#[tokio::test]
async fn healthz_answers_and_readyz_turns_unready_while_draining() {
    let gw = AdminGateway::spawn(demo()).await;
    assert_eq!(gw.get("/healthz").await, (200, "alive\n".into()));
    assert_eq!(gw.readyz_becomes(200).await, "ready\n");

    // SIGTERM's first step: the load balancer must stop sending before the listeners go.
    gw.readiness.start_draining();
    assert_eq!(
        gw.get("/readyz").await,
        (503, "not ready: draining\n".into())
    );
    assert_eq!(gw.get("/healthz").await.0, 200, "draining is still alive");
    // The API still answers the requests that arrive meanwhile.
    let mut calls =
        pb::call_service_client::CallServiceClient::connect(format!("http://{}", gw.api))
            .await
            .unwrap();
    calls
        .list_calls(as_user("agent1", pb::ListCallsRequest::default()))
        .await
        .expect("a draining gateway still serves");
    gw.stop().await;
}

#[tokio::test]
async fn readyz_is_starting_until_the_listeners_serve() {
    let readiness = Readiness::new();
    assert_eq!(readiness.check(), Err(admin::NotReady::Starting));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_bridge_mode_readyz_follows_the_upstream() {
    // The upstream's port: free now, and served later by an embedded gateway.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_addr = probe.local_addr().unwrap();
    drop(probe);
    let mut config = demo();
    config.upstream.url = Some(format!("http://{upstream_addr}"));
    config.upstream.probe_interval_ms = 100;
    let bridge = AdminGateway::spawn(config).await;

    // A sign-in finds the upstream down; readiness says so.
    let mut calls =
        pb::call_service_client::CallServiceClient::connect(format!("http://{}", bridge.api))
            .await
            .unwrap();
    let refused = calls
        .list_calls(as_user("agent1", pb::ListCallsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert_eq!(
        bridge.readyz_becomes(503).await,
        "not ready: upstream unavailable\n"
    );

    // The upstream comes up: ready again, without a client request.
    let upstream = TcpListener::bind(upstream_addr).await.unwrap();
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stop_upstream = CancellationToken::new();
    let upstream_task = tokio::spawn(run(
        demo(),
        Listeners {
            grpc,
            http: Some(upstream),
        },
        stop_upstream.clone(),
    ));
    assert_eq!(bridge.readyz_becomes(200).await, "ready\n");
    bridge.stop().await;
    stop_upstream.cancel();
    upstream_task.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_request_id_is_taken_from_the_client_or_made_and_echoed_on_both_fronts() {
    let gw = AdminGateway::spawn(demo()).await;
    let http = reqwest::Client::new();
    let given = http
        .get(format!("http://{}/api/v2/me", gw.api))
        .basic_auth("agent1", Some("demo"))
        .header("x-request-id", "ops-test-17")
        .send()
        .await
        .unwrap();
    assert_eq!(given.status(), 200);
    assert_eq!(given.headers()["x-request-id"], "ops-test-17");
    let made = http
        .get(format!("http://{}/api/v2/me", gw.api))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 401, "no credentials");
    let id = made.headers()["x-request-id"].to_str().unwrap();
    assert!(
        uuid::Uuid::parse_str(id).is_ok(),
        "a made id is a UUID: {id}"
    );

    let mut calls =
        pb::call_service_client::CallServiceClient::connect(format!("http://{}", gw.api))
            .await
            .unwrap();
    let mut request = as_user("agent1", pb::ListCallsRequest::default());
    request
        .metadata_mut()
        .insert("x-request-id", "grpc-ops-18".parse().unwrap());
    let reply = calls.list_calls(request).await.unwrap();
    assert_eq!(reply.metadata().get("x-request-id").unwrap(), "grpc-ops-18");
    // A refused call carries it too (in its trailers-only reply).
    let status = calls
        .get_call(as_user(
            "agent1",
            pb::GetCallRequest {
                call_id: "no-such-call".into(),
            },
        ))
        .await
        .unwrap_err();
    let id = status
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    gw.stop().await;
}
