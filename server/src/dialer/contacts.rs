//! Contact lists: CSV import with one clear error per bad row.
//!
//! Contract: [`parse_csv`] reads a whole CSV text (RFC 4180: a header row, `,` between
//! fields — or `;` when the header has no `,` — quoted fields with `""` for a quote and
//! line breaks inside quotes; CRLF or LF; a UTF-8 byte-order mark is skipped) and
//! returns every good row as a [`Contact`] and every bad row as a [`RowError`] with its
//! line number (of the row's first line) and the reason. Only a missing or unusable
//! header fails the whole import ([`ContactsError`]). Nothing panics, whatever the input.
//!
//! Columns (names in any case, in any order):
//! - `phone` (or `number`, `phone_number`, `tel`): required; normalised to E.164 with the
//!   campaign's default country ([`super::phone`]);
//! - `name`: optional;
//! - `country`: optional ISO alpha-2 code (`PL`); reads the row's national number and
//!   gives the contact's time zones;
//! - `timezone` (or `tz`, `time_zone`): optional IANA zone (`Europe/Warsaw`);
//! - any other column is a call variable shown to the agent with the contact (empty
//!   values are left out).
//!
//! A number that appears twice in one file is an error on its second row.
//!
//! ```
//! use caruso::dialer::{contacts::parse_csv, phone::Country};
//! let csv = "phone,name,plan\n601 234 567,Anna Nowak,gold\n12,Bad Number,\n";
//! let import = parse_csv(csv, Country::by_alpha2("PL").unwrap()).unwrap();
//! assert_eq!(import.contacts[0].number.as_str(), "+48601234567");
//! assert_eq!(import.contacts[0].variables["plan"], "gold");
//! assert_eq!(import.errors[0].line, 3);
//! ```

use super::phone::{Country, E164};
use crate::ivr::Variables;
use jiff::tz::TimeZone;
use std::collections::HashMap;

/// Longest field accepted (longer fields make the row an error).
pub const MAX_FIELD_LEN: usize = 4096;

/// An import that cannot start: the header is missing or unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactsError {
    /// The text has no header row.
    #[error("the contact list is empty: expected a header row like \"phone,name\"")]
    NoHeader,
    /// No phone column in the header.
    #[error(
        "the header has no phone column: expected one named phone, number, phone_number or tel"
    )]
    NoPhoneColumn,
    /// Two columns with the same name.
    #[error("column {name:?} appears twice in the header")]
    DuplicateColumn {
        /// Column name.
        name: String,
    },
    /// A column without a name.
    #[error("column {index} of the header has no name")]
    EmptyColumn {
        /// 1-based column position.
        index: usize,
    },
    /// The header itself is malformed.
    #[error("line {line}: {reason}")]
    Header {
        /// Line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The bytes are not UTF-8.
    #[error("line {line} is not UTF-8 text")]
    NotUtf8 {
        /// Line of the first bad byte.
        line: usize,
    },
}

/// One refused row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line number of the row's first line.
    pub line: usize,
    /// Why it was refused.
    pub reason: String,
}

/// A contact to call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The number, in E.164.
    pub number: E164,
    /// Display name (may be empty).
    pub name: String,
    /// Country given in the list (ISO alpha-2), if any.
    pub country: Option<&'static Country>,
    /// Time zone given in the list (a valid IANA name), if any.
    pub timezone: Option<String>,
    /// Other columns: call variables shown to the agent.
    pub variables: Variables,
}

impl Contact {
    /// The zones whose calling window applies: the contact's own zone, else every zone of
    /// its country (given, else from the calling code), else `campaign`.
    pub fn zones(&self, campaign: &TimeZone) -> Vec<TimeZone> {
        if let Some(tz) = self.timezone.as_deref().and_then(|z| TimeZone::get(z).ok()) {
            return vec![tz];
        }
        let zones: Vec<TimeZone> = self
            .country
            .or_else(|| Country::of(&self.number))
            .map(|c| {
                c.zones
                    .iter()
                    .filter_map(|z| TimeZone::get(z).ok())
                    .collect()
            })
            .unwrap_or_default();
        if zones.is_empty() {
            vec![campaign.clone()]
        } else {
            zones
        }
    }
}

/// The result of an import: good rows and bad rows, each in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsvImport {
    /// Contacts read.
    pub contacts: Vec<Contact>,
    /// 1-based line of each contact (parallel to `contacts`).
    pub lines: Vec<usize>,
    /// Refused rows.
    pub errors: Vec<RowError>,
}

