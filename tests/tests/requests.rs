//! Out-of-dialog requests: OPTIONS and unknown methods, over UDP and TCP.

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
