//! The monitor's live model (sans-IO): agents, queues, waiting calls, today's figures
//! and server figures, kept up to date from the event bus.
//!
//! Inputs: an [`AcdView`] to start from (or to re-synchronise with), then every
//! [`BusEvent`] in bus order ([`Model::handle_event`]), the server's figures
//! ([`Model::handle_server`]) and the clock ([`Model::handle_timeout`] at
//! [`Model::poll_timeout`], local midnight). Outputs: [`Change`]s numbered 1, 2, 3 ...
//! ([`Model::poll_change`]) and filtered [`Snapshot`]s. Time is always an input (the
//! events' `at_ms`, or `now_ms`); nothing here reads a clock.
//!
//! Invariants:
//! - a bus event whose `seq` is not the next after the last one applied (a gap), or a
//!   queue event whose `waiting` count differs from the model's, marks the model out of
//!   sync ([`Model::needs_resync`]); the owner then fetches a fresh [`AcdView`] and calls
//!   [`Model::resync`] (today's counters are kept);
//! - a queue's figures are emitted only when they differ from the last ones emitted;
//! - the daily counters reset at the first input at or after local midnight.
//!
//! ```
//! use caruso::acd::api::AcdView;
//! use caruso::monitor::{clock::LocalDays, model::{Filter, Model, ServerFigures}};
//! let view = AcdView { bus_seq: 0, wall_ms: 1_000, agents: vec![], queues: vec![],
//!     waiting: vec![], connected: vec![] };
//! let mut model = Model::new(&view, LocalDays::default(), ServerFigures::default());
//! model.handle_server(2_000, ServerFigures { active_calls: 1, registrations: 0 });
//! let change = model.poll_change().unwrap();
//! assert_eq!(change.seq, 1);
//! assert_eq!(model.snapshot(2_000, &Filter::all()).server.active_calls, 1);
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use jiff::civil::Date;

use super::clock::LocalDays;
use crate::acd::api::AcdView;
use crate::acd::ewt::{self, HandleTimes};
use crate::acd::{AgentId, AgentState, CallKey, QueueName};
use crate::events::{BusEvent, CampaignStats, Event};

/// What a client asks to see. Both lists empty: everything. Otherwise the queues named,
/// and the agents named plus every agent serving one of the queues named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    queues: Vec<String>,
    agents: Vec<String>,
}

impl Filter {
    /// Everything.
    pub fn all() -> Filter {
        Filter::default()
    }

    /// The queues and agents named (see the type's doc).
    pub fn new(queues: Vec<String>, agents: Vec<String>) -> Filter {
        Filter { queues, agents }
    }

    /// Whether it selects everything.
    pub fn is_all(&self) -> bool {
        self.queues.is_empty() && self.agents.is_empty()
    }

    /// The queues named.
    pub fn queues(&self) -> &[String] {
        &self.queues
    }

    /// The agents named.
    pub fn agents(&self) -> &[String] {
        &self.agents
    }

    /// Whether the queue is selected.
    pub fn wants_queue(&self, queue: &str) -> bool {
        self.is_all() || self.queues.iter().any(|q| q == queue)
    }

    /// Whether an agent serving `queues` is selected.
    pub fn wants_agent(&self, agent: &str, queues: &[QueueName]) -> bool {
        self.is_all()
            || self.agents.iter().any(|a| a == agent)
            || queues
                .iter()
                .any(|q| self.queues.iter().any(|f| **f == **q))
    }
}

/// One agent's live row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    /// Agent id.
    pub agent: AgentId,
    /// Display name.
    pub name: String,
    /// Current state.
    pub state: AgentState,
    /// The queue of the call being offered or talked on, when known.
    pub call_queue: Option<QueueName>,
    /// When it entered the state (ms since the Unix epoch).
    pub since_ms: u64,
    /// Queues it serves, in config order.
    pub queues: Vec<QueueName>,
}

/// A call waiting in a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRow {
    /// ACD call key.
    pub call: CallKey,
    /// Its queue.
    pub queue: QueueName,
    /// 1-based place in the queue (higher priority first, then longer wait).
    pub position: u32,
    /// Caller priority.
    pub priority: i32,
    /// When it entered the queue (ms since the Unix epoch).
    pub queued_at_ms: u64,
    /// Agents whose phones ring for it.
    pub ringing: Vec<AgentId>,
}

