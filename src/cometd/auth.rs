//! Who may handshake: a client holding a valid GWS session cookie (`JSESSIONID`, minted
//! by the legacy JSON adapter), or one sending Basic credentials. Cookies are read from
//! the long-poll request, or from the WebSocket upgrade request for the socket's lifetime.

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use base64::Engine as _;

use crate::app::AppState;
use crate::session::SESSION_COOKIE;

/// The credentials a request carries.
#[derive(Debug, Clone, Default)]
pub struct BayeuxCredentials {
    /// The `JSESSIONID` cookie.
    pub http_session: Option<String>,
    /// Basic user name and password.
    pub basic: Option<(String, String)>,
}

/// An authenticated handshake: the user, and the HTTP session it rode on.
#[derive(Debug, Clone)]
pub struct BayeuxIdentity {
    /// The user whose notifications the session receives.
    pub user: Arc<str>,
    /// The `JSESSIONID` that vouched for it, if any.
    pub http_session: Option<String>,
}

impl BayeuxCredentials {
    /// Reads the session cookie and the `Authorization: Basic` header.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let basic = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Basic ")
                    .or_else(|| v.strip_prefix("basic "))
            })
            .and_then(|b64| {
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .ok()
            })
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|pair| {
                let (user, password) = pair.split_once(':')?;
                Some((user.to_owned(), password.to_owned()))
            });
        Self {
            http_session: cookie(headers, SESSION_COOKIE),
            basic,
        }
    }

    /// Authenticates: a live HTTP session first, then Basic. Only a principal naming a user
    /// may read `/v2/me/**`, so service accounts are refused.
    pub fn authenticate(&self, state: &AppState) -> Option<BayeuxIdentity> {
        if let Some(id) = &self.http_session
            && let Some(session) = state.sessions.get(id)
            && let Some(user) = session.principal.user
        {
            return Some(BayeuxIdentity {
                user,
                http_session: Some(session.id),
            });
        }
        let (name, password) = self.basic.as_ref()?;
        let principal = state
            .core
            .directory()
            .authenticate_basic(name, password, None)
            .ok()?;
        Some(BayeuxIdentity {
            user: principal.user?,
            http_session: None,
        })
    }
}

/// Returns the value of the first cookie named `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
}
