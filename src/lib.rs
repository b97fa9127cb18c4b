//! voice-gateway: phone-call control over gRPC and the GWS v2 Voice API, on one core.
//!
//! # Layout
//!
//! - [`core`]: the product. Users, contact centers and features; calls with the GWS state
//!   machine and capabilities; the numbered event stream. It never imports tonic, prost,
//!   axum, http or serde_json.
//! - [`backend`]: the switch port the core drives, and the embedded switch (a small PBX).
//! - `grpc`: the `voice.v1` gRPC front-end, a thin adapter over the core.
//! - [`app`]: the state every front-end shares; [`session`]: legacy HTTP sessions.
//! - [`config`]: the typed configuration and the built-in demo.
//! - `run` wires them together over listeners the caller bound.

pub mod app;
pub mod backend;
pub mod config;
pub mod core;
pub mod session;