/// Known columns.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    Phone,
    Name,
    Country,
    Timezone,
    Variable(String),
}

fn column(name: &str) -> Column {
    match name.to_ascii_lowercase().as_str() {
        "phone" | "number" | "phone_number" | "tel" => Column::Phone,
        "name" => Column::Name,
        "country" => Column::Country,
        "timezone" | "tz" | "time_zone" => Column::Timezone,
        _ => Column::Variable(name.to_string()),
    }
}

/// Parses CSV bytes (see [`parse_csv`]); text that is not UTF-8 is refused.
pub fn parse_csv_bytes(bytes: &[u8], default: &Country) -> Result<CsvImport, ContactsError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_csv(text, default),
        Err(e) => {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            Err(ContactsError::NotUtf8 { line })
        }
    }
}

/// Parses a contact list (see the module doc).
pub fn parse_csv(text: &str, default: &Country) -> Result<CsvImport, ContactsError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first_line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let sep = if !first_line.contains(',') && first_line.contains(';') {
        ';'
    } else {
        ','
    };
    let mut reader = Records::new(text, sep);
    let header = loop {
        match reader.next() {
            None => return Err(ContactsError::NoHeader),
            Some(Err(e)) => {
                return Err(ContactsError::Header {
                    line: e.line,
                    reason: e.reason,
                })
            }
            Some(Ok(r)) if r.is_blank() => continue,
            Some(Ok(r)) => break r,
        }
    };
    let mut columns = Vec::with_capacity(header.fields.len());
    for (i, name) in header.fields.iter().enumerate() {
        let name = name.trim();
        if name.is_empty() {
            return Err(ContactsError::EmptyColumn { index: i + 1 });
        }
        let c = column(name);
        let same = |o: &Column| match (o, &c) {
            (Column::Variable(a), Column::Variable(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a == b,
        };
        if columns.iter().any(same) {
            return Err(ContactsError::DuplicateColumn {
                name: name.to_string(),
            });
        }
        columns.push(c);
    }
    if !columns.contains(&Column::Phone) {
        return Err(ContactsError::NoPhoneColumn);
    }

    let mut out = CsvImport::default();
    let mut seen: HashMap<E164, usize> = HashMap::new();
    for record in reader {
        let record = match record {
            Ok(r) if r.is_blank() => continue,
            Ok(r) => r,
            Err(e) => {
                out.errors.push(e);
                continue;
            }
        };
        let line = record.line;
        match row(&columns, &record.fields, default) {
            Ok(contact) => {
                if let Some(first) = seen.get(&contact.number) {
                    out.errors.push(RowError {
                        line,
                        reason: format!(
                            "number {} already appears on line {first}",
                            contact.number
                        ),
                    });
                    continue;
                }
                seen.insert(contact.number.clone(), line);
                out.contacts.push(contact);
                out.lines.push(line);
            }
            Err(reason) => out.errors.push(RowError { line, reason }),
        }
    }
    Ok(out)
}

fn row(columns: &[Column], fields: &[String], default: &Country) -> Result<Contact, String> {
    if fields.len() != columns.len() {
        return Err(format!(
            "expected {} fields as in the header, found {}",
            columns.len(),
            fields.len()
        ));
    }
    let get = |want: &Column| {
        columns
            .iter()
            .position(|c| c == want)
            .map(|i| fields[i].trim())
            .filter(|v| !v.is_empty())
    };
    let country = match get(&Column::Country) {
        None => None,
        Some(a) => Some(Country::by_alpha2(a).ok_or_else(|| {
            format!("unknown country {a:?}: expected an ISO code this server knows, like PL, GB or US (or leave it empty)")
        })?),
    };
    let timezone = match get(&Column::Timezone) {
        None => None,
        Some(z) => {
            TimeZone::get(z).map_err(|_| {
                format!("unknown time zone {z:?}: expected an IANA name like Europe/Warsaw")
            })?;
            Some(z.to_string())
        }
    };
    let raw = get(&Column::Phone).ok_or("the phone number is empty")?;
    let number =
        E164::parse(raw, country.unwrap_or(default)).map_err(|e| format!("phone {raw:?}: {e}"))?;
    let name = get(&Column::Name).unwrap_or("").to_string();
    let mut variables = Variables::new();
    for (c, v) in columns.iter().zip(fields) {
        if let Column::Variable(k) = c {
            if !v.trim().is_empty() {
                variables.insert(k.clone(), v.trim().to_string());
            }
        }
    }
    Ok(Contact {
        number,
        name,
        country,
        timezone,
        variables,
    })
}

/// One CSV record and the line it starts on.
#[derive(Debug)]
struct Record {
    line: usize,
    fields: Vec<String>,
}

impl Record {
    fn is_blank(&self) -> bool {
        self.fields.len() == 1 && self.fields[0].trim().is_empty()
    }
}

/// An RFC 4180 record reader over a string, counting lines.
struct Records<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    sep: char,
    line: usize,
}

