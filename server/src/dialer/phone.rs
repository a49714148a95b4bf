//! Phone numbers: normalisation to E.164 (`+` and up to 15 digits) with a default country.
//!
//! Contract: [`E164::parse`] takes what a person typed in a contact list (`"+48 601
//! 234 567"`, `"0049 30 1234567"`, `"(020) 7946 0018"`, `"601-234-567"`) and the
//! campaign's default [`Country`], and returns the number in E.164 or a
//! [`PhoneError`] saying why not. It never panics, whatever the input.
//!
//! Rules, in order:
//! 1. Spaces, `-`, `.`, `/`, `(` and `)` are formatting and are dropped; anything else
//!    but digits and one leading `+` is refused (extensions like `x12` included).
//! 2. `+CC...` is international: always accepted when it has 8 to 15 digits; when the
//!    calling code is one of [`COUNTRIES`] the national part must also have that
//!    country's length.
//! 3. The default country's international prefix (`00`, `011` in North America) is
//!    read as `+`.
//! 4. Otherwise the number is national: the default country's trunk prefix (`0` in
//!    most of Europe, `1` in North America, `06` in Hungary) is removed and the rest
//!    must have the country's national length; Italy keeps its leading `0`.
//! 5. A national-looking number that fails rule 4 but starts with the default
//!    country's calling code and then has the right length (`48601234567` with `PL`)
//!    is taken as international written without `+`.
//!
//! The table is a small plausibility check, not a numbering-plan database: lengths are
//! the national significant number's range, area codes and number types are not
//! checked. Not covered (use `+CC` input, always accepted): Russia and Kazakhstan
//! (`+7`), China, Brazil, Argentina and the rest of Latin America but Mexico, most of
//! Africa and Asia, and the smaller European states.

use std::fmt;

/// Digits allowed in an E.164 number (country code included).
pub const E164_MAX_DIGITS: usize = 15;
/// Fewest digits accepted in a `+CC` number of a country not in [`COUNTRIES`].
pub const E164_MIN_DIGITS: usize = 8;

/// A country's dialing rules (one row of [`COUNTRIES`]).
#[derive(Debug, PartialEq, Eq)]
pub struct Country {
    /// ISO 3166-1 alpha-2 code (`"PL"`).
    pub alpha2: &'static str,
    /// ITU calling code, without `+` (`"48"`).
    pub code: &'static str,
    /// National trunk prefix removed from national numbers (`"0"`; empty: none).
    pub trunk: &'static str,
    /// International call prefix (`"00"`).
    pub intl: &'static str,
    /// Shortest national significant number.
    pub min_len: u8,
    /// Longest national significant number.
    pub max_len: u8,
    /// IANA zones the country's numbers live in: its main zone first. A calling window
    /// of a contact known only by its country must be open in all of them.
    pub zones: &'static [&'static str],
}

macro_rules! country {
    ($a:literal, $cc:literal, $trunk:literal, $intl:literal, $min:literal, $max:literal, [$($z:literal),+]) => {
        Country { alpha2: $a, code: $cc, trunk: $trunk, intl: $intl, min_len: $min, max_len: $max, zones: &[$($z),+] }
    };
}

