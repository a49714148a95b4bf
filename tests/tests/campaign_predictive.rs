//! A predictive campaign end to end through the `caruso` binary: the pacer dials ahead of
//! its agents, answering machines get the machine message after their beep, persons
//! reach agents, and an over-dial abandons persons, who hear the safe-harbor prompt.
//!
//! Peers: one SIPp UAS behind the campaign's trunk is every contact
//! (`campaign_predictive_contact.xml`: by the number's last digit busy, never answering,
//! an answering machine, or a person); one SIPp UAS at the address where the three
//! agents' phones registered (`campaign_agent_phone.xml`: answers, plays known audio,
//! hangs up after 3 s, or 14 s for the second phase's contacts). The agents log in and
//! become ready over gRPC (`caruso-agent`); the figures come from `caruso-agent campaign
//! status`; tcpdump records the RTP both SIPps receive and send, split per call by
//! caruso's RTP port (in the SDP of each INVITE the SIPps logged).
//!
//! Phase 1: five special contacts (two machines, two busy lines, one that rings out) and
//! ten persons. Until ten persons have been answered the abandoned-call window has no
//! room (target 10 %: the tenth person makes room for one abandon), so the pacer dials
//! only for ready agents and nobody is abandoned; the campaign finishes.
//!
//! Phase 2: seven more persons are loaded (the campaign runs again) while the three
//! agents are ready: the pacer over-dials (more dials at once than ready agents; every
//! one is a person here), the persons without an agent within 2 s hear the safe-harbor
//! prompt and are counted abandoned (in the pacing window as soon as they are left, not
//! when the prompt ends; their agents' calls last 17 s). Once an abandon is counted the
//! window has no room any more: every later dial waits for a ready agent and has it.

use caruso_e2e::acd::{
    self, campaign, register_phone, registered_agent, run_dir, sipp_messages,
    status_number as number, status_value as value,
};
use caruso_e2e::audio::*;
use caruso_e2e::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const AGENTS: [(&str, &str); 3] = [("alice", "2001"), ("bob", "2002"), ("carol", "2003")];

/// The special contacts, dialed first (what each is: by its last digit).
const SPECIAL: [&str; 5] = [
    "601000003", // a machine
    "601000011", // busy
    "601000013", // a machine
    "601000002", // rings out
    "601000021", // busy
];
/// Persons of the first phase (no number ends in 1, 2 or 3).
const PHASE1: [&str; 10] = [
    "601000004",
    "601000005",
    "601000006",
    "601000007",
    "601000008",
    "601000009",
    "601000010",
    "601000014",
    "601000015",
    "601000016",
];
/// Persons of the second phase (the agent phone talks 17 s to 60100090[4-8]).
const PHASE2: [&str; 7] = [
    "601000904",
    "601000905",
    "601000906",
    "601000907",
    "601000908",
    "601000909",
    "601000910",
];

fn config(ports: Ports, contact_port: u16) -> ServerConfig {
    let mut cfg = ServerConfig::new(ports);
    let mut extra = format!(
        "\n[ivr]\nprompt_dir = \"{prompts}\"\n\n\
         [sip.registrar]\nalgorithms = [\"MD5\"]\n\n\
         [[trunks]]\nname = \"pstn\"\nhost = \"127.0.0.1:{contact_port}\"\n\n\
         [[acd.queues]]\nname = \"sales\"\nskills = {{ sales = 1 }}\nwrap_up_s = 0\n",
        prompts = prompts_dir().display(),
    );
    for (id, user) in AGENTS {
        extra.push_str(&registered_agent(id, "sales = 1", user, ""));
    }
    extra.push_str(
        "\n[dialer]\ndefault_country = \"PL\"\n\n\
         [[campaigns]]\nname = \"ahead\"\nmode = \"predictive\"\nqueue = \"sales\"\n\
         trunk = \"pstn\"\ncaller_id = \"+48221234567\"\ndefault_country = \"PL\"\n\
         timezone = \"UTC\"\nwindow = { from = \"00:00\", to = \"24:00\" }\n\
         ring_timeout_s = 15\n\
         abandon = { target_percent = 10.0, window = \"24h\" }\n\
         safe_harbor = \"campaign-safe-harbor\"\n\
         retry = { busy = { delay_s = 60, max = 0 }, no_answer = { delay_s = 60, max = 0 }, \
         abandoned = { delay_s = 259200, max = 0 } }\n\
         machine = { action = \"message\", prompt = \"campaign-machine-message\" }\n",
    );
    cfg.extra = extra;
    cfg
}

