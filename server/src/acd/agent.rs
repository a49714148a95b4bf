//! The agent state machine (sans-IO): one [`Agent`] per configured agent, owned by the ACD
//! task.
//!
//! Contract:
//! - inputs: [`Agent::handle`] with an [`AgentEvent`] (from the agent client, the calls, a
//!   supervisor) and [`Agent::handle_timeout`] (the wrap-up deadline that
//!   [`Agent::poll_timeout`] announces); time is always the caller's `now`;
//! - outputs: every applied transition returns one [`AgentChange`] (agent, from, to, why,
//!   when) that the ACD task publishes on the event bus; [`Agent::view`] is what the router
//!   sees;
//! - invariants: an event that is not allowed in the current state (or names another call
//!   than the one the agent holds, or a not-ready reason that is not configured) returns
//!   an [`AgentError`] and changes nothing; an agent is `Reserved`/`OnCall` only for the
//!   call named by the `Offer` that reserved it; the ACD task learns from
//!   [`AgentChange::released_call`] when an agent lets go of a call it held (missed,
//!   cancelled, ended, or forced out by a supervisor).
//!
//! Transitions (anything else is refused):
//!
//! | event                      | from                                   | to                                  |
//! |----------------------------|----------------------------------------|-------------------------------------|
//! | `LogIn { ready }`          | LoggedOut                              | Ready, or NotReady("login")         |
//! | `LogOut`                   | Ready, NotReady, WrapUp                | LoggedOut                           |
//! | `SetReady`                 | NotReady, WrapUp                       | Ready                               |
//! | `SetNotReady { reason }`   | Ready, WrapUp, NotReady(other reason)  | NotReady(reason)                    |
//! | `Offer(c)`                 | Ready                                  | Reserved(c)                         |
//! | `OfferAnswered(c)`         | Reserved(c)                            | OnCall(c)                           |
//! | `OfferMissed { c, why }`   | Reserved(c)                            | Ready, or NotReady("no answer")     |
//! | `OfferCancelled(c)`        | Reserved(c)                            | Ready (keeps its idle position)     |
//! | `CallEnded { c, wrap_up }` | OnCall(c)                              | WrapUp until now + wrap_up, or Ready|
//! | `EndWrapUp { .. }`         | WrapUp                                 | Ready                               |
//! | wrap-up deadline           | WrapUp                                 | Ready                               |
//! | `ForceLogOut`              | any but LoggedOut                      | LoggedOut                           |
//! | `ForceNotReady { reason }` | Ready, Reserved, WrapUp, NotReady(other)| NotReady(reason)                   |
//!
//! Missed offers: `max_no_answer` (from the config, default 3) consecutive misses (no
//! answer, rejected, or the device is unregistered) send the agent to
//! NotReady("no answer") instead of Ready; an answered offer resets the count, and so do
//! that automatic not-ready and logging out. A cancelled offer (the caller hung up while
//! the phone rang, or another agent answered a ring-all call) is not a miss.
//! `max_no_answer = 0` turns the rule off.
//!
//! Persistence: [`Agent::save`] writes an [`AgentRecord`] to tree [`AGENTS_TREE`] (key =
//! agent id); [`Agent::restore`] rebuilds the agent after a restart. No call survives a
//! restart, and the agent's client and phone must reconnect, so an agent that was
//! logged in comes back logged in but **NotReady("restart")** (a NotReady agent keeps its
//! reason); a logged-out agent stays logged out. Today's figures (time per state, calls
//! answered; talk time is the time on call) survive; they start again from zero when the
//! caller's day number differs from the record's (and on [`Agent::roll_day`] at runtime).
//!
//! ```
//! use caruso::acd::agent::{Agent, AgentEvent};
//! use caruso::acd::{AgentConfig, AgentState, VoiceContact};
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//!
//! let config = AgentConfig {
//!     id: "alice".into(),
//!     name: "Alice".into(),
//!     skills: vec![],
//!     token: "t".into(),
//!     contact: VoiceContact::Uri("sip:alice@127.0.0.1".into()),
//!     max_no_answer: 3,
//! };
//! let t0 = Instant::now();
//! let mut alice = Agent::new(&config, Arc::from(vec!["lunch".to_string()]), t0, 20_000);
//! alice.handle(t0, AgentEvent::LogIn { ready: true }).unwrap();
//! alice.handle(t0, AgentEvent::Offer(7)).unwrap();
//! alice.handle(t0, AgentEvent::OfferAnswered(7)).unwrap();
//! let t1 = t0 + Duration::from_secs(60);
//! let end = AgentEvent::CallEnded { call: 7, wrap_up: Duration::from_secs(10) };
//! alice.handle(t1, end).unwrap();
//! assert_eq!(alice.poll_timeout(), Some(t1 + Duration::from_secs(10)));
//! let change = alice.handle_timeout(t1 + Duration::from_secs(10)).unwrap();
//! assert_eq!(change.to, AgentState::Ready);
//! assert_eq!(alice.view(t1).talk_time, Duration::from_secs(60));
//! // Not allowed now, and nothing changes:
//! assert!(alice.handle(t1, AgentEvent::OfferAnswered(7)).is_err());
//! ```

