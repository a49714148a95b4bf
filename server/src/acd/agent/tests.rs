//! Unit tests per transition, persistence, and the property test of the issue.

use super::*;
use crate::acd::VoiceContact;
use crate::store::MemoryStore;

const DAY: u32 = 20_000;

fn config(id: &str, max_no_answer: u32) -> AgentConfig {
    AgentConfig {
        id: id.into(),
        name: id.to_uppercase(),
        skills: vec![Skill {
            name: "english".into(),
            level: 4,
        }],
        token: "secret".into(),
        contact: VoiceContact::Uri(format!("sip:{id}@127.0.0.1")),
        max_no_answer,
    }
}

fn reasons() -> Arc<[String]> {
    Arc::from(vec!["break".to_string(), "lunch".to_string()])
}

fn agent(t0: Instant) -> Agent {
    Agent::new(&config("alice", 3), reasons(), t0, DAY)
}

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Handles `event`, expecting success, and returns the change.
fn ok(a: &mut Agent, now: Instant, event: AgentEvent) -> AgentChange {
    match a.handle(now, event.clone()) {
        Ok(c) => c,
        Err(e) => panic!("{event:?} refused: {e}"),
    }
}

/// Handles `event`, expecting a refusal that leaves the agent exactly as it was.
fn refused(a: &mut Agent, now: Instant, event: AgentEvent) -> AgentError {
    let before = a.clone();
    let err = a
        .handle(now, event.clone())
        .expect_err(&format!("{event:?} accepted in {}", before.state()));
    assert_eq!(*a, before, "refused {event:?} changed the agent");
    err
}

fn not_ready(r: &str) -> AgentEvent {
    AgentEvent::SetNotReady { reason: r.into() }
}

/// An agent in each state (with call 7 where one is held), built by valid events.
fn in_every_state(t0: Instant) -> Vec<Agent> {
    let mut out = vec![agent(t0)];
    let mut a = agent(t0);
    ok(&mut a, t0, AgentEvent::LogIn { ready: true });
    out.push(a.clone());
    ok(&mut a, t0, AgentEvent::Offer(7));
    out.push(a.clone());
    ok(&mut a, t0, AgentEvent::OfferAnswered(7));
    out.push(a.clone());
    ok(
        &mut a,
        t0,
        AgentEvent::CallEnded {
            call: 7,
            wrap_up: s(30),
        },
    );
    out.push(a.clone());
    ok(&mut a, t0, not_ready("lunch"));
    out.push(a);
    out
}

fn kinds_allowing(t0: Instant, event: AgentEvent) -> Vec<StateKind> {
    in_every_state(t0)
        .into_iter()
        .filter_map(|mut a| {
            let before = a.clone();
            match a.handle(t0, event.clone()) {
                Ok(_) => Some(StateKind::of(before.state())),
                Err(_) => {
                    assert_eq!(a, before, "refused {event:?} changed the agent");
                    None
                }
            }
        })
        .collect()
}

#[test]
fn each_event_is_accepted_exactly_in_the_documented_states() {
    use StateKind::*;
    let t0 = Instant::now();
    let table: Vec<(AgentEvent, Vec<StateKind>)> = vec![
        (AgentEvent::LogIn { ready: true }, vec![LoggedOut]),
        (AgentEvent::LogOut, vec![Ready, WrapUp, NotReady]),
        (AgentEvent::SetReady, vec![WrapUp, NotReady]),
        // NotReady("lunch") -> "lunch" again is no change, hence refused.
        (not_ready("lunch"), vec![Ready, WrapUp]),
        (not_ready("break"), vec![Ready, WrapUp, NotReady]),
        (AgentEvent::Offer(8), vec![Ready]),
        (AgentEvent::OfferAnswered(7), vec![Reserved]),
        (
            AgentEvent::OfferMissed {
                call: 7,
                why: MissReason::NoAnswer,
            },
            vec![Reserved],
        ),
        (AgentEvent::OfferCancelled(7), vec![Reserved]),
        (
            AgentEvent::CallEnded {
                call: 7,
                wrap_up: s(5),
            },
            vec![OnCall],
        ),
        (
            AgentEvent::EndWrapUp {
                disposition: None,
                note: None,
            },
            vec![WrapUp],
        ),
        (
            AgentEvent::ForceLogOut,
            vec![Ready, Reserved, OnCall, WrapUp, NotReady],
        ),
        (
            AgentEvent::ForceNotReady {
                reason: "break".into(),
            },
            vec![Ready, Reserved, WrapUp, NotReady],
        ),
    ];
    for (event, allowed) in table {
        assert_eq!(kinds_allowing(t0, event.clone()), allowed, "{event:?}");
    }
}

