//! Out-of-dialog requests: OPTIONS and unknown methods, over UDP and TCP.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use caruso_e2e::*;

fn server() -> Server {
    Server::start(ServerConfig::new(Ports::block(40)).number("100", 1.0, 0))
}

#[test]
fn options_answered_udp() {
    let s = server();
    let res = Sipp::new(&s, "uac_options.xml").calls(5).run();
    assert!(
        res.all_succeeded(5),
        "200 with Allow listing the methods\n{res}"
    );
}

#[test]
fn options_answered_tcp() {
    let s = server();
    let res = Sipp::new(&s, "uac_options.xml")
        .calls(5)
        .transport(Transport::Tcp)
        .run();
    assert!(
        res.all_succeeded(5),
        "200 with Allow listing the methods\n{res}"
    );
}

#[test]
fn unknown_method_501() {
    let s = server();
    let res = Sipp::new(&s, "uac_unknown_method.xml").calls(3).run();
    assert!(res.all_succeeded(3), "{res}");
}

#[test]
fn unknown_method_501_tcp() {
    let s = server();
    let res = Sipp::new(&s, "uac_unknown_method.xml")
        .calls(3)
        .transport(Transport::Tcp)
        .run();
    assert!(res.all_succeeded(3), "{res}");
}

#[test]
fn options_response_headers_follow_rfc3261() {
    let s = server();
    let req = options_request(s.config.ports.sip(), "hdr-check-1", "127.0.0.1:9");
    let resp = udp_exchange(s.sip_addr(), req.as_bytes(), 2000).expect("an answer");
    assert_eq!(status_code(&resp), Some(200), "{resp}");
    for h in [
        "Allow",
        "Accept",
        "Supported",
        "Call-ID",
        "CSeq",
        "From",
        "To",
        "Via",
    ] {
        assert!(header(&resp, h).is_some(), "OPTIONS 200 lacks {h}:\n{resp}");
    }
    assert_eq!(header(&resp, "Call-ID"), Some("hdr-check-1"));
    assert_eq!(header(&resp, "CSeq"), Some("1 OPTIONS"));
    // RFC 3581: rport gets the source port, received the source address.
    let via = header(&resp, "Via").unwrap_or_default();
    assert!(via.contains("rport="), "Via lacks rport value: {via}");
    assert!(
        via.contains("received=127.0.0.1"),
        "Via lacks received: {via}"
    );
    // The To of a response to an out-of-dialog request carries a tag (8.2.6.2).
    assert!(
        header(&resp, "To").unwrap_or_default().contains("tag="),
        "To lacks a tag:\n{resp}"
    );
}

/// A request to `sip:100@127.0.0.1:<port>` with the given Via sent-by and extra headers.
fn request(method: &str, port: u16, call_id: &str, via: &str, extra: &str) -> String {
    format!(
        "{method} sip:100@127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {via};branch=z9hG4bK-{call_id}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=probe\r\n\
         To: <sip:100@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:probe@127.0.0.1:9>\r\n\
         {extra}\
         Content-Length: 0\r\n\r\n"
    )
}

#[test]
fn response_goes_to_via_sent_by_port_without_rport() {
    // RFC 3261 §18.2.2: no rport, so the answer goes to the received address and the
    // sent-by port, not to the source port.
    let s = server();
    let sender = UdpSocket::bind((LOOPBACK, s.config.ports.peer(10))).expect("bind");
    let target = UdpSocket::bind((LOOPBACK, s.config.ports.peer(11))).expect("bind");
    target
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let via = format!("127.0.0.1:{}", s.config.ports.peer(11));
    let req = request("OPTIONS", s.config.ports.sip(), "sentby-1", &via, "");
    sender.send_to(req.as_bytes(), s.sip_addr()).expect("send");
    let mut buf = [0u8; 4096];
    let (n, _) = target
        .recv_from(&mut buf)
        .expect("the answer must arrive at the sent-by port");
    let resp = String::from_utf8_lossy(&buf[..n]);
    assert_eq!(status_code(&resp), Some(200), "{resp}");
}

#[test]
fn large_udp_request_is_answered() {
    let s = server();
    let pad = format!("X-Padding: {}\r\n", "a".repeat(6000));
    let req = request(
        "OPTIONS",
        s.config.ports.sip(),
        "large-1",
        "127.0.0.1:9;rport",
        &pad,
    );
    assert!(req.len() > 6000);
    let resp = udp_exchange(s.sip_addr(), req.as_bytes(), 2000).expect("an answer");
    assert_eq!(status_code(&resp), Some(200), "{resp}");
}

