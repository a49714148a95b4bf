//! Message storage: WAV files under `<data_dir>/voicemail/<mailbox>/`, metadata in the
//! store, an in-memory index for fast reads, events on the bus, crash recovery at open.
//!
//! Layout:
//! - `<data_dir>/voicemail/<mailbox>/<id>.wav`: a message (8 kHz 16-bit mono);
//! - `<data_dir>/voicemail/<mailbox>/greeting-unavailable.wav`, `greeting-busy.wav`:
//!   greetings recorded by phone (they win over the configured files);
//! - `<data_dir>/voicemail/<mailbox>/tmp/<id>.wav`: recordings in progress.
//!
//! Store trees: `vm_messages` (id → message metadata), `vm_pins` (mailbox → PIN changed
//! by phone), `vm_recordings` (id → in-progress marker, flushed when a recording starts
//! and removed when it is saved or discarded).
//!
//! Invariants: a message is listed only once its audio is renamed into place, its
//! metadata written and the store flushed. Every change publishes
//! [`Event::Mailbox`] with the counts after it: `New` when a message is stored (or moved
//! back to `new`), `Read` when a message leaves `new`, `Deleted`, and `Settings` for a
//! PIN or greeting change. [`Voicemail::open`] turns every recording a crash left behind
//! into a message flagged `recovered` (see [`super::recorder`]).
//!
//! ```no_run
//! # fn demo(cfg: caruso::voicemail::config::VoicemailConfig,
//! #         store: std::sync::Arc<dyn caruso::store::Store>) {
//! use caruso::voicemail::{storage::Voicemail, Folder};
//! let vm = Voicemail::open(cfg, store, std::path::Path::new("data"),
//!                          caruso::events::EventBus::default()).unwrap();
//! let (new, saved) = vm.counts("200").unwrap();
//! let inbox = vm.list("200", Some(Folder::New)).unwrap();
//! # }
//! ```

use super::config::VoicemailConfig;
use super::recorder::{self, Cmd, MarkerKind, StoredMarker, WriterHandle};
use super::{Folder, MailboxConfig, MessageMeta, VoicemailAccess, VoicemailError};
use crate::events::{Event, EventBus, MailboxChange, MailboxEvent};
use crate::ivr::GreetingKind;
use crate::media::wav::{Prompt, PROMPT_RATE};
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use tracing::{info, warn};

/// Tree of message metadata (key: message id).
pub const MESSAGES_TREE: &str = "vm_messages";
/// Tree of PINs changed by phone (key: mailbox number).
pub const PINS_TREE: &str = "vm_pins";
/// Tree of in-progress recording markers (key: recording id).
pub const RECORDINGS_TREE: &str = "vm_recordings";

/// Message metadata as stored (TOML text, like the call records).
#[derive(Debug, Serialize, Deserialize)]
struct StoredMessage {
    id: String,
    mailbox: String,
    caller_number: String,
    caller_name: String,
    received_ms: u64,
    duration_ms: u64,
    folder: String,
    recovered: bool,
}

impl StoredMessage {
    fn from_meta(m: &MessageMeta) -> StoredMessage {
        StoredMessage {
            id: m.id.clone(),
            mailbox: m.mailbox.clone(),
            caller_number: m.caller_number.clone(),
            caller_name: m.caller_name.clone(),
            received_ms: m.received_ms,
            duration_ms: m.duration_ms,
            folder: m.folder.as_str().to_string(),
            recovered: m.recovered,
        }
    }

    fn into_meta(self) -> Option<MessageMeta> {
        Some(MessageMeta {
            id: self.id,
            mailbox: self.mailbox,
            caller_number: self.caller_number,
            caller_name: self.caller_name,
            received_ms: self.received_ms,
            duration_ms: self.duration_ms,
            folder: parse_folder(&self.folder)?,
            recovered: self.recovered,
        })
    }
}

/// Parses a folder name (`new`, `saved`).
pub fn parse_folder(s: &str) -> Option<Folder> {
    match s {
        "new" => Some(Folder::New),
        "saved" => Some(Folder::Saved),
        _ => None,
    }
}

pub(super) fn encode<T: Serialize>(tree: &str, v: &T) -> Result<Vec<u8>, StoreError> {
    toml::to_string(v)
        .map(String::into_bytes)
        .map_err(|e| StoreError::Corrupt {
            tree: tree.into(),
            reason: e.to_string(),
        })
}

pub(super) fn decode<T: for<'de> Deserialize<'de>>(tree: &str, v: &[u8]) -> Result<T, StoreError> {
    let text = std::str::from_utf8(v).map_err(|e| StoreError::Corrupt {
        tree: tree.into(),
        reason: e.to_string(),
    })?;
    toml::from_str(text).map_err(|e| StoreError::Corrupt {
        tree: tree.into(),
        reason: e.to_string(),
    })
}

/// A file error naming the path.
pub(super) fn file_err(path: &Path, e: impl std::fmt::Display) -> VoicemailError {
    VoicemailError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Audio length of `samples` 8 kHz samples, in ms.
pub(super) fn samples_ms(samples: u64) -> u64 {
    samples * 1000 / u64::from(PROMPT_RATE)
}

/// File name part of a greeting kind.
pub(super) fn greeting_name(kind: GreetingKind) -> &'static str {
    match kind {
        GreetingKind::Unavailable => "unavailable",
        GreetingKind::Busy => "busy",
    }
}

/// Mutable state, behind one short-held lock.
#[derive(Debug, Default)]
struct State {
    /// Every stored message, by id.
    messages: BTreeMap<String, MessageMeta>,
    /// PINs changed by phone.
    pins: HashMap<String, String>,
    /// Greetings recorded by phone.
    recorded: HashMap<(String, GreetingKind), Prompt>,
}

