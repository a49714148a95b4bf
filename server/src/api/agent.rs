//! `caruso.v1.Agent`: the agent's program's view of the ACD, over an [`AcdHandle`].
//!
//! Every call carries `authorization: Bearer <token>`; the API's authorization layer
//! ([`super::auth`]) resolves it to a principal with role agent and lets only those
//! through; the call acts for that principal's agent and no other. Errors become
//! statuses in [`ApiError`]'s `From` (the one place).
//!
//! `DecidePreview` (a preview campaign's offer, [`AgentEvent::Preview`] on the stream)
//! goes to the dialer ([`AgentService::with_dialer`]); without one it is UNAVAILABLE.
//!
//! The event stream forwards the agent's broadcast receiver through a small buffer; a
//! client that reads too slowly only makes its own receiver lag (the ACD never waits for
//! it) and then gets `DATA_LOSS` and the end of the stream.

use std::pin::Pin;

use caruso_proto::caruso::v1 as pb;
use caruso_proto::caruso::v1::agent_server;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::{wrappers::ReceiverStream, Stream};
use tonic::{Request, Response, Status};

use super::auth::Role;
use super::ApiError;
use crate::acd::api::{AcdCommand, AcdHandle, AgentEvent, AgentStatus, TransferTarget};
use crate::acd::{AgentId, AgentState};
use crate::dialer::task::{DialerCommand, DialerHandle};

/// Events buffered between the agent's broadcast receiver and the gRPC stream.
const STREAM_BUFFER: usize = 16;

/// Implementation of the `caruso.v1.Agent` gRPC service.
#[derive(Debug, Clone)]
pub struct AgentService {
    acd: AcdHandle,
    /// The dialer, for preview decisions (`None`: `DecidePreview` is UNAVAILABLE).
    dialer: Option<DialerHandle>,
}

impl AgentService {
    /// The service over the ACD task's handle.
    pub fn new(acd: AcdHandle) -> Self {
        Self { acd, dialer: None }
    }

    /// Lets `DecidePreview` reach the dialer.
    pub fn with_dialer(mut self, dialer: Option<DialerHandle>) -> Self {
        self.dialer = dialer;
        self
    }

    /// The agent the request acts for: the one whose token the authorization layer
    /// resolved (never an id from the request body).
    fn agent<T>(&self, request: &Request<T>) -> Result<AgentId, ApiError> {
        let principal = super::auth::principal(request)?;
        principal.agent.clone().ok_or_else(|| {
            ApiError::Auth(super::auth::AuthError::WrongRole {
                path: "caruso.v1.Agent".into(),
                needed: Role::Agent.as_str().into(),
                has: principal.role,
            })
        })
    }

    /// Asks the ACD, for the principal's agent, a command that answers with its status.
    async fn status_command<T>(
        &self,
        request: Request<T>,
        make: impl FnOnce(AgentId, T, crate::acd::api::Reply<AgentStatus>) -> AcdCommand,
    ) -> Result<Response<pb::AgentStatus>, Status> {
        let agent = self.agent(&request)?;
        let body = request.into_inner();
        let status = self
            .acd
            .ask(|reply| make(agent, body, reply))
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(status_out(&status)))
    }
}

/// The wire form of a state: (enum, reason, call).
fn state_out(state: &AgentState) -> (pb::AgentState, String, Option<u64>) {
    match state {
        AgentState::LoggedOut => (pb::AgentState::LoggedOut, String::new(), None),
        AgentState::Ready => (pb::AgentState::Ready, String::new(), None),
        AgentState::Reserved(call) => (pb::AgentState::Reserved, String::new(), Some(*call)),
        AgentState::OnCall(call) => (pb::AgentState::OnCall, String::new(), Some(*call)),
        AgentState::WrapUp => (pb::AgentState::WrapUp, String::new(), None),
        AgentState::NotReady(reason) => (pb::AgentState::NotReady, reason.clone(), None),
    }
}

/// The wire form of an agent's status.
fn status_out(s: &AgentStatus) -> pb::AgentStatus {
    let (state, reason, call) = state_out(&s.state);
    pb::AgentStatus {
        agent: s.agent.to_string(),
        name: s.name.clone(),
        state: state.into(),
        reason,
        call,
        since_ms: u64::try_from(s.since.as_millis()).unwrap_or(u64::MAX),
        queues: s.queues.iter().map(|q| q.to_string()).collect(),
    }
}

