//! Router tables: snapshot in, assignments out.

// The tables spell their row types out inline; that is their point.
#![allow(clippy::type_complexity)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::acd::{AgentView, ExitTarget, QueueConfig, Relaxation, Skill, WaitingCall};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A fixed "now" with an hour of room before it.
fn now() -> Instant {
    use std::sync::OnceLock;
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now) + secs(3600)
}

fn req(skill: &str, min_level: u8) -> Requirement {
    Requirement {
        skill: skill.into(),
        min_level,
    }
}

fn queue(name: &str, strategy: Strategy, members: &[&str]) -> QueueConfig {
    QueueConfig {
        name: name.into(),
        requirements: vec![],
        relaxations: vec![],
        priority: 0,
        strategy,
        ring_timeout: secs(15),
        retry_delay: secs(5),
        max_wait: None,
        max_len: None,
        wrap_up: Duration::ZERO,
        music: None,
        announcement: None,
        position_every: None,
        service_level: secs(20),
        exit_key: None,
        exit: ExitTarget::Hangup(vec![]),
        members: members.iter().map(|m| Arc::from(*m)).collect(),
    }
}

/// Ready agent, idle for `idle` seconds.
fn agent(id: &str, skills: &[(&str, u8)], idle: u64) -> AgentView {
    AgentView {
        id: id.into(),
        skills: skills
            .iter()
            .map(|&(n, l)| Skill {
                name: n.into(),
                level: l,
            })
            .collect(),
        available: true,
        ready_since: now() - secs(idle),
        talk_time: Duration::ZERO,
        calls_answered: 0,
    }
}

/// A call waiting for `wait` seconds.
fn call(key: u64, queue: &str, wait: u64) -> WaitingCall {
    WaitingCall {
        call: key,
        queue: queue.into(),
        queued_at: now() - secs(wait),
        priority: 0,
        requirements: vec![],
        excluded: vec![],
        ringing: vec![],
        ringing_since: None,
    }
}

fn snap(
    queues: Vec<QueueConfig>,
    agents: Vec<AgentView>,
    waiting: Vec<WaitingCall>,
) -> AcdSnapshot {
    AcdSnapshot {
        now: now(),
        queues: queues.into_iter().map(Arc::new).collect(),
        waiting,
        agents,
        last_offered: vec![],
        seed: 42,
    }
}

/// Assignments as (call, [agent ids]).
fn routed(s: &AcdSnapshot) -> Vec<(u64, Vec<String>)> {
    route(s)
        .into_iter()
        .map(|a| (a.call, a.agents.iter().map(|x| x.to_string()).collect()))
        .collect()
}

fn one(key: u64, agents: &[&str]) -> Vec<(u64, Vec<String>)> {
    vec![(key, agents.iter().map(|a| a.to_string()).collect())]
}

/// Four agents with distinct idle time, talk time and calls answered:
/// longest idle b, least talk c, fewest calls d, first member a.
fn four() -> Vec<AgentView> {
    let mk = |id, idle, talk, calls, x| AgentView {
        talk_time: secs(talk),
        calls_answered: calls,
        ..agent(id, &[("x", x)], idle)
    };
    vec![
        mk("a", 10, 300, 5, 3),
        mk("b", 40, 100, 8, 2),
        mk("c", 20, 50, 9, 5),
        mk("d", 30, 200, 2, 5),
    ]
}