/// The configured mailboxes and their configured greetings (replaced on reload).
#[derive(Debug, Default)]
struct Settings {
    mailboxes: BTreeMap<String, MailboxConfig>,
    configured: HashMap<(String, GreetingKind), Prompt>,
}

impl Settings {
    /// Validated config in, greeting files loaded (blocking).
    fn load(cfg: VoicemailConfig) -> Result<Settings, VoicemailError> {
        let mut configured = HashMap::new();
        for m in &cfg.mailboxes {
            for (kind, path) in [
                (GreetingKind::Unavailable, &m.greeting_unavailable),
                (GreetingKind::Busy, &m.greeting_busy),
            ] {
                if let Some(p) = path {
                    let prompt = Prompt::load(p).map_err(|e| file_err(p, e))?;
                    configured.insert((m.number.clone(), kind), prompt);
                }
            }
        }
        Ok(Settings {
            mailboxes: cfg
                .mailboxes
                .into_iter()
                .map(|m| (m.number.clone(), m))
                .collect(),
            configured,
        })
    }
}

/// What the writer thread and the public face share.
pub(super) struct Inner {
    settings: RwLock<Arc<Settings>>,
    pub(super) store: Arc<dyn Store>,
    root: PathBuf,
    bus: EventBus,
    state: Mutex<State>,
    seq: AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Voicemail")
            .field("root", &self.root)
            .field(
                "mailboxes",
                &self.settings().mailboxes.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn mailbox_cfg(&self, number: &str) -> Option<MailboxConfig> {
        self.settings().mailboxes.get(number).cloned()
    }

    pub(super) fn mailbox_dir(&self, mailbox: &str) -> PathBuf {
        self.root.join(mailbox)
    }

    pub(super) fn tmp_path(&self, mailbox: &str, id: &str) -> PathBuf {
        self.root
            .join(mailbox)
            .join("tmp")
            .join(format!("{id}.wav"))
    }

    pub(super) fn message_path(&self, mailbox: &str, id: &str) -> PathBuf {
        self.root.join(mailbox).join(format!("{id}.wav"))
    }

    pub(super) fn greeting_path(&self, mailbox: &str, kind: GreetingKind) -> PathBuf {
        self.root
            .join(mailbox)
            .join(format!("greeting-{}.wav", greeting_name(kind)))
    }

    fn counts_locked(st: &State, mailbox: &str) -> (u32, u32) {
        let mut new = 0;
        let mut saved = 0;
        for m in st.messages.values().filter(|m| m.mailbox == mailbox) {
            match m.folder {
                Folder::New => new += 1,
                Folder::Saved => saved += 1,
            }
        }
        (new, saved)
    }

    fn publish_locked(
        &self,
        st: &State,
        mailbox: &str,
        change: MailboxChange,
        message_id: Option<String>,
    ) {
        let (new_count, saved_count) = Self::counts_locked(st, mailbox);
        self.bus.publish(Event::Mailbox(MailboxEvent {
            mailbox: mailbox.to_string(),
            change,
            message_id,
            new_count,
            saved_count,
        }));
    }

    /// Messages (new + saved) in a mailbox.
    pub(super) fn total(&self, mailbox: &str) -> usize {
        let (n, s) = Self::counts_locked(&self.lock(), mailbox);
        (n + s) as usize
    }

    /// A fresh id, sortable by time: `<ms, 13 digits>-<sequence>`.
    pub(super) fn new_id(&self, now_ms: u64) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{now_ms:013}-{n:04}")
    }

    /// Makes a message known: metadata written, marker removed, store flushed, then
    /// listed and announced (`New`). The audio must already be in its final place.
    pub(super) fn commit_message(&self, meta: MessageMeta) -> Result<(), VoicemailError> {
        let value = encode(MESSAGES_TREE, &StoredMessage::from_meta(&meta))?;
        self.store.put(MESSAGES_TREE, meta.id.as_bytes(), &value)?;
        self.store.remove(RECORDINGS_TREE, meta.id.as_bytes())?;
        self.store.flush()?;
        let mut st = self.lock();
        let (mailbox, id) = (meta.mailbox.clone(), meta.id.clone());
        st.messages.insert(meta.id.clone(), meta);
        self.publish_locked(&st, &mailbox, MailboxChange::New, Some(id));
        Ok(())
    }

    /// Installs a greeting recorded by phone (already renamed into place).
    pub(super) fn commit_greeting(
        &self,
        mailbox: &str,
        kind: GreetingKind,
        id: &str,
        prompt: Prompt,
    ) -> Result<(), VoicemailError> {
        self.store.remove(RECORDINGS_TREE, id.as_bytes())?;
        self.store.flush()?;
        let mut st = self.lock();
        st.recorded.insert((mailbox.to_string(), kind), prompt);
        self.publish_locked(&st, mailbox, MailboxChange::Settings, None);
        Ok(())
    }
}

/// Voicemail storage and recorder, shared as `Arc<Voicemail>` by the call actors, the
/// phone applications (through [`VoicemailAccess`]) and the gRPC service.
#[derive(Debug)]
pub struct Voicemail {
    pub(super) inner: Arc<Inner>,
    pub(super) writer: WriterHandle,
}

