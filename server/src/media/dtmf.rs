//! RFC 4733 telephone-events: a receiver that turns event packets into digits, and a
//! sender that builds the packets of one digit.
//!
//! Contract: [`DtmfReceiver::handle_payload`] returns a digit exactly once per event. An
//! event is keyed by its RTP timestamp (the event start, RFC 4733 §2.3.5): the updates,
//! the three redundant end packets (§2.5.1.4) and any retransmitted or duplicated packet
//! of the same event return `None`; a new event, even of the same digit, has a new
//! timestamp and returns the digit again. A long event split into segments (§2.5.1.3)
//! stays one digit. Events 0-15 are digits `0-9 * # A-D`; other events are ignored.
//!
//! ```
//! use caruso::media::dtmf::{DtmfDigit, DtmfReceiver, DtmfSender};
//! use std::time::Instant;
//! let now = Instant::now();
//! let mut rx = DtmfReceiver::new();
//! let five = DtmfDigit::from_char('5').unwrap();
//! let mut digits = Vec::new();
//! for p in DtmfSender::new(five, 800, 160) {
//!     digits.extend(rx.handle_payload(now, 1000, p.marker, &p.payload.to_bytes()));
//! }
//! assert_eq!(digits, [five]);
//! ```

use std::fmt;
use std::time::{Duration, Instant};

/// Errors reading a telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DtmfError {
    /// RFC 4733 §2.3: the payload is at least 4 bytes.
    #[error("telephone-event payload of {0} bytes, need 4")]
    TooShort(usize),
}

/// A DTMF digit: `0-9`, `*`, `#`, `A-D` (RFC 4733 events 0-15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DtmfDigit(u8);

const DIGIT_CHARS: &[u8; 16] = b"0123456789*#ABCD";

impl DtmfDigit {
    /// The digit of an RFC 4733 event code (0-15), if it is one.
    pub const fn from_event(code: u8) -> Option<DtmfDigit> {
        if code < 16 {
            Some(DtmfDigit(code))
        } else {
            None
        }
    }

    /// The digit for a character (`a-d` accepted too).
    pub fn from_char(c: char) -> Option<DtmfDigit> {
        let up = c.to_ascii_uppercase() as u32;
        DIGIT_CHARS
            .iter()
            .position(|&d| u32::from(d) == up)
            .map(|i| DtmfDigit(i as u8))
    }

    /// The RFC 4733 event code (0-15).
    pub const fn event(self) -> u8 {
        self.0
    }

    /// The digit as a character.
    pub const fn as_char(self) -> char {
        DIGIT_CHARS[(self.0 & 0x0F) as usize] as char
    }
}

impl fmt::Display for DtmfDigit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

/// A telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPayload {
    /// Event code.
    pub event: u8,
    /// E bit: the event has ended.
    pub end: bool,
    /// Volume in -dBm0 (0-63).
    pub volume: u8,
    /// Duration so far in timestamp units.
    pub duration: u16,
}

impl EventPayload {
    /// Reads the first 4 bytes of a payload.
    pub fn parse(p: &[u8]) -> Result<EventPayload, DtmfError> {
        match p {
            [event, flags, d0, d1, ..] => Ok(EventPayload {
                event: *event,
                end: flags & 0x80 != 0,
                volume: flags & 0x3F,
                duration: u16::from_be_bytes([*d0, *d1]),
            }),
            _ => Err(DtmfError::TooShort(p.len())),
        }
    }

    /// The 4 payload bytes.
    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }
}

/// An event we are tracking (the latest one).
#[derive(Debug, Clone, Copy)]
struct Current {
    timestamp: u32,
    event: u8,
    duration: u16,
    ended: bool,
}

/// How many past event start timestamps are remembered (late retransmissions).
const HISTORY: usize = 8;
/// Past events are forgotten after this long (timestamps may repeat after a restart).
const HISTORY_TTL: Duration = Duration::from_secs(30);

/// Turns RFC 4733 packets into digits, once per event.
#[derive(Debug, Clone, Default)]
pub struct DtmfReceiver {
    current: Option<Current>,
    history: [Option<(u32, Instant)>; HISTORY],
    next_slot: usize,
}

impl DtmfReceiver {
    /// A receiver with no history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets all events (for a new SSRC).
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    fn seen(&self, now: Instant, ts: u32) -> bool {
        now_recent(&self.history, now, ts)
    }

