//! The `voice.v1` gRPC front-end: a thin adapter that authenticates, converts requests into
//! core operations and renders the results (`convert.rs`), plus reflection and health.

use axum::Router;

use crate::app::AppState;

/// Generated `voice.v1` protobuf types and services.
#[allow(clippy::all, missing_docs, unreachable_pub)]
pub mod pb {
    tonic::include_proto!("voice.v1");
    /// The encoded descriptor set of the `voice.v1` protos, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("voice_descriptor");
}

/// Builds the gRPC routes: reflection (v1 and v1alpha) and health.
pub async fn build_router(_state: &AppState) -> Router {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
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
    tonic::service::Routes::new(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .into_axum_router()
}
