//! The `[tls]` table of the configuration file: where the listeners' certificate, key and
//! (for mutual TLS on the gRPC listener) client CA are, and which listeners serve TLS.
//!
//! | TOML key | meaning | default |
//! |---|---|---|
//! | `tls.cert_file` | PEM certificate chain of the gateway, leaf first | required in `[tls]` |
//! | `tls.key_file` | PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1) | required in `[tls]` |
//! | `tls.client_ca_file` | PEM CA certificate(s); when set, the gRPC listener requires a client certificate signed by one of them | none (no client certificates) |
//! | `tls.grpc` | serve TLS on the gRPC listener | `true` |
//! | `tls.http` | serve TLS on the HTTP listener | `true` |
//! | `tls.handshake_timeout_ms` | time a client has to finish its TLS handshake | [`DEFAULT_HANDSHAKE_TIMEOUT_MS`] |
//!
//! A relative path is taken from the folder of the configuration file
//! ([`crate::config::Config::from_file`]); a configuration parsed from text
//! ([`crate::config::Config::parse`]) takes it from the current directory. Without a `[tls]`
//! table both listeners serve plain text.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Default time a client has to complete its TLS handshake, in milliseconds.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

/// The `[tls]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain (leaf first) both listeners present.
    pub cert_file: PathBuf,
    /// PEM private key of the leaf certificate.
    pub key_file: PathBuf,
    /// PEM CA certificate(s) that sign client certificates; turns on mutual TLS on the
    /// gRPC listener.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// Whether the gRPC listener serves TLS.
    #[serde(default = "enabled")]
    pub grpc: bool,
    /// Whether the HTTP listener serves TLS.
    #[serde(default = "enabled")]
    pub http: bool,
    /// Time a client has to finish its handshake, in milliseconds.
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
}

fn enabled() -> bool {
    true
}

fn default_handshake_timeout_ms() -> u64 {
    DEFAULT_HANDSHAKE_TIMEOUT_MS
}

impl TlsConfig {
    /// Returns a configuration serving both listeners with this certificate and key.
    pub fn new(cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        Self {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            client_ca_file: None,
            grpc: true,
            http: true,
            handshake_timeout_ms: DEFAULT_HANDSHAKE_TIMEOUT_MS,
        }
    }

    /// Returns the handshake timeout.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }

    /// Makes every relative path relative to `base` (the configuration file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        resolve(&mut self.cert_file);
        resolve(&mut self.key_file);
        if let Some(path) = &mut self.client_ca_file {
            resolve(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_follow_the_config_folder_and_absolute_ones_stay() {
        let mut tls: TlsConfig = toml::from_str(
            "cert_file = 'a.pem'\nkey_file = '/keys/a.key'\nclient_ca_file = 'ca/c.pem'\n",
        )
        .unwrap();
        tls.resolve_paths(Path::new("/etc/gw"));
        assert_eq!(tls.cert_file, Path::new("/etc/gw/a.pem"));
        assert_eq!(tls.key_file, Path::new("/keys/a.key"));
        assert_eq!(
            tls.client_ca_file.as_deref(),
            Some(Path::new("/etc/gw/ca/c.pem"))
        );
        assert!(tls.grpc && tls.http);
        assert_eq!(tls.handshake_timeout(), Duration::from_secs(10));
    }

    #[test]
    fn unknown_keys_and_a_missing_key_file_are_refused() {
        assert!(toml::from_str::<TlsConfig>("cert_file='a'\nkey_file='b'\nca='c'\n").is_err());
        assert!(toml::from_str::<TlsConfig>("cert_file='a'\n").is_err());
    }
}