#[test]
fn each_strategy_picks_its_agent() {
    // (strategy, last offered for round-robin, expected agents)
    let table: &[(Strategy, Option<&str>, &[&str])] = &[
        (Strategy::LongestIdle, None, &["b"]),
        (Strategy::LeastTalkTime, None, &["c"]),
        (Strategy::FewestCalls, None, &["d"]),
        (Strategy::TopDown, None, &["a"]),
        (Strategy::RoundRobin, None, &["a"]),
        (Strategy::RoundRobin, Some("b"), &["c"]),
        (Strategy::RoundRobin, Some("d"), &["a"]), // wraps
        (Strategy::RoundRobin, Some("zed"), &["a"]), // unknown: from the start
        (Strategy::RingAll, None, &["a", "b", "c", "d"]),
        // x levels a3 b2 c5 d5: c and d tie at 5, d idle longer
        (Strategy::BestSkill, None, &["d"]),
        (Strategy::RingProgressively, None, &["a"]),
    ];
    for &(strategy, last, want) in table {
        let mut q = queue("q", strategy, &["a", "b", "c", "d"]);
        q.requirements = vec![req("x", 1)];
        let mut s = snap(vec![q], four(), vec![call(1, "q", 10)]);
        if let Some(last) = last {
            s.last_offered = vec![("q".into(), last.into())];
        }
        assert_eq!(routed(&s), one(1, want), "{}", strategy.as_str());
    }
}

#[test]
fn ties_go_to_the_earlier_member() {
    let table: &[Strategy] = &[
        Strategy::LongestIdle,
        Strategy::LeastTalkTime,
        Strategy::FewestCalls,
        Strategy::BestSkill,
    ];
    for &strategy in table {
        let q = queue("q", strategy, &["m", "k", "z"]);
        let agents = vec![agent("z", &[], 5), agent("k", &[], 5), agent("m", &[], 5)];
        let s = snap(vec![q], agents, vec![call(1, "q", 1)]);
        assert_eq!(routed(&s), one(1, &["m"]), "{}", strategy.as_str());
    }
}

#[test]
fn best_skill_sums_levels_over_required_skills() {
    // (agents [(id, x, y, idle)], expected)
    let table: &[(&[(&str, u8, u8, u64)], &str)] = &[
        (&[("a", 5, 1, 50), ("b", 3, 4, 10)], "b"), // 6 < 7
        (&[("a", 4, 2, 50), ("b", 3, 3, 10)], "a"), // tie 6: idle longer
        (&[("a", 4, 2, 10), ("b", 3, 3, 50)], "b"), // tie 6: idle longer
        (&[("a", 5, 5, 1), ("b", 5, 4, 90), ("c", 1, 1, 99)], "a"), // the top score
        (&[("a", 5, 0, 50), ("b", 1, 1, 10)], "b"), // a lacks y
    ];
    for &(agents, want) in table {
        let ids: Vec<&str> = agents.iter().map(|a| a.0).collect();
        let mut q = queue("q", Strategy::BestSkill, &ids);
        q.requirements = vec![req("x", 1), req("y", 1)];
        let views = agents
            .iter()
            .map(|&(id, x, y, idle)| {
                let skills: Vec<(&str, u8)> = [("x", x), ("y", y)]
                    .into_iter()
                    .filter(|s| s.1 > 0)
                    .collect();
                agent(id, &skills, idle)
            })
            .collect();
        let s = snap(vec![q], views, vec![call(1, "q", 1)]);
        assert_eq!(routed(&s), one(1, &[want]), "{agents:?}");
    }
    let a = agent("a", &[("x", 4), ("y", 2), ("z", 5)], 0);
    assert_eq!(skill_score(&a, &[req("x", 1), req("y", 1)]), 6);
}

#[test]
fn skill_levels_decide_eligibility() {
    // (queue requirements, caller requirements, expected agent or none)
    // a: english 2, idle longest; b: no english; c: english 3 + billing 2; d: english 5
    let agents = || {
        vec![
            agent("a", &[("english", 2)], 90),
            agent("b", &[("german", 5)], 80),
            agent("c", &[("english", 3), ("billing", 2)], 70),
            agent("d", &[("english", 5)], 10),
        ]
    };
    let table: &[(&[(&str, u8)], &[(&str, u8)], Option<&str>)] = &[
        (&[], &[], Some("a")),
        (&[("english", 1)], &[], Some("a")),
        (&[("english", 2)], &[], Some("a")),
        (&[("english", 3)], &[], Some("c")),
        (&[("english", 4)], &[], Some("d")),
        (&[("english", 3)], &[("billing", 1)], Some("c")),
        (&[("english", 3)], &[("billing", 3)], None),
        (&[("english", 2)], &[("english", 4)], Some("d")), // the higher minimum holds
        (&[("german", 1)], &[], Some("b")),
        (&[("french", 1)], &[], None), // nobody has it
    ];
    for &(qreq, creq, want) in table {
        let mut q = queue("q", Strategy::LongestIdle, &["a", "b", "c", "d"]);
        q.requirements = qreq.iter().map(|&(s, l)| req(s, l)).collect();
        let mut c = call(1, "q", 1);
        c.requirements = creq.iter().map(|&(s, l)| req(s, l)).collect();
        let s = snap(vec![q], agents(), vec![c]);
        let expected = want.map(|w| one(1, &[w])).unwrap_or_default();
        assert_eq!(routed(&s), expected, "{qreq:?} + {creq:?}");
    }
}

