//! Voicemail retrieval by phone: login, counts, listening, mailbox options (a sans-IO
//! [`CallApp`]).
//!
//! Contract (inputs and outputs as in [`crate::ivr`]; every menu prompt is interruptible,
//! a digit acts at once):
//!
//! - **Login.** Without a mailbox from the flow: `vm-enter-mailbox`, digits until `#`;
//!   then `vm-enter-pin`, digits until `#`. An entry also ends [`INTER_DIGIT_TIMEOUT`]
//!   after its last digit; `*` clears it. A wrong PIN and an unknown mailbox are the same
//!   failure (`vm-login-incorrect`, then the mailbox prompt again, or the PIN prompt when
//!   the flow gave the mailbox); the [`MAX_LOGIN_FAILURES`]th failure says
//!   `vm-login-incorrect`, `goodbye` and hangs up. Every failure is logged (`warn`,
//!   mailbox and caller redacted) and counted ([`Retrieval::failed_logins`]).
//! - **Counts**, then the main menu: `vm-you-have` N `vm-new-messages` `vm-and` M
//!   `vm-saved-messages` `vm-main-menu` (numbers digit by digit, [`say::number`]).
//! - **Main menu** (`vm-main-menu`): `1` new messages (the saved ones when there is no
//!   new one), `2` saved messages, `0` mailbox options, `*` or `#` goodbye + hang up.
//!   An empty folder: `vm-no-messages` + main menu.
//! - **Messages.** Each plays as `vm-message` + its position + its audio; once the audio
//!   has played to its end, a `new` message moves to `saved`. Then `vm-message-menu`;
//!   digits (also during the message): `5` repeat, `6` next, `4` previous, `9` save
//!   (`vm-message-saved`, then the next message), `7` delete (`vm-message-deleted`, then
//!   the next message), `3` call the sender back (`Transfer(Extension(caller number))`,
//!   only when the sender's number is all digits, else `invalid`), `*` main menu.
//!   Past the last message: `vm-no-more-messages` (+ message menu for `6`, + main menu
//!   after save/delete); before the first: `vm-no-previous` + message menu.
//! - **Mailbox options** (`vm-options-menu`): `1` record the unavailable greeting, `2`
//!   the busy greeting (`vm-record-greeting`, `beep`, `StartRecording(Greeting)`; `#`,
//!   silence or [`GREETING_MAX_LEN`] ends it; shorter than `min_message`: discarded with
//!   `vm-too-short`; else `SaveRecording` and after `RecordingSaved(Saved)`
//!   `vm-greeting-saved`, after `Failed` `vm-not-saved`; then the options menu), `4`
//!   change the PIN (`vm-enter-new-pin`, `vm-reenter-pin`; 4 to 8 digits else
//!   `vm-pin-invalid`; the two must match else `vm-pin-mismatch`; `vm-pin-changed`; `*`
//!   cancels), `*` main menu.
//! - Any other digit in a menu: `invalid` + the menu. No digit within [`MENU_TIMEOUT`]
//!   after a menu (or entry prompt) ends: the prompt again; the [`MAX_TIMEOUTS`]th
//!   timeout in a row says `goodbye` and hangs up.

use super::deposit::{AutoStop, Recorder, CLOSING_GRACE};
use super::{Folder, MailboxConfig, MessageMeta, VoicemailAccess};
use crate::call::redact;
use crate::ivr::{
    say, Action, AppInput, CallApp, GreetingKind, Playable, RecordingKind, RecordingSpec,
    SaveOutcome, Target, Variables,
};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// How long a menu or an entry waits for the first digit after its prompt ends.
pub const MENU_TIMEOUT: Duration = Duration::from_secs(10);
/// An entry (mailbox, PIN) ends this long after its last digit.
pub const INTER_DIGIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeouts in a row before goodbye.
pub const MAX_TIMEOUTS: u32 = 3;
/// Failed logins before goodbye.
pub const MAX_LOGIN_FAILURES: u32 = 3;
/// Longest greeting recorded by phone.
pub const GREETING_MAX_LEN: Duration = Duration::from_secs(60);
/// Allowed PIN lengths (digits only).
pub const PIN_LEN: std::ops::RangeInclusive<usize> = 4..=8;
/// Digits kept in one entry (more end it).
const MAX_ENTRY: usize = 16;

/// What an entry of digits is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Mailbox,
    Pin,
    NewPin,
    RepeatPin,
}

#[derive(Debug)]
enum State {
    /// Before `Start`.
    Idle,
    /// Collecting digits.
    Entry(Entry),
    /// The main menu.
    MainMenu,
    /// A message plays (`playing_audio`) or its menu waits.
    Message { playing_audio: bool },
    /// Mailbox options.
    Options,
    /// `vm-record-greeting` + `beep` play; recording starts when done.
    GreetingIntro(GreetingKind),
    /// Recording a greeting.
    GreetingRecording(GreetingKind, Recorder),
    /// `SaveRecording` sent for a greeting.
    GreetingSaving,
    /// Final prompts play; then `Hangup`.
    Closing,
    /// Hung up or transferred.
    Done,
}

