//! Tests of [`TransactionLayer`] (matching, CANCEL, 2xx retransmission, response
//! routing) and the lossy-link simulation (`sim`).

mod prop;
mod sim;

use super::test_util::*;
use super::*;
use crate::sip::message::HeaderAccess;

fn t0() -> Instant {
    Instant::now()
}

fn layer() -> TransactionLayer {
    TransactionLayer::new(TimerConfig::default())
}

fn responses(l: &mut TransactionLayer) -> Vec<(u16, Peer)> {
    std::iter::from_fn(|| l.poll_transmit())
        .filter_map(|t| match t.message {
            SipMessage::Response(r) => Some((r.status, t.to)),
            SipMessage::Request(_) => None,
        })
        .collect()
}

fn events(l: &mut TransactionLayer) -> Vec<TransactionEvent> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

fn new_request(l: &mut TransactionLayer, now: Instant, req: &Request) -> (ServerTxId, Request) {
    match l.handle_incoming(now, SipMessage::Request(req.clone()), udp_peer()) {
        Incoming::NewRequest(id, r) => (id, r),
        other => panic!("expected NewRequest, got {other:?}"),
    }
}

/// Advances the layer's clock to each deadline up to `until`.
fn run_until(l: &mut TransactionLayer, until: Instant) {
    while let Some(d) = l.poll_timeout() {
        if d > until {
            break;
        }
        l.handle_timeout(d);
    }
}

#[test]
fn new_invite_gets_100_trying_and_retransmission_is_absorbed() {
    let now = t0();
    let mut l = layer();
    let inv = invite("z9hG4bKl1");
    let (id, _) = new_request(&mut l, now, &inv);
    assert_eq!(responses(&mut l), vec![(100, udp_peer())]);
    assert_eq!(
        l.handle_incoming(now, SipMessage::Request(inv.clone()), udp_peer()),
        Incoming::Absorbed
    );
    assert_eq!(
        responses(&mut l),
        vec![(100, udp_peer())],
        "last response re-sent"
    );
    l.send_response(
        now,
        id,
        Response::for_request(&inv, 180, "Ringing", Some("u")),
    )
    .unwrap();
    assert_eq!(responses(&mut l), vec![(180, udp_peer())]);
    assert_eq!(l.len(), 1);
}

#[test]
fn new_request_via_is_stamped_with_received_and_rport() {
    let now = t0();
    let mut l = layer();
    let mut req = request("OPTIONS", "z9hG4bKl2");
    req.headers.set(
        HeaderName::Via,
        "SIP/2.0/UDP phone.invalid:5999;branch=z9hG4bKl2;rport, SIP/2.0/UDP proxy:5060;branch=z9hG4bKp",
    );
    let from = Peer {
        addr: "192.0.2.7:40000".parse().unwrap(),
        transport: TransportKind::Udp,
    };
    let Incoming::NewRequest(id, stamped) = l.handle_incoming(now, SipMessage::Request(req), from)
    else {
        panic!("expected a new request");
    };
    let via = stamped.top_via().unwrap();
    assert_eq!(via.received, Some("192.0.2.7".parse().unwrap()));
    assert_eq!(via.rport, Some(Some(40000)));
    assert_eq!(via.branch.as_deref(), Some("z9hG4bKl2"));
    let all: Vec<_> = stamped.headers.get_all(&HeaderName::Via).collect();
    assert!(
        all[0].ends_with(", SIP/2.0/UDP proxy:5060;branch=z9hG4bKp"),
        "{all:?}"
    );
    l.send_response(
        now,
        id,
        Response::for_request(&stamped, 200, "OK", Some("x")),
    )
    .unwrap();
    assert_eq!(
        responses(&mut l),
        vec![(200, from)],
        "rport: back to the source port"
    );
}

fn via(s: &str) -> Via {
    Via::parse(s).unwrap()
}

