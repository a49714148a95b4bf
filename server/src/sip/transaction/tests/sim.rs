//! Simulation (conventions, test layer 2): a UAC core and a UAS core, each a small TU on
//! a [`TransactionLayer`] and a [`Dialog`], joined by an in-memory UDP link that drops
//! 20% of packets and delays the rest by 10-30 ms (so packets also reorder). The clock
//! jumps to the earliest deadline of either side or of the link. Each call runs
//! INVITE -> 100/180 -> (1 s) 200 -> ACK -> (2 s) BYE -> 200, and must complete. Every
//! packet crosses the link as wire bytes (`to_bytes` then `parse_datagram`), so the
//! codec and the cores are exercised together. A second scenario cancels each call after
//! the first provisional: CANCEL -> 200, INVITE -> 487 -> ACK (by the transaction).

use super::super::*;
use crate::sip::dialog::{create_ack_for_2xx, new_tag, Dialog, DialogState};
use crate::sip::message::{parse_datagram, Headers, Uri};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const UAC: &str = "127.0.0.1:5070";
const UAS: &str = "127.0.0.1:5060";

fn peer(addr: &str, transport: TransportKind) -> Peer {
    Peer {
        addr: addr.parse().expect("test address"),
        transport,
    }
}

fn via(host_port: &str, branch: String, transport: TransportKind) -> Via {
    let (host, port) = host_port.split_once(':').expect("host:port");
    Via {
        transport,
        host: host.into(),
        port: port.parse().ok(),
        branch: Some(branch),
        received: None,
        rport: Some(None),
        params: vec![],
    }
}

fn contact(user: &str, addr: &str) -> Uri {
    Uri::parse(&format!("sip:{user}@{addr}")).expect("test URI")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Uac,
    Uas,
}

struct Packet {
    at: Instant,
    seq: u64,
    to: Side,
    from: Peer,
    message: SipMessage,
}

struct Link {
    transport: TransportKind,
    rng: StdRng,
    loss: f64,
    in_flight: Vec<Packet>,
    seq: u64,
    sent: u64,
    dropped: u64,
}

