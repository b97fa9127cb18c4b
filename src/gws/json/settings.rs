//! The start-up reads of a desktop besides the user and its devices (spec §5.3, §5.4, §6.7):
//! the agent-state settings and the voice environment a device names.
//!
//! Choices where GWS is not documented:
//! - `GET /api/v2/settings/agent-states` answers `{"statusCode":0,"settings":[...]}`: the
//!   four system states of spec §5.4 (Ready, NotReady, AfterCallWork, AuxWork), each as the
//!   `userState` object a device shows for it (`id`, `displayName`, `state`, `workMode` for
//!   the two not-ready work modes). The embedded switch has no custom not-ready reasons, so
//!   the list is the same for every contact center.
//! - `GET /api/v2/me?subresources=settings` embeds the same list as
//!   `"settings":{"agent-states":[...]}`.
//! - `GET /api/v2/voice-environments/{id}` answers
//!   `{"statusCode":0,"voiceEnvironment":{"id","name","uri","path"}}` for the voice
//!   environment of the caller's contact center (the embedded switch, named after the
//!   contact center; the id every device's `voiceEnvironmentUri` ends in) and 404/6 for any
//!   other id, another contact center's included.

use axum::Json;
use axum::extract::{Path, State};
use axum_extra::extract::WithRejection;
use serde::Serialize;
use serde_json::{Value, json};

use super::error::LegacyError;
use super::extract::{BaseUrl, LegacyPath};
use crate::app::AppState;
use crate::core::{AgentState, CoreError, voice_environment_id};
use crate::gws::auth::LegacyCaller;
use crate::gws::render::voice_environment_uri;

/// One agent state of the settings list.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStateSettingJson {
    /// The fixed id of the state (spec §5.4).
    pub id: &'static str,
    /// `Ready`, `Not Ready`, ...
    pub display_name: &'static str,
    /// `Ready` or `NotReady`.
    pub state: &'static str,
    /// `AfterCallWork` / `AuxWork`; omitted for Ready and NotReady.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work_mode: Option<&'static str>,
}

/// The agent states a desktop may offer.
pub fn agent_states() -> Vec<AgentStateSettingJson> {
    [
        AgentState::Ready,
        AgentState::NotReady,
        AgentState::AfterCallWork,
        AgentState::AuxWork,
    ]
    .into_iter()
    .map(|state| AgentStateSettingJson {
        id: state.id(),
        display_name: state.display_name(),
        state: state.state_name(),
        work_mode: matches!(state, AgentState::AfterCallWork | AgentState::AuxWork)
            .then(|| state.as_str()),
    })
    .collect()
}

/// `GET /api/v2/settings/agent-states`.
pub async fn get_agent_states(_caller: LegacyCaller) -> Json<Value> {
    Json(json!({ "statusCode": 0, "settings": agent_states() }))
}

/// `GET /api/v2/voice-environments/{id}`.
pub async fn get_voice_environment(
    State(state): State<AppState>,
    caller: LegacyCaller,
    BaseUrl(base): BaseUrl,
    WithRejection(Path(id), _): LegacyPath,
) -> Result<Json<Value>, LegacyError> {
    let user = state.core.acting_user(caller.principal())?;
    let own = voice_environment_id(&user.contact_center);
    if id != own {
        return Err(CoreError::NotFound(format!("voice environment {id} not found")).into());
    }
    Ok(Json(json!({
        "statusCode": 0,
        "voiceEnvironment": {
            "id": own,
            "name": user.contact_center.to_string(),
            "uri": voice_environment_uri(&base, &own),
            "path": format!("/voice-environments/{own}"),
        }
    })))
}
