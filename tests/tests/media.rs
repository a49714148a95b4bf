//! Media behaviour seen from the wire: late offer, no common codec (488), hold and
//! resume by re-INVITE, symmetric RTP, RTP inactivity, and graceful shutdown ending
//! active calls with BYE.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use caruso_e2e::*;

#[test]
fn late_offer_call_gets_the_prompt() {
    let ports = Ports::block(60);
    let server = Server::start(ServerConfig::new(ports).number("100", 1.0, 0));
    let sink = RtpSink::bind(ports.peer(14), Duration::from_secs(30));
    let res = Sipp::new(&server, "uac_late_offer.xml")
        .key("rtp_port", sink.port())
        .timeout(Duration::from_secs(25))
        .run();
    std::thread::sleep(Duration::from_millis(200));
    let packets = sink.finish();
    assert!(
        res.all_succeeded(1),
        "offer in the 200, answer in the ACK\n{res}"
    );
    assert!(
        (50..=52).contains(&packets.len()),
        "a 1 s prompt is 50 packets, got {}",
        packets.len()
    );
    assert!(packets.iter().all(|p| p.pt == 0), "we answered PCMU only");
}

#[test]
fn no_common_codec_gets_488() {
    let server = Server::start(ServerConfig::new(Ports::block(60)).number("100", 1.0, 0));
    let res = Sipp::new(&server, "uac_codec_mismatch.xml").run();
    assert!(
        res.all_succeeded(1),
        "a G.729-only offer must get 488\n{res}"
    );
}

#[test]
fn hold_stops_media_and_resume_restarts_it() {
    let ports = Ports::block(60);
    let server = Server::start(ServerConfig::new(ports).number("100", 20.0, 0));
    let sink = RtpSink::bind(ports.peer(14), Duration::from_secs(30));
    let res = Sipp::new(&server, "uac_hold_resume.xml")
        .key("rtp_port", sink.port())
        .timeout(Duration::from_secs(25))
        .run();
    let packets = sink.finish();
    assert!(
        res.all_succeeded(1),
        "re-INVITEs for hold and resume\n{res}"
    );
    // The longest silence is the hold (2 s, minus signalling time).
    let (gap_at, gap) = packets
        .windows(2)
        .enumerate()
        .map(|(i, w)| (i, w[1].at.duration_since(w[0].at)))
        .max_by_key(|(_, d)| *d)
        .expect("packets");
    assert!(
        gap >= Duration::from_millis(1500),
        "media must stop while on hold: largest gap {gap:?} ({} packets)",
        packets.len()
    );
    let before = gap_at + 1;
    let after = packets.len() - before;
    assert!(
        before >= 40,
        "about 1 s of media before the hold, got {before} packets"
    );
    assert!(
        after >= 50,
        "about 1.5 s of media after the resume, got {after} packets"
    );
    let (a, b) = (packets[gap_at], packets[gap_at + 1]);
    assert_eq!(
        a.ssrc, b.ssrc,
        "one RTP stream across hold (RFC 3550: same SSRC)"
    );
    assert_eq!(
        b.seq,
        a.seq.wrapping_add(1),
        "sequence numbers continue across the hold"
    );
}

#[test]
fn symmetric_rtp_follows_the_peer_source() {
    let ports = Ports::block(60);
    let server = Server::start(ServerConfig::new(ports).number("100", 4.0, 0));
    // A: the address in our SDP, which never sends. B: where our media really comes from.
    let a = UdpSocket::bind((LOOPBACK, ports.peer(14))).expect("bind A");
    let b = UdpSocket::bind((LOOPBACK, ports.peer(15))).expect("bind B");
    a.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    b.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let media = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut server_rtp: Option<SocketAddr> = None;
        let (mut at_a, mut at_a_after_b, mut at_b) = (0usize, 0usize, 0usize);
        let mut next_send = Instant::now();
        let mut seq = 0u16;
        while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
            if let Ok((n, from)) = a.recv_from(&mut buf) {
                if parse_rtp(&buf[..n], Instant::now(), from).is_some() {
                    at_a += 1;
                    if at_b > 0 {
                        at_a_after_b += 1;
                    }
                    server_rtp.get_or_insert(from);
                }
            }
            if let Ok((n, from)) = b.recv_from(&mut buf) {
                if parse_rtp(&buf[..n], Instant::now(), from).is_some() {
                    at_b += 1;
                }
            }
            if let Some(to) = server_rtp {
                if Instant::now() >= next_send {
                    let mut pkt = [0xffu8; 172];
                    pkt[..2].copy_from_slice(&[0x80, 0x00]);
                    pkt[2..4].copy_from_slice(&seq.to_be_bytes());
                    pkt[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
                    pkt[8..12].copy_from_slice(&0x0b0b_0b0bu32.to_be_bytes());
                    let _ = b.send_to(&pkt, to);
                    seq = seq.wrapping_add(1);
                    next_send += Duration::from_millis(20);
                }
            }
        }
        (at_a, at_a_after_b, at_b)
    });
    let res = Sipp::new(&server, "uac_prompt_rtp.xml")
        .key("rtp_port", ports.peer(14))
        .timeout(Duration::from_secs(25))
        .run();
    stop.store(true, Ordering::Relaxed);
    let (at_a, at_a_after_b, at_b) = media.join().expect("media thread");
    assert!(res.all_succeeded(1), "{res}");
    assert!(at_a >= 1, "the first packets go to the SDP address");
    assert!(
        at_b >= 150,
        "after our RTP arrives from B, the prompt must go to B: got {at_b} packets at B"
    );
    assert!(
        at_a_after_b <= 5,
        "the server kept sending to the SDP address after latching: {at_a_after_b} packets"
    );
}