#[test]
fn relaxation_steps_apply_from_their_time() {
    // english 4 required; after 30 s level 2 is enough; after 60 s english is dropped.
    // a: english 1 (idle longest), b: english 2, c: english 5 but busy.
    let mut q = queue("q", Strategy::LongestIdle, &["a", "b", "c"]);
    q.requirements = vec![req("english", 4)];
    q.relaxations = vec![
        Relaxation {
            after: secs(30),
            change: RelaxChange::MinLevel(2),
        },
        Relaxation {
            after: secs(60),
            change: RelaxChange::DropSkill("english".into()),
        },
    ];
    let agents = vec![
        agent("a", &[("english", 1)], 90),
        agent("b", &[("english", 2)], 50),
        AgentView {
            available: false,
            ..agent("c", &[("english", 5)], 99)
        },
    ];
    // (wait, expected, next wakeup in seconds from now)
    let table: &[(u64, Option<&str>, Option<u64>)] = &[
        (0, None, Some(30)),
        (29, None, Some(1)),
        (30, Some("b"), Some(30)),
        (59, Some("b"), Some(1)),
        (60, Some("a"), None),
        (600, Some("a"), None),
    ];
    for &(wait, want, wake) in table {
        let s = snap(vec![q.clone()], agents.clone(), vec![call(1, "q", wait)]);
        let expected = want.map(|w| one(1, &[w])).unwrap_or_default();
        assert_eq!(routed(&s), expected, "wait {wait}");
        assert_eq!(
            next_wakeup(&s),
            wake.map(|w| now() + secs(w)),
            "wait {wait}"
        );
    }
}

#[test]
fn min_level_relaxation_never_drops_a_skill() {
    let mut q = queue("q", Strategy::LongestIdle, &["a"]);
    q.requirements = vec![req("english", 4)];
    q.relaxations = vec![Relaxation {
        after: secs(0),
        change: RelaxChange::MinLevel(0),
    }];
    let s = snap(
        vec![q.clone()],
        vec![agent("a", &[], 1)],
        vec![call(1, "q", 1)],
    );
    assert_eq!(routed(&s), vec![]);
    let s = snap(
        vec![q],
        vec![agent("a", &[("english", 1)], 1)],
        vec![call(1, "q", 1)],
    );
    assert_eq!(routed(&s), one(1, &["a"]));
}

#[test]
fn relaxation_also_applies_to_caller_requirements() {
    let mut q = queue("q", Strategy::LongestIdle, &["a"]);
    q.relaxations = vec![Relaxation {
        after: secs(20),
        change: RelaxChange::DropSkill("vip".into()),
    }];
    let mut c = call(1, "q", 10);
    c.requirements = vec![req("vip", 1)];
    let s = snap(vec![q.clone()], vec![agent("a", &[], 1)], vec![c.clone()]);
    assert_eq!(routed(&s), vec![]);
    c.queued_at = now() - secs(20);
    let s = snap(vec![q], vec![agent("a", &[], 1)], vec![c]);
    assert_eq!(routed(&s), one(1, &["a"]));
}

