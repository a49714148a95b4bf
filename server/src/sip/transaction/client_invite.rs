//! INVITE client transaction (RFC 3261 §17.1.1, with RFC 6026's `Accepted` state).
//!
//! Inputs: the INVITE at creation, responses (`handle_response`), time. Outputs: the
//! INVITE and its retransmissions (Timer A, unreliable transports only, doubling without
//! a cap until Timer B), the ACK for a 300-699 final (and again for each retransmission
//! of it), `Timeout(B)` and `Terminated` events. Every 2xx (first and retransmissions,
//! from any fork) is passed up while the machine waits in `Accepted` for 64*T1 (Timer M),
//! so the TU can re-send its ACK.

use super::common::{due, earliest, request_transmit, MachineEvent, Outbox, Retransmit};
use super::{Peer, Timer, TimerConfig, Transmit};
use crate::sip::message::{HeaderName, Method, Request, Response};
use std::time::Instant;

/// States of the INVITE client transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientInviteState {
    /// INVITE sent, nothing received yet.
    Calling,
    /// A provisional response was received.
    Proceeding,
    /// A 300-699 final was received and ACKed; absorbing its retransmissions (Timer D).
    Completed,
    /// A 2xx was received (RFC 6026); further 2xx go up to the TU (Timer M).
    Accepted,
    /// Done.
    Terminated,
}

/// The INVITE client transaction state machine.
#[derive(Debug)]
pub struct ClientInvite {
    state: ClientInviteState,
    request: Request,
    to: Peer,
    timers: TimerConfig,
    reliable: bool,
    timer_a: Option<Retransmit>,
    timer_b: Option<Instant>,
    timer_d: Option<Instant>,
    timer_m: Option<Instant>,
    ack: Option<Request>,
    retransmissions: u64,
    out: Outbox<Transmit>,
    events: Outbox<MachineEvent>,
}

impl ClientInvite {
    /// Starts the transaction: queues the INVITE and arms Timers A (unreliable) and B.
    pub fn new(now: Instant, request: Request, to: Peer, timers: TimerConfig) -> Self {
        let reliable = to.transport.is_reliable();
        let mut out = Outbox::default();
        out.push(request_transmit(to, &request));
        Self {
            state: ClientInviteState::Calling,
            timer_a: (!reliable).then(|| Retransmit::start(now, timers.duration(Timer::A, false))),
            timer_b: Some(now + timers.duration(Timer::B, reliable)),
            timer_d: None,
            timer_m: None,
            ack: None,
            retransmissions: 0,
            request,
            to,
            timers,
            reliable,
            out,
            events: Outbox::default(),
        }
    }

    /// The current state.
    pub fn state(&self) -> ClientInviteState {
        self.state
    }

    /// The INVITE this transaction sends.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The ACK sent for a non-2xx final, if any.
    pub fn ack(&self) -> Option<&Request> {
        self.ack.as_ref()
    }

    /// How many times the INVITE was re-sent (Timer A) or the ACK re-sent.
    pub fn retransmissions(&self) -> u64 {
        self.retransmissions
    }

    /// A response matched to this transaction. Returns whether the TU must see it
    /// (provisionals, the first final, every 2xx); retransmitted non-2xx finals are
    /// absorbed (and ACKed again).
    pub fn handle_response(&mut self, now: Instant, response: &Response) -> bool {
        use ClientInviteState::*;
        let status = response.status;
        match self.state {
            Calling | Proceeding => match status {
                100..=199 => {
                    self.state = Proceeding;
                    // §17.1.1.2: no retransmissions and no Timer B once a provisional arrived.
                    self.timer_a = None;
                    self.timer_b = None;
                    true
                }
                200..=299 => {
                    self.enter_accepted(now);
                    true
                }
                _ => {
                    self.timer_a = None;
                    self.timer_b = None;
                    let ack = build_ack(&self.request, response);
                    self.out.push(request_transmit(self.to, &ack));
                    self.ack = Some(ack);
                    let d = self.timers.duration(Timer::D, self.reliable);
                    if d.is_zero() {
                        self.terminate();
                    } else {
                        self.state = Completed;
                        self.timer_d = Some(now + d);
                    }
                    true
                }
            },
            Completed => {
                if status >= 300 {
                    if let Some(ack) = &self.ack {
                        self.retransmissions += 1;
                        self.out.push(request_transmit(self.to, ack));
                    }
                }
                false
            }
            Accepted => (200..=299).contains(&status),
            Terminated => false,
        }
    }