#[test]
fn log_in_ready_or_not_ready_and_log_out() {
    let t0 = Instant::now();
    let mut a = agent(t0);
    let c = ok(&mut a, t0 + s(1), AgentEvent::LogIn { ready: false });
    assert_eq!(c.from, AgentState::LoggedOut);
    assert_eq!(c.to, AgentState::NotReady(REASON_LOGIN.into()));
    assert_eq!(c.reason, ChangeReason::Client);
    assert_eq!(c.agent.as_ref(), "alice");
    assert_eq!(c.at, t0 + s(1));
    assert_eq!(c.duration, s(1));
    let err = refused(&mut a, t0 + s(2), AgentEvent::LogIn { ready: true });
    assert_eq!(
        err.to_string(),
        "agent alice: log_in is not allowed while not ready (login)"
    );
    let c = ok(&mut a, t0 + s(3), AgentEvent::SetReady);
    assert_eq!(c.to, AgentState::Ready);
    assert_eq!(a.ready_since(), t0 + s(3));
    let c = ok(&mut a, t0 + s(4), AgentEvent::LogOut);
    assert_eq!((c.from, c.to), (AgentState::Ready, AgentState::LoggedOut));
    refused(&mut a, t0 + s(5), AgentEvent::LogOut);
}

#[test]
fn client_cannot_log_out_during_a_call() {
    let t0 = Instant::now();
    let mut a = agent(t0);
    ok(&mut a, t0, AgentEvent::LogIn { ready: true });
    ok(&mut a, t0, AgentEvent::Offer(1));
    let err = refused(&mut a, t0, AgentEvent::LogOut);
    assert!(err.to_string().contains("reserved for call 1"), "{err}");
    ok(&mut a, t0, AgentEvent::OfferAnswered(1));
    let err = refused(&mut a, t0, AgentEvent::LogOut);
    assert!(err.to_string().contains("on call 1"), "{err}");
    refused(&mut a, t0, not_ready("lunch"));
    refused(&mut a, t0, AgentEvent::SetReady);
}

#[test]
fn not_ready_reason_must_be_configured() {
    let t0 = Instant::now();
    let mut a = agent(t0);
    ok(&mut a, t0, AgentEvent::LogIn { ready: true });
    let err = refused(&mut a, t0, not_ready("nap"));
    assert_eq!(
        err,
        AgentError::UnknownReason {
            agent: "alice".into(),
            reason: "nap".into(),
            allowed: vec!["break".into(), "lunch".into()],
        }
    );
    assert!(err.to_string().contains("allowed: break, lunch"), "{err}");
    refused(
        &mut a,
        t0,
        AgentEvent::ForceNotReady {
            reason: "nap".into(),
        },
    );
    let c = ok(&mut a, t0 + s(1), not_ready("lunch"));
    assert_eq!(c.to, AgentState::NotReady("lunch".into()));
    assert_eq!(a.last_reason(), Some("lunch"));
    ok(&mut a, t0 + s(2), not_ready("break"));
    ok(&mut a, t0 + s(3), AgentEvent::SetReady);
    assert_eq!(
        a.last_reason(),
        Some("break"),
        "last reason kept after ready"
    );
    // Reloaded reasons apply.
    a.set_reasons(Arc::from(vec!["nap".to_string()]));
    ok(&mut a, t0 + s(4), not_ready("nap"));
}

#[test]
fn offer_answer_and_wrong_call_refused() {
    let t0 = Instant::now();
    let mut a = agent(t0);
    refused(&mut a, t0, AgentEvent::Offer(5));
    ok(&mut a, t0, AgentEvent::LogIn { ready: true });
    let c = ok(&mut a, t0 + s(1), AgentEvent::Offer(5));
    assert_eq!(c.to, AgentState::Reserved(5));
    assert_eq!(c.reason, ChangeReason::Offered);
    assert_eq!(c.released_call(), None);
    assert_eq!(a.call(), Some(5));
    assert!(!a.view(t0 + s(1)).available);
    refused(&mut a, t0 + s(1), AgentEvent::Offer(6));
    let err = refused(&mut a, t0 + s(1), AgentEvent::OfferAnswered(6));
    assert_eq!(
        err.to_string(),
        "agent alice: offer_answered names call 6 but the agent is reserved for call 5"
    );
    refused(
        &mut a,
        t0 + s(1),
        AgentEvent::CallEnded {
            call: 5,
            wrap_up: Duration::ZERO,
        },
    );
    let c = ok(&mut a, t0 + s(3), AgentEvent::OfferAnswered(5));
    assert_eq!(c.released_call(), None);
    assert_eq!(
        (c.from, c.to),
        (AgentState::Reserved(5), AgentState::OnCall(5))
    );
    assert_eq!(a.calls_answered(), 1);
    refused(&mut a, t0 + s(3), AgentEvent::OfferCancelled(5));
    refused(
        &mut a,
        t0 + s(3),
        AgentEvent::CallEnded {
            call: 4,
            wrap_up: Duration::ZERO,
        },
    );
    let c = ok(
        &mut a,
        t0 + s(63),
        AgentEvent::CallEnded {
            call: 5,
            wrap_up: Duration::ZERO,
        },
    );
    assert_eq!(c.to, AgentState::Ready, "zero wrap-up: straight to ready");
    assert_eq!(c.released_call(), Some(5));
    assert_eq!(a.poll_timeout(), None);
    let v = a.view(t0 + s(70));
    assert!(v.available);
    assert_eq!(v.talk_time, s(60));
    assert_eq!(v.calls_answered, 1);
    assert_eq!(v.ready_since, t0 + s(63));
    assert_eq!(a.time_in(StateKind::Reserved, t0 + s(70)), s(2));
    assert_eq!(a.time_in(StateKind::Ready, t0 + s(70)), s(1) + s(7));
}

