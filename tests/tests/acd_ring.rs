//! The ACD's queue features end to end:
//! - `ring-all`: three registered phones ring at once, the first to answer is bridged
//!   (audio checked), the others get CANCEL / 487 and stay ready (no miss);
//! - `ring-progressively`: the next phone is added while the first keeps ringing;
//! - a caller hanging up while several phones ring: all CANCELled, no miss;
//! - the queue's exit key takes the caller to the queue's mailbox (message stored);
//! - waiting callers hear their position and expected wait (decoded from their RTP);
//! - a caller given a higher priority by an IVR `set` node is answered first.
//!
//! Agents log in with `caruso-agent` (a separate process, gRPC `caruso.v1.Agent`); their
//! phones are SIPp UAS instances that REGISTER with digest authentication first (MD5)
//! and then answer, ring without answering, or hang up on the same port; callers are
//! SIPp UACs with RTP. What a phone saw, and when, comes from its SIPp message log.

use std::path::Path;
use std::thread;
use std::time::Duration;

use caruso_e2e::acd::*;
use caruso_e2e::audio::*;
use caruso_e2e::*;

/// How far apart two SIPp processes' log timestamps of causally ordered
/// messages may appear reversed: SIPp stamps a sent message after the send, so
/// the phone that receives the server's reaction can log it first.
const LOG_SKEW_S: f64 = 0.05;

/// A server config: `numbers` (number, queue) each through a one-node flow into its
/// queue, then `acd` (the `[acd]` tables and anything else) verbatim; the registrar
/// takes MD5 (SIPp's digest).
fn config(ports: Ports, numbers: &[(&str, &str)], acd: &str) -> ServerConfig {
    config_with_prompts(ports, numbers, acd, &prompts_dir())
}