impl Voicemail {
    /// Opens storage under `<data_dir>/voicemail`, recovers recordings left by a crash,
    /// loads greetings, and starts the recorder's writer thread.
    pub fn open(
        cfg: VoicemailConfig,
        store: Arc<dyn Store>,
        data_dir: &Path,
        bus: EventBus,
    ) -> Result<Arc<Voicemail>, VoicemailError> {
        let root = data_dir.join("voicemail");
        std::fs::create_dir_all(&root).map_err(|e| file_err(&root, e))?;
        let inner = Arc::new(Inner {
            settings: RwLock::new(Arc::new(Settings::load(cfg)?)),
            store,
            root,
            bus,
            state: Mutex::new(State::default()),
            seq: AtomicU64::new(0),
        });
        load_state(&inner)?;
        recover(&inner)?;
        let writer = recorder::spawn_writer(inner.clone())?;
        Ok(Arc::new(Voicemail { inner, writer }))
    }

    /// `(new, saved)` message counts of a mailbox.
    pub fn counts(&self, mailbox: &str) -> Result<(u32, u32), VoicemailError> {
        self.known(mailbox)?;
        Ok(Inner::counts_locked(&self.inner.lock(), mailbox))
    }

    /// Messages of a mailbox, oldest first; `None`: every folder.
    pub fn list(
        &self,
        mailbox: &str,
        folder: Option<Folder>,
    ) -> Result<Vec<MessageMeta>, VoicemailError> {
        self.known(mailbox)?;
        let st = self.inner.lock();
        Ok(st
            .messages
            .values()
            .filter(|m| m.mailbox == mailbox && folder.is_none_or(|f| m.folder == f))
            .cloned()
            .collect())
    }

    /// One message's metadata.
    pub fn message(&self, id: &str) -> Result<MessageMeta, VoicemailError> {
        self.inner
            .lock()
            .messages
            .get(id)
            .cloned()
            .ok_or_else(|| VoicemailError::NoMessage(id.to_string()))
    }

    /// Where a message's WAV file is.
    pub fn audio_path(&self, id: &str) -> Result<PathBuf, VoicemailError> {
        let m = self.message(id)?;
        Ok(self.inner.message_path(&m.mailbox, &m.id))
    }

    /// The configured mailbox numbers, in order.
    pub fn mailbox_numbers(&self) -> Vec<String> {
        self.inner.settings().mailboxes.keys().cloned().collect()
    }

    /// Replaces the mailbox configuration (config reload; blocking: loads the configured
    /// greeting files). Stored messages stay; those of a mailbox no longer configured
    /// are kept on disk but not served until it comes back. On error nothing changes.
    pub fn reload(&self, cfg: VoicemailConfig) -> Result<(), VoicemailError> {
        let settings = Settings::load(cfg)?;
        let mut recorded = Vec::new();
        for number in settings.mailboxes.keys() {
            for kind in [GreetingKind::Unavailable, GreetingKind::Busy] {
                let path = self.inner.greeting_path(number, kind);
                if path.is_file() {
                    if let Ok(p) = Prompt::load(&path) {
                        recorded.push(((number.clone(), kind), p));
                    }
                }
            }
        }
        let mut st = self.inner.lock();
        for (key, prompt) in recorded {
            // A greeting committed meanwhile is newer than the file read above.
            st.recorded.entry(key).or_insert(prompt);
        }
        *self
            .inner
            .settings
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(settings);
        Ok(())
    }

    fn known(&self, mailbox: &str) -> Result<MailboxConfig, VoicemailError> {
        self.inner
            .mailbox_cfg(mailbox)
            .ok_or_else(|| VoicemailError::NoMailbox(mailbox.to_string()))
    }
}

impl Drop for Voicemail {
    fn drop(&mut self) {
        self.writer.shutdown();
    }
}

impl VoicemailAccess for Voicemail {
    fn mailbox(&self, number: &str) -> Option<MailboxConfig> {
        self.inner.mailbox_cfg(number)
    }

    fn check_pin(&self, mailbox: &str, pin: &str) -> bool {
        let Some(cfg) = self.inner.mailbox_cfg(mailbox) else {
            return false;
        };
        let st = self.inner.lock();
        let expected = st.pins.get(mailbox).unwrap_or(&cfg.pin);
        !pin.is_empty() && expected == pin
    }

