//! The wing's one renderer: the JSON shapes of the GWS v2 Voice API (spec §5). The call,
//! device and voice channel resources are rendered here for the JSON API's GETs and for the
//! CometD notifications alike (`CallStateChangeMessage`, `DeviceStateChangeMessage`,
//! `ChannelStateChangeMessageV2`, and the Voice `ErrorMessage` that carries a call), so a
//! resource reads the same in both; the user and feature resources are the JSON API's.
//!
//! Links are the base URL of [`crate::gws::base_url`] followed by the resource's path
//! ([`call_uri`], [`device_uri`], [`my_device_uri`]); a notification carries the base URL
//! of its CometD session's handshake.
//!
//! Layout: this module holds the links; `call` the call resource and the call
//! notifications (`CallStateChangeMessage`, the Voice `ErrorMessage`); `device` the device
//! and voice channel resources and their notifications; `user` the user and feature
//! resources of `GET /api/v2/me`.

mod call;
mod device;
mod user;

pub use call::{
    CallJson, CallStateChangeJson, CapabilitiesJson, CountryJson, ErrorMessageJson,
    FormattedNumber, LinkJson, ParticipantJson, ParticipantsJson, UserDataJson,
};
pub use device::{
    ChannelJson, ChannelStateChangeJson, ChannelStateJson, DeviceJson, DeviceStateChangeJson,
    MonitoringJson, UserStateJson,
};
pub use user::{FeatureJson, UserJson};

/// The path of a call's link before its id ([`call_uri`]).
const CALLS_PATH: &str = "/api/v2/me/calls/";

/// The path of a device's link before its id ([`device_uri`]).
const DEVICES_PATH: &str = "/api/v2/devices/";

/// Returns a call's link, `{base_url}/api/v2/me/calls/{id}`.
pub fn call_uri(base_url: &str, id: &str) -> String {
    format!("{base_url}{CALLS_PATH}{id}")
}

/// Returns a device's link as a call or a monitoring state names it,
/// `{base_url}/api/v2/devices/{id}` (GWS's `deviceUri` form).
pub fn device_uri(base_url: &str, id: &str) -> String {
    format!("{base_url}{DEVICES_PATH}{id}")
}

/// Returns the link of the caller's own device, `{base_url}/api/v2/me/devices/{id}` (the
/// device resource's `uri`).
pub fn my_device_uri(base_url: &str, id: &str) -> String {
    format!("{base_url}/api/v2/me/devices/{id}")
}

/// Returns a voice environment's link, `{base_url}/api/v2/voice-environments/{id}`.
pub fn voice_environment_uri(base_url: &str, id: &str) -> String {
    format!("{base_url}/api/v2/voice-environments/{id}")
}

/// Returns the absolute URI of a feature.
pub fn feature_uri(name: &str, base_url: &str) -> String {
    format!("{base_url}/api/v2/features/{name}")
}

fn on_off(on: bool) -> &'static str {
    if on { "On" } else { "Off" }
}
