//! Leaving a message: greeting, beep, recording, review, save (a sans-IO [`CallApp`]).
//!
//! Contract (inputs and outputs as in [`crate::ivr`]):
//!
//! 1. `Start`: an unknown mailbox is logged and the call hung up; a full mailbox
//!    (`new + saved >= max_messages`) hears `vm-mailbox-full`, `goodbye`, then `Hangup`.
//!    Otherwise the greeting plays (interruptible): the recorded or configured one from
//!    [`VoicemailAccess::greeting`] (a missing busy greeting falls back to the unavailable
//!    one), else the spoken default `vm-person-at-extension` + the mailbox's digits +
//!    `vm-not-available` (`vm-busy` for the busy greeting). Any digit skips the greeting.
//! 2. `beep`, then on its `PlaybackDone` `StartRecording(Message, max_len = max_message)`;
//!    [`CallApp::wants_audio`] is true while recording. The recording stops
//!    (`StopRecording`) on `#`, after `silence` of continuous silent 20 ms frames (mean
//!    |sample| below `silence_threshold`; counted from the start of the recording, so a
//!    caller who never speaks is stopped too), or at `max_message` (by the deadline or by
//!    the number of samples, whichever comes first).
//! 3. The *spoken length* is the recorded length minus the trailing silent run. Below
//!    `min_message`: `DiscardRecording`, `vm-too-short`, `goodbye`, `Hangup` (no second
//!    chance: the caller just pressed `#` or went quiet). The trailing silence stays in the
//!    stored file (the recorder has written it by then; it is not trimmed).
//! 4. Review menu `vm-review` (interruptible): `1` send, `2` listen (the app's own copy of
//!    the samples as [`Playable::Audio`], then the menu again), `3` re-record
//!    (`DiscardRecording`, `beep`, `StartRecording`); any other digit: `invalid` + menu;
//!    no digit within [`REVIEW_TIMEOUT`] after the menu ends: send.
//! 5. Send: `SaveRecording`; only after `RecordingSaved(Saved)`: `vm-saved`, `goodbye`,
//!    `Hangup`; after `RecordingSaved(Failed)`: `vm-not-saved`, `goodbye`, `Hangup`.
//!
//! A caller hanging up is reported by the actor through [`Deposit::on_caller_hangup`],
//! which says whether the pending recording is to be saved.
//!
//! ```
//! use caruso::ivr::{Action, AppInput, CallApp, GreetingKind};
//! # use caruso::voicemail::{deposit::Deposit, *};
//! # use caruso::media::wav::Prompt;
//! # use std::sync::Arc;
//! # use std::time::{Duration, Instant};
//! # #[derive(Debug)] struct One;
//! # impl VoicemailAccess for One {
//! #   fn mailbox(&self, n: &str) -> Option<MailboxConfig> { Some(MailboxConfig {
//! #     number: n.into(), owner: "A".into(), pin: "1234".into(), greeting_unavailable: None,
//! #     greeting_busy: None, max_message: Duration::from_secs(180), max_messages: 100,
//! #     min_message: Duration::from_secs(1), silence: Duration::from_secs(10),
//! #     silence_threshold: 200, notify: vec![] }) }
//! #   fn check_pin(&self, _: &str, _: &str) -> bool { false }
//! #   fn set_pin(&self, _: &str, _: &str) -> Result<(), VoicemailError> { Ok(()) }
//! #   fn messages(&self, _: &str, _: Folder) -> Result<Vec<MessageMeta>, VoicemailError> { Ok(vec![]) }
//! #   fn audio(&self, id: &str) -> Result<Prompt, VoicemailError> { Err(VoicemailError::NoMessage(id.into())) }
//! #   fn set_folder(&self, _: &str, _: Folder) -> Result<(), VoicemailError> { Ok(()) }
//! #   fn delete(&self, _: &str) -> Result<(), VoicemailError> { Ok(()) }
//! #   fn greeting(&self, _: &str, _: GreetingKind) -> Option<Prompt> { None }
//! # }
//! let now = Instant::now();
//! let mut app = Deposit::new(Arc::new(One), "200", GreetingKind::Unavailable, "300", "Bob", now);
//! app.handle_input(now, AppInput::Start);
//! assert!(matches!(app.poll_action(), Some(Action::Play { .. }))); // the spoken greeting
//! app.handle_input(now, AppInput::PlaybackDone);
//! assert!(matches!(app.poll_action(), Some(Action::Play { .. }))); // beep
//! app.handle_input(now, AppInput::PlaybackDone);
//! assert!(matches!(app.poll_action(), Some(Action::StartRecording(_))));
//! assert!(app.wants_audio());
//! ```

use super::{Folder, MailboxConfig, VoicemailAccess};
use crate::call::redact;
use crate::ivr::{
    say, Action, AppInput, CallApp, GreetingKind, Playable, RecordingKind, RecordingSpec,
    SaveOutcome,
};
use crate::media::wav::{Prompt, PROMPT_RATE};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// How long the review menu waits for a digit after its prompt ends before it sends.
pub const REVIEW_TIMEOUT: Duration = Duration::from_secs(5);

