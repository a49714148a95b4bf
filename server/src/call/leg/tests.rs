//! The leg against a scripted callee, with a hand-advanced clock; every message goes
//! through `to_bytes` and the parser on its way.

use super::*;
use crate::media::codec::Codec;
use crate::sip::message::parse_datagram;

const SEC: Duration = Duration::from_secs(1);

fn callee() -> Peer {
    Peer {
        addr: "127.0.0.1:5080".parse().unwrap(),
        transport: TransportKind::Udp,
    }
}

fn cfg(ring_timeout: Duration) -> LegConfig {
    LegConfig {
        target: Uri::parse("sip:201@127.0.0.1:5080").unwrap(),
        peer: callee(),
        call_id: "leg-1@caruso".into(),
        local_tag: "ourtag".into(),
        from: NameAddr::parse("\"Alice\" <sip:555@127.0.0.1>").unwrap(),
        contact: Uri::parse("sip:caruso@127.0.0.1:5060").unwrap(),
        via_host: "127.0.0.1".into(),
        via_port: 5060,
        local_media: LocalMedia::new("127.0.0.1".parse().unwrap(), 20010),
        ring_timeout,
        timers: TimerConfig::default(),
        user_agent: "caruso-test".into(),
        seed: 42,
    }
}

/// Everything the leg sends, re-parsed from the wire.
fn sent(leg: &mut Leg) -> Vec<(Peer, SipMessage)> {
    std::iter::from_fn(|| leg.poll_transmit())
        .map(|t| (t.to, parse_datagram(&t.message.to_bytes()).unwrap()))
        .collect()
}

