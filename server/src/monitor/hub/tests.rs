use super::*;
use crate::acd::api::{ViewAgent, ViewQueue};
use crate::acd::ewt::HandleTimes;
use crate::acd::AgentState;
use crate::events::Event;
use crate::monitor::model::Delta;
use std::sync::Mutex;

/// What the fake ACD answers: these agents (all serving `sales`) and the bus position.
type Truth = Arc<Mutex<Vec<(String, AgentState)>>>;

/// A task answering `AcdCommand::Snapshot` like the ACD task would.
fn fake_acd(bus: &EventBus, truth: Truth) -> AcdHandle {
    let (tx, mut rx) = mpsc::channel(16);
    let bus = bus.clone();
    tokio::spawn(async move {
        while let Some(cmd) = rx.recv().await {
            if let AcdCommand::Snapshot { reply } = cmd {
                let agents = truth
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|(id, state)| ViewAgent {
                        agent: id.as_str().into(),
                        name: id.clone(),
                        state: state.clone(),
                        since: Duration::ZERO,
                        queues: vec!["sales".into()],
                    })
                    .collect::<Vec<_>>();
                let staffable = agents.iter().map(|a| a.agent.clone()).collect();
                let _ = reply.send(Ok(AcdView {
                    bus_seq: bus.last_seq(),
                    wall_ms: crate::call::unix_ms(),
                    agents,
                    queues: vec![ViewQueue {
                        queue: "sales".into(),
                        service_level: Duration::from_secs(20),
                        wrap_up: Duration::ZERO,
                        staffable,
                        handle_times: HandleTimes::default(),
                        default_aht: Duration::from_secs(180),
                    }],
                    waiting: Vec::new(),
                    connected: Vec::new(),
                }));
            }
        }
    });
    AcdHandle::new(tx)
}

fn truth(n: usize) -> Truth {
    Arc::new(Mutex::new(
        (0..n)
            .map(|i| (format!("a{i:03}"), AgentState::LoggedOut))
            .collect(),
    ))
}

fn publish_state(bus: &EventBus, truth: &Truth, agent: &str, state: AgentState) {
    if let Some(slot) = truth.lock().unwrap().iter_mut().find(|(id, _)| id == agent) {
        slot.1 = state.clone();
    }
    bus.publish(Event::AgentState {
        agent: agent.into(),
        from: String::new(),
        to: state.to_string(),
        state,
        cause: "client",
    });
}

fn start(bus: &EventBus, truth: &Truth, buffer: usize) -> MonitorHandle {
    spawn(
        bus,
        Some(fake_acd(bus, truth.clone())),
        None,
        LocalDays::default(),
        HubSettings {
            watcher_buffer: buffer,
        },
    )
}

/// Reads a watcher's updates until `n` changes arrived (or it ends); checks that each
/// change's `prev_seq` is the previous message's `seq`. Returns the agent states seen.
async fn follow(mut w: Watcher, n: usize) -> Result<Vec<String>, String> {
    let mut last = w.snapshot.seq;
    let mut seen = Vec::new();
    let mut changes = 0;
    while changes < n {
        match w.updates.recv().await {
            Some(Update::Change { prev_seq, change }) => {
                if prev_seq != last {
                    return Err(format!("gap: prev_seq {prev_seq} after {last}"));
                }
                last = change.seq;
                changes += 1;
                if let Delta::Agent { row, .. } = &change.delta {
                    seen.push(format!("{} {}", row.agent, row.state));
                }
            }
            Some(Update::Snapshot(s)) => return Err(format!("unexpected resync at {}", s.seq)),
            None => return Err(format!("closed after {changes} changes")),
        }
    }
    Ok(seen)
}

#[tokio::test]
async fn a_watcher_gets_the_snapshot_then_every_change_in_order() {
    let bus = EventBus::new(256);
    let t = truth(2);
    let monitor = start(&bus, &t, 64);
    publish_state(&bus, &t, "a000", AgentState::Ready);
    let w = monitor.watch(Filter::all()).await.expect("watch");
    // The change published before the watch is in its snapshot (from the ACD's view or
    // from the bus, whichever came first).
    assert_eq!(w.snapshot.agents[0].state, AgentState::Ready);
    assert_eq!(w.snapshot.queues[0].figures.agents_ready, 1);
    let base = w.snapshot.seq;
    let reader = tokio::spawn(follow(w, 4));
    publish_state(&bus, &t, "a001", AgentState::NotReady("break".into()));
    publish_state(&bus, &t, "a000", AgentState::OnCall(3));
    let seen = reader.await.expect("join").expect("in order");
    assert_eq!(seen, ["a001 not ready (break)", "a000 on call 3"]);

    let err = monitor
        .watch(Filter::new(vec!["nowhere".into()], vec![]))
        .await
        .expect_err("unknown queue");
    assert_eq!(err, MonitorError::UnknownQueue("nowhere".into()));
    let err = monitor
        .snapshot(Filter::new(vec![], vec!["zed".into()]))
        .await
        .expect_err("unknown agent");
    assert_eq!(err, MonitorError::UnknownAgent("zed".into()));
    let snap = monitor
        .snapshot(Filter::new(vec![], vec!["a001".into()]))
        .await
        .expect("snapshot");
    assert_eq!(snap.agents.len(), 1);
    assert_eq!(snap.seq, base + 4, "two agent and two queue changes since");
}

