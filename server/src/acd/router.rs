//! The router: a pure function pairing waiting calls with available agents.
//!
//! Contract: [`route`] takes an [`AcdSnapshot`] and returns the [`Assignment`]s to act on
//! now. It does no IO, reads no clock (`now` is in the snapshot) and draws randomness only
//! from `snapshot.seed`, so the same snapshot always gives the same assignments. The ACD
//! task calls it on every relevant event (agent ready, call queued, offer missed, timer at
//! [`next_wakeup`]).
//!
//! # Eligibility
//!
//! An agent is eligible for a call when it is `available`, a member of the call's queue,
//! not in the call's `excluded` nor `ringing` lists, and has every *effective*
//! requirement ([`effective_requirements`]): the queue's requirements plus the caller's
//! (the higher level when both name a skill), after the queue's relaxation steps whose
//! `after` is at most the call's wait. `MinLevel(L)` lowers every minimum to at most `L`
//! (never below 1: a required skill is always required; dropping one is `DropSkill`'s
//! job); `DropSkill(s)` removes the requirement on `s`.
//!
//! # Order of calls
//!
//! Within a queue: higher caller priority first, then the longest wait, then the lower
//! call key. Across queues, the queues compete for shared agents by their *claim*:
//!
//! ```text
//! claim(queue) = longest wait among the queue's calls still to route
//!              + queue.priority × QUEUE_PRIORITY_WEIGHT (60 s)
//! ```
//!
//! and the queue with the highest claim puts forward its next call (by caller priority).
//! Why a weight and not strict priority: strict priority starves a low-priority queue for
//! as long as a high-priority one has callers; with the weight, one priority step is worth
//! one minute of waiting, so a priority-1 queue goes first under a normal service level
//! (seconds) but a low-priority caller who has waited a minute longer is not left behind.
//! Why the queue's longest wait rather than its head's own wait: a VIP who just entered
//! queue A must not make A lose the shared agent to queue B while A's older callers wait.
//! Because the claim of a queue never grows as its calls are routed, this is one global
//! sort by (claim desc, queue config order, position in queue).
//!
//! Calls are then taken in that order; each one picks among the eligible agents not yet
//! assigned in this pass, by its queue's strategy. A call with no eligible agent is
//! skipped (it never blocks the calls behind it). Each agent and each call appears in at
//! most one assignment of a pass.
//!
//! # Strategies
//!
//! - `longest-idle`: earliest `ready_since`.
//! - `least-talk-time`: least `talk_time`, ties by longest idle.
//! - `fewest-calls`: fewest `calls_answered`, ties by longest idle.
//! - `round-robin`: the first eligible member after the queue's `last_offered` in members
//!   order, wrapping (from the first member when there is none); several calls of one
//!   pass continue the turn.
//! - `ring-all`: every eligible agent, in members order, in one assignment.
//! - `top-down`: the first eligible member in members order.
//! - `random`: uniform among the eligible agents, from splitmix64 of the seed and call key.
//! - `best-skill`: the highest *skill score*, the sum of the agent's levels in the call's
//!   effective required skills (every candidate meets each minimum, so a higher sum means
//!   more proficiency above it); ties by longest idle. No requirements: longest idle.
//! - `ring-progressively`: the first eligible member (like top-down); while it rings, the
//!   next eligible member is added each `ring_timeout` after `ringing_since`: a call whose
//!   `ringing` holds `n` agents is due for `1 + (now - ringing_since) / ring_timeout - n`
//!   more. Such an assignment lists only the agents to add.
//!
//! Remaining ties (same key) go to the earlier member in the queue's `members`.
//!
//! A call with a non-empty `ringing` is being offered and is skipped, except under
//! ring-progressively when more agents are due.
//!
//! # Example
//!
//! ```
//! # use std::{sync::Arc, time::{Duration, Instant}};
//! # use caruso::acd::{*, router::route};
//! let now = Instant::now();
//! let queue = QueueConfig {
//!     name: "sales".into(), requirements: vec![], relaxations: vec![], priority: 0,
//!     strategy: Strategy::LongestIdle, ring_timeout: Duration::from_secs(15),
//!     retry_delay: Duration::from_secs(5), max_wait: None, max_len: None,
//!     wrap_up: Duration::ZERO, music: None, announcement: None, position_every: None,
//!     service_level: Duration::from_secs(20), exit_key: None,
//!     exit: ExitTarget::Hangup(vec![]), members: vec!["alice".into()],
//! };
//! let agent = AgentView {
//!     id: "alice".into(), skills: vec![], available: true, ready_since: now,
//!     talk_time: Duration::ZERO, calls_answered: 0,
//! };
//! let call = WaitingCall {
//!     call: 7, queue: "sales".into(), queued_at: now, priority: 0, requirements: vec![],
//!     excluded: vec![], ringing: vec![], ringing_since: None,
//! };
//! let snapshot = AcdSnapshot {
//!     now, queues: vec![Arc::new(queue)], waiting: vec![call], agents: vec![agent],
//!     last_offered: vec![], seed: 1,
//! };
//! let out = route(&snapshot);
//! assert_eq!(out[0].call, 7);
//! assert_eq!(&*out[0].agents[0], "alice");
//! ```
//!
//! # Cost
//!
//! One pass interns the skills of the *available* agents into a dense level table and
//! resolves each queue's members once; a (call, agent) check is then a few byte
//! comparisons, with no string comparison and no allocation. Orderings by idle time,
//! talk time and calls answered are sorted once per queue, so those strategies stop at
//! the first eligible agent.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use super::{AcdSnapshot, AgentView, Assignment, QueueConfig, RelaxChange, Requirement};
use super::{Strategy, WaitingCall};

