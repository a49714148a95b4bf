//! The agents' legs ringing at once for one queued caller (sans-IO).
//!
//! Contract. The call actor adds a leg per agent the ACD asks it to ring
//! ([`RingGroup::add`]) and feeds in what happens to those legs; the group answers with
//! [`RingAction`]s: what to tell the ACD and which legs to bridge or hang up. Time is an
//! input; nothing here touches a socket or a clock.
//!
//! ```text
//! add(alice) add(bob) add(carol)          three legs ring at once (ring-all)
//! answered(bob's leg)    -> Bridge(bob) Report(bob, Answered)
//!                           HangUp(alice's leg) HangUp(carol's leg)   (no report: the
//!                           ACD withdraws their offers without a miss when it hears
//!                           bob answered)
//! answered(carol's leg)  -> HangUp(carol's leg)   (a second 200 that beat our CANCEL:
//!                           the leg ACKs it and sends BYE)
//! failed(leg, outcome)   -> Report(agent, outcome)  (busy, declined, unreachable)
//! handle_timeout(deadline) -> for every ringing leg: HangUp(leg) Report(agent, NoAnswer)
//! cancel(agent)          -> HangUp(leg)            (the ACD withdrew the offer)
//! cancel_all()           -> HangUp(every leg)      (the caller hung up or left)
//! ```
//!
//! The deadline: the ringing legs share one, `timeout` after the newest leg was added
//! (plus [`PROGRESSIVE_GRACE`] under `ring-progressively`). With `ring-all` every leg
//! starts in the same instant, so that is each leg's own ring timeout. Under
//! `ring-progressively` the ACD adds one agent each ring timeout while the earlier ones
//! keep ringing: the grace keeps the group alive until the next agent's ring request has
//! arrived (the ACD's timer and ours fire in the same instant otherwise), and when no
//! agent is added any more, every leg gives up together and each agent counts a miss.
//!
//! Invariants: at most one leg is ever bridged; every agent added gets exactly one
//! report, except those hung up by [`RingGroup::cancel`], [`RingGroup::cancel_all`] or
//! as the losers of an answer (the ACD settles those itself).

use crate::acd::task::RingOutcome;
use crate::acd::AgentId;
use std::time::{Duration, Instant};

/// Extra time a `ring-progressively` group rings past `timeout` after its newest leg,
/// waiting for the ACD's request to add the next agent.
pub(super) const PROGRESSIVE_GRACE: Duration = Duration::from_secs(2);

/// What the call actor does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RingAction {
    /// Tell the ACD how ringing this agent ended.
    Report(AgentId, RingOutcome),
    /// Bridge the caller to this leg (by its Call-ID): the agent answered first.
    Bridge(String),
    /// Hang this leg up: CANCEL while it rings (BYE if it has answered).
    HangUp(String),
}

#[derive(Debug, Clone)]
struct Ringer {
    agent: AgentId,
    leg: String,
    since: Instant,
    timeout: Duration,
}

/// The legs ringing for one caller (see the module doc).
#[derive(Debug, Clone, Default)]
pub(super) struct RingGroup {
    ringing: Vec<Ringer>,
    grace: Duration,
    connected: Option<AgentId>,
}

impl RingGroup {
    /// An empty group; `progressive` for a `ring-progressively` queue.
    pub fn new(progressive: bool) -> Self {
        RingGroup {
            ringing: Vec::new(),
            grace: if progressive {
                PROGRESSIVE_GRACE
            } else {
                Duration::ZERO
            },
            connected: None,
        }
    }

    /// Whether the caller may ring `agent` now: not yet connected, and that agent's
    /// phone is not ringing already.
    pub fn can_ring(&self, agent: &AgentId) -> bool {
        self.connected.is_none() && !self.ringing.iter().any(|r| r.agent == *agent)
    }

    /// `agent`'s leg (Call-ID `leg`) rings from `now` for at least `timeout`. Returns
    /// `false` (and adds nothing) when [`RingGroup::can_ring`] says no.
    pub fn add(&mut self, now: Instant, agent: AgentId, leg: String, timeout: Duration) -> bool {
        if !self.can_ring(&agent) {
            return false;
        }
        self.ringing.push(Ringer {
            agent,
            leg,
            since: now,
            timeout,
        });
        true
    }

    #[cfg(test)]
    /// The agent whose leg answered first, once one has.
    pub fn connected(&self) -> Option<&AgentId> {
        self.connected.as_ref()
    }

    #[cfg(test)]
    /// How many legs ring.
    pub fn len(&self) -> usize {
        self.ringing.len()
    }

    #[cfg(test)]
    /// Whether no leg rings.
    pub fn is_empty(&self) -> bool {
        self.ringing.is_empty()
    }

