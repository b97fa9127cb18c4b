//! Handlers of the user, feature and diagnostics resources, and of the session operations
//! posted to `/api/v2/me`. Devices and channels are in [`devices`](super::devices).
//!
//! Choices where the spec is silent or marked inferred:
//! - `GET /api/v2/me` answers `{"statusCode":0,"user":{...}}` (the singular-key rule of
//!   spec §5.3). `subresources` may name `devices`, `channels`, `features` and `calls` (or
//!   `*` for all four), embedded as full objects, and `settings` (the agent states of
//!   `GET /api/v2/settings/agent-states`, as `{"agent-states":[...]}`; see `settings`).
//! - StartContactCenterSession takes `channels` (required, must include `voice`), `place`,
//!   `devicePath`, `queue` and `loginCode`, which the core checks (see
//!   `DeviceRequest::StartContactCenterSession`: a place or device that is not the user's is
//!   404/6, a queue or login code 400/2 on the embedded switch), and makes the device
//!   Active, NotReady.
//! - EndContactCenterSession makes the device Inactive through the core and ends the HTTP
//!   session (spec §6.5); the cookie is cleared.
//! - `GET /api/v2/features` lists the features of the caller's contact center (URIs, or
//!   objects with `fields`); `GET /api/v2/features/{name}` answers 404/6 for a feature the
//!   contact center lacks (spec §3.2: as if it did not exist).
//! - `GET /api/v2/diagnostics/version` answers the gateway's version and needs credentials
//!   like every other route.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use axum_extra::extract::WithRejection;
use serde_json::{Value, json};

use super::devices::{channels_of, devices_of};
use super::error::{LegacyError, accepted};
use super::extract::{BaseUrl, Fields, LegacyBody, LegacyPath, LegacyQuery, split_list};
use super::operation::LegacyOperation;
use crate::app::AppState;
use crate::core::{CoreError, DeviceRequest, User};
use crate::gws::auth::{EndedSession, LegacyCaller};
use crate::gws::render::{CallJson, FeatureJson, UserJson};

/// `GET /api/v2/me[?subresources=...]`.
pub async fn get_me(
    State(state): State<AppState>,
    caller: LegacyCaller,
    BaseUrl(base): BaseUrl,
    WithRejection(query, _): LegacyQuery,
) -> Result<Json<Value>, LegacyError> {
    let user = state.core.acting_user(caller.principal())?;
    let user = &*user;
    let wanted = query
        .get("subresources")
        .map_or_else(Vec::new, |s| split_list(s));
    let wants = |name: &str| wanted.iter().any(|w| w == "*" || w == name);
    // Declared before `json`, which borrows the calls it renders.
    let calls;
    let mut json = UserJson::from_user(user, &base);
    if wants("devices") {
        json.devices = Some(devices_of(&state, &caller, &base)?);
    }
    if wants("channels") {
        json.channels = Some(channels_of(&state, &caller, &base)?);
    }
    if wants("features") {
        json.features = Some(features_of(&state, user, &base));
    }
    if wants("settings") {
        json.settings = Some(json!({ "agent-states": super::settings::agent_states() }));
    }
    if wants("calls") {
        calls = state.core.list_calls(caller.principal())?;
        json.calls = Some(
            calls
                .iter()
                .map(|c| CallJson::from_snapshot(c, &base))
                .collect(),
        );
    }
    Ok(Json(json!({ "statusCode": 0, "user": json })))
}

/// `POST /api/v2/me`: StartContactCenterSession, EndContactCenterSession.
pub async fn post_me(
    State(state): State<AppState>,
    caller: LegacyCaller,
    WithRejection(Json(body), _): LegacyBody,
) -> Result<Response, LegacyError> {
    state.core.acting_user(caller.principal())?;
    match LegacyOperation::from_body(&body)? {
        LegacyOperation::StartContactCenterSession(request) => {
            state
                .core
                .submit_device_operation(caller.principal(), None, request)
                .await?;
            Ok(accepted().into_response())
        }
        LegacyOperation::EndContactCenterSession => {
            let request = DeviceRequest::EndContactCenterSession;
            state
                .core
                .submit_device_operation(caller.principal(), None, request)
                .await?;
            state.sessions.remove(&caller.session.id);
            Ok((Extension(EndedSession), accepted()).into_response())
        }
        other => Err(other.misplaced().into()),
    }
}

/// `GET /api/v2/features[?fields=...]`.
pub async fn list_features(
    State(state): State<AppState>,
    caller: LegacyCaller,
    BaseUrl(base): BaseUrl,
    WithRejection(query, _): LegacyQuery,
) -> Result<Json<Value>, LegacyError> {
    let user = state.core.acting_user(caller.principal())?;
    let user = &*user;
    let features = features_of(&state, user, &base);
    let uris = features.iter().map(|f| f.uri.clone()).collect();
    Ok(Fields::from_query(&query).reply("features", &features, uris))
}

/// `GET /api/v2/features/{name}`.
pub async fn get_feature(
    State(state): State<AppState>,
    caller: LegacyCaller,
    BaseUrl(base): BaseUrl,
    WithRejection(Path(name), _): LegacyPath,
) -> Result<Json<Value>, LegacyError> {
    let user = state.core.acting_user(caller.principal())?;
    let user = &*user;
    if !state
        .core
        .directory()
        .has_feature(&user.contact_center, &name)
    {
        return Err(CoreError::NotFound(format!("feature {name} not found")).into());
    }
    let feature = FeatureJson::from_name(&name, &base);
    Ok(Json(json!({ "statusCode": 0, "feature": feature })))
}

fn features_of(state: &AppState, user: &User, base: &str) -> Vec<FeatureJson> {
    state
        .core
        .directory()
        .contact_center(&user.contact_center)
        .map(|cc| {
            cc.features
                .iter()
                .map(|name| FeatureJson::from_name(name, base))
                .collect()
        })
        .unwrap_or_default()
}

/// `GET /api/v2/diagnostics/version`.
pub async fn version(_caller: LegacyCaller) -> Json<Value> {
    Json(json!({ "statusCode": 0, "version": env!("CARGO_PKG_VERSION") }))
}