#[test]
fn tcp_framing_trickled_and_pipelined() {
    let s = server();
    let port = s.config.ports.sip();
    let mut both = request("OPTIONS", port, "pipe-1", "127.0.0.1:9", "").into_bytes();
    both.extend_from_slice(request("OPTIONS", port, "pipe-2", "127.0.0.1:9", "").as_bytes());
    let mut stream = TcpStream::connect(s.sip_addr()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    // Trickle the first half a few bytes at a time, then the rest at once.
    let half = both.len() / 2;
    for chunk in both[..half].chunks(7) {
        stream.write_all(chunk).expect("write");
        std::thread::sleep(Duration::from_millis(2));
    }
    stream.write_all(&both[half..]).expect("write");
    let mut buf = Vec::new();
    let mut answers = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut chunk = [0u8; 4096];
    while answers.len() < 2 && std::time::Instant::now() < deadline {
        if let Ok(n) = stream.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            answers.extend(split_stream(&mut buf));
        }
    }
    let ids: Vec<Option<&str>> = answers.iter().map(|a| header(a, "Call-ID")).collect();
    assert_eq!(ids, [Some("pipe-1"), Some("pipe-2")], "{answers:?}");
    assert!(answers.iter().all(|a| status_code(a) == Some(200)));
}

#[test]
fn max_forwards_zero_gets_483_only_where_it_would_be_forwarded() {
    // RFC 3261 §16.3 / RFC 4475 §3.3.11: Max-Forwards 0 stops a request that would
    // go further (an unknown number: 483), while the endpoint itself still answers
    // (a configured number: the call is answered).
    let s = server();
    let port = s.config.ports.sip();
    let far = request("INVITE", port, "mf0-1", "127.0.0.1:9;rport", "")
        .replace("Max-Forwards: 70", "Max-Forwards: 0")
        .replace("INVITE sip:100@", "INVITE sip:999@");
    let resp = udp_request_final(s.sip_addr(), far.as_bytes(), 3000).expect("a final answer");
    assert_eq!(status_code(&resp), Some(483), "{resp}");
    let here = request("INVITE", port, "mf0-2", "127.0.0.1:9;rport", "")
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    let resp = udp_request_final(s.sip_addr(), here.as_bytes(), 3000).expect("a final answer");
    assert_eq!(status_code(&resp), Some(200), "{resp}");
}

#[test]
fn unsupported_require_gets_420_with_unsupported() {
    let s = server();
    let req = request(
        "INVITE",
        s.config.ports.sip(),
        "req-1",
        "127.0.0.1:9;rport",
        "Require: fancy-thing\r\n",
    );
    let resp = udp_request_final(s.sip_addr(), req.as_bytes(), 3000).expect("a final answer");
    assert_eq!(status_code(&resp), Some(420), "{resp}");
    assert_eq!(header(&resp, "Unsupported"), Some("fancy-thing"), "{resp}");
}

#[test]
fn malformed_request_gets_400_naming_the_problem() {
    let s = server();
    let req = request(
        "OPTIONS",
        s.config.ports.sip(),
        "bad-1",
        "127.0.0.1:9;rport",
        "",
    )
    .replace("Call-ID: bad-1\r\n", "");
    let resp = udp_exchange(s.sip_addr(), req.as_bytes(), 2000).expect("an answer");
    assert_eq!(status_code(&resp), Some(400), "{resp}");
    let reason = resp.lines().next().unwrap_or("");
    assert!(
        reason.to_ascii_lowercase().contains("call-id"),
        "the reason phrase must say what is wrong: {reason:?}"
    );
}

#[test]
fn bye_outside_any_dialog_gets_481() {
    let s = server();
    let req = request(
        "BYE",
        s.config.ports.sip(),
        "bye-1",
        "127.0.0.1:9;rport",
        "",
    )
    .replace(
        "To: <sip:100@127.0.0.1>",
        "To: <sip:100@127.0.0.1>;tag=nosuchdialog",
    );
    let resp = udp_exchange(s.sip_addr(), req.as_bytes(), 2000).expect("an answer");
    assert_eq!(status_code(&resp), Some(481), "{resp}");
}
