//! GWS fidelity (issue 17): what a real agent desktop and GWS client notice, checked on both
//! fronts, the JSON API and CometD (raw long-polling, as a desktop's browser sends it) and
//! gRPC (a tonic client), against one gateway; and the asynchronous ErrorMessage, also to the
//! real CometD JS client.

mod agent_control;
#[path = "../cometd_support/mod.rs"]
mod cometd_support;
#[path = "../common/mod.rs"]
mod common;
mod error_message;
mod release;
mod resource_fields;
mod session_start;
mod single_step_data;
mod start_up;
mod support;
