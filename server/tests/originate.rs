//! End-to-end test of the dialer's call side: a real SIP endpoint, the ACD task and
//! `CallOriginator` in this process (127.0.0.1 only), real SIPp UAS instances as the
//! called contacts and as the agent's phone.
//!
//! The contacts, one trunk each:
//! - a person (`dial_contact_talk.xml`): says "hello" then waits (AMD: human), is offered
//!   to the agent alice through the ACD (her Offered event carries the contact's number
//!   and the dial's variables), bridged to her phone (SIPp `bridge_uas_answer.xml`):
//!   audio both ways (tcpdump on both SIPp media ports), hangs up after 6 s ->
//!   `Connected`, `Done(Connected{alice, human})`;
//! - a busy line (`bridge_uas_busy.xml`, 486) -> `Done(Busy)`;
//! - a phone that rings forever (`bridge_uas_noanswer.xml`): CANCEL after the 15 s
//!   ring timeout -> `Done(NoAnswer)`;
//! - an answering machine (`dial_contact_machine.xml`): a long greeting then a beep ->
//!   `Answered{machine}`, the message plays after the beep, BYE ->
//!   `Done(Machine{message_left: true})`;
//! - a person routed to a queue nobody staffs (`dial_contact_listen.xml`): no agent
//!   within 2 s -> safe-harbor prompt, BYE -> `Done(Abandoned{human})`;
//! - agentless: a person hears a prompt -> `Done(Played{human})`; another one an IVR
//!   flow (play, then hang up), whose audio it receives -> `Done(Played{human})`;
//! - a dial through a trunk that does not exist -> `Done(Failed)` at once.
//!
//! Ignored by a plain `cargo test` (the host's unit-test pass), and refuses to run
//! outside a network namespace whose only interface is `lo` (like the e2e crate):
//! `ip netns exec NS cargo test -p caruso --test originate -- --ignored`.
//! Needs `sipp` and `tcpdump` (tests/run-all.sh installs them).

use caruso::acd::api::{AcdCommand, AgentEvent};
use caruso::acd::task::AcdTask;
use caruso::call::endpoint::{Counters, Endpoint};
use caruso::call::originate::CallOriginator;
use caruso::call::CallContext;
use caruso::config::Config;
use caruso::dialer::amd::{AmdOutcome, AmdParams};
use caruso::dialer::campaign::{CallResult, DialRequest};
use caruso::dialer::config::{AgentlessAction, MachineAction};
use caruso::dialer::originate::{HumanRoute, Originate, OriginateEvent, Originator};
use caruso::dialer::phone::E164;
use caruso::media::wav::Prompt;
use caruso::sip::transaction::TimerConfig;
use caruso::sip::transport::{self, TransportSettings};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

const SIP: u16 = 25060;
const AGENT: u16 = 25100;
const TALK: u16 = 25110;
const BUSY: u16 = 25120;
const NOANSWER: u16 = 25130;
const MACHINE: u16 = 25140;
const LISTEN: u16 = 25150;
const AGENTLESS: u16 = 25160;
const FLOW: u16 = 25170;

fn require_isolated_network() {
    if std::env::var("CARUSO_E2E_ALLOW_HOST_NET").as_deref() == Ok("1") {
        return;
    }
    let text = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
    let others: Vec<String> = text
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim().to_string()))
        .filter(|n| n != "lo")
        .collect();
    assert!(
        others.is_empty(),
        "this test places calls: run it in a loopback-only network namespace \
         (ip netns exec ...); interfaces besides lo: {others:?}"
    );
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// One SIPp UAS taking one call, run in its own directory (with `pcap` linked).
struct Uas {
    name: &'static str,
    child: Child,
    dir: PathBuf,
}

