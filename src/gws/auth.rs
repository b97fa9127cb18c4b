//! Who is calling the wing: the credentials and sessions of the JSON API and of the CometD
//! handshake, read the same way for both ([`cookie`], [`authorization`]).
//!
//! # The JSON API
//!
//! Basic credentials or a `JSESSIONID` session cookie, and the optional CSRF check (spec §2).
//!
//! - A request with `Authorization: Basic` is checked by the gateway's
//!   [`Authenticator`](crate::auth::Authenticator) (401/20 when wrong, even if a valid
//!   cookie comes along; 429 or 503 with `Retry-After` when throttled or busy). If it carries no valid session of the same
//!   user, a session is opened in the shared [`SessionStore`](super::session::SessionStore)
//!   and the response sets `JSESSIONID=<id>; Path=/; HttpOnly`. The CometD endpoint trusts
//!   the same sessions.
//! - A request with only a valid session cookie acts as the session's user.
//! - Anything else is refused with 401 `{"statusCode":20,"statusMessage":"Access denied"}`
//!   and `WWW-Authenticate: Basic`.
//! - With `legacy.csrf` on, GET responses carry `X-CSRF-HEADER: X-CSRF-TOKEN` and
//!   `X-CSRF-TOKEN: <token of the session>`, and a POST (any unsafe method) must send that
//!   header with an existing session: otherwise 403 `{"statusCode":3,"statusMessage":
//!   "Missing or invalid Csrf token"}`, as GWS answers, before anything is changed. A POST
//!   with Basic but no session cookie is refused too (GWS: "even if the token header is
//!   sent"), and opens no session.
//! - A handler that ends the session (EndContactCenterSession) marks its response with
//!   [`EndedSession`]; the cookie is then cleared.
//!
//! # The CometD handshake
//!
//! A client holding a valid GWS session cookie (`JSESSIONID`, minted by the JSON API), or
//! one sending Basic credentials ([`BayeuxCredentials`]). Cookies and credentials are read
//! from the long-poll request, or from the WebSocket upgrade request for the socket's
//! lifetime; the transport authenticates a batch that holds a handshake before the protocol
//! processes it, so the (possibly slow) check never runs inside the protocol.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::Cookie;

use super::json::error::LegacyError;
use super::session::{CookieAttributes, SESSION_COOKIE, Session};
use crate::app::AppState;
use crate::auth::{ClientAddr, Credentials};
use crate::core::{CoreError, Principal};

/// Response header naming the header that carries the CSRF token.
pub const CSRF_HEADER_HEADER: HeaderName = HeaderName::from_static("x-csrf-header");
/// Header carrying the CSRF token, in GET responses and on POSTs.
pub const CSRF_TOKEN_HEADER: HeaderName = HeaderName::from_static("x-csrf-token");
/// The message of a request without credentials, as GWS words it.
const ACCESS_DENIED: &str = "Access denied";

/// The authenticated caller of a legacy request, put in the request's extensions by
/// [`authenticate_then`].
#[derive(Debug, Clone)]
pub struct LegacyCaller {
    /// The caller's session.
    pub session: Session,
}

impl LegacyCaller {
    /// Returns who is calling.
    pub fn principal(&self) -> &Principal {
        &self.session.principal
    }
}

impl<S: Send + Sync> FromRequestParts<S> for LegacyCaller {
    type Rejection = LegacyError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, LegacyError> {
        parts
            .extensions
            .get::<LegacyCaller>()
            .cloned()
            .ok_or_else(|| CoreError::Unauthenticated(ACCESS_DENIED.into()).into())
    }
}

/// Marks a response whose handler ended the caller's session.
#[derive(Debug, Clone, Copy)]
pub struct EndedSession;

