//! The `long-polling` transport: `POST /api/v2/notifications[/{anything}]` with a JSON batch,
//! answered `200 application/json;charset=UTF-8` with events first, then replies in request
//! order (spec §4). Events travel only in responses that carry a `/meta/connect` reply,
//! so the two connections a client keeps can never reorder them.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::header::{CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, Version};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::time::Instant;

use super::BayeuxEndpoint;
use super::message::{BayeuxMessage, BayeuxReply, join_batch};
use super::moving;
use super::protocol::{self, BayeuxConnect, BayeuxContext, BayeuxTransport};
use super::registry::{BayeuxRegistry, random_id};
use super::session::BayeuxSession;
use crate::auth::ClientAddr;
use crate::gws::auth::{self, BayeuxCredentials};
use crate::gws::base_url::{ListenerScheme, base_url};
use crate::gws::session::CookieAttributes;

/// Name of the browser cookie CometD sets on the first handshake.
pub const BROWSER_COOKIE: &str = "BAYEUX_BROWSER";
/// Content type of every Bayeux response.
pub const JSON_UTF8: &str = "application/json;charset=UTF-8";
/// Status of a held connect superseded by a newer one of the same session. CometD uses 500
/// (`duplicateMetaConnectHttpResponseCode`, any code ≥ 400 works for clients); 409 keeps 500
/// meaning "server bug" in our logs.
pub const DUPLICATE_CONNECT_STATUS: StatusCode = StatusCode::CONFLICT;