/// Voicemail retrieval by phone (see the module doc).
#[derive(Debug)]
pub struct Retrieval {
    access: Arc<dyn VoicemailAccess>,
    given_mailbox: Option<String>,
    mailbox: String,
    caller_number: String,
    cfg: Option<MailboxConfig>,
    state: State,
    actions: VecDeque<Action>,
    /// Digits of the current entry.
    entry: String,
    /// The first new PIN, waiting for its repetition.
    new_pin: Option<String>,
    /// Deadline of the current wait (menu timeout, inter-digit, closing).
    deadline: Option<Instant>,
    timeouts: u32,
    failed_logins: u32,
    /// The folder being listened to (a snapshot) and the position in it.
    list: Vec<MessageMeta>,
    idx: usize,
    /// Whether the current message's audio could be loaded (else it is not marked heard).
    current_has_audio: bool,
}

fn named(names: &[&str]) -> Vec<Playable> {
    names.iter().map(|n| Playable::named(n)).collect()
}

impl Retrieval {
    /// A retrieval call; `mailbox` when the flow knows it (else the caller enters it).
    pub fn new(
        access: Arc<dyn VoicemailAccess>,
        mailbox: Option<String>,
        caller_number: &str,
        _now: Instant,
    ) -> Retrieval {
        Retrieval {
            access,
            mailbox: mailbox.clone().unwrap_or_default(),
            given_mailbox: mailbox,
            caller_number: caller_number.to_string(),
            cfg: None,
            state: State::Idle,
            actions: VecDeque::new(),
            entry: String::new(),
            new_pin: None,
            deadline: None,
            timeouts: 0,
            failed_logins: 0,
            list: Vec::new(),
            idx: 0,
            current_has_audio: false,
        }
    }

    /// Failed login attempts so far (the actor turns them into a metric).
    pub fn failed_logins(&self) -> u32 {
        self.failed_logins
    }

    /// Whether the caller has logged in.
    pub fn logged_in(&self) -> bool {
        self.cfg.is_some()
    }

    /// The caller hung up: whether a pending recording is to be saved. Always false: a
    /// greeting cut off by a hang-up is discarded (a save already requested completes as
    /// it is). The application is finished afterwards and emits nothing more.
    pub fn on_caller_hangup(&mut self) -> bool {
        self.state = State::Done;
        self.actions.clear();
        self.deadline = None;
        false
    }

    /// Replaces playback by `items`; the wait's deadline starts when it is done.
    fn play(&mut self, items: Vec<Playable>, interruptible: bool) {
        self.deadline = None;
        self.actions.push_back(Action::Play {
            items,
            interruptible,
        });
    }

    fn close(&mut self, now: Instant, names: &[&str]) {
        self.play(named(names), false);
        self.state = State::Closing;
        self.deadline = Some(now + CLOSING_GRACE);
    }

    fn hangup(&mut self) {
        self.actions.push_back(Action::Hangup);
        self.state = State::Done;
        self.deadline = None;
    }

    fn ask(&mut self, entry: Entry, mut prefix: Vec<Playable>) {
        let prompt = match entry {
            Entry::Mailbox => "vm-enter-mailbox",
            Entry::Pin => "vm-enter-pin",
            Entry::NewPin => "vm-enter-new-pin",
            Entry::RepeatPin => "vm-reenter-pin",
        };
        prefix.push(Playable::named(prompt));
        self.entry.clear();
        self.play(prefix, true);
        self.state = State::Entry(entry);
    }

    fn first_login_prompt(&mut self, prefix: Vec<Playable>) {
        if self.given_mailbox.is_some() {
            self.ask(Entry::Pin, prefix);
        } else {
            self.ask(Entry::Mailbox, prefix);
        }
    }

    fn main_menu(&mut self, mut prefix: Vec<Playable>) {
        prefix.push(Playable::named("vm-main-menu"));
        self.play(prefix, true);
        self.state = State::MainMenu;
    }

    fn options_menu(&mut self, mut prefix: Vec<Playable>) {
        prefix.push(Playable::named("vm-options-menu"));
        self.play(prefix, true);
        self.state = State::Options;
    }

    fn message_menu(&mut self, mut prefix: Vec<Playable>) {
        prefix.push(Playable::named("vm-message-menu"));
        self.play(prefix, true);
        self.state = State::Message {
            playing_audio: false,
        };
    }

    /// The prompt of the state that waits, played again after a timeout.
    fn repeat_prompt(&mut self) {
        match self.state {
            State::Entry(e) => self.ask(e, vec![]),
            State::MainMenu => self.main_menu(vec![]),
            State::Options => self.options_menu(vec![]),
            State::Message { .. } => self.message_menu(vec![]),
            _ => {}
        }
    }

