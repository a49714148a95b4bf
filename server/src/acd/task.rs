//! The ACD task: the one owner of agents and waiting calls.
//!
//! Inputs, all on channels, handled one at a time in arrival order:
//! - [`AcdCommand`]s from the agent API (log in, ready, not ready, wrap-up,
//!   dispositions ...);
//! - [`CallToAcd`] from call actors (a caller enters a queue, an agent's phone answered
//!   or missed, the caller hung up, the call ended);
//! - its own deadlines (wrap-up ends, retry delays, relaxation steps, maximum waits).
//!
//! After every input it takes a snapshot and asks the pure [`router::route`] for
//! assignments, so an agent who becomes ready is offered a waiting call in the same
//! step (no polling tick). Assignments go to the call's actor as [`AcdToCall::Ring`];
//! the actor rings the agent's phone and reports back. Every agent change is saved to
//! the store (tree `acd_agents`) and published on the event bus.
//!
//! Dispositions: ending a wrap-up with a code publishes [`Event::Disposition`] for the
//! call it followed; [`AcdCommand::SetDisposition`] publishes one for any of the
//! agent's last [`RECENT_CALLS`] answered calls (kept in memory), in any state, so a
//! queue without wrap-up time gets them too. The dialer stores them per attempt.

use super::agent::{Agent, AgentChange, AgentEvent as Fsm, ChangeReason, MissReason};
use super::api::{
    AcdCommand, AcdError, AcdView, AgentEvent, AgentStatus, ViewAgent, ViewCall, ViewQueue,
};
use super::config::AcdConfig;
use super::{
    router, AcdSnapshot, AgentConfig, AgentId, AgentState, AgentView, CallKey, ExitTarget,
    QueueConfig, QueueName, Requirement, VoiceContact, WaitingCall,
};
use crate::events::{Event, EventBus};
use crate::ivr::Variables;
use crate::metrics as m;
use crate::store::Store;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};
use tracing::{debug, info, warn};

/// Events kept per agent stream before a slow client lags.
const AGENT_STREAM: usize = 64;
/// Calls remembered per agent for `SetDisposition` (the newest ones it answered).
pub const RECENT_CALLS: usize = 8;
/// Longest disposition code, in characters.
pub const MAX_DISPOSITION: usize = 64;
/// Longest disposition note, in characters.
pub const MAX_NOTE: usize = 2000;

static NEXT_CALL: AtomicU64 = AtomicU64::new(1);

/// A fresh key for a call entering the ACD.
pub fn next_call_key() -> CallKey {
    NEXT_CALL.fetch_add(1, Ordering::Relaxed)
}

/// How ringing an agent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingOutcome {
    /// The agent's phone answered: the call is connected to the agent.
    Answered,
    /// No answer within the ring timeout.
    NoAnswer,
    /// The phone refused (busy, decline ...).
    Rejected,
    /// The phone could not be reached (not registered, no route).
    Unreachable,
    /// The call could not ring this agent (it was connected already, or that agent's
    /// phone already rang for it): the offer is withdrawn without counting as a miss.
    NotRung,
}

/// Who waits for an agent, as the ACD keeps it: shown to the agent offered the call.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Caller number.
    pub number: String,
    /// Caller display name.
    pub name: String,
    /// Customer data for the agent (call variables, plug-in data).
    pub data: Variables,
    /// Where the ACD answers the call.
    pub tx: mpsc::Sender<AcdToCall>,
}

/// What a call actor tells the ACD.
#[derive(Debug)]
pub enum CallToAcd {
    /// A caller enters a queue.
    Queue {
        /// Key from [`next_call_key`].
        call: CallKey,
        /// Queue name.
        queue: String,
        /// Caller priority (higher first).
        priority: i32,
        /// Extra requirements for this caller.
        requirements: Vec<Requirement>,
        /// Who calls, and where the ACD answers.
        caller: Caller,
    },
    /// A caller transferred to one named agent (waits until that agent is ready).
    ToAgent {
        /// Key from [`next_call_key`].
        call: CallKey,
        /// The agent.
        agent: AgentId,
        /// Who calls, and where the ACD answers.
        caller: Caller,
    },
    /// The result of ringing one agent.
    Ring {
        /// Call.
        call: CallKey,
        /// Agent.
        agent: AgentId,
        /// What happened.
        outcome: RingOutcome,
    },
    /// The caller hung up (waiting or ringing) or pressed the queue's exit key.
    Left {
        /// Call.
        call: CallKey,
        /// True for the exit key (the ACD answers with the exit), false for a hang-up.
        exit_key: bool,
    },
    /// A connected call ended (either side).
    Ended {
        /// Call.
        call: CallKey,
    },
    /// The dialer reserves a ready agent for a campaign dial (`hold: true`) or releases
    /// it (`false`, when the dial connected or ended). A held agent stays ready but the
    /// router offers it no queued call; a call sent to it by name ([`CallToAcd::ToAgent`])
    /// still reaches it.
    Hold {
        /// Agent.
        agent: AgentId,
        /// Hold or release.
        hold: bool,
    },
    /// The dialer asks to hold an agent for a campaign (as [`CallToAcd::Hold`] with
    /// `hold: true`), with an answer: granted only when the agent is ready and not held
    /// already, so a dial never goes out for an agent the router has just offered a
    /// queued call. When granted and `preview` is given, the agent's event stream gets
    /// [`AgentEvent::Preview`]. Released with [`CallToAcd::Hold`] `hold: false`.
    Reserve {
        /// Agent.
        agent: AgentId,
        /// A preview campaign's contact to show once held.
        preview: Option<super::api::CallPreview>,
        /// The answer.
        reply: tokio::sync::oneshot::Sender<Result<(), HoldRefused>>,
    },
    /// Tell a held preview agent that the offer ended without a decision (sent before
    /// the hold's release).
    PreviewEnded {
        /// Agent.
        agent: AgentId,
        /// Campaign.
        campaign: String,
        /// The offer's attempt id.
        attempt: u64,
        /// Why.
        reason: String,
    },
}

/// Why the ACD refused to hold an agent for the dialer ([`CallToAcd::Reserve`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoldRefused {
    /// No agent with this id.
    #[error("unknown agent {0}")]
    UnknownAgent(AgentId),
    /// The agent is not ready (e.g. an inbound call was offered to it just before).
    #[error("agent {agent} is {state}, not ready")]
    NotReady {
        /// Agent.
        agent: AgentId,
        /// Its state.
        state: String,
    },
    /// The agent is held already (by another campaign's dial or offer).
    #[error("agent {0} is held already")]
    Held(AgentId),
}

/// What the ACD tells a call actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcdToCall {
    /// Ring this agent's phone for at most `timeout` and report a [`CallToAcd::Ring`].
    Ring {
        /// Agent.
        agent: AgentId,
        /// The phone.
        contact: VoiceContact,
        /// Ring timeout.
        timeout: Duration,
    },
    /// Stop ringing this agent (another one answered, or the offer was withdrawn).
    CancelRing {
        /// Agent.
        agent: AgentId,
    },
    /// Leave the queue for this target (max wait, no agents, full queue, exit key).
    Exit(ExitTarget),
    /// The connected agent transfers the caller (gRPC `Transfer`).
    Transfer(super::api::TransferTarget),
    /// Tell the caller its place in the queue (1 = next) and the expected wait, rounded
    /// up to the minute for speaking (`None` when the queue has no estimate).
    Announce {
        /// 1-based position.
        position: usize,
        /// Expected wait, rounded up to whole minutes.
        wait: Option<Duration>,
    },
}

/// Handle time assumed before a queue has any history (for the expected wait).
pub const DEFAULT_AHT: Duration = Duration::from_secs(180);

/// Everything the ACD task receives.
#[derive(Debug)]
enum Input {
    Command(AcdCommand),
    Call(CallToAcd),
}

/// The address call actors use.
#[derive(Debug, Clone)]
pub struct AcdCalls {
    tx: mpsc::Sender<CallToAcd>,
}

impl AcdCalls {
    /// Sends an event without waiting; `false` when the ACD is gone or overloaded (the
    /// caller then treats the queue as unavailable).
    pub fn send(&self, ev: CallToAcd) -> bool {
        self.tx.try_send(ev).is_ok()
    }
}

#[derive(Debug)]
struct Waiting {
    queue: Arc<QueueConfig>,
    queued_at: Instant,
    priority: i32,
    requirements: Vec<Requirement>,
    caller: Caller,
    /// Agents excluded until an instant (retry delay after a miss).
    excluded: Vec<(AgentId, Instant)>,
    ringing: Vec<AgentId>,
    ringing_since: Option<Instant>,
    /// Next position / expected-wait announcement.
    next_position: Option<Instant>,
    /// Transferred to this agent only (not routed by the router).
    direct: Option<AgentId>,
}

#[derive(Debug)]
struct Connected {
    agent: AgentId,
    queue: Arc<QueueConfig>,
    tx: mpsc::Sender<AcdToCall>,
    since: Instant,
}

struct AgentSlot {
    config: Arc<AgentConfig>,
    fsm: Agent,
    events: broadcast::Sender<AgentEvent>,
    queues: Vec<QueueName>,
}

