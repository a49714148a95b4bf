//! ACD: agents, skills, queues and the router that pairs waiting calls with agents.
//!
//! Shared vocabulary of the ACD pieces (this file is the contract between them):
//! - `config`: `[acd]`, `[[acd.queues]]`, `[[acd.agents]]`, `[acd.reasons]` parsed into
//!   [`QueueConfig`] / [`AgentConfig`];
//! - `agent`: the sans-IO agent state machine ([`AgentState`] transitions, missed offers,
//!   wrap-up) with its persistence record;
//! - `router`: `route(&AcdSnapshot) -> Vec<Assignment>`, a pure function (no IO, no clock,
//!   randomness from the snapshot's seed);
//! - the ACD task (IO) owns queues and agents, builds snapshots on every relevant event
//!   (agent ready, call queued, timer) and acts on assignments.
//!
//! Times inside snapshots are `std::time::Instant`s given by the caller (`now` is part of
//! the snapshot), so tests use a hand-made clock.

pub mod agent;
pub mod api;
pub mod config;
pub mod ewt;
pub mod router;
pub mod task;

use std::sync::Arc;
use std::time::{Duration, Instant};

/// An agent's id from the config (`alice`).
pub type AgentId = Arc<str>;
/// A queue's name from the config (`sales`).
pub type QueueName = Arc<str>;
/// A skill's name (`english`, `billing`).
pub type SkillName = Arc<str>;
/// The ACD's id of a waiting call (unique for the server's life).
pub type CallKey = u64;

/// A skill an agent has, with proficiency 1 (lowest) ..= 5 (highest).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Skill {
    /// Skill name.
    pub name: SkillName,
    /// Proficiency 1..=5.
    pub level: u8,
}

/// A skill a queue (or caller) requires, at a minimum level 1..=5.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    /// Skill name.
    pub skill: SkillName,
    /// Lowest acceptable proficiency.
    pub min_level: u8,
}

/// One step of skill relaxation: after `after` of waiting, requirements change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relaxation {
    /// Wait time from which the step applies.
    pub after: Duration,
    /// What changes.
    pub change: RelaxChange,
}

/// How a relaxation step changes the requirements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelaxChange {
    /// Every requirement accepts this level or higher (levels only go down).
    MinLevel(u8),
    /// This skill is no longer required.
    DropSkill(SkillName),
}

/// How a queue picks among eligible agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// The agent idle (ready) the longest (default).
    #[default]
    LongestIdle,
    /// The agent with the least talk time today.
    LeastTalkTime,
    /// The agent who answered the fewest calls today.
    FewestCalls,
    /// Agents in turn, continuing after the last one offered.
    RoundRobin,
    /// Every eligible agent rings at once; the first to answer takes the call.
    RingAll,
    /// Agents in the queue's configured order, the first eligible one.
    TopDown,
    /// A random eligible agent (from the snapshot's seed).
    Random,
    /// Highest proficiency in the required skills first; ties by longest idle.
    BestSkill,
    /// Like top-down, but each further ring timeout adds the next agent while the
    /// earlier ones keep ringing.
    RingProgressively,
}

impl Strategy {
    /// The config name (`longest-idle`, `ring-all`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::LongestIdle => "longest-idle",
            Strategy::LeastTalkTime => "least-talk-time",
            Strategy::FewestCalls => "fewest-calls",
            Strategy::RoundRobin => "round-robin",
            Strategy::RingAll => "ring-all",
            Strategy::TopDown => "top-down",
            Strategy::Random => "random",
            Strategy::BestSkill => "best-skill",
            Strategy::RingProgressively => "ring-progressively",
        }
    }

    /// Every strategy, in documentation order.
    pub const ALL: [Strategy; 9] = [
        Strategy::LongestIdle,
        Strategy::LeastTalkTime,
        Strategy::FewestCalls,
        Strategy::RoundRobin,
        Strategy::RingAll,
        Strategy::TopDown,
        Strategy::Random,
        Strategy::BestSkill,
        Strategy::RingProgressively,
    ];

    /// The strategy a config name selects.
    pub fn from_name(name: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// Where a caller goes when a queue gives up on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitTarget {
    /// Another queue.
    Queue(QueueName),
    /// Leave a message in a mailbox.
    Mailbox(String),
    /// An IVR flow (and node; the flow's start when `None`).
    Flow {
        /// Flow name.
        flow: String,
        /// Node name.
        node: Option<String>,
    },
    /// Play these prompts, then hang up.
    Hangup(Vec<String>),
}

