//! Property test: any sequence of received messages (also malformed or out of order),
//! TU actions and clock jumps leaves the layer consistent: no panic, `handle_timeout(now)`
//! always moves every deadline past `now`, and once only timers run, everything that has
//! a timer ends.

use super::super::test_util::*;
use super::super::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Request {
        method: usize,
        branch: usize,
        seq: u32,
        tcp: bool,
        broken: usize,
    },
    Response {
        status: u16,
        method: usize,
        branch: usize,
    },
    Answer {
        id: u64,
        status: u16,
    },
    Send {
        method: usize,
        branch: usize,
        tcp: bool,
    },
    Advance(u64),
    TransportError(u64),
}

const METHODS: [&str; 6] = ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO"];
const BRANCHES: [&str; 4] = ["z9hG4bKp1", "z9hG4bKp2", "old-style", ""];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..6usize, 0..4usize, 1..4u32, any::<bool>(), 0..6usize).prop_map(
            |(method, branch, seq, tcp, broken)| Op::Request {
                method,
                branch,
                seq,
                tcp,
                broken
            }
        ),
        (
            prop_oneof![Just(100u16), Just(180), Just(200), Just(486), Just(99)],
            0..6usize,
            0..4usize
        )
            .prop_map(|(status, method, branch)| Op::Response {
                status,
                method,
                branch
            }),
        (
            1..12u64,
            prop_oneof![Just(100u16), Just(183), Just(200), Just(404), Just(700)]
        )
            .prop_map(|(id, status)| Op::Answer { id, status }),
        (0..6usize, 0..4usize, any::<bool>()).prop_map(|(method, branch, tcp)| Op::Send {
            method,
            branch,
            tcp
        }),
        (0..40_000u64).prop_map(Op::Advance),
        (1..12u64).prop_map(Op::TransportError),
    ]
}

fn build_request(method: usize, branch: usize, seq: u32) -> Request {
    let mut r = request(METHODS[method], "x");
    let b = BRANCHES[branch];
    let via = if b.is_empty() {
        "SIP/2.0/UDP 127.0.0.1:5070".to_string()
    } else {
        format!("SIP/2.0/UDP 127.0.0.1:5070;branch={b}")
    };
    r.headers.set(HeaderName::Via, via);
    r.headers
        .set(HeaderName::CSeq, format!("{seq} {}", METHODS[method]));
    r
}

fn check_deadlines(l: &TransactionLayer, now: Instant) -> Result<(), TestCaseError> {
    if let Some(t) = l.poll_timeout() {
        prop_assert!(t > now, "deadline {:?} not after now", t - now);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn layer_survives_any_sequence(ops in proptest::collection::vec(op(), 1..60)) {
        let start = Instant::now();
        let mut now = start;
        let mut l = TransactionLayer::new(TimerConfig::default());
        for op in ops {
            match op {
                Op::Request { method, branch, seq, tcp, broken } => {
                    let mut r = build_request(method, branch, seq);
                    match broken {
                        0 => r.headers.remove(&HeaderName::Via),
                        1 => r.headers.set(HeaderName::CSeq, "x INVITE"),
                        2 => r.headers.set(HeaderName::Via, "SIP/2.0/UDP"),
                        _ => {}
                    }
                    let from = if tcp { tcp_peer() } else { udp_peer() };
                    let _ = l.handle_incoming(now, SipMessage::Request(r), from);
                }
                Op::Response { status, method, branch } => {
                    let req = build_request(method, branch, 1);
                    let mut resp = response_to(&req, 200, Some("t"));
                    resp.status = status;
                    let _ = l.handle_incoming(now, SipMessage::Response(resp), udp_peer());
                }
                Op::Answer { id, status } => {
                    if let Some(req) = l.server_request(ServerTxId(id)).cloned() {
                        let resp = Response::for_request(&req, status, "X", Some("u"));
                        let _ = l.send_response(now, ServerTxId(id), resp);
                    } else {
                        prop_assert!(l
                            .send_response(now, ServerTxId(id), response_to(&invite("z"), 200, None))
                            .is_err());
                    }
                }
                Op::Send { method, branch, tcp } => {
                    let to = if tcp { tcp_peer() } else { udp_peer() };
                    let _ = l.send_request(now, build_request(method, branch, 1), to);
                }
                Op::Advance(ms) => {
                    now += Duration::from_millis(ms);
                    l.handle_timeout(now);
                    check_deadlines(&l, now)?;
                }
                Op::TransportError(id) => {
                    l.handle_transport_error(TxId::Server(ServerTxId(id)));
                    l.handle_transport_error(TxId::Client(ClientTxId(id)));
                }
            }
            while l.poll_transmit().is_some() {}
            while l.poll_event().is_some() {}
        }
        // Let only timers run: every transaction with a timer must end, and time must
        // not run away (the longest chain is Timer B/F/H/L of 32 s plus D/I/J/K).
        let mut steps = 0;
        while let Some(t) = l.poll_timeout() {
            now = t;
            l.handle_timeout(now);
            check_deadlines(&l, now)?;
            steps += 1;
            prop_assert!(steps < 10_000, "timers never settle");
        }
        prop_assert!(now - start < Duration::from_secs(60 * 60));
        while l.poll_transmit().is_some() {}
        while l.poll_event().is_some() {}
    }
}
