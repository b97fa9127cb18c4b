//! The tower layers every request of both fronts goes through, applied where the routers
//! are assembled (`crate::run_with_admin`): [`RequestContext`], a request id
//! (`x-request-id`, the client's or a fresh UUID, echoed in the reply) and a tracing span
//! carrying it (so every log line of the request names it, and the authenticator records
//! the `user` in it); and [`RequestMetrics`]: the request count and latency by front,
//! operation and code, and one log line per failed request.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::http::{HeaderName, HeaderValue, Method, Request, Response};
use metrics::{Counter, Histogram};
use tower::Layer;

use super::names;

/// Records the acting user (or the attempted user name) in the current request's span, so
/// that the request's later log lines, its failure line included, name it. Never given a
/// credential.
pub fn record_user(name: &str) {
    tracing::Span::current().record("user", name);
}

/// The whole stack, outermost first: the request's context (id, span, id echoed in the
/// reply), then its metrics.
pub type RequestLayers = tower::layer::util::Stack<
    RequestMetricsLayer,
    tower::layer::util::Stack<RequestContextLayer, tower::layer::util::Identity>,
>;

/// Builds [`RequestLayers`] with the metrics of `metrics`.
pub fn request_layers(metrics: RequestMetricsLayer) -> RequestLayers {
    tower::ServiceBuilder::new()
        .layer(RequestContextLayer)
        .layer(metrics)
        .into_inner()
}

/// The `x-request-id` header.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Gives every request its context, in one service: its id (the client's `x-request-id`,
/// or a fresh UUID v4), a span `request{id=… front=… user=…}` entered while the request's
/// future and its response body are polled, and the id echoed in the response's headers.
///
/// Written here rather than composed from tower-http's `SetRequestId`, `TraceLayer` and
/// `PropagateRequestId`, which it replaced with the same replies, spans and log lines (a
/// made id is no longer also written into the request's own headers, which nothing behind
/// these layers read). Those three layers
/// each wrap the request's future and the body (the trace layer with a classifier and five
/// callbacks the gateway leaves empty), and pass the id along as a request header and an
/// extension to be read back. Together they cost 11k instructions per request, an eighth
/// of a JSON API request and of a delivered CometD message; one service that holds the id
/// and the span itself costs 4 to 5k fewer (bench/FINDINGS.md, session 12), most of what
/// is left being the span's own making and closing in the subscriber.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestContextLayer;

impl<S> Layer<S> for RequestContextLayer {
    type Service = RequestContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestContext { inner }
    }
}

/// The service of [`RequestContextLayer`].
#[derive(Debug, Clone)]
pub struct RequestContext<S> {
    inner: S,
}

/// Returns a fresh request id: a UUID v4, hyphenated, lower case.
fn fresh_request_id() -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).expect("a UUID is a valid header value")
}

