//! Calling windows: when a contact may be called, in the contact's local time.
//!
//! Contract: a [`CallingWindow`] is a daily local-time range (`from` inclusive, `to`
//! exclusive; default 08:00-21:00) on some week days (default every day). A contact has
//! one or more zones ([`super::contacts::Contact::zones`]); the window is open at an
//! instant when it is open in *every* one of them (a contact known only by a country
//! spanning several zones is called only when it is a decent hour everywhere in it).
//! [`CallingWindow::next_open`] gives the first instant at or after `now` when it is
//! open, or `None` when that never happens within two weeks (zones too far apart for
//! the window). Time is an input; daylight-saving gaps move an opening to the first
//! valid local time after it.
//!
//! ```
//! use caruso::dialer::window::CallingWindow;
//! use jiff::{tz::TimeZone, Timestamp};
//! let w = CallingWindow::default();
//! let warsaw = [TimeZone::get("Europe/Warsaw").unwrap()];
//! let night: Timestamp = "2026-03-02T22:30:00+01:00".parse().unwrap();
//! assert!(!w.is_open(&warsaw, night));
//! let next = w.next_open(&warsaw, night).unwrap();
//! assert_eq!(next, "2026-03-03T08:00:00+01:00".parse::<Timestamp>().unwrap());
//! ```

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Days looked ahead by [`CallingWindow::next_open`].
const LOOKAHEAD_DAYS: i64 = 14;

/// A daily calling window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallingWindow {
    /// Open on these week days (index 0 = Monday).
    pub days: [bool; 7],
    /// Minutes after local midnight, inclusive.
    pub from: u16,
    /// Minutes after local midnight, exclusive (1440 = midnight).
    pub to: u16,
}

impl Default for CallingWindow {
    /// 08:00-21:00 every day.
    fn default() -> Self {
        CallingWindow {
            days: [true; 7],
            from: 8 * 60,
            to: 21 * 60,
        }
    }
}

impl CallingWindow {
    /// A window from `from` to `to` (minutes after midnight, `from < to <= 1440`).
    pub fn new(days: [bool; 7], from: u16, to: u16) -> Option<CallingWindow> {
        (from < to && to <= 1440 && days.contains(&true)).then_some(CallingWindow {
            days,
            from,
            to,
        })
    }

    /// Whether the window is open at `now` in one zone.
    pub fn is_open_in(&self, zone: &TimeZone, now: Timestamp) -> bool {
        let local = now.to_zoned(zone.clone());
        let day = local.weekday().to_monday_zero_offset() as usize;
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        self.days[day] && self.from <= minute && minute < self.to
    }

    /// Whether the window is open at `now` in every zone (an empty list: never).
    pub fn is_open(&self, zones: &[TimeZone], now: Timestamp) -> bool {
        !zones.is_empty() && zones.iter().all(|z| self.is_open_in(z, now))
    }

