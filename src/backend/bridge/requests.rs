//! The bridge's requests to the upstream's REST API: the `/me` read behind a sign-in and a
//! re-read (`sign_in`), an operation posted with the user's session cookie, and how a
//! reply reads as success or as the upstream's refusal; each request is timed into the
//! upstream request metric.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;

use crate::core::{CoreError, CoreResult, ErrorKind, User, invalid_password};

use super::convert::{self, UpstreamRequest};
use super::{GwsBridge, SESSION_COOKIE};

impl GwsBridge {
    /// `GET /api/v2/me?subresources=*`, with Basic credentials or a session cookie.
    pub(super) async fn read_me(
        &self,
        basic: Option<(&str, &str)>,
        cookie: Option<&str>,
    ) -> CoreResult<(sonic_rs::Value, Option<String>)> {
        let mut request = self
            .http
            .get(format!("{}/api/v2/me?subresources=*", self.base));
        if let Some((user, password)) = basic {
            request = request.basic_auth(user, Some(password));
        }
        if let Some(cookie) = cookie {
            request = request.header(
                reqwest::header::COOKIE,
                format!("{SESSION_COOKIE}={cookie}"),
            );
        }
        let reply = send_timed(request)
            .await
            .map_err(|e| self.unreachable(&e))?;
        self.set_available(true);
        let set_cookie = session_cookie(reply.headers());
        let status = reply.status();
        let bytes = reply.bytes().await.unwrap_or_default();
        if status == StatusCode::UNAUTHORIZED {
            return Err(invalid_password());
        }
        check(status, &Outcome::read(&bytes))?;
        // The listing of `/me` (calls and device) is read as the notifications are (why:
        // `crate::upstream::bayeux`'s `Object`).
        let body = crate::upstream::bayeux::read_document(&bytes).unwrap_or_default();
        Ok((body, set_cookie))
    }

    /// Posts an operation with the user's session; signs in again once if the upstream
    /// forgot the session.
    pub(super) async fn post(
        self: &Arc<Self>,
        user: &User,
        request: UpstreamRequest,
    ) -> CoreResult<()> {
        let session = self.session(&user.name)?;
        let mut renewed = false;
        loop {
            let post = self
                .http
                .post(url_under(&self.base_url, &request.path))
                .header(
                    reqwest::header::COOKIE,
                    format!("{SESSION_COOKIE}={}", session.cookie()),
                )
                .json(&request.body);
            let reply = send_timed(post).await.map_err(|e| self.unreachable(&e))?;
            self.set_available(true);
            let status = reply.status();
            let body = reply.bytes().await.unwrap_or_default();
            if status == StatusCode::UNAUTHORIZED && !renewed {
                renewed = true;
                self.sign_in_user(&user.name, &session.password).await?;
                continue;
            }
            return check(status, &Outcome::read(&body));
        }
    }
}

/// The two fields of a GWS reply that say how it went; the rest of the body is skipped
/// unread (an operation's reply is `{"statusCode":0}`, a read's is the resource too).
#[derive(Debug, Default, serde::Deserialize)]
struct Outcome {
    /// `statusCode`, of whatever JSON type the upstream sent.
    #[serde(rename = "statusCode")]
    status_code: Option<Value>,
    /// `statusMessage`, likewise.
    #[serde(rename = "statusMessage")]
    status_message: Option<Value>,
}

impl Outcome {
    /// Reads a reply body; one that is not a JSON object reads as neither field.
    fn read(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }
}

/// The upstream URL of `path` (absolute, as `/api/v2/...`) under the base URL's own path.
fn url_under(base: &reqwest::Url, path: &str) -> reqwest::Url {
    let mut url = base.clone();
    let full = format!("{}{path}", base.path().trim_end_matches('/'));
    url.set_path(&full);
    url
}