use super::{AgentConfig, AgentId, AgentState, AgentView, CallKey, Skill};
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Store tree holding one [`AgentRecord`] per agent, key = agent id.
pub const AGENTS_TREE: &str = "acd_agents";
/// Not-ready reason after `max_no_answer` consecutive missed offers.
pub const REASON_NO_ANSWER: &str = "no answer";
/// Not-ready reason of a logged-in agent after a server restart.
pub const REASON_RESTART: &str = "restart";
/// Not-ready reason right after `LogIn { ready: false }`.
pub const REASON_LOGIN: &str = "login";

/// Errors of the agent state machine; each names the agent, its state and the event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// The event is not allowed in the agent's current state.
    #[error("agent {agent}: {event} is not allowed while {state}")]
    InvalidTransition {
        /// Agent id.
        agent: AgentId,
        /// The agent's state (human-readable).
        state: String,
        /// The refused event's name.
        event: &'static str,
    },
    /// The event names another call than the one the agent holds.
    #[error("agent {agent}: {event} names call {call} but the agent is {state}")]
    WrongCall {
        /// Agent id.
        agent: AgentId,
        /// The agent's state (human-readable, with its call).
        state: String,
        /// The refused event's name.
        event: &'static str,
        /// The call the event named.
        call: CallKey,
    },
    /// A not-ready reason that is not in the config's reason codes.
    #[error("agent {agent}: not-ready reason {reason:?} is not configured (allowed: {})", allowed.join(", "))]
    UnknownReason {
        /// Agent id.
        agent: AgentId,
        /// The reason asked for.
        reason: String,
        /// The configured reasons.
        allowed: Vec<String>,
    },
}

/// An [`AgentState`] without its data, for accounting and persistence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateKind {
    /// [`AgentState::LoggedOut`].
    LoggedOut,
    /// [`AgentState::Ready`].
    Ready,
    /// [`AgentState::Reserved`].
    Reserved,
    /// [`AgentState::OnCall`].
    OnCall,
    /// [`AgentState::WrapUp`].
    WrapUp,
    /// [`AgentState::NotReady`].
    NotReady,
}

impl StateKind {
    /// Every kind, in declaration order.
    pub const ALL: [StateKind; 6] = [
        StateKind::LoggedOut,
        StateKind::Ready,
        StateKind::Reserved,
        StateKind::OnCall,
        StateKind::WrapUp,
        StateKind::NotReady,
    ];

    /// The kind of a state.
    pub fn of(state: &AgentState) -> StateKind {
        match state {
            AgentState::LoggedOut => StateKind::LoggedOut,
            AgentState::Ready => StateKind::Ready,
            AgentState::Reserved(_) => StateKind::Reserved,
            AgentState::OnCall(_) => StateKind::OnCall,
            AgentState::WrapUp => StateKind::WrapUp,
            AgentState::NotReady(_) => StateKind::NotReady,
        }
    }