#[tokio::test]
async fn a_slow_watcher_is_cut_off_while_200_others_keep_up() {
    let bus = EventBus::new(4096);
    let t = truth(50);
    let monitor = start(&bus, &t, 32);
    let mut readers = Vec::new();
    for _ in 0..200 {
        let w = monitor.watch(Filter::all()).await.expect("watch");
        readers.push(tokio::spawn(follow(w, 200)));
    }
    // Subscribed, never reads.
    let mut slow = monitor.watch(Filter::all()).await.expect("watch");
    // 100 state changes (each an agent change and a queue change), at a pace the
    // readers can follow but far more than the slow watcher's 32 messages.
    for i in 0..100 {
        let agent = format!("a{:03}", i % 50);
        let state = if i < 50 {
            AgentState::Ready
        } else {
            AgentState::NotReady("break".into())
        };
        publish_state(&bus, &t, &agent, state);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for r in readers {
        let seen = r.await.expect("join").expect("a fast watcher keeps up");
        assert_eq!(seen.len(), 100);
        assert_eq!(seen[0], "a000 ready");
        assert_eq!(seen[99], "a049 not ready (break)");
    }
    let why = tokio::time::timeout(Duration::from_secs(5), &mut slow.cut)
        .await
        .expect("cut in time")
        .expect("cut, not dropped");
    assert_eq!(why, MonitorError::TooSlow { buffer: 32 });
    assert!(why.to_string().contains("watcher too slow"));
    // It holds exactly what fitted, then the queue is closed.
    let mut held = 0;
    while let Some(u) = slow.updates.recv().await {
        assert!(matches!(u, Update::Change { .. }));
        held += 1;
    }
    assert_eq!(held, 32);
    // The bus was never held up: every change was published.
    assert_eq!(bus.last_seq(), 100);
}

#[tokio::test]
async fn a_hub_that_lags_the_bus_resyncs_and_sends_fresh_snapshots() {
    let bus = EventBus::new(8);
    let t = truth(20);
    let monitor = start(&bus, &t, 256);
    let mut w = monitor.watch(Filter::all()).await.expect("watch");
    // 20 events without yielding: the hub's receiver (8 events) lags.
    for i in 0..20 {
        publish_state(&bus, &t, &format!("a{i:03}"), AgentState::Ready);
    }
    let update = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match w.updates.recv().await {
                Some(Update::Snapshot(s)) => return s,
                Some(Update::Change { .. }) => continue,
                None => panic!("watcher closed"),
            }
        }
    })
    .await
    .expect("a fresh snapshot");
    assert!(
        update.agents.iter().all(|a| a.state == AgentState::Ready),
        "the snapshot has every change: {:?}",
        update.agents
    );
    assert_eq!(update.queues[0].figures.agents_ready, 20);
    // Changes continue after it, chained to the snapshot's seq.
    publish_state(&bus, &t, "a000", AgentState::WrapUp);
    match w.updates.recv().await {
        Some(Update::Change { prev_seq, change }) => {
            assert_eq!(prev_seq, update.seq);
            assert!(
                matches!(&change.delta, Delta::Agent { row, .. } if row.state == AgentState::WrapUp)
            );
        }
        other => panic!("expected a change, got {other:?}"),
    }
}

#[tokio::test]
async fn server_figures_are_watched() {
    let bus = EventBus::new(16);
    let (tx, rx) = watch::channel(ServerStats::default());
    let monitor = spawn(
        &bus,
        None,
        Some(rx),
        LocalDays::default(),
        HubSettings::default(),
    );
    let mut w = monitor.watch(Filter::all()).await.expect("watch");
    assert!(w.snapshot.agents.is_empty() && w.snapshot.queues.is_empty());
    tx.send_replace(ServerStats {
        active_calls: 4,
        transactions: 9,
        dialogs: 3,
        registrations: 2,
    });
    match w.updates.recv().await {
        Some(Update::Change { change, .. }) => assert_eq!(
            change.delta,
            Delta::Server(ServerFigures {
                active_calls: 4,
                registrations: 2
            })
        ),
        other => panic!("expected server figures, got {other:?}"),
    }
    // Transactions alone are not the monitor's business.
    tx.send_replace(ServerStats {
        active_calls: 4,
        transactions: 1,
        dialogs: 3,
        registrations: 2,
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(100), w.updates.recv())
            .await
            .is_err(),
        "no change"
    );
    drop(monitor);
}
