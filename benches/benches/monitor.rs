//! Monitor fan-out latency: the delay from an agent state change to 1,000 watchers.
//!
//! A real ACD task (one queue, ten agents, from a config text) and the real monitor hub
//! run on a two-thread tokio runtime; 1,000 watchers (each a task reading its bounded
//! queue, as the gRPC `Watch` stream does) wait for the change. One round: the bench
//! takes the time, asks the ACD to change an agent's state (ready / not ready in turn)
//! and waits until every watcher has the agent's change; each watcher records its own
//! delay. Criterion measures whole rounds (until the last watcher); the per-watcher
//! delays of all rounds give the p50 / p99 printed at the end.
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use caruso::acd::api::{AcdCommand, AcdHandle};
use caruso::acd::task::{AcdCalls, AcdTask};
use caruso::events::EventBus;
use caruso::monitor::clock::LocalDays;
use caruso::monitor::hub::{self, HubSettings, MonitorHandle, Update};
use caruso::monitor::model::{Delta, Filter};
use criterion::{criterion_group, criterion_main, Criterion};
use tokio::sync::Notify;

const WATCHERS: usize = 1_000;
const AGENTS: usize = 10;

/// What the watchers share with the bench loop.
struct Shared {
    base: Instant,
    /// When the current round's change was asked for (ns since `base`).
    started: AtomicU64,
    /// Each watcher's delay in the current round (ns).
    delays: Vec<AtomicU64>,
    /// Watchers done with the current round.
    done: AtomicUsize,
    all_done: Notify,
}

fn config_text() -> String {
    let mut s = String::from(
        "[acd]\nreasons = [\"break\"]\n\n[[acd.queues]]\nname = \"sales\"\nskills = { sales = 1 }\n",
    );
    for i in 0..AGENTS {
        s.push_str(&format!(
            "\n[[acd.agents]]\nid = \"a{i}\"\ntoken = \"t{i}\"\nskills = {{ sales = 1 }}\n\
             phone = {{ uri = \"sip:a{i}@127.0.0.1:5071\" }}\n"
        ));
    }
    s
}

struct Setup {
    acd: AcdHandle,
    _calls: AcdCalls,
    _monitor: MonitorHandle,
    shared: Arc<Shared>,
}

async fn setup() -> Setup {
    let config =
        caruso::config::Config::from_toml(&config_text(), "bench.toml", std::path::Path::new("."))
            .expect("bench config");
    let acd_config = config.acd.clone().expect("[acd]");
    let bus = EventBus::default();
    let (acd, calls) = AcdTask::new(
        acd_config,
        None,
        bus.clone(),
        tokio::time::Instant::now().into_std(),
    )
    .spawn();
    let monitor = hub::spawn(
        &bus,
        Some(acd.clone()),
        None,
        LocalDays::default(),
        HubSettings::default(),
    );
    let agent: caruso::acd::AgentId = "a0".into();
    acd.ask(|reply| AcdCommand::LogIn {
        agent: agent.clone(),
        reply,
    })
    .await
    .expect("log in");
    let shared = Arc::new(Shared {
        base: Instant::now(),
        started: AtomicU64::new(0),
        delays: (0..WATCHERS).map(|_| AtomicU64::new(0)).collect(),
        done: AtomicUsize::new(0),
        all_done: Notify::new(),
    });
    for i in 0..WATCHERS {
        let mut w = monitor.watch(Filter::all()).await.expect("watch");
        let shared = shared.clone();
        tokio::spawn(async move {
            while let Some(u) = w.updates.recv().await {
                let Update::Change { change, .. } = u else {
                    continue;
                };
                if let Delta::Agent { .. } = change.delta {
                    let now = shared.base.elapsed().as_nanos() as u64;
                    let d = now.saturating_sub(shared.started.load(Ordering::Acquire));
                    shared.delays[i].store(d, Ordering::Relaxed);
                    if shared.done.fetch_add(1, Ordering::AcqRel) + 1 == WATCHERS {
                        shared.all_done.notify_one();
                    }
                }
            }
        });
    }
    Setup {
        acd,
        _calls: calls,
        _monitor: monitor,
        shared,
    }
}

/// One state change to every watcher; returns the time until the last one had it and
/// appends the per-watcher delays.
async fn round(s: &Setup, ready: bool, delays: &mut Vec<u64>) -> Duration {
    let sh = &s.shared;
    sh.done.store(0, Ordering::Release);
    let agent: caruso::acd::AgentId = "a0".into();
    let t0 = Instant::now();
    sh.started
        .store(sh.base.elapsed().as_nanos() as u64, Ordering::Release);
    let notified = sh.all_done.notified();
    if ready {
        s.acd
            .ask(|reply| AcdCommand::SetReady { agent, reply })
            .await
            .expect("ready");
    } else {
        s.acd
            .ask(|reply| AcdCommand::SetNotReady {
                agent,
                reason: "break".into(),
                reply,
            })
            .await
            .expect("not ready");
    }
    notified.await;
    let took = t0.elapsed();
    delays.extend(sh.delays.iter().map(|d| d.load(Ordering::Relaxed)));
    took
}

fn percentile(sorted: &[u64], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    Duration::from_nanos(sorted[i])
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let setup = rt.block_on(setup());
    let mut delays = Vec::new();
    let mut ready = true;
    c.bench_function("monitor/state_change_to_1000_watchers", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += round(&setup, ready, &mut delays).await;
                    ready = !ready;
                }
                total
            })
        })
    });
    delays.sort_unstable();
    println!(
        "monitor fan-out, agent state change -> {WATCHERS} watchers: {} deliveries, p50 {:?}, p99 {:?}, max {:?}",
        delays.len(),
        percentile(&delays, 0.50),
        percentile(&delays, 0.99),
        percentile(&delays, 1.0),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