fn requests(out: &[(Peer, SipMessage)]) -> Vec<Request> {
    out.iter()
        .filter_map(|(_, m)| match m {
            SipMessage::Request(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn events(leg: &mut Leg) -> Vec<LegEvent> {
    std::iter::from_fn(|| leg.poll_event()).collect()
}

const ANSWER: &str = "v=0\r\no=- 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

fn response(req: &Request, status: u16, tag: Option<&str>, sdp: Option<&str>) -> SipMessage {
    let mut r = Response::for_request(req, status, "X", tag);
    if (200..300).contains(&status) || status == 183 {
        r.headers
            .push(HeaderName::Contact, "<sip:201@127.0.0.1:5080>");
    }
    if let Some(b) = sdp {
        r.headers.push(HeaderName::ContentType, "application/sdp");
        r.body = Bytes::from(b.to_string());
    }
    parse_datagram(&r.to_bytes()).unwrap()
}

/// A new leg and its INVITE.
fn start(ring: Duration) -> (Leg, Request, Instant) {
    let t0 = Instant::now();
    let mut leg = Leg::new(cfg(ring), t0);
    let out = sent(&mut leg);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, callee());
    let invite = requests(&out).remove(0);
    (leg, invite, t0)
}

#[test]
fn invite_offers_our_codecs_and_telephone_event_with_a_new_dialog_identity() {
    let (leg, invite, _) = start(30 * SEC);
    assert_eq!(invite.method, Method::Invite);
    assert_eq!(invite.uri.to_string(), "sip:201@127.0.0.1:5080");
    assert_eq!(invite.call_id().unwrap(), "leg-1@caruso");
    assert_eq!(invite.from_header().unwrap().tag(), Some("ourtag"));
    assert_eq!(invite.to_header().unwrap().tag(), None);
    assert_eq!(invite.cseq().unwrap().seq, 1);
    assert!(invite.top_via().unwrap().is_rfc3261_branch());
    let offer = sdp::parse(std::str::from_utf8(&invite.body).unwrap()).unwrap();
    let m = &offer.media[0];
    assert_eq!(m.port, 20010);
    assert_eq!(m.codec_of(0), Some(Codec::Pcmu));
    assert_eq!(m.codec_of(8), Some(Codec::Pcma));
    assert_eq!(m.telephone_event_pt(), Some(101));
    assert_eq!(leg.state(), LegState::Calling);
}

#[test]
fn ringing_then_answer_acks_and_reacks_retransmitted_2xx() {
    let (mut leg, invite, t0) = start(30 * SEC);
    let t = t0 + SEC;
    leg.handle_incoming(t, response(&invite, 100, None, None), callee());
    assert!(events(&mut leg).is_empty(), "100 Trying is not ringing");
    leg.handle_incoming(t, response(&invite, 180, Some("cal"), None), callee());
    leg.handle_incoming(t, response(&invite, 180, Some("cal"), None), callee());
    assert_eq!(
        events(&mut leg),
        [LegEvent::Ringing],
        "ringing reported once"
    );
    assert_eq!(leg.state(), LegState::Proceeding);

    let t = t0 + 5 * SEC;
    let ok = response(&invite, 200, Some("cal"), Some(ANSWER));
    leg.handle_incoming(t, ok.clone(), callee());
    let ev = events(&mut leg);
    let [LegEvent::Answered(neg)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(
        neg.codec,
        Codec::Pcma,
        "the callee's choice among our offer"
    );
    assert_eq!(neg.remote_addr, "127.0.0.1:6000".parse().unwrap());
    assert_eq!(neg.telephone_event_pt, Some(101));
    let acks = requests(&sent(&mut leg));
    assert_eq!(acks.len(), 1);
    let ack = &acks[0];
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.cseq().unwrap().to_string(), "1 ACK");
    assert_eq!(ack.to_header().unwrap().tag(), Some("cal"));
    assert_eq!(ack.uri.to_string(), "sip:201@127.0.0.1:5080");
    assert_ne!(
        ack.top_via().unwrap().branch,
        invite.top_via().unwrap().branch
    );
    assert_eq!(leg.state(), LegState::Connected);

    // The 2xx retransmitted (our ACK was lost): the same ACK again, no new event.
    leg.handle_incoming(t + SEC, ok.clone(), callee());
    leg.handle_incoming(t + 2 * SEC, ok, callee());
    let again = requests(&sent(&mut leg));
    assert_eq!(again, vec![ack.clone(), ack.clone()]);
    assert!(events(&mut leg).is_empty());
    // The ring timeout is over once answered.
    leg.handle_timeout(t0 + 31 * SEC);
    assert!(events(&mut leg).is_empty());
    assert!(
        requests(&sent(&mut leg)).is_empty(),
        "no CANCEL after the answer"
    );
}

/// An in-dialog request from the callee (our tag in To).
fn from_callee(method: &str, cseq: u32, body: Option<&str>) -> SipMessage {
    let mut text = format!(
        "{method} sip:caruso@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKcallee{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:201@127.0.0.1:5080>;tag=cal\r\n\
         To: \"Alice\" <sip:555@127.0.0.1>;tag=ourtag\r\n\
         Call-ID: leg-1@caruso\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:201@127.0.0.1:5080>\r\n"
    );
    match body {
        Some(b) => text.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => text.push_str("Content-Length: 0\r\n\r\n"),
    }
    parse_datagram(text.as_bytes()).unwrap()
}

fn connected() -> (Leg, Request, Instant) {
    let (mut leg, invite, t0) = start(30 * SEC);
    leg.handle_incoming(
        t0,
        response(&invite, 200, Some("cal"), Some(ANSWER)),
        callee(),
    );
    let _ = events(&mut leg);
    let _ = sent(&mut leg);
    (leg, invite, t0)
}

#[test]
fn callee_bye_is_answered_and_reported() {
    let (mut leg, _, t0) = connected();
    leg.handle_incoming(t0 + SEC, from_callee("BYE", 1, None), callee());
    assert_eq!(events(&mut leg), [LegEvent::RemoteHangup]);
    let out = sent(&mut leg);
    let SipMessage::Response(ok) = &out[0].1 else {
        panic!()
    };
    assert_eq!(ok.status, 200);
    assert_eq!(leg.state(), LegState::Ended);
    // hanging up afterwards does nothing
    leg.hangup(t0 + 2 * SEC);
    assert!(sent(&mut leg).is_empty());
    assert!(leg.is_done(t0 + 40 * SEC));
}

#[test]
fn our_hangup_after_answer_sends_bye_in_the_dialog() {
    let (mut leg, _, t0) = connected();
    leg.hangup(t0 + SEC);
    let reqs = requests(&sent(&mut leg));
    assert_eq!(reqs.len(), 1);
    let bye = &reqs[0];
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.cseq().unwrap().seq, 2);
    assert_eq!(bye.to_header().unwrap().tag(), Some("cal"));
    assert_eq!(leg.state(), LegState::Closing);
    let ok = response(bye, 200, None, None);
    leg.handle_incoming(t0 + 2 * SEC, ok, callee());
    assert_eq!(leg.state(), LegState::Ended);
    assert!(
        events(&mut leg).is_empty(),
        "the TU hung up: nothing to report"
    );
}

#[test]
fn ring_timeout_cancels_and_487_ends_the_leg() {
    let (mut leg, invite, t0) = start(30 * SEC);
    leg.handle_incoming(t0, response(&invite, 180, Some("cal"), None), callee());
    let _ = events(&mut leg);
    // Nothing happens before the ring timeout (the INVITE transaction never times out
    // in Proceeding).
    let before = t0 + 30 * SEC - Duration::from_millis(1);
    assert!(leg.poll_timeout().unwrap() <= t0 + 30 * SEC);
    leg.handle_timeout(before);
    assert!(events(&mut leg).is_empty());
    let at = t0 + 30 * SEC;
    leg.handle_timeout(at);
    assert_eq!(
        events(&mut leg),
        [LegEvent::Failed {
            reason: FailReason::NoAnswer,
            status: 0
        }]
    );
    let reqs = requests(&sent(&mut leg));
    assert_eq!(reqs.len(), 1);
    let cancel = &reqs[0];
    assert_eq!(cancel.method, Method::Cancel);
    assert_eq!(
        cancel.top_via().unwrap().branch,
        invite.top_via().unwrap().branch
    );
    assert_eq!(cancel.cseq().unwrap().to_string(), "1 CANCEL");
    assert_eq!(leg.state(), LegState::Cancelling);
    leg.handle_incoming(at, response(cancel, 200, Some("cal"), None), callee());
    leg.handle_incoming(at, response(&invite, 487, Some("cal"), None), callee());
    let acks = requests(&sent(&mut leg));
    assert_eq!(acks.len(), 1, "the transaction ACKs the 487");
    assert_eq!(acks[0].method, Method::Ack);
    assert_eq!(
        acks[0].top_via().unwrap().branch,
        invite.top_via().unwrap().branch
    );
    assert_eq!(leg.state(), LegState::Ended);
    assert!(events(&mut leg).is_empty(), "the failure was reported once");
    assert!(!leg.is_done(at), "lingers for 487 retransmissions");
    assert!(leg.is_done(at + 64 * SEC));
}

#[test]
fn a_200_after_cancel_is_acked_then_ended_with_bye() {
    let (mut leg, invite, t0) = start(30 * SEC);
    leg.handle_incoming(t0, response(&invite, 180, Some("cal"), None), callee());
    let _ = events(&mut leg);
    leg.hangup(t0 + SEC); // the caller hung up while it rang
    let cancel = requests(&sent(&mut leg)).remove(0);
    assert_eq!(cancel.method, Method::Cancel);
    // The callee answered before the CANCEL reached it.
    leg.handle_incoming(
        t0 + SEC,
        response(&cancel, 481, Some("cal"), None),
        callee(),
    );
    leg.handle_incoming(
        t0 + SEC,
        response(&invite, 200, Some("cal"), Some(ANSWER)),
        callee(),
    );
    let reqs = requests(&sent(&mut leg));
    let methods: Vec<_> = reqs.iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods, [Method::Ack, Method::Bye]);
    assert_eq!(reqs[1].to_header().unwrap().tag(), Some("cal"));
    assert!(events(&mut leg).is_empty(), "no Answered after we gave up");
    leg.handle_incoming(t0 + 2 * SEC, response(&reqs[1], 200, None, None), callee());
    assert_eq!(leg.state(), LegState::Ended);
}

#[test]
fn a_200_after_the_ring_timeout_is_acked_and_byed_too() {
    let (mut leg, invite, t0) = start(10 * SEC);
    leg.handle_incoming(t0, response(&invite, 183, Some("cal"), None), callee());
    assert_eq!(events(&mut leg), [LegEvent::Ringing]);
    leg.handle_timeout(t0 + 10 * SEC);
    assert!(matches!(
        events(&mut leg)[..],
        [LegEvent::Failed {
            reason: FailReason::NoAnswer,
            ..
        }]
    ));
    let _ = sent(&mut leg);
    leg.handle_incoming(
        t0 + 10 * SEC,
        response(&invite, 200, Some("cal"), Some(ANSWER)),
        callee(),
    );
    let methods: Vec<_> = requests(&sent(&mut leg))
        .iter()
        .map(|r| r.method.clone())
        .collect();
    assert_eq!(methods, [Method::Ack, Method::Bye]);
    assert!(events(&mut leg).is_empty());
}

#[test]
fn busy_declined_and_not_found_fail_with_their_reason() {
    for (status, reason) in [
        (486, FailReason::Busy),
        (603, FailReason::Declined),
        (404, FailReason::NotFound),
        (480, FailReason::NoAnswer),
        (503, FailReason::Unreachable),
        (302, FailReason::Rejected),
    ] {
        let (mut leg, invite, t0) = start(30 * SEC);
        leg.handle_incoming(t0, response(&invite, 100, None, None), callee());
        leg.handle_incoming(
            t0 + SEC,
            response(&invite, status, Some("cal"), None),
            callee(),
        );
        assert_eq!(events(&mut leg), [LegEvent::Failed { reason, status }]);
        let acks = requests(&sent(&mut leg));
        assert_eq!(acks.len(), 1);
        assert_eq!(acks[0].method, Method::Ack, "{status} is ACKed");
        assert_eq!(leg.state(), LegState::Ended);
        // no CANCEL at the old ring deadline
        leg.handle_timeout(t0 + 30 * SEC);
        assert!(events(&mut leg).is_empty());
        assert!(requests(&sent(&mut leg)).is_empty());
    }
}

#[test]
fn cancel_waits_for_a_provisional_response() {
    let (mut leg, invite, t0) = start(30 * SEC);
    leg.hangup(t0 + Duration::from_millis(100));
    assert!(
        requests(&sent(&mut leg)).is_empty(),
        "§9.1: no CANCEL before a 1xx"
    );
    assert_eq!(leg.state(), LegState::Cancelling);
    leg.handle_incoming(
        t0 + Duration::from_millis(300),
        response(&invite, 100, None, None),
        callee(),
    );
    let reqs = requests(&sent(&mut leg));
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, Method::Cancel);
}