/// A queue's counters for today.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DailyCounts {
    /// Calls that entered the queue.
    pub offered: u32,
    /// Calls answered by an agent.
    pub answered: u32,
    /// Of those, answered within the service-level threshold.
    pub answered_within: u32,
    /// Callers who hung up while waiting or ringing.
    pub abandoned: u32,
    /// Calls sent to the queue's exit (max wait, exit key, other reasons).
    pub exited: u32,
    /// Calls turned away at entry (also counted in `offered`, not in the service level).
    pub turned_away: u32,
}

impl DailyCounts {
    /// Answered within the threshold / calls that finished waiting (answered +
    /// abandoned + exited); `None` before any call finished.
    pub fn service_level(&self) -> Option<f64> {
        let done = self.answered + self.abandoned + self.exited;
        (done > 0).then(|| f64::from(self.answered_within) / f64::from(done))
    }
}

/// A queue's figures (everything but its list of calls).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueFigures {
    /// Queue name.
    pub queue: QueueName,
    /// Calls waiting.
    pub waiting: u32,
    /// When the longest-waiting call entered the queue (ms since the Unix epoch).
    pub oldest_queued_at_ms: Option<u64>,
    /// Serving agents who are ready.
    pub agents_ready: u32,
    /// Serving agents who are reserved, on a call or in wrap-up.
    pub agents_busy: u32,
    /// Serving agents who are not ready.
    pub agents_away: u32,
    /// Today's counters.
    pub today: DailyCounts,
    /// Service-level threshold.
    pub threshold: Duration,
    /// Expected wait of a caller entering now ([`ewt::estimate`] at position
    /// `waiting + 1`).
    pub expected_wait: Duration,
}

impl QueueFigures {
    /// The longest current wait at `now_ms`.
    pub fn longest_wait(&self, now_ms: u64) -> Duration {
        self.oldest_queued_at_ms.map_or(Duration::ZERO, |t| {
            Duration::from_millis(now_ms.saturating_sub(t))
        })
    }
}

/// A queue: figures and waiting calls by position.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueView {
    /// Figures.
    pub figures: QueueFigures,
    /// Waiting calls, first = next to be served.
    pub calls: Vec<CallRow>,
}

/// The server's load figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerFigures {
    /// Calls up.
    pub active_calls: u64,
    /// Registered contacts.
    pub registrations: u64,
}

/// The (filtered) model at one sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The last change included.
    pub seq: u64,
    /// When it was taken (ms since the Unix epoch).
    pub at_ms: u64,
    /// The local date of the daily figures.
    pub today: Date,
    /// Agents by id.
    pub agents: Vec<AgentRow>,
    /// Queues in config order.
    pub queues: Vec<QueueView>,
    /// Outbound campaigns by name (as last published by the dialer).
    pub campaigns: Vec<CampaignStats>,
    /// Server figures.
    pub server: ServerFigures,
}

/// Why a call left its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An agent answered.
    Answered,
    /// The caller hung up.
    Abandoned,
    /// Maximum wait: sent to the exit.
    MaxWait,
    /// The caller pressed the exit key.
    ExitKey,
    /// Anything else the ACD names.
    Other,
    /// Turned away at entry (no agent logged in, queue full): never joined.
    TurnedAway,
}

impl Outcome {
    /// The outcome of a bus queue event's `change`.
    pub fn of(change: &str) -> Outcome {
        match change {
            "answered" => Outcome::Answered,
            "abandoned" => Outcome::Abandoned,
            "max_wait" => Outcome::MaxWait,
            "exit_key" => Outcome::ExitKey,
            "no_agents" | "full" => Outcome::TurnedAway,
            _ => Outcome::Other,
        }
    }
}