#[test]
fn caller_priority_goes_first_within_a_queue() {
    // (calls [(key, wait, priority)], agents, expected in order)
    let table: &[(&[(u64, u64, i32)], &[&str], &[(u64, &str)])] = &[
        (&[(1, 100, 0), (2, 10, 5)], &["a"], &[(2, "a")]),
        (&[(1, 100, 0), (2, 10, 0)], &["a"], &[(1, "a")]),
        (&[(1, 10, 0), (2, 100, 0)], &["a"], &[(2, "a")]),
        (&[(1, 100, -1), (2, 10, 0)], &["a"], &[(2, "a")]),
        (&[(1, 50, 0), (2, 50, 0)], &["a"], &[(1, "a")]), // same wait: lower key
        // two agents: the priority caller takes the longest idle (a)
        (
            &[(1, 100, 0), (2, 10, 3)],
            &["a", "b"],
            &[(2, "a"), (1, "b")],
        ),
    ];
    for &(calls, agents, want) in table {
        let q = queue("q", Strategy::LongestIdle, agents);
        let views = agents
            .iter()
            .enumerate()
            .map(|(i, id)| agent(id, &[], 100 - i as u64))
            .collect();
        let waiting = calls
            .iter()
            .map(|&(k, w, p)| WaitingCall {
                priority: p,
                ..call(k, "q", w)
            })
            .collect();
        let s = snap(vec![q], views, waiting);
        let expected: Vec<_> = want
            .iter()
            .map(|&(k, a)| (k, vec![a.to_string()]))
            .collect();
        assert_eq!(routed(&s), expected, "{calls:?}");
    }
}

#[test]
fn shared_agent_takes_the_longest_weighted_wait() {
    // Agent x serves A and B; one call each.
    // (priority A, wait A, priority B, wait B, expected queue)
    let table: &[(i32, u64, i32, u64, &str)] = &[
        (0, 100, 0, 200, "B"),
        (0, 200, 0, 100, "A"),
        (1, 100, 0, 200, "B"),  // 160 < 200
        (2, 100, 0, 200, "A"),  // 220 > 200
        (0, 100, -1, 200, "B"), // 100 < 140
        (0, 100, -2, 200, "A"), // 100 > 80
        (0, 150, 0, 150, "A"),  // tie: config order
        (1, 90, 0, 150, "A"),   // tie 150: config order
        (0, 90, 1, 30, "A"),    // 90 = 90: config order
        (0, 91, 1, 30, "A"),
        (0, 89, 1, 30, "B"),
    ];
    for &(pa, wa, pb, wb, want) in table {
        let mut a = queue("A", Strategy::LongestIdle, &["x"]);
        a.priority = pa;
        let mut b = queue("B", Strategy::LongestIdle, &["x"]);
        b.priority = pb;
        let s = snap(
            vec![a, b],
            vec![agent("x", &[], 10)],
            vec![call(1, "A", wa), call(2, "B", wb)],
        );
        let out = route(&s);
        assert_eq!(out.len(), 1);
        assert_eq!(&*out[0].queue, want, "A p{pa} {wa}s, B p{pb} {wb}s");
        assert_eq!(out[0].call, if want == "A" { 1 } else { 2 });
    }
}

#[test]
fn a_queue_claims_by_its_longest_wait_not_its_vips() {
    // A: a VIP who just arrived and a caller waiting 100 s; B: a caller waiting 50 s.
    // A's claim is 100 s, so the shared agent goes to A, and there to the VIP.
    let a = queue("A", Strategy::LongestIdle, &["x"]);
    let b = queue("B", Strategy::LongestIdle, &["x"]);
    let vip = WaitingCall {
        priority: 9,
        ..call(1, "A", 1)
    };
    let s = snap(
        vec![a, b],
        vec![agent("x", &[], 10)],
        vec![vip, call(2, "A", 100), call(3, "B", 50)],
    );
    assert_eq!(routed(&s), one(1, &["x"]));
}

