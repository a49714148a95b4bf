//! Transaction-layer benches: a whole UAS call (INVITE / 100 / 200 / ACK / BYE / 200)
//! through `TransactionLayer`, and absorbing a retransmitted INVITE.
//!
//! Messages are built once; each iteration clones them (as a transport hands over a
//! freshly parsed message).

use caruso::sip::message::{
    HeaderName, Headers, Method, Request, Response, SipMessage, TransportKind, Uri,
};
use caruso::sip::transaction::{Incoming, Peer, TimerConfig, TransactionLayer};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn peer() -> Peer {
    Peer {
        addr: "127.0.0.1:5070".parse().expect("address"),
        transport: TransportKind::Udp,
    }
}

fn request(method: Method, cseq: u32, branch: &str, to_tag: Option<&str>) -> Request {
    let mut h = Headers::default();
    h.push(
        HeaderName::Via,
        format!("SIP/2.0/UDP 127.0.0.1:5070;branch={branch}"),
    );
    h.push(HeaderName::MaxForwards, "70");
    h.push(
        HeaderName::From,
        "\"Alice\" <sip:alice@127.0.0.1:5070>;tag=a73kszlfl",
    );
    let to = match to_tag {
        Some(t) => format!("<sip:100@127.0.0.1:5060>;tag={t}"),
        None => "<sip:100@127.0.0.1:5060>".to_string(),
    };
    h.push(HeaderName::To, to);
    h.push(HeaderName::CallId, "1j9FpLxk3uxtm8tn@127.0.0.1");
    h.push(HeaderName::CSeq, format!("{cseq} {method}"));
    h.push(HeaderName::Contact, "<sip:alice@127.0.0.1:5070>");
    Request {
        method,
        uri: Uri::parse("sip:100@127.0.0.1:5060").expect("uri"),
        headers: h,
        body: Default::default(),
    }
}

struct Call {
    invite: Request,
    ok_invite: Response,
    ack: Request,
    bye: Request,
    ok_bye: Response,
}

fn call() -> Call {
    let invite = request(Method::Invite, 1, "z9hG4bKinv1", None);
    let mut ok_invite = Response::for_request(&invite, 200, "OK", Some("u1"));
    ok_invite
        .headers
        .push(HeaderName::Contact, "<sip:100@127.0.0.1:5060>");
    let ack = request(Method::Ack, 1, "z9hG4bKack1", Some("u1"));
    let bye = request(Method::Bye, 2, "z9hG4bKbye1", Some("u1"));
    let ok_bye = Response::for_request(&bye, 200, "OK", None);
    Call {
        invite,
        ok_invite,
        ack,
        bye,
        ok_bye,
    }
}

fn uas_call(c: &mut Criterion) {
    let m = call();
    let now = Instant::now();
    c.bench_function("txn/uas_invite_200_ack_bye_200", |b| {
        b.iter(|| {
            let mut layer = TransactionLayer::new(TimerConfig::default());
            let Incoming::NewRequest(inv, _) =
                layer.handle_incoming(now, SipMessage::Request(m.invite.clone()), peer())
            else {
                panic!("INVITE not new")
            };
            layer
                .send_response(now, inv, m.ok_invite.clone())
                .expect("200");
            let t = now + Duration::from_millis(20);
            black_box(layer.handle_incoming(t, SipMessage::Request(m.ack.clone()), peer()));
            let Incoming::NewRequest(bye, _) =
                layer.handle_incoming(t, SipMessage::Request(m.bye.clone()), peer())
            else {
                panic!("BYE not new")
            };
            layer.send_response(t, bye, m.ok_bye.clone()).expect("200");
            while let Some(x) = layer.poll_transmit() {
                black_box(x);
            }
            black_box(layer.poll_timeout());
            layer
        })
    });
}

fn retransmission(c: &mut Criterion) {
    let m = call();
    let now = Instant::now();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let Incoming::NewRequest(inv, req) =
        layer.handle_incoming(now, SipMessage::Request(m.invite.clone()), peer())
    else {
        panic!("INVITE not new")
    };
    let ringing = Response::for_request(&req, 180, "Ringing", Some("u1"));
    layer.send_response(now, inv, ringing).expect("180");
    while layer.poll_transmit().is_some() {}
    c.bench_function("txn/absorb_retransmitted_invite", |b| {
        b.iter(|| {
            let r = layer.handle_incoming(now, SipMessage::Request(m.invite.clone()), peer());
            assert!(matches!(r, Incoming::Absorbed));
            // The 180 is re-sent.
            black_box(layer.poll_transmit())
        })
    });
}

criterion_group!(benches, uas_call, retransmission);
criterion_main!(benches);
