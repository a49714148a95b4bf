//! One digit per key press when a caller's device sends DTMF several ways at once
//! (RFC 4733 events, SIP INFO, in-band tones).
//!
//! Contract: pass every digit from every source to [`DtmfDedup::handle`] with the time it
//! arrived; it returns the digit when it is a new key press and `None` when it is the
//! same press seen again through another source. A digit from source B is a duplicate
//! when an accepted press of the same digit, less than `window` old, has not yet been
//! seen from B; that press then counts as seen from B (each source can match a press
//! once). So:
//! - one press sent two or three ways is delivered once;
//! - two presses of the same key from one source are both delivered (a source never
//!   duplicates itself: each source's own receiver already reports once per press);
//! - a key pressed twice quickly and sent two ways (`1` RFC 4733, `1` INFO, `1` RFC 4733,
//!   `1` INFO, in any interleaving within the window) gives exactly two digits, because
//!   each INFO digit matches the oldest press it has not yet matched.
//!
//! The window, [`DEFAULT_WINDOW`] = 500 ms: the copies of one press travel different
//! paths: RFC 4733 and in-band arrive with the media (in-band ~30 ms after the tone
//! starts), INFO through the signalling path (proxies, TCP, retransmissions), usually
//! within 100-200 ms of each other. 500 ms covers that skew with margin; it only needs
//! to be shorter than the time after which a press seen on one path alone should no
//! longer absorb a later press on another path (a lost copy), and it stays well under
//! the IVR's inter-digit timeout (2 s). A shorter window risks double digits from a slow
//! INFO path; a longer one risks swallowing a real press when one path drops a digit.
//!
//! The state is a fixed array of [`SLOTS`] recent presses; nothing is allocated.
//!
//! ```
//! use caruso::media::dtmf::DtmfDigit;
//! use caruso::media::dtmf_dedup::{DtmfDedup, DtmfSource};
//! use std::time::{Duration, Instant};
//! let t = Instant::now();
//! let one = DtmfDigit::from_char('1').unwrap();
//! let mut dedup = DtmfDedup::default();
//! assert_eq!(dedup.handle(t, DtmfSource::Rfc4733, one), Some(one));
//! assert_eq!(dedup.handle(t + Duration::from_millis(80), DtmfSource::SipInfo, one), None);
//! ```

use std::time::{Duration, Instant};

use crate::media::dtmf::DtmfDigit;

/// The default de-duplication window (see the module doc).
pub const DEFAULT_WINDOW: Duration = Duration::from_millis(500);
/// How many recent presses are remembered.
pub const SLOTS: usize = 8;

/// Where a digit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtmfSource {
    /// RFC 4733 telephone-event packets.
    Rfc4733,
    /// SIP INFO (`application/dtmf-relay` or `application/dtmf`).
    SipInfo,
    /// Tones detected in the audio.
    Inband,
}

impl DtmfSource {
    /// Metric label and log name: `rfc4733`, `info`, `inband`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DtmfSource::Rfc4733 => "rfc4733",
            DtmfSource::SipInfo => "info",
            DtmfSource::Inband => "inband",
        }
    }

    const fn bit(self) -> u8 {
        match self {
            DtmfSource::Rfc4733 => 1,
            DtmfSource::SipInfo => 2,
            DtmfSource::Inband => 4,
        }
    }
}

/// A press recently delivered: when, which digit, which sources have reported it.
#[derive(Debug, Clone, Copy)]
struct Press {
    at: Instant,
    digit: DtmfDigit,
    seen: u8,
}

/// Merges the digits of all sources of one call (see the module doc).
#[derive(Debug, Clone)]
pub struct DtmfDedup {
    window: Duration,
    presses: [Option<Press>; SLOTS],
}

impl Default for DtmfDedup {
    fn default() -> Self {
        Self::new(DEFAULT_WINDOW)
    }
}

impl DtmfDedup {
    /// A de-duplicator treating copies up to `window` apart as one press.
    pub fn new(window: Duration) -> Self {
        DtmfDedup {
            window,
            presses: [None; SLOTS],
        }
    }