impl<S, B, RB> tower::Service<Request<B>> for RequestContext<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<InstrumentedBody<RB>>;
    type Error = S::Error;
    type Future = RequestContextFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let id = match request.headers().get(&REQUEST_ID) {
            Some(id) => id.clone(),
            None => fresh_request_id(),
        };
        let span = tracing::info_span!(
            "request",
            id = id.to_str().unwrap_or(""),
            front = front_of(&request),
            user = tracing::field::Empty
        );
        let inner = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        RequestContextFuture {
            inner,
            context: Some((id, span)),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RequestContext`].
    pub struct RequestContextFuture<F> {
        #[pin]
        inner: F,
        context: Option<(HeaderValue, tracing::Span)>,
    }
}

impl<F, RB, E> Future for RequestContextFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<InstrumentedBody<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.context.as_ref().map(|(_, span)| span.enter());
            ready!(this.inner.poll(cx))
        };
        let (id, span) = this
            .context
            .take()
            .expect("a RequestContextFuture is not polled after it completed");
        Poll::Ready(result.map(|response| {
            let (mut parts, body) = response.into_parts();
            if !parts.headers.contains_key(&REQUEST_ID) {
                parts.headers.insert(REQUEST_ID, id);
            }
            Response::from_parts(parts, InstrumentedBody { inner: body, span })
        }))
    }
}

pin_project_lite::pin_project! {
    /// A response body polled inside its request's span, so that what a streamed body
    /// logs (a `WatchCalls` stream, say) names the request.
    pub struct InstrumentedBody<B> {
        #[pin]
        inner: B,
        span: tracing::Span,
    }
}

impl<B: hyper::body::Body> hyper::body::Body for InstrumentedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let _entered = this.span.enter();
        this.inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The names of the gRPC status codes, by number.
const GRPC_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The label of requests to a gRPC method the gateway does not serve, and of HTTP requests
/// no route matched: a client cannot grow the label set by inventing paths.
const UNKNOWN_OPERATION: &str = "unknown";

fn front_of<B>(request: &Request<B>) -> &'static str {
    let grpc = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if grpc { "grpc" } else { "http" }
}

/// The handles of one gRPC method, registered once: the hot path of a successful call
/// touches two atomics and allocates nothing.
#[derive(Debug)]
struct GrpcOperation {
    name: String,
    ok: Counter,
    duration: Histogram,
}

/// The handles of one HTTP route and method, registered on its first request: the
/// metrics macros would otherwise build the operation's name and look its labels up in
/// the recorder's registry (hashing, allocating) twice per request (callgrind, figure 2:
/// about 5 % of the gateway's instructions per request).
#[derive(Debug)]
struct HttpOperation {
    name: String,
    duration: Histogram,
    /// The counters of the success statuses seen so far; a route answers a handful.
    ok: RwLock<Vec<(u16, Counter)>>,
}

impl HttpOperation {
    fn new(name: String) -> Self {
        Self {
            duration: metrics::histogram!(names::REQUEST_DURATION, "front" => "http", "operation" => name.clone()),
            ok: RwLock::new(Vec::new()),
            name,
        }
    }

    /// Counts a success with `status`.
    fn count_ok(&self, status: u16) {
        let read = self
            .ok
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, counter)) = read.iter().find(|(code, _)| *code == status) {
            counter.increment(1);
            return;
        }
        drop(read);
        let counter = metrics::counter!(names::REQUESTS, "front" => "http", "operation" => self.name.clone(), "code" => status.to_string());
        counter.increment(1);
        let mut write = self
            .ok
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !write.iter().any(|(code, _)| *code == status) {
            write.push((status, counter));
        }
    }
}

/// The HTTP operations seen so far, by method and matched route. Only the standard
/// methods are kept (routes are the router's own patterns, so the set is bounded); a
/// request with another method is recorded without the cache. Read-mostly: a `RwLock`
/// whose write side runs once per route and method.
#[derive(Debug, Default)]
struct HttpOperations {
    by_method: RwLock<Vec<(Method, RouteOperations)>>,
}

/// The operations of one method, by matched route.
type RouteOperations = HashMap<String, Arc<HttpOperation>, foldhash::fast::RandomState>;

/// The methods whose operations [`HttpOperations`] keeps.
const CACHED_METHODS: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
];

impl HttpOperations {
    /// Returns the operation of `method` on `route`, registering it on first use; `None`
    /// for a method outside [`CACHED_METHODS`].
    fn get(&self, method: &Method, route: &str) -> Option<Arc<HttpOperation>> {
        if !CACHED_METHODS.contains(method) {
            return None;
        }
        {
            let read = self
                .by_method
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let found = read
                .iter()
                .find(|(m, _)| m == method)
                .and_then(|(_, routes)| routes.get(route));
            if let Some(operation) = found {
                return Some(operation.clone());
            }
        }
        let mut write = self
            .by_method
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let index = match write.iter().position(|(m, _)| m == method) {
            Some(index) => index,
            None => {
                write.push((method.clone(), HashMap::default()));
                write.len() - 1
            }
        };
        let operation = write[index]
            .1
            .entry(route.to_owned())
            .or_insert_with(|| Arc::new(HttpOperation::new(format!("{method} {route}"))));
        Some(operation.clone())
    }
}

/// Records request metrics; see [`RequestMetrics`].
#[derive(Debug, Clone)]
pub struct RequestMetricsLayer {
    grpc: Arc<HashMap<String, Arc<GrpcOperation>, foldhash::fast::RandomState>>,
    http: Arc<HttpOperations>,
}

impl RequestMetricsLayer {
    /// Pre-registers the metrics of the gRPC methods at `paths` (`/package.Service/Method`)
    /// with the recorder installed now (none: the no-op recorder, metrics off).
    pub fn new(paths: impl IntoIterator<Item = String>) -> Self {
        let grpc = paths
            .into_iter()
            .map(|path| {
                let name = path.trim_start_matches('/').to_owned();
                let operation = GrpcOperation {
                    ok: metrics::counter!(names::REQUESTS, "front" => "grpc", "operation" => name.clone(), "code" => "OK"),
                    duration: metrics::histogram!(names::REQUEST_DURATION, "front" => "grpc", "operation" => name.clone()),
                    name,
                };
                (path, Arc::new(operation))
            })
            .collect();
        Self {
            grpc: Arc::new(grpc),
            http: Arc::default(),
        }
    }
}

impl<S> Layer<S> for RequestMetricsLayer {
    type Service = RequestMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestMetrics {
            inner,
            layer: self.clone(),
        }
    }
}

/// Counts each request by front, operation and code, times it to its response head, and
/// logs one line for a failed one (front, operation, code; the span adds the request id
/// and the user). A gRPC stream counts when its response head is sent (a status the stream
/// ends with later is not counted).
#[derive(Debug, Clone)]
pub struct RequestMetrics<S> {
    inner: S,
    layer: RequestMetricsLayer,
}

/// What a request is counted under, found before it is handed on.
#[derive(Debug)]
enum Operation {
    /// A gRPC method the gateway serves.
    Grpc(Arc<GrpcOperation>),
    /// gRPC, unknown method.
    GrpcUnknown,
    /// HTTP, by method and route.
    Http(Arc<HttpOperation>),
    /// HTTP with a method outside [`CACHED_METHODS`], by method and route.
    HttpUncached(String),
}

impl<S, B, RB> tower::Service<Request<B>> for RequestMetrics<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RequestMetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let operation = if front_of(&request) == "grpc" {
            let path = request.uri().path();
            match self.layer.grpc.get(path) {
                Some(op) => Operation::Grpc(op.clone()),
                None => Operation::GrpcUnknown,
            }
        } else {
            let route = request
                .extensions()
                .get::<MatchedPath>()
                .map_or(UNKNOWN_OPERATION, MatchedPath::as_str);
            match self.layer.http.get(request.method(), route) {
                Some(operation) => Operation::Http(operation),
                None => Operation::HttpUncached(format!("{} {route}", request.method())),
            }
        };
        RequestMetricsFuture {
            inner: self.inner.call(request),
            operation: Some(operation),
            start: Instant::now(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RequestMetrics`].
    pub struct RequestMetricsFuture<F> {
        #[pin]
        inner: F,
        operation: Option<Operation>,
        start: Instant,
    }
}

