//! The `voice.v1` gRPC front-end: a thin adapter that authenticates, converts requests into
//! core operations and renders the results (`convert.rs`), plus reflection and health.
//!
//! Per-RPC tracing spans are at `debug` level: at the default `info` filter an enabled span
//! costs an allocation and field formatting on every request.

pub mod auth;
pub mod codec;
pub mod convert;
pub mod devices;
pub mod idempotency;
pub mod service;
pub mod stream;

use axum::Router;

use crate::app::AppState;
use devices::GrpcDeviceControl;
use pb::call_service_server::CallServiceServer;
use pb::device_service_server::DeviceServiceServer;
use pb::simulator_service_server::SimulatorServiceServer;
use service::{GrpcCallControl, GrpcSimulator};

/// Generated `voice.v1` protobuf types and services.
#[allow(clippy::all, missing_docs, unreachable_pub)]
pub mod pb {
    tonic::include_proto!("voice.v1");
    /// The encoded descriptor set of the `voice.v1` protos, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("voice_descriptor");
}

/// Builds the gRPC routes as an axum router (for serving gRPC and HTTP on one port).
pub async fn build_router(state: &AppState) -> Router {
    routes(state).await.into_axum_router()
}

/// Builds the gRPC routes: CallService, DeviceService, SimulatorService, reflection (v1 and v1alpha, so
/// every grpcurl can list and describe) and health.
pub async fn routes(state: &AppState) -> tonic::service::Routes {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<CallServiceServer<GrpcCallControl>>()
        .await;
    reporter
        .set_serving::<SimulatorServiceServer<GrpcSimulator>>()
        .await;
    reporter
        .set_serving::<DeviceServiceServer<GrpcDeviceControl>>()
        .await;
    tokio::spawn(report_health(
        reporter,
        state.core.upstream().cloned(),
        state.shutdown.clone(),
    ));
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the voice.v1 descriptor set is valid");
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("the voice.v1 descriptor set is valid");
    let calls = GrpcCallControl::new(
        state.core.clone(),
        state.auth.clone(),
        state.shutdown.clone(),
    );
    let devices = GrpcDeviceControl::new(
        state.core.clone(),
        state.auth.clone(),
        state.shutdown.clone(),
    );
    tonic::service::Routes::new(CallServiceServer::new(calls))
        .add_service(DeviceServiceServer::new(devices))
        .add_service(SimulatorServiceServer::new(GrpcSimulator::new(
            state.core.clone(),
            state.auth.clone(),
        )))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
}

/// The path prefix of the health service, which the bounds on requests in flight leave
/// alone ([`crate::shed`]): a load balancer's probe must get its answer when the gateway is
/// overloaded.
pub const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

/// How often bridge mode's gRPC health follows the upstream's availability.
const HEALTH_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// The services whose health [`report_health`] reports: the voice services, and the server
/// as a whole (`""`).
const HEALTH_SERVICES: [&str; 4] = [
    "",
    <CallServiceServer<GrpcCallControl> as tonic::server::NamedService>::NAME,
    <DeviceServiceServer<GrpcDeviceControl> as tonic::server::NamedService>::NAME,
    <SimulatorServiceServer<GrpcSimulator> as tonic::server::NamedService>::NAME,
];

/// Reports the gateway's health until `shutdown`. In bridge mode the voice services are
/// NOT_SERVING while the upstream is unreachable, and SERVING again once it answers. On
/// `shutdown`, every service turns NOT_SERVING at once (a health `Watch` sees it), then its
/// status is cleared, which ends the health `Watch` streams: they would otherwise hold
/// their connections open through the whole drain.
async fn report_health(
    mut reporter: tonic_health::server::HealthReporter,
    upstream: Option<std::sync::Arc<dyn crate::core::port::Upstream>>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut serving = true;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(HEALTH_POLL), if upstream.is_some() => {}
        }
        let now = upstream.as_ref().is_none_or(|u| u.is_available());
        if now == serving {
            continue;
        }
        serving = now;
        let status = if now {
            tonic_health::ServingStatus::Serving
        } else {
            tonic_health::ServingStatus::NotServing
        };
        for service in &HEALTH_SERVICES[1..] {
            reporter.set_service_status(service, status).await;
        }
    }
    for service in HEALTH_SERVICES {
        reporter
            .set_service_status(service, tonic_health::ServingStatus::NotServing)
            .await;
    }
    for service in HEALTH_SERVICES {
        reporter.clear_service_status(service).await;
    }
}

/// Returns the path (`/package.Service/Method`) of every method [`routes`] serves, read from
/// the descriptor sets it registers: the request metrics label these and nothing else.
pub fn method_paths() -> Vec<String> {
    use prost::Message as _;
    [
        pb::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ]
    .into_iter()
    .filter_map(|bytes| prost_types::FileDescriptorSet::decode(bytes).ok())
    .flat_map(|set| set.file)
    .flat_map(|file| {
        let package = file.package().to_owned();
        file.service.into_iter().flat_map(move |service| {
            let prefix = format!("/{package}.{}/", service.name());
            service
                .method
                .into_iter()
                .map(move |method| format!("{prefix}{}", method.name()))
        })
    })
    .collect()
}