    fn enter_accepted(&mut self, now: Instant) {
        self.timer_a = None;
        self.timer_b = None;
        self.state = ClientInviteState::Accepted;
        self.timer_m = Some(now + self.timers.duration(Timer::M, self.reliable));
    }

    fn terminate(&mut self) {
        self.state = ClientInviteState::Terminated;
        self.timer_a = None;
        self.timer_b = None;
        self.timer_d = None;
        self.timer_m = None;
        self.events.push(MachineEvent::Terminated);
    }

    /// Advances time: fires whichever timers are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == ClientInviteState::Terminated {
            return;
        }
        if due(self.timer_b, now) {
            self.events.push(MachineEvent::Timeout(Timer::B));
            self.terminate();
            return;
        }
        if due(self.timer_d, now) || due(self.timer_m, now) {
            self.terminate();
            return;
        }
        if let Some(a) = self.timer_a.as_mut() {
            if a.at <= now {
                // Timer A doubles without a cap; Timer B ends it.
                a.backoff(now, None);
                self.retransmissions += 1;
                self.out.push(request_transmit(self.to, &self.request));
            }
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop()
    }

    /// The next event (timeout, termination).
    pub fn poll_event(&mut self) -> Option<MachineEvent> {
        self.events.pop()
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest([
            self.timer_a.map(|a| a.at),
            self.timer_b,
            self.timer_d,
            self.timer_m,
        ])
    }
}