/// [`config`] with its own prompt directory.
fn config_with_prompts(
    ports: Ports,
    numbers: &[(&str, &str)],
    acd: &str,
    prompts: &Path,
) -> ServerConfig {
    let mut cfg = ServerConfig::new(ports);
    let mut extra = format!(
        "\n[sip.registrar]\nalgorithms = [\"MD5\"]\n\n[ivr]\nprompt_dir = \"{}\"\n",
        prompts.display()
    );
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

fn metric(server: &Server, name: &str, labels: &[&str]) -> f64 {
    metric_sum(&server.metrics(), name, labels).unwrap_or(0.0)
}

#[test]
fn ring_all_rings_every_registered_phone_at_once_and_bridges_the_first_to_answer() {
    let ports = Ports::block(60);
    // Each SIPp takes p (SIP) and p+2, p+4 (media): 10 ports apart, in a block of their own.
    let peers = Ports::block(40);
    let phone_port = |i: u16| peers.base + 10 * i;
    let names = ["ann", "ben", "cid"];
    let mut acd = String::from(
        "\n[[acd.queues]]\nname = \"sales\"\nstrategy = \"ring-all\"\n\
         skills = { sales = 1 }\nring_timeout_s = 20\nwrap_up_s = 60\n",
    );
    for (i, id) in names.iter().enumerate() {
        acd.push_str(&registered_agent(id, "sales = 1", &format!("10{i}1"), ""));
    }
    let server = Server::start(config(ports, &[("100", "sales")], &acd));
    for (i, id) in names.iter().enumerate() {
        let user = format!("10{i}1");
        register_phone(&server, phone_port(i as u16), &user, &format!("pw-{user}"));
        login_ready(&server, &format!("tok-{id}"));
    }

    // ben's phone answers after ringing 2 s; ann's and cid's ring until CANCELled.
    let scenario = |i: usize| {
        if i == 1 {
            "ring_uas_answer.xml"
        } else {
            "bridge_uas_noanswer.xml"
        }
    };
    let phones: Vec<_> = (0..3)
        .map(|i| {
            let sipp = Sipp::new(&server, scenario(i))
                .local_port(phone_port(i as u16))
                .pcaps()
                .timeout(Duration::from_secs(50));
            thread::spawn(move || sipp.run())
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    let caller = Sipp::new(&server, "bridge_uac_talk.xml")
        .pcaps()
        .timeout(Duration::from_secs(50));
    let cap_caller = RtpCapture::udp_to(caller.media_port());
    let caller = caller.run();
    let phones: Vec<SippResult> = phones
        .into_iter()
        .map(|h| h.join().expect("phone thread"))
        .collect();
    // tcpdump hands packets over in blocks: let the last ones arrive.
    thread::sleep(Duration::from_millis(1200));
    let to_caller = cap_caller.finish();
    let mut ctx = format!("--- caller ---\n{caller}\n");
    for (id, r) in names.iter().zip(&phones) {
        ctx.push_str(&format!("--- phone of {id} ---\n{r}\n"));
    }
    ctx.push_str(&format!("--- server log ---\n{}", server.log_tail(60)));

    assert!(
        caller.all_succeeded(1),
        "the caller talked and hung up\n{ctx}"
    );
    for (i, r) in phones.iter().enumerate() {
        assert!(
            r.all_succeeded(1),
            "{}'s phone: {}\n{ctx}",
            names[i],
            if i == 1 {
                "INVITE, answered, BYE"
            } else {
                "INVITE, CANCEL, 487, ACK"
            }
        );
    }
    // When each phone saw what (all SIPp runs log with the same clock).
    let logs: Vec<Vec<SippMessage>> = (0..3)
        .map(|i| sipp_messages(&run_dir(&server, scenario(i), phone_port(i as u16))))
        .collect();
    let at = |i: usize, what: &dyn Fn(&SippMessage) -> bool| -> Vec<f64> {
        logs[i].iter().filter(|m| what(m)).map(|m| m.at).collect()
    };
    let answered = at(1, &|m| !m.received && m.is_response(200, "INVITE"));
    assert!(!answered.is_empty(), "ben's 200 OK in its log\n{ctx}");
    let answered = answered[0];
    for i in [0, 2] {
        let invites = invites_received(&run_dir(&server, scenario(i), phone_port(i as u16)));
        assert_eq!(invites.len(), 1, "{} got one call\n{ctx}", names[i]);
        let invite = at(i, &|m| m.received && m.is_request("INVITE"));
        let cancel = at(i, &|m| m.received && m.is_request("CANCEL"));
        let sent_487 = at(i, &|m| !m.received && m.is_response(487, "INVITE"));
        assert!(
            invite.first().is_some_and(|&t| t < answered),
            "{}'s phone rang before ben answered (INVITE at {invite:?}, 200 at {answered})\n{ctx}",
            names[i]
        );
        assert!(
            cancel
                .first()
                .is_some_and(|&t| t >= answered - LOG_SKEW_S && t < answered + 10.0),
            "{}'s phone was CANCELled because ben answered, long before the 20 s ring \
             timeout (CANCEL at {cancel:?}, 200 at {answered})\n{ctx}",
            names[i]
        );
        assert!(!sent_487.is_empty(), "487 to the INVITE\n{ctx}");
    }
    let ben_invite = at(1, &|m| m.received && m.is_request("INVITE"));
    assert_eq!(ben_invite.len(), 1, "ben got one INVITE\n{ctx}");

    // Audio: the caller hears ben's phone (PCMU both legs: bit-exact).
    let heard = decoded(&to_caller, 0);
    let ben_audio = decoded(&test_pcap("bridge_callee_pcmu.pcap"), 0);
    // (Most of its 300 ms pieces: a loaded machine may leave a gap in the relay.)
    let h = caruso_e2e::audio::heard(&heard, speech_body(&ben_audio, 100), 0);
    assert!(
        h.most(),
        "{h}: the caller hears the agent who answered ({} packets)\n{ctx}",
        to_caller.len()
    );

    // Exactly one answer; the phones that lost the race are not misses: ann and cid are
    // ready, ben wraps up after his call.
    let ben = wait_state(&server, "tok-ben", "wrap-up", Duration::from_secs(5));
    assert_eq!(
        field(&ben, "state").as_deref(),
        Some("wrap-up"),
        "{ben}\n{ctx}"
    );
    for id in ["ann", "cid"] {
        let st = agent(&server, &format!("tok-{id}"), &["status"]);
        assert_eq!(
            field(&st, "state").as_deref(),
            Some("ready"),
            "{id}: {st}\n{ctx}"
        );
    }
    let q = ["queue=\"sales\""];
    assert_eq!(
        metric(&server, "caruso_acd_calls_answered_total", &q),
        1.0,
        "{ctx}"
    );
    assert_eq!(
        metric(&server, "caruso_acd_offers_missed_total", &[]),
        0.0,
        "{ctx}"
    );
    assert_eq!(
        metric(&server, "caruso_acd_calls_waiting", &q),
        0.0,
        "{ctx}"
    );
}

#[test]
fn the_exit_key_takes_a_waiting_caller_to_the_queue_mailbox_where_a_message_is_left() {
    let ports = Ports::block(60);
    let greeting = marker_audio(42, 0.5);
    let prompts = prompt_dir_with(&[("e2e-greeting", &greeting)]);
    let mut acd = String::from(
        "\n[[acd.queues]]\nname = \"sales\"\nskills = { sales = 1 }\n\
         exit_key = \"9\"\nexit = { mailbox = \"200\" }\n",
    );
    acd.push_str(&registered_agent("lazy", "sales = 1", "1999", ""));
    acd.push_str(&format!(
        "\n[voicemail]\n[[voicemail.mailboxes]]\nnumber = \"200\"\nowner = \"Sales\"\n\
         pin = \"1234\"\ngreeting_unavailable = \"{}/e2e-greeting.wav\"\n\
         max_message_s = 60\nmin_message_s = 1\nsilence_s = 5\n",
        prompts.path().display()
    ));
    let server = Server::start(config_with_prompts(
        ports,
        &[("100", "sales")],
        &acd,
        prompts.path(),
    ));
    // Logged in but not ready: the queue is staffed, so the caller waits (no exit for
    // "no agents").
    let out = agent(&server, "tok-lazy", &["login"]);
    assert_eq!(field(&out, "state").as_deref(), Some("not-ready"), "{out}");

    let caller = Sipp::new(&server, "acd_uac_exit_key.xml")
        .pcaps()
        .key("dial", "100")
        .timeout(Duration::from_secs(40))
        .run();
    let ctx = format!(
        "--- caller ---\n{caller}\n--- server log ---\n{}",
        server.log_tail(40)
    );
    assert!(
        caller.all_succeeded(1),
        "queued, pressed 9, left a message, got BYE\n{ctx}"
    );
    let q = ["queue=\"sales\"", "reason=\"exit_key\""];
    assert_eq!(
        wait_metric(
            &server,
            "caruso_acd_exits_total",
            &q,
            Duration::from_secs(5),
            |v| v == 1.0
        ),
        Some(1.0),
        "the exit key took the caller out of the queue\n{ctx}"
    );
    assert_eq!(
        wait_metric(
            &server,
            "caruso_voicemail_messages_saved_total",
            &[],
            Duration::from_secs(5),
            |v| v == 1.0
        ),
        Some(1.0),
        "a message was saved\n{ctx}"
    );
    // The message is in the queue's mailbox (gRPC Voicemail, a Python client), with the
    // length of the known audio the caller played after the key.
    let listed = vm_client(&server, &["list", "200"]).unwrap_or_else(|e| panic!("{e}\n{ctx}"));
    let msgs = listed["messages"]
        .as_array()
        .map(<[_]>::to_vec)
        .unwrap_or_default();
    assert_eq!(
        msgs.len(),
        1,
        "one message in mailbox 200: {listed:?}\n{ctx}"
    );
    let dur_ms = msgs[0]["duration_ms"].as_f64().unwrap_or(0.0);
    assert!(
        (dur_ms - 3020.0).abs() <= 150.0,
        "message of {dur_ms} ms, expected the 3.02 s the caller said\n{ctx}"
    );
    let sales = ["queue=\"sales\""];
    assert_eq!(
        metric(&server, "caruso_acd_calls_abandoned_total", &sales),
        0.0
    );
    assert_eq!(
        metric(&server, "caruso_acd_calls_answered_total", &sales),
        0.0
    );
    assert_eq!(metric(&server, "caruso_acd_calls_waiting", &sales), 0.0);
}

/// Where, in order, each of `names` (default prompts; only the first 2 s of `moh`) first
/// occurs in the µ-law stream `heard`, each after the previous one; `None` for a prompt
/// not found (and after it).
fn in_order(heard: &[u8], names: &[&str]) -> Vec<Option<usize>> {
    let mut after = 0usize;
    let mut out = Vec::new();
    let mut lost = false;
    for name in names {
        let at = if lost {
            None
        } else {
            let mut audio = default_prompt(name);
            if *name == "moh" {
                // The music restarts after the announcement: its first two seconds.
                audio.truncate(16_000);
            }
            find_all(heard, &audio).into_iter().find(|&o| o >= after)
        };
        match at {
            Some(o) => after = o + 1,
            None => lost = true,
        }
        out.push(at);
    }
    out
}

#[test]
fn waiting_callers_hear_their_position_and_expected_wait_between_the_music() {
    let ports = Ports::block(60);
    let mut acd = String::from(
        "\n[[acd.queues]]\nname = \"sales\"\nskills = { sales = 1 }\nmusic = \"moh\"\n\
         position_every_s = 60\n",
    );
    acd.push_str(&registered_agent("lazy", "sales = 1", "1999", ""));
    let server = Server::start(config(ports, &[("100", "sales")], &acd));
    // One agent logged in, not ready: the queue is staffed (1), nobody answers. Without
    // history the average handle time is 180 s: the first caller waits about 1 × 180 s
    // ("3 minutes"), the second 2 × 180 s ("6 minutes").
    let out = agent(&server, "tok-lazy", &["login"]);
    assert_eq!(field(&out, "state").as_deref(), Some("not-ready"), "{out}");

    let caller = |i: u16| {
        Sipp::new(&server, "acd_uac_listen.xml")
            .local_port(ports.peer(6 * i))
            .key("caller", format!("c{i}"))
            .timeout(Duration::from_secs(30))
    };
    let (first, second) = (caller(0), caller(1));
    let caps = [
        RtpCapture::udp_to(first.media_port()),
        RtpCapture::udp_to(second.media_port()),
    ];
    let first = thread::spawn(move || first.run());
    let q = ["queue=\"sales\""];
    let waiting = wait_metric(
        &server,
        "caruso_acd_calls_waiting",
        &q,
        Duration::from_secs(10),
        |v| v == 1.0,
    );
    assert_eq!(waiting, Some(1.0), "{}", server.log_tail(30));
    let second = second.run();
    let first = first.join().expect("first caller");
    thread::sleep(Duration::from_millis(1200));
    let [cap0, cap1] = caps;
    let heard = [pcmu_stream(&cap0.finish()), pcmu_stream(&cap1.finish())];
    let ctx = format!(
        "--- first ---\n{first}\n--- second ---\n{second}\n--- server log ---\n{}",
        server.log_tail(40)
    );
    assert!(first.all_succeeded(1), "{ctx}");
    assert!(second.all_succeeded(1), "{ctx}");

    let said = [
        [
            "queue-position",
            "1",
            "queue-wait",
            "3",
            "queue-minutes",
            "moh",
        ],
        [
            "queue-position",
            "2",
            "queue-wait",
            "6",
            "queue-minutes",
            "moh",
        ],
    ];
    for (i, (heard, said)) in heard.iter().zip(said).enumerate() {
        let at = in_order(heard, &said);
        assert!(
            at.iter().all(Option::is_some),
            "caller {i} heard {said:?} in this order, then the music again: found at {at:?} \
             in {} bytes\n{ctx}",
            heard.len()
        );
    }
    // The first caller's announcement names position 1, not 2 (and the second's not 1
    // before its "queue-wait").
    let wrong = in_order(&heard[0], &["queue-position", "2", "queue-wait"]);
    assert!(
        wrong[2].is_none(),
        "first caller told position 2: {wrong:?}"
    );
    assert_eq!(
        wait_metric(
            &server,
            "caruso_acd_calls_abandoned_total",
            &q,
            Duration::from_secs(5),
            |v| v == 2.0
        ),
        Some(2.0),
        "{ctx}"
    );
}

#[test]
fn a_caller_given_a_higher_priority_by_the_flow_is_answered_first_though_it_queued_later() {
    let ports = Ports::block(60);
    let phone_port = ports.peer(12);
    let cfg = config(
        ports,
        &[("100", "sales")],
        &format!(
            "\n[[numbers]]\nnumber = \"101\"\nflow = \"vip\"\n\n[flows.vip]\nstart = \"p\"\n\n\
             [flows.vip.nodes.p]\ntype = \"set\"\nvariable = \"priority\"\nvalue = \"5\"\n\
             next = \"q\"\n\n[flows.vip.nodes.q]\ntype = \"queue\"\nqueue = \"sales\"\n\n\
             [[acd.queues]]\nname = \"sales\"\nskills = {{ sales = 1 }}\n{}",
            registered_agent("solo", "sales = 1", "1500", "")
        ),
    );
    let server = Server::start(cfg);
    register_phone(&server, phone_port, "1500", "pw-1500");
    let out = agent(&server, "tok-solo", &["login"]);
    assert_eq!(field(&out, "state").as_deref(), Some("not-ready"), "{out}");

    let phone = Sipp::new(&server, "acd_agent_hangup.xml")
        .local_port(phone_port)
        .calls(2)
        .timeout(Duration::from_secs(60));
    let phone = thread::spawn(move || phone.run());
    let q = ["queue=\"sales\""];
    let caller = |who: &str, number: &str, port: u16| {
        let sipp = Sipp::new(&server, "acd_uac_wait.xml")
            .local_port(port)
            .key("caller", who)
            .arg("-s")
            .arg(number)
            .timeout(Duration::from_secs(60));
        thread::spawn(move || sipp.run())
    };
    // "low" (number 100, priority 0) queues first, "high" (101: the flow sets
    // priority = 5) after it; only then does the agent become ready.
    let low = caller("low", "100", ports.peer(0));
    let one = wait_metric(
        &server,
        "caruso_acd_calls_waiting",
        &q,
        Duration::from_secs(10),
        |v| v == 1.0,
    );
    assert_eq!(one, Some(1.0), "{}", server.log_tail(30));
    thread::sleep(Duration::from_millis(500));
    let high = caller("high", "101", ports.peer(6));
    let two = wait_metric(
        &server,
        "caruso_acd_calls_waiting",
        &q,
        Duration::from_secs(10),
        |v| v == 2.0,
    );
    assert_eq!(two, Some(2.0), "{}", server.log_tail(30));
    let out = agent(&server, "tok-solo", &["ready"]);
    assert_eq!(field(&out, "state").as_deref(), Some("ready"), "{out}");

    let (low, high) = (
        low.join().expect("low caller"),
        high.join().expect("high caller"),
    );
    let phone = phone.join().expect("phone");
    let ctx = format!(
        "--- low ---\n{low}\n--- high ---\n{high}\n--- phone ---\n{phone}\n--- server log ---\n{}",
        server.log_tail(40)
    );
    assert!(low.all_succeeded(1), "{ctx}");
    assert!(high.all_succeeded(1), "{ctx}");
    assert!(phone.all_succeeded(2), "{ctx}");
    let order: Vec<String> = sipp_messages(&run_dir(&server, "acd_agent_hangup.xml", phone_port))
        .into_iter()
        .filter(|m| m.received && m.is_request("INVITE"))
        .filter_map(|m| {
            let from = m.header("From")?;
            Some(from.split("sip:").nth(1)?.split('@').next()?.to_owned())
        })
        .fold(Vec::new(), |mut v, u| {
            if !v.contains(&u) {
                v.push(u);
            }
            v
        });
    assert_eq!(
        order,
        ["high-1", "low-1"],
        "the agent got the priority caller first\n{ctx}"
    );
}

#[test]
fn ring_progressively_adds_the_next_phone_while_the_first_keeps_ringing() {
    let ports = Ports::block(60);
    let (first_port, second_port) = (ports.peer(6), ports.peer(12));
    // Every 2 s one more member rings; "first" never answers, "second" answers 2 s after
    // its INVITE, i.e. about 4 s after "first" began to ring: twice the ring timeout.
    let mut acd = String::from(
        "\n[[acd.queues]]\nname = \"sales\"\nstrategy = \"ring-progressively\"\n\
         members = [\"first\", \"second\"]\nring_timeout_s = 2\n",
    );
    acd.push_str(&registered_agent("first", "", "1601", ""));
    acd.push_str(&registered_agent("second", "", "1602", ""));
    let server = Server::start(config(ports, &[("100", "sales")], &acd));
    for (id, user, port) in [
        ("first", "1601", first_port),
        ("second", "1602", second_port),
    ] {
        register_phone(&server, port, user, &format!("pw-{user}"));
        login_ready(&server, &format!("tok-{id}"));
    }
    let first = Sipp::new(&server, "bridge_uas_noanswer.xml")
        .local_port(first_port)
        .timeout(Duration::from_secs(40));
    let second = Sipp::new(&server, "ring_uas_answer.xml")
        .local_port(second_port)
        .pcaps()
        .timeout(Duration::from_secs(40));
    let first = thread::spawn(move || first.run());
    let second = thread::spawn(move || second.run());
    thread::sleep(Duration::from_millis(300));
    let caller = Sipp::new(&server, "bridge_uac_talk.xml")
        .pcaps()
        .timeout(Duration::from_secs(40))
        .run();
    let (first, second) = (
        first.join().expect("first phone"),
        second.join().expect("second phone"),
    );
    let ctx = format!(
        "--- caller ---\n{caller}\n--- first ---\n{first}\n--- second ---\n{second}\n\
         --- server log ---\n{}",
        server.log_tail(50)
    );
    assert!(caller.all_succeeded(1), "{ctx}");
    assert!(first.all_succeeded(1), "first: INVITE, CANCEL, 487\n{ctx}");
    assert!(second.all_succeeded(1), "second: INVITE, 200, BYE\n{ctx}");
    let log1 = sipp_messages(&run_dir(&server, "bridge_uas_noanswer.xml", first_port));
    let log2 = sipp_messages(&run_dir(&server, "ring_uas_answer.xml", second_port));
    let when = |log: &[SippMessage], what: &dyn Fn(&SippMessage) -> bool| {
        log.iter().find(|m| what(m)).map(|m| m.at)
    };
    let (Some(inv1), Some(cancel1), Some(inv2), Some(ok2)) = (
        when(&log1, &|m| m.received && m.is_request("INVITE")),
        when(&log1, &|m| m.received && m.is_request("CANCEL")),
        when(&log2, &|m| m.received && m.is_request("INVITE")),
        when(&log2, &|m| !m.received && m.is_response(200, "INVITE")),
    ) else {
        panic!("messages missing from the phones' logs\n{ctx}");
    };
    assert!(
        inv2 - inv1 >= 1.5,
        "second added one ring timeout after first ({:.2} s)\n{ctx}",
        inv2 - inv1
    );
    assert!(
        cancel1 >= ok2 - LOG_SKEW_S,
        "first kept ringing until second answered, past its own 2 s ring timeout \
         (first rang {:.2} s, CANCEL {:.2} s after second's 200)\n{ctx}",
        cancel1 - inv1,
        cancel1 - ok2
    );
    assert!(
        cancel1 - inv1 >= 3.0,
        "first rang {:.2} s\n{ctx}",
        cancel1 - inv1
    );
    let st = agent(&server, "tok-first", &["status"]);
    assert_eq!(
        field(&st, "state").as_deref(),
        Some("ready"),
        "not a miss: {st}\n{ctx}"
    );
    assert_eq!(
        metric(&server, "caruso_acd_offers_missed_total", &[]),
        0.0,
        "{ctx}"
    );
    assert_eq!(
        metric(
            &server,
            "caruso_acd_calls_answered_total",
            &["queue=\"sales\""]
        ),
        1.0,
        "{ctx}"
    );
}

#[test]
fn a_caller_hanging_up_while_several_phones_ring_cancels_them_all() {
    let ports = Ports::block(60);
    let (p1, p2) = (ports.peer(6), ports.peer(12));
    let mut acd = String::from(
        "\n[[acd.queues]]\nname = \"sales\"\nstrategy = \"ring-all\"\nring_timeout_s = 20\n",
    );
    acd.push_str(&registered_agent("dee", "", "1701", ""));
    acd.push_str(&registered_agent("eve", "", "1702", ""));
    let server = Server::start(config(ports, &[("100", "sales")], &acd));
    for (id, user, port) in [("dee", "1701", p1), ("eve", "1702", p2)] {
        register_phone(&server, port, user, &format!("pw-{user}"));
        login_ready(&server, &format!("tok-{id}"));
    }
    let phones: Vec<_> = [p1, p2]
        .into_iter()
        .map(|p| {
            let sipp = Sipp::new(&server, "bridge_uas_noanswer.xml")
                .local_port(p)
                .timeout(Duration::from_secs(40));
            thread::spawn(move || sipp.run())
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    // Answered by the flow, waits 2 s (both phones ring), hangs up.
    let caller = Sipp::new(&server, "acd_uac_abandon.xml")
        .key("caller", "gone")
        .timeout(Duration::from_secs(30))
        .run();
    let phones: Vec<SippResult> = phones
        .into_iter()
        .map(|h| h.join().expect("phone"))
        .collect();
    let ctx = format!(
        "--- caller ---\n{caller}\n--- phones ---\n{}\n{}\n--- server log ---\n{}",
        phones[0],
        phones[1],
        server.log_tail(40)
    );
    assert!(caller.all_succeeded(1), "{ctx}");
    for (p, r) in [p1, p2].into_iter().zip(&phones) {
        assert!(r.all_succeeded(1), "INVITE, CANCEL, 487, ACK\n{ctx}");
        let log = sipp_messages(&run_dir(&server, "bridge_uas_noanswer.xml", p));
        let invite = log.iter().find(|m| m.received && m.is_request("INVITE"));
        let cancel = log.iter().find(|m| m.received && m.is_request("CANCEL"));
        let (Some(invite), Some(cancel)) = (invite, cancel) else {
            panic!("INVITE and CANCEL in the log of port {p}\n{ctx}");
        };
        assert!(
            cancel.at - invite.at < 10.0,
            "CANCELled when the caller left, not at the 20 s ring timeout ({:.2} s)\n{ctx}",
            cancel.at - invite.at
        );
    }
    let q = ["queue=\"sales\""];
    assert_eq!(
        wait_metric(
            &server,
            "caruso_acd_calls_abandoned_total",
            &q,
            Duration::from_secs(5),
            |v| { v == 1.0 }
        ),
        Some(1.0),
        "{ctx}"
    );
    assert_eq!(
        metric(&server, "caruso_acd_offers_missed_total", &[]),
        0.0,
        "{ctx}"
    );
    for id in ["dee", "eve"] {
        let st = agent(&server, &format!("tok-{id}"), &["status"]);
        assert_eq!(
            field(&st, "state").as_deref(),
            Some("ready"),
            "{id}: {st}\n{ctx}"
        );
    }
}
