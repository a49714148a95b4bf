//! The application host: runs a call's [`CallApp`] (IVR flow, voicemail deposit or
//! retrieval) against its RTP session.
//!
//! It turns the app's [`Action`]s into playback on the [`RtpSession`] and recordings in
//! voicemail storage, and the call's inputs into [`AppInput`]s: prompt ends, DTMF from
//! RFC 4733, SIP INFO and in-band detection (one key press delivered once, whichever ways
//! the caller's device sends it), and 20 ms frames of the caller's audio. A `Transfer`
//! starts the next application (deposit, retrieval), hands an `extension` target to the
//! call ([`HostOutcome::Connect`]: the call dials it and bridges the media; a failure
//! comes back as [`AppHost::connect_failed`]), or, for targets that are not built yet
//! (queues, trunks: the ACD issue), plays `transfer-unavailable` and hangs up.

use super::CallContext;
use crate::ivr::engine::FlowRun;
use crate::ivr::{Action, AppInput, CallApp, Playable, SaveOutcome, Target, Variables};
use crate::media::dtmf::DtmfDigit;
use crate::media::dtmf_dedup::{DtmfDedup, DtmfSource};
use crate::media::inband::InbandDetector;
use crate::media::session::RtpSession;
use crate::media::wav::Prompt;
use crate::metrics as m;
use crate::voicemail::deposit::Deposit;
use crate::voicemail::recorder::Recording;
use crate::voicemail::retrieval::Retrieval;
use crate::voicemail::VoicemailAccess;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

/// Samples in one 20 ms frame at 8 kHz.
const FRAME: usize = 160;
/// Window in which the same digit arriving another way is the same key press.
const DEDUP_WINDOW: Duration = Duration::from_millis(500);
/// Most actions handled per input (a runaway app cannot stall the call).
const MAX_ACTIONS_PER_STEP: usize = 256;

/// What the call must do after the host ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostOutcome {
    /// Keep going.
    Continue,
    /// The application hung up: end the call with BYE.
    Hangup,
    /// Connect the caller to this target (an outbound leg bridged to the call). The host
    /// is idle meanwhile; on failure the call reports it with
    /// [`AppHost::connect_failed`].
    Connect(Target),
    /// Put the caller in this ACD queue (with the call's variables); the host is idle
    /// meanwhile; the ACD's exit comes back through [`AppHost::exit_to`].
    Enqueue(String, Variables),
}

/// The application currently running.
#[derive(Debug)]
enum Running {
    Flow(Box<FlowRun>),
    Deposit(Box<Deposit>),
    Retrieval(Box<Retrieval>),
    Farewell(Farewell),
    /// The call is being connected to an outbound leg: nothing runs.
    Connecting(Idle),
}

impl Running {
    fn app(&mut self) -> &mut dyn CallApp {
        match self {
            Running::Flow(a) => a.as_mut(),
            Running::Deposit(a) => a.as_mut(),
            Running::Retrieval(a) => a.as_mut(),
            Running::Farewell(a) => a,
            Running::Connecting(a) => a,
        }
    }

    fn app_ref(&self) -> &dyn CallApp {
        match self {
            Running::Flow(a) => a.as_ref(),
            Running::Deposit(a) => a.as_ref(),
            Running::Retrieval(a) => a.as_ref(),
            Running::Farewell(a) => a,
            Running::Connecting(a) => a,
        }
    }
}

/// No application: the call is connected (or being connected) to another leg.
#[derive(Debug)]
struct Idle;