    #[cfg(test)]
    /// Whether `leg` is one of the ringing legs.
    pub fn has_leg(&self, leg: &str) -> bool {
        self.ringing.iter().any(|r| r.leg == leg)
    }

    /// When the ringing legs give up (none when nothing rings).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.ringing
            .iter()
            .map(|r| r.since + r.timeout)
            .max()
            .map(|t| t + self.grace)
    }

    /// The deadline passed: every ringing leg is hung up and its agent missed the call.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<RingAction> {
        if self.poll_timeout().is_none_or(|t| now < t) {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(self.ringing.len() * 2);
        for r in self.ringing.drain(..) {
            out.push(RingAction::HangUp(r.leg));
            out.push(RingAction::Report(r.agent, RingOutcome::NoAnswer));
        }
        out
    }

    /// `leg` answered (200 OK). The first answer wins: bridged, reported, every other
    /// ringing leg hung up. Any later answer (or one from a leg no longer ringing) is
    /// hung up.
    pub fn answered(&mut self, leg: &str) -> Vec<RingAction> {
        let Some(i) = self.ringing.iter().position(|r| r.leg == leg) else {
            return vec![RingAction::HangUp(leg.to_string())];
        };
        if self.connected.is_some() {
            let r = self.ringing.remove(i);
            return vec![RingAction::HangUp(r.leg)];
        }
        let winner = self.ringing.remove(i);
        let mut out = Vec::with_capacity(2 + self.ringing.len());
        out.push(RingAction::Bridge(winner.leg));
        out.push(RingAction::Report(
            winner.agent.clone(),
            RingOutcome::Answered,
        ));
        self.connected = Some(winner.agent);
        out.extend(self.ringing.drain(..).map(|r| RingAction::HangUp(r.leg)));
        out
    }

    /// `leg` failed before an answer (`outcome` is never `Answered`): its agent's result.
    pub fn failed(&mut self, leg: &str, outcome: RingOutcome) -> Vec<RingAction> {
        let Some(i) = self.ringing.iter().position(|r| r.leg == leg) else {
            return Vec::new();
        };
        let r = self.ringing.remove(i);
        vec![RingAction::Report(r.agent, outcome)]
    }

    /// The ACD withdrew `agent`'s offer: its leg is hung up, nothing is reported.
    pub fn cancel(&mut self, agent: &AgentId) -> Vec<RingAction> {
        let Some(i) = self.ringing.iter().position(|r| r.agent == *agent) else {
            return Vec::new();
        };
        let r = self.ringing.remove(i);
        vec![RingAction::HangUp(r.leg)]
    }

    /// The caller leaves (hang-up, exit, transfer): every ringing leg is hung up, nothing
    /// is reported (the ACD withdraws the offers of a call that left).
    pub fn cancel_all(&mut self) -> Vec<RingAction> {
        self.ringing
            .drain(..)
            .map(|r| RingAction::HangUp(r.leg))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::RingAction::{Bridge, HangUp, Report};
    use super::*;

    const RT: Duration = Duration::from_secs(15);

    fn id(s: &str) -> AgentId {
        AgentId::from(s)
    }

    fn three(now: Instant) -> RingGroup {
        let mut g = RingGroup::new(false);
        for a in ["alice", "bob", "carol"] {
            assert!(g.add(now, id(a), format!("leg-{a}"), RT));
        }
        g
    }

    #[test]
    fn the_first_answer_wins_and_the_others_are_hung_up_without_a_report() {
        let t0 = Instant::now();
        let mut g = three(t0);
        assert_eq!(g.len(), 3);
        let out = g.answered("leg-bob");
        assert_eq!(
            out,
            vec![
                Bridge("leg-bob".into()),
                Report(id("bob"), RingOutcome::Answered),
                HangUp("leg-alice".into()),
                HangUp("leg-carol".into()),
            ]
        );
        assert_eq!(g.connected(), Some(&id("bob")));
        assert!(g.is_empty());
        assert_eq!(g.poll_timeout(), None, "nothing rings: no deadline");
        // carol's 200 crossed our CANCEL: that leg is hung up (ACK + BYE), not bridged.
        assert_eq!(g.answered("leg-carol"), vec![HangUp("leg-carol".into())]);
        // Nothing rings any more and no agent may be added.
        assert!(!g.can_ring(&id("dave")));
        assert!(!g.add(t0, id("dave"), "leg-dave".into(), RT));
        assert!(g.handle_timeout(t0 + RT * 10).is_empty());
    }

    #[test]
    fn nobody_answers_every_agent_misses_at_the_ring_timeout() {
        let t0 = Instant::now();
        let mut g = three(t0);
        assert_eq!(g.poll_timeout(), Some(t0 + RT));
        assert!(g
            .handle_timeout(t0 + RT - Duration::from_millis(1))
            .is_empty());
        let out = g.handle_timeout(t0 + RT);
        for a in ["alice", "bob", "carol"] {
            assert!(out.contains(&HangUp(format!("leg-{a}"))), "{out:?}");
            assert!(
                out.contains(&Report(id(a), RingOutcome::NoAnswer)),
                "{out:?}"
            );
        }
        assert_eq!(out.len(), 6);
        assert!(g.is_empty());
        assert_eq!(g.connected(), None);
        // The caller waits on: the next agent may ring.
        assert!(g.add(t0 + RT, id("alice"), "leg-alice-2".into(), RT));
    }

    #[test]
    fn a_failed_leg_is_reported_while_the_others_ring_on() {
        let t0 = Instant::now();
        let mut g = three(t0);
        assert_eq!(
            g.failed("leg-alice", RingOutcome::Rejected),
            vec![Report(id("alice"), RingOutcome::Rejected)]
        );
        assert_eq!(g.len(), 2);
        assert!(g.failed("leg-alice", RingOutcome::Rejected).is_empty());
        let out = g.answered("leg-carol");
        assert_eq!(out[0], Bridge("leg-carol".into()));
        assert_eq!(out[1], Report(id("carol"), RingOutcome::Answered));
        assert_eq!(&out[2..], &[HangUp("leg-bob".into())]);
    }

    #[test]
    fn the_acd_withdrawing_one_offer_hangs_up_that_leg_only() {
        let t0 = Instant::now();
        let mut g = three(t0);
        assert_eq!(g.cancel(&id("bob")), vec![HangUp("leg-bob".into())]);
        assert!(g.cancel(&id("bob")).is_empty());
        assert_eq!(g.len(), 2);
        assert!(!g.has_leg("leg-bob"));
        // A late answer from the withdrawn leg is hung up, never bridged.
        assert_eq!(g.answered("leg-bob"), vec![HangUp("leg-bob".into())]);
        assert_eq!(g.connected(), None);
    }

    #[test]
    fn the_caller_leaving_hangs_up_every_leg_and_reports_nothing() {
        let t0 = Instant::now();
        let mut g = three(t0);
        let out = g.cancel_all();
        assert_eq!(
            out,
            ["alice", "bob", "carol"].map(|a| HangUp(format!("leg-{a}")))
        );
        assert!(g.is_empty());
    }

    #[test]
    fn an_agent_already_ringing_is_not_added_twice() {
        let t0 = Instant::now();
        let mut g = three(t0);
        assert!(!g.can_ring(&id("alice")));
        assert!(!g.add(t0, id("alice"), "leg-alice-2".into(), RT));
        assert_eq!(g.len(), 3);
    }

    #[test]
    fn ring_progressively_keeps_earlier_legs_ringing_while_the_next_is_added() {
        let t0 = Instant::now();
        let mut g = RingGroup::new(true);
        assert!(g.add(t0, id("alice"), "leg-alice".into(), RT));
        // The ACD adds bob one ring timeout later; its request may arrive a little late.
        let bob_at = t0 + RT + Duration::from_millis(300);
        assert!(g.handle_timeout(t0 + RT).is_empty(), "alice rings on");
        assert!(g.add(bob_at, id("bob"), "leg-bob".into(), RT));
        assert_eq!(g.len(), 2);
        assert_eq!(g.poll_timeout(), Some(bob_at + RT + PROGRESSIVE_GRACE));
        // carol one more ring timeout later; alice and bob still ring.
        let carol_at = t0 + RT * 2 + Duration::from_millis(10);
        assert!(g.handle_timeout(carol_at).is_empty());
        assert!(g.add(carol_at, id("carol"), "leg-carol".into(), RT));
        assert_eq!(g.len(), 3);
        // No one else is added: everyone gives up together, each with a miss.
        let end = carol_at + RT + PROGRESSIVE_GRACE;
        assert!(g.handle_timeout(end - Duration::from_millis(1)).is_empty());
        let out = g.handle_timeout(end);
        let misses = out
            .iter()
            .filter(|a| matches!(a, Report(_, RingOutcome::NoAnswer)))
            .count();
        assert_eq!(misses, 3, "{out:?}");
    }

    #[test]
    fn ring_progressively_answer_by_the_first_agent_cancels_the_later_ones() {
        let t0 = Instant::now();
        let mut g = RingGroup::new(true);
        assert!(g.add(t0, id("alice"), "leg-alice".into(), RT));
        assert!(g.add(t0 + RT, id("bob"), "leg-bob".into(), RT));
        let out = g.answered("leg-alice");
        assert_eq!(
            out,
            vec![
                Bridge("leg-alice".into()),
                Report(id("alice"), RingOutcome::Answered),
                HangUp("leg-bob".into()),
            ]
        );
    }
}
