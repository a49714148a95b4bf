//! `caruso-agent`: the agent's command-line client for a caruso server's gRPC API.
//!
//! - `caruso-agent [--server http://127.0.0.1:50051] --token T version|status|reload-config`
//!   (`caruso.v1.System`; any token for version and status, an admin token for
//!   reload-config; the token also from `CARUSO_TOKEN`);
//! - `caruso-agent agent --token T <subcommand>` (`caruso.v1.Agent`): the agent's
//!   program, scriptable (`login`, `ready`, `events --until connected`,
//!   `preview accept|skip ATTEMPT`, ...) or
//!   interactive (`console`). See [`agent`].
//! - `caruso-agent campaign --token T list|status|load|start|pause|resume|stop|dnc|attempts|false-positive ...`
//!   (`caruso.v1.Campaigns`, a supervisor or admin token). See [`campaign`].
//! - `caruso-agent monitor --token T [--queue Q] [--agent A] [--once | --events N]`
//!   (`caruso.v1.Monitor`): the supervisor's live wallboard. See [`monitor`].
//! - TLS: an `https://` server URL with `--ca <pem>`, the certificate (or CA) the server's
//!   certificate must chain to.

mod agent;
mod campaign;
mod monitor;

use std::time::Duration;

use anyhow::Context;
use caruso_proto::caruso::v1::{
    system_client::SystemClient, GetStatusRequest, GetVersionRequest, ReloadConfigRequest,
    SystemStatus, VersionInfo,
};
use clap::{Parser, Subcommand};
use tonic::codegen::InterceptedService;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// Environment variable holding the token of `version`, `status` and `reload-config`
/// when `--token` is not given.
pub const TOKEN_ENV: &str = "CARUSO_TOKEN";

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(name = "caruso-agent", version, about = "caruso agent client (gRPC)")]
struct Args {
    /// gRPC address of the caruso server.
    #[arg(long, global = true, default_value = "http://127.0.0.1:50051")]
    server: String,
    /// PEM certificate(s) the server's TLS certificate must chain to (https:// servers).
    #[arg(long, global = true, value_name = "PEM")]
    ca: Option<std::path::PathBuf>,
    /// Bearer token for version, status (any role) and reload-config (admin); default:
    /// $CARUSO_TOKEN. The agent subcommand takes its own `agent --token`.
    #[arg(long)]
    token: Option<String>,
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
    /// The agent's program: log in, ready / not ready, wrap-up, transfer, events.
    Agent(agent::AgentArgs),
    /// Outbound campaigns and the do-not-call list (supervisor or admin token).
    Campaign(campaign::CampaignArgs),
    /// The supervisor's live wallboard (agents, queues, service level).
    Monitor(monitor::MonitorArgs),
}

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(Args::parse())) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs one command; the process exit code on success.
async fn run(args: Args) -> anyhow::Result<u8> {
    let timeout = Duration::from_secs(args.timeout.max(1));
    let tls = tls_config(&args.server, args.ca.as_deref())?;
    if let Command::Agent(agent_args) = args.command {
        agent::token(&agent_args)?; // before connecting: a missing token is the first error
        let channel = channel(&args.server, tls, timeout).await?;
        let code = agent::run(agent_args, channel, timeout).await?;
        return Ok(u8::try_from(code).unwrap_or(1));
    }
    if let Command::Campaign(c) = args.command {
        let bearer = bearer(c.token.as_deref().or(args.token.as_deref()))?;
        let channel = channel(&args.server, tls, timeout).await?;
        return campaign::run(c, channel, bearer, timeout).await;
    }
    if let Command::Monitor(monitor_args) = args.command {
        let channel = channel(&args.server, tls, timeout).await?;
        let fallback = args.token.or_else(|| std::env::var(TOKEN_ENV).ok());
        let code = monitor::run(monitor_args, fallback, channel, timeout).await?;
        return Ok(u8::try_from(code).unwrap_or(1));
    }
    let bearer = bearer(args.token.as_deref())?;
    let mut client = connect(&args.server, tls, bearer, timeout).await?;
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
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                anyhow::bail!("reload refused: {}", status.message())
            }
            Err(status) => anyhow::bail!(
                "ReloadConfig failed on {}: {:?}: {}",
                args.server,
                status.code(),
                status.message()
            ),
        },
        Command::Agent(_) | Command::Campaign(_) | Command::Monitor(_) => {
            unreachable!("handled above")
        }
    }
    Ok(0)
}

