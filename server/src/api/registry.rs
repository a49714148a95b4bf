//! `caruso.v1.Registry`: the service registry over a [`RegistryHandle`] (see
//! `proto/proto/caruso/v1/registry.proto` for the contract). Errors become statuses in
//! [`ApiError`]'s `From` (the one place).
//!
//! Watch streams the current instances (ADDED), then SYNCED, then the changes of the
//! watched name from the registry's broadcast; a watcher that reads too slowly only
//! makes its own receiver lag (the registry never waits for it) and then gets
//! `DATA_LOSS` and the end of the stream.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use caruso_proto::caruso::v1 as pb;
use caruso_proto::caruso::v1::registry_server;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::{wrappers::ReceiverStream, Stream};
use tonic::{Request, Response, Status};

use super::ApiError;
use crate::registry::task::RegistryHandle;
use crate::registry::{EventKind, Instance, Query, Registration, RegistryEvent, RemovalReason};

/// Events buffered between the registry's broadcast and one Watch stream.
const STREAM_BUFFER: usize = 64;

/// Implementation of the `caruso.v1.Registry` gRPC service.
#[derive(Debug, Clone)]
pub struct RegistryService {
    registry: RegistryHandle,
}

impl RegistryService {
    /// The service over the registry task's handle.
    pub fn new(registry: RegistryHandle) -> Self {
        Self { registry }
    }
}

/// An instance on the wire, with `left` of its lease.
fn instance_out(i: &Instance, left: Duration) -> pb::ServiceInstance {
    pb::ServiceInstance {
        id: i.id.clone(),
        name: i.name.clone(),
        version: i.version.clone(),
        endpoint: i.endpoint.to_string(),
        capabilities: i.capabilities.clone(),
        metadata: i.metadata.clone().into_iter().collect(),
        ttl_ms: i.ttl.as_millis() as u64,
        registered_at_ms: i.registered_at_ms,
        expires_in_ms: left.as_millis() as u64,
        restored: i.restored,
    }
}

/// A registry event on the wire (the lease left is not known here: the TTL for changes
/// and additions, which renew it, and 0 for removals).
fn event_out(e: &RegistryEvent) -> pb::ServiceEvent {
    let (kind, reason, left) = match e.kind {
        EventKind::Added => (pb::ServiceEventKind::Added, None, e.instance.ttl),
        EventKind::Changed => (pb::ServiceEventKind::Changed, None, e.instance.ttl),
        EventKind::Removed(r) => (
            pb::ServiceEventKind::Removed,
            Some(match r {
                RemovalReason::Deregistered => pb::RemovalReason::Deregistered,
                RemovalReason::Expired => pb::RemovalReason::Expired,
            }),
            Duration::ZERO,
        ),
    };
    pb::ServiceEvent {
        kind: kind as i32,
        instance: Some(instance_out(&e.instance, left)),
        reason: reason.map_or(0, |r| r as i32),
        seq: e.seq,
    }
}

/// `None` for an empty name (every service).
fn name_filter(name: String) -> Option<String> {
    (!name.is_empty()).then_some(name)
}

/// The status a lagging Watch ends with.
fn lagged(missed: u64) -> Status {
    Status::data_loss(format!(
        "watch fell behind ({missed} registry events dropped), watch again"
    ))
}

/// Moves the watched name's events to the stream until the client goes away, the
/// receiver lags (`DATA_LOSS`) or the registry stops (`UNAVAILABLE`).
async fn forward(
    mut rx: broadcast::Receiver<Arc<RegistryEvent>>,
    query: Query,
    tx: mpsc::Sender<Result<pb::ServiceEvent, Status>>,
) {
    loop {
        let next = tokio::select! {
            next = rx.recv() => next,
            () = tx.closed() => return,
        };
        let item = match next {
            Ok(ev) if query.name.as_ref().is_none_or(|n| *n == ev.instance.name) => {
                Ok(event_out(&ev))
            }
            Ok(_) => continue,
            Err(RecvError::Lagged(missed)) => Err(lagged(missed)),
            Err(RecvError::Closed) => Err(Status::unavailable("the registry stopped")),
        };
        let last = item.is_err();
        if tx.send(item).await.is_err() || last {
            return;
        }
    }
}

/// The stream type of `Watch`.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::ServiceEvent, Status>> + Send>>;