fn miss(a: &mut Agent, now: Instant, call: CallKey, why: MissReason) -> AgentChange {
    ok(a, now, AgentEvent::Offer(call));
    ok(a, now, AgentEvent::OfferMissed { call, why })
}

#[test]
fn consecutive_misses_of_any_kind_lead_to_not_ready_no_answer() {
    let t0 = Instant::now();
    let mut a = agent(t0);
    ok(&mut a, t0, AgentEvent::LogIn { ready: true });
    let c = miss(&mut a, t0 + s(1), 1, MissReason::NoAnswer);
    assert_eq!(c.to, AgentState::Ready);
    assert_eq!(c.reason, ChangeReason::Missed(MissReason::NoAnswer));
    assert_eq!(c.released_call(), Some(1));
    assert_eq!(
        a.ready_since(),
        t0 + s(1),
        "a miss sends the agent to the back"
    );
    assert_eq!(a.missed_in_row(), 1);
    miss(&mut a, t0 + s(2), 2, MissReason::Rejected);
    assert_eq!(a.missed_in_row(), 2);
    let c = miss(&mut a, t0 + s(3), 3, MissReason::Unregistered);
    assert_eq!(c.to, AgentState::NotReady(REASON_NO_ANSWER.into()));
    assert_eq!(c.reason, ChangeReason::Missed(MissReason::Unregistered));
    assert_eq!(a.missed_in_row(), 0);
    assert_eq!(a.last_reason(), Some(REASON_NO_ANSWER));
    refused(&mut a, t0 + s(3), AgentEvent::Offer(4));
    // Back to ready: a fresh count of three.
    ok(&mut a, t0 + s(4), AgentEvent::SetReady);
    miss(&mut a, t0 + s(5), 5, MissReason::NoAnswer);
    miss(&mut a, t0 + s(6), 6, MissReason::NoAnswer);
    assert_eq!(*a.state(), AgentState::Ready);
}

#[test]
fn an_answer_resets_the_miss_count_and_a_cancel_does_not_count() {
    let t0 = Instant::now();
    let mut a = agent(t0);
    ok(&mut a, t0, AgentEvent::LogIn { ready: true });
    miss(&mut a, t0, 1, MissReason::NoAnswer);
    miss(&mut a, t0, 2, MissReason::NoAnswer);
    ok(&mut a, t0, AgentEvent::Offer(3));
    ok(&mut a, t0, AgentEvent::OfferCancelled(3));
    assert_eq!(a.missed_in_row(), 2, "a cancelled offer is not a miss");
    ok(&mut a, t0, AgentEvent::Offer(4));
    ok(&mut a, t0, AgentEvent::OfferAnswered(4));
    assert_eq!(a.missed_in_row(), 0);
    ok(
        &mut a,
        t0,
        AgentEvent::CallEnded {
            call: 4,
            wrap_up: Duration::ZERO,
        },
    );
    miss(&mut a, t0, 5, MissReason::NoAnswer);
    miss(&mut a, t0, 6, MissReason::NoAnswer);
    assert_eq!(*a.state(), AgentState::Ready);
    miss(&mut a, t0, 7, MissReason::NoAnswer);
    assert_eq!(*a.state(), AgentState::NotReady(REASON_NO_ANSWER.into()));
}

#[test]
fn max_no_answer_zero_never_sends_not_ready_and_config_reload_applies() {
    let t0 = Instant::now();
    let mut a = Agent::new(&config("bob", 0), reasons(), t0, DAY);
    ok(&mut a, t0, AgentEvent::LogIn { ready: true });
    for call in 0..10 {
        miss(&mut a, t0, call, MissReason::Rejected);
    }
    assert_eq!(*a.state(), AgentState::Ready);
    a.set_config(&config("bob", 1));
    miss(&mut a, t0, 11, MissReason::Rejected);
    assert_eq!(*a.state(), AgentState::NotReady(REASON_NO_ANSWER.into()));
}

#[test]
fn cancelled_offer_keeps_the_idle_position() {
    let t0 = Instant::now();
    let mut a = agent(t0);
    ok(&mut a, t0 + s(1), AgentEvent::LogIn { ready: true });
    ok(&mut a, t0 + s(10), AgentEvent::Offer(1));
    let c = ok(&mut a, t0 + s(12), AgentEvent::OfferCancelled(1));
    assert_eq!(c.reason, ChangeReason::Cancelled);
    assert_eq!(c.released_call(), Some(1));
    assert_eq!(a.ready_since(), t0 + s(1));
    assert_eq!(a.view(t0 + s(12)).ready_since, t0 + s(1));
}

