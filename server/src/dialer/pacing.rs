//! Pacing: how many numbers to dial now, under the abandoned-call limit.
//!
//! Contract: a [`Pacer`] learns from what happens (answer rate, time to answer, agents'
//! handle times, answered-by-a-person calls and abandons in a rolling window) and
//! [`Pacer::dials`] answers, for a snapshot of the campaign's agents and calls in
//! flight ([`PacingInput`]), how many new dials to start now. Pure: no clock (time is
//! an input), no randomness.
//!
//! - `progressive`: one dial per ready agent who is not already waiting for a dial
//!   (the caller reserves that agent; a person who answers always has one, so
//!   progressive never abandons).
//! - `predictive`: dials ahead of agents. Over the horizon of a dial (measured time to a
//!   person answering, plus the 2 s an answered person may wait), human answers among
//!   the calls in flight are Binomial(calls, p) and the busy agents who become free are
//!   Binomial(busy, 1 - e^(-horizon / handle time)); the expected abandons are
//!   E[max(0, humans - free agents)]. The pacer takes the largest number of new dials
//!   for which (1) expected abandons stay under the allowed share of expected human
//!   answers, and (2) the chance that abandons in flight exceed what the rolling window
//!   can still absorb without going over the target is below 0.5 %.
//!
//! The allowed share is the target less a safety margin (default 20 %), and it slows
//! down linearly to zero as the measured rate in the window climbs from half the
//! allowed share to all of it. With no room in the window (at the start of a campaign,
//! or after abandons), predictive dials exactly as many calls as there are free agents
//! for (it never abandons then, as progressive).
//!
//! An abandoned call is one answered by a person (AMD human or unknown) that no agent
//! took within 2 s of the end of the greeting; AMD false positives (a person taken for a
//! machine) count as abandoned too. The rate is abandons / calls answered by a person
//! (abandons included) over the rolling window (24 h or 30 days). The pacer never
//! hangs up a ringing call: ring time (at least 15 s) is the campaign's business.

use std::collections::VecDeque;
use std::time::Duration;

/// Default abandoned-call target (3 %).
pub const DEFAULT_TARGET: f64 = 0.03;
/// Time an answered person may wait for an agent before the call is abandoned.
pub const ABANDON_AFTER: Duration = Duration::from_secs(2);
/// Buckets of the rolling window.
const BUCKETS: u64 = 720;
/// Largest accepted chance that abandons in flight break the target.
const TAIL_RISK: f64 = 0.005;

/// How a campaign dials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DialMode {
    /// The agent sees the contact first and starts the call.
    Preview,
    /// One dial per ready agent.
    Progressive,
    /// Dial ahead of agents becoming free.
    Predictive,
    /// No agents: a message or IVR flow plays to the person.
    Agentless,
}

impl DialMode {
    /// Config name (`preview`, `progressive`, `predictive`, `agentless`).
    pub fn as_str(self) -> &'static str {
        match self {
            DialMode::Preview => "preview",
            DialMode::Progressive => "progressive",
            DialMode::Predictive => "predictive",
            DialMode::Agentless => "agentless",
        }
    }

    /// Whether every answered call has an agent waiting for it (an agent is reserved
    /// before the dial), so that it can never be abandoned.
    pub fn agent_guaranteed(self) -> bool {
        matches!(self, DialMode::Preview | DialMode::Progressive)
    }
}

/// Pacing settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacingParams {
    /// Abandoned-call target, a fraction (0.03).
    pub target: f64,
    /// Rolling window of the rate (24 h or 30 days).
    pub window: Duration,
    /// Share of the target kept in reserve (0.2: aim at 2.4 % for a 3 % target).
    pub margin: f64,
    /// Most dials in flight per agent logged in (3).
    pub max_per_agent: f64,
}

impl Default for PacingParams {
    fn default() -> Self {
        PacingParams {
            target: DEFAULT_TARGET,
            window: Duration::from_secs(30 * 24 * 3600),
            margin: 0.2,
            max_per_agent: 3.0,
        }
    }
}

/// One bucket of the rolling window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bucket {
    start_ms: u64,
    humans: u32,
    abandons: u32,
}

/// Calls answered by a person, and abandons, over a rolling window (in 720 buckets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbandonWindow {
    window_ms: u64,
    bucket_ms: u64,
    buckets: VecDeque<Bucket>,
}

