//! gRPC API: the `caruso.v1.System` service, `caruso.v1.Voicemail` (when voicemail
//! storage is given), `caruso.v1.Agent` (when the ACD runs), `caruso.v1.Campaigns`
//! (when the dialer runs), `caruso.v1.Monitor` (when the monitor runs),
//! `grpc.health.v1.Health` and server reflection (v1), served by
//! tonic on one TCP address (default `127.0.0.1:50051`), optionally over TLS.
//!
//! Every RPC except health and reflection needs `authorization: Bearer <token>`; one
//! layer ([`auth`]) decides by the gRPC path which roles may call, before any service
//! runs, and hands the services the resolved [`auth::Principal`].
//!
//! Contract: the services read the server's state only through a
//! [`watch::Receiver<ServerStats>`] snapshot that the runtime publishes; they never reach
//! into calls or transactions. Every error the API can produce is mapped to a
//! [`tonic::Status`] in one place ([`ApiError`]'s `From` impl).
//!
//! ```no_run
//! # async fn demo() -> Result<(), caruso::api::ApiError> {
//! use caruso::api::{serve, ApiSecurity, ApiServices, ServerStats};
//! use caruso::api::auth::AuthPolicy;
//! let (_tx, rx) = tokio::sync::watch::channel(ServerStats::default());
//! let (_policy_tx, policy) = tokio::sync::watch::channel(std::sync::Arc::new(AuthPolicy::default()));
//! let security = ApiSecurity::new(policy);
//! // System alone; set `acd`, `voicemail`, ... in ApiServices to serve those too.
//! serve("127.0.0.1:50051".parse().unwrap(), ApiServices::new(rx), security, std::future::pending()).await
//! # }
//! ```

mod agent;
pub mod auth;
mod campaigns;
mod monitor;
mod registry;
mod system;
pub mod tls;
mod voicemail;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use caruso_proto::caruso::v1::agent_server::AgentServer;
use caruso_proto::caruso::v1::campaigns_server::CampaignsServer;
use caruso_proto::caruso::v1::monitor_server::MonitorServer;
use caruso_proto::caruso::v1::registry_server::RegistryServer;
use caruso_proto::caruso::v1::system_server::SystemServer;
use caruso_proto::caruso::v1::voicemail_server::VoicemailServer;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tonic::transport::server::TcpIncoming;

pub use agent::AgentService;
pub use campaigns::CampaignsService;
pub use monitor::MonitorService;
pub use registry::RegistryService;
pub use system::{ReloadRequest, ReloadResult, SystemService};
pub use voicemail::VoicemailService;

use crate::acd::api::{AcdError, AcdHandle};
use crate::dialer::task::{DialerError, DialerHandle};
use crate::monitor::hub::MonitorHandle;
use crate::monitor::MonitorError;
use crate::registry::task::RegistryHandle;
use crate::registry::RegistryError;
use crate::voicemail::{Voicemail, VoicemailError};

/// Snapshot of the server's load that the runtime publishes for the API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Calls currently up (one call actor each).
    pub active_calls: u64,
    /// SIP transactions currently alive.
    pub transactions: u64,
    /// SIP dialogs currently alive.
    pub dialogs: u64,
    /// Registered contacts (agents' phones).
    pub registrations: u64,
}