/// One call a SIPp received: the Call-ID, the number (or caller) it names, and the RTP
/// port caruso offered in the INVITE's SDP.
#[derive(Debug, Clone)]
struct Leg {
    call_id: String,
    user: String,
    caruso_port: u16,
}

/// The INVITEs a SIPp run received (one per Call-ID): `user_of` picks the number.
fn legs(dir: &std::path::Path, user_of: impl Fn(&acd::SippMessage) -> Option<String>) -> Vec<Leg> {
    let mut seen = BTreeMap::new();
    for m in sipp_messages(dir) {
        if !(m.received && m.is_request("INVITE")) {
            continue;
        }
        let Some(call_id) = m.header("Call-ID").map(str::to_owned) else {
            continue;
        };
        if seen.contains_key(&call_id) {
            continue;
        }
        let port = m
            .text
            .lines()
            .find_map(|l| l.trim().strip_prefix("m=audio "))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|p| p.parse().ok());
        if let (Some(user), Some(caruso_port)) = (user_of(&m), port) {
            seen.insert(
                call_id.clone(),
                Leg {
                    call_id,
                    user,
                    caruso_port,
                },
            );
        }
    }
    seen.into_values().collect()
}

fn user_in(uri_part: &str) -> Option<String> {
    Some(uri_part.split("sip:").nth(1)?.split('@').next()?.to_owned())
}

/// The packets between caruso's `port` and the SIPp's media port `peer`: (to the SIPp,
/// from the SIPp).
fn split(packets: &[RtpPacket], port: u16, peer: u16) -> (Vec<RtpPacket>, Vec<RtpPacket>) {
    let to: Vec<RtpPacket> = packets
        .iter()
        .filter(|p| p.src_port == port && p.dst_port == peer)
        .cloned()
        .collect();
    let from: Vec<RtpPacket> = packets
        .iter()
        .filter(|p| p.src_port == peer && p.dst_port == port)
        .cloned()
        .collect();
    (to, from)
}

/// How many of the one-second pieces of `prompt` (the pieces with speech in them) occur
/// in the µ-law `stream`, of how many.
fn coverage(stream: &[u8], prompt: &[i16]) -> (usize, usize) {
    let pieces: Vec<&[i16]> = prompt
        .chunks(8000)
        .filter(|c| c.len() >= 2000 && c.iter().filter(|s| s.unsigned_abs() > 2000).count() > 400)
        .collect();
    let found = pieces
        .iter()
        .filter(|p| !find_all(stream, p).is_empty())
        .count();
    (found, pieces.len())
}

/// Whether a packet carries sound (a tenth of its samples loud).
fn loud_packet(p: &RtpPacket) -> bool {
    p.pt == 0
        && p.payload
            .iter()
            .filter(|&&c| ulaw_decode(c).unsigned_abs() > 1000)
            .count()
            * 10
            >= p.payload.len().max(1)
}

/// Where the beep starts in `tests/pcap/amd_machine.pcap`, in seconds after its first
/// packet: the last loud stretch after at least 250 ms of quiet.
fn machine_beep_offset() -> f64 {
    let packets = test_pcap("amd_machine.pcap");
    let samples = decoded(&packets, 0);
    let mut last_loud: Option<usize> = None;
    let mut start = 0;
    for (i, s) in samples.iter().enumerate() {
        if s.unsigned_abs() > 1000 {
            if last_loud.is_none_or(|l| i - l > 2000) {
                start = i;
            }
            last_loud = Some(i);
        }
    }
    start as f64 / 8000.0
}

