//! Outbound campaigns end to end, driven by `caruso-agent campaign` (gRPC
//! `caruso.v1.Campaigns` with the supervisor's token):
//!
//! - a CSV with a bad row loads its good rows and names the bad one by line number;
//! - numbers on the do-not-call list (the `[dialer] dnc_file`, and one added over gRPC)
//!   are never dialed;
//! - start, pause, resume, and a refused command naming the campaign's state;
//! - with an agent ready, the progressive campaign dials exactly one contact (one per
//!   ready agent) and skips the do-not-call one;
//! - a reload that changes the campaigns is refused (they need a restart);
//! - an agent's token is refused;
//! - with SIPp as the contact (answers, talks, hangs up) and as alice's phone: the
//!   progressive dial reaches alice, the contact is final, and alice's wrap-up
//!   disposition is stored with the attempt.
//!
//! Nothing answers at the trunk's address here: the dial's SIP side is tested in
//! `server/tests/originate.rs`; this test checks the campaign side.

use std::time::{Duration, Instant};

use caruso_e2e::acd::{
    campaign, campaign_config, caruso_agent as run, status_number as number, status_value as value,
};
use caruso_e2e::*;

fn config(ports: Ports, dnc_file: &std::path::Path) -> ServerConfig {
    campaign_config(ports, dnc_file, "")
}