/// Authenticates a request, checks CSRF, runs `then` (the rest of the request's way to its
/// handler) and sets the session cookie and CSRF headers on the response. The router
/// chains its own steps inside `then`, in one middleware rather than one `from_fn` each
/// ([`crate::gws::json`]).
pub async fn authenticate_then<F, R>(state: &AppState, request: Request, then: F) -> Response
where
    F: FnOnce(Request) -> R,
    R: Future<Output = Response>,
{
    match admit(state, request).await {
        Ok((request, session, fresh)) => {
            let get = matches!(*request.method(), Method::GET | Method::HEAD);
            let response = then(request).await;
            finish(state, response, &session, fresh, get)
        }
        Err(error) => error.into_response(),
    }
}

/// Finds or opens the caller's session; returns the request carrying it and whether the
/// session is new.
async fn admit(
    state: &AppState,
    mut request: Request,
) -> Result<(Request, Session, bool), LegacyError> {
    let headers = request.headers();
    let cookie_session = cookie(headers, SESSION_COOKIE).and_then(|id| state.sessions.get(&id));
    let basic = basic_credentials(headers)?;
    let client = request.extensions().get::<ClientAddr>().map(|c| c.0);
    let (principal, existing) = match (basic, cookie_session) {
        (Some(basic), session) => {
            let principal = state.auth.authenticate(&basic, None, client).await?;
            let same_user = session.filter(|s| s.principal == principal);
            (principal, same_user)
        }
        (None, Some(session)) => (session.principal.clone(), Some(session)),
        (None, None) => return Err(CoreError::Unauthenticated(ACCESS_DENIED.into()).into()),
    };
    if state.config.legacy.csrf
        && !request.method().is_safe()
        && !csrf_token_matches(existing.as_ref(), request.headers())
    {
        return Err(LegacyError::Csrf);
    }
    let fresh = existing.is_none();
    let session = existing.unwrap_or_else(|| state.sessions.create(principal));
    request.extensions_mut().insert(LegacyCaller {
        session: session.clone(),
    });
    Ok((request, session, fresh))
}

/// Reads `Authorization: Basic` (the legacy API knows no other scheme: anything else is
/// refused as malformed, as before).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<Credentials>, LegacyError> {
    match authorization(headers) {
        None => Ok(None),
        Some(Ok(basic @ Credentials::Basic { .. })) => Ok(Some(basic)),
        Some(_) => Err(CoreError::Unauthenticated("malformed Basic credentials".into()).into()),
    }
}

fn csrf_token_matches(session: Option<&Session>, headers: &HeaderMap) -> bool {
    let (Some(session), Some(sent)) = (session, headers.get(CSRF_TOKEN_HEADER)) else {
        return false;
    };
    let (expected, sent) = (session.csrf_token.as_bytes(), sent.as_bytes());
    // No early exit on the first differing byte.
    expected.len() == sent.len()
        && expected
            .iter()
            .zip(sent)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn finish(
    state: &AppState,
    mut response: Response,
    session: &Session,
    fresh: bool,
    get: bool,
) -> Response {
    if response.extensions().get::<EndedSession>().is_some() {
        let mut cookie = session_cookie(state, String::new());
        cookie.make_removal();
        append_cookie(response.headers_mut(), &cookie);
        return response;
    }
    let headers = response.headers_mut();
    if fresh {
        append_cookie(headers, &session_cookie(state, session.id.clone()));
    }
    if state.config.legacy.csrf && get {
        headers.insert(CSRF_HEADER_HEADER, HeaderValue::from_static("X-CSRF-TOKEN"));
        if let Ok(token) = HeaderValue::from_str(&session.csrf_token) {
            headers.insert(CSRF_TOKEN_HEADER, token);
        }
    }
    response
}

/// The `JSESSIONID` cookie with the configured attributes; its removal carries them too,
/// else a browser would refuse it in the cross-site context that set the cookie.
fn session_cookie(state: &AppState, value: String) -> Cookie<'static> {
    CookieAttributes::from_config(&state.config.legacy).cookie(SESSION_COOKIE, value)
}