#[test]
fn response_destination_follows_18_2_2_and_rfc3581() {
    let from = Peer {
        addr: "192.0.2.7:40000".parse().unwrap(),
        transport: TransportKind::Udp,
    };
    let at = |s: &str| -> SocketAddr { s.parse().unwrap() };
    // rport requested and filled: source address and port.
    let v = via("SIP/2.0/UDP 10.1.1.1:5070;branch=z9hG4bK1;received=192.0.2.7;rport=40000");
    assert_eq!(response_destination(&v, from).addr, at("192.0.2.7:40000"));
    // rport requested but not filled: source port.
    let v = via("SIP/2.0/UDP 10.1.1.1:5070;branch=z9hG4bK1;rport");
    assert_eq!(response_destination(&v, from).addr, at("192.0.2.7:40000"));
    // no rport: received address, sent-by port.
    let v = via("SIP/2.0/UDP 10.1.1.1:5070;branch=z9hG4bK1;received=192.0.2.7");
    assert_eq!(response_destination(&v, from).addr, at("192.0.2.7:5070"));
    // no rport, sent-by is an IP, no port: 5060.
    let v = via("SIP/2.0/UDP 10.1.1.1;branch=z9hG4bK1");
    assert_eq!(response_destination(&v, from).addr, at("10.1.1.1:5060"));
    // host name (not resolved here): source address, sent-by port.
    let v = via("SIP/2.0/UDP pbx.invalid:5080;branch=z9hG4bK1");
    assert_eq!(response_destination(&v, from).addr, at("192.0.2.7:5080"));
    // reliable: the connection it came on.
    let tcp = Peer {
        transport: TransportKind::Tcp,
        ..from
    };
    let v = via("SIP/2.0/TCP 10.1.1.1:5070;branch=z9hG4bK1");
    assert_eq!(response_destination(&v, tcp), tcp);
}

#[test]
fn cancel_matches_invite_and_487_is_acked_and_absorbed() {
    let now = t0();
    let mut l = layer();
    let inv = invite("z9hG4bKl3");
    let (inv_id, inv_stamped) = new_request(&mut l, now, &inv);
    responses(&mut l);
    let cancel = create_cancel(&inv);
    assert_eq!(cancel.headers.get(&HeaderName::CSeq), Some("1 CANCEL"));
    assert_eq!(
        cancel.top_via().unwrap().branch.as_deref(),
        Some("z9hG4bKl3")
    );
    let Incoming::Cancel {
        cancel: cancel_id,
        invite: Some(matched),
        request,
    } = l.handle_incoming(now, SipMessage::Request(cancel.clone()), udp_peer())
    else {
        panic!("CANCEL not matched to its INVITE");
    };
    assert_eq!(matched, inv_id);
    assert_ne!(cancel_id, inv_id);
    l.send_response(
        now,
        cancel_id,
        Response::for_request(&request, 200, "OK", Some("u")),
    )
    .unwrap();
    let inv_req = l.server_request(inv_id).unwrap().clone();
    assert_eq!(inv_req, inv_stamped);
    l.send_response(
        now,
        inv_id,
        Response::for_request(&inv_req, 487, "Request Terminated", Some("u")),
    )
    .unwrap();
    assert_eq!(
        responses(&mut l)
            .into_iter()
            .map(|r| r.0)
            .collect::<Vec<_>>(),
        vec![200, 487]
    );
    // Retransmitted CANCEL: absorbed, its 200 re-sent.
    assert_eq!(
        l.handle_incoming(now, SipMessage::Request(cancel), udp_peer()),
        Incoming::Absorbed
    );
    assert_eq!(responses(&mut l)[0].0, 200);
    // The ACK for the 487 (same branch) is absorbed by the INVITE transaction.
    let ack = ack_for(&inv, "z9hG4bKl3");
    assert_eq!(
        l.handle_incoming(now, SipMessage::Request(ack), udp_peer()),
        Incoming::Absorbed
    );
    // Timer G stopped: the only timers left are I (INVITE) and J (CANCEL).
    run_until(&mut l, now + Duration::from_secs(60));
    assert!(responses(&mut l).is_empty());
    assert!(l.is_empty());
    let ev = events(&mut l);
    assert!(ev.contains(&TransactionEvent::Terminated(TxId::Server(inv_id))));
    assert!(ev.contains(&TransactionEvent::Terminated(TxId::Server(cancel_id))));
    assert!(!ev
        .iter()
        .any(|e| matches!(e, TransactionEvent::ServerTimeout(_))));
}

#[test]
fn cancel_without_invite_has_no_match() {
    let now = t0();
    let mut l = layer();
    let cancel = create_cancel(&invite("z9hG4bKl4"));
    assert!(matches!(
        l.handle_incoming(now, SipMessage::Request(cancel), udp_peer()),
        Incoming::Cancel { invite: None, .. }
    ));
}

