//! Campaign state machine tests, with a hand-advanced wall clock and a memory store.

use super::*;
use crate::dialer::config::{AgentlessAction, CampaignConfig, RetryRule};
use crate::dialer::contacts::parse_csv;
use crate::store::MemoryStore;

fn pl() -> &'static Country {
    Country::by_alpha2("PL").unwrap()
}

/// Monday 1 June 2026, 10:00 in Warsaw.
fn t0() -> SystemTime {
    let ts: Timestamp = "2026-06-01T10:00:00+02:00".parse().unwrap();
    UNIX_EPOCH + Duration::from_millis(ts.as_millisecond() as u64)
}

fn at(secs: u64) -> SystemTime {
    t0() + Duration::from_secs(secs)
}

fn config(mode: DialMode) -> CampaignConfig {
    let mut c = CampaignConfig::new(
        "c1",
        mode,
        "pstn",
        E164::parse("+48221234567", pl()).unwrap(),
    );
    c.queue = Some("sales".into());
    c.default_country = pl();
    c.script = "Good morning".into();
    c.safe_harbor = Some("sh".into());
    if mode == DialMode::Agentless {
        c.queue = None;
        c.message = Some(AgentlessAction::Prompt("offer".into()));
    }
    c
}

fn contacts(csv: &str) -> Vec<Contact> {
    let r = parse_csv(csv, pl()).unwrap();
    assert_eq!(r.errors, vec![]);
    r.contacts
}

fn numbers(n: usize) -> Vec<Contact> {
    let mut csv = String::from("phone,name,plan\n");
    for i in 0..n {
        csv.push_str(&format!("60110{i:04},Person {i},gold\n"));
    }
    contacts(&csv)
}

struct Fixture {
    store: Arc<MemoryStore>,
    c: Campaign,
    dnc: DncList,
}

fn fixture(cfg: CampaignConfig, list: Vec<Contact>) -> Fixture {
    let store = Arc::new(MemoryStore::default());
    let mut c = Campaign::open(Arc::new(cfg), store.clone(), t0()).unwrap();
    c.load_contacts(t0(), list).unwrap();
    Fixture {
        store,
        c,
        dnc: DncList::default(),
    }
}

fn ready(ids: &[&str]) -> Vec<AgentView> {
    ids.iter()
        .map(|id| AgentView {
            id: id.to_string(),
            availability: Availability::Ready,
        })
        .collect()
}

impl Fixture {
    fn dial_all(&mut self, now: SystemTime) -> Vec<DialRequest> {
        let mut out = Vec::new();
        while let Some(d) = self.c.poll_dial(now, &self.dnc).unwrap() {
            out.push(d);
        }
        out
    }
}

#[test]
fn progressive_dials_one_contact_per_ready_agent() {
    let mut f = fixture(config(DialMode::Progressive), numbers(3));
    // Not started: nothing.
    f.c.handle_agents(t0(), &ready(&["alice", "bob"]));
    assert!(f.dial_all(t0()).is_empty());
    f.c.start(t0()).unwrap();
    let dials = f.dial_all(t0());
    assert_eq!(dials.len(), 2);
    let mut agents: Vec<_> = dials.iter().map(|d| d.agent.clone().unwrap()).collect();
    agents.sort();
    assert_eq!(agents, ["alice", "bob"]);
    let d = &dials[0];
    assert_eq!(d.number.as_str(), "+48601100000");
    assert_eq!(d.caller_id.as_str(), "+48221234567");
    assert_eq!(d.trunk, "pstn");
    assert!(d.ring_timeout >= Duration::from_secs(15));
    assert_eq!(d.variables["plan"], "gold");
    assert_eq!(d.variables["contact_name"], "Person 0");
    assert_eq!(d.variables["script"], "Good morning");
    assert_eq!(d.variables["campaign"], "c1");

    // Alice's call is answered by a person; bob's is busy.
    let alice = dials
        .iter()
        .find(|d| d.agent.as_deref() == Some("alice"))
        .unwrap()
        .clone();
    let bob = dials
        .iter()
        .find(|d| d.agent.as_deref() == Some("bob"))
        .unwrap()
        .clone();
    let r = CallResult::Connected {
        agent: "alice".into(),
        amd: Some(AmdOutcome::Human),
    };
    assert_eq!(
        f.c.handle_result(at(20), alice.attempt, r).unwrap(),
        Outcome::Human
    );
    f.c.handle_agent(
        at(20),
        &AgentView {
            id: "alice".into(),
            availability: Availability::Busy,
        },
    );
    assert_eq!(
        f.c.handle_result(at(5), bob.attempt, CallResult::Busy)
            .unwrap(),
        Outcome::Busy
    );
    assert!(
        f.c.handle_result(at(5), bob.attempt, CallResult::Busy)
            .is_err(),
        "reported twice"
    );

    // Bob (free again) gets the third contact; the busy one waits 10 minutes.
    let next = f.dial_all(at(21));
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].agent.as_deref(), Some("bob"));
    assert_eq!(next[0].contact, 2);
    assert_eq!(
        f.c.contact(alice.contact).unwrap().done,
        Some(FinalState::Reached)
    );
    assert_eq!(
        f.c.contact(bob.contact).unwrap().next_at_ms,
        Some(unix_ms(at(5 + 600)))
    );

    let fig = f.c.figures();
    assert_eq!(
        (fig.dialed, fig.in_flight, fig.answered, fig.human, fig.busy),
        (3, 1, 1, 1, 1)
    );
    assert_eq!((fig.contacts, fig.contacts_left), (3, 2));
    assert_eq!(fig.state, RunState::Running);
}

