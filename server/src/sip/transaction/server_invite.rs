//! INVITE server transaction (RFC 3261 §17.2.1, with RFC 6026's `Accepted` state).
//!
//! Inputs: the INVITE at creation, its retransmissions and ACKs (`handle_request`), the
//! TU's responses (`send_response`), time. Outputs: responses and their retransmissions,
//! `Timeout(H)` (no ACK for a non-2xx final), `Timeout(L)` (no ACK for a 2xx: the UAS core
//! should send BYE, §13.3.1.4) and `Terminated`.
//!
//! - Retransmitted INVITEs re-send the last provisional (`Proceeding`) or the final
//!   (`Completed`); in `Accepted` they are absorbed.
//! - A 300-699 final is re-sent on Timer G (T1 doubling up to T2, unreliable only) until
//!   the ACK (then `Confirmed` for Timer I) or Timer H.
//! - A 2xx is re-sent on the same T1..T2 schedule on every transport (§13.3.1.4 makes this
//!   the UAS core's end-to-end job) until an ACK for it is reported, for at most 64*T1
//!   (Timer L), after which the machine terminates.

use super::common::{due, earliest, MachineEvent, Outbox, Retransmit};
use super::{Error, Peer, Timer, TimerConfig, Transmit};
use crate::sip::message::{HeaderName, Method, Request, Response, SipMessage};
use std::time::Instant;

/// States of the INVITE server transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerInviteState {
    /// The INVITE was received; no final response yet.
    Proceeding,
    /// A 300-699 final was sent; waiting for the ACK (Timers G, H).
    Completed,
    /// The ACK for the non-2xx final arrived; absorbing ACK retransmissions (Timer I).
    Confirmed,
    /// A 2xx was sent (RFC 6026); re-sending it until the ACK, absorbing INVITEs (Timer L).
    Accepted,
    /// Done.
    Terminated,
}

/// The INVITE server transaction state machine.
#[derive(Debug)]
pub struct ServerInvite {
    state: ServerInviteState,
    request: Request,
    to: Peer,
    timers: TimerConfig,
    reliable: bool,
    last_response: Option<Response>,
    /// Timer G, or the 2xx retransmission schedule in `Accepted`.
    timer_g: Option<Retransmit>,
    timer_h: Option<Instant>,
    timer_i: Option<Instant>,
    timer_l: Option<Instant>,
    acked: bool,
    retransmissions: u64,
    out: Outbox<Transmit>,
    events: Outbox<MachineEvent>,
}

impl ServerInvite {
    /// A new transaction for a received INVITE; responses go to `to` (see
    /// [`super::response_destination`]).
    pub fn new(_now: Instant, request: Request, to: Peer, timers: TimerConfig) -> Self {
        Self {
            state: ServerInviteState::Proceeding,
            reliable: to.transport.is_reliable(),
            request,
            to,
            timers,
            last_response: None,
            timer_g: None,
            timer_h: None,
            timer_i: None,
            timer_l: None,
            acked: false,
            retransmissions: 0,
            out: Outbox::default(),
            events: Outbox::default(),
        }
    }

    /// The current state.
    pub fn state(&self) -> ServerInviteState {
        self.state
    }

    /// The INVITE that created the transaction.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Where responses are sent.
    pub fn peer(&self) -> Peer {
        self.to
    }

    /// How many responses were re-sent (timers or request retransmissions).
    pub fn retransmissions(&self) -> u64 {
        self.retransmissions
    }

    /// Whether a 2xx was sent and its ACK has been reported.
    pub fn is_acked(&self) -> bool {
        self.acked
    }

    /// Whether a final response was sent.
    pub fn final_sent(&self) -> bool {
        self.state != ServerInviteState::Proceeding
    }

