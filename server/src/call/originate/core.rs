//! The decisions of one originated call, sans-IO: what the call actor does after the
//! contact answers, and how the dial ends.
//!
//! Inputs: the customer leg's progress ([`DialCore::handle_ringing`],
//! [`DialCore::handle_failed`], [`DialCore::handle_answered`]), the contact's decoded
//! audio ([`DialCore::handle_audio`], 8 kHz), an agent taking the call
//! ([`DialCore::handle_connected`]), a prompt ending ([`DialCore::handle_prompt_finished`]),
//! a route that cannot be taken ([`DialCore::handle_route_failed`]), the clock
//! ([`DialCore::handle_timeout`]) and the end of the call ([`DialCore::handle_ended`]).
//! Outputs: [`DialAction`]s by [`DialCore::poll_action`] (events for the campaign, where
//! the person goes, a prompt to play, hang up) and [`DialCore::poll_timeout`].
//!
//! ```text
//! answered --AMD (or none)--> verdict
//!   machine: Hangup -> HangUp                          Done(Machine{false})
//!            Message(p) -> wait for the beep (BEEP_WAIT at most) -> Play(p)
//!                       -> prompt finished -> HangUp   Done(Machine{true})
//!   human / unknown: Route(on_human)
//!     Agent / Queue: an agent within abandon_after of the verdict -> Connected
//!                    -> call ends                      Done(Connected{agent, amd})
//!                    else -> Abandoned (event), Abandon, Play(safe_harbor) -> HangUp
//!                                                      Done(Abandoned{amd})
//!     Agentless: the prompt or flow plays -> call ends  Done(Played{amd})
//! ```
//!
//! The 2 s clock starts at the verdict (the end of the person's greeting, which is what
//! the abandoned-call rules measure from), or at the answer without AMD. A person who
//! hangs up before an agent took the call, or during detection, counts as abandoned
//! (the conservative reading: it is never re-dialed within the rule's hold-off).
//! Audio that does not arrive is silence to the detector: it is padded by the clock, so
//! a contact that sends no RTP still gets a verdict (unknown, after the initial silence).

use crate::acd::{AgentId, CallKey};
use crate::call::leg::FailReason;
use crate::dialer::amd::{Amd, AmdEvent, AmdOutcome, SAMPLE_RATE};
use crate::dialer::campaign::CallResult;
use crate::dialer::config::MachineAction;
use crate::dialer::originate::{HumanRoute, Originate, OriginateEvent};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a machine's greeting may go on after the verdict before the message plays
/// anyway (no beep heard).
pub const BEEP_WAIT: Duration = Duration::from_secs(15);

/// Audio that may be late (jitter) before the detector counts it as silence.
const AUDIO_SLACK: Duration = Duration::from_millis(300);

/// One AMD frame: 20 ms at 8 kHz.
const FRAME: usize = 160;

/// How long `n` samples last.
fn samples_time(n: u64) -> Duration {
    Duration::from_micros(n * 1_000_000 / u64::from(SAMPLE_RATE))
}

/// What the call actor does next.
#[derive(Debug, Clone, PartialEq)]
pub enum DialAction {
    /// Tell the campaign (the last one is `Done`).
    Event(OriginateEvent),
    /// Send the person to this route (an agent, a queue, a prompt or flow).
    Route(HumanRoute),
    /// Play this library prompt (stop what plays); `handle_prompt_finished` follows.
    Play(String),
    /// No agent in time: leave the queue, hang up the agents' ringing phones.
    Abandon,
    /// Stop capturing the contact's audio (detection is over).
    StopCapture,
    /// Hang up the contact.
    HangUp,
}

/// Where the dial is.
#[derive(Debug, Clone, PartialEq)]
enum State {
    /// INVITE out, no answer yet.
    Dialing,
    /// Answered, AMD listening.
    Detecting,
    /// A machine: waiting for its beep before the message.
    AwaitingBeep { until: Instant, prompt: String },
    /// A machine hears the message.
    LeavingMessage,
    /// A machine hung up on (or hanging up).
    MachineDone { message_left: bool },
    /// A person waits for an agent until `deadline`.
    AwaitingAgent { deadline: Instant },
    /// A person talks to an agent.
    Connected { agent: AgentId },
    /// A person left without an agent hears the safe-harbor prompt.
    Abandoning,
    /// Agentless: the prompt or flow plays.
    Playing,
    /// Over (`Done` sent).
    Done,
}

