//! A caller waiting in an ACD queue (the call side of [`crate::acd::task`]).
//!
//! ```text
//! app: Enqueue(queue) -> CallToAcd::Queue -> music on hold (looped), exit key watched
//! AcdToCall::Ring{agent, contact} -> resolve the contact (fixed URI, the registrar's
//!   binding for a phone that registers, a number through a trunk) -> one more outbound
//!   leg in the caller's ring group (several agents ring at once under ring-all and
//!   ring-progressively); the caller keeps its music
//!   first answer -> CallToAcd::Ring{Answered}, bridged (the leg's media replaces the
//!     music); every other ringing leg CANCELled, nothing reported for them (the ACD
//!     withdraws their offers without a miss)
//!   failed -> CallToAcd::Ring{Rejected|Unreachable} for that agent, the others ring on
//!   ring timeout (shared by the group, see super::ring) -> CANCEL every ringing leg,
//!     CallToAcd::Ring{NoAnswer} for each agent; music goes on
//!   can't ring (already connected, that agent already rings) -> Ring{NotRung}
//! AcdToCall::CancelRing -> CANCEL that agent's leg (nothing reported)
//! AcdToCall::Exit(target) -> leave the queue for the target (mailbox, flow, queue, hangup)
//! caller hangs up -> CallToAcd::Left (waiting) or CallToAcd::Ended (connected)
//! ```

use super::ring::{RingAction, RingGroup};
use super::Call;
use crate::acd::api::TransferTarget;
use crate::acd::task::{next_call_key, AcdToCall, CallToAcd, RingOutcome};
use crate::acd::{AgentId, CallKey, Strategy, VoiceContact};
use crate::call::leg::{resolve_extension, FailReason};
use crate::ivr::{say, Playable, Variables};
use crate::media::dtmf::DtmfDigit;
use crate::media::sdp::Negotiated;
use crate::media::wav::Prompt;
use crate::sip::transaction::peer_for_uri;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// The ring timeout a queued caller's agent leg gets of its own: only a backstop, the
/// ring group gives up first (its deadline can move on while agents are added).
const AGENT_LEG_RING_LIMIT: Duration = Duration::from_secs(3600);

/// Messages the ACD may queue for one call (a ring-all offer sends one per agent).
const ACD_MAILBOX: usize = 64;

/// A caller in a queue, or connected to an agent through one.
#[derive(Debug)]
pub(super) struct Queued {
    /// The ACD's key for this call.
    pub key: CallKey,
    /// Messages from the ACD task.
    pub rx: mpsc::Receiver<AcdToCall>,
    /// The agents' legs ringing now.
    ring: RingGroup,
    /// Connected to an agent (the ACD is told when the call ends).
    pub connected: bool,
    /// Music on hold, looped while waiting.
    music: Option<Prompt>,
    /// The queue's exit key.
    exit_key: Option<char>,
    /// Prompts of an announcement still playing (the music resumes after them).
    announcing: usize,
    /// The queue's periodic announcement and when it is next due.
    periodic: Option<(Prompt, Duration, Instant)>,
}

impl Queued {
    /// The queue's music on hold.
    pub fn music(&self) -> Option<Prompt> {
        self.music.clone()
    }

    /// Forgets every ringing leg (the caller hangs them all up): what to hang up.
    pub fn ring_cancel_all(&mut self) -> Vec<RingAction> {
        self.ring.cancel_all()
    }
}

impl Call {
    /// A transferred caller waits for one agent (the agent's first queue gives music,
    /// ring timeout and exit).
    /// `data` travels to the agent's Offered event (a dial's contact and script).
    pub(super) fn enqueue_for_agent(&mut self, now: Instant, agent: AgentId, data: Variables) {
        let qcfg = self.ctx.config.acd.as_ref().and_then(|a| {
            let name = a.queues_of(&agent).next()?.name.clone();
            a.queue(&name).cloned()
        });
        let (Some(acd), Some(qcfg)) = (self.ctx.acd.clone(), qcfg) else {
            warn!(agent = %agent, "transfer to an agent who serves no queue");
            self.outbound_failed(now);
            return;
        };
        let key = next_call_key();
        let (tx, rx) = mpsc::channel(ACD_MAILBOX);
        let (number, name) = self.caller();
        if !acd.send(CallToAcd::ToAgent {
            call: key,
            agent: agent.clone(),
            caller: crate::acd::task::Caller {
                number,
                name,
                data,
                tx,
            },
        }) {
            self.outbound_failed(now);
            return;
        }
        info!(agent = %agent, call = key, "caller waits for the agent");
        self.wait_in_queue(now, key, rx, &qcfg);
    }

