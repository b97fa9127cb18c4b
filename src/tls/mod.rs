//! TLS on the gateway's listeners (rustls with the ring provider), and mutual TLS on the
//! gRPC listener.
//!
//! - **What is served.** With a `[tls]` table (keys in [`config`]) the HTTP listener serves
//!   HTTP/1.1 and HTTP/2 over TLS (ALPN `h2`, `http/1.1`): the JSON API, CometD long-polling
//!   and the CometD WebSocket (HTTP/1.1 upgrade, or HTTP/2 extended CONNECT). The gRPC
//!   listener serves gRPC over TLS (ALPN `h2` only). `tls.grpc = false` or `tls.http = false`
//!   leaves that listener in plain text (behind a TLS-terminating proxy, say). Without
//!   `[tls]` both serve plain text, as the demo does.
//! - **Start-up checks.** [`ServerTls::from_config`] reads and checks every file before any
//!   listener binds: an unreadable file, a file with no PEM certificate or key, or a key that
//!   does not match the certificate stops the gateway with an error naming the file.
//! - **Handshakes.** Each runs in its connection's own task with a bounded time
//!   (`tls.handshake_timeout_ms`, 10 s): a client that fails or stalls its handshake costs
//!   one task for at most that long and disturbs no other connection (`accept.rs`).
//! - **Mutual TLS.** `tls.client_ca_file` makes the gRPC listener require a client
//!   certificate signed by one of its CAs; a connection without one, or with one from
//!   another CA, is refused in the handshake. A verified certificate whose subject common
//!   name or SAN DNS name equals a service account's `client_cert` stands for that account
//!   (`identity.rs`): its requests need no `authorization` metadata and act, like the
//!   account's bearer token, for the user named in `x-voice-user` (or for none). A request
//!   that does send `authorization` is judged by it alone. A verified certificate that maps
//!   to no account gives no identity: its requests need ordinary credentials. The HTTP
//!   listener never asks for client certificates (browsers would prompt for one), so mutual
//!   TLS needs the two listeners on separate addresses: with one port it is refused at
//!   start-up. In one-port mode the shared listener serves TLS when `tls.grpc` and
//!   `tls.http` are both true; they must agree.
//! - **Clear-text warning.** [`warn_if_clear`] logs a warning at start-up for each listener
//!   that serves plain text on a non-loopback address while users or service accounts are
//!   configured: their credentials would cross the network readable.

mod accept;
pub mod config;
mod identity;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub use accept::{GrpcTls, GrpcTlsStream, Handshaker, TlsPeer};
pub use config::TlsConfig;
pub use identity::{ClientCertMap, certificate_names};

/// ALPN of the HTTP listener (and of the one-port listener): HTTP/2, then HTTP/1.1.
const HTTP_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];
/// ALPN of the gRPC listener: HTTP/2 only, all it serves.
const GRPC_ALPN: [&[u8]; 1] = [b"h2"];

/// The listeners' TLS, loaded and checked from the configuration.
#[derive(Debug, Clone, Default)]
pub struct ServerTls {
    /// The HTTP listener's handshake (also the one-port listener's); `None` is plain text.
    pub http: Option<Handshaker>,
    /// The gRPC listener's TLS; `None` is plain text.
    pub grpc: Option<GrpcTls>,
}

impl ServerTls {
    /// Returns plain text on both listeners.
    pub fn plain() -> Self {
        Self::default()
    }