fn on_call(t0: Instant, call: CallKey) -> Agent {
    let mut a = agent(t0);
    ok(&mut a, t0, AgentEvent::LogIn { ready: true });
    ok(&mut a, t0, AgentEvent::Offer(call));
    ok(&mut a, t0, AgentEvent::OfferAnswered(call));
    a
}

#[test]
fn wrap_up_ends_on_its_deadline() {
    let t0 = Instant::now();
    let mut a = on_call(t0, 9);
    let c = ok(
        &mut a,
        t0 + s(100),
        AgentEvent::CallEnded {
            call: 9,
            wrap_up: s(30),
        },
    );
    assert_eq!((c.from, c.to), (AgentState::OnCall(9), AgentState::WrapUp));
    assert_eq!(c.reason, ChangeReason::CallEnded);
    assert_eq!(c.duration, s(100));
    assert_eq!(a.poll_timeout(), Some(t0 + s(130)));
    assert!(!a.view(t0 + s(110)).available);
    assert_eq!(a.handle_timeout(t0 + s(129)), None);
    assert_eq!(*a.state(), AgentState::WrapUp);
    let c = a.handle_timeout(t0 + s(131)).expect("deadline passed");
    assert_eq!((c.from, c.to), (AgentState::WrapUp, AgentState::Ready));
    assert_eq!(c.reason, ChangeReason::WrapUpTimeout);
    assert_eq!(a.poll_timeout(), None);
    assert_eq!(a.handle_timeout(t0 + s(200)), None);
    assert_eq!(a.time_in(StateKind::WrapUp, t0 + s(200)), s(31));
    assert_eq!(a.ready_since(), t0 + s(131));
}

#[test]
fn wrap_up_ends_early_with_a_disposition() {
    let t0 = Instant::now();
    let mut a = on_call(t0, 9);
    ok(
        &mut a,
        t0 + s(10),
        AgentEvent::CallEnded {
            call: 9,
            wrap_up: s(30),
        },
    );
    let c = ok(
        &mut a,
        t0 + s(15),
        AgentEvent::EndWrapUp {
            disposition: Some("sale".into()),
            note: Some("two units".into()),
        },
    );
    assert_eq!(c.to, AgentState::Ready);
    assert_eq!(
        c.reason,
        ChangeReason::WrapUpEnded {
            disposition: Some("sale".into()),
            note: Some("two units".into()),
        }
    );
    assert_eq!(
        a.poll_timeout(),
        None,
        "no stale deadline after an early end"
    );
    assert_eq!(a.handle_timeout(t0 + s(40)), None);
    assert_eq!(*a.state(), AgentState::Ready);
    refused(
        &mut a,
        t0 + s(16),
        AgentEvent::EndWrapUp {
            disposition: None,
            note: None,
        },
    );
}

#[test]
fn wrap_up_can_turn_into_not_ready_or_log_out() {
    let t0 = Instant::now();
    let mut a = on_call(t0, 9);
    ok(
        &mut a,
        t0,
        AgentEvent::CallEnded {
            call: 9,
            wrap_up: s(30),
        },
    );
    ok(&mut a, t0 + s(5), not_ready("break"));
    assert_eq!(a.poll_timeout(), None);
    assert_eq!(a.handle_timeout(t0 + s(60)), None);
    assert_eq!(*a.state(), AgentState::NotReady("break".into()));
}

#[test]
fn huge_wrap_up_does_not_panic_and_waits_for_the_client() {
    let t0 = Instant::now();
    let mut a = on_call(t0, 9);
    ok(
        &mut a,
        t0,
        AgentEvent::CallEnded {
            call: 9,
            wrap_up: Duration::MAX,
        },
    );
    assert_eq!(*a.state(), AgentState::WrapUp);
    assert_eq!(a.poll_timeout(), None);
    ok(&mut a, t0, AgentEvent::SetReady);
}

#[test]
fn supervisor_forces_out_of_calls_and_the_change_names_the_call() {
    let t0 = Instant::now();
    let mut a = on_call(t0, 3);
    refused(
        &mut a,
        t0,
        AgentEvent::ForceNotReady {
            reason: "break".into(),
        },
    );
    let c = ok(&mut a, t0 + s(20), AgentEvent::ForceLogOut);
    assert_eq!(
        (c.from.clone(), c.to.clone()),
        (AgentState::OnCall(3), AgentState::LoggedOut)
    );
    assert_eq!(c.reason, ChangeReason::Supervisor);
    assert_eq!(c.released_call(), Some(3));
    assert_eq!(a.talk_time(t0 + s(99)), s(20));
    refused(&mut a, t0, AgentEvent::ForceLogOut);

    let mut b = agent(t0);
    ok(&mut b, t0, AgentEvent::LogIn { ready: true });
    ok(&mut b, t0, AgentEvent::Offer(4));
    let c = ok(
        &mut b,
        t0,
        AgentEvent::ForceNotReady {
            reason: "break".into(),
        },
    );
    assert_eq!(c.to, AgentState::NotReady("break".into()));
    assert_eq!(c.released_call(), Some(4));
    assert_eq!(b.call(), None);
}