/// The wire form of an agent event.
fn event_out(e: &AgentEvent) -> pb::AgentEvent {
    use pb::agent_event::Event;
    let event = match e {
        AgentEvent::State(s) => Event::State(status_out(s)),
        AgentEvent::Offered {
            call,
            caller_number,
            caller_name,
            queue,
            waited,
            data,
        } => Event::Offered(pb::CallOffered {
            call: *call,
            caller_number: caller_number.clone(),
            caller_name: caller_name.clone(),
            queue: queue.to_string(),
            waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            data: data.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }),
        AgentEvent::Connected { call } => Event::Connected(pb::CallConnected { call: *call }),
        AgentEvent::Ended { call } => Event::Ended(pb::CallEnded { call: *call }),
        AgentEvent::PreviewEnded {
            campaign,
            attempt,
            reason,
        } => Event::PreviewEnded(pb::CallPreviewEnded {
            campaign: campaign.clone(),
            attempt: *attempt,
            reason: reason.clone(),
        }),
        AgentEvent::Preview(p) => Event::Preview(pb::CallPreview {
            campaign: p.campaign.clone(),
            attempt: p.attempt,
            number: p.number.clone(),
            name: p.name.clone(),
            columns: p
                .columns
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            script: p.script.clone(),
            deadline_s: u32::try_from(p.deadline.as_secs()).unwrap_or(u32::MAX),
        }),
    };
    pb::AgentEvent { event: Some(event) }
}

/// The transfer target of a request; a missing or empty one is invalid.
fn target_in(req: pb::TransferRequest) -> Result<TransferTarget, ApiError> {
    use pb::transfer_request::Target;
    let target = req
        .target
        .ok_or_else(|| ApiError::InvalidArgument("transfer needs a target".into()))?;
    let (kind, value) = match &target {
        Target::Queue(v) => ("queue", v),
        Target::Agent(v) => ("agent", v),
        Target::Number(v) => ("number", v),
    };
    if value.trim().is_empty() {
        return Err(ApiError::InvalidArgument(format!(
            "transfer {kind} must not be empty"
        )));
    }
    Ok(match target {
        Target::Queue(q) => TransferTarget::Queue(q.into()),
        Target::Agent(a) => TransferTarget::Agent(a.into()),
        Target::Number(n) => TransferTarget::Number(n),
    })
}

/// The status a lagging event stream ends with.
fn lagged(missed: u64) -> Status {
    Status::data_loss(format!(
        "event stream fell behind ({missed} events dropped), re-subscribe"
    ))
}

/// Moves the agent's events to the gRPC stream until the client goes away, the receiver
/// lags (then `DATA_LOSS`) or the ACD closes it (then `UNAVAILABLE`).
async fn forward(
    mut rx: broadcast::Receiver<AgentEvent>,
    tx: mpsc::Sender<Result<pb::AgentEvent, Status>>,
) {
    loop {
        let next = tokio::select! {
            next = rx.recv() => next,
            () = tx.closed() => return,
        };
        let item = match next {
            Ok(event) => Ok(event_out(&event)),
            Err(RecvError::Lagged(missed)) => Err(lagged(missed)),
            Err(RecvError::Closed) => Err(Status::unavailable(
                "the ACD closed the agent's event stream",
            )),
        };
        let last = item.is_err();
        if tx.send(item).await.is_err() || last {
            return;
        }
    }
}

/// The stream type of `Events`.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<pb::AgentEvent, Status>> + Send>>;

#[tonic::async_trait]
impl agent_server::Agent for AgentService {
    async fn log_in(
        &self,
        request: Request<pb::LogInRequest>,
    ) -> Result<Response<pb::AgentStatus>, Status> {
        self.status_command(request, |agent, _, reply| AcdCommand::LogIn {
            agent,
            reply,
        })
        .await
    }

    async fn log_out(
        &self,
        request: Request<pb::LogOutRequest>,
    ) -> Result<Response<pb::AgentStatus>, Status> {
        self.status_command(request, |agent, _, reply| AcdCommand::LogOut {
            agent,
            reply,
        })
        .await
    }

    async fn set_ready(
        &self,
        request: Request<pb::SetReadyRequest>,
    ) -> Result<Response<pb::AgentStatus>, Status> {
        self.status_command(request, |agent, _, reply| AcdCommand::SetReady {
            agent,
            reply,
        })
        .await
    }

    async fn set_not_ready(
        &self,
        request: Request<pb::SetNotReadyRequest>,
    ) -> Result<Response<pb::AgentStatus>, Status> {
        self.status_command(request, |agent, req, reply| AcdCommand::SetNotReady {
            agent,
            reason: req.reason,
            reply,
        })
        .await
    }

