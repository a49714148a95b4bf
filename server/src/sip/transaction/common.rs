//! Pieces shared by the four state machines: the timer table, the small output queues
//! and the helpers that read a request's identifying headers.

use super::{Peer, Timer, TimerConfig, Transmit};
use crate::sip::message::{HeaderName, Request};
use std::time::{Duration, Instant};

/// What a state machine reports to whoever drives it (the layer, or a test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineEvent {
    /// A timeout timer fired: B (client INVITE), F (client non-INVITE), H (server INVITE,
    /// no ACK for a non-2xx final) or L (server INVITE, no ACK for a 2xx).
    Timeout(Timer),
    /// The machine reached `Terminated`; it can be dropped.
    Terminated,
}

/// A fixed-size FIFO without heap allocation. Every input of a machine produces at most
/// one transmit and at most two events, so two slots are enough when the driver polls
/// after each input; when full, the oldest entry is dropped (a lost retransmission is
/// covered by the next one).
#[derive(Debug)]
pub(crate) struct Outbox<T> {
    slots: [Option<T>; 2],
}

impl<T> Default for Outbox<T> {
    fn default() -> Self {
        Self {
            slots: [None, None],
        }
    }
}

impl<T> Outbox<T> {
    pub(crate) fn push(&mut self, item: T) {
        if self.slots[0].is_none() {
            self.slots[0] = Some(item);
        } else if self.slots[1].is_none() {
            self.slots[1] = Some(item);
        } else {
            self.slots[0] = self.slots[1].take();
            self.slots[1] = Some(item);
        }
    }
    pub(crate) fn pop(&mut self) -> Option<T> {
        let first = self.slots[0].take();
        if first.is_some() {
            self.slots[0] = self.slots[1].take();
        }
        first
    }
}

/// A retransmission timer (A, E, G, or the 2xx schedule of RFC 3261 §13.3.1.4): when it
/// fires at `at` the message is re-sent and the interval grows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retransmit {
    pub(crate) at: Instant,
    pub(crate) interval: Duration,
}

impl Retransmit {
    pub(crate) fn start(now: Instant, interval: Duration) -> Self {
        Self {
            at: now + interval,
            interval,
        }
    }
    /// Doubles the interval (capped at `cap` when given) and schedules the next firing.
    pub(crate) fn backoff(&mut self, now: Instant, cap: Option<Duration>) {
        let doubled = self.interval.saturating_mul(2);
        self.interval = match cap {
            Some(c) => doubled.min(c),
            None => doubled,
        };
        self.at = now + self.interval;
    }
}

/// Earliest of a few optional deadlines.
pub(crate) fn earliest<const N: usize>(deadlines: [Option<Instant>; N]) -> Option<Instant> {
    deadlines.into_iter().flatten().min()
}

/// Whether an optional deadline is due.
pub(crate) fn due(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|d| d <= now)
}

impl TimerConfig {
    /// The RFC 3261 table (§17, Table 4): the initial duration of `timer` on a reliable
    /// or unreliable transport. Retransmission timers (A, E, G) start at T1 and are only
    /// used on unreliable transports; D, I, J and K are zero on reliable ones. L and M
    /// are RFC 6026's wait for 2xx retransmissions / ACKs (64*T1).
    pub fn duration(&self, timer: Timer, reliable: bool) -> Duration {
        let t1x64 = self.t1.saturating_mul(64);
        match timer {
            Timer::A | Timer::E | Timer::G => self.t1,
            Timer::B | Timer::F | Timer::H | Timer::L | Timer::M => t1x64,
            Timer::D if reliable => Duration::ZERO,
            // "> 32 s for UDP"; stays above 64*T1 when T1 is configured larger.
            Timer::D => t1x64.max(Duration::from_secs(32)),
            Timer::I | Timer::K if reliable => Duration::ZERO,
            Timer::I | Timer::K => self.t4,
            Timer::J if reliable => Duration::ZERO,
            Timer::J => t1x64,
        }
    }
}