#[test]
fn no_response_at_all_fails_as_unreachable_after_timer_b() {
    let (mut leg, _, t0) = start(60 * SEC);
    let mut now = t0;
    let mut invites = 1;
    while now < t0 + 33 * SEC {
        now = leg.poll_timeout().unwrap();
        leg.handle_timeout(now);
        invites += requests(&sent(&mut leg)).len();
        if leg.state() == LegState::Ended {
            break;
        }
    }
    assert_eq!(now, t0 + 32 * SEC, "Timer B = 64*T1");
    assert!(invites >= 7, "Timer A retransmissions, got {invites}");
    assert_eq!(
        events(&mut leg),
        [LegEvent::Failed {
            reason: FailReason::Unreachable,
            status: 0
        }]
    );
}

#[test]
fn a_bad_sdp_answer_is_acked_byed_and_reported() {
    let (mut leg, invite, t0) = start(30 * SEC);
    let g729 = "v=0\r\no=- 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 18\r\n";
    leg.handle_incoming(
        t0,
        response(&invite, 200, Some("cal"), Some(g729)),
        callee(),
    );
    assert_eq!(
        events(&mut leg),
        [LegEvent::Failed {
            reason: FailReason::BadAnswer,
            status: 200
        }]
    );
    let methods: Vec<_> = requests(&sent(&mut leg))
        .iter()
        .map(|r| r.method.clone())
        .collect();
    assert_eq!(methods, [Method::Ack, Method::Bye]);
}

