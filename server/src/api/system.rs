//! `caruso.v1.System`: version, uptime and load, read from a [`ServerStats`] snapshot.

use std::time::Instant;

use caruso_proto::caruso::v1::{
    system_server::System, GetStatusRequest, GetVersionRequest, Health, ReloadConfigRequest,
    ReloadConfigResponse, SystemStatus, VersionInfo,
};
use tokio::sync::{mpsc, oneshot, watch};
use tonic::{Request, Response, Status};

use super::ServerStats;

/// The outcome of a config reload: `(generation, summary)` or why it was refused.
pub type ReloadResult = Result<(u64, String), String>;

/// A request to reload the config, answered on the enclosed channel.
pub type ReloadRequest = oneshot::Sender<ReloadResult>;

/// Implementation of the `caruso.v1.System` gRPC service.
#[derive(Debug, Clone)]
pub struct SystemService {
    stats: watch::Receiver<ServerStats>,
    started: Instant,
    reload: Option<mpsc::Sender<ReloadRequest>>,
}

impl SystemService {
    /// Creates the service over a stats snapshot channel and the server's start time.
    pub fn new(stats: watch::Receiver<ServerStats>, started: Instant) -> Self {
        Self {
            stats,
            started,
            reload: None,
        }
    }

    /// Lets `ReloadConfig` ask the server's reload task (without it, the call answers
    /// UNIMPLEMENTED).
    pub fn with_reload(mut self, reload: mpsc::Sender<ReloadRequest>) -> Self {
        self.reload = Some(reload);
        self
    }

    /// Builds the version answer (pure; no IO).
    pub fn version_info() -> VersionInfo {
        VersionInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            git_revision: option_env!("CARUSO_GIT_REVISION")
                .unwrap_or_default()
                .to_owned(),
            build_profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .to_owned(),
            name: "caruso".to_owned(),
        }
    }

    /// Builds the status answer for the snapshot `stats` at time `now` (pure; no IO).
    pub fn status_at(&self, stats: ServerStats, now: Instant) -> SystemStatus {
        SystemStatus {
            health: Health::Serving.into(),
            uptime_seconds: now.saturating_duration_since(self.started).as_secs(),
            active_calls: stats.active_calls,
            sip_transactions: stats.transactions,
            sip_dialogs: stats.dialogs,
            registrations: stats.registrations,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

#[tonic::async_trait]
impl System for SystemService {
    async fn get_version(
        &self,
        _request: Request<GetVersionRequest>,
    ) -> Result<Response<VersionInfo>, Status> {
        Ok(Response::new(Self::version_info()))
    }

    async fn get_status(
        &self,
        _request: Request<GetStatusRequest>,
    ) -> Result<Response<SystemStatus>, Status> {
        let stats = *self.stats.borrow();
        Ok(Response::new(self.status_at(stats, Instant::now())))
    }

    async fn reload_config(
        &self,
        _request: Request<ReloadConfigRequest>,
    ) -> Result<Response<ReloadConfigResponse>, Status> {
        let Some(reload) = &self.reload else {
            return Err(Status::unimplemented(
                "this server cannot reload its config",
            ));
        };
        let (tx, rx) = oneshot::channel();
        reload
            .send(tx)
            .await
            .map_err(|_| Status::unavailable("the server is shutting down"))?;
        match rx.await {
            Ok(Ok((generation, message))) => Ok(Response::new(ReloadConfigResponse {
                generation,
                message,
            })),
            Ok(Err(why)) => Err(Status::failed_precondition(why)),
            Err(_) => Err(Status::unavailable("the server is shutting down")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn uptime_counts_whole_seconds_since_start() {
        let start = Instant::now();
        let (_tx, rx) = watch::channel(ServerStats::default());
        let svc = SystemService::new(rx, start);
        let s = svc.status_at(ServerStats::default(), start + Duration::from_millis(2_999));
        assert_eq!(s.uptime_seconds, 2);
        // A clock reading before the start never underflows.
        let s = svc.status_at(ServerStats::default(), start);
        assert_eq!(s.uptime_seconds, 0);
    }

    #[test]
    fn status_copies_the_snapshot() {
        let (_tx, rx) = watch::channel(ServerStats::default());
        let svc = SystemService::new(rx, Instant::now());
        let stats = ServerStats {
            active_calls: 1,
            transactions: 2,
            dialogs: 3,
            registrations: 4,
        };
        let s = svc.status_at(stats, Instant::now());
        assert_eq!(
            (s.active_calls, s.sip_transactions, s.sip_dialogs),
            (1, 2, 3)
        );
        assert_eq!(s.health(), Health::Serving);
    }
}