#[test]
fn dnc_numbers_are_never_dialed_and_final() {
    let mut f = fixture(config(DialMode::Progressive), numbers(3));
    f.dnc = DncList::parse_file("601100001\n", pl()).0;
    f.c.handle_agents(t0(), &ready(&["a", "b", "c"]));
    f.c.start(t0()).unwrap();
    let dials = f.dial_all(t0());
    assert_eq!(dials.len(), 2);
    assert!(dials.iter().all(|d| d.number.as_str() != "+48601100001"));
    assert_eq!(f.c.contact(1).unwrap().done, Some(FinalState::Dnc));
    assert_eq!(f.c.figures().dnc_skipped, 1);
    let mut events = Vec::new();
    while let Some(e) = f.c.poll_event() {
        events.push(e);
    }
    assert!(events.contains(&CampaignEvent::ContactDone {
        contact: 1,
        state: FinalState::Dnc
    }));
}

#[test]
fn contacts_outside_their_window_wait_until_it_opens() {
    // One contact in Warsaw (10:00: open), one in New York (04:00: closed until 08:00
    // there, 14:00 in Warsaw), one with a zone column in Los Angeles.
    let list = contacts(
        "phone,name,timezone\n601100000,Warsaw,\n+12125550147,New York,\n+13105550100,LA,America/Los_Angeles\n",
    );
    let mut f = fixture(config(DialMode::Progressive), list);
    f.c.handle_agents(t0(), &ready(&["a", "b", "c"]));
    f.c.start(t0()).unwrap();
    let dials = f.dial_all(t0());
    assert_eq!(dials.iter().map(|d| d.contact).collect::<Vec<_>>(), [0]);
    assert_eq!(f.c.figures().outside_window, 2);
    // US numbers without a zone wait for every US zone (Honolulu opens last: 08:00
    // HST = 20:00 in Warsaw); the LA contact opens at 08:00 PDT = 17:00 in Warsaw.
    assert_eq!(
        f.c.contact(2).unwrap().next_at_ms,
        Some(unix_ms(at(7 * 3600)))
    );
    assert_eq!(
        f.c.contact(1).unwrap().next_at_ms,
        Some(unix_ms(at(10 * 3600)))
    );
    assert_eq!(f.c.poll_timeout(), Some(at(7 * 3600)));
    assert!(f.dial_all(at(7 * 3600 - 1)).is_empty());
    let la = f.dial_all(at(7 * 3600));
    assert_eq!(la.iter().map(|d| d.contact).collect::<Vec<_>>(), [2]);
    let ny = f.dial_all(at(10 * 3600));
    assert_eq!(ny.iter().map(|d| d.contact).collect::<Vec<_>>(), [1]);
}

#[test]
fn retries_follow_the_outcome_rules_then_exhaust() {
    let mut cfg = config(DialMode::Progressive);
    cfg.retries.busy = RetryRule {
        delay: Duration::from_secs(60),
        max: 1,
    };
    cfg.retries.no_answer = RetryRule {
        delay: Duration::from_secs(120),
        max: 5,
    };
    cfg.max_attempts = 3;
    let mut f = fixture(cfg, numbers(2));
    f.c.handle_agents(t0(), &ready(&["a"]));
    f.c.start(t0()).unwrap();
    let mut t = 0;
    // Contact 0: busy, busy → exhausted after one re-dial.
    for expect_more in [true, false] {
        let d = f
            .dial_all(at(t))
            .into_iter()
            .find(|d| d.contact == 0)
            .expect("dial of contact 0");
        f.c.handle_result(at(t + 3), d.attempt, CallResult::Busy)
            .unwrap();
        assert_eq!(f.c.contact(0).unwrap().done.is_none(), expect_more);
        // Contact 1 takes the agent in between: it rings out.
        if let Some(d1) = f.dial_all(at(t + 3)).into_iter().find(|d| d.contact == 1) {
            f.c.handle_result(at(t + 30), d1.attempt, CallResult::NoAnswer)
                .unwrap();
        }
        t += 200;
    }
    assert_eq!(
        f.c.contact(0).unwrap().done,
        Some(FinalState::Exhausted(Outcome::Busy))
    );
    // Contact 1: no answer until max_attempts (3) dials in all.
    while f.c.contact(1).unwrap().done.is_none() {
        for d in f.dial_all(at(t)) {
            f.c.handle_result(at(t + 25), d.attempt, CallResult::NoAnswer)
                .unwrap();
        }
        t += 200;
        assert!(t < 10_000, "never exhausted");
    }
    assert_eq!(f.c.contact(1).unwrap().attempts, 3);
    assert_eq!(
        f.c.contact(1).unwrap().done,
        Some(FinalState::Exhausted(Outcome::NoAnswer))
    );
    assert_eq!(f.c.state(), RunState::Finished);
    assert_eq!(f.c.figures().contacts_left, 0);
}