/// One change of the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    /// An agent's new row.
    Agent {
        /// The row.
        row: AgentRow,
        /// Why (`client`, `offered`, ... see the bus event).
        cause: &'static str,
    },
    /// A queue's new figures.
    Queue(QueueFigures),
    /// A call entered a queue.
    CallJoined(CallRow),
    /// A call left a queue.
    CallLeft {
        /// Queue.
        queue: QueueName,
        /// Call.
        call: CallKey,
        /// Why.
        outcome: Outcome,
        /// Its wait.
        waited: Duration,
        /// The agent who answered.
        agent: Option<AgentId>,
    },
    /// New server figures.
    Server(ServerFigures),
    /// A campaign's new figures.
    Campaign(CampaignStats),
}

/// A numbered change.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// 1, 2, 3 ... without gaps.
    pub seq: u64,
    /// When it happened (ms since the Unix epoch).
    pub at_ms: u64,
    /// What changed.
    pub delta: Delta,
}

impl Change {
    /// Whether a watcher with `filter` gets it.
    pub fn selected_by(&self, filter: &Filter) -> bool {
        match &self.delta {
            Delta::Agent { row, .. } => filter.wants_agent(&row.agent, &row.queues),
            Delta::Queue(f) => filter.wants_queue(&f.queue),
            Delta::CallJoined(c) => filter.wants_queue(&c.queue),
            Delta::CallLeft { queue, .. } => filter.wants_queue(queue),
            Delta::Server(_) | Delta::Campaign(_) => true,
        }
    }
}

#[derive(Debug)]
struct QueueState {
    name: QueueName,
    threshold: Duration,
    wrap_up: Duration,
    staffable: Vec<AgentId>,
    history: HandleTimes,
    default_aht: Duration,
    today: DailyCounts,
    last: Option<QueueFigures>,
}

#[derive(Debug, Clone)]
struct Waiting {
    queue: QueueName,
    priority: i32,
    queued_at_ms: u64,
}

#[derive(Debug, Clone)]
struct Talk {
    queue: QueueName,
    since_ms: u64,
}

/// The live model (see the module doc).
#[derive(Debug)]
pub struct Model {
    days: LocalDays,
    seq: u64,
    bus_seq: u64,
    today: Date,
    next_midnight_ms: u64,
    agents: BTreeMap<AgentId, AgentRow>,
    queues: Vec<QueueState>,
    waiting: BTreeMap<CallKey, Waiting>,
    talking: HashMap<AgentId, Talk>,
    server: ServerFigures,
    campaigns: BTreeMap<String, CampaignStats>,
    changes: VecDeque<Change>,
    out_of_sync: bool,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Model {
    /// A model starting from `view` (events up to `view.bus_seq` are in it).
    pub fn new(view: &AcdView, days: LocalDays, server: ServerFigures) -> Model {
        let today = days.day(view.wall_ms);
        let next_midnight_ms = days.next_midnight_ms(view.wall_ms);
        let mut m = Model {
            days,
            seq: 0,
            bus_seq: 0,
            today,
            next_midnight_ms,
            agents: BTreeMap::new(),
            queues: Vec::new(),
            waiting: BTreeMap::new(),
            talking: HashMap::new(),
            server,
            campaigns: BTreeMap::new(),
            changes: VecDeque::new(),
            out_of_sync: false,
        };
        m.load(view);
        m
    }

    /// Replaces agents, queues and calls with `view` (today's counters are kept, by
    /// queue name); the next change's number continues. Clears [`Model::needs_resync`].
    pub fn resync(&mut self, view: &AcdView) {
        self.roll_day(view.wall_ms);
        self.load(view);
        self.out_of_sync = false;
    }

    fn load(&mut self, view: &AcdView) {
        let mut kept: HashMap<QueueName, DailyCounts> =
            self.queues.drain(..).map(|q| (q.name, q.today)).collect();
        let at = |elapsed: Duration| view.wall_ms.saturating_sub(ms(elapsed));
        self.bus_seq = view.bus_seq;
        self.waiting = view
            .waiting
            .iter()
            .map(|c| {
                (
                    c.call,
                    Waiting {
                        queue: c.queue.clone(),
                        priority: c.priority,
                        queued_at_ms: at(c.elapsed),
                    },
                )
            })
            .collect();
        self.talking = view
            .connected
            .iter()
            .filter_map(|c| {
                let agent = c.agent.clone()?;
                Some((
                    agent,
                    Talk {
                        queue: c.queue.clone(),
                        since_ms: at(c.elapsed),
                    },
                ))
            })
            .collect();
        self.agents = view
            .agents
            .iter()
            .map(|a| {
                let mut row = AgentRow {
                    agent: a.agent.clone(),
                    name: a.name.clone(),
                    state: a.state.clone(),
                    call_queue: None,
                    since_ms: at(a.since),
                    queues: a.queues.clone(),
                };
                row.call_queue = self.call_queue(&row);
                (a.agent.clone(), row)
            })
            .collect();
        self.queues = view
            .queues
            .iter()
            .map(|q| QueueState {
                name: q.queue.clone(),
                threshold: q.service_level,
                wrap_up: q.wrap_up,
                staffable: q.staffable.clone(),
                history: q.handle_times.clone(),
                default_aht: q.default_aht,
                today: kept.remove(&q.queue).unwrap_or_default(),
                last: None,
            })
            .collect();
        for i in 0..self.queues.len() {
            let f = self.figures(i);
            self.queues[i].last = Some(f);
        }
    }

    /// The last change's number (0 before any).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The last bus event applied (or included in the view).
    pub fn bus_seq(&self) -> u64 {
        self.bus_seq
    }

    /// The local date of the daily figures.
    pub fn today(&self) -> Date {
        self.today
    }

    /// Whether the model missed something and needs [`Model::resync`].
    pub fn needs_resync(&self) -> bool {
        self.out_of_sync
    }

    /// Marks the model out of sync (the owner's bus receiver lagged).
    pub fn lost_events(&mut self) {
        self.out_of_sync = true;
    }

    /// Whether the model knows the queue.
    pub fn has_queue(&self, queue: &str) -> bool {
        self.queues.iter().any(|q| *q.name == *queue)
    }

    /// Whether the model knows the agent.
    pub fn has_agent(&self, agent: &str) -> bool {
        self.agents.contains_key(agent)
    }

    /// The next local midnight (ms since the Unix epoch): call
    /// [`Model::handle_timeout`] then.
    pub fn poll_timeout(&self) -> u64 {
        self.next_midnight_ms
    }

    /// The clock reached `now_ms`: resets the daily counters after local midnight.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.roll_day(now_ms);
    }