    fn messages(&self, folder: Folder) -> Vec<MessageMeta> {
        self.access
            .messages(&self.mailbox, folder)
            .unwrap_or_else(|e| {
                warn!(mailbox = %redact(&self.mailbox), error = %e, "voicemail retrieval: cannot list messages");
                Vec::new()
            })
    }

    fn submit(&mut self, now: Instant, entry: Entry) {
        let digits = std::mem::take(&mut self.entry);
        match entry {
            Entry::Mailbox => {
                if digits.is_empty() {
                    return self.timed_out(now);
                }
                self.timeouts = 0;
                self.mailbox = digits;
                self.ask(Entry::Pin, vec![]);
            }
            Entry::Pin => {
                if digits.is_empty() {
                    return self.timed_out(now);
                }
                self.timeouts = 0;
                self.login(now, &digits);
            }
            Entry::NewPin => {
                self.timeouts = 0;
                if !PIN_LEN.contains(&digits.len()) {
                    return self.options_menu(named(&["vm-pin-invalid"]));
                }
                self.new_pin = Some(digits);
                self.ask(Entry::RepeatPin, vec![]);
            }
            Entry::RepeatPin => {
                self.timeouts = 0;
                let first = self.new_pin.take().unwrap_or_default();
                if first != digits {
                    return self.options_menu(named(&["vm-pin-mismatch"]));
                }
                match self.access.set_pin(&self.mailbox, &digits) {
                    Ok(()) => {
                        info!(mailbox = %redact(&self.mailbox), "voicemail: PIN changed by phone");
                        self.options_menu(named(&["vm-pin-changed"]));
                    }
                    Err(e) => {
                        warn!(mailbox = %redact(&self.mailbox), error = %e, "voicemail: PIN not changed");
                        self.options_menu(named(&["vm-not-saved"]));
                    }
                }
            }
        }
    }

    fn login(&mut self, now: Instant, pin: &str) {
        let cfg = self
            .access
            .mailbox(&self.mailbox)
            .filter(|_| self.access.check_pin(&self.mailbox, pin));
        let Some(cfg) = cfg else {
            self.failed_logins += 1;
            warn!(
                mailbox = %redact(&self.mailbox),
                caller = %redact(&self.caller_number),
                attempt = self.failed_logins,
                "voicemail login failed"
            );
            if self.failed_logins >= MAX_LOGIN_FAILURES {
                return self.close(now, &["vm-login-incorrect", "goodbye"]);
            }
            if self.given_mailbox.is_none() {
                self.mailbox.clear();
            }
            return self.first_login_prompt(named(&["vm-login-incorrect"]));
        };
        info!(mailbox = %redact(&self.mailbox), caller = %redact(&self.caller_number), "voicemail login");
        self.cfg = Some(cfg);
        let new = self.messages(Folder::New).len() as u64;
        let saved = self.messages(Folder::Saved).len() as u64;
        let mut items = named(&["vm-you-have"]);
        items.extend(say::number(new));
        items.extend(named(&["vm-new-messages", "vm-and"]));
        items.extend(say::number(saved));
        items.push(Playable::named("vm-saved-messages"));
        self.main_menu(items);
    }

    fn timed_out(&mut self, now: Instant) {
        self.timeouts += 1;
        if self.timeouts >= MAX_TIMEOUTS {
            debug!(mailbox = %redact(&self.mailbox), "voicemail retrieval: no input, goodbye");
            return self.close(now, &["goodbye"]);
        }
        self.repeat_prompt();
    }

    /// Plays the current message after `prefix`.
    fn play_current(&mut self, mut prefix: Vec<Playable>) {
        let Some(msg) = self.list.get(self.idx) else {
            return self.main_menu(prefix);
        };
        prefix.push(Playable::named("vm-message"));
        prefix.extend(say::number(self.idx as u64 + 1));
        self.current_has_audio = match self.access.audio(&msg.id) {
            Ok(audio) => {
                prefix.push(Playable::Audio(audio));
                true
            }
            Err(e) => {
                warn!(message = %msg.id, error = %e, "voicemail retrieval: no audio");
                false
            }
        };
        self.play(prefix, true);
        self.state = State::Message {
            playing_audio: true,
        };
    }

    fn open_folder(&mut self, folder: Folder, fallback: Option<Folder>) {
        self.list = self.messages(folder);
        if self.list.is_empty() {
            if let Some(other) = fallback {
                self.list = self.messages(other);
            }
        }
        self.idx = 0;
        if self.list.is_empty() {
            self.main_menu(named(&["vm-no-messages"]));
        } else {
            self.play_current(vec![]);
        }
    }

