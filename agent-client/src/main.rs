//! `caruso-agent`: the agent's command-line client for a caruso server's gRPC API.
//!
//! For now it talks to `caruso.v1.System` only:
//! `caruso-agent [--server http://127.0.0.1:50051] version|status|reload-config`.

use std::time::Duration;

use anyhow::Context;
use caruso_proto::caruso::v1::{
    system_client::SystemClient, GetStatusRequest, GetVersionRequest, ReloadConfigRequest,
    SystemStatus, VersionInfo,
};
use clap::{Parser, Subcommand};
use tonic::transport::{Channel, Endpoint};

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(name = "caruso-agent", version, about = "caruso agent client (gRPC)")]
struct Args {
    /// gRPC address of the caruso server.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    server: String,
    /// Seconds to wait for the connection and for each answer.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
    /// What to ask.
    #[command(subcommand)]
    command: Command,
}

/// Sub-commands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Print the server's version.
    Version,
    /// Print the server's health and load.
    Status,
    /// Ask the server to re-read its config file (administrators; like SIGHUP).
    ReloadConfig,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let timeout = Duration::from_secs(args.timeout.max(1));
    let mut client = connect(&args.server, timeout).await?;
    match args.command {
        Command::Version => {
            let v = client
                .get_version(GetVersionRequest {})
                .await
                .with_context(|| format!("GetVersion failed on {}", args.server))?
                .into_inner();
            print!("{}", format_version(&v));
        }
        Command::Status => {
            let s = client
                .get_status(GetStatusRequest {})
                .await
                .with_context(|| format!("GetStatus failed on {}", args.server))?
                .into_inner();
            print!("{}", format_status(&s));
        }
        Command::ReloadConfig => match client.reload_config(ReloadConfigRequest {}).await {
            Ok(r) => {
                let r = r.into_inner();
                println!("generation: {}\n{}", r.generation, r.message);
            }
            Err(status) => anyhow::bail!("reload refused: {}", status.message()),
        },
    }
    Ok(())
}

/// Opens a channel to `server`, failing with a message that names it.
async fn connect(server: &str, timeout: Duration) -> anyhow::Result<SystemClient<Channel>> {
    let endpoint = Endpoint::from_shared(server.to_owned())
        .with_context(|| format!("invalid server address {server:?}"))?
        .connect_timeout(timeout)
        .timeout(timeout);
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot reach the caruso server at {server} (is it running?)"))?;
    Ok(SystemClient::new(channel))
}

/// Renders a version answer as `key: value` lines.
fn format_version(v: &VersionInfo) -> String {
    let mut out = format!("{} {}\n", v.name, v.version);
    out.push_str(&format!("build: {}\n", v.build_profile));
    if !v.git_revision.is_empty() {
        out.push_str(&format!("git: {}\n", v.git_revision));
    }
    out
}

/// Renders a status answer as `key: value` lines.
fn format_status(s: &SystemStatus) -> String {
    let health = match s.health() {
        caruso_proto::caruso::v1::Health::Serving => "SERVING",
        caruso_proto::caruso::v1::Health::NotServing => "NOT_SERVING",
        caruso_proto::caruso::v1::Health::Unspecified => "UNKNOWN",
    };
    format!(
        "health: {health}\nversion: {}\nuptime_seconds: {}\nactive_calls: {}\nsip_transactions: {}\nsip_dialogs: {}\nregistrations: {}\n",
        s.version,
        s.uptime_seconds,
        s.active_calls,
        s.sip_transactions,
        s.sip_dialogs,
        s.registrations
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_lines() {
        let v = VersionInfo {
            version: "1.2.3".into(),
            git_revision: String::new(),
            build_profile: "release".into(),
            name: "caruso".into(),
        };
        assert_eq!(format_version(&v), "caruso 1.2.3\nbuild: release\n");
    }

    #[test]
    fn status_lines() {
        let s = SystemStatus {
            health: caruso_proto::caruso::v1::Health::Serving.into(),
            uptime_seconds: 5,
            active_calls: 2,
            sip_transactions: 4,
            sip_dialogs: 2,
            registrations: 0,
            version: "0.1.0".into(),
        };
        let text = format_status(&s);
        assert!(text.starts_with("health: SERVING\n"));
        assert!(text.contains("active_calls: 2\n"));
    }

    #[tokio::test]
    async fn unreachable_server_is_a_clear_error() {
        // Bind then drop to get a closed port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("probe port")
            .port();
        let err = connect(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2))
            .await
            .expect_err("nothing listens there");
        assert!(format!("{err:#}").contains("cannot reach the caruso server"));
    }
}