#[test]
fn time_per_state_accumulates_across_visits() {
    let t0 = Instant::now();
    let mut a = agent(t0);
    ok(&mut a, t0 + s(10), AgentEvent::LogIn { ready: true });
    ok(&mut a, t0 + s(20), not_ready("lunch"));
    ok(&mut a, t0 + s(50), AgentEvent::SetReady);
    ok(&mut a, t0 + s(55), not_ready("break"));
    let t = a.times(t0 + s(60));
    assert_eq!(t.logged_out_ms, 10_000);
    assert_eq!(t.ready_ms, 15_000);
    assert_eq!(t.not_ready_ms, 35_000);
    assert_eq!(t.on_call_ms, 0);
}

#[test]
fn roll_day_resets_todays_figures_only() {
    let t0 = Instant::now();
    let mut a = on_call(t0, 1);
    ok(
        &mut a,
        t0 + s(30),
        AgentEvent::CallEnded {
            call: 1,
            wrap_up: Duration::ZERO,
        },
    );
    assert!(!a.roll_day(t0 + s(40), DAY));
    assert_eq!(a.calls_answered(), 1);
    assert!(a.roll_day(t0 + s(40), DAY + 1));
    assert_eq!(a.day(), DAY + 1);
    assert_eq!(a.calls_answered(), 0);
    assert_eq!(a.talk_time(t0 + s(50)), Duration::ZERO);
    assert_eq!(a.time_in(StateKind::Ready, t0 + s(50)), s(10));
    assert_eq!(
        *a.state(),
        AgentState::Ready,
        "the state itself is untouched"
    );
    assert_eq!(a.since(), t0 + s(30));
}

#[test]
fn record_round_trip_through_the_store() {
    let t0 = Instant::now();
    let store = MemoryStore::default();
    let mut a = on_call(t0, 1);
    ok(
        &mut a,
        t0 + s(30),
        AgentEvent::CallEnded {
            call: 1,
            wrap_up: Duration::ZERO,
        },
    );
    ok(&mut a, t0 + s(40), not_ready("lunch"));
    a.save(&store, t0 + s(100), 1_700_000_000_000).unwrap();
    let rec = AgentRecord::load(&store, "alice").unwrap().expect("saved");
    assert_eq!(rec, a.record(t0 + s(100), 1_700_000_000_000));
    assert_eq!(rec.state, StateKind::NotReady);
    assert_eq!(rec.reason.as_deref(), Some("lunch"));
    assert_eq!(rec.times.on_call_ms, 30_000);
    assert_eq!(rec.times.ready_ms, 10_000);
    assert_eq!(rec.times.not_ready_ms, 60_000);
    assert_eq!(AgentRecord::load_all(&store).unwrap(), vec![rec.clone()]);
    assert_eq!(AgentRecord::load(&store, "bob").unwrap(), None);

    // "Restart": a new clock origin, same day.
    let t1 = Instant::now() + s(1000);
    let b = Agent::load(&config("alice", 3), reasons(), &store, t1, DAY).unwrap();
    assert_eq!(*b.state(), AgentState::NotReady("lunch".into()));
    assert_eq!(b.last_reason(), Some("lunch"));
    assert_eq!(b.calls_answered(), 1);
    assert_eq!(b.talk_time(t1), s(30));
    assert_eq!(b.time_in(StateKind::NotReady, t1 + s(5)), s(65));
    assert_eq!(b.since(), t1);

    // Another day: figures start again, the state and reason stay.
    let c = Agent::load(&config("alice", 3), reasons(), &store, t1, DAY + 1).unwrap();
    assert_eq!(*c.state(), AgentState::NotReady("lunch".into()));
    assert_eq!(c.calls_answered(), 0);
    assert_eq!(c.times(t1), StateTimes::default());
    assert_eq!(c.day(), DAY + 1);

    // Nobody saved: a new logged-out agent.
    let d = Agent::load(&config("bob", 3), reasons(), &store, t1, DAY).unwrap();
    assert_eq!(*d.state(), AgentState::LoggedOut);
}