    /// Loads the certificate, key and client CA of `config.tls` and checks them with the
    /// listener layout (`one_port`: gRPC and HTTP share one listener).
    pub fn from_config(config: &crate::config::Config, one_port: bool) -> anyhow::Result<Self> {
        let accounts = ClientCertMap::new(
            config
                .service_accounts
                .iter()
                .filter_map(|a| Some((a.name.as_str(), a.client_cert.as_deref()?))),
        )?;
        let Some(tls) = &config.tls else {
            if !accounts.is_empty() {
                tracing::warn!("client_cert of service accounts is unused: there is no [tls]");
            }
            return Ok(Self::plain());
        };
        if one_port && tls.grpc != tls.http {
            anyhow::bail!(
                "tls.grpc and tls.http must agree when gRPC and HTTP share one listen address"
            );
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = read_certificates(&tls.cert_file, "tls.cert_file")?;
        let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| {
            anyhow::anyhow!(
                "tls.key_file {}: no usable PEM private key: {e}",
                tls.key_file.display()
            )
        })?;
        let client_verifier = match &tls.client_ca_file {
            None => {
                if !accounts.is_empty() {
                    tracing::warn!(
                        "client_cert of service accounts is unused: tls.client_ca_file is not set"
                    );
                }
                None
            }
            Some(path) => {
                if one_port {
                    anyhow::bail!(
                        "tls.client_ca_file (mutual TLS on the gRPC listener) needs separate gRPC and HTTP listen addresses"
                    );
                }
                if !tls.grpc {
                    anyhow::bail!("tls.client_ca_file needs tls.grpc = true");
                }
                Some(client_verifier(path, &provider)?)
            }
        };
        let timeout = tls.handshake_timeout();
        let handshaker = |verifier, alpn: &[&[u8]]| -> anyhow::Result<Handshaker> {
            let config = server_config(
                tls,
                &provider,
                verifier,
                certs.clone(),
                key.clone_key(),
                alpn,
            )?;
            Ok(Handshaker::new(Arc::new(config), timeout))
        };
        // Built whether or not a listener uses it, so the key is checked either way.
        let http = handshaker(None, &HTTP_ALPN)?;
        let grpc = GrpcTls {
            handshaker: handshaker(client_verifier, &GRPC_ALPN)?,
            accounts: Arc::new(accounts),
        };
        Ok(Self {
            http: (tls.http || (one_port && tls.grpc)).then_some(http),
            grpc: (tls.grpc && !one_port).then_some(grpc),
        })
    }
}

/// Reads a PEM file of certificates; fails, naming the file and its key, on an unreadable
/// file or one holding no certificate.
fn read_certificates(path: &Path, key: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            anyhow::anyhow!(
                "{key} {}: cannot read PEM certificates: {e}",
                path.display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!("{key} {}: holds no PEM certificate", path.display());
    }
    Ok(certs)
}

/// Builds the verifier that requires a client certificate signed by a CA of `path`.
fn client_verifier(
    path: &Path,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> anyhow::Result<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certificates(path, "tls.client_ca_file")? {
        roots.add(cert).map_err(|e| {
            anyhow::anyhow!(
                "tls.client_ca_file {}: unusable CA certificate: {e}",
                path.display()
            )
        })?;
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .with_context(|| format!("tls.client_ca_file {}", path.display()))
}

/// Builds a rustls server configuration: TLS 1.2 and 1.3, the certificate chain and key,
/// client verification when given, and the ALPN protocols.
fn server_config(
    tls: &TlsConfig,
    provider: &Arc<rustls::crypto::CryptoProvider>,
    client_verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> anyhow::Result<rustls::ServerConfig> {
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("the ring provider offers no safe TLS version")?;
    let builder = match client_verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|error| match error {
            rustls::Error::InconsistentKeys(_) => anyhow::anyhow!(
                "tls.key_file {} does not match the certificate of tls.cert_file {}",
                tls.key_file.display(),
                tls.cert_file.display()
            ),
            other => anyhow::anyhow!(
                "tls.cert_file {} with tls.key_file {}: {other}",
                tls.cert_file.display(),
                tls.key_file.display()
            ),
        })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Returns the service account a request's verified client certificate stands for (mutual
/// TLS on the gRPC listener), if any.
pub fn client_cert_account(extensions: &tonic::Extensions) -> Option<&str> {
    extensions.get::<TlsPeer>()?.service_account.as_deref()
}

/// Warns when a listener serves plain text on a non-loopback address while credentials are
/// configured (`has_credentials`): they would cross the network readable.
pub fn warn_if_clear(listener: &str, addr: SocketAddr, tls: bool, has_credentials: bool) {
    if !tls && has_credentials && !addr.ip().is_loopback() {
        tracing::warn!(
            listener,
            %addr,
            "tls is off on a non-loopback address: credentials and calls travel in clear (see [tls] in the configuration)"
        );
    }
}
