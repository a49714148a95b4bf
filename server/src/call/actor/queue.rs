//! A caller waiting in an ACD queue (the call side of [`crate::acd::task`]).
//!
//! ```text
//! app: Enqueue(queue) -> CallToAcd::Queue -> music on hold (looped), exit key watched
//! AcdToCall::Ring{agent, contact} -> resolve the contact (fixed URI, or the registrar's
//!   binding for a phone that registers) -> outbound leg; the caller keeps its music
//!   answered -> CallToAcd::Ring{Answered}, bridged (the leg's media replaces the music)
//!   failed / unreachable -> CallToAcd::Ring{NoAnswer|Rejected|Unreachable}, music goes on
//! AcdToCall::CancelRing -> CANCEL the ringing leg
//! (one leg at a time: a Ring that arrives while the previous agent's leg still winds
//! down after a miss, CANCEL sent and 487 not yet in, is dialed once that leg has ended)
//! AcdToCall::Exit(target) -> leave the queue for the target (mailbox, flow, queue, hangup)
//! caller hangs up -> CallToAcd::Left (waiting) or CallToAcd::Ended (connected)
//! ```

use super::Call;
use crate::acd::api::TransferTarget;
use crate::acd::task::{next_call_key, AcdToCall, CallToAcd, RingOutcome};
use crate::acd::{AgentId, CallKey, VoiceContact};
use crate::call::leg::{resolve_extension, FailReason};
use crate::ivr::{say, Playable, Variables};
use crate::media::dtmf::DtmfDigit;
use crate::media::wav::Prompt;
use crate::sip::transaction::peer_for_uri;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// A caller in a queue, or connected to an agent through one.
#[derive(Debug)]
pub(super) struct Queued {
    /// The ACD's key for this call.
    pub key: CallKey,
    /// Messages from the ACD task.
    pub rx: mpsc::Receiver<AcdToCall>,
    /// The agent whose phone rings now.
    ringing: Option<AgentId>,
    /// A ring waiting for the previous agent's failed leg to end (CANCEL, 487, ACK).
    pending: Option<(VoiceContact, Duration)>,
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
}

impl Call {
    /// A transferred caller waits for one agent (the agent's first queue gives music,
    /// ring timeout and exit).
    pub(super) fn enqueue_for_agent(&mut self, now: Instant, agent: AgentId) {
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
        let (tx, rx) = mpsc::channel(16);
        let (caller_number, caller_name) = self.caller();
        if !acd.send(CallToAcd::ToAgent {
            call: key,
            agent: agent.clone(),
            caller_number,
            caller_name,
            data: Variables::new(),
            tx,
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
            ringing: None,
            pending: None,
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
        let (tx, rx) = mpsc::channel(16);
        let (caller_number, caller_name) = self.caller();
        let priority = vars
            .get("priority")
            .and_then(|p| p.trim().parse::<i32>().ok())
            .unwrap_or(0);
        let sent = acd.send(CallToAcd::Queue {
            call: key,
            queue: queue.clone(),
            priority,
            requirements: self.hook_skills(),
            caller_number,
            caller_name,
            data: vars,
            tx,
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
        if self.outbound.as_ref().is_some_and(|o| !o.is_failed()) || items.is_empty() {
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
                let busy = self.queued.as_ref().is_some_and(|q| q.ringing.is_some());
                if busy || !self.outbound_free() && !self.outbound_winding_down() {
                    // One leg at a time: a second agent at once (ring-all) is not rung;
                    // the ACD withdraws the offer without counting it as a miss.
                    info!(agent = %agent, "an agent's phone already rings for this call: not ringing a second one");
                    self.report_ring(key, agent, RingOutcome::NotRung);
                    return;
                }
                if let Some(q) = self.queued.as_mut() {
                    q.ringing = Some(agent.clone());
                }
                if self.outbound_winding_down() {
                    // The previous agent's leg is being cancelled: ring once it has ended
                    // (dropping it now would leave its 487 unacknowledged).
                    debug!(agent = %agent, "ringing the agent once the previous leg has ended");
                    if let Some(q) = self.queued.as_mut() {
                        q.pending = Some((contact, timeout));
                    }
                    return;
                }
                self.ring_agent(now, key, agent, &contact, timeout);
            }
            AcdToCall::CancelRing { agent } => {
                let ringing = self
                    .queued
                    .as_ref()
                    .is_some_and(|q| q.ringing.as_ref() == Some(&agent));
                if ringing {
                    let mut pending = None;
                    if let Some(q) = self.queued.as_mut() {
                        q.ringing = None;
                        pending = q.pending.take();
                    }
                    if pending.is_none() {
                        self.end_outbound(now);
                    }
                }
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
                if self.outbound.is_some() {
                    self.end_outbound(now);
                }
                if let (Some(h), Some(s)) = (self.host.as_mut(), self.session.as_mut()) {
                    let out = h.exit_to(now, s, target);
                    self.after_host(now, out);
                }
            }
        }
    }

    /// Dials `agent`'s phone, or reports it unreachable.
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
            if let Some(q) = self.queued.as_mut() {
                q.ringing = None;
            }
            self.report_ring(key, agent, RingOutcome::Unreachable);
            return;
        };
        info!(agent = %agent, phone = %uri, "ringing the agent");
        self.dial(now, uri, peer, timeout);
    }

    /// Dials a ring that waited for the previous agent's leg, once that has ended.
    /// Returns whether it did anything.
    pub(super) fn ring_pending(&mut self, now: Instant) -> bool {
        if !self.outbound_free() {
            return false;
        }
        let Some(q) = self.queued.as_mut() else {
            return false;
        };
        let (Some((contact, timeout)), Some(agent)) = (q.pending.take(), q.ringing.clone()) else {
            return false;
        };
        let key = q.key;
        self.ring_agent(now, key, agent, &contact, timeout);
        true
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

    /// The agent's leg answered: the ACD connects the call.
    pub(super) fn queue_leg_answered(&mut self, _now: Instant) {
        let Some(q) = self.queued.as_mut() else {
            return;
        };
        if let Some(agent) = q.ringing.take() {
            q.connected = true;
            let key = q.key;
            self.report_ring(key, agent, RingOutcome::Answered);
        }
    }

    /// The agent's leg failed: the ACD hears of it and the caller keeps waiting (music).
    /// Returns whether the failure belonged to a queued call.
    pub(super) fn queue_leg_failed(&mut self, now: Instant, reason: Option<FailReason>) -> bool {
        let Some(q) = self.queued.as_mut() else {
            return false;
        };
        if q.connected {
            return false;
        }
        let key = q.key;
        let agent = q.ringing.take();
        if let Some(agent) = agent {
            let outcome = match reason {
                Some(FailReason::NoAnswer) => RingOutcome::NoAnswer,
                Some(FailReason::Busy | FailReason::Declined | FailReason::Rejected) => {
                    RingOutcome::Rejected
                }
                _ => RingOutcome::Unreachable,
            };
            self.report_ring(key, agent, outcome);
        }
        // The leg is finished with; the next agent's leg replaces it.
        self.end_outbound(now);
        self.play_music(now);
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
        if self.outbound.is_some() {
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
            TransferTarget::Agent(a) => self.enqueue_for_agent(now, a),
        }
    }
}
