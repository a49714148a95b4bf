//! The flow engine: [`FlowRun`] walks one call through a [`Flow`], as a [`CallApp`].
//!
//! Sans-IO: time comes in with every input; the wall clock for `hours` nodes is
//! `started_wall + (now - started)`, so nothing here reads a clock.
//!
//! What the caller meets:
//! - `play`: the prompts; with `interruptible`, a digit stops them and is carried on as
//!   type-ahead to the next node when that is a `menu` or `collect` reached without
//!   playing anything else (a caller who knows the menu can press `1` during "welcome").
//!   Digits pressed during a non-interruptible play (and during `say_*` and `hangup`
//!   prompts) are ignored.
//! - `menu`: the prompts, interruptible. The no-input timeout starts when the prompts
//!   have been played (`PlaybackDone`). A digit that completes an option which no longer
//!   option starts with selects it at once; a digit that starts a longer option waits
//!   `inter_digit_timeout` for more (then the digits so far are taken as they are); `#`
//!   ends a multi-digit entry early. An invalid entry plays `invalid_prompts` then the
//!   menu again; no input plays `timeout_prompts` then the menu again. The
//!   `max_failures`-th invalid entry or the `max_timeouts`-th timeout goes to `fallback`
//!   (the two are counted apart, from zero each time the node is entered).
//! - `collect`: like a menu, but the digits go into `variable`; the entry ends with the
//!   terminator, at `max_len` digits, or after `inter_digit_timeout`; it is valid with
//!   `min_len..=max_len` digits matching `pattern`.
//! - `hours`, `branch`, `set`: decide at once. `say_*`: non-interruptible digit prompts.
//! - Targets emit [`Action::Transfer`] with the call's variables and the run is over;
//!   `hangup` plays its prompts, waits for `PlaybackDone`, then emits [`Action::Hangup`].
//!
//! Validation rejects loops without input, but as a guard a run that passes more than
//! [`MAX_STEPS`] nodes without waiting for anything hangs up (logged).

use super::flow::{Flow, FlowSet, Kind, NodeId};
use super::{say, Action, AppInput, CallApp, Playable, Target, Variables};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Most nodes one input may pass through before the run hangs up.
pub const MAX_STEPS: usize = 256;

/// Errors starting a flow run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No flow of that name in the flow set.
    #[error("no IVR flow named {0:?}")]
    UnknownFlow(String),
}

/// One call's walk through a flow.
#[derive(Debug)]
pub struct FlowRun {
    flow: Arc<Flow>,
    vars: Variables,
    started: Instant,
    started_wall: SystemTime,
    state: State,
    actions: VecDeque<Action>,
    entered: VecDeque<(Arc<str>, Arc<str>)>,
}

/// What the run waits for.
#[derive(Debug)]
enum State {
    /// `AppInput::Start`.
    NotStarted,
    /// The end of a `play` or `say_*` node's prompts.
    Playing { next: NodeId, interruptible: bool },
    /// Digits for a `menu` or `collect` node.
    Input(Waiting),
    /// The end of a `hangup` node's prompts.
    HangingUp,
    /// Nothing: transferred or hung up.
    Done,
}

#[derive(Debug)]
struct Waiting {
    node: NodeId,
    digits: String,
    failures: u32,
    timeouts: u32,
    /// Prompts are playing (the no-input timer starts at `PlaybackDone`).
    playing: bool,
    deadline: Option<Instant>,
}

impl FlowRun {
    /// A run of flow `flow` of `flows`; `started`/`started_wall` are the same moment on
    /// the monotonic and the wall clock.
    pub fn new(
        flows: Arc<FlowSet>,
        flow: &str,
        vars: Variables,
        started: Instant,
        started_wall: SystemTime,
    ) -> Result<FlowRun, EngineError> {
        let flow = flows
            .flow(flow)
            .cloned()
            .ok_or_else(|| EngineError::UnknownFlow(flow.to_string()))?;
        Ok(FlowRun::with_flow(flow, vars, started, started_wall))
    }