    fn set_pin(&self, mailbox: &str, pin: &str) -> Result<(), VoicemailError> {
        self.known(mailbox)?;
        if pin.is_empty() || !pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(VoicemailError::InvalidPin(mailbox.to_string()));
        }
        let mut st = self.inner.lock();
        self.inner
            .store
            .put(PINS_TREE, mailbox.as_bytes(), pin.as_bytes())?;
        st.pins.insert(mailbox.to_string(), pin.to_string());
        self.inner
            .publish_locked(&st, mailbox, MailboxChange::Settings, None);
        // Durable on sled's periodic flush; ask the writer thread to flush now.
        self.writer.send(Cmd::FlushStore);
        Ok(())
    }

    fn messages(&self, mailbox: &str, folder: Folder) -> Result<Vec<MessageMeta>, VoicemailError> {
        self.list(mailbox, Some(folder))
    }

    fn audio(&self, message_id: &str) -> Result<Prompt, VoicemailError> {
        let path = self.audio_path(message_id)?;
        Prompt::load(&path).map_err(|e| file_err(&path, e))
    }

    fn set_folder(&self, message_id: &str, folder: Folder) -> Result<(), VoicemailError> {
        let mut st = self.inner.lock();
        let Some(m) = st.messages.get(message_id) else {
            return Err(VoicemailError::NoMessage(message_id.to_string()));
        };
        if m.folder == folder {
            return Ok(());
        }
        let mut updated = m.clone();
        updated.folder = folder;
        let value = encode(MESSAGES_TREE, &StoredMessage::from_meta(&updated))?;
        self.inner
            .store
            .put(MESSAGES_TREE, message_id.as_bytes(), &value)?;
        let mailbox = updated.mailbox.clone();
        st.messages.insert(message_id.to_string(), updated);
        let change = match folder {
            Folder::Saved => MailboxChange::Read,
            Folder::New => MailboxChange::New,
        };
        self.inner
            .publish_locked(&st, &mailbox, change, Some(message_id.to_string()));
        self.writer.send(Cmd::FlushStore);
        Ok(())
    }

    fn delete(&self, message_id: &str) -> Result<(), VoicemailError> {
        let mut st = self.inner.lock();
        let Some(m) = st.messages.get(message_id) else {
            return Err(VoicemailError::NoMessage(message_id.to_string()));
        };
        let mailbox = m.mailbox.clone();
        self.inner
            .store
            .remove(MESSAGES_TREE, message_id.as_bytes())?;
        st.messages.remove(message_id);
        self.inner.publish_locked(
            &st,
            &mailbox,
            MailboxChange::Deleted,
            Some(message_id.to_string()),
        );
        // No file IO while other calls may wait for the index.
        drop(st);
        let path = self.inner.message_path(&mailbox, message_id);
        // Metadata first: a crash in between leaves metadata without audio, which
        // `open` drops; never audio-less listings.
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                warn!(path = %path.display(), error = %e, "cannot remove a deleted message's audio");
            }
        }
        self.writer.send(Cmd::FlushStore);
        Ok(())
    }

    fn greeting(&self, mailbox: &str, kind: GreetingKind) -> Option<Prompt> {
        let settings = self.inner.settings();
        let st = self.inner.lock();
        let key = |k| (mailbox.to_string(), k);
        let order: &[GreetingKind] = match kind {
            GreetingKind::Unavailable => &[GreetingKind::Unavailable],
            GreetingKind::Busy => &[GreetingKind::Busy, GreetingKind::Unavailable],
        };
        order.iter().find_map(|&k| {
            st.recorded
                .get(&key(k))
                .or_else(|| settings.configured.get(&key(k)))
                .cloned()
        })
    }
}

/// Loads messages, PINs and recorded greetings into memory. A message whose audio is
/// gone (a crash between deleting metadata and audio, or a lost file) is dropped.
fn load_state(inner: &Inner) -> Result<(), VoicemailError> {
    let mut st = inner.lock();
    for (key, value) in inner.store.scan_prefix(MESSAGES_TREE, b"")? {
        let meta = decode::<StoredMessage>(MESSAGES_TREE, &value)
            .ok()
            .and_then(StoredMessage::into_meta);
        let Some(meta) = meta else {
            warn!(key = %String::from_utf8_lossy(&key), "corrupt voicemail metadata dropped");
            inner.store.remove(MESSAGES_TREE, &key)?;
            continue;
        };
        let path = inner.message_path(&meta.mailbox, &meta.id);
        if !path.is_file() {
            warn!(id = %meta.id, path = %path.display(), "voicemail audio missing; message dropped");
            inner.store.remove(MESSAGES_TREE, &key)?;
            continue;
        }
        st.messages.insert(meta.id.clone(), meta);
    }
    for (key, value) in inner.store.scan_prefix(PINS_TREE, b"")? {
        if let (Ok(mb), Ok(pin)) = (String::from_utf8(key), String::from_utf8(value)) {
            st.pins.insert(mb, pin);
        }
    }
    for number in inner.settings().mailboxes.keys() {
        for kind in [GreetingKind::Unavailable, GreetingKind::Busy] {
            let path = inner.greeting_path(number, kind);
            if path.is_file() {
                match Prompt::load(&path) {
                    Ok(p) => {
                        st.recorded.insert((number.clone(), kind), p);
                    }
                    Err(e) => {
                        warn!(path = %path.display(), error = %e, "recorded greeting unreadable")
                    }
                }
            }
        }
    }
    Ok(())
}