impl<'a> Records<'a> {
    fn new(text: &'a str, sep: char) -> Records<'a> {
        Records {
            chars: text.chars().peekable(),
            sep,
            line: 1,
        }
    }

    /// Skips to the end of the current record (after an error).
    fn skip_record(&mut self) {
        for c in self.chars.by_ref() {
            if c == '\n' {
                self.line += 1;
                return;
            }
        }
    }
}

impl Iterator for Records<'_> {
    type Item = Result<Record, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.chars.peek()?;
        let line = self.line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false; // inside quotes
        let mut was_quoted = false; // this field was quoted and its quote closed
        let fail = |this: &mut Self, reason: String| {
            this.skip_record();
            Some(Err(RowError { line, reason }))
        };
        loop {
            let Some(c) = self.chars.next() else {
                if quoted {
                    return Some(Err(RowError {
                        line,
                        reason: "a quoted field is never closed (missing \")".into(),
                    }));
                }
                fields.push(field);
                return Some(Ok(Record { line, fields }));
            };
            if field.len() > MAX_FIELD_LEN {
                return fail(
                    self,
                    format!("a field is longer than {MAX_FIELD_LEN} bytes"),
                );
            }
            if quoted {
                match c {
                    '"' if self.chars.peek() == Some(&'"') => {
                        self.chars.next();
                        field.push('"');
                    }
                    '"' => {
                        quoted = false;
                        was_quoted = true;
                    }
                    '\n' => {
                        self.line += 1;
                        field.push('\n');
                    }
                    c => field.push(c),
                }
                continue;
            }
            match c {
                '\n' => {
                    self.line += 1;
                    if field.ends_with('\r') && !was_quoted {
                        field.pop();
                    }
                    fields.push(field);
                    return Some(Ok(Record { line, fields }));
                }
                '\r' if was_quoted && self.chars.peek() == Some(&'\n') => {}
                c if c == self.sep => {
                    fields.push(std::mem::take(&mut field));
                    was_quoted = false;
                }
                '"' if field.trim().is_empty() && !was_quoted => {
                    field.clear();
                    quoted = true;
                }
                c if was_quoted && !c.is_whitespace() => {
                    return fail(self, format!("text {c:?} after a closing quote"));
                }
                c if was_quoted => {
                    let _ = c; // spaces after a closing quote are ignored
                }
                c => field.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pl() -> &'static Country {
        Country::by_alpha2("PL").unwrap()
    }

    #[test]
    fn good_rows_become_contacts_with_variables() {
        let csv = "\u{feff}Phone,Name,Country,TZ,plan,notes\r\n\
                   601 234 567,Anna Nowak,,,gold,\r\n\
                   \"020 7946 0018\",\"Smith, John\",GB,,silver,\"said \"\"call after 5\"\"\nand more\"\r\n\
                   +12125550147,Bob,,America/Chicago,,\r\n";
        let r = parse_csv(csv, pl()).unwrap();
        assert_eq!(r.errors, vec![]);
        assert_eq!(r.lines, vec![2, 3, 5]);
        let [a, b, c] = &r.contacts[..] else {
            panic!("{r:?}")
        };
        assert_eq!(a.number.as_str(), "+48601234567");
        assert_eq!(a.name, "Anna Nowak");
        assert_eq!(a.variables.len(), 1);
        assert_eq!(b.number.as_str(), "+442079460018");
        assert_eq!(b.name, "Smith, John");
        assert_eq!(b.country.unwrap().alpha2, "GB");
        assert_eq!(b.variables["notes"], "said \"call after 5\"\nand more");
        assert_eq!(c.timezone.as_deref(), Some("America/Chicago"));
        assert_eq!(c.zones(&TimeZone::UTC).len(), 1);
        // Zones: contact's, else the country's (all of them), else the campaign's.
        assert_eq!(
            a.zones(&TimeZone::UTC)[0].iana_name(),
            Some("Europe/Warsaw")
        );
        let unknown = E164::parse("+74951234567", pl()).unwrap();
        let d = Contact {
            number: unknown,
            ..a.clone()
        };
        assert_eq!(d.zones(&TimeZone::UTC), vec![TimeZone::UTC]);
        let us = Contact {
            number: E164::parse("+12125550147", pl()).unwrap(),
            ..a.clone()
        };
        assert_eq!(us.zones(&TimeZone::UTC).len(), 7);
    }

    #[test]
    fn bad_rows_are_reported_by_line_and_reason() {
        let csv = "phone;name;country;timezone\n\
                   601234567;ok;;\n\
                   \n\
                   12;short;;\n\
                   601234568;too;many;fields;here\n\
                   601234569;bad country;XX;\n\
                   601234570;bad zone;;Mars/Base\n\
                   601 234 567;duplicate;;\n\
                   ;no number;;\n\
                   \"601234571\"x;after quote;;\n\
                   601234572;last good;;\n\
                   \"601234573;never closed;;\n";
        let r = parse_csv(csv, pl()).unwrap();
        assert_eq!(r.lines, vec![2, 11]);
        let lines: Vec<usize> = r.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![4, 5, 6, 7, 8, 9, 10, 12]);
        let reasons: Vec<&str> = r.errors.iter().map(|e| e.reason.as_str()).collect();
        assert!(reasons[0].contains("phone \"12\""), "{reasons:?}");
        assert!(reasons[1].contains("expected 4 fields"), "{reasons:?}");
        assert!(reasons[2].contains("unknown country \"XX\""), "{reasons:?}");
        assert!(reasons[3].contains("unknown time zone"), "{reasons:?}");
        assert!(
            reasons[4].contains("already appears on line 2"),
            "{reasons:?}"
        );
        assert!(reasons[5].contains("empty"), "{reasons:?}");
        assert!(reasons[6].contains("after a closing quote"), "{reasons:?}");
        assert!(reasons[7].contains("never closed"), "{reasons:?}");
    }

