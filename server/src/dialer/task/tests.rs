//! The dialer task against the real ACD task, a fake [`Originator`] and a wall clock
//! tied to tokio's paused clock.

use super::*;
use crate::acd::api::{AcdCommand, AcdHandle};
use crate::acd::config::{parse_acd, AcdReferences};
use crate::acd::task::AcdTask;
use crate::dialer::campaign::{FinalState, Outcome, RunState};
use crate::store::MemoryStore;
use std::sync::Mutex;

const ACD: &str = r#"
[[queues]]
name = "sales"
skills = { sales = 1 }
wrap_up_s = 10
[[agents]]
id = "alice"
name = "Alice"
token = "ta"
skills = { sales = 1 }
phone = { uri = "sip:alice@127.0.0.1:5071" }
[[agents]]
id = "bob"
name = "Bob"
token = "tb"
skills = { sales = 1 }
phone = { uri = "sip:bob@127.0.0.1:5072" }
"#;

fn campaign(extra: &str) -> Arc<CampaignConfig> {
    let text = format!(
        r#"
[[campaigns]]
name = "demo"
mode = "progressive"
queue = "sales"
trunk = "pstn"
caller_id = "+48221234567"
default_country = "PL"
timezone = "UTC"
amd = {{ enabled = false }}
{extra}
"#
    );
    let v: toml::Table = toml::from_str(&text).unwrap();
    let list = parse_campaigns(
        &v["campaigns"],
        "t.toml",
        std::path::Path::new("/"),
        &CampaignReferences::unchecked(),
    )
    .expect("test campaign");
    Arc::new(list.into_iter().next().unwrap())
}

/// A dial with the sender of its events.
type Dial = (Originate, mpsc::Sender<OriginateEvent>);

/// Dials handed to the call side, each with the sender of its events.
#[derive(Default, Clone)]
struct FakeOriginator {
    dials: Arc<Mutex<Vec<Dial>>>,
}

impl Originator for FakeOriginator {
    fn originate(&self, dial: Originate) -> mpsc::Receiver<OriginateEvent> {
        let (tx, rx) = mpsc::channel(8);
        self.dials.lock().unwrap().push((dial, tx));
        rx
    }
}

impl FakeOriginator {
    fn count(&self) -> usize {
        self.dials.lock().unwrap().len()
    }
    fn dial(&self, i: usize) -> (Originate, mpsc::Sender<OriginateEvent>) {
        self.dials.lock().unwrap()[i].clone()
    }
}

/// 2026-11-23 (a Monday) at `hh:mm` UTC.
fn monday(hh: u64, mm: u64) -> SystemTime {
    // 2026-11-23T00:00:00Z
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_392_000 + hh * 3600 + mm * 60)
}

/// A wall clock that moves with tokio's (paused) clock from `base`.
fn clock(base: SystemTime) -> WallClock {
    let start = tokio::time::Instant::now();
    Arc::new(move || base + start.elapsed())
}

struct World {
    dialer: DialerHandle,
    acd: AcdHandle,
    bus: EventBus,
    fake: FakeOriginator,
    store: Arc<dyn Store>,
    cfg: Arc<CampaignConfig>,
    /// Kept: the ACD task stops when every call-side sender is gone.
    _calls: crate::acd::task::AcdCalls,
}

async fn world(cfg: Arc<CampaignConfig>, dnc: &str, base: SystemTime) -> World {
    world_of(&[cfg], dnc, base).await
}

/// A world with several campaigns (`cfg` is the first one's).
async fn world_of(cfgs: &[Arc<CampaignConfig>], dnc: &str, base: SystemTime) -> World {
    let cfg = cfgs[0].clone();
    let bus = EventBus::new(256);
    let v: toml::Value = toml::from_str(ACD).unwrap();
    let exists = |_: &str| true;
    let acd_cfg = Arc::new(parse_acd(&v, "t.toml", &AcdReferences::new(&exists)).unwrap());
    let (acd, calls) = AcdTask::new(
        acd_cfg.clone(),
        None,
        bus.clone(),
        tokio::time::Instant::now().into_std(),
    )
    .spawn();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let fake = FakeOriginator::default();
    let (dnc, _) = DncList::parse_file(dnc, Country::by_alpha2("PL").unwrap());
    let task = DialerTask::new(
        cfgs,
        dnc,
        store.clone(),
        Arc::new(fake.clone()),
        bus.clone(),
        Some((acd.clone(), acd_cfg)),
        References::default(),
        clock(base),
    )
    .expect("dialer")
    .with_holds(calls.clone());
    World {
        dialer: task.spawn(),
        acd,
        bus,
        fake,
        store,
        cfg,
        _calls: calls,
    }
}