#[test]
fn two_xx_retransmitted_until_ack_with_its_own_branch() {
    let now = t0();
    let mut l = layer();
    let inv = invite("z9hG4bKl5");
    let (id, inv) = new_request(&mut l, now, &inv);
    l.send_response(now, id, Response::for_request(&inv, 200, "OK", Some("u")))
        .unwrap();
    assert_eq!(responses(&mut l).len(), 2, "100 and 200");
    run_until(&mut l, now + Duration::from_millis(1600));
    assert_eq!(responses(&mut l).len(), 2, "re-sent at 0.5 s and 1.5 s");
    // An ACK for another CSeq does not stop it.
    let mut other = ack_for(&inv, "z9hG4bKack0");
    other.headers.set(HeaderName::CSeq, "2 ACK");
    assert!(matches!(
        l.handle_incoming(now, SipMessage::Request(other), udp_peer()),
        Incoming::Ack(_)
    ));
    run_until(&mut l, now + Duration::from_millis(3600));
    assert_eq!(responses(&mut l).len(), 1, "re-sent at 3.5 s");
    let ack = ack_for(&inv, "z9hG4bKack1");
    assert!(matches!(
        l.handle_incoming(now, SipMessage::Request(ack), udp_peer()),
        Incoming::Ack(_)
    ));
    run_until(&mut l, now + Duration::from_secs(40));
    assert!(responses(&mut l).is_empty(), "no more 2xx after the ACK");
    let ev = events(&mut l);
    assert_eq!(ev, vec![TransactionEvent::Terminated(TxId::Server(id))]);
    assert!(l.is_empty());
}

#[test]
fn two_xx_without_ack_raises_ack_timeout() {
    let now = t0();
    let mut l = layer();
    let (id, inv) = new_request(&mut l, now, &invite("z9hG4bKl6"));
    l.send_response(now, id, Response::for_request(&inv, 200, "OK", Some("u")))
        .unwrap();
    run_until(&mut l, now + Duration::from_secs(31));
    assert!(events(&mut l).is_empty());
    run_until(&mut l, now + Duration::from_secs(32));
    assert_eq!(
        events(&mut l),
        vec![
            TransactionEvent::AckTimeout(id),
            TransactionEvent::Terminated(TxId::Server(id))
        ]
    );
    assert_eq!(
        l.send_response(now, id, Response::for_request(&inv, 200, "OK", Some("u"))),
        Err(Error::UnknownTransaction(TxId::Server(id)))
    );
}

#[test]
fn non_2xx_without_ack_raises_server_timeout() {
    let now = t0();
    let mut l = layer();
    let (id, inv) = new_request(&mut l, now, &invite("z9hG4bKl7"));
    l.send_response(
        now,
        id,
        Response::for_request(&inv, 486, "Busy Here", Some("u")),
    )
    .unwrap();
    run_until(&mut l, now + Duration::from_secs(40));
    assert_eq!(
        events(&mut l),
        vec![
            TransactionEvent::ServerTimeout(id),
            TransactionEvent::Terminated(TxId::Server(id))
        ]
    );
}

#[test]
fn client_invite_responses_and_2xx_retransmissions_go_up() {
    let now = t0();
    let mut l = layer();
    let inv = invite("z9hG4bKl8");
    let id = l.send_request(now, inv.clone(), udp_peer()).unwrap();
    assert_eq!(l.poll_transmit().map(|t| t.to), Some(udp_peer()));
    let r = |s, tag| SipMessage::Response(Response::for_request(&inv, s, "X", tag));
    assert!(matches!(
        l.handle_incoming(now, r(100, None), udp_peer()),
        Incoming::Response(i, _) if i == id
    ));
    assert!(matches!(
        l.handle_incoming(now, r(180, Some("u")), udp_peer()),
        Incoming::Response(..)
    ));
    for _ in 0..3 {
        assert!(matches!(
            l.handle_incoming(now, r(200, Some("u")), udp_peer()),
            Incoming::Response(i, resp) if i == id && resp.status == 200
        ));
    }
    // A response for another branch is stray.
    let other = Response::for_request(&invite("z9hG4bKzz"), 200, "OK", Some("u"));
    assert!(matches!(
        l.handle_incoming(now, SipMessage::Response(other), udp_peer()),
        Incoming::StrayResponse(_)
    ));
    // A response with the right branch but another CSeq method is stray too.
    let mut wrong = Response::for_request(&inv, 200, "OK", Some("u"));
    wrong.headers.set(HeaderName::CSeq, "1 BYE");
    assert!(matches!(
        l.handle_incoming(now, SipMessage::Response(wrong), udp_peer()),
        Incoming::StrayResponse(_)
    ));
    assert!(l.poll_transmit().is_none(), "the TU ACKs a 2xx itself");
    run_until(&mut l, now + Duration::from_secs(33));
    assert!(l.is_empty());
}