/// Safety net: a closing prompt whose `PlaybackDone` never comes is cut after this long.
pub const CLOSING_GRACE: Duration = Duration::from_secs(30);

/// Samples in `d` at the prompt rate.
pub(super) fn samples_in(d: Duration) -> usize {
    usize::try_from(d.as_millis().saturating_mul(u128::from(PROMPT_RATE)) / 1000)
        .unwrap_or(usize::MAX)
}

/// Duration of `n` samples at the prompt rate.
pub(super) fn duration_of(n: usize) -> Duration {
    Duration::from_micros((n as u64).saturating_mul(1_000_000) / u64::from(PROMPT_RATE))
}

/// Why a recording stopped on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AutoStop {
    /// `silence` of continuous silent frames.
    Silence,
    /// The maximum length.
    MaxLength,
}

/// The app's side of a recording: a copy of the samples, silence detection, length limit.
#[derive(Debug)]
pub(super) struct Recorder {
    samples: Vec<i16>,
    silent_run: usize,
    silence_samples: usize,
    threshold: u16,
    max_samples: usize,
    deadline: Instant,
}

impl Recorder {
    /// A recording starting at `now` with the mailbox's silence settings.
    pub(super) fn new(cfg: &MailboxConfig, max_len: Duration, now: Instant) -> Recorder {
        Recorder {
            samples: Vec::new(),
            silent_run: 0,
            silence_samples: samples_in(cfg.silence).max(1),
            threshold: cfg.silence_threshold,
            max_samples: samples_in(max_len),
            deadline: now + max_len,
        }
    }

    /// Adds a frame; says when the recording must stop.
    pub(super) fn push(&mut self, frame: &[i16]) -> Option<AutoStop> {
        let room = self.max_samples.saturating_sub(self.samples.len());
        let frame = &frame[..frame.len().min(room)];
        if !frame.is_empty() {
            self.samples.extend_from_slice(frame);
            let sum: u64 = frame.iter().map(|s| u64::from(s.unsigned_abs())).sum();
            let mean = sum / frame.len() as u64;
            if mean < u64::from(self.threshold) {
                self.silent_run += frame.len();
            } else {
                self.silent_run = 0;
            }
        }
        if self.samples.len() >= self.max_samples {
            Some(AutoStop::MaxLength)
        } else if self.silent_run >= self.silence_samples {
            Some(AutoStop::Silence)
        } else {
            None
        }
    }

    /// The recorded length minus the trailing silent run.
    pub(super) fn spoken(&self) -> Duration {
        duration_of(self.samples.len() - self.silent_run.min(self.samples.len()))
    }

    /// When the maximum length is reached by the clock.
    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The samples recorded so far.
    pub(super) fn into_samples(self) -> Vec<i16> {
        self.samples
    }
}

/// What `Start` does, decided in `new`.
#[derive(Debug)]
enum Plan {
    Greet,
    Full,
    Unknown,
}

#[derive(Debug)]
enum State {
    /// Before `Start`.
    Idle(Plan),
    /// The greeting plays (interruptible).
    Greeting,
    /// The beep plays; recording starts when it is done.
    Beep,
    /// Recording.
    Recording(Recorder),
    /// The review menu.
    Review {
        audio: Prompt,
        deadline: Option<Instant>,
    },
    /// `SaveRecording` sent; waiting for `RecordingSaved`.
    Saving,
    /// Final prompts play; then `Hangup`.
    Closing { deadline: Instant },
    /// Hung up (or left).
    Done,
}

/// Leaving a message in a mailbox (see the module doc).
#[derive(Debug)]
pub struct Deposit {
    access: Arc<dyn VoicemailAccess>,
    mailbox: String,
    greeting: GreetingKind,
    caller_number: String,
    caller_name: String,
    /// The mailbox's config (`None`: unknown mailbox).
    cfg: Option<MailboxConfig>,
    state: State,
    actions: VecDeque<Action>,
}

impl Deposit {
    /// A deposit into `mailbox`, playing `greeting`, for the given caller.
    pub fn new(
        access: Arc<dyn VoicemailAccess>,
        mailbox: &str,
        greeting: GreetingKind,
        caller_number: &str,
        caller_name: &str,
        _now: Instant,
    ) -> Deposit {
        let cfg = access.mailbox(mailbox);
        let plan = match &cfg {
            None => Plan::Unknown,
            Some(cfg) => {
                let count = |folder| match access.messages(mailbox, folder) {
                    Ok(list) => list.len(),
                    Err(e) => {
                        warn!(mailbox = %redact(mailbox), error = %e, "voicemail: cannot count messages");
                        0
                    }
                };
                if count(Folder::New) + count(Folder::Saved) >= cfg.max_messages {
                    Plan::Full
                } else {
                    Plan::Greet
                }
            }
        };
        Deposit {
            access,
            mailbox: mailbox.to_string(),
            greeting,
            caller_number: caller_number.to_string(),
            caller_name: caller_name.to_string(),
            cfg,
            state: State::Idle(plan),
            actions: VecDeque::new(),
        }
    }

