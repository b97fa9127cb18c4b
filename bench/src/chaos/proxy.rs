//! A loopback TCP proxy that cuts connections mid-frame: each accepted connection is
//! relayed to the gateway, and some are given a byte budget per direction; when a budget
//! runs out, the proxy forwards the bytes up to it and closes both sides, so the client sees
//! half a gRPC frame, half an HTTP response or half a WebSocket frame, and the gateway a
//! peer gone in the middle of its reply (or of a request). Once [`ChaosProxy::calm`] is
//! called no connection is cut any more, so clients can catch up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::ChaosRng;

/// How the proxy picks its cuts.
#[derive(Debug, Clone, Copy)]
pub struct CutPlan {
    /// Share of connections whose server-to-client direction is cut.
    pub down_chance: f64,
    /// Largest server-to-client budget, bytes (the budget is uniform in 1..=this).
    pub down_max: usize,
    /// Share of connections whose client-to-server direction is cut.
    pub up_chance: f64,
    /// Largest client-to-server budget, bytes.
    pub up_max: usize,
}

/// What the proxy did.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections cut mid-stream.
    pub cuts: AtomicU64,
}

/// A running proxy in front of one gateway listener.
#[derive(Debug)]
pub struct ChaosProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Counters.
    pub stats: Arc<ProxyStats>,
    calm: Arc<AtomicBool>,
    stop: CancellationToken,
}

impl ChaosProxy {
    /// Listens on a free loopback port and relays to `upstream` until dropped.
    pub async fn start(upstream: SocketAddr, plan: CutPlan, seed: u64) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(ProxyStats::default());
        let calm = Arc::new(AtomicBool::new(false));
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(
            listener,
            upstream,
            plan,
            ChaosRng::new(seed),
            Shared {
                stats: stats.clone(),
                calm: calm.clone(),
                stop: stop.clone(),
            },
        ));
        Ok(Self {
            addr,
            stats,
            calm,
            stop,
        })
    }

    /// Stops cutting, also on connections already open.
    pub fn calm(&self) {
        self.calm.store(true, Ordering::Relaxed);
    }

    /// Returns the number of connections cut so far.
    pub fn cuts(&self) -> u64 {
        self.stats.cuts.load(Ordering::Relaxed)
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[derive(Clone)]
struct Shared {
    stats: Arc<ProxyStats>,
    calm: Arc<AtomicBool>,
    stop: CancellationToken,
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    plan: CutPlan,
    mut rng: ChaosRng,
    shared: Shared,
) {
    loop {
        let accepted = tokio::select! {
            () = shared.stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((client, _)) = accepted else { continue };
        shared.stats.connections.fetch_add(1, Ordering::Relaxed);
        let down = rng
            .chance(plan.down_chance)
            .then(|| rng.range(1, plan.down_max as u64) as usize);
        let up = rng
            .chance(plan.up_chance)
            .then(|| rng.range(1, plan.up_max as u64) as usize);
        tokio::spawn(relay(client, upstream, down, up, shared.clone()));
    }
}

/// Relays one connection; a direction that exhausts its budget cuts both.
async fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    down: Option<usize>,
    up: Option<usize>,
    shared: Shared,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let cut = shared.stop.child_token();
    let (to_server, to_client) = tokio::join!(
        pump(client_read, server_write, up, &shared.calm, &cut),
        pump(server_read, client_write, down, &shared.calm, &cut),
    );
    if to_server || to_client {
        shared.stats.cuts.fetch_add(1, Ordering::Relaxed);
    }
}

/// Copies one direction until end of stream, an error, or the budget; returns whether it
/// cut the connection (then `cut` is cancelled and the other direction stops too).
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut budget: Option<usize>,
    calm: &AtomicBool,
    cut: &CancellationToken,
) -> bool {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            () = cut.cancelled() => return false,
            read = from.read(&mut buf) => read,
        };
        let n = match read {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return false;
            }
            Ok(n) => n,
        };
        if let Some(left) = budget.as_mut()
            && !calm.load(Ordering::Relaxed)
        {
            if n >= *left {
                // The cut: the bytes up to the budget, then both sides closed mid-frame.
                let _ = to.write_all(&buf[..*left]).await;
                cut.cancel();
                return true;
            }
            *left -= n;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            cut.cancel();
            return false;
        }
    }
}