    /// Snake-case name (`logged_out`, `on_call`, ...), as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            StateKind::LoggedOut => "logged_out",
            StateKind::Ready => "ready",
            StateKind::Reserved => "reserved",
            StateKind::OnCall => "on_call",
            StateKind::WrapUp => "wrap_up",
            StateKind::NotReady => "not_ready",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentState::LoggedOut => f.write_str("logged out"),
            AgentState::Ready => f.write_str("ready"),
            AgentState::Reserved(c) => write!(f, "reserved for call {c}"),
            AgentState::OnCall(c) => write!(f, "on call {c}"),
            AgentState::WrapUp => f.write_str("in wrap-up"),
            AgentState::NotReady(r) => write!(f, "not ready ({r})"),
        }
    }
}

/// Why an offer was missed; every kind counts toward `max_no_answer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MissReason {
    /// The phone rang for the ring timeout.
    NoAnswer,
    /// The phone rejected the call (busy, decline, any final error).
    Rejected,
    /// The agent's device is not registered (nothing to ring).
    Unregistered,
}

/// An input to [`Agent::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    /// The agent client logs in, into Ready (`ready`) or NotReady("login").
    LogIn {
        /// Go straight to Ready.
        ready: bool,
    },
    /// The agent client logs out (not while a call rings or is connected).
    LogOut,
    /// The agent client sets Ready (also ends a wrap-up without a disposition).
    SetReady,
    /// The agent client sets NotReady with a configured reason code.
    SetNotReady {
        /// Reason code (one of the configured ones).
        reason: String,
    },
    /// The ACD offers this call (the agent's phone starts ringing).
    Offer(CallKey),
    /// The agent's phone answered the offered call.
    OfferAnswered(CallKey),
    /// The offer failed on the agent's side.
    OfferMissed {
        /// The offered call.
        call: CallKey,
        /// What happened.
        why: MissReason,
    },
    /// The offer was withdrawn: the caller hung up while ringing, or another agent took
    /// the call (ring-all). Not a miss.
    OfferCancelled(CallKey),
    /// The connected call ended (either side hung up, or it was transferred away).
    CallEnded {
        /// The call.
        call: CallKey,
        /// The queue's wrap-up time (zero: straight to Ready).
        wrap_up: Duration,
    },
    /// The agent client ends the wrap-up early.
    EndWrapUp {
        /// Disposition code.
        disposition: Option<String>,
        /// Free note.
        note: Option<String>,
    },
    /// A supervisor logs the agent out, whatever it is doing; a call it held is released
    /// (the ACD task cancels the ring or ends the call, see [`AgentChange::released_call`]).
    ForceLogOut,
    /// A supervisor sets the agent NotReady (not during a connected call); a ringing
    /// offer is released.
    ForceNotReady {
        /// Reason code (one of the configured ones).
        reason: String,
    },
}

impl AgentEvent {
    /// A short name for errors and logs (`offer`, `set_not_ready`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            AgentEvent::LogIn { .. } => "log_in",
            AgentEvent::LogOut => "log_out",
            AgentEvent::SetReady => "set_ready",
            AgentEvent::SetNotReady { .. } => "set_not_ready",
            AgentEvent::Offer(_) => "offer",
            AgentEvent::OfferAnswered(_) => "offer_answered",
            AgentEvent::OfferMissed { .. } => "offer_missed",
            AgentEvent::OfferCancelled(_) => "offer_cancelled",
            AgentEvent::CallEnded { .. } => "call_ended",
            AgentEvent::EndWrapUp { .. } => "end_wrap_up",
            AgentEvent::ForceLogOut => "force_log_out",
            AgentEvent::ForceNotReady { .. } => "force_not_ready",
        }
    }
}

