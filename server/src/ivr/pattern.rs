//! Digit patterns for `collect` nodes, in the style of SIP phone dial plans and
//! MGCP digit maps (RFC 3435 §2.1.5). A pattern must match the whole input:
//!
//! | element    | matches                                         |
//! |------------|-------------------------------------------------|
//! | `0`-`9` `*` `#` `A`-`D` | that key                           |
//! | `X`        | any digit `0`-`9`                               |
//! | `Z`        | `1`-`9`                                         |
//! | `N`        | `2`-`9`                                         |
//! | `[15-7*]`  | one key of the set (single keys and ranges)     |
//! | `.`        | the element before it, repeated zero or more times |
//!
//! `X`, `Z`, `N` may be lower case. Examples: `"ZXXX"` (4 digits, no leading zero),
//! `"[1-5]XX"`, `"XXXXX."` (5 digits or more), `"*XX"`.

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    elems: Vec<Elem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Elem {
    /// Keys this element accepts.
    set: Vec<char>,
    /// Followed by `.`: zero or more.
    repeat: bool,
}

/// The DTMF keys.
pub(crate) const DTMF_KEYS: &str = "0123456789*#ABCD";

fn key(c: char) -> Option<char> {
    let c = c.to_ascii_uppercase();
    DTMF_KEYS.contains(c).then_some(c)
}

impl Pattern {
    /// Compiles a pattern; the error says what is wrong.
    pub fn parse(s: &str) -> Result<Pattern, String> {
        if s.is_empty() || s.len() > 64 {
            return Err(format!(
                "expected a pattern of 1 to 64 characters, found {s:?}"
            ));
        }
        let mut elems: Vec<Elem> = Vec::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            let set: Vec<char> = match c {
                '.' => {
                    match elems.last_mut() {
                        Some(e) if !e.repeat => e.repeat = true,
                        _ => {
                            return Err(format!(
                                "expected `.` after an element (it repeats the one before), in {s:?}"
                            ))
                        }
                    }
                    continue;
                }
                'X' | 'x' => ('0'..='9').collect(),
                'Z' | 'z' => ('1'..='9').collect(),
                'N' | 'n' => ('2'..='9').collect(),
                '[' => {
                    let mut set = Vec::new();
                    let mut prev: Option<char> = None;
                    let mut closed = false;
                    while let Some(c) = chars.next() {
                        if c == ']' {
                            closed = true;
                            break;
                        }
                        if c == '-' {
                            let (Some(a), Some(b)) = (prev, chars.next().and_then(key)) else {
                                return Err(format!("expected a range like [1-5], in {s:?}"));
                            };
                            if !(a.is_ascii_digit() && b.is_ascii_digit() && a <= b) {
                                return Err(format!("expected a digit range like [1-5], in {s:?}"));
                            }
                            set.extend((a..=b).filter(|d| !set.contains(d)).collect::<Vec<_>>());
                            prev = None;
                            continue;
                        }
                        let k = key(c).ok_or_else(|| {
                            format!("expected DTMF keys (0-9 * # A-D) inside [...], found {c:?} in {s:?}")
                        })?;
                        set.push(k);
                        prev = Some(k);
                    }
                    if !closed || set.is_empty() {
                        return Err(format!("expected a non-empty [...] set closed by `]`, in {s:?}"));
                    }
                    set
                }
                c => vec![key(c).ok_or_else(|| {
                    format!("expected DTMF keys, X, Z, N, [...] or `.` in a pattern, found {c:?} in {s:?}")
                })?],
            };
            elems.push(Elem { set, repeat: false });
        }
        Ok(Pattern { elems })
    }

    /// Whether the whole of `input` matches.
    pub fn matches(&self, input: &str) -> bool {
        let input: Vec<char> = input.chars().collect();
        // reach[i] = the elements consumed so far can end at input position i.
        let mut reach = vec![false; input.len() + 1];
        reach[0] = true;
        for e in &self.elems {
            let mut next = vec![false; input.len() + 1];
            for i in 0..=input.len() {
                if !reach[i] {
                    continue;
                }
                if e.repeat {
                    next[i] = true;
                    let mut j = i;
                    while j < input.len() && e.set.contains(&input[j]) {
                        j += 1;
                        next[j] = true;
                    }
                } else if i < input.len() && e.set.contains(&input[i]) {
                    next[i + 1] = true;
                }
            }
            reach = next;
        }
        reach[input.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Pattern::parse(p).unwrap().matches(s)
    }

    #[test]
    fn elements_match_their_keys_and_the_whole_input() {
        assert!(m("ZXXX", "1000"));
        assert!(!m("ZXXX", "0999"));
        assert!(!m("ZXXX", "100"));
        assert!(!m("ZXXX", "10000"));
        assert!(m("NXX", "200"));
        assert!(!m("NXX", "100"));
        assert!(m("[1-5]X", "59"));
        assert!(!m("[1-5]X", "69"));
        assert!(m("[13*]", "*"));
        assert!(!m("[13*]", "2"));
        assert!(m("*xx", "*12"));
        assert!(!m("*XX", "#12"));
    }

    #[test]
    fn dot_repeats_the_element_before_it_zero_or_more_times() {
        assert!(m("XXX.", "12"));
        assert!(m("XXX.", "123456"));
        assert!(!m("XXX.", "1"));
        assert!(m("9X.#", "9#"));
        assert!(m("9X.#", "9123#"));
        assert!(!m("9X.#", "9123"));
        assert!(m("X.X.X.1", "1111"));
    }

    #[test]
    fn bad_patterns_are_rejected() {
        for bad in ["", ".", "X..", "[1-", "[]", "[e]", "Q", "[5-1]"] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