    fn with_flow(
        flow: Arc<Flow>,
        vars: Variables,
        started: Instant,
        started_wall: SystemTime,
    ) -> FlowRun {
        FlowRun {
            flow,
            vars,
            started,
            started_wall,
            state: State::NotStarted,
            actions: VecDeque::new(),
            entered: VecDeque::new(),
        }
    }

    /// The next `(flow, node)` entered, for counting and logging.
    pub fn poll_node_entered(&mut self) -> Option<(Arc<str>, Arc<str>)> {
        self.entered.pop_front()
    }

    /// The call's variables.
    pub fn variables(&self) -> &Variables {
        &self.vars
    }

    /// Whether the run is over (transferred or hung up).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn wall(&self, now: Instant) -> SystemTime {
        self.started_wall + now.saturating_duration_since(self.started)
    }

    fn play(&mut self, prompts: &[Arc<str>], interruptible: bool) {
        self.actions.push_back(Action::Play {
            items: prompts.iter().cloned().map(Playable::Named).collect(),
            interruptible,
        });
    }

    fn finish(&mut self, action: Action) {
        self.actions.push_back(action);
        self.state = State::Done;
    }

    /// Enters `node` and runs until something waits: prompts, digits, or the end.
    fn run(&mut self, now: Instant, mut node: NodeId, mut carry: Option<char>) {
        let flow = self.flow.clone();
        for _ in 0..MAX_STEPS {
            let n = &flow.nodes[node];
            self.entered.push_back((flow.name.clone(), n.name.clone()));
            match &n.kind {
                Kind::Play {
                    prompts,
                    interruptible,
                    next,
                } => {
                    self.play(prompts, *interruptible);
                    self.state = State::Playing {
                        next: *next,
                        interruptible: *interruptible,
                    };
                    return;
                }
                Kind::Menu(_) | Kind::Collect(_) => {
                    self.state = State::Input(Waiting {
                        node,
                        digits: String::new(),
                        failures: 0,
                        timeouts: 0,
                        playing: false,
                        deadline: None,
                    });
                    match carry {
                        Some(d) => self.digit(now, d),
                        None => self.prompt(now, PromptReason::First),
                    }
                    return;
                }
                Kind::Hours {
                    hours,
                    open,
                    closed,
                } => {
                    node = if hours.is_open(self.wall(now)) {
                        *open
                    } else {
                        *closed
                    }
                }
                Kind::Branch {
                    variable,
                    prefix,
                    cases,
                    default,
                } => {
                    let v = self.vars.get(variable).map_or("", String::as_str);
                    let hit = if *prefix {
                        cases
                            .iter()
                            .filter(|(c, _)| v.starts_with(c.as_str()))
                            .max_by_key(|(c, _)| c.len())
                    } else {
                        cases.iter().find(|(c, _)| c == v)
                    };
                    node = hit.map_or(*default, |(_, n)| *n);
                }
                Kind::Set {
                    variable,
                    value,
                    next,
                } => {
                    let v = value.render(&self.vars);
                    self.vars.insert(variable.clone(), v);
                    node = *next;
                }
                Kind::Say {
                    number,
                    value,
                    next,
                } => {
                    let text = value.render(&self.vars);
                    let items = if *number {
                        match text.trim().parse::<u64>() {
                            Ok(v) => say::number(v),
                            Err(_) => {
                                tracing::warn!(flow = %flow.name, node = %n.name, "say_number: value is not a number; skipped");
                                Vec::new()
                            }
                        }
                    } else {
                        say::digits(&text)
                    };
                    if items.is_empty() {
                        node = *next;
                        carry = None;
                        continue;
                    }
                    self.actions.push_back(Action::Play {
                        items,
                        interruptible: false,
                    });
                    self.state = State::Playing {
                        next: *next,
                        interruptible: false,
                    };
                    return;
                }
                Kind::Queue(q) => return self.transfer(Target::Queue(q.clone())),
                Kind::Mailbox { mailbox, greeting } => {
                    return self.transfer(Target::Mailbox {
                        mailbox: mailbox.clone(),
                        greeting: *greeting,
                    })
                }
                Kind::Voicemail(mailbox) => {
                    return self.transfer(Target::VoicemailRetrieval {
                        mailbox: mailbox.clone(),
                    })
                }
                Kind::Extension(user) => {
                    let user = user.render(&self.vars);
                    return self.transfer(Target::Extension(user));
                }
                Kind::External { trunk, number } => {
                    let number = number.render(&self.vars);
                    return self.transfer(Target::External {
                        trunk: trunk.clone(),
                        number,
                    });
                }
                Kind::Hangup(prompts) => {
                    if prompts.is_empty() {
                        self.finish(Action::Hangup);
                    } else {
                        self.play(prompts, false);
                        self.state = State::HangingUp;
                    }
                    return;
                }
            }
        }
        tracing::error!(
            flow = %flow.name,
            node = %flow.nodes[node].name,
            "IVR flow passed {MAX_STEPS} nodes without waiting for the caller; hanging up"
        );
        self.finish(Action::Hangup);
    }

    fn transfer(&mut self, target: Target) {
        self.finish(Action::Transfer(target, self.vars.clone()));
    }

    /// (Re)plays an input node's prompts, after `invalid`/`timeout` prompts if asked.
    fn prompt(&mut self, now: Instant, reason: PromptReason) {
        let flow = self.flow.clone();
        let State::Input(w) = &mut self.state else {
            return;
        };
        let Some(input) = flow.nodes[w.node].kind.input() else {
            return;
        };
        let before: &[Arc<str>] = match reason {
            PromptReason::First => &[],
            PromptReason::Invalid => &input.invalid_prompts,
            PromptReason::Timeout => &input.timeout_prompts,
        };
        let items: Vec<Playable> = before
            .iter()
            .chain(&input.prompts)
            .cloned()
            .map(Playable::Named)
            .collect();
        w.digits.clear();
        if items.is_empty() {
            w.playing = false;
            w.deadline = Some(now + input.timeout);
        } else {
            w.playing = true;
            w.deadline = None;
            self.actions.push_back(Action::Play {
                items,
                interruptible: true,
            });
        }
    }

    /// A digit for the waiting `menu` or `collect` node.
    fn digit(&mut self, now: Instant, d: char) {
        let flow = self.flow.clone();
        let State::Input(w) = &mut self.state else {
            return;
        };
        w.playing = false;
        w.deadline = None;
        match &flow.nodes[w.node].kind {
            Kind::Menu(m) => {
                w.digits.push(d);
                let longer = m
                    .options
                    .keys()
                    .any(|k| k.len() > w.digits.len() && k.starts_with(w.digits.as_str()));
                if longer {
                    w.deadline = Some(now + m.input.inter_digit);
                    return;
                }
                let mut chosen = m.options.get(&w.digits).copied();
                if chosen.is_none() && d == '#' && w.digits.len() > 1 {
                    chosen = m.options.get(&w.digits[..w.digits.len() - 1]).copied();
                }
                match chosen {
                    Some(next) => self.run(now, next, None),
                    None => self.failed(now, PromptReason::Invalid),
                }
            }
            Kind::Collect(c) => {
                if Some(d) == c.terminator {
                    return self.complete(now);
                }
                w.digits.push(d);
                if w.digits.len() >= c.max_len {
                    return self.complete(now);
                }
                w.deadline = Some(now + c.input.inter_digit);
            }
            _ => {}
        }
    }

    /// The entry so far is final (terminator, max length, inter-digit timeout).
    fn complete(&mut self, now: Instant) {
        let flow = self.flow.clone();
        let State::Input(w) = &mut self.state else {
            return;
        };
        match &flow.nodes[w.node].kind {
            Kind::Menu(m) => match m.options.get(&w.digits).copied() {
                Some(next) => self.run(now, next, None),
                None => self.failed(now, PromptReason::Invalid),
            },
            Kind::Collect(c) => {
                let len = w.digits.chars().count();
                let ok = (c.min_len..=c.max_len).contains(&len)
                    && c.pattern.as_ref().is_none_or(|p| p.matches(&w.digits));
                if ok {
                    let value = std::mem::take(&mut w.digits);
                    self.vars.insert(c.variable.clone(), value);
                    self.run(now, c.next, None);
                } else {
                    self.failed(now, PromptReason::Invalid);
                }
            }
            _ => {}
        }
    }

    /// An invalid entry or a timeout: count it, then replay or fall back.
    fn failed(&mut self, now: Instant, reason: PromptReason) {
        let flow = self.flow.clone();
        let State::Input(w) = &mut self.state else {
            return;
        };
        let Some(input) = flow.nodes[w.node].kind.input() else {
            return;
        };
        let over = match reason {
            PromptReason::Timeout => {
                w.timeouts += 1;
                w.timeouts >= input.max_timeouts
            }
            _ => {
                w.failures += 1;
                w.failures >= input.max_failures
            }
        };
        if over {
            self.run(now, input.fallback, None);
        } else {
            self.prompt(now, reason);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum PromptReason {
    First,
    Invalid,
    Timeout,
}

impl CallApp for FlowRun {
    fn handle_input(&mut self, now: Instant, input: AppInput<'_>) {
        match input {
            AppInput::Start => {
                if matches!(self.state, State::NotStarted) {
                    self.run(now, self.flow.start, None);
                }
            }
            AppInput::PlaybackDone => match &mut self.state {
                State::Playing { next, .. } => {
                    let next = *next;
                    self.run(now, next, None);
                }
                State::Input(w) if w.playing => {
                    w.playing = false;
                    if let Some(input) = self.flow.nodes[w.node].kind.input() {
                        w.deadline = Some(now + input.timeout);
                    }
                }
                State::HangingUp => self.finish(Action::Hangup),
                _ => {}
            },
            AppInput::Digit(d) => match &self.state {
                State::Playing {
                    next,
                    interruptible: true,
                } => {
                    let next = *next;
                    self.run(now, next, Some(d));
                }
                State::Input(_) => self.digit(now, d),
                _ => tracing::debug!(digit = %d, "IVR: digit ignored (nothing listens now)"),
            },
            AppInput::Audio(_) | AppInput::RecordingSaved(_) => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        let State::Input(w) = &mut self.state else {
            return;
        };
        match w.deadline {
            Some(t) if t <= now => {
                w.deadline = None;
                if w.digits.is_empty() {
                    self.failed(now, PromptReason::Timeout);
                } else {
                    self.complete(now);
                }
            }
            _ => {}
        }
    }

    fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Input(w) => w.deadline,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ivr::flow::tests::{parse, DEMO};
    use crate::ivr::flow::{Node, Template};
    use std::time::{Duration, UNIX_EPOCH};

    /// A run driven by hand: inputs in, actions out as short strings.
    struct Caller {
        run: FlowRun,
        now: Instant,
    }

    impl Caller {
        fn new(text: &str, flow: &str) -> Caller {
            Caller::at(text, flow, UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        }

        fn at(text: &str, flow: &str, wall: SystemTime) -> Caller {
            let set = Arc::new(parse(text).unwrap());
            let now = Instant::now();
            let run = FlowRun::new(set, flow, Variables::new(), now, wall).unwrap();
            Caller { run, now }
        }

        fn actions(&mut self) -> Vec<String> {
            let mut out = Vec::new();
            while let Some(a) = self.run.poll_action() {
                out.push(match a {
                    Action::Play {
                        items,
                        interruptible,
                    } => {
                        let names: Vec<String> = items
                            .iter()
                            .map(|p| match p {
                                Playable::Named(n) => n.to_string(),
                                other => format!("{other:?}"),
                            })
                            .collect();
                        format!(
                            "play({}){}",
                            names.join(","),
                            if interruptible { "!" } else { "" }
                        )
                    }
                    Action::Transfer(t, _) => format!("transfer({t:?})"),
                    Action::Hangup => "hangup".into(),
                    other => format!("{other:?}"),
                });
            }
            out
        }

        fn start(&mut self) -> Vec<String> {
            self.run.handle_input(self.now, AppInput::Start);
            self.actions()
        }

        fn done(&mut self) -> Vec<String> {
            self.run.handle_input(self.now, AppInput::PlaybackDone);
            self.actions()
        }

        fn press(&mut self, digits: &str) -> Vec<String> {
            for d in digits.chars() {
                self.run.handle_input(self.now, AppInput::Digit(d));
            }
            self.actions()
        }

        /// Moves the clock, firing the timeout if it is due (as the actor would).
        fn wait(&mut self, secs: f64) -> Vec<String> {
            self.now += Duration::from_secs_f64(secs);
            if self.run.poll_timeout().is_some_and(|t| t <= self.now) {
                self.run.handle_timeout(self.now);
            }
            self.actions()
        }

        fn entered(&mut self) -> Vec<String> {
            let mut out = Vec::new();
            while let Some((f, n)) = self.run.poll_node_entered() {
                out.push(format!("{f}.{n}"));
            }
            out
        }
    }

    fn two_level() -> String {
        DEMO.replace("\"1\" = \"sales\"", "\"1\" = \"sales_menu\"")
            + r#"
[flows.main.nodes.sales_menu]
type = "menu"
prompts = ["sales-menu"]
options = { "1" = "sales", "2" = "desk", "0" = "menu" }
fallback = "bye"
[flows.main.nodes.desk]
type = "extension"
user = "201"
"#
    }

    #[test]
    fn a_caller_walks_a_two_level_menu() {
        let mut c = Caller::new(&two_level(), "main");
        assert_eq!(c.start(), ["play(welcome)!"]);
        assert_eq!(c.done(), ["play(main-menu)!"]);
        assert_eq!(c.press("1"), ["play(sales-menu)!"]);
        // Back to the main menu and down again.
        assert_eq!(c.press("0"), ["play(main-menu)!"]);
        assert_eq!(c.press("1"), ["play(sales-menu)!"]);
        assert_eq!(c.press("2"), ["transfer(Extension(\"201\"))"]);
        assert!(c.run.is_finished());
        assert_eq!(
            c.entered(),
            [
                "main.welcome",
                "main.menu",
                "main.sales_menu",
                "main.menu",
                "main.sales_menu",
                "main.desk"
            ]
        );
        // Nothing more happens after the transfer.
        assert!(c.press("1").is_empty());
        assert_eq!(c.run.poll_timeout(), None);
    }

    #[test]
    fn a_digit_during_an_interruptible_play_is_type_ahead_for_the_menu() {
        let mut c = Caller::new(DEMO, "main");
        c.start();
        assert_eq!(
            c.press("3"),
            ["transfer(Mailbox { mailbox: \"200\", greeting: Unavailable })"]
        );
    }

    #[test]
    fn digits_during_a_non_interruptible_play_are_ignored() {
        let mut c = Caller::new(
            &DEMO.replace("interruptible = true", "interruptible = false"),
            "main",
        );
        c.start();
        assert!(c.press("3").is_empty());
        assert_eq!(c.done(), ["play(main-menu)!"]);
        assert_eq!(
            c.press("9"),
            ["transfer(VoicemailRetrieval { mailbox: None })"]
        );
    }

    #[test]
    fn no_input_timeouts_count_from_the_end_of_the_prompt_then_fall_back() {
        let mut c = Caller::new(DEMO, "main");
        c.start();
        c.done();
        // The menu prompt is still playing: no timer runs, however long it takes.
        assert_eq!(c.run.poll_timeout(), None);
        assert!(c.wait(30.0).is_empty());
        assert!(c.done().is_empty());
        assert_eq!(c.run.poll_timeout(), Some(c.now + Duration::from_secs(10)));
        assert!(c.wait(9.9).is_empty());
        assert_eq!(c.wait(0.1), ["play(no-input,main-menu)!"]);
        c.done();
        assert_eq!(c.wait(10.0), ["play(no-input,main-menu)!"]);
        c.done();
        // The third timeout goes to the fallback: goodbye, then BYE after it was played.
        assert_eq!(c.wait(10.0), ["play(goodbye)"]);
        assert!(!c.run.is_finished());
        assert_eq!(c.done(), ["hangup"]);
        assert!(c.run.is_finished());
    }

    #[test]
    fn invalid_digits_replay_the_menu_and_max_failures_fall_back() {
        let mut c = Caller::new(
            &DEMO.replace("fallback = \"bye\"", "fallback = \"bye\"\nmax_timeouts = 2"),
            "main",
        );
        c.start();
        c.done();
        assert_eq!(c.press("7"), ["play(invalid,main-menu)!"]);
        // Timeouts and failures are counted apart: one timeout does not end it.
        c.done();
        assert_eq!(c.wait(10.0), ["play(no-input,main-menu)!"]);
        assert_eq!(c.press("8"), ["play(invalid,main-menu)!"]);
        assert_eq!(c.press("*"), ["play(goodbye)"]);
        assert_eq!(c.done(), ["hangup"]);
    }

    #[test]
    fn counters_restart_when_the_menu_is_entered_again() {
        let mut c = Caller::new(&two_level(), "main");
        c.start();
        c.done();
        assert_eq!(c.press("7"), ["play(invalid,main-menu)!"]);
        assert_eq!(c.press("7"), ["play(invalid,main-menu)!"]);
        assert_eq!(c.press("1"), ["play(sales-menu)!"]);
        assert_eq!(c.press("0"), ["play(main-menu)!"]);
        assert_eq!(c.press("7"), ["play(invalid,main-menu)!"]);
        assert_eq!(c.press("7"), ["play(invalid,main-menu)!"]);
        assert_eq!(c.press("7"), ["play(goodbye)"]);
    }

    const MULTI: &str = r#"
[flows.m]
start = "menu"
[flows.m.nodes.menu]
type = "menu"
prompts = ["main-menu"]
options = { "1" = "one", "12" = "twelve", "3" = "three", "42" = "fortytwo" }
fallback = "bye"
[flows.m.nodes.one]
type = "queue"
queue = "one"
[flows.m.nodes.twelve]
type = "queue"
queue = "twelve"
[flows.m.nodes.three]
type = "queue"
queue = "three"
[flows.m.nodes.fortytwo]
type = "queue"
queue = "fortytwo"
[flows.m.nodes.bye]
type = "hangup"
"#;

    #[test]
    fn multi_digit_options_wait_for_the_inter_digit_timeout() {
        // "1" alone: waits 2 s for a second digit, then takes "1".
        let mut c = Caller::new(MULTI, "m");
        c.start();
        assert!(c.press("1").is_empty());
        assert_eq!(c.run.poll_timeout(), Some(c.now + Duration::from_secs(2)));
        assert!(c.wait(1.9).is_empty());
        assert_eq!(c.wait(0.1), ["transfer(Queue(\"one\"))"]);

        // "1" then "2" in time: "12" at once.
        let mut c = Caller::new(MULTI, "m");
        c.start();
        c.press("1");
        c.wait(1.5);
        assert_eq!(c.press("2"), ["transfer(Queue(\"twelve\"))"]);

        // "3" has no longer option: at once.
        let mut c = Caller::new(MULTI, "m");
        c.start();
        assert_eq!(c.press("3"), ["transfer(Queue(\"three\"))"]);

        // "4" then silence: "4" is no option, so invalid; "4" "#" likewise at once.
        let mut c = Caller::new(MULTI, "m");
        c.start();
        assert!(c.press("4").is_empty());
        assert_eq!(c.wait(2.0), ["play(invalid,main-menu)!"]);
        assert_eq!(c.press("4#"), ["play(invalid,main-menu)!"]);
        // "1#" ends the entry early: "1".
        assert_eq!(c.press("1#"), ["transfer(Queue(\"one\"))"]);

        // "4" then "1": no option starts with "41": invalid at once.
        let mut c = Caller::new(MULTI, "m");
        c.start();
        assert_eq!(c.press("41"), ["play(invalid,main-menu)!"]);
    }

    fn collect(extra: &str) -> String {
        format!(
            r#"
[flows.f]
start = "c"
[flows.f.nodes.c]
type = "collect"
prompts = ["enter-account"]
variable = "account"
max_len = 6
fallback = "bye"
next = "say"
{extra}
[flows.f.nodes.say]
type = "say_digits"
variable = "account"
next = "route"
[flows.f.nodes.route]
type = "external"
trunk = "pstn"
number = "00${{account}}"
[flows.f.nodes.bye]
type = "hangup"
prompts = ["goodbye"]
"#
        )
    }

    #[test]
    fn collect_ends_on_the_terminator_and_says_the_digits() {
        let mut c = Caller::new(&collect(""), "f");
        assert_eq!(c.start(), ["play(enter-account)!"]);
        assert!(c.press("12").is_empty());
        assert_eq!(c.press("3#"), ["play(1,2,3)"]);
        assert_eq!(
            c.run.variables().get("account").map(String::as_str),
            Some("123")
        );
        // The say prompts are not interruptible.
        assert!(c.press("5").is_empty());
        assert_eq!(
            c.done(),
            ["transfer(External { trunk: \"pstn\", number: \"00123\" })"]
        );
    }

    #[test]
    fn collect_enforces_min_len_max_len_and_inter_digit_timeout() {
        let mut c = Caller::new(&collect("min_len = 3"), "f");
        c.start();
        assert_eq!(c.press("12#"), ["play(invalid,enter-account)!"]);
        assert_eq!(c.run.variables().get("account"), None);
        // max_len (6) ends the entry without a terminator.
        assert_eq!(c.press("123456"), ["play(1,2,3,4,5,6)"]);

        let mut c = Caller::new(&collect("min_len = 3"), "f");
        c.start();
        c.press("1234");
        assert!(c.wait(4.9).is_empty());
        assert_eq!(c.wait(0.1), ["play(1,2,3,4)"]);
    }

    #[test]
    fn collect_checks_the_pattern_and_falls_back_after_max_failures() {
        let mut c = Caller::new(&collect("pattern = \"ZXXX\"\nmax_failures = 2"), "f");
        c.start();
        assert_eq!(c.press("0123#"), ["play(invalid,enter-account)!"]);
        assert_eq!(c.press("#"), ["play(goodbye)"]);
        assert_eq!(c.done(), ["hangup"]);

        let mut c = Caller::new(&collect("pattern = \"ZXXX\"\nmax_failures = 2"), "f");
        c.start();
        assert_eq!(c.press("9123#"), ["play(9,1,2,3)"]);
    }

    #[test]
    fn collect_timeouts_replay_with_the_timeout_prompts() {
        let mut c = Caller::new(&collect("max_timeouts = 2"), "f");
        c.start();
        c.done();
        assert_eq!(c.wait(10.0), ["play(no-input,enter-account)!"]);
        c.done();
        assert_eq!(c.wait(10.0), ["play(goodbye)"]);
    }

    const HOURS: &str = r#"
[flows.h]
start = "check"
[flows.h.nodes.check]
type = "hours"
zone = "Europe/Warsaw"
windows = [{ days = "mon-fri", from = "08:00", to = "17:00" }]
closed_dates = ["2026-12-24"]
open = "open"
closed = "closed"
[flows.h.nodes.open]
type = "queue"
queue = "sales"
[flows.h.nodes.closed]
type = "hangup"
prompts = ["closed"]
"#;

    fn wall(rfc3339: &str) -> SystemTime {
        let ts: jiff::Timestamp = rfc3339.parse().unwrap();
        UNIX_EPOCH + Duration::from_secs(ts.as_second() as u64)
    }

    #[test]
    fn hours_nodes_use_the_wall_clock_of_the_call() {
        // Wednesday 2026-01-14 16:58 in Warsaw (UTC+1).
        let mut c = Caller::at(HOURS, "h", wall("2026-01-14T15:58:00Z"));
        c.now += Duration::from_secs(60);
        assert_eq!(c.start(), ["transfer(Queue(\"sales\"))"]);
        // Same call start, but the flow reaches the node two minutes later: 17:00, closed.
        let mut c = Caller::at(HOURS, "h", wall("2026-01-14T15:58:00Z"));
        c.now += Duration::from_secs(120);
        assert_eq!(c.start(), ["play(closed)"]);
        // After the spring DST change (2026-03-30, UTC+2) 06:30Z is 08:30: open; a
        // fixed UTC+1 offset would say 07:30 and closed.
        let mut c = Caller::at(HOURS, "h", wall("2026-03-30T06:30:00Z"));
        assert_eq!(c.start(), ["transfer(Queue(\"sales\"))"]);
        // A Thursday that is a closed date.
        let mut c = Caller::at(HOURS, "h", wall("2026-12-24T10:00:00Z"));
        assert_eq!(c.start(), ["play(closed)"]);
    }

    #[test]
    fn set_and_branch_route_on_variables() {
        let text = r#"
[flows.b]
start = "c"
[flows.b.nodes.c]
type = "collect"
prompts = ["enter-account"]
variable = "acct"
max_len = 4
fallback = "bye"
next = "tag"
[flows.b.nodes.tag]
type = "set"
variable = "ref"
value = "A-${acct}"
next = "vip"
[flows.b.nodes.vip]
type = "branch"
variable = "acct"
match = "prefix"
cases = { "9" = "gold", "99" = "platinum" }
default = "std"
[flows.b.nodes.gold]
type = "queue"
queue = "gold"
[flows.b.nodes.platinum]
type = "queue"
queue = "platinum"
[flows.b.nodes.std]
type = "queue"
queue = "std"
[flows.b.nodes.bye]
type = "hangup"
"#;
        for (digits, queue) in [("9912", "platinum"), ("9012", "gold"), ("1999", "std")] {
            let mut c = Caller::new(text, "b");
            c.start();
            for d in digits.chars() {
                c.run.handle_input(c.now, AppInput::Digit(d));
            }
            let action = c.run.poll_action();
            let Some(Action::Transfer(Target::Queue(q), vars)) = action else {
                panic!("{digits}: {action:?}");
            };
            assert_eq!(q, queue, "{digits}");
            assert_eq!(vars.get("ref"), Some(&format!("A-{digits}")));
        }
    }

    #[test]
    fn a_runaway_flow_hangs_up_at_the_step_limit() {
        // Validation rejects this loop; the engine must survive it anyway.
        let set = |name: &str, next| Node {
            name: Arc::from(name),
            kind: Kind::Set {
                variable: "x".into(),
                value: Template::literal("1"),
                next,
            },
        };
        let flow = Arc::new(Flow {
            name: Arc::from("loop"),
            start: 0,
            nodes: vec![set("a", 1), set("b", 0)],
        });
        let now = Instant::now();
        let mut run = FlowRun::with_flow(flow, Variables::new(), now, UNIX_EPOCH);
        run.handle_input(now, AppInput::Start);
        assert!(matches!(run.poll_action(), Some(Action::Hangup)));
        assert!(run.poll_action().is_none());
        assert!(run.is_finished());
        let mut entered = 0;
        while run.poll_node_entered().is_some() {
            entered += 1;
        }
        assert_eq!(entered, MAX_STEPS);
    }

    #[test]
    fn unknown_flows_are_an_error() {
        let set = Arc::new(parse(DEMO).unwrap());
        let e =
            FlowRun::new(set, "nope", Variables::new(), Instant::now(), UNIX_EPOCH).unwrap_err();
        assert!(matches!(e, EngineError::UnknownFlow(f) if f == "nope"));
    }
}
