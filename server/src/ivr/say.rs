//! Spoken digits and numbers from the digit prompts (`0` ... `9` in the prompt library).
//!
//! Numbers are said digit by digit ("one two three"): the prompt set has no
//! "twenty"/"hundred" words yet, and digit-by-digit is what callers hear for extensions,
//! PINs and counts on many systems.

use super::Playable;

/// The prompts that say `digits` one by one; characters other than `0-9` are skipped.
pub fn digits(digits: &str) -> Vec<Playable> {
    digits
        .chars()
        .filter(|c| c.is_ascii_digit())
        .map(|c| {
            let mut buf = [0u8; 4];
            Playable::named(c.encode_utf8(&mut buf))
        })
        .collect()
}

/// The prompts that say a number (digit by digit, no leading zeros; `0` is "zero").
pub fn number(n: u64) -> Vec<Playable> {
    digits(&n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(items: &[Playable]) -> Vec<String> {
        items
            .iter()
            .map(|p| match p {
                Playable::Named(n) => n.to_string(),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn digits_skip_non_digits_and_numbers_have_no_leading_zero() {
        assert_eq!(names(&digits("2-0#1")), ["2", "0", "1"]);
        assert_eq!(names(&number(0)), ["0"]);
        assert_eq!(names(&number(107)), ["1", "0", "7"]);
        assert!(digits("").is_empty());
    }
}
