//! The Redis cluster engine (`voice_gateway::cluster::redis`) against a real `redis-server`
//! (tests/common/redis.rs): what the gateway relies on from the shared log and the leases.
//! Each test has its own server. Every wait is bounded and fails with a message.

#[path = "../common/mod.rs"]
mod common;
mod helpers;
mod lease;
mod memory;
mod outage;
mod releases;
mod shared_log;
