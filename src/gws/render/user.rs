//! The user resource of `GET /api/v2/me` (spec §6.7) with its subresources, and the
//! feature resource.

use serde::Serialize;
use serde_json::Value;

use crate::core::User;

use super::feature_uri;
use super::{CallJson, ChannelJson, DeviceJson};

/// The user resource of `GET /api/v2/me` (spec §6.7), with the subresources asked for.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserJson<'a> {
    /// User id.
    pub id: String,
    /// Login name.
    pub user_name: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// GWS role names (`ROLE_AGENT`, ...).
    pub roles: Vec<&'static str>,
    /// Always true: disabled users are not configured.
    pub enabled: bool,
    /// Always false: passwords come from the configuration.
    pub change_password_on_first_login: bool,
    /// Absolute URI, `http://host/api/v2/me`.
    pub uri: String,
    /// `/me`.
    pub path: String,
    /// The user's devices, when `subresources` names them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<DeviceJson>>,
    /// The user's channels, when `subresources` names them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<ChannelJson>>,
    /// The contact center's features, when `subresources` names them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<FeatureJson>>,
    /// The user's active calls, when `subresources` names them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls: Option<Vec<CallJson<'a>>>,
    /// The settings a desktop reads at start-up, when `subresources` names them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<Value>,
}

impl UserJson<'_> {
    /// Renders a user without subresources.
    pub fn from_user(user: &User, base_url: &str) -> Self {
        Self {
            id: user.id.clone(),
            user_name: user.name.to_string(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            roles: user.roles.iter().map(|r| r.gws_name()).collect(),
            enabled: true,
            change_password_on_first_login: false,
            uri: format!("{base_url}/api/v2/me"),
            path: "/me".to_owned(),
            devices: None,
            channels: None,
            features: None,
            calls: None,
            settings: None,
        }
    }
}

/// A feature of the contact center (spec §4).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureJson {
    /// The feature name, which is also its id.
    pub id: String,
    /// The feature name (`api-voice`, ...).
    pub name: String,
    /// Absolute URI, `http://host/api/v2/features/{name}`.
    pub uri: String,
    /// `/features/{name}`.
    pub path: String,
}

impl FeatureJson {
    /// Renders a feature.
    pub fn from_name(name: &str, base_url: &str) -> Self {
        Self {
            id: name.to_owned(),
            name: name.to_owned(),
            uri: feature_uri(name, base_url),
            path: format!("/features/{name}"),
        }
    }
}