#[test]
fn multi_queue_pass_serves_queues_in_claim_order() {
    // x serves A and B, y only B. B's call (200 s) goes first and takes the longest idle
    // of its members (x); A's call (100 s) then finds nobody: greedy by claim, by design.
    let a = queue("A", Strategy::LongestIdle, &["x"]);
    let b = queue("B", Strategy::LongestIdle, &["x", "y"]);
    let s = snap(
        vec![a.clone(), b.clone()],
        vec![agent("x", &[], 50), agent("y", &[], 10)],
        vec![call(1, "A", 100), call(2, "B", 200)],
    );
    assert_eq!(routed(&s), one(2, &["x"]));
    // With y idle longer, B takes y and A gets x.
    let s = snap(
        vec![a, b],
        vec![agent("x", &[], 10), agent("y", &[], 50)],
        vec![call(1, "A", 100), call(2, "B", 200)],
    );
    assert_eq!(
        routed(&s),
        vec![(2, vec!["y".to_string()]), (1, vec!["x".to_string()])]
    );
}

#[test]
fn exclusions_unavailable_and_non_members_are_skipped() {
    // (excluded, unavailable, members, expected)
    let table: &[(&[&str], &[&str], &[&str], Option<&str>)] = &[
        (&[], &[], &["a", "b", "c"], Some("a")),
        (&["a"], &[], &["a", "b", "c"], Some("b")),
        (&["a", "b"], &[], &["a", "b", "c"], Some("c")),
        (&["a", "b", "c"], &[], &["a", "b", "c"], None),
        (&[], &["a"], &["a", "b", "c"], Some("b")),
        (&["b"], &["a"], &["a", "b", "c"], Some("c")),
        (&[], &[], &["c"], Some("c")),
        (&[], &[], &[], None),
    ];
    for &(excluded, busy, members, want) in table {
        let q = queue("q", Strategy::LongestIdle, members);
        let agents = [("a", 90), ("b", 60), ("c", 30)]
            .iter()
            .map(|&(id, idle)| AgentView {
                available: !busy.contains(&id),
                ..agent(id, &[], idle)
            })
            .collect();
        let c = WaitingCall {
            excluded: excluded.iter().map(|e| Arc::from(*e)).collect(),
            ..call(1, "q", 5)
        };
        let s = snap(vec![q], agents, vec![c]);
        let expected = want.map(|w| one(1, &[w])).unwrap_or_default();
        assert_eq!(routed(&s), expected, "excluded {excluded:?} busy {busy:?}");
    }
}

#[test]
fn ring_all_rings_every_eligible_agent_once() {
    let mut q = queue("q", Strategy::RingAll, &["d", "c", "b", "a", "e"]);
    q.requirements = vec![req("x", 2)];
    let agents = vec![
        agent("a", &[("x", 2)], 1),
        agent("b", &[("x", 1)], 1), // level too low
        agent("c", &[("x", 5)], 1),
        AgentView {
            available: false,
            ..agent("d", &[("x", 5)], 1)
        },
        agent("e", &[("x", 3)], 1), // excluded
        agent("f", &[("x", 5)], 1), // not a member
    ];
    let c = WaitingCall {
        excluded: vec!["e".into()],
        ..call(1, "q", 5)
    };
    // The second call gets what is left: e (excluded only for the first call).
    let s = snap(vec![q.clone()], agents.clone(), vec![c, call(2, "q", 1)]);
    assert_eq!(
        routed(&s),
        vec![(1, vec!["c".into(), "a".into()]), (2, vec!["e".into()])]
    );
    // A ring-all call already ringing is left alone; the next call gets the agents.
    let ringing = WaitingCall {
        ringing: vec!["c".into()],
        ringing_since: Some(now() - secs(1)),
        ..call(1, "q", 5)
    };
    let mut agents = agents;
    agents[2].available = false; // c rings for call 1
    let s = snap(vec![q], agents, vec![ringing, call(2, "q", 1)]);
    assert_eq!(routed(&s), one(2, &["a", "e"]));
}

