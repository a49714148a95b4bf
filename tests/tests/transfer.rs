//! Blind transfer and hold of a caller connected to an agent through the ACD.
//!
//! A server with two queues (`sales`, `support`) and two agents with fixed-URI phones:
//! alice (skill sales) and bob (skill support), each phone a SIPp UAS on its own port.
//! Both agents log in and become ready with `caruso-agent` (a separate process, gRPC
//! `caruso.v1.Agent`). A SIPp UAC calls number 100, whose flow puts it in the `sales`
//! queue, so alice's phone rings and answers. Then:
//! - alice's phone sends an in-dialog REFER to `sip:support@127.0.0.1` (202, NOTIFY
//!   sipfrag "200 OK", caruso's BYE), and the caller reaches bob;
//! - or alice transfers with `caruso-agent agent transfer --queue support`;
//! - or alice's phone holds the call (re-INVITE sendonly) and the caller hears music on
//!   hold until she resumes (re-INVITE sendrecv).
//!
//! What the caller heard is captured (tcpdump at its media port) and searched for bob's
//! known audio (`tests/pcap/bridge_callee_pcmu.pcap`) or the queue's music (`moh`).

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use caruso_e2e::audio::*;
use caruso_e2e::*;

const ALICE: &str = "alice-token";
const BOB: &str = "bob-token";

/// A running server with both agents logged in and ready.
struct Setup {
    server: Server,
    /// SIP port of alice's phone (SIPp UAS).
    alice_port: u16,
    /// SIP port of bob's phone (SIPp UAS).
    bob_port: u16,
}

fn start() -> Setup {
    // SIPp takes its SIP port p and media ports p+2 and p+4: the caller peer(0) (media
    // peer(2), peer(4)), alice peer(6) (peer(8), peer(10)), bob peer(12) (peer(14), peer(16)).
    let ports = Ports::block(60);
    let alice_port = ports.peer(6);
    let bob_port = ports.peer(12);
    let mut cfg = ServerConfig::new(ports);
    cfg.extra = format!(
        r#"
[ivr]
prompt_dir = "{prompts}"

[[numbers]]
number = "100"
flow = "q"

[flows.q]
start = "sales"

[flows.q.nodes.sales]
type = "queue"
queue = "sales"

[acd]

[[acd.queues]]
name = "sales"
skills = {{ sales = 1 }}
ring_timeout_s = 5
music = "moh"

[[acd.queues]]
name = "support"
skills = {{ support = 1 }}
ring_timeout_s = 5
music = "moh"

[[acd.agents]]
id = "alice"
token = "{ALICE}"
skills = {{ sales = 3 }}
phone = {{ uri = "sip:alice@127.0.0.1:{alice_port}" }}

[[acd.agents]]
id = "bob"
token = "{BOB}"
skills = {{ support = 3 }}
phone = {{ uri = "sip:bob@127.0.0.1:{bob_port}" }}
"#,
        prompts = prompts_dir().display()
    );
    let server = Server::start(cfg);
    for token in [ALICE, BOB] {
        agent_ok(&server, token, &["login"]);
        let status = agent_ok(&server, token, &["ready"]);
        assert!(status.contains("state=ready"), "{status}");
    }
    Setup {
        server,
        alice_port,
        bob_port,
    }
}

/// Runs `caruso-agent agent --token <token> <args>`: (exit code, stdout, stderr).
fn agent(server: &Server, token: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(agent_binary())
        .args(["--server", &server.grpc_url(), "--timeout", "5"])
        .args(["agent", "--token", token])
        .args(args)
        .output()
        .expect("run caruso-agent");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`agent`] that must exit 0; its stdout.
fn agent_ok(server: &Server, token: &str, args: &[&str]) -> String {
    let (code, out, err) = agent(server, token, args);
    assert_eq!(
        code,
        0,
        "caruso-agent {args:?} failed: {out}{err}\n{}",
        server.log_tail(30)
    );
    out
}

