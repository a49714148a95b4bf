//! Calls to the demo number over UDP and TCP: the prompt's RTP comes back with 20 ms
//! pacing and the server hangs up with BYE; the caller can hang up first; CANCEL before
//! the answer gets 487; SIPp can play real audio (pcap) into a call.

use std::time::Duration;

use caruso_e2e::*;

/// Prompt length used by the prompt tests: 1 s = 50 packets of 20 ms.
const PROMPT_SECS: f32 = 1.0;
const PROMPT_PACKETS: usize = 50;

fn prompt_call(transport: Transport) {
    let ports = Ports::block(60);
    let server = Server::start(ServerConfig::new(ports).number("100", PROMPT_SECS, 0));
    let sink = RtpSink::bind(ports.peer(14), Duration::from_secs(30));
    let res = Sipp::new(&server, "uac_prompt_rtp.xml")
        .transport(transport)
        .key("rtp_port", sink.port())
        .timeout(Duration::from_secs(25))
        .run();
    // Let late packets (if any) arrive before we stop counting.
    std::thread::sleep(Duration::from_millis(200));
    let packets = sink.finish();
    assert!(
        res.all_succeeded(1),
        "the server must answer and then hang up with BYE\n{res}"
    );

    let p = pacing(&packets);
    eprintln!("{transport:?}: {p:?}");
    assert!(
        (PROMPT_PACKETS..=PROMPT_PACKETS + 2).contains(&p.count),
        "expected the {PROMPT_PACKETS} packets of a {PROMPT_SECS} s prompt, got {}",
        p.count
    );
    assert!(
        (p.mean_ms - 20.0).abs() <= 1.0,
        "mean spacing {:.2} ms, expected 20 +- 1 ms",
        p.mean_ms
    );
    assert!(
        p.max_gap_ms <= 60.0,
        "largest gap {:.1} ms > 60 ms",
        p.max_gap_ms
    );

    let first = packets[0];
    for (i, w) in packets.windows(2).enumerate() {
        assert_eq!(w[1].ssrc, first.ssrc, "SSRC changed at packet {}", i + 1);
        assert_eq!(
            w[1].seq,
            w[0].seq.wrapping_add(1),
            "sequence gap at packet {}",
            i + 1
        );
        assert_eq!(
            w[1].ts,
            w[0].ts.wrapping_add(160),
            "timestamp step at packet {}",
            i + 1
        );
    }
    assert!(
        packets.iter().all(|p| p.pt == 0),
        "we offered PCMU (0) only for audio"
    );
    assert!(
        packets.iter().all(|p| p.payload_len == 160),
        "20 ms of G.711 is 160 bytes"
    );
    let audible = packets.iter().filter(|p| !p.silent).count();
    assert!(
        audible >= PROMPT_PACKETS * 9 / 10,
        "the prompt is a tone: only {audible} of {} packets carry sound",
        packets.len()
    );
}

#[test]
fn call_with_prompt_udp() {
    prompt_call(Transport::Udp);
}

#[test]
fn call_with_prompt_tcp() {
    prompt_call(Transport::Tcp);
}

fn caller_hangs_up(transport: Transport) {
    let ports = Ports::block(60);
    // A 6 s prompt: the caller hangs up after 1.5 s, long before it ends.
    let server = Server::start(ServerConfig::new(ports).number("100", 6.0, 0));
    let sink = RtpSink::bind(ports.peer(14), Duration::from_secs(30));
    let res = Sipp::new(&server, "uac_caller_bye.xml")
        .transport(transport)
        .key("rtp_port", sink.port())
        .timeout(Duration::from_secs(20))
        .run();
    assert!(
        res.all_succeeded(1),
        "BYE from the caller must get 200\n{res}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let before = sink.packets().len();
    std::thread::sleep(Duration::from_millis(600));
    let after = sink.finish().len();
    assert!(
        before >= 40,
        "media flowed before the BYE: {before} packets"
    );
    assert_eq!(
        after, before,
        "the server kept sending RTP after the caller's BYE"
    );
    assert!(
        before < 6 * 50,
        "the prompt must have been cut short, got {before} packets"
    );
}

#[test]
fn caller_hangs_up_udp() {
    caller_hangs_up(Transport::Udp);
}

#[test]
fn caller_hangs_up_tcp() {
    caller_hangs_up(Transport::Tcp);
}

#[test]
fn cancel_before_answer_gets_487() {
    let ports = Ports::block(60);
    let server = Server::start(ServerConfig::new(ports).number("100", 2.0, 3000));
    let res = Sipp::new(&server, "uac_cancel.xml")
        .timeout(Duration::from_secs(20))
        .run();
    assert!(
        res.all_succeeded(1),
        "180, then 200 (CANCEL) and 487 (INVITE)\n{res}"
    );
}

#[test]
fn cancel_before_answer_gets_487_tcp() {
    let ports = Ports::block(60);
    let server = Server::start(ServerConfig::new(ports).number("100", 2.0, 3000));
    let res = Sipp::new(&server, "uac_cancel.xml")
        .transport(Transport::Tcp)
        .timeout(Duration::from_secs(20))
        .run();
    assert!(
        res.all_succeeded(1),
        "180, then 200 (CANCEL) and 487 (INVITE)\n{res}"
    );
}

#[test]
fn call_with_sipp_pcap_audio() {
    let ports = Ports::block(60);
    let server = Server::start(ServerConfig::new(ports).number("100", 8.0, 0));
    let sipp = Sipp::new(&server, "uac_pcap_audio.xml").timeout(Duration::from_secs(20));
    // Count what arrives at SIPp's own media socket while SIPp plays its pcap.
    let capture = Capture::udp_to(sipp.media_port());
    let res = sipp.run();
    let times = capture.finish();
    assert!(res.all_succeeded(1), "{res}");
    let m = server.metrics();
    let received = metric_sum(&m, "caruso_rtp_packets_received_total", &[]).unwrap_or(0.0);
    assert!(
        received >= 50.0,
        "the server must count SIPp's pcap audio (got {received} packets)\n{m}"
    );
    // The caller hangs up 3 s after the ACK: about 150 packets of prompt reach SIPp.
    let p = pacing_of_times(&times);
    eprintln!("pcap call, at SIPp's media port: {p:?}");
    assert!(
        p.count >= 120,
        "SIPp's media port got only {} packets",
        p.count
    );
    assert!(
        (p.mean_ms - 20.0).abs() <= 1.0,
        "mean spacing {:.2} ms",
        p.mean_ms
    );
    assert!(p.max_gap_ms <= 60.0, "largest gap {:.1} ms", p.max_gap_ms);
}