    /// The next change, in order.
    pub fn poll_change(&mut self) -> Option<Change> {
        self.changes.pop_front()
    }

    /// New server figures at `now_ms` (a change only when they differ).
    pub fn handle_server(&mut self, now_ms: u64, figures: ServerFigures) {
        self.roll_day(now_ms);
        if figures != self.server {
            self.server = figures;
            self.push(now_ms, Delta::Server(figures));
        }
    }

    /// Applies one bus event (events already in the view are skipped).
    pub fn handle_event(&mut self, ev: &BusEvent) {
        if ev.seq <= self.bus_seq {
            return;
        }
        if ev.seq != self.bus_seq + 1 {
            self.out_of_sync = true;
        }
        self.bus_seq = ev.seq;
        self.roll_day(ev.at_ms);
        match &ev.event {
            Event::AgentState {
                agent,
                state,
                cause,
                ..
            } => self.agent_changed(ev.at_ms, agent, state, cause),
            Event::Queue {
                queue,
                call,
                change,
                waiting,
                waited_ms,
                priority,
                agent,
            } => self.queue_changed(
                ev.at_ms,
                queue,
                *call,
                change,
                *waiting,
                Duration::from_millis(*waited_ms),
                *priority,
                agent.as_deref(),
            ),
            Event::Campaign(stats) => {
                let known = self.campaigns.get(&stats.campaign);
                if known != Some(stats) {
                    self.campaigns.insert(stats.campaign.clone(), stats.clone());
                    self.push(ev.at_ms, Delta::Campaign(stats.clone()));
                }
            }
            Event::Mailbox(_) | Event::Disposition { .. } => {}
        }
    }

    fn push(&mut self, at_ms: u64, delta: Delta) {
        self.seq += 1;
        self.changes.push_back(Change {
            seq: self.seq,
            at_ms,
            delta,
        });
    }