    /// After a save or delete: the message at `idx` plays next, if any.
    fn continue_after(&mut self, what: &str) {
        if self.idx < self.list.len() {
            self.play_current(named(&[what]));
        } else {
            self.idx = self.list.len().saturating_sub(1);
            self.main_menu(named(&[what, "vm-no-more-messages"]));
        }
    }

    /// The current message has played to its end.
    fn heard(&mut self) {
        let Some(msg) = self.list.get_mut(self.idx) else {
            return;
        };
        if msg.folder == Folder::New && self.current_has_audio {
            match self.access.set_folder(&msg.id, Folder::Saved) {
                Ok(()) => msg.folder = Folder::Saved,
                Err(e) => {
                    warn!(message = %msg.id, error = %e, "voicemail retrieval: cannot mark heard")
                }
            }
        }
    }

    fn main_digit(&mut self, now: Instant, d: char) {
        match d {
            '1' => self.open_folder(Folder::New, Some(Folder::Saved)),
            '2' => self.open_folder(Folder::Saved, None),
            '0' => self.options_menu(vec![]),
            '*' | '#' => return self.close(now, &["goodbye"]),
            _ => return self.main_menu(named(&["invalid"])),
        }
        self.timeouts = 0;
    }

    fn message_digit(&mut self, d: char) {
        let Some(msg) = self.list.get(self.idx).cloned() else {
            return self.main_menu(vec![]);
        };
        match d {
            '5' => self.play_current(vec![]),
            '6' if self.idx + 1 < self.list.len() => {
                self.idx += 1;
                self.play_current(vec![]);
            }
            '6' => self.message_menu(named(&["vm-no-more-messages"])),
            '4' if self.idx > 0 => {
                self.idx -= 1;
                self.play_current(vec![]);
            }
            '4' => self.message_menu(named(&["vm-no-previous"])),
            '9' => {
                if let Err(e) = self.access.set_folder(&msg.id, Folder::Saved) {
                    warn!(message = %msg.id, error = %e, "voicemail retrieval: cannot save");
                }
                self.list[self.idx].folder = Folder::Saved;
                self.idx += 1;
                self.continue_after("vm-message-saved");
            }
            '7' => {
                if let Err(e) = self.access.delete(&msg.id) {
                    warn!(message = %msg.id, error = %e, "voicemail retrieval: cannot delete");
                }
                self.list.remove(self.idx);
                self.continue_after("vm-message-deleted");
            }
            '3' if !msg.caller_number.is_empty()
                && msg.caller_number.chars().all(|c| c.is_ascii_digit()) =>
            {
                info!(mailbox = %redact(&self.mailbox), to = %redact(&msg.caller_number), "voicemail retrieval: calling the sender back");
                self.actions.push_back(Action::Transfer(
                    Target::Extension(msg.caller_number),
                    Variables::new(),
                ));
                self.state = State::Done;
                self.deadline = None;
            }
            '*' => self.main_menu(vec![]),
            _ => return self.message_menu(named(&["invalid"])),
        }
        self.timeouts = 0;
    }

    fn options_digit(&mut self, d: char) {
        match d {
            '1' | '2' => {
                let kind = if d == '1' {
                    GreetingKind::Unavailable
                } else {
                    GreetingKind::Busy
                };
                self.play(named(&["vm-record-greeting", "beep"]), false);
                self.state = State::GreetingIntro(kind);
            }
            '4' => {
                self.new_pin = None;
                self.ask(Entry::NewPin, vec![]);
            }
            '*' => self.main_menu(vec![]),
            _ => return self.options_menu(named(&["invalid"])),
        }
        self.timeouts = 0;
    }

    fn entry_digit(&mut self, now: Instant, entry: Entry, d: char) {
        match d {
            '0'..='9' => {
                self.entry.push(d);
                if self.entry.len() >= MAX_ENTRY {
                    return self.submit(now, entry);
                }
                self.deadline = Some(now + INTER_DIGIT_TIMEOUT);
            }
            '#' => self.submit(now, entry),
            '*' if matches!(entry, Entry::NewPin | Entry::RepeatPin) => {
                self.new_pin = None;
                self.entry.clear();
                self.options_menu(vec![]);
            }
            '*' => {
                self.entry.clear();
                self.deadline = Some(now + MENU_TIMEOUT);
            }
            _ => {}
        }
    }

    fn finish_greeting(&mut self) {
        let State::GreetingRecording(kind, rec) = std::mem::replace(&mut self.state, State::Done)
        else {
            return;
        };
        self.actions.push_back(Action::StopRecording);
        let min = self.cfg.as_ref().map(|c| c.min_message).unwrap_or_default();
        if rec.spoken() < min {
            self.actions.push_back(Action::DiscardRecording);
            return self.options_menu(named(&["vm-too-short"]));
        }
        debug!(mailbox = %redact(&self.mailbox), ?kind, "voicemail retrieval: saving greeting");
        self.actions.push_back(Action::SaveRecording);
        self.state = State::GreetingSaving;
        self.deadline = None;
    }
}

