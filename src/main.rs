//! The `voice-gateway` binary: parses the command line, sets up logging, binds the
//! listeners and runs the gateway until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use voice_gateway::config::{Config, hash_secret};
use voice_gateway::tls::ServerTls;
use voice_gateway::{Listeners, run_with_tls};

/// mimalloc instead of glibc malloc: the request path allocates many small, short-lived
/// buffers across two worker threads, where glibc spent about a fifth of the CPU in
/// `malloc`/`free`/`malloc_consolidate` (BENCHMARKS.md, figure 1 profile). Built with
/// `no_thp`: with transparent huge pages its arenas made the idle demo gateway 22 MiB
/// resident instead of 9.
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
    /// Serves the agent desktop demo page from this folder at /desktop/ (the repository's
    /// `desktop/`, after `npm ci` in it); overrides `desktop.dir` of the config.
    #[arg(long, env = "VOICE_GATEWAY_DESKTOP")]
    desktop: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints the argon2 hash of a password or token read from standard input, for the
    /// `password_hash` and `token_hash` keys of a configuration file.
    HashPassword,
    /// Prints the built-in demo configuration.
    DemoConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match cli.command {
        Some(Command::HashPassword) => {
            let mut secret = String::new();
            std::io::stdin().read_line(&mut secret)?;
            println!("{}", hash_secret(secret.trim_end_matches(['\r', '\n']))?);
            return Ok(());
        }
        Some(Command::DemoConfig) => {
            print!("{}", voice_gateway::config::DEMO_TOML);
            return Ok(());
        }
        None => {}
    }
    let mut config = match &cli.config {
        Some(path) => Config::from_file(path)?,
        None => Config::demo(),
    };
    if let Some(url) = cli.upstream {
        config.upstream.url = Some(url);
        config
            .upstream
            .validate()
            .map_err(|e| anyhow::anyhow!("--upstream: {e}"))?;
    }
    if let Some(dir) = cli.desktop {
        config.desktop.dir = Some(dir);
    }
    config
        .desktop
        .validate()
        .map_err(|e| anyhow::anyhow!("--desktop: {e}"))?;
    // TLS files are read and checked before any listener binds.
    let one_port = cli.http_listen == cli.grpc_listen;
    let tls = ServerTls::from_config(&config, one_port)?;
    let grpc = TcpListener::bind(cli.grpc_listen)
        .await
        .with_context(|| format!("cannot listen on {}", cli.grpc_listen))?;
    let http = if one_port {
        None
    } else {
        Some(
            TcpListener::bind(cli.http_listen)
                .await
                .with_context(|| format!("cannot listen on {}", cli.http_listen))?,
        )
    };
    tracing::info!(
        grpc = %cli.grpc_listen,
        http = %cli.http_listen,
        grpc_tls = tls.grpc.is_some() || (one_port && tls.http.is_some()),
        http_tls = tls.http.is_some(),
        "voice-gateway serving"
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_shutdown(shutdown.clone()));
    run_with_tls(config, tls, Listeners { grpc, http }, shutdown).await?;
    tracing::info!("voice-gateway stopped");
    Ok(())
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn signal_shutdown(shutdown: CancellationToken) {
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
    tracing::info!("shutting down");
    shutdown.cancel();
}