#[test]
fn client_invite_failure_is_acked_by_the_transaction() {
    let now = t0();
    let mut l = layer();
    let inv = invite("z9hG4bKl9");
    l.send_request(now, inv.clone(), udp_peer()).unwrap();
    l.poll_transmit();
    let busy = SipMessage::Response(Response::for_request(&inv, 486, "Busy", Some("u")));
    assert!(matches!(
        l.handle_incoming(now, busy.clone(), udp_peer()),
        Incoming::Response(..)
    ));
    let ack = l.poll_transmit().unwrap();
    let SipMessage::Request(ack) = ack.message else {
        panic!("expected ACK")
    };
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.to_header().unwrap().tag(), Some("u"));
    assert_eq!(l.handle_incoming(now, busy, udp_peer()), Incoming::Absorbed);
    assert!(
        l.poll_transmit().is_some(),
        "ACK re-sent for the retransmitted final"
    );
}

#[test]
fn client_timeout_event_for_timer_b_and_f() {
    let now = t0();
    let mut l = layer();
    let a = l
        .send_request(now, invite("z9hG4bKm1"), udp_peer())
        .unwrap();
    let b = l
        .send_request(now, request("OPTIONS", "z9hG4bKm2"), udp_peer())
        .unwrap();
    run_until(&mut l, now + Duration::from_secs(33));
    let ev = events(&mut l);
    assert!(ev.contains(&TransactionEvent::Timeout(a)));
    assert!(ev.contains(&TransactionEvent::Timeout(b)));
    assert!(l.is_empty());
    // 1 + 6 INVITE sends (Timer A), 1 + 10 OPTIONS sends (Timer E).
    assert_eq!(std::iter::from_fn(|| l.poll_transmit()).count(), 7 + 11);
    assert_eq!(l.retransmissions(), 16);
}

#[test]
fn send_request_checks() {
    let now = t0();
    let mut l = layer();
    assert_eq!(
        l.send_request(now, request("ACK", "z9hG4bKn1"), udp_peer()),
        Err(Error::AckIsNotATransaction)
    );
    let mut no_branch = request("OPTIONS", "x");
    no_branch
        .headers
        .set(HeaderName::Via, "SIP/2.0/UDP 127.0.0.1:5070");
    assert_eq!(
        l.send_request(now, no_branch, udp_peer()),
        Err(Error::MissingBranch)
    );
    let mut mismatch = request("OPTIONS", "z9hG4bKn2");
    mismatch.headers.set(HeaderName::CSeq, "1 INFO");
    assert!(matches!(
        l.send_request(now, mismatch, udp_peer()),
        Err(Error::CSeqMethodMismatch { .. })
    ));
    let inv = invite("z9hG4bKn3");
    l.send_request(now, inv.clone(), udp_peer()).unwrap();
    assert_eq!(
        l.send_request(now, inv.clone(), udp_peer()),
        Err(Error::DuplicateBranch("z9hG4bKn3".into()))
    );
    // Its CANCEL shares the branch but is another transaction.
    let c = l
        .send_request(now, create_cancel(&inv), udp_peer())
        .unwrap();
    let ok = Response::for_request(&create_cancel(&inv), 200, "OK", Some("u"));
    assert!(matches!(
        l.handle_incoming(now, SipMessage::Response(ok), udp_peer()),
        Incoming::Response(i, _) if i == c
    ));
}

#[test]
fn invalid_messages_are_reported_not_panicked_on() {
    let now = t0();
    let mut l = layer();
    let mut req = request("OPTIONS", "z9hG4bKo1");
    req.headers.remove(&HeaderName::CSeq);
    assert!(matches!(
        l.handle_incoming(now, SipMessage::Request(req), udp_peer()),
        Incoming::Invalid { .. }
    ));
    let mut req = request("OPTIONS", "z9hG4bKo2");
    req.headers.set(HeaderName::CSeq, "1 BYE");
    assert!(matches!(
        l.handle_incoming(now, SipMessage::Request(req), udp_peer()),
        Incoming::Invalid {
            error: Error::CSeqMethodMismatch { .. },
            ..
        }
    ));
    let mut resp = Response::for_request(&request("OPTIONS", "z9hG4bKo3"), 200, "OK", None);
    resp.headers.remove(&HeaderName::Via);
    assert!(matches!(
        l.handle_incoming(now, SipMessage::Response(resp), udp_peer()),
        Incoming::Invalid { .. }
    ));
    assert!(l.is_empty());
}

