//! The `data` of an upstream notification, read as the bridge mirrors it: what the message
//! says, before anything reaches the core. Pure, so that a test or a fuzz target can feed it
//! whatever an upstream could send (FUZZING.md, `upstream_message`).

use sonic_rs::{JsonContainerTrait as _, JsonValueTrait as _, Value};

use super::{call_notification, device, error_message, text};
use crate::core::{CallSnapshot, DeviceSnapshot, ErrorEvent, NotificationType, UserRef};

/// What one upstream notification asks the bridge to mirror.
#[derive(Debug)]
pub enum Notification<'a> {
    /// A `CallStateChangeMessage`: its type, the call, and the digits of a `DtmfSent`.
    Call(NotificationType, CallSnapshot, Option<String>),
    /// A `CallStateChangeMessage` whose call the core cannot read (no `call`, or a call
    /// without `id` or `state`): logged, not mirrored.
    UnreadableCall,
    /// A Voice `ErrorMessage`, the user's error.
    Error(ErrorEvent),
    /// A `DeviceStateChangeMessage`: the devices of its `devices` that the core can read
    /// (a device without `userState` is skipped), in the upstream's order.
    Devices(Vec<DeviceSnapshot>),
    /// Any other `messageType`, or none: not mirrored. Carries the type, for the log.
    Other(Option<&'a str>),
}

/// Reads a notification's `data` as a message to `user`.
pub fn notification<'a>(data: &'a Value, user: &UserRef) -> Notification<'a> {
    match text(data, "messageType") {
        Some("CallStateChangeMessage") => match call_notification(data, user) {
            Some((kind, call, digits)) => Notification::Call(kind, call, digits),
            None => Notification::UnreadableCall,
        },
        Some("ErrorMessage") => Notification::Error(error_message(data, user)),
        Some("DeviceStateChangeMessage") => Notification::Devices(
            data.get("devices")
                .and_then(|d| d.as_array())
                .into_iter()
                .flatten()
                .filter_map(|d| device(d, user))
                .collect(),
        ),
        other => Notification::Other(other),
    }
}
