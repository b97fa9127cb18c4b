//! What an upstream GWS server sends the bridge: a CometD reply body or WebSocket frame
//! read as the bridge's client reads it, each delivery's `data` read as a notification, and
//! the same bytes as a `GET /api/v2/me` body; every call and device read from them is then
//! rendered as the gateway's own fronts render it. Any input must give values or a typed
//! refusal, never a panic or a stack overflow, and what the gateway renders from an
//! upstream's fields must be JSON.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use voice_gateway::backend::bridge::convert::{self, Notification};
use voice_gateway::core::{CallSnapshot, DeviceSnapshot, UserRef};
use voice_gateway::grpc::pb;
use voice_gateway::gws::render::{CallJson, DeviceJson, ErrorMessageJson};
use voice_gateway::upstream::bayeux::{read_document, read_server_batch};

const BASE: &str = "http://gw";

fn render_call(call: &CallSnapshot) {
    let json = serde_json::to_string(&CallJson::from_snapshot(call, BASE)).expect("renders");
    serde_json::from_str::<serde::de::IgnoredAny>(&json).expect("the call renders as JSON");
    let _ = pb::Call::from(call);
}

fn render_device(device: &DeviceSnapshot) {
    let json = serde_json::to_string(&DeviceJson::from_snapshot(device, BASE)).expect("renders");
    serde_json::from_str::<serde::de::IgnoredAny>(&json).expect("the device renders as JSON");
}

fuzz_target!(|data: &[u8]| {
    let user = UserRef {
        name: Arc::from("agent1"),
        contact_center: Arc::from("cc"),
        phone_number: Arc::from("15000"),
        device_id: Arc::from("d-15000"),
    };
    if let Ok(batch) = read_server_batch(data) {
        for delivery in batch.into_iter().flatten() {
            let _ = delivery.channel();
            let _ = delivery.id();
            match convert::notification(delivery.data(), &user) {
                Notification::Call(_, call, _) => render_call(&call),
                Notification::Error(error) => {
                    let json = serde_json::to_string(&ErrorMessageJson::from_event(&error, BASE))
                        .expect("renders");
                    serde_json::from_str::<serde::de::IgnoredAny>(&json)
                        .expect("the error renders as JSON");
                }
                Notification::Devices(devices) => devices.iter().for_each(render_device),
                Notification::UnreadableCall | Notification::Other(_) => {}
            }
        }
    }
    if let Ok(body) = read_document(data) {
        if let Some(me) = convert::me(&body, "cc") {
            let user = me.user.to_ref();
            for call in me.calls.iter().filter_map(|c| convert::call(c, &user)) {
                render_call(&call);
            }
            if let Some(device) = me.device.as_ref().and_then(|d| convert::device(d, &user)) {
                render_device(&device);
            }
        }
    }
});
