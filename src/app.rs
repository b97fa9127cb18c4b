//! What every front-end handler shares: the core, the HTTP sessions, the configuration and
//! the shutdown token, behind one `Arc`.

use std::ops::Deref;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::core::CallControl;
use crate::gws::session::SessionStore;

/// State shared by the gRPC, legacy and CometD front-ends. Cloning it is one reference
/// count: axum's `State` extractor and the middleware clone it several times per request,
/// and a `CancellationToken` clone or drop takes a lock shared by every clone (that showed
/// as 8 % of the JSON front-end's CPU in BENCHMARKS.md, figure 2).
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

/// The fields of [`AppState`].
#[derive(Debug)]
pub struct Shared {
    /// The call-control core.
    pub core: Arc<CallControl>,
    /// Checks credentials for every front.
    pub auth: Arc<Authenticator>,
    /// Legacy HTTP sessions (`JSESSIONID`), also trusted by the CometD handshake.
    pub sessions: Arc<SessionStore>,
    /// The configuration the gateway started with.
    pub config: Arc<Config>,
    /// Cancelled when the gateway shuts down; long-lived streams and polls end on it.
    pub shutdown: CancellationToken,
    /// Cluster mode: this instance's membership (CometD keeps its session records through
    /// it).
    pub cluster: Option<Arc<crate::cluster::node::ClusterNode>>,
    /// The tasks of upgraded connections (CometD WebSockets), which outlive the request and
    /// connection that started them: the drain waits for them too, so that each socket
    /// sends its goodbye before the process exits.
    pub upgraded: tokio_util::task::TaskTracker,
}

impl AppState {
    /// Wraps the shared fields.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