    /// The first opening at or after `now` in one zone.
    fn next_open_in(&self, zone: &TimeZone, now: Timestamp) -> Option<Timestamp> {
        if self.is_open_in(zone, now) {
            return Some(now);
        }
        let local = now.to_zoned(zone.clone());
        let mut date = local.date();
        for _ in 0..=LOOKAHEAD_DAYS {
            let day = date.weekday().to_monday_zero_offset() as usize;
            if self.days[day] {
                let open = date
                    .at((self.from / 60) as i8, (self.from % 60) as i8, 0, 0)
                    .to_zoned(zone.clone())
                    .ok()?
                    .timestamp();
                if open >= now {
                    return Some(open);
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// The first instant at or after `now` when the window is open in every zone.
    pub fn next_open(&self, zones: &[TimeZone], now: Timestamp) -> Option<Timestamp> {
        if zones.is_empty() {
            return None;
        }
        let limit = now
            .checked_add(jiff::SignedDuration::from_hours(24 * LOOKAHEAD_DAYS))
            .ok()?;
        let mut t = now;
        // Each round moves `t` to the next opening of a zone where it is closed; the
        // window is open in the other zones or they move it on in the next round.
        while t <= limit {
            match zones.iter().find(|z| !self.is_open_in(z, t)) {
                None => return Some(t),
                Some(z) => {
                    let next = self.next_open_in(z, t)?;
                    // Opening in this zone; if another zone is already past its close
                    // the next round jumps again. Guard against no progress.
                    t = if next > t {
                        next
                    } else {
                        t.checked_add(jiff::SignedDuration::from_mins(1)).ok()?
                    };
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tz(n: &str) -> TimeZone {
        TimeZone::get(n).unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn open_from_8_to_21_local_time() {
        let w = CallingWindow::default();
        let z = [tz("Europe/Warsaw")];
        assert!(!w.is_open(&z, ts("2026-06-01T07:59:59+02:00")));
        assert!(w.is_open(&z, ts("2026-06-01T08:00:00+02:00")));
        assert!(w.is_open(&z, ts("2026-06-01T20:59:59+02:00")));
        assert!(!w.is_open(&z, ts("2026-06-01T21:00:00+02:00")));
        assert!(!w.is_open(&[], ts("2026-06-01T12:00:00+02:00")));
        // Same instant, another zone.
        assert!(!w.is_open(&[tz("America/New_York")], ts("2026-06-01T12:00:00+02:00")));
    }

    #[test]
    fn next_open_is_now_when_open_else_the_next_morning() {
        let w = CallingWindow::default();
        let z = [tz("Europe/Warsaw")];
        let noon = ts("2026-06-01T12:00:00+02:00");
        assert_eq!(w.next_open(&z, noon), Some(noon));
        assert_eq!(
            w.next_open(&z, ts("2026-06-01T05:00:00+02:00")),
            Some(ts("2026-06-01T08:00:00+02:00"))
        );
        assert_eq!(
            w.next_open(&z, ts("2026-06-01T21:00:00+02:00")),
            Some(ts("2026-06-02T08:00:00+02:00"))
        );
    }

    #[test]
    fn week_days_are_respected() {
        // Monday to Friday only; Saturday evening → Monday morning.
        let mut days = [true; 7];
        days[5] = false;
        days[6] = false;
        let w = CallingWindow::new(days, 9 * 60, 17 * 60).unwrap();
        let z = [tz("Europe/London")];
        assert_eq!(
            w.next_open(&z, ts("2026-06-06T19:00:00+01:00")),
            Some(ts("2026-06-08T09:00:00+01:00"))
        );
        assert!(CallingWindow::new([false; 7], 0, 60).is_none());
        assert!(CallingWindow::new([true; 7], 600, 600).is_none());
    }

    #[test]
    fn several_zones_must_all_be_open() {
        let w = CallingWindow::default();
        let us = [tz("America/New_York"), tz("America/Los_Angeles")];
        // 09:00 in New York is 06:00 in Los Angeles: closed until LA reaches 08:00.
        let t = ts("2026-06-01T09:00:00-04:00");
        assert!(!w.is_open(&us, t));
        assert_eq!(w.next_open(&us, t), Some(ts("2026-06-01T08:00:00-07:00")));
        // 20:30 in New York: closes at 21:00 there; next opening is tomorrow in LA.
        let t = ts("2026-06-01T21:30:00-04:00");
        assert_eq!(w.next_open(&us, t), Some(ts("2026-06-02T08:00:00-07:00")));
        // Zones 12 hours apart never share 08:00-14:00.
        let narrow = CallingWindow::new([true; 7], 8 * 60, 14 * 60).unwrap();
        assert_eq!(
            narrow.next_open(&[tz("Europe/London"), tz("Pacific/Auckland")], t),
            None
        );
    }

    #[test]
    fn daylight_saving_days_open_at_local_8() {
        let w = CallingWindow::default();
        let z = [tz("Europe/Warsaw")];
        // The night clocks go forward (29 March 2026) and back (25 October 2026).
        assert_eq!(
            w.next_open(&z, ts("2026-03-28T22:00:00+01:00")),
            Some(ts("2026-03-29T08:00:00+02:00"))
        );
        assert_eq!(
            w.next_open(&z, ts("2026-10-24T22:00:00+02:00")),
            Some(ts("2026-10-25T08:00:00+01:00"))
        );
    }
}