impl<F, RB, E> Future for RequestMetricsFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let elapsed = this.start.elapsed();
        if let Some(operation) = this.operation.take() {
            record(operation, result.as_ref().ok(), elapsed);
        }
        Poll::Ready(result)
    }
}

fn record<RB>(operation: Operation, response: Option<&Response<RB>>, elapsed: std::time::Duration) {
    match operation {
        Operation::Grpc(op) => {
            op.duration.record(elapsed);
            match grpc_code(response) {
                0 => op.ok.increment(1),
                code => failed(
                    "grpc",
                    op.name.clone(),
                    grpc_code_name(code),
                    code_is_server(code),
                ),
            }
        }
        Operation::GrpcUnknown => {
            let code = grpc_code(response);
            failed(
                "grpc",
                UNKNOWN_OPERATION.into(),
                grpc_code_name(code),
                code_is_server(code),
            );
        }
        Operation::Http(op) => {
            op.duration.record(elapsed);
            let status = response.map_or(500, |r| r.status().as_u16());
            if status < 400 {
                op.count_ok(status);
            } else {
                failed("http", op.name.clone(), status.to_string(), status >= 500);
            }
        }
        Operation::HttpUncached(name) => {
            metrics::histogram!(names::REQUEST_DURATION, "front" => "http", "operation" => name.clone())
                .record(elapsed);
            let status = response.map_or(500, |r| r.status().as_u16());
            if status < 400 {
                metrics::counter!(names::REQUESTS, "front" => "http", "operation" => name, "code" => status.to_string())
                    .increment(1);
            } else {
                failed("http", name, status.to_string(), status >= 500);
            }
        }
    }
}

/// Counts a failed request and logs its one line: at `warn` for the gateway's own failures,
/// `info` for a client's mistakes.
fn failed(
    front: &'static str,
    operation: String,
    code: impl Into<metrics::SharedString> + std::fmt::Display + Clone,
    server: bool,
) {
    if server {
        tracing::warn!(front, operation = %operation, code = %code, "request failed");
    } else {
        tracing::info!(front, operation = %operation, code = %code, "request failed");
    }
    metrics::counter!(names::REQUESTS, "front" => front, "operation" => operation, "code" => code)
        .increment(1);
}

/// The gRPC status of a response head: its `grpc-status` header (tonic sends every error
/// as a trailers-only response), else OK (the status of a success comes in the trailers).
fn grpc_code<RB>(response: Option<&Response<RB>>) -> usize {
    let Some(response) = response else {
        return 13;
    };
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0)
}

fn grpc_code_name(code: usize) -> &'static str {
    GRPC_CODES.get(code).copied().unwrap_or("UNKNOWN")
}

/// Whether a gRPC code is the gateway's failure rather than the client's.
fn code_is_server(code: usize) -> bool {
    matches!(code, 2 | 13 | 14 | 15)
}