/// The `authorization: Bearer <token>` interceptor for `--token` or `$CARUSO_TOKEN`.
fn bearer(token: Option<&str>) -> anyhow::Result<agent::Bearer> {
    let token = match token {
        Some(t) => t.to_owned(),
        None => std::env::var(TOKEN_ENV).with_context(|| {
            format!(
                "no token: pass --token or set {TOKEN_ENV} (any role for version and status, \
                 admin for reload-config)"
            )
        })?,
    };
    let token = token.trim();
    if token.is_empty() {
        anyhow::bail!("the token is empty");
    }
    let value: AsciiMetadataValue = format!("Bearer {token}")
        .parse()
        .context("the token contains characters not allowed in gRPC metadata")?;
    Ok(agent::Bearer::new(value))
}

/// The TLS settings for `server`: `None` for `http://`, the `--ca` roots for `https://`.
fn tls_config(
    server: &str,
    ca: Option<&std::path::Path>,
) -> anyhow::Result<Option<ClientTlsConfig>> {
    let https = server.starts_with("https://");
    match (https, ca) {
        (false, None) => Ok(None),
        (false, Some(_)) => anyhow::bail!("--ca needs an https:// server address, got {server:?}"),
        (true, None) => anyhow::bail!(
            "an https:// server needs --ca <pem>: the certificate (or CA) its certificate chains to"
        ),
        (true, Some(path)) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read the --ca file {}", path.display()))?;
            Ok(Some(
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
            ))
        }
    }
}

/// Opens a `caruso.v1.System` client to `server` (each call limited to `timeout`, each
/// carrying the token), failing with a message that names it.
async fn connect(
    server: &str,
    tls: Option<ClientTlsConfig>,
    bearer: agent::Bearer,
    timeout: Duration,
) -> anyhow::Result<SystemClient<InterceptedService<Channel, agent::Bearer>>> {
    let endpoint = endpoint(server, tls, timeout)?.timeout(timeout);
    Ok(SystemClient::with_interceptor(
        open(server, endpoint).await?,
        bearer,
    ))
}

/// Opens a channel to `server` without a per-call deadline (event streams are
/// long-lived; the agent commands time their unary calls themselves).
async fn channel(
    server: &str,
    tls: Option<ClientTlsConfig>,
    timeout: Duration,
) -> anyhow::Result<Channel> {
    open(server, endpoint(server, tls, timeout)?).await
}

/// The endpoint of `server` with a connect timeout (and TLS when given).
fn endpoint(
    server: &str,
    tls: Option<ClientTlsConfig>,
    timeout: Duration,
) -> anyhow::Result<Endpoint> {
    let mut endpoint = Endpoint::from_shared(server.to_owned())
        .with_context(|| format!("invalid server address {server:?}"))?
        .connect_timeout(timeout);
    if let Some(tls) = tls {
        endpoint = endpoint
            .tls_config(tls)
            .with_context(|| format!("cannot use TLS with {server}"))?;
    }
    Ok(endpoint)
}

/// Connects, failing with a message that names `server`.
async fn open(server: &str, endpoint: Endpoint) -> anyhow::Result<Channel> {
    endpoint
        .connect()
        .await
        .with_context(|| format!("cannot reach the caruso server at {server} (is it running?)"))
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
    fn tls_needs_https_and_a_ca_together() {
        assert!(tls_config("http://127.0.0.1:50051", None)
            .expect("plain")
            .is_none());
        let e = tls_config("https://127.0.0.1:50051", None).expect_err("no CA");
        assert!(e.to_string().contains("--ca"), "{e}");
        let e = tls_config("http://127.0.0.1:50051", Some("ca.pem".as_ref())).expect_err("http");
        assert!(e.to_string().contains("https://"), "{e}");
        let e = tls_config(
            "https://127.0.0.1:50051",
            Some("/nonexistent/ca.pem".as_ref()),
        )
        .expect_err("missing file");
        assert!(format!("{e:#}").contains("/nonexistent/ca.pem"), "{e:#}");
    }

    #[test]
    fn tokens_must_fit_in_metadata() {
        assert!(bearer(Some("admin-secret")).is_ok());
        assert!(bearer(Some("  ")).is_err());
        assert!(bearer(Some("bad\ntoken")).is_err());
    }

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
        let bearer = bearer(Some("t")).expect("token");
        let err = connect(
            &format!("http://127.0.0.1:{port}"),
            None,
            bearer,
            Duration::from_secs(2),
        )
        .await
        .expect_err("nothing listens there");
        assert!(format!("{err:#}").contains("cannot reach the caruso server"));
    }
}
