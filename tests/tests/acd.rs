//! The ACD end to end: callers dial a number whose flow has a `queue` node, agents log in
//! with `caruso-agent` (a separate process, gRPC `caruso.v1.Agent`), and caruso rings the
//! agent's phone (a SIPp UAS at a fixed URI, or a SIPp phone that REGISTERs with digest
//! authentication) and bridges the caller to it.
//!
//! - one registered agent: offered/connected events, audio both ways, wrap-up after;
//! - five agents with different skills, two queues, twenty callers (phones at fixed URIs,
//!   and again with phones that REGISTER with digest auth): every call answered,
//!   each by an agent whose skills the call's queue requires;
//! - an agent whose phone never answers: the next agent takes the call, and after
//!   `max_no_answer` misses the agent is not ready with reason "no answer";
//! - a caller hanging up while waiting is counted as abandoned;
//! - no agent logged in: the caller goes to the queue's exit.
//!
//! Blind transfer and hold are in `transfer.rs`; parallel ringing, the exit key, position
//! announcements and caller priority in `acd_ring.rs`.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use caruso_e2e::acd::{self, field, invites_received, line_field, run_dir, sipp_quit};
use caruso_e2e::audio::*;
use caruso_e2e::*;

// ---------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------

/// A server config: `numbers` (number, queue) each through a one-node flow into its
/// queue, then `acd` (the `[acd]` tables and anything else) verbatim.
fn acd_config(ports: Ports, numbers: &[(&str, &str)], acd: &str) -> ServerConfig {
    let mut cfg = ServerConfig::new(ports);
    let mut extra = format!("\n[ivr]\nprompt_dir = \"{}\"\n", prompts_dir().display());
    for (number, queue) in numbers {
        extra.push_str(&format!(
            "\n[[numbers]]\nnumber = \"{number}\"\nflow = \"f{number}\"\n\n\
             [flows.f{number}]\nstart = \"q\"\n\n[flows.f{number}.nodes.q]\n\
             type = \"queue\"\nqueue = \"{queue}\"\n"
        ));
    }
    extra.push_str(acd);
    cfg.extra = extra;
    cfg
}

/// An `[[acd.agents]]` entry whose phone is a fixed SIP URI at `127.0.0.1:port`.
fn uri_agent(id: &str, skills: &str, port: u16, more: &str) -> String {
    format!(
        "\n[[acd.agents]]\nid = \"{id}\"\ntoken = \"tok-{id}\"\nskills = {{ {skills} }}\n\
         phone = {{ uri = \"sip:{id}@127.0.0.1:{port}\" }}\n{more}"
    )
}

// ---------------------------------------------------------------------------------------
// caruso-agent
// ---------------------------------------------------------------------------------------

/// `caruso-agent agent` for agent `id` (whose token is `tok-<id>` in these configs).
fn agent(server: &Server, id: &str, args: &[&str]) -> String {
    acd::agent(server, &tok(id), args)
}

/// The token of agent `id` in these configs.
fn tok(id: &str) -> String {
    format!("tok-{id}")
}

/// Logs agent `id` in and makes it ready.
fn login_ready(server: &Server, id: &str) {
    acd::login_ready(server, &tok(id))
}

/// Polls agent `id`'s state until it is `want` (at most `limit`).
fn wait_state(server: &Server, id: &str, want: &str, limit: Duration) -> String {
    acd::wait_state(server, &tok(id), want, limit)
}

/// A running `caruso-agent agent events ...` process.
struct Events(Child);

