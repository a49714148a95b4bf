//! Voicemail: mailboxes, durable recordings, message storage, deposit and retrieval.
//!
//! The shared types live here; the pieces:
//! - storage and the recorder (WAV by `hound` under `<data_dir>/voicemail`, metadata in
//!   the [`crate::store::Store`] tree `vm_messages`), crash recovery of partial recordings;
//! - the sans-IO phone applications (deposit, retrieval) implementing
//!   [`crate::ivr::CallApp`] over a [`VoicemailAccess`];
//! - message-waiting indication (SIP `message-summary`) and the gRPC service, in `sip`
//!   and `api`.

pub mod config;
pub mod deposit;
pub mod recorder;
pub mod retrieval;
pub mod storage;

pub use config::{parse_voicemail, VoicemailConfig};
pub use recorder::Recording;
pub use storage::Voicemail;

use crate::ivr::GreetingKind;
use crate::media::wav::Prompt;
use std::path::PathBuf;
use std::time::Duration;

/// Prompts the deposit and retrieval applications play (besides `beep`, `goodbye`,
/// `invalid` and the digits); the server refuses to start with mailboxes but without them.
pub const PROMPTS: &[&str] = &[
    "vm-and",
    "vm-busy",
    "vm-enter-mailbox",
    "vm-enter-new-pin",
    "vm-enter-pin",
    "vm-greeting-saved",
    "vm-login-incorrect",
    "vm-mailbox-full",
    "vm-main-menu",
    "vm-message",
    "vm-message-deleted",
    "vm-message-menu",
    "vm-message-saved",
    "vm-new-messages",
    "vm-no-messages",
    "vm-no-more-messages",
    "vm-no-previous",
    "vm-not-available",
    "vm-not-saved",
    "vm-options-menu",
    "vm-person-at-extension",
    "vm-pin-changed",
    "vm-pin-invalid",
    "vm-pin-mismatch",
    "vm-record-greeting",
    "vm-reenter-pin",
    "vm-review",
    "vm-saved",
    "vm-saved-messages",
    "vm-too-short",
    "vm-you-have",
];

/// A mailbox as configured (`[[voicemail.mailboxes]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct MailboxConfig {
    /// Mailbox number (also the number a retrieval caller enters).
    pub number: String,
    /// Owner's name (logs, gRPC).
    pub owner: String,
    /// PIN from the config (a PIN changed by phone is stored and wins).
    pub pin: String,
    /// Recorded or configured greeting for "unavailable"; `None`: the spoken default
    /// ("the person at extension ... is not available").
    pub greeting_unavailable: Option<PathBuf>,
    /// Greeting for "busy"; `None`: the unavailable one.
    pub greeting_busy: Option<PathBuf>,
    /// Longest message (default 180 s).
    pub max_message: Duration,
    /// Most messages kept (new + saved); a full mailbox says so and takes no message.
    pub max_messages: usize,
    /// Shorter messages are discarded (default 1 s).
    pub min_message: Duration,
    /// Silence that ends a recording (default 10 s).
    pub silence: Duration,
    /// Mean absolute sample value below which a 20 ms frame counts as silence
    /// (default 200 of 32767).
    pub silence_threshold: u16,
    /// SIP URIs that get unsolicited `message-summary` NOTIFYs on every change.
    pub notify: Vec<String>,
}

impl MailboxConfig {
    /// A mailbox with the default limits and greetings (the config's defaults).
    pub fn new(number: &str, owner: &str, pin: &str) -> MailboxConfig {
        use config::*;
        MailboxConfig {
            number: number.to_string(),
            owner: owner.to_string(),
            pin: pin.to_string(),
            greeting_unavailable: None,
            greeting_busy: None,
            max_message: DEFAULT_MAX_MESSAGE,
            max_messages: DEFAULT_MAX_MESSAGES,
            min_message: DEFAULT_MIN_MESSAGE,
            silence: DEFAULT_SILENCE,
            silence_threshold: DEFAULT_SILENCE_THRESHOLD,
            notify: Vec::new(),
        }
    }
}

/// A mailbox folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Folder {
    /// Not yet listened to.
    New,
    /// Kept after listening.
    Saved,
}

impl Folder {
    /// Lower-case name (`new`, `saved`), as in gRPC and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Folder::New => "new",
            Folder::Saved => "saved",
        }
    }
}

/// What is known about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    /// Unique id (sortable by time).
    pub id: String,
    /// Mailbox number.
    pub mailbox: String,
    /// Caller number.
    pub caller_number: String,
    /// Caller display name, possibly empty.
    pub caller_name: String,
    /// When it was left, ms since the Unix epoch.
    pub received_ms: u64,
    /// Audio length in ms.
    pub duration_ms: u64,
    /// Folder.
    pub folder: Folder,
    /// Recovered after a crash (the end of the audio may be missing).
    pub recovered: bool,
}

/// Errors of voicemail storage, naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum VoicemailError {
    /// No such mailbox in the config.
    #[error("no mailbox {0}")]
    NoMailbox(String),
    /// No such message.
    #[error("no message {0}")]
    NoMessage(String),
    /// The mailbox holds `max_messages` already.
    #[error("mailbox {0} is full")]
    Full(String),
    /// A new PIN is empty or not all digits.
    #[error("mailbox {0}: a PIN is one or more digits")]
    InvalidPin(String),
    /// A file operation failed.
    #[error("voicemail file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What the OS or hound said.
        reason: String,
    },
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Synchronous access to mailboxes for the phone applications (reads and small writes
/// that never wait on a disk flush; committing a recording goes through the recorder).
pub trait VoicemailAccess: Send + Sync + std::fmt::Debug {
    /// The mailbox's configuration.
    fn mailbox(&self, number: &str) -> Option<MailboxConfig>;
    /// Whether `pin` opens `mailbox` (the stored PIN if changed by phone, else the config's).
    fn check_pin(&self, mailbox: &str, pin: &str) -> bool;
    /// Changes the PIN.
    fn set_pin(&self, mailbox: &str, pin: &str) -> Result<(), VoicemailError>;
    /// Messages of a folder, oldest first.
    fn messages(&self, mailbox: &str, folder: Folder) -> Result<Vec<MessageMeta>, VoicemailError>;
    /// Loads a message's audio (8 kHz mono).
    fn audio(&self, message_id: &str) -> Result<Prompt, VoicemailError>;
    /// Moves a message to a folder (publishes `Read` when it leaves `new`).
    fn set_folder(&self, message_id: &str, folder: Folder) -> Result<(), VoicemailError>;
    /// Deletes a message and its audio (publishes `Deleted`).
    fn delete(&self, message_id: &str) -> Result<(), VoicemailError>;
    /// The greeting to play, if one is recorded or configured (else the spoken default).
    fn greeting(&self, mailbox: &str, kind: GreetingKind) -> Option<Prompt>;
}

#[cfg(test)]
mod prompt_tests {
    /// Every `"vm-..."` literal of the phone applications is in [`super::PROMPTS`], so a
    /// missing prompt file is caught at start, not in a call.
    #[test]
    fn every_prompt_the_apps_play_is_listed() {
        for src in [include_str!("deposit.rs"), include_str!("retrieval.rs")] {
            for (i, _) in src.match_indices("\"vm-") {
                let name: String = src[i + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                assert!(
                    super::PROMPTS.contains(&name.as_str()),
                    "{name} not in PROMPTS"
                );
            }
        }
    }
}
