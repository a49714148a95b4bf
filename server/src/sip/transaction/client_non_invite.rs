//! Non-INVITE client transaction (RFC 3261 §17.1.2).
//!
//! Inputs: the request at creation, responses, time. Outputs: the request and its
//! retransmissions (Timer E, unreliable transports only: T1 doubling up to T2 in
//! `Trying`, every T2 in `Proceeding`), `Timeout(F)` and `Terminated` events. The final
//! response's retransmissions are absorbed in `Completed` for T4 (Timer K; zero on
//! reliable transports).

use super::common::{due, earliest, request_transmit, MachineEvent, Outbox, Retransmit};
use super::{Peer, Timer, TimerConfig, Transmit};
use crate::sip::message::{Request, Response};
use std::time::Instant;

/// States of the non-INVITE client transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientNonInviteState {
    /// Request sent, nothing received yet.
    Trying,
    /// A provisional response was received.
    Proceeding,
    /// A final response was received; absorbing its retransmissions (Timer K).
    Completed,
    /// Done.
    Terminated,
}

/// The non-INVITE client transaction state machine.
#[derive(Debug)]
pub struct ClientNonInvite {
    state: ClientNonInviteState,
    request: Request,
    to: Peer,
    timers: TimerConfig,
    reliable: bool,
    timer_e: Option<Retransmit>,
    timer_f: Option<Instant>,
    timer_k: Option<Instant>,
    retransmissions: u64,
    out: Outbox<Transmit>,
    events: Outbox<MachineEvent>,
}