/// Why a change happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeReason {
    /// The agent client asked (log in / out, ready, not ready).
    Client,
    /// A supervisor forced it.
    Supervisor,
    /// A call was offered.
    Offered,
    /// The offered call was answered.
    Answered,
    /// The offer was missed (the target says whether the agent went not ready).
    Missed(MissReason),
    /// The offer was withdrawn.
    Cancelled,
    /// The connected call ended.
    CallEnded,
    /// The agent ended the wrap-up.
    WrapUpEnded {
        /// Disposition code.
        disposition: Option<String>,
        /// Free note.
        note: Option<String>,
    },
    /// The wrap-up time ran out.
    WrapUpTimeout,
}

/// One applied transition, to publish on the event bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentChange {
    /// Agent id.
    pub agent: AgentId,
    /// State before.
    pub from: AgentState,
    /// State after.
    pub to: AgentState,
    /// Why.
    pub reason: ChangeReason,
    /// When (the `now` of the input).
    pub at: Instant,
    /// How long the agent had been in `from`.
    pub duration: Duration,
}

impl AgentChange {
    /// The call the agent held before and no longer holds: the ACD task cancels its ring
    /// (from Reserved) or, when a supervisor forced the agent out, ends it (from OnCall).
    pub fn released_call(&self) -> Option<CallKey> {
        match (&self.from, &self.to) {
            (AgentState::Reserved(c), AgentState::OnCall(d)) if c == d => None,
            (AgentState::Reserved(c), _) | (AgentState::OnCall(c), _) => Some(*c),
            _ => None,
        }
    }
}

/// Time spent in each state today, in milliseconds (as stored).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StateTimes {
    /// Logged out (while the server ran).
    pub logged_out_ms: u64,
    /// Ready.
    pub ready_ms: u64,
    /// Reserved (phone ringing).
    pub reserved_ms: u64,
    /// On call (talk time).
    pub on_call_ms: u64,
    /// Wrap-up.
    pub wrap_up_ms: u64,
    /// Not ready (any reason).
    pub not_ready_ms: u64,
}

impl StateTimes {
    /// Milliseconds in `kind`.
    pub fn get(&self, kind: StateKind) -> u64 {
        match kind {
            StateKind::LoggedOut => self.logged_out_ms,
            StateKind::Ready => self.ready_ms,
            StateKind::Reserved => self.reserved_ms,
            StateKind::OnCall => self.on_call_ms,
            StateKind::WrapUp => self.wrap_up_ms,
            StateKind::NotReady => self.not_ready_ms,
        }
    }

    fn from_durations(d: &[Duration; 6]) -> StateTimes {
        let ms = |k: StateKind| u64::try_from(d[k.index()].as_millis()).unwrap_or(u64::MAX);
        StateTimes {
            logged_out_ms: ms(StateKind::LoggedOut),
            ready_ms: ms(StateKind::Ready),
            reserved_ms: ms(StateKind::Reserved),
            on_call_ms: ms(StateKind::OnCall),
            wrap_up_ms: ms(StateKind::WrapUp),
            not_ready_ms: ms(StateKind::NotReady),
        }
    }

    fn to_durations(self) -> [Duration; 6] {
        StateKind::ALL.map(|k| Duration::from_millis(self.get(k)))
    }
}

/// What the store keeps of an agent (tree [`AGENTS_TREE`], key = agent id, TOML text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// Agent id.
    pub id: String,
    /// State at the save.
    pub state: StateKind,
    /// The not-ready reason when `state` is `not_ready`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The last not-ready reason the agent had (kept after it left not-ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reason: Option<String>,
    /// Calls answered on `day`.
    pub calls_answered: u32,
    /// The caller's day number the figures belong to.
    pub day: u32,
    /// Wall-clock time of the save, ms since the Unix epoch.
    pub saved_ms: u64,
    /// Time per state on `day`, up to the save.
    pub times: StateTimes,
}

impl AgentRecord {
    /// Writes the record at its id.
    pub fn save(&self, store: &dyn Store) -> Result<(), StoreError> {
        let text = toml::to_string(self).map_err(|e| corrupt(e.to_string()))?;
        store.put(AGENTS_TREE, self.id.as_bytes(), text.as_bytes())
    }

