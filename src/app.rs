//! What every front-end handler shares: the core behind one `Arc`, the HTTP sessions, the
//! configuration and the shutdown token.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::core::CallControl;
use crate::session::SessionStore;

/// State shared by the gRPC, legacy and CometD front-ends.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The call-control core.
    pub core: Arc<CallControl>,
    /// Legacy HTTP sessions (`JSESSIONID`), also trusted by the CometD handshake.
    pub sessions: Arc<SessionStore>,
    /// The configuration the gateway started with.
    pub config: Arc<Config>,
    /// Cancelled when the gateway shuts down; long-lived streams and polls end on it.
    pub shutdown: CancellationToken,
}