#[test]
fn abandoned_contacts_wait_72_hours_unless_an_agent_is_guaranteed() {
    // Predictive: an abandon (no agent in 2 s) → not re-dialed for 72 h.
    let mut cfg = config(DialMode::Predictive);
    cfg.window = crate::dialer::window::CallingWindow::new([true; 7], 0, 1440).unwrap();
    let mut f = fixture(cfg, numbers(1));
    f.c.handle_agents(t0(), &ready(&["a"]));
    f.c.start(t0()).unwrap();
    let d = f.dial_all(t0());
    assert_eq!(d.len(), 1, "no history: one dial for the one ready agent");
    f.c.handle_result(
        at(12),
        d[0].attempt,
        CallResult::Abandoned {
            amd: Some(AmdOutcome::Human),
        },
    )
    .unwrap();
    let fig = f.c.figures();
    assert_eq!((fig.abandoned, fig.answered), (1, 1));
    assert!((fig.abandon_rate - 1.0).abs() < 1e-9);
    let redial = unix_ms(at(12)) + 72 * 3600 * 1000;
    assert_eq!(f.c.contact(0).unwrap().next_at_ms, Some(redial));
    assert!(f.dial_all(at(71 * 3600)).is_empty());
    assert_eq!(
        f.dial_all(UNIX_EPOCH + Duration::from_millis(redial)).len(),
        1
    );

    // Progressive with a reserved agent: the configured (short) delay applies.
    let mut cfg = config(DialMode::Progressive);
    cfg.retries.abandoned = RetryRule {
        delay: Duration::from_secs(3600),
        max: 1,
    };
    let mut f = fixture(cfg, numbers(1));
    f.c.handle_agents(t0(), &ready(&["a"]));
    f.c.start(t0()).unwrap();
    let d = f.dial_all(t0());
    f.c.handle_result(at(12), d[0].attempt, CallResult::Abandoned { amd: None })
        .unwrap();
    assert_eq!(f.dial_all(at(12 + 3600)).len(), 1);
}

#[test]
fn machines_get_a_message_or_a_retry() {
    let mut f = fixture(config(DialMode::Progressive), numbers(2));
    f.c.handle_agents(t0(), &ready(&["a", "b"]));
    f.c.start(t0()).unwrap();
    let d = f.dial_all(t0());
    f.c.handle_result(
        at(9),
        d[0].attempt,
        CallResult::Machine { message_left: true },
    )
    .unwrap();
    f.c.handle_result(
        at(9),
        d[1].attempt,
        CallResult::Machine {
            message_left: false,
        },
    )
    .unwrap();
    assert_eq!(
        f.c.contact(d[0].contact).unwrap().done,
        Some(FinalState::MessageLeft)
    );
    let c1 = f.c.contact(d[1].contact).unwrap();
    assert_eq!(c1.done, None);
    assert_eq!(c1.next_at_ms, Some(unix_ms(at(9 + 14400))));
    // A person taken for a machine: counted as abandoned, 72-hour rule.
    f.c.handle_false_positive(at(30), d[0].attempt).unwrap();
    f.c.handle_false_positive(at(31), d[0].attempt).unwrap();
    let fig = f.c.figures();
    assert_eq!(
        (fig.machine, fig.amd_false_positives, fig.abandoned),
        (2, 1, 1)
    );
    assert!(f.c.handle_false_positive(at(30), 999).is_err());
}

#[test]
fn preview_shows_the_contact_and_the_agent_starts_the_call() {
    let mut f = fixture(config(DialMode::Preview), numbers(2));
    f.c.handle_agents(t0(), &ready(&["alice"]));
    f.c.start(t0()).unwrap();
    assert!(
        f.dial_all(t0()).is_empty(),
        "preview never dials on its own"
    );
    let offer = f.c.poll_preview(t0(), &f.dnc).unwrap().unwrap();
    assert_eq!(offer.agent, "alice");
    assert_eq!(offer.variables["contact_name"], "Person 0");
    assert!(
        f.c.poll_preview(t0(), &f.dnc).unwrap().is_none(),
        "alice is reserved"
    );
    // Skip: the contact comes back later; the next offer is the other contact.
    f.c.handle_preview_skip(at(5), offer.attempt).unwrap();
    let offer = f.c.poll_preview(at(5), &f.dnc).unwrap().unwrap();
    assert_eq!(offer.contact, 1);
    f.c.handle_preview_accept(offer.attempt).unwrap();
    let d = f.dial_all(at(6));
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].attempt, d[0].agent.as_deref()),
        (offer.attempt, Some("alice"))
    );
    assert!(f.c.handle_preview_accept(12345).is_err());
}