/// Lets every task run (tokio's clock moves only when all are idle).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

impl World {
    async fn ready(&self, agent: &str) {
        let a: crate::acd::AgentId = agent.into();
        let b = a.clone();
        self.acd
            .ask(|reply| AcdCommand::LogIn { agent: a, reply })
            .await
            .unwrap();
        self.acd
            .ask(|reply| AcdCommand::SetReady { agent: b, reply })
            .await
            .unwrap();
    }

    async fn not_ready(&self, agent: &str) {
        let a: crate::acd::AgentId = agent.into();
        self.acd
            .ask(|reply| AcdCommand::SetNotReady {
                agent: a,
                reason: "break".into(),
                reply,
            })
            .await
            .unwrap();
    }

    async fn load(&self, csv: &str) -> LoadResult {
        let csv = csv.as_bytes().to_vec();
        self.dialer
            .ask(|reply| DialerCommand::Load {
                name: "demo".into(),
                csv,
                reply,
            })
            .await
            .unwrap()
    }

    async fn control(&self, action: Control) -> Result<CampaignInfo, DialerError> {
        self.dialer
            .ask(|reply| DialerCommand::Control {
                name: "demo".into(),
                action,
                reply,
            })
            .await
    }

    async fn status(&self) -> CampaignFigures {
        self.dialer
            .ask(|reply| DialerCommand::Status {
                name: "demo".into(),
                reply,
            })
            .await
            .unwrap()
            .figures
    }

    async fn finish(&self, i: usize, result: CallResult) {
        let (_, tx) = self.fake.dial(i);
        tx.send(OriginateEvent::Done(result)).await.unwrap();
        settle().await;
    }

    fn numbers(&self) -> Vec<String> {
        self.fake
            .dials
            .lock()
            .unwrap()
            .iter()
            .map(|(d, _)| d.request.number.to_string())
            .collect()
    }
}

const CSV: &str = "phone,name\n601000001,A\n601000002,B\n601000003,C\n";

#[tokio::test(start_paused = true)]
async fn progressive_dials_one_contact_per_ready_agent_and_records_results() {
    let w = world(campaign(""), "", monday(10, 0)).await;
    let r = w.load(CSV).await;
    assert_eq!(r.added, 3);
    w.control(Control::Start).await.unwrap();
    settle().await;
    assert_eq!(w.fake.count(), 0, "no agent is ready: nothing is dialed");

    w.ready("alice").await;
    settle().await;
    assert_eq!(w.fake.count(), 1, "one ready agent, one dial");
    w.ready("bob").await;
    settle().await;
    assert_eq!(w.fake.count(), 2, "two ready agents, two dials");
    let agents: Vec<HumanRoute> = (0..2).map(|i| w.fake.dial(i).0.on_human).collect();
    assert!(agents.contains(&HumanRoute::Agent("alice".into())));
    assert!(agents.contains(&HumanRoute::Agent("bob".into())));
    let (d0, _) = w.fake.dial(0);
    assert_eq!(d0.request.trunk, "pstn");
    assert_eq!(d0.abandon_after, ABANDON_AFTER);
    assert!(d0.request.ring_timeout >= Duration::from_secs(15));

    // Busy: recorded, the reserved agent is free again: the third contact goes out.
    w.finish(0, CallResult::Busy).await;
    let f = w.status().await;
    assert_eq!(f.busy, 1);
    assert_eq!(f.dialed, 3);
    assert_eq!(w.fake.count(), 3);
    let mut n = w.numbers();
    n.sort();
    assert_eq!(n, ["+48601000001", "+48601000002", "+48601000003"]);
    assert_eq!(f.in_flight, 2);
}