#[test]
fn rfc2543_branchless_requests_match_by_dialog_fields() {
    let now = t0();
    let mut l = layer();
    let mut inv = invite("x");
    inv.headers
        .set(HeaderName::Via, "SIP/2.0/UDP 127.0.0.1:5070");
    let (id, stamped) = new_request(&mut l, now, &inv);
    responses(&mut l);
    assert_eq!(
        l.handle_incoming(now, SipMessage::Request(inv.clone()), udp_peer()),
        Incoming::Absorbed
    );
    l.send_response(
        now,
        id,
        Response::for_request(&stamped, 404, "Not Found", Some("u")),
    )
    .unwrap();
    let mut ack = ack_for(&inv, "x");
    ack.headers
        .set(HeaderName::Via, "SIP/2.0/UDP 127.0.0.1:5070");
    assert_eq!(
        l.handle_incoming(now, SipMessage::Request(ack), udp_peer()),
        Incoming::Absorbed
    );
    // A different CSeq is a different transaction.
    let mut inv2 = inv.clone();
    inv2.headers.set(HeaderName::CSeq, "2 INVITE");
    assert!(matches!(
        l.handle_incoming(now, SipMessage::Request(inv2), udp_peer()),
        Incoming::NewRequest(..)
    ));
}

#[test]
fn same_branch_from_another_sent_by_is_another_transaction() {
    let now = t0();
    let mut l = layer();
    let a = request("OPTIONS", "z9hG4bKq1");
    new_request(&mut l, now, &a);
    let mut b = a.clone();
    b.headers.set(
        HeaderName::Via,
        "SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bKq1",
    );
    assert!(matches!(
        l.handle_incoming(now, SipMessage::Request(b), udp_peer()),
        Incoming::NewRequest(..)
    ));
    assert_eq!(l.len(), 2);
}

#[test]
fn reliable_transport_server_non_invite_ends_at_once() {
    let now = t0();
    let mut l = layer();
    let req = request("BYE", "z9hG4bKr1");
    let Incoming::NewRequest(id, req) =
        l.handle_incoming(now, SipMessage::Request(req), tcp_peer())
    else {
        panic!()
    };
    l.send_response(now, id, Response::for_request(&req, 200, "OK", Some("u")))
        .unwrap();
    assert_eq!(responses(&mut l), vec![(200, tcp_peer())]);
    assert!(l.is_empty(), "Timer J is zero on TCP");
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn new_branch_is_unique_and_has_the_cookie() {
    let a = new_branch(1);
    let b = new_branch(2);
    assert!(a.starts_with("z9hG4bK") && b.starts_with("z9hG4bK"));
    assert_ne!(a, b);
    assert_eq!(a.len(), 23);
}

#[test]
fn transport_error_ends_the_transaction() {
    let now = t0();
    let mut l = layer();
    let id = l
        .send_request(now, invite("z9hG4bKt1"), tcp_peer())
        .unwrap();
    l.handle_transport_error(TxId::Client(id));
    assert_eq!(
        events(&mut l),
        vec![
            TransactionEvent::TransportError(TxId::Client(id)),
            TransactionEvent::Terminated(TxId::Client(id))
        ]
    );
    assert!(l.is_empty());
    l.handle_transport_error(TxId::Client(id));
    assert!(events(&mut l).is_empty(), "unknown id ignored");
    // The branch is free again.
    assert!(l.send_request(now, invite("z9hG4bKt1"), tcp_peer()).is_ok());
}

#[test]
fn peer_for_uri_reads_ip_port_and_transport() {
    use crate::sip::message::Uri;
    let p = |s: &str| peer_for_uri(&Uri::parse(s).unwrap());
    assert_eq!(
        p("sip:alice@192.0.2.1:5070"),
        Some(Peer {
            addr: "192.0.2.1:5070".parse().unwrap(),
            transport: TransportKind::Udp
        })
    );
    assert_eq!(
        p("sip:alice@192.0.2.1;transport=TCP"),
        Some(Peer {
            addr: "192.0.2.1:5060".parse().unwrap(),
            transport: TransportKind::Tcp
        })
    );
    assert_eq!(
        p("sips:alice@[2001:db8::1]"),
        Some(Peer {
            addr: "[2001:db8::1]:5061".parse().unwrap(),
            transport: TransportKind::Tls
        })
    );
    assert_eq!(p("sip:alice@pbx.example.com"), None);
    assert_eq!(p("sip:alice@192.0.2.1;transport=sctp"), None);
}