impl Link {
    fn send(&mut self, now: Instant, from: Side, t: Transmit) {
        assert_eq!(t.to.transport, self.transport);
        let to = if t.to.addr == peer(UAS, self.transport).addr {
            Side::Uas
        } else if t.to.addr == peer(UAC, self.transport).addr {
            Side::Uac
        } else {
            panic!("transmit to unexpected address {:?}", t.to);
        };
        assert_ne!(to, from, "a side sent to itself");
        self.sent += 1;
        if self.rng.random_bool(self.loss) {
            self.dropped += 1;
            return;
        }
        let bytes = t.message.to_bytes();
        let message = parse_datagram(&bytes).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&bytes));
        });
        let mut same = message.clone();
        match &mut same {
            SipMessage::Request(r) => r.headers.remove(&HeaderName::ContentLength),
            SipMessage::Response(r) => r.headers.remove(&HeaderName::ContentLength),
        }
        assert_eq!(
            same, t.message,
            "wire round trip changed more than Content-Length"
        );
        let delay = Duration::from_millis(self.rng.random_range(10..30));
        self.seq += 1;
        self.in_flight.push(Packet {
            at: now + delay,
            seq: self.seq,
            to,
            from: peer(if from == Side::Uac { UAC } else { UAS }, self.transport),
            message,
        });
    }

    fn next(&self) -> Option<Instant> {
        self.in_flight.iter().map(|p| p.at).min()
    }

    /// Packets due at `now`, in arrival order.
    fn due(&mut self, now: Instant) -> Vec<Packet> {
        let mut due = Vec::new();
        let mut i = 0;
        while i < self.in_flight.len() {
            if self.in_flight[i].at <= now {
                due.push(self.in_flight.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|p| (p.at, p.seq));
        due
    }
}

struct UacCore {
    transport: TransportKind,
    cancel: bool,
    cancel_tx: Option<ClientTxId>,
    cancel_ok: bool,
    got_487: bool,
    layer: TransactionLayer,
    invite: Request,
    invite_tx: ClientTxId,
    dialog: Option<Dialog>,
    ack: Option<Request>,
    acks_sent: u64,
    bye_at: Option<Instant>,
    bye_tx: Option<ClientTxId>,
    saw_confirmed: bool,
    ended: bool,
    branches: u64,
}

impl UacCore {
    fn start(now: Instant, seed: u64, transport: TransportKind, cancel: bool) -> Self {
        let mut layer = TransactionLayer::new(TimerConfig::default());
        let mut h = Headers::default();
        h.push(
            HeaderName::Via,
            via(UAC, new_branch(seed << 8), transport).to_string(),
        );
        h.push(HeaderName::MaxForwards, "70");
        h.push(
            HeaderName::From,
            format!("<sip:alice@{UAC}>;tag={}", new_tag(seed)),
        );
        h.push(HeaderName::To, format!("<sip:100@{UAS}>"));
        h.push(HeaderName::CallId, format!("sim-{seed}@{UAC}"));
        h.push(HeaderName::CSeq, "1 INVITE");
        h.push(HeaderName::Contact, format!("<{}>", contact("alice", UAC)));
        let invite = Request {
            method: Method::Invite,
            uri: contact("100", UAS),
            headers: h,
            body: bytes::Bytes::new(),
        };
        let invite_tx = layer
            .send_request(now, invite.clone(), peer(UAS, transport))
            .expect("INVITE accepted");
        Self {
            transport,
            cancel,
            cancel_tx: None,
            cancel_ok: false,
            got_487: false,
            layer,
            invite,
            invite_tx,
            dialog: None,
            ack: None,
            acks_sent: 0,
            bye_at: None,
            bye_tx: None,
            saw_confirmed: false,
            ended: false,
            branches: seed << 8,
        }
    }

    fn branch(&mut self) -> String {
        self.branches += 1;
        new_branch(self.branches)
    }

    fn handle(&mut self, now: Instant, incoming: Incoming) {
        match incoming {
            Incoming::Response(id, resp) if id == self.invite_tx => {
                let has_tag = resp.to_header().is_ok_and(|t| t.tag().is_some());
                match (&mut self.dialog, resp.status) {
                    (None, 101..=299) if has_tag => {
                        self.dialog = Some(Dialog::new_uac(&self.invite, &resp).expect("dialog"));
                    }
                    (Some(d), _) if d.matches_response(&resp) => {
                        d.handle_response(&resp).expect("in dialog");
                    }
                    _ => {}
                }
                if resp.status < 200 && self.cancel && self.cancel_tx.is_none() {
                    // §9.1: CANCEL once a provisional response has arrived.
                    let cancel = create_cancel(&self.invite);
                    let to = peer(UAS, self.transport);
                    self.cancel_tx =
                        Some(self.layer.send_request(now, cancel, to).expect("CANCEL"));
                }
                if resp.status == 487 {
                    assert!(self.cancel, "487 without CANCEL");
                    self.got_487 = true;
                    self.ended = true;
                    if let Some(d) = self.dialog.as_ref() {
                        assert_eq!(d.state, DialogState::Terminated);
                    }
                }
                if (200..=299).contains(&resp.status) {
                    let d = self.dialog.as_ref().expect("2xx created the dialog");
                    // A late 2xx retransmission may arrive after our BYE ended the dialog
                    // (the UAS had not got the ACK yet): it is still ACKed.
                    assert_ne!(d.state, DialogState::Early);
                    self.saw_confirmed |= d.state == DialogState::Confirmed;
                    if self.ack.is_none() {
                        let v = via(UAC, self.branch(), self.transport);
                        let d = self.dialog.as_ref().expect("dialog");
                        self.ack = Some(create_ack_for_2xx(d, 1, v));
                        self.bye_at = Some(now + Duration::from_secs(2));
                    }
                    // Every 2xx (also retransmissions) is ACKed again.
                    let ack = self.ack.clone().expect("ACK built");
                    self.acks_sent += 1;
                    self.layer
                        .send_stateless(peer(UAS, self.transport), SipMessage::Request(ack));
                }
            }
            Incoming::Response(id, resp) if Some(id) == self.bye_tx => {
                if resp.status >= 200 {
                    assert_eq!(resp.status, 200);
                    if let Some(d) = self.dialog.as_mut() {
                        d.terminate();
                    }
                    self.ended = true;
                }
            }
            Incoming::Response(id, resp) if Some(id) == self.cancel_tx => {
                assert_eq!(resp.status, 200, "CANCEL answered");
                self.cancel_ok = true;
            }
            Incoming::Response(_, resp) => panic!("UAC: unexpected response {}", resp.status),
            Incoming::NewRequest(..) | Incoming::Cancel { .. } | Incoming::Ack(_) => {
                panic!("UAC: unexpected request")
            }
            Incoming::Invalid { error, .. } => panic!("UAC: invalid message {error}"),
            Incoming::Absorbed | Incoming::StrayResponse(_) => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        if self.bye_at.is_some_and(|t| t <= now) {
            self.bye_at = None;
            let v = via(UAC, self.branch(), self.transport);
            let d = self.dialog.as_mut().expect("dialog before BYE");
            let bye = d.create_request(Method::Bye, v, &contact("alice", UAC));
            assert_eq!(d.next_hop(), &contact("100", UAS));
            self.bye_tx = Some(
                self.layer
                    .send_request(now, bye, peer(UAS, self.transport))
                    .expect("BYE"),
            );
        }
        while let Some(ev) = self.layer.poll_event() {
            assert!(
                matches!(ev, TransactionEvent::Terminated(_)),
                "UAC: unexpected event {ev:?}"
            );
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [self.layer.poll_timeout(), self.bye_at]
            .into_iter()
            .flatten()
            .min()
    }
}

struct UasCore {
    layer: TransactionLayer,
    tag: String,
    dialog: Option<Dialog>,
    invite: Option<(ServerTxId, Request)>,
    answer_at: Option<Instant>,
    saw_confirmed: bool,
    acked: bool,
    answer_after: Duration,
    cancelled: bool,
    ended: bool,
}

impl UasCore {
    fn new(seed: u64, answer_after: Duration) -> Self {
        Self {
            layer: TransactionLayer::new(TimerConfig::default()),
            tag: new_tag(seed.wrapping_mul(31).wrapping_add(7)),
            dialog: None,
            invite: None,
            answer_at: None,
            saw_confirmed: false,
            acked: false,
            answer_after,
            cancelled: false,
            ended: false,
        }
    }

    fn response(&self, req: &Request, status: u16, reason: &str) -> Response {
        let d = self.dialog.as_ref().expect("dialog before any response");
        d.create_response(req, status, reason, &contact("100", UAS))
    }

    fn handle(&mut self, now: Instant, incoming: Incoming) {
        match incoming {
            Incoming::NewRequest(id, req) if req.method == Method::Invite => {
                assert!(
                    self.invite.is_none(),
                    "UAS: INVITE retransmission not absorbed"
                );
                self.dialog =
                    Some(Dialog::new_uas(&req, &self.tag, &contact("100", UAS)).expect("dialog"));
                let ringing = self.response(&req, 180, "Ringing");
                self.layer.send_response(now, id, ringing).expect("180");
                self.answer_at = Some(now + self.answer_after);
                self.invite = Some((id, req));
            }
            Incoming::NewRequest(id, req) if req.method == Method::Bye => {
                let d = self.dialog.as_mut().expect("dialog before BYE");
                let status = match d.handle_request(&req) {
                    Ok(()) => 200,
                    Err(crate::sip::dialog::Error::NotInDialog) => 481,
                    Err(e) => panic!("UAS: BYE rejected: {e}"),
                };
                self.ended = d.state == DialogState::Terminated;
                let resp = self.response(&req, status, "OK");
                self.layer.send_response(now, id, resp).expect("BYE answer");
            }
            Incoming::Ack(req) => {
                let d = self.dialog.as_mut().expect("dialog before ACK");
                if d.matches(&req) {
                    d.handle_request(&req).expect("ACK in dialog");
                    self.acked = true;
                }
            }
            Incoming::NewRequest(_, req) => panic!("UAS: unexpected {}", req.method),
            Incoming::Cancel {
                cancel,
                invite,
                request,
            } => {
                let status = if invite.is_some() { 200 } else { 481 };
                let resp = Response::for_request(&request, status, "OK", Some(&self.tag));
                self.layer
                    .send_response(now, cancel, resp)
                    .expect("CANCEL answer");
                if let Some(id) = invite {
                    let inv = self.layer.server_request(id).expect("live INVITE").clone();
                    let terminated = self.response(&inv, 487, "Request Terminated");
                    match self.layer.send_response(now, id, terminated) {
                        Ok(()) | Err(Error::FinalAlreadySent { .. }) => {}
                        Err(e) => panic!("UAS: 487 refused: {e}"),
                    }
                    self.answer_at = None;
                    self.cancelled = true;
                }
            }
            Incoming::Response(..) | Incoming::StrayResponse(_) => {
                panic!("UAS: unexpected response")
            }
            Incoming::Invalid { error, .. } => panic!("UAS: invalid message {error}"),
            Incoming::Absorbed => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        if self.answer_at.is_some_and(|t| t <= now) {
            self.answer_at = None;
            let (id, req) = self.invite.clone().expect("INVITE before answer");
            let ok = self.response(&req, 200, "OK");
            self.layer.send_response(now, id, ok).expect("200");
            let d = self.dialog.as_mut().expect("dialog");
            d.confirm();
            self.saw_confirmed = d.state == DialogState::Confirmed;
        }
        while let Some(ev) = self.layer.poll_event() {
            assert!(
                matches!(ev, TransactionEvent::Terminated(_)),
                "UAS: unexpected event {ev:?}"
            );
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [self.layer.poll_timeout(), self.answer_at]
            .into_iter()
            .flatten()
            .min()
    }
}

struct Outcome {
    retransmissions: u64,
    acks_resent: u64,
    sent: u64,
    dropped: u64,
}

fn run_call(seed: u64, loss: f64, transport: TransportKind) -> Outcome {
    run(seed, loss, transport, false)
}

fn run(seed: u64, loss: f64, transport: TransportKind, cancel: bool) -> Outcome {
    let start = Instant::now();
    let mut now = start;
    let mut link = Link {
        transport,
        rng: StdRng::seed_from_u64(seed),
        loss,
        in_flight: Vec::new(),
        seq: 0,
        sent: 0,
        dropped: 0,
    };
    let mut uac = UacCore::start(now, seed, transport, cancel);
    // When cancelling, the UAS would answer only after 20 s: the CANCEL comes first.
    let answer_after = Duration::from_secs(if cancel { 20 } else { 1 });
    let mut uas = UasCore::new(seed, answer_after);
    loop {
        while let Some(t) = uac.layer.poll_transmit() {
            link.send(now, Side::Uac, t);
        }
        while let Some(t) = uas.layer.poll_transmit() {
            link.send(now, Side::Uas, t);
        }
        let next = [link.next(), uac.poll_timeout(), uas.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else { break };
        now = now.max(next);
        assert!(
            now - start < Duration::from_secs(600),
            "seed {seed}: call still running after 10 min"
        );
        for p in link.due(now) {
            let layer = match p.to {
                Side::Uac => &mut uac.layer,
                Side::Uas => &mut uas.layer,
            };
            let incoming = layer.handle_incoming(now, p.message, p.from);
            match p.to {
                Side::Uac => uac.handle(now, incoming),
                Side::Uas => uas.handle(now, incoming),
            }
        }
        if uac.poll_timeout().is_some_and(|t| t <= now) {
            uac.handle_timeout(now);
        }
        if uas.poll_timeout().is_some_and(|t| t <= now) {
            uas.handle_timeout(now);
        }
    }
    assert!(
        uac.layer.is_empty() && uas.layer.is_empty(),
        "seed {seed}: transactions left"
    );
    let outcome = Outcome {
        retransmissions: uac.layer.retransmissions() + uas.layer.retransmissions(),
        acks_resent: uac.acks_sent.saturating_sub(1),
        sent: link.sent,
        dropped: link.dropped,
    };
    if cancel {
        assert!(uas.cancelled, "seed {seed}: UAS never saw the CANCEL");
        assert!(uac.cancel_ok, "seed {seed}: CANCEL never answered");
        assert!(uac.got_487, "seed {seed}: INVITE never answered 487");
        assert!(!uac.saw_confirmed && !uas.saw_confirmed);
        return outcome;
    }
    assert!(
        uac.saw_confirmed,
        "seed {seed}: UAC never saw the dialog confirmed"
    );
    assert!(uac.ended, "seed {seed}: UAC never got the 200 to its BYE");
    assert!(
        uas.saw_confirmed,
        "seed {seed}: UAS never confirmed the dialog"
    );
    assert!(uas.acked, "seed {seed}: UAS never got the ACK");
    assert!(uas.ended, "seed {seed}: UAS never saw the BYE");
    outcome
}

#[test]
fn calls_complete_over_a_link_dropping_20_percent() {
    let (mut retrans, mut acks, mut sent, mut dropped) = (0, 0, 0, 0);
    for seed in 0..200 {
        let o = run_call(seed, 0.2, TransportKind::Udp);
        retrans += o.retransmissions;
        acks += o.acks_resent;
        sent += o.sent;
        dropped += o.dropped;
    }
    assert!(retrans > 0, "loss never triggered a retransmission");
    assert!(acks > 0, "no 2xx retransmission was ever re-ACKed");
    let rate = dropped as f64 / sent as f64;
    eprintln!(
        "200 calls: {sent} packets, {dropped} dropped, {retrans} retransmissions, {acks} ACKs re-sent"
    );
    assert!((0.15..0.25).contains(&rate), "drop rate {rate}");
}

#[test]
fn lossless_link_needs_no_retransmission() {
    for transport in [TransportKind::Udp, TransportKind::Tcp] {
        for seed in 0..10 {
            let o = run_call(1000 + seed, 0.0, transport);
            assert_eq!(o.retransmissions, 0);
            assert_eq!(o.acks_resent, 0);
            assert_eq!(o.dropped, 0);
        }
    }
}

#[test]
fn cancelled_calls_end_with_487_over_a_lossy_link() {
    let mut retrans = 0;
    for seed in 0..100 {
        retrans += run(5000 + seed, 0.2, TransportKind::Udp, true).retransmissions;
    }
    for seed in 0..5 {
        let o = run(9000 + seed, 0.0, TransportKind::Tcp, true);
        assert_eq!(o.retransmissions, 0);
    }
    assert!(retrans > 0);
}