impl Uas {
    fn start(root: &Path, scenario: &'static str, port: u16) -> Uas {
        let dir = root.join(format!("{}-{port}", scenario.trim_end_matches(".xml")));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::os::unix::fs::symlink(repo().join("tests/pcap"), dir.join("pcap"));
        std::fs::copy(repo().join("tests/sipp").join(scenario), dir.join(scenario)).unwrap();
        let child = Command::new("sipp")
            .current_dir(&dir)
            .arg(format!("127.0.0.1:{SIP}")) // [remote_ip]:[remote_port] of a BYE we send
            .args(["-sf", scenario])
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-p", &port.to_string(), "-mp", &(port + 2).to_string()])
            .args(["-m", "1", "-t", "u1"])
            .args(["-timeout", "60s", "-timeout_error"])
            .args(["-nostdin", "-trace_err", "-trace_msg"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp not found: install sip-tester (tests/run-all.sh does)");
        Uas {
            name: scenario,
            child,
            dir,
        }
    }

    /// Waits for SIPp to exit (at most `limit`); whether its call succeeded, and its
    /// message log for the failure text.
    fn finish(mut self, limit: Duration) -> (bool, String) {
        let start = Instant::now();
        let status = loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                break Some(s);
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut log = String::new();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if n.ends_with("_errors.log") || n.ends_with("_messages.log") {
                    let t = std::fs::read_to_string(e.path()).unwrap_or_default();
                    let tail: String = t
                        .chars()
                        .rev()
                        .take(3000)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    log.push_str(&format!("--- {n}\n{tail}\n"));
                }
            }
        }
        (
            status.is_some_and(|s| s.success()),
            format!("{} ({status:?})\n{log}", self.name),
        )
    }
}

/// A tcpdump on `lo` of the UDP packets sent to one port (the media port of a SIPp).
struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    /// Starts tcpdump and waits until it listens (10 s at most).
    fn to_port(dir: &Path, port: u16) -> Capture {
        use std::io::BufRead;
        let file = dir.join(format!("to-{port}.pcap"));
        let mut child = Command::new("tcpdump")
            .args(["-i", "lo", "-n", "-U", "-s", "0", "-Q", "in", "-w"])
            .arg(&file)
            .arg(format!("udp and dst host 127.0.0.1 and dst port {port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump not found: install it (tests/run-all.sh does)");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("tcpdump did not start listening");
        Capture { child, file }
    }

    /// Stops tcpdump (SIGINT: it flushes) and returns the PCMU payloads of the RTP
    /// packets captured, decoded, in arrival order.
    fn finish(mut self) -> Vec<i16> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        pcmu_of_pcap(&std::fs::read(&self.file).unwrap_or_default())
    }
}

/// The decoded PCMU (payload type 0) of every RTP packet in a tcpdump file (Ethernet
/// link type, IPv4, UDP).
fn pcmu_of_pcap(b: &[u8]) -> Vec<i16> {
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let len = u32_at(at + 8);
        let pkt = &b[at + 16..(at + 16 + len).min(b.len())];
        at += 16 + len;
        if pkt.len() < 14 + 20 + 8 + 12 {
            continue;
        }
        let ip = &pkt[14..];
        let udp = &ip[usize::from(ip[0] & 0x0f) * 4..];
        let rtp = &udp[8..];
        if rtp.len() < 12 || rtp[0] >> 6 != 2 || rtp[1] & 0x7f != 0 {
            continue;
        }
        let head = 12 + usize::from(rtp[0] & 0x0f) * 4;
        out.extend(rtp.get(head..).unwrap_or(&[]).iter().map(|&c| ulaw(c)));
    }
    out
}

/// G.711 µ-law decoding.
fn ulaw(c: u8) -> i16 {
    let u = !c;
    let exp = (u >> 4) & 0x07;
    let mant = i32::from(u & 0x0f);
    let mag = (((mant << 3) + 0x84) << exp) - 0x84;
    (if u & 0x80 != 0 { -mag } else { mag }) as i16
}

/// How many samples are loud (speech or tone, not silence or comfort noise).
fn loud(samples: &[i16]) -> usize {
    samples.iter().filter(|s| s.unsigned_abs() > 1000).count()
}

