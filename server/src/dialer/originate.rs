//! The contract between a campaign's driver task (which decides whom to dial) and the
//! call side that places each dial: the driver hands an [`Originate`] to an
//! [`Originator`] and reads the dial's [`OriginateEvent`]s until `Done`.
//!
//! ```text
//! campaign task --Originate--> Originator (call side: UAC leg via the trunk, RTP, AMD)
//!      ^                          | Ringing, Answered{amd}, Connected{agent, call}, Done(result)
//!      +--------------------------+
//! ```
//!
//! The call side owns everything after the dial starts: ring timeout (from the request,
//! at least 15 s), AMD on the answered audio, the 2 s rule (a person with no agent within
//! `abandon_after` of the answer hears the safe-harbor prompt and the result is
//! `Abandoned`), the machine action, and bridging the person to an agent through the ACD
//! (the call key in `Connected` lets the driver match the agent's wrap-up disposition).

use super::amd::AmdOutcome;
use super::campaign::{CallResult, DialRequest};
use super::config::{AgentlessAction, MachineAction};
use crate::acd::{AgentId, CallKey, QueueName};
use std::time::Duration;
use tokio::sync::mpsc;

/// Where a person (AMD human or unknown) goes once the call is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HumanRoute {
    /// The agent reserved for this dial (preview, progressive): offered directly.
    Agent(AgentId),
    /// The campaign's queue (predictive): the first fitting agent takes it.
    Queue(QueueName),
    /// Agentless: a prompt or an IVR flow plays to the person.
    Agentless(AgentlessAction),
}

/// One dial to place.
#[derive(Debug, Clone)]
pub struct Originate {
    /// What the campaign decided (number, trunk, caller id, ring timeout, AMD, variables).
    pub request: DialRequest,
    /// Where a person goes.
    pub on_human: HumanRoute,
    /// What a machine gets.
    pub on_machine: MachineAction,
    /// Prompt played to a person left without an agent (names the company and a number).
    pub safe_harbor: Option<String>,
    /// How long a person may wait for an agent after the answer before it counts as
    /// abandoned (2 s by the rule).
    pub abandon_after: Duration,
}

/// What happens to a dial, in order; `Done` is always last.
#[derive(Debug, Clone, PartialEq)]
pub enum OriginateEvent {
    /// The contact's phone rings (180/183).
    Ringing,
    /// The contact answered; `amd` is the verdict once known (`None` without AMD).
    Answered {
        /// AMD verdict.
        amd: Option<AmdOutcome>,
    },
    /// The person is talking to an agent.
    Connected {
        /// Agent id.
        agent: AgentId,
        /// ACD call key (the agent's wrap-up disposition names it).
        call: CallKey,
    },
    /// No agent took the person within the abandon time: the call is abandoned now (the
    /// safe-harbor prompt plays; `Done(Abandoned)` follows when the call ends). The
    /// campaign counts the abandon in its pacing window at once.
    Abandoned,
    /// The dial ended with this result (report it to the campaign).
    Done(CallResult),
}

/// Places dials (implemented by the call side; a fake in the driver's tests).
pub trait Originator: Send + Sync + 'static {
    /// Starts a dial; its events arrive on the returned channel, ending with `Done`.
    /// Never blocks; a dial that cannot start reports `Done(Failed { reason })`.
    fn originate(&self, dial: Originate) -> mpsc::Receiver<OriginateEvent>;
}
