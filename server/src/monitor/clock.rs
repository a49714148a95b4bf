//! Local calendar days for the monitor's daily figures ("today" resets at local
//! midnight). Pure once built: the wall-clock time is always an argument.
//!
//! ```
//! use caruso::monitor::clock::LocalDays;
//! let days = LocalDays::new(jiff::tz::TimeZone::get("Europe/Paris").unwrap());
//! // 2024-03-01 22:30 UTC is 23:30 in Paris: still the 1st; midnight is 23:00 UTC.
//! let t = 1_709_332_200_000;
//! assert_eq!(days.day(t).to_string(), "2024-03-01");
//! assert_eq!(days.next_midnight_ms(t), 1_709_334_000_000);
//! ```

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Maps wall-clock instants (ms since the Unix epoch) to local dates of one time zone.
#[derive(Debug, Clone)]
pub struct LocalDays {
    tz: TimeZone,
}

impl Default for LocalDays {
    fn default() -> Self {
        LocalDays::new(TimeZone::UTC)
    }
}

impl LocalDays {
    /// Days in `tz`.
    pub fn new(tz: TimeZone) -> LocalDays {
        LocalDays { tz }
    }

    /// Days in the host's time zone: `$TZ` when it names an IANA zone, else
    /// `/etc/localtime`, else UTC (reads the environment and a file: call it once at
    /// start).
    pub fn host() -> LocalDays {
        if let Ok(name) = std::env::var("TZ") {
            let name = name.trim_start_matches(':');
            if let Ok(tz) = TimeZone::get(name) {
                return LocalDays::new(tz);
            }
        }
        if let Ok(bytes) = std::fs::read("/etc/localtime") {
            if let Ok(tz) = TimeZone::tzif("localtime", &bytes) {
                return LocalDays::new(tz);
            }
        }
        LocalDays::default()
    }

    /// The time zone.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The local date at `unix_ms`.
    pub fn day(&self, unix_ms: u64) -> Date {
        timestamp(unix_ms).to_zoned(self.tz.clone()).date()
    }

    /// The next local midnight after `unix_ms` (the start of the following day; when a
    /// time-zone change skips midnight, the first instant of that day), in ms.
    pub fn next_midnight_ms(&self, unix_ms: u64) -> u64 {
        let next = self
            .day(unix_ms)
            .tomorrow()
            .and_then(|d| d.to_zoned(self.tz.clone()));
        match next {
            Ok(z) => u64::try_from(z.timestamp().as_millisecond()).unwrap_or(u64::MAX),
            // The end of jiff's range (year 9999): no midnight to wait for.
            Err(_) => u64::MAX,
        }
    }
}

fn timestamp(unix_ms: u64) -> Timestamp {
    i64::try_from(unix_ms)
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_days_change_at_utc_midnight() {
        let d = LocalDays::default();
        // 2024-01-01T23:59:59.999Z and 2024-01-02T00:00:00Z.
        let before = 1_704_153_599_999;
        assert_eq!(d.day(before).to_string(), "2024-01-01");
        assert_eq!(d.day(before + 1).to_string(), "2024-01-02");
        assert_eq!(d.next_midnight_ms(before), before + 1);
        assert_eq!(d.next_midnight_ms(before + 1), before + 1 + 86_400_000);
    }

    #[test]
    fn a_day_with_a_dst_change_is_23_hours_long() {
        // Paris moved to summer time on 2024-03-31 (02:00 -> 03:00).
        let d = LocalDays::new(TimeZone::get("Europe/Paris").expect("bundled tzdb"));
        let midnight_31 = 1_711_839_600_000; // 2024-03-30T23:00:00Z
        assert_eq!(d.day(midnight_31).to_string(), "2024-03-31");
        assert_eq!(d.day(midnight_31 - 1).to_string(), "2024-03-30");
        assert_eq!(
            d.next_midnight_ms(midnight_31) - midnight_31,
            23 * 3_600_000
        );
    }
}
