//! Dispositions without wrap-up, end to end: a progressive campaign whose queue has no
//! wrap-up time (the agent is ready again as soon as the call ends, so `EndWrapUp`
//! never applies). SIPp is the contact (answers, talks, hangs up) and alice's phone;
//! after the hang-up alice runs `caruso-agent agent disposition sale`: the disposition
//! is stored with the contact attempt (`caruso-agent campaign attempts`), a second one
//! replaces it, a call that is not hers is refused with NOT_FOUND, the attempt cannot
//! be reported as an AMD false positive (a person was reached), and today's figures
//! count the dial.

use std::time::{Duration, Instant};

use caruso_e2e::acd::{
    campaign, campaign_config, caruso_agent as run, caruso_agent_ok as ok, status_value as value,
};
use caruso_e2e::*;

/// The only attempt line of `campaign attempts demo`, once `want` is in it.
fn attempt_with(server: &Server, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = campaign(server, &["attempts", "demo"]);
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines.len(), 1, "one attempt:\n{list}");
        if lines[0].contains(want) {
            return lines[0].to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no {want:?} in {list}\n{}",
            server.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_agent_without_wrap_up_sets_the_disposition_of_the_campaign_call_after_it() {
    require_isolated_network();
    let dir = TempDir::new("disposition");
    let dnc_file = dir.path().join("dnc.txt");
    std::fs::write(&dnc_file, "").unwrap();
    let ports = Ports::block(20);
    let (contact_port, phone_port) = (ports.peer(1), ports.peer(2));
    let server = Server::start(campaign_config(ports, &dnc_file, "wrap_up_s = 0"));
    let csv = server.dir().join("one.csv");
    std::fs::write(&csv, "phone,name\n601000001,Anna\n").unwrap();
    campaign(&server, &["load", "demo", csv.to_str().unwrap()]);

    // Nothing answered yet: nothing to dispose.
    caruso_e2e::acd::login_ready(&server, "tok-alice");
    let early = run(
        &server,
        &["agent", "--token", "tok-alice", "disposition", "sale"],
    );
    assert!(!early.status.success());
    let err = String::from_utf8_lossy(&early.stderr);
    assert!(err.contains("NOT_FOUND"), "{err}");

    // The contact (answers, talks 6 s, hangs up) and alice's phone (answers).
    caruso_e2e::acd::one_campaign_dial(&server, contact_port, phone_port);

    // No wrap-up time: alice is ready again; the attempt has no disposition yet.
    caruso_e2e::acd::wait_state(&server, "tok-alice", "ready", Duration::from_secs(10));
    let line = attempt_with(&server, "outcome=human");
    assert!(line.contains("agent=alice disposition= "), "{line}");

    let out = ok(
        &server,
        &[
            "agent",
            "--token",
            "tok-alice",
            "disposition",
            "sale",
            "--note",
            "gold plan",
        ],
    );
    let call = caruso_e2e::acd::line_field(out.trim(), "call").expect("call=");
    assert!(out.starts_with("disposition=sale call="), "{out}");
    let line = attempt_with(&server, "disposition=sale");
    assert!(line.contains("note=\"gold plan\""), "{line}");
    assert!(line.contains("name=Anna number=+48601000001"), "{line}");

    // A second disposition for the same call (named this time) replaces the first.
    ok(
        &server,
        &[
            "agent",
            "--token",
            "tok-alice",
            "disposition",
            "callback",
            "--call",
            &call,
        ],
    );
    let line = attempt_with(&server, "disposition=callback");
    assert!(line.contains("note= "), "the note was replaced too: {line}");
    // A call that is not one of alice's recent ones.
    let other = run(
        &server,
        &[
            "agent",
            "--token",
            "tok-alice",
            "disposition",
            "sale",
            "--call",
            "999999",
        ],
    );
    assert!(!other.status.success());
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(
        err.contains("NOT_FOUND") && err.contains("999999") && err.contains(&call),
        "{err}"
    );
    assert_eq!(alice_state(&server), "ready", "no state change");

    // A person was reached: not an AMD false positive.
    let attempt = caruso_e2e::acd::line_field(&line, "attempt").expect("attempt=");
    let fp = run(
        &server,
        &[
            "campaign",
            "--token",
            SUPERVISOR_TOKEN,
            "false-positive",
            "demo",
            &attempt,
        ],
    );
    assert!(!fp.status.success());
    let err = String::from_utf8_lossy(&fp.stderr);
    assert!(
        err.contains("FailedPrecondition") && err.contains("human"),
        "{err}"
    );

    // Today's figures (the campaign's UTC day) count the dial.
    let s = campaign(&server, &["status", "demo"]);
    assert_eq!(value(&s, "today_dialed").as_deref(), Some("1"), "{s}");
    assert_eq!(value(&s, "today_human").as_deref(), Some("1"), "{s}");
    assert_eq!(value(&s, "today_abandoned").as_deref(), Some("0"), "{s}");
    assert_eq!(value(&s, "today").map(|d| d.len()), Some(10), "{s}");
}

fn alice_state(server: &Server) -> String {
    let out = ok(server, &["agent", "--token", "tok-alice", "status"]);
    caruso_e2e::acd::line_field(out.trim(), "state").unwrap_or_default()
}
