//! Business hours: weekly windows and closed dates in a time zone.
//!
//! A pure function of a wall-clock instant (passed in; nothing here reads a clock):
//! open when the local date is not a closed date and the local time falls in a window
//! of that weekday (`from` inclusive, `to` exclusive). Time zones come from the tz
//! database bundled into the binary (jiff `tzdb-bundle-always`), so daylight saving time
//! is right without `/usr/share/zoneinfo`.
//!
//! ```text
//! zone = "Europe/Warsaw"
//! windows = [{ days = "mon-fri", from = "08:00", to = "17:00" },
//!            { days = ["sat"], from = "09:00", to = "13:00" }]
//! closed_dates = ["2026-12-25"]
//! ```

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use std::collections::BTreeSet;
use std::time::SystemTime;

/// Week days in the order of `to_monday_zero_offset`.
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One weekly opening window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Open on these week days (index 0 = Monday).
    days: [bool; 7],
    /// Minutes after local midnight, inclusive.
    from: u16,
    /// Minutes after local midnight, exclusive (up to 24:00 = 1440).
    to: u16,
}

/// Business hours of an `hours` node.
#[derive(Debug, Clone)]
pub struct BusinessHours {
    zone: TimeZone,
    windows: Vec<Window>,
    closed_dates: BTreeSet<Date>,
}

impl BusinessHours {
    /// Whether the business is open at `wall`.
    pub fn is_open(&self, wall: SystemTime) -> bool {
        let Ok(ts) = Timestamp::try_from(wall) else {
            return false;
        };
        let local = ts.to_zoned(self.zone.clone());
        if self.closed_dates.contains(&local.date()) {
            return false;
        }
        let day = local.weekday().to_monday_zero_offset() as usize;
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        self.windows
            .iter()
            .any(|w| w.days[day] && w.from <= minute && minute < w.to)
    }
}

/// Looks a time zone up in the bundled database (`"Europe/Warsaw"`, `"UTC"`).
pub(crate) fn zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|_| {
        format!("expected an IANA time zone name like \"Europe/Warsaw\", found {name:?}")
    })
}

/// Parses `"mon-fri"`, `"sat"` or a list of such items into a day set.
pub(crate) fn days(items: &[&str]) -> Result<[bool; 7], String> {
    let idx = |s: &str| {
        DAYS.iter()
            .position(|d| d.eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("expected week days like \"mon-fri\" or [\"sat\"], found {s:?}"))
    };
    let mut set = [false; 7];
    for item in items {
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (idx(a)?, idx(b)?);
                if a > b {
                    return Err(format!(
                        "expected a day range in week order (mon ... sun), found {item:?}"
                    ));
                }
                set[a..=b].iter_mut().for_each(|d| *d = true);
            }
            None => set[idx(item)?] = true,
        }
    }
    if !set.contains(&true) {
        return Err("expected at least one week day".into());
    }
    Ok(set)
}