#[test]
fn an_undecided_preview_offer_times_out_as_a_skip_and_frees_the_agent() {
    let mut cfg = config(DialMode::Preview);
    cfg.preview_timeout = Duration::from_secs(20);
    let mut f = fixture(cfg, numbers(2));
    f.c.handle_agents(t0(), &ready(&["alice"]));
    f.c.start(t0()).unwrap();
    let offer = f.c.poll_preview(t0(), &f.dnc).unwrap().unwrap();
    assert_eq!(f.c.offer_agent(offer.attempt), Some("alice"));
    assert!(f.c.is_live(offer.attempt));
    // The deadline is a timer of the campaign.
    assert!(f.c.poll_timeout().is_some_and(|t| t <= at(20)));
    assert_eq!(f.c.poll_preview_timeout(at(19)).unwrap(), None, "not yet");
    assert_eq!(
        f.c.poll_preview_timeout(at(20)).unwrap(),
        Some((offer.attempt, "alice".to_string()))
    );
    assert_eq!(f.c.poll_preview_timeout(at(20)).unwrap(), None, "once");
    assert!(!f.c.is_live(offer.attempt));
    assert_eq!(f.c.offer_agent(offer.attempt), None);
    assert!(
        f.c.handle_preview_accept(offer.attempt).is_err(),
        "a late accept is refused"
    );
    // Nothing was dialed or counted; the contact waits for the no-answer delay and
    // alice gets the other contact.
    let fig = f.c.figures();
    assert_eq!((fig.dialed, fig.contacts_left), (0, 2));
    let next = f.c.poll_preview(at(20), &f.dnc).unwrap().unwrap();
    assert_ne!(next.contact, offer.contact);
    assert_eq!(
        f.c.contact(offer.contact).unwrap().next_at_ms,
        Some(unix_ms(at(20) + f.c.config().retries.no_answer.delay))
    );
    // An accepted offer has no deadline any more.
    f.c.handle_preview_accept(next.attempt).unwrap();
    assert_eq!(f.c.poll_preview_timeout(at(3600)).unwrap(), None);
    assert_eq!(f.dial_all(at(3600)).len(), 1);
}

#[test]
fn a_refused_hold_withdraws_the_claim_without_dialing_or_counting() {
    let mut f = fixture(config(DialMode::Progressive), numbers(2));
    f.c.set_claim_first(true);
    f.c.handle_agents(t0(), &ready(&["alice", "bob"]));
    f.c.start(t0()).unwrap();
    assert!(
        f.dial_all(t0()).is_empty(),
        "claimed dials wait for the hold"
    );
    let a = f.c.poll_preview(t0(), &f.dnc).unwrap().unwrap();
    let b = f.c.poll_preview(t0(), &f.dnc).unwrap().unwrap();
    assert!(f.c.poll_preview(t0(), &f.dnc).unwrap().is_none());
    assert_eq!(f.c.poll_timeout(), None, "a claim has no deadline");
    // The ACD refuses the hold of a's agent (an inbound call took it just before).
    f.c.handle_hold_refused(at(1), a.attempt).unwrap();
    assert!(!f.c.is_live(a.attempt));
    assert!(f.c.handle_hold_refused(at(1), a.attempt).is_err());
    assert!(f.dial_all(at(1)).is_empty());
    let fig = f.c.figures();
    assert_eq!((fig.dialed, fig.in_flight, fig.contacts_left), (0, 0, 2));
    assert_eq!(f.c.contact(a.contact).unwrap().attempts, 0);
    assert!(
        f.c.poll_preview(at(1), &f.dnc).unwrap().is_none(),
        "that agent is busy until its next state change"
    );
    // b's hold is granted: its dial goes out.
    f.c.handle_preview_accept(b.attempt).unwrap();
    let d = f.dial_all(at(1));
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].attempt, b.attempt);
    // a's agent is ready again: the withdrawn contact is due at once.
    f.c.handle_agent(at(2), &ready(&[&a.agent])[0]);
    let again = f.c.poll_preview(at(2), &f.dnc).unwrap().unwrap();
    assert_eq!(again.contact, a.contact);
}

#[test]
fn agentless_dials_up_to_its_lines() {
    let mut cfg = config(DialMode::Agentless);
    cfg.lines = 2;
    let mut f = fixture(cfg, numbers(5));
    f.c.start(t0()).unwrap();
    let d = f.dial_all(t0());
    assert_eq!(d.len(), 2);
    assert!(d.iter().all(|d| d.agent.is_none()));
    f.c.handle_result(
        at(30),
        d[0].attempt,
        CallResult::Played {
            amd: Some(AmdOutcome::Human),
        },
    )
    .unwrap();
    assert_eq!(f.dial_all(at(30)).len(), 1);
    assert_eq!(
        f.c.contact(d[0].contact).unwrap().done,
        Some(FinalState::Reached)
    );
}

