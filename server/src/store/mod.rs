//! The embedded store: a small [`Store`] trait with a `sled` 0.34 implementation.
//!
//! Keys are ordered bytes inside named trees. Writes land in sled's log at once and reach
//! disk on its 500 ms background flush; a caller that promised durability awaits
//! [`Store::flush`]. Today it keeps one call record per ended call (tree `calls`, key
//! `<end time ms, big-endian><call-id>`), the raw material of the reports to come.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Errors of the store; each names the operation and the tree.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened.
    #[error("cannot open the store at {path}: {reason}")]
    Open {
        /// Data directory.
        path: String,
        /// What sled said.
        reason: String,
    },
    /// A read or write failed.
    #[error("store {op} on tree {tree}: {reason}")]
    Io {
        /// `get`, `put`, `scan`, `flush`.
        op: &'static str,
        /// Tree name.
        tree: String,
        /// What sled said.
        reason: String,
    },
    /// A stored value could not be decoded.
    #[error("store value in tree {tree} is corrupt: {reason}")]
    Corrupt {
        /// Tree name.
        tree: String,
        /// Decoder message.
        reason: String,
    },
}

/// A key and its value, as returned by scans.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Ordered key-value storage in named trees; implemented by [`SledStore`] and
/// [`MemoryStore`] (tests), replaceable (e.g. by redb) without touching callers.
pub trait Store: Send + Sync + 'static {
    /// Writes `value` at `key` in `tree`.
    fn put(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    /// Reads `key` from `tree`.
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every entry of `tree` whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, tree: &str, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError>;
    /// Removes `key` from `tree` (nothing happens when it is absent).
    fn remove(&self, tree: &str, key: &[u8]) -> Result<(), StoreError>;
    /// Makes every write so far durable.
    fn flush(&self) -> Result<(), StoreError>;
}

/// `sled` 0.34 behind [`Store`].
#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
}

impl SledStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(Some(500))
            .open()
            .map_err(|e| StoreError::Open {
                path: dir.display().to_string(),
                reason: e.to_string(),
            })?;
        Ok(SledStore { db })
    }

    fn tree(&self, op: &'static str, tree: &str) -> Result<sled::Tree, StoreError> {
        self.db.open_tree(tree).map_err(|e| io(op, tree, e))
    }
}

fn io(op: &'static str, tree: &str, e: sled::Error) -> StoreError {
    StoreError::Io {
        op,
        tree: tree.to_string(),
        reason: e.to_string(),
    }
}

impl Store for SledStore {
    fn put(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.tree("put", tree)?
            .insert(key, value)
            .map(|_| ())
            .map_err(|e| io("put", tree, e))
    }

    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree("get", tree)?
            .get(key)
            .map_err(|e| io("get", tree, e))?
            .map(|v| v.to_vec()))
    }

    fn scan_prefix(&self, tree: &str, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        self.tree("scan", tree)?
            .scan_prefix(prefix)
            .map(|r| {
                r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(|e| io("scan", tree, e))
            })
            .collect()
    }

    fn remove(&self, tree: &str, key: &[u8]) -> Result<(), StoreError> {
        self.tree("remove", tree)?
            .remove(key)
            .map(|_| ())
            .map_err(|e| io("remove", tree, e))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(|e| io("flush", "*", e))
    }
}

/// A (tree, key) pair: the key of [`MemoryStore`]'s map.
type TreeKey = (String, Vec<u8>);

/// An in-memory [`Store`] for tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    trees: std::sync::Mutex<std::collections::BTreeMap<TreeKey, Vec<u8>>>,
}