    /// The caller hung up: whether the pending recording is to be saved (the actor saves
    /// it). True while recording with a spoken length of at least `min_message`, and in
    /// the review menu; false otherwise: discard a pending recording, except that a save
    /// already requested by `SaveRecording` completes as it is (do not save it twice).
    /// The application is finished afterwards and emits nothing more.
    pub fn on_caller_hangup(&mut self) -> bool {
        let save = match &self.state {
            State::Recording(rec) => rec.spoken() >= self.min_message(),
            State::Review { .. } => true,
            _ => false,
        };
        self.state = State::Done;
        self.actions.clear();
        save
    }

    fn play(&mut self, items: Vec<Playable>, interruptible: bool) {
        self.actions.push_back(Action::Play {
            items,
            interruptible,
        });
    }

    fn close(&mut self, now: Instant, names: &[&str]) {
        let items = names.iter().map(|n| Playable::named(n)).collect();
        self.play(items, false);
        self.state = State::Closing {
            deadline: now + CLOSING_GRACE,
        };
    }

    fn hangup(&mut self) {
        self.actions.push_back(Action::Hangup);
        self.state = State::Done;
    }

    fn start(&mut self, now: Instant, plan: Plan) {
        match plan {
            Plan::Unknown => {
                warn!(mailbox = %redact(&self.mailbox), "voicemail deposit: no such mailbox");
                self.hangup();
            }
            Plan::Full => {
                info!(mailbox = %redact(&self.mailbox), "voicemail deposit: mailbox full");
                self.close(now, &["vm-mailbox-full", "goodbye"]);
            }
            Plan::Greet => {
                let recorded = self
                    .access
                    .greeting(&self.mailbox, self.greeting)
                    .or_else(|| {
                        (self.greeting == GreetingKind::Busy)
                            .then(|| {
                                self.access
                                    .greeting(&self.mailbox, GreetingKind::Unavailable)
                            })
                            .flatten()
                    });
                let items = match recorded {
                    Some(audio) => vec![Playable::Audio(audio)],
                    None => {
                        let mut items = vec![Playable::named("vm-person-at-extension")];
                        items.extend(say::digits(&self.mailbox));
                        items.push(Playable::named(match self.greeting {
                            GreetingKind::Unavailable => "vm-not-available",
                            GreetingKind::Busy => "vm-busy",
                        }));
                        items
                    }
                };
                self.play(items, true);
                self.state = State::Greeting;
            }
        }
    }

    fn min_message(&self) -> Duration {
        self.cfg.as_ref().map(|c| c.min_message).unwrap_or_default()
    }

    fn beep(&mut self) {
        self.play(vec![Playable::named("beep")], false);
        self.state = State::Beep;
    }

    fn start_recording(&mut self, now: Instant) {
        let Some(cfg) = &self.cfg else {
            return self.hangup();
        };
        self.actions
            .push_back(Action::StartRecording(RecordingSpec {
                kind: RecordingKind::Message {
                    mailbox: self.mailbox.clone(),
                    caller_number: self.caller_number.clone(),
                    caller_name: self.caller_name.clone(),
                },
                max_len: cfg.max_message,
            }));
        let rec = Recorder::new(cfg, cfg.max_message, now);
        self.state = State::Recording(rec);
    }

    fn stop_recording(&mut self, now: Instant, why: &str) {
        let State::Recording(rec) = std::mem::replace(&mut self.state, State::Done) else {
            return;
        };
        self.actions.push_back(Action::StopRecording);
        let spoken = rec.spoken();
        debug!(mailbox = %redact(&self.mailbox), why, spoken_ms = spoken.as_millis() as u64, "voicemail deposit: recording stopped");
        if spoken < self.min_message() {
            info!(mailbox = %redact(&self.mailbox), spoken_ms = spoken.as_millis() as u64, "voicemail deposit: message too short, discarded");
            self.actions.push_back(Action::DiscardRecording);
            self.close(now, &["vm-too-short", "goodbye"]);
            return;
        }
        let audio = Prompt::from_samples(rec.into_samples());
        self.play(vec![Playable::named("vm-review")], true);
        self.state = State::Review {
            audio,
            deadline: None,
        };
    }

    fn send(&mut self) {
        self.actions.push_back(Action::SaveRecording);
        self.state = State::Saving;
    }