#[test]
fn ringing_calls_are_skipped_except_ring_progressively_when_due() {
    for strategy in Strategy::ALL {
        if strategy == Strategy::RingProgressively {
            continue;
        }
        let q = queue("q", strategy, &["a", "b"]);
        let c = WaitingCall {
            ringing: vec!["z".into()],
            ringing_since: Some(now() - secs(600)),
            ..call(1, "q", 700)
        };
        let s = snap(
            vec![q],
            vec![agent("a", &[], 1), agent("b", &[], 1)],
            vec![c],
        );
        assert_eq!(routed(&s), vec![], "{}", strategy.as_str());
        assert_eq!(next_wakeup(&s), None, "{}", strategy.as_str());
    }
}

#[test]
fn ring_progressively_adds_members_as_ring_timeouts_pass() {
    // members a..e; a is already ringing (so unavailable); ring timeout 15 s.
    // (ringing, seconds since the first ring, unavailable others, expected additions,
    //  next wakeup from now)
    let table: &[(&[&str], u64, &[&str], &[&str], Option<u64>)] = &[
        (&["a"], 0, &[], &[], Some(15)),
        (&["a"], 14, &[], &[], Some(1)),
        (&["a"], 15, &[], &["b"], Some(0)),
        (&["a"], 31, &[], &["b", "c"], None), // catch up: three due by 30 s
        (&["a", "b"], 16, &[], &[], Some(14)),
        (&["a", "b"], 30, &[], &["c"], Some(0)),
        (&["a"], 15, &["b"], &["c"], Some(0)), // b busy: the next one
        (&["b"], 15, &[], &["a"], Some(0)),    // a free again: first member first
    ];
    for &(ringing, since, busy, want, wake) in table {
        let q = queue("q", Strategy::RingProgressively, &["a", "b", "c", "d", "e"]);
        let agents = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|id| AgentView {
                available: !ringing.contains(id) && !busy.contains(id),
                ..agent(id, &[], 5)
            })
            .collect();
        let c = WaitingCall {
            ringing: ringing.iter().map(|r| Arc::from(*r)).collect(),
            ringing_since: Some(now() - secs(since)),
            ..call(1, "q", 100)
        };
        let s = snap(vec![q], agents, vec![c]);
        let expected = if want.is_empty() {
            vec![]
        } else {
            one(1, want)
        };
        assert_eq!(routed(&s), expected, "{ringing:?} since {since}");
        // wakeup: a due-now step is not in the future (route acts on it now)
        let wake = wake.filter(|w| *w > 0).map(|w| now() + secs(w));
        assert_eq!(next_wakeup(&s), wake, "{ringing:?} since {since}");
    }
}

#[test]
fn ring_progressively_starts_with_the_first_eligible_member() {
    let mut q = queue("q", Strategy::RingProgressively, &["a", "b", "c"]);
    q.requirements = vec![req("x", 3)];
    let agents = vec![
        agent("a", &[("x", 2)], 90),
        agent("b", &[("x", 3)], 1),
        agent("c", &[("x", 5)], 50),
    ];
    let s = snap(vec![q], agents, vec![call(1, "q", 5)]);
    assert_eq!(routed(&s), one(1, &["b"]));
}

#[test]
fn round_robin_continues_the_turn_within_a_pass() {
    // (last offered, available, calls, expected agents in call order)
    let table: &[(Option<&str>, &[&str], usize, &[&str])] = &[
        (Some("b"), &["a", "b", "c", "d"], 3, &["c", "d", "a"]),
        (Some("d"), &["a", "b", "c", "d"], 2, &["a", "b"]),
        (Some("a"), &["a", "c"], 2, &["c", "a"]), // b and d are busy
        (Some("b"), &["a"], 2, &["a"]),           // only one agent free
        (None, &["b", "c"], 1, &["b"]),
    ];
    for &(last, free, calls, want) in table {
        let q = queue("q", Strategy::RoundRobin, &["a", "b", "c", "d"]);
        let agents = ["a", "b", "c", "d"]
            .iter()
            .map(|id| AgentView {
                available: free.contains(id),
                ..agent(id, &[], 10)
            })
            .collect();
        let waiting = (0..calls as u64)
            .map(|k| call(k + 1, "q", 100 - k))
            .collect();
        let mut s = snap(vec![q], agents, waiting);
        s.last_offered = last.map(|l| ("q".into(), l.into())).into_iter().collect();
        let got: Vec<String> = route(&s)
            .into_iter()
            .map(|a| a.agents[0].to_string())
            .collect();
        assert_eq!(got, want, "last {last:?} free {free:?}");
    }
}

