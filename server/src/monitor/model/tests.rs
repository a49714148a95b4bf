use super::*;
use crate::acd::api::{ViewAgent, ViewCall, ViewQueue};

/// 2024-01-01T10:00:00Z.
const T0: u64 = 1_704_103_200_000;
const SEC: u64 = 1_000;

fn q(name: &str) -> QueueName {
    name.into()
}

fn agent(id: &str, queues: &[&str]) -> ViewAgent {
    ViewAgent {
        agent: id.into(),
        name: id.to_uppercase(),
        state: AgentState::LoggedOut,
        since: Duration::from_secs(5),
        queues: queues.iter().map(|n| q(n)).collect(),
    }
}

fn queue(name: &str, staffable: &[&str]) -> ViewQueue {
    ViewQueue {
        queue: q(name),
        service_level: Duration::from_secs(20),
        wrap_up: Duration::from_secs(10),
        staffable: staffable.iter().map(|a| (*a).into()).collect(),
        handle_times: HandleTimes::default(),
        default_aht: Duration::from_secs(180),
    }
}

/// alice serves sales, bob sales and support, carol support; all logged out.
fn view() -> AcdView {
    AcdView {
        bus_seq: 10,
        wall_ms: T0,
        agents: vec![
            agent("alice", &["sales"]),
            agent("bob", &["sales", "support"]),
            agent("carol", &["support"]),
        ],
        queues: vec![
            queue("sales", &["alice", "bob"]),
            queue("support", &["bob", "carol"]),
        ],
        waiting: vec![],
        connected: vec![],
    }
}

fn model() -> Model {
    Model::new(&view(), LocalDays::default(), ServerFigures::default())
}

/// Feeds bus events numbered after the model's last one.
struct Bus {
    seq: u64,
}

impl Bus {
    fn after(m: &Model) -> Bus {
        Bus { seq: m.bus_seq() }
    }

    fn send(&mut self, m: &mut Model, at_ms: u64, event: Event) {
        self.seq += 1;
        m.handle_event(&BusEvent {
            seq: self.seq,
            at_ms,
            event,
        });
    }