    /// The window in use.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// A digit from `source` arrived at `now`: returns it if it is a new press, `None`
    /// if it is a copy of a press already delivered.
    pub fn handle(
        &mut self,
        now: Instant,
        source: DtmfSource,
        digit: DtmfDigit,
    ) -> Option<DtmfDigit> {
        let bit = source.bit();
        let window = self.window;
        let live = |p: &Press| now.saturating_duration_since(p.at) < window;
        // The oldest live press of this digit not yet seen from this source.
        let matched = self
            .presses
            .iter_mut()
            .flatten()
            .filter(|p| p.digit == digit && p.seen & bit == 0 && live(p))
            .min_by_key(|p| p.at);
        if let Some(p) = matched {
            p.seen |= bit;
            return None;
        }
        // A new press: take a free or expired slot, else the oldest.
        let slot = self
            .presses
            .iter()
            .position(|p| p.as_ref().is_none_or(|p| !live(p)))
            .unwrap_or_else(|| {
                (0..SLOTS)
                    .min_by_key(|&i| self.presses[i].map(|p| p.at))
                    .unwrap_or(0)
            });
        self.presses[slot] = Some(Press {
            at: now,
            digit,
            seen: bit,
        });
        Some(digit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DtmfSource::*;

    fn d(c: char) -> DtmfDigit {
        DtmfDigit::from_char(c).unwrap()
    }

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    /// Runs a script of (ms, source, digit) and returns the delivered digits.
    fn run(script: &[(u64, DtmfSource, char)]) -> String {
        let t0 = Instant::now();
        let mut dd = DtmfDedup::default();
        script
            .iter()
            .filter_map(|&(t, s, c)| dd.handle(ms(t0, t), s, d(c)))
            .map(|d| d.as_char())
            .collect()
    }

    #[test]
    fn one_press_sent_two_or_three_ways_is_delivered_once() {
        assert_eq!(run(&[(0, Rfc4733, '5'), (120, SipInfo, '5')]), "5");
        assert_eq!(run(&[(0, SipInfo, '5'), (30, Rfc4733, '5')]), "5");
        assert_eq!(
            run(&[(0, Rfc4733, '5'), (30, Inband, '5'), (200, SipInfo, '5')]),
            "5"
        );
    }

    #[test]
    fn two_presses_from_one_source_are_both_delivered() {
        assert_eq!(run(&[(0, Rfc4733, '7'), (150, Rfc4733, '7')]), "77");
        assert_eq!(run(&[(0, SipInfo, '7'), (100, SipInfo, '7')]), "77");
        assert_eq!(run(&[(0, Inband, '7'), (90, Inband, '7')]), "77");
    }

    #[test]
    fn quick_repeat_on_two_sources_gives_two_digits() {
        // The brief's case, and the INFOs lagging behind both RTP events.
        assert_eq!(
            run(&[
                (0, Rfc4733, '1'),
                (40, SipInfo, '1'),
                (200, Rfc4733, '1'),
                (240, SipInfo, '1'),
            ]),
            "11"
        );
        assert_eq!(
            run(&[
                (0, Rfc4733, '1'),
                (200, Rfc4733, '1'),
                (260, SipInfo, '1'),
                (420, SipInfo, '1'),
            ]),
            "11"
        );
        // Three presses, three sources, interleaved.
        assert_eq!(
            run(&[
                (0, Rfc4733, '1'),
                (30, Inband, '1'),
                (100, SipInfo, '1'),
                (150, Rfc4733, '1'),
                (180, Inband, '1'),
                (250, SipInfo, '1'),
                (300, Rfc4733, '1'),
                (330, Inband, '1'),
                (400, SipInfo, '1'),
            ]),
            "111"
        );
    }

    #[test]
    fn different_digits_are_never_merged() {
        assert_eq!(
            run(&[
                (0, Rfc4733, '1'),
                (10, SipInfo, '2'),
                (100, SipInfo, '1'),
                (110, Rfc4733, '2'),
            ]),
            "12"
        );
    }

    #[test]
    fn copies_outside_the_window_are_new_presses() {
        assert_eq!(run(&[(0, Rfc4733, '9'), (499, SipInfo, '9')]), "9");
        assert_eq!(run(&[(0, Rfc4733, '9'), (500, SipInfo, '9')]), "99");
        let t0 = Instant::now();
        let mut dd = DtmfDedup::new(Duration::from_millis(100));
        assert_eq!(dd.window(), Duration::from_millis(100));
        assert_eq!(dd.handle(t0, Rfc4733, d('9')), Some(d('9')));
        assert_eq!(dd.handle(ms(t0, 150), SipInfo, d('9')), Some(d('9')));
    }

    #[test]
    fn a_full_table_forgets_the_oldest_press() {
        let t0 = Instant::now();
        let mut dd = DtmfDedup::default();
        let keys = "0123456789";
        for (i, c) in keys.chars().enumerate() {
            assert_eq!(dd.handle(ms(t0, i as u64), Rfc4733, d(c)), Some(d(c)));
        }
        // '0' and '1' were evicted for '8' and '9': their INFO copies are new again;
        // the others are still matched (newest first, so no new press evicts them).
        let late: String = keys
            .chars()
            .rev()
            .filter_map(|c| dd.handle(ms(t0, 20), SipInfo, d(c)))
            .map(|d| d.as_char())
            .collect();
        assert_eq!(late, "10");
    }
}