#[test]
fn commands_follow_the_state_machine() {
    let mut f = fixture(config(DialMode::Progressive), numbers(2));
    assert!(matches!(
        f.c.pause(t0()),
        Err(CampaignError::InvalidTransition {
            command: "pause",
            ..
        })
    ));
    assert!(f.c.resume(t0()).is_err());
    assert!(f.c.stop(t0()).is_err());
    f.c.start(t0()).unwrap();
    assert!(f.c.start(t0()).is_err());
    f.c.handle_agents(t0(), &ready(&["a"]));
    f.c.pause(t0()).unwrap();
    assert!(f.dial_all(t0()).is_empty(), "paused");
    f.c.resume(t0()).unwrap();
    assert_eq!(f.dial_all(t0()).len(), 1);
    f.c.stop(t0()).unwrap();
    assert_eq!(f.c.state(), RunState::Stopped);
    f.c.start(t0()).unwrap();
    // Duplicates of numbers already loaded are reported, not added.
    let report = f.c.load_contacts(t0(), numbers(3)).unwrap();
    assert_eq!(report.added, 1);
    assert_eq!(report.duplicates.len(), 2);
}

#[test]
fn state_contacts_attempts_and_dispositions_survive_a_restart() {
    let mut f = fixture(config(DialMode::Progressive), numbers(3));
    f.c.handle_agents(t0(), &ready(&["a", "b"]));
    f.c.start(t0()).unwrap();
    let d = f.dial_all(t0());
    assert_eq!(d.len(), 2);
    f.c.handle_result(
        at(20),
        d[0].attempt,
        CallResult::Connected {
            agent: "a".into(),
            amd: None,
        },
    )
    .unwrap();
    f.c.handle_disposition(d[0].attempt, "sale", "wants the gold plan")
        .unwrap();
    assert!(f.c.handle_disposition(999, "sale", "").is_err());
    // d[1] is still ringing when the server stops.
    let cfg = Arc::new(config(DialMode::Progressive));
    drop(f.c);
    let mut c = Campaign::open(cfg, f.store.clone(), at(60)).unwrap();
    assert_eq!(c.state(), RunState::Running);
    let attempts = c.attempts().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].outcome, Some(Outcome::Human));
    assert_eq!(attempts[0].disposition.as_deref(), Some("sale"));
    assert_eq!(attempts[0].note.as_deref(), Some("wants the gold plan"));
    assert_eq!(attempts[1].outcome, Some(Outcome::Interrupted));
    assert_eq!(
        c.contact(d[0].contact).unwrap().done,
        Some(FinalState::Reached)
    );
    let interrupted = c.contact(d[1].contact).unwrap();
    assert!(interrupted.done.is_none());
    assert_eq!(interrupted.last_abandon_ms, Some(unix_ms(t0())));
    let fig = c.figures();
    assert_eq!(
        (fig.dialed, fig.human, fig.contacts, fig.contacts_left),
        (2, 1, 3, 2)
    );
    // New attempts get new ids; the third contact is dialed.
    c.handle_agents(at(60), &ready(&["a"]));
    let dnc = DncList::default();
    let next = c.poll_dial(at(60), &dnc).unwrap().unwrap();
    assert_eq!(next.attempt, 2);
    assert_eq!(next.contact, 2);
}

#[test]
fn corrupt_store_values_are_errors() {
    let store = Arc::new(MemoryStore::default());
    store.put(CAMPAIGNS_TREE, b"c1", b"\xff").unwrap();
    let r = Campaign::open(Arc::new(config(DialMode::Progressive)), store, t0());
    assert!(matches!(
        r,
        Err(CampaignError::Store(StoreError::Corrupt { .. }))
    ));
}

#[test]
fn figures_are_reported_as_events_when_they_change() {
    let mut f = fixture(config(DialMode::Progressive), numbers(1));
    let mut figures = 0;
    while let Some(e) = f.c.poll_event() {
        if let CampaignEvent::Figures(fig) = e {
            figures += 1;
            assert_eq!(fig.contacts, 1);
        }
    }
    assert_eq!(figures, 1, "coalesced");
    assert!(f.c.poll_event().is_none());
    f.c.start(t0()).unwrap();
    assert!(
        matches!(f.c.poll_event(), Some(CampaignEvent::Figures(fig)) if fig.state == RunState::Running)
    );
}