/// The countries this module knows (see the module doc for what is not covered).
/// `+1` numbers are taken as `US` (the first `+1` row) unless a contact names `CA`.
pub static COUNTRIES: &[Country] = &[
    country!(
        "US",
        "1",
        "1",
        "011",
        10,
        10,
        [
            "America/New_York",
            "America/Chicago",
            "America/Denver",
            "America/Phoenix",
            "America/Los_Angeles",
            "America/Anchorage",
            "Pacific/Honolulu"
        ]
    ),
    country!(
        "CA",
        "1",
        "1",
        "011",
        10,
        10,
        [
            "America/Toronto",
            "America/St_Johns",
            "America/Halifax",
            "America/Winnipeg",
            "America/Edmonton",
            "America/Vancouver"
        ]
    ),
    country!(
        "MX",
        "52",
        "",
        "00",
        10,
        10,
        [
            "America/Mexico_City",
            "America/Cancun",
            "America/Hermosillo",
            "America/Tijuana"
        ]
    ),
    country!("GB", "44", "0", "00", 9, 10, ["Europe/London"]),
    country!("IE", "353", "0", "00", 7, 9, ["Europe/Dublin"]),
    country!("DE", "49", "0", "00", 6, 13, ["Europe/Berlin"]),
    country!("FR", "33", "0", "00", 9, 9, ["Europe/Paris"]),
    country!(
        "ES",
        "34",
        "",
        "00",
        9,
        9,
        ["Europe/Madrid", "Atlantic/Canary"]
    ),
    country!("IT", "39", "", "00", 6, 11, ["Europe/Rome"]),
    country!(
        "PT",
        "351",
        "",
        "00",
        9,
        9,
        ["Europe/Lisbon", "Atlantic/Azores"]
    ),
    country!("NL", "31", "0", "00", 9, 9, ["Europe/Amsterdam"]),
    country!("BE", "32", "0", "00", 8, 9, ["Europe/Brussels"]),
    country!("CH", "41", "0", "00", 9, 9, ["Europe/Zurich"]),
    country!("AT", "43", "0", "00", 4, 13, ["Europe/Vienna"]),
    country!("PL", "48", "", "00", 9, 9, ["Europe/Warsaw"]),
    country!("CZ", "420", "", "00", 9, 9, ["Europe/Prague"]),
    country!("SK", "421", "0", "00", 9, 9, ["Europe/Bratislava"]),
    country!("HU", "36", "06", "00", 8, 9, ["Europe/Budapest"]),
    country!("RO", "40", "0", "00", 9, 9, ["Europe/Bucharest"]),
    country!("GR", "30", "", "00", 10, 10, ["Europe/Athens"]),
    country!("SE", "46", "0", "00", 7, 13, ["Europe/Stockholm"]),
    country!("NO", "47", "", "00", 8, 8, ["Europe/Oslo"]),
    country!("DK", "45", "", "00", 8, 8, ["Europe/Copenhagen"]),
    country!("FI", "358", "0", "00", 5, 12, ["Europe/Helsinki"]),
    country!("UA", "380", "0", "00", 9, 9, ["Europe/Kyiv"]),
    country!("TR", "90", "0", "00", 10, 10, ["Europe/Istanbul"]),
    country!("IL", "972", "0", "00", 8, 9, ["Asia/Jerusalem"]),
    country!("ZA", "27", "0", "00", 9, 9, ["Africa/Johannesburg"]),
    country!("IN", "91", "0", "00", 10, 10, ["Asia/Kolkata"]),
    country!("SG", "65", "", "000", 8, 8, ["Asia/Singapore"]),
    country!("JP", "81", "0", "010", 9, 10, ["Asia/Tokyo"]),
    country!(
        "AU",
        "61",
        "0",
        "0011",
        9,
        9,
        [
            "Australia/Sydney",
            "Australia/Brisbane",
            "Australia/Adelaide",
            "Australia/Darwin",
            "Australia/Perth"
        ]
    ),
    country!("NZ", "64", "0", "00", 8, 10, ["Pacific/Auckland"]),
];

impl Country {
    /// The country with this ISO alpha-2 code (any case).
    pub fn by_alpha2(alpha2: &str) -> Option<&'static Country> {
        COUNTRIES
            .iter()
            .find(|c| c.alpha2.eq_ignore_ascii_case(alpha2.trim()))
    }

    /// The country of an E.164 number, by its calling code (`+1` → `US`).
    pub fn of(number: &E164) -> Option<&'static Country> {
        of_digits(&number.0[1..])
    }

    fn len_ok(&self, national: usize) -> bool {
        (self.min_len as usize..=self.max_len as usize).contains(&national)
    }
}

/// The first known country whose calling code starts `digits` (codes are prefix-free).
fn of_digits(digits: &str) -> Option<&'static Country> {
    COUNTRIES.iter().find(|c| digits.starts_with(c.code))
}

/// Why a phone number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Nothing but formatting.
    #[error("the phone number is empty")]
    Empty,
    /// A character that is neither a digit, a leading `+` nor formatting.
    #[error("unexpected character {0:?} in the phone number (digits, a leading + and spaces, - . / ( ) only)")]
    Character(char),
    /// Too few or too many digits.
    #[error("{digits} digits: expected {expected}")]
    Length {
        /// Digits found (country code included when international).
        digits: usize,
        /// The rule that was broken.
        expected: String,
    },
}