impl Store for MemoryStore {
    fn put(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let mut t = self.trees.lock().unwrap_or_else(|p| p.into_inner());
        t.insert((tree.to_string(), key.to_vec()), value.to_vec());
        Ok(())
    }
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.trees.lock().unwrap_or_else(|p| p.into_inner());
        Ok(t.get(&(tree.to_string(), key.to_vec())).cloned())
    }
    fn scan_prefix(&self, tree: &str, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let t = self.trees.lock().unwrap_or_else(|p| p.into_inner());
        Ok(t.iter()
            .filter(|((tr, k), _)| tr == tree && k.starts_with(prefix))
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }
    fn remove(&self, tree: &str, key: &[u8]) -> Result<(), StoreError> {
        let mut t = self.trees.lock().unwrap_or_else(|p| p.into_inner());
        t.remove(&(tree.to_string(), key.to_vec()));
        Ok(())
    }
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Tree holding call records.
pub const CALLS_TREE: &str = "calls";

/// What the store keeps of an ended call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// SIP Call-ID.
    pub call_id: String,
    /// The number dialled (Request-URI user).
    pub number: String,
    /// Caller's transport address.
    pub peer: String,
    /// Start (INVITE received), Unix milliseconds.
    pub started_ms: u64,
    /// Answer (200 sent), Unix milliseconds.
    pub answered_ms: Option<u64>,
    /// End, Unix milliseconds.
    pub ended_ms: u64,
    /// How it ended (`completed`, `caller_hangup`, ...).
    pub reason: String,
    /// RTP packets sent / received / lost.
    pub rtp_sent: u64,
    /// RTP packets received.
    pub rtp_received: u64,
    /// RTP packets lost (receiver sequence gaps).
    pub rtp_lost: u64,
}

impl CallRecord {
    /// Key: end time (big-endian, so keys sort by time) then Call-ID.
    pub fn key(&self) -> Vec<u8> {
        let mut k = self.ended_ms.to_be_bytes().to_vec();
        k.extend_from_slice(self.call_id.as_bytes());
        k
    }

    /// Writes the record.
    pub fn save(&self, store: &dyn Store) -> Result<(), StoreError> {
        let value = toml::to_string(self).map_err(|e| StoreError::Corrupt {
            tree: CALLS_TREE.into(),
            reason: e.to_string(),
        })?;
        store.put(CALLS_TREE, &self.key(), value.as_bytes())
    }

    /// Reads every record, oldest first.
    pub fn load_all(store: &dyn Store) -> Result<Vec<CallRecord>, StoreError> {
        store
            .scan_prefix(CALLS_TREE, b"")?
            .into_iter()
            .map(|(_, v)| {
                let text = String::from_utf8(v).map_err(|e| StoreError::Corrupt {
                    tree: CALLS_TREE.into(),
                    reason: e.to_string(),
                })?;
                toml::from_str(&text).map_err(|e| StoreError::Corrupt {
                    tree: CALLS_TREE.into(),
                    reason: e.to_string(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, ended: u64) -> CallRecord {
        CallRecord {
            call_id: id.into(),
            number: "100".into(),
            peer: "127.0.0.1:5061".into(),
            started_ms: ended - 3000,
            answered_ms: Some(ended - 2900),
            ended_ms: ended,
            reason: "completed".into(),
            rtp_sent: 150,
            rtp_received: 149,
            rtp_lost: 1,
        }
    }

    #[test]
    fn call_records_survive_reopen_in_time_order() {
        let dir = std::env::temp_dir().join(format!("caruso-store-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let s = SledStore::open(&dir).unwrap();
            record("b", 2_000_000).save(&s).unwrap();
            record("a", 1_000_000).save(&s).unwrap();
            s.flush().unwrap();
        }
        let s = SledStore::open(&dir).unwrap();
        let all = CallRecord::load_all(&s).unwrap();
        assert_eq!(
            all.iter().map(|r| r.call_id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(all[1], record("b", 2_000_000));
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn memory_store_scans_by_prefix_per_tree() {
        let s = MemoryStore::default();
        s.put("t", b"ab", b"1").unwrap();
        s.put("t", b"ac", b"2").unwrap();
        s.put("u", b"ab", b"3").unwrap();
        assert_eq!(s.scan_prefix("t", b"a").unwrap().len(), 2);
        assert_eq!(s.get("u", b"ab").unwrap(), Some(b"3".to_vec()));
        assert_eq!(s.get("u", b"zz").unwrap(), None);
        s.remove("t", b"ab").unwrap();
        s.remove("t", b"nothing").unwrap();
        assert_eq!(s.scan_prefix("t", b"a").unwrap().len(), 1);
        assert_eq!(s.get("u", b"ab").unwrap(), Some(b"3".to_vec()));
    }

    #[test]
    fn corrupt_values_are_reported_not_panicked() {
        let s = MemoryStore::default();
        s.put(CALLS_TREE, b"k", b"\xff\xfe").unwrap();
        assert!(matches!(
            CallRecord::load_all(&s),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