#[test]
fn rtp_inactivity_ends_the_call_with_bye() {
    let ports = Ports::block(60);
    let server = Server::start(
        ServerConfig::new(ports)
            .number("100", 20.0, 0)
            .rtp_inactivity(2),
    );
    // A peer that never sends RTP: the server hangs up after 2 s, long before the prompt ends.
    let sink = RtpSink::bind_silent(ports.peer(14), Duration::from_secs(30));
    let res = Sipp::new(&server, "uac_prompt_rtp.xml")
        .key("rtp_port", sink.port())
        .timeout(Duration::from_secs(25))
        .run();
    let packets = sink.finish();
    assert!(
        res.all_succeeded(1),
        "the server must send BYE on RTP inactivity\n{res}"
    );
    assert!(
        res.elapsed < Duration::from_secs(8),
        "BYE must come from the 2 s inactivity timer, not the 20 s prompt: {:?}",
        res.elapsed
    );
    assert!(
        packets.len() < 400,
        "prompt cut short: {} packets",
        packets.len()
    );
}

#[test]
fn sigterm_ends_active_calls_with_bye() {
    let ports = Ports::block(60);
    let mut server = Server::start(ServerConfig::new(ports).number("100", 20.0, 0));
    let sink = RtpSink::bind(ports.peer(14), Duration::from_secs(30));
    let sipp = Sipp::new(&server, "uac_prompt_rtp.xml")
        .key("rtp_port", sink.port())
        .timeout(Duration::from_secs(25));
    let call = std::thread::spawn(move || sipp.run());
    let deadline = Instant::now() + Duration::from_secs(10);
    while sink.packets().len() < 25 {
        assert!(Instant::now() < deadline, "the call never got media");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = server.terminate(Duration::from_secs(10));
    let res = call.join().expect("sipp thread");
    assert!(
        res.all_succeeded(1),
        "the active call must get a BYE on shutdown\n{res}"
    );
    let status = status.expect("caruso must exit within 10 s of SIGTERM");
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[test]
fn dtmf_digit_is_received_once() {
    let server = Server::start(ServerConfig::new(Ports::block(60)).number("100", 8.0, 0));
    let res = Sipp::new(&server, "uac_dtmf.xml")
        .timeout(Duration::from_secs(20))
        .run();
    assert!(res.all_succeeded(1), "{res}");
    let m = server.metrics();
    let digits = metric_sum(&m, "caruso_dtmf_digits_total", &[]);
    assert_eq!(
        digits,
        Some(1.0),
        "one RFC 4733 event (with its redundant end packets) is one digit\n{m}"
    );
}

#[test]
fn rtcp_reports_and_bye_reach_the_peer() {
    let ports = Ports::block(60);
    let server = Server::start(ServerConfig::new(ports).number("100", 7.0, 0));
    let sink = RtpSink::bind(ports.peer(14), Duration::from_secs(30));
    // RTCP goes to the RTP port + 1 (no rtcp-mux offered).
    let rtcp = UdpSocket::bind((LOOPBACK, ports.peer(15))).expect("bind RTCP");
    rtcp.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let collector = std::thread::spawn(move || {
        let mut types: Vec<Vec<u8>> = Vec::new();
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(30);
        while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
            if let Ok((n, _)) = rtcp.recv_from(&mut buf) {
                // Packet types of a compound packet (RFC 3550 §6.1).
                let mut pts = Vec::new();
                let mut off = 0;
                while off + 4 <= n {
                    pts.push(buf[off + 1]);
                    let words = usize::from(u16::from_be_bytes([buf[off + 2], buf[off + 3]]));
                    off += 4 * (words + 1);
                }
                types.push(pts);
            }
        }
        types
    });
    let res = Sipp::new(&server, "uac_prompt_rtp.xml")
        .key("rtp_port", sink.port())
        .timeout(Duration::from_secs(25))
        .run();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let types = collector.join().expect("collector");
    drop(sink);
    assert!(res.all_succeeded(1), "{res}");
    assert!(
        types.iter().any(|c| c.first() == Some(&200)),
        "a sender report (PT 200) during a 7 s prompt: got {types:?}"
    );
    assert!(
        types.iter().flatten().any(|&pt| pt == 203),
        "an RTCP BYE (PT 203) when the call ends: got {types:?}"
    );
}
