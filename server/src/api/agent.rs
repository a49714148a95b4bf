//! `caruso.v1.Agent`: the agent's program's view of the ACD, over an [`AcdHandle`].
//!
//! Every call carries `authorization: Bearer <token>`; the token is resolved by the ACD
//! ([`AcdCommand::Authenticate`]) to the one agent the call acts for. Errors become
//! statuses in [`ApiError`]'s `From` (the one place).
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

use super::ApiError;
use crate::acd::api::{AcdCommand, AcdHandle, AgentEvent, AgentStatus, TransferTarget};
use crate::acd::{AgentId, AgentState};

/// Events buffered between the agent's broadcast receiver and the gRPC stream.
const STREAM_BUFFER: usize = 16;

/// Implementation of the `caruso.v1.Agent` gRPC service.
#[derive(Debug, Clone)]
pub struct AgentService {
    acd: AcdHandle,
}

impl AgentService {
    /// The service over the ACD task's handle.
    pub fn new(acd: AcdHandle) -> Self {
        Self { acd }
    }

    /// The agent the request's `authorization: Bearer <token>` metadata names.
    async fn agent<T>(&self, request: &Request<T>) -> Result<AgentId, ApiError> {
        let token = bearer_token(request)?;
        Ok(self
            .acd
            .ask(|reply| AcdCommand::Authenticate { token, reply })
            .await?)
    }

    /// Authenticates, then asks the ACD a command that answers with the agent's status.
    async fn status_command<T>(
        &self,
        request: Request<T>,
        make: impl FnOnce(AgentId, T, crate::acd::api::Reply<AgentStatus>) -> AcdCommand,
    ) -> Result<Response<pb::AgentStatus>, Status> {
        let agent = self.agent(&request).await?;
        let body = request.into_inner();
        let status = self
            .acd
            .ask(|reply| make(agent, body, reply))
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(status_out(&status)))
    }
}

/// The token of `authorization: Bearer <token>` (scheme case-insensitive).
fn bearer_token<T>(request: &Request<T>) -> Result<String, ApiError> {
    let value = request
        .metadata()
        .get("authorization")
        .ok_or_else(|| {
            ApiError::Unauthenticated("missing `authorization: Bearer <token>` metadata".into())
        })?
        .to_str()
        .map_err(|_| ApiError::Unauthenticated("authorization metadata is not text".into()))?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value, ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::Unauthenticated(
            "authorization metadata must be `Bearer <token>`".into(),
        ));
    }
    Ok(token.to_owned())
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
        self.status_command(request, |agent, _, reply| AcdCommand::LogIn { agent, reply })
            .await
    }

    async fn log_out(
        &self,
        request: Request<pb::LogOutRequest>,
    ) -> Result<Response<pb::AgentStatus>, Status> {
        self.status_command(request, |agent, _, reply| AcdCommand::LogOut { agent, reply })
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

    async fn transfer(
        &self,
        request: Request<pb::TransferRequest>,
    ) -> Result<Response<pb::TransferResponse>, Status> {
        let agent = self.agent(&request).await?;
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
        self.status_command(request, |agent, _, reply| AcdCommand::Status { agent, reply })
            .await
    }

    type EventsStream = EventStream;

    async fn events(
        &self,
        request: Request<pb::AgentEventsRequest>,
    ) -> Result<Response<Self::EventsStream>, Status> {
        let agent = self.agent(&request).await?;
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
