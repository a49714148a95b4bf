//! Bridging: caruso places a second call leg from a caller's call and bridges the media.
//!
//! A SIPp UAC (the caller, PCMU) calls number 100, whose flow has one `extension` node
//! with the URI of a SIPp UAS (the called party). caruso sends the INVITE, plays ringback
//! while it rings, bridges the audio both ways once it answers (transcoding PCMU <-> PCMA
//! when the two legs differ), relays RFC 4733 digits, and ends either side with BYE when
//! the other hangs up; a busy or unanswered called party (CANCEL after the ring timeout)
//! gives the caller "transfer-unavailable" and BYE.
//!
//! What each side heard is captured (tcpdump at the SIPp media ports), decoded and
//! searched for the other side's known audio (`tests/pcap/bridge_*.pcap`).

use std::time::Duration;

use caruso_e2e::audio::*;
use caruso_e2e::*;

/// What one bridged call showed.
struct Outcome {
    caller: SippResult,
    callee: SippResult,
    /// RTP caruso sent to the caller.
    to_caller: Vec<RtpPacket>,
    /// RTP caruso sent to the called party.
    to_callee: Vec<RtpPacket>,
    log: String,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} packets to the caller, {} to the called party\n--- caller ---\n{}\n--- called party ---\n{}\n--- server log ---\n{}",
            self.to_caller.len(),
            self.to_callee.len(),
            self.caller,
            self.callee,
            self.log
        )
    }
}

/// Runs `callee` (UAS) and `caller` (UAC) against a server whose number 100 dials the
/// UAS, with the ring timeout `ring_s`.
fn bridged_call(callee: &str, caller: &str, ring_s: u64) -> Outcome {
    bridged_call_with(callee, caller, ring_s, |uas_port| {
        format!("type = \"extension\"\nuser = \"sip:201@127.0.0.1:{uas_port}\"\n")
    })
}

/// Like [`bridged_call`], with the dialing node's keys made by `node(uas_port)` (and
/// whatever tables it appends after them).
fn bridged_call_with(
    callee: &str,
    caller: &str,
    ring_s: u64,
    node: impl Fn(u16) -> String,
) -> Outcome {
    let ports = Ports::block(60);
    let uas_port = ports.peer(6);
    let mut cfg = ServerConfig::new(ports).ring_timeout(ring_s);
    cfg.extra = format!(
        "\n[ivr]\nprompt_dir = \"{}\"\n\n[[numbers]]\nnumber = \"100\"\nflow = \"b\"\n\n\
         [flows.b]\nstart = \"dial\"\n\n[flows.b.nodes.dial]\n{}",
        prompts_dir().display(),
        node(uas_port)
    );
    let server = Server::start(cfg);
    let uas = Sipp::new(&server, callee)
        .local_port(uas_port)
        .pcaps()
        .timeout(Duration::from_secs(45));
    let uac = Sipp::new(&server, caller)
        .pcaps()
        .timeout(Duration::from_secs(45));
    let cap_caller = RtpCapture::udp_to(uac.media_port());
    let cap_callee = RtpCapture::udp_to(uas.media_port());
    let uas_run = std::thread::spawn(move || uas.run());
    std::thread::sleep(Duration::from_millis(500));
    let caller = uac.run();
    let callee = uas_run.join().expect("uas thread");
    std::thread::sleep(Duration::from_millis(200));
    Outcome {
        caller,
        callee,
        to_caller: cap_caller.finish(),
        to_callee: cap_callee.finish(),
        log: server.log_tail(40),
    }
}

/// The audio of one of our pcaps, decoded.
fn pcap_audio(name: &str, pt: u8) -> Vec<i16> {
    decoded(&test_pcap(name), pt)
}

/// The ringback caruso generates: 425 Hz (its first 100 ms).
fn ringback() -> Vec<i16> {
    (0..800)
        .map(|i| {
            (7000.0 * (2.0 * std::f64::consts::PI * 425.0 * f64::from(i) / 8000.0).sin()) as i16
        })
        .collect()
}

/// The RFC 4733 digits among `packets` (payload type 101), one per event.
fn events(packets: &[RtpPacket]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut last_ts = None;
    for p in packets
        .iter()
        .filter(|p| p.pt == 101 && p.payload.len() >= 4)
    {
        if last_ts != Some(p.ts) {
            last_ts = Some(p.ts);
            out.push(p.payload[0]);
        }
    }
    out
}