/// A phone number in E.164 form: `+` then 8 to 15 digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct E164(String);

impl E164 {
    /// Normalises `input` (see the module doc); `default` reads national numbers.
    pub fn parse(input: &str, default: &Country) -> Result<E164, PhoneError> {
        let mut digits = String::with_capacity(input.len());
        let mut plus = false;
        for (i, c) in input.trim().char_indices() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '/' | '(' | ')' | '\u{a0}' => {}
                '+' if i == 0 => plus = true,
                other => return Err(PhoneError::Character(other)),
            }
        }
        if digits.is_empty() {
            return Err(PhoneError::Empty);
        }
        if plus {
            return international(&digits);
        }
        if let Some(rest) = digits.strip_prefix(default.intl) {
            return international(rest);
        }
        let national = digits.strip_prefix(default.trunk).unwrap_or(&digits);
        if default.len_ok(national.len()) {
            return Ok(E164(format!("+{}{national}", default.code)));
        }
        if let Some(rest) = digits.strip_prefix(default.code) {
            if default.len_ok(rest.len()) {
                return Ok(E164(format!("+{digits}")));
            }
        }
        Err(PhoneError::Length {
            digits: national.len(),
            expected: national_rule(default),
        })
    }

    /// Reads a number already in E.164 (`+` then digits, as stored); no default country.
    pub fn from_e164(s: &str) -> Result<E164, PhoneError> {
        if s.is_empty() {
            return Err(PhoneError::Empty);
        }
        match s.strip_prefix('+') {
            Some(d) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => international(d),
            _ => Err(PhoneError::Length {
                digits: s.bytes().filter(u8::is_ascii_digit).count(),
                expected: "an E.164 number: + then 8 to 15 digits".into(),
            }),
        }
    }

    /// The number with its `+`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without `+` (for a trunk's Request-URI).
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn national_rule(c: &Country) -> String {
    let len = if c.min_len == c.max_len {
        format!("{}", c.min_len)
    } else {
        format!("{} to {}", c.min_len, c.max_len)
    };
    let trunk = if c.trunk.is_empty() {
        String::new()
    } else {
        format!(" after the trunk prefix {}", c.trunk)
    };
    format!(
        "{len} digits for a national number of {}{trunk}, or +CC and the number",
        c.alpha2
    )
}