#[tokio::test(start_paused = true)]
async fn a_disposition_on_the_bus_reaches_the_attempt_of_its_call() {
    let w = world(campaign(""), "", monday(10, 0)).await;
    w.load("phone\n601000001\n").await;
    w.control(Control::Start).await.unwrap();
    w.ready("alice").await;
    settle().await;
    assert_eq!(w.fake.count(), 1);
    let (d, tx) = w.fake.dial(0);
    tx.send(OriginateEvent::Ringing).await.unwrap();
    tx.send(OriginateEvent::Answered { amd: None })
        .await
        .unwrap();
    tx.send(OriginateEvent::Connected {
        agent: "alice".into(),
        call: 4242,
    })
    .await
    .unwrap();
    tx.send(OriginateEvent::Done(CallResult::Connected {
        agent: "alice".into(),
        amd: None,
    }))
    .await
    .unwrap();
    settle().await;
    // A disposition for another call changes nothing.
    w.bus.publish(Event::Disposition {
        agent: "alice".into(),
        call: 1,
        disposition: "wrong".into(),
        note: String::new(),
    });
    w.bus.publish(Event::Disposition {
        agent: "alice".into(),
        call: 4242,
        disposition: "sale".into(),
        note: "wants the gold plan".into(),
    });
    settle().await;
    let f = w.status().await;
    assert_eq!(f.human, 1);
    assert_eq!(f.contacts_left, 0);
    assert_eq!(f.state, RunState::Finished);
    let listed = |w: &World| {
        let d = w.dialer.clone();
        async move {
            d.ask(|reply| DialerCommand::ListAttempts {
                name: "demo".into(),
                contact: None,
                limit: 10,
                reply,
            })
            .await
            .unwrap()
        }
    };
    let a = listed(&w).await;
    assert_eq!(a[0].record.disposition.as_deref(), Some("sale"));
    // SetDisposition after the wrap-up: a second disposition for the same call
    // replaces the first.
    w.bus.publish(Event::Disposition {
        agent: "alice".into(),
        call: 4242,
        disposition: "callback".into(),
        note: "call back at 5".into(),
    });
    settle().await;
    let a = listed(&w).await;
    assert_eq!(
        (
            a[0].record.disposition.as_deref(),
            a[0].record.note.as_deref()
        ),
        (Some("callback"), Some("call back at 5"))
    );
    // A wrap-up ended without a code does not erase it.
    w.bus.publish(Event::Disposition {
        agent: "alice".into(),
        call: 4242,
        disposition: String::new(),
        note: String::new(),
    });
    settle().await;
    let a = listed(&w).await;
    assert_eq!(a[0].record.disposition.as_deref(), Some("callback"));
    w.bus.publish(Event::Disposition {
        agent: "alice".into(),
        call: 4242,
        disposition: "sale".into(),
        note: "wants the gold plan".into(),
    });
    settle().await;

    let c = Campaign::open(w.cfg.clone(), w.store.clone(), monday(11, 0)).unwrap();
    let attempts = c.attempts().unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].id, d.request.attempt);
    assert_eq!(attempts[0].outcome, Some(Outcome::Human));
    assert_eq!(attempts[0].disposition.as_deref(), Some("sale"));
    assert_eq!(attempts[0].note.as_deref(), Some("wants the gold plan"));
    assert_eq!(c.contact(0).unwrap().done, Some(FinalState::Reached));
}