impl CallApp for Idle {
    fn handle_input(&mut self, _now: Instant, _input: AppInput<'_>) {}
    fn handle_timeout(&mut self, _now: Instant) {}
    fn poll_action(&mut self) -> Option<Action> {
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

/// Plays one prompt, then hangs up (targets that are not built yet).
#[derive(Debug)]
struct Farewell {
    prompts: Vec<Playable>,
    actions: VecDeque<Action>,
}

impl Farewell {
    /// Plays `prompts`, then hangs up.
    fn new(prompts: Vec<Playable>) -> Farewell {
        Farewell {
            prompts,
            actions: VecDeque::new(),
        }
    }
}

impl CallApp for Farewell {
    fn handle_input(&mut self, _now: Instant, input: AppInput<'_>) {
        match input {
            AppInput::Start => self.actions.push_back(Action::Play {
                items: self.prompts.clone(),
                interruptible: false,
            }),
            AppInput::PlaybackDone => self.actions.push_back(Action::Hangup),
            _ => {}
        }
    }
    fn handle_timeout(&mut self, _now: Instant) {}
    fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

/// Runs a call's applications (see the module doc).
#[derive(Debug)]
pub struct AppHost {
    ctx: Arc<CallContext>,
    running: Running,
    started: bool,
    caller_number: String,
    caller_name: String,
    /// Prompts still queued on the session from the last `Play`.
    outstanding: usize,
    interruptible: bool,
    dedup: DtmfDedup,
    /// In-band detection, when the caller's SDP has no telephone-event.
    inband: Option<InbandDetector>,
    audio: Vec<i16>,
    recording: Option<Recording>,
    /// Whether audio still goes to the recording.
    recording_open: bool,
    saving: Option<oneshot::Receiver<SaveOutcome>>,
    failed_logins_reported: u32,
}

impl AppHost {
    /// A host starting `flow` for a caller with the call's variables so far (e.g. from
    /// the `call.incoming` hook); `inband` when the session has no RFC 4733.
    pub fn for_flow(
        ctx: Arc<CallContext>,
        flow: &str,
        caller_number: String,
        caller_name: String,
        inband: bool,
        vars: Variables,
        now: Instant,
    ) -> Result<AppHost, String> {
        let flows = ctx.config.flows.clone();
        let run =
            FlowRun::new(flows, flow, vars, now, SystemTime::now()).map_err(|e| e.to_string())?;
        Ok(AppHost {
            ctx,
            running: Running::Flow(Box::new(run)),
            started: false,
            caller_number,
            caller_name,
            outstanding: 0,
            interruptible: false,
            dedup: DtmfDedup::new(DEDUP_WINDOW),
            inband: inband.then(InbandDetector::new),
            audio: Vec::with_capacity(4 * FRAME),
            recording: None,
            recording_open: false,
            saving: None,
            failed_logins_reported: 0,
        })
    }

    /// Starts the application (media is up).
    pub fn start(&mut self, now: Instant, session: &mut RtpSession) -> HostOutcome {
        self.started = true;
        self.running.app().handle_input(now, AppInput::Start);
        self.step(now, session)
    }

    /// Starts the host with the caller sent straight to `queue` (a hook chose it) instead
    /// of running the flow; the ACD's exits come back through [`AppHost::exit_to`] as
    /// for a flow's queue node.
    pub fn start_in_queue(
        &mut self,
        now: Instant,
        session: &mut RtpSession,
        queue: &str,
        vars: Variables,
    ) -> HostOutcome {
        self.started = true;
        match self.transfer(now, session, Target::Queue(queue.to_string()), vars) {
            Some(out) => out,
            None => self.step(now, session),
        }
    }

    /// A prompt queued by the host has been sent.
    pub fn prompt_finished(&mut self, now: Instant, session: &mut RtpSession) -> HostOutcome {
        if self.outstanding == 0 {
            return HostOutcome::Continue;
        }
        self.outstanding -= 1;
        if self.outstanding == 0 {
            self.running.app().handle_input(now, AppInput::PlaybackDone);
        }
        self.step(now, session)
    }

    /// A DTMF digit from `source`; duplicates of one key press are dropped here.
    pub fn digit(
        &mut self,
        now: Instant,
        source: DtmfSource,
        digit: DtmfDigit,
        session: &mut RtpSession,
    ) -> HostOutcome {
        self.deliver_digit(now, source, digit, session);
        self.step(now, session)
    }

    /// One digit from any source: duplicates of a key press already delivered are
    /// dropped; a new press stops interruptible playback and goes to the application.
    fn deliver_digit(
        &mut self,
        now: Instant,
        source: DtmfSource,
        digit: DtmfDigit,
        session: &mut RtpSession,
    ) {
        let label = source.as_str();
        let Some(d) = self.dedup.handle(now, source, digit) else {
            metrics::counter!(m::DTMF_DUPLICATES, "source" => label).increment(1);
            debug!(digit = %digit.as_char(), source = label, "DTMF duplicate dropped");
            return;
        };
        metrics::counter!(m::DTMF_DIGITS, "source" => label).increment(1);
        info!(digit = %d.as_char(), source = label, "DTMF");
        if self.interruptible && self.outstanding > 0 {
            session.stop_playback();
            self.outstanding = 0;
            self.interruptible = false;
        }
        self.running
            .app()
            .handle_input(now, AppInput::Digit(d.as_char()));
    }

    /// The media tick: caller audio (recording, in-band DTMF, the app's frames), the
    /// outcome of a pending save, the app's deadline.
    pub fn tick(&mut self, now: Instant, session: &mut RtpSession) -> HostOutcome {
        if self.started {
            self.pump_audio(now, session);
            if let Some(rx) = self.saving.as_mut() {
                match rx.try_recv() {
                    Ok(outcome) => {
                        self.saving = None;
                        self.on_saved(now, outcome);
                    }
                    Err(oneshot::error::TryRecvError::Empty) => {}
                    Err(oneshot::error::TryRecvError::Closed) => {
                        self.saving = None;
                        self.on_saved(now, SaveOutcome::Failed("recorder stopped".into()));
                    }
                }
            }
            if self
                .running
                .app_ref()
                .poll_timeout()
                .is_some_and(|t| t <= now)
            {
                self.running.app().handle_timeout(now);
            }
        }
        let out = self.step(now, session);
        session.set_capture(self.wants_capture());
        out
    }

    /// The earliest instant the host needs a tick.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.running.app_ref().poll_timeout()
    }

    /// The caller hung up or the call ends otherwise: a deposit keeps what was recorded
    /// (when long enough), anything else pending is discarded.
    pub fn on_call_end(&mut self) {
        let keep = match &mut self.running {
            Running::Deposit(d) => d.on_caller_hangup(),
            Running::Retrieval(r) => r.on_caller_hangup(),
            _ => false,
        };
        if let Some(mut rec) = self.recording.take() {
            if keep {
                rec.stop();
                info!("caller hung up while leaving a message: saving it");
                // The recorder finishes on its own thread; nobody waits for the answer.
                drop(rec.save());
            } else {
                rec.discard();
            }
        }
    }

    fn wants_capture(&self) -> bool {
        self.started
            && (self.inband.is_some()
                || self.recording_open
                || self.running.app_ref().wants_audio())
    }

    fn pump_audio(&mut self, now: Instant, session: &mut RtpSession) {
        if !session.is_capturing() {
            return;
        }
        session.take_audio(&mut self.audio);
        let mut consumed = 0;
        while self.audio.len() - consumed >= FRAME {
            let frame_range = consumed..consumed + FRAME;
            consumed += FRAME;
            let tone = self
                .inband
                .as_mut()
                .and_then(|det| det.handle_frame(&self.audio[frame_range.clone()]));
            if let Some(d) = tone {
                self.deliver_digit(now, DtmfSource::Inband, d, session);
            }
            if self.recording_open {
                if let Some(rec) = self.recording.as_mut() {
                    rec.push(&self.audio[frame_range.clone()]);
                }
            }
            if self.running.app_ref().wants_audio() {
                let frame = &self.audio[frame_range];
                self.running.app().handle_input(now, AppInput::Audio(frame));
            }
        }
        self.audio.drain(..consumed);
    }

    fn on_saved(&mut self, now: Instant, outcome: SaveOutcome) {
        match &outcome {
            SaveOutcome::Saved(id) => {
                metrics::counter!(m::VOICEMAIL_SAVED).increment(1);
                info!(message = %id, "voicemail stored");
            }
            SaveOutcome::Failed(why) => {
                metrics::counter!(m::VOICEMAIL_SAVE_FAILED, "reason" => why.clone()).increment(1);
                warn!(reason = %why, "voicemail not stored");
            }
        }
        self.running
            .app()
            .handle_input(now, AppInput::RecordingSaved(outcome));
    }

    /// Runs the app's actions until it has none.
    fn step(&mut self, now: Instant, session: &mut RtpSession) -> HostOutcome {
        for _ in 0..MAX_ACTIONS_PER_STEP {
            self.report_progress();
            let Some(action) = self.running.app().poll_action() else {
                return HostOutcome::Continue;
            };
            match action {
                Action::Play {
                    items,
                    interruptible,
                } => self.play(now, session, items, interruptible),
                Action::StopPlayback => {
                    session.stop_playback();
                    self.outstanding = 0;
                }
                Action::StartRecording(spec) => {
                    if let Some(old) = self.recording.take() {
                        old.discard();
                    }
                    let started = match self.ctx.voicemail.as_ref() {
                        Some(vm) => vm.start_recording(&spec).map_err(|e| e.to_string()),
                        None => Err("voicemail is not configured".to_string()),
                    };
                    match started {
                        Ok(rec) => {
                            debug!(?spec.kind, "recording started");
                            self.recording = Some(rec);
                            self.recording_open = true;
                        }
                        Err(why) => {
                            warn!(reason = %why, "cannot start a recording");
                            self.running.app().handle_input(
                                now,
                                AppInput::RecordingSaved(SaveOutcome::Failed(why)),
                            );
                        }
                    }
                }
                Action::StopRecording => {
                    self.recording_open = false;
                    if let Some(rec) = self.recording.as_mut() {
                        rec.stop();
                    }
                }
                Action::SaveRecording => {
                    self.recording_open = false;
                    match self.recording.take() {
                        Some(rec) => self.saving = Some(rec.save()),
                        None => self.running.app().handle_input(
                            now,
                            AppInput::RecordingSaved(SaveOutcome::Failed(
                                "nothing was recorded".into(),
                            )),
                        ),
                    }
                }
                Action::DiscardRecording => {
                    self.recording_open = false;
                    if let Some(rec) = self.recording.take() {
                        rec.discard();
                    }
                }
                Action::Transfer(target, vars) => {
                    if let Some(out) = self.transfer(now, session, target, vars) {
                        return out;
                    }
                }
                Action::Hangup => {
                    session.stop_playback();
                    self.outstanding = 0;
                    return HostOutcome::Hangup;
                }
            }
        }
        warn!("call application produced too many actions at once: hanging up");
        HostOutcome::Hangup
    }

    fn report_progress(&mut self) {
        match &mut self.running {
            Running::Flow(run) => {
                while let Some((flow, node)) = run.poll_node_entered() {
                    debug!(flow = %flow, node = %node, "IVR node");
                    metrics::counter!(m::IVR_NODES_ENTERED, "flow" => flow.to_string(), "node" => node.to_string())
                        .increment(1);
                }
            }
            Running::Retrieval(r) => {
                let failed = r.failed_logins();
                if failed > self.failed_logins_reported {
                    metrics::counter!(m::VOICEMAIL_LOGIN_FAILURES)
                        .increment(u64::from(failed - self.failed_logins_reported));
                    self.failed_logins_reported = failed;
                }
            }
            _ => {}
        }
    }

    fn play(
        &mut self,
        now: Instant,
        session: &mut RtpSession,
        items: Vec<Playable>,
        interruptible: bool,
    ) {
        session.stop_playback();
        self.outstanding = 0;
        self.interruptible = interruptible;
        for item in items {
            let prompt = match item {
                Playable::Named(name) => match self.ctx.library.get(name.as_ref()) {
                    Some(p) => p.clone(),
                    None => {
                        warn!(prompt = %name, "prompt not in the prompt library: skipped");
                        continue;
                    }
                },
                Playable::Audio(p) => p,
                Playable::Silence(d) => {
                    let n = (d.as_millis() as usize).saturating_mul(8).min(8000 * 60);
                    Prompt::from_samples(vec![0i16; n])
                }
            };
            if prompt.is_empty() {
                continue;
            }
            session.play(now, prompt);
            self.outstanding += 1;
        }
        if self.outstanding == 0 {
            self.running.app().handle_input(now, AppInput::PlaybackDone);
        }
    }

    /// The outbound leg asked for by [`HostOutcome::Connect`] failed (busy, no answer,
    /// unreachable, not resolvable): the caller hears `transfer-unavailable`, then the
    /// call hangs up.
    pub fn connect_failed(&mut self, now: Instant, session: &mut RtpSession) -> HostOutcome {
        session.stop_playback();
        self.outstanding = 0;
        self.interruptible = false;
        self.running =
            Running::Farewell(Farewell::new(vec![Playable::named("transfer-unavailable")]));
        self.running.app().handle_input(now, AppInput::Start);
        self.step(now, session)
    }

    /// The ACD sends the caller out of its queue: to a mailbox, another queue, a flow, or
    /// a goodbye message.
    pub fn exit_to(
        &mut self,
        now: Instant,
        session: &mut RtpSession,
        target: crate::acd::ExitTarget,
    ) -> HostOutcome {
        use crate::acd::ExitTarget;
        session.stop_playback();
        self.outstanding = 0;
        self.interruptible = false;
        let next = match target {
            ExitTarget::Mailbox(mailbox) => Target::Mailbox {
                mailbox,
                greeting: crate::ivr::GreetingKind::Unavailable,
            },
            ExitTarget::Queue(q) => Target::Queue(q.to_string()),
            ExitTarget::Flow { flow, node } => {
                if node.is_some() {
                    debug!("queue exit to a flow node: the flow starts at its start node");
                }
                match FlowRun::new(
                    self.ctx.config.flows.clone(),
                    &flow,
                    Variables::new(),
                    now,
                    SystemTime::now(),
                ) {
                    Ok(run) => {
                        self.running = Running::Flow(Box::new(run));
                        self.running.app().handle_input(now, AppInput::Start);
                        return self.step(now, session);
                    }
                    Err(e) => {
                        warn!(error = %e, "queue exit flow cannot start");
                        return HostOutcome::Hangup;
                    }
                }
            }
            ExitTarget::Hangup(prompts) => {
                if prompts.is_empty() {
                    return HostOutcome::Hangup;
                }
                self.running = Running::Farewell(Farewell::new(
                    prompts.iter().map(|p| Playable::named(p)).collect(),
                ));
                self.running.app().handle_input(now, AppInput::Start);
                return self.step(now, session);
            }
        };
        if let Some(out) = self.transfer(now, session, next, Variables::new()) {
            return out;
        }
        self.step(now, session)
    }

    /// Whether the host is idle because the call is connected to another leg.
    pub fn is_connecting(&self) -> bool {
        matches!(self.running, Running::Connecting(_))
    }

    fn transfer(
        &mut self,
        now: Instant,
        session: &mut RtpSession,
        target: Target,
        _vars: Variables,
    ) -> Option<HostOutcome> {
        session.stop_playback();
        self.outstanding = 0;
        if let (Target::Queue(queue), Some(_)) = (&target, self.ctx.acd.as_ref()) {
            metrics::counter!(m::IVR_TRANSFERS, "target" => "queue", "routed" => "yes")
                .increment(1);
            self.running = Running::Connecting(Idle);
            self.interruptible = false;
            return Some(HostOutcome::Enqueue(queue.clone(), _vars));
        }
        if matches!(target, Target::Extension(_) | Target::External { .. }) {
            // Dialed by the call (an outbound leg); the call resolves it and reports a
            // failure back with `connect_failed`.
            let kind = if matches!(target, Target::Extension(_)) {
                "extension"
            } else {
                "external"
            };
            metrics::counter!(m::IVR_TRANSFERS, "target" => kind, "routed" => "yes").increment(1);
            info!(target = kind, "connecting the caller");
            self.running = Running::Connecting(Idle);
            self.interruptible = false;
            return Some(HostOutcome::Connect(target));
        }
        let access: Option<Arc<dyn VoicemailAccess>> = self
            .ctx
            .voicemail
            .clone()
            .map(|v| v as Arc<dyn VoicemailAccess>);
        let (kind, next) = match (&target, access) {
            (Target::Mailbox { mailbox, greeting }, Some(access)) => (
                "mailbox",
                Some(Running::Deposit(Box::new(Deposit::new(
                    access,
                    mailbox,
                    *greeting,
                    &self.caller_number,
                    &self.caller_name,
                    now,
                )))),
            ),
            (Target::VoicemailRetrieval { mailbox }, Some(access)) => (
                "voicemail",
                Some(Running::Retrieval(Box::new(Retrieval::new(
                    access,
                    mailbox.clone(),
                    &self.caller_number,
                    now,
                )))),
            ),
            (Target::Mailbox { .. }, None) => ("mailbox", None),
            (Target::VoicemailRetrieval { .. }, None) => ("voicemail", None),
            (Target::Queue(_), _) => ("queue", None),
            (Target::Extension(_), _) => ("extension", None), // handled above
            (Target::External { .. }, _) => ("external", None),
        };
        let routed = next.is_some();
        metrics::counter!(m::IVR_TRANSFERS, "target" => kind, "routed" => if routed { "yes" } else { "no" })
            .increment(1);
        self.running = match next {
            Some(app) => {
                info!(?target, "call handed over");
                app
            }
            None => {
                warn!(?target, "transfer target not available (queues, extensions and trunks come with the ACD): playing transfer-unavailable");
                Running::Farewell(Farewell::new(vec![Playable::named("transfer-unavailable")]))
            }
        };
        self.running.app().handle_input(now, AppInput::Start);
        None
    }
}