impl Events {
    fn start(server: &Server, id: &str, args: &[&str]) -> Self {
        let child = Command::new(agent_binary())
            .args(["--server", &server.grpc_url(), "agent"])
            .args(["--token", &format!("tok-{id}"), "events"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn caruso-agent events");
        Events(child)
    }

    /// Waits for the exit; (exit code, stdout + stderr).
    fn finish(self) -> (Option<i32>, String, String) {
        let out = self
            .0
            .wait_with_output()
            .expect("caruso-agent events output");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

// ---------------------------------------------------------------------------------------
// SIPp helpers
// ---------------------------------------------------------------------------------------

fn metric(server: &Server, name: &str, labels: &[&str]) -> f64 {
    metric_sum(&server.metrics(), name, labels).unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn a_registered_agent_is_offered_the_call_answers_and_talks_then_wraps_up() {
    let ports = Ports::block(60);
    let phone_port = ports.peer(6);
    let cfg = acd_config(
        ports,
        &[("100", "sales")],
        "\n[sip.registrar]\nalgorithms = [\"MD5\"]\n\n\
         [[acd.queues]]\nname = \"sales\"\nskills = { sales = 1 }\nwrap_up_s = 60\n\n\
         [[acd.agents]]\nid = \"alice\"\ntoken = \"tok-alice\"\nskills = { sales = 3 }\n\
         phone = { user = \"1001\", password = \"pw-1001\" }\n",
    );
    let server = Server::start(cfg);

    // The phone registers (and keeps its binding), then answers on the same port.
    let reg = Sipp::new(&server, "acd_register.xml")
        .local_port(phone_port)
        .key("user", "1001")
        .args_au("1001", "pw-1001")
        .run();
    assert!(reg.all_succeeded(1), "registration\n{reg}");
    login_ready(&server, "alice");
    let events = Events::start(
        &server,
        "alice",
        &["--until", "connected", "--timeout", "30"],
    );

    let phone = Sipp::new(&server, "bridge_uas_answer.xml")
        .local_port(phone_port)
        .pcaps()
        .timeout(Duration::from_secs(40));
    let caller = Sipp::new(&server, "bridge_uac_talk.xml")
        .pcaps()
        .timeout(Duration::from_secs(40));
    let cap_caller = RtpCapture::udp_to(caller.media_port());
    let cap_phone = RtpCapture::udp_to(phone.media_port());
    let phone_run = std::thread::spawn(move || phone.run());
    std::thread::sleep(Duration::from_millis(300));
    let caller = caller.run();
    let phone = phone_run.join().expect("phone thread");
    std::thread::sleep(Duration::from_millis(200));
    let (to_caller, to_phone) = (cap_caller.finish(), cap_phone.finish());
    let (code, ev, ev_err) = events.finish();
    let log = server.log_tail(60);
    let ctx = format!(
        "--- events ({code:?}) ---\n{ev}{ev_err}\n--- caller ---\n{caller}\n--- phone ---\n{phone}\n--- server log ---\n{log}"
    );

    assert!(
        caller.all_succeeded(1),
        "the caller talked and its BYE was answered\n{ctx}"
    );
    assert!(
        phone.all_succeeded(1),
        "the agent's phone got the INVITE at its registered contact, then BYE\n{ctx}"
    );
    assert_eq!(code, Some(0), "events reached `connected`\n{ctx}");
    let offered = ev
        .lines()
        .find(|l| l.starts_with("event=offered"))
        .unwrap_or_else(|| panic!("no offered event\n{ctx}"));
    assert_eq!(
        line_field(offered, "caller_number").as_deref(),
        Some("555"),
        "{ctx}"
    );
    assert_eq!(
        line_field(offered, "caller_name").as_deref(),
        Some("Carla"),
        "{ctx}"
    );
    assert_eq!(
        line_field(offered, "queue").as_deref(),
        Some("sales"),
        "{ctx}"
    );
    let connected = ev
        .lines()
        .find(|l| l.starts_with("event=connected"))
        .unwrap_or_else(|| panic!("no connected event\n{ctx}"));
    assert_eq!(
        line_field(connected, "call"),
        line_field(offered, "call"),
        "the offered call is the one connected\n{ctx}"
    );

    // Audio both ways through the bridge (PCMU on both legs: bit-exact).
    let heard = decoded(&to_caller, 0);
    let phone_audio = decoded(&test_pcap("bridge_callee_pcmu.pcap"), 0);
    let h = caruso_e2e::audio::heard(&heard, speech_body(&phone_audio, 100), 0);
    assert!(
        h.most(),
        "{h}: the caller hears the agent ({} packets)\n{ctx}",
        to_caller.len()
    );
    let phone_heard = decoded(&to_phone, 0);
    let caller_audio = decoded(&test_pcap("bridge_caller_pcmu.pcap"), 0);
    let h = caruso_e2e::audio::heard(&phone_heard, speech_body(&caller_audio, 1500), 0);
    assert!(
        h.most(),
        "{h}: the agent hears the caller ({} packets)\n{ctx}",
        to_phone.len()
    );

    // The queue's wrap-up (60 s) follows the call; the client ends it early.
    let st = wait_state(&server, "alice", "wrap-up", Duration::from_secs(3));
    assert_eq!(
        field(&st, "state").as_deref(),
        Some("wrap-up"),
        "{st}\n{ctx}"
    );
    let st = agent(&server, "alice", &["wrap-up", "--disposition", "sale"]);
    assert_eq!(field(&st, "state").as_deref(), Some("ready"), "{st}");

    let m = server.metrics();
    let q = ["queue=\"sales\""];
    assert_eq!(
        metric_sum(&m, "caruso_acd_calls_queued_total", &q),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric_sum(&m, "caruso_acd_calls_answered_total", &q),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric_sum(&m, "caruso_acd_calls_waiting", &q),
        Some(0.0),
        "{m}"
    );
}

#[test]
fn twenty_callers_in_two_queues_are_all_answered_by_agents_with_the_skill() {
    twenty_callers_in_two_queues(false);
}

#[test]
fn twenty_callers_in_two_queues_reach_agents_whose_phones_registered() {
    twenty_callers_in_two_queues(true);
}

/// Five agents with different skills, two queues, ten callers each; the agents' phones
/// are fixed URIs, or (`registered`) SIPp phones that REGISTER with digest auth first.
fn twenty_callers_in_two_queues(registered: bool) {
    let ports = Ports::block(100);
    // SIPp instances: 10 ports each (SIP, media +2..+5, control +8), in a block of their own.
    let peers = Ports::block(100);
    let port = |i: u16| peers.base + 10 * i;
    let agents = [
        ("s1", "sales = 3"),
        ("s2", "sales = 2"),
        ("p1", "support = 3"),
        ("p2", "support = 4"),
        ("b1", "sales = 1, support = 1"),
    ];
    let mut acd = String::from(
        "\n[[acd.queues]]\nname = \"sales\"\nskills = { sales = 1 }\n\n\
         [[acd.queues]]\nname = \"support\"\nskills = { support = 1 }\n",
    );
    if registered {
        acd.insert_str(0, "\n[sip.registrar]\nalgorithms = [\"MD5\"]\n");
    }
    let user = |i: usize| format!("20{i}0");
    for (i, (id, skills)) in agents.iter().enumerate() {
        if registered {
            acd.push_str(&format!(
                "\n[[acd.agents]]\nid = \"{id}\"\ntoken = \"tok-{id}\"\nskills = {{ {skills} }}\n\
                 phone = {{ user = \"{}\", password = \"pw-{}\" }}\n",
                user(i),
                user(i)
            ));
        } else {
            acd.push_str(&uri_agent(id, skills, port(2 + i as u16), ""));
        }
    }
    let server = Server::start(acd_config(
        ports,
        &[("100", "sales"), ("200", "support")],
        &acd,
    ));
    if registered {
        for i in 0..agents.len() {
            let reg = Sipp::new(&server, "acd_register.xml")
                .local_port(port(2 + i as u16))
                .key("user", user(i))
                .args_au(&user(i), &format!("pw-{}", user(i)))
                .run();
            assert!(reg.all_succeeded(1), "registration of {}\n{reg}", user(i));
        }
    }

    let phones: Vec<_> = agents
        .iter()
        .enumerate()
        .map(|(i, (id, _))| {
            let p = port(2 + i as u16);
            let sipp = Sipp::new(&server, "acd_agent_hangup.xml")
                .local_port(p)
                .calls(100)
                .arg("-cp")
                .arg(p + 8)
                .timeout(Duration::from_secs(60));
            (id.to_string(), p, std::thread::spawn(move || sipp.run()))
        })
        .collect();
    for (id, _) in &agents {
        login_ready(&server, id);
    }
    std::thread::sleep(Duration::from_millis(300));

    let started = Instant::now();
    let callers: Vec<_> = [("sales", "100", port(0)), ("support", "200", port(1))]
        .into_iter()
        .map(|(who, number, p)| {
            let sipp = Sipp::new(&server, "acd_uac_wait.xml")
                .local_port(p)
                .key("caller", who)
                .arg("-s")
                .arg(number)
                .calls(10)
                .rate(3)
                .timeout(Duration::from_secs(60));
            (who, std::thread::spawn(move || sipp.run()))
        })
        .collect();
    let callers: Vec<(&str, SippResult)> = callers
        .into_iter()
        .map(|(who, h)| (who, h.join().expect("caller thread")))
        .collect();
    let took = started.elapsed();
    for (_, p, _) in &phones {
        sipp_quit(p + 8);
    }
    let phones: Vec<(String, u16, SippResult)> = phones
        .into_iter()
        .map(|(id, p, h)| (id, p, h.join().expect("phone thread")))
        .collect();
    let log = server.log_tail(40);
    let mut ctx = format!("callers done after {took:.1?}\n");
    for (who, r) in &callers {
        ctx.push_str(&format!("--- caller {who} ---\n{r}\n"));
    }

    for (who, r) in &callers {
        assert!(
            r.all_succeeded(10),
            "every {who} caller was answered and got BYE when the agent hung up\n{ctx}\n{log}"
        );
    }
    let mut total = (0, 0);
    let mut seen_users = BTreeSet::new();
    for ((id, skills), (_, p, r)) in agents.iter().zip(&phones) {
        let invites = invites_received(&run_dir(&server, "acd_agent_hangup.xml", *p));
        let sales = invites
            .iter()
            .filter(|(_, f)| f.starts_with("sales-"))
            .count();
        let support = invites
            .iter()
            .filter(|(_, f)| f.starts_with("support-"))
            .count();
        eprintln!("agent {id} ({skills}): {sales} sales, {support} support calls");
        let summary = format!("agent {id} ({skills}): {sales} sales, {support} support calls\n{r}");
        assert_eq!(
            sales + support,
            invites.len(),
            "only our callers\n{summary}"
        );
        assert_eq!(
            r.successful(),
            invites.len() as u64,
            "each INVITE answered and hung up\n{summary}"
        );
        assert_eq!(r.failed(), 0, "{summary}");
        if !skills.contains("sales") {
            assert_eq!(sales, 0, "a support-only agent got sales calls\n{summary}");
        }
        if !skills.contains("support") {
            assert_eq!(
                support, 0,
                "a sales-only agent got support calls\n{summary}"
            );
        }
        total.0 += sales;
        total.1 += support;
        seen_users.extend(invites.into_iter().map(|(_, f)| f));
    }
    assert_eq!(
        total,
        (10, 10),
        "every call reached exactly one agent\n{ctx}"
    );
    assert_eq!(
        seen_users.len(),
        20,
        "twenty distinct callers: {seen_users:?}"
    );

    let m = server.metrics();
    for q in ["sales", "support"] {
        let l = format!("queue=\"{q}\"");
        assert_eq!(
            metric_sum(&m, "caruso_acd_calls_answered_total", &[&l]),
            Some(10.0),
            "{q}\n{m}"
        );
        assert_eq!(
            metric_sum(&m, "caruso_acd_calls_waiting", &[&l]),
            Some(0.0),
            "{m}"
        );
    }
    assert_eq!(
        metric(&server, "caruso_acd_calls_abandoned_total", &[]),
        0.0,
        "{m}"
    );
    assert_eq!(metric(&server, "caruso_acd_exits_total", &[]), 0.0, "{m}");
    assert_eq!(
        metric(&server, "caruso_acd_offers_missed_total", &[]),
        0.0,
        "{m}"
    );
}

#[test]
fn an_agent_who_does_not_answer_loses_the_call_and_goes_not_ready_after_max_no_answer() {
    let ports = Ports::block(60);
    let (slow_port, good_port) = (ports.peer(6), ports.peer(12));
    let mut acd = String::from(
        "\n[[acd.queues]]\nname = \"sales\"\nstrategy = \"top-down\"\n\
         members = [\"slow\", \"good\"]\nring_timeout_s = 2\n",
    );
    acd.push_str(&uri_agent(
        "slow",
        "sales = 1",
        slow_port,
        "max_no_answer = 2\n",
    ));
    acd.push_str(&uri_agent("good", "sales = 1", good_port, ""));
    let server = Server::start(acd_config(ports, &[("100", "sales")], &acd));

    let slow = Sipp::new(&server, "bridge_uas_noanswer.xml")
        .local_port(slow_port)
        .calls(2)
        .timeout(Duration::from_secs(40));
    let good = Sipp::new(&server, "acd_agent_hangup.xml")
        .local_port(good_port)
        .calls(2)
        .timeout(Duration::from_secs(40));
    let slow_run = std::thread::spawn(move || slow.run());
    let good_run = std::thread::spawn(move || good.run());
    login_ready(&server, "slow");
    login_ready(&server, "good");
    std::thread::sleep(Duration::from_millis(300));

    let mut states = Vec::new();
    let mut callers = Vec::new();
    for i in 0..2u16 {
        let t0 = Instant::now();
        let r = Sipp::new(&server, "acd_uac_wait.xml")
            .local_port(ports.peer(i * 3))
            .key("caller", format!("c{i}"))
            .timeout(Duration::from_secs(30))
            .run();
        callers.push((t0.elapsed(), r));
        // The caller's BYE came after the agent's; let the ACD settle.
        std::thread::sleep(Duration::from_millis(200));
        states.push(agent(&server, "slow", &["status"]));
    }
    let slow = slow_run.join().expect("slow thread");
    let good = good_run.join().expect("good thread");
    let log = server.log_tail(50);
    let ctx = format!(
        "{callers:#?}\n--- slow ---\n{slow}\n--- good ---\n{good}\nslow states: {states:?}\n--- server log ---\n{log}"
    );

    for (took, r) in &callers {
        assert!(r.all_succeeded(1), "the caller was answered\n{ctx}");
        assert!(
            *took >= Duration::from_millis(3500),
            "rang the slow agent 2 s before the good one answered and talked 1.5 s: {took:?}\n{ctx}"
        );
    }
    assert!(slow.all_succeeded(2), "two INVITEs, each CANCELled\n{ctx}");
    assert!(
        good.all_succeeded(2),
        "two calls answered by the next agent\n{ctx}"
    );
    let good_invites = invites_received(&run_dir(&server, "acd_agent_hangup.xml", good_port));
    let users: BTreeSet<String> = good_invites.into_iter().map(|(_, f)| f).collect();
    assert_eq!(
        users,
        ["c0-1", "c1-1"].map(String::from).into(),
        "the good agent took both callers\n{ctx}"
    );
    assert_eq!(
        field(&states[0], "state").as_deref(),
        Some("ready"),
        "one miss\n{ctx}"
    );
    assert_eq!(
        field(&states[1], "state").as_deref(),
        Some("not-ready"),
        "two misses\n{ctx}"
    );
    assert_eq!(
        field(&states[1], "reason").as_deref(),
        Some("no answer"),
        "{ctx}"
    );
    let q = ["queue=\"sales\""];
    assert_eq!(metric(&server, "caruso_acd_offers_missed_total", &q), 2.0);
    assert_eq!(metric(&server, "caruso_acd_calls_answered_total", &q), 2.0);
    assert_eq!(metric(&server, "caruso_acd_calls_abandoned_total", &q), 0.0);
}

#[test]
fn longest_idle_offers_each_caller_to_the_agent_ready_the_longest() {
    let ports = Ports::block(60);
    let (first_port, second_port) = (ports.peer(6), ports.peer(12));
    let mut acd = String::from(
        "\n[[acd.queues]]\nname = \"sales\"\nstrategy = \"longest-idle\"\n\
         members = [\"second\", \"first\"]\n",
    );
    acd.push_str(&uri_agent("first", "sales = 1", first_port, ""));
    acd.push_str(&uri_agent("second", "sales = 1", second_port, ""));
    let server = Server::start(acd_config(ports, &[("100", "sales")], &acd));
    let phone = |port: u16, calls: u32| {
        Sipp::new(&server, "acd_agent_hangup.xml")
            .local_port(port)
            .calls(calls)
            .timeout(Duration::from_secs(40))
    };
    let (first, second) = (phone(first_port, 2), phone(second_port, 1));
    let first_run = std::thread::spawn(move || first.run());
    let second_run = std::thread::spawn(move || second.run());
    // "first" becomes ready before "second" (the members list names them the other way
    // round, so a top-down order would pick "second").
    login_ready(&server, "first");
    std::thread::sleep(Duration::from_millis(500));
    login_ready(&server, "second");
    std::thread::sleep(Duration::from_millis(300));
    // One caller at a time: c0 -> first (idle longest); first is idle again only from the
    // end of that call, so c1 -> second; then c2 -> first again.
    let mut callers = Vec::new();
    for i in 0..3u16 {
        let r = Sipp::new(&server, "acd_uac_wait.xml")
            .local_port(ports.peer((i % 2) * 3))
            .key("caller", format!("c{i}"))
            .timeout(Duration::from_secs(30))
            .run();
        callers.push(r);
        std::thread::sleep(Duration::from_millis(300));
    }
    let first = first_run.join().expect("first phone");
    let second = second_run.join().expect("second phone");
    let ctx = format!(
        "{callers:#?}\n--- first ---\n{first}\n--- second ---\n{second}\n--- log ---\n{}",
        server.log_tail(40)
    );
    for r in &callers {
        assert!(r.all_succeeded(1), "every caller answered\n{ctx}");
    }
    let took = |port: u16| -> BTreeSet<String> {
        invites_received(&run_dir(&server, "acd_agent_hangup.xml", port))
            .into_iter()
            .map(|(_, f)| f)
            .collect()
    };
    assert_eq!(
        took(first_port),
        ["c0-1", "c2-1"].map(String::from).into(),
        "{ctx}"
    );
    assert_eq!(
        took(second_port),
        ["c1-1"].map(String::from).into(),
        "{ctx}"
    );
}

#[test]
fn a_caller_who_hangs_up_while_waiting_is_counted_as_abandoned() {
    let ports = Ports::block(40);
    let mut acd = String::from("\n[[acd.queues]]\nname = \"sales\"\nskills = { sales = 1 }\n");
    acd.push_str(&uri_agent("lazy", "sales = 1", ports.peer(6), ""));
    let server = Server::start(acd_config(ports, &[("100", "sales")], &acd));
    // Logged in but not ready: the queue is staffed, so the caller waits.
    let out = agent(&server, "lazy", &["login"]);
    assert_eq!(field(&out, "state").as_deref(), Some("not-ready"), "{out}");

    let caller = Sipp::new(&server, "acd_uac_abandon.xml")
        .key("caller", "impatient")
        .timeout(Duration::from_secs(20));
    let run = std::thread::spawn(move || caller.run());
    let q = ["queue=\"sales\""];
    let waiting = wait_metric(
        &server,
        "caruso_acd_calls_waiting",
        &q,
        Duration::from_millis(1500),
        |v| v == 1.0,
    );
    let caller = run.join().expect("caller thread");
    assert!(
        caller.all_succeeded(1),
        "answered, waited, hung up\n{caller}"
    );
    assert_eq!(waiting, Some(1.0), "one caller waiting during the call");
    let abandoned = wait_metric(
        &server,
        "caruso_acd_calls_abandoned_total",
        &q,
        Duration::from_secs(2),
        |v| v == 1.0,
    );
    let m = server.metrics();
    assert_eq!(abandoned, Some(1.0), "{m}\n{}", server.log_tail(20));
    assert_eq!(
        metric_sum(&m, "caruso_acd_calls_waiting", &q),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        metric_sum(&m, "caruso_acd_calls_queued_total", &q),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&server, "caruso_acd_calls_answered_total", &q),
        0.0,
        "{m}"
    );
    let st = agent(&server, "lazy", &["status"]);
    assert_eq!(
        field(&st, "state").as_deref(),
        Some("not-ready"),
        "never offered: {st}"
    );
}

#[test]
fn with_no_agent_logged_in_the_caller_goes_to_the_queue_exit() {
    let ports = Ports::block(40);
    let mut acd = String::from(
        "\n[[acd.queues]]\nname = \"sales\"\nskills = { sales = 1 }\n\
         exit = { hangup = [\"goodbye\"] }\n",
    );
    acd.push_str(&uri_agent("away", "sales = 1", ports.peer(6), ""));
    let server = Server::start(acd_config(ports, &[("100", "sales")], &acd));

    let caller = Sipp::new(&server, "bridge_uac_wait.xml")
        .pcaps()
        .timeout(Duration::from_secs(20));
    let cap = RtpCapture::udp_to(caller.media_port());
    let res = caller.run();
    // tcpdump hands packets over in blocks (up to 1 s late): let the last ones arrive.
    std::thread::sleep(Duration::from_millis(1200));
    let heard = pcmu_stream(&cap.finish());
    assert!(
        res.all_succeeded(1),
        "BYE from caruso\n{res}\n{}",
        server.log_tail(20)
    );
    assert!(
        !find_all(&heard, &default_prompt("goodbye")).is_empty(),
        "the exit's \"goodbye\" played before the BYE ({} bytes heard)",
        heard.len()
    );
    let m = server.metrics();
    assert_eq!(
        metric_sum(
            &m,
            "caruso_acd_exits_total",
            &["queue=\"sales\"", "reason=\"no_agents\""]
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&server, "caruso_acd_calls_queued_total", &[]),
        0.0,
        "{m}"
    );
}

/// `-au user -ap password` for SIPp's digest authentication.
trait DigestArgs {
    fn args_au(self, user: &str, password: &str) -> Self;
}

impl DigestArgs for Sipp {
    fn args_au(self, user: &str, password: &str) -> Self {
        self.arg("-au").arg(user).arg("-ap").arg(password)
    }
}