/// Turns every recording left in progress by a crash into a message (see the module doc).
fn recover(inner: &Inner) -> Result<(), VoicemailError> {
    let markers = inner.store.scan_prefix(RECORDINGS_TREE, b"")?;
    let mut changed = false;
    for (key, value) in markers {
        changed = true;
        let marker = match decode::<StoredMarker>(RECORDINGS_TREE, &value) {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "corrupt recording marker dropped");
                inner.store.remove(RECORDINGS_TREE, &key)?;
                continue;
            }
        };
        recover_one(inner, &marker);
        inner.store.remove(RECORDINGS_TREE, &key)?;
    }
    // Temporary files without a marker (a crash between creating the file and writing
    // the marker, or after the marker's removal) hold nothing promised to anyone.
    for number in inner.settings().mailboxes.keys() {
        let tmp = inner.mailbox_dir(number).join("tmp");
        let Ok(entries) = std::fs::read_dir(&tmp) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let id = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            if inner.store.get(RECORDINGS_TREE, id.as_bytes())?.is_none() {
                info!(path = %path.display(), "stray voicemail temp file removed");
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    if changed {
        inner.store.flush()?;
    }
    Ok(())
}

fn recover_one(inner: &Inner, marker: &StoredMarker) {
    let tmp = inner.tmp_path(&marker.mailbox, &marker.id);
    let MarkerKind::Message = marker.kind else {
        info!(mailbox = %marker.mailbox, id = %marker.id, "unfinished greeting recording discarded");
        let _ = std::fs::remove_file(&tmp);
        return;
    };
    if inner.lock().messages.contains_key(&marker.id) {
        // Committed; only the marker's removal was lost.
        let _ = std::fs::remove_file(&tmp);
        return;
    }
    let Some(cfg) = inner.mailbox_cfg(&marker.mailbox) else {
        warn!(mailbox = %marker.mailbox, id = %marker.id,
              "recording for a mailbox no longer configured discarded");
        let _ = std::fs::remove_file(&tmp);
        return;
    };
    let dest = inner.message_path(&marker.mailbox, &marker.id);
    // Either still in tmp/, or renamed just before the crash.
    let source = if tmp.is_file() {
        tmp.clone()
    } else {
        dest.clone()
    };
    let samples = match recorder::repair_wav(&source) {
        Ok(Some(n)) => n,
        Ok(None) => {
            warn!(id = %marker.id, path = %source.display(), "unreadable partial recording discarded");
            let _ = std::fs::remove_file(&source);
            return;
        }
        Err(e) => {
            warn!(id = %marker.id, path = %source.display(), error = %e,
                  "partial recording lost");
            return;
        }
    };
    let duration_ms = samples_ms(samples);
    if samples == 0 || u128::from(duration_ms) < cfg.min_message.as_millis() {
        warn!(id = %marker.id, duration_ms, "partial recording too short; discarded");
        let _ = std::fs::remove_file(&source);
        return;
    }
    if source != dest {
        if let Err(e) = std::fs::rename(&source, &dest)
            .and_then(|_| recorder::sync_dir(&inner.mailbox_dir(&marker.mailbox)))
        {
            warn!(id = %marker.id, error = %e, "cannot move a recovered recording into place");
            return;
        }
    }
    let meta = MessageMeta {
        id: marker.id.clone(),
        mailbox: marker.mailbox.clone(),
        caller_number: marker.caller_number.clone(),
        caller_name: marker.caller_name.clone(),
        received_ms: marker.received_ms,
        duration_ms,
        folder: Folder::New,
        recovered: true,
    };
    info!(id = %meta.id, mailbox = %meta.mailbox, duration_ms, "recording recovered after a crash");
    if let Err(e) = inner.commit_message(meta) {
        warn!(id = %marker.id, error = %e, "cannot store a recovered message");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::BusEvent;
    use crate::ivr::{RecordingKind, RecordingSpec, SaveOutcome};
    use crate::store::{MemoryStore, SledStore};
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    static N: AtomicU32 = AtomicU32::new(0);

    /// A unique temporary directory, removed on drop.
    struct TestDir(PathBuf);
    impl TestDir {
        fn new(tag: &str) -> TestDir {
            let n = N.fetch_add(1, Ordering::Relaxed);
            let p =
                std::env::temp_dir().join(format!("caruso-vm-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TestDir(p)
        }
    }
    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn mailbox(number: &str, max_messages: usize) -> MailboxConfig {
        MailboxConfig {
            max_messages,
            ..MailboxConfig::new(number, "Alice", "1234")
        }
    }

    fn cfg(max_messages: usize) -> VoicemailConfig {
        VoicemailConfig {
            mailboxes: vec![mailbox("200", max_messages), mailbox("201", 100)],
        }
    }

    fn open(dir: &TestDir, store: Arc<dyn Store>, max: usize) -> (Arc<Voicemail>, EventBus) {
        let bus = EventBus::default();
        let vm = Voicemail::open(cfg(max), store, &dir.0, bus.clone()).expect("open");
        (vm, bus)
    }

    fn message_spec(mb: &str) -> RecordingSpec {
        RecordingSpec {
            kind: RecordingKind::Message {
                mailbox: mb.into(),
                caller_number: "5551234".into(),
                caller_name: "Bob".into(),
            },
            max_len: Duration::from_secs(60),
        }
    }

    /// `n` samples of a recognisable pattern starting at `seed`.
    fn pattern(seed: i16, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| seed.wrapping_add((i % 2000) as i16))
            .collect()
    }

    fn record(vm: &Voicemail, spec: &RecordingSpec, samples: &[i16]) -> SaveOutcome {
        let mut rec = vm.start_recording(spec).expect("start");
        for frame in samples.chunks(160) {
            rec.push(frame);
        }
        rec.stop();
        rec.push(&[1, 2, 3]); // ignored after stop
        rec.save().blocking_recv().expect("answer")
    }

    fn saved(o: SaveOutcome) -> String {
        match o {
            SaveOutcome::Saved(id) => id,
            other => panic!("expected Saved, got {other:?}"),
        }
    }

    fn mailbox_events(
        rx: &mut tokio::sync::broadcast::Receiver<Arc<BusEvent>>,
    ) -> Vec<MailboxEvent> {
        let mut out = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            if let Event::Mailbox(m) = &ev.event {
                out.push(m.clone());
            }
        }
        out
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|r| {
                r.flatten()
                    .filter(|e| e.path().is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn a_saved_message_is_listed_with_its_audio_and_survives_reopen() {
        let dir = TestDir::new("save");
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let (vm, _bus) = open(&dir, store.clone(), 100);
        let audio = pattern(100, 12_000);
        let id = saved(record(&vm, &message_spec("200"), &audio));

        let list = vm.list("200", None).unwrap();
        assert_eq!(list.len(), 1);
        let m = &list[0];
        assert_eq!(m.id, id);
        assert_eq!(
            (m.caller_number.as_str(), m.caller_name.as_str()),
            ("5551234", "Bob")
        );
        assert_eq!(m.duration_ms, 1500);
        assert_eq!(m.folder, Folder::New);
        assert!(!m.recovered);
        assert!(m.received_ms > 1_600_000_000_000);
        assert_eq!(vm.message(&id).unwrap(), *m);
        let path = vm.audio_path(&id).unwrap();
        assert_eq!(path, dir.0.join("voicemail/200").join(format!("{id}.wav")));
        assert_eq!(vm.audio(&id).unwrap().samples(), &audio[..]);
        let reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.spec(), recorder::wav_spec());
        assert!(files_in(&dir.0.join("voicemail/200/tmp")).is_empty());
        assert!(store.scan_prefix(RECORDINGS_TREE, b"").unwrap().is_empty());
        assert!(vm.list("201", None).unwrap().is_empty());

        drop(vm);
        let (vm, _bus) = open(&dir, store, 100);
        assert_eq!(vm.list("200", None).unwrap(), list);
        assert!(matches!(
            vm.list("999", None),
            Err(VoicemailError::NoMailbox(_))
        ));
        assert!(matches!(
            vm.message("nope"),
            Err(VoicemailError::NoMessage(_))
        ));
    }

    #[test]
    fn counts_folders_delete_and_events() {
        let dir = TestDir::new("folders");
        let (vm, bus) = open(&dir, Arc::new(MemoryStore::default()), 100);
        let mut rx = bus.subscribe();
        let a = saved(record(&vm, &message_spec("200"), &pattern(0, 8000)));
        let b = saved(record(&vm, &message_spec("200"), &pattern(5, 9000)));
        assert!(a < b, "ids sort by time");
        assert_eq!(vm.counts("200").unwrap(), (2, 0));

        vm.set_folder(&a, Folder::Saved).unwrap();
        assert_eq!(vm.counts("200").unwrap(), (1, 1));
        assert_eq!(
            vm.messages("200", Folder::New)
                .unwrap()
                .iter()
                .map(|m| &m.id)
                .collect::<Vec<_>>(),
            [&b]
        );
        assert_eq!(
            vm.messages("200", Folder::Saved)
                .unwrap()
                .iter()
                .map(|m| &m.id)
                .collect::<Vec<_>>(),
            [&a]
        );
        // Same folder again: no change, no event.
        vm.set_folder(&a, Folder::Saved).unwrap();
        vm.set_folder(&a, Folder::New).unwrap();
        let path_b = vm.audio_path(&b).unwrap();
        assert!(path_b.is_file());
        vm.delete(&b).unwrap();
        assert!(!path_b.exists());
        assert_eq!(vm.counts("200").unwrap(), (1, 0));
        assert!(matches!(vm.delete(&b), Err(VoicemailError::NoMessage(_))));
        assert!(matches!(
            vm.set_folder("x", Folder::Saved),
            Err(VoicemailError::NoMessage(_))
        ));
        assert!(matches!(
            vm.counts("999"),
            Err(VoicemailError::NoMailbox(_))
        ));

        let got: Vec<_> = mailbox_events(&mut rx)
            .into_iter()
            .map(|e| {
                assert_eq!(e.mailbox, "200");
                (e.change, e.message_id.unwrap(), e.new_count, e.saved_count)
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (MailboxChange::New, a.clone(), 1, 0),
                (MailboxChange::New, b.clone(), 2, 0),
                (MailboxChange::Read, a.clone(), 1, 1),
                (MailboxChange::New, a.clone(), 2, 0),
                (MailboxChange::Deleted, b.clone(), 1, 0),
            ]
        );
    }

    #[test]
    fn a_full_mailbox_refuses_messages_but_not_greetings() {
        let dir = TestDir::new("full");
        let (vm, _bus) = open(&dir, Arc::new(MemoryStore::default()), 1);
        saved(record(&vm, &message_spec("200"), &pattern(0, 8000)));
        assert!(matches!(
            vm.start_recording(&message_spec("200")),
            Err(VoicemailError::Full(m)) if m == "200"
        ));
        assert!(vm.start_recording(&message_spec("201")).is_ok());
        let greeting = RecordingSpec {
            kind: RecordingKind::Greeting {
                mailbox: "200".into(),
                kind: GreetingKind::Busy,
            },
            max_len: Duration::from_secs(30),
        };
        assert!(vm.start_recording(&greeting).is_ok());
        assert!(matches!(
            vm.start_recording(&message_spec("999")),
            Err(VoicemailError::NoMailbox(_))
        ));
    }

    #[test]
    fn too_short_messages_are_not_stored() {
        let dir = TestDir::new("short");
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let (vm, bus) = open(&dir, store.clone(), 100);
        let mut rx = bus.subscribe();
        assert_eq!(
            record(&vm, &message_spec("200"), &pattern(0, 7_900)),
            SaveOutcome::Failed("too short".into())
        );
        assert_eq!(
            record(&vm, &message_spec("200"), &[]),
            SaveOutcome::Failed("too short".into())
        );
        assert!(vm.list("200", None).unwrap().is_empty());
        assert!(files_in(&dir.0.join("voicemail/200")).is_empty());
        assert!(files_in(&dir.0.join("voicemail/200/tmp")).is_empty());
        vm.sync_recordings();
        assert!(store.scan_prefix(RECORDINGS_TREE, b"").unwrap().is_empty());
        assert!(mailbox_events(&mut rx).is_empty());
    }

    #[test]
    fn recordings_stop_at_their_maximum_length() {
        let dir = TestDir::new("maxlen");
        let (vm, _bus) = open(&dir, Arc::new(MemoryStore::default()), 100);
        let mut spec = message_spec("200");
        spec.max_len = Duration::from_millis(1_200);
        let id = saved(record(&vm, &spec, &pattern(0, 16_000)));
        assert_eq!(vm.message(&id).unwrap().duration_ms, 1_200);
        assert_eq!(vm.audio(&id).unwrap().len(), 9_600);
    }

    #[test]
    fn discarded_and_dropped_recordings_leave_nothing() {
        let dir = TestDir::new("discard");
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let (vm, _bus) = open(&dir, store.clone(), 100);
        let mut rec = vm.start_recording(&message_spec("200")).unwrap();
        rec.push(&pattern(0, 16_000));
        vm.sync_recordings();
        assert_eq!(files_in(&dir.0.join("voicemail/200/tmp")).len(), 1);
        assert_eq!(store.scan_prefix(RECORDINGS_TREE, b"").unwrap().len(), 1);
        rec.discard();
        let mut rec = vm.start_recording(&message_spec("200")).unwrap();
        rec.push(&pattern(0, 16_000));
        drop(rec);
        vm.sync_recordings();
        assert!(files_in(&dir.0.join("voicemail/200/tmp")).is_empty());
        assert!(store.scan_prefix(RECORDINGS_TREE, b"").unwrap().is_empty());
        assert!(vm.list("200", None).unwrap().is_empty());
    }

    #[test]
    fn a_recorded_greeting_replaces_the_previous_one_and_persists() {
        let dir = TestDir::new("greeting");
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        // Mailbox 201 has a configured unavailable greeting.
        let configured = dir.0.join("configured.wav");
        {
            let mut w = hound::WavWriter::create(&configured, recorder::wav_spec()).unwrap();
            for s in pattern(7, 4000) {
                w.write_sample(s).unwrap();
            }
            w.finalize().unwrap();
        }
        let mut c = cfg(100);
        c.mailboxes[1].greeting_unavailable = Some(configured);
        let bus = EventBus::default();
        let mut rx = bus.subscribe();
        let vm = Voicemail::open(c.clone(), store.clone(), &dir.0, bus.clone()).unwrap();
        assert_eq!(vm.greeting("200", GreetingKind::Unavailable), None);
        assert_eq!(
            vm.greeting("201", GreetingKind::Busy).map(|p| p.len()),
            Some(4000),
            "busy falls back to the unavailable greeting"
        );
        let spec = RecordingSpec {
            kind: RecordingKind::Greeting {
                mailbox: "200".into(),
                kind: GreetingKind::Unavailable,
            },
            max_len: Duration::from_secs(30),
        };
        let first = pattern(1000, 10_000);
        saved(record(&vm, &spec, &first));
        assert_eq!(
            vm.greeting("200", GreetingKind::Unavailable)
                .unwrap()
                .samples(),
            &first[..]
        );
        let second = pattern(-3000, 12_000);
        saved(record(&vm, &spec, &second));
        assert_eq!(
            vm.greeting("200", GreetingKind::Unavailable)
                .unwrap()
                .samples(),
            &second[..]
        );
        assert_eq!(
            vm.greeting("200", GreetingKind::Busy).unwrap().samples(),
            &second[..]
        );
        assert_eq!(
            files_in(&dir.0.join("voicemail/200")),
            ["greeting-unavailable.wav"]
        );
        assert!(
            vm.list("200", None).unwrap().is_empty(),
            "a greeting is no message"
        );
        let changes: Vec<_> = mailbox_events(&mut rx)
            .into_iter()
            .map(|e| e.change)
            .collect();
        assert_eq!(changes, [MailboxChange::Settings, MailboxChange::Settings]);
        drop(vm);
        let vm = Voicemail::open(c, store, &dir.0, bus).unwrap();
        assert_eq!(
            vm.greeting("200", GreetingKind::Unavailable)
                .unwrap()
                .samples(),
            &second[..]
        );
    }

    #[test]
    fn a_pin_changed_by_phone_persists() {
        let dir = TestDir::new("pin");
        let db = dir.0.join("db");
        {
            let store: Arc<dyn Store> = Arc::new(SledStore::open(&db).unwrap());
            let (vm, bus) = open(&dir, store, 100);
            let mut rx = bus.subscribe();
            assert!(vm.check_pin("200", "1234"));
            assert!(!vm.check_pin("200", "0000"));
            assert!(!vm.check_pin("999", "1234"));
            vm.set_pin("200", "9876").unwrap();
            assert!(matches!(
                vm.set_pin("200", "12a"),
                Err(VoicemailError::InvalidPin(_))
            ));
            assert!(matches!(
                vm.set_pin("999", "1"),
                Err(VoicemailError::NoMailbox(_))
            ));
            assert!(!vm.check_pin("200", "1234"));
            assert!(vm.check_pin("200", "9876"));
            assert!(vm.check_pin("201", "1234"), "other mailboxes keep theirs");
            let ev = mailbox_events(&mut rx);
            assert_eq!(ev.len(), 1);
            assert_eq!(ev[0].change, MailboxChange::Settings);
        }
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&db).unwrap());
        let (vm, _bus) = open(&dir, store, 100);
        assert!(vm.check_pin("200", "9876"));
        assert!(!vm.check_pin("200", "1234"));
    }

    #[test]
    fn open_recordings_are_synced_within_a_second() {
        let dir = TestDir::new("sync");
        let (vm, _bus) = open(&dir, Arc::new(MemoryStore::default()), 100);
        let mut rec = vm.start_recording(&message_spec("200")).unwrap();
        rec.push(&pattern(0, 8_000));
        let tmp = vm.inner.tmp_path("200", rec.id());
        std::thread::sleep(Duration::from_millis(1_100));
        let len = std::fs::metadata(&tmp).unwrap().len();
        assert_eq!(
            len,
            44 + 16_000,
            "samples and header on disk without a save"
        );
        let reader = hound::WavReader::open(&tmp).unwrap();
        assert_eq!(reader.duration(), 8_000, "the header is kept up to date");
    }

    /// Writes samples, lets them sync, then "kills" the writer (nothing closed, the
    /// Recording forgotten), tears the file's end and zeroes its header sizes.
    fn crash_mid_recording(dir: &TestDir, db: &Path, synced: &[i16]) -> String {
        let store: Arc<dyn Store> = Arc::new(SledStore::open(db).unwrap());
        let (vm, _bus) = open(dir, store, 100);
        let mut rec = vm.start_recording(&message_spec("200")).unwrap();
        rec.push(synced);
        vm.sync_recordings();
        // Audio after the last sync may or may not survive: 100 ms in the buffer.
        rec.push(&pattern(0, 800));
        let id = rec.id().to_string();
        vm.crash_writer();
        std::mem::forget(rec);
        let tmp = vm.inner.tmp_path("200", &id);
        drop(vm);
        let mut bytes = std::fs::read(&tmp).unwrap();
        bytes[4..8].copy_from_slice(&[0; 4]);
        bytes[40..44].copy_from_slice(&[0; 4]);
        bytes.push(0x55); // half a sample
        std::fs::write(&tmp, bytes).unwrap();
        id
    }

    #[test]
    fn a_crash_mid_recording_leaves_a_recovered_message() {
        let dir = TestDir::new("crash");
        let db = dir.0.join("db");
        let synced = pattern(300, 20_000);
        let id = crash_mid_recording(&dir, &db, &synced);

        let store: Arc<dyn Store> = Arc::new(SledStore::open(&db).unwrap());
        let (vm, _bus) = open(&dir, store.clone(), 100);
        let m = vm.message(&id).expect("recovered message");
        assert!(m.recovered);
        assert_eq!(m.folder, Folder::New);
        assert_eq!(m.caller_number, "5551234");
        assert!(m.duration_ms >= 2_500, "{}", m.duration_ms);
        let audio = vm.audio(&id).unwrap();
        assert_eq!(&audio.samples()[..synced.len()], &synced[..]);
        assert_eq!(u64::from(audio.len() as u32) * 1000 / 8000, m.duration_ms);
        assert_eq!(vm.counts("200").unwrap(), (1, 0));
        assert!(files_in(&dir.0.join("voicemail/200/tmp")).is_empty());
        assert!(store.scan_prefix(RECORDINGS_TREE, b"").unwrap().is_empty());
        drop(vm);
        // Recovery happens once.
        let (vm, _bus) = open(&dir, store, 100);
        assert_eq!(vm.list("200", None).unwrap().len(), 1);
    }

    #[test]
    fn a_crash_before_the_minimum_length_leaves_nothing() {
        let dir = TestDir::new("crash-short");
        let db = dir.0.join("db");
        let id = crash_mid_recording(&dir, &db, &pattern(0, 1_600));
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&db).unwrap());
        let (vm, _bus) = open(&dir, store.clone(), 100);
        assert!(matches!(vm.message(&id), Err(VoicemailError::NoMessage(_))));
        assert!(files_in(&dir.0.join("voicemail/200/tmp")).is_empty());
        assert!(files_in(&dir.0.join("voicemail/200")).is_empty());
        assert!(store.scan_prefix(RECORDINGS_TREE, b"").unwrap().is_empty());
    }

    #[test]
    fn reload_replaces_mailboxes_and_keeps_messages() {
        let dir = TestDir::new("reload");
        let (vm, _bus) = open(&dir, Arc::new(MemoryStore::default()), 100);
        let id = saved(record(&vm, &message_spec("200"), &pattern(0, 8000)));
        let greeting = dir.0.join("g.wav");
        {
            let mut w = hound::WavWriter::create(&greeting, recorder::wav_spec()).unwrap();
            for s in pattern(9, 800) {
                w.write_sample(s).unwrap();
            }
            w.finalize().unwrap();
        }
        let mut c = cfg(100);
        c.mailboxes.remove(1);
        c.mailboxes[0].pin = "4321".into();
        c.mailboxes[0].greeting_busy = Some(greeting);
        let mut added = mailbox("202", 3);
        added.owner = "Carol".into();
        c.mailboxes.push(added);
        let mut bad = c.clone();
        bad.mailboxes[0].greeting_unavailable = Some(dir.0.join("missing.wav"));
        assert!(vm.reload(bad).is_err());
        assert!(
            vm.mailbox("201").is_some(),
            "a failed reload changes nothing"
        );

        vm.reload(c).unwrap();
        assert_eq!(vm.mailbox_numbers(), ["200", "202"]);
        assert!(vm.mailbox("201").is_none());
        assert!(matches!(
            vm.list("201", None),
            Err(VoicemailError::NoMailbox(_))
        ));
        assert_eq!(vm.mailbox("202").unwrap().owner, "Carol");
        assert!(vm.check_pin("200", "4321"));
        assert_eq!(vm.greeting("200", GreetingKind::Busy).unwrap().len(), 800);
        assert_eq!(vm.message(&id).unwrap().mailbox, "200");
        assert!(vm.start_recording(&message_spec("202")).is_ok());
    }

    #[test]
    fn metadata_whose_audio_is_gone_is_dropped_at_open() {
        let dir = TestDir::new("orphan");
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let (vm, _bus) = open(&dir, store.clone(), 100);
        let id = saved(record(&vm, &message_spec("200"), &pattern(0, 8000)));
        let path = vm.audio_path(&id).unwrap();
        drop(vm);
        std::fs::remove_file(path).unwrap();
        store.put(MESSAGES_TREE, b"garbage", b"\xff").unwrap();
        let (vm, _bus) = open(&dir, store.clone(), 100);
        assert!(vm.list("200", None).unwrap().is_empty());
        assert!(store.scan_prefix(MESSAGES_TREE, b"").unwrap().is_empty());
    }
}