#[cfg(test)]
mod tests;

/// How much waiting one step of queue priority is worth when queues share agents.
pub const QUEUE_PRIORITY_WEIGHT: Duration = Duration::from_secs(60);

/// The requirements a call has at `now`: its queue's plus its own (the higher minimum
/// when both name a skill), after the relaxation steps already reached. Minimums are at
/// least 1.
pub fn effective_requirements(
    queue: &QueueConfig,
    call: &WaitingCall,
    now: Instant,
) -> Vec<Requirement> {
    let wait = now.saturating_duration_since(call.queued_at);
    let mut reqs: Vec<Requirement> = Vec::with_capacity(queue.requirements.len());
    for r in queue.requirements.iter().chain(&call.requirements) {
        match reqs.iter_mut().find(|x| x.skill == r.skill) {
            Some(x) => x.min_level = x.min_level.max(r.min_level),
            None => reqs.push(r.clone()),
        }
    }
    for step in queue.relaxations.iter().filter(|s| s.after <= wait) {
        match &step.change {
            RelaxChange::MinLevel(level) => {
                for x in &mut reqs {
                    x.min_level = x.min_level.min(*level);
                }
            }
            RelaxChange::DropSkill(skill) => reqs.retain(|x| x.skill != *skill),
        }
    }
    for x in &mut reqs {
        x.min_level = x.min_level.max(1);
    }
    reqs
}

/// The agent's level in a skill (0 when it does not have it).
fn level_of(agent: &AgentView, skill: &str) -> u8 {
    agent
        .skills
        .iter()
        .filter(|s| &*s.name == skill)
        .map(|s| s.level)
        .max()
        .unwrap_or(0)
}

/// Whether `agent` may be offered `call` (of `queue`) at `now` (the module doc's rule).
/// The straightforward form of the check [`route`] does on its precomputed tables.
pub fn is_eligible(
    agent: &AgentView,
    queue: &QueueConfig,
    call: &WaitingCall,
    now: Instant,
) -> bool {
    agent.available
        && !call.excluded.contains(&agent.id)
        && !call.ringing.contains(&agent.id)
        && queue.members.contains(&agent.id)
        && effective_requirements(queue, call, now)
            .iter()
            .all(|r| level_of(agent, &r.skill) >= r.min_level)
}

/// The best-skill score: the sum of the agent's levels in the required skills.
pub fn skill_score(agent: &AgentView, requirements: &[Requirement]) -> u32 {
    requirements
        .iter()
        .map(|r| u32::from(level_of(agent, &r.skill)))
        .sum()
}

