//! IVR: call applications that talk to a caller with prompts and DTMF.
//!
//! Everything here is sans-IO (no tokio, no sockets, no clock reads). A call actor runs
//! one [`CallApp`] at a time (an IVR flow, then perhaps a voicemail deposit) with the
//! same face as every core in caruso:
//!
//! ```text
//!   call actor                                   CallApp
//!   ----------                                   -------
//!   media up             --handle_input(Start)-->
//!   prompt list sent     --PlaybackDone-------->
//!   digit (deduplicated) --Digit('1')---------->
//!   20 ms caller audio   --Audio(&[i16])------->   (only while wants_audio())
//!   recording committed  --RecordingSaved(..)--->
//!   deadline reached     --handle_timeout------>
//!                        <--poll_action-------- Play / StopPlayback / StartRecording /
//!                                               StopRecording / SaveRecording /
//!                                               DiscardRecording / Transfer / Hangup
//!                        <--poll_timeout------- earliest deadline
//! ```
//!
//! A `Transfer` leaves the application: the actor starts the next one (a voicemail
//! deposit or retrieval) or hands the call to the ACD, an extension or a trunk.

pub mod engine;
pub mod flow;
pub mod hours;
pub mod pattern;
pub mod say;

use crate::media::wav::Prompt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Something the caller can hear.
#[derive(Debug, Clone)]
pub enum Playable {
    /// A prompt of the prompt library, by name (`<prompt dir>/<name>.wav`).
    Named(Arc<str>),
    /// Audio held in memory (a recorded greeting or message), 8 kHz mono.
    Audio(Prompt),
    /// Silence of this length.
    Silence(Duration),
}

impl Playable {
    /// A library prompt by name.
    pub fn named(name: &str) -> Playable {
        Playable::Named(Arc::from(name))
    }
}

/// Which greeting a deposit plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GreetingKind {
    /// The owner cannot take the call (default).
    Unavailable,
    /// The owner is on another call.
    Busy,
}

/// Call variables (`collect` nodes, `set` nodes, hooks), by name.
pub type Variables = BTreeMap<String, String>;

/// Where an application hands the call over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An ACD queue, by name.
    Queue(String),
    /// Leave a message in a mailbox.
    Mailbox {
        /// Mailbox number.
        mailbox: String,
        /// Which greeting to play.
        greeting: GreetingKind,
    },
    /// Voicemail retrieval by phone; `mailbox` when known (else the caller is asked).
    VoicemailRetrieval {
        /// Mailbox number, if the flow knows it.
        mailbox: Option<String>,
    },
    /// A registered user or extension.
    Extension(String),
    /// An external number through a configured trunk.
    External {
        /// Trunk name.
        trunk: String,
        /// Number to dial.
        number: String,
    },
}

/// What a recording is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordingKind {
    /// A message left in a mailbox.
    Message {
        /// Mailbox number.
        mailbox: String,
        /// Caller number (From user part).
        caller_number: String,
        /// Caller display name, possibly empty.
        caller_name: String,
    },
    /// A new greeting recorded by the mailbox owner.
    Greeting {
        /// Mailbox number.
        mailbox: String,
        /// Which greeting it replaces.
        kind: GreetingKind,
    },
}

/// A request to record the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSpec {
    /// What it is for.
    pub kind: RecordingKind,
    /// The application stops it by this length at the latest.
    pub max_len: Duration,
}

/// The outcome of [`Action::SaveRecording`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveOutcome {
    /// Stored durably (audio synced and renamed, metadata flushed); the message id.
    Saved(String),
    /// Not stored, with the reason (logged by the actor too).
    Failed(String),
}

/// An input from the call to its application.
#[derive(Debug)]
pub enum AppInput<'a> {
    /// Media is up: the application starts (plays its first prompt...).
    Start,
    /// Everything queued by the last `Play` has been sent (not sent after `StopPlayback`
    /// or when a digit interrupted an interruptible list).
    PlaybackDone,
    /// A DTMF digit (`0-9`, `*`, `#`, `A-D`), already de-duplicated across RFC 4733,
    /// SIP INFO and in-band detection.
    Digit(char),
    /// 20 ms (160 samples at 8 kHz) of decoded caller audio; only while
    /// [`CallApp::wants_audio`] is true. Gaps in the caller's stream arrive as silence.
    Audio(&'a [i16]),
    /// The answer to [`Action::SaveRecording`].
    RecordingSaved(SaveOutcome),
}

/// An output from an application to its call.
#[derive(Debug, Clone)]
pub enum Action {
    /// Replace whatever plays by this list. When `interruptible`, a digit stops playback
    /// at once (the actor stops it; the digit is still delivered).
    Play {
        /// In order.
        items: Vec<Playable>,
        /// A digit stops the list.
        interruptible: bool,
    },
    /// Stop playback now (no `PlaybackDone` follows).
    StopPlayback,
    /// Start writing the caller's audio to a new durable recording (audio frames keep
    /// coming to the application too, for silence detection and review).
    StartRecording(RecordingSpec),
    /// Stop writing audio; the recording stays pending (saved or discarded next).
    StopRecording,
    /// Commit the pending recording; answered by [`AppInput::RecordingSaved`].
    SaveRecording,
    /// Throw the pending recording away.
    DiscardRecording,
    /// Leave this application for `Target`, with the call's variables.
    Transfer(Target, Variables),
    /// End the call (BYE).
    Hangup,
}

/// The face of a call application: an IVR flow run, a voicemail deposit or retrieval.
pub trait CallApp: Send + std::fmt::Debug {
    /// Feeds an input.
    fn handle_input(&mut self, now: Instant, input: AppInput<'_>);
    /// Called at (or after) the instant [`CallApp::poll_timeout`] returned.
    fn handle_timeout(&mut self, now: Instant);
    /// The next action, if any.
    fn poll_action(&mut self) -> Option<Action>;
    /// The earliest deadline, if any.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Whether the call should deliver [`AppInput::Audio`] frames now.
    fn wants_audio(&self) -> bool {
        false
    }
}