/// Builds a transmit of a request.
pub(crate) fn request_transmit(to: Peer, request: &Request) -> Transmit {
    Transmit {
        to,
        message: crate::sip::message::SipMessage::Request(request.clone()),
    }
}

/// The first Via value of the first Via header line, as written (a line may hold
/// several comma-separated values).
pub(crate) fn first_via_value(value: &str) -> &str {
    split_first_via(value).0
}

/// Splits a Via header line into its first value and the rest (starting at the comma,
/// or empty). Commas inside quoted strings do not split.
pub(crate) fn split_first_via(value: &str) -> (&str, &str) {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => return (value[..i].trim(), &value[i..]),
            _ => {}
        }
    }
    (value.trim(), "")
}

/// The number part of a CSeq value, as written (`"314 INVITE"` -> `"314"`).
pub(crate) fn cseq_number(request: &Request) -> &str {
    request
        .headers
        .get(&HeaderName::CSeq)
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("0")
}

/// Copies the headers RFC 3261 §9.1 / §17.1.1.3 take over into a CANCEL or an ACK for a
/// non-2xx: one Via (the request's top one), Route, From, Call-ID, Max-Forwards. `To`
/// and `CSeq` are set by the caller.
pub(crate) fn copy_for_cancel_or_ack(request: &Request, out: &mut crate::sip::message::Headers) {
    if let Some(v) = request.headers.get(&HeaderName::Via) {
        out.push(HeaderName::Via, first_via_value(v));
    }
    for name in [HeaderName::From, HeaderName::CallId] {
        if let Some(v) = request.headers.get(&name) {
            out.push(name, v);
        }
    }
    for r in request.headers.get_all(&HeaderName::Route) {
        out.push(HeaderName::Route, r);
    }
    out.push(HeaderName::MaxForwards, "70");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_is_fifo_and_drops_oldest_when_full() {
        let mut o = Outbox::default();
        assert_eq!(o.pop(), None::<u8>);
        o.push(1);
        o.push(2);
        assert_eq!(o.pop(), Some(1));
        o.push(3);
        o.push(4);
        assert_eq!(o.pop(), Some(3));
        assert_eq!(o.pop(), Some(4));
        assert_eq!(o.pop(), None);
    }

    #[test]
    fn split_first_via_respects_quotes() {
        assert_eq!(
            split_first_via("SIP/2.0/UDP a;x=\"1,2\" , SIP/2.0/UDP b"),
            ("SIP/2.0/UDP a;x=\"1,2\"", ", SIP/2.0/UDP b")
        );
        assert_eq!(split_first_via(" SIP/2.0/UDP a "), ("SIP/2.0/UDP a", ""));
    }

    #[test]
    fn timer_table_follows_rfc3261_table_4() {
        let t = TimerConfig::default();
        assert_eq!(t.duration(Timer::A, false), Duration::from_millis(500));
        assert_eq!(t.duration(Timer::B, false), Duration::from_secs(32));
        assert_eq!(t.duration(Timer::D, false), Duration::from_secs(32));
        assert_eq!(t.duration(Timer::D, true), Duration::ZERO);
        assert_eq!(t.duration(Timer::I, false), Duration::from_secs(5));
        assert_eq!(t.duration(Timer::I, true), Duration::ZERO);
        assert_eq!(t.duration(Timer::J, false), Duration::from_secs(32));
        assert_eq!(t.duration(Timer::J, true), Duration::ZERO);
        assert_eq!(t.duration(Timer::K, false), Duration::from_secs(5));
        assert_eq!(t.duration(Timer::K, true), Duration::ZERO);
        let small = TimerConfig {
            t1: Duration::from_millis(10),
            ..TimerConfig::default()
        };
        assert_eq!(small.duration(Timer::D, false), Duration::from_secs(32));
        assert_eq!(small.duration(Timer::F, false), Duration::from_millis(640));
    }
}
