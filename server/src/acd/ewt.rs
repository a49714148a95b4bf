//! Estimated wait time (EWT) of a queue, for position/expected-wait announcements and the
//! monitor. Pure: the ACD task feeds handle times and asks for estimates.
//!
//! # Formula
//!
//! ```text
//! AHT = average handle time (talk + wrap-up) of the queue's last N calls (N = 20),
//!       or the configured default when the queue has no history yet
//! EWT(p) = p × AHT / max(1, staffed)
//! ```
//!
//! `p` is the caller's 1-based position (1 = next to be served) and `staffed` the agents
//! logged in who can take the queue's calls ([`staffed`]). A caller waits because every
//! such agent is busy; with `staffed` agents each freeing after an average `AHT`, the
//! queue drains at about `staffed / AHT` calls per second, so the caller at position `p`
//! waits about `p × AHT / staffed`. (The per-round form `ceil(p / staffed) × AHT` would
//! tell the first of ten callers to wait a full handle time although one of ten busy
//! agents frees much sooner.) With nobody staffed the estimate is made as if one agent
//! were: the "no agents" exit is the queue's business, not the estimate's.
//!
//! Announcements round the estimate *up* ([`round_for_announcement`]) to the next half
//! minute or minute, so callers are rather told too long than too short.
//!
//! ```
//! # use std::time::Duration;
//! # use caruso::acd::ewt::{estimate, round_for_announcement, HandleTimes, MINUTE};
//! let mut history = HandleTimes::new(20);
//! history.record(Duration::from_secs(200), Duration::from_secs(40)); // 240 s
//! history.record(Duration::from_secs(100), Duration::from_secs(20)); // 120 s
//! let aht = history.average().unwrap(); // 180 s
//! let ewt = estimate(3, 2, Some(aht), Duration::from_secs(300)); // 3 × 180 / 2
//! assert_eq!(ewt, Duration::from_secs(270));
//! assert_eq!(round_for_announcement(ewt, MINUTE), Duration::from_secs(300));
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use super::{AgentView, QueueConfig};

/// How many recent handle times the average uses by default.
pub const DEFAULT_HISTORY: usize = 20;
/// Rounding step for "about N and a half minutes" announcements.
pub const HALF_MINUTE: Duration = Duration::from_secs(30);
/// Rounding step for "about N minutes" announcements.
pub const MINUTE: Duration = Duration::from_secs(60);

/// The handle times (talk + wrap-up) of a queue's most recent calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandleTimes {
    recent: VecDeque<Duration>,
    capacity: usize,
}

impl Default for HandleTimes {
    fn default() -> Self {
        HandleTimes::new(DEFAULT_HISTORY)
    }
}

impl HandleTimes {
    /// An empty history keeping the last `capacity` calls (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        HandleTimes {
            recent: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Record one finished call: its talk time and wrap-up time.
    pub fn record(&mut self, talk: Duration, wrap_up: Duration) {
        if self.recent.len() == self.capacity {
            self.recent.pop_front();
        }
        self.recent.push_back(talk.saturating_add(wrap_up));
    }

    /// Number of calls in the history.
    pub fn len(&self) -> usize {
        self.recent.len()
    }

    /// Whether no call has been recorded yet.
    pub fn is_empty(&self) -> bool {
        self.recent.is_empty()
    }

    /// Average handle time of the recorded calls (`None` without history).
    pub fn average(&self) -> Option<Duration> {
        if self.recent.is_empty() {
            return None;
        }
        let total: u128 = self.recent.iter().map(Duration::as_nanos).sum();
        let avg = total / self.recent.len() as u128;
        Some(Duration::from_nanos(u64::try_from(avg).unwrap_or(u64::MAX)))
    }
}