impl ClientNonInvite {
    /// Starts the transaction: queues the request and arms Timers E (unreliable) and F.
    pub fn new(now: Instant, request: Request, to: Peer, timers: TimerConfig) -> Self {
        let reliable = to.transport.is_reliable();
        let mut out = Outbox::default();
        out.push(request_transmit(to, &request));
        Self {
            state: ClientNonInviteState::Trying,
            timer_e: (!reliable).then(|| Retransmit::start(now, timers.duration(Timer::E, false))),
            timer_f: Some(now + timers.duration(Timer::F, reliable)),
            timer_k: None,
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
    pub fn state(&self) -> ClientNonInviteState {
        self.state
    }

    /// The request this transaction sends.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// How many times the request was re-sent (Timer E).
    pub fn retransmissions(&self) -> u64 {
        self.retransmissions
    }

    /// A response matched to this transaction. Returns whether the TU must see it
    /// (provisionals and the first final; retransmitted finals are absorbed).
    pub fn handle_response(&mut self, now: Instant, response: &Response) -> bool {
        use ClientNonInviteState::*;
        match self.state {
            Trying | Proceeding if response.status < 200 => {
                self.state = Proceeding;
                true
            }
            Trying | Proceeding => {
                self.timer_e = None;
                self.timer_f = None;
                let k = self.timers.duration(Timer::K, self.reliable);
                if k.is_zero() {
                    self.terminate();
                } else {
                    self.state = Completed;
                    self.timer_k = Some(now + k);
                }
                true
            }
            Completed | Terminated => false,
        }
    }

    fn terminate(&mut self) {
        self.state = ClientNonInviteState::Terminated;
        self.timer_e = None;
        self.timer_f = None;
        self.timer_k = None;
        self.events.push(MachineEvent::Terminated);
    }

    /// Advances time: fires whichever timers are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == ClientNonInviteState::Terminated {
            return;
        }
        if due(self.timer_f, now) {
            self.events.push(MachineEvent::Timeout(Timer::F));
            self.terminate();
            return;
        }
        if due(self.timer_k, now) {
            self.terminate();
            return;
        }
        let t2 = self.timers.t2;
        let proceeding = self.state == ClientNonInviteState::Proceeding;
        if let Some(e) = self.timer_e.as_mut() {
            if e.at <= now {
                if proceeding {
                    // §17.1.2.2: in Proceeding, Timer E is reset to T2.
                    e.interval = t2;
                    e.at = now + t2;
                } else {
                    e.backoff(now, Some(t2));
                }
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
        earliest([self.timer_e.map(|e| e.at), self.timer_f, self.timer_k])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::test_util::*;
    use std::time::Duration;

    fn drain(tx: &mut ClientNonInvite) -> usize {
        std::iter::from_fn(|| tx.poll_transmit()).count()
    }

    /// Runs the clock to each deadline until `stop`, returning the offsets at which a
    /// retransmission was sent.
    fn run(tx: &mut ClientNonInvite, t0: Instant, stop: Duration) -> Vec<Duration> {
        let mut fired = Vec::new();
        while let Some(d) = tx.poll_timeout() {
            if d - t0 > stop {
                break;
            }
            tx.handle_timeout(d);
            if drain(tx) > 0 {
                fired.push(d - t0);
            }
        }
        fired
    }

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn timer_e_doubles_capped_at_t2_then_f_times_out() {
        let t0 = Instant::now();
        let mut tx = ClientNonInvite::new(
            t0,
            request("BYE", "z9hG4bKb1"),
            udp_peer(),
            TimerConfig::default(),
        );
        assert_eq!(drain(&mut tx), 1);
        let fired = run(&mut tx, t0, Duration::from_secs(40));
        // intervals 0.5, 1, 2, 4, 4, 4 ... (T2 = 4 s) until F at 32 s.
        let mut expected = ms(&[500, 1500, 3500, 7500]);
        let mut at = 7500;
        while at + 4000 < 32_000 {
            at += 4000;
            expected.push(Duration::from_millis(at));
        }
        assert_eq!(fired, expected);
        assert_eq!(tx.state(), ClientNonInviteState::Terminated);
        assert_eq!(tx.poll_event(), Some(MachineEvent::Timeout(Timer::F)));
        assert_eq!(tx.poll_event(), Some(MachineEvent::Terminated));
    }

    #[test]
    fn timer_e_fires_every_t2_in_proceeding() {
        let t0 = Instant::now();
        let req = request("OPTIONS", "z9hG4bKb2");
        let mut tx = ClientNonInvite::new(t0, req.clone(), udp_peer(), TimerConfig::default());
        drain(&mut tx);
        let fired = run(&mut tx, t0, Duration::from_millis(1600));
        assert_eq!(fired, ms(&[500, 1500]));
        assert!(tx.handle_response(
            t0 + Duration::from_millis(1600),
            &response_to(&req, 100, None)
        ));
        assert_eq!(tx.state(), ClientNonInviteState::Proceeding);
        // Next E was armed at 1.5 + 2 = 3.5 s; after it fires in Proceeding, every T2.
        let fired = run(&mut tx, t0, Duration::from_millis(16_000));
        assert_eq!(fired, ms(&[3500, 7500, 11_500, 15_500]));
    }

    #[test]
    fn final_response_completes_and_timer_k_terminates() {
        let t0 = Instant::now();
        let req = request("BYE", "z9hG4bKb3");
        let mut tx = ClientNonInvite::new(t0, req.clone(), udp_peer(), TimerConfig::default());
        drain(&mut tx);
        let ok = response_to(&req, 200, Some("t"));
        assert!(tx.handle_response(t0, &ok));
        assert_eq!(tx.state(), ClientNonInviteState::Completed);
        assert!(
            !tx.handle_response(t0, &ok),
            "retransmitted final is absorbed"
        );
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(5)));
        tx.handle_timeout(t0 + Duration::from_secs(5));
        assert_eq!(tx.state(), ClientNonInviteState::Terminated);
        assert_eq!(drain(&mut tx), 0);
    }

    #[test]
    fn reliable_has_no_timer_e_and_zero_timer_k() {
        let t0 = Instant::now();
        let req = request("BYE", "z9hG4bKb4");
        let mut tx = ClientNonInvite::new(t0, req.clone(), tcp_peer(), TimerConfig::default());
        assert_eq!(drain(&mut tx), 1);
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
        assert!(tx.handle_response(t0, &response_to(&req, 200, Some("t"))));
        assert_eq!(tx.state(), ClientNonInviteState::Terminated);
        assert_eq!(tx.poll_event(), Some(MachineEvent::Terminated));
    }
}
