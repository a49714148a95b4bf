//! A caller waiting in an ACD queue (the call side of [`crate::acd::task`]).
//!
//! ```text
//! app: Enqueue(queue) -> CallToAcd::Queue -> music on hold (looped), exit key watched
//! AcdToCall::Ring{agent, contact} -> resolve the contact (fixed URI, or the registrar's
//!   binding for a phone that registers) -> outbound leg; the caller keeps its music
//!   answered -> CallToAcd::Ring{Answered}, bridged (the leg's media replaces the music)
//!   failed / unreachable -> CallToAcd::Ring{NoAnswer|Rejected|Unreachable}, music goes on
//! AcdToCall::CancelRing -> CANCEL the ringing leg
//! AcdToCall::Exit(target) -> leave the queue for the target (mailbox, flow, queue, hangup)
//! caller hangs up -> CallToAcd::Left (waiting) or CallToAcd::Ended (connected)
//! ```

use super::Call;
use crate::acd::api::TransferTarget;
use crate::acd::task::{next_call_key, AcdToCall, CallToAcd, RingOutcome};
use crate::acd::{AgentId, CallKey, VoiceContact};
use crate::call::leg::{resolve_extension, FailReason};
use crate::ivr::Variables;
use crate::media::dtmf::DtmfDigit;
use crate::media::wav::Prompt;
use crate::sip::transaction::peer_for_uri;
use std::time::Instant;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// A caller in a queue, or connected to an agent through one.
#[derive(Debug)]
pub(super) struct Queued {
    /// The ACD's key for this call.
    pub key: CallKey,
    /// Messages from the ACD task.
    pub rx: mpsc::Receiver<AcdToCall>,
    /// The agent whose phone rings now.
    ringing: Option<AgentId>,
    /// Connected to an agent (the ACD is told when the call ends).
    pub connected: bool,
    /// Music on hold, looped while waiting.
    music: Option<Prompt>,
    /// The queue's exit key.
    exit_key: Option<char>,
}

impl Queued {
    /// The queue's music on hold.
    pub fn music(&self) -> Option<Prompt> {
        self.music.clone()
    }
}

impl Call {
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
            requirements: Vec::new(),
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
        let music = qcfg
            .music
            .as_deref()
            .or(Some("please-hold"))
            .and_then(|m| self.ctx.library.get(m).cloned());
        info!(%queue, call = key, "caller waits in the queue");
        self.queued = Some(Queued {
            key,
            rx,
            ringing: None,
            connected: false,
            music,
            exit_key: qcfg.exit_key,
        });
        self.play_music(now);
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

    /// A prompt ended while queued: the music loops. Returns whether it was ours.
    pub(super) fn queue_prompt_finished(&mut self, now: Instant) -> bool {
        match self.queued.as_ref() {
            Some(q) if !q.connected => {
                self.play_music(now);
                true
            }
            _ => false,
        }
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
                if self.outbound_in_use() {
                    // One leg at a time: a second agent at once (ring-all) is reported
                    // unreachable so the ACD frees it. A leg that has ended (the agent
                    // who just transferred this caller) does not count: `dial` drops it.
                    warn!(agent = %agent, "an agent's phone already rings for this call");
                    self.report_ring(key, agent, RingOutcome::Unreachable);
                    return;
                }
                let Some((uri, peer)) = self.resolve_contact(&contact) else {
                    info!(agent = %agent, "agent's phone is not registered or not reachable");
                    self.report_ring(key, agent, RingOutcome::Unreachable);
                    return;
                };
                info!(agent = %agent, phone = %uri, "ringing the agent");
                if let Some(q) = self.queued.as_mut() {
                    q.ringing = Some(agent);
                }
                self.dial(now, uri, peer, timeout);
            }
            AcdToCall::CancelRing { agent } => {
                let ringing = self
                    .queued
                    .as_ref()
                    .is_some_and(|q| q.ringing.as_ref() == Some(&agent));
                if ringing {
                    if let Some(q) = self.queued.as_mut() {
                        q.ringing = None;
                    }
                    self.end_outbound(now);
                }
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
            VoiceContact::External { .. } => None,
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
    /// an agent (through the agent's queue is not built: the caller hears
    /// "transfer-unavailable"), or a SIP URI (dialed and bridged like an extension).
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
            TransferTarget::Agent(a) => {
                warn!(agent = %a, "transfer to a named agent is not built yet");
                self.outbound_failed(now);
            }
        }
    }
}