    /// Handles one telephone-event payload; returns the digit if this packet starts a
    /// new event (see the module doc).
    pub fn handle_payload(
        &mut self,
        now: Instant,
        rtp_timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Option<DtmfDigit> {
        let _ = marker; // The timestamp, not the marker (often lost), keys the event.
        let p = EventPayload::parse(payload).ok()?;
        if let Some(cur) = self.current.as_mut() {
            if cur.timestamp == rtp_timestamp {
                cur.duration = cur.duration.max(p.duration);
                cur.ended |= p.end;
                return None;
            }
            // RFC 4733 §2.5.1.3: a long event continues in a new segment whose timestamp
            // is the old one plus the old duration.
            if !cur.ended
                && cur.event == p.event
                && rtp_timestamp.wrapping_sub(cur.timestamp) == u32::from(cur.duration)
                && cur.duration >= 0xFF00
            {
                *cur = Current {
                    timestamp: rtp_timestamp,
                    event: p.event,
                    duration: p.duration,
                    ended: p.end,
                };
                self.remember(now, rtp_timestamp);
                return None;
            }
        }
        if self.seen(now, rtp_timestamp) {
            return None;
        }
        // Reordered old event arriving late: ignore events older than the current one.
        if let Some(cur) = self.current {
            let age = cur.timestamp.wrapping_sub(rtp_timestamp);
            if age != 0 && age < 0x8000_0000 && self.seen(now, cur.timestamp) {
                // The packet's start is before the current event's start.
                self.remember(now, rtp_timestamp);
                return None;
            }
        }
        self.current = Some(Current {
            timestamp: rtp_timestamp,
            event: p.event,
            duration: p.duration,
            ended: p.end,
        });
        self.remember(now, rtp_timestamp);
        DtmfDigit::from_event(p.event)
    }

    fn remember(&mut self, now: Instant, ts: u32) {
        self.history[self.next_slot] = Some((ts, now));
        self.next_slot = (self.next_slot + 1) % HISTORY;
    }
}

fn now_recent(history: &[Option<(u32, Instant)>], now: Instant, ts: u32) -> bool {
    history
        .iter()
        .flatten()
        .any(|(t, at)| *t == ts && now.saturating_duration_since(*at) < HISTORY_TTL)
}

/// One packet of a telephone-event as built by [`DtmfSender`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    /// Marker bit: set on the first packet of the event.
    pub marker: bool,
    /// The payload.
    pub payload: EventPayload,
}

/// Builds the packets of one digit (RFC 4733 §2.5.1): a first packet with the marker,
/// updates every `step` timestamp units, then the final duration three times with the E
/// bit. All packets share the event's start timestamp, chosen by the caller.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    digit: DtmfDigit,
    total: u16,
    step: u16,
    elapsed: u16,
    ends_sent: u8,
}

/// Volume used for generated events (-10 dBm0).
pub const DEFAULT_VOLUME: u8 = 10;

impl DtmfSender {
    /// A sender for `digit` lasting `total` timestamp units in packets every `step`.
    pub fn new(digit: DtmfDigit, total: u16, step: u16) -> Self {
        DtmfSender {
            digit,
            total: total.max(1),
            step: step.max(1),
            elapsed: 0,
            ends_sent: 0,
        }
    }
}

impl Iterator for DtmfSender {
    type Item = EventPacket;