#[test]
fn predictive_stops_counting_a_dial_connected_to_its_agent_as_in_flight() {
    // Two agents, no abandon history (no room: dial only for ready agents). Both dials
    // reach persons; one connects to agent a. Before the fix, the connected call still
    // counted as a call in flight that might bring a person, so when b was ready again
    // nothing was dialed until every connected call had ended.
    let mut cfg = config(DialMode::Predictive);
    cfg.window = crate::dialer::window::CallingWindow::new([true; 7], 0, 1440).unwrap();
    let mut f = fixture(cfg, numbers(5));
    f.c.handle_agents(t0(), &ready(&["a", "b"]));
    f.c.start(t0()).unwrap();
    let d = f.dial_all(t0());
    assert_eq!(d.len(), 2, "one dial per ready agent without history");
    // The first person is connected to a (a busy), the second one is a busy line.
    f.c.handle_agent(
        at(5),
        &AgentView {
            id: "a".into(),
            availability: Availability::Busy,
        },
    );
    f.c.handle_settled(d[0].attempt);
    f.c.handle_result(at(5), d[1].attempt, CallResult::Busy)
        .unwrap();
    // b is ready and nothing else may bring a person: one dial for b.
    let again = f.dial_all(at(5));
    assert_eq!(again.len(), 1, "a dial for the ready agent b");
    assert_eq!(
        f.c.figures().in_flight,
        2,
        "the connected call still holds a line"
    );
    // Unsettled, the new dial counts: nothing more for b.
    assert!(f.dial_all(at(6)).is_empty());
    // Settling an unknown or finished attempt changes nothing.
    f.c.handle_settled(d[1].attempt);
    f.c.handle_settled(999);
    assert!(f.dial_all(at(7)).is_empty());
}

#[test]
fn an_abandon_counts_in_the_window_when_it_happens_and_once() {
    let mut cfg = config(DialMode::Predictive);
    cfg.window = crate::dialer::window::CallingWindow::new([true; 7], 0, 1440).unwrap();
    let mut f = fixture(cfg, numbers(3));
    f.c.handle_agents(t0(), &ready(&["a", "b"]));
    f.c.start(t0()).unwrap();
    let d = f.dial_all(t0());
    assert_eq!(d.len(), 2);
    // The first person reaches a; the second one is left without an agent at 4 s:
    // the window has it at once (before the safe-harbor prompt ends, ~11 s later).
    f.c.handle_settled(d[0].attempt);
    f.c.handle_result(
        at(3),
        d[0].attempt,
        CallResult::Connected {
            agent: "a".into(),
            amd: Some(AmdOutcome::Human),
        },
    )
    .unwrap();
    assert_eq!(f.c.figures().abandon_rate, 0.0);
    f.c.handle_abandoning(at(4), d[1].attempt);
    f.c.handle_abandoning(at(5), d[1].attempt);
    assert!((f.c.figures().abandon_rate - 0.5).abs() < 1e-9, "1 of 2");
    assert_eq!(
        f.c.figures().abandoned,
        0,
        "the attempt's outcome comes at its end"
    );
    f.c.handle_result(
        at(15),
        d[1].attempt,
        CallResult::Abandoned {
            amd: Some(AmdOutcome::Human),
        },
    )
    .unwrap();
    let fig = f.c.figures();
    assert_eq!((fig.abandoned, fig.human), (1, 1));
    assert!((fig.abandon_rate - 0.5).abs() < 1e-9, "counted once");
    // Abandoning an attempt that is not in progress changes nothing.
    f.c.handle_abandoning(at(16), d[1].attempt);
    assert!((f.c.figures().abandon_rate - 0.5).abs() < 1e-9);
}

/// A wall-clock time given in RFC 3339 with an offset.
fn wall(s: &str) -> SystemTime {
    let ts: Timestamp = s.parse().unwrap();
    UNIX_EPOCH + Duration::from_millis(ts.as_millisecond() as u64)
}

/// A progressive campaign in New York whose calling window is always open.
fn new_york() -> CampaignConfig {
    let mut cfg = config(DialMode::Progressive);
    cfg.timezone = TimeZone::get("America/New_York").unwrap();
    cfg.window = crate::dialer::window::CallingWindow::new([true; 7], 0, 1440).unwrap();
    cfg
}

fn today(f: &CampaignFigures) -> (&str, u64, u64, u64, u64, u64) {
    let t = &f.today;
    (
        t.day.as_str(),
        t.dialed,
        t.answered,
        t.human,
        t.machine,
        t.abandoned,
    )
}