impl CallApp for Retrieval {
    fn handle_input(&mut self, now: Instant, input: AppInput<'_>) {
        match input {
            AppInput::Start => {
                if matches!(self.state, State::Idle) {
                    self.first_login_prompt(vec![]);
                }
            }
            AppInput::PlaybackDone => match self.state {
                State::Entry(_) | State::MainMenu | State::Options if self.entry.is_empty() => {
                    self.deadline = Some(now + MENU_TIMEOUT);
                }
                State::Message {
                    playing_audio: true,
                } => {
                    self.heard();
                    self.message_menu(vec![]);
                }
                State::Message {
                    playing_audio: false,
                } => self.deadline = Some(now + MENU_TIMEOUT),
                State::GreetingIntro(kind) => {
                    let Some(cfg) = self.cfg.clone() else {
                        return self.hangup();
                    };
                    self.actions
                        .push_back(Action::StartRecording(RecordingSpec {
                            kind: RecordingKind::Greeting {
                                mailbox: self.mailbox.clone(),
                                kind,
                            },
                            max_len: GREETING_MAX_LEN,
                        }));
                    let rec = Recorder::new(&cfg, GREETING_MAX_LEN, now);
                    self.deadline = Some(rec.deadline());
                    self.state = State::GreetingRecording(kind, rec);
                }
                State::Closing => self.hangup(),
                _ => {}
            },
            AppInput::Digit(d) => match self.state {
                State::Entry(e) => self.entry_digit(now, e, d),
                State::MainMenu => self.main_digit(now, d),
                State::Message { .. } => self.message_digit(d),
                State::Options => self.options_digit(d),
                State::GreetingRecording(..) if d == '#' => self.finish_greeting(),
                _ => {}
            },
            AppInput::Audio(frame) => {
                if let State::GreetingRecording(_, rec) = &mut self.state {
                    match rec.push(frame) {
                        Some(AutoStop::Silence | AutoStop::MaxLength) => self.finish_greeting(),
                        None => {}
                    }
                }
            }
            AppInput::RecordingSaved(outcome) => {
                if !matches!(self.state, State::GreetingSaving) {
                    debug!(?outcome, "voicemail retrieval: unexpected RecordingSaved");
                    return;
                }
                match outcome {
                    SaveOutcome::Saved(_) => {
                        info!(mailbox = %redact(&self.mailbox), "voicemail: greeting recorded by phone");
                        self.options_menu(named(&["vm-greeting-saved"]));
                    }
                    SaveOutcome::Failed(reason) => {
                        warn!(mailbox = %redact(&self.mailbox), %reason, "voicemail: greeting not saved");
                        self.options_menu(named(&["vm-not-saved"]));
                    }
                }
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_none_or(|d| now < d) {
            return;
        }
        self.deadline = None;
        match self.state {
            State::Entry(e) if !self.entry.is_empty() => self.submit(now, e),
            State::Entry(_) | State::MainMenu | State::Options | State::Message { .. } => {
                self.timed_out(now)
            }
            State::GreetingRecording(..) => self.finish_greeting(),
            State::Closing => self.hangup(),
            _ => {}
        }
    }

    fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    fn wants_audio(&self) -> bool {
        matches!(self.state, State::GreetingRecording(..))
    }
}

#[cfg(test)]
mod tests {
    use super::super::deposit::test_support::*;
    use super::*;

    struct Run {
        app: Retrieval,
        now: Instant,
        fake: Arc<FakeAccess>,
    }

    impl Run {
        fn new(fake: FakeAccess, mailbox: Option<&str>) -> Run {
            let fake = Arc::new(fake);
            let now = Instant::now();
            let app = Retrieval::new(fake.clone(), mailbox.map(String::from), "555123456", now);
            Run { app, now, fake }
        }
        fn input(&mut self, input: AppInput<'_>) -> Vec<Action> {
            self.app.handle_input(self.now, input);
            drain(&mut self.app)
        }
        /// Digits one by one; the actions after the last one.
        fn keys(&mut self, keys: &str) -> Vec<Action> {
            let mut last = Vec::new();
            for k in keys.chars() {
                last = self.input(AppInput::Digit(k));
            }
            last
        }
        fn play_of(&mut self, keys: &str) -> Vec<String> {
            played(&self.keys(keys))
        }
        fn done(&mut self) -> Vec<Action> {
            self.input(AppInput::PlaybackDone)
        }
        /// Jumps to the next deadline and fires it.
        fn expire(&mut self) -> Vec<Action> {
            let t = self.app.poll_timeout().expect("a deadline");
            self.now = t;
            self.app.handle_timeout(t);
            drain(&mut self.app)
        }
        /// Start and log into 200 with PIN 1234; returns the counts announcement.
        fn login(&mut self) -> Vec<String> {
            self.input(AppInput::Start);
            self.keys("200#");
            let a = played(&self.keys("1234#"));
            assert!(self.app.logged_in());
            a
        }
    }

    fn fake() -> FakeAccess {
        FakeAccess::with(mailbox("200", "1234"))
    }

    #[test]
    fn three_failed_logins_hang_up_without_telling_which_part_was_wrong() {
        let mut f = fake();
        f.0.get_mut()
            .unwrap()
            .mailboxes
            .insert("201".into(), mailbox("201", "1111"));
        let mut r = Run::new(f, None);
        assert_eq!(played(&r.input(AppInput::Start)), ["vm-enter-mailbox"]);
        assert_eq!(r.play_of("200#"), ["vm-enter-pin"]);
        // Wrong PIN.
        assert_eq!(
            r.play_of("9999#"),
            ["vm-login-incorrect", "vm-enter-mailbox"]
        );
        assert_eq!(r.app.failed_logins(), 1);
        // Unknown mailbox: same answer.
        assert_eq!(r.play_of("777#"), ["vm-enter-pin"]);
        assert_eq!(
            r.play_of("1234#"),
            ["vm-login-incorrect", "vm-enter-mailbox"]
        );
        assert_eq!(r.app.failed_logins(), 2);
        // Another mailbox's PIN does not open this one.
        r.keys("200#");
        let a = r.keys("1111#");
        assert_eq!(played(&a), ["vm-login-incorrect", "goodbye"]);
        assert!(!a.iter().any(|a| matches!(a, Action::Hangup)));
        assert_eq!(r.app.failed_logins(), 3);
        assert!(!r.app.logged_in());
        assert!(r.keys("1234#").is_empty(), "no more tries");
        assert!(matches!(r.done().as_slice(), [Action::Hangup]));
    }

    #[test]
    fn given_mailbox_asks_only_the_pin_and_a_late_right_pin_works() {
        let mut r = Run::new(fake(), Some("200"));
        assert_eq!(played(&r.input(AppInput::Start)), ["vm-enter-pin"]);
        assert_eq!(r.play_of("12#"), ["vm-login-incorrect", "vm-enter-pin"]);
        assert_eq!(r.play_of("4321#"), ["vm-login-incorrect", "vm-enter-pin"]);
        // `*` clears a mistyped entry.
        let a = r.play_of("99*1234#");
        assert_eq!(a[0], "vm-you-have");
        assert_eq!(r.app.failed_logins(), 2);
    }

    #[test]
    fn pin_entry_ends_after_the_inter_digit_timeout() {
        let mut r = Run::new(fake(), Some("200"));
        r.input(AppInput::Start);
        r.done();
        assert_eq!(r.app.poll_timeout(), Some(r.now + MENU_TIMEOUT));
        r.keys("1234");
        assert_eq!(r.app.poll_timeout(), Some(r.now + INTER_DIGIT_TIMEOUT));
        assert_eq!(played(&r.expire())[0], "vm-you-have");
    }

    #[test]
    fn login_says_the_counts_of_new_and_saved() {
        let f = fake();
        f.add("n1", "200", "300", Folder::New, 1);
        f.add("n2", "200", "300", Folder::New, 2);
        for i in 0..12 {
            f.add(&format!("s{i}"), "200", "300", Folder::Saved, 3);
        }
        f.add("x", "201", "300", Folder::New, 4);
        let mut r = Run::new(f, None);
        assert_eq!(
            r.login(),
            [
                "vm-you-have",
                "2",
                "vm-new-messages",
                "vm-and",
                "1",
                "2",
                "vm-saved-messages",
                "vm-main-menu"
            ]
        );
        let mut r = Run::new(fake(), None);
        assert_eq!(
            r.login(),
            [
                "vm-you-have",
                "0",
                "vm-new-messages",
                "vm-and",
                "0",
                "vm-saved-messages",
                "vm-main-menu"
            ]
        );
        assert_eq!(r.play_of("1"), ["vm-no-messages", "vm-main-menu"]);
    }

    #[test]
    fn listening_next_previous_save_delete_reach_the_storage() {
        let f = fake();
        f.add("a", "200", "300", Folder::New, 1);
        f.add("b", "200", "300", Folder::New, 2);
        f.add("c", "200", "300", Folder::Saved, 3);
        let mut r = Run::new(f, None);
        r.login();
        assert_eq!(r.play_of("1"), ["vm-message", "1", "audio:1:800"]);
        assert_eq!(r.fake.folder_of("a"), Some(Folder::New), "not heard yet");
        assert_eq!(played(&r.done()), ["vm-message-menu"]);
        assert_eq!(
            r.fake.folder_of("a"),
            Some(Folder::Saved),
            "heard to its end"
        );
        assert_eq!(r.play_of("6"), ["vm-message", "2", "audio:2:800"]);
        // Interrupted by `4`: b stays new.
        assert_eq!(r.play_of("4"), ["vm-message", "1", "audio:1:800"]);
        assert_eq!(r.fake.folder_of("b"), Some(Folder::New));
        assert_eq!(r.play_of("4"), ["vm-no-previous", "vm-message-menu"]);
        assert_eq!(r.play_of("5"), ["vm-message", "1", "audio:1:800"]);
        r.keys("6");
        assert_eq!(r.play_of("6"), ["vm-no-more-messages", "vm-message-menu"]);
        assert_eq!(
            r.play_of("7"),
            ["vm-message-deleted", "vm-no-more-messages", "vm-main-menu"]
        );
        assert_eq!(r.fake.folder_of("b"), None);
        assert_eq!(r.fake.0.lock().unwrap().deleted, ["b"]);
        // Saved folder: a (heard) and c.
        assert_eq!(r.play_of("2"), ["vm-message", "1", "audio:1:800"]);
        assert_eq!(
            r.play_of("9"),
            ["vm-message-saved", "vm-message", "2", "audio:3:800"]
        );
        assert_eq!(r.fake.folder_of("a"), Some(Folder::Saved));
        assert_eq!(r.fake.folder_of("c"), Some(Folder::Saved));
    }

    #[test]
    fn save_keeps_a_new_message_and_delete_advances() {
        let f = fake();
        f.add("a", "200", "300", Folder::New, 1);
        f.add("b", "200", "300", Folder::New, 2);
        f.add("c", "200", "300", Folder::New, 3);
        let mut r = Run::new(f, None);
        r.login();
        r.keys("1");
        assert_eq!(
            r.play_of("9"),
            ["vm-message-saved", "vm-message", "2", "audio:2:800"]
        );
        assert_eq!(r.fake.folder_of("a"), Some(Folder::Saved));
        assert_eq!(
            r.play_of("7"),
            ["vm-message-deleted", "vm-message", "2", "audio:3:800"]
        );
        assert_eq!(r.fake.folder_of("b"), None);
        assert_eq!(r.fake.folder_of("c"), Some(Folder::New));
        assert_eq!(r.play_of("*"), ["vm-main-menu"]);
        assert_eq!(r.play_of("8"), ["invalid", "vm-main-menu"]);
    }

    #[test]
    fn a_message_without_audio_is_not_marked_heard() {
        let f = fake();
        f.add("a", "200", "300", Folder::New, 1);
        f.0.lock().unwrap().audio.clear();
        let mut r = Run::new(f, None);
        r.login();
        assert_eq!(r.play_of("1"), ["vm-message", "1"]);
        assert_eq!(played(&r.done()), ["vm-message-menu"]);
        assert_eq!(r.fake.folder_of("a"), Some(Folder::New));
    }

    #[test]
    fn new_folder_empty_plays_the_saved_ones() {
        let f = fake();
        f.add("c", "200", "300", Folder::Saved, 3);
        let mut r = Run::new(f, None);
        r.login();
        assert_eq!(r.play_of("1"), ["vm-message", "1", "audio:3:800"]);
    }

    #[test]
    fn call_back_only_a_sender_with_a_digit_number() {
        let f = fake();
        f.add("a", "200", "301", Folder::New, 1);
        f.add("b", "200", "anonymous", Folder::New, 2);
        f.add("c", "200", "", Folder::New, 3);
        let mut r = Run::new(f, None);
        r.login();
        r.keys("1");
        r.keys("6");
        assert_eq!(r.play_of("3"), ["invalid", "vm-message-menu"]);
        r.keys("6");
        assert_eq!(r.play_of("3"), ["invalid", "vm-message-menu"]);
        r.keys("44");
        let a = r.keys("3");
        match a.as_slice() {
            [Action::Transfer(Target::Extension(n), _)] => assert_eq!(n, "301"),
            other => panic!("{other:?}"),
        }
        assert!(r.keys("5").is_empty(), "the app has left");
    }

    #[test]
    fn change_pin_needs_two_matching_entries_of_4_to_8_digits() {
        let mut r = Run::new(fake(), None);
        r.login();
        assert_eq!(r.play_of("0"), ["vm-options-menu"]);
        assert_eq!(r.play_of("4"), ["vm-enter-new-pin"]);
        assert_eq!(r.play_of("5678#"), ["vm-reenter-pin"]);
        assert_eq!(r.play_of("5679#"), ["vm-pin-mismatch", "vm-options-menu"]);
        assert!(r.fake.check_pin("200", "1234"));
        assert!(!r.fake.check_pin("200", "5678"));
        r.keys("4");
        assert_eq!(r.play_of("123#"), ["vm-pin-invalid", "vm-options-menu"]);
        r.keys("4");
        assert_eq!(
            r.play_of("123456789#"),
            ["vm-pin-invalid", "vm-options-menu"]
        );
        r.keys("4");
        r.keys("12345678#");
        assert_eq!(
            r.play_of("12345678#"),
            ["vm-pin-changed", "vm-options-menu"]
        );
        assert!(r.fake.check_pin("200", "12345678"));
        assert!(!r.fake.check_pin("200", "1234"));
        // `*` cancels.
        r.keys("4");
        r.keys("4321#");
        assert_eq!(r.play_of("*"), ["vm-options-menu"]);
        assert!(r.fake.check_pin("200", "12345678"));
        assert_eq!(r.play_of("*"), ["vm-main-menu"]);
    }

    #[test]
    fn greeting_recorded_by_phone() {
        let mut r = Run::new(fake(), None);
        r.login();
        r.keys("0");
        let a = r.keys("2");
        assert_eq!(played(&a), ["vm-record-greeting", "beep"]);
        assert!(matches!(
            a[0],
            Action::Play {
                interruptible: false,
                ..
            }
        ));
        assert!(r.keys("#").is_empty(), "ignored before the beep ends");
        assert!(!r.app.wants_audio());
        let a = r.done();
        match a.as_slice() {
            [Action::StartRecording(spec)] => {
                assert_eq!(spec.max_len, GREETING_MAX_LEN);
                assert_eq!(
                    spec.kind,
                    RecordingKind::Greeting {
                        mailbox: "200".into(),
                        kind: GreetingKind::Busy
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(r.app.wants_audio());
        let speech = vec![4000i16; 160];
        for _ in 0..100 {
            r.now += Duration::from_millis(20);
            assert!(r.input(AppInput::Audio(&speech)).is_empty());
        }
        let a = r.keys("#");
        assert!(
            matches!(a.as_slice(), [Action::StopRecording, Action::SaveRecording]),
            "{a:?}"
        );
        assert!(!r.app.wants_audio());
        let a = r.input(AppInput::RecordingSaved(SaveOutcome::Saved("g".into())));
        assert_eq!(played(&a), ["vm-greeting-saved", "vm-options-menu"]);

        // Too short: discarded.
        r.keys("1");
        r.done();
        for _ in 0..10 {
            r.input(AppInput::Audio(&speech));
        }
        let a = r.keys("#");
        assert!(matches!(a[0], Action::StopRecording));
        assert!(matches!(a[1], Action::DiscardRecording), "{a:?}");
        assert_eq!(played(&a), ["vm-too-short", "vm-options-menu"]);

        // Max length by the clock; a failed save says so.
        r.keys("1");
        r.done();
        for _ in 0..100 {
            r.input(AppInput::Audio(&speech));
        }
        let a = r.expire();
        assert!(matches!(
            a.as_slice(),
            [Action::StopRecording, Action::SaveRecording]
        ));
        let a = r.input(AppInput::RecordingSaved(SaveOutcome::Failed("disk".into())));
        assert_eq!(played(&a), ["vm-not-saved", "vm-options-menu"]);
    }

    #[test]
    fn menu_timeouts_repeat_the_menu_then_say_goodbye() {
        let mut r = Run::new(fake(), None);
        r.login();
        assert_eq!(
            r.app.poll_timeout(),
            None,
            "no timeout while the menu plays"
        );
        r.done();
        assert_eq!(r.app.poll_timeout(), Some(r.now + MENU_TIMEOUT));
        assert_eq!(played(&r.expire()), ["vm-main-menu"]);
        r.done();
        assert_eq!(played(&r.expire()), ["vm-main-menu"]);
        r.done();
        let a = r.expire();
        assert_eq!(played(&a), ["goodbye"]);
        assert!(matches!(r.done().as_slice(), [Action::Hangup]));

        // A valid digit resets the count.
        let mut r = Run::new(fake(), None);
        r.login();
        r.done();
        r.expire();
        r.done();
        r.expire();
        r.keys("0");
        r.done();
        assert_eq!(played(&r.expire()), ["vm-options-menu"]);
        r.done();
        assert_eq!(played(&r.expire()), ["vm-options-menu"]);
    }

    #[test]
    fn login_prompt_timeouts_and_exit_keys() {
        let mut r = Run::new(fake(), None);
        r.input(AppInput::Start);
        r.done();
        assert_eq!(played(&r.expire()), ["vm-enter-mailbox"]);
        r.done();
        assert_eq!(played(&r.expire()), ["vm-enter-mailbox"]);
        r.done();
        assert_eq!(played(&r.expire()), ["goodbye"]);
        assert_eq!(r.app.failed_logins(), 0, "silence is not a failed login");

        let mut r = Run::new(fake(), None);
        r.login();
        assert_eq!(r.play_of("#"), ["goodbye"]);
        assert!(matches!(r.done().as_slice(), [Action::Hangup]));
    }
}
