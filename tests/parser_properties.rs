//! Property tests of the entry points the fuzz targets cover (see FUZZING.md): the legacy
//! operation parser, the Bayeux message parser, the configuration parser, the gRPC
//! request conversions and what the bridge reads from an upstream GWS. Arbitrary input
//! gives a value or a typed error, never a panic; and where a value goes out and comes
//! back, it comes back the same. Case counts are bounded so that the suite stays fast.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use voice_gateway::backend::bridge::convert;
use voice_gateway::config::Config;
use voice_gateway::core::{CallId, UserRef};
use voice_gateway::grpc::convert::{CallRequest, user_data, user_data_to_pb};
use voice_gateway::grpc::pb;
use voice_gateway::gws::cometd::message::BayeuxMessage;
use voice_gateway::gws::json::operation::{LegacyOperation, call_id_from_uri};
use voice_gateway::gws::render::CallJson;
use voice_gateway::upstream::bayeux::{read_document, read_server_batch};

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    json_tree(prop_oneof![
        exact_leaf(),
        any::<f64>().prop_map(|f| json!(f))
    ])
}

/// Arbitrary JSON without floats, which serde_json reads back to the nearest value only.
/// A message's key: one the protocol reads, or any other.
fn bayeux_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "channel",
            "clientId",
            "id",
            "advice",
            "ext",
            "supportedConnectionTypes",
            "subscription",
        ])
        .prop_map(str::to_owned),
        "[a-z]{1,8}",
    ]
}

fn exact_json_value() -> impl Strategy<Value = Value> {
    json_tree(exact_leaf())
}

fn exact_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ]
}