#[test]
fn todays_figures_start_again_at_the_campaigns_local_midnight_and_survive_a_restart() {
    let cfg = Arc::new(new_york());
    let store = Arc::new(MemoryStore::default());
    // 19:50 in New York on 1 June = 23:50 UTC.
    let t = wall("2026-06-01T19:50:00-04:00");
    let mut c = Campaign::open(cfg.clone(), store.clone(), t).unwrap();
    c.load_contacts(t, numbers(5)).unwrap();
    c.handle_agents(t, &ready(&["a"]));
    c.start(t).unwrap();
    let dnc = DncList::default();
    let d = c.poll_dial(t, &dnc).unwrap().unwrap();
    // 20:10 in New York: past midnight UTC, not in New York: the same day.
    let t = wall("2026-06-01T20:10:00-04:00");
    c.handle_result(
        t,
        d.attempt,
        CallResult::Connected {
            agent: "a".into(),
            amd: None,
        },
    )
    .unwrap();
    let d = c.poll_dial(t, &dnc).unwrap().unwrap();
    c.handle_result(t, d.attempt, CallResult::Machine { message_left: true })
        .unwrap();
    assert_eq!(today(&c.figures()), ("2026-06-01", 2, 2, 1, 1, 0));

    // A restart the same evening keeps today's counts.
    drop(c);
    let t = wall("2026-06-01T23:59:00-04:00");
    let mut c = Campaign::open(cfg.clone(), store.clone(), t).unwrap();
    c.handle_agents(t, &ready(&["a"]));
    assert_eq!(today(&c.figures()), ("2026-06-01", 2, 2, 1, 1, 0));
    let d = c.poll_dial(t, &dnc).unwrap().unwrap();
    assert_eq!(today(&c.figures()).1, 3);

    // Midnight in New York: a new day, even before anything happens in it ...
    while c.poll_event().is_some() {}
    let t = wall("2026-06-02T00:00:30-04:00");
    assert!(c.poll_dial(t, &dnc).unwrap().is_none(), "a is reserved");
    assert_eq!(today(&c.figures()), ("2026-06-02", 0, 0, 0, 0, 0));
    // ... and the new day's figures are published.
    match c.poll_event() {
        Some(CampaignEvent::Figures(f)) => assert_eq!(f.today.day, "2026-06-02"),
        other => panic!("no figures at midnight: {other:?}"),
    }
    // ... and the dial placed before midnight is counted when it ends, today.
    c.handle_result(t, d.attempt, CallResult::Abandoned { amd: None })
        .unwrap();
    let f = c.figures();
    assert_eq!(today(&f), ("2026-06-02", 0, 1, 0, 0, 1));
    // The cumulative figures go on.
    assert_eq!((f.dialed, f.answered, f.human, f.abandoned), (3, 3, 1, 1));

    // A restart the next day starts from the stored day; one a day later from zero.
    drop(c);
    let t = wall("2026-06-02T08:00:00-04:00");
    let c = Campaign::open(cfg.clone(), store.clone(), t).unwrap();
    assert_eq!(today(&c.figures()), ("2026-06-02", 0, 1, 0, 0, 1));
    drop(c);
    let t = wall("2026-06-03T00:00:01-04:00");
    let c = Campaign::open(cfg, store, t).unwrap();
    assert_eq!(today(&c.figures()), ("2026-06-03", 0, 0, 0, 0, 0));
    assert_eq!(c.figures().dialed, 3);
}

#[test]
fn a_reported_false_positive_counts_as_abandoned_in_the_window_once() {
    let cfg = Arc::new(config(DialMode::Progressive));
    let mut f = fixture((*cfg).clone(), numbers(3));
    f.c.handle_agents(t0(), &ready(&["a", "b", "c"]));
    f.c.start(t0()).unwrap();
    let d = f.dial_all(t0());
    assert_eq!(d.len(), 3);
    f.c.handle_result(
        at(20),
        d[0].attempt,
        CallResult::Connected {
            agent: "a".into(),
            amd: Some(AmdOutcome::Human),
        },
    )
    .unwrap();
    f.c.handle_result(
        at(20),
        d[1].attempt,
        CallResult::Machine {
            message_left: false,
        },
    )
    .unwrap();
    let before = f.c.figures();
    assert_eq!(before.abandon_rate, 0.0);
    // A person, not a machine: refused. Still ringing: refused. Unknown: refused.
    assert!(matches!(
        f.c.handle_false_positive(at(30), d[0].attempt),
        Err(CampaignError::NotMachine {
            outcome: "human",
            ..
        })
    ));
    assert!(matches!(
        f.c.handle_false_positive(at(30), d[2].attempt),
        Err(CampaignError::NotMachine {
            outcome: "in progress",
            ..
        })
    ));
    assert!(matches!(
        f.c.handle_false_positive(at(30), 999),
        Err(CampaignError::UnknownAttempt { .. })
    ));
    assert!(f.c.handle_false_positive(at(60), d[1].attempt).unwrap());
    assert!(!f.c.handle_false_positive(at(61), d[1].attempt).unwrap());
    let fig = f.c.figures();
    assert_eq!(
        (
            fig.machine,
            fig.abandoned,
            fig.amd_false_positives,
            fig.today.abandoned
        ),
        (1, 1, 1, 1)
    );
    // One person reached, one abandoned: 50 % in the window the pacing keeps.
    assert!(
        (fig.abandon_rate - 0.5).abs() < 1e-9,
        "{}",
        fig.abandon_rate
    );
    let a = f.c.attempt(d[1].attempt).unwrap();
    assert!(a.false_positive);
    assert_eq!(a.false_positive_ms, Some(unix_ms(at(60))));
    assert_eq!(
        f.c.contact(d[1].contact).unwrap().last_abandon_ms,
        Some(unix_ms(at(60)))
    );

    // After a restart: counted once, still in the window.
    drop(f.c);
    let c = Campaign::open(cfg, f.store.clone(), at(120)).unwrap();
    let fig = c.figures();
    assert_eq!((fig.abandoned, fig.amd_false_positives), (1, 1));
    assert!(
        (fig.abandon_rate - 0.5).abs() < 1e-9,
        "{}",
        fig.abandon_rate
    );
}