    fn wait_in_queue(
        &mut self,
        now: Instant,
        key: CallKey,
        rx: mpsc::Receiver<AcdToCall>,
        qcfg: &crate::acd::QueueConfig,
    ) {
        let music = qcfg
            .music
            .as_deref()
            .or(Some("please-hold"))
            .and_then(|m| self.ctx.library.get(m).cloned());
        let periodic = qcfg.announcement.as_ref().and_then(|(name, every)| {
            let p = self.ctx.library.get(name)?.clone();
            Some((p, *every, now + *every))
        });
        self.queued = Some(Queued {
            key,
            rx,
            ring: RingGroup::new(qcfg.strategy == Strategy::RingProgressively),
            connected: false,
            music,
            exit_key: qcfg.exit_key,
            announcing: 0,
            periodic,
        });
        self.play_music(now);
    }

    /// The application sends the caller to `queue`.
    pub(super) fn enqueue(&mut self, now: Instant, queue: String, vars: Variables) {
        let (Some(acd), Some(qcfg)) = (
            self.ctx.acd.clone(),
            self.ctx
                .config
                .acd
                .as_ref()
                .and_then(|a| a.queue(&queue).cloned()),
        ) else {
            warn!(%queue, "no such ACD queue");
            self.outbound_failed(now);
            return;
        };
        let key = next_call_key();
        let (tx, rx) = mpsc::channel(ACD_MAILBOX);
        let (number, name) = self.caller();
        let priority = vars
            .get("priority")
            .and_then(|p| p.trim().parse::<i32>().ok())
            .unwrap_or(0);
        let sent = acd.send(CallToAcd::Queue {
            call: key,
            queue: queue.clone(),
            priority,
            requirements: self.hook_skills(),
            caller: crate::acd::task::Caller {
                number,
                name,
                data: vars,
                tx,
            },
        });
        if !sent {
            warn!(%queue, "the ACD is not taking calls");
            self.outbound_failed(now);
            return;
        }
        info!(%queue, call = key, "caller waits in the queue");
        self.wait_in_queue(now, key, rx, &qcfg);
    }

    fn play_music(&mut self, now: Instant) {
        let Some(q) = self.queued.as_ref() else {
            return;
        };
        if q.connected {
            return;
        }
        if let (Some(m), Some(s)) = (q.music.clone(), self.session.as_mut()) {
            s.stop_playback();
            s.play(now, m);
        }
    }

    /// A prompt ended while queued: the music loops (after an announcement's last
    /// prompt). Returns whether it was ours.
    pub(super) fn queue_prompt_finished(&mut self, now: Instant) -> bool {
        let Some(q) = self.queued.as_mut().filter(|q| !q.connected) else {
            return false;
        };
        if q.announcing > 0 {
            q.announcing -= 1;
            if q.announcing > 0 {
                return true;
            }
        }
        self.play_music(now);
        true
    }

    /// Plays an announcement over the music (the music resumes after it).
    fn announce(&mut self, now: Instant, items: Vec<Prompt>) {
        if self.legs_live() || items.is_empty() {
            return; // an agent's phone rings or the call is bridged: no announcement
        }
        let (Some(q), Some(s)) = (self.queued.as_mut(), self.session.as_mut()) else {
            return;
        };
        if q.connected {
            return;
        }
        s.stop_playback();
        q.announcing = items.len();
        for p in items {
            s.play(now, p);
        }
    }

    /// When the queue's periodic announcement is next due.
    pub(super) fn queue_timeout(&self) -> Option<Instant> {
        let q = self.queued.as_ref().filter(|q| !q.connected)?;
        q.periodic.as_ref().map(|(_, _, at)| *at)
    }

    /// The media tick while queued: the periodic announcement when due.
    pub(super) fn queue_tick(&mut self, now: Instant) {
        let Some(q) = self.queued.as_mut().filter(|q| !q.connected) else {
            return;
        };
        let Some((prompt, every, at)) = q.periodic.as_mut() else {
            return;
        };
        if now < *at {
            return;
        }
        *at = now + *every;
        let p = prompt.clone();
        self.announce(now, vec![p]);
    }

    /// A digit while queued: the exit key leaves the queue. Returns whether it was used.
    pub(super) fn queue_digit(&mut self, d: DtmfDigit) -> bool {
        let Some(q) = self.queued.as_ref().filter(|q| !q.connected) else {
            return false;
        };
        if q.exit_key == Some(d.as_char()) {
            info!("caller pressed the queue's exit key");
            if let Some(acd) = self.ctx.acd.as_ref() {
                acd.send(CallToAcd::Left {
                    call: q.key,
                    exit_key: true,
                });
            }
        }
        true
    }

