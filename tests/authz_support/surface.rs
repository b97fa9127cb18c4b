//! What the gateway serves, read from the lists it is built from: the RPCs of its
//! descriptor sets, the routes of its HTTP routers, and the services reflection announces.

use std::collections::BTreeSet;

use prost::Message as _;

use super::bodies::grpc_body;
use super::{Credentials, Fixture, call_raw};

/// Every method of the descriptor sets the gateway registers, as `/package.Service/Method`.
pub fn served_methods() -> BTreeSet<String> {
    let sets = [
        voice_gateway::grpc::pb::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ];
    let mut methods = BTreeSet::new();
    for set in sets {
        let set = prost_types::FileDescriptorSet::decode(set).expect("a valid descriptor set");
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    methods.insert(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
    }
    methods
}

/// Every HTTP route the listener serves, as (method, path pattern), from the lists the
/// routers are built from.
pub fn served_routes() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::from([("GET".to_owned(), voice_gateway::HEALTH_PATH.to_owned())]);
    for route in voice_gateway::gws::json::routes() {
        routes.insert((route.method.to_string(), route.path.to_owned()));
    }
    for path in voice_gateway::gws::json::UNKNOWN_ROUTES {
        routes.insert(("ANY".to_owned(), path.to_owned()));
    }
    for path in voice_gateway::gws::cometd::PATHS {
        for method in ["GET", "POST"] {
            routes.insert((method.to_owned(), path.to_owned()));
        }
    }
    routes
}

/// Compares what is served with what the table lists; returns the differences.
pub fn compare<T: Ord + std::fmt::Debug>(
    served: &BTreeSet<T>,
    listed: &[T],
    what: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for entry in listed {
        if !seen.insert(entry) {
            problems.push(format!("{what} {entry:?} has two entries"));
        }
        if !served.contains(entry) {
            problems.push(format!(
                "the entry for {what} {entry:?} names nothing served"
            ));
        }
    }
    for entry in served.iter().filter(|entry| !seen.contains(entry)) {
        problems.push(format!(
            "{what} {entry:?} is served but has no entry in tests/authz_audit.rs"
        ));
    }
    problems
}

/// Returns the services the gateway's reflection (v1 and v1alpha) announces, asked without
/// credentials.
pub async fn announced_services(fixture: &Fixture) -> BTreeSet<String> {
    use tonic_reflection::pb::v1::ServerReflectionResponse;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut announced = BTreeSet::new();
    for version in ["v1", "v1alpha"] {
        let method = format!("/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo");
        let body = grpc_body(&method, &fixture.subject("agent1", false));
        let reply = call_raw(&fixture.channel, &method, body, &Credentials::none())
            .await
            .unwrap_or_else(|status| panic!("{method}: {status:?}"));
        // v1 and v1alpha encode the service list identically.
        let reply = ServerReflectionResponse::decode(&reply[..]).unwrap();
        let Some(MessageResponse::ListServicesResponse(services)) = reply.message_response else {
            panic!("{method}: not a service list: {reply:?}");
        };
        announced.extend(services.service.into_iter().map(|s| s.name));
    }
    announced
}
