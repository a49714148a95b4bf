//! Message-waiting indication (RFC 6665 SUBSCRIBE/NOTIFY, RFC 3842 `message-summary`)
//! against the real binary.
//!
//! Subscriptions and refusals here; the NOTIFY with `Messages-Waiting: yes` after a real
//! deposit is checked in `voicemail.rs` (`vm_mwi_subscribe.xml`).

use caruso_e2e::*;

/// A server with mailbox 200 and nothing in it.
fn server() -> Server {
    let mut cfg = ServerConfig::new(Ports::block(40)).number("100", 1.0, 0);
    let prompts = workspace_root().join("config/prompts");
    cfg.extra.push_str(&format!(
        "\n[ivr]\nprompt_dir = \"{}\"\n[voicemail]\n[[voicemail.mailboxes]]\nnumber = \"200\"\nowner = \"Alice Example\"\npin = \"1234\"\n",
        prompts.display()
    ));
    Server::start(cfg)
}

fn subscribe(s: &Server, mailbox: &str, event: &str, expires: u32, call_id: &str) -> String {
    format!(
        "SUBSCRIBE sip:{mailbox}@127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-{call_id};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=probe\r\n\
         To: <sip:{mailbox}@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 SUBSCRIBE\r\n\
         Contact: <sip:probe@127.0.0.1:9>\r\n\
         Event: {event}\r\n\
         Expires: {expires}\r\n\
         Content-Length: 0\r\n\r\n",
        port = s.config.ports.sip()
    )
}

#[test]
fn subscribe_then_notify_messages_waiting_no_udp() {
    let s = server();
    let res = Sipp::new(&s, "mwi_subscribe.xml")
        .key("mailbox", "200")
        .calls(2)
        .run();
    assert!(res.all_succeeded(2), "{res}");
}

#[test]
fn subscribe_then_notify_messages_waiting_no_tcp() {
    let s = server();
    let res = Sipp::new(&s, "mwi_subscribe.xml")
        .key("mailbox", "200")
        .transport(Transport::Tcp)
        .calls(1)
        .run();
    assert!(res.all_succeeded(1), "{res}");
}

#[test]
fn other_event_package_489_unknown_mailbox_404_too_brief_423() {
    let s = server();
    let res = Sipp::new(&s, "mwi_bad_event.xml")
        .key("mailbox", "200")
        .calls(1)
        .run();
    assert!(res.all_succeeded(1), "{res}");

    let req = subscribe(&s, "999", "message-summary", 3600, "mwi-404");
    let resp = udp_request_final(s.sip_addr(), req.as_bytes(), 3000).expect("an answer");
    assert_eq!(status_code(&resp), Some(404), "{resp}");

    let req = subscribe(&s, "200", "message-summary", 5, "mwi-423");
    let resp = udp_request_final(s.sip_addr(), req.as_bytes(), 3000).expect("an answer");
    assert_eq!(status_code(&resp), Some(423), "{resp}");
    let min: u32 = header(&resp, "Min-Expires")
        .and_then(|v| v.parse().ok())
        .expect("Min-Expires");
    assert!(min > 5, "{resp}");
}