#[test]
fn restart_brings_busy_agents_back_not_ready_restart() {
    let t0 = Instant::now();
    let reserved = {
        let mut a = agent(t0);
        ok(&mut a, t0, AgentEvent::LogIn { ready: true });
        ok(&mut a, t0, AgentEvent::Offer(2));
        a
    };
    let mut wrap = on_call(t0, 3);
    ok(
        &mut wrap,
        t0,
        AgentEvent::CallEnded {
            call: 3,
            wrap_up: s(9),
        },
    );
    let mut ready = agent(t0);
    ok(&mut ready, t0, AgentEvent::LogIn { ready: true });
    let cases = [
        (agent(t0), AgentState::LoggedOut),
        (ready, AgentState::NotReady(REASON_RESTART.into())),
        (reserved, AgentState::NotReady(REASON_RESTART.into())),
        (on_call(t0, 1), AgentState::NotReady(REASON_RESTART.into())),
        (wrap, AgentState::NotReady(REASON_RESTART.into())),
    ];
    for (a, expected) in cases {
        let store = MemoryStore::default();
        a.save(&store, t0 + s(1), 5).unwrap();
        let mut b = Agent::load(&config("alice", 3), reasons(), &store, t0 + s(2), DAY).unwrap();
        assert_eq!(*b.state(), expected, "restored from {}", a.state());
        assert_eq!(b.call(), None);
        assert_eq!(b.poll_timeout(), None);
        // A restored agent takes the ordinary transitions.
        if expected != AgentState::LoggedOut {
            ok(&mut b, t0 + s(3), AgentEvent::SetReady);
            ok(&mut b, t0 + s(3), AgentEvent::Offer(10));
        }
    }
}

#[test]
fn corrupt_records_are_reported() {
    let store = MemoryStore::default();
    store.put(AGENTS_TREE, b"alice", b"\xff").unwrap();
    assert!(matches!(
        AgentRecord::load(&store, "alice"),
        Err(StoreError::Corrupt { .. })
    ));
    store
        .put(
            AGENTS_TREE,
            b"alice",
            b"id = \"alice\"\nstate = \"dancing\"\ncalls_answered = 0\nday = 1\nsaved_ms = 0\n[times]\n",
        )
        .unwrap();
    let err = AgentRecord::load(&store, "alice").unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(AgentRecord::load_all(&store).is_err());
}

/// The property test of the issue: random sequences of events over several agents and a
/// model of the calls, as a simple ACD task would drive them.
mod property {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    const AGENTS: usize = 3;

    #[derive(Debug, Clone)]
    enum Op {
        /// A caller enters the queue.
        Arrive { ring_all: bool },
        /// The task offers a waiting (or ring-all) call to an agent.
        Offer { agent: usize, pick: usize },
        /// The agent's phone answers what it rings for.
        Answer { agent: usize },
        /// The agent's phone misses what it rings for.
        Miss { agent: usize, why: u8 },
        /// A caller hangs up, wherever it is.
        CallerHangup { pick: usize },
        /// The agent hangs up its call.
        AgentHangup { agent: usize, wrap_up_s: u8 },
        /// Agent client actions.
        Client { agent: usize, what: u8 },
        /// Supervisor actions.
        Supervisor { agent: usize, logout: bool },
        /// Events with arbitrary call keys (mostly wrong ones) to an agent.
        Stray { agent: usize, what: u8, call: u64 },
        /// Time passes; timeouts fire.
        Advance { ms: u32 },
        /// The server restarts: records round-trip through the store, calls are gone.
        Restart { new_day: bool },
    }

    fn op() -> impl Strategy<Value = Op> {
        let a = 0..AGENTS;
        prop_oneof![
            2 => any::<bool>().prop_map(|ring_all| Op::Arrive { ring_all }),
            4 => (a.clone(), 0..4usize).prop_map(|(agent, pick)| Op::Offer { agent, pick }),
            2 => a.clone().prop_map(|agent| Op::Answer { agent }),
            2 => (a.clone(), 0..3u8).prop_map(|(agent, why)| Op::Miss { agent, why }),
            2 => (0..4usize).prop_map(|pick| Op::CallerHangup { pick }),
            1 => (a.clone(), 0..20u8).prop_map(|(agent, wrap_up_s)| Op::AgentHangup { agent, wrap_up_s }),
            3 => (a.clone(), 0..7u8).prop_map(|(agent, what)| Op::Client { agent, what }),
            1 => (a.clone(), any::<bool>()).prop_map(|(agent, logout)| Op::Supervisor { agent, logout }),
            2 => (a.clone(), 0..4u8, 0..12u64).prop_map(|(agent, what, call)| Op::Stray { agent, what, call }),
            2 => (0..30_000u32).prop_map(|ms| Op::Advance { ms }),
            1 => any::<bool>().prop_map(|new_day| Op::Restart { new_day }),
        ]
    }

    #[derive(Debug, Default)]
    struct Call {
        ring_all: bool,
        ringing: BTreeSet<usize>,
        connected: Option<usize>,
    }

    struct World {
        now: Instant,
        day: u32,
        wall_ms: u64,
        agents: Vec<Agent>,
        configs: Vec<AgentConfig>,
        calls: BTreeMap<CallKey, Call>,
        next_call: CallKey,
        store: MemoryStore,
    }