    async fn end_wrap_up(
        &self,
        request: Request<pb::EndWrapUpRequest>,
    ) -> Result<Response<pb::AgentStatus>, Status> {
        self.status_command(request, |agent, req, reply| AcdCommand::EndWrapUp {
            agent,
            disposition: req.disposition,
            note: req.note,
            reply,
        })
        .await
    }

    async fn set_disposition(
        &self,
        request: Request<pb::SetDispositionRequest>,
    ) -> Result<Response<pb::SetDispositionResponse>, Status> {
        let agent = self.agent(&request)?;
        let r = request.into_inner();
        let call = self
            .acd
            .ask(|reply| AcdCommand::SetDisposition {
                agent,
                call: r.call,
                disposition: r.disposition,
                note: r.note,
                reply,
            })
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::SetDispositionResponse { call }))
    }

    async fn transfer(
        &self,
        request: Request<pb::TransferRequest>,
    ) -> Result<Response<pb::TransferResponse>, Status> {
        let agent = self.agent(&request)?;
        let target = target_in(request.into_inner())?;
        self.acd
            .ask(|reply| AcdCommand::Transfer {
                agent,
                target,
                reply,
            })
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::TransferResponse {}))
    }

    async fn get_status(
        &self,
        request: Request<pb::GetAgentStatusRequest>,
    ) -> Result<Response<pb::AgentStatus>, Status> {
        self.status_command(request, |agent, _, reply| AcdCommand::Status {
            agent,
            reply,
        })
        .await
    }

    async fn decide_preview(
        &self,
        request: Request<pb::DecidePreviewRequest>,
    ) -> Result<Response<pb::DecidePreviewResponse>, Status> {
        let agent = self.agent(&request)?;
        let req = request.into_inner();
        let Some(dialer) = &self.dialer else {
            return Err(Status::unavailable("the server runs no dialer"));
        };
        dialer
            .ask(|reply| DialerCommand::PreviewDecision {
                agent: agent.to_string(),
                campaign: (!req.campaign.is_empty()).then_some(req.campaign),
                attempt: req.attempt,
                accept: req.accept,
                reply,
            })
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::DecidePreviewResponse {}))
    }

    type EventsStream = EventStream;

    async fn events(
        &self,
        request: Request<pb::AgentEventsRequest>,
    ) -> Result<Response<Self::EventsStream>, Status> {
        let agent = self.agent(&request)?;
        // Subscribe first, then read the status: nothing between the two is lost. The
        // ACD answers commands in order, so every event already buffered when the status
        // arrives happened before it; their State events are stale (the status is newer)
        // and dropped, the call events are kept (they carry what a status does not).
        let a = agent.clone();
        let mut rx = self
            .acd
            .ask(|reply| AcdCommand::Subscribe { agent: a, reply })
            .await
            .map_err(ApiError::from)?;
        let status = self
            .acd
            .ask(|reply| AcdCommand::Status { agent, reply })
            .await
            .map_err(ApiError::from)?;
        let (tx, out) = mpsc::channel(STREAM_BUFFER);
        let mut first = vec![Ok(event_out(&AgentEvent::State(status)))];
        loop {
            match rx.try_recv() {
                Ok(AgentEvent::State(_)) => {}
                Ok(event) => first.push(Ok(event_out(&event))),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Lagged(missed)) => {
                    first.push(Err(lagged(missed)));
                    break;
                }
                Err(TryRecvError::Closed) => {
                    first.push(Err(Status::unavailable(
                        "the ACD closed the agent's event stream",
                    )));
                    break;
                }
            }
        }
        tokio::spawn(async move {
            let mut ended = false;
            for item in first {
                ended = item.is_err();
                if tx.send(item).await.is_err() {
                    return;
                }
            }
            if !ended {
                forward(rx, tx).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acd::api::AcdError;
    use crate::ivr::Variables;
    use caruso_proto::caruso::v1::agent_client::AgentClient;
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tokio::net::TcpListener;
    use tonic::transport::Channel;
    use tonic::Code;

    /// One agent of the fake ACD.
    struct FakeAgent {
        name: String,
        state: AgentState,
        events: broadcast::Sender<AgentEvent>,
    }

    /// A tiny in-memory ACD answering [`AcdCommand`]s like the real task's contract says.
    struct FakeAcd {
        agents: HashMap<AgentId, FakeAgent>,
        reasons: Vec<&'static str>,
        queues: Vec<&'static str>,
        transfers: Arc<Mutex<Vec<(AgentId, TransferTarget)>>>,
    }

    impl FakeAcd {
        fn status(&self, id: &AgentId) -> Result<AgentStatus, AcdError> {
            let a = self
                .agents
                .get(id)
                .ok_or_else(|| AcdError::UnknownAgent(id.to_string()))?;
            Ok(AgentStatus {
                agent: id.clone(),
                name: a.name.clone(),
                state: a.state.clone(),
                since: Duration::from_millis(1500),
                queues: self.queues.iter().map(|q| (*q).into()).collect(),
            })
        }

        /// Moves `id` to `to` when `allowed(from)`, publishing the new state.
        fn change(
            &mut self,
            id: &AgentId,
            action: &str,
            allowed: impl Fn(&AgentState) -> bool,
            to: AgentState,
        ) -> Result<AgentStatus, AcdError> {
            let a = self
                .agents
                .get_mut(id)
                .ok_or_else(|| AcdError::UnknownAgent(id.to_string()))?;
            if !allowed(&a.state) {
                return Err(AcdError::InvalidTransition {
                    agent: id.to_string(),
                    state: format!("{:?}", a.state),
                    action: action.into(),
                });
            }
            a.state = to;
            let status = self.status(id)?;
            let _ = self.agents[id]
                .events
                .send(AgentEvent::State(status.clone()));
            Ok(status)
        }

        fn handle(&mut self, cmd: AcdCommand) {
            use AgentState::*;
            let logged_in = |s: &AgentState| !matches!(s, LoggedOut);
            match cmd {
                AcdCommand::LogIn { agent, reply } => {
                    let to = NotReady("login".into());
                    let r = self.change(&agent, "log in", |s| *s == LoggedOut, to);
                    let _ = reply.send(r);
                }
                AcdCommand::LogOut { agent, reply } => {
                    let ok = |s: &AgentState| matches!(s, Ready | NotReady(_) | WrapUp);
                    let _ = reply.send(self.change(&agent, "log out", ok, LoggedOut));
                }
                AcdCommand::SetReady { agent, reply } => {
                    let ok = |s: &AgentState| matches!(s, NotReady(_) | WrapUp);
                    let _ = reply.send(self.change(&agent, "set ready", ok, Ready));
                }
                AcdCommand::SetNotReady {
                    agent,
                    reason,
                    reply,
                } => {
                    let r = if self.reasons.contains(&reason.as_str()) {
                        self.change(&agent, "set not ready", logged_in, NotReady(reason))
                    } else {
                        Err(AcdError::UnknownReason(reason, self.reasons.join(", ")))
                    };
                    let _ = reply.send(r);
                }
                AcdCommand::EndWrapUp { agent, reply, .. } => {
                    let ok = |s: &AgentState| *s == WrapUp;
                    let _ = reply.send(self.change(&agent, "end wrap-up", ok, Ready));
                }
                AcdCommand::Transfer {
                    agent,
                    target,
                    reply,
                } => {
                    let r = match &target {
                        TransferTarget::Queue(q) if !self.queues.contains(&&**q) => {
                            Err(AcdError::UnknownTarget(format!("queue {q}")))
                        }
                        _ => self
                            .change(&agent, "transfer", |s| matches!(s, OnCall(_)), WrapUp)
                            .map(|_| {
                                self.transfers.lock().unwrap().push((agent, target));
                            }),
                    };
                    let _ = reply.send(r);
                }
                AcdCommand::Status { agent, reply } => {
                    let _ = reply.send(self.status(&agent));
                }
                AcdCommand::Subscribe { agent, reply } => {
                    let r = self.status(&agent).map(|status| {
                        let events = &self.agents[&agent].events;
                        let rx = events.subscribe();
                        // Like the contract's "starting with its current state": the
                        // service must not show it twice.
                        let _ = events.send(AgentEvent::State(status));
                        rx
                    });
                    let _ = reply.send(r);
                }
                // Like the ACD: an agent's recent calls are the one it is on.
                AcdCommand::SetDisposition {
                    agent,
                    call,
                    disposition,
                    reply,
                    ..
                } => {
                    let r = match (self.status(&agent), call) {
                        (Err(e), _) => Err(e),
                        _ if disposition.is_empty() => {
                            Err(AcdError::InvalidDisposition("empty disposition".into()))
                        }
                        (
                            Ok(AgentStatus {
                                state: OnCall(c), ..
                            }),
                            None,
                        ) => Ok(c),
                        (
                            Ok(AgentStatus {
                                state: OnCall(c), ..
                            }),
                            Some(k),
                        ) if k == c => Ok(c),
                        (Ok(_), k) => Err(AcdError::UnknownCall(format!(
                            "no recent call {k:?} for agent {agent}"
                        ))),
                    };
                    let _ = reply.send(r);
                }
                // The monitor's view: not used by the Agent service.
                AcdCommand::Snapshot { .. } => {}
            }
        }
    }

    struct Fixture {
        addr: SocketAddr,
        /// Each agent's event sender (to inject ACD events).
        events: HashMap<&'static str, broadcast::Sender<AgentEvent>>,
        transfers: Arc<Mutex<Vec<(AgentId, TransferTarget)>>>,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            if let Some(s) = self.stop.take() {
                let _ = s.send(());
            }
        }
    }

    /// Agents alice (token "t-alice", logged out) and bob ("t-bob", on call 41);
    /// each agent's broadcast keeps `capacity` events.
    async fn start(capacity: usize) -> Fixture {
        let mut agents = HashMap::new();
        let mut events = HashMap::new();
        for (id, state) in [
            ("alice", AgentState::LoggedOut),
            ("bob", AgentState::OnCall(41)),
        ] {
            let (tx, _) = broadcast::channel(capacity);
            events.insert(id, tx.clone());
            agents.insert(
                AgentId::from(id),
                FakeAgent {
                    name: format!("{id} Example"),
                    state,
                    events: tx,
                },
            );
        }
        let transfers = Arc::new(Mutex::new(Vec::new()));
        let mut acd = FakeAcd {
            agents,
            reasons: vec!["break", "lunch"],
            queues: vec!["sales", "support"],
            transfers: transfers.clone(),
        };
        let (tx, mut rx) = mpsc::channel(8);
        tokio::spawn(async move {
            while let Some(cmd) = rx.recv().await {
                acd.handle(cmd);
            }
        });
        let mut fx = serve_with(AcdHandle::new(tx)).await;
        fx.events = events;
        fx.transfers = transfers;
        fx
    }

    async fn serve_with(acd: AcdHandle) -> Fixture {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stats_tx, stats_rx) =
            tokio::sync::watch::channel(super::super::ServerStats::default());
        std::mem::forget(stats_tx);
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let security = super::super::ApiSecurity::new(super::super::auth::test_policy(&[
            ("t-alice", "alice"),
            ("t-bob", "bob"),
        ]));
        tokio::spawn(super::super::serve_on(
            listener,
            crate::api::ApiServices {
                acd: Some(acd),
                ..crate::api::ApiServices::new(stats_rx)
            },
            security,
            async {
                let _ = stop_rx.await;
            },
        ));
        Fixture {
            addr,
            events: HashMap::new(),
            transfers: Arc::default(),
            stop: Some(stop),
        }
    }

    async fn client(fx: &Fixture) -> AgentClient<Channel> {
        AgentClient::connect(format!("http://{}", fx.addr))
            .await
            .expect("connect")
    }

    /// A request carrying `authorization: Bearer <token>`.
    fn req<T>(token: &str, body: T) -> Request<T> {
        let mut r = Request::new(body);
        r.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        r
    }

    fn err<T: std::fmt::Debug>(r: Result<Response<T>, Status>) -> Status {
        r.expect_err("expected an error")
    }

    #[tokio::test]
    async fn calls_without_a_valid_token_are_unauthenticated() {
        let fx = start(16).await;
        let mut c = client(&fx).await;
        let s = err(c.get_status(pb::GetAgentStatusRequest {}).await);
        assert_eq!(s.code(), Code::Unauthenticated);
        assert!(s.message().contains("Bearer"), "{}", s.message());

        let mut basic = Request::new(pb::LogInRequest {});
        basic
            .metadata_mut()
            .insert("authorization", "Basic dC1hbGljZQ==".parse().unwrap());
        assert_eq!(err(c.log_in(basic).await).code(), Code::Unauthenticated);
        assert_eq!(
            err(c.log_in(req("Bearer", pb::LogInRequest {})).await).code(),
            Code::Unauthenticated
        );
        let s = err(c.log_in(req("t-mallory", pb::LogInRequest {})).await);
        assert_eq!(s.code(), Code::Unauthenticated);
        assert!(s.message().contains("unknown token"), "{}", s.message());
        assert!(!s.message().contains("t-mallory"), "{}", s.message());
        // Tokens of other roles are known but may not act as an agent.
        for token in ["admin-secret", "supervisor-secret", "integrator-secret"] {
            let s = err(c.get_status(req(token, pb::GetAgentStatusRequest {})).await);
            assert_eq!(s.code(), Code::PermissionDenied, "{token}");
            assert!(s.message().contains("needs role agent"), "{}", s.message());
        }
        let s = err(c.events(req("t-mallory", pb::AgentEventsRequest {})).await);
        assert_eq!(s.code(), Code::Unauthenticated);

        // A token acts for its own agent only.
        let bob = c
            .get_status(req("t-bob", pb::GetAgentStatusRequest {}))
            .await
            .expect("bob")
            .into_inner();
        assert_eq!(
            (bob.agent.as_str(), bob.state()),
            ("bob", pb::AgentState::OnCall)
        );
        assert_eq!(bob.call, Some(41));
        let mut lower = Request::new(pb::GetAgentStatusRequest {});
        lower
            .metadata_mut()
            .insert("authorization", "bearer  t-alice ".parse().unwrap());
        let alice = c.get_status(lower).await.expect("alice").into_inner();
        assert_eq!(alice.agent, "alice");
        assert_eq!(alice.name, "alice Example");
        assert_eq!(alice.state(), pb::AgentState::LoggedOut);
        assert_eq!(alice.call, None);
        assert_eq!(alice.since_ms, 1500);
        assert_eq!(alice.queues, ["sales", "support"]);
    }

    #[tokio::test]
    async fn set_disposition_acts_for_the_tokens_agent_and_maps_errors() {
        let fx = start(16).await;
        let mut c = client(&fx).await;
        let set = |call: Option<u64>, code: &str| pb::SetDispositionRequest {
            call,
            disposition: code.into(),
            note: "n".into(),
        };
        let r = c
            .set_disposition(req("t-bob", set(None, "sale")))
            .await
            .expect("bob's current call")
            .into_inner();
        assert_eq!(r.call, 41);
        let r = c
            .set_disposition(req("t-bob", set(Some(41), "no_sale")))
            .await
            .expect("by id")
            .into_inner();
        assert_eq!(r.call, 41);
        let s = err(c.set_disposition(req("t-bob", set(Some(7), "sale"))).await);
        assert_eq!(s.code(), Code::NotFound, "{}", s.message());
        // alice's token cannot reach bob's call.
        let s = err(c
            .set_disposition(req("t-alice", set(Some(41), "sale")))
            .await);
        assert_eq!(s.code(), Code::NotFound, "{}", s.message());
        let s = err(c.set_disposition(req("t-bob", set(None, ""))).await);
        assert_eq!(s.code(), Code::InvalidArgument, "{}", s.message());
        let s = err(c
            .set_disposition(req("supervisor-secret", set(None, "sale")))
            .await);
        assert_eq!(s.code(), Code::PermissionDenied);
    }

    #[tokio::test]
    async fn state_changes_round_trip() {
        let fx = start(16).await;
        let mut c = client(&fx).await;
        let s = c
            .log_in(req("t-alice", pb::LogInRequest {}))
            .await
            .expect("log in")
            .into_inner();
        assert_eq!(
            (s.state(), s.reason.as_str()),
            (pb::AgentState::NotReady, "login")
        );
        let s = c
            .set_ready(req("t-alice", pb::SetReadyRequest {}))
            .await
            .expect("ready")
            .into_inner();
        assert_eq!((s.state(), s.reason.as_str()), (pb::AgentState::Ready, ""));
        let s = c
            .set_not_ready(req(
                "t-alice",
                pb::SetNotReadyRequest {
                    reason: "lunch".into(),
                },
            ))
            .await
            .expect("not ready")
            .into_inner();
        assert_eq!(
            (s.state(), s.reason.as_str()),
            (pb::AgentState::NotReady, "lunch")
        );
        let s = c
            .get_status(req("t-alice", pb::GetAgentStatusRequest {}))
            .await
            .expect("status")
            .into_inner();
        assert_eq!(
            (s.state(), s.reason.as_str()),
            (pb::AgentState::NotReady, "lunch")
        );
        let s = c
            .log_out(req("t-alice", pb::LogOutRequest {}))
            .await
            .expect("log out")
            .into_inner();
        assert_eq!(s.state(), pb::AgentState::LoggedOut);
        // bob was not touched.
        let bob = c
            .get_status(req("t-bob", pb::GetAgentStatusRequest {}))
            .await
            .expect("bob")
            .into_inner();
        assert_eq!(bob.state(), pb::AgentState::OnCall);
    }

    #[tokio::test]
    async fn acd_errors_map_to_status_codes() {
        let fx = start(16).await;
        let mut c = client(&fx).await;
        let s = err(c.set_ready(req("t-alice", pb::SetReadyRequest {})).await);
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert!(s.message().contains("cannot set ready"), "{}", s.message());

        c.log_in(req("t-alice", pb::LogInRequest {}))
            .await
            .expect("log in");
        let s = err(c
            .set_not_ready(req(
                "t-alice",
                pb::SetNotReadyRequest {
                    reason: "nap".into(),
                },
            ))
            .await);
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert!(
            s.message().contains("\"nap\"") && s.message().contains("break, lunch"),
            "{}",
            s.message()
        );
        let s = err(c
            .end_wrap_up(req(
                "t-alice",
                pb::EndWrapUpRequest {
                    disposition: "sale".into(),
                    note: String::new(),
                },
            ))
            .await);
        assert_eq!(s.code(), Code::FailedPrecondition);

        use pb::transfer_request::Target;
        let transfer = |target| req("t-bob", pb::TransferRequest { target });
        let s = err(c
            .transfer(transfer(Some(Target::Queue("billing".into()))))
            .await);
        assert_eq!(s.code(), Code::NotFound);
        assert!(s.message().contains("billing"), "{}", s.message());
        assert_eq!(
            err(c.transfer(transfer(None)).await).code(),
            Code::InvalidArgument
        );
        assert_eq!(
            err(c.transfer(transfer(Some(Target::Number(" ".into())))).await).code(),
            Code::InvalidArgument
        );
        assert!(fx.transfers.lock().unwrap().is_empty());
        c.transfer(transfer(Some(Target::Queue("support".into()))))
            .await
            .expect("transfer");
        assert_eq!(
            *fx.transfers.lock().unwrap(),
            [("bob".into(), TransferTarget::Queue("support".into()))]
        );

        // The ACD is gone: UNAVAILABLE.
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let gone = serve_with(AcdHandle::new(tx)).await;
        let mut c = client(&gone).await;
        let s = err(c
            .get_status(req("t-alice", pb::GetAgentStatusRequest {}))
            .await);
        assert_eq!(s.code(), Code::Unavailable);
    }

    #[test]
    fn every_acd_error_has_its_code() {
        let code = |e: AcdError| tonic::Status::from(ApiError::from(e)).code();
        assert_eq!(code(AcdError::UnknownAgent("x".into())), Code::NotFound);
        assert_eq!(code(AcdError::UnknownTarget("x".into())), Code::NotFound);
        assert_eq!(
            code(AcdError::UnknownReason("x".into(), "a".into())),
            Code::FailedPrecondition
        );
        assert_eq!(
            code(AcdError::InvalidTransition {
                agent: "a".into(),
                state: "ready".into(),
                action: "log in".into()
            }),
            Code::FailedPrecondition
        );
        assert_eq!(code(AcdError::Stopped), Code::Unavailable);
    }

    async fn next(stream: &mut tonic::Streaming<pb::AgentEvent>) -> pb::agent_event::Event {
        tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("an event within 5 s")
            .expect("no error")
            .expect("stream open")
            .event
            .expect("event set")
    }

    #[tokio::test]
    async fn event_stream_starts_with_the_state_then_delivers_calls() {
        use pb::agent_event::Event;
        let fx = start(16).await;
        let mut c = client(&fx).await;
        c.log_in(req("t-alice", pb::LogInRequest {}))
            .await
            .expect("log in");
        let mut stream = c
            .events(req("t-alice", pb::AgentEventsRequest {}))
            .await
            .expect("events")
            .into_inner();
        match next(&mut stream).await {
            Event::State(s) => {
                assert_eq!(
                    (s.state(), s.reason.as_str()),
                    (pb::AgentState::NotReady, "login")
                )
            }
            other => panic!("first must be the state: {other:?}"),
        }

        c.set_ready(req("t-alice", pb::SetReadyRequest {}))
            .await
            .expect("ready");
        // The fake's subscribe-time state copy is not shown twice: next is the change.
        match next(&mut stream).await {
            Event::State(s) => assert_eq!(s.state(), pb::AgentState::Ready),
            other => panic!("expected ready: {other:?}"),
        }

        let mut data = Variables::new();
        data.insert("account".into(), "A-1007".into());
        data.insert("language".into(), "fr".into());
        let tx = &fx.events["alice"];
        tx.send(AgentEvent::Offered {
            call: 7,
            caller_number: "5551000".into(),
            caller_name: "Bob Caller".into(),
            queue: "sales".into(),
            waited: Duration::from_millis(12_345),
            data,
        })
        .expect("subscriber");
        tx.send(AgentEvent::Connected { call: 7 }).expect("sub");
        tx.send(AgentEvent::Ended { call: 7 }).expect("sub");
        match next(&mut stream).await {
            Event::Offered(o) => {
                assert_eq!(o.call, 7);
                assert_eq!(o.caller_number, "5551000");
                assert_eq!(o.caller_name, "Bob Caller");
                assert_eq!(o.queue, "sales");
                assert_eq!(o.waited_ms, 12_345);
                assert_eq!(o.data.len(), 2);
                assert_eq!(o.data["account"], "A-1007");
                assert_eq!(o.data["language"], "fr");
            }
            other => panic!("expected offered: {other:?}"),
        }
        assert_eq!(
            next(&mut stream).await,
            Event::Connected(pb::CallConnected { call: 7 })
        );
        assert_eq!(
            next(&mut stream).await,
            Event::Ended(pb::CallEnded { call: 7 })
        );

        // Another agent's stream does not see alice's events.
        let mut bob = c
            .events(req("t-bob", pb::AgentEventsRequest {}))
            .await
            .expect("bob events")
            .into_inner();
        match next(&mut bob).await {
            Event::State(s) => assert_eq!((s.agent.as_str(), s.call), ("bob", Some(41))),
            other => panic!("{other:?}"),
        }
        tx.send(AgentEvent::Ended { call: 8 }).expect("sub");
        assert_eq!(
            next(&mut stream).await,
            Event::Ended(pb::CallEnded { call: 8 })
        );
        let quiet = tokio::time::timeout(Duration::from_millis(100), bob.message()).await;
        assert!(quiet.is_err(), "bob got alice's event: {quiet:?}");
    }

    #[tokio::test]
    async fn a_preview_reaches_the_stream_and_decisions_need_a_dialer() {
        use pb::agent_event::Event;
        let fx = start(16).await;
        let mut c = client(&fx).await;
        c.log_in(req("t-alice", pb::LogInRequest {}))
            .await
            .expect("log in");
        let mut stream = c
            .events(req("t-alice", pb::AgentEventsRequest {}))
            .await
            .expect("events")
            .into_inner();
        assert!(matches!(next(&mut stream).await, Event::State(_)));
        let mut columns = Variables::new();
        columns.insert("plan".into(), "gold".into());
        fx.events["alice"]
            .send(AgentEvent::Preview(crate::acd::api::CallPreview {
                campaign: "demo".into(),
                attempt: 9,
                number: "+48601000001".into(),
                name: "Anna".into(),
                columns,
                script: "Good morning".into(),
                deadline: Duration::from_secs(30),
            }))
            .expect("subscriber");
        match next(&mut stream).await {
            Event::Preview(p) => {
                assert_eq!(
                    (p.campaign.as_str(), p.attempt, p.number.as_str()),
                    ("demo", 9, "+48601000001")
                );
                assert_eq!(
                    (p.name.as_str(), p.script.as_str()),
                    ("Anna", "Good morning")
                );
                assert_eq!(p.columns.get("plan").map(String::as_str), Some("gold"));
                assert_eq!(p.deadline_s, 30);
            }
            other => panic!("expected the preview: {other:?}"),
        }
        // This server runs no dialer.
        let e = err(c
            .decide_preview(req(
                "t-alice",
                pb::DecidePreviewRequest {
                    attempt: 9,
                    accept: true,
                    campaign: String::new(),
                },
            ))
            .await);
        assert_eq!(e.code(), Code::Unavailable);
    }

    #[tokio::test]
    async fn a_lagging_stream_ends_with_data_loss_without_blocking_the_acd() {
        let fx = start(4).await;
        let mut c = client(&fx).await;
        let mut stream = c
            .events(req("t-alice", pb::AgentEventsRequest {}))
            .await
            .expect("events")
            .into_inner();
        assert!(matches!(
            next(&mut stream).await,
            pb::agent_event::Event::State(_)
        ));
        // Far more than the broadcast keeps, sent without yielding: the forwarder cannot
        // keep up, and the sender never waits.
        let tx = &fx.events["alice"];
        for call in 0..1000 {
            tx.send(AgentEvent::Ended { call }).expect("subscriber");
        }
        let status = loop {
            match tokio::time::timeout(Duration::from_secs(5), stream.message())
                .await
                .expect("an answer within 5 s")
            {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("stream ended without a status"),
                Err(status) => break status,
            }
        };
        assert_eq!(status.code(), Code::DataLoss);
        assert!(
            status.message().contains("re-subscribe"),
            "{}",
            status.message()
        );
        assert!(matches!(stream.message().await, Ok(None) | Err(_)));
        // The ACD still answers, and a new stream starts again from the state.
        c.log_in(req("t-alice", pb::LogInRequest {}))
            .await
            .expect("ACD still running");
        let mut again = c
            .events(req("t-alice", pb::AgentEventsRequest {}))
            .await
            .expect("re-subscribe")
            .into_inner();
        match next(&mut again).await {
            pb::agent_event::Event::State(s) => assert_eq!(s.state(), pb::AgentState::NotReady),
            other => panic!("{other:?}"),
        }
    }
}
