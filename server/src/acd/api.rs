//! The ACD task's command interface: what the gRPC `caruso.v1.Agent` service (and later a
//! supervisor API) asks of it, and the per-agent event stream it serves.
//!
//! The ACD task owns every agent and queue; others reach it only through an
//! [`AcdHandle`] (a bounded mpsc sender). Each command carries a oneshot for its answer,
//! so a slow caller never blocks the task.

use super::{AgentId, AgentState, CallKey, QueueName};
use crate::ivr::Variables;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};

/// Why the ACD refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcdError {
    /// No agent with this id (or token).
    #[error("unknown agent {0}")]
    UnknownAgent(String),
    /// The token does not belong to any agent.
    #[error("invalid agent token")]
    BadToken,
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
}

/// One answer channel.
pub type Reply<T> = oneshot::Sender<Result<T, AcdError>>;

/// Commands to the ACD task.
#[derive(Debug)]
pub enum AcdCommand {
    /// Which agent a token belongs to.
    Authenticate {
        /// The agent's token.
        token: String,
        /// Answer: the agent id.
        reply: Reply<AgentId>,
    },
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
