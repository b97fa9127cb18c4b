//! The backends that implement the core's ports (`crate::core::port`):
//! [`embedded::EmbeddedSwitch`], a small PBX inside the process and the default.

pub mod embedded;