/// The next instant at which time alone may change what [`route`] returns: a waiting
/// call reaching its next relaxation step, or a ring-progressively call due for one more
/// agent. `None` when no such moment is ahead.
pub fn next_wakeup(s: &AcdSnapshot) -> Option<Instant> {
    let mut next: Option<Instant> = None;
    let mut consider = |t: Option<Instant>| {
        if let Some(t) = t.filter(|t| *t > s.now) {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
    };
    for call in &s.waiting {
        let Some(queue) = s.queues.iter().find(|q| q.name == call.queue) else {
            continue;
        };
        if call.ringing.is_empty() {
            for step in &queue.relaxations {
                consider(call.queued_at.checked_add(step.after));
            }
        } else if queue.strategy == Strategy::RingProgressively {
            if let Some(since) = call.ringing_since {
                let n = u32::try_from(call.ringing.len()).unwrap_or(u32::MAX);
                consider(
                    queue
                        .ring_timeout
                        .checked_mul(n)
                        .and_then(|d| since.checked_add(d)),
                );
            }
        }
    }
    next
}

/// Route one pass: which agents to ring now for which waiting calls.
pub fn route(s: &AcdSnapshot) -> Vec<Assignment> {
    Pass::new(s).run()
}

/// FxHash-style hasher for the per-pass maps (keys come from the config, not from a
/// peer, so hash flooding is not a concern here).
#[derive(Default, Clone, Copy)]
struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// splitmix64: a small, well-mixed deterministic generator step.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// An available member of a queue: dense agent index and position in `members`.
#[derive(Clone, Copy)]
struct Cand {
    agent: u32,
    pos: u32,
}

/// Per-queue tables of one pass.
struct QueueTable {
    /// Available members in members order.
    members: Vec<Cand>,
    /// The same, in the strategy's preference order (sorted strategies only).
    ordered: Vec<Cand>,
    /// `ordered[..cursor]` are all assigned already.
    cursor: usize,
    /// Round-robin: members position of the last agent offered.
    rr_last: Option<u32>,
}

/// What a routable call asks for.
#[derive(Clone, Copy)]
enum Want {
    /// A new offer.
    Offer,
    /// Ring-progressively: this many more agents.
    More(usize),
}

struct Pass<'a> {
    s: &'a AcdSnapshot,
    /// Snapshot index of each available agent (dense index → agent).
    avail: Vec<usize>,
    /// Agent id → dense index, available agents only.
    by_id: FastMap<&'a str, u32>,
    /// Skill name → column.
    skills: FastMap<&'a str, u16>,
    /// Levels, `avail.len() × skills.len()`, row per agent.
    levels: Vec<u8>,
    queues: Vec<QueueTable>,
    assigned: Vec<bool>,
}

impl<'a> Pass<'a> {
    fn new(s: &'a AcdSnapshot) -> Self {
        let mut by_id: FastMap<&str, u32> = FastMap::default();
        let mut avail = Vec::new();
        for (i, a) in s.agents.iter().enumerate() {
            if a.available && !by_id.contains_key(&*a.id) {
                by_id.insert(&a.id, avail.len() as u32);
                avail.push(i);
            }
        }
        let mut skills: FastMap<&str, u16> = FastMap::default();
        let mut cells: Vec<(u32, u16, u8)> = Vec::new();
        for (d, &i) in avail.iter().enumerate() {
            for sk in &s.agents[i].skills {
                let next = skills.len();
                let Ok(next) = u16::try_from(next) else {
                    continue; // more than 65535 distinct skills: ignore the rest
                };
                let col = *skills.entry(&sk.name).or_insert(next);
                cells.push((d as u32, col, sk.level));
            }
        }
        let width = skills.len();
        let mut levels = vec![0u8; avail.len() * width];
        for (d, col, level) in cells {
            let cell = &mut levels[d as usize * width + col as usize];
            *cell = (*cell).max(level);
        }

        let mut stamp = vec![u32::MAX; avail.len()];
        let mut queues = Vec::with_capacity(s.queues.len());
        for (qi, q) in s.queues.iter().enumerate() {
            let mut members = Vec::new();
            for (pos, id) in q.members.iter().enumerate() {
                if let Some(&d) = by_id.get(&**id) {
                    if stamp[d as usize] != qi as u32 {
                        stamp[d as usize] = qi as u32;
                        members.push(Cand {
                            agent: d,
                            pos: pos as u32,
                        });
                    }
                }
            }
            let agent = |c: &Cand| &s.agents[avail[c.agent as usize]];
            let ordered = match q.strategy {
                Strategy::LongestIdle | Strategy::BestSkill => {
                    let mut v = members.clone();
                    v.sort_by_key(|c| (agent(c).ready_since, c.pos));
                    v
                }
                Strategy::LeastTalkTime => {
                    let mut v = members.clone();
                    v.sort_by_key(|c| (agent(c).talk_time, agent(c).ready_since, c.pos));
                    v
                }
                Strategy::FewestCalls => {
                    let mut v = members.clone();
                    v.sort_by_key(|c| (agent(c).calls_answered, agent(c).ready_since, c.pos));
                    v
                }
                _ => Vec::new(),
            };
            let rr_last = if q.strategy == Strategy::RoundRobin {
                s.last_offered
                    .iter()
                    .find(|(name, _)| *name == q.name)
                    .and_then(|(_, id)| q.members.iter().position(|m| m == id))
                    .map(|p| p as u32)
            } else {
                None
            };
            queues.push(QueueTable {
                members,
                ordered,
                cursor: 0,
                rr_last,
            });
        }
        let assigned = vec![false; avail.len()];
        Pass {
            s,
            avail,
            by_id,
            skills,
            levels,
            queues,
            assigned,
        }
    }

