//! Devices and agent states: the device model (agent states, do-not-disturb, forwarding,
//! supervisor monitoring), its operations under the store lock, and the core's device API.

pub(crate) mod api;
pub(crate) mod model;
pub(crate) mod ops;