    /// Reads the record of agent `id`, if any.
    pub fn load(store: &dyn Store, id: &str) -> Result<Option<AgentRecord>, StoreError> {
        store
            .get(AGENTS_TREE, id.as_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Reads every record, by id.
    pub fn load_all(store: &dyn Store) -> Result<Vec<AgentRecord>, StoreError> {
        store
            .scan_prefix(AGENTS_TREE, b"")?
            .into_iter()
            .map(|(_, v)| decode(&v))
            .collect()
    }
}

fn corrupt(reason: String) -> StoreError {
    StoreError::Corrupt {
        tree: AGENTS_TREE.into(),
        reason,
    }
}

fn decode(value: &[u8]) -> Result<AgentRecord, StoreError> {
    let text = std::str::from_utf8(value).map_err(|e| corrupt(e.to_string()))?;
    toml::from_str(text).map_err(|e| corrupt(e.to_string()))
}

/// The runtime state of one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    id: AgentId,
    skills: Vec<Skill>,
    max_no_answer: u32,
    reasons: Arc<[String]>,
    state: AgentState,
    /// When the current state began.
    since: Instant,
    /// When the agent last became ready (kept through a cancelled offer).
    ready_since: Instant,
    /// From when the current state's time is not yet in `times`.
    counted_from: Instant,
    missed_in_row: u32,
    calls_answered: u32,
    /// Closed intervals of today, per [`StateKind::index`].
    times: [Duration; 6],
    last_reason: Option<String>,
    /// End of the wrap-up (`None` outside wrap-up, or when it has no end).
    wrap_up_until: Option<Instant>,
    day: u32,
}

/// What a valid event does; computed without touching the agent, then committed.
struct Plan {
    to: AgentState,
    reason: ChangeReason,
    /// Ready from now on (false: keep the previous idle position).
    fresh_ready: bool,
    wrap_up_until: Option<Instant>,
    missed_in_row: u32,
    answered: bool,
}

impl Agent {
    /// A logged-out agent with fresh figures for `day`; `reasons` are the configured
    /// not-ready reason codes (shared by all agents).
    pub fn new(config: &AgentConfig, reasons: Arc<[String]>, now: Instant, day: u32) -> Agent {
        Agent {
            id: config.id.clone(),
            skills: config.skills.clone(),
            max_no_answer: config.max_no_answer,
            reasons,
            state: AgentState::LoggedOut,
            since: now,
            ready_since: now,
            counted_from: now,
            missed_in_row: 0,
            calls_answered: 0,
            times: [Duration::ZERO; 6],
            last_reason: None,
            wrap_up_until: None,
            day,
        }
    }

    /// Rebuilds an agent after a restart (see the module doc): a logged-in agent comes
    /// back NotReady ("restart", or its own not-ready reason); figures survive when
    /// `day` is the record's day, else they start from zero.
    pub fn restore(
        config: &AgentConfig,
        reasons: Arc<[String]>,
        record: &AgentRecord,
        now: Instant,
        day: u32,
    ) -> Agent {
        let mut agent = Agent::new(config, reasons, now, day);
        agent.state = match record.state {
            StateKind::LoggedOut => AgentState::LoggedOut,
            StateKind::NotReady => AgentState::NotReady(
                record
                    .reason
                    .clone()
                    .unwrap_or_else(|| REASON_RESTART.to_string()),
            ),
            StateKind::Ready | StateKind::Reserved | StateKind::OnCall | StateKind::WrapUp => {
                AgentState::NotReady(REASON_RESTART.to_string())
            }
        };
        agent.last_reason = match &agent.state {
            AgentState::NotReady(r) => Some(r.clone()),
            _ => record.last_reason.clone(),
        };
        if record.day == day {
            agent.times = record.times.to_durations();
            agent.calls_answered = record.calls_answered;
        }
        agent
    }