    /// A message from the ACD task.
    pub(super) fn on_acd(&mut self, now: Instant, msg: AcdToCall) {
        let Some(key) = self.queued.as_ref().map(|q| q.key) else {
            return;
        };
        match msg {
            AcdToCall::Ring {
                agent,
                contact,
                timeout,
            } => {
                let can = self
                    .queued
                    .as_ref()
                    .is_some_and(|q| q.ring.can_ring(&agent));
                if !can {
                    // Connected already (the ACD's offer crossed the answer), or this
                    // agent's phone already rings for the call.
                    info!(agent = %agent, "the call cannot ring this agent now");
                    self.report_ring(key, agent, RingOutcome::NotRung);
                    return;
                }
                self.ring_agent(now, key, agent, &contact, timeout);
            }
            AcdToCall::CancelRing { agent } => {
                let actions = match self.queued.as_mut() {
                    Some(q) => q.ring.cancel(&agent),
                    None => Vec::new(),
                };
                self.ring_actions(now, actions);
            }
            AcdToCall::Announce { position, wait } => {
                let mut said = vec![Playable::named("queue-position")];
                said.extend(say::number(position as u64));
                if let Some(w) = wait {
                    said.push(Playable::named("queue-wait"));
                    said.extend(say::number(w.as_secs().div_ceil(60).max(1)));
                    said.push(Playable::named("queue-minutes"));
                }
                let items: Vec<Prompt> = said
                    .iter()
                    .filter_map(|p| match p {
                        Playable::Named(n) => self.ctx.library.get(n.as_ref()).cloned(),
                        _ => None,
                    })
                    .collect();
                info!(
                    position,
                    wait_s = wait.map(|w| w.as_secs()),
                    "position announcement"
                );
                self.announce(now, items);
            }
            AcdToCall::Transfer(target) => {
                info!(?target, "the agent transfers the caller");
                self.blind_transfer(now, target);
            }
            AcdToCall::Exit(target) => {
                info!(?target, "leaving the queue");
                self.queued = None;
                if let Some(s) = self.session.as_mut() {
                    s.stop_playback();
                }
                if !self.outbound.is_empty() {
                    self.end_outbound(now);
                }
                if self.dial_route_failed(now) {
                    return; // a dialed contact has no flow to exit to: abandoned
                }
                if let (Some(h), Some(s)) = (self.host.as_mut(), self.session.as_mut()) {
                    let out = h.exit_to(now, s, target);
                    self.after_host(now, out);
                }
            }
        }
    }

    /// Dials `agent`'s phone (one more leg in the ring group), or reports it
    /// unreachable.
    fn ring_agent(
        &mut self,
        now: Instant,
        key: CallKey,
        agent: AgentId,
        contact: &VoiceContact,
        timeout: Duration,
    ) {
        let Some((uri, peer)) = self.resolve_contact(contact) else {
            info!(agent = %agent, "agent's phone is not registered or not reachable");
            self.report_ring(key, agent, RingOutcome::Unreachable);
            return;
        };
        info!(agent = %agent, phone = %uri, "ringing the agent");
        let Some(leg) = self.place_leg(now, uri, peer, AGENT_LEG_RING_LIMIT) else {
            self.report_ring(key, agent, RingOutcome::Unreachable);
            return;
        };
        if let Some(q) = self.queued.as_mut() {
            q.ring.add(now, agent, leg, timeout);
        }
    }

    /// Carries out what the ring group decided: reports to the ACD, legs hung up. (A
    /// `Bridge` is done by the caller of this before.)
    fn ring_actions(&mut self, now: Instant, actions: Vec<RingAction>) {
        let Some(key) = self.queued.as_ref().map(|q| q.key) else {
            return;
        };
        for a in actions {
            match a {
                RingAction::Report(agent, outcome) => self.report_ring(key, agent, outcome),
                RingAction::HangUp(leg) => self.hang_up_leg(now, &leg),
                RingAction::Bridge(_) => {}
            }
        }
    }

    /// When the ringing agents give up.
    pub(super) fn ring_deadline(&self) -> Option<Instant> {
        self.queued.as_ref()?.ring.poll_timeout()
    }

    /// The ring group's deadline: every ringing agent missed the call.
    pub(super) fn ring_tick(&mut self, now: Instant) {
        let actions = match self.queued.as_mut() {
            Some(q) => q.ring.handle_timeout(now),
            None => return,
        };
        if !actions.is_empty() {
            info!("no agent answered within the ring timeout");
        }
        self.ring_actions(now, actions);
    }

    fn report_ring(&self, call: CallKey, agent: AgentId, outcome: RingOutcome) {
        if let Some(acd) = self.ctx.acd.as_ref() {
            acd.send(CallToAcd::Ring {
                call,
                agent,
                outcome,
            });
        }
    }