    fn review_digit(&mut self, digit: char) {
        let State::Review { audio, deadline } = &mut self.state else {
            return;
        };
        *deadline = None;
        match digit {
            '1' => self.send(),
            '2' => {
                let items = vec![Playable::Audio(audio.clone()), Playable::named("vm-review")];
                self.play(items, true);
            }
            '3' => {
                self.actions.push_back(Action::DiscardRecording);
                self.beep();
            }
            _ => self.play(
                vec![Playable::named("invalid"), Playable::named("vm-review")],
                true,
            ),
        }
    }
}

impl CallApp for Deposit {
    fn handle_input(&mut self, now: Instant, input: AppInput<'_>) {
        match input {
            AppInput::Start => match std::mem::replace(&mut self.state, State::Done) {
                State::Idle(plan) => self.start(now, plan),
                other => self.state = other,
            },
            AppInput::PlaybackDone => match std::mem::replace(&mut self.state, State::Done) {
                State::Greeting => self.beep(),
                State::Beep => self.start_recording(now),
                State::Review { audio, .. } => {
                    self.state = State::Review {
                        audio,
                        deadline: Some(now + REVIEW_TIMEOUT),
                    };
                }
                State::Closing { .. } => self.hangup(),
                other => self.state = other,
            },
            AppInput::Digit(d) => match &self.state {
                // The greeting is interruptible: the actor has stopped it.
                State::Greeting => self.beep(),
                State::Recording(_) if d == '#' => self.stop_recording(now, "#"),
                State::Review { .. } => self.review_digit(d),
                _ => {}
            },
            AppInput::Audio(frame) => {
                if let State::Recording(rec) = &mut self.state {
                    match rec.push(frame) {
                        Some(AutoStop::Silence) => self.stop_recording(now, "silence"),
                        Some(AutoStop::MaxLength) => self.stop_recording(now, "max length"),
                        None => {}
                    }
                }
            }
            AppInput::RecordingSaved(outcome) => {
                if !matches!(self.state, State::Saving) {
                    debug!(?outcome, "voicemail deposit: unexpected RecordingSaved");
                    return;
                }
                match outcome {
                    SaveOutcome::Saved(id) => {
                        info!(mailbox = %redact(&self.mailbox), message = %id, "voicemail deposit: message saved");
                        self.close(now, &["vm-saved", "goodbye"]);
                    }
                    SaveOutcome::Failed(reason) => {
                        warn!(mailbox = %redact(&self.mailbox), %reason, "voicemail deposit: message not saved");
                        self.close(now, &["vm-not-saved", "goodbye"]);
                    }
                }
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match &self.state {
            State::Recording(rec) if now >= rec.deadline() => {
                self.stop_recording(now, "max length")
            }
            State::Review {
                deadline: Some(d), ..
            } if now >= *d => self.send(),
            State::Closing { deadline } if now >= *deadline => self.hangup(),
            _ => {}
        }
    }

    fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Recording(rec) => Some(rec.deadline()),
            State::Review { deadline, .. } => *deadline,
            State::Closing { deadline } => Some(*deadline),
            _ => None,
        }
    }

    fn wants_audio(&self) -> bool {
        matches!(self.state, State::Recording(_))
    }
}