    /// The routable calls (index into `s.waiting`, queue index, want) in routing order.
    fn order(&self) -> Vec<(usize, usize, Want)> {
        let s = self.s;
        let mut queue_of: FastMap<&str, usize> = FastMap::default();
        for (qi, q) in s.queues.iter().enumerate() {
            queue_of.entry(&q.name).or_insert(qi);
        }
        let mut per_queue: Vec<Vec<(usize, Want)>> = vec![Vec::new(); s.queues.len()];
        for (ci, c) in s.waiting.iter().enumerate() {
            let Some(&qi) = queue_of.get(&*c.queue) else {
                continue;
            };
            let q = &s.queues[qi];
            if c.ringing.is_empty() {
                per_queue[qi].push((ci, Want::Offer));
            } else if q.strategy == Strategy::RingProgressively {
                let Some(since) = c.ringing_since else {
                    continue;
                };
                let elapsed = s.now.saturating_duration_since(since);
                let target = if q.ring_timeout.is_zero() {
                    usize::MAX
                } else {
                    let steps = elapsed.as_nanos() / q.ring_timeout.as_nanos();
                    usize::try_from(steps)
                        .unwrap_or(usize::MAX)
                        .saturating_add(1)
                };
                if target > c.ringing.len() {
                    per_queue[qi].push((ci, Want::More(target - c.ringing.len())));
                }
            }
        }
        let mut all: Vec<(i128, usize, usize, usize, Want)> = Vec::new();
        for (qi, calls) in per_queue.iter_mut().enumerate() {
            calls.sort_by_key(|&(ci, _)| {
                let c = &s.waiting[ci];
                (Reverse(c.priority), c.queued_at, c.call)
            });
            let weight =
                i128::from(s.queues[qi].priority) * QUEUE_PRIORITY_WEIGHT.as_nanos() as i128;
            // claim at position p = longest wait among calls[p..] + weight
            let mut claim = i128::MIN;
            let start = all.len();
            for (pos, &(ci, want)) in calls.iter().enumerate().rev() {
                let wait = s.now.saturating_duration_since(s.waiting[ci].queued_at);
                claim = claim.max(wait.as_nanos() as i128 + weight);
                all.push((claim, qi, pos, ci, want));
            }
            all[start..].reverse();
        }
        all.sort_by_key(|&(claim, qi, pos, _, _)| (Reverse(claim), qi, pos));
        all.into_iter()
            .map(|(_, qi, _, ci, want)| (ci, qi, want))
            .collect()
    }

