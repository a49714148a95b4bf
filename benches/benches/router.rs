//! ACD routing passes: 10,000 agents (skills from 20, levels 1-5, each in 1-3 of 8
//! queues with mixed strategies) and 1,000 waiting calls.
//!
//! - `full/<n>_available`: one pass with `n` agents ready (every call that can be
//!   served is assigned in that pass);
//! - `one_ready`: 9,999 agents busy, one becomes ready, one pass (the latency of
//!   "an agent becoming ready is offered a call").
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use caruso::acd::router::route;
use caruso::acd::{
    AcdSnapshot, AgentView, ExitTarget, QueueConfig, RelaxChange, Relaxation, Requirement, Skill,
    Strategy, WaitingCall,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const AGENTS: usize = 10_000;
const CALLS: usize = 1_000;
const SKILLS: usize = 20;
const QUEUES: usize = 8;

/// Deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn snapshot(available: usize) -> AcdSnapshot {
    let mut rng = Rng(7);
    let now = Instant::now() + Duration::from_secs(7200);
    let skill_names: Vec<Arc<str>> = (0..SKILLS).map(|i| format!("skill{i}").into()).collect();
    let ids: Vec<Arc<str>> = (0..AGENTS).map(|i| format!("agent{i:05}").into()).collect();

    let strategies = [
        Strategy::LongestIdle,
        Strategy::BestSkill,
        Strategy::LeastTalkTime,
        Strategy::RoundRobin,
        Strategy::FewestCalls,
        Strategy::TopDown,
        Strategy::Random,
        Strategy::LongestIdle,
    ];
    let mut members: Vec<Vec<Arc<str>>> = vec![Vec::new(); QUEUES];
    let mut agents = Vec::with_capacity(AGENTS);
    for (i, id) in ids.iter().enumerate() {
        let n = 3 + rng.below(4);
        let skills = (0..n)
            .map(|_| Skill {
                name: skill_names[rng.below(SKILLS)].clone(),
                level: 1 + rng.below(5) as u8,
            })
            .collect();
        for _ in 0..1 + rng.below(3) {
            let q = rng.below(QUEUES);
            if members[q].last() != Some(id) {
                members[q].push(id.clone());
            }
        }
        agents.push(AgentView {
            id: id.clone(),
            skills,
            // spread the available ones over the whole list
            available: available > 0 && i % (AGENTS / available.min(AGENTS)) == 0,
            ready_since: now - Duration::from_millis(rng.below(3_600_000) as u64),
            talk_time: Duration::from_secs(rng.below(20_000) as u64),
            calls_answered: rng.below(100) as u32,
        });
    }
    let queues: Vec<Arc<QueueConfig>> = (0..QUEUES)
        .map(|q| {
            let requirements = (0..1 + q % 2)
                .map(|k| Requirement {
                    skill: skill_names[(q * 3 + k) % SKILLS].clone(),
                    min_level: 1 + (q % 3) as u8,
                })
                .collect();
            Arc::new(QueueConfig {
                name: format!("queue{q}").into(),
                requirements,
                relaxations: vec![
                    Relaxation {
                        after: Duration::from_secs(60),
                        change: RelaxChange::MinLevel(1),
                    },
                    Relaxation {
                        after: Duration::from_secs(300),
                        change: RelaxChange::DropSkill(skill_names[(q * 3) % SKILLS].clone()),
                    },
                ],
                priority: (q % 3) as i32,
                strategy: strategies[q],
                ring_timeout: Duration::from_secs(15),
                retry_delay: Duration::from_secs(5),
                max_wait: None,
                max_len: None,
                wrap_up: Duration::ZERO,
                music: None,
                announcement: None,
                position_every: None,
                service_level: Duration::from_secs(20),
                exit_key: None,
                exit: ExitTarget::Hangup(vec![]),
                members: std::mem::take(&mut members[q]),
            })
        })
        .collect();
    let waiting = (0..CALLS)
        .map(|k| {
            let q = &queues[rng.below(QUEUES)];
            let requirements = if k % 10 == 0 {
                vec![Requirement {
                    skill: skill_names[rng.below(SKILLS)].clone(),
                    min_level: 2,
                }]
            } else {
                vec![]
            };
            WaitingCall {
                call: k as u64,
                queue: q.name.clone(),
                queued_at: now - Duration::from_millis(rng.below(600_000) as u64),
                priority: if k % 25 == 0 { 1 } else { 0 },
                requirements,
                excluded: if k % 7 == 0 {
                    vec![ids[rng.below(AGENTS)].clone()]
                } else {
                    vec![]
                },
                ringing: vec![],
                ringing_since: None,
            }
        })
        .collect();
    AcdSnapshot {
        now,
        last_offered: vec![(queues[3].name.clone(), ids[AGENTS / 2].clone())],
        queues,
        waiting,
        agents,
        seed: 99,
    }
}

fn router(c: &mut Criterion) {
    let mut g = c.benchmark_group("router");
    g.throughput(Throughput::Elements(1));
    for available in [AGENTS, 1_000] {
        let s = snapshot(available);
        let assigned = route(&s).len();
        eprintln!("router/full/{available}_available: {assigned} assignments per pass");
        g.bench_function(format!("full/{available}_available"), |b| {
            b.iter(|| route(black_box(&s)))
        });
    }
    let s = snapshot(1);
    let assigned = route(&s).len();
    eprintln!("router/one_ready: {assigned} assignment per pass");
    g.bench_function("one_ready", |b| b.iter(|| route(black_box(&s))));
    g.finish();
}

criterion_group!(benches, router);
criterion_main!(benches);