    /// Whether this transaction sent a 2xx for the dialog `call_id` / CSeq `seq`, which an
    /// ACK carrying them acknowledges (§13.3.1.4; the ACK has its own branch).
    pub fn awaits_ack_for(&self, call_id: &str, seq: u32) -> bool {
        self.state == ServerInviteState::Accepted
            && self.request.headers.get(&HeaderName::CallId) == Some(call_id)
            && super::common::cseq_number(&self.request)
                .parse::<u32>()
                .ok()
                == Some(seq)
    }

    fn resend_last(&mut self) {
        if let Some(r) = &self.last_response {
            self.retransmissions += 1;
            self.out.push(Transmit {
                to: self.to,
                message: SipMessage::Response(r.clone()),
            });
        }
    }

    /// A retransmitted INVITE or an ACK matched to this transaction. Returns whether the
    /// TU must see it: only an ACK for a 2xx (in `Accepted`) goes up; everything else is
    /// absorbed (a retransmitted INVITE makes `Proceeding` / `Completed` re-send the last
    /// response).
    pub fn handle_request(&mut self, now: Instant, request: &Request) -> bool {
        use ServerInviteState::*;
        let is_ack = request.method == Method::Ack;
        match (self.state, is_ack) {
            (Proceeding | Completed, false) => {
                self.resend_last();
                false
            }
            (Completed, true) => {
                self.timer_g = None;
                self.timer_h = None;
                let i = self.timers.duration(Timer::I, self.reliable);
                if i.is_zero() {
                    self.terminate();
                } else {
                    self.state = Confirmed;
                    self.timer_i = Some(now + i);
                }
                false
            }
            (Accepted, true) => {
                self.handle_2xx_ack();
                true
            }
            _ => false,
        }
    }

    /// Reports the ACK for the 2xx (matched by the layer on Call-ID and CSeq): stops the
    /// 2xx retransmissions. The machine stays in `Accepted` until Timer L to absorb late
    /// INVITE retransmissions.
    pub fn handle_2xx_ack(&mut self) {
        if self.state == ServerInviteState::Accepted {
            self.acked = true;
            self.timer_g = None;
        }
    }

    /// Sends the TU's response (1xx..6xx). A 2xx is also accepted in `Accepted` (it
    /// replaces the 2xx being retransmitted); anything after a non-2xx final is an error.
    pub fn send_response(&mut self, now: Instant, response: Response) -> Result<(), Error> {
        use ServerInviteState::*;
        let status = response.status;
        if !(100..=699).contains(&status) {
            return Err(Error::InvalidStatus(status));
        }
        match self.state {
            Proceeding => {}
            Accepted if (200..=299).contains(&status) => {}
            _ => {
                return Err(Error::FinalAlreadySent {
                    sent: self.last_response.as_ref().map_or(0, |r| r.status),
                    attempted: status,
                })
            }
        }
        self.out.push(Transmit {
            to: self.to,
            message: SipMessage::Response(response.clone()),
        });
        self.last_response = Some(response);
        match status {
            100..=199 => {}
            200..=299 => {
                if self.state != Accepted {
                    self.state = Accepted;
                    self.timer_l = Some(now + self.timers.duration(Timer::L, self.reliable));
                }
                // §13.3.1.4: independent of the transport.
                self.timer_g = Some(Retransmit::start(now, self.timers.t1));
            }
            _ => {
                self.state = Completed;
                self.timer_g = (!self.reliable)
                    .then(|| Retransmit::start(now, self.timers.duration(Timer::G, false)));
                self.timer_h = Some(now + self.timers.duration(Timer::H, self.reliable));
            }
        }
        Ok(())
    }

    fn terminate(&mut self) {
        self.state = ServerInviteState::Terminated;
        self.timer_g = None;
        self.timer_h = None;
        self.timer_i = None;
        self.timer_l = None;
        self.events.push(MachineEvent::Terminated);
    }