/// The agent's state (`state=` of `status`).
fn state(server: &Server, token: &str) -> String {
    let out = agent_ok(server, token, &["status"]);
    out.split_whitespace()
        .find_map(|kv| kv.strip_prefix("state="))
        .unwrap_or("")
        .to_owned()
}

/// Polls the agent's state until it is `want` (deadline `limit`); the last state seen.
fn wait_state(server: &Server, token: &str, want: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let s = state(server, token);
        if s == want || Instant::now() >= deadline {
            return s;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// 1.5 s of bob's known audio, 100 ms after its sound starts (as in bridge.rs).
fn bob_audio() -> Vec<i16> {
    speech_body(&decoded(&test_pcap("bridge_callee_pcmu.pcap"), 0), 100).to_vec()
}

/// A call from the SIPp caller that alice's phone (`alice_scenario`) answers, with bob's
/// phone (`bridge_uas_answer.xml`) standing by and the caller's RTP captured.
struct Transfer {
    heard: RtpCapture,
    alice: thread::JoinHandle<SippResult>,
    bob: thread::JoinHandle<SippResult>,
    caller: thread::JoinHandle<SippResult>,
}

impl Transfer {
    /// Starts the three SIPp runs; `alice_on_call` waits until alice talks to the caller.
    fn start(s: &Setup, alice_scenario: &str, alice_on_call: bool) -> Transfer {
        let alice = Sipp::new(&s.server, alice_scenario)
            .local_port(s.alice_port)
            .timeout(Duration::from_secs(40));
        let bob = Sipp::new(&s.server, "bridge_uas_answer.xml")
            .local_port(s.bob_port)
            .pcaps()
            .timeout(Duration::from_secs(40));
        let caller = Sipp::new(&s.server, "xfer_uac_call.xml")
            .pcaps()
            .timeout(Duration::from_secs(40));
        let heard = RtpCapture::udp_to(caller.media_port());
        let alice = thread::spawn(move || alice.run());
        let bob = thread::spawn(move || bob.run());
        thread::sleep(Duration::from_millis(500));
        let caller = thread::spawn(move || caller.run());
        if alice_on_call {
            let on_call = wait_state(&s.server, ALICE, "on-call", Duration::from_secs(10));
            assert_eq!(
                on_call,
                "on-call",
                "alice answered\n{}",
                s.server.log_tail(40)
            );
            thread::sleep(Duration::from_millis(500));
        }
        Transfer {
            heard,
            alice,
            bob,
            caller,
        }
    }

    /// Waits for the three runs; `settle` lets the last RTP arrive. Returns (caller,
    /// alice, bob, the caller's RTP, everything for a failure message).
    fn finish(
        self,
        s: &Setup,
        settle: Duration,
    ) -> (SippResult, SippResult, SippResult, Vec<RtpPacket>, String) {
        let caller = self.caller.join().expect("caller thread");
        let alice = self.alice.join().expect("alice thread");
        let bob = self.bob.join().expect("bob thread");
        thread::sleep(settle);
        let heard = self.heard.finish();
        let log = s.server.log_tail(60);
        let all = format!("--- caller ---\n{caller}\n--- alice ---\n{alice}\n--- bob ---\n{bob}\n--- server log ---\n{log}");
        (caller, alice, bob, heard, all)
    }
}

fn metric(server: &Server, name: &str, labels: &[&str], want: f64) -> Option<f64> {
    wait_metric(server, name, labels, Duration::from_secs(5), |v| v == want)
}

#[test]
fn an_agent_transfers_the_caller_to_another_queue_by_refer() {
    let s = start();
    let (caller, alice, bob, heard, all) =
        Transfer::start(&s, "xfer_uas_refer.xml", false).finish(&s, Duration::from_millis(200));
    assert!(
        alice.all_succeeded(1),
        "alice's phone: REFER answered 202, NOTIFY with a message/sipfrag 200 OK, then BYE\n{all}"
    );
    assert!(
        bob.all_succeeded(1),
        "bob's phone got the transferred caller, then BYE when the caller hung up\n{all}"
    );
    assert!(
        caller.all_succeeded(1),
        "the caller stayed up through the transfer and its BYE was answered\n{all}"
    );
    let h = caruso_e2e::audio::heard(&decoded(&heard, 0), &bob_audio(), 0);
    assert!(
        h.most(),
        "{h}: the caller hears bob after the transfer ({} packets)\n{all}",
        heard.len()
    );
    let m = &s.server;
    assert_eq!(
        metric(m, "caruso_acd_transfers_total", &["target=\"queue\""], 1.0),
        Some(1.0),
        "{all}"
    );
    assert_eq!(
        metric(
            m,
            "caruso_acd_calls_answered_total",
            &["queue=\"sales\""],
            1.0
        ),
        Some(1.0),
        "{all}"
    );
    assert_eq!(
        metric(
            m,
            "caruso_acd_calls_answered_total",
            &["queue=\"support\""],
            1.0
        ),
        Some(1.0),
        "{all}"
    );
    let alice_state = state(m, ALICE);
    assert!(
        alice_state == "wrap-up" || alice_state == "ready",
        "alice is free again after transferring, not {alice_state:?}\n{all}"
    );
}

#[test]
fn an_agent_transfers_the_caller_with_the_agent_client() {
    let s = start();
    // bob has no call: the transfer is refused.
    let (code, out, err) = agent(&s.server, BOB, &["transfer", "--queue", "sales"]);
    assert_eq!(code, 1, "transfer without a call: {out}{err}");
    assert!(err.contains("no connected call"), "{out}{err}");
    assert_eq!(
        state(&s.server, BOB),
        "ready",
        "the refusal changed nothing"
    );

    let call = Transfer::start(&s, "xfer_uas_quiet.xml", true);
    let (code, out, err) = agent(&s.server, ALICE, &["transfer", "--queue", "support"]);
    let (caller, alice, bob, heard, all) = call.finish(&s, Duration::from_millis(200));
    assert_eq!(code, 0, "caruso-agent transfer: {out}{err}\n{all}");
    assert!(
        out.contains("transferred=true queue=support"),
        "{out}{err}\n{all}"
    );
    assert!(alice.all_succeeded(1), "alice's leg got BYE\n{all}");
    assert!(
        bob.all_succeeded(1),
        "bob's phone got the call, then BYE when the caller hung up\n{all}"
    );
    assert!(caller.all_succeeded(1), "the caller stayed up\n{all}");
    let h = caruso_e2e::audio::heard(&decoded(&heard, 0), &bob_audio(), 0);
    assert!(
        h.most(),
        "{h}: the caller hears bob after the transfer\n{all}"
    );
    let m = &s.server;
    assert_eq!(
        metric(m, "caruso_acd_transfers_total", &["target=\"queue\""], 1.0),
        Some(1.0),
        "{all}"
    );
    assert_eq!(
        metric(
            m,
            "caruso_acd_calls_answered_total",
            &["queue=\"support\""],
            1.0
        ),
        Some(1.0),
        "{all}"
    );
}

#[test]
fn a_caller_held_by_the_agent_hears_music_on_hold_until_resumed() {
    let s = start();
    let alice = Sipp::new(&s.server, "xfer_uas_hold.xml")
        .local_port(s.alice_port)
        .timeout(Duration::from_secs(40));
    let caller = Sipp::new(&s.server, "xfer_uac_call.xml")
        .pcaps()
        .timeout(Duration::from_secs(40));
    let heard = RtpCapture::udp_to(caller.media_port());
    // alice's requests to caruso, to know when she held and resumed (same clock).
    let signalling = RtpCapture::start(&format!(
        "udp and src port {} and dst port {}",
        s.alice_port,
        s.server.config.ports.sip()
    ));
    let alice_run = thread::spawn(move || alice.run());
    thread::sleep(Duration::from_millis(500));
    let caller = caller.run();
    let alice = alice_run.join().expect("alice thread");
    thread::sleep(Duration::from_millis(200));
    let sip = signalling.datagrams();
    drop(signalling);
    let heard = heard.finish();
    let log = s.server.log_tail(60);
    let all =
        format!("--- caller ---\n{caller}\n--- alice ---\n{alice}\n--- server log ---\n{log}");
    assert!(
        alice.all_succeeded(1),
        "alice's phone: hold answered 200 a=recvonly, resume answered without hold, BYE\n{all}"
    );
    assert!(caller.all_succeeded(1), "the caller stayed up\n{all}");
    let sent_at = |what: &str| {
        sip.iter()
            .find(|(_, _, _, d)| {
                let text = String::from_utf8_lossy(d);
                text.starts_with("INVITE ") && text.contains(what)
            })
            .map(|(t, _, _, _)| *t)
    };
    let (Some(hold_at), Some(resume_at)) = (sent_at("a=sendonly"), sent_at("a=sendrecv")) else {
        panic!(
            "alice's re-INVITEs not captured ({} datagrams)\n{all}",
            sip.len()
        );
    };
    let moh = default_prompt("moh");
    let window = |from: f64, to: f64| {
        let ps: Vec<RtpPacket> = heard
            .iter()
            .filter(|p| p.time > from && p.time < to)
            .cloned()
            .collect();
        pcmu_stream(&ps)
    };
    let held = window(hold_at, resume_at);
    assert!(
        !find_all(&held, &moh).is_empty(),
        "the caller hears music on hold while held ({} bytes in {:.1} s)\n{all}",
        held.len(),
        resume_at - hold_at
    );
    let resumed = window(resume_at + 0.2, f64::MAX);
    assert!(
        resumed.len() > 8000,
        "media to the caller goes on after the resume ({} bytes)\n{all}",
        resumed.len()
    );
    assert!(
        find_all(&resumed, &moh).is_empty(),
        "the music stops when alice resumes\n{all}"
    );
}

#[test]
fn an_agent_transfers_the_caller_to_a_named_agent_who_takes_it_once_ready() {
    let s = start();
    // bob is on a break: the transferred caller waits for him (music), not for the queue.
    let out = agent_ok(&s.server, BOB, &["not-ready", "break"]);
    assert!(out.contains("state=not-ready"), "{out}");

    let call = Transfer::start(&s, "xfer_uas_quiet.xml", true);
    let (code, out, err) = agent(&s.server, ALICE, &["transfer", "--agent", "bob"]);
    assert_eq!(code, 0, "caruso-agent transfer: {out}{err}");
    assert!(out.contains("transferred=true agent=bob"), "{out}{err}");
    // The caller now waits for bob, who is not ready: nobody is offered the call.
    let after = wait_state(&s.server, ALICE, "ready", Duration::from_secs(5));
    assert_eq!(after, "ready", "alice is free after the transfer");
    thread::sleep(Duration::from_millis(1000));
    assert_eq!(state(&s.server, BOB), "not-ready");
    let out = agent_ok(&s.server, BOB, &["ready"]);
    assert!(
        out.contains("state=ready") || out.contains("state=reserved"),
        "{out}"
    );
    let bob_on_call = wait_state(&s.server, BOB, "on-call", Duration::from_secs(10));
    let (caller, alice, bob, heard, all) = call.finish(&s, Duration::from_millis(1200));
    assert_eq!(
        bob_on_call, "on-call",
        "bob took the call once ready\n{all}"
    );
    assert!(alice.all_succeeded(1), "alice's leg got BYE\n{all}");
    assert!(
        bob.all_succeeded(1),
        "bob's phone got the call, then BYE when the caller hung up\n{all}"
    );
    assert!(caller.all_succeeded(1), "the caller stayed up\n{all}");
    let h = caruso_e2e::audio::heard(&decoded(&heard, 0), &bob_audio(), 0);
    assert!(
        h.most(),
        "{h}: the caller hears bob after the transfer ({} packets)\n{all}",
        heard.len()
    );
    let m = &s.server;
    assert_eq!(
        metric(m, "caruso_acd_transfers_total", &["target=\"agent\""], 1.0),
        Some(1.0),
        "{all}"
    );
    assert_eq!(
        metric_sum(&m.metrics(), "caruso_acd_offers_missed_total", &[]).unwrap_or(0.0),
        0.0,
        "{all}"
    );
}
