//! The durable recorder: one writer thread (`std::thread`) owns every open recording
//! file; calls feed it through a channel and never wait on a disk.
//!
//! Contract:
//! - [`Voicemail::start_recording`] checks the mailbox (unknown → `NoMailbox`, a message
//!   into a mailbox holding `max_messages` → `Full`) and returns a [`Recording`] at once.
//!   The writer thread creates `<mailbox>/tmp/<id>.wav` (header flushed and synced), then
//!   writes an in-progress marker to the store tree `vm_recordings` and flushes the store.
//! - [`Recording::push`] sends samples (never blocks); the writer appends them, capped at
//!   the spec's `max_len` (and the mailbox's `max_message`), and at least every
//!   [`SYNC_INTERVAL`] flushes its buffer, rewrites the WAV header and `sync_data`s.
//! - [`Recording::save`] answers on a oneshot channel once the writer has finished the
//!   file (header, fsync), renamed it into place, fsynced the directory, written the
//!   metadata, removed the marker and flushed the store: only then is `Saved(id)` sent
//!   and `New` published. Shorter than the mailbox's `min_message` →
//!   `Failed("too short")` and nothing is kept. A greeting replaces
//!   `<mailbox>/greeting-<kind>.wav` the same way and publishes `Settings`.
//! - [`Recording::discard`], or dropping an unsaved `Recording`, removes the file and
//!   the marker.
//! - After a crash the marker and the synced part of the file remain;
//!   [`Voicemail::open`] repairs the WAV header from the file size ([`repair_wav`]) and
//!   stores the audio as a message flagged `recovered`.
//!
//! ```no_run
//! # async fn demo(vm: std::sync::Arc<caruso::voicemail::Voicemail>,
//! #               spec: caruso::ivr::RecordingSpec) {
//! use caruso::ivr::SaveOutcome;
//! let mut rec = vm.start_recording(&spec).unwrap();
//! rec.push(&[0i16; 160]);
//! rec.stop();
//! match rec.save().await {
//!     Ok(SaveOutcome::Saved(id)) => println!("saved {id}"),
//!     other => println!("not saved: {other:?}"),
//! }
//! # }
//! ```

use super::storage::{encode, file_err, samples_ms, Inner, Voicemail, RECORDINGS_TREE};
use super::{Folder, MessageMeta, VoicemailError};
use crate::ivr::{GreetingKind, RecordingKind, RecordingSpec, SaveOutcome};
use crate::media::wav::{Prompt, PROMPT_RATE};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tracing::{debug, warn};

/// How often an open recording's audio is flushed and synced at the latest.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(500);

/// What a marker's recording is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum MarkerKind {
    Message,
    GreetingUnavailable,
    GreetingBusy,
}

/// The in-progress marker stored in `vm_recordings` while a recording is open.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StoredMarker {
    pub(super) id: String,
    pub(super) kind: MarkerKind,
    pub(super) mailbox: String,
    pub(super) caller_number: String,
    pub(super) caller_name: String,
    pub(super) received_ms: u64,
}

/// Commands to the writer thread.
pub(super) enum Cmd {
    Start {
        marker: StoredMarker,
        max_samples: u64,
    },
    Audio {
        id: String,
        samples: Vec<i16>,
    },
    Save {
        id: String,
        reply: oneshot::Sender<SaveOutcome>,
    },
    Discard {
        id: String,
    },
    /// Flush the store soon (after small writes from the phone apps or the API).
    FlushStore,
    /// Sync every open recording now, then answer.
    Barrier(mpsc::Sender<()>),
    /// Sync everything and stop; open recordings stay for recovery.
    Shutdown,
    /// Stop at once without syncing or closing anything (tests: a simulated kill -9).
    #[cfg(test)]
    Crash,
}

/// The sending side of the writer thread.
#[derive(Debug)]
pub(super) struct WriterHandle {
    tx: mpsc::Sender<Cmd>,
    join: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cmd")
    }
}

impl WriterHandle {
    pub(super) fn send(&self, cmd: Cmd) {
        let _ = self.tx.send(cmd);
    }

