//! The ACD task's command interface: what the gRPC `caruso.v1.Agent` service and the
//! monitor ask of it, and the per-agent event stream it serves.
//!
//! The ACD task owns every agent and queue; others reach it only through an
//! [`AcdHandle`] (a bounded mpsc sender). Each command carries a oneshot for its answer,
//! so a slow caller never blocks the task.

use super::ewt::HandleTimes;
use super::{AgentId, AgentState, CallKey, QueueName};
use crate::ivr::Variables;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};

/// Why the ACD refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcdError {
    /// No agent with this id.
    #[error("unknown agent {0}")]
    UnknownAgent(String),
    /// The command is not valid in the agent's state (nothing was changed).
    #[error("agent {agent} is {state}: cannot {action}")]
    InvalidTransition {
        /// Agent id.
        agent: String,
        /// Its state, e.g. `logged out`.
        state: String,
        /// What was asked, e.g. `set ready`.
        action: String,
    },
    /// A not-ready reason code that the config does not list.
    #[error("unknown not-ready reason {0:?} (configured: {1})")]
    UnknownReason(String, String),
    /// A transfer target that does not exist.
    #[error("unknown transfer target {0}")]
    UnknownTarget(String),
    /// A disposition for a call that is not among the agent's recent calls.
    #[error("{0}")]
    UnknownCall(String),
    /// A disposition code or note that does not validate.
    #[error("{0}")]
    InvalidDisposition(String),
    /// The ACD is shutting down.
    #[error("the ACD is not running")]
    Stopped,
}

/// Where an agent sends a call (blind transfer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTarget {
    /// Another queue.
    Queue(QueueName),
    /// Another agent.
    Agent(AgentId),
    /// A number or SIP URI.
    Number(String),
}

/// An agent's state as the client shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    /// Agent id.
    pub agent: AgentId,
    /// Display name.
    pub name: String,
    /// Current state.
    pub state: AgentState,
    /// Time in the current state.
    pub since: Duration,
    /// Queues the agent serves.
    pub queues: Vec<QueueName>,
}

/// What an agent's event stream carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    /// The agent's state changed.
    State(AgentStatus),
    /// A call is offered (the agent's phone rings).
    Offered {
        /// ACD call key.
        call: CallKey,
        /// Caller number.
        caller_number: String,
        /// Caller display name.
        caller_name: String,
        /// The queue it waited in.
        queue: QueueName,
        /// How long it waited.
        waited: Duration,
        /// Customer data attached by the IVR or a hook.
        data: Variables,
    },
    /// The agent answered; the call is connected.
    Connected {
        /// ACD call key.
        call: CallKey,
    },
    /// The call ended (either side hung up, or it was transferred away).
    Ended {
        /// ACD call key.
        call: CallKey,
    },
    /// A preview campaign shows the agent a contact (the agent is held for it).
    Preview(CallPreview),
    /// A preview offer ended without the agent's decision (it timed out).
    PreviewEnded {
        /// Campaign name.
        campaign: String,
        /// The offer's attempt id.
        attempt: u64,
        /// Why (`timed out`).
        reason: String,
    },
}

/// A contact a preview campaign shows an agent before dialing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPreview {
    /// Campaign name.
    pub campaign: String,
    /// Attempt id (the key of the agent's decision).
    pub attempt: u64,
    /// Contact number (E.164).
    pub number: String,
    /// Contact name.
    pub name: String,
    /// The contact's CSV columns and the campaign's variables.
    pub columns: Variables,
    /// The campaign's script text.
    pub script: String,
    /// How long the agent has to decide.
    pub deadline: Duration,
}

/// One agent in an [`AcdView`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewAgent {
    /// Agent id.
    pub agent: AgentId,
    /// Display name.
    pub name: String,
    /// Current state.
    pub state: AgentState,
    /// Time in the current state at the view's instant.
    pub since: Duration,
    /// Queues the agent serves, in config order.
    pub queues: Vec<QueueName>,
}

/// One queue in an [`AcdView`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewQueue {
    /// Queue name.
    pub queue: QueueName,
    /// Service-level threshold.
    pub service_level: Duration,
    /// Wrap-up after each call (counted in the handle time).
    pub wrap_up: Duration,
    /// Members who have the queue's skills at the configured levels (the agents the
    /// expected wait counts when they are logged in).
    pub staffable: Vec<AgentId>,
    /// Recent handle times (talk + wrap-up) for the expected wait.
    pub handle_times: HandleTimes,
    /// Handle time assumed before the queue has any history.
    pub default_aht: Duration,
}

