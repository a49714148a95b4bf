//! Non-INVITE server transaction (RFC 3261 §17.2.2).
//!
//! Inputs: the request at creation, its retransmissions, the TU's responses, time.
//! Outputs: responses; a retransmitted request re-sends the last provisional
//! (`Proceeding`) or the final (`Completed`, kept for Timer J = 64*T1 on unreliable
//! transports, zero on reliable ones) and is absorbed in `Trying`.

use super::common::{due, earliest, MachineEvent, Outbox};
use super::{Error, Peer, Timer, TimerConfig, Transmit};
use crate::sip::message::{Request, Response, SipMessage};
use std::time::Instant;

/// States of the non-INVITE server transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerNonInviteState {
    /// The request was received; no response yet.
    Trying,
    /// A provisional response was sent.
    Proceeding,
    /// A final response was sent; answering retransmissions with it (Timer J).
    Completed,
    /// Done.
    Terminated,
}

/// The non-INVITE server transaction state machine.
#[derive(Debug)]
pub struct ServerNonInvite {
    state: ServerNonInviteState,
    request: Request,
    to: Peer,
    timers: TimerConfig,
    reliable: bool,
    last_response: Option<Response>,
    timer_j: Option<Instant>,
    retransmissions: u64,
    out: Outbox<Transmit>,
    events: Outbox<MachineEvent>,
}

impl ServerNonInvite {
    /// A new transaction for a received request; responses go to `to`.
    pub fn new(_now: Instant, request: Request, to: Peer, timers: TimerConfig) -> Self {
        Self {
            state: ServerNonInviteState::Trying,
            reliable: to.transport.is_reliable(),
            request,
            to,
            timers,
            last_response: None,
            timer_j: None,
            retransmissions: 0,
            out: Outbox::default(),
            events: Outbox::default(),
        }
    }

    /// The current state.
    pub fn state(&self) -> ServerNonInviteState {
        self.state
    }

    /// The request that created the transaction.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// How many responses were re-sent.
    pub fn retransmissions(&self) -> u64 {
        self.retransmissions
    }

    /// A retransmission of the request: absorbed, re-sending the last response if any.
    pub fn handle_request(&mut self, _now: Instant, _request: &Request) {
        if matches!(
            self.state,
            ServerNonInviteState::Proceeding | ServerNonInviteState::Completed
        ) {
            if let Some(r) = &self.last_response {
                self.retransmissions += 1;
                self.out.push(Transmit {
                    to: self.to,
                    message: SipMessage::Response(r.clone()),
                });
            }
        }
    }

    /// Sends the TU's response; an error once a final was sent.
    pub fn send_response(&mut self, now: Instant, response: Response) -> Result<(), Error> {
        let status = response.status;
        if !(100..=699).contains(&status) {
            return Err(Error::InvalidStatus(status));
        }
        if matches!(
            self.state,
            ServerNonInviteState::Completed | ServerNonInviteState::Terminated
        ) {
            return Err(Error::FinalAlreadySent {
                sent: self.last_response.as_ref().map_or(0, |r| r.status),
                attempted: status,
            });
        }
        self.out.push(Transmit {
            to: self.to,
            message: SipMessage::Response(response.clone()),
        });
        self.last_response = Some(response);
        if status < 200 {
            self.state = ServerNonInviteState::Proceeding;
        } else {
            let j = self.timers.duration(Timer::J, self.reliable);
            if j.is_zero() {
                self.terminate();
            } else {
                self.state = ServerNonInviteState::Completed;
                self.timer_j = Some(now + j);
            }
        }
        Ok(())
    }

    fn terminate(&mut self) {
        self.state = ServerNonInviteState::Terminated;
        self.timer_j = None;
        self.events.push(MachineEvent::Terminated);
    }

    /// Advances time: Timer J ends `Completed`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state != ServerNonInviteState::Terminated && due(self.timer_j, now) {
            self.terminate();
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop()
    }

    /// The next event (termination).
    pub fn poll_event(&mut self) -> Option<MachineEvent> {
        self.events.pop()
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest([self.timer_j])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::test_util::*;
    use std::time::Duration;

    fn sent(tx: &mut ServerNonInvite) -> Vec<u16> {
        std::iter::from_fn(|| tx.poll_transmit())
            .map(|t| match t.message {
                SipMessage::Response(r) => r.status,
                SipMessage::Request(_) => 0,
            })
            .collect()
    }

    #[test]
    fn retransmissions_absorbed_in_trying_answered_after() {
        let t0 = Instant::now();
        let req = request("BYE", "z9hG4bKd1");
        let mut tx = ServerNonInvite::new(t0, req.clone(), udp_peer(), TimerConfig::default());
        tx.handle_request(t0, &req);
        assert!(sent(&mut tx).is_empty());
        tx.send_response(t0, response_to(&req, 100, None)).unwrap();
        assert_eq!(sent(&mut tx), vec![100]);
        assert_eq!(tx.state(), ServerNonInviteState::Proceeding);
        tx.handle_request(t0, &req);
        assert_eq!(sent(&mut tx), vec![100]);
        tx.send_response(t0, response_to(&req, 200, Some("x")))
            .unwrap();
        assert_eq!(sent(&mut tx), vec![200]);
        tx.handle_request(t0, &req);
        assert_eq!(sent(&mut tx), vec![200]);
        assert_eq!(tx.retransmissions(), 2);
        assert!(matches!(
            tx.send_response(t0, response_to(&req, 500, Some("x"))),
            Err(Error::FinalAlreadySent { sent: 200, .. })
        ));
    }

    #[test]
    fn timer_j_is_64_t1_on_udp_and_zero_on_tcp() {
        let t0 = Instant::now();
        let req = request("BYE", "z9hG4bKd2");
        let mut tx = ServerNonInvite::new(t0, req.clone(), udp_peer(), TimerConfig::default());
        tx.send_response(t0, response_to(&req, 200, Some("x")))
            .unwrap();
        assert_eq!(tx.state(), ServerNonInviteState::Completed);
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
        tx.handle_timeout(t0 + Duration::from_secs(31));
        assert_eq!(tx.state(), ServerNonInviteState::Completed);
        tx.handle_timeout(t0 + Duration::from_secs(32));
        assert_eq!(tx.state(), ServerNonInviteState::Terminated);
        assert_eq!(tx.poll_event(), Some(MachineEvent::Terminated));

        let mut tx = ServerNonInvite::new(t0, req.clone(), tcp_peer(), TimerConfig::default());
        tx.send_response(t0, response_to(&req, 200, Some("x")))
            .unwrap();
        assert_eq!(sent(&mut tx), vec![200]);
        assert_eq!(tx.state(), ServerNonInviteState::Terminated);
        assert_eq!(tx.poll_timeout(), None);
    }
}