/// `digits` follow a `+` (or an international prefix).
fn international(digits: &str) -> Result<E164, PhoneError> {
    let n = digits.len();
    if !(E164_MIN_DIGITS..=E164_MAX_DIGITS).contains(&n) {
        return Err(PhoneError::Length {
            digits: n,
            expected: format!("{E164_MIN_DIGITS} to {E164_MAX_DIGITS} digits after + (E.164)"),
        });
    }
    if let Some(c) = of_digits(digits) {
        let national = n - c.code.len();
        if !c.len_ok(national) {
            return Err(PhoneError::Length {
                digits: national,
                expected: format!(
                    "{} to {} digits after +{} ({})",
                    c.min_len, c.max_len, c.code, c.alpha2
                ),
            });
        }
    }
    Ok(E164(format!("+{digits}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(a: &str) -> &'static Country {
        Country::by_alpha2(a).unwrap()
    }

    fn p(s: &str, a: &str) -> Result<String, PhoneError> {
        E164::parse(s, c(a)).map(|e| e.to_string())
    }

    #[test]
    fn national_numbers_take_the_default_country() {
        assert_eq!(p("601 234 567", "PL").unwrap(), "+48601234567");
        assert_eq!(p("(020) 7946-0018", "GB").unwrap(), "+442079460018");
        assert_eq!(p("030 1234567", "DE").unwrap(), "+49301234567");
        assert_eq!(p("01 23 45 67 89", "FR").unwrap(), "+33123456789");
        assert_eq!(p("(212) 555-0147", "US").unwrap(), "+12125550147");
        assert_eq!(p("1-212-555-0147", "US").unwrap(), "+12125550147");
        assert_eq!(p("06 1 234 5678", "HU").unwrap(), "+3612345678");
        // Italy keeps the leading 0 of fixed numbers.
        assert_eq!(p("06 6982 1234", "IT").unwrap(), "+390669821234");
    }

    #[test]
    fn plus_and_international_prefixes_are_international() {
        assert_eq!(p("+48 601 234 567", "US").unwrap(), "+48601234567");
        assert_eq!(p("0048601234567", "DE").unwrap(), "+48601234567");
        assert_eq!(p("011 44 20 7946 0018", "US").unwrap(), "+442079460018");
        // An unknown calling code is accepted on its length alone.
        assert_eq!(p("+7 495 123 45 67", "PL").unwrap(), "+74951234567");
        assert_eq!(p("+86 10 1234 5678", "PL").unwrap(), "+861012345678");
        // Country code without + when the national reading fails.
        assert_eq!(p("48601234567", "PL").unwrap(), "+48601234567");
    }

    #[test]
    fn bad_numbers_say_why() {
        assert_eq!(p("  - ", "PL"), Err(PhoneError::Empty));
        assert_eq!(p("601 234 567 x12", "PL"), Err(PhoneError::Character('x')));
        assert_eq!(p("6012+34567", "PL"), Err(PhoneError::Character('+')));
        let e = p("60123456", "PL").unwrap_err();
        assert!(
            e.to_string()
                .contains("9 digits for a national number of PL"),
            "{e}"
        );
        let e = p("+48 60123456", "US").unwrap_err();
        assert!(e.to_string().contains("after +48 (PL)"), "{e}");
        assert!(matches!(
            p("+1234567", "PL"),
            Err(PhoneError::Length { digits: 7, .. })
        ));
        assert!(matches!(
            p("+1234567890123456", "PL"),
            Err(PhoneError::Length { .. })
        ));
    }

    #[test]
    fn countries_are_found_by_code_and_their_zones_exist() {
        assert_eq!(Country::by_alpha2("pl").unwrap().code, "48");
        assert!(Country::by_alpha2("XX").is_none());
        let n = E164::parse("+420 601 234 567", c("PL")).unwrap();
        assert_eq!(Country::of(&n).unwrap().alpha2, "CZ");
        assert_eq!(n.digits(), "420601234567");
        for c in COUNTRIES {
            for z in c.zones {
                assert!(jiff::tz::TimeZone::get(z).is_ok(), "{} zone {z}", c.alpha2);
            }
            assert!(c.min_len <= c.max_len && c.max_len as usize + c.code.len() <= 15);
        }
        // Calling codes are prefix-free across countries (except shared +1).
        for a in COUNTRIES {
            for b in COUNTRIES {
                if a.code != b.code {
                    assert!(!a.code.starts_with(b.code), "{} {}", a.alpha2, b.alpha2);
                }
            }
        }
    }

    #[test]
    fn stored_form_round_trips() {
        let n = E164::parse("601234567", c("PL")).unwrap();
        assert_eq!(E164::from_e164(n.as_str()).unwrap(), n);
        assert!(E164::from_e164("601234567").is_err());
        assert!(E164::from_e164("+").is_err());
        assert!(E164::from_e164("").is_err());
    }

    proptest! {
        #[test]
        fn never_panics_and_output_is_e164(s in "\\PC{0,40}", i in 0usize..COUNTRIES.len()) {
            if let Ok(n) = E164::parse(&s, &COUNTRIES[i]) {
                let d = n.digits();
                prop_assert!(n.as_str().starts_with('+'));
                prop_assert!(d.bytes().all(|b| b.is_ascii_digit()));
                prop_assert!((E164_MIN_DIGITS..=E164_MAX_DIGITS).contains(&d.len()));
                prop_assert_eq!(E164::from_e164(n.as_str()).unwrap(), n);
            }
            let _ = E164::from_e164(&s);
        }

        #[test]
        fn digit_strings_never_panic(s in "[+0-9 ()-]{0,24}", i in 0usize..COUNTRIES.len()) {
            let _ = E164::parse(&s, &COUNTRIES[i]);
        }
    }
}