#[test]
fn random_is_deterministic_per_seed_and_uses_every_agent() {
    let mk = |seed: u64| {
        let q = queue("q", Strategy::Random, &["a", "b", "c", "d"]);
        let mut s = snap(vec![q], four(), vec![call(1, "q", 10), call(2, "q", 5)]);
        s.seed = seed;
        s
    };
    let mut seen = std::collections::HashSet::new();
    for seed in 0..200 {
        let first = routed(&mk(seed));
        assert_eq!(first, routed(&mk(seed)), "seed {seed}");
        assert_eq!(first.len(), 2);
        assert_ne!(first[0].1, first[1].1, "one agent twice");
        seen.insert(first[0].1[0].clone());
    }
    assert_eq!(
        seen.len(),
        4,
        "every agent is picked for some seed: {seen:?}"
    );
    // Not all seeds agree.
    let picks: std::collections::HashSet<_> = (0..20).map(|s| routed(&mk(s))).collect();
    assert!(picks.len() > 1);
}

#[test]
fn one_agent_many_calls_gives_one_assignment() {
    for strategy in Strategy::ALL {
        let q = queue("q", strategy, &["a"]);
        let s = snap(
            vec![q],
            vec![agent("a", &[], 1)],
            vec![call(1, "q", 10), call(2, "q", 30), call(3, "q", 20)],
        );
        assert_eq!(routed(&s), one(2, &["a"]), "{}", strategy.as_str());
    }
}

#[test]
fn unknown_queue_and_no_agents_route_nothing() {
    let q = queue("q", Strategy::LongestIdle, &["a"]);
    let s = snap(
        vec![q.clone()],
        vec![agent("a", &[], 1)],
        vec![call(1, "nope", 10)],
    );
    assert_eq!(routed(&s), vec![]);
    let s = snap(vec![q], vec![], vec![call(1, "q", 10)]);
    assert_eq!(routed(&s), vec![]);
}

mod prop {
    use super::{agent, call, now, queue, req, secs, snap};
    use super::{is_eligible, route, AcdSnapshot, AgentView, Arc, RelaxChange, Relaxation};
    use super::{QueueConfig, Requirement, WaitingCall};
    use proptest::prelude::*;

    const IDS: [&str; 8] = ["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"];
    const SKILLS: [&str; 3] = ["s0", "s1", "s2"];

    fn skills() -> impl Strategy<Value = Vec<(usize, u8)>> {
        proptest::collection::vec((0..SKILLS.len(), 1u8..=5), 0..3)
    }

    fn reqs(v: &[(usize, u8)]) -> Vec<Requirement> {
        v.iter().map(|&(s, l)| req(SKILLS[s], l)).collect()
    }

    prop_compose! {
        fn arb_queue(i: usize)(
            strategy in 0..9usize,
            members in proptest::sample::subsequence(IDS.to_vec(), 0..=IDS.len()),
            requirements in skills(),
            relax in proptest::option::of((0u64..120, 1u8..=5)),
            drop in proptest::option::of((0u64..120, 0..SKILLS.len())),
            priority in -2i32..3,
        ) -> QueueConfig {
            let mut q = queue(&format!("q{i}"), crate::acd::Strategy::ALL[strategy], &members);
            q.requirements = reqs(&requirements);
            q.priority = priority;
            if let Some((after, level)) = relax {
                q.relaxations.push(Relaxation { after: secs(after), change: RelaxChange::MinLevel(level) });
            }
            if let Some((after, skill)) = drop {
                q.relaxations.push(Relaxation { after: secs(after), change: RelaxChange::DropSkill(SKILLS[skill].into()) });
            }
            q
        }
    }

