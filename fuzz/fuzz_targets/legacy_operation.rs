//! The legacy operation parser: a JSON `operationName` body, as a POST carries it, into a
//! `LegacyOperation`. Any input must give an operation or a typed error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voice_gateway::gws::json::operation::{LegacyOperation, call_id_from_uri, device_id_from_uri};

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(data) {
        if let Ok(op) = LegacyOperation::from_body(&body) {
            let _ = op.name();
            let _ = op.misplaced().to_string();
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = call_id_from_uri("callUri", text);
        let _ = device_id_from_uri("deviceUri", text);
    }
});