#[tonic::async_trait]
impl registry_server::Registry for RegistryService {
    async fn register(
        &self,
        request: Request<pb::RegisterServiceRequest>,
    ) -> Result<Response<pb::RegisterServiceResponse>, Status> {
        let r = request.into_inner();
        let lease = self
            .registry
            .register(Registration {
                name: r.name,
                version: r.version,
                endpoint: r.endpoint,
                capabilities: r.capabilities,
                metadata: r.metadata.into_iter().collect(),
                ttl: (r.ttl_ms > 0).then(|| Duration::from_millis(r.ttl_ms)),
                instance_id: (!r.instance_id.is_empty()).then_some(r.instance_id),
            })
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::RegisterServiceResponse {
            instance_id: lease.instance.id.clone(),
            ttl_ms: lease.ttl.as_millis() as u64,
            instance: Some(instance_out(&lease.instance, lease.ttl)),
        }))
    }

    async fn keep_alive(
        &self,
        request: Request<pb::KeepAliveRequest>,
    ) -> Result<Response<pb::KeepAliveResponse>, Status> {
        let id = request.into_inner().instance_id;
        let lease = self.registry.keepalive(&id).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::KeepAliveResponse {
            ttl_ms: lease.ttl.as_millis() as u64,
        }))
    }

    async fn deregister(
        &self,
        request: Request<pb::DeregisterServiceRequest>,
    ) -> Result<Response<pb::DeregisterServiceResponse>, Status> {
        let id = request.into_inner().instance_id;
        self.registry
            .deregister(&id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::DeregisterServiceResponse {}))
    }

    async fn lookup(
        &self,
        request: Request<pb::LookupServicesRequest>,
    ) -> Result<Response<pb::LookupServicesResponse>, Status> {
        let r = request.into_inner();
        let found = self
            .registry
            .lookup(Query {
                name: name_filter(r.name),
                version: r.version,
                capability: r.capability,
            })
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::LookupServicesResponse {
            instances: found
                .iter()
                .map(|(i, left)| instance_out(i, *left))
                .collect(),
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<pb::WatchServicesRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let query = Query {
            name: name_filter(request.into_inner().name),
            ..Query::default()
        };
        let (current, rx) = self
            .registry
            .watch(query.clone())
            .await
            .map_err(ApiError::from)?;
        let (tx, out) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(async move {
            for (i, left) in &current {
                let ev = pb::ServiceEvent {
                    kind: pb::ServiceEventKind::Added as i32,
                    instance: Some(instance_out(i, *left)),
                    reason: 0,
                    seq: 0,
                };
                if tx.send(Ok(ev)).await.is_err() {
                    return;
                }
            }
            let synced = pb::ServiceEvent {
                kind: pb::ServiceEventKind::Synced as i32,
                instance: None,
                reason: 0,
                seq: 0,
            };
            if tx.send(Ok(synced)).await.is_err() {
                return;
            }
            forward(rx, query, tx).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AllowList;
    use crate::registry::task::RegistryTask;
    use crate::registry::RegistryConfig;
    use caruso_proto::caruso::v1::registry_client::RegistryClient;
    use caruso_proto::caruso::v1::registry_server::RegistryServer;
    use tokio::net::TcpListener;

    async fn start() -> RegistryClient<tonic::transport::Channel> {
        let registry = RegistryTask::new(
            RegistryConfig {
                min_ttl: Duration::from_millis(100),
                ..RegistryConfig::default()
            },
            AllowList(vec![crate::config::IpNet::parse("127.0.0.0/8").unwrap()]),
            None,
            tokio::time::Instant::now().into_std(),
        )
        .spawn();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(RegistryServer::new(RegistryService::new(registry)))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        RegistryClient::connect(format!("http://{addr}"))
            .await
            .unwrap()
    }

    fn req(name: &str, endpoint: &str, version: &str, ttl_ms: u64) -> pb::RegisterServiceRequest {
        pb::RegisterServiceRequest {
            name: name.into(),
            version: version.into(),
            endpoint: endpoint.into(),
            ttl_ms,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn register_lookup_watch_keepalive_and_deregister_over_grpc() {
        let mut c = start().await;
        let a = c
            .register(req("crm", "127.0.0.1:7000", "1", 0))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(a.ttl_ms, 10_000, "the default TTL");
        let mut watch = c
            .watch(pb::WatchServicesRequest { name: "crm".into() })
            .await
            .unwrap()
            .into_inner();
        let first = watch.message().await.unwrap().unwrap();
        assert_eq!(first.kind(), pb::ServiceEventKind::Added);
        assert_eq!(first.instance.as_ref().unwrap().id, a.instance_id);
        assert_eq!(
            watch.message().await.unwrap().unwrap().kind(),
            pb::ServiceEventKind::Synced
        );

        // Another name is not seen by this watch; a second crm instance is.
        c.register(req("tickets", "127.0.0.1:7001", "", 0))
            .await
            .unwrap();
        let b = c
            .register(req("crm", "http://127.0.0.1:7002", "2", 300))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(b.ttl_ms, 300);
        let ev = watch.message().await.unwrap().unwrap();
        assert_eq!(ev.kind(), pb::ServiceEventKind::Added);
        let inst = ev.instance.unwrap();
        assert_eq!(
            (inst.id.as_str(), inst.endpoint.as_str()),
            (b.instance_id.as_str(), "127.0.0.1:7002")
        );
        assert_eq!(ev.seq, 3, "the registry's change number (tickets was 2)");

        let found = c
            .lookup(pb::LookupServicesRequest {
                name: "crm".into(),
                version: Some("2".into()),
                capability: None,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(found.instances.len(), 1);
        assert!(found.instances[0].expires_in_ms <= 300);

        // b sends no keep-alive: removed as expired within its TTL.
        let ev = tokio::time::timeout(Duration::from_secs(2), watch.message())
            .await
            .expect("expired in time")
            .unwrap()
            .unwrap();
        assert_eq!(ev.kind(), pb::ServiceEventKind::Removed);
        assert_eq!(ev.reason(), pb::RemovalReason::Expired);
        let err = c
            .keep_alive(pb::KeepAliveRequest {
                instance_id: b.instance_id.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);

        let ka = c
            .keep_alive(pb::KeepAliveRequest {
                instance_id: a.instance_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ka.ttl_ms, 10_000);
        c.deregister(pb::DeregisterServiceRequest {
            instance_id: a.instance_id.clone(),
        })
        .await
        .unwrap();
        let ev = watch.message().await.unwrap().unwrap();
        assert_eq!(ev.kind(), pb::ServiceEventKind::Removed);
        assert_eq!(ev.reason(), pb::RemovalReason::Deregistered);
        let all = c
            .lookup(pb::LookupServicesRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(all.instances.len(), 1, "only tickets is left");
    }

    #[tokio::test]
    async fn invalid_requests_get_their_status_codes() {
        let mut c = start().await;
        let e = c
            .register(req("bad name", "127.0.0.1:7000", "", 0))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        let e = c
            .register(req("crm", "10.0.0.1:7000", "", 0))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("network.allow"), "{}", e.message());
        let e = c
            .deregister(pb::DeregisterServiceRequest {
                instance_id: "nope".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
    }
}