fn append_cookie(headers: &mut HeaderMap, cookie: &Cookie<'_>) {
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        headers.append(header::SET_COOKIE, value);
    }
}

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
        let authorization = authorization(headers).and_then(Result::ok);
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

/// Returns the value of the first cookie named `name` in the request's `Cookie` headers,
/// percent-decoded and without surrounding quotes (servlet containers may quote values).
/// The first wins: browsers send the cookie of the most specific path first (RFC 6265
/// §5.4). One reader for the JSON API, the CometD handshake and `BAYEUX_BROWSER`.
///
/// Pairs are split as the `cookie` crate's `Cookie::split_parse_encoded` splits them (on
/// `;`, then at the first `=`, name and value trimmed; names compared as sent), and only a
/// value with something to decode (`%`) or unquote goes through the crate: parsing each
/// cookie with it was 2.7k instructions of every JSON request (bench/FINDINGS.md, session
/// 11), for values that are almost always plain tokens.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (pair_name, value) = pair.split_once('=')?;
            if pair_name.trim() != name {
                return None;
            }
            let value = value.trim();
            if value.contains(['%', '"']) {
                Cookie::parse_encoded(pair)
                    .ok()
                    .map(|c| c.value_trimmed().to_owned())
            } else {
                Some(value.to_owned())
            }
        })
}

/// Reads the `Authorization` header: `None` without one, else the parsed credentials of
/// any scheme, or `Err` when the header is not text or does not parse. The JSON API refuses
/// anything but valid Basic; the CometD handshake ignores what does not parse.
pub fn authorization(headers: &HeaderMap) -> Option<Result<Credentials, CoreError>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let parsed = value
        .to_str()
        .ok()
        .and_then(|text| Credentials::parse(text).ok());
    Some(parsed.ok_or_else(|| CoreError::Unauthenticated("malformed credentials".into())))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(name: header::HeaderName, values: &[&'static str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(name.clone(), HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn cookies_are_read_from_every_cookie_header_first_one_winning() {
        let h = headers(
            header::COOKIE,
            &[
                "BAYEUX_BROWSER=b1",
                "a=1; JSESSIONID=\"ABC\"; JSESSIONID=DEF",
            ],
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("ABC"));
        assert_eq!(cookie(&h, "BAYEUX_BROWSER").as_deref(), Some("b1"));
        assert_eq!(cookie(&h, "missing"), None);
        let encoded = headers(header::COOKIE, &["JSESSIONID=A%42C"]);
        assert_eq!(cookie(&encoded, SESSION_COOKIE).as_deref(), Some("ABC"));
        // Spaces around a pair, a pair without a value, a longer name that starts alike.
        let spaced = headers(
            header::COOKIE,
            &["b;  JSESSIONIDX=1 ;  JSESSIONID = GHI ; c=2"],
        );
        assert_eq!(cookie(&spaced, SESSION_COOKIE).as_deref(), Some("GHI"));
        assert_eq!(cookie(&spaced, "c").as_deref(), Some("2"));
        assert_eq!(cookie(&spaced, "b"), None);
    }

    #[test]
    fn authorization_tells_absent_from_malformed() {
        assert!(authorization(&HeaderMap::new()).is_none());
        let basic = headers(header::AUTHORIZATION, &["Basic YWdlbnQxOmRlbW8="]);
        assert!(matches!(
            authorization(&basic),
            Some(Ok(Credentials::Basic { .. }))
        ));
        let bearer = headers(header::AUTHORIZATION, &["Bearer t"]);
        assert!(matches!(
            authorization(&bearer),
            Some(Ok(Credentials::Bearer(_)))
        ));
        let junk = headers(header::AUTHORIZATION, &["Negotiate xyz"]);
        assert!(matches!(authorization(&junk), Some(Err(_))));
        // The JSON API takes Basic only: anything else is malformed there.
        assert!(basic_credentials(&bearer).is_err());
        assert!(basic_credentials(&basic).unwrap().is_some());
    }
}
