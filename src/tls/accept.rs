//! Accepting TLS connections: the handshake under a timeout, and for the gRPC listener what
//! it established about the client ([`TlsPeer`]).
//!
//! Each handshake runs in the task of its own connection (the serve loop's connection
//! task), never in the accept loop: a client that fails its handshake or says nothing only
//! ends its own task, after at most `tls.handshake_timeout_ms`.
//! Failed handshakes are logged at `debug`: port scanners and clients that do not trust the
//! certificate would otherwise fill the log.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::identity::ClientCertMap;

/// A TLS acceptor (certificate, ALPN, client verification) with its handshake timeout.
#[derive(Clone)]
pub struct Handshaker {
    acceptor: TlsAcceptor,
    timeout: Duration,
}

impl std::fmt::Debug for Handshaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshaker")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Handshaker {
    /// Wraps a rustls server configuration.
    pub fn new(config: Arc<tokio_rustls::rustls::ServerConfig>, timeout: Duration) -> Self {
        Self {
            acceptor: TlsAcceptor::from(config),
            timeout,
        }
    }

    /// Runs the server side of the handshake on an accepted connection; `None` (logged at
    /// `debug`) when it fails or the client does not finish it in time.
    pub async fn accept(&self, tcp: TcpStream) -> Option<TlsStream<TcpStream>> {
        let peer = tcp.peer_addr().ok();
        match tokio::time::timeout(self.timeout, self.acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(error)) => {
                tracing::debug!(?peer, %error, "tls handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(?peer, timeout = ?self.timeout, "tls handshake timed out");
                None
            }
        }
    }
}

/// What the gRPC listener's TLS handshake established about a connection. The serve loop
/// puts it in the extensions of every request on that connection (see [`GrpcTlsStream`]);
/// only the server can, so a client cannot forge it.
#[derive(Debug, Clone)]
pub struct TlsPeer {
    /// The client's address.
    pub remote_addr: Option<SocketAddr>,
    /// The service account the client's verified certificate stands for, if any.
    pub service_account: Option<Arc<str>>,
}

/// An established TLS connection of the gRPC listener, with what its handshake found.
#[derive(Debug)]
pub struct GrpcTlsStream {
    inner: TlsStream<TcpStream>,
    peer: TlsPeer,
}

impl GrpcTlsStream {
    /// Returns what the handshake established about the client.
    pub fn peer(&self) -> &TlsPeer {
        &self.peer
    }
}

impl AsyncRead for GrpcTlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for GrpcTlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The gRPC listener's TLS: its handshake (ALPN `h2`, client certificates when mutual TLS
/// is on) and the certificate → service account map.
#[derive(Debug, Clone)]
pub struct GrpcTls {
    pub(super) handshaker: Handshaker,
    pub(super) accounts: Arc<ClientCertMap>,
}

impl GrpcTls {
    /// Runs the handshake and names the client's service account; `None` (logged at
    /// `debug`) when it fails or the client does not finish it in time.
    pub async fn establish(&self, tcp: TcpStream) -> Option<GrpcTlsStream> {
        let remote_addr = tcp.peer_addr().ok();
        let inner = self.handshaker.accept(tcp).await?;
        let service_account = inner
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| self.accounts.account_for(leaf));
        if let Some(account) = &service_account {
            tracing::debug!(?remote_addr, %account, "client certificate accepted");
        }
        Some(GrpcTlsStream {
            inner,
            peer: TlsPeer {
                remote_addr,
                service_account,
            },
        })
    }
}