/// The ACD task's state (see the module doc).
pub struct AcdTask {
    config: Arc<AcdConfig>,
    agents: BTreeMap<AgentId, AgentSlot>,
    waiting: BTreeMap<CallKey, Waiting>,
    connected: HashMap<CallKey, Connected>,
    last_offered: HashMap<QueueName, AgentId>,
    /// Recent handle times per queue (expected wait).
    handle_times: HashMap<QueueName, super::ewt::HandleTimes>,
    store: Option<Arc<dyn Store>>,
    bus: EventBus,
    seed: u64,
    /// The call each agent in wrap-up wrapped (for the disposition event).
    wrapping: HashMap<AgentId, CallKey>,
    /// Agents the dialer holds for a campaign dial (hidden from the router).
    held: std::collections::HashSet<AgentId>,
    /// The last [`RECENT_CALLS`] calls each agent answered, oldest first (dispositions).
    recent: HashMap<AgentId, std::collections::VecDeque<CallKey>>,
}

impl std::fmt::Debug for AcdTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcdTask")
            .field("agents", &self.agents.len())
            .field("waiting", &self.waiting.len())
            .field("connected", &self.connected.len())
            .finish_non_exhaustive()
    }
}

/// Why an agent changed, as the event bus names it.
fn cause(reason: &ChangeReason) -> &'static str {
    match reason {
        ChangeReason::Client => "client",
        ChangeReason::Supervisor => "supervisor",
        ChangeReason::Offered => "offered",
        ChangeReason::Answered => "answered",
        ChangeReason::Missed(_) => "missed",
        ChangeReason::Cancelled => "cancelled",
        ChangeReason::CallEnded => "call_ended",
        ChangeReason::WrapUpEnded { .. } => "wrap_up_ended",
        ChangeReason::WrapUpTimeout => "wrap_up_timeout",
    }
}

/// Day number (UTC) for the agents' daily figures.
fn day_of(wall_ms: u64) -> u32 {
    (wall_ms / 86_400_000) as u32
}

impl AcdTask {
    /// A task over `config`, restoring agents from `store` (a logged-in agent comes back
    /// not ready "restart").
    pub fn new(
        config: Arc<AcdConfig>,
        store: Option<Arc<dyn Store>>,
        bus: EventBus,
        now: Instant,
    ) -> AcdTask {
        let reasons: Arc<[String]> = config.reasons.clone().into();
        let day = day_of(crate::call::unix_ms());
        let mut agents = BTreeMap::new();
        for cfg in &config.agents {
            let fsm = match store.as_deref() {
                Some(s) => match Agent::load(cfg, reasons.clone(), s, now, day) {
                    Ok(a) => a,
                    Err(e) => {
                        warn!(agent = %cfg.id, error = %e, "agent record unreadable: starting logged out");
                        Agent::new(cfg, reasons.clone(), now, day)
                    }
                },
                None => Agent::new(cfg, reasons.clone(), now, day),
            };
            let queues = config.queues_of(&cfg.id).map(|q| q.name.clone()).collect();
            agents.insert(
                cfg.id.clone(),
                AgentSlot {
                    config: cfg.clone(),
                    fsm,
                    events: broadcast::channel(AGENT_STREAM).0,
                    queues,
                },
            );
        }
        AcdTask {
            config,
            agents,
            waiting: BTreeMap::new(),
            connected: HashMap::new(),
            last_offered: HashMap::new(),
            handle_times: HashMap::new(),
            store,
            bus,
            seed: rand::random(),
            wrapping: HashMap::new(),
            held: Default::default(),
            recent: HashMap::new(),
        }
    }

    /// Starts the task; returns the API handle and the call actors' handle.
    pub fn spawn(self) -> (super::api::AcdHandle, AcdCalls) {
        let (cmd_tx, cmd_rx) = mpsc::channel(256);
        let (call_tx, call_rx) = mpsc::channel(4096);
        tokio::spawn(self.run(cmd_rx, call_rx));
        (super::api::AcdHandle::new(cmd_tx), AcdCalls { tx: call_tx })
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<AcdCommand>,
        mut calls: mpsc::Receiver<CallToAcd>,
    ) {
        let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
        let sleep = tokio::time::sleep_until(far());
        tokio::pin!(sleep);
        loop {
            let deadline = self.poll_timeout(tokio::time::Instant::now().into_std());
            sleep.as_mut().reset(
                deadline
                    .map(tokio::time::Instant::from_std)
                    .unwrap_or_else(far),
            );
            let input = tokio::select! {
                c = commands.recv() => match c {
                    Some(c) => Some(Input::Command(c)),
                    None => break,
                },
                c = calls.recv() => match c {
                    Some(c) => Some(Input::Call(c)),
                    None => break,
                },
                _ = &mut sleep => None,
            };
            let now = tokio::time::Instant::now().into_std();
            match input {
                Some(Input::Command(c)) => self.handle_command(now, c),
                Some(Input::Call(c)) => self.handle_call(now, c),
                None => self.handle_timeout(now),
            }
            self.route_pass(now);
        }
        debug!("ACD task stopped");
    }

