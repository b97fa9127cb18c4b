//! Who may handshake: a client holding a valid GWS session cookie (`JSESSIONID`, minted
//! by the legacy JSON adapter), or one sending Basic credentials. Cookies and credentials
//! are read from the long-poll request, or from the WebSocket upgrade request for the
//! socket's lifetime; the transport authenticates a batch that holds a handshake before the
//! protocol processes it, so the (possibly slow) check never runs inside the protocol.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};

use crate::app::AppState;
use crate::auth::Credentials;
use crate::core::CoreError;
use crate::session::SESSION_COOKIE;

/// The credentials a request carries.
#[derive(Debug, Clone, Default)]
pub struct BayeuxCredentials {
    /// The `JSESSIONID` cookie.
    pub http_session: Option<String>,
    /// The `Authorization` header, when it parses.
    pub authorization: Option<Credentials>,
    /// The client's address, for the sign-in throttle.
    pub client: Option<IpAddr>,
}

/// An authenticated handshake: the user, and the HTTP session it rode on.
#[derive(Debug, Clone)]
pub struct BayeuxIdentity {
    /// The user whose notifications the session receives.
    pub user: Arc<str>,
    /// The `JSESSIONID` that vouched for it, if any.
    pub http_session: Option<String>,
}

/// The outcome of authenticating a handshake.
pub type BayeuxAuth = Result<BayeuxIdentity, CoreError>;

impl BayeuxCredentials {
    /// Reads the session cookie and the `Authorization` header of a request from `client`.
    pub fn from_headers(headers: &HeaderMap, client: Option<IpAddr>) -> Self {
        let authorization = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Credentials::parse(v).ok());
        Self {
            http_session: cookie(headers, SESSION_COOKIE),
            authorization,
            client,
        }
    }

    /// Authenticates: a live HTTP session first, then Basic credentials through the
    /// gateway's [`Authenticator`](crate::auth::Authenticator) (bounded, cached and
    /// throttled like every other front). Only a principal naming a user may read
    /// `/v2/me/**`, so service accounts are refused.
    pub async fn authenticate(&self, state: &AppState) -> BayeuxAuth {
        if let Some(id) = &self.http_session
            && let Some(session) = state.sessions.get(id)
            && let Some(user) = session.principal.user
        {
            return Ok(BayeuxIdentity {
                user,
                http_session: Some(session.id),
            });
        }
        let Some(credentials @ Credentials::Basic { .. }) = &self.authorization else {
            return Err(CoreError::Unauthenticated(
                "no valid session cookie or Basic credentials".into(),
            ));
        };
        let principal = state
            .auth
            .authenticate(credentials, None, self.client)
            .await?;
        let user = principal
            .user
            .ok_or_else(|| CoreError::Unauthenticated("no user".into()))?;
        Ok(BayeuxIdentity {
            user,
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
