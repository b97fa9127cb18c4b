//! The `voice-gateway` binary: parses the command line, sets up logging, binds the
//! listeners and runs the gateway until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use voice_gateway::admin::{self, Readiness};
use voice_gateway::config::{Config, hash_secret};
use voice_gateway::tls::ServerTls;
use voice_gateway::{Listeners, run_with_admin};

/// mimalloc instead of glibc malloc: the request path allocates many small, short-lived
/// buffers across two worker threads, where glibc spent about a fifth of the CPU in
/// `malloc`/`free`/`malloc_consolidate` (BENCHMARKS.md, figure 1 profile). Built with
/// `no_thp`: with transparent huge pages its arenas made the idle demo gateway 22 MiB
/// resident instead of 9. The `system-alloc` feature leaves it out, for heap profilers.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Default gRPC listen address.
const DEFAULT_GRPC_LISTEN: &str = "127.0.0.1:50051";
/// Default HTTP listen address.
const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";

/// Phone-call control over gRPC and the GWS v2 Voice API (JSON + CometD).
///
/// With no arguments it serves the built-in demo contact centers on the embedded switch.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Address of the gRPC listener.
    #[arg(long, env = "VOICE_GATEWAY_GRPC_LISTEN", default_value = DEFAULT_GRPC_LISTEN)]
    grpc_listen: SocketAddr,
    /// Address of the HTTP listener (GWS JSON API, CometD, health); the same address as
    /// --grpc-listen serves both on one port.
    #[arg(long, env = "VOICE_GATEWAY_HTTP_LISTEN", default_value = DEFAULT_HTTP_LISTEN)]
    http_listen: SocketAddr,
    /// TOML configuration file; without it the built-in demo configuration is used.
    #[arg(long, env = "VOICE_GATEWAY_CONFIG")]
    config: Option<PathBuf>,
    /// Bridge mode: the upstream GWS (`http://host:port` or `https://...`) that owns the
    /// calls, instead of the embedded switch; overrides `upstream.url` of the config.
    #[arg(long, env = "VOICE_GATEWAY_UPSTREAM")]
    upstream: Option<String>,
    /// Cluster mode: the engine (`redis://host:port`) several bridge instances share, for
    /// one event log and one owner per user's upstream session; needs --upstream;
    /// overrides `cluster.url` of the config.
    #[arg(long, env = "VOICE_GATEWAY_CLUSTER")]
    cluster: Option<String>,
    /// Serves the agent desktop demo page from this folder at /desktop/ (the repository's
    /// `desktop/`, after `npm ci` in it); overrides `desktop.dir` of the config.
    #[arg(long, env = "VOICE_GATEWAY_DESKTOP")]
    desktop: Option<PathBuf>,
    /// Address of the admin listener (`/metrics`, `/healthz`, `/readyz`; no credentials,
    /// keep it off public networks); `none` turns it and the metrics off.
    #[arg(long, env = "VOICE_GATEWAY_ADMIN_LISTEN", default_value = admin::DEFAULT_ADMIN_LISTEN)]
    admin_listen: AdminListen,
    /// Log format: `text` (for people) or `json` (one object per line, for log pipelines).
    #[arg(long, env = "VOICE_GATEWAY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

/// The admin listener's address, or `none`.
#[derive(Debug, Clone, Copy)]
struct AdminListen(Option<SocketAddr>);

impl std::str::FromStr for AdminListen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "none" {
            return Ok(Self(None));
        }
        s.parse()
            .map(|addr| Self(Some(addr)))
            .map_err(|e| format!("expected host:port or none: {e}"))
    }
}

