//! The Bayeux message parser: a request body into a batch of messages, then every field
//! accessor the protocol handler reads. Any input must give messages or a typed error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voice_gateway::gws::cometd::message::{BayeuxMessage, BayeuxReply};

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = BayeuxMessage::parse_batch(data, 64) else {
        return;
    };
    for message in &batch {
        let _ = message.channel();
        let _ = message.client_id();
        let _ = message.id();
        let _ = message.has_invalid_id();
        let _ = message.advice_timeout();
        let _ = message.has_advice();
        let _ = message.wants_ack();
        let _ = message.ack_batch();
        let _ = message.connection_types();
        let _ = message.subscription();
        let _ = BayeuxReply::to(message).ok().to_json();
    }
});
