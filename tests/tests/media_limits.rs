//! Media limits as a peer sees them, over raw SIP on UDP:
//! - the destination allow-list (`network.allow`): a caller whose SDP names an address
//!   outside the list gets its call, but not one RTP packet is sent there; the refusals
//!   are counted in `caruso_destination_denied_total{kind="rtp"}` (the test runs in a
//!   loopback-only namespace as well, so the metric is what shows the list worked);
//! - the RTP port range: when no port pair is free, a new call gets `503` with
//!   `Retry-After`, and the call holding the ports is unaffected.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use caruso_e2e::*;

fn invite(port: u16, local: u16, call_id: &str, sdp_host: &str) -> String {
    let tag = format!("tag-{call_id}");
    let sdp = format!(
        "v=0\r\no=t 1 1 IN IP4 {sdp_host}\r\ns=-\r\nc=IN IP4 {sdp_host}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
    );
    format!(
        "INVITE sip:100@127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK-{call_id};rport\r\n\
         From: <sip:t@127.0.0.1>;tag={tag}\r\n\
         To: <sip:100@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:t@127.0.0.1:{local}>\r\n\
         Max-Forwards: 70\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

fn in_dialog(
    method: &str,
    cseq: u32,
    port: u16,
    local: u16,
    call_id: &str,
    to_tag: &str,
) -> String {
    format!(
        "{method} sip:100@127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK-{call_id}-{cseq}{method};rport\r\n\
         From: <sip:t@127.0.0.1>;tag=tag-{call_id}\r\n\
         To: <sip:100@127.0.0.1>;tag={to_tag}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Reads from `sock` until a final response with CSeq method `method` arrives.
fn final_response(sock: &UdpSocket, method: &str, wait: Duration) -> Option<String> {
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; 65_535];
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let is_final = status_code(&text).is_some_and(|c| c >= 200);
            if is_final && header(&text, "CSeq").is_some_and(|c| c.ends_with(method)) {
                return Some(text);
            }
        }
    }
    None
}

#[test]
fn rtp_to_an_address_outside_network_allow_is_never_sent() {
    require_isolated_network();
    let ports = Ports::block(60);
    let server = Server::start(ServerConfig::new(ports).number("100", 5.0, 0));
    let sock = UdpSocket::bind((LOOPBACK, 0)).expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let local = sock.local_addr().unwrap().port();
    let to = server.sip_addr();
    let call_id = "allow-list-1";

    sock.send_to(
        invite(to.port(), local, call_id, "192.0.2.10").as_bytes(),
        to,
    )
    .unwrap();
    let ok =
        final_response(&sock, "INVITE", Duration::from_secs(5)).expect("an answer to the INVITE");
    assert_eq!(status_code(&ok), Some(200), "{ok}");
    let to_tag = header(&ok, "To")
        .and_then(|t| t.split("tag=").nth(1))
        .map(|t| t.split(';').next().unwrap_or(t).trim().to_string())
        .expect("To tag in the 200");
    sock.send_to(
        in_dialog("ACK", 1, to.port(), local, call_id, &to_tag).as_bytes(),
        to,
    )
    .unwrap();

    // One second of a 5 s prompt: ~50 RTP packets the server wanted to send.
    std::thread::sleep(Duration::from_secs(1));
    let metrics = server.metrics();
    let denied = metric_sum(
        &metrics,
        "caruso_destination_denied_total",
        &["kind=\"rtp\""],
    )
    .unwrap_or(0.0);
    let sent = metric_sum(&metrics, "caruso_rtp_packets_sent_total", &[]).unwrap_or(0.0);
    assert!(
        denied >= 40.0,
        "expected the prompt's packets to be refused, denied={denied}\n{metrics}"
    );
    assert_eq!(
        sent, 0.0,
        "no RTP packet may count as sent to 192.0.2.10\n{metrics}"
    );

    sock.send_to(
        in_dialog("BYE", 2, to.port(), local, call_id, &to_tag).as_bytes(),
        to,
    )
    .unwrap();
    let bye = final_response(&sock, "BYE", Duration::from_secs(5)).expect("an answer to the BYE");
    assert_eq!(status_code(&bye), Some(200), "{bye}");
}

#[test]
fn no_free_rtp_port_pair_gets_503_with_retry_after() {
    require_isolated_network();
    let ports = Ports::block(60);
    let server = Server::start(
        ServerConfig::new(ports)
            .number("100", 5.0, 0)
            .rtp_port_pairs(1),
    );
    let to = server.sip_addr();
    let first = UdpSocket::bind((LOOPBACK, 0)).expect("bind");
    first
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let second = UdpSocket::bind((LOOPBACK, 0)).expect("bind");
    second
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();

    // The first call takes the only port pair.
    let local = first.local_addr().unwrap().port();
    first
        .send_to(
            invite(to.port(), local, "ports-1", "127.0.0.1").as_bytes(),
            to,
        )
        .unwrap();
    let ok = final_response(&first, "INVITE", Duration::from_secs(5)).expect("answer to call 1");
    assert_eq!(status_code(&ok), Some(200), "{ok}");

    // A second call while it lasts: nothing to put its media on.
    let local2 = second.local_addr().unwrap().port();
    second
        .send_to(
            invite(to.port(), local2, "ports-2", "127.0.0.1").as_bytes(),
            to,
        )
        .unwrap();
    let busy = final_response(&second, "INVITE", Duration::from_secs(5)).expect("answer to call 2");
    assert_eq!(status_code(&busy), Some(503), "{busy}");
    assert!(
        header(&busy, "Retry-After").is_some(),
        "503 without Retry-After:\n{busy}"
    );

    // The first call goes on: it still answers its BYE.
    let to_tag = header(&ok, "To")
        .and_then(|t| t.split("tag=").nth(1))
        .map(|t| t.split(';').next().unwrap_or(t).trim().to_string())
        .expect("To tag");
    first
        .send_to(
            in_dialog("ACK", 1, to.port(), local, "ports-1", &to_tag).as_bytes(),
            to,
        )
        .unwrap();
    first
        .send_to(
            in_dialog("BYE", 2, to.port(), local, "ports-1", &to_tag).as_bytes(),
            to,
        )
        .unwrap();
    let bye = final_response(&first, "BYE", Duration::from_secs(5)).expect("answer to BYE");
    assert_eq!(status_code(&bye), Some(200), "{bye}");
}