/// An in-memory [`VoicemailAccess`] for the deposit and retrieval tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::super::{Folder, MailboxConfig, MessageMeta, VoicemailAccess, VoicemailError};
    use crate::ivr::{Action, CallApp, GreetingKind, Playable};
    use crate::media::wav::Prompt;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// A mailbox config with the defaults of the issue.
    pub(crate) fn mailbox(number: &str, pin: &str) -> MailboxConfig {
        MailboxConfig::new(number, "Alice Example", pin)
    }

    #[derive(Debug, Default)]
    pub(crate) struct Inner {
        pub mailboxes: HashMap<String, MailboxConfig>,
        pub pins: HashMap<String, String>,
        pub messages: Vec<MessageMeta>,
        pub audio: HashMap<String, Prompt>,
        pub greetings: HashMap<(String, GreetingKind), Prompt>,
        pub deleted: Vec<String>,
    }

    /// The fake storage; every field is inspectable by the tests.
    #[derive(Debug, Default)]
    pub(crate) struct FakeAccess(pub Mutex<Inner>);

    impl FakeAccess {
        /// One mailbox.
        pub(crate) fn with(cfg: MailboxConfig) -> FakeAccess {
            let fake = FakeAccess::default();
            fake.0
                .lock()
                .unwrap()
                .mailboxes
                .insert(cfg.number.clone(), cfg);
            fake
        }

        /// Adds a message whose audio is `len` samples of value `marker`.
        pub(crate) fn add(
            &self,
            id: &str,
            mailbox: &str,
            caller: &str,
            folder: Folder,
            marker: i16,
        ) {
            let mut g = self.0.lock().unwrap();
            let received_ms = g.messages.len() as u64;
            g.messages.push(MessageMeta {
                id: id.into(),
                mailbox: mailbox.into(),
                caller_number: caller.into(),
                caller_name: String::new(),
                received_ms,
                duration_ms: 100,
                folder,
                recovered: false,
            });
            g.audio
                .insert(id.into(), Prompt::from_samples(vec![marker; 800]));
        }

        /// The folder of a message, `None` once deleted.
        pub(crate) fn folder_of(&self, id: &str) -> Option<Folder> {
            let g = self.0.lock().unwrap();
            g.messages.iter().find(|m| m.id == id).map(|m| m.folder)
        }
    }

    impl VoicemailAccess for FakeAccess {
        fn mailbox(&self, number: &str) -> Option<MailboxConfig> {
            self.0.lock().unwrap().mailboxes.get(number).cloned()
        }
        fn check_pin(&self, mailbox: &str, pin: &str) -> bool {
            let g = self.0.lock().unwrap();
            let Some(cfg) = g.mailboxes.get(mailbox) else {
                return false;
            };
            g.pins.get(mailbox).unwrap_or(&cfg.pin) == pin
        }
        fn set_pin(&self, mailbox: &str, pin: &str) -> Result<(), VoicemailError> {
            let mut g = self.0.lock().unwrap();
            if !g.mailboxes.contains_key(mailbox) {
                return Err(VoicemailError::NoMailbox(mailbox.into()));
            }
            g.pins.insert(mailbox.into(), pin.into());
            Ok(())
        }
        fn messages(
            &self,
            mailbox: &str,
            folder: Folder,
        ) -> Result<Vec<MessageMeta>, VoicemailError> {
            let g = self.0.lock().unwrap();
            Ok(g.messages
                .iter()
                .filter(|m| m.mailbox == mailbox && m.folder == folder)
                .cloned()
                .collect())
        }
        fn audio(&self, message_id: &str) -> Result<Prompt, VoicemailError> {
            let g = self.0.lock().unwrap();
            g.audio
                .get(message_id)
                .cloned()
                .ok_or_else(|| VoicemailError::NoMessage(message_id.into()))
        }
        fn set_folder(&self, message_id: &str, folder: Folder) -> Result<(), VoicemailError> {
            let mut g = self.0.lock().unwrap();
            let m = g
                .messages
                .iter_mut()
                .find(|m| m.id == message_id)
                .ok_or_else(|| VoicemailError::NoMessage(message_id.into()))?;
            m.folder = folder;
            Ok(())
        }
        fn delete(&self, message_id: &str) -> Result<(), VoicemailError> {
            let mut g = self.0.lock().unwrap();
            let before = g.messages.len();
            g.messages.retain(|m| m.id != message_id);
            if g.messages.len() == before {
                return Err(VoicemailError::NoMessage(message_id.into()));
            }
            g.audio.remove(message_id);
            g.deleted.push(message_id.into());
            Ok(())
        }
        fn greeting(&self, mailbox: &str, kind: GreetingKind) -> Option<Prompt> {
            let g = self.0.lock().unwrap();
            g.greetings.get(&(mailbox.to_string(), kind)).cloned()
        }
    }

    /// All pending actions.
    pub(crate) fn drain(app: &mut dyn CallApp) -> Vec<Action> {
        std::iter::from_fn(|| app.poll_action()).collect()
    }

    /// A readable form of a playlist: prompt names, `audio:<first sample>:<len>`,
    /// `silence`.
    pub(crate) fn names(items: &[Playable]) -> Vec<String> {
        items
            .iter()
            .map(|p| match p {
                Playable::Named(n) => n.to_string(),
                Playable::Audio(a) => {
                    format!(
                        "audio:{}:{}",
                        a.samples().first().copied().unwrap_or(0),
                        a.len()
                    )
                }
                Playable::Silence(_) => "silence".into(),
            })
            .collect()
    }

    /// The one `Play` among `actions` as names, panicking otherwise.
    pub(crate) fn played(actions: &[Action]) -> Vec<String> {
        let plays: Vec<_> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Play { items, .. } => Some(names(items)),
                _ => None,
            })
            .collect();
        assert_eq!(plays.len(), 1, "expected exactly one Play in {actions:?}");
        plays.into_iter().next().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    const FRAME: usize = 160;

    fn speech() -> Vec<i16> {
        (0..FRAME)
            .map(|i| if i % 2 == 0 { 3000 } else { -3000 })
            .collect()
    }

    fn quiet() -> Vec<i16> {
        (0..FRAME)
            .map(|i| if i % 2 == 0 { 50 } else { -50 })
            .collect()
    }

    struct Run {
        app: Deposit,
        now: Instant,
        fake: Arc<FakeAccess>,
    }

    impl Run {
        fn new(fake: FakeAccess, greeting: GreetingKind) -> Run {
            let fake = Arc::new(fake);
            let now = Instant::now();
            let app = Deposit::new(fake.clone(), "200", greeting, "300", "Bob", now);
            Run { app, now, fake }
        }
        fn input(&mut self, input: AppInput<'_>) -> Vec<Action> {
            self.app.handle_input(self.now, input);
            drain(&mut self.app)
        }
        fn advance(&mut self, d: Duration) -> Vec<Action> {
            self.now += d;
            if self.app.poll_timeout().is_some_and(|t| t <= self.now) {
                self.app.handle_timeout(self.now);
            }
            drain(&mut self.app)
        }
        /// Feeds frames (20 ms each, advancing the clock) until the app stops wanting
        /// audio or `n` frames were fed; returns the actions and the frames fed.
        fn feed(&mut self, frame: &[i16], n: usize) -> (Vec<Action>, usize) {
            let mut out = Vec::new();
            for i in 0..n {
                if !self.app.wants_audio() {
                    return (out, i);
                }
                self.now += Duration::from_millis(20);
                out.extend(self.input(AppInput::Audio(frame)));
            }
            (out, n)
        }
        /// Start, greeting done, beep done: recording.
        fn until_recording(&mut self) {
            self.input(AppInput::Start);
            let a = self.input(AppInput::PlaybackDone);
            assert_eq!(played(&a), ["beep"]);
            let a = self.input(AppInput::PlaybackDone);
            assert!(matches!(a.as_slice(), [Action::StartRecording(_)]), "{a:?}");
            assert!(self.app.wants_audio());
        }
    }

    #[test]
    fn happy_path_saves_and_says_saved_only_after_the_store_answers() {
        let mut fake = FakeAccess::with(mailbox("200", "1234"));
        let greeting = Prompt::from_samples(vec![7i16; 4000]);
        fake.0
            .get_mut()
            .unwrap()
            .greetings
            .insert(("200".into(), GreetingKind::Unavailable), greeting);
        let mut r = Run::new(fake, GreetingKind::Unavailable);
        assert!(!r.app.wants_audio());
        let a = r.input(AppInput::Start);
        assert_eq!(played(&a), ["audio:7:4000"]);
        assert!(matches!(
            a[0],
            Action::Play {
                interruptible: true,
                ..
            }
        ));
        let a = r.input(AppInput::PlaybackDone);
        assert_eq!(played(&a), ["beep"]);
        assert!(!r.app.wants_audio(), "nothing recorded during the beep");
        let a = r.input(AppInput::PlaybackDone);
        match a.as_slice() {
            [Action::StartRecording(spec)] => {
                assert_eq!(spec.max_len, Duration::from_secs(180));
                assert_eq!(
                    spec.kind,
                    RecordingKind::Message {
                        mailbox: "200".into(),
                        caller_number: "300".into(),
                        caller_name: "Bob".into(),
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.app.poll_timeout(), Some(r.now + Duration::from_secs(180)));
        let (a, fed) = r.feed(&speech(), 150); // 3 s
        assert!(a.is_empty() && fed == 150, "{a:?}");
        let a = r.input(AppInput::Digit('#'));
        assert!(matches!(a[0], Action::StopRecording), "{a:?}");
        assert_eq!(played(&a), ["vm-review"]);
        assert!(!r.app.wants_audio());
        assert_eq!(
            r.app.poll_timeout(),
            None,
            "no timeout while the menu plays"
        );
        assert!(r.input(AppInput::PlaybackDone).is_empty());
        assert_eq!(r.app.poll_timeout(), Some(r.now + REVIEW_TIMEOUT));
        assert!(r
            .advance(REVIEW_TIMEOUT - Duration::from_millis(1))
            .is_empty());
        let a = r.advance(Duration::from_millis(1));
        assert!(matches!(a.as_slice(), [Action::SaveRecording]), "{a:?}");
        // Nothing is said before the store answers, whatever else happens.
        assert!(r.input(AppInput::Digit('1')).is_empty());
        assert!(r.advance(Duration::from_secs(60)).is_empty());
        let a = r.input(AppInput::RecordingSaved(SaveOutcome::Saved("m1".into())));
        assert_eq!(played(&a), ["vm-saved", "goodbye"]);
        assert!(!a.iter().any(|a| matches!(a, Action::Hangup)));
        let a = r.input(AppInput::PlaybackDone);
        assert!(matches!(a.as_slice(), [Action::Hangup]), "{a:?}");
        assert!(!r.app.on_caller_hangup(), "saved already: nothing to save");
        let _ = &r.fake;
    }

    #[test]
    fn failed_save_says_not_saved() {
        let mut r = Run::new(
            FakeAccess::with(mailbox("200", "1")),
            GreetingKind::Unavailable,
        );
        r.until_recording();
        r.feed(&speech(), 100);
        r.input(AppInput::Digit('#'));
        let a = r.input(AppInput::Digit('1'));
        assert!(matches!(a.as_slice(), [Action::SaveRecording]), "{a:?}");
        let a = r.input(AppInput::RecordingSaved(SaveOutcome::Failed("disk".into())));
        assert_eq!(played(&a), ["vm-not-saved", "goodbye"]);
        let a = r.input(AppInput::PlaybackDone);
        assert!(matches!(a.as_slice(), [Action::Hangup]));
    }

    #[test]
    fn default_greeting_says_the_mailbox_digits() {
        let mut r = Run::new(
            FakeAccess::with(mailbox("200", "1")),
            GreetingKind::Unavailable,
        );
        let a = r.input(AppInput::Start);
        assert_eq!(
            played(&a),
            ["vm-person-at-extension", "2", "0", "0", "vm-not-available"]
        );
        // A digit skips the greeting (the actor stopped it: no PlaybackDone).
        let a = r.input(AppInput::Digit('5'));
        assert_eq!(played(&a), ["beep"]);
    }

    #[test]
    fn busy_greeting_falls_back_to_the_unavailable_recording_then_to_spoken_busy() {
        let mut fake = FakeAccess::with(mailbox("200", "1"));
        fake.0.get_mut().unwrap().greetings.insert(
            ("200".into(), GreetingKind::Unavailable),
            Prompt::from_samples(vec![9i16; 10]),
        );
        let mut r = Run::new(fake, GreetingKind::Busy);
        assert_eq!(played(&r.input(AppInput::Start)), ["audio:9:10"]);
        let mut r = Run::new(FakeAccess::with(mailbox("200", "1")), GreetingKind::Busy);
        assert_eq!(
            played(&r.input(AppInput::Start)),
            ["vm-person-at-extension", "2", "0", "0", "vm-busy"]
        );
    }

    #[test]
    fn silence_stops_the_recording_and_trailing_silence_does_not_count_as_spoken() {
        let mut cfg = mailbox("200", "1");
        cfg.silence = Duration::from_secs(2);
        cfg.min_message = Duration::from_millis(1500);
        let mut r = Run::new(FakeAccess::with(cfg), GreetingKind::Unavailable);
        r.until_recording();
        let (a, fed) = r.feed(&speech(), 100); // 2 s of speech
        assert!(a.is_empty() && fed == 100);
        // Quiet frames between words do not stop it when shorter than `silence`.
        let (a, _) = r.feed(&quiet(), 99);
        assert!(a.is_empty(), "{a:?}");
        assert!(r.app.wants_audio());
        r.feed(&speech(), 1);
        let (a, fed) = r.feed(&quiet(), 1000);
        assert_eq!(fed, 100, "stopped after exactly 2 s of silence");
        assert!(matches!(a[0], Action::StopRecording), "{a:?}");
        assert_eq!(played(&a), ["vm-review"]);
        // The review copy holds everything recorded (trailing silence included).
        let a = r.input(AppInput::Digit('2'));
        assert_eq!(played(&a), ["audio:3000:48000", "vm-review"]);
    }

    #[test]
    fn a_caller_who_never_speaks_is_stopped_by_silence_and_discarded() {
        let mut cfg = mailbox("200", "1");
        cfg.silence = Duration::from_secs(3);
        let mut r = Run::new(FakeAccess::with(cfg), GreetingKind::Unavailable);
        r.until_recording();
        let (a, fed) = r.feed(&quiet(), 1000);
        assert_eq!(fed, 150);
        assert!(matches!(a[0], Action::StopRecording));
        assert!(matches!(a[1], Action::DiscardRecording), "{a:?}");
        assert_eq!(played(&a), ["vm-too-short", "goodbye"]);
        let a = r.input(AppInput::PlaybackDone);
        assert!(matches!(a.as_slice(), [Action::Hangup]));
    }

    #[test]
    fn max_length_by_samples_and_by_clock() {
        let mut cfg = mailbox("200", "1");
        cfg.max_message = Duration::from_secs(4);
        let mut r = Run::new(FakeAccess::with(cfg.clone()), GreetingKind::Unavailable);
        r.until_recording();
        let (a, fed) = r.feed(&speech(), 1000);
        assert_eq!(fed, 200, "4 s of 20 ms frames");
        assert!(matches!(a[0], Action::StopRecording));
        assert_eq!(played(&a), ["vm-review"]);
        let a = r.input(AppInput::Digit('2'));
        assert_eq!(played(&a), ["audio:3000:32000", "vm-review"]);

        // No audio arrives at all (the clock alone ends it): too short, discarded.
        let mut r = Run::new(FakeAccess::with(cfg), GreetingKind::Unavailable);
        r.until_recording();
        assert!(r.advance(Duration::from_millis(3999)).is_empty());
        let a = r.advance(Duration::from_millis(1));
        assert!(matches!(a[0], Action::StopRecording), "{a:?}");
        assert!(matches!(a[1], Action::DiscardRecording));
        assert_eq!(played(&a), ["vm-too-short", "goodbye"]);
    }

    #[test]
    fn rerecord_discards_beeps_and_records_again_then_sends_the_new_take() {
        let mut r = Run::new(
            FakeAccess::with(mailbox("200", "1")),
            GreetingKind::Unavailable,
        );
        r.until_recording();
        r.feed(&speech(), 100);
        r.input(AppInput::Digit('#'));
        let a = r.input(AppInput::Digit('3'));
        assert!(matches!(a[0], Action::DiscardRecording), "{a:?}");
        assert_eq!(played(&a), ["beep"]);
        assert!(!r.app.wants_audio());
        let a = r.input(AppInput::PlaybackDone);
        assert!(matches!(a.as_slice(), [Action::StartRecording(_)]));
        let loud: Vec<i16> = vec![5000; FRAME];
        r.feed(&loud, 60);
        r.input(AppInput::Digit('#'));
        let a = r.input(AppInput::Digit('2'));
        assert_eq!(
            played(&a),
            ["audio:5000:9600", "vm-review"],
            "only the new take"
        );
        let a = r.input(AppInput::Digit('4'));
        assert_eq!(played(&a), ["invalid", "vm-review"]);
        let a = r.input(AppInput::Digit('1'));
        assert!(matches!(a.as_slice(), [Action::SaveRecording]));
    }

    #[test]
    fn too_short_after_hash_is_discarded() {
        let mut r = Run::new(
            FakeAccess::with(mailbox("200", "1")),
            GreetingKind::Unavailable,
        );
        r.until_recording();
        r.feed(&speech(), 49); // 0.98 s < 1 s
        let a = r.input(AppInput::Digit('#'));
        assert!(matches!(a[0], Action::StopRecording));
        assert!(matches!(a[1], Action::DiscardRecording), "{a:?}");
        assert_eq!(played(&a), ["vm-too-short", "goodbye"]);
        assert!(!a.iter().any(|a| matches!(a, Action::SaveRecording)));
        // Exactly the minimum is enough.
        let mut r = Run::new(
            FakeAccess::with(mailbox("200", "1")),
            GreetingKind::Unavailable,
        );
        r.until_recording();
        r.feed(&speech(), 50);
        let a = r.input(AppInput::Digit('#'));
        assert_eq!(played(&a), ["vm-review"]);
    }

    #[test]
    fn full_mailbox_takes_no_message() {
        let mut cfg = mailbox("200", "1");
        cfg.max_messages = 2;
        let fake = FakeAccess::with(cfg);
        fake.add("a", "200", "1", Folder::New, 1);
        fake.add("b", "200", "1", Folder::Saved, 1);
        fake.add("c", "201", "1", Folder::New, 1); // another mailbox does not count
        let mut r = Run::new(fake, GreetingKind::Unavailable);
        let a = r.input(AppInput::Start);
        assert_eq!(played(&a), ["vm-mailbox-full", "goodbye"]);
        assert!(!a.iter().any(|a| matches!(a, Action::StartRecording(_))));
        let a = r.input(AppInput::PlaybackDone);
        assert!(matches!(a.as_slice(), [Action::Hangup]));
        // One message fewer: the greeting plays.
        let mut cfg = mailbox("200", "1");
        cfg.max_messages = 3;
        let fake = FakeAccess::with(cfg);
        fake.add("a", "200", "1", Folder::New, 1);
        fake.add("b", "200", "1", Folder::Saved, 1);
        let mut r = Run::new(fake, GreetingKind::Unavailable);
        assert_eq!(
            played(&r.input(AppInput::Start))[0],
            "vm-person-at-extension"
        );
    }

    #[test]
    fn unknown_mailbox_hangs_up() {
        let mut r = Run::new(
            FakeAccess::with(mailbox("201", "1")),
            GreetingKind::Unavailable,
        );
        let a = r.input(AppInput::Start);
        assert!(matches!(a.as_slice(), [Action::Hangup]), "{a:?}");
    }

    #[test]
    fn caller_hangup_saves_only_a_long_enough_pending_recording() {
        let fresh = || {
            Run::new(
                FakeAccess::with(mailbox("200", "1")),
                GreetingKind::Unavailable,
            )
        };
        let mut r = fresh();
        r.input(AppInput::Start);
        assert!(
            !r.app.on_caller_hangup(),
            "during the greeting nothing is recorded"
        );

        let mut r = fresh();
        r.until_recording();
        r.feed(&speech(), 60);
        r.feed(&quiet(), 20);
        assert!(r.app.on_caller_hangup(), "1.2 s spoken");
        assert!(!r.app.wants_audio());
        assert!(drain(&mut r.app).is_empty());
        r.app.handle_input(r.now, AppInput::Digit('#'));
        assert!(drain(&mut r.app).is_empty(), "finished after the hang-up");

        let mut r = fresh();
        r.until_recording();
        r.feed(&speech(), 30);
        r.feed(&quiet(), 40);
        assert!(
            !r.app.on_caller_hangup(),
            "0.6 s spoken + silence is too short"
        );

        let mut r = fresh();
        r.until_recording();
        r.feed(&speech(), 60);
        r.input(AppInput::Digit('#'));
        assert!(
            r.app.on_caller_hangup(),
            "hang-up in the review menu keeps it"
        );
    }
}
