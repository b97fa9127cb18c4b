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
    ) -> CoreResult<(Value, Option<String>)> {
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
        let set_cookie = reply
            .cookies()
            .find(|c| c.name() == SESSION_COOKIE)
            .map(|c| c.value().to_owned());
        let status = reply.status();
        let body: Value = reply.json().await.unwrap_or(Value::Null);
        if status == StatusCode::UNAUTHORIZED {
            return Err(invalid_password());
        }
        check(status, &body)?;
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
                .post(format!("{}{}", self.base, request.path))
                .header(
                    reqwest::header::COOKIE,
                    format!("{SESSION_COOKIE}={}", session.cookie()),
                )
                .json(&request.body);
            let reply = send_timed(post).await.map_err(|e| self.unreachable(&e))?;
            self.set_available(true);
            let status = reply.status();
            let body: Value = reply.json().await.unwrap_or(Value::Null);
            if status == StatusCode::UNAUTHORIZED && !renewed {
                renewed = true;
                self.sign_in_user(&user.name, &session.password).await?;
                continue;
            }
            return check(status, &body);
        }
    }
}

/// Reads a GWS reply: `statusCode` 0 is success; anything else is the upstream's refusal,
/// classed by its HTTP status as embedded mode pairs them (spec §3.2).
fn check(status: StatusCode, body: &Value) -> CoreResult<()> {
    let code = body
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|c| u32::try_from(c).ok());
    if status.is_success() && code == Some(0) {
        return Ok(());
    }
    let message = body
        .get("statusMessage")
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