    /// Stops the thread (everything synced) and waits for it.
    pub(super) fn shutdown(&self) {
        let _ = self.tx.send(Cmd::Shutdown);
        let handle = self.join.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

/// Starts the writer thread.
pub(super) fn spawn_writer(inner: Arc<Inner>) -> Result<WriterHandle, VoicemailError> {
    let (tx, rx) = mpsc::channel();
    let join = std::thread::Builder::new()
        .name("vm-writer".into())
        .spawn(move || {
            Writer {
                inner,
                open: HashMap::new(),
                store_dirty: false,
            }
            .run(rx)
        })
        .map_err(|e| file_err(Path::new("voicemail writer thread"), e))?;
    Ok(WriterHandle {
        tx,
        join: Mutex::new(Some(join)),
    })
}

/// A recording in progress, owned by the call that records. Not saved when dropped.
#[derive(Debug)]
pub struct Recording {
    id: String,
    tx: mpsc::Sender<Cmd>,
    stopped: bool,
    finished: bool,
}

impl Recording {
    /// The recording's id (the message id once saved).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Appends 8 kHz samples; never blocks. Ignored after [`Recording::stop`].
    pub fn push(&mut self, samples: &[i16]) {
        if self.stopped || samples.is_empty() {
            return;
        }
        let _ = self.tx.send(Cmd::Audio {
            id: self.id.clone(),
            samples: samples.to_vec(),
        });
    }

    /// No more audio; the recording waits for [`Recording::save`] or
    /// [`Recording::discard`].
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// Commits the recording; the answer comes once it is durable (see the module doc).
    pub fn save(mut self) -> oneshot::Receiver<SaveOutcome> {
        self.stopped = true;
        self.finished = true;
        let (reply, rx) = oneshot::channel();
        if let Err(mpsc::SendError(Cmd::Save { reply, .. })) = self.tx.send(Cmd::Save {
            id: self.id.clone(),
            reply,
        }) {
            let _ = reply.send(SaveOutcome::Failed("the recorder has stopped".into()));
        }
        rx
    }

    /// Throws the recording away (file and marker removed).
    pub fn discard(mut self) {
        self.finish_discard();
    }

    fn finish_discard(&mut self) {
        if !self.finished {
            self.finished = true;
            let _ = self.tx.send(Cmd::Discard {
                id: self.id.clone(),
            });
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.finish_discard();
    }
}

impl Voicemail {
    /// Starts a durable recording (see the module doc); never waits on a disk.
    pub fn start_recording(&self, spec: &RecordingSpec) -> Result<Recording, VoicemailError> {
        let (mailbox, kind, caller_number, caller_name) = match &spec.kind {
            RecordingKind::Message {
                mailbox,
                caller_number,
                caller_name,
            } => (
                mailbox,
                MarkerKind::Message,
                caller_number.clone(),
                caller_name.clone(),
            ),
            RecordingKind::Greeting { mailbox, kind } => (
                mailbox,
                match kind {
                    GreetingKind::Unavailable => MarkerKind::GreetingUnavailable,
                    GreetingKind::Busy => MarkerKind::GreetingBusy,
                },
                String::new(),
                String::new(),
            ),
        };
        let cfg = self
            .inner
            .mailbox_cfg(mailbox)
            .ok_or_else(|| VoicemailError::NoMailbox(mailbox.clone()))?;
        if kind == MarkerKind::Message && self.inner.total(mailbox) >= cfg.max_messages {
            return Err(VoicemailError::Full(mailbox.clone()));
        }
        let max_len = spec.max_len.min(cfg.max_message);
        let max_samples = (max_len.as_millis() as u64) * u64::from(PROMPT_RATE) / 1000;
        let received_ms = crate::call::unix_ms();
        let id = self.inner.new_id(received_ms);
        let marker = StoredMarker {
            id: id.clone(),
            kind,
            mailbox: mailbox.clone(),
            caller_number,
            caller_name,
            received_ms,
        };
        self.writer
            .tx
            .send(Cmd::Start {
                marker,
                max_samples,
            })
            .map_err(|_| file_err(Path::new("voicemail writer thread"), "stopped"))?;
        Ok(Recording {
            id,
            tx: self.writer.tx.clone(),
            stopped: false,
            finished: false,
        })
    }

    /// Blocks until the writer has handled every earlier command and synced every open
    /// recording. For tests and tools only; never call it from async code.
    pub fn sync_recordings(&self) {
        let (tx, rx) = mpsc::channel();
        if self.writer.tx.send(Cmd::Barrier(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }
    }

    /// Simulates a kill -9 of the writer: it stops without closing anything.
    #[cfg(test)]
    pub(super) fn crash_writer(&self) {
        self.writer.send(Cmd::Crash);
        let handle = self
            .writer
            .join
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

type WavOut = hound::WavWriter<BufWriter<File>>;

/// One open recording in the writer thread.
struct Open {
    marker: StoredMarker,
    tmp: PathBuf,
    /// `None` once failed.
    wav: Option<(WavOut, File)>,
    samples: u64,
    max_samples: u64,
    dirty: bool,
    last_sync: Instant,
    failed: Option<String>,
}

impl Open {
    fn sync(&mut self) {
        if let Some((wav, file)) = &mut self.wav {
            let res = wav
                .flush()
                .map_err(|e| e.to_string())
                .and_then(|_| file.sync_data().map_err(|e| e.to_string()));
            if let Err(e) = res {
                warn!(path = %self.tmp.display(), error = %e, "recording sync failed");
                self.failed = Some(e);
                self.wav = None;
            }
        }
        self.dirty = false;
        self.last_sync = Instant::now();
    }
}

struct Writer {
    inner: Arc<Inner>,
    open: HashMap<String, Open>,
    store_dirty: bool,
}

/// The WAV format of every recording.
pub fn wav_spec() -> hound::WavSpec {
    hound::WavSpec {
        channels: 1,
        sample_rate: PROMPT_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

/// Fsyncs a directory (makes renames and creations in it durable).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        loop {
            let due = self
                .open
                .values()
                .filter(|o| o.dirty)
                .map(|o| o.last_sync + SYNC_INTERVAL)
                .min();
            let cmd = match due {
                None if self.store_dirty => {
                    self.flush_store();
                    continue;
                }
                None => match rx.recv() {
                    Ok(c) => c,
                    Err(_) => break,
                },
                Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(c) => c,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.sync_due();
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                },
            };
            match cmd {
                Cmd::Start {
                    marker,
                    max_samples,
                } => self.start(marker, max_samples),
                Cmd::Audio { id, samples } => self.audio(&id, &samples),
                Cmd::Save { id, reply } => {
                    let outcome = self.save(&id);
                    let _ = reply.send(outcome);
                }
                Cmd::Discard { id } => self.discard(&id),
                Cmd::FlushStore => self.store_dirty = true,
                Cmd::Barrier(done) => {
                    for o in self.open.values_mut() {
                        o.sync();
                    }
                    self.flush_store();
                    let _ = done.send(());
                }
                Cmd::Shutdown => break,
                #[cfg(test)]
                Cmd::Crash => {
                    for (_, o) in self.open.drain() {
                        // Neither the buffer nor the header reaches the file.
                        std::mem::forget(o);
                    }
                    return;
                }
            }
            self.sync_due();
        }
        for o in self.open.values_mut() {
            o.sync();
        }
        self.flush_store();
        // Open recordings keep their markers: the next start recovers them.
    }

    fn flush_store(&mut self) {
        self.store_dirty = false;
        if let Err(e) = self.inner.store.flush() {
            warn!(error = %e, "voicemail store flush failed");
        }
    }

    fn sync_due(&mut self) {
        let now = Instant::now();
        for o in self.open.values_mut() {
            if o.dirty && now >= o.last_sync + SYNC_INTERVAL {
                o.sync();
            }
        }
    }

    fn start(&mut self, marker: StoredMarker, max_samples: u64) {
        let tmp = self.inner.tmp_path(&marker.mailbox, &marker.id);
        let created = create_recording(&self.inner, &tmp, &marker);
        let (wav, failed) = match created {
            Ok(w) => (Some(w), None),
            Err(e) => {
                warn!(id = %marker.id, error = %e, "cannot start a recording");
                (None, Some(e.to_string()))
            }
        };
        debug!(id = %marker.id, path = %tmp.display(), "recording started");
        self.open.insert(
            marker.id.clone(),
            Open {
                marker,
                tmp,
                wav,
                samples: 0,
                max_samples,
                dirty: false,
                last_sync: Instant::now(),
                failed,
            },
        );
    }

    fn audio(&mut self, id: &str, samples: &[i16]) {
        let Some(o) = self.open.get_mut(id) else {
            return;
        };
        let Some((wav, _)) = &mut o.wav else {
            return;
        };
        let room = o.max_samples.saturating_sub(o.samples) as usize;
        let mut written = 0u64;
        let mut err = None;
        for &s in &samples[..samples.len().min(room)] {
            if let Err(e) = wav.write_sample(s) {
                err = Some(e.to_string());
                break;
            }
            written += 1;
        }
        o.samples += written;
        if written > 0 && !o.dirty {
            o.dirty = true;
        }
        if let Some(e) = err {
            warn!(id, error = %e, "recording write failed");
            o.failed = Some(e);
            o.wav = None;
        }
    }

    fn save(&mut self, id: &str) -> SaveOutcome {
        let Some(mut o) = self.open.remove(id) else {
            return SaveOutcome::Failed(format!("no recording {id}"));
        };
        let result = self.finish(&mut o);
        if let Err(reason) = &result {
            let _ = std::fs::remove_file(&o.tmp);
            if let Err(e) = self.inner.store.remove(RECORDINGS_TREE, id.as_bytes()) {
                warn!(id, error = %e, "cannot remove a recording marker");
            }
            self.store_dirty = true;
            debug!(id, reason = %reason, "recording not saved");
        }
        match result {
            Ok(()) => SaveOutcome::Saved(id.to_string()),
            Err(reason) => SaveOutcome::Failed(reason),
        }
    }

    /// Finishes, moves into place and commits `o`; the error is the reason reported.
    fn finish(&mut self, o: &mut Open) -> Result<(), String> {
        if let Some(reason) = o.failed.take() {
            return Err(reason);
        }
        let Some((wav, file)) = o.wav.take() else {
            return Err("the recording failed".into());
        };
        wav.finalize()
            .map_err(|e| e.to_string())
            .and_then(|_| file.sync_all().map_err(|e| e.to_string()))?;
        drop(file);
        let mailbox = o.marker.mailbox.clone();
        let min = self
            .inner
            .mailbox_cfg(&mailbox)
            .map(|c| c.min_message)
            .unwrap_or_default();
        let duration_ms = samples_ms(o.samples);
        if o.samples == 0 || u128::from(duration_ms) < min.as_millis() {
            return Err("too short".into());
        }
        let dir = self.inner.mailbox_dir(&mailbox);
        let id = o.marker.id.clone();
        match o.marker.kind {
            MarkerKind::Message => {
                let dest = self.inner.message_path(&mailbox, &id);
                std::fs::rename(&o.tmp, &dest)
                    .and_then(|_| sync_dir(&dir))
                    .map_err(|e| format!("{}: {e}", dest.display()))?;
                let meta = MessageMeta {
                    id: id.clone(),
                    mailbox,
                    caller_number: o.marker.caller_number.clone(),
                    caller_name: o.marker.caller_name.clone(),
                    received_ms: o.marker.received_ms,
                    duration_ms,
                    folder: Folder::New,
                    recovered: false,
                };
                if let Err(e) = self.inner.commit_message(meta) {
                    let _ = std::fs::remove_file(&dest);
                    return Err(e.to_string());
                }
            }
            MarkerKind::GreetingUnavailable | MarkerKind::GreetingBusy => {
                let kind = if o.marker.kind == MarkerKind::GreetingBusy {
                    GreetingKind::Busy
                } else {
                    GreetingKind::Unavailable
                };
                let dest = self.inner.greeting_path(&mailbox, kind);
                let prompt = Prompt::load(&o.tmp).map_err(|e| e.to_string())?;
                std::fs::rename(&o.tmp, &dest)
                    .and_then(|_| sync_dir(&dir))
                    .map_err(|e| format!("{}: {e}", dest.display()))?;
                self.inner
                    .commit_greeting(&mailbox, kind, &id, prompt)
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    fn discard(&mut self, id: &str) {
        let Some(o) = self.open.remove(id) else {
            return;
        };
        drop(o.wav);
        let _ = std::fs::remove_file(&o.tmp);
        if let Err(e) = self.inner.store.remove(RECORDINGS_TREE, id.as_bytes()) {
            warn!(id, error = %e, "cannot remove a recording marker");
        }
        self.store_dirty = true;
        debug!(id, "recording discarded");
    }
}

/// Creates the temporary file (header synced) and the flushed in-progress marker.
fn create_recording(
    inner: &Inner,
    tmp: &Path,
    marker: &StoredMarker,
) -> Result<(WavOut, File), VoicemailError> {
    let dir = tmp.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let file = File::create(tmp).map_err(|e| file_err(tmp, e))?;
    let dup = file.try_clone().map_err(|e| file_err(tmp, e))?;
    let mut wav =
        hound::WavWriter::new(BufWriter::new(file), wav_spec()).map_err(|e| file_err(tmp, e))?;
    wav.flush().map_err(|e| file_err(tmp, e))?;
    dup.sync_all().map_err(|e| file_err(tmp, e))?;
    sync_dir(dir).map_err(|e| file_err(dir, e))?;
    let value = encode(RECORDINGS_TREE, marker)?;
    inner
        .store
        .put(RECORDINGS_TREE, marker.id.as_bytes(), &value)?;
    inner.store.flush()?;
    Ok((wav, dup))
}

/// Repairs a WAV file left by an interrupted recording: the data chunk runs to the end
/// of the file (a torn last sample is cut off) and both RIFF sizes are rewritten, then
/// the file is synced. Returns the number of 16-bit samples, or `None` when the file is
/// not a RIFF/WAVE file with a data chunk.
pub fn repair_wav(path: &Path) -> std::io::Result<Option<u64>> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let len = f.metadata()?.len();
    let mut head = [0u8; 12];
    if len < 12 || f.read_exact(&mut head).is_err() {
        return Ok(None);
    }
    if &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Ok(None);
    }
    let mut pos = 12u64;
    let data_start = loop {
        if pos + 8 > len {
            return Ok(None);
        }
        let mut chunk = [0u8; 8];
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut chunk)?;
        let size = u64::from(u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]));
        if &chunk[0..4] == b"data" {
            break pos + 8;
        }
        pos += 8 + size + (size & 1);
    };
    let data_len = (len - data_start) & !1;
    let data_len = data_len.min(u64::from(u32::MAX) - data_start);
    if data_start + data_len != len {
        f.set_len(data_start + data_len)?;
    }
    let riff_size = (data_start - 8 + data_len) as u32;
    f.seek(SeekFrom::Start(4))?;
    f.write_all(&riff_size.to_le_bytes())?;
    f.seek(SeekFrom::Start(data_start - 4))?;
    f.write_all(&(data_len as u32).to_le_bytes())?;
    f.sync_all()?;
    Ok(Some(data_len / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repair_wav_fixes_sizes_and_cuts_a_torn_sample() {
        let path = std::env::temp_dir().join(format!("caruso-repair-{}.wav", std::process::id()));
        {
            let mut w = hound::WavWriter::create(&path, wav_spec()).unwrap();
            w.flush().unwrap();
            std::mem::forget(w); // header says 0 samples
        }
        let mut bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 44);
        for s in [1i16, -2, 300] {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        bytes.push(7);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(repair_wav(&path).unwrap(), Some(3));
        let mut r = hound::WavReader::open(&path).unwrap();
        let got: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(got, [1, -2, 300]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 50);

        std::fs::write(&path, b"not a wav file at all").unwrap();
        assert_eq!(repair_wav(&path).unwrap(), None);
        std::fs::write(&path, b"RIFF\0\0\0\0WAVEfmt ").unwrap();
        assert_eq!(repair_wav(&path).unwrap(), None);
        let _ = std::fs::remove_file(&path);
    }
}