/// A failed assertion must not leave SIPp or tcpdump running.
impl Drop for Uas {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path) -> Config {
    // The flow's prompt, as a file (flows are validated against the prompt directory).
    let prompts = dir.join("prompts");
    std::fs::create_dir_all(&prompts).unwrap();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(prompts.join("offer.wav"), spec).unwrap();
    for s in tone(1.0).samples() {
        w.write_sample(*s).unwrap();
    }
    w.finalize().unwrap();
    let mut text = format!(
        "[server]\ndata_dir = \"{data}\"\n\n\
         [ivr]\nprompt_dir = \"{prompts}\"\n\n\
         [flows.offer]\nstart = \"play\"\n\
         [flows.offer.nodes.play]\ntype = \"play\"\nprompts = [\"offer\"]\nnext = \"bye\"\n\
         [flows.offer.nodes.bye]\ntype = \"hangup\"\nprompts = []\n\n\
         [sip]\nudp = \"127.0.0.1:{SIP}\"\nring_timeout_s = 15\n\n\
         [rtp]\nip = \"127.0.0.1\"\nport_min = 26000\nport_max = 26099\n\
         inactivity_timeout_s = 30\n\n\
         [network]\nallow = [\"127.0.0.0/8\"]\n\n\
         [acd]\n\
         [[acd.queues]]\nname = \"sales\"\nskills = {{ sales = 1 }}\nring_timeout_s = 15\n\
         [[acd.queues]]\nname = \"overflow\"\nskills = {{ french = 1 }}\nring_timeout_s = 15\n\
         [[acd.agents]]\nid = \"alice\"\ntoken = \"alice-secret\"\nskills = {{ sales = 1 }}\n\
         phone = {{ uri = \"sip:alice@127.0.0.1:{AGENT}\" }}\n\
         [[acd.agents]]\nid = \"bob\"\ntoken = \"bob-secret\"\nskills = {{ french = 1 }}\n\
         phone = {{ uri = \"sip:bob@127.0.0.1:25190\" }}\n",
        data = dir.join("data").display(),
        prompts = prompts.display()
    );
    for (name, port) in [
        ("talk", TALK),
        ("busy", BUSY),
        ("noanswer", NOANSWER),
        ("machine", MACHINE),
        ("listen", LISTEN),
        ("agentless", AGENTLESS),
        ("flow", FLOW),
    ] {
        text.push_str(&format!(
            "\n[[trunks]]\nname = \"{name}\"\nhost = \"127.0.0.1:{port}\"\n"
        ));
    }
    Config::from_toml(&text, "originate-test.toml", dir).expect("test config")
}

/// A prompt of `secs` of a 500 Hz tone (what the contact hears is not checked here).
fn tone(secs: f32) -> Prompt {
    let n = (secs * 8000.0) as usize;
    Prompt::from_samples(
        (0..n)
            .map(|i| {
                (4000.0 * (2.0 * std::f32::consts::PI * 500.0 * i as f32 / 8000.0).sin()) as i16
            })
            .collect::<Vec<i16>>(),
    )
}

fn dial(trunk: &str, number: &str, route: HumanRoute, machine: MachineAction) -> Originate {
    let mut variables = caruso::ivr::Variables::new();
    variables.insert("contact_name".into(), "Ada Lovelace".into());
    variables.insert("script".into(), "Hello, this is caruso calling".into());
    Originate {
        request: DialRequest {
            campaign: "e2e".into(),
            attempt: 1,
            contact: 1,
            number: E164::from_e164(number).unwrap(),
            caller_id: E164::from_e164("+4930999999").unwrap(),
            trunk: trunk.into(),
            ring_timeout: Duration::from_secs(15),
            agent: None,
            amd: Some(AmdParams::default()),
            variables,
        },
        on_human: route,
        on_machine: machine,
        safe_harbor: Some("safe-harbor".into()),
        abandon_after: Duration::from_secs(2),
    }
}

/// Every event of a dial, up to and including `Done`.
async fn events(mut rx: mpsc::Receiver<OriginateEvent>, limit: Duration) -> Vec<OriginateEvent> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        let done = matches!(ev, OriginateEvent::Done(_));
        out.push(ev);
        if done {
            break;
        }
    }
    out
}