/// The ACK for a 300-699 final (RFC 3261 §17.1.1.3): Request-URI, one Via, From, Call-ID,
/// Route of the INVITE; To of the response (with its tag); CSeq number of the INVITE.
pub(crate) fn build_ack(invite: &Request, response: &Response) -> Request {
    let mut headers = crate::sip::message::Headers(Vec::with_capacity(8));
    super::common::copy_for_cancel_or_ack(invite, &mut headers);
    let to = response
        .headers
        .get(&HeaderName::To)
        .or_else(|| invite.headers.get(&HeaderName::To))
        .unwrap_or_default();
    headers.push(HeaderName::To, to);
    let seq = super::common::cseq_number(invite);
    headers.push(HeaderName::CSeq, format!("{seq} ACK"));
    Request {
        method: Method::Ack,
        uri: invite.uri.clone(),
        headers,
        body: bytes::Bytes::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::SipMessage;
    use crate::sip::transaction::test_util::*;
    use std::time::Duration;

    fn as_request(t: &Transmit) -> Option<&Request> {
        match &t.message {
            SipMessage::Request(r) => Some(r),
            SipMessage::Response(_) => None,
        }
    }

    fn drain(tx: &mut ClientInvite) -> Vec<Transmit> {
        std::iter::from_fn(|| tx.poll_transmit()).collect()
    }

    #[test]
    fn timer_a_doubles_without_cap_until_b() {
        let t0 = Instant::now();
        let mut tx = ClientInvite::new(t0, invite("z9hG4bKa1"), udp_peer(), TimerConfig::default());
        assert_eq!(drain(&mut tx).len(), 1);
        let mut expected = Vec::new();
        let mut at = Duration::from_millis(500);
        let mut step = Duration::from_millis(500);
        while at < Duration::from_secs(32) {
            expected.push(at);
            step *= 2;
            at += step;
        }
        // 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s: intervals 0.5, 1, 2, 4, 8, 16 (beyond T2=4 s).
        assert_eq!(expected.len(), 6);
        let mut fired = Vec::new();
        while let Some(deadline) = tx.poll_timeout() {
            tx.handle_timeout(deadline);
            if !drain(&mut tx).is_empty() {
                fired.push(deadline - t0);
            }
            if tx.state() == ClientInviteState::Terminated {
                assert_eq!(deadline - t0, Duration::from_secs(32));
                break;
            }
        }
        assert_eq!(fired, expected);
        assert_eq!(tx.retransmissions(), 6);
        assert_eq!(tx.poll_event(), Some(MachineEvent::Timeout(Timer::B)));
        assert_eq!(tx.poll_event(), Some(MachineEvent::Terminated));
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn reliable_transport_has_no_timer_a_and_zero_timer_d() {
        let t0 = Instant::now();
        let req = invite("z9hG4bKa2");
        let mut tx = ClientInvite::new(t0, req.clone(), tcp_peer(), TimerConfig::default());
        assert_eq!(drain(&mut tx).len(), 1);
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
        assert!(tx.handle_response(t0, &response_to(&req, 486, Some("x"))));
        let sent = drain(&mut tx);
        assert_eq!(sent.len(), 1);
        assert_eq!(as_request(&sent[0]).unwrap().method, Method::Ack);
        assert_eq!(tx.state(), ClientInviteState::Terminated);
    }

    #[test]
    fn provisional_stops_retransmissions_and_timer_b() {
        let t0 = Instant::now();
        let req = invite("z9hG4bKa3");
        let mut tx = ClientInvite::new(t0, req.clone(), udp_peer(), TimerConfig::default());
        drain(&mut tx);
        assert!(tx.handle_response(t0, &response_to(&req, 180, Some("x"))));
        assert_eq!(tx.state(), ClientInviteState::Proceeding);
        assert_eq!(tx.poll_timeout(), None);
        tx.handle_timeout(t0 + Duration::from_secs(100));
        assert!(drain(&mut tx).is_empty());
        assert_eq!(tx.state(), ClientInviteState::Proceeding);
    }

    #[test]
    fn non_2xx_final_is_acked_retransmissions_absorbed_and_timer_d_ends_it() {
        let t0 = Instant::now();
        let req = invite("z9hG4bKa4");
        let mut tx = ClientInvite::new(t0, req.clone(), udp_peer(), TimerConfig::default());
        drain(&mut tx);
        let busy = response_to(&req, 486, Some("callee"));
        assert!(tx.handle_response(t0, &busy));
        assert_eq!(tx.state(), ClientInviteState::Completed);
        let ack = drain(&mut tx);
        assert_eq!(ack.len(), 1);
        let ack = as_request(&ack[0]).unwrap().clone();
        assert_eq!(ack.method, Method::Ack);
        assert_eq!(ack.uri, req.uri);
        assert_eq!(ack.headers.get(&HeaderName::CSeq), Some("1 ACK"));
        assert_eq!(
            ack.headers.get(&HeaderName::To),
            busy.headers.get(&HeaderName::To)
        );
        assert_eq!(
            ack.headers.get(&HeaderName::Via),
            req.headers.get(&HeaderName::Via)
        );
        // A retransmitted final is absorbed and ACKed again.
        assert!(!tx.handle_response(t0 + Duration::from_secs(1), &busy));
        assert_eq!(drain(&mut tx).len(), 1);
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
        tx.handle_timeout(t0 + Duration::from_secs(32));
        assert_eq!(tx.state(), ClientInviteState::Terminated);
        assert_eq!(tx.poll_event(), Some(MachineEvent::Terminated));
    }

    #[test]
    fn every_2xx_goes_up_in_accepted_until_timer_m() {
        let t0 = Instant::now();
        let req = invite("z9hG4bKa5");
        let mut tx = ClientInvite::new(t0, req.clone(), udp_peer(), TimerConfig::default());
        drain(&mut tx);
        let ok = response_to(&req, 200, Some("callee"));
        assert!(tx.handle_response(t0, &ok));
        assert_eq!(tx.state(), ClientInviteState::Accepted);
        assert!(drain(&mut tx).is_empty(), "the TU sends the ACK for a 2xx");
        assert!(tx.handle_response(t0 + Duration::from_secs(1), &ok));
        assert!(!tx.handle_response(t0, &response_to(&req, 180, Some("callee"))));
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
        tx.handle_timeout(t0 + Duration::from_secs(32));
        assert_eq!(tx.state(), ClientInviteState::Terminated);
        assert_eq!(tx.poll_event(), Some(MachineEvent::Terminated));
    }
}