#[tokio::test(start_paused = true)]
async fn the_dialed_agent_is_held_from_inbound_calls_until_the_dial_ends() {
    use crate::acd::task::{AcdToCall, CallToAcd};
    let w = world(campaign(""), "", monday(10, 0)).await;
    w.load("phone\n601000001\n").await;
    w.control(Control::Start).await.unwrap();
    w.ready("alice").await;
    settle().await;
    assert_eq!(w.fake.count(), 1);
    // An inbound caller queues for sales while alice's dial rings: not offered to her.
    let (tx, mut rx) = mpsc::channel(16);
    assert!(w._calls.send(CallToAcd::Queue {
        call: 900,
        queue: "sales".into(),
        priority: 0,
        requirements: Vec::new(),
        caller: crate::acd::task::Caller {
            number: "555".into(),
            name: String::new(),
            data: Default::default(),
            tx,
        },
    }));
    settle().await;
    assert!(rx.try_recv().is_err(), "alice is held for the dial");
    // The dial ends: alice is released and the inbound call rings her.
    w.finish(0, CallResult::NoAnswer).await;
    match rx.try_recv() {
        Ok(AcdToCall::Ring { agent, .. }) => assert_eq!(&*agent, "alice"),
        other => panic!("expected a ring for alice, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn pause_stops_new_dials_and_resume_restarts_them() {
    let w = world(campaign(""), "", monday(10, 0)).await;
    w.load(CSV).await;
    w.control(Control::Start).await.unwrap();
    w.ready("alice").await;
    settle().await;
    assert_eq!(w.fake.count(), 1);
    let st = w.control(Control::Pause).await.unwrap();
    assert_eq!(st.figures.state, RunState::Paused);
    // The call in progress ends; alice is free, but the campaign is paused.
    w.finish(0, CallResult::NoAnswer).await;
    w.ready("bob").await;
    settle().await;
    assert_eq!(w.fake.count(), 1, "no dial while paused");
    assert!(matches!(
        w.control(Control::Pause).await,
        Err(DialerError::Campaign(
            CampaignError::InvalidTransition { .. }
        ))
    ));
    w.control(Control::Resume).await.unwrap();
    settle().await;
    assert_eq!(w.fake.count(), 3, "both agents get a dial after resume");
}

#[tokio::test(start_paused = true)]
async fn dnc_numbers_are_never_dialed_including_ones_added_at_runtime() {
    let w = world(campaign(""), "601000002\n", monday(10, 0)).await;
    w.load(CSV).await;
    let change = w
        .dialer
        .ask(|reply| DialerCommand::AddDnc {
            numbers: vec!["601 000 003".into(), "+48601000002".into()],
            country: "PL".into(),
            reply,
        })
        .await
        .unwrap();
    assert_eq!(change.changed, ["+48601000003"]);
    assert_eq!(change.unchanged, ["+48601000002"]);
    // A bad number changes nothing.
    let bad = w
        .dialer
        .ask(|reply| DialerCommand::AddDnc {
            numbers: vec!["601000009".into(), "12".into()],
            country: "PL".into(),
            reply,
        })
        .await;
    assert!(matches!(bad, Err(DialerError::Dnc(_))));
    let page = w
        .dialer
        .ask(|reply| DialerCommand::ListDnc {
            after: None,
            limit: 10,
            reply,
        })
        .await
        .unwrap();
    assert_eq!(page.numbers, ["+48601000002", "+48601000003"]);

    w.control(Control::Start).await.unwrap();
    w.ready("alice").await;
    w.ready("bob").await;
    settle().await;
    assert_eq!(w.numbers(), ["+48601000001"]);
    let f = w.status().await;
    assert_eq!(f.dnc_skipped, 2);
    assert_eq!(f.contacts_left, 1);
}

#[tokio::test(start_paused = true)]
async fn a_contact_outside_its_window_waits_until_it_opens() {
    // 07:58 UTC on a Monday; the window opens at 08:00 in the contact's zone (UTC).
    let w = world(
        campaign(r#"window = { from = "08:00", to = "21:00" }"#),
        "",
        monday(7, 58),
    )
    .await;
    w.load("phone,timezone\n601000001,UTC\n").await;
    w.control(Control::Start).await.unwrap();
    w.ready("alice").await;
    settle().await;
    assert_eq!(w.fake.count(), 0, "closed window: not dialed");
    let f = w.status().await;
    assert_eq!(f.outside_window, 1);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(w.fake.count(), 0, "07:59 is still closed");
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(w.fake.count(), 1, "dialed once the window opened");
}

#[tokio::test(start_paused = true)]
async fn an_agent_going_away_gets_no_dial_and_a_closed_dial_channel_is_a_failure() {
    let w = world(campaign(""), "", monday(10, 0)).await;
    w.load(CSV).await;
    w.control(Control::Start).await.unwrap();
    w.ready("alice").await;
    settle().await;
    assert_eq!(w.fake.count(), 1);
    w.not_ready("alice").await;
    // The call side drops the dial without a result.
    let dropped = w.fake.dials.lock().unwrap().remove(0);
    drop(dropped);
    settle().await;
    let f = w.status().await;
    assert_eq!(f.failed, 1);
    assert_eq!(f.in_flight, 0);
    assert_eq!(w.fake.count(), 0, "alice is not ready: no new dial");
}

#[tokio::test(start_paused = true)]
async fn figures_go_on_the_bus_and_loads_report_bad_rows_by_line() {
    let w = world(campaign(""), "", monday(10, 0)).await;
    let mut rx = w.bus.subscribe();
    let r = w
        .load("phone,name\n601000001,A\n12,Bad\n601000001,Again\n")
        .await;
    assert_eq!(r.added, 1);
    let lines: Vec<usize> = r.rejected.iter().map(|e| e.line).collect();
    assert_eq!(lines, [3, 4]);
    let again = w.load("phone\n601000001\n").await;
    assert_eq!(again.added, 0);
    assert_eq!(again.rejected[0].line, 2);
    assert!(again.rejected[0].reason.contains("already in the campaign"));
    w.control(Control::Start).await.unwrap();
    settle().await;
    let mut last = None;
    while let Ok(ev) = rx.try_recv() {
        if let Event::Campaign(s) = &ev.event {
            last = Some(s.clone());
        }
    }
    let s = last.expect("campaign figures on the bus");
    assert_eq!(s.campaign, "demo");
    assert_eq!(s.state, "running");
    assert_eq!(s.contacts, 1);
    let missing = w
        .dialer
        .ask(|reply| DialerCommand::Status {
            name: "nope".into(),
            reply,
        })
        .await;
    assert!(matches!(missing, Err(DialerError::NotFound(_))));
}

#[tokio::test(start_paused = true)]
async fn created_campaigns_validate_and_survive_a_restart() {
    let w = world(campaign(""), "", monday(10, 0)).await;
    let table: toml::Table = toml::from_str(
        r#"name = "spring"
mode = "agentless"
trunk = "pstn"
caller_id = "+48221234567"
message = { prompt = "offer" }"#,
    )
    .unwrap();
    let info = w
        .dialer
        .ask(|reply| DialerCommand::Create {
            table: table.clone(),
            reply,
        })
        .await
        .unwrap();
    assert_eq!(info.mode, DialMode::Agentless);
    assert_eq!(info.figures.state, RunState::Idle);
    let twice = w
        .dialer
        .ask(|reply| DialerCommand::Create { table, reply })
        .await;
    assert!(matches!(twice, Err(DialerError::Exists(_))));
    let bad: toml::Table = toml::from_str(
        r#"name = "x"
mode = "progressive"
trunk = "pstn"
caller_id = "+48221234567""#,
    )
    .unwrap();
    let err = w
        .dialer
        .ask(|reply| DialerCommand::Create { table: bad, reply })
        .await;
    match err {
        Err(DialerError::Invalid(m)) => assert!(m.starts_with("queue:"), "{m}"),
        other => panic!("expected invalid, got {other:?}"),
    }
    // A new task over the same store opens it again.
    let again = DialerTask::new(
        &[],
        DncList::default(),
        w.store.clone(),
        Arc::new(FakeOriginator::default()),
        EventBus::new(8),
        None,
        References::default(),
        clock(monday(10, 0)),
    )
    .unwrap();
    assert_eq!(again.campaigns.keys().collect::<Vec<_>>(), ["spring"]);
}

#[test]
fn routes_follow_the_mode() {
    let mut cfg = (*campaign("")).clone();
    let req = |agent: Option<&str>| DialRequest {
        campaign: "demo".into(),
        attempt: 1,
        contact: 1,
        number: E164::from_e164("+48601000001").unwrap(),
        caller_id: E164::from_e164("+48221234567").unwrap(),
        trunk: "pstn".into(),
        ring_timeout: Duration::from_secs(25),
        agent: agent.map(String::from),
        amd: None,
        variables: Default::default(),
    };
    assert_eq!(
        originate_of(&cfg, req(Some("alice"))).on_human,
        HumanRoute::Agent("alice".into())
    );
    cfg.mode = DialMode::Predictive;
    assert_eq!(
        originate_of(&cfg, req(None)).on_human,
        HumanRoute::Queue("sales".into())
    );
    cfg.mode = DialMode::Agentless;
    cfg.message = Some(AgentlessAction::Flow("main".into()));
    assert_eq!(
        originate_of(&cfg, req(None)).on_human,
        HumanRoute::Agentless(AgentlessAction::Flow("main".into()))
    );
    assert_eq!(availability(&AgentState::Ready), Availability::Ready);
    assert_eq!(availability(&AgentState::WrapUp), Availability::Busy);
    assert_eq!(
        availability(&AgentState::NotReady("break".into())),
        Availability::Away
    );
}

/// A preview campaign (`preview_timeout_s = 5`).
fn preview_campaign() -> Arc<CampaignConfig> {
    let mut cfg = (*campaign("preview_timeout_s = 5\nscript = \"Hello {contact_name}\"")).clone();
    cfg.mode = DialMode::Preview;
    Arc::new(cfg)
}

impl World {
    /// Alice's ACD event stream, drained of what is buffered.
    async fn events_of(&self, agent: &str) -> broadcast::Receiver<crate::acd::api::AgentEvent> {
        let a: crate::acd::AgentId = agent.into();
        let mut rx = self
            .acd
            .ask(|reply| AcdCommand::Subscribe { agent: a, reply })
            .await
            .unwrap();
        while rx.try_recv().is_ok() {}
        rx
    }

    async fn decide(
        &self,
        agent: &str,
        attempt: AttemptId,
        accept: bool,
    ) -> Result<(), DialerError> {
        let agent = agent.to_string();
        let r = self
            .dialer
            .ask(|reply| DialerCommand::PreviewDecision {
                agent,
                campaign: None,
                attempt,
                accept,
                reply,
            })
            .await;
        settle().await;
        r
    }

    /// An inbound caller for sales; its ACD answers.
    fn inbound(&self, call: CallKey) -> mpsc::Receiver<crate::acd::task::AcdToCall> {
        let (tx, rx) = mpsc::channel(16);
        assert!(self._calls.send(CallToAcd::Queue {
            call,
            queue: "sales".into(),
            priority: 0,
            requirements: Vec::new(),
            caller: crate::acd::task::Caller {
                number: "555".into(),
                name: String::new(),
                data: Default::default(),
                tx,
            },
        }));
        rx
    }
}

/// The previews among the events received so far.
fn previews(rx: &mut broadcast::Receiver<crate::acd::api::AgentEvent>) -> Vec<CallPreview> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if let crate::acd::api::AgentEvent::Preview(p) = e {
            out.push(p);
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn preview_offers_reach_the_agent_held_and_its_decision_dials_skips_or_times_out() {
    use crate::acd::task::AcdToCall;
    let w = world(preview_campaign(), "", monday(10, 0)).await;
    w.load("phone,name,plan\n601000001,Ann,gold\n601000002,Ben,silver\n601000003,Cy,gold\n")
        .await;
    w.control(Control::Start).await.unwrap();
    let mut ev = w.events_of("alice").await;
    w.ready("alice").await;
    settle().await;
    let p = previews(&mut ev);
    assert_eq!(p.len(), 1, "{p:?}");
    let first = p[0].clone();
    assert_eq!(first.campaign, "demo");
    assert_eq!(first.number, "+48601000001");
    assert_eq!(first.name, "Ann");
    assert_eq!(first.columns.get("plan").map(String::as_str), Some("gold"));
    assert_eq!(first.script, "Hello {contact_name}");
    assert!(!first.columns.contains_key("script"));
    assert_eq!(first.deadline, Duration::from_secs(5));
    assert_eq!(w.fake.count(), 0, "preview never dials before the decision");

    // Held from the offer: an inbound caller is not offered to alice.
    let mut inbound = w.inbound(900);
    settle().await;
    assert!(inbound.try_recv().is_err(), "alice is held for the preview");
    assert!(w._calls.send(CallToAcd::Left {
        call: 900,
        exit_key: false
    }));
    settle().await;

    // Only alice decides, only on a pending offer.
    assert!(matches!(
        w.decide("bob", first.attempt, true).await,
        Err(DialerError::NotYours { .. })
    ));
    assert!(matches!(
        w.decide("alice", 999, true).await,
        Err(DialerError::NoOffer(999))
    ));

    // Skip: not dialed; alice is released and shown the next contact.
    w.decide("alice", first.attempt, false).await.unwrap();
    assert!(matches!(
        w.decide("alice", first.attempt, true).await,
        Err(DialerError::NoOffer(_))
    ));
    assert_eq!(w.fake.count(), 0);
    let p = previews(&mut ev);
    assert_eq!(p.len(), 1, "{p:?}");
    let second = p[0].clone();
    assert_eq!(second.number, "+48601000002");

    // Accept: dialed to alice.
    w.decide("alice", second.attempt, true).await.unwrap();
    assert_eq!(w.fake.count(), 1);
    let (d, _) = w.fake.dial(0);
    assert_eq!(d.request.number.to_string(), "+48601000002");
    assert_eq!(d.request.attempt, second.attempt);
    assert_eq!(d.on_human, HumanRoute::Agent("alice".into()));
    w.finish(0, CallResult::NoAnswer).await;

    // The third offer is left alone: after 5 s it counts as skipped, alice is released
    // (an inbound caller reaches her) and nothing was dialed for it.
    let p = previews(&mut ev);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].number, "+48601000003");
    tokio::time::sleep(Duration::from_secs(6)).await;
    settle().await;
    assert_eq!(w.fake.count(), 1, "a timed-out offer is not dialed");
    // Her client is told the offer ended (before the release lets a call reach her).
    let ended: Vec<(String, AttemptId, String)> = std::iter::from_fn(|| ev.try_recv().ok())
        .filter_map(|e| match e {
            crate::acd::api::AgentEvent::PreviewEnded {
                campaign,
                attempt,
                reason,
            } => Some((campaign, attempt, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(ended, [("demo".into(), p[0].attempt, "timed out".into())]);
    assert!(matches!(
        w.decide("alice", p[0].attempt, true).await,
        Err(DialerError::NoOffer(_))
    ));
    let mut inbound = w.inbound(901);
    settle().await;
    match inbound.try_recv() {
        Ok(AcdToCall::Ring { agent, .. }) => assert_eq!(&*agent, "alice"),
        other => panic!("expected a ring for alice, got {other:?}"),
    }
    let f = w.status().await;
    assert_eq!((f.dialed, f.no_answer, f.contacts_left), (1, 1, 3));
}

#[tokio::test(start_paused = true)]
async fn a_refused_agent_hold_dials_nothing_and_counts_nothing() {
    let w = world(campaign(""), "", monday(10, 0)).await;
    w.load(CSV).await;
    w.ready("alice").await;
    settle().await;
    // Something else holds alice in the ACD (as an inbound offer would make her not
    // ready) when the dialer asks: its hold is refused.
    let (reply, answer) = oneshot::channel();
    assert!(w._calls.send(CallToAcd::Reserve {
        agent: "alice".into(),
        preview: None,
        reply,
    }));
    assert_eq!(answer.await.unwrap(), Ok(()));
    w.control(Control::Start).await.unwrap();
    settle().await;
    assert_eq!(w.fake.count(), 0, "alice could not be held: no dial");
    let f = w.status().await;
    assert_eq!((f.dialed, f.in_flight, f.contacts_left), (0, 0, 3));
    // Released, and her next state change makes her available again: dialed then.
    assert!(w._calls.send(CallToAcd::Hold {
        agent: "alice".into(),
        hold: false,
    }));
    w.not_ready("alice").await;
    w.acd
        .ask(|reply| AcdCommand::SetReady {
            agent: "alice".into(),
            reply,
        })
        .await
        .unwrap();
    settle().await;
    assert_eq!(w.fake.count(), 1);
    assert_eq!(w.fake.dial(0).0.on_human, HumanRoute::Agent("alice".into()));
}

#[tokio::test(start_paused = true)]
async fn attempts_are_listed_and_a_false_positive_counts_as_abandoned() {
    let w = world(campaign(""), "", monday(10, 0)).await;
    w.load(CSV).await;
    w.control(Control::Start).await.unwrap();
    w.ready("alice").await;
    w.ready("bob").await;
    settle().await;
    assert_eq!(w.fake.count(), 2);
    w.finish(
        0,
        CallResult::Machine {
            message_left: false,
        },
    )
    .await;
    let (d0, _) = w.fake.dial(0);
    let list = |contact: Option<u64>, limit: usize| {
        let d = w.dialer.clone();
        async move {
            d.ask(|reply| DialerCommand::ListAttempts {
                name: "demo".into(),
                contact,
                limit,
                reply,
            })
            .await
        }
    };
    let all = list(None, 10).await.unwrap();
    assert_eq!(all.len(), 3, "the freed agent dialed the third contact");
    assert!(all.windows(2).all(|p| p[0].record.id > p[1].record.id));
    let mine: Vec<_> = list(Some(d0.request.contact), 10).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].record.outcome, Some(Outcome::Machine));
    assert_eq!(
        mine[0].contact_name,
        ["A", "B", "C"][d0.request.contact as usize]
    );
    assert_eq!(list(None, 1).await.unwrap().len(), 1);

    let report = |name: &str, attempt: AttemptId| {
        let d = w.dialer.clone();
        let name = name.to_string();
        async move {
            d.ask(|reply| DialerCommand::ReportFalsePositive {
                name,
                attempt,
                reply,
            })
            .await
        }
    };
    let r = report("demo", d0.request.attempt).await.unwrap();
    assert!(r.counted);
    assert!(r.attempt.record.false_positive);
    let f = &r.info.figures;
    assert_eq!((f.machine, f.abandoned, f.amd_false_positives), (1, 1, 1));
    assert_eq!(f.today.abandoned, 1);
    assert!(
        f.abandon_rate > 0.99,
        "only abandoned in the window: {}",
        f.abandon_rate
    );
    assert!(!report("demo", d0.request.attempt).await.unwrap().counted);
    // Still ringing: not a machine; unknown attempt; unknown campaign.
    let (d1, _) = w.fake.dial(1);
    assert!(matches!(
        report("demo", d1.request.attempt).await,
        Err(DialerError::Campaign(CampaignError::NotMachine { .. }))
    ));
    assert!(matches!(
        report("demo", 999).await,
        Err(DialerError::Campaign(CampaignError::UnknownAttempt { .. }))
    ));
    assert!(matches!(
        report("nope", 0).await,
        Err(DialerError::NotFound(_))
    ));
    assert_eq!(w.status().await.amd_false_positives, 1);
}

#[tokio::test(start_paused = true)]
async fn an_agent_released_by_one_campaign_is_dialed_for_by_another_that_found_it_held() {
    // "demo" (preview) holds alice to show her a contact; "other" (progressive, same
    // queue) asks for her meanwhile and is refused (held). When she skips the preview,
    // "other" dials for her at once, without waiting for a state change of hers.
    let preview = preview_campaign();
    let mut other = (*campaign("")).clone();
    other.name = "other".into();
    let w = world_of(&[preview, Arc::new(other)], "", monday(10, 0)).await;
    w.load("phone,name\n601000001,Ann\n").await;
    let csv = b"phone,name\n601000009,Zed\n".to_vec();
    w.dialer
        .ask(|reply| DialerCommand::Load {
            name: "other".into(),
            csv,
            reply,
        })
        .await
        .unwrap();
    w.control(Control::Start).await.unwrap();
    let mut ev = w.events_of("alice").await;
    w.ready("alice").await;
    settle().await;
    let p = previews(&mut ev);
    assert_eq!(p.len(), 1, "{p:?}");
    w.dialer
        .ask(|reply| DialerCommand::Control {
            name: "other".into(),
            action: Control::Start,
            reply,
        })
        .await
        .unwrap();
    settle().await;
    assert_eq!(
        w.fake.count(),
        0,
        "alice is held by the preview: no dial for her"
    );
    w.decide("alice", p[0].attempt, false).await.unwrap();
    settle().await;
    assert_eq!(
        w.fake.count(),
        1,
        "the released agent is dialed for by the other campaign"
    );
    let (d, _) = w.fake.dial(0);
    assert_eq!(d.request.campaign, "other");
    assert_eq!(d.request.number.to_string(), "+48601000009");
    assert_eq!(d.on_human, HumanRoute::Agent("alice".into()));
}
