//! Handlers of the call resources: list, get, Dial on a device, and every call operation
//! posted to a call. Each is the adapter's three steps: parse, call the core, render.
//!
//! Telephony operations answer `{"statusCode":0}` once the core accepted them (spec §1);
//! the new state reaches clients through CometD or a later GET. `GET /api/v2/me/calls`
//! lists the calls that are not released; `GET /api/v2/me/calls/{id}` also finds a call
//! that ended recently, as the core keeps it for SetCallDisposition.

use axum::Json;
use axum::extract::{Path, State};
use axum_extra::extract::WithRejection;
use serde_json::{Value, json};

use super::error::{LegacyError, accepted};
use super::extract::{BaseUrl, Fields, LegacyBody, LegacyPath, LegacyQuery};
use super::operation::LegacyOperation;
use crate::app::AppState;
use crate::core::{CallId, Reply};
use crate::gws::auth::LegacyCaller;
use crate::gws::render::CallJson;

/// `GET /api/v2/me/calls[?fields=...]`.
pub async fn list_calls(
    State(state): State<AppState>,
    caller: LegacyCaller,
    BaseUrl(base): BaseUrl,
    WithRejection(query, _): LegacyQuery,
) -> Result<Json<Value>, LegacyError> {
    let snapshots = state.core.list_calls(caller.principal())?;
    let calls: Vec<CallJson> = snapshots
        .iter()
        .map(|call| CallJson::from_snapshot(call, &base))
        .collect();
    let uris = calls.iter().map(|call| call.uri.to_string()).collect();
    Ok(Fields::from_query(&query).reply("calls", &calls, uris))
}

/// `GET /api/v2/me/calls/{id}`.
pub async fn get_call(
    State(state): State<AppState>,
    caller: LegacyCaller,
    BaseUrl(base): BaseUrl,
    WithRejection(Path(id), _): LegacyPath,
) -> Result<Json<Value>, LegacyError> {
    let call = state.core.get_call(caller.principal(), &CallId::new(id))?;
    let call = CallJson::from_snapshot(&call, &base);
    Ok(Json(json!({ "statusCode": 0, "call": call })))
}

/// `POST /api/v2/me/calls/{id}`: a call operation.
pub async fn post_call(
    State(state): State<AppState>,
    caller: LegacyCaller,
    WithRejection(Path(id), _): LegacyPath,
    WithRejection(Json(body), _): LegacyBody,
) -> Result<Json<Value>, LegacyError> {
    let op = match LegacyOperation::from_body(&body)? {
        LegacyOperation::Call(op) => op,
        other => return Err(other.misplaced().into()),
    };
    state
        .core
        .submit_call_operation(caller.principal(), &CallId::new(id), op)
        .await?;
    Ok(accepted())
}

/// `POST /api/v2/me/devices/{id}/calls`: Dial.
pub async fn dial(
    State(state): State<AppState>,
    caller: LegacyCaller,
    WithRejection(Path(device), _): LegacyPath,
    WithRejection(Json(body), _): LegacyBody,
) -> Result<Json<Value>, LegacyError> {
    let mut request = match LegacyOperation::from_body(&body)? {
        LegacyOperation::Dial(request) => request,
        other => return Err(other.misplaced().into()),
    };
    request.device_id = Some(device);
    state
        .core
        .submit_dial(caller.principal(), request, Reply::Acceptance)
        .await?;
    Ok(accepted())
}