/// A queue as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    /// Name.
    pub name: QueueName,
    /// Required skills.
    pub requirements: Vec<Requirement>,
    /// Relaxation steps, by increasing `after`.
    pub relaxations: Vec<Relaxation>,
    /// Higher goes first when an agent serves several queues (default 0).
    pub priority: i32,
    /// Agent selection.
    pub strategy: Strategy,
    /// How long an offered agent rings (default 15 s).
    pub ring_timeout: Duration,
    /// Pause before the same agent is offered again after a miss (default 5 s).
    pub retry_delay: Duration,
    /// Longest wait before the exit (`None`: no limit).
    pub max_wait: Option<Duration>,
    /// Most waiting calls (`None`: no limit).
    pub max_len: Option<usize>,
    /// Wrap-up after each call (default 0).
    pub wrap_up: Duration,
    /// Music on hold prompt name (looped).
    pub music: Option<String>,
    /// Periodic announcement prompt and period.
    pub announcement: Option<(String, Duration)>,
    /// Announce position and expected wait every this long (`None`: never).
    pub position_every: Option<Duration>,
    /// Service-level threshold (default 20 s).
    pub service_level: Duration,
    /// Key a waiting caller presses to leave (`None`: none).
    pub exit_key: Option<char>,
    /// Where callers go on max wait, no agents, full queue or the exit key.
    pub exit: ExitTarget,
    /// Agents in configured order (for top-down / ring-progressively / round-robin).
    pub members: Vec<AgentId>,
}

/// How an agent's phone is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoiceContact {
    /// A SIP user registering to caruso (REGISTER with digest auth).
    Registered {
        /// User name (`sip:<user>@caruso`).
        user: String,
        /// Digest password.
        password: String,
    },
    /// A fixed SIP URI.
    Uri(String),
    /// An external number through a trunk.
    External {
        /// Trunk name.
        trunk: String,
        /// Number.
        number: String,
    },
}

/// An agent as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// Id (login name).
    pub id: AgentId,
    /// Display name.
    pub name: String,
    /// Skills.
    pub skills: Vec<Skill>,
    /// Token for the agent client (gRPC).
    pub token: String,
    /// The phone.
    pub contact: VoiceContact,
    /// Consecutive missed offers before "not ready: no answer" (default 3).
    pub max_no_answer: u32,
}

/// An agent's state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AgentState {
    /// Not working.
    LoggedOut,
    /// Waiting for a call.
    Ready,
    /// Being offered a call (its phone rings).
    Reserved(CallKey),
    /// Talking.
    OnCall(CallKey),
    /// After a call, until the wrap-up ends.
    WrapUp,
    /// Logged in but away, with a reason code from the config.
    NotReady(String),
}

/// What the router sees of an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentView {
    /// Id.
    pub id: AgentId,
    /// Skills.
    pub skills: Vec<Skill>,
    /// Ready (and not blocked by a retry delay) at the snapshot's `now`.
    pub available: bool,
    /// When the agent became ready (for longest-idle).
    pub ready_since: Instant,
    /// Talk time today.
    pub talk_time: Duration,
    /// Calls answered today.
    pub calls_answered: u32,
}

/// What the router sees of a waiting call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingCall {
    /// Key.
    pub call: CallKey,
    /// Queue.
    pub queue: QueueName,
    /// When it entered the queue.
    pub queued_at: Instant,
    /// Caller priority (higher first within a queue; default 0).
    pub priority: i32,
    /// Extra requirements of this caller (from the IVR or a hook), on top of the queue's.
    pub requirements: Vec<Requirement>,
    /// Agents not to offer it to now (just missed it, within the retry delay).
    pub excluded: Vec<AgentId>,
    /// Agents ringing for it now (ring-progressively adds to them).
    pub ringing: Vec<AgentId>,
    /// When the first agent in `ringing` started ringing (`None` when nobody rings).
    /// Ring-progressively adds the next agent every `ring_timeout` after this.
    pub ringing_since: Option<Instant>,
}

/// Everything the router decides on.
#[derive(Debug, Clone)]
pub struct AcdSnapshot {
    /// The moment of the decision.
    pub now: Instant,
    /// Queues by config order.
    pub queues: Vec<Arc<QueueConfig>>,
    /// Waiting (not yet connected) calls.
    pub waiting: Vec<WaitingCall>,
    /// Agents logged in (any state; `available` says who can take a call).
    pub agents: Vec<AgentView>,
    /// Round-robin position per queue: the last agent offered.
    pub last_offered: Vec<(QueueName, AgentId)>,
    /// Seed for `random`.
    pub seed: u64,
}

/// A routing decision: ring these agents for this call (one, except ring-all /
/// ring-progressively).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The call.
    pub call: CallKey,
    /// Its queue.
    pub queue: QueueName,
    /// The agents to ring now.
    pub agents: Vec<AgentId>,
}