#[test]
fn a_second_fork_answering_is_acked_and_byed() {
    let (mut leg, invite, t0) = start(30 * SEC);
    leg.handle_incoming(
        t0,
        response(&invite, 200, Some("cal"), Some(ANSWER)),
        callee(),
    );
    let _ = (events(&mut leg), sent(&mut leg));
    leg.handle_incoming(
        t0,
        response(&invite, 200, Some("fork2"), Some(ANSWER)),
        callee(),
    );
    let reqs = requests(&sent(&mut leg));
    let methods: Vec<_> = reqs.iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods, [Method::Ack, Method::Bye]);
    assert!(reqs
        .iter()
        .all(|r| r.to_header().unwrap().tag() == Some("fork2")));
    assert!(events(&mut leg).is_empty());
    assert_eq!(
        leg.state(),
        LegState::Connected,
        "the first answer stays up"
    );
}

#[test]
fn callee_hold_by_reinvite_is_answered_and_reported() {
    let (mut leg, _, t0) = connected();
    let hold = ANSWER.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
    leg.handle_incoming(t0 + SEC, from_callee("INVITE", 2, Some(&hold)), callee());
    let ev = events(&mut leg);
    let [LegEvent::MediaChanged(neg)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(neg.direction, Direction::RecvOnly);
    let out = sent(&mut leg);
    let ok = out
        .iter()
        .find_map(|(_, m)| match m {
            SipMessage::Response(r) if r.status == 200 => Some(r.clone()),
            _ => None,
        })
        .expect("200 to the re-INVITE");
    assert!(std::str::from_utf8(&ok.body)
        .unwrap()
        .contains("a=recvonly"));
    // INFO with a digit
    let mut info = match from_callee("INFO", 3, None) {
        SipMessage::Request(r) => r,
        _ => unreachable!(),
    };
    info.headers
        .push(HeaderName::ContentType, "application/dtmf-relay");
    info.body = Bytes::from_static(b"Signal=7\r\nDuration=160\r\n");
    leg.handle_incoming(t0 + 2 * SEC, SipMessage::Request(info), callee());
    assert_eq!(
        events(&mut leg),
        [LegEvent::Dtmf(DtmfDigit::from_char('7').unwrap())]
    );
    // a request of another dialog
    let stranger = from_callee("BYE", 9, None).to_bytes();
    let text = String::from_utf8(stranger)
        .unwrap()
        .replace("tag=ourtag", "tag=nope");
    leg.handle_incoming(
        t0 + 3 * SEC,
        parse_datagram(text.as_bytes()).unwrap(),
        callee(),
    );
    let out = sent(&mut leg);
    assert!(matches!(&out.last().unwrap().1, SipMessage::Response(r) if r.status == 481));
    assert_eq!(leg.state(), LegState::Connected);
}

#[test]
fn extensions_resolve_only_from_literal_sip_uris() {
    let (uri, peer) = resolve_extension("sip:201@127.0.0.1:5080").unwrap();
    assert_eq!(uri.user.as_deref(), Some("201"));
    assert_eq!(peer.addr, "127.0.0.1:5080".parse().unwrap());
    assert_eq!(peer.transport, TransportKind::Udp);
    assert_eq!(
        resolve_extension("sip:201@127.0.0.1")
            .unwrap()
            .1
            .addr
            .port(),
        5060
    );
    assert!(resolve_extension("201").is_none(), "needs the registrar");
    assert!(
        resolve_extension("sip:201@pbx.example.com").is_none(),
        "no DNS"
    );
    assert!(resolve_extension("sip:201@127.0.0.1;transport=tcp").is_none());
    assert!(resolve_extension("sip:").is_none());
}

#[test]
fn refer_is_accepted_notified_and_reported_for_the_blind_transfer() {
    let (mut leg, _, t0) = connected();
    // Without Refer-To: 400, nothing reported.
    leg.handle_incoming(t0 + SEC, from_callee("REFER", 1, None), callee());
    let out = sent(&mut leg);
    assert!(matches!(&out[0].1, SipMessage::Response(r) if r.status == 400));
    assert!(events(&mut leg).is_empty());
    // With Refer-To: 202, one NOTIFY in the dialog with a sipfrag 200, the event.
    let mut refer = match from_callee("REFER", 2, None) {
        SipMessage::Request(r) => r,
        _ => unreachable!(),
    };
    refer
        .headers
        .push(HeaderName::ReferTo, "<sip:support@127.0.0.1>");
    leg.handle_incoming(t0 + 2 * SEC, SipMessage::Request(refer), callee());
    let out = sent(&mut leg);
    assert!(matches!(&out[0].1, SipMessage::Response(r) if r.status == 202));
    let notify = requests(&out)
        .into_iter()
        .find(|r| r.method == Method::Notify)
        .expect("NOTIFY");
    assert_eq!(notify.headers.get(&HeaderName::Event), Some("refer"));
    assert!(notify
        .headers
        .get(&HeaderName::CallId)
        .is_some_and(|c| c == "leg-1@caruso"));
    assert_eq!(&notify.body[..], b"SIP/2.0 200 OK\r\n");
    match events(&mut leg).as_slice() {
        [LegEvent::Refer(uri)] => assert_eq!(uri.user.as_deref(), Some("support")),
        other => panic!("expected one Refer event, got {other:?}"),
    }
    assert_eq!(
        leg.state(),
        LegState::Connected,
        "the call ends the leg itself"
    );
}