/// One originated call's decisions (see the module doc).
#[derive(Debug)]
pub struct DialCore {
    on_human: HumanRoute,
    on_machine: MachineAction,
    safe_harbor: Option<String>,
    abandon_after: Duration,
    amd: Option<Amd>,
    verdict: Option<AmdOutcome>,
    state: State,
    /// When the contact answered, and the audio fed to the detector since.
    answered_at: Option<Instant>,
    fed: u64,
    /// Set by a failure before the answer.
    failure: Option<CallResult>,
    actions: VecDeque<DialAction>,
    frame: Vec<i16>,
}

impl DialCore {
    /// The core of `dial` (its AMD parameters, routes and prompts).
    pub fn new(dial: &Originate) -> DialCore {
        DialCore {
            on_human: dial.on_human.clone(),
            on_machine: dial.on_machine.clone(),
            safe_harbor: dial.safe_harbor.clone(),
            abandon_after: dial.abandon_after,
            amd: dial.request.amd.map(Amd::new),
            verdict: None,
            state: State::Dialing,
            answered_at: None,
            fed: 0,
            failure: None,
            actions: VecDeque::new(),
            frame: Vec::with_capacity(FRAME),
        }
    }

    /// The AMD verdict, once known.
    pub fn verdict(&self) -> Option<AmdOutcome> {
        self.verdict
    }

    /// Whether the contact's audio is wanted ([`DialCore::handle_audio`]).
    pub fn wants_audio(&self) -> bool {
        matches!(self.state, State::Detecting | State::AwaitingBeep { .. })
    }

    /// Whether the dial is over (`Done` queued).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The contact's phone rings.
    pub fn handle_ringing(&mut self) {
        if self.state == State::Dialing {
            self.actions
                .push_back(DialAction::Event(OriginateEvent::Ringing));
        }
    }

    /// The customer leg failed before the answer (or could not be placed: `reason`
    /// `None` with `text`).
    pub fn handle_failed(&mut self, reason: Option<FailReason>, status: u16, text: &str) {
        if self.state != State::Dialing {
            return;
        }
        let result = match reason {
            Some(FailReason::Busy) => CallResult::Busy,
            Some(FailReason::NoAnswer) => CallResult::NoAnswer,
            Some(r) if status != 0 => CallResult::Failed {
                reason: format!("{} ({status})", r.as_str()),
            },
            Some(r) => CallResult::Failed {
                reason: r.as_str().to_string(),
            },
            None => CallResult::Failed {
                reason: text.to_string(),
            },
        };
        self.failure = Some(result);
        self.handle_ended();
    }

    /// The contact answered at `now`.
    pub fn handle_answered(&mut self, now: Instant) {
        if self.state != State::Dialing {
            return;
        }
        self.answered_at = Some(now);
        if self.amd.is_some() {
            self.state = State::Detecting;
        } else {
            self.on_verdict(now, None);
        }
    }

    /// The contact's decoded audio (8 kHz) that arrived by `now`.
    pub fn handle_audio(&mut self, now: Instant, samples: &[i16]) {
        if !self.wants_audio() {
            return;
        }
        for &s in samples {
            self.frame.push(s);
            if self.frame.len() == FRAME {
                self.feed_frame(now);
            }
        }
        self.pad_silence(now);
    }