#[test]
fn a_later_disposition_replaces_the_earlier_one_and_an_empty_one_keeps_it() {
    let mut f = fixture(config(DialMode::Progressive), numbers(1));
    f.c.handle_agents(t0(), &ready(&["a"]));
    f.c.start(t0()).unwrap();
    let d = f.dial_all(t0());
    f.c.handle_result(
        at(20),
        d[0].attempt,
        CallResult::Connected {
            agent: "a".into(),
            amd: None,
        },
    )
    .unwrap();
    let got = |c: &Campaign| {
        let a = c.attempt(d[0].attempt).unwrap();
        (a.disposition, a.note)
    };
    f.c.handle_disposition(d[0].attempt, "sale", "gold")
        .unwrap();
    f.c.handle_disposition(d[0].attempt, "callback", "")
        .unwrap();
    assert_eq!(got(&f.c), (Some("callback".into()), None));
    // A wrap-up ended without a disposition does not erase it.
    f.c.handle_disposition(d[0].attempt, "", "").unwrap();
    assert_eq!(got(&f.c), (Some("callback".into()), None));
}

#[test]
fn recent_attempts_are_newest_first_per_contact_and_limited() {
    let mut cfg = config(DialMode::Progressive);
    cfg.retries.busy = RetryRule {
        delay: Duration::from_secs(60),
        max: 5,
    };
    let mut f = fixture(cfg, numbers(2));
    f.c.handle_agents(t0(), &ready(&["a", "b"]));
    f.c.start(t0()).unwrap();
    let mut ids = Vec::new();
    for round in 0..3u64 {
        let now = at(round * 100);
        let d = f.dial_all(now);
        assert_eq!(d.len(), 2, "round {round}");
        for x in &d {
            ids.push((x.attempt, x.contact));
            f.c.handle_result(now + Duration::from_secs(5), x.attempt, CallResult::Busy)
                .unwrap();
        }
    }
    let all = f.c.recent_attempts(None, 100).unwrap();
    let mut want: Vec<u64> = ids.iter().map(|(a, _)| *a).collect();
    want.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(all.iter().map(|a| a.id).collect::<Vec<_>>(), want);
    let two = f.c.recent_attempts(None, 2).unwrap();
    assert_eq!(two.iter().map(|a| a.id).collect::<Vec<_>>(), want[..2]);
    let of_1 = f.c.recent_attempts(Some(1), 10).unwrap();
    assert_eq!(of_1.len(), 3);
    assert!(of_1
        .iter()
        .all(|a| a.contact == 1 && a.outcome == Some(Outcome::Busy)));
    assert!(of_1.windows(2).all(|w| w[0].id > w[1].id));
}

#[test]
fn a_daylight_saving_day_is_one_day_of_its_own_length() {
    // New York springs forward on 8 March 2026: that local day has 23 hours.
    let cfg = Arc::new(new_york());
    let store = Arc::new(MemoryStore::default());
    let t = wall("2026-03-08T00:30:00-05:00");
    let mut c = Campaign::open(cfg, store, t).unwrap();
    let (day, start, end) = c.day_at(unix_ms(t));
    assert_eq!(day, "2026-03-08");
    assert_eq!(start, unix_ms(wall("2026-03-08T00:00:00-05:00")));
    assert_eq!(end, unix_ms(wall("2026-03-09T00:00:00-04:00")));
    assert_eq!(end - start, 23 * 3600 * 1000);
    c.load_contacts(t, numbers(1)).unwrap();
    c.handle_agents(t, &ready(&["a"]));
    c.start(t).unwrap();
    let dnc = DncList::default();
    assert!(c.poll_dial(t, &dnc).unwrap().is_some());
    // 23:59 local (after the clocks moved): still the 8th; 00:00 the 9th.
    let late = wall("2026-03-08T23:59:00-04:00");
    assert!(c.poll_dial(late, &dnc).unwrap().is_none());
    assert_eq!(today(&c.figures()), ("2026-03-08", 1, 0, 0, 0, 0));
    let next = wall("2026-03-09T00:00:00-04:00");
    assert!(c.poll_dial(next, &dnc).unwrap().is_none());
    assert_eq!(today(&c.figures()), ("2026-03-09", 0, 0, 0, 0, 0));
}
