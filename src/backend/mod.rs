//! The backends that implement the core's ports (`crate::core::port`):
//! [`embedded::EmbeddedSwitch`], a small PBX inside the process and the default, and
//! [`bridge::GwsBridge`], the bridge to an upstream GWS that owns the calls.

pub mod bridge;
pub mod embedded;
