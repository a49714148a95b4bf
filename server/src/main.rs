//! The `caruso` binary: arguments, config, tracing, run.

use anyhow::Context;
use caruso::config::Config;
use clap::Parser;
use std::path::PathBuf;

/// caruso: contact-center communication server (SIP, IVR, ACD, gRPC).
#[derive(Debug, Parser)]
#[command(name = "caruso", version, about)]
struct Args {
    /// Configuration file (TOML). Without it, the embedded default config/caruso.toml is
    /// used, with paths relative to ./config.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Validate the configuration (and load its prompts), then exit.
    #[arg(long)]
    check_config: bool,
    /// Log filter (tracing EnvFilter syntax), e.g. `info,caruso=debug`. Overrides RUST_LOG.
    #[arg(long)]
    log: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = match &args.log {
        Some(f) => tracing_subscriber::EnvFilter::try_new(f).context("invalid --log filter")?,
        None => tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
    };
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();

    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::embedded_default()?,
    };
    if args.check_config {
        caruso::server::load_prompts(&config)?;
        println!("{}: configuration is valid", config.source);
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    rt.block_on(async move {
        caruso::server::run(config, args.config.clone(), shutdown_signal()).await?;
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