    /// Loads the agent's record from `store` and restores it, or a new logged-out agent
    /// when there is none.
    pub fn load(
        config: &AgentConfig,
        reasons: Arc<[String]>,
        store: &dyn Store,
        now: Instant,
        day: u32,
    ) -> Result<Agent, StoreError> {
        Ok(match AgentRecord::load(store, &config.id)? {
            Some(record) => Agent::restore(config, reasons, &record, now, day),
            None => Agent::new(config, reasons, now, day),
        })
    }

    /// The record to persist, with figures up to `now`; `wall_ms` stamps it.
    pub fn record(&self, now: Instant, wall_ms: u64) -> AgentRecord {
        AgentRecord {
            id: self.id.to_string(),
            state: StateKind::of(&self.state),
            reason: match &self.state {
                AgentState::NotReady(r) => Some(r.clone()),
                _ => None,
            },
            last_reason: self.last_reason.clone(),
            calls_answered: self.calls_answered,
            day: self.day,
            saved_ms: wall_ms,
            times: StateTimes::from_durations(&self.durations(now)),
        }
    }

    /// Writes [`Agent::record`] to `store` (call after each change; flush is the caller's).
    pub fn save(&self, store: &dyn Store, now: Instant, wall_ms: u64) -> Result<(), StoreError> {
        self.record(now, wall_ms).save(store)
    }

    /// Takes a config reload: skills and `max_no_answer` (the id must stay the same).
    pub fn set_config(&mut self, config: &AgentConfig) {
        self.skills = config.skills.clone();
        self.max_no_answer = config.max_no_answer;
    }

    /// Takes a reload of the configured not-ready reasons.
    pub fn set_reasons(&mut self, reasons: Arc<[String]>) {
        self.reasons = reasons;
    }

    /// Starts a new day when `day` differs from the agent's: today's figures (time per
    /// state, calls answered) start from zero at `now`. Returns whether the day changed.
    pub fn roll_day(&mut self, now: Instant, day: u32) -> bool {
        if day == self.day {
            return false;
        }
        self.day = day;
        self.times = [Duration::ZERO; 6];
        self.calls_answered = 0;
        self.counted_from = now;
        true
    }

    /// Applies one event: the change, or an error that left the agent untouched.
    pub fn handle(&mut self, now: Instant, event: AgentEvent) -> Result<AgentChange, AgentError> {
        let plan = self.plan(now, &event)?;
        Ok(self.commit(now, plan))
    }

    /// The wrap-up deadline: Ready at that moment.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<AgentChange> {
        match (&self.state, self.wrap_up_until) {
            (AgentState::WrapUp, Some(until)) if until <= now => Some(self.commit(
                now,
                Plan {
                    to: AgentState::Ready,
                    reason: ChangeReason::WrapUpTimeout,
                    fresh_ready: true,
                    wrap_up_until: None,
                    missed_in_row: self.missed_in_row,
                    answered: false,
                },
            )),
            _ => None,
        }
    }