    /// The clock: missing audio is silence, the beep wait and the 2 s rule expire.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.pad_silence(now);
        match self.state.clone() {
            State::AwaitingBeep { until, prompt } if now >= until => {
                self.leave_message(prompt);
            }
            State::AwaitingAgent { deadline } if now >= deadline => self.abandon(),
            _ => {}
        }
    }

    /// When [`DialCore::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            // When the next whole frame of audio is overdue (then it is silence).
            State::Detecting => self
                .answered_at
                .map(|t| t + samples_time(self.fed + FRAME as u64) + AUDIO_SLACK),
            State::AwaitingBeep { until, .. } => Some(*until),
            State::AwaitingAgent { deadline } => Some(*deadline),
            _ => None,
        }
    }

    /// An agent took the call (`call` is the ACD's key).
    pub fn handle_connected(&mut self, agent: AgentId, call: CallKey) {
        if !matches!(self.state, State::AwaitingAgent { .. }) {
            return;
        }
        self.actions
            .push_back(DialAction::Event(OriginateEvent::Connected {
                agent: agent.clone(),
                call,
            }));
        self.state = State::Connected { agent };
    }

    /// A prompt we asked for ended. Returns whether it was ours (then the actions say
    /// what follows).
    pub fn handle_prompt_finished(&mut self) -> bool {
        match self.state {
            State::LeavingMessage => {
                self.state = State::MachineDone { message_left: true };
                self.actions.push_back(DialAction::HangUp);
                true
            }
            State::Abandoning => {
                self.actions.push_back(DialAction::HangUp);
                true
            }
            _ => false,
        }
    }

    /// The agent or queue route could not be taken (no such queue, no agent serving
    /// one, the ACD gone): a person waiting for an agent is abandoned now. Returns
    /// whether the dial took it (`false`: not waiting for an agent).
    pub fn handle_route_failed(&mut self) -> bool {
        if matches!(self.state, State::AwaitingAgent { .. }) {
            self.abandon();
            return true;
        }
        false
    }

    /// The call is over (either side hung up, or it never started): `Done` with the
    /// result, once.
    pub fn handle_ended(&mut self) {
        if self.state == State::Done {
            return;
        }
        let amd = self.verdict;
        let result = match std::mem::replace(&mut self.state, State::Done) {
            State::Dialing => self.failure.take().unwrap_or(CallResult::Failed {
                reason: "ended before the answer".into(),
            }),
            State::AwaitingBeep { .. } | State::LeavingMessage => CallResult::Machine {
                message_left: false,
            },
            State::MachineDone { message_left } => CallResult::Machine { message_left },
            State::Connected { agent } => CallResult::Connected {
                agent: agent.to_string(),
                amd,
            },
            State::Detecting | State::AwaitingAgent { .. } | State::Abandoning => {
                CallResult::Abandoned { amd }
            }
            State::Playing => CallResult::Played { amd },
            State::Done => return,
        };
        self.actions
            .push_back(DialAction::Event(OriginateEvent::Done(result)));
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<DialAction> {
        self.actions.pop_front()
    }

    fn feed_frame(&mut self, now: Instant) {
        let Some(amd) = self.amd.as_mut() else {
            self.frame.clear();
            return;
        };
        amd.handle_frame(&self.frame);
        self.fed += self.frame.len() as u64;
        self.frame.clear();
        while let Some(ev) = self.amd.as_mut().and_then(|a| a.poll_event()) {
            match ev {
                AmdEvent::Verdict(v) => self.on_verdict(now, Some(v.outcome)),
                AmdEvent::Beep { .. } => self.on_beep(),
            }
        }
    }

    /// Feeds silence for the audio that should have arrived by `now` and did not.
    fn pad_silence(&mut self, now: Instant) {
        let Some(at) = self.answered_at else {
            return;
        };
        if !self.wants_audio() {
            return;
        }
        let Some(due) = now.checked_duration_since(at + AUDIO_SLACK) else {
            return;
        };
        let due_samples = due.as_micros() as u64 * u64::from(SAMPLE_RATE) / 1_000_000;
        while self.wants_audio() && self.fed + (self.frame.len() as u64) < due_samples {
            self.frame.push(0);
            if self.frame.len() == FRAME {
                self.feed_frame(now);
            }
        }
    }

    fn on_beep(&mut self) {
        if let State::AwaitingBeep { prompt, .. } = self.state.clone() {
            self.leave_message(prompt);
        }
    }

    fn on_verdict(&mut self, now: Instant, outcome: Option<AmdOutcome>) {
        if !matches!(self.state, State::Dialing | State::Detecting) {
            return;
        }
        self.verdict = outcome;
        self.actions
            .push_back(DialAction::Event(OriginateEvent::Answered { amd: outcome }));
        if outcome == Some(AmdOutcome::Machine) {
            match self.on_machine.clone() {
                MachineAction::Hangup => {
                    self.state = State::MachineDone {
                        message_left: false,
                    };
                    self.actions.push_back(DialAction::StopCapture);
                    self.actions.push_back(DialAction::HangUp);
                }
                MachineAction::Message(prompt) => {
                    // A beep heard before the verdict: the machine records already.
                    let beeped = self.amd.as_ref().is_some_and(|a| {
                        a.verdict()
                            .is_some_and(|v| v.reason == crate::dialer::amd::AmdReason::Beep)
                    });
                    if beeped {
                        self.leave_message(prompt);
                    } else {
                        self.state = State::AwaitingBeep {
                            until: now + BEEP_WAIT,
                            prompt,
                        };
                    }
                }
            }
            return;
        }
        self.actions.push_back(DialAction::StopCapture);
        match self.on_human.clone() {
            route @ (HumanRoute::Agent(_) | HumanRoute::Queue(_)) => {
                self.state = State::AwaitingAgent {
                    deadline: now + self.abandon_after,
                };
                self.actions.push_back(DialAction::Route(route));
            }
            route @ HumanRoute::Agentless(_) => {
                self.state = State::Playing;
                self.actions.push_back(DialAction::Route(route));
            }
        }
    }

    fn leave_message(&mut self, prompt: String) {
        self.state = State::LeavingMessage;
        self.actions.push_back(DialAction::StopCapture);
        self.actions.push_back(DialAction::Play(prompt));
    }

    fn abandon(&mut self) {
        self.actions
            .push_back(DialAction::Event(OriginateEvent::Abandoned));
        self.actions.push_back(DialAction::Abandon);
        match self.safe_harbor.clone() {
            Some(p) => {
                self.state = State::Abandoning;
                self.actions.push_back(DialAction::Play(p));
            }
            None => {
                self.state = State::Abandoning;
                self.actions.push_back(DialAction::HangUp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialer::amd::AmdParams;
    use crate::dialer::campaign::DialRequest;
    use crate::dialer::config::AgentlessAction;
    use crate::dialer::phone::E164;

    fn dial(amd: bool, on_human: HumanRoute, on_machine: MachineAction) -> Originate {
        Originate {
            request: DialRequest {
                campaign: "demo".into(),
                attempt: 1,
                contact: 7,
                number: E164::from_e164("+4930123456").unwrap(),
                caller_id: E164::from_e164("+4930999999").unwrap(),
                trunk: "carrier".into(),
                ring_timeout: Duration::from_secs(20),
                agent: None,
                amd: amd.then(AmdParams::default),
                variables: Default::default(),
            },
            on_human,
            on_machine,
            safe_harbor: Some("safe-harbor".into()),
            abandon_after: Duration::from_secs(2),
        }
    }

    fn agent() -> HumanRoute {
        HumanRoute::Agent("alice".into())
    }

    fn drain(c: &mut DialCore) -> Vec<DialAction> {
        std::iter::from_fn(|| c.poll_action()).collect()
    }

    /// Noise "speech" (a steady tone would be a beep).
    fn speech(ms: u64, seed: &mut u32) -> Vec<i16> {
        (0..ms * 8)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 17;
                *seed ^= *seed << 5;
                (*seed % 6000) as i16 - 3000
            })
            .collect()
    }

    fn tone(ms: u64) -> Vec<i16> {
        (0..ms * 8)
            .map(|i| {
                (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 8000.0).sin()) as i16
            })
            .collect()
    }

    /// Feeds `audio` in 20 ms packets as a real-time call would, from `*t`.
    fn feed(c: &mut DialCore, t: &mut Instant, audio: &[i16]) -> Vec<DialAction> {
        let mut out = Vec::new();
        for chunk in audio.chunks(160) {
            *t += Duration::from_millis(20);
            c.handle_audio(*t, chunk);
            c.handle_timeout(*t);
            out.extend(drain(c));
        }
        out
    }

    fn done(actions: &[DialAction]) -> Option<&CallResult> {
        actions.iter().find_map(|a| match a {
            DialAction::Event(OriginateEvent::Done(r)) => Some(r),
            _ => None,
        })
    }

    #[test]
    fn failures_before_the_answer_map_to_results() {
        let cases = [
            (Some(FailReason::Busy), 486, CallResult::Busy),
            (Some(FailReason::Busy), 600, CallResult::Busy),
            (Some(FailReason::NoAnswer), 0, CallResult::NoAnswer),
            (
                Some(FailReason::NotFound),
                404,
                CallResult::Failed {
                    reason: "not_found (404)".into(),
                },
            ),
            (
                None,
                0,
                CallResult::Failed {
                    reason: "no such trunk".into(),
                },
            ),
        ];
        for (reason, status, want) in cases {
            let mut c = DialCore::new(&dial(true, agent(), MachineAction::Hangup));
            c.handle_ringing();
            c.handle_failed(reason, status, "no such trunk");
            let a = drain(&mut c);
            assert_eq!(a[0], DialAction::Event(OriginateEvent::Ringing));
            assert_eq!(done(&a), Some(&want), "{reason:?} {status}");
            c.handle_ended();
            assert!(drain(&mut c).is_empty(), "Done only once");
        }
    }

    #[test]
    fn hello_then_silence_is_a_person_offered_to_the_agent_then_connected() {
        let mut c = DialCore::new(&dial(true, agent(), MachineAction::Hangup));
        let mut t = Instant::now();
        c.handle_answered(t);
        assert!(c.wants_audio());
        let mut seed = 1;
        let mut a = feed(&mut c, &mut t, &speech(400, &mut seed));
        a.extend(feed(&mut c, &mut t, &vec![0; 8 * 1200]));
        assert_eq!(
            a[0],
            DialAction::Event(OriginateEvent::Answered {
                amd: Some(AmdOutcome::Human)
            })
        );
        assert!(a.contains(&DialAction::Route(agent())));
        assert!(!c.wants_audio());
        // The agent answers in time: connected; the end reports it.
        c.handle_connected("alice".into(), 42);
        c.handle_timeout(t + Duration::from_secs(10));
        let a = drain(&mut c);
        assert_eq!(
            a,
            vec![DialAction::Event(OriginateEvent::Connected {
                agent: "alice".into(),
                call: 42
            })]
        );
        c.handle_ended();
        assert_eq!(
            done(&drain(&mut c)),
            Some(&CallResult::Connected {
                agent: "alice".into(),
                amd: Some(AmdOutcome::Human)
            })
        );
    }

    #[test]
    fn no_agent_within_two_seconds_of_the_verdict_is_abandoned_with_safe_harbor() {
        let mut c = DialCore::new(&dial(
            false,
            HumanRoute::Queue("sales".into()),
            MachineAction::Hangup,
        ));
        let t0 = Instant::now();
        c.handle_answered(t0);
        let a = drain(&mut c);
        assert_eq!(
            a[0],
            DialAction::Event(OriginateEvent::Answered { amd: None })
        );
        assert!(a.contains(&DialAction::Route(HumanRoute::Queue("sales".into()))));
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(2)));
        c.handle_timeout(t0 + Duration::from_millis(1999));
        assert!(drain(&mut c).is_empty());
        c.handle_timeout(t0 + Duration::from_secs(2));
        assert_eq!(
            drain(&mut c),
            vec![
                DialAction::Event(OriginateEvent::Abandoned),
                DialAction::Abandon,
                DialAction::Play("safe-harbor".into())
            ]
        );
        // An agent answering after the abandon is not a connection.
        c.handle_connected("bob".into(), 1);
        assert!(drain(&mut c).is_empty());
        assert!(c.handle_prompt_finished());
        assert_eq!(drain(&mut c), vec![DialAction::HangUp]);
        c.handle_ended();
        assert_eq!(
            done(&drain(&mut c)),
            Some(&CallResult::Abandoned { amd: None })
        );
    }

    #[test]
    fn a_route_that_fails_abandons_at_once() {
        let mut c = DialCore::new(&dial(false, agent(), MachineAction::Hangup));
        c.handle_answered(Instant::now());
        drain(&mut c);
        assert!(c.handle_route_failed());
        assert_eq!(
            drain(&mut c)[..2],
            [
                DialAction::Event(OriginateEvent::Abandoned),
                DialAction::Abandon
            ]
        );
        assert!(!c.handle_route_failed());
    }

    #[test]
    fn long_greeting_then_beep_leaves_the_message_after_the_beep() {
        let mut c = DialCore::new(&dial(
            true,
            agent(),
            MachineAction::Message("machine-message".into()),
        ));
        let mut t = Instant::now();
        c.handle_answered(t);
        let mut seed = 7;
        let a = feed(&mut c, &mut t, &speech(3000, &mut seed));
        assert_eq!(
            a,
            vec![DialAction::Event(OriginateEvent::Answered {
                amd: Some(AmdOutcome::Machine)
            })]
        );
        assert!(c.wants_audio(), "listening for the beep");
        // The greeting goes on, then the beep: the message plays once the tone ends.
        let mut a = feed(&mut c, &mut t, &speech(2000, &mut seed));
        assert!(a.is_empty(), "{a:?}");
        a.extend(feed(&mut c, &mut t, &tone(400)));
        a.extend(feed(&mut c, &mut t, &vec![0; 8 * 300]));
        assert_eq!(
            a,
            vec![
                DialAction::StopCapture,
                DialAction::Play("machine-message".into())
            ]
        );
        assert!(c.handle_prompt_finished());
        assert_eq!(drain(&mut c), vec![DialAction::HangUp]);
        c.handle_ended();
        assert_eq!(
            done(&drain(&mut c)),
            Some(&CallResult::Machine { message_left: true })
        );
    }

    #[test]
    fn a_machine_without_a_beep_gets_the_message_after_the_wait() {
        let mut c = DialCore::new(&dial(
            true,
            agent(),
            MachineAction::Message("machine-message".into()),
        ));
        let mut t = Instant::now();
        c.handle_answered(t);
        let mut seed = 3;
        feed(&mut c, &mut t, &speech(3000, &mut seed));
        let until = c.poll_timeout().unwrap();
        // BEEP_WAIT after the verdict (which came while the greeting went on).
        assert!(until > t && until <= t + BEEP_WAIT, "{:?}", until - t);
        c.handle_timeout(until - Duration::from_millis(1));
        assert!(drain(&mut c).is_empty());
        c.handle_timeout(until);
        assert_eq!(
            drain(&mut c),
            vec![
                DialAction::StopCapture,
                DialAction::Play("machine-message".into())
            ]
        );
        // The machine hangs up during the message: not left.
        c.handle_ended();
        assert_eq!(
            done(&drain(&mut c)),
            Some(&CallResult::Machine {
                message_left: false
            })
        );
    }

    #[test]
    fn machine_hangup_action() {
        let mut c = DialCore::new(&dial(true, agent(), MachineAction::Hangup));
        let mut t = Instant::now();
        c.handle_answered(t);
        let mut seed = 5;
        let a = feed(&mut c, &mut t, &speech(3000, &mut seed));
        assert_eq!(a[1..], [DialAction::StopCapture, DialAction::HangUp]);
        c.handle_ended();
        assert_eq!(
            done(&drain(&mut c)),
            Some(&CallResult::Machine {
                message_left: false
            })
        );
    }

    #[test]
    fn a_contact_that_sends_no_audio_is_unknown_by_the_clock_and_routed_like_a_person() {
        let route = HumanRoute::Agentless(AgentlessAction::Prompt("offer".into()));
        let mut c = DialCore::new(&dial(true, route.clone(), MachineAction::Hangup));
        let t0 = Instant::now();
        c.handle_answered(t0);
        let mut t = t0;
        let mut a = Vec::new();
        // Only the clock: the core wakes itself up by poll_timeout.
        for _ in 0..1000 {
            let Some(next) = c.poll_timeout() else { break };
            assert!(next > t, "the deadline moves on");
            t = next;
            c.handle_timeout(t);
            a.extend(drain(&mut c));
        }
        assert_eq!(
            a[0],
            DialAction::Event(OriginateEvent::Answered {
                amd: Some(AmdOutcome::Unknown)
            })
        );
        assert!(a.contains(&DialAction::Route(route)));
        // Unknown after the initial silence (2.5 s) plus the jitter slack, not later.
        assert!(t - t0 <= Duration::from_millis(2500) + AUDIO_SLACK + Duration::from_millis(40));
        c.handle_ended();
        assert_eq!(
            done(&drain(&mut c)),
            Some(&CallResult::Played {
                amd: Some(AmdOutcome::Unknown)
            })
        );
    }

    #[test]
    fn hanging_up_during_detection_counts_as_abandoned() {
        let mut c = DialCore::new(&dial(true, agent(), MachineAction::Hangup));
        c.handle_answered(Instant::now());
        c.handle_ended();
        assert_eq!(
            done(&drain(&mut c)),
            Some(&CallResult::Abandoned { amd: None })
        );
    }
}
