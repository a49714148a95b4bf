//! The do-not-call list: numbers (E.164) that no campaign ever dials.
//!
//! Contract: one list for the whole server, owned by the dialer task. It starts from a
//! file ([`DncList::parse_file`]: one number per line, `#` comments and blank lines
//! ignored, national numbers read with a default country; a bad line is reported with
//! its number and skipped) plus what the store holds, and changes at runtime
//! ([`DncList::add`], [`DncList::remove`]). Runtime changes are written to the store
//! tree [`DNC_TREE`] and flushed before they return: a number a person asked to be
//! removed from calling must stay removed after a crash. Campaigns check
//! [`DncList::contains`] just before each dial.
//!
//! ```
//! use caruso::dialer::{dnc::DncList, phone::{Country, E164}};
//! let pl = Country::by_alpha2("PL").unwrap();
//! let (list, errors) = DncList::parse_file("# opted out\n601 234 567\nnonsense\n", pl);
//! assert!(list.contains(&E164::parse("+48601234567", pl).unwrap()));
//! assert_eq!(errors[0].line, 3);
//! ```

use super::contacts::RowError;
use super::phone::{Country, PhoneError, E164};
use crate::store::{Store, StoreError};
use std::collections::BTreeSet;

/// Store tree of numbers added at runtime (key: E.164 text, value: empty).
pub const DNC_TREE: &str = "dialer_dnc";
/// Store tree of file numbers removed at runtime (key: E.164 text, value: empty).
pub const DNC_REMOVED_TREE: &str = "dialer_dnc_removed";

/// Errors of do-not-call changes.
#[derive(Debug, thiserror::Error)]
pub enum DncError {
    /// The number could not be read.
    #[error("do-not-call number {number:?}: {source}")]
    Number {
        /// What was given.
        number: String,
        /// Why it was refused.
        source: PhoneError,
    },
    /// The store failed; the change was not made.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The do-not-call list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DncList {
    numbers: BTreeSet<E164>,
}

impl DncList {
    /// Reads a do-not-call file; returns the list and the refused lines.
    pub fn parse_file(text: &str, default: &Country) -> (DncList, Vec<RowError>) {
        let mut list = DncList::default();
        let mut errors = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let raw = line.split('#').next().unwrap_or("").trim();
            if raw.is_empty() {
                continue;
            }
            match E164::parse(raw, default) {
                Ok(n) => {
                    list.numbers.insert(n);
                }
                Err(e) => errors.push(RowError {
                    line: i + 1,
                    reason: format!("{raw:?}: {e}"),
                }),
            }
        }
        (list, errors)
    }

    /// Applies the runtime changes kept in `store` (after [`DncList::parse_file`]).
    pub fn load_changes(&mut self, store: &dyn Store) -> Result<(), StoreError> {
        for (tree, add) in [(DNC_TREE, true), (DNC_REMOVED_TREE, false)] {
            for (k, _) in store.scan_prefix(tree, b"")? {
                let n = std::str::from_utf8(&k)
                    .ok()
                    .and_then(|s| E164::from_e164(s).ok())
                    .ok_or_else(|| StoreError::Corrupt {
                        tree: tree.to_string(),
                        reason: format!("key {k:?} is not an E.164 number"),
                    })?;
                if add {
                    self.numbers.insert(n);
                } else {
                    self.numbers.remove(&n);
                }
            }
        }
        Ok(())
    }

    /// Whether `number` must not be called.
    pub fn contains(&self, number: &E164) -> bool {
        self.numbers.contains(number)
    }

    /// Adds a number (read with `default`), durably; `Ok(false)` when already listed.
    pub fn add(
        &mut self,
        store: &dyn Store,
        raw: &str,
        default: &Country,
    ) -> Result<bool, DncError> {
        let n = parse(raw, default)?;
        if self.numbers.contains(&n) {
            return Ok(false);
        }
        store.remove(DNC_REMOVED_TREE, n.as_str().as_bytes())?;
        store.put(DNC_TREE, n.as_str().as_bytes(), b"")?;
        store.flush()?;
        self.numbers.insert(n);
        Ok(true)
    }

    /// Removes a number, durably; `Ok(false)` when it was not listed.
    pub fn remove(
        &mut self,
        store: &dyn Store,
        raw: &str,
        default: &Country,
    ) -> Result<bool, DncError> {
        let n = parse(raw, default)?;
        if !self.numbers.contains(&n) {
            return Ok(false);
        }
        store.remove(DNC_TREE, n.as_str().as_bytes())?;
        store.put(DNC_REMOVED_TREE, n.as_str().as_bytes(), b"")?;
        store.flush()?;
        self.numbers.remove(&n);
        Ok(true)
    }

    /// Numbers in order, from the first after `after` (paging), at most `limit`.
    pub fn list(&self, after: Option<&E164>, limit: usize) -> Vec<&E164> {
        use std::ops::Bound;
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.numbers
            .range((lower, Bound::Unbounded))
            .take(limit)
            .collect()
    }

    /// How many numbers are listed.
    pub fn len(&self) -> usize {
        self.numbers.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty()
    }
}