    /// Where an agent's phone is: a fixed URI, or the registrar's best binding.
    fn resolve_contact(
        &self,
        contact: &VoiceContact,
    ) -> Option<(crate::sip::message::Uri, crate::sip::transaction::Peer)> {
        match contact {
            VoiceContact::Uri(u) => resolve_extension(u),
            VoiceContact::Registered { user, .. } => {
                let regs = self.ctx.registrations.as_ref()?.borrow().clone();
                let b = regs.contacts(user).into_iter().next()?;
                // Send to where the REGISTER came from (NAT-safe), addressed to its contact.
                let peer = if b.source.transport == crate::sip::message::TransportKind::Udp {
                    b.source
                } else {
                    peer_for_uri(&b.contact)?
                };
                Some((b.contact, peer))
            }
            VoiceContact::External { trunk, number } => self.resolve_external(trunk, number),
        }
    }

    /// An agent's leg answered. The first answer is bridged and reported (the ACD
    /// connects the call); the other ringing legs are hung up; a later answer is hung up.
    pub(super) fn queue_leg_answered(&mut self, now: Instant, leg: &str, neg: Negotiated) {
        let Some(q) = self.queued.as_mut() else {
            return;
        };
        let actions = q.ring.answered(leg);
        let mut connected = None;
        if actions
            .iter()
            .any(|a| matches!(a, RingAction::Bridge(l) if l == leg))
        {
            q.connected = true;
            connected = actions.iter().find_map(|a| match a {
                RingAction::Report(agent, RingOutcome::Answered) => Some(agent.clone()),
                _ => None,
            });
            self.bridge_leg(now, leg, &neg);
        }
        self.ring_actions(now, actions);
        if let Some(agent) = connected.filter(|_| self.is_dial()) {
            self.dial_connected(now, agent);
        }
    }

    /// An agent's leg failed: the ACD hears of it (when it still rang for the ACD) and the
    /// caller keeps waiting with its music. Returns whether the caller is queued (then
    /// the failure never goes to the application).
    pub(super) fn queue_leg_failed(
        &mut self,
        now: Instant,
        leg: &str,
        reason: Option<FailReason>,
    ) -> bool {
        let Some(q) = self.queued.as_mut() else {
            return false;
        };
        let outcome = match reason {
            Some(FailReason::NoAnswer) => RingOutcome::NoAnswer,
            Some(FailReason::Busy | FailReason::Declined | FailReason::Rejected) => {
                RingOutcome::Rejected
            }
            _ => RingOutcome::Unreachable,
        };
        let actions = q.ring.failed(leg, outcome);
        self.ring_actions(now, actions);
        true
    }

    /// The call ends: the ACD is told (abandoned while waiting, or ended when connected).
    pub(super) fn leave_queue(&mut self) {
        let Some(q) = self.queued.take() else {
            return;
        };
        if let Some(acd) = self.ctx.acd.as_ref() {
            if q.connected {
                acd.send(CallToAcd::Ended { call: q.key });
            } else {
                acd.send(CallToAcd::Left {
                    call: q.key,
                    exit_key: false,
                });
            }
        }
    }
}

/// Receives the next ACD message of a queued call (pending forever when not queued).
pub(super) async fn next_acd(queued: &mut Option<Queued>) -> Option<AcdToCall> {
    match queued.as_mut() {
        Some(q) => q.rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Call {
    /// What a REFER's target names: a queue or an agent by the URI's user part, else
    /// the URI itself as a number to dial.
    pub(super) fn transfer_target_of(&self, uri: &crate::sip::message::Uri) -> TransferTarget {
        let user = uri.user.clone().unwrap_or_default();
        if let Some(acd) = self.ctx.config.acd.as_ref() {
            if let Some(q) = acd.queue(&user) {
                return TransferTarget::Queue(q.name.clone());
            }
            if let Some(a) = acd.agent(&user) {
                return TransferTarget::Agent(a.id.clone());
            }
        }
        TransferTarget::Number(uri.to_string())
    }

    /// Blind transfer of the caller: the agent's leg ends (BYE), the ACD closes the
    /// agent's call (wrap-up), and the caller goes to the target: a queue (waits again),
    /// one agent (waits until that agent is ready), or a SIP URI (dialed and bridged like
    /// an extension).
    pub(super) fn blind_transfer(&mut self, now: Instant, target: TransferTarget) {
        self.held_by_callee = false;
        if !self.outbound.is_empty() {
            self.end_outbound(now);
        }
        self.leave_queue();
        metrics::counter!(crate::metrics::ACD_TRANSFERS, "target" => match &target {
            TransferTarget::Queue(_) => "queue",
            TransferTarget::Agent(_) => "agent",
            TransferTarget::Number(_) => "number",
        })
        .increment(1);
        match target {
            TransferTarget::Queue(q) => self.enqueue(now, q.to_string(), Variables::new()),
            TransferTarget::Number(n) => self.connect(now, crate::ivr::Target::Extension(n)),
            TransferTarget::Agent(a) => self.enqueue_for_agent(now, a, Variables::new()),
        }
    }
}
