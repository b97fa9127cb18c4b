//! The baselines, served by the bench binary itself in a separate process: a bare tonic
//! server with one empty unary RPC (its own tiny proto), and a bare axum JSON handler on
//! the legacy path. Both use the same runtime as the gateway (`#[tokio::main]`, one worker
//! per core) and set `TCP_NODELAY` as the gateway does.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::Path;
use tonic::{Request, Response, Status};

/// Generated code of `proto/bench/v1/bare.proto`.
#[allow(clippy::all, missing_docs, unreachable_pub)]
pub mod pb {
    tonic::include_proto!("bench.v1");
}

/// The gRPC path of the bare RPC.
pub const BARE_PATH: &str = "/bench.v1.Bare/Empty";

#[derive(Debug, Default)]
struct BareService;

#[tonic::async_trait]
impl pb::bare_server::Bare for BareService {
    async fn empty(
        &self,
        _request: Request<pb::EmptyRequest>,
    ) -> Result<Response<pb::EmptyResponse>, Status> {
        Ok(Response::new(pb::EmptyResponse {}))
    }
}

/// Serves the bare tonic baseline (tonic's own `Server`) until the process is stopped.
pub async fn bare_tonic(listen: SocketAddr) -> anyhow::Result<()> {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(pb::bare_server::BareServer::new(BareService))
        .serve(listen)
        .await?;
    Ok(())
}

/// Answers a legacy-shaped operation POST: parses the JSON body, checks `operationName`,
/// and answers the GWS success body.
async fn bare_operation(
    Path(id): Path<String>,
    Json(body): Json<serde_json::Value>,
) -> (axum::http::StatusCode, Json<serde_json::Value>) {
    let known = body
        .get("operationName")
        .and_then(|v| v.as_str())
        .is_some_and(|name| !name.is_empty() && !id.is_empty());
    if known {
        (
            axum::http::StatusCode::OK,
            Json(serde_json::json!({ "statusCode": 0 })),
        )
    } else {
        (
            axum::http::StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "statusCode": 2 })),
        )
    }
}

/// Serves the bare axum baseline (`axum::serve`, as the gateway) until the process is stopped.
pub async fn bare_axum(listen: SocketAddr) -> anyhow::Result<()> {
    use axum::serve::ListenerExt as _;
    let app =
        axum::Router::new().route("/api/v2/me/calls/{id}", axum::routing::post(bare_operation));
    let listener = tokio::net::TcpListener::bind(listen).await?.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

/// Runs the gateway library in this process, as the `voice-gateway` binary does (used by
/// the smoke test, which cannot rely on a release build of the gateway binary); with
/// `upstream`, in bridge mode, as the binary's `--upstream`; with `admin`, metrics on and
/// the admin listener there, as the binary's `--admin-listen`.
pub async fn gateway(
    grpc: SocketAddr,
    http: SocketAddr,
    config: Option<&std::path::Path>,
    upstream: Option<String>,
    admin: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let mut config = match config {
        Some(path) => voice_gateway::config::Config::from_file(path)?,
        None => voice_gateway::config::Config::demo(),
    };
    if upstream.is_some() {
        config.upstream.url = upstream;
        config
            .upstream
            .validate()
            .map_err(|e| anyhow::anyhow!("--upstream: {e}"))?;
    }
    let listeners = voice_gateway::Listeners {
        grpc: tokio::net::TcpListener::bind(grpc).await?,
        http: Some(tokio::net::TcpListener::bind(http).await?),
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let readiness = voice_gateway::admin::Readiness::new();
    if let Some(admin) = admin {
        voice_gateway::admin::recorder::install()?;
        let listener = tokio::net::TcpListener::bind(admin).await?;
        tokio::spawn(voice_gateway::admin::serve(
            listener,
            readiness.clone(),
            shutdown.child_token(),
        ));
    }
    let stop = shutdown.clone();
    tokio::spawn(async move {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            term.recv().await;
        }
        stop.cancel();
    });
    let tls = voice_gateway::tls::ServerTls::from_config(&config, false)?;
    voice_gateway::run_with_admin(config, tls, listeners, readiness, shutdown).await
}
