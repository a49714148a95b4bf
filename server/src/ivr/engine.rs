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