#[test]
fn the_caller_hangs_up_and_the_called_party_gets_bye_with_audio_both_ways() {
    let o = bridged_call("bridge_uas_answer.xml", "bridge_uac_talk.xml", 30);
    assert!(o.caller.all_succeeded(1), "caller BYE answered 200\n{o}");
    assert!(
        o.callee.all_succeeded(1),
        "the called party got the INVITE and, after the caller's BYE, a BYE\n{o}"
    );
    let heard = decoded(&o.to_caller, 0);
    let callee_audio = pcap_audio("bridge_callee_pcmu.pcap", 0);
    let h = caruso_e2e::audio::heard(&heard, speech_body(&callee_audio, 100), 0);
    assert!(
        h.most(),
        "{h}: the caller hears the called party's audio (PCMU both sides: bit-exact)\n{o}"
    );
    let ring_at = find_all(&pcmu_stream(&o.to_caller), &ringback());
    assert!(!ring_at.is_empty(), "ringback while it rang\n{o}");
    assert_eq!(
        events(&o.to_caller),
        [5],
        "the called party's digit 5 relayed as RFC 4733\n{o}"
    );
    let callee_heard = decoded(&o.to_callee, 0);
    let caller_audio = pcap_audio("bridge_caller_pcmu.pcap", 0);
    let h = caruso_e2e::audio::heard(&callee_heard, speech_body(&caller_audio, 1300), 0);
    assert!(h.most(), "{h}: the called party hears the caller\n{o}");
}

#[test]
fn a_pcma_called_party_hangs_up_and_the_pcmu_caller_gets_bye_transcoded() {
    let o = bridged_call("bridge_uas_pcma_hangup.xml", "bridge_uac_wait.xml", 30);
    assert!(
        o.callee.all_succeeded(1),
        "the called party's BYE answered\n{o}"
    );
    assert!(o.caller.all_succeeded(1), "the caller got BYE\n{o}");
    assert!(
        o.to_callee.iter().filter(|p| p.pt == 8).count() > 50,
        "caruso speaks PCMA to the called party\n{o}"
    );
    let heard = decoded(&o.to_caller, 0);
    let callee_audio = pcap_audio("bridge_callee_pcma.pcap", 8);
    // A-law decoded, µ-law encoded: within a quantisation step of the louder law.
    let h = caruso_e2e::audio::heard(&heard, speech_body(&callee_audio, 100), 700);
    assert!(
        h.most(),
        "{h}: the PCMU caller hears the PCMA called party's audio\n{o}"
    );
    let callee_heard = decoded(&o.to_callee, 8);
    let caller_audio = pcap_audio("bridge_caller_pcmu.pcap", 0);
    let h = caruso_e2e::audio::heard(&callee_heard, speech_body(&caller_audio, 1300), 700);
    assert!(
        h.most(),
        "{h}: the PCMA called party hears the PCMU caller\n{o}"
    );
}

#[test]
fn a_busy_called_party_gives_transfer_unavailable_then_bye() {
    let o = bridged_call("bridge_uas_busy.xml", "bridge_uac_wait.xml", 30);
    assert!(o.callee.all_succeeded(1), "486 ACKed\n{o}");
    assert!(o.caller.all_succeeded(1), "the caller got BYE\n{o}");
    let stream = pcmu_stream(&o.to_caller);
    assert!(
        !find_all(&stream, &default_prompt("transfer-unavailable")).is_empty(),
        "transfer-unavailable played\n{o}"
    );
}

#[test]
fn an_unanswered_called_party_is_cancelled_after_the_ring_timeout() {
    let o = bridged_call("bridge_uas_noanswer.xml", "bridge_uac_wait.xml", 3);
    assert!(
        o.callee.all_succeeded(1),
        "CANCEL, 487, ACK at the called party\n{o}"
    );
    assert!(o.caller.all_succeeded(1), "the caller got BYE\n{o}");
    let stream = pcmu_stream(&o.to_caller);
    let ring = find_all(&stream, &ringback());
    let unavailable = find_all(&stream, &default_prompt("transfer-unavailable"));
    assert!(
        !ring.is_empty() && !unavailable.is_empty(),
        "ringback, then transfer-unavailable\n{o}"
    );
    assert!(ring[0] < unavailable[0], "{o}");
    // The ring timeout: 3 s of ringing (24,000 samples) before the message, give or take.
    let rang = unavailable[0] - ring[0];
    assert!(
        (22_000..30_000).contains(&rang),
        "rang {} ms before transfer-unavailable\n{o}",
        rang / 8
    );
}

#[test]
fn an_external_node_dials_the_number_through_a_trunk_and_bridges() {
    let o = bridged_call_with(
        "bridge_uas_pcma_hangup.xml",
        "bridge_uac_wait.xml",
        30,
        |uas_port| {
            format!(
                "type = \"external\"\ntrunk = \"pstn\"\nnumber = \"4930123\"\n\n\
                 [[trunks]]\nname = \"pstn\"\nhost = \"127.0.0.1:{uas_port}\"\nprefix = \"0\"\n"
            )
        },
    );
    assert!(
        o.callee.all_succeeded(1),
        "the trunk's party answered and hung up\n{o}"
    );
    assert!(o.caller.all_succeeded(1), "the caller got BYE\n{o}");
    assert!(
        o.log.contains("dialing through the trunk"),
        "the leg went through the trunk\n{o}"
    );
    let heard = decoded(&o.to_caller, 0);
    let callee_audio = pcap_audio("bridge_callee_pcma.pcap", 8);
    let h = caruso_e2e::audio::heard(&heard, speech_body(&callee_audio, 100), 700);
    assert!(
        h.most(),
        "{h}: the caller hears the party reached through the trunk\n{o}"
    );
}