    #[test]
    fn unusable_headers_fail_the_import() {
        assert_eq!(parse_csv("", pl()), Err(ContactsError::NoHeader));
        assert_eq!(parse_csv("\n \n", pl()), Err(ContactsError::NoHeader));
        assert_eq!(
            parse_csv("name,plan\nx,y\n", pl()),
            Err(ContactsError::NoPhoneColumn)
        );
        assert_eq!(
            parse_csv("phone,Plan,plan\n", pl()),
            Err(ContactsError::DuplicateColumn {
                name: "plan".into()
            })
        );
        assert_eq!(
            parse_csv("phone,number\n", pl()),
            Err(ContactsError::DuplicateColumn {
                name: "number".into()
            })
        );
        assert_eq!(
            parse_csv("phone,,x\n", pl()),
            Err(ContactsError::EmptyColumn { index: 2 })
        );
        assert!(matches!(
            parse_csv("\"phone\n", pl()),
            Err(ContactsError::Header { line: 1, .. })
        ));
        assert_eq!(
            parse_csv_bytes(b"phone\n601234567\n\xff\n", pl()),
            Err(ContactsError::NotUtf8 { line: 3 })
        );
        assert_eq!(
            parse_csv_bytes(b"phone\n601234567\n", pl())
                .unwrap()
                .contacts
                .len(),
            1
        );
    }

    #[test]
    fn header_only_means_no_contacts() {
        let r = parse_csv("phone,name", pl()).unwrap();
        assert!(r.contacts.is_empty() && r.errors.is_empty());
    }

    #[test]
    fn oversized_fields_are_row_errors() {
        let csv = format!(
            "phone,note\n601234567,{}\n601234568,ok\n",
            "a".repeat(MAX_FIELD_LEN + 10)
        );
        let r = parse_csv(&csv, pl()).unwrap();
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.errors[0].line, 2);
        assert_eq!(r.lines, vec![3]);
    }

    proptest! {
        #[test]
        fn never_panics_and_every_row_is_accounted_for(body in "[0-9a-z+,;\" \r\n]{0,300}") {
            let text = format!("phone,name,x\n{body}");
            let r = parse_csv(&text, pl()).unwrap();
            let lines = text.matches('\n').count() + 1;
            prop_assert_eq!(r.contacts.len(), r.lines.len());
            for l in r.lines.iter().chain(r.errors.iter().map(|e| &e.line)) {
                prop_assert!(*l >= 2 && *l <= lines);
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = parse_csv(&text, pl());
            let _ = parse_csv_bytes(text.as_bytes(), pl());
        }
    }
}