    fn agent(
        &mut self,
        m: &mut Model,
        at_ms: u64,
        id: &str,
        state: AgentState,
        cause: &'static str,
    ) {
        self.send(
            m,
            at_ms,
            Event::AgentState {
                agent: id.into(),
                from: String::new(),
                to: state.to_string(),
                state,
                cause,
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn queue(
        &mut self,
        m: &mut Model,
        at_ms: u64,
        queue: &str,
        call: CallKey,
        change: &str,
        waiting: u32,
        waited_s: u64,
        agent: Option<&str>,
    ) {
        self.send(
            m,
            at_ms,
            Event::Queue {
                queue: queue.into(),
                call,
                change: change.into(),
                waiting,
                waited_ms: waited_s * SEC,
                priority: 0,
                agent: agent.map(String::from),
            },
        );
    }
}

fn drain(m: &mut Model) -> Vec<Change> {
    std::iter::from_fn(|| m.poll_change()).collect()
}

/// One line per change: `agent alice ready`, `queue sales w=1 r=0 b=1 a=0`, ...
fn lines(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .map(|c| match &c.delta {
            Delta::Agent { row, cause } => format!("agent {} {} ({cause})", row.agent, row.state),
            Delta::Queue(f) => format!(
                "queue {} w={} r={} b={} a={}",
                f.queue, f.waiting, f.agents_ready, f.agents_busy, f.agents_away
            ),
            Delta::CallJoined(c) => format!("joined {} {} pos={}", c.queue, c.call, c.position),
            Delta::CallLeft {
                queue,
                call,
                outcome,
                ..
            } => format!("left {queue} {call} {outcome:?}"),
            Delta::Server(s) => format!("server {} {}", s.active_calls, s.registrations),
            Delta::Campaign(c) => {
                format!("campaign {} {} dialed={}", c.campaign, c.state, c.dialed)
            }
        })
        .collect()
}

fn figures(m: &Model, queue: &str, now: u64) -> QueueFigures {
    m.snapshot(now, &Filter::all())
        .queues
        .into_iter()
        .find(|v| &*v.figures.queue == queue)
        .expect("queue")
        .figures
}

#[test]
fn a_call_through_the_queue_gives_every_change_in_order() {
    let mut m = model();
    let mut bus = Bus::after(&m);
    let t = |s: u64| T0 + s * SEC;
    bus.agent(
        &mut m,
        t(1),
        "alice",
        AgentState::NotReady("login".into()),
        "client",
    );
    bus.agent(&mut m, t(2), "alice", AgentState::Ready, "client");
    bus.queue(&mut m, t(3), "sales", 7, "joined", 1, 0, None);
    bus.agent(&mut m, t(4), "alice", AgentState::Reserved(7), "offered");
    bus.agent(&mut m, t(9), "alice", AgentState::OnCall(7), "answered");
    bus.queue(&mut m, t(9), "sales", 7, "answered", 0, 6, Some("alice"));
    bus.agent(&mut m, t(69), "alice", AgentState::WrapUp, "call_ended");
    bus.agent(&mut m, t(79), "alice", AgentState::Ready, "wrap_up_timeout");
    let changes = drain(&mut m);
    assert_eq!(
        lines(&changes),
        [
            "agent alice not ready (login) (client)",
            "queue sales w=0 r=0 b=0 a=1",
            "agent alice ready (client)",
            "queue sales w=0 r=1 b=0 a=0",
            "joined sales 7 pos=1",
            "queue sales w=1 r=1 b=0 a=0",
            "agent alice reserved for call 7 (offered)",
            "queue sales w=1 r=0 b=1 a=0",
            "agent alice on call 7 (answered)",
            "left sales 7 Answered",
            "queue sales w=0 r=0 b=1 a=0",
            "agent alice in wrap-up (call_ended)",
            // The handle time (60 s talk + 10 s wrap-up) changes the expected wait.
            "queue sales w=0 r=0 b=1 a=0",
            "agent alice ready (wrap_up_timeout)",
            "queue sales w=0 r=1 b=0 a=0",
        ]
    );
    let seqs: Vec<u64> = changes.iter().map(|c| c.seq).collect();
    assert_eq!(
        seqs,
        (1..=15).collect::<Vec<u64>>(),
        "numbered without gaps"
    );
    assert_eq!(m.seq(), 15);
    // The agent row carries the call and its queue while offered and on the call.
    let offered = changes
        .iter()
        .find_map(|c| match &c.delta {
            Delta::Agent { row, .. } if row.state == AgentState::OnCall(7) => Some(row.clone()),
            _ => None,
        })
        .expect("on call row");
    assert_eq!(offered.call_queue.as_deref(), Some("sales"));
    assert_eq!(offered.since_ms, t(9));
    let f = figures(&m, "sales", t(80));
    assert_eq!(f.today.offered, 1);
    assert_eq!(f.today.answered, 1);
    assert_eq!(f.today.answered_within, 1);
    assert_eq!(f.service_level(), Some(1.0));
    // One staffed agent, AHT 70 s: a caller entering now waits about 70 s.
    assert_eq!(f.expected_wait, Duration::from_secs(70));
    assert!(!m.needs_resync());
    // support saw none of it (alice does not serve it).
    assert!(changes.iter().all(|c| match &c.delta {
        Delta::Queue(f) => &*f.queue == "sales",
        _ => true,
    }));
}

impl QueueFigures {
    fn service_level(&self) -> Option<f64> {
        self.today.service_level()
    }
}

#[test]
fn waiting_calls_have_positions_waits_and_ringing_agents() {
    let mut m = model();
    let mut bus = Bus::after(&m);
    bus.agent(&mut m, T0, "bob", AgentState::Ready, "client");
    bus.queue(&mut m, T0 + SEC, "sales", 1, "joined", 1, 0, None);
    bus.send(
        &mut m,
        T0 + 2 * SEC,
        Event::Queue {
            queue: "sales".into(),
            call: 2,
            change: "joined".into(),
            waiting: 2,
            waited_ms: 0,
            priority: 5,
            agent: None,
        },
    );
    bus.agent(
        &mut m,
        T0 + 3 * SEC,
        "bob",
        AgentState::Reserved(2),
        "offered",
    );
    let snap = m.snapshot(T0 + 10 * SEC, &Filter::all());
    let sales = &snap.queues[0];
    assert_eq!(&*sales.figures.queue, "sales");
    let calls: Vec<(CallKey, u32, Vec<String>)> = sales
        .calls
        .iter()
        .map(|c| {
            (
                c.call,
                c.position,
                c.ringing.iter().map(|a| a.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [(2, 1, vec!["bob".to_string()]), (1, 2, vec![])],
        "the priority caller is first and rings bob"
    );
    assert_eq!(sales.figures.waiting, 2);
    assert_eq!(
        sales.figures.longest_wait(T0 + 10 * SEC),
        Duration::from_secs(9)
    );
    // bob (sales and support) is busy in both queues.
    assert_eq!(snap.queues[1].figures.agents_busy, 1);
    // Expected wait: 3rd position, 1 staffed (bob), 180 s default AHT.
    assert_eq!(sales.figures.expected_wait, Duration::from_secs(540));
}

#[test]
fn service_level_counts_answers_within_the_threshold_and_abandons_against_it() {
    let mut m = model();
    let mut bus = Bus::after(&m);
    bus.agent(
        &mut m,
        T0,
        "alice",
        AgentState::NotReady("login".into()),
        "client",
    );
    let mut waiting = 0;
    for call in 1..=4 {
        waiting += 1;
        bus.queue(
            &mut m,
            T0 + call * SEC,
            "sales",
            call,
            "joined",
            waiting,
            0,
            None,
        );
    }
    let left = [
        (1, "answered", 5),  // within 20 s
        (2, "answered", 20), // exactly the threshold: within
        (3, "answered", 21), // late
        (4, "abandoned", 3), // counts against, whatever its wait
    ];
    for (call, change, waited) in left {
        waiting -= 1;
        let agent = (change == "answered").then_some("alice");
        bus.queue(
            &mut m,
            T0 + 30 * SEC,
            "sales",
            call,
            change,
            waiting,
            waited,
            agent,
        );
    }
    let f = figures(&m, "sales", T0 + 31 * SEC);
    assert_eq!(
        f.today,
        DailyCounts {
            offered: 4,
            answered: 3,
            answered_within: 2,
            abandoned: 1,
            exited: 0,
            turned_away: 0,
        }
    );
    assert_eq!(f.today.service_level(), Some(0.5));
    bus.queue(&mut m, T0 + 32 * SEC, "sales", 5, "joined", 1, 0, None);
    bus.queue(&mut m, T0 + 40 * SEC, "sales", 5, "max_wait", 0, 8, None);
    let f = figures(&m, "sales", T0 + 41 * SEC);
    assert_eq!(f.today.exited, 1);
    assert_eq!(f.today.service_level(), Some(0.4));
    assert_eq!(DailyCounts::default().service_level(), None);

    // Turned away at entry (queue full, then nobody logged in): offered, never waited.
    drain(&mut m);
    bus.queue(&mut m, T0 + 42 * SEC, "sales", 6, "full", 0, 0, None);
    bus.queue(&mut m, T0 + 43 * SEC, "sales", 7, "no_agents", 0, 0, None);
    let f = figures(&m, "sales", T0 + 44 * SEC);
    assert_eq!((f.today.offered, f.today.turned_away), (7, 2));
    assert_eq!(
        f.today.exited, 1,
        "turned away is not an exit after waiting"
    );
    assert_eq!(f.today.service_level(), Some(0.4), "they never waited");
    let left: Vec<Outcome> = drain(&mut m)
        .into_iter()
        .filter_map(|c| match c.delta {
            Delta::CallLeft {
                outcome, waited, ..
            } => {
                assert_eq!(waited, Duration::ZERO);
                Some(outcome)
            }
            _ => None,
        })
        .collect();
    assert_eq!(left, [Outcome::TurnedAway, Outcome::TurnedAway]);
}

#[test]
fn daily_counters_reset_at_local_midnight() {
    let paris = jiff::tz::TimeZone::get("Europe/Paris").expect("tzdb");
    // 2024-01-01T22:00:00Z = 23:00 in Paris; midnight there is 23:00Z.
    let evening = 1_704_146_400_000;
    let mut v = view();
    v.wall_ms = evening;
    let mut m = Model::new(&v, LocalDays::new(paris), ServerFigures::default());
    assert_eq!(m.today().to_string(), "2024-01-01");
    let midnight = evening + 3_600 * SEC;
    assert_eq!(m.poll_timeout(), midnight);
    let mut bus = Bus::after(&m);
    bus.queue(&mut m, evening, "sales", 1, "joined", 1, 0, None);
    bus.queue(&mut m, evening + SEC, "sales", 1, "abandoned", 0, 1, None);
    drain(&mut m);
    assert_eq!(figures(&m, "sales", evening).today.abandoned, 1);
    m.handle_timeout(midnight - 1);
    assert!(drain(&mut m).is_empty(), "not yet midnight");
    m.handle_timeout(midnight);
    let reset = drain(&mut m);
    assert_eq!(
        lines(&reset),
        ["queue sales w=0 r=0 b=0 a=0"],
        "only sales had counts"
    );
    let Delta::Queue(f) = &reset[0].delta else {
        unreachable!()
    };
    assert_eq!(f.today, DailyCounts::default());
    assert_eq!(m.today().to_string(), "2024-01-02");
    assert_eq!(m.poll_timeout(), midnight + 86_400 * SEC);
    // An event after the next midnight resets too, before it counts.
    let next = midnight + 86_400 * SEC + 5;
    bus.queue(
        &mut m,
        midnight + 10 * SEC,
        "sales",
        2,
        "joined",
        1,
        0,
        None,
    );
    bus.queue(&mut m, next, "sales", 2, "abandoned", 0, 5, None);
    let f = figures(&m, "sales", next);
    assert_eq!(f.today.offered, 0, "the call joined yesterday");
    assert_eq!(f.today.abandoned, 1, "and was abandoned today");
}

#[test]
fn filters_select_queues_their_agents_and_named_agents() {
    let mut m = model();
    let mut bus = Bus::after(&m);
    bus.agent(&mut m, T0, "alice", AgentState::Ready, "client");
    bus.agent(&mut m, T0, "carol", AgentState::Ready, "client");
    bus.queue(&mut m, T0, "support", 3, "joined", 1, 0, None);
    let changes = drain(&mut m);

    let support = Filter::new(vec!["support".into()], vec![]);
    let got: Vec<String> = lines(
        &changes
            .iter()
            .filter(|c| c.selected_by(&support))
            .cloned()
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        got,
        [
            "agent carol ready (client)",
            "queue support w=0 r=1 b=0 a=0",
            "joined support 3 pos=1",
            "queue support w=1 r=1 b=0 a=0",
        ]
    );
    let snap = m.snapshot(T0, &support);
    let agents: Vec<&str> = snap.agents.iter().map(|a| &*a.agent).collect();
    assert_eq!(agents, ["bob", "carol"], "support's agents");
    assert_eq!(snap.queues.len(), 1);

    let alice = Filter::new(vec![], vec!["alice".into()]);
    let snap = m.snapshot(T0, &alice);
    assert_eq!(snap.agents.len(), 1);
    assert!(snap.queues.is_empty(), "an agent filter shows no queue");
    assert_eq!(
        changes.iter().filter(|c| c.selected_by(&alice)).count(),
        1,
        "only alice's change"
    );
    let both = Filter::new(vec!["sales".into()], vec!["carol".into()]);
    let agents: Vec<String> = m
        .snapshot(T0, &both)
        .agents
        .iter()
        .map(|a| a.agent.to_string())
        .collect();
    assert_eq!(agents, ["alice", "bob", "carol"]);
    assert!(Filter::all().is_all());
    assert_eq!(m.snapshot(T0, &Filter::all()).agents.len(), 3);
}

#[test]
fn events_already_in_the_view_are_skipped_and_gaps_ask_for_a_resync() {
    let mut v = view();
    v.agents[0].state = AgentState::Ready;
    v.waiting = vec![ViewCall {
        call: 9,
        queue: q("sales"),
        priority: 0,
        elapsed: Duration::from_secs(4),
        agent: None,
    }];
    let mut m = Model::new(&v, LocalDays::default(), ServerFigures::default());
    let snap = m.snapshot(T0, &Filter::all());
    assert_eq!(snap.queues[0].calls[0].queued_at_ms, T0 - 4 * SEC);
    assert_eq!(snap.queues[0].figures.agents_ready, 1);
    // Event 10 is already in the view (bus_seq 10).
    m.handle_event(&BusEvent {
        seq: 10,
        at_ms: T0,
        event: Event::AgentState {
            agent: "alice".into(),
            from: String::new(),
            to: String::new(),
            state: AgentState::WrapUp,
            cause: "call_ended",
        },
    });
    assert!(drain(&mut m).is_empty());
    assert!(!m.needs_resync());
    // A mailbox event moves the bus on without a change.
    let mut bus = Bus::after(&m);
    bus.send(
        &mut m,
        T0,
        Event::Mailbox(crate::events::MailboxEvent {
            mailbox: "200".into(),
            change: crate::events::MailboxChange::New,
            message_id: None,
            new_count: 1,
            saved_count: 0,
        }),
    );
    assert!(drain(&mut m).is_empty());
    assert!(!m.needs_resync());
    // A gap (event 13 after 11).
    bus.seq += 1;
    bus.agent(&mut m, T0 + SEC, "bob", AgentState::Ready, "client");
    assert!(m.needs_resync());
    // A fresh view clears it and keeps today's counters.
    bus.queue(&mut m, T0 + 2 * SEC, "sales", 9, "abandoned", 0, 6, None);
    let mut fresh = view();
    fresh.bus_seq = bus.seq;
    fresh.wall_ms = T0 + 3 * SEC;
    m.resync(&fresh);
    assert!(!m.needs_resync());
    let f = figures(&m, "sales", T0 + 3 * SEC);
    assert_eq!(f.today.abandoned, 1);
    assert_eq!(f.waiting, 0);
}

#[test]
fn a_waiting_count_that_disagrees_with_the_acd_asks_for_a_resync() {
    let mut m = model();
    let mut bus = Bus::after(&m);
    bus.queue(&mut m, T0, "sales", 1, "joined", 2, 0, None);
    assert!(
        m.needs_resync(),
        "the ACD holds a call the model does not know"
    );
}

#[test]
fn server_figures_change_only_when_they_differ() {
    let mut m = model();
    let f = ServerFigures {
        active_calls: 2,
        registrations: 1,
    };
    m.handle_server(T0, f);
    m.handle_server(T0 + SEC, f);
    let changes = drain(&mut m);
    assert_eq!(lines(&changes), ["server 2 1"]);
    assert_eq!(m.snapshot(T0, &Filter::all()).server, f);
}

#[test]
fn unknown_agents_and_queues_are_ignored() {
    let mut m = model();
    let mut bus = Bus::after(&m);
    bus.agent(&mut m, T0, "mallory", AgentState::Ready, "client");
    bus.queue(&mut m, T0, "nowhere", 1, "joined", 1, 0, None);
    assert!(drain(&mut m).is_empty());
    assert!(!m.has_agent("mallory") && m.has_agent("alice"));
    assert!(!m.has_queue("nowhere") && m.has_queue("support"));
}

fn stats(name: &str, state: &str, dialed: u64) -> crate::events::CampaignStats {
    crate::events::CampaignStats {
        campaign: name.into(),
        state: state.into(),
        dialed,
        in_flight: 0,
        answered: 0,
        human: 0,
        machine: 0,
        busy: 0,
        no_answer: 0,
        failed: 0,
        abandoned: 0,
        amd_false_positives: 0,
        dnc_skipped: 0,
        outside_window: 0,
        abandon_rate_bp: 0,
        contacts: 10,
        contacts_left: 10 - dialed,
        today: Default::default(),
    }
}

#[test]
fn campaign_figures_reach_every_watcher_and_the_snapshot_once_per_change() {
    let mut m = model();
    let mut bus = Bus::after(&m);
    bus.send(&mut m, T0, Event::Campaign(stats("demo", "idle", 0)));
    bus.send(
        &mut m,
        T0 + SEC,
        Event::Campaign(stats("demo", "running", 1)),
    );
    // The dialer's periodic re-publication of unchanged figures is not a change.
    bus.send(
        &mut m,
        T0 + 2 * SEC,
        Event::Campaign(stats("demo", "running", 1)),
    );
    bus.send(
        &mut m,
        T0 + 3 * SEC,
        Event::Campaign(stats("other", "paused", 0)),
    );
    let changes = drain(&mut m);
    assert_eq!(
        lines(&changes),
        [
            "campaign demo idle dialed=0",
            "campaign demo running dialed=1",
            "campaign other paused dialed=0",
        ]
    );
    // Filters by queue or agent do not hide campaigns.
    let only_support = Filter::new(vec!["support".into()], vec![]);
    assert!(changes.iter().all(|c| c.selected_by(&only_support)));
    let snap = m.snapshot(T0 + 4 * SEC, &only_support);
    let names: Vec<(&str, &str)> = snap
        .campaigns
        .iter()
        .map(|c| (c.campaign.as_str(), c.state.as_str()))
        .collect();
    assert_eq!(names, [("demo", "running"), ("other", "paused")]);
}