impl AbandonWindow {
    /// An empty window of this length.
    pub fn new(window: Duration) -> AbandonWindow {
        let window_ms = (window.as_millis() as u64).max(BUCKETS);
        AbandonWindow {
            window_ms,
            bucket_ms: window_ms / BUCKETS,
            buckets: VecDeque::new(),
        }
    }

    fn bucket(&mut self, now_ms: u64) -> &mut Bucket {
        let start_ms = now_ms - now_ms % self.bucket_ms;
        if self.buckets.back().is_none_or(|b| b.start_ms < start_ms) {
            self.buckets.push_back(Bucket {
                start_ms,
                humans: 0,
                abandons: 0,
            });
        }
        // A late record (time going backwards) lands in the newest bucket.
        let len = self.buckets.len();
        &mut self.buckets[len - 1]
    }

    fn prune(&mut self, now_ms: u64) {
        let oldest = now_ms.saturating_sub(self.window_ms);
        while self
            .buckets
            .front()
            .is_some_and(|b| b.start_ms + self.bucket_ms <= oldest)
        {
            self.buckets.pop_front();
        }
    }

    /// A call answered by a person that an agent took.
    pub fn record_human(&mut self, now_ms: u64) {
        self.prune(now_ms);
        self.bucket(now_ms).humans += 1;
    }

    /// An abandoned call (it counts as answered by a person as well).
    pub fn record_abandon(&mut self, now_ms: u64) {
        self.prune(now_ms);
        let b = self.bucket(now_ms);
        b.humans += 1;
        b.abandons += 1;
    }

    /// (answered by a person, abandoned) in the window ending at `now_ms`.
    pub fn counts(&self, now_ms: u64) -> (u64, u64) {
        let oldest = now_ms.saturating_sub(self.window_ms);
        self.buckets
            .iter()
            .filter(|b| b.start_ms + self.bucket_ms > oldest)
            .fold((0, 0), |(h, a), b| {
                (h + b.humans as u64, a + b.abandons as u64)
            })
    }

    /// Abandoned rate in the window (0 without calls).
    pub fn rate(&self, now_ms: u64) -> f64 {
        match self.counts(now_ms) {
            (0, _) => 0.0,
            (h, a) => a as f64 / h as f64,
        }
    }
}

/// What the campaign looks like right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacingInput {
    /// Agents ready for a call and not reserved for a dial.
    pub ready_agents: u32,
    /// Agents on a call or in wrap-up (they may become free soon).
    pub busy_agents: u32,
    /// Dials started and not resolved yet (ringing, or answered and in AMD).
    pub in_flight: u32,
    /// Answered persons waiting for an agent (within their 2 s).
    pub waiting: u32,
}

/// A measured average that starts from a prior and follows recent values.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ewma {
    value: f64,
    alpha: f64,
}

impl Ewma {
    fn update(&mut self, x: f64) {
        self.value += self.alpha * (x - self.value);
    }
}

/// How a dial ended, as pacing sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// A person answered and an agent took the call (`after` the dial).
    Human {
        /// Dial to answer.
        after: Duration,
    },
    /// A person answered and no agent took the call within 2 s.
    Abandoned {
        /// Dial to answer.
        after: Duration,
    },
    /// Machine, busy, no answer or failure.
    NoPerson,
}

/// The pacer of one campaign.
#[derive(Debug, Clone)]
pub struct Pacer {
    params: PacingParams,
    p_human: Ewma,
    to_answer: Ewma,
    handle: Ewma,
    window: AbandonWindow,
}

impl Pacer {
    /// A pacer with priors: 25 % of dials reach a person, after 10 s; calls last 180 s.
    pub fn new(params: PacingParams) -> Pacer {
        Pacer {
            params,
            p_human: Ewma {
                value: 0.25,
                alpha: 0.01,
            },
            to_answer: Ewma {
                value: 10.0,
                alpha: 0.05,
            },
            handle: Ewma {
                value: 180.0,
                alpha: 0.05,
            },
            window: AbandonWindow::new(params.window),
        }
    }

    /// The settings.
    pub fn params(&self) -> &PacingParams {
        &self.params
    }

    /// The rolling window of the abandoned rate.
    pub fn window(&self) -> &AbandonWindow {
        &self.window
    }

    /// Estimated share of dials a person answers.
    pub fn answer_rate(&self) -> f64 {
        self.p_human.value
    }