    fn arb_snapshot() -> impl Strategy<Value = AcdSnapshot> {
        let queues = (arb_queue(0), arb_queue(1), arb_queue(2));
        let agents = proptest::collection::vec((skills(), any::<bool>(), 0u64..100), IDS.len());
        let calls = proptest::collection::vec(
            (
                0..3usize,
                0u64..200,
                -1i32..2,
                skills(),
                proptest::sample::subsequence(IDS.to_vec(), 0..3),
                proptest::option::of((proptest::sample::subsequence(IDS.to_vec(), 1..3), 0u64..60)),
            ),
            0..10,
        );
        (
            queues,
            agents,
            calls,
            any::<u64>(),
            proptest::option::of(0..IDS.len()),
        )
            .prop_map(|((q0, q1, q2), agents, calls, seed, last)| {
                let agents = agents
                    .into_iter()
                    .zip(IDS)
                    .map(|((sk, available, idle), id)| {
                        let named: Vec<(&str, u8)> =
                            sk.iter().map(|&(s, l)| (SKILLS[s], l)).collect();
                        AgentView {
                            available,
                            ..agent(id, &named, idle)
                        }
                    })
                    .collect();
                let waiting = calls
                    .into_iter()
                    .enumerate()
                    .map(
                        |(k, (qi, wait, prio, creq, excluded, ringing))| WaitingCall {
                            priority: prio,
                            requirements: reqs(&creq),
                            excluded: excluded.into_iter().map(Arc::from).collect(),
                            ringing: ringing
                                .as_ref()
                                .map(|r| r.0.iter().map(|x| Arc::from(*x)).collect())
                                .unwrap_or_default(),
                            ringing_since: ringing.map(|(_, since)| now() - secs(since)),
                            ..call(k as u64, &format!("q{qi}"), wait)
                        },
                    )
                    .collect();
                let mut s = snap(vec![q0, q1, q2], agents, waiting);
                s.seed = seed;
                s.last_offered = last
                    .map(|l| ("q0".into(), IDS[l].into()))
                    .into_iter()
                    .collect();
                s
            })
    }

    proptest! {
        #[test]
        fn a_pass_is_a_valid_matching(s in arb_snapshot()) {
            let out = route(&s);
            prop_assert_eq!(&out, &route(&s), "deterministic");
            let mut agents_used = std::collections::HashSet::new();
            let mut calls_used = std::collections::HashSet::new();
            for a in &out {
                prop_assert!(calls_used.insert(a.call), "call {} twice", a.call);
                prop_assert!(!a.agents.is_empty());
                let call = s.waiting.iter().find(|c| c.call == a.call).unwrap();
                prop_assert_eq!(&call.queue, &a.queue);
                let q = s.queues.iter().find(|q| q.name == a.queue).unwrap();
                if q.strategy != crate::acd::Strategy::RingAll
                    && q.strategy != crate::acd::Strategy::RingProgressively
                {
                    prop_assert_eq!(a.agents.len(), 1);
                }
                for id in &a.agents {
                    prop_assert!(agents_used.insert(id.clone()), "agent {} twice", id);
                    let view = s.agents.iter().find(|v| v.id == *id).unwrap();
                    prop_assert!(is_eligible(view, q, call, s.now), "{} not eligible for {}", id, a.call);
                }
            }
            // Nothing left undone: a waiting, not-ringing call left out has no free
            // eligible agent (agents are only consumed during a pass).
            for c in s.waiting.iter().filter(|c| c.ringing.is_empty() && !calls_used.contains(&c.call)) {
                let Some(q) = s.queues.iter().find(|q| q.name == c.queue) else { continue };
                for v in &s.agents {
                    prop_assert!(
                        agents_used.contains(&v.id) || !is_eligible(v, q, c, s.now),
                        "call {} left out but {} could take it", c.call, v.id
                    );
                }
            }
        }
    }
}