/// Parses `"HH:MM"` (00:00 ... 24:00) into minutes after midnight.
pub(crate) fn time_of_day(s: &str) -> Result<u16, String> {
    let bad = || format!("expected a time \"HH:MM\" between 00:00 and 24:00, found {s:?}");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// Parses `"YYYY-MM-DD"`.
pub(crate) fn date(s: &str) -> Result<Date, String> {
    s.parse::<Date>()
        .map_err(|_| format!("expected a date \"YYYY-MM-DD\", found {s:?}"))
}

impl Window {
    /// A window; `from` must be before `to` (overnight hours are two windows).
    pub(crate) fn new(days: [bool; 7], from: u16, to: u16) -> Result<Window, String> {
        if from >= to {
            return Err(format!(
                "expected `from` before `to` (split hours past midnight into two windows), found {:02}:{:02}-{:02}:{:02}",
                from / 60,
                from % 60,
                to / 60,
                to % 60
            ));
        }
        Ok(Window { days, from, to })
    }
}

impl BusinessHours {
    /// Business hours from parsed parts.
    pub(crate) fn new(
        zone: TimeZone,
        windows: Vec<Window>,
        closed_dates: BTreeSet<Date>,
    ) -> BusinessHours {
        BusinessHours {
            zone,
            windows,
            closed_dates,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// The wall instant of an RFC 3339 timestamp.
    fn at(rfc3339: &str) -> SystemTime {
        let ts: Timestamp = rfc3339.parse().unwrap();
        UNIX_EPOCH + Duration::from_secs(ts.as_second() as u64)
    }

    fn warsaw_office() -> BusinessHours {
        BusinessHours::new(
            zone("Europe/Warsaw").unwrap(),
            vec![
                Window::new(days(&["mon-fri"]).unwrap(), 8 * 60, 17 * 60).unwrap(),
                Window::new(days(&["sat"]).unwrap(), 9 * 60, 13 * 60).unwrap(),
            ],
            [date("2026-12-25").unwrap()].into_iter().collect(),
        )
    }

    #[test]
    fn windows_are_local_time_in_the_zone() {
        let h = warsaw_office();
        // Wednesday 2026-01-14: Warsaw is UTC+1 in winter.
        assert!(!h.is_open(at("2026-01-14T06:59:00Z"))); // 07:59 local
        assert!(h.is_open(at("2026-01-14T07:00:00Z"))); // 08:00 local
        assert!(h.is_open(at("2026-01-14T15:59:00Z"))); // 16:59 local
        assert!(!h.is_open(at("2026-01-14T16:00:00Z"))); // 17:00 local: `to` exclusive
                                                         // Saturday morning open, Sunday closed.
        assert!(h.is_open(at("2026-01-17T09:30:00Z"))); // Sat 10:30
        assert!(!h.is_open(at("2026-01-18T09:30:00Z"))); // Sun 10:30
    }

    #[test]
    fn daylight_saving_time_moves_the_utc_window() {
        let h = warsaw_office();
        // Clocks go forward on Sunday 2026-03-29; Monday 2026-03-30 is UTC+2.
        assert!(h.is_open(at("2026-03-30T06:00:00Z"))); // 08:00 local (CEST)
        assert!(!h.is_open(at("2026-03-30T05:30:00Z"))); // 07:30 local
                                                         // The Friday before (UTC+1), 06:30Z is 07:30 local: closed; 07:00Z is 08:00.
        assert!(!h.is_open(at("2026-03-27T06:30:00Z")));
        assert!(h.is_open(at("2026-03-27T07:00:00Z")));
        // Same UTC instant in New York (UTC-4 in summer) is 02:00 local.
        let ny = BusinessHours::new(
            zone("America/New_York").unwrap(),
            vec![Window::new(days(&["mon-fri"]).unwrap(), 0, 24 * 60 / 2).unwrap()],
            BTreeSet::new(),
        );
        assert!(ny.is_open(at("2026-03-30T06:00:00Z"))); // 02:00 Monday local
        assert!(!ny.is_open(at("2026-03-30T16:00:00Z"))); // 12:00 local: past the window
    }

    #[test]
    fn closed_dates_win_over_windows() {
        let h = warsaw_office();
        // Friday 2026-12-25 10:00 local (UTC+1) is a closed date; the 24th is open.
        assert!(!h.is_open(at("2026-12-25T09:00:00Z")));
        assert!(h.is_open(at("2026-12-24T09:00:00Z")));
        // 2026-12-24 23:30Z is already the 25th in Warsaw; 2026-12-25 23:30Z is the 26th
        // (Saturday 00:30, outside the Saturday window) -- the date is the local one.
        let all_day = BusinessHours::new(
            zone("Europe/Warsaw").unwrap(),
            vec![Window::new(days(&["mon-sun"]).unwrap(), 0, 1440).unwrap()],
            [date("2026-12-25").unwrap()].into_iter().collect(),
        );
        assert!(!all_day.is_open(at("2026-12-24T23:30:00Z")));
        assert!(all_day.is_open(at("2026-12-24T22:30:00Z")));
        assert!(all_day.is_open(at("2026-12-25T23:30:00Z")));
    }

    #[test]
    fn parsers_reject_bad_input() {
        assert!(zone("Mars/Olympus").is_err());
        assert_eq!(
            days(&["sat", "mon-tue"]).unwrap(),
            [true, true, false, false, false, true, false]
        );
        assert!(days(&["fri-mon"]).is_err());
        assert!(days(&["funday"]).is_err());
        assert_eq!(time_of_day("24:00"), Ok(1440));
        assert_eq!(time_of_day("08:30"), Ok(510));
        assert!(time_of_day("8:30").is_err());
        assert!(time_of_day("24:01").is_err());
        assert!(time_of_day("12:60").is_err());
        assert!(date("2026-02-30").is_err());
        assert!(Window::new([true; 7], 600, 600).is_err());
    }
}
