//! The legacy GWS v2 front-end: the JSON `operationName` API over axum.

pub mod model;