/// The log format of `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// tracing-subscriber's JSON: one object per line, with the request's span fields.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints the argon2 hash of a password or token read from standard input (prompted
    /// for on a terminal), for the `password_hash` and `token_hash` keys of a
    /// configuration file. An empty input is refused.
    HashPassword,
    /// Prints the built-in demo configuration.
    DemoConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    match cli.command {
        Some(Command::HashPassword) => return hash_password(),
        Some(Command::DemoConfig) => {
            print!("{}", voice_gateway::config::DEMO_TOML);
            return Ok(());
        }
        None => {}
    }
    // The whole configuration and the TLS files are checked before any listener binds.
    let mut config = match &cli.config {
        Some(path) => Config::from_file(path)?,
        None => Config::demo(),
    };
    if let Some(url) = cli.upstream.clone() {
        config.upstream.url = Some(url);
        config
            .upstream
            .validate()
            .map_err(|e| anyhow::anyhow!("--upstream: {e}"))?;
    }
    if let Some(url) = cli.cluster.clone() {
        if config.upstream.url.is_none() {
            anyhow::bail!(
                "--cluster needs --upstream: cluster mode shares bridge instances in front of an upstream GWS"
            );
        }
        config.cluster.url = Some(url);
    }
    if let Some(dir) = cli.desktop.clone() {
        config.desktop.dir = Some(dir);
    }
    config
        .desktop
        .validate()
        .map_err(|e| anyhow::anyhow!("--desktop: {e}"))?;
    // TLS files are read and checked before any listener binds.
    // Port 0 asks the system for a free port, once per listener: two port-0 addresses are two
    // listeners, not one port.
    let one_port = cli.http_listen == cli.grpc_listen && cli.grpc_listen.port() != 0;
    let tls = ServerTls::from_config(&config, one_port)?;
    if cli.admin_listen.0.is_some() {
        admin::recorder::install()?;
    }
    let listeners = bind(&cli, one_port).await?;
    let admin_listener = match cli.admin_listen.0 {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--admin-listen)"))?,
        ),
        None => None,
    };
    let bound = |l: &TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(
        grpc = %bound(&listeners.grpc),
        http = %listeners.http.as_ref().map_or_else(|| bound(&listeners.grpc), bound),
        admin = %admin_listener.as_ref().map_or_else(|| "none".to_owned(), bound),
        grpc_tls = tls.grpc.is_some() || (one_port && tls.http.is_some()),
        http_tls = tls.http.is_some(),
        "voice-gateway serving"
    );
    let shutdown = CancellationToken::new();
    let readiness = Readiness::new();
    // The admin listener outlives the API listeners' drain: /readyz says "draining" until
    // the gateway has stopped.
    let admin_stop = CancellationToken::new();
    let admin_task = admin_listener.map(|listener| {
        tokio::spawn(admin::serve(
            listener,
            readiness.clone(),
            admin_stop.clone(),
        ))
    });
    tokio::spawn(signal_shutdown(shutdown.clone(), readiness.clone()));
    let served = run_with_admin(config, tls, listeners, readiness, shutdown).await;
    admin_stop.cancel();
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    served?;
    tracing::info!("voice-gateway stopped");
    Ok(())
}

/// Installs the log subscriber: `RUST_LOG` filters (default `info`), in `format`. Text
/// logs are coloured only on a terminal: a file or a log collector gets plain lines, and
/// the request span costs fewer instructions (bench/FINDINGS.md, session 5).
fn init_logs(format: LogFormat) {
    use std::io::IsTerminal as _;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match format {
        // Same lines as the default field formatter, fewer instructions per request span.
        LogFormat::Text => builder
            .fmt_fields(voice_gateway::admin::log_fields::TextFields)
            .init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Binds the gRPC listener and, unless it is the same address, the HTTP one.
async fn bind(cli: &Cli, one_port: bool) -> anyhow::Result<Listeners> {
    let grpc = TcpListener::bind(cli.grpc_listen)
        .await
        .with_context(|| format!("cannot listen on {} (--grpc-listen)", cli.grpc_listen))?;
    let http = if one_port {
        None
    } else {
        Some(
            TcpListener::bind(cli.http_listen)
                .await
                .with_context(|| format!("cannot listen on {} (--http-listen)", cli.http_listen))?,
        )
    };
    Ok(Listeners { grpc, http })
}

/// `hash-password`: reads one line (on a terminal after a prompt, without echo), refuses
/// an empty one, prints the hash.
fn hash_password() -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    let mut secret = String::new();
    if std::io::stdin().is_terminal() {
        secret = prompt_without_echo("password or token to hash: ")?;
    } else {
        std::io::stdin().read_line(&mut secret)?;
    }
    let secret = secret.trim_end_matches(['\r', '\n']);
    if secret.is_empty() {
        anyhow::bail!("refusing to hash an empty password or token");
    }
    println!("{}", hash_secret(secret)?);
    Ok(())
}

/// Turns the terminal's echo off, then prompts and reads a line without echo, as getpass(3)
/// does: prompting first (as `rpassword::prompt_password` does) left a moment in which a
/// secret typed on seeing the prompt was echoed.
#[cfg(unix)]
fn prompt_without_echo(prompt: &str) -> std::io::Result<String> {
    use std::io::Write as _;
    use std::os::fd::AsRawFd as _;
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let fd = tty.as_raw_fd();
    // SAFETY: tcgetattr/tcsetattr on an open terminal descriptor with a termios we own.
    let mut saved = unsafe { std::mem::zeroed::<libc::termios>() };
    if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut quiet = saved;
    quiet.c_lflag &= !libc::ECHO;
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let read = tty
        .write_all(prompt.as_bytes())
        .and_then(|()| tty.flush())
        .and_then(|()| rpassword::read_password());
    // SAFETY: as above; restores what the terminal had before the prompt.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    read
}

/// Prompts and reads a line without echo.
#[cfg(not(unix))]
fn prompt_without_echo(prompt: &str) -> std::io::Result<String> {
    rpassword::prompt_password(prompt)
}

/// On SIGINT or SIGTERM, marks the gateway draining (`/readyz` answers 503 from then on),
/// then cancels `shutdown`.
async fn signal_shutdown(shutdown: CancellationToken, readiness: std::sync::Arc<Readiness>) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        () = terminate => {}
    }
    readiness.start_draining();
    tracing::info!("shutting down");
    shutdown.cancel();
}