fn agent(server: &Server, args: &[&str]) {
    let mut all = vec!["agent", "--token", "tok-alice"];
    all.extend_from_slice(args);
    let out = run(server, &all);
    assert!(
        out.status.success(),
        "caruso-agent {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_campaign_loads_a_csv_honours_the_dnc_list_and_dials_one_contact_per_ready_agent() {
    require_isolated_network();
    let dir = TempDir::new("campaign-dnc");
    let dnc_file = dir.path().join("dnc.txt");
    std::fs::write(
        &dnc_file,
        "# opted out by phone\n601 000 003\nnot a number\n",
    )
    .unwrap();
    let server = Server::start(config(Ports::block(20), &dnc_file));

    let list = campaign(&server, &["list"]);
    assert_eq!(value(&list, "campaign").as_deref(), Some("demo"), "{list}");
    assert_eq!(value(&list, "state").as_deref(), Some("idle"), "{list}");

    let csv = server.dir().join("contacts.csv");
    std::fs::write(
        &csv,
        "phone,name,plan\n+48 601 000 002,Piotr,\n12,Too Short,\n601000003,Ewa,\n601 000 001,Anna,gold\n",
    )
    .expect("write csv");
    let load = campaign(&server, &["load", "demo", csv.to_str().unwrap()]);
    assert_eq!(value(&load, "added").as_deref(), Some("3"), "{load}");
    let rejected: Vec<&str> = load
        .lines()
        .filter(|l| l.starts_with("rejected: "))
        .collect();
    assert_eq!(rejected.len(), 1, "{load}");
    assert!(rejected[0].starts_with("rejected: line 3: "), "{load}");
    assert!(rejected[0].contains("12"), "{load}");

    let dnc = campaign(&server, &["dnc", "add", "--country", "PL", "601000002"]);
    assert_eq!(dnc.trim(), "added: +48601000002");
    let listed = campaign(&server, &["dnc", "list"]);
    assert_eq!(
        listed.trim(),
        "+48601000002\n+48601000003",
        "file and runtime numbers"
    );

    let st = campaign(&server, &["start", "demo"]);
    assert_eq!(st.trim(), "state: running");
    let again = run(
        &server,
        &["campaign", "--token", SUPERVISOR_TOKEN, "start", "demo"],
    );
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("FailedPrecondition") && err.contains("running"),
        "{err}"
    );

    // No agent ready: nothing is dialed.
    std::thread::sleep(Duration::from_millis(500));
    let status = campaign(&server, &["status", "demo"]);
    assert_eq!(number(&status, "dialed"), 0, "{status}");

    // Alice becomes ready: the two contacts ahead are on the do-not-call list (skipped),
    // the third is dialed: one dial for one ready agent.
    agent(&server, &["login"]);
    agent(&server, &["ready"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let s = campaign(&server, &["status", "demo"]);
        if number(&s, "dialed") >= 1 && number(&s, "dnc_skipped") >= 2 {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no dial:\n{s}\n{}",
            server.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(500));
    let status2 = campaign(&server, &["status", "demo"]);
    assert_eq!(number(&status2, "dialed"), 1, "{status}\n{status2}");
    assert_eq!(number(&status2, "dnc_skipped"), 2, "{status2}");
    assert_eq!(number(&status2, "contacts"), 3, "{status2}");
    // Nothing answers at the trunk's address: the dial is still trying or has failed
    // (then the contact waits for retry.failed); either way one contact is left.
    assert_eq!(
        number(&status2, "in_flight") + number(&status2, "failed"),
        1,
        "{status2}"
    );
    assert_eq!(number(&status2, "contacts_left"), 1, "{status2}");

    assert_eq!(
        campaign(&server, &["pause", "demo"]).trim(),
        "state: paused"
    );
    assert_eq!(
        campaign(&server, &["resume", "demo"]).trim(),
        "state: running"
    );
    assert_eq!(
        campaign(&server, &["stop", "demo"]).trim(),
        "state: stopped"
    );

    // Campaigns are read at start only: a reload that changes them is refused by name.
    let path = server.config_path();
    let mut text = std::fs::read_to_string(&path).expect("read config");
    text = text.replace("name = \"demo\"", "name = \"demo\"\nring_timeout_s = 30");
    std::fs::write(&path, text).expect("write config");
    let reload = run(&server, &["--token", ADMIN_TOKEN, "reload-config"]);
    assert!(!reload.status.success());
    let err = String::from_utf8_lossy(&reload.stderr);
    assert!(err.contains("need a restart: campaigns"), "{err}");

    // An agent may not manage campaigns.
    let refused = run(&server, &["campaign", "--token", "tok-alice", "list"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("PermissionDenied"), "{err}");
}

#[test]
fn a_progressive_dial_reaches_the_agent_and_the_wrap_up_disposition_is_stored() {
    require_isolated_network();
    let dir = TempDir::new("campaign-dial");
    let dnc_file = dir.path().join("dnc.txt");
    std::fs::write(&dnc_file, "").unwrap();
    let ports = Ports::block(20);
    let (contact_port, phone_port) = (ports.peer(1), ports.peer(2));
    let server = Server::start(campaign_config(ports, &dnc_file, "wrap_up_s = 120"));
    let csv = server.dir().join("one.csv");
    std::fs::write(&csv, "phone,name\n601000001,Anna\n").unwrap();
    campaign(&server, &["load", "demo", csv.to_str().unwrap()]);

    // The contact (answers, talks 6 s, hangs up) and alice's phone (answers).
    caruso_e2e::acd::login_ready(&server, "tok-alice");
    // Both SIPp runs must succeed (one_campaign_dial checks them).
    caruso_e2e::acd::one_campaign_dial(&server, contact_port, phone_port);

    // Alice wraps up with a disposition: it is stored with the attempt.
    caruso_e2e::acd::wait_state(&server, "tok-alice", "wrap-up", Duration::from_secs(10));
    caruso_e2e::acd::agent(
        &server,
        "tok-alice",
        &["wrap-up", "--disposition", "sale", "--note", "gold plan"],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log_tail(200).contains("disposition stored") {
        assert!(
            Instant::now() < deadline,
            "no disposition stored\n{}",
            server.log_tail(60)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = campaign(&server, &["status", "demo"]);
    assert_eq!(number(&s, "dialed"), 1, "{s}");
    assert_eq!(number(&s, "human"), 1, "{s}");
    assert_eq!(number(&s, "contacts_left"), 0, "{s}");
    assert_eq!(value(&s, "state").as_deref(), Some("finished"), "{s}");
}

/// A progressive campaign of 50 contacts behind one trunk (SIPp `campaign_contact.xml`:
/// numbers ending in 1 are busy, in 2 never answer, the others are persons who say
/// "hello" and talk 4 s), five agents whose phones are SIPp UAS instances, AMD on. Every
/// contact ends in its correct final state, the do-not-call numbers are never dialed,
/// every person was bridged to an agent's phone, and no contact is dialed twice.
#[test]
fn a_progressive_campaign_of_fifty_contacts_finishes_with_every_contact_final() {
    require_isolated_network();
    let dir = TempDir::new("campaign-fifty");
    let dnc_file = dir.path().join("dnc.txt");
    // Two persons on the do-not-call list (numbers ending in 3).
    std::fs::write(&dnc_file, "601000003\n601000013\n").unwrap();
    let ports = Ports::block(40);
    // One SIPp UAS is every agent's phone (each agent's URI names it), SIPp contacts on
    // another; each SIPp's media ports are its SIP port + 2 and up.
    let (contact_port, phone_port, phone_control) = (ports.peer(0), ports.peer(8), ports.peer(14));
    let agents = ["alice", "bob", "carol", "dave", "erin"];
    let mut cfg = ServerConfig::new(ports);
    let mut extra = format!(
        "\n[ivr]\nprompt_dir = \"{prompts}\"\n\n\
         [[trunks]]\nname = \"pstn\"\nhost = \"127.0.0.1:{contact_port}\"\n\n\
         [[acd.queues]]\nname = \"sales\"\nskills = {{ sales = 1 }}\n\n\
         [dialer]\ndnc_file = \"{dnc}\"\ndefault_country = \"PL\"\n\n\
         [[campaigns]]\nname = \"fifty\"\nmode = \"progressive\"\nqueue = \"sales\"\n\
         trunk = \"pstn\"\ncaller_id = \"+48221234567\"\ndefault_country = \"PL\"\n\
         timezone = \"UTC\"\nwindow = {{ from = \"00:00\", to = \"24:00\" }}\n\
         ring_timeout_s = 15\n\
         retry = {{ busy = {{ delay_s = 60, max = 0 }}, no_answer = {{ delay_s = 60, max = 0 }} }}\n",
        prompts = prompts_dir().display(),
        dnc = dnc_file.display(),
    );
    for id in agents {
        extra.push_str(&format!(
            "\n[[acd.agents]]\nid = \"{id}\"\ntoken = \"tok-{id}\"\nskills = {{ sales = 1 }}\n\
             phone = {{ uri = \"sip:{id}@127.0.0.1:{phone_port}\" }}\n"
        ));
    }
    cfg.extra = extra;
    let server = Server::start(cfg);
    let csv = server.dir().join("fifty.csv");
    let mut text = String::from("phone,name\n");
    for n in 0..50 {
        text.push_str(&format!("6010000{n:02},Contact {n}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let loaded = campaign(&server, &["load", "fifty", csv.to_str().unwrap()]);
    assert!(loaded.contains("added: 50"), "{loaded}");

    let contact = Sipp::new(&server, "campaign_contact.xml")
        .local_port(contact_port)
        .pcaps()
        .calls(48)
        .timeout(Duration::from_secs(240));
    let contacts = std::thread::spawn(move || contact.run());
    let phones = Sipp::new(&server, "bridge_uas_answer.xml")
        .local_port(phone_port)
        .pcaps()
        .calls(100)
        .arg("-cp")
        .arg(phone_control)
        .timeout(Duration::from_secs(240));
    let phones = std::thread::spawn(move || phones.run());
    std::thread::sleep(Duration::from_millis(500));
    for id in agents {
        caruso_e2e::acd::login_ready(&server, &format!("tok-{id}"));
    }
    let started = Instant::now();
    assert_eq!(
        campaign(&server, &["start", "fifty"]).trim(),
        "state: running"
    );
    let deadline = started + Duration::from_secs(200);
    let status = loop {
        let s = campaign(&server, &["status", "fifty"]);
        if value(&s, "state").as_deref() == Some("finished") || Instant::now() >= deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let took = started.elapsed();
    let contact = contacts.join().expect("contact thread");
    caruso_e2e::acd::sipp_quit(phone_control);
    let phones = phones.join().expect("phones thread");
    let ctx = format!(
        "finished after {took:.1?}\n{status}\n--- contacts ---\n{contact}\n--- phones ---\n{phones}\n--- server log ---\n{}",
        server.log_tail(60)
    );
    assert_eq!(
        value(&status, "state").as_deref(),
        Some("finished"),
        "{ctx}"
    );
    // 50 contacts: 2 on the do-not-call list, 5 busy (…1), 5 never answer (…2), 38
    // persons (AMD human or unknown, both go to an agent).
    assert_eq!(number(&status, "contacts"), 50, "{ctx}");
    assert_eq!(number(&status, "contacts_left"), 0, "{ctx}");
    assert_eq!(number(&status, "dnc_skipped"), 2, "{ctx}");
    assert_eq!(
        number(&status, "dialed"),
        48,
        "one dial each, no re-dial\n{ctx}"
    );
    assert_eq!(number(&status, "busy"), 5, "{ctx}");
    assert_eq!(number(&status, "no_answer"), 5, "{ctx}");
    assert_eq!(number(&status, "human"), 38, "{ctx}");
    assert_eq!(number(&status, "abandoned"), 0, "{ctx}");
    assert_eq!(number(&status, "failed"), 0, "{ctx}");
    assert!(
        contact.all_succeeded(48),
        "every contact call went its way\n{ctx}"
    );

    // The supervisor's wallboard shows the campaign's final figures.
    let board = run(&server, &["monitor", "--token", SUPERVISOR_TOKEN, "--once"]);
    let board = String::from_utf8_lossy(&board.stdout).into_owned();
    let row = board
        .lines()
        .find(|l| l.starts_with("fifty "))
        .unwrap_or_else(|| panic!("no campaign row on the wallboard:\n{board}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    // CAMPAIGN STATE DIALED LIVE HUMAN MACHINE NO-ANS ABANDON ABANDON% LEFT
    assert_eq!(
        (cols[1], cols[2], cols[4], cols[9]),
        ("finished", "48", "38", "0"),
        "{board}"
    );

    // What the contacts' side saw: each number dialed once, never a do-not-call one.
    let dir = caruso_e2e::acd::run_dir(&server, "campaign_contact.xml", contact_port);
    let dialed: Vec<String> = caruso_e2e::acd::sipp_messages(&dir)
        .into_iter()
        .filter(|m| m.received && m.is_request("INVITE"))
        .filter_map(|m| {
            let user = m.start.split("sip:").nth(1)?.split('@').next()?.to_owned();
            Some((m.header("Call-ID")?.to_owned(), user))
        })
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_values()
        .collect();
    let unique: std::collections::BTreeSet<&String> = dialed.iter().collect();
    assert_eq!(dialed.len(), 48, "{dialed:?}");
    assert_eq!(unique.len(), 48, "no number dialed twice: {dialed:?}");
    for dnc in ["+48601000003", "+48601000013"] {
        assert!(
            !unique.contains(&dnc.to_string()),
            "{dnc} was dialed: {dialed:?}"
        );
    }
    // Every person reached an agent's phone, shared among the five agents.
    assert_eq!(phones.successful(), 38, "--- phones ---\n{phones}\n{ctx}");
    assert_eq!(phones.failed(), 0, "--- phones ---\n{phones}\n{ctx}");
    let dir = caruso_e2e::acd::run_dir(&server, "bridge_uas_answer.xml", phone_port);
    let per_agent: std::collections::BTreeMap<String, usize> = caruso_e2e::acd::sipp_messages(&dir)
        .into_iter()
        .filter(|m| m.received && m.is_request("INVITE"))
        .filter_map(|m| {
            let user = m.start.split("sip:").nth(1)?.split('@').next()?.to_owned();
            Some((m.header("Call-ID")?.to_owned(), user))
        })
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_values()
        .fold(Default::default(), |mut acc, user| {
            *acc.entry(user).or_default() += 1;
            acc
        });
    eprintln!("calls per agent: {per_agent:?}; finished after {took:.1?}");
    assert_eq!(per_agent.values().sum::<usize>(), 38, "{per_agent:?}");
    assert!(
        per_agent.len() >= 3 && per_agent.keys().all(|a| agents.contains(&a.as_str())),
        "the calls went to several of the five agents: {per_agent:?}"
    );
}