/// A call waiting in a queue, or connected to an agent, in an [`AcdView`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewCall {
    /// ACD call key.
    pub call: CallKey,
    /// Its queue.
    pub queue: QueueName,
    /// Caller priority.
    pub priority: i32,
    /// Waiting: time in the queue; connected: time since the answer.
    pub elapsed: Duration,
    /// Connected: the agent (`None` while waiting).
    pub agent: Option<AgentId>,
}

/// Everything the ACD holds that the monitor shows, at one instant: answered by the ACD
/// task between two inputs, so it matches the event bus up to `bus_seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcdView {
    /// The bus sequence number of the last event published before the view was taken:
    /// the ACD's events with a higher number happened after it.
    pub bus_seq: u64,
    /// Wall clock of the view, ms since the Unix epoch.
    pub wall_ms: u64,
    /// Agents in id order.
    pub agents: Vec<ViewAgent>,
    /// Queues in config order.
    pub queues: Vec<ViewQueue>,
    /// Calls waiting (including while ringing), by call key.
    pub waiting: Vec<ViewCall>,
    /// Calls connected to an agent, by call key.
    pub connected: Vec<ViewCall>,
}

/// One answer channel.
pub type Reply<T> = oneshot::Sender<Result<T, AcdError>>;

/// Commands to the ACD task.
#[derive(Debug)]
pub enum AcdCommand {
    /// Logs the agent in (state: not ready "login" until it sets ready).
    LogIn {
        /// Agent.
        agent: AgentId,
        /// Answer.
        reply: Reply<AgentStatus>,
    },
    /// Logs the agent out.
    LogOut {
        /// Agent.
        agent: AgentId,
        /// Answer.
        reply: Reply<AgentStatus>,
    },
    /// Ready for calls.
    SetReady {
        /// Agent.
        agent: AgentId,
        /// Answer.
        reply: Reply<AgentStatus>,
    },
    /// Not ready, with a configured reason code.
    SetNotReady {
        /// Agent.
        agent: AgentId,
        /// Reason code.
        reason: String,
        /// Answer.
        reply: Reply<AgentStatus>,
    },
    /// Ends wrap-up early with a disposition code and a note.
    EndWrapUp {
        /// Agent.
        agent: AgentId,
        /// Disposition code.
        disposition: String,
        /// Free text.
        note: String,
        /// Answer.
        reply: Reply<AgentStatus>,
    },
    /// Records (or replaces) the disposition of one of the agent's recent calls, in any
    /// state; answers with the call's key.
    SetDisposition {
        /// Agent.
        agent: AgentId,
        /// The call (`None`: the agent's most recent call).
        call: Option<CallKey>,
        /// Disposition code (not empty).
        disposition: String,
        /// Free text.
        note: String,
        /// Answer.
        reply: Reply<CallKey>,
    },
    /// Blind-transfers the agent's current call.
    Transfer {
        /// Agent.
        agent: AgentId,
        /// Where to.
        target: TransferTarget,
        /// Answer.
        reply: Reply<()>,
    },
    /// The agent's status.
    Status {
        /// Agent.
        agent: AgentId,
        /// Answer.
        reply: Reply<AgentStatus>,
    },
    /// A view of every agent, queue and call for the monitor.
    Snapshot {
        /// Answer.
        reply: Reply<AcdView>,
    },
    /// A stream of the agent's events (starting with its current state).
    Subscribe {
        /// Agent.
        agent: AgentId,
        /// Answer.
        reply: Reply<broadcast::Receiver<AgentEvent>>,
    },
}

/// The address of the ACD task.
#[derive(Debug, Clone)]
pub struct AcdHandle {
    tx: mpsc::Sender<AcdCommand>,
}

impl AcdHandle {
    /// A handle over the task's command channel.
    pub fn new(tx: mpsc::Sender<AcdCommand>) -> AcdHandle {
        AcdHandle { tx }
    }

    /// Sends a command built around a fresh reply channel and awaits the answer.
    pub async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> AcdCommand) -> Result<T, AcdError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| AcdError::Stopped)?;
        rx.await.map_err(|_| AcdError::Stopped)?
    }
}