/// Handles one long-polling POST, in two futures, so that what a held connect keeps is
/// small (a long-poll is held for up to `timeout_ms` on each of thousands of idle
/// connections; BENCHMARKS.md, figure 4). The request is read and processed in a boxed
/// future that owns it and is freed once done ([`read`]); only then is a connect held.
/// As one `async fn`, the request's parts stayed in the future through the hold, since
/// rustc keeps an async function's arguments, moved out or not, for its whole life:
/// 1,280 bytes where the hold needs about half.
pub(crate) fn post(
    State(endpoint): State<Arc<BayeuxEndpoint>>,
    client: Option<Extension<ClientAddr>>,
    listener: Option<Extension<ListenerScheme>>,
    version: Version,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl Future<Output = Response> + Send {
    let request = Box::pin(read(endpoint.clone(), client, listener, uri, headers, body));
    // The answer is written here rather than in an `async fn`: one would copy its
    // arguments into locals and keep both, another `Read` through the hold.
    async move {
        let mut read = match request.await {
            Ok(read) => read,
            Err(refusal) => return refusal,
        };
        let mut parts = Vec::new();
        let connect = read.outcome.connect.take();
        if let Some(connect) = &connect {
            let reply = &mut read.outcome.replies[connect.reply_index];
            let held = hold(&endpoint, connect, reply, read.cookie.as_deref(), version).await;
            let Ok(shutdown) = held else {
                return (
                    DUPLICATE_CONNECT_STATUS,
                    "superseded by a newer /meta/connect",
                )
                    .into_response();
            };
            parts = protocol::finish_connect(&endpoint.registry, connect, reply, shutdown);
        }
        parts.extend(read.outcome.replies.iter().map(BayeuxReply::to_json));
        let mut response = (StatusCode::OK, join_batch(&parts)).into_response();
        let response_headers = response.headers_mut();
        response_headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
        if read.outcome.handshake_ok
            && let Some(minted) = read.minted
            && let Ok(value) = CookieAttributes::from_config(&endpoint.state.config.legacy)
                .cookie(BROWSER_COOKIE, minted)
                .to_string()
                .parse()
        {
            response_headers.insert(SET_COOKIE, value);
        }
        response
    }
}

/// A long-polling batch, processed: what the answer needs of the request.
struct Read {
    outcome: protocol::BayeuxOutcome,
    /// The browser cookie minted for a client that sent none.
    minted: Option<String>,
    /// The client's browser cookie.
    cookie: Option<String>,
}

/// Reads and processes a long-polling batch; a batch that does not parse is answered 400.
/// Owns the request, so that all of it is freed before a hold: its body shares hyper's
/// read buffer, which hyper reuses while the response is pending once the body is gone.
async fn read(
    endpoint: Arc<BayeuxEndpoint>,
    client: Option<Extension<ClientAddr>>,
    listener: Option<Extension<ListenerScheme>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Read, Response> {
    let config = endpoint.registry.config();
    let batch = match BayeuxMessage::parse_batch(&body, config.max_batch) {
        Ok(batch) => batch,
        Err(error) => return Err((StatusCode::BAD_REQUEST, error.to_string()).into_response()),
    };
    let cookie = auth::cookie(&headers, BROWSER_COOKIE);
    let minted = cookie.is_none().then(|| random_id(16));
    let client = client.map(|Extension(ClientAddr(ip))| ip);
    // Only a handshake or a session moved from another instance may need them: a plain
    // re-poll (most requests) skips the cookie and `Authorization` parse, and the base URL
    // that only a new or adopted session records.
    let handshake = protocol::has_handshake(&batch);
    let may_adopt = endpoint.registry.records().is_some();
    let reads_request = handshake || may_adopt;
    let credentials = if reads_request {
        BayeuxCredentials::from_headers(&headers, client)
    } else {
        BayeuxCredentials::default()
    };
    let identity = if handshake {
        // Boxed: the password check's state is large, and needed only by a handshake.
        Some(Box::pin(credentials.authenticate(&endpoint.state)).await)
    } else {
        None
    };
    let listener = listener.map(|Extension(l)| l).unwrap_or_default();
    let base_url = if reads_request {
        base_url(&endpoint.state.config.legacy, &uri, &headers, listener)
    } else {
        String::new()
    };
    if may_adopt {
        let arrival = moving::BayeuxArrival {
            transport: BayeuxTransport::LongPolling,
            credentials: &credentials,
            browser_cookie: cookie.as_deref(),
            base_url: &base_url,
        };
        // Boxed for the same reason (it may check credentials).
        Box::pin(moving::adopt(&endpoint, &batch, arrival)).await;
    }
    let ctx = BayeuxContext {
        state: &endpoint.state,
        registry: &endpoint.registry,
        transport: BayeuxTransport::LongPolling,
        identity: identity.as_ref(),
        base_url: &base_url,
        browser_cookie: cookie.as_deref(),
        browser_for_new: cookie.as_deref().or(minted.as_deref()),
        bound: None,
    };
    let outcome = protocol::process(&ctx, &batch);
    Ok(Read {
        outcome,
        minted,
        cookie,
    })
}

/// Why a held long-poll ended without an answer of its own.
#[derive(Debug)]
struct Superseded;

/// Holds a connect as decided by the protocol; returns whether the gateway is shutting
/// down, or `Superseded` when a newer connect of the same session took over.
async fn hold(
    endpoint: &BayeuxEndpoint,
    connect: &BayeuxConnect,
    reply: &mut BayeuxReply,
    browser: Option<&str>,
    version: Version,
) -> Result<bool, Superseded> {
    let Some(timeout) = connect.hold else {
        return Ok(false);
    };
    let registry = &endpoint.registry;
    let session = &connect.session;
    let counted = match browser {
        Some(browser) if version < Version::HTTP_2 => {
            // A session re-polling while its own connect is held supersedes it (below)
            // and takes over its slot; only other sessions count against the browser.
            let takeover = session.is_held();
            if !registry.try_hold_browser(browser, takeover) {
                multiple_clients(registry, reply);
                return Ok(false);
            }
            Some(browser)
        }
        _ => None,
    };
    let _guard = HoldGuard::new(registry, session, counted);
    let token = session.begin_hold();
    let deadline = Instant::now() + timeout;
    let shutdown = &endpoint.state.shutdown;
    loop {
        let notified = session.notify().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if session.is_superseded(token) {
            return Err(Superseded);
        }
        if session.removed().is_some() || session.queued() > 0 {
            return Ok(false);
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(deadline) => return Ok(false),
            () = shutdown.cancelled() => return Ok(true),
        }
    }
}

/// Answers at once a connect that would exceed the browser's held long-polls (spec §4.6).
fn multiple_clients(registry: &BayeuxRegistry, reply: &mut BayeuxReply) {
    let interval = registry.config().multi_session_interval_ms;
    if interval == 0 {
        reply.set("successful", false.into());
        reply.set(
            "advice",
            json!({"multiple-clients": true, "reconnect": "none"}),
        );
    } else {
        reply.set(
            "advice",
            json!({"multiple-clients": true, "reconnect": "retry", "interval": interval}),
        );
    }
}

/// Undoes the bookkeeping of a held connect however it ends, including when the client
/// goes away and the handler future is dropped.
struct HoldGuard<'a> {
    registry: &'a BayeuxRegistry,
    session: &'a Arc<BayeuxSession>,
    browser: Option<&'a str>,
}

impl<'a> HoldGuard<'a> {
    fn new(
        registry: &'a BayeuxRegistry,
        session: &'a Arc<BayeuxSession>,
        browser: Option<&'a str>,
    ) -> Self {
        super::count_held(super::HeldOn::LongPolling, 1.0);
        Self {
            registry,
            session,
            browser,
        }
    }
}

impl Drop for HoldGuard<'_> {
    fn drop(&mut self) {
        super::count_held(super::HeldOn::LongPolling, -1.0);
        let config = self.registry.config();
        self.session.end_hold(Instant::now(), config.max_interval());
        if let Some(browser) = self.browser {
            self.registry.release_browser(browser);
        }
    }
}