#[test]
fn a_predictive_campaign_leaves_machine_messages_reaches_persons_and_abandons_over_dialed_ones() {
    require_isolated_network();
    let ports = Ports::block(160);
    let (contact_port, phone_port, phone_control) = (ports.peer(0), ports.peer(8), ports.peer(14));
    let server = Server::start(config(ports, contact_port));
    for (_, user) in AGENTS {
        register_phone(&server, phone_port, user, &format!("pw-{user}"));
    }
    let load = |name: &str, numbers: &[&str]| {
        let csv = server.dir().join(name);
        let mut text = String::from("phone,name\n");
        for n in numbers {
            text.push_str(&format!("{n},Contact {n}\n"));
        }
        std::fs::write(&csv, text).unwrap();
        let loaded = campaign(&server, &["load", "ahead", csv.to_str().unwrap()]);
        assert!(
            loaded.contains(&format!("added: {}", numbers.len())),
            "{loaded}"
        );
    };
    let first: Vec<&str> = SPECIAL.iter().chain(&PHASE1).copied().collect();
    load("phase1.csv", &first);
    let all = SPECIAL.len() + PHASE1.len() + PHASE2.len();

    let contacts = Sipp::new(&server, "campaign_predictive_contact.xml")
        .local_port(contact_port)
        .pcaps()
        .calls(all as u32)
        .timeout(Duration::from_secs(120));
    let contact_media = contacts.media_port();
    let phones = Sipp::new(&server, "campaign_agent_phone.xml")
        .local_port(phone_port)
        .pcaps()
        .calls(100)
        .arg("-cp")
        .arg(phone_control)
        .timeout(Duration::from_secs(120));
    let phone_media = phones.media_port();
    let cap_contacts =
        RtpCapture::start(&format!("udp and host 127.0.0.1 and port {contact_media}"));
    let cap_phones = RtpCapture::udp_to(phone_media);
    let contacts = std::thread::spawn(move || contacts.run());
    let phones = std::thread::spawn(move || phones.run());
    std::thread::sleep(Duration::from_millis(500));
    for (id, _) in AGENTS {
        acd::login_ready(&server, &format!("tok-{id}"));
    }

    let started = Instant::now();
    assert_eq!(
        campaign(&server, &["start", "ahead"]).trim(),
        "state: running"
    );
    let finished = |limit: Duration| {
        let deadline = Instant::now() + limit;
        loop {
            let s = campaign(&server, &["status", "ahead"]);
            if value(&s, "state").as_deref() == Some("finished") || Instant::now() >= deadline {
                break s;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    };

    // Phase 1: no room in the window, no abandon.
    let status1 = finished(Duration::from_secs(50));
    let phase1_took = started.elapsed();
    let ctx1 = format!("{status1}\n--- server log ---\n{}", server.log_tail(60));
    assert_eq!(
        value(&status1, "state").as_deref(),
        Some("finished"),
        "{ctx1}"
    );
    assert_eq!(number(&status1, "human"), PHASE1.len() as u64, "{ctx1}");
    assert_eq!(number(&status1, "abandoned"), 0, "{ctx1}");

    // Phase 2: the agents are ready; the new contacts make the campaign run again.
    for (id, _) in AGENTS {
        let st = acd::wait_state(
            &server,
            &format!("tok-{id}"),
            "ready",
            Duration::from_secs(10),
        );
        assert_eq!(acd::field(&st, "state").as_deref(), Some("ready"), "{st}");
    }
    load("phase2.csv", &PHASE2);
    let status = finished(Duration::from_secs(60));
    let took = started.elapsed();
    let contacts = contacts.join().expect("contacts thread");
    acd::sipp_quit(phone_control);
    let phones = phones.join().expect("phones thread");
    std::thread::sleep(Duration::from_millis(200));
    let (contact_rtp, phone_rtp) = (cap_contacts.finish(), cap_phones.finish());
    let log = server.log_tail(100_000);
    let ctx = format!(
        "after {took:.1?} (phase 1: {phase1_took:.1?})\n{status}\n--- contacts ---\n{contacts}\n--- phones ---\n{phones}\n--- server log (tail) ---\n{}",
        server.log_tail(80)
    );

    // The campaign's figures: every contact final, each dialed once.
    assert_eq!(
        value(&status, "mode").as_deref(),
        Some("predictive"),
        "{ctx}"
    );
    assert_eq!(
        value(&status, "state").as_deref(),
        Some("finished"),
        "{ctx}"
    );
    assert_eq!(number(&status, "contacts"), all as u64, "{ctx}");
    assert_eq!(number(&status, "contacts_left"), 0, "{ctx}");
    assert_eq!(
        number(&status, "dialed"),
        all as u64,
        "one dial each\n{ctx}"
    );
    assert_eq!(number(&status, "busy"), 2, "{ctx}");
    assert_eq!(number(&status, "no_answer"), 1, "{ctx}");
    assert_eq!(number(&status, "machine"), 2, "{ctx}");
    assert_eq!(number(&status, "failed"), 0, "{ctx}");
    let (human, abandoned) = (number(&status, "human"), number(&status, "abandoned"));
    let persons = (PHASE1.len() + PHASE2.len()) as u64;
    assert_eq!(human + abandoned, persons, "{ctx}");
    assert!(abandoned >= 1, "the over-dial abandoned a person\n{ctx}");
    assert_eq!(number(&status, "answered"), human + abandoned + 2, "{ctx}");
    let rate = value(&status, "abandon_rate_percent")
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(-1.0);
    let want = 100.0 * abandoned as f64 / (human + abandoned) as f64;
    assert!(
        (rate - want).abs() < 0.01,
        "abandoned rate {rate} % = {abandoned} / {} persons\n{ctx}",
        human + abandoned
    );
    assert!(
        contacts.all_succeeded(all as u64),
        "every contact call went its way\n{ctx}"
    );
    assert_eq!(phones.failed(), 0, "{ctx}");
    assert_eq!(
        phones.successful(),
        human,
        "one agent call per person reached\n{ctx}"
    );

    // How each dial ended, by its Call-ID (the call actor's span names it).
    let result_of = |call_id: &str| -> Option<&str> {
        log.lines()
            .find(|l| l.contains(call_id) && l.contains("dial done"))
    };
    let contact_legs = legs(
        &run_dir(&server, "campaign_predictive_contact.xml", contact_port),
        |m| user_in(&m.start),
    );
    assert_eq!(contact_legs.len(), all, "{contact_legs:?}\n{ctx}");
    let ports_used: std::collections::BTreeSet<u16> =
        contact_legs.iter().map(|l| l.caruso_port).collect();
    assert_eq!(
        ports_used.len(),
        all,
        "one RTP port per contact call (no reuse)"
    );
    let phone_legs = legs(
        &run_dir(&server, "campaign_agent_phone.xml", phone_port),
        |m| user_in(m.header("From")?),
    );

    // Machines: the machine message after the beep, all of it.
    let beep_offset = machine_beep_offset();
    let message = default_prompt("campaign-machine-message");
    let message_secs = message.len() as f64 / 8000.0;
    let harbor = default_prompt("campaign-safe-harbor");
    let agent_audio = decoded(&test_pcap("bridge_callee_pcmu.pcap"), 0);
    let agent_start = agent_audio
        .iter()
        .position(|s| s.unsigned_abs() > 500)
        .unwrap_or(0)
        + 800;
    let agent_piece = &agent_audio[agent_start..(agent_start + 8000).min(agent_audio.len())];
    let (mut reached, mut left) = (Vec::new(), Vec::new());
    for leg in &contact_legs {
        let (to, from) = split(&contact_rtp, leg.caruso_port, contact_media);
        let stream = pcmu_stream(&to);
        let done = result_of(&leg.call_id).unwrap_or("");
        let who = format!("{} ({}): {done}", leg.user, leg.call_id);
        match leg.user.chars().last() {
            Some('1') => assert!(done.contains("result=Busy"), "{who}\n{ctx}"),
            Some('2') => assert!(done.contains("result=NoAnswer"), "{who}\n{ctx}"),
            Some('3') => {
                assert!(
                    done.contains("result=Machine { message_left: true }"),
                    "{who}\n{ctx}"
                );
                let first_in = from
                    .iter()
                    .map(|p| p.time)
                    .min_by(f64::total_cmp)
                    .unwrap_or_else(|| panic!("no audio from the machine {who}"));
                let beep_at = first_in + beep_offset;
                let loud: Vec<f64> = to
                    .iter()
                    .filter(|p| loud_packet(p))
                    .map(|p| p.time)
                    .collect();
                let (first, last) = (
                    loud.iter().copied().fold(f64::MAX, f64::min),
                    loud.iter().copied().fold(f64::MIN, f64::max),
                );
                assert!(
                    !loud.is_empty() && first >= beep_at,
                    "the message starts after the beep ({:.2} s after it): {who}",
                    first - beep_at
                );
                assert!(
                    last - first >= message_secs * 0.85,
                    "the message plays whole: {:.2} s of {message_secs:.2} s: {who}",
                    last - first
                );
                let (found, of) = coverage(&stream, &message);
                assert!(
                    found * 10 >= of * 8 && of >= 5,
                    "the machine message reached the machine: {found} of {of} seconds: {who}"
                );
                let (sh, _) = coverage(&stream, &harbor);
                assert_eq!(sh, 0, "no safe harbor for a machine: {who}");
            }
            _ => {
                let (sh, of) = coverage(&stream, &harbor);
                let heard_agent = !find_all(&stream, agent_piece).is_empty();
                if done.contains("result=Abandoned") {
                    assert!(
                        found_most(sh, of) && !heard_agent,
                        "an abandoned person hears the whole safe-harbor prompt ({sh} of {of} s) and no agent: {who}"
                    );
                    let loud = to.iter().filter(|p| loud_packet(p)).count() as f64 * 0.02;
                    let harbor_secs = harbor.len() as f64 / 8000.0;
                    assert!(
                        loud >= harbor_secs * 0.6,
                        "{loud:.1} s of sound for a {harbor_secs:.1} s prompt: {who}"
                    );
                    left.push(leg.clone());
                } else {
                    assert!(done.contains("result=Connected"), "{who}\n{ctx}");
                    assert!(heard_agent, "a reached person hears the agent: {who}");
                    assert_eq!(sh, 0, "no safe harbor for a reached person: {who}");
                    // The agent's phone got this person (From: the contact's number) and
                    // hears them.
                    let agent_leg = phone_legs
                        .iter()
                        .find(|a| {
                            leg.user.ends_with(a.user.trim_start_matches('+')) || a.user == leg.user
                        })
                        .unwrap_or_else(|| panic!("no agent call for {who}\n{phone_legs:?}"));
                    let (to_phone, _) = split(&phone_rtp, agent_leg.caruso_port, phone_media);
                    let heard = decoded(&to_phone, 0);
                    assert!(
                        heard.iter().filter(|s| s.unsigned_abs() > 1000).count() > 2000,
                        "the agent hears the person: {who}"
                    );
                    reached.push(leg.clone());
                }
            }
        }
    }
    assert_eq!(reached.len() as u64, human, "{ctx}");
    assert_eq!(left.len() as u64, abandoned, "{ctx}");
    // Nobody of the first phase is abandoned: no room in the window before ten persons.
    for l in &left {
        assert!(
            PHASE2.iter().any(|n| l.user.ends_with(n)),
            "{} abandoned before the window had room\n{ctx}",
            l.user
        );
    }

    // The over-dial: the contacts' side got more INVITEs of phase 2 within 2 s of the
    // first one (before any of them could have ended) than there were ready agents.
    let invites2: Vec<(f64, String)> = sipp_messages(&run_dir(
        &server,
        "campaign_predictive_contact.xml",
        contact_port,
    ))
    .into_iter()
    .filter(|m| m.received && m.is_request("INVITE"))
    .filter(|m| PHASE2.iter().any(|n| m.start.contains(n)))
    .filter_map(|m| Some((m.at, m.header("Call-ID")?.to_owned())))
    .collect();
    let first2 = invites2.iter().map(|(t, _)| *t).fold(f64::MAX, f64::min);
    let burst = invites2
        .iter()
        .filter(|(t, _)| *t < first2 + 2.0)
        .map(|(_, c)| c.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert!(
        burst > AGENTS.len(),
        "{burst} dials at once for {} ready agents\n{ctx}",
        AGENTS.len()
    );

    // The dialer slows down: once an abandon is recorded, the window has no room and no
    // dial placed afterwards is abandoned.
    let lines: Vec<&str> = log.lines().collect();
    let first_recorded = lines
        .iter()
        .position(|l| {
            l.contains("person abandoned: counted in the window now")
                || (l.contains("dial ended") && l.contains("Abandoned"))
        })
        .unwrap_or_else(|| panic!("no abandon recorded\n{ctx}"));
    let later: Vec<&str> = lines[first_recorded..]
        .iter()
        .filter(|l| l.contains("dialing a contact"))
        .filter_map(|l| contact_legs.iter().find(|c| l.contains(&c.call_id)))
        .map(|c| c.call_id.as_str())
        .collect();
    assert!(
        !later.is_empty(),
        "the remaining persons were dialed after an abandon was recorded\n{ctx}"
    );
    for call_id in &later {
        assert!(
            !left.iter().any(|l| l.call_id == *call_id),
            "{call_id} was dialed after an abandon was recorded, and abandoned too\n{ctx}"
        );
    }
    eprintln!(
        "predictive: {human} reached, {abandoned} abandoned ({rate:.2} %), {burst} dials at once for {} agents, {} dials after the first abandon was recorded; phase 1 {phase1_took:.1?}, finished after {took:.1?}",
        AGENTS.len(),
        later.len()
    );
}

/// At least 80 % of the pieces, of at least five.
fn found_most(found: usize, of: usize) -> bool {
    of >= 5 && found * 10 >= of * 8
}