    /// A dial resolved.
    pub fn handle_resolution(&mut self, now_ms: u64, r: Resolution) {
        match r {
            Resolution::Human { after } => {
                self.p_human.update(1.0);
                self.to_answer.update(after.as_secs_f64());
                self.window.record_human(now_ms);
            }
            Resolution::Abandoned { after } => {
                self.p_human.update(1.0);
                self.to_answer.update(after.as_secs_f64());
                self.window.record_abandon(now_ms);
            }
            Resolution::NoPerson => self.p_human.update(0.0),
        }
    }

    /// A person was taken for a machine: counted as abandoned.
    pub fn handle_false_positive(&mut self, now_ms: u64) {
        self.window.record_abandon(now_ms);
    }

    /// An agent finished a campaign call (talk and wrap-up).
    pub fn handle_call_handled(&mut self, handle: Duration) {
        self.handle.update(handle.as_secs_f64().max(1.0));
    }

    /// Replays a stored resolution into the window only (restart: the window must
    /// reflect the last 24 h / 30 days, estimates restart from their priors).
    pub fn restore(&mut self, at_ms: u64, abandoned: bool) {
        if abandoned {
            self.window.record_abandon(at_ms);
        } else {
            self.window.record_human(at_ms);
        }
    }

    /// New dials to start now.
    pub fn dials(&self, now_ms: u64, mode: DialMode, input: PacingInput) -> u32 {
        match mode {
            DialMode::Preview | DialMode::Agentless => 0,
            DialMode::Progressive => input.ready_agents,
            DialMode::Predictive => self.predictive(now_ms, input),
        }
    }

    fn predictive(&self, now_ms: u64, input: PacingInput) -> u32 {
        let agents = input.ready_agents + input.busy_agents;
        if agents == 0 {
            return 0;
        }
        let p = self.p_human.value.clamp(0.01, 1.0);
        let horizon = self.to_answer.value + ABANDON_AFTER.as_secs_f64();
        let q = 1.0 - (-horizon / self.handle.value.max(1.0)).exp();
        let t = self.params.target;
        let (humans, abandons) = self.window.counts(now_ms);
        // Abandons the window can still take while staying at or under the target.
        let room = ((t * humans as f64 - abandons as f64) / (1.0 - t)).floor();
        let aim = t * (1.0 - self.params.margin);
        let rate = self.window.rate(now_ms);
        let slow = ((aim - rate) / (aim * 0.5)).clamp(0.0, 1.0);
        let allowed = aim * slow;

        let free = binomial(input.busy_agents, q);
        let max_total = (self.params.max_per_agent * agents as f64).floor() as u32;
        let mut best = 0;
        for n in 0..=max_total.saturating_sub(input.in_flight) {
            let calls = input.in_flight + n;
            let (expected, tail) = abandons_in_flight(
                &binomial(calls, p),
                input.waiting,
                input.ready_agents,
                &free,
                room,
            );
            let humans = calls as f64 * p + input.waiting as f64;
            let safe = expected <= 1e-9
                || (room >= 1.0 && tail <= TAIL_RISK && expected <= allowed * humans);
            if !safe {
                break;
            }
            best = n;
        }
        best
    }
}

/// Probabilities of 0..=n successes in n trials of probability p.
fn binomial(n: u32, p: f64) -> Vec<f64> {
    let mut pmf = vec![0.0; n as usize + 1];
    pmf[0] = 1.0;
    for i in 1..=n as usize {
        for k in (1..=i).rev() {
            pmf[k] = pmf[k] * (1.0 - p) + pmf[k - 1] * p;
        }
        pmf[0] *= 1.0 - p;
    }
    pmf
}

/// Expected abandons and the chance they exceed `room`, when `answers` (pmf) persons
/// plus `waiting` meet `ready` agents plus `free` (pmf) agents.
fn abandons_in_flight(
    answers: &[f64],
    waiting: u32,
    ready: u32,
    free: &[f64],
    room: f64,
) -> (f64, f64) {
    let (mut expected, mut tail) = (0.0, 0.0);
    for (x, px) in answers.iter().enumerate() {
        let persons = x as i64 + waiting as i64;
        for (y, py) in free.iter().enumerate() {
            let over = persons - ready as i64 - y as i64;
            if over > 0 {
                let pr = px * py;
                expected += pr * over as f64;
                if over as f64 > room {
                    tail += pr;
                }
            }
        }
    }
    (expected, tail)
}

#[cfg(test)]
mod tests;