    /// When [`Agent::handle_timeout`] wants to run (the wrap-up's end).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            AgentState::WrapUp => self.wrap_up_until,
            _ => None,
        }
    }

    /// What the router sees: available exactly when Ready.
    pub fn view(&self, now: Instant) -> AgentView {
        AgentView {
            id: self.id.clone(),
            skills: self.skills.clone(),
            available: self.state == AgentState::Ready,
            ready_since: self.ready_since,
            talk_time: self.talk_time(now),
            calls_answered: self.calls_answered,
        }
    }

    /// Id.
    pub fn id(&self) -> &AgentId {
        &self.id
    }

    /// Current state.
    pub fn state(&self) -> &AgentState {
        &self.state
    }

    /// When the current state began.
    pub fn since(&self) -> Instant {
        self.since
    }

    /// When the agent last became ready (its idle position).
    pub fn ready_since(&self) -> Instant {
        self.ready_since
    }

    /// The call the agent is reserved for or talking on.
    pub fn call(&self) -> Option<CallKey> {
        match self.state {
            AgentState::Reserved(c) | AgentState::OnCall(c) => Some(c),
            _ => None,
        }
    }

    /// Consecutive missed offers so far.
    pub fn missed_in_row(&self) -> u32 {
        self.missed_in_row
    }

    /// Calls answered today.
    pub fn calls_answered(&self) -> u32 {
        self.calls_answered
    }

    /// Talk time today (time on call, the current call included).
    pub fn talk_time(&self, now: Instant) -> Duration {
        self.time_in(StateKind::OnCall, now)
    }

    /// Time in `kind` today, the current state included up to `now`.
    pub fn time_in(&self, kind: StateKind, now: Instant) -> Duration {
        self.durations(now)[kind.index()]
    }

    /// Today's time per state up to `now`, in ms.
    pub fn times(&self, now: Instant) -> StateTimes {
        StateTimes::from_durations(&self.durations(now))
    }

    /// The last not-ready reason (the current one when NotReady).
    pub fn last_reason(&self) -> Option<&str> {
        self.last_reason.as_deref()
    }

    /// The day number today's figures belong to.
    pub fn day(&self) -> u32 {
        self.day
    }

    fn durations(&self, now: Instant) -> [Duration; 6] {
        let mut d = self.times;
        let open = now.saturating_duration_since(self.counted_from);
        let i = StateKind::of(&self.state).index();
        d[i] = d[i].saturating_add(open);
        d
    }

    fn invalid(&self, event: &AgentEvent) -> AgentError {
        AgentError::InvalidTransition {
            agent: self.id.clone(),
            state: self.state.to_string(),
            event: event.name(),
        }
    }

    /// `Ok` when the agent holds `call` in the state the event expects; else the error.
    fn check_call(
        &self,
        event: &AgentEvent,
        held: Option<CallKey>,
        call: CallKey,
    ) -> Result<(), AgentError> {
        match held {
            Some(c) if c == call => Ok(()),
            Some(_) => Err(AgentError::WrongCall {
                agent: self.id.clone(),
                state: self.state.to_string(),
                event: event.name(),
                call,
            }),
            None => Err(self.invalid(event)),
        }
    }

    fn check_reason(&self, reason: &str) -> Result<(), AgentError> {
        if self.reasons.iter().any(|r| r == reason) {
            Ok(())
        } else {
            Err(AgentError::UnknownReason {
                agent: self.id.clone(),
                reason: reason.to_string(),
                allowed: self.reasons.to_vec(),
            })
        }
    }

    /// Validates `event` against the current state and says what it would do.
    fn plan(&self, now: Instant, event: &AgentEvent) -> Result<Plan, AgentError> {
        use AgentState as S;
        let plan = |to: AgentState, reason: ChangeReason| Plan {
            to,
            reason,
            fresh_ready: true,
            wrap_up_until: None,
            missed_in_row: self.missed_in_row,
            answered: false,
        };
        let reserved = match self.state {
            S::Reserved(c) => Some(c),
            _ => None,
        };
        let on_call = match self.state {
            S::OnCall(c) => Some(c),
            _ => None,
        };
        match event {
            AgentEvent::LogIn { ready } => match self.state {
                S::LoggedOut => Ok(Plan {
                    missed_in_row: 0,
                    ..plan(
                        if *ready {
                            S::Ready
                        } else {
                            S::NotReady(REASON_LOGIN.to_string())
                        },
                        ChangeReason::Client,
                    )
                }),
                _ => Err(self.invalid(event)),
            },
            AgentEvent::LogOut => match self.state {
                S::Ready | S::NotReady(_) | S::WrapUp => Ok(Plan {
                    missed_in_row: 0,
                    ..plan(S::LoggedOut, ChangeReason::Client)
                }),
                _ => Err(self.invalid(event)),
            },
            AgentEvent::SetReady => match self.state {
                S::NotReady(_) | S::WrapUp => Ok(plan(S::Ready, ChangeReason::Client)),
                _ => Err(self.invalid(event)),
            },
            AgentEvent::SetNotReady { reason } => {
                match &self.state {
                    S::Ready | S::WrapUp => {}
                    S::NotReady(r) if r != reason => {}
                    _ => return Err(self.invalid(event)),
                }
                self.check_reason(reason)?;
                Ok(plan(S::NotReady(reason.clone()), ChangeReason::Client))
            }
            AgentEvent::Offer(call) => match self.state {
                S::Ready => Ok(plan(S::Reserved(*call), ChangeReason::Offered)),
                _ => Err(self.invalid(event)),
            },
            AgentEvent::OfferAnswered(call) => {
                self.check_call(event, reserved, *call)?;
                Ok(Plan {
                    missed_in_row: 0,
                    answered: true,
                    ..plan(S::OnCall(*call), ChangeReason::Answered)
                })
            }
            AgentEvent::OfferMissed { call, why } => {
                self.check_call(event, reserved, *call)?;
                let missed = self.missed_in_row.saturating_add(1);
                if self.max_no_answer > 0 && missed >= self.max_no_answer {
                    Ok(Plan {
                        missed_in_row: 0,
                        ..plan(
                            S::NotReady(REASON_NO_ANSWER.to_string()),
                            ChangeReason::Missed(*why),
                        )
                    })
                } else {
                    Ok(Plan {
                        missed_in_row: missed,
                        ..plan(S::Ready, ChangeReason::Missed(*why))
                    })
                }
            }
            AgentEvent::OfferCancelled(call) => {
                self.check_call(event, reserved, *call)?;
                Ok(Plan {
                    fresh_ready: false,
                    ..plan(S::Ready, ChangeReason::Cancelled)
                })
            }
            AgentEvent::CallEnded { call, wrap_up } => {
                self.check_call(event, on_call, *call)?;
                if wrap_up.is_zero() {
                    Ok(plan(S::Ready, ChangeReason::CallEnded))
                } else {
                    Ok(Plan {
                        // An end beyond what Instant can hold: the client ends it.
                        wrap_up_until: now.checked_add(*wrap_up),
                        ..plan(S::WrapUp, ChangeReason::CallEnded)
                    })
                }
            }
            AgentEvent::EndWrapUp { disposition, note } => match self.state {
                S::WrapUp => Ok(plan(
                    S::Ready,
                    ChangeReason::WrapUpEnded {
                        disposition: disposition.clone(),
                        note: note.clone(),
                    },
                )),
                _ => Err(self.invalid(event)),
            },
            AgentEvent::ForceLogOut => match self.state {
                S::LoggedOut => Err(self.invalid(event)),
                _ => Ok(Plan {
                    missed_in_row: 0,
                    ..plan(S::LoggedOut, ChangeReason::Supervisor)
                }),
            },
            AgentEvent::ForceNotReady { reason } => {
                match &self.state {
                    S::Ready | S::Reserved(_) | S::WrapUp => {}
                    S::NotReady(r) if r != reason => {}
                    _ => return Err(self.invalid(event)),
                }
                self.check_reason(reason)?;
                Ok(plan(S::NotReady(reason.clone()), ChangeReason::Supervisor))
            }
        }
    }

    /// Applies a validated plan (cannot fail).
    fn commit(&mut self, now: Instant, plan: Plan) -> AgentChange {
        let from_kind = StateKind::of(&self.state).index();
        let open = now.saturating_duration_since(self.counted_from);
        self.times[from_kind] = self.times[from_kind].saturating_add(open);
        let duration = now.saturating_duration_since(self.since);
        self.since = now;
        self.counted_from = now;
        if plan.to == AgentState::Ready && plan.fresh_ready {
            self.ready_since = now;
        }
        if let AgentState::NotReady(r) = &plan.to {
            self.last_reason = Some(r.clone());
        }
        if plan.answered {
            self.calls_answered = self.calls_answered.saturating_add(1);
        }
        self.missed_in_row = plan.missed_in_row;
        self.wrap_up_until = plan.wrap_up_until;
        let from = std::mem::replace(&mut self.state, plan.to.clone());
        AgentChange {
            agent: self.id.clone(),
            from,
            to: plan.to,
            reason: plan.reason,
            at: now,
            duration,
        }
    }
}

#[cfg(test)]
mod tests;