/// The value of the session cookie a reply sets, if it sets one (its first `Set-Cookie` of
/// that name, read as the upstream CometD client's jar reads them: the value as sent).
/// reqwest's `cookies()` would read it too, but its `cookies` feature puts a layer on
/// every request that parses the request's URL again.
fn session_cookie(headers: &reqwest::header::HeaderMap) -> Option<String> {
    crate::upstream::bayeux::set_cookies(headers)
        .find(|(name, ..)| *name == SESSION_COOKIE)
        .map(|(_, value, _)| value.to_owned())
}

/// Reads a GWS reply: `statusCode` 0 is success; anything else is the upstream's refusal,
/// classed by its HTTP status as embedded mode pairs them (spec §3.2).
fn check(status: StatusCode, body: &Outcome) -> CoreResult<()> {
    let code = body
        .status_code
        .as_ref()
        .and_then(Value::as_u64)
        .and_then(|c| u32::try_from(c).ok());
    if status.is_success() && code == Some(0) {
        return Ok(());
    }
    let message = body
        .status_message
        .as_ref()
        .and_then(Value::as_str)
        .map_or_else(|| format!("upstream answered HTTP {status}"), str::to_owned);
    let kind = match status {
        StatusCode::UNAUTHORIZED => ErrorKind::Unauthenticated,
        StatusCode::FORBIDDEN => ErrorKind::PermissionDenied,
        StatusCode::NOT_FOUND => ErrorKind::NotFound,
        StatusCode::CONFLICT => ErrorKind::FailedPrecondition,
        StatusCode::TOO_MANY_REQUESTS => ErrorKind::ResourceExhausted,
        s if s.is_server_error() => ErrorKind::Unavailable,
        _ => code.map_or(ErrorKind::Internal, convert::error_kind),
    };
    Err(CoreError::Upstream {
        kind,
        status_code: code.unwrap_or(4),
        message,
    })
}

/// Sends a request to the upstream, timing it into
/// [`crate::admin::names::UPSTREAM_REQUEST_DURATION`] by outcome (`ok`: any HTTP answer,
/// `error`: none).
async fn send_timed(request: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
    let start = std::time::Instant::now();
    let reply = request.send().await;
    let outcome = if reply.is_ok() { "ok" } else { "error" };
    metrics::histogram!(crate::admin::names::UPSTREAM_REQUEST_DURATION, "outcome" => outcome)
        .record(start.elapsed());
    reply
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, SET_COOKIE};

    use super::{SESSION_COOKIE, session_cookie, url_under};

    #[test]
    fn an_operation_goes_under_the_base_urls_own_path() {
        let call = "/api/v2/me/calls/C 1";
        for (base, url) in [
            ("http://gws:8080", "http://gws:8080/api/v2/me/calls/C%201"),
            ("http://gws:8080/", "http://gws:8080/api/v2/me/calls/C%201"),
            (
                "https://gws.example/gws/",
                "https://gws.example/gws/api/v2/me/calls/C%201",
            ),
        ] {
            let base = reqwest::Url::parse(base).unwrap();
            assert_eq!(url_under(&base, call).as_str(), url);
            // As the whole string would have parsed.
            let whole = format!("{}{call}", base.as_str().trim_end_matches('/'));
            assert_eq!(url_under(&base, call), reqwest::Url::parse(&whole).unwrap());
        }
    }

    #[test]
    fn the_session_cookie_is_read_from_whichever_set_cookie_sets_it() {
        let mut headers = HeaderMap::new();
        assert_eq!(session_cookie(&headers), None);
        headers.append(SET_COOKIE, "BAYEUX_BROWSER=b1; Path=/".parse().unwrap());
        headers.append(SET_COOKIE, "XJSESSIONID=no; Path=/".parse().unwrap());
        assert_eq!(session_cookie(&headers), None);
        headers.append(
            SET_COOKIE,
            format!("{SESSION_COOKIE}=\"abc123\"; Path=/api; HttpOnly")
                .parse()
                .unwrap(),
        );
        // As sent, quotes kept, as reqwest's `Cookie::value` read it before.
        assert_eq!(session_cookie(&headers).as_deref(), Some("\"abc123\""));
    }
}