    fn next(&mut self) -> Option<EventPacket> {
        if self.elapsed < self.total {
            let first = self.elapsed == 0;
            self.elapsed = self.elapsed.saturating_add(self.step).min(self.total);
            if self.elapsed < self.total {
                return Some(EventPacket {
                    marker: first,
                    payload: EventPayload {
                        event: self.digit.event(),
                        end: false,
                        volume: DEFAULT_VOLUME,
                        duration: self.elapsed,
                    },
                });
            }
        }
        if self.ends_sent < 3 {
            self.ends_sent += 1;
            return Some(EventPacket {
                marker: false,
                payload: EventPayload {
                    event: self.digit.event(),
                    end: true,
                    volume: DEFAULT_VOLUME,
                    duration: self.total,
                },
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> DtmfDigit {
        DtmfDigit::from_char(c).unwrap()
    }

    fn feed(rx: &mut DtmfReceiver, now: Instant, ts: u32, digit: char) -> Vec<DtmfDigit> {
        DtmfSender::new(d(digit), 800, 160)
            .filter_map(|p| rx.handle_payload(now, ts, p.marker, &p.payload.to_bytes()))
            .collect()
    }

    #[test]
    fn digits_and_codes() {
        let all: String = (0..16)
            .map(|e| DtmfDigit::from_event(e).unwrap().as_char())
            .collect();
        assert_eq!(all, "0123456789*#ABCD");
        assert_eq!(DtmfDigit::from_event(16), None);
        assert_eq!(d('#').event(), 11);
        assert_eq!(d('a').event(), 12);
        assert_eq!(DtmfDigit::from_char('x'), None);
        assert_eq!(d('*').to_string(), "*");
    }

    #[test]
    fn payload_wire_format() {
        let p = EventPayload {
            event: 11,
            end: true,
            volume: 10,
            duration: 800,
        };
        assert_eq!(p.to_bytes(), [11, 0x8A, 0x03, 0x20]);
        assert_eq!(EventPayload::parse(&p.to_bytes()).unwrap(), p);
        assert_eq!(EventPayload::parse(&[1, 2]), Err(DtmfError::TooShort(2)));
    }

    #[test]
    fn sender_packet_sequence() {
        let pkts: Vec<EventPacket> = DtmfSender::new(d('1'), 800, 160).collect();
        assert_eq!(pkts.len(), 4 + 3);
        assert!(pkts[0].marker && !pkts[1].marker);
        assert_eq!(pkts[0].payload.duration, 160);
        assert!(pkts[4..]
            .iter()
            .all(|p| p.payload.end && p.payload.duration == 800));
        assert!(pkts[..4].iter().all(|p| !p.payload.end));
    }

    #[test]
    fn one_digit_per_event_with_redundant_ends() {
        let now = Instant::now();
        let mut rx = DtmfReceiver::new();
        assert_eq!(feed(&mut rx, now, 1000, '5'), [d('5')]);
        // The whole event retransmitted (duplicated datagrams): nothing new.
        assert!(feed(&mut rx, now, 1000, '5').is_empty());
        // Same digit pressed again: new timestamp, counted again.
        assert_eq!(feed(&mut rx, now, 3000, '5'), [d('5')]);
        assert_eq!(feed(&mut rx, now, 5000, '#'), [d('#')]);
    }

    #[test]
    fn only_end_packets_still_give_the_digit_once() {
        let now = Instant::now();
        let mut rx = DtmfReceiver::new();
        let end = EventPayload {
            event: 9,
            end: true,
            volume: 10,
            duration: 800,
        }
        .to_bytes();
        assert_eq!(rx.handle_payload(now, 42, false, &end), Some(d('9')));
        assert_eq!(rx.handle_payload(now, 42, false, &end), None);
        assert_eq!(rx.handle_payload(now, 42, false, &end), None);
    }

    #[test]
    fn late_end_packet_of_previous_event_is_not_counted() {
        let now = Instant::now();
        let mut rx = DtmfReceiver::new();
        assert_eq!(feed(&mut rx, now, 1000, '1'), [d('1')]);
        assert_eq!(feed(&mut rx, now, 2000, '2'), [d('2')]);
        let late = EventPayload {
            event: 1,
            end: true,
            volume: 10,
            duration: 800,
        };
        assert_eq!(rx.handle_payload(now, 1000, false, &late.to_bytes()), None);
    }

    #[test]
    fn long_event_segments_are_one_digit() {
        let now = Instant::now();
        let mut rx = DtmfReceiver::new();
        let seg = |dur: u16, end: bool| {
            EventPayload {
                event: 0,
                end,
                volume: 10,
                duration: dur,
            }
            .to_bytes()
        };
        assert_eq!(
            rx.handle_payload(now, 100, true, &seg(160, false)),
            Some(d('0'))
        );
        assert_eq!(
            rx.handle_payload(now, 100, false, &seg(0xFFFF, false)),
            None
        );
        assert_eq!(
            rx.handle_payload(now, 100 + 0xFFFF, false, &seg(160, false)),
            None
        );
        assert_eq!(
            rx.handle_payload(now, 100 + 0xFFFF, false, &seg(320, true)),
            None
        );
    }

    #[test]
    fn non_digit_events_and_short_payloads_are_ignored() {
        let now = Instant::now();
        let mut rx = DtmfReceiver::new();
        let flash = EventPayload {
            event: 16,
            end: false,
            volume: 10,
            duration: 160,
        };
        assert_eq!(rx.handle_payload(now, 1, true, &flash.to_bytes()), None);
        assert_eq!(rx.handle_payload(now, 2, true, &[1, 2, 3]), None);
    }

    #[test]
    fn history_expires() {
        let now = Instant::now();
        let mut rx = DtmfReceiver::new();
        assert_eq!(feed(&mut rx, now, 1000, '3'), [d('3')]);
        assert_eq!(feed(&mut rx, now, 2000, '4'), [d('4')]);
        // Long after, a stream restart reuses timestamp 1000: it is a new event.
        let later = now + Duration::from_secs(60);
        assert_eq!(feed(&mut rx, later, 1000, '3'), [d('3')]);
    }
}