    impl World {
        fn new() -> World {
            let now = Instant::now();
            let configs: Vec<AgentConfig> = (0..AGENTS)
                .map(|i| config(&format!("agent{i}"), 2))
                .collect();
            World {
                now,
                day: DAY,
                wall_ms: 1_700_000_000_000,
                agents: configs
                    .iter()
                    .map(|c| Agent::new(c, reasons(), now, DAY))
                    .collect(),
                configs,
                calls: BTreeMap::new(),
                next_call: 1,
                store: MemoryStore::default(),
            }
        }

        /// Sends an event; a refusal must leave the agent untouched; an accepted change
        /// updates the model the way the ACD task would (only from the change record).
        fn send(&mut self, i: usize, event: AgentEvent) -> Result<(), TestCaseError> {
            let before = self.agents[i].clone();
            match self.agents[i].handle(self.now, event.clone()) {
                Ok(change) => {
                    prop_assert_eq!(&change.from, before.state());
                    prop_assert_eq!(&change.to, self.agents[i].state());
                    self.observe(i, change)?;
                }
                Err(_) => prop_assert_eq!(&self.agents[i], &before, "refused {:?}", event),
            }
            Ok(())
        }

        fn observe(&mut self, i: usize, change: AgentChange) -> Result<(), TestCaseError> {
            if let Some(c) = change.released_call() {
                if let AgentState::OnCall(_) = change.from {
                    // The connected call ends with the agent's leg.
                    self.calls.remove(&c);
                } else if let Some(call) = self.calls.get_mut(&c) {
                    call.ringing.remove(&i);
                }
            }
            match change.to {
                AgentState::Reserved(c) => {
                    let call = self.calls.get_mut(&c);
                    prop_assert!(call.is_some(), "reserved for unknown call {}", c);
                    if let Some(call) = call {
                        call.ringing.insert(i);
                    }
                }
                AgentState::OnCall(c) => {
                    let Some(call) = self.calls.get_mut(&c) else {
                        return Err(TestCaseError::fail(format!("on unknown call {c}")));
                    };
                    call.ringing.remove(&i);
                    call.connected = Some(i);
                    // Ring-all: the others stop ringing.
                    let others: Vec<usize> = call.ringing.iter().copied().collect();
                    for j in others {
                        self.send(j, AgentEvent::OfferCancelled(c))?;
                    }
                }
                _ => {}
            }
            Ok(())
        }

        fn nth_call(&self, pick: usize) -> Option<CallKey> {
            let keys: Vec<CallKey> = self.calls.keys().copied().collect();
            (!keys.is_empty()).then(|| keys[pick % keys.len()])
        }

        fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
            match *op {
                Op::Arrive { ring_all } => {
                    self.calls.insert(
                        self.next_call,
                        Call {
                            ring_all,
                            ..Call::default()
                        },
                    );
                    self.next_call += 1;
                }
                Op::Offer { agent, pick } => {
                    // The task offers calls nobody has, or ring-all calls not yet answered.
                    let offerable: Vec<CallKey> = self
                        .calls
                        .iter()
                        .filter(|(_, c)| {
                            c.connected.is_none()
                                && !c.ringing.contains(&agent)
                                && (c.ringing.is_empty() || c.ring_all)
                        })
                        .map(|(k, _)| *k)
                        .collect();
                    if !offerable.is_empty() {
                        let c = offerable[pick % offerable.len()];
                        self.send(agent, AgentEvent::Offer(c))?;
                    }
                }
                Op::Answer { agent } => {
                    if let AgentState::Reserved(c) = *self.agents[agent].state() {
                        self.send(agent, AgentEvent::OfferAnswered(c))?;
                    }
                }
                Op::Miss { agent, why } => {
                    if let AgentState::Reserved(c) = *self.agents[agent].state() {
                        let why = [
                            MissReason::NoAnswer,
                            MissReason::Rejected,
                            MissReason::Unregistered,
                        ][why as usize % 3];
                        self.send(agent, AgentEvent::OfferMissed { call: c, why })?;
                    }
                }
                Op::CallerHangup { pick } => {
                    if let Some(c) = self.nth_call(pick) {
                        let call = &self.calls[&c];
                        let ringing: Vec<usize> = call.ringing.iter().copied().collect();
                        let connected = call.connected;
                        for i in ringing {
                            self.send(i, AgentEvent::OfferCancelled(c))?;
                        }
                        if let Some(i) = connected {
                            self.send(
                                i,
                                AgentEvent::CallEnded {
                                    call: c,
                                    wrap_up: s(10),
                                },
                            )?;
                        }
                        self.calls.remove(&c);
                    }
                }
                Op::AgentHangup { agent, wrap_up_s } => {
                    if let AgentState::OnCall(c) = *self.agents[agent].state() {
                        let wrap_up = s(u64::from(wrap_up_s));
                        self.send(agent, AgentEvent::CallEnded { call: c, wrap_up })?;
                    }
                }
                Op::Client { agent, what } => {
                    let event = match what {
                        0 => AgentEvent::LogIn { ready: true },
                        1 => AgentEvent::LogIn { ready: false },
                        2 => AgentEvent::LogOut,
                        3 => AgentEvent::SetReady,
                        4 => not_ready("lunch"),
                        5 => not_ready("nap"),
                        _ => AgentEvent::EndWrapUp {
                            disposition: Some("ok".into()),
                            note: None,
                        },
                    };
                    self.send(agent, event)?;
                }
                Op::Supervisor { agent, logout } => {
                    let event = if logout {
                        AgentEvent::ForceLogOut
                    } else {
                        AgentEvent::ForceNotReady {
                            reason: "break".into(),
                        }
                    };
                    self.send(agent, event)?;
                }
                Op::Stray { agent, what, call } => {
                    let event = match what {
                        0 => AgentEvent::OfferAnswered(call),
                        1 => AgentEvent::OfferMissed {
                            call,
                            why: MissReason::NoAnswer,
                        },
                        2 => AgentEvent::OfferCancelled(call),
                        _ => AgentEvent::CallEnded {
                            call,
                            wrap_up: s(5),
                        },
                    };
                    self.send(agent, event)?;
                }
                Op::Advance { ms } => {
                    self.now += Duration::from_millis(u64::from(ms));
                    self.wall_ms += u64::from(ms);
                    for i in 0..AGENTS {
                        if let Some(change) = self.agents[i].handle_timeout(self.now) {
                            self.observe(i, change)?;
                        }
                    }
                }
                Op::Restart { new_day } => {
                    for a in &self.agents {
                        a.save(&self.store, self.now, self.wall_ms)
                            .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    }
                    let before: Vec<Agent> = std::mem::take(&mut self.agents);
                    self.calls.clear();
                    let saved_at = self.now;
                    self.now += s(5);
                    if new_day {
                        self.day += 1;
                    }
                    for (cfg, old) in self.configs.iter().zip(&before) {
                        let a = Agent::load(cfg, reasons(), &self.store, self.now, self.day)
                            .map_err(|e| TestCaseError::fail(e.to_string()))?;
                        prop_assert_eq!(
                            *a.state() == AgentState::LoggedOut,
                            *old.state() == AgentState::LoggedOut
                        );
                        if new_day {
                            prop_assert_eq!(a.calls_answered(), 0);
                        } else {
                            prop_assert_eq!(a.calls_answered(), old.calls_answered());
                            prop_assert_eq!(
                                a.times(self.now).on_call_ms,
                                old.times(saved_at).on_call_ms
                            );
                        }
                        self.agents.push(a);
                    }
                }
            }
            Ok(())
        }

        fn check(&self) -> Result<(), TestCaseError> {
            let mut holders: BTreeMap<CallKey, Vec<&AgentState>> = BTreeMap::new();
            for (i, a) in self.agents.iter().enumerate() {
                match *a.state() {
                    AgentState::Reserved(c) => {
                        let call = self.calls.get(&c);
                        prop_assert!(call.is_some(), "agent {} reserved for gone call {}", i, c);
                        if let Some(call) = call {
                            prop_assert!(call.ringing.contains(&i));
                            prop_assert_eq!(call.connected, None);
                        }
                        holders.entry(c).or_default().push(a.state());
                    }
                    AgentState::OnCall(c) => {
                        let call = self.calls.get(&c);
                        prop_assert!(call.is_some(), "agent {} on gone call {}", i, c);
                        if let Some(call) = call {
                            prop_assert_eq!(call.connected, Some(i));
                        }
                        holders.entry(c).or_default().push(a.state());
                    }
                    AgentState::WrapUp => {
                        // Never stuck: wrap-ups in this test always have an end.
                        prop_assert!(a.poll_timeout().is_some());
                    }
                    _ => prop_assert_eq!(a.poll_timeout(), None),
                }
                prop_assert_eq!(a.view(self.now).available, *a.state() == AgentState::Ready);
            }
            for (key, call) in &self.calls {
                for &i in &call.ringing {
                    prop_assert_eq!(self.agents[i].state(), &AgentState::Reserved(*key));
                }
                if let Some(i) = call.connected {
                    prop_assert_eq!(self.agents[i].state(), &AgentState::OnCall(*key));
                }
            }
            for (c, states) in holders {
                let ring_all = self.calls[&c].ring_all;
                let on_call = states
                    .iter()
                    .filter(|s| matches!(s, AgentState::OnCall(_)))
                    .count();
                prop_assert!(on_call <= 1, "call {} connected to {} agents", c, on_call);
                if on_call == 1 || !ring_all {
                    prop_assert_eq!(states.len(), 1, "call {} held by {:?}", c, states);
                }
            }
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn no_agent_holds_a_missing_call_and_no_call_is_held_twice(
            ops in proptest::collection::vec(op(), 1..120)
        ) {
            let mut world = World::new();
            for op in &ops {
                world.apply(op)?;
                world.check()?;
            }
        }
    }
}