    /// The earliest deadline: wrap-up ends, retry delays, max waits, and the router's
    /// own (relaxation steps, ring-progressively) at `now`.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let mut d: Option<Instant> = None;
        let mut consider = |t: Instant| d = Some(d.map_or(t, |d: Instant| d.min(t)));
        for a in self.agents.values() {
            if let Some(t) = a.fsm.poll_timeout() {
                consider(t);
            }
        }
        for w in self.waiting.values() {
            for (_, until) in &w.excluded {
                consider(*until);
            }
            if let Some(max) = w.queue.max_wait {
                consider(w.queued_at + max);
            }
            if let Some(t) = w.next_position {
                consider(t);
            }
        }
        if !self.waiting.is_empty() {
            if let Some(t) = router::next_wakeup(&self.snapshot(now)) {
                consider(t);
            }
        }
        d
    }

    /// Deadlines reached at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let ids: Vec<AgentId> = self.agents.keys().cloned().collect();
        for id in ids {
            let change = self
                .agents
                .get_mut(&id)
                .and_then(|a| a.fsm.handle_timeout(now));
            if let Some(c) = change {
                self.applied(now, &id, c);
            }
        }
        for w in self.waiting.values_mut() {
            w.excluded.retain(|(_, until)| *until > now);
        }
        let expired: Vec<CallKey> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.queue.max_wait.is_some_and(|m| now >= w.queued_at + m))
            .map(|(k, _)| *k)
            .collect();
        for call in expired {
            info!(call, "maximum wait reached: caller leaves the queue");
            self.exit(now, call, "max_wait");
        }
        let due: Vec<CallKey> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.next_position.is_some_and(|t| t <= now) && w.ringing.is_empty())
            .map(|(k, _)| *k)
            .collect();
        for call in due {
            self.announce(now, call);
        }
        for w in self.waiting.values_mut() {
            if let (Some(t), Some(every)) = (w.next_position, w.queue.position_every) {
                if t <= now {
                    w.next_position = Some(now + every);
                }
            }
        }
    }

    /// The caller's place in its queue (1 = next): callers ahead have a higher
    /// priority, or the same priority and a longer wait.
    pub fn position(&self, call: CallKey) -> Option<usize> {
        let w = self.waiting.get(&call)?;
        let ahead = self
            .waiting
            .iter()
            .filter(|(k, o)| {
                **k != call
                    && o.queue.name == w.queue.name
                    && (o.priority > w.priority
                        || o.priority == w.priority && (o.queued_at, **k) < (w.queued_at, call))
            })
            .count();
        Some(ahead + 1)
    }

    /// The expected wait of the caller at `position` in `queue` (see [`super::ewt`]).
    pub fn expected_wait(&self, now: Instant, queue: &QueueConfig, position: usize) -> Duration {
        let views: Vec<AgentView> = self
            .agents
            .values()
            .filter(|a| !matches!(a.fsm.state(), AgentState::LoggedOut))
            .map(|a| a.fsm.view(now))
            .collect();
        let staffed = super::ewt::staffed(queue, &views);
        let aht = self.handle_times.get(&queue.name).and_then(|h| h.average());
        super::ewt::estimate(position, staffed, aht, DEFAULT_AHT)
    }

    fn announce(&mut self, now: Instant, call: CallKey) {
        let Some(position) = self.position(call) else {
            return;
        };
        let Some(w) = self.waiting.get(&call) else {
            return;
        };
        let wait = self.expected_wait(now, &w.queue, position);
        let wait = super::ewt::round_for_announcement(wait, super::ewt::MINUTE);
        debug!(
            call,
            position,
            wait_s = wait.as_secs(),
            "position announcement"
        );
        let _ = w.caller.tx.try_send(AcdToCall::Announce {
            position,
            wait: Some(wait),
        });
    }

    /// Handles one command from the agent API.
    pub fn handle_command(&mut self, now: Instant, cmd: AcdCommand) {
        match cmd {
            AcdCommand::LogIn { agent, reply } => {
                let r = self.apply(now, &agent, Fsm::LogIn { ready: false }, "log in");
                let _ = reply.send(r);
            }
            AcdCommand::LogOut { agent, reply } => {
                let r = self.apply(now, &agent, Fsm::LogOut, "log out");
                let _ = reply.send(r);
            }
            AcdCommand::SetReady { agent, reply } => {
                let r = self.apply(now, &agent, Fsm::SetReady, "set ready");
                let _ = reply.send(r);
            }
            AcdCommand::SetNotReady {
                agent,
                reason,
                reply,
            } => {
                let r = if self.config.has_reason(&reason) {
                    self.apply(now, &agent, Fsm::SetNotReady { reason }, "set not ready")
                } else {
                    Err(AcdError::UnknownReason(
                        reason,
                        self.config.reasons.join(", "),
                    ))
                };
                let _ = reply.send(r);
            }
            AcdCommand::EndWrapUp {
                agent,
                disposition,
                note,
                reply,
            } => {
                let r = self.apply(
                    now,
                    &agent,
                    Fsm::EndWrapUp {
                        disposition: Some(disposition.clone()).filter(|d| !d.is_empty()),
                        note: Some(note.clone()).filter(|n| !n.is_empty()),
                    },
                    "end wrap-up",
                );
                if let (Ok(_), Some(call)) = (&r, self.wrapping.remove(&agent)) {
                    self.bus.publish(Event::Disposition {
                        agent: agent.to_string(),
                        call,
                        disposition,
                        note,
                    });
                }
                let _ = reply.send(r);
            }
            AcdCommand::SetDisposition {
                agent,
                call,
                disposition,
                note,
                reply,
            } => {
                let r = self.set_disposition(&agent, call, disposition, note);
                let _ = reply.send(r);
            }
            AcdCommand::Transfer {
                agent,
                target,
                reply,
            } => {
                let r = self.transfer(&agent, target);
                let _ = reply.send(r);
            }
            AcdCommand::Status { agent, reply } => {
                let r = self.status(now, &agent);
                let _ = reply.send(r);
            }
            AcdCommand::Snapshot { reply } => {
                let _ = reply.send(Ok(self.view(now)));
            }
            AcdCommand::Subscribe { agent, reply } => {
                let r = match (self.agents.get(&agent), self.status(now, &agent)) {
                    (Some(slot), Ok(st)) => {
                        let rx = slot.events.subscribe();
                        let _ = slot.events.send(AgentEvent::State(st));
                        Ok(rx)
                    }
                    (_, Err(e)) => Err(e),
                    (None, _) => Err(AcdError::UnknownAgent(agent.to_string())),
                };
                let _ = reply.send(r);
            }
        }
    }

    /// Handles one event from a call actor.
    pub fn handle_call(&mut self, now: Instant, ev: CallToAcd) {
        match ev {
            CallToAcd::Queue {
                call,
                queue,
                priority,
                requirements,
                caller,
            } => self.enqueue(now, call, &queue, priority, requirements, caller),
            CallToAcd::ToAgent {
                call,
                agent,
                caller,
            } => self.enqueue_direct(now, call, agent, caller),
            CallToAcd::Ring {
                call,
                agent,
                outcome,
            } => self.ring_result(now, call, agent, outcome),
            CallToAcd::Left { call, exit_key } => {
                if exit_key {
                    self.exit(now, call, "exit_key");
                } else {
                    self.abandoned(now, call);
                }
            }
            CallToAcd::Ended { call } => self.ended(now, call),
            CallToAcd::Hold { agent, hold } => {
                debug!(agent = %agent, hold, "dialer hold");
                if hold {
                    self.held.insert(agent);
                } else {
                    self.held.remove(&agent);
                }
            }
            CallToAcd::PreviewEnded {
                agent,
                campaign,
                attempt,
                reason,
            } => self.agent_event(
                &agent,
                AgentEvent::PreviewEnded {
                    campaign,
                    attempt,
                    reason,
                },
            ),
            CallToAcd::Reserve {
                agent,
                preview,
                reply,
            } => {
                let r = self.reserve(&agent);
                match &r {
                    Ok(()) => {
                        debug!(agent = %agent, "dialer hold granted");
                        if let Some(p) = preview {
                            self.agent_event(&agent, AgentEvent::Preview(p));
                        }
                    }
                    Err(e) => info!(agent = %agent, reason = %e, "dialer hold refused"),
                }
                if reply.send(r.clone()).is_err() && r.is_ok() {
                    // The dialer gave up waiting: hold nothing for it.
                    self.held.remove(&agent);
                }
            }
        }
    }

    /// Holds a ready agent for the dialer ([`CallToAcd::Reserve`]).
    fn reserve(&mut self, agent: &AgentId) -> Result<(), HoldRefused> {
        let Some(slot) = self.agents.get(agent) else {
            return Err(HoldRefused::UnknownAgent(agent.clone()));
        };
        if !matches!(slot.fsm.state(), AgentState::Ready) {
            return Err(HoldRefused::NotReady {
                agent: agent.clone(),
                state: slot.fsm.state().to_string(),
            });
        }
        if !self.held.insert(agent.clone()) {
            return Err(HoldRefused::Held(agent.clone()));
        }
        Ok(())
    }

    fn enqueue(
        &mut self,
        now: Instant,
        call: CallKey,
        queue: &str,
        priority: i32,
        requirements: Vec<Requirement>,
        caller: Caller,
    ) {
        let Some(q) = self.config.queue(queue).cloned() else {
            warn!(queue, "call sent to an unknown queue: hanging up");
            let _ = caller.tx.try_send(AcdToCall::Exit(ExitTarget::Hangup(vec![
                "transfer-unavailable".into(),
            ])));
            return;
        };
        let label = q.name.to_string();
        let staffed = self
            .agents
            .values()
            .any(|a| a.queues.contains(&q.name) && !matches!(a.fsm.state(), AgentState::LoggedOut));
        let full = q.max_len.is_some_and(|max| {
            self.waiting
                .values()
                .filter(|w| w.queue.name == q.name)
                .count()
                >= max
        });
        let reason = if !staffed {
            Some("no_agents")
        } else if full {
            Some("full")
        } else {
            None
        };
        if let Some(reason) = reason {
            info!(queue = %label, reason, "caller not queued: exit");
            metrics::counter!(m::ACD_EXITS, "queue" => label, "reason" => reason).increment(1);
            let _ = caller.tx.try_send(AcdToCall::Exit(q.exit.clone()));
            // Offered to the queue, never joined it: the monitor counts it turned away.
            self.publish_queue(&q.name, call, reason, Duration::ZERO, priority, None);
            return;
        }
        metrics::counter!(m::ACD_QUEUED, "queue" => label.clone()).increment(1);
        metrics::gauge!(m::ACD_WAITING, "queue" => label).increment(1.0);
        info!(call, queue = %q.name, "caller queued");
        let first_position = q.position_every.map(|_| now);
        let name = q.name.clone();
        self.waiting.insert(
            call,
            Waiting {
                queue: q,
                queued_at: now,
                priority,
                requirements,
                caller,
                excluded: Vec::new(),
                ringing: Vec::new(),
                ringing_since: None,
                next_position: first_position,
                direct: None,
            },
        );
        // After the insert: `waiting` counts this call.
        self.publish_queue(&name, call, "joined", Duration::ZERO, priority, None);
    }

    /// A caller transferred to one agent: waits (with the agent's first queue's
    /// settings: ring timeout, wrap-up, music, exit) until that agent is ready.
    #[allow(clippy::too_many_arguments)]
    fn enqueue_direct(&mut self, now: Instant, call: CallKey, agent: AgentId, caller: Caller) {
        let queue = self.agents.get(&agent).and_then(|a| {
            let logged_in = !matches!(a.fsm.state(), AgentState::LoggedOut);
            let name = a.queues.first()?;
            logged_in
                .then(|| self.config.queue(name).cloned())
                .flatten()
        });
        let Some(q) = queue else {
            info!(agent = %agent, "transfer to an agent who is logged out or in no queue");
            let _ = caller.tx.try_send(AcdToCall::Exit(ExitTarget::Hangup(vec![
                "transfer-unavailable".into(),
            ])));
            return;
        };
        info!(call, agent = %agent, "caller waits for one agent (transfer)");
        metrics::gauge!(m::ACD_WAITING, "queue" => q.name.to_string()).increment(1.0);
        let name = q.name.clone();
        self.waiting.insert(
            call,
            Waiting {
                queue: q,
                queued_at: now,
                priority: 0,
                requirements: Vec::new(),
                caller,
                excluded: Vec::new(),
                ringing: Vec::new(),
                ringing_since: None,
                next_position: None,
                direct: Some(agent),
            },
        );
        self.publish_queue(&name, call, "joined", Duration::ZERO, 0, None);
    }

    fn remove_waiting(&mut self, call: CallKey) -> Option<Waiting> {
        let w = self.waiting.remove(&call)?;
        metrics::gauge!(m::ACD_WAITING, "queue" => w.queue.name.to_string()).decrement(1.0);
        Some(w)
    }

    fn exit(&mut self, now: Instant, call: CallKey, reason: &'static str) {
        let Some(w) = self.remove_waiting(call) else {
            return;
        };
        self.withdraw_ringing(now, call, &w);
        metrics::counter!(m::ACD_EXITS, "queue" => w.queue.name.to_string(), "reason" => reason)
            .increment(1);
        let waited = now.saturating_duration_since(w.queued_at);
        self.publish_queue(&w.queue.name, call, reason, waited, w.priority, None);
        let _ = w.caller.tx.try_send(AcdToCall::Exit(w.queue.exit.clone()));
    }

    /// The caller hung up while waiting or ringing.
    fn abandoned(&mut self, now: Instant, call: CallKey) {
        if let Some(w) = self.remove_waiting(call) {
            info!(call, queue = %w.queue.name, waited_ms = now.saturating_duration_since(w.queued_at).as_millis() as u64, "caller abandoned");
            metrics::counter!(m::ACD_ABANDONED, "queue" => w.queue.name.to_string()).increment(1);
            self.withdraw_ringing(now, call, &w);
            let waited = now.saturating_duration_since(w.queued_at);
            self.publish_queue(&w.queue.name, call, "abandoned", waited, w.priority, None);
        } else if self.connected.contains_key(&call) {
            self.ended(now, call);
        }
    }

    /// Cancels the offers of a call that leaves the queue (the agents go back to ready).
    fn withdraw_ringing(&mut self, now: Instant, call: CallKey, w: &Waiting) {
        for agent in &w.ringing {
            let _ = w.caller.tx.try_send(AcdToCall::CancelRing {
                agent: agent.clone(),
            });
            let _ = self.apply(now, agent, Fsm::OfferCancelled(call), "cancel offer");
            self.agent_event(agent, AgentEvent::Ended { call });
        }
    }

    fn ring_result(&mut self, now: Instant, call: CallKey, agent: AgentId, outcome: RingOutcome) {
        let Some(w) = self.waiting.get_mut(&call) else {
            // The call left meanwhile; the agent was already released.
            return;
        };
        w.ringing.retain(|a| *a != agent);
        if w.ringing.is_empty() {
            w.ringing_since = None;
        }
        match outcome {
            RingOutcome::NotRung => {
                debug!(call, agent = %agent, "offer not rung: withdrawn");
                let _ = self.apply(now, &agent, Fsm::OfferCancelled(call), "cancel offer");
                self.agent_event(&agent, AgentEvent::Ended { call });
            }
            RingOutcome::Answered => {
                let Some(w) = self.remove_waiting(call) else {
                    return;
                };
                let waited = now.saturating_duration_since(w.queued_at);
                metrics::counter!(m::ACD_ANSWERED, "queue" => w.queue.name.to_string())
                    .increment(1);
                metrics::histogram!(m::ACD_WAIT_SECONDS, "queue" => w.queue.name.to_string())
                    .record(waited.as_secs_f64());
                info!(call, agent = %agent, queue = %w.queue.name, waited_ms = waited.as_millis() as u64, "call connected to agent");
                for other in &w.ringing {
                    let _ = w.caller.tx.try_send(AcdToCall::CancelRing {
                        agent: other.clone(),
                    });
                    let _ = self.apply(now, other, Fsm::OfferCancelled(call), "cancel offer");
                    self.agent_event(other, AgentEvent::Ended { call });
                }
                if let Err(e) = self.apply(now, &agent, Fsm::OfferAnswered(call), "answer") {
                    warn!(error = %e, "answer from an agent not reserved for the call");
                }
                self.agent_event(&agent, AgentEvent::Connected { call });
                let recent = self.recent.entry(agent.clone()).or_default();
                if recent.len() >= RECENT_CALLS {
                    recent.pop_front();
                }
                recent.push_back(call);
                self.publish_queue(
                    &w.queue.name,
                    call,
                    "answered",
                    waited,
                    w.priority,
                    Some(&agent),
                );
                self.connected.insert(
                    call,
                    Connected {
                        agent,
                        queue: w.queue.clone(),
                        tx: w.caller.tx,
                        since: now,
                    },
                );
            }
            RingOutcome::NoAnswer | RingOutcome::Rejected | RingOutcome::Unreachable => {
                let why = match outcome {
                    RingOutcome::NoAnswer => MissReason::NoAnswer,
                    RingOutcome::Rejected => MissReason::Rejected,
                    _ => MissReason::Unregistered,
                };
                let retry = w.queue.retry_delay;
                w.excluded.push((agent.clone(), now + retry));
                info!(call, agent = %agent, ?outcome, "offer missed");
                metrics::counter!(m::ACD_MISSED, "queue" => w.queue.name.to_string()).increment(1);
                if let Err(e) = self.apply(now, &agent, Fsm::OfferMissed { call, why }, "miss") {
                    warn!(error = %e, "miss from an agent not reserved for the call");
                }
                self.agent_event(&agent, AgentEvent::Ended { call });
            }
        }
    }

    /// Publishes a disposition for one of the agent's recent calls (any state; a later
    /// one for the same call replaces it downstream).
    fn set_disposition(
        &mut self,
        agent: &AgentId,
        call: Option<CallKey>,
        disposition: String,
        note: String,
    ) -> Result<CallKey, AcdError> {
        if !self.agents.contains_key(agent) {
            return Err(AcdError::UnknownAgent(agent.to_string()));
        }
        let code = disposition.trim();
        if code.is_empty()
            || code.chars().count() > MAX_DISPOSITION
            || code.chars().any(char::is_control)
        {
            return Err(AcdError::InvalidDisposition(format!(
                "disposition {disposition:?}: expected 1 to {MAX_DISPOSITION} characters, no control characters"
            )));
        }
        if note.chars().count() > MAX_NOTE {
            return Err(AcdError::InvalidDisposition(format!(
                "note: expected at most {MAX_NOTE} characters"
            )));
        }
        let recent = self.recent.get(agent);
        let found = match call {
            None => recent.and_then(|r| r.back().copied()),
            Some(c) => recent.and_then(|r| r.iter().rev().find(|k| **k == c).copied()),
        };
        let Some(call) = found else {
            let listed = recent
                .map(|r| {
                    r.iter()
                        .rev()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let listed = if listed.is_empty() {
                "none".into()
            } else {
                listed
            };
            return Err(AcdError::UnknownCall(match call {
                None => format!("agent {agent} has answered no call yet: nothing to dispose"),
                Some(c) => format!(
                    "call {c} is not one of agent {agent}'s last {RECENT_CALLS} calls (recent: {listed})"
                ),
            }));
        };
        info!(agent = %agent, call, disposition = %code, "disposition set");
        self.bus.publish(Event::Disposition {
            agent: agent.to_string(),
            call,
            disposition: code.to_string(),
            note,
        });
        Ok(call)
    }

    fn ended(&mut self, now: Instant, call: CallKey) {
        let Some(c) = self.connected.remove(&call) else {
            return;
        };
        let wrap_up = c.queue.wrap_up;
        self.handle_times
            .entry(c.queue.name.clone())
            .or_default()
            .record(now.saturating_duration_since(c.since), wrap_up);
        let _ = self.apply(now, &c.agent, Fsm::CallEnded { call, wrap_up }, "end call");
        self.wrapping.insert(c.agent.clone(), call);
        self.agent_event(&c.agent, AgentEvent::Ended { call });
        drop(c.tx);
    }

    /// Blind transfer of the agent's connected call: the call's actor does it (and then
    /// reports the call ended, which starts the agent's wrap-up).
    fn transfer(
        &mut self,
        agent: &AgentId,
        target: super::api::TransferTarget,
    ) -> Result<(), AcdError> {
        use super::api::TransferTarget;
        match &target {
            TransferTarget::Queue(q) if self.config.queue(q).is_none() => {
                return Err(AcdError::UnknownTarget(format!("queue {q}")))
            }
            TransferTarget::Agent(a) if !self.agents.contains_key(a) => {
                return Err(AcdError::UnknownTarget(format!("agent {a}")))
            }
            TransferTarget::Agent(a) if a == agent => {
                return Err(AcdError::UnknownTarget(format!(
                    "agent {a} (an agent cannot transfer a call to itself)"
                )))
            }
            TransferTarget::Number(n) if n.trim().is_empty() => {
                return Err(AcdError::UnknownTarget("an empty number".into()))
            }
            _ => {}
        }
        let Some((_, c)) = self.connected.iter().find(|(_, c)| c.agent == *agent) else {
            let state = self
                .agents
                .get(agent)
                .map(|a| a.fsm.state().to_string())
                .ok_or_else(|| AcdError::UnknownAgent(agent.to_string()))?;
            return Err(AcdError::InvalidTransition {
                agent: agent.to_string(),
                state,
                action: "transfer (no connected call)".into(),
            });
        };
        c.tx.try_send(AcdToCall::Transfer(target))
            .map_err(|_| AcdError::Stopped)
    }

    fn status(&self, now: Instant, agent: &AgentId) -> Result<AgentStatus, AcdError> {
        let slot = self
            .agents
            .get(agent)
            .ok_or_else(|| AcdError::UnknownAgent(agent.to_string()))?;
        Ok(AgentStatus {
            agent: agent.clone(),
            name: slot.config.name.clone(),
            state: slot.fsm.state().clone(),
            since: now.saturating_duration_since(slot.fsm.since()),
            queues: slot.queues.clone(),
        })
    }

    /// Applies an agent event; on success publishes and persists the change.
    fn apply(
        &mut self,
        now: Instant,
        agent: &AgentId,
        ev: Fsm,
        action: &str,
    ) -> Result<AgentStatus, AcdError> {
        let slot = self
            .agents
            .get_mut(agent)
            .ok_or_else(|| AcdError::UnknownAgent(agent.to_string()))?;
        let change = slot.fsm.handle(now, ev).map_err(|e| {
            debug!(agent = %agent, error = %e, "agent event refused");
            match e {
                super::agent::AgentError::UnknownReason { reason, .. } => {
                    AcdError::UnknownReason(reason, self.config.reasons.join(", "))
                }
                other => AcdError::InvalidTransition {
                    agent: agent.to_string(),
                    state: slot.fsm.state().to_string(),
                    action: format!("{action}: {other}"),
                },
            }
        })?;
        self.applied(now, agent, change);
        self.status(now, agent)
    }

    /// Publishes, persists and streams an applied change.
    fn applied(&mut self, now: Instant, agent: &AgentId, change: AgentChange) {
        info!(agent = %agent, from = %change.from, to = %change.to, "agent state");
        if let (Some(store), Some(slot)) = (self.store.as_deref(), self.agents.get(agent)) {
            if let Err(e) = slot.fsm.save(store, now, crate::call::unix_ms()) {
                warn!(agent = %agent, error = %e, "cannot save the agent's state");
            }
        }
        self.bus.publish(Event::AgentState {
            agent: agent.to_string(),
            from: change.from.to_string(),
            to: change.to.to_string(),
            state: change.to.clone(),
            cause: cause(&change.reason),
        });
        if let Ok(st) = self.status(now, agent) {
            self.agent_event(agent, AgentEvent::State(st));
        }
    }

    fn agent_event(&self, agent: &AgentId, ev: AgentEvent) {
        if let Some(slot) = self.agents.get(agent) {
            // No subscriber is fine; a lagging one learns it from its receiver.
            let _ = slot.events.send(ev);
        }
    }

    fn publish_queue(
        &self,
        queue: &QueueName,
        call: CallKey,
        change: &str,
        waited: Duration,
        priority: i32,
        agent: Option<&AgentId>,
    ) {
        let waiting = self
            .waiting
            .values()
            .filter(|w| w.queue.name == *queue)
            .count() as u32;
        self.bus.publish(Event::Queue {
            queue: queue.to_string(),
            call,
            change: change.to_string(),
            waiting,
            waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            priority,
            agent: agent.map(|a| a.to_string()),
        });
    }

    /// Everything the monitor shows, at `now` (see [`AcdView`]).
    pub fn view(&self, now: Instant) -> AcdView {
        let agents = self
            .agents
            .iter()
            .map(|(id, a)| ViewAgent {
                agent: id.clone(),
                name: a.config.name.clone(),
                state: a.fsm.state().clone(),
                since: now.saturating_duration_since(a.fsm.since()),
                queues: a.queues.clone(),
            })
            .collect();
        let queues = self
            .config
            .queues
            .iter()
            .map(|q| ViewQueue {
                queue: q.name.clone(),
                service_level: q.service_level,
                wrap_up: q.wrap_up,
                staffable: self
                    .agents
                    .values()
                    .filter(|a| super::ewt::staffed(q, &[a.fsm.view(now)]) == 1)
                    .map(|a| a.config.id.clone())
                    .collect(),
                handle_times: self.handle_times.get(&q.name).cloned().unwrap_or_default(),
                default_aht: DEFAULT_AHT,
            })
            .collect();
        let waiting = self
            .waiting
            .iter()
            .map(|(k, w)| ViewCall {
                call: *k,
                queue: w.queue.name.clone(),
                priority: w.priority,
                elapsed: now.saturating_duration_since(w.queued_at),
                agent: None,
            })
            .collect();
        let mut connected: Vec<ViewCall> = self
            .connected
            .iter()
            .map(|(k, c)| ViewCall {
                call: *k,
                queue: c.queue.name.clone(),
                priority: 0,
                elapsed: now.saturating_duration_since(c.since),
                agent: Some(c.agent.clone()),
            })
            .collect();
        connected.sort_by_key(|c| c.call);
        AcdView {
            bus_seq: self.bus.last_seq(),
            wall_ms: crate::call::unix_ms(),
            agents,
            queues,
            waiting,
            connected,
        }
    }

    /// The router's view of the ACD at `now`.
    pub fn snapshot(&self, now: Instant) -> AcdSnapshot {
        AcdSnapshot {
            now,
            queues: self.config.queues.clone(),
            waiting: self
                .waiting
                .iter()
                .filter(|(_, w)| w.direct.is_none())
                .map(|(k, w)| WaitingCall {
                    call: *k,
                    queue: w.queue.name.clone(),
                    queued_at: w.queued_at,
                    priority: w.priority,
                    requirements: w.requirements.clone(),
                    excluded: w
                        .excluded
                        .iter()
                        .filter(|(_, until)| *until > now)
                        .map(|(a, _)| a.clone())
                        .collect(),
                    ringing: w.ringing.clone(),
                    ringing_since: w.ringing_since,
                })
                .collect(),
            agents: self
                .agents
                .values()
                .filter(|a| !matches!(a.fsm.state(), AgentState::LoggedOut))
                .filter(|a| !self.held.contains(a.fsm.id()))
                .map(|a| a.fsm.view(now))
                .collect::<Vec<AgentView>>(),
            last_offered: self
                .last_offered
                .iter()
                .map(|(q, a)| (q.clone(), a.clone()))
                .collect(),
            seed: self.seed,
        }
    }

    /// Routes and offers: transferred calls go to their agent when it is ready; every
    /// router assignment reserves its agents and rings them.
    pub fn route_pass(&mut self, now: Instant) {
        if self.waiting.is_empty() {
            return;
        }
        let direct: Vec<super::Assignment> = self
            .waiting
            .iter()
            .filter_map(|(k, w)| {
                let agent = w.direct.as_ref()?;
                let free = w.ringing.is_empty()
                    && !w
                        .excluded
                        .iter()
                        .any(|(a, until)| a == agent && *until > now)
                    && self
                        .agents
                        .get(agent)
                        .is_some_and(|a| matches!(a.fsm.state(), AgentState::Ready));
                free.then(|| super::Assignment {
                    call: *k,
                    queue: w.queue.name.clone(),
                    agents: vec![agent.clone()],
                })
            })
            .collect();
        let snap = self.snapshot(now);
        let mut assignments = direct;
        assignments.extend(router::route(&snap));
        self.seed = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut withdrawn = Vec::new();
        for a in assignments {
            for agent in &a.agents {
                if self.apply(now, agent, Fsm::Offer(a.call), "offer").is_err() {
                    continue;
                }
                let Some(w) = self.waiting.get_mut(&a.call) else {
                    continue;
                };
                w.ringing.push(agent.clone());
                w.ringing_since.get_or_insert(now);
                let Some(slot) = self.agents.get(agent) else {
                    continue;
                };
                let ring = AcdToCall::Ring {
                    agent: agent.clone(),
                    contact: slot.config.contact.clone(),
                    timeout: w.queue.ring_timeout,
                };
                let offered = AgentEvent::Offered {
                    call: a.call,
                    caller_number: w.caller.number.clone(),
                    caller_name: w.caller.name.clone(),
                    queue: w.queue.name.clone(),
                    waited: now.saturating_duration_since(w.queued_at),
                    data: w.caller.data.clone(),
                };
                if w.caller.tx.try_send(ring).is_err() {
                    // The call's mailbox is full or gone: undo the offer whole, so the
                    // agent is not left reserved for a ring that never happens.
                    warn!(call = a.call, agent = %agent, "call actor unreachable: offer withdrawn");
                    w.ringing.retain(|r| r != agent);
                    if w.ringing.is_empty() {
                        w.ringing_since = None;
                    }
                    withdrawn.push((a.call, agent.clone()));
                    continue;
                }
                self.last_offered.insert(a.queue.clone(), agent.clone());
                info!(call = a.call, agent = %agent, queue = %a.queue, "offering call");
                self.agent_event(agent, offered);
            }
        }
        for (call, agent) in withdrawn {
            let _ = self.apply(now, &agent, Fsm::OfferCancelled(call), "cancel offer");
        }
    }

    /// Agents and their states (for tests and the monitor).
    pub fn agent_state(&self, agent: &str) -> Option<&AgentState> {
        self.agents.get(agent).map(|a| a.fsm.state())
    }

    /// Calls waiting.
    pub fn waiting_len(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acd::config::{parse_acd, AcdReferences};
    use crate::store::MemoryStore;
    use tokio::sync::oneshot;

    const CONFIG: &str = r#"
reasons = ["break", "lunch"]
[[queues]]
name = "sales"
skills = { sales = 2 }
ring_timeout_s = 15
retry_delay_s = 5
wrap_up_s = 10
position_every_s = 30
exit = { mailbox = "200" }
[[queues]]
name = "support"
skills = { support = 1 }
exit = { hangup = [] }
[[agents]]
id = "alice"
name = "Alice"
token = "ta"
skills = { sales = 3 }
max_no_answer = 2
phone = { uri = "sip:alice@127.0.0.1:5071" }
[[agents]]
id = "bob"
name = "Bob"
token = "tb"
skills = { sales = 2, support = 1 }
phone = { uri = "sip:bob@127.0.0.1:5072" }
"#;

    fn config() -> Arc<AcdConfig> {
        let v: toml::Value = toml::from_str(CONFIG).unwrap();
        let exists = |_: &str| true;
        let mut refs = AcdReferences::new(&exists);
        refs.mailboxes = vec!["200".into()];
        Arc::new(parse_acd(&v, "t.toml", &refs).expect("test config"))
    }

    fn task(now: Instant, store: Option<Arc<dyn Store>>) -> AcdTask {
        AcdTask::new(config(), store, EventBus::new(64), now)
    }

    fn ask<T>(
        t: &mut AcdTask,
        now: Instant,
        make: impl FnOnce(super::super::api::Reply<T>) -> AcdCommand,
    ) -> Result<T, AcdError> {
        let (tx, mut rx) = oneshot::channel();
        t.handle_command(now, make(tx));
        t.route_pass(now);
        rx.try_recv().expect("answered at once")
    }

    fn ready(t: &mut AcdTask, now: Instant, agent: &str) {
        let a: AgentId = agent.into();
        ask(t, now, |reply| AcdCommand::LogIn {
            agent: a.clone(),
            reply,
        })
        .unwrap();
        ask(t, now, |reply| AcdCommand::SetReady { agent: a, reply }).unwrap();
    }

    fn queue(t: &mut AcdTask, now: Instant, call: CallKey, q: &str) -> mpsc::Receiver<AcdToCall> {
        let (tx, rx) = mpsc::channel(16);
        t.handle_call(
            now,
            CallToAcd::Queue {
                call,
                queue: q.into(),
                priority: 0,
                requirements: Vec::new(),
                caller: Caller {
                    number: "555".into(),
                    name: "Caller".into(),
                    data: Variables::new(),
                    tx,
                },
            },
        );
        t.route_pass(now);
        rx
    }

    fn rung(rx: &mut mpsc::Receiver<AcdToCall>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            out.push(match m {
                AcdToCall::Ring { agent, .. } => format!("ring {agent}"),
                AcdToCall::CancelRing { agent } => format!("cancel {agent}"),
                AcdToCall::Exit(t) => format!("exit {t:?}"),
                AcdToCall::Transfer(t) => format!("transfer {t:?}"),
                AcdToCall::Announce { position, wait } => {
                    format!("announce {position} {:?}", wait.map(|w| w.as_secs()))
                }
            });
        }
        out
    }

    fn state(t: &AcdTask, agent: &str) -> AgentState {
        t.agent_state(agent).cloned().unwrap()
    }

    #[test]
    fn a_waiting_call_is_offered_in_the_same_step_an_agent_becomes_ready() {
        let t0 = Instant::now();
        let mut t = task(t0, None);
        let a: AgentId = "alice".into();
        ask(&mut t, t0, |reply| AcdCommand::LogIn {
            agent: a.clone(),
            reply,
        })
        .unwrap();
        let mut rx = queue(&mut t, t0, 1, "sales");
        assert!(rung(&mut rx).is_empty(), "alice is logged in but not ready");
        assert_eq!(t.waiting_len(), 1);
        ask(&mut t, t0, |reply| AcdCommand::SetReady { agent: a, reply }).unwrap();
        assert_eq!(rung(&mut rx), ["ring alice"]);
        assert_eq!(state(&t, "alice"), AgentState::Reserved(1));
    }

    #[test]
    fn an_offer_the_call_cannot_take_is_undone_and_the_agent_stays_ready() {
        let t0 = Instant::now();
        let mut t = task(t0, None);
        let a: AgentId = "alice".into();
        ask(&mut t, t0, |reply| AcdCommand::LogIn {
            agent: a.clone(),
            reply,
        })
        .unwrap();
        // The call's mailbox (capacity 1) is already full when alice becomes ready.
        let (tx, mut rx) = mpsc::channel(1);
        tx.try_send(AcdToCall::Announce {
            position: 1,
            wait: None,
        })
        .unwrap();
        t.handle_call(
            t0,
            CallToAcd::Queue {
                call: 3,
                queue: "sales".into(),
                priority: 0,
                requirements: Vec::new(),
                caller: Caller {
                    number: "555".into(),
                    name: "Caller".into(),
                    data: Variables::new(),
                    tx,
                },
            },
        );
        ask(&mut t, t0, |reply| AcdCommand::SetReady { agent: a, reply }).unwrap();
        assert_eq!(state(&t, "alice"), AgentState::Ready, "not left reserved");
        assert_eq!(t.waiting_len(), 1, "the call still waits");
        // Once the call reads its mailbox, the next pass offers it again.
        assert_eq!(rung(&mut rx), ["announce 1 None"]);
        t.route_pass(t0 + Duration::from_millis(1));
        assert_eq!(rung(&mut rx), ["ring alice"]);
        assert_eq!(state(&t, "alice"), AgentState::Reserved(3));
    }

    #[test]
    fn answered_then_ended_goes_through_wrap_up_back_to_ready() {
        let t0 = Instant::now();
        let mut t = task(t0, None);
        ready(&mut t, t0, "alice");
        let mut rx = queue(&mut t, t0, 7, "sales");
        assert_eq!(rung(&mut rx), ["ring alice"]);
        t.handle_call(
            t0,
            CallToAcd::Ring {
                call: 7,
                agent: "alice".into(),
                outcome: RingOutcome::Answered,
            },
        );
        assert_eq!(state(&t, "alice"), AgentState::OnCall(7));
        assert_eq!(t.waiting_len(), 0);
        t.handle_call(t0 + Duration::from_secs(60), CallToAcd::Ended { call: 7 });
        assert_eq!(state(&t, "alice"), AgentState::WrapUp);
        let end = t.poll_timeout(t0).expect("wrap-up deadline");
        assert_eq!(end, t0 + Duration::from_secs(70), "sales has 10 s wrap-up");
        t.handle_timeout(end);
        assert_eq!(state(&t, "alice"), AgentState::Ready);
    }

    #[test]
    fn a_held_agent_gets_no_queued_call_until_released_but_a_call_by_name() {
        let t0 = Instant::now();
        let mut t = task(t0, None);
        ready(&mut t, t0, "alice");
        let hold = |t: &mut AcdTask, hold| {
            t.handle_call(
                t0,
                CallToAcd::Hold {
                    agent: "alice".into(),
                    hold,
                },
            );
            t.route_pass(t0);
        };
        hold(&mut t, true);
        let mut rx = queue(&mut t, t0, 1, "sales");
        assert!(rung(&mut rx).is_empty(), "held for a campaign dial");
        assert_eq!(state(&t, "alice"), AgentState::Ready);
        // The dial's person, sent to alice by name, reaches her.
        let (tx, mut direct) = mpsc::channel(4);
        t.handle_call(
            t0,
            CallToAcd::ToAgent {
                call: 2,
                agent: "alice".into(),
                caller: Caller {
                    number: "+48601000001".into(),
                    name: String::new(),
                    data: Variables::new(),
                    tx,
                },
            },
        );
        t.route_pass(t0);
        assert_eq!(rung(&mut direct), ["ring alice"]);
        // That person hangs up: alice is ready, still held, and gets no queued call.
        t.handle_call(
            t0,
            CallToAcd::Left {
                call: 2,
                exit_key: false,
            },
        );
        t.route_pass(t0);
        assert_eq!(state(&t, "alice"), AgentState::Ready);
        assert!(rung(&mut rx).is_empty(), "still held");
        hold(&mut t, false);
        assert_eq!(rung(&mut rx), ["ring alice"], "released: the queued call");
    }

    /// Asks for a dialer hold of `agent` and returns the answer.
    fn reserve(
        t: &mut AcdTask,
        now: Instant,
        agent: &str,
        preview: Option<crate::acd::api::CallPreview>,
    ) -> Result<(), HoldRefused> {
        let (reply, mut rx) = oneshot::channel();
        t.handle_call(
            now,
            CallToAcd::Reserve {
                agent: agent.into(),
                preview,
                reply,
            },
        );
        t.route_pass(now);
        rx.try_recv().expect("answered at once")
    }

    #[test]
    fn a_hold_is_refused_when_the_router_offered_the_agent_a_call_just_before() {
        let t0 = Instant::now();
        let mut t = task(t0, None);
        ready(&mut t, t0, "alice");
        // An inbound call reaches alice first: she is reserved for it.
        let mut rx = queue(&mut t, t0, 1, "sales");
        assert_eq!(rung(&mut rx), ["ring alice"]);
        assert_eq!(state(&t, "alice"), AgentState::Reserved(1));
        // The dialer's hold arrives after: refused, nothing held.
        let r = reserve(&mut t, t0, "alice", None);
        assert!(
            matches!(&r, Err(HoldRefused::NotReady { agent, state }) if &**agent == "alice" && state.contains("reserved")),
            "{r:?}"
        );
        assert!(!t.held.contains("alice"));
        assert_eq!(
            reserve(&mut t, t0, "nobody", None),
            Err(HoldRefused::UnknownAgent("nobody".into()))
        );
    }

    #[test]
    fn a_granted_hold_shows_the_preview_hides_the_agent_and_refuses_a_second_hold() {
        let t0 = Instant::now();
        let mut t = task(t0, None);
        ready(&mut t, t0, "alice");
        let (tx, mut reply) = oneshot::channel();
        t.handle_command(
            t0,
            AcdCommand::Subscribe {
                agent: "alice".into(),
                reply: tx,
            },
        );
        let mut events = reply.try_recv().expect("answer").expect("subscribed");
        while events.try_recv().is_ok() {}
        let preview = crate::acd::api::CallPreview {
            campaign: "demo".into(),
            attempt: 4,
            number: "+48601000004".into(),
            name: "Dana".into(),
            columns: Variables::new(),
            script: "Hello".into(),
            deadline: Duration::from_secs(30),
        };
        assert_eq!(reserve(&mut t, t0, "alice", Some(preview.clone())), Ok(()));
        assert_eq!(events.try_recv().ok(), Some(AgentEvent::Preview(preview)));
        t.handle_call(
            t0,
            CallToAcd::PreviewEnded {
                agent: "alice".into(),
                campaign: "demo".into(),
                attempt: 4,
                reason: "timed out".into(),
            },
        );
        assert_eq!(
            events.try_recv().ok(),
            Some(AgentEvent::PreviewEnded {
                campaign: "demo".into(),
                attempt: 4,
                reason: "timed out".into()
            })
        );
        assert_eq!(
            reserve(&mut t, t0, "alice", None),
            Err(HoldRefused::Held("alice".into()))
        );
        // Held: a queued call waits.
        let mut rx = queue(&mut t, t0, 1, "sales");
        assert!(rung(&mut rx).is_empty());
        t.handle_call(
            t0,
            CallToAcd::Hold {
                agent: "alice".into(),
                hold: false,
            },
        );
        t.route_pass(t0);
        assert_eq!(rung(&mut rx), ["ring alice"]);
    }

    #[test]
    fn ending_a_wrap_up_publishes_the_disposition_of_the_wrapped_call() {
        let t0 = Instant::now();
        let bus = EventBus::new(64);
        let mut t = AcdTask::new(config(), None, bus.clone(), t0);
        let mut events = bus.subscribe();
        ready(&mut t, t0, "alice");
        let mut rx = queue(&mut t, t0, 7, "sales");
        assert_eq!(rung(&mut rx), ["ring alice"]);
        t.handle_call(
            t0,
            CallToAcd::Ring {
                call: 7,
                agent: "alice".into(),
                outcome: RingOutcome::Answered,
            },
        );
        t.handle_call(t0 + Duration::from_secs(60), CallToAcd::Ended { call: 7 });
        let end = |t: &mut AcdTask, now| {
            ask(t, now, |reply| AcdCommand::EndWrapUp {
                agent: "alice".into(),
                disposition: "sale".into(),
                note: "gold".into(),
                reply,
            })
        };
        end(&mut t, t0 + Duration::from_secs(61)).unwrap();
        // Refused when not in wrap-up: no second event.
        assert!(end(&mut t, t0 + Duration::from_secs(62)).is_err());
        let dispositions: Vec<Event> = std::iter::from_fn(|| events.try_recv().ok())
            .map(|e| e.event.clone())
            .filter(|e| matches!(e, Event::Disposition { .. }))
            .collect();
        assert_eq!(
            dispositions,
            [Event::Disposition {
                agent: "alice".into(),
                call: 7,
                disposition: "sale".into(),
                note: "gold".into(),
            }]
        );
    }

    #[test]
    fn set_disposition_reaches_the_agents_recent_calls_in_any_state() {
        let t0 = Instant::now();
        let bus = EventBus::new(256);
        let mut t = AcdTask::new(config(), None, bus.clone(), t0);
        let mut events = bus.subscribe();
        let set = |t: &mut AcdTask, agent: &str, call: Option<CallKey>, code: &str| {
            ask(t, t0, |reply| AcdCommand::SetDisposition {
                agent: agent.into(),
                call,
                disposition: code.into(),
                note: format!("note {code}"),
                reply,
            })
        };
        ready(&mut t, t0, "bob");
        // No call yet: nothing to dispose.
        assert!(matches!(
            set(&mut t, "bob", None, "sale"),
            Err(AcdError::UnknownCall(_))
        ));
        // Nine calls on "support" (no wrap-up time): each answered, then ended.
        for call in 1..=9 {
            let mut rx = queue(&mut t, t0, call, "support");
            assert_eq!(rung(&mut rx), ["ring bob"]);
            t.handle_call(
                t0,
                CallToAcd::Ring {
                    call,
                    agent: "bob".into(),
                    outcome: RingOutcome::Answered,
                },
            );
            if call == 9 {
                // On the call: accepted, and the state does not change.
                assert_eq!(set(&mut t, "bob", None, "callback"), Ok(9));
                assert_eq!(state(&t, "bob"), AgentState::OnCall(9));
            }
            t.handle_call(t0, CallToAcd::Ended { call });
            assert_eq!(state(&t, "bob"), AgentState::Ready, "no wrap-up");
        }
        // Ready after the call: the default is the most recent call; replacing works.
        assert_eq!(set(&mut t, "bob", None, "sale"), Ok(9));
        assert_eq!(set(&mut t, "bob", Some(2), "no_sale"), Ok(2));
        // Call 1 fell out of the last eight; 42 was never bob's; alice had none.
        let Err(AcdError::UnknownCall(msg)) = set(&mut t, "bob", Some(1), "sale") else {
            panic!("call 1 is no longer recent");
        };
        assert!(msg.contains("call 1") && msg.contains("9, 8, 7"), "{msg}");
        assert!(matches!(
            set(&mut t, "bob", Some(42), "sale"),
            Err(AcdError::UnknownCall(_))
        ));
        assert!(matches!(
            set(&mut t, "alice", Some(9), "sale"),
            Err(AcdError::UnknownCall(_))
        ));
        // Codes that do not validate.
        for bad in ["", "  ", "a\u{7}b", &"x".repeat(MAX_DISPOSITION + 1)] {
            assert!(
                matches!(
                    set(&mut t, "bob", None, bad),
                    Err(AcdError::InvalidDisposition(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            set(&mut t, "nobody", None, "sale"),
            Err(AcdError::UnknownAgent(_))
        ));
        let dispositions: Vec<(u64, String)> = std::iter::from_fn(|| events.try_recv().ok())
            .filter_map(|e| match &e.event {
                Event::Disposition {
                    agent,
                    call,
                    disposition,
                    note,
                } => {
                    assert_eq!(
                        (agent.as_str(), note.as_str()),
                        ("bob", &*format!("note {disposition}"))
                    );
                    Some((*call, disposition.clone()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            dispositions,
            [
                (9, "callback".to_string()),
                (9, "sale".to_string()),
                (2, "no_sale".to_string())
            ]
        );
    }

    #[test]
    fn a_missed_offer_goes_to_the_next_agent_and_max_no_answer_sets_not_ready() {
        let t0 = Instant::now();
        let mut t = task(t0, None);
        ready(&mut t, t0, "alice");
        let mut rx = queue(&mut t, t0, 1, "sales");
        assert_eq!(rung(&mut rx), ["ring alice"]);
        ready(&mut t, t0, "bob");
        assert!(
            rung(&mut rx).is_empty(),
            "the call is already ringing alice"
        );
        let miss = |t: &mut AcdTask, now, call| {
            t.handle_call(
                now,
                CallToAcd::Ring {
                    call,
                    agent: "alice".into(),
                    outcome: RingOutcome::NoAnswer,
                },
            );
            t.route_pass(now);
        };
        miss(&mut t, t0 + Duration::from_secs(15), 1);
        assert_eq!(rung(&mut rx), ["ring bob"], "excluded alice, bob is next");
        assert_eq!(state(&t, "alice"), AgentState::Ready);
        // A second call: alice (longest idle now that bob is reserved) misses again: her
        // second miss in a row (max_no_answer = 2) makes her not ready.
        let mut rx2 = queue(&mut t, t0 + Duration::from_secs(16), 2, "sales");
        assert_eq!(rung(&mut rx2), ["ring alice"]);
        miss(&mut t, t0 + Duration::from_secs(31), 2);
        assert_eq!(
            state(&t, "alice"),
            AgentState::NotReady(super::super::agent::REASON_NO_ANSWER.into())
        );
        assert!(rung(&mut rx2).is_empty(), "nobody else is free");
    }

    #[test]
    fn a_caller_hanging_up_while_ringing_frees_the_agent() {
        let t0 = Instant::now();
        let mut t = task(t0, None);
        ready(&mut t, t0, "bob");
        let mut rx = queue(&mut t, t0, 3, "support");
        assert_eq!(rung(&mut rx), ["ring bob"]);
        t.handle_call(
            t0,
            CallToAcd::Left {
                call: 3,
                exit_key: false,
            },
        );
        assert_eq!(rung(&mut rx), ["cancel bob"]);
        assert_eq!(state(&t, "bob"), AgentState::Ready);
        assert_eq!(t.waiting_len(), 0);
    }

    #[test]
    fn no_agent_logged_in_sends_the_caller_to_the_exit() {
        let t0 = Instant::now();
        let bus = EventBus::new(64);
        let mut t = AcdTask::new(config(), None, bus.clone(), t0);
        let mut events = bus.subscribe();
        let mut rx = queue(&mut t, t0, 1, "sales");
        assert_eq!(rung(&mut rx), ["exit Mailbox(\"200\")"]);
        assert_eq!(t.waiting_len(), 0);
        // The monitor learns the call was offered and turned away.
        let queue_events: Vec<(String, u32)> = std::iter::from_fn(|| events.try_recv().ok())
            .filter_map(|e| match &e.event {
                Event::Queue {
                    change, waiting, ..
                } => Some((change.clone(), *waiting)),
                _ => None,
            })
            .collect();
        assert_eq!(queue_events, [("no_agents".to_string(), 0)]);
    }

    #[test]
    fn refused_commands_name_the_state_and_change_nothing() {
        let t0 = Instant::now();
        let mut t = task(t0, None);
        let err = ask(&mut t, t0, |reply| AcdCommand::SetReady {
            agent: "alice".into(),
            reply,
        })
        .unwrap_err();
        assert!(
            matches!(&err, AcdError::InvalidTransition { state, .. } if state.contains("logged out")),
            "{err}"
        );
        assert_eq!(state(&t, "alice"), AgentState::LoggedOut);
        ready(&mut t, t0, "alice");
        let err = ask(&mut t, t0, |reply| AcdCommand::SetNotReady {
            agent: "alice".into(),
            reason: "nap".into(),
            reply,
        })
        .unwrap_err();
        assert!(matches!(err, AcdError::UnknownReason(..)), "{err}");
        assert_eq!(state(&t, "alice"), AgentState::Ready);
    }

    #[test]
    fn agent_states_survive_a_restart_through_the_store() {
        let t0 = Instant::now();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let mut t = task(t0, Some(store.clone()));
        ready(&mut t, t0, "alice");
        drop(t);
        let t = task(t0 + Duration::from_secs(5), Some(store));
        assert_eq!(
            state(&t, "alice"),
            AgentState::NotReady(super::super::agent::REASON_RESTART.into())
        );
        assert_eq!(state(&t, "bob"), AgentState::LoggedOut);
    }

    #[test]
    fn an_agent_transfers_its_connected_call_through_the_call_actor() {
        use super::super::api::TransferTarget;
        let t0 = Instant::now();
        let mut t = task(t0, None);
        ready(&mut t, t0, "alice");
        let err = ask(&mut t, t0, |reply| AcdCommand::Transfer {
            agent: "alice".into(),
            target: TransferTarget::Queue("support".into()),
            reply,
        })
        .unwrap_err();
        assert!(
            matches!(&err, AcdError::InvalidTransition { action, .. } if action.contains("no connected call")),
            "{err}"
        );
        let mut rx = queue(&mut t, t0, 9, "sales");
        assert_eq!(rung(&mut rx), ["ring alice"]);
        t.handle_call(
            t0,
            CallToAcd::Ring {
                call: 9,
                agent: "alice".into(),
                outcome: RingOutcome::Answered,
            },
        );
        let err = ask(&mut t, t0, |reply| AcdCommand::Transfer {
            agent: "alice".into(),
            target: TransferTarget::Queue("nowhere".into()),
            reply,
        })
        .unwrap_err();
        assert!(matches!(err, AcdError::UnknownTarget(_)), "{err}");
        ask(&mut t, t0, |reply| AcdCommand::Transfer {
            agent: "alice".into(),
            target: TransferTarget::Queue("support".into()),
            reply,
        })
        .unwrap();
        assert_eq!(rung(&mut rx), ["transfer Queue(\"support\")"]);
        // The actor then reports the call ended: alice goes to wrap-up.
        t.handle_call(t0 + Duration::from_secs(5), CallToAcd::Ended { call: 9 });
        assert_eq!(state(&t, "alice"), AgentState::WrapUp);
    }

    #[test]
    fn waiting_callers_hear_their_position_and_expected_wait() {
        let t0 = Instant::now();
        let mut t = task(t0, None);
        // alice is logged in (staffed) but not ready: calls wait.
        ask(&mut t, t0, |reply| AcdCommand::LogIn {
            agent: "alice".into(),
            reply,
        })
        .unwrap();
        let mut first = queue(&mut t, t0, 1, "sales");
        let mut second = queue(&mut t, t0 + Duration::from_secs(1), 2, "sales");
        assert_eq!(t.position(1), Some(1));
        assert_eq!(t.position(2), Some(2));
        t.handle_timeout(t0 + Duration::from_secs(1));
        // No history yet: 180 s per call and one staffed agent.
        assert_eq!(rung(&mut first), ["announce 1 Some(180)"]);
        assert_eq!(rung(&mut second), ["announce 2 Some(360)"]);
        // The next ones come position_every_s (30 s) later, not before.
        assert!(t.poll_timeout(t0 + Duration::from_secs(2)).is_some());
        t.handle_timeout(t0 + Duration::from_secs(20));
        assert!(rung(&mut first).is_empty());
        t.handle_timeout(t0 + Duration::from_secs(31));
        assert_eq!(rung(&mut first), ["announce 1 Some(180)"]);
        // A higher-priority caller goes ahead of both.
        let (tx, _vip) = mpsc::channel(16);
        t.handle_call(
            t0 + Duration::from_secs(40),
            CallToAcd::Queue {
                call: 3,
                queue: "sales".into(),
                priority: 5,
                requirements: Vec::new(),
                caller: Caller {
                    number: "1".into(),
                    name: String::new(),
                    data: Variables::new(),
                    tx,
                },
            },
        );
        assert_eq!(t.position(3), Some(1));
        assert_eq!(t.position(1), Some(2));
    }

    #[test]
    fn the_monitor_view_and_the_bus_events_tell_the_same_story() {
        let t0 = Instant::now();
        let bus = EventBus::new(64);
        let mut rx = bus.subscribe();
        let mut t = AcdTask::new(config(), None, bus.clone(), t0);
        ready(&mut t, t0, "alice");
        let mut call = queue(&mut t, t0, 4, "sales");
        assert_eq!(rung(&mut call), ["ring alice"]);
        let later = t0 + Duration::from_secs(3);
        let view = t.view(later);
        assert_eq!(view.bus_seq, bus.last_seq());
        let alice = &view.agents[0];
        assert_eq!(&*alice.agent, "alice");
        assert_eq!(alice.state, AgentState::Reserved(4));
        assert_eq!(alice.since, Duration::from_secs(3));
        assert_eq!(view.waiting.len(), 1);
        assert_eq!(view.waiting[0].elapsed, Duration::from_secs(3));
        let sales = &view.queues[0];
        assert_eq!(&*sales.queue, "sales");
        assert_eq!(sales.wrap_up, Duration::from_secs(10));
        let staffable: Vec<&str> = sales.staffable.iter().map(|a| &**a).collect();
        assert_eq!(staffable, ["alice", "bob"], "both have sales >= 2");
        assert_eq!(view.queues[1].staffable.len(), 1, "support: bob");
        t.handle_call(
            later,
            CallToAcd::Ring {
                call: 4,
                agent: "alice".into(),
                outcome: RingOutcome::Answered,
            },
        );
        let view = t.view(later);
        assert!(view.waiting.is_empty());
        assert_eq!(view.connected.len(), 1);
        assert_eq!(view.connected[0].agent.as_deref(), Some("alice"));
        let events: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| match &e.event {
                Event::AgentState {
                    agent,
                    state,
                    cause,
                    ..
                } => {
                    format!("{agent} {state} {cause}")
                }
                Event::Queue {
                    queue,
                    call,
                    change,
                    waiting,
                    waited_ms,
                    agent,
                    ..
                } => format!("{queue} {call} {change} {waiting} {waited_ms} {agent:?}"),
                Event::Mailbox(_) => "mailbox".into(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            events,
            [
                "alice not ready (login) client",
                "alice ready client",
                "sales 4 joined 1 0 None",
                "alice reserved for call 4 offered",
                "alice on call 4 answered",
                "sales 4 answered 0 3000 Some(\"alice\")",
            ]
        );
    }

    #[test]
    fn an_offer_the_call_could_not_ring_is_withdrawn_without_a_miss() {
        let t0 = Instant::now();
        let mut t = task(t0, None);
        ready(&mut t, t0, "alice");
        for call in [1, 2, 3] {
            let mut rx = queue(&mut t, t0, call, "sales");
            assert_eq!(rung(&mut rx), ["ring alice"]);
            t.handle_call(
                t0,
                CallToAcd::Ring {
                    call,
                    agent: "alice".into(),
                    outcome: RingOutcome::NotRung,
                },
            );
            // Back to ready each time: alice has max_no_answer = 2, three misses would
            // have made her not ready.
            assert_eq!(state(&t, "alice"), AgentState::Ready);
            t.handle_call(
                t0,
                CallToAcd::Left {
                    call,
                    exit_key: false,
                },
            );
        }
    }

    #[test]
    fn ring_all_the_first_answer_connects_the_others_are_withdrawn_without_a_miss() {
        let cfg = CONFIG.replace(
            "[[agents]]\nid = \"alice\"",
            "[[queues]]\nname = \"all\"\nstrategy = \"ring-all\"\nmembers = [\"alice\", \"bob\"]\n\
             [[agents]]\nid = \"alice\"",
        );
        let v: toml::Value = toml::from_str(&cfg).unwrap();
        let exists = |_: &str| true;
        let mut refs = AcdReferences::new(&exists);
        refs.mailboxes = vec!["200".into()];
        let cfg = Arc::new(parse_acd(&v, "t.toml", &refs).expect("test config"));
        let t0 = Instant::now();
        let mut t = AcdTask::new(cfg, None, EventBus::new(64), t0);
        ready(&mut t, t0, "alice");
        ready(&mut t, t0, "bob");
        let ring = |t: &mut AcdTask, now, call, agent: &str, outcome| {
            t.handle_call(
                now,
                CallToAcd::Ring {
                    call,
                    agent: agent.into(),
                    outcome,
                },
            );
            t.route_pass(now);
        };
        // Both ring at once; bob answers first: alice's offer is withdrawn, no miss.
        let mut rx = queue(&mut t, t0, 1, "all");
        assert_eq!(rung(&mut rx), ["ring alice", "ring bob"]);
        ring(&mut t, t0, 1, "bob", RingOutcome::Answered);
        assert_eq!(rung(&mut rx), ["cancel alice"]);
        assert_eq!(state(&t, "bob"), AgentState::OnCall(1));
        assert_eq!(state(&t, "alice"), AgentState::Ready);
        t.handle_call(t0, CallToAcd::Ended { call: 1 });
        assert_eq!(state(&t, "bob"), AgentState::Ready);
        // Nobody answers the next two calls: each rung agent counts a miss each time;
        // alice (max_no_answer = 2) goes not ready after the second, which shows the
        // withdrawn offer above was not counted.
        for (call, at) in [(2, 20), (3, 40)] {
            let now = t0 + Duration::from_secs(at);
            let mut rx = queue(&mut t, now, call, "all");
            assert_eq!(rung(&mut rx), ["ring alice", "ring bob"], "call {call}");
            let end = now + Duration::from_secs(15);
            ring(&mut t, end, call, "alice", RingOutcome::NoAnswer);
            ring(&mut t, end, call, "bob", RingOutcome::NoAnswer);
            t.handle_call(
                end,
                CallToAcd::Left {
                    call,
                    exit_key: false,
                },
            );
            assert!(
                rung(&mut rx).iter().all(|m| !m.starts_with("ring")),
                "both excluded after their miss"
            );
            if call == 2 {
                assert_eq!(state(&t, "alice"), AgentState::Ready, "one miss");
            }
        }
        assert_eq!(
            state(&t, "alice"),
            AgentState::NotReady(super::super::agent::REASON_NO_ANSWER.into())
        );
    }
}
