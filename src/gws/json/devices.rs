//! Handlers of the device and voice-channel resources (spec §5.3, §5.4, §6.5, §6.6): reads,
//! agent-state operations on the voice channel, and do-not-disturb, forwarding and
//! supervisor monitoring on the device. Each operation is the adapter's three steps: parse,
//! call the core, reply `{"statusCode":0}`; the new state reaches clients through CometD or
//! a later GET.
//!
//! Choices where the spec is silent or marked inferred:
//! - Devices are the core's: `deviceState`, `userState`, `doNotDisturb`, `forwardTo`,
//!   `capabilities` and `supervisorMonitoringState` read the same as over gRPC.
//! - `GET /api/v2/me/devices/{id}` and `GET /api/v2/devices/{id}` (the form a call's
//!   `deviceUri` and `supervisorMonitoringState.targetDeviceUri` use) answer
//!   `{"statusCode":0,"device":{...}}` for the user's own device and 404/6 for any other
//!   id, the device a supervisor monitors included: a user reads only their own device.
//! - `GET /api/v2/me/channels` follows the list convention of spec §5.3: the channel URIs
//!   without `fields`, `{"statusCode":0,"channels":[...]}` with `fields=*` (or a field
//!   list). A channel is `{"channel":"voice","userState":{...},"dndState":"On"|"Off",
//!   "uri","path"}`, the entry shape of `ChannelStateChangeMessageV2` plus the resource
//!   links. The gateway serves the voice channel only; it is listed whether or not the
//!   contact-center session runs (the device's `deviceState` tells). `GET
//!   /api/v2/me/channels/voice` answers `{"statusCode":0,"channel":{...}}`; other channel
//!   names are unknown routes (404/6).
//! - Ready, NotReady, AfterCallWork and AuxWork are posted to `/api/v2/me/channels/voice`;
//!   DoNotDisturbOn/Off, ForwardCallsOn/Off, ListenIn, Coach, BargeIn and
//!   CancelSupervisorMonitoring to `/api/v2/me/devices/{id}`, where `{id}` must be the
//!   user's device (404/6 otherwise). Any other operation posted to either resource — a call
//!   operation, Dial, a session operation, or one of these on the other resource — is
//!   400/2, as on calls. Agent-state operations need the contact-center session (400/2
//!   after EndContactCenterSession).

use axum::Json;
use axum::extract::{Path, State};
use axum_extra::extract::WithRejection;
use serde_json::{Value, json};

use super::error::{LegacyError, accepted};
use super::extract::{BaseUrl, Fields, LegacyBody, LegacyPath, LegacyQuery};
use super::operation::LegacyOperation;
use crate::app::AppState;
use crate::core::CoreError;
use crate::gws::auth::LegacyCaller;
use crate::gws::render::{ChannelJson, DeviceJson};

/// `GET /api/v2/me/devices[?fields=...]`.
pub async fn list_devices(
    State(state): State<AppState>,
    caller: LegacyCaller,
    BaseUrl(base): BaseUrl,
    WithRejection(query, _): LegacyQuery,
) -> Result<Json<Value>, LegacyError> {
    let devices = devices_of(&state, &caller, &base)?;
    let uris = devices.iter().map(|d| d.uri.clone()).collect();
    Ok(Fields::from_query(&query).reply("devices", &devices, uris))
}

/// `GET /api/v2/me/devices/{id}` and `GET /api/v2/devices/{id}`.
pub async fn get_device(
    State(state): State<AppState>,
    caller: LegacyCaller,
    BaseUrl(base): BaseUrl,
    WithRejection(Path(id), _): LegacyPath,
) -> Result<Json<Value>, LegacyError> {
    let device = devices_of(&state, &caller, &base)?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or_else(|| CoreError::NotFound(format!("device {id} not found")))?;
    Ok(Json(json!({ "statusCode": 0, "device": device })))
}

/// `POST /api/v2/me/devices/{id}`: do-not-disturb, forwarding, supervisor monitoring.
pub async fn post_device(
    State(state): State<AppState>,
    caller: LegacyCaller,
    WithRejection(Path(id), _): LegacyPath,
    WithRejection(Json(body), _): LegacyBody,
) -> Result<Json<Value>, LegacyError> {
    let request = match LegacyOperation::from_body(&body)? {
        LegacyOperation::Device(request) => request,
        other => return Err(other.misplaced().into()),
    };
    state
        .core
        .submit_device_operation(caller.principal(), Some(&id), request)
        .await?;
    Ok(accepted())
}

/// `GET /api/v2/me/channels[?fields=...]`.
pub async fn list_channels(
    State(state): State<AppState>,
    caller: LegacyCaller,
    BaseUrl(base): BaseUrl,
    WithRejection(query, _): LegacyQuery,
) -> Result<Json<Value>, LegacyError> {
    let channels = channels_of(&state, &caller, &base)?;
    let uris = channels.iter().map(|c| c.uri.clone()).collect();
    Ok(Fields::from_query(&query).reply("channels", &channels, uris))
}

/// `GET /api/v2/me/channels/voice`.
pub async fn get_voice_channel(
    State(state): State<AppState>,
    caller: LegacyCaller,
    BaseUrl(base): BaseUrl,
) -> Result<Json<Value>, LegacyError> {
    let channel = channels_of(&state, &caller, &base)?
        .into_iter()
        .next()
        .ok_or_else(|| CoreError::NotFound("channel voice not found".to_owned()))?;
    Ok(Json(json!({ "statusCode": 0, "channel": channel })))
}

/// `POST /api/v2/me/channels/voice`: Ready, NotReady, AfterCallWork, AuxWork.
pub async fn post_voice_channel(
    State(state): State<AppState>,
    caller: LegacyCaller,
    WithRejection(Json(body), _): LegacyBody,
) -> Result<Json<Value>, LegacyError> {
    let request = match LegacyOperation::from_body(&body)? {
        LegacyOperation::AgentState(request) => request,
        other => return Err(other.misplaced().into()),
    };
    state
        .core
        .submit_device_operation(caller.principal(), None, request)
        .await?;
    Ok(accepted())
}

/// Renders the caller's devices.
pub fn devices_of(
    state: &AppState,
    caller: &LegacyCaller,
    base: &str,
) -> Result<Vec<DeviceJson>, LegacyError> {
    let devices = state.core.list_devices(caller.principal())?;
    Ok(devices
        .iter()
        .map(|d| DeviceJson::from_snapshot(d, base))
        .collect())
}

/// Renders the caller's channels: the voice channel of their device.
pub fn channels_of(
    state: &AppState,
    caller: &LegacyCaller,
    base: &str,
) -> Result<Vec<ChannelJson>, LegacyError> {
    // One device per user (the core's model), so one voice channel.
    let devices = state.core.list_devices(caller.principal())?;
    Ok(devices
        .first()
        .map(|d| ChannelJson::voice(d, base))
        .into_iter()
        .collect())
}