fn parse(raw: &str, default: &Country) -> Result<E164, DncError> {
    E164::parse(raw, default).map_err(|source| DncError::Number {
        number: raw.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn pl() -> &'static Country {
        Country::by_alpha2("PL").unwrap()
    }

    fn n(s: &str) -> E164 {
        E164::parse(s, pl()).unwrap()
    }

    #[test]
    fn file_numbers_are_normalised_and_bad_lines_reported() {
        let (list, errors) = DncList::parse_file(
            "601 234 567 # asked 2026-01-02\n\n+44 20 7946 0018\n12\n",
            pl(),
        );
        assert_eq!(list.len(), 2);
        assert!(list.contains(&n("+48601234567")));
        assert!(list.contains(&n("+442079460018")));
        assert!(!list.contains(&n("601234568")));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 4);
    }

    #[test]
    fn runtime_changes_persist_and_override_the_file() {
        let store = MemoryStore::default();
        let file = "601234567\n601234568\n";
        let (mut list, _) = DncList::parse_file(file, pl());
        assert!(list.add(&store, "601 234 569", pl()).unwrap());
        assert!(!list.add(&store, "+48601234569", pl()).unwrap());
        assert!(list.remove(&store, "601234567", pl()).unwrap());
        assert!(!list.remove(&store, "601234567", pl()).unwrap());
        assert!(matches!(
            list.add(&store, "x", pl()),
            Err(DncError::Number { .. })
        ));

        // After a restart: the file again, then the store's changes.
        let (mut again, _) = DncList::parse_file(file, pl());
        again.load_changes(&store).unwrap();
        assert_eq!(again, list);
        assert!(!again.contains(&n("601234567")));
        assert!(again.contains(&n("601234569")));

        // Re-adding a removed file number wins over the removal.
        assert!(list.add(&store, "601234567", pl()).unwrap());
        let (mut third, _) = DncList::parse_file(file, pl());
        third.load_changes(&store).unwrap();
        assert!(third.contains(&n("601234567")));
    }

    #[test]
    fn listing_pages_in_order() {
        let (list, _) = DncList::parse_file("601234569\n601234567\n601234568\n", pl());
        let first = list.list(None, 2);
        assert_eq!(first, vec![&n("601234567"), &n("601234568")]);
        assert_eq!(list.list(Some(first[1]), 2), vec![&n("601234569")]);
        assert!(list.list(Some(&n("601234569")), 2).is_empty());
    }

    #[test]
    fn corrupt_store_keys_are_errors() {
        let store = MemoryStore::default();
        store.put(DNC_TREE, b"garbage", b"").unwrap();
        let mut list = DncList::default();
        assert!(matches!(
            list.load_changes(&store),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