    /// Advances time: fires whichever timers are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == ServerInviteState::Terminated {
            return;
        }
        if due(self.timer_h, now) {
            self.events.push(MachineEvent::Timeout(Timer::H));
            self.terminate();
            return;
        }
        if due(self.timer_l, now) {
            if !self.acked {
                self.events.push(MachineEvent::Timeout(Timer::L));
            }
            self.terminate();
            return;
        }
        if due(self.timer_i, now) {
            self.terminate();
            return;
        }
        let t2 = self.timers.t2;
        if let Some(g) = self.timer_g.as_mut() {
            if g.at <= now {
                g.backoff(now, Some(t2));
                self.resend_last();
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
            self.timer_g.map(|g| g.at),
            self.timer_h,
            self.timer_i,
            self.timer_l,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::test_util::*;
    use std::time::Duration;

    fn sent(tx: &mut ServerInvite) -> Vec<u16> {
        std::iter::from_fn(|| tx.poll_transmit())
            .map(|t| match t.message {
                SipMessage::Response(r) => r.status,
                SipMessage::Request(_) => 0,
            })
            .collect()
    }

    fn run(tx: &mut ServerInvite, t0: Instant, stop: Duration) -> Vec<Duration> {
        let mut fired = Vec::new();
        while let Some(d) = tx.poll_timeout() {
            if d - t0 > stop {
                break;
            }
            tx.handle_timeout(d);
            if !sent(tx).is_empty() {
                fired.push(d - t0);
            }
        }
        fired
    }

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn retransmitted_invite_resends_last_provisional() {
        let t0 = Instant::now();
        let req = invite("z9hG4bKc1");
        let mut tx = ServerInvite::new(t0, req.clone(), udp_peer(), TimerConfig::default());
        assert!(!tx.handle_request(t0, &req));
        assert!(sent(&mut tx).is_empty(), "nothing to re-send yet");
        tx.send_response(t0, response_to(&req, 180, Some("u")))
            .unwrap();
        assert_eq!(sent(&mut tx), vec![180]);
        assert!(!tx.handle_request(t0, &req));
        assert_eq!(sent(&mut tx), vec![180]);
        assert_eq!(tx.poll_timeout(), None, "no timers in Proceeding");
    }

    #[test]
    fn non_2xx_final_timer_g_capped_at_t2_until_h() {
        let t0 = Instant::now();
        let req = invite("z9hG4bKc2");
        let mut tx = ServerInvite::new(t0, req.clone(), udp_peer(), TimerConfig::default());
        tx.send_response(t0, response_to(&req, 486, Some("u")))
            .unwrap();
        assert_eq!(sent(&mut tx), vec![486]);
        assert_eq!(tx.state(), ServerInviteState::Completed);
        // Retransmitted INVITE re-sends the final.
        assert!(!tx.handle_request(t0, &req));
        assert_eq!(sent(&mut tx), vec![486]);
        let fired = run(&mut tx, t0, Duration::from_secs(40));
        let mut expected = ms(&[500, 1500, 3500, 7500]);
        let mut at = 7500;
        while at + 4000 < 32_000 {
            at += 4000;
            expected.push(Duration::from_millis(at));
        }
        assert_eq!(fired, expected);
        assert_eq!(tx.state(), ServerInviteState::Terminated);
        assert_eq!(tx.poll_event(), Some(MachineEvent::Timeout(Timer::H)));
        assert_eq!(tx.poll_event(), Some(MachineEvent::Terminated));
    }

    #[test]
    fn ack_for_non_2xx_confirms_and_timer_i_terminates() {
        let t0 = Instant::now();
        let req = invite("z9hG4bKc3");
        let mut tx = ServerInvite::new(t0, req.clone(), udp_peer(), TimerConfig::default());
        tx.send_response(t0, response_to(&req, 404, Some("u")))
            .unwrap();
        sent(&mut tx);
        let ack = ack_for(&req, "z9hG4bKc3");
        assert!(!tx.handle_request(t0 + Duration::from_millis(100), &ack));
        assert_eq!(tx.state(), ServerInviteState::Confirmed);
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_millis(5100)));
        assert!(!tx.handle_request(t0 + Duration::from_millis(200), &ack));
        assert!(!tx.handle_request(t0 + Duration::from_millis(200), &req));
        assert!(
            sent(&mut tx).is_empty(),
            "Confirmed absorbs everything silently"
        );
        tx.handle_timeout(t0 + Duration::from_millis(5100));
        assert_eq!(tx.state(), ServerInviteState::Terminated);
        assert_eq!(tx.poll_event(), Some(MachineEvent::Terminated));
        assert!(tx
            .send_response(t0, response_to(&req, 200, Some("u")))
            .is_err());
    }

    #[test]
    fn reliable_no_timer_g_and_zero_timer_i() {
        let t0 = Instant::now();
        let req = invite("z9hG4bKc4");
        let mut tx = ServerInvite::new(t0, req.clone(), tcp_peer(), TimerConfig::default());
        tx.send_response(t0, response_to(&req, 486, Some("u")))
            .unwrap();
        sent(&mut tx);
        assert_eq!(
            tx.poll_timeout(),
            Some(t0 + Duration::from_secs(32)),
            "only H"
        );
        tx.handle_request(t0, &ack_for(&req, "z9hG4bKc4"));
        assert_eq!(tx.state(), ServerInviteState::Terminated);
    }

    #[test]
    fn response_after_final_is_an_error() {
        let t0 = Instant::now();
        let req = invite("z9hG4bKc5");
        let mut tx = ServerInvite::new(t0, req.clone(), udp_peer(), TimerConfig::default());
        tx.send_response(t0, response_to(&req, 486, Some("u")))
            .unwrap();
        assert_eq!(
            tx.send_response(t0, response_to(&req, 487, Some("u"))),
            Err(Error::FinalAlreadySent {
                sent: 486,
                attempted: 487
            })
        );
        assert_eq!(
            tx.send_response(t0, response_to(&req, 99, Some("u"))),
            Err(Error::InvalidStatus(99))
        );
    }

    #[test]
    fn two_xx_retransmitted_until_ack_on_any_transport() {
        for peer in [udp_peer(), tcp_peer()] {
            let t0 = Instant::now();
            let req = invite("z9hG4bKc6");
            let mut tx = ServerInvite::new(t0, req.clone(), peer, TimerConfig::default());
            tx.send_response(t0, response_to(&req, 200, Some("u")))
                .unwrap();
            assert_eq!(sent(&mut tx), vec![200]);
            assert_eq!(tx.state(), ServerInviteState::Accepted);
            assert!(tx.awaits_ack_for("call-1", 1));
            assert!(!tx.awaits_ack_for("call-1", 2));
            let fired = run(&mut tx, t0, Duration::from_millis(8000));
            assert_eq!(fired, ms(&[500, 1500, 3500, 7500]));
            // A retransmitted INVITE is absorbed in Accepted.
            assert!(!tx.handle_request(t0 + Duration::from_secs(8), &req));
            assert!(sent(&mut tx).is_empty());
            tx.handle_2xx_ack();
            assert!(tx.is_acked());
            // Only Timer L is left; it ends the machine without AckTimeout.
            assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
            tx.handle_timeout(t0 + Duration::from_secs(32));
            assert_eq!(tx.poll_event(), Some(MachineEvent::Terminated));
        }
    }

    #[test]
    fn two_xx_without_ack_times_out_after_64_t1() {
        let t0 = Instant::now();
        let req = invite("z9hG4bKc7");
        let mut tx = ServerInvite::new(t0, req.clone(), udp_peer(), TimerConfig::default());
        tx.send_response(t0, response_to(&req, 200, Some("u")))
            .unwrap();
        sent(&mut tx);
        let fired = run(&mut tx, t0, Duration::from_secs(60));
        assert_eq!(fired.len(), 10, "0.5 1.5 3.5 7.5 11.5 ... 31.5: {fired:?}");
        assert_eq!(tx.state(), ServerInviteState::Terminated);
        assert_eq!(tx.poll_event(), Some(MachineEvent::Timeout(Timer::L)));
        assert_eq!(tx.poll_event(), Some(MachineEvent::Terminated));
    }
}