    fn roll_day(&mut self, now_ms: u64) {
        if now_ms < self.next_midnight_ms {
            return;
        }
        self.today = self.days.day(now_ms);
        self.next_midnight_ms = self.days.next_midnight_ms(now_ms);
        for q in &mut self.queues {
            q.today = DailyCounts::default();
        }
        for i in 0..self.queues.len() {
            self.refresh_queue(i, now_ms);
        }
    }

    fn queue_index(&self, name: &str) -> Option<usize> {
        self.queues.iter().position(|q| *q.name == *name)
    }

    /// The queue of the call the agent is offered or talks on.
    fn call_queue(&self, row: &AgentRow) -> Option<QueueName> {
        match &row.state {
            AgentState::Reserved(c) | AgentState::OnCall(c) => self
                .waiting
                .get(c)
                .map(|w| w.queue.clone())
                .or_else(|| self.talking.get(&row.agent).map(|t| t.queue.clone())),
            _ => None,
        }
    }

    fn agent_changed(&mut self, at_ms: u64, agent: &str, state: &AgentState, cause: &'static str) {
        let Some(row) = self.agents.get(agent) else {
            return;
        };
        let id = row.agent.clone();
        let old = row.state.clone();
        let mut touched: Vec<QueueName> = row.queues.clone();
        // Talk time: from the answer to leaving the call (as the ACD counts it).
        if let AgentState::OnCall(c) = old {
            if *state != AgentState::OnCall(c) {
                if let Some(t) = self.talking.remove(&id) {
                    if let Some(i) = self.queue_index(&t.queue) {
                        let q = &mut self.queues[i];
                        let talk = Duration::from_millis(at_ms.saturating_sub(t.since_ms));
                        q.history.record(talk, q.wrap_up);
                    }
                    touched.push(t.queue);
                }
            }
        }
        if let AgentState::OnCall(c) = state {
            if let Some(w) = self.waiting.get(c) {
                let queue = w.queue.clone();
                touched.push(queue.clone());
                self.talking.insert(
                    id.clone(),
                    Talk {
                        queue,
                        since_ms: at_ms,
                    },
                );
            }
        }
        let Some(row) = self.agents.get_mut(agent) else {
            return;
        };
        row.state = state.clone();
        row.since_ms = at_ms;
        let mut row = row.clone();
        row.call_queue = self.call_queue(&row);
        if let Some(q) = &row.call_queue {
            touched.push(q.clone());
        }
        if let Some(stored) = self.agents.get_mut(agent) {
            stored.call_queue = row.call_queue.clone();
        }
        self.push(at_ms, Delta::Agent { row, cause });
        touched.sort();
        touched.dedup();
        for q in touched {
            if let Some(i) = self.queue_index(&q) {
                self.refresh_queue(i, at_ms);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn queue_changed(
        &mut self,
        at_ms: u64,
        queue: &str,
        call: CallKey,
        change: &str,
        waiting: u32,
        waited: Duration,
        priority: i32,
        agent: Option<&str>,
    ) {
        let Some(i) = self.queue_index(queue) else {
            return;
        };
        let name = self.queues[i].name.clone();
        if change == "joined" {
            self.waiting.insert(
                call,
                Waiting {
                    queue: name.clone(),
                    priority,
                    queued_at_ms: at_ms.saturating_sub(ms(waited)),
                },
            );
            self.queues[i].today.offered += 1;
            let row = self.call_row(call).unwrap_or(CallRow {
                call,
                queue: name.clone(),
                position: 0,
                priority,
                queued_at_ms: at_ms,
                ringing: Vec::new(),
            });
            self.push(at_ms, Delta::CallJoined(row));
        } else {
            self.waiting.remove(&call);
            let outcome = Outcome::of(change);
            let q = &mut self.queues[i];
            match outcome {
                Outcome::Answered => {
                    q.today.answered += 1;
                    if waited <= q.threshold {
                        q.today.answered_within += 1;
                    }
                }
                Outcome::Abandoned => q.today.abandoned += 1,
                Outcome::MaxWait | Outcome::ExitKey | Outcome::Other => q.today.exited += 1,
                Outcome::TurnedAway => {
                    q.today.offered += 1;
                    q.today.turned_away += 1;
                }
            }
            let agent = agent.and_then(|a| self.agents.get(a).map(|r| r.agent.clone()));
            self.push(
                at_ms,
                Delta::CallLeft {
                    queue: name.clone(),
                    call,
                    outcome,
                    waited,
                    agent,
                },
            );
        }
        let held = self.waiting.values().filter(|w| w.queue == name).count();
        if held != waiting as usize {
            self.out_of_sync = true;
        }
        self.refresh_queue(i, at_ms);
    }

    /// Emits the queue's figures when they changed.
    fn refresh_queue(&mut self, i: usize, at_ms: u64) {
        let f = self.figures(i);
        if self.queues[i].last.as_ref() != Some(&f) {
            self.queues[i].last = Some(f.clone());
            self.push(at_ms, Delta::Queue(f));
        }
    }

    fn figures(&self, i: usize) -> QueueFigures {
        let q = &self.queues[i];
        let mut waiting = 0u32;
        let mut oldest: Option<u64> = None;
        for w in self.waiting.values().filter(|w| w.queue == q.name) {
            waiting += 1;
            oldest = Some(oldest.map_or(w.queued_at_ms, |o| o.min(w.queued_at_ms)));
        }
        let (mut ready, mut busy, mut away) = (0, 0, 0);
        for a in self.agents.values().filter(|a| a.queues.contains(&q.name)) {
            match a.state {
                AgentState::Ready => ready += 1,
                AgentState::Reserved(_) | AgentState::OnCall(_) | AgentState::WrapUp => busy += 1,
                AgentState::NotReady(_) => away += 1,
                AgentState::LoggedOut => {}
            }
        }
        let staffed = q
            .staffable
            .iter()
            .filter(|a| {
                self.agents
                    .get(*a)
                    .is_some_and(|r| r.state != AgentState::LoggedOut)
            })
            .count();
        let expected_wait = ewt::estimate(
            waiting as usize + 1,
            staffed,
            q.history.average(),
            q.default_aht,
        );
        QueueFigures {
            queue: q.name.clone(),
            waiting,
            oldest_queued_at_ms: oldest,
            agents_ready: ready,
            agents_busy: busy,
            agents_away: away,
            today: q.today,
            threshold: q.threshold,
            expected_wait,
        }
    }

    /// The queue's waiting calls by position.
    fn calls_of(&self, queue: &QueueName) -> Vec<CallRow> {
        let mut calls: Vec<(CallKey, &Waiting)> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.queue == *queue)
            .map(|(k, w)| (*k, w))
            .collect();
        calls.sort_by_key(|(k, w)| (std::cmp::Reverse(w.priority), w.queued_at_ms, *k));
        calls
            .into_iter()
            .enumerate()
            .map(|(i, (call, w))| CallRow {
                call,
                queue: w.queue.clone(),
                position: u32::try_from(i + 1).unwrap_or(u32::MAX),
                priority: w.priority,
                queued_at_ms: w.queued_at_ms,
                ringing: self.ringing(call),
            })
            .collect()
    }

    fn call_row(&self, call: CallKey) -> Option<CallRow> {
        let w = self.waiting.get(&call)?;
        self.calls_of(&w.queue).into_iter().find(|c| c.call == call)
    }

    fn ringing(&self, call: CallKey) -> Vec<AgentId> {
        self.agents
            .values()
            .filter(|a| a.state == AgentState::Reserved(call))
            .map(|a| a.agent.clone())
            .collect()
    }

    /// The model as `filter` sees it, at `now_ms`.
    pub fn snapshot(&self, now_ms: u64, filter: &Filter) -> Snapshot {
        Snapshot {
            seq: self.seq,
            at_ms: now_ms,
            today: self.today,
            agents: self
                .agents
                .values()
                .filter(|a| filter.wants_agent(&a.agent, &a.queues))
                .cloned()
                .collect(),
            queues: self
                .queues
                .iter()
                .enumerate()
                .filter(|(_, q)| filter.wants_queue(&q.name))
                .map(|(i, q)| QueueView {
                    figures: self.figures(i),
                    calls: self.calls_of(&q.name),
                })
                .collect(),
            campaigns: self.campaigns.values().cloned().collect(),
            server: self.server,
        }
    }
}

#[cfg(test)]
mod tests;