/// EWT of the caller at 1-based `position` with `staffed` agents: `position × AHT /
/// max(1, staffed)`, AHT being `aht` or, without history, `default_aht`.
pub fn estimate(
    position: usize,
    staffed: usize,
    aht: Option<Duration>,
    default_aht: Duration,
) -> Duration {
    let aht = aht.unwrap_or(default_aht).as_nanos();
    let nanos = aht.saturating_mul(position as u128) / staffed.max(1) as u128;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Agents of `agents` (those logged in) who are members of `queue` and have its
/// requirements at the configured levels, busy or not: the `staffed` of [`estimate`].
/// Caller-specific requirements and relaxation are not counted.
pub fn staffed(queue: &QueueConfig, agents: &[AgentView]) -> usize {
    agents
        .iter()
        .filter(|a| queue.members.contains(&a.id))
        .filter(|a| {
            queue.requirements.iter().all(|r| {
                a.skills
                    .iter()
                    .any(|s| s.name == r.skill && s.level >= r.min_level.max(1))
            })
        })
        .count()
}

/// `wait` rounded up to the next multiple of `step` (e.g. [`HALF_MINUTE`], [`MINUTE`]);
/// zero stays zero, a zero `step` leaves `wait` as it is.
pub fn round_for_announcement(wait: Duration, step: Duration) -> Duration {
    let step_ns = step.as_nanos();
    if step_ns == 0 {
        return wait;
    }
    let n = wait.as_nanos().div_ceil(step_ns);
    let nanos = n.saturating_mul(step_ns);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acd::{ExitTarget, Requirement, Skill, Strategy};
    use std::sync::Arc;
    use std::time::Instant;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn average_of_the_last_n_handle_times() {
        let mut h = HandleTimes::new(3);
        assert_eq!(h.average(), None);
        assert!(h.is_empty());
        h.record(s(100), s(20)); // 120
        assert_eq!(h.average(), Some(s(120)));
        h.record(s(50), s(10)); // 60
        h.record(s(280), s(20)); // 300
        assert_eq!(h.average(), Some(s(160)));
        h.record(s(30), s(0)); // 30: the 120 falls out
        assert_eq!(h.len(), 3);
        assert_eq!(h.average(), Some(s(130)));
    }

    #[test]
    fn default_history_is_twenty_calls() {
        let mut h = HandleTimes::default();
        for _ in 0..20 {
            h.record(s(600), s(0));
        }
        for _ in 0..20 {
            h.record(s(60), s(0));
        }
        assert_eq!(h.len(), 20);
        assert_eq!(h.average(), Some(s(60)));
    }

    #[test]
    fn estimate_examples() {
        // (position, staffed, aht, default, expected)
        let table: &[(usize, usize, Option<u64>, u64, u64)] = &[
            (1, 1, Some(180), 300, 180),
            (1, 10, Some(300), 300, 30),
            (5, 10, Some(300), 300, 150),
            (3, 2, Some(180), 300, 270),
            (4, 0, Some(60), 300, 240), // nobody staffed: as if one agent
            (2, 1, None, 300, 600),     // no history: the default AHT
            (0, 3, Some(90), 300, 0),
        ];
        for &(p, st, aht, def, want) in table {
            assert_eq!(
                estimate(p, st, aht.map(s), s(def)),
                s(want),
                "position {p}, staffed {st}, aht {aht:?}"
            );
        }
    }

    #[test]
    fn announcement_rounding_goes_up() {
        let table: &[(Duration, Duration, Duration)] = &[
            (s(0), MINUTE, s(0)),
            (Duration::from_millis(1), MINUTE, s(60)),
            (s(60), MINUTE, s(60)),
            (s(61), MINUTE, s(120)),
            (s(61), HALF_MINUTE, s(90)),
            (s(90), HALF_MINUTE, s(90)),
            (s(91), HALF_MINUTE, s(120)),
            (s(45), Duration::ZERO, s(45)),
        ];
        for &(wait, step, want) in table {
            assert_eq!(
                round_for_announcement(wait, step),
                want,
                "{wait:?} by {step:?}"
            );
        }
    }

    #[test]
    fn staffed_counts_members_with_the_queue_skills() {
        let now = Instant::now();
        let agent = |id: &str, skills: &[(&str, u8)], available: bool| AgentView {
            id: id.into(),
            skills: skills
                .iter()
                .map(|&(n, l)| Skill {
                    name: n.into(),
                    level: l,
                })
                .collect(),
            available,
            ready_since: now,
            talk_time: Duration::ZERO,
            calls_answered: 0,
        };
        let q = QueueConfig {
            name: Arc::from("sales"),
            requirements: vec![Requirement {
                skill: "english".into(),
                min_level: 3,
            }],
            relaxations: vec![],
            priority: 0,
            strategy: Strategy::LongestIdle,
            ring_timeout: s(15),
            retry_delay: s(5),
            max_wait: None,
            max_len: None,
            wrap_up: Duration::ZERO,
            music: None,
            announcement: None,
            position_every: None,
            service_level: s(20),
            exit_key: None,
            exit: ExitTarget::Hangup(vec![]),
            members: vec!["a".into(), "b".into(), "c".into(), "d".into()],
        };
        let agents = [
            agent("a", &[("english", 3)], false), // busy still counts
            agent("b", &[("english", 5)], true),
            agent("c", &[("english", 2)], true), // level too low
            agent("d", &[("german", 5)], true),  // missing skill
            agent("e", &[("english", 5)], true), // not a member
        ];
        assert_eq!(staffed(&q, &agents), 2);
    }
}