fn done_of(evs: &[OriginateEvent]) -> Option<&CallResult> {
    match evs.last() {
        Some(OriginateEvent::Done(r)) => Some(r),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "places SIP calls: run in a loopback-only netns (ip netns exec NS cargo test -p caruso --test originate -- --ignored)"]
async fn dials_reach_people_agents_machines_busy_lines_and_ring_out() {
    require_isolated_network();
    let root = std::env::temp_dir().join(format!("caruso-originate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let config = config(&root);
    let acd_cfg = config.acd.clone().unwrap();

    // The ACD with alice logged in and ready; bob (overflow) stays logged out.
    let bus = caruso::events::EventBus::default();
    let (acd, calls) = AcdTask::new(acd_cfg, None, bus, Instant::now()).spawn();
    let alice: caruso::acd::AgentId = "alice".into();
    acd.ask(|reply| AcdCommand::LogIn {
        agent: alice.clone(),
        reply,
    })
    .await
    .unwrap();
    acd.ask(|reply| AcdCommand::SetReady {
        agent: alice.clone(),
        reply,
    })
    .await
    .unwrap();
    let mut alice_events = acd
        .ask(|reply| AcdCommand::Subscribe {
            agent: alice.clone(),
            reply,
        })
        .await
        .unwrap();

    let mut library = HashMap::new();
    library.insert("safe-harbor".to_string(), tone(1.0));
    library.insert("machine-message".to_string(), tone(1.0));
    library.insert("offer".to_string(), tone(1.0));
    let config = Arc::new(config);
    let ctx = Arc::new(CallContext {
        library,
        prompts: HashMap::new(),
        registrations: None,
        acd: Some(calls),
        voicemail: None,
        timers: TimerConfig {
            t1: config.sip.t1,
            t2: config.sip.t2,
            t4: config.sip.t4,
        },
        allow: config.allow.clone(),
        hooks: None,
        config: config.clone(),
    });
    let (in_tx, in_rx) = mpsc::channel(1024);
    let settings = TransportSettings {
        max_message_size: config.sip.max_message_size,
        allow: config.allow.clone(),
        server_header: "caruso-test".into(),
    };
    let udp = transport::start_udp(config.sip.udp.unwrap(), settings, in_tx)
        .await
        .expect("bind SIP");
    let endpoint = Endpoint::new(ctx, Some(udp), Arc::new(Counters::default()), None);
    let originator = CallOriginator::new(endpoint.dialer());
    let (stop_tx, stop_rx) = watch::channel(false);
    let endpoint_task = tokio::spawn(endpoint.run(in_rx, stop_rx));

    // What the contact who talks hears, and what the agent's phone hears.
    let to_contact = Capture::to_port(&root, TALK + 2);
    let to_agent = Capture::to_port(&root, AGENT + 2);
    let to_flow = Capture::to_port(&root, FLOW + 2);
    let phone = Uas::start(&root, "bridge_uas_answer.xml", AGENT);
    let talk = Uas::start(&root, "dial_contact_talk.xml", TALK);
    let busy = Uas::start(&root, "bridge_uas_busy.xml", BUSY);
    let noanswer = Uas::start(&root, "bridge_uas_noanswer.xml", NOANSWER);
    let machine = Uas::start(&root, "dial_contact_machine.xml", MACHINE);
    let listen = Uas::start(&root, "dial_contact_listen.xml", LISTEN);
    let agentless = Uas::start(&root, "dial_contact_listen.xml", AGENTLESS);
    let flow = Uas::start(&root, "dial_contact_listen.xml", FLOW);
    tokio::time::sleep(Duration::from_millis(500)).await; // the SIPps listen

    let hang = MachineAction::Hangup;
    let to_alice = HumanRoute::Agent(alice.clone());
    let started = Instant::now();
    let d_talk = originator.originate(dial("talk", "+4930111111", to_alice.clone(), hang.clone()));
    let d_busy = originator.originate(dial("busy", "+4930222222", to_alice.clone(), hang.clone()));
    let d_noanswer = originator.originate(dial(
        "noanswer",
        "+4930333333",
        to_alice.clone(),
        hang.clone(),
    ));
    let d_machine = originator.originate(dial(
        "machine",
        "+4930444444",
        to_alice.clone(),
        MachineAction::Message("machine-message".into()),
    ));
    let d_listen = originator.originate(dial(
        "listen",
        "+4930555555",
        HumanRoute::Queue("overflow".into()),
        hang.clone(),
    ));
    let d_agentless = originator.originate(dial(
        "agentless",
        "+4930777777",
        HumanRoute::Agentless(AgentlessAction::Prompt("offer".into())),
        hang.clone(),
    ));
    let d_flow = originator.originate(dial(
        "flow",
        "+4930888888",
        HumanRoute::Agentless(AgentlessAction::Flow("offer".into())),
        hang.clone(),
    ));
    let d_bad = originator.originate(dial("nosuch", "+4930666666", to_alice.clone(), hang));

    let limit = Duration::from_secs(40);
    let (talk_ev, busy_ev, noanswer_ev, machine_ev, listen_ev, agentless_ev, flow_ev, bad_ev) = tokio::join!(
        events(d_talk, limit),
        events(d_busy, limit),
        events(d_noanswer, limit),
        events(d_machine, limit),
        events(d_listen, limit),
        events(d_agentless, limit),
        events(d_flow, limit),
        events(d_bad, limit),
    );

    // Failed at once: no such trunk.
    assert!(
        matches!(done_of(&bad_ev), Some(CallResult::Failed { reason }) if reason.contains("trunk")),
        "{bad_ev:?}"
    );
    // Busy: 486.
    assert_eq!(done_of(&busy_ev), Some(&CallResult::Busy), "{busy_ev:?}");
    // No answer: rang (180) then CANCEL after the 15 s ring timeout, not before.
    assert_eq!(
        noanswer_ev.first(),
        Some(&OriginateEvent::Ringing),
        "{noanswer_ev:?}"
    );
    assert_eq!(
        done_of(&noanswer_ev),
        Some(&CallResult::NoAnswer),
        "{noanswer_ev:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(15));
    // The person: human, connected to alice, Connected then Done(Connected).
    let key = talk_ev.iter().find_map(|e| match e {
        OriginateEvent::Connected { agent, call } if agent.as_ref() == "alice" => Some(*call),
        _ => None,
    });
    assert!(talk_ev.contains(&OriginateEvent::Ringing), "{talk_ev:?}");
    assert!(
        talk_ev.contains(&OriginateEvent::Answered {
            amd: Some(AmdOutcome::Human)
        }),
        "{talk_ev:?}"
    );
    let key = key.unwrap_or_else(|| panic!("not connected to alice: {talk_ev:?}"));
    assert_eq!(
        done_of(&talk_ev),
        Some(&CallResult::Connected {
            agent: "alice".into(),
            amd: Some(AmdOutcome::Human)
        }),
        "{talk_ev:?}"
    );
    // Bridged both ways: the contact hears the agent's phone (3 s of the known audio;
    // nothing else loud plays to it) and the agent hears the contact's 2 s of talk.
    let (contact_heard, agent_heard) = (to_contact.finish(), to_agent.finish());
    assert!(
        loud(&contact_heard) > 8000,
        "the contact hears the agent: {} loud samples of {}",
        loud(&contact_heard),
        contact_heard.len()
    );
    assert!(
        loud(&agent_heard) > 8000,
        "the agent hears the contact: {} loud samples of {}",
        loud(&agent_heard),
        agent_heard.len()
    );
    // alice was offered that call with the contact's number and the dial's variables.
    let mut offered = None;
    while let Ok(ev) = alice_events.try_recv() {
        if let AgentEvent::Offered {
            call,
            caller_number,
            caller_name,
            data,
            ..
        } = ev
        {
            offered = Some((call, caller_number, caller_name, data));
        }
    }
    let (call, number, name, data) = offered.expect("alice was offered the call");
    assert_eq!(call, key);
    assert_eq!(number, "+4930111111");
    assert_eq!(name, "Ada Lovelace");
    assert_eq!(
        data.get("script").map(String::as_str),
        Some("Hello, this is caruso calling")
    );
    // The machine: machine, message after the beep, then BYE.
    assert!(
        machine_ev.contains(&OriginateEvent::Answered {
            amd: Some(AmdOutcome::Machine)
        }),
        "{machine_ev:?}"
    );
    assert_eq!(
        done_of(&machine_ev),
        Some(&CallResult::Machine { message_left: true }),
        "{machine_ev:?}"
    );
    // Nobody staffs the overflow queue: abandoned after 2 s, safe harbor, BYE.
    assert!(
        listen_ev.contains(&OriginateEvent::Answered {
            amd: Some(AmdOutcome::Human)
        }),
        "{listen_ev:?}"
    );
    assert_eq!(
        done_of(&listen_ev),
        Some(&CallResult::Abandoned {
            amd: Some(AmdOutcome::Human)
        }),
        "{listen_ev:?}"
    );

    // Agentless: the prompt, and the flow (whose prompt the contact received).
    let played = Some(&CallResult::Played {
        amd: Some(AmdOutcome::Human),
    });
    assert_eq!(done_of(&agentless_ev), played, "{agentless_ev:?}");
    assert_eq!(done_of(&flow_ev), played, "{flow_ev:?}");
    let flow_heard = to_flow.finish();
    assert!(
        loud(&flow_heard) > 4000,
        "the flow's 1 s prompt reached the contact (at least half of it): {} loud samples",
        loud(&flow_heard)
    );

    // Every SIPp peer saw its call through (the agent's phone got its BYE, the machine
    // and the listener ours, the ringing phone our CANCEL).
    let mut failures = Vec::new();
    for uas in [
        phone, talk, busy, noanswer, machine, listen, agentless, flow,
    ] {
        let (ok, text) = uas.finish(Duration::from_secs(20));
        if !ok {
            failures.push(text);
        }
    }
    assert!(
        failures.is_empty(),
        "SIPp peers failed:\n{}",
        failures.join("\n")
    );
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), endpoint_task).await;
    let _ = std::fs::remove_dir_all(&root);
}