    fn run(mut self) -> Vec<Assignment> {
        let s = self.s;
        let mut out = Vec::new();
        if self.avail.is_empty() {
            return out;
        }
        let width = self.skills.len();
        let mut reqs: Vec<(u16, u8)> = Vec::new();
        let mut excluded: Vec<u32> = Vec::new();
        let mut picked: Vec<u32> = Vec::new();
        for (ci, qi, want) in self.order() {
            let call = &s.waiting[ci];
            let q = &s.queues[qi];
            // Effective requirements, as columns of the level table.
            reqs.clear();
            let mut unmet = false;
            for r in effective_requirements(q, call, s.now) {
                match self.skills.get(&*r.skill) {
                    Some(&col) => reqs.push((col, r.min_level)),
                    None => unmet = true, // no available agent has this skill
                }
            }
            if unmet {
                continue;
            }
            excluded.clear();
            for id in call.excluded.iter().chain(&call.ringing) {
                if let Some(&d) = self.by_id.get(&**id) {
                    excluded.push(d);
                }
            }
            let levels = &self.levels;
            let assigned = &self.assigned;
            let ok = |d: u32| {
                let row = &levels[d as usize * width..(d as usize + 1) * width];
                !assigned[d as usize]
                    && !excluded.contains(&d)
                    && reqs.iter().all(|&(col, min)| row[col as usize] >= min)
            };
            picked.clear();
            let table = &mut self.queues[qi];
            match (q.strategy, want) {
                (Strategy::RingProgressively, Want::More(n)) => {
                    picked.extend(
                        table
                            .members
                            .iter()
                            .map(|c| c.agent)
                            .filter(|&d| ok(d))
                            .take(n),
                    );
                }
                (Strategy::LongestIdle | Strategy::LeastTalkTime | Strategy::FewestCalls, _) => {
                    while table
                        .ordered
                        .get(table.cursor)
                        .is_some_and(|c| assigned[c.agent as usize])
                    {
                        table.cursor += 1;
                    }
                    if let Some(c) = table.ordered[table.cursor..].iter().find(|c| ok(c.agent)) {
                        picked.push(c.agent);
                    }
                }
                (Strategy::TopDown | Strategy::RingProgressively, _) => {
                    if let Some(c) = table.members.iter().find(|c| ok(c.agent)) {
                        picked.push(c.agent);
                    }
                }
                (Strategy::RingAll, _) => {
                    picked.extend(table.members.iter().map(|c| c.agent).filter(|&d| ok(d)));
                }
                (Strategy::RoundRobin, _) => {
                    let start = match table.rr_last {
                        Some(last) => table.members.partition_point(|c| c.pos <= last),
                        None => 0,
                    };
                    let n = table.members.len();
                    if let Some(c) = (0..n)
                        .map(|k| table.members[(start + k) % n])
                        .find(|c| ok(c.agent))
                    {
                        picked.push(c.agent);
                        table.rr_last = Some(c.pos);
                    }
                }
                (Strategy::Random, _) => {
                    picked.extend(table.members.iter().map(|c| c.agent).filter(|&d| ok(d)));
                    if !picked.is_empty() {
                        let r = splitmix64(s.seed ^ splitmix64(call.call));
                        let k = (r % picked.len() as u64) as usize;
                        let one = picked[k];
                        picked.clear();
                        picked.push(one);
                    }
                }
                (Strategy::BestSkill, _) => {
                    let top = 5 * reqs.len() as u32;
                    let mut best: Option<(u32, u32)> = None;
                    for c in &table.ordered {
                        if !ok(c.agent) {
                            continue;
                        }
                        let row = &levels[c.agent as usize * width..][..width];
                        let score: u32 = reqs
                            .iter()
                            .map(|&(col, _)| u32::from(row[col as usize]))
                            .sum();
                        if best.is_none_or(|(b, _)| score > b) {
                            best = Some((score, c.agent));
                            if score >= top {
                                break;
                            }
                        }
                    }
                    picked.extend(best.map(|(_, d)| d));
                }
            }
            if picked.is_empty() {
                continue;
            }
            for &d in &picked {
                self.assigned[d as usize] = true;
            }
            out.push(Assignment {
                call: call.call,
                queue: q.name.clone(),
                agents: picked
                    .iter()
                    .map(|&d| s.agents[self.avail[d as usize]].id.clone())
                    .collect(),
            });
        }
        out
    }
}