fn json_tree(leaf: impl Strategy<Value = Value> + 'static) -> impl Strategy<Value = Value> {
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The operation names the parser knows, and a few it does not.
const OPERATIONS: &[&str] = &[
    "StartContactCenterSession",
    "Dial",
    "SendDtmf",
    "SingleStepTransfer",
    "CompleteTransfer",
    "SwapCalls",
    "AttachUserData",
    "UpdateUserData",
    "DeleteUserDataPair",
    "SetCallDisposition",
    "Ready",
    "AfterCallWork",
    "ForwardCallsOn",
    "ListenIn",
    "Coach",
    "BargeIn",
    "Hold",
    "",
    "NoSuchOperation",
];

/// The parameter names those operations read.
const PARAMS: &[&str] = &[
    "destination",
    "phoneNumber",
    "location",
    "userData",
    "digits",
    "consultCallUri",
    "otherCallUri",
    "participant",
    "key",
    "disposition",
    "dispositionKey",
    "workMode",
    "wrapUpTime",
    "channels",
    "place",
    "monitoredUserPhoneNumber",
    "monitoringScope",
    "deviceUri",
    "supervisorMonitoringScope",
];

/// A body with an `operationName` and arbitrary values under known parameter names.
fn operation_body() -> impl Strategy<Value = Map<String, Value>> {
    (
        prop::sample::select(OPERATIONS),
        prop::collection::vec((prop::sample::select(PARAMS), json_value()), 0..5),
    )
        .prop_map(|(name, params)| {
            let mut body: Map<String, Value> =
                params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            body.insert("operationName".into(), json!(name));
            body
        })
}

/// A user of the bridge, as its upstream session's notifications are read for.
fn upstream_user() -> UserRef {
    UserRef {
        name: Arc::from("agent1"),
        contact_center: Arc::from("cc"),
        phone_number: Arc::from("15000"),
        device_id: Arc::from("d-15000"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn legacy_bodies_parse_or_give_a_typed_error(body in operation_body()) {
        match LegacyOperation::from_body(&body) {
            Ok(op) => prop_assert!(!op.name().is_empty()),
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
    }

    #[test]
    fn legacy_bodies_of_any_json_never_panic(value in json_value()) {
        if let Value::Object(body) = value {
            let _ = LegacyOperation::from_body(&body);
        }
    }

    #[test]
    fn a_call_uri_gives_back_its_id(id in "[A-Za-z0-9-]{1,40}") {
        let uri = format!("http://gw.example/api/v2/me/calls/{id}");
        prop_assert_eq!(call_id_from_uri("callUri", &uri).unwrap(), CallId::new(id));
    }

    #[test]
    fn bayeux_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = BayeuxMessage::parse_batch(&body, 16);
    }

    #[test]
    fn a_bayeux_batch_parses_back_to_its_messages(
        messages in prop::collection::vec(
            prop::collection::btree_map(bayeux_key(), exact_json_value(), 0..6),
            1..6,
        ),
    ) {
        let maps: Vec<Map<String, Value>> =
            messages.into_iter().map(|m| m.into_iter().collect()).collect();
        let body = serde_json::to_vec(&maps).unwrap();
        let parsed = BayeuxMessage::parse_batch(&body, 16).unwrap();
        let expected: Vec<BayeuxMessage> = maps.iter().map(BayeuxMessage::from_object).collect();
        prop_assert_eq!(parsed, expected);
    }

    #[test]
    fn config_text_never_panics(text in "(\\[limits\\]\n|\\[auth\\]\n|[a-z_]{1,16} = [0-9\"a-z]{0,8}\n){0,6}") {
        if let Ok(config) = Config::parse(&text) {
            let _ = config.directory();
            let _ = config.core_limits();
        }
    }

    #[test]
    fn limits_written_as_toml_read_back_the_same(
        history in 1usize..1_000_000,
        buffer in 1usize..100_000,
        ended in 0usize..100_000,
        ttl in 0u64..100_000,
        keys in 1usize..1_000_000,
    ) {
        let text = format!(
            "[limits]\nevent_history = {history}\nwatch_buffer = {buffer}\nended_calls = {ended}\n\
             idempotency_ttl = {ttl}\nidempotency_keys = {keys}\n"
        );
        let limits = Config::parse(&text).unwrap().core_limits().unwrap();
        prop_assert_eq!(
            (limits.event_history, limits.watch_buffer, limits.ended_calls),
            (history, buffer, ended)
        );
        prop_assert_eq!(limits.idempotency_ttl.as_secs(), ttl);
        prop_assert_eq!(limits.idempotency_keys, keys);
    }

    #[test]
    fn grpc_requests_convert_or_give_a_typed_error(
        call_id in ".{0,12}",
        destination in ".{0,12}",
        pairs in prop::collection::vec((".{0,6}", prop::option::of(any::<i64>())), 0..5),
    ) {
        let data: Vec<pb::KeyValue> = pairs
            .iter()
            .map(|(k, v)| pb::KeyValue {
                key: k.clone(),
                value: v.map(pb::key_value::Value::IntValue),
            })
            .collect();
        let transfer = pb::SingleStepTransferRequest {
            call_id: call_id.clone(),
            destination,
            location: String::new(),
            user_data: data.clone(),
        };
        let attach = pb::AttachUserDataRequest { call_id: call_id.clone(), user_data: data.clone() };
        for converted in [CallRequest::try_from(transfer), CallRequest::try_from(attach)] {
            match converted {
                Ok(request) => prop_assert_eq!(request.call_id.as_str(), call_id.as_str()),
                Err(error) => prop_assert!(!error.to_string().is_empty()),
            }
        }
        let valid_data = pairs.iter().all(|(k, v)| !k.is_empty() && v.is_some());
        prop_assert_eq!(user_data(data).is_ok(), valid_data);
    }

    #[test]
    fn grpc_user_data_converts_back_the_same(
        pairs in prop::collection::vec(("[A-Za-z_]{1,8}", ".{0,8}"), 0..6),
    ) {
        let wire: Vec<pb::KeyValue> = pairs
            .into_iter()
            .map(|(key, value)| pb::KeyValue {
                key,
                value: Some(pb::key_value::Value::StringValue(value)),
            })
            .collect();
        prop_assert_eq!(user_data_to_pb(&user_data(wire.clone()).unwrap()), wire);
    }

    #[test]
    fn upstream_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(batch) = read_server_batch(&body) {
            for delivery in batch.into_iter().flatten() {
                let _ = convert::notification(delivery.data(), &upstream_user());
            }
        }
        if let Ok(document) = read_document(&body) {
            let _ = convert::me(&document, "cc");
        }
    }

    #[test]
    fn an_upstream_calls_unmodeled_fields_reach_gws_clients_unchanged(
        extra in prop::collection::btree_map("x[A-Za-z0-9]{0,8}", exact_json_value(), 0..6),
    ) {
        let mut call = json!({"id": "C1", "state": "Established", "capabilities": ["Hangup"]});
        call.as_object_mut().unwrap().extend(extra.clone());
        let notification = json!([{
            "channel": "/v2/me/calls",
            "data": {"messageType": "CallStateChangeMessage", "call": call},
        }]);
        let batch = read_server_batch(notification.to_string().as_bytes()).unwrap();
        let delivery = batch.into_iter().next().unwrap().unwrap();
        let convert::Notification::Call(_, read, _) =
            convert::notification(delivery.data(), &upstream_user())
        else {
            panic!("the call notification was not read");
        };
        let rendered = serde_json::to_value(CallJson::from_snapshot(&read, "http://gw")).unwrap();
        for (key, value) in &extra {
            prop_assert_eq!(&rendered[key], value);
        }
        prop_assert_eq!(rendered["state"].as_str(), Some("Established"));
    }
}