/// Errors of the gRPC API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The gRPC listen address could not be bound.
    #[error("cannot bind the gRPC address {addr}: {source}")]
    Bind {
        /// Address that was asked for.
        addr: SocketAddr,
        /// Underlying IO error.
        source: std::io::Error,
    },
    /// The reflection service rejected the embedded file descriptor set.
    #[error("the embedded protobuf descriptor set is invalid: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The HTTP/2 server failed while serving.
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A request named something that does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A request carried an invalid argument.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Voicemail storage refused or failed.
    #[error(transparent)]
    Voicemail(#[from] VoicemailError),
    /// The authorization layer refused the request.
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// The TLS certificate or key cannot be used.
    #[error("gRPC TLS: {0}")]
    Tls(String),
    /// The ACD refused an agent command.
    #[error(transparent)]
    Acd(#[from] AcdError),
    /// The service registry refused a request.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The dialer refused a campaign or do-not-call command.
    #[error(transparent)]
    Dialer(#[from] DialerError),
    /// The monitor refused a request or cut a watcher off.
    #[error(transparent)]
    Monitor(#[from] MonitorError),
}

/// The one place where API errors become gRPC statuses.
impl From<ApiError> for tonic::Status {
    fn from(err: ApiError) -> Self {
        match err {
            ApiError::NotFound(what) => tonic::Status::not_found(what),
            ApiError::InvalidArgument(what) => tonic::Status::invalid_argument(what),
            ApiError::Voicemail(e) => match e {
                VoicemailError::NoMailbox(_) | VoicemailError::NoMessage(_) => {
                    tonic::Status::not_found(e.to_string())
                }
                VoicemailError::InvalidPin(_) => tonic::Status::invalid_argument(e.to_string()),
                VoicemailError::Full(_) => tonic::Status::resource_exhausted(e.to_string()),
                VoicemailError::File { .. } | VoicemailError::Store(_) => {
                    tonic::Status::internal(e.to_string())
                }
            },
            ApiError::Auth(e) => auth::status_of(&e),
            ApiError::Acd(e) => match e {
                AcdError::InvalidTransition { .. } | AcdError::UnknownReason(..) => {
                    tonic::Status::failed_precondition(e.to_string())
                }
                AcdError::UnknownAgent(_)
                | AcdError::UnknownTarget(_)
                | AcdError::UnknownCall(_) => tonic::Status::not_found(e.to_string()),
                AcdError::InvalidDisposition(_) => tonic::Status::invalid_argument(e.to_string()),
                AcdError::Stopped => tonic::Status::unavailable(e.to_string()),
            },
            ApiError::Registry(e) => match e {
                RegistryError::InvalidName(_)
                | RegistryError::InvalidEndpoint { .. }
                | RegistryError::EndpointDenied(_)
                | RegistryError::InvalidField { .. }
                | RegistryError::IdTaken { .. } => tonic::Status::invalid_argument(e.to_string()),
                RegistryError::UnknownInstance(_) => tonic::Status::not_found(e.to_string()),
                RegistryError::Full(_) => tonic::Status::resource_exhausted(e.to_string()),
                RegistryError::Stopped => tonic::Status::unavailable(e.to_string()),
            },
            ApiError::Dialer(e) => {
                use crate::dialer::campaign::CampaignError as C;
                match e {
                    DialerError::NotFound(_) => tonic::Status::not_found(e.to_string()),
                    DialerError::Exists(_) => tonic::Status::already_exists(e.to_string()),
                    DialerError::Invalid(_)
                    | DialerError::Contacts(_)
                    | DialerError::Dnc(crate::dialer::dnc::DncError::Number { .. }) => {
                        tonic::Status::invalid_argument(e.to_string())
                    }
                    DialerError::Campaign(C::InvalidTransition { .. })
                    | DialerError::Campaign(C::NotMachine { .. }) => {
                        tonic::Status::failed_precondition(e.to_string())
                    }
                    DialerError::Campaign(C::UnknownAttempt { .. }) => {
                        tonic::Status::not_found(e.to_string())
                    }
                    DialerError::Campaign(C::Store(_))
                    | DialerError::Dnc(crate::dialer::dnc::DncError::Store(_)) => {
                        tonic::Status::internal(e.to_string())
                    }
                    DialerError::Stopped => tonic::Status::unavailable(e.to_string()),
                    DialerError::NoOffer(_) => tonic::Status::not_found(e.to_string()),
                    DialerError::NotYours { .. } => {
                        tonic::Status::failed_precondition(e.to_string())
                    }
                }
            }
            ApiError::Monitor(e) => match e {
                MonitorError::UnknownQueue(_) | MonitorError::UnknownAgent(_) => {
                    tonic::Status::invalid_argument(e.to_string())
                }
                MonitorError::TooSlow { .. } => tonic::Status::resource_exhausted(e.to_string()),
                MonitorError::Stopped => tonic::Status::unavailable(e.to_string()),
            },
            ApiError::Bind { .. }
            | ApiError::Reflection(_)
            | ApiError::Transport(_)
            | ApiError::Tls(_) => tonic::Status::internal(err.to_string()),
        }
    }
}

/// What guards the API: the authorization policy (replaced on reload) and optional TLS.
#[derive(Debug, Clone)]
pub struct ApiSecurity {
    /// Tokens and rate limits, as the config currently says.
    pub policy: watch::Receiver<Arc<auth::AuthPolicy>>,
    /// The server's certificate and key, when the API speaks TLS.
    pub tls: Option<tonic::transport::ServerTlsConfig>,
}

impl ApiSecurity {
    /// Plain HTTP/2 with the policy in `policy`.
    pub fn new(policy: watch::Receiver<Arc<auth::AuthPolicy>>) -> Self {
        Self { policy, tls: None }
    }

    /// TLS with this certificate chain and key (PEM, checked by [`tls::check_pem`]).
    pub fn with_tls(mut self, cert_pem: &[u8], key_pem: &[u8]) -> Self {
        self.tls = Some(tls::server_config(cert_pem, key_pem));
        self
    }
}

/// The services one API server offers: `caruso.v1.System` always (with config reload
/// when `reload` is given); each other service only when its handle is given.
pub struct ApiServices {
    /// Server figures for `System/GetStatus`.
    pub stats: watch::Receiver<ServerStats>,
    /// Where `System/ReloadConfig` sends its requests.
    pub reload: Option<mpsc::Sender<ReloadRequest>>,
    /// `caruso.v1.Voicemail` storage.
    pub voicemail: Option<Arc<Voicemail>>,
    /// `caruso.v1.Agent` (the ACD).
    pub acd: Option<AcdHandle>,
    /// `caruso.v1.Campaigns` (the dialer; also preview decisions of `caruso.v1.Agent`).
    pub campaigns: Option<DialerHandle>,
    /// `caruso.v1.Registry`.
    pub registry: Option<RegistryHandle>,
    /// `caruso.v1.Monitor`.
    pub monitor: Option<MonitorHandle>,
}

impl ApiServices {
    /// `caruso.v1.System` alone.
    pub fn new(stats: watch::Receiver<ServerStats>) -> Self {
        ApiServices {
            stats,
            reload: None,
            voicemail: None,
            acd: None,
            campaigns: None,
            registry: None,
            monitor: None,
        }
    }
}

/// Binds `addr` and serves `services` until `shutdown` completes.
pub async fn serve(
    addr: SocketAddr,
    services: ApiServices,
    security: ApiSecurity,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ApiError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ApiError::Bind { addr, source })?;
    serve_on(listener, services, security, shutdown).await
}

/// Serves `services` on an already bound listener until `shutdown` completes.
pub async fn serve_on(
    listener: TcpListener,
    services: ApiServices,
    security: ApiSecurity,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ApiError> {
    let ApiServices {
        stats,
        reload,
        voicemail,
        acd,
        campaigns,
        registry,
        monitor,
    } = services;
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<SystemServer<SystemService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(caruso_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    if voicemail.is_some() {
        health_reporter
            .set_serving::<VoicemailServer<VoicemailService>>()
            .await;
    }
    if acd.is_some() {
        health_reporter
            .set_serving::<AgentServer<AgentService>>()
            .await;
    }
    if campaigns.is_some() {
        health_reporter
            .set_serving::<CampaignsServer<CampaignsService>>()
            .await;
    }
    if registry.is_some() {
        health_reporter
            .set_serving::<RegistryServer<RegistryService>>()
            .await;
    }
    if monitor.is_some() {
        health_reporter
            .set_serving::<MonitorServer<MonitorService>>()
            .await;
    }
    let mut system = SystemService::new(stats, Instant::now());
    if let Some(reload) = reload {
        system = system.with_reload(reload);
    }
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = security.tls {
        builder = builder
            .tls_config(tls)
            .map_err(|e| ApiError::Tls(e.to_string()))?;
    }
    builder
        .layer(auth::AuthLayer::new(security.policy))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(SystemServer::new(system))
        .add_optional_service(voicemail.map(|vm| VoicemailServer::new(VoicemailService::new(vm))))
        .add_optional_service(
            acd.map(|acd| AgentServer::new(AgentService::new(acd).with_dialer(campaigns.clone()))),
        )
        .add_optional_service(registry.map(|r| RegistryServer::new(RegistryService::new(r))))
        .add_optional_service(campaigns.map(|d| CampaignsServer::new(CampaignsService::new(d))))
        .add_optional_service(monitor.map(|m| MonitorServer::new(MonitorService::new(m))))
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown.await;
            health_reporter
                .set_not_serving::<SystemServer<SystemService>>()
                .await;
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use caruso_proto::caruso::v1::system_client::SystemClient;
    use caruso_proto::caruso::v1::{GetStatusRequest, GetVersionRequest, Health};
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{health_check_response::ServingStatus, HealthCheckRequest};

    async fn start() -> (
        SocketAddr,
        watch::Sender<ServerStats>,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<Result<(), ApiError>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = watch::channel(ServerStats::default());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let security = ApiSecurity::new(auth::test_policy(&[]));
        let task = tokio::spawn(serve_on(
            listener,
            crate::api::ApiServices::new(rx),
            security,
            async {
                let _ = stop_rx.await;
            },
        ));
        (addr, tx, stop_tx, task)
    }

    #[tokio::test]
    async fn version_status_and_health_over_grpc() {
        let (addr, stats, stop, task) = start().await;
        let url = format!("http://{addr}");
        let channel = tonic::transport::Endpoint::from_shared(url.clone())
            .expect("url")
            .connect()
            .await
            .expect("connect");
        let mut anonymous = SystemClient::new(channel.clone());
        let refused = anonymous
            .get_version(GetVersionRequest {})
            .await
            .expect_err("no token");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        let mut client = SystemClient::with_interceptor(channel, |mut r: tonic::Request<()>| {
            r.metadata_mut()
                .insert("authorization", "Bearer supervisor-secret".parse().unwrap());
            Ok(r)
        });

        let version = client
            .get_version(GetVersionRequest {})
            .await
            .expect("GetVersion")
            .into_inner();
        assert_eq!(version.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(version.name, "caruso");

        stats.send_replace(ServerStats {
            active_calls: 3,
            transactions: 7,
            dialogs: 2,
            registrations: 0,
        });
        let status = client
            .get_status(GetStatusRequest {})
            .await
            .expect("GetStatus")
            .into_inner();
        assert_eq!(status.health(), Health::Serving);
        assert_eq!(status.active_calls, 3);
        assert_eq!(status.sip_transactions, 7);
        assert_eq!(status.sip_dialogs, 2);
        assert_eq!(status.registrations, 0);

        let channel = tonic::transport::Endpoint::from_shared(url)
            .expect("url")
            .connect()
            .await
            .expect("health connect");
        let mut health = HealthClient::new(channel);
        let answer = health
            .check(HealthCheckRequest {
                service: "caruso.v1.System".into(),
            })
            .await
            .expect("health check")
            .into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving);

        stop.send(()).expect("server still running");
        task.await.expect("join").expect("clean shutdown");
    }

    #[tokio::test]
    async fn bind_error_names_the_address() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = taken.local_addr().expect("addr");
        let (_tx, rx) = watch::channel(ServerStats::default());
        let security = ApiSecurity::new(auth::test_policy(&[]));
        let err = serve(addr, ApiServices::new(rx), security, std::future::pending())
            .await
            .expect_err("port is taken");
        assert!(matches!(err, ApiError::Bind { addr: a, .. } if a == addr));
        assert!(err.to_string().contains(&addr.to_string()));
    }

    #[test]
    fn errors_map_to_grpc_codes() {
        let s: tonic::Status = ApiError::NotFound("queue 7".into()).into();
        assert_eq!(s.code(), tonic::Code::NotFound);
        let s: tonic::Status = ApiError::InvalidArgument("bad".into()).into();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
    }
}
