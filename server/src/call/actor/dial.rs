//! A call that starts from a dial (the IO half of [`crate::call::originate::core`]).
//!
//! ```text
//! run_dial: trunk resolved, network.allow checked, UAC Leg to the contact (our
//!   Call-ID and tag, which the endpoint routes here)
//! Leg Ringing  -> DialCore::handle_ringing               (Ringing)
//! Leg Failed   -> DialCore::handle_failed, the call ends  (Done: Busy / NoAnswer / Failed)
//! Leg Answered -> the contact's RtpSession is the call's session (the caller's role):
//!                 its decoded audio goes to the DialCore (AMD) on each media tick
//! DialCore actions -> events to the campaign; Route: enqueue_for_agent / enqueue (the
//!   dial's variables as the call's data) / a prompt / an IVR flow; Play; Abandon
//!   (leave the queue, CANCEL the agents' phones); HangUp (BYE on the leg)
//! an agent's leg answers (queue code bridges it) -> DialCore::handle_connected
//! the call ends (either side) -> DialCore::handle_ended -> Done(result)
//! ```

use super::{Call, EndReason, MediaSockets, Phase};
use crate::call::app::AppHost;
use crate::call::leg::{Leg, LegConfig, LegEvent, LegState};
use crate::call::originate::core::{DialAction, DialCore};
use crate::call::originate::{self, DialStart, DIALER_AMD_VERDICTS};
use crate::call::{CallContext, CallEnded, CallMsg, CallReport};
use crate::dialer::config::AgentlessAction;
use crate::dialer::originate::{HumanRoute, OriginateEvent};
use crate::ivr::Variables;
use crate::media::dtmf_dedup::DtmfSource;
use crate::media::sdp::{LocalMedia, Negotiated};
use crate::media::session::{RtpSession, SessionConfig};
use crate::sip::message::{NameAddr, SipMessage, TransportKind, Uri};
use crate::sip::transaction::Peer;
use crate::sip::transport::{Inbound, Link};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{debug, info, info_span, warn, Instrument};

/// The shortest ring a contact gets (the rules' 15 s).
pub const MIN_RING: Duration = Duration::from_secs(15);

/// Everything a dial's call actor starts with.
#[derive(Debug)]
pub struct DialSetup {
    /// Shared read-only context.
    pub ctx: Arc<CallContext>,
    /// The call's (and the customer leg's) Call-ID.
    pub call_id: String,
    /// Our From tag on the customer leg (the call's key in the endpoint's table).
    pub local_tag: String,
    /// The endpoint's UDP link.
    pub link: Link,
    /// RTP/RTCP sockets, if a port pair was free.
    pub media: Option<MediaSockets>,
    /// Where to report freed ports and the end.
    pub done: mpsc::UnboundedSender<CallReport>,
    /// Live figures for the API.
    pub counters: Arc<crate::call::endpoint::Counters>,
    /// The dial.
    pub start: DialStart,
}

/// The dial part of a call.
#[derive(Debug)]
pub(super) struct Dialing {
    core: DialCore,
    events: mpsc::Sender<OriginateEvent>,
    /// The UAC leg to the contact.
    leg: Option<Leg>,
    number: String,
    name: String,
    vars: Variables,
    audio: Vec<i16>,
}

/// Runs a dial's call actor until the call has ended and its transactions are gone.
pub async fn run_dial(setup: DialSetup, rx: mpsc::Receiver<CallMsg>) {
    let DialSetup {
        ctx,
        call_id,
        local_tag,
        link,
        media,
        done,
        counters,
        start,
    } = setup;
    let span = info_span!(
        "call",
        call_id = %call_id,
        campaign = %start.dial.request.campaign,
        attempt = start.dial.request.attempt
    );
    async move {
        // Replaced by the trunk's address once it is resolved.
        let peer = Peer {
            addr: ([127, 0, 0, 1], 0).into(),
            transport: TransportKind::Udp,
        };
        let mut call = Call::new(
            ctx,
            call_id.clone(),
            local_tag.clone(),
            (link, peer),
            media,
            counters,
            done.clone(),
        );
        call.start_dial(super::now(), start);
        call.run(rx).await;
        let record = (!call.record_sent).then(|| call.record());
        call.release_media();
        call.drop_outbound();
        let _ = done.send(CallReport::Ended(CallEnded {
            call_id,
            local_tag,
            record,
        }));
    }
    .instrument(span)
    .await
}

impl Call {
    /// Places the customer leg of `start`, or ends the dial as failed.
    fn start_dial(&mut self, now: Instant, start: DialStart) {
        let DialStart { dial, events } = start;
        let req = &dial.request;
        let number = req.number.as_str().to_string();
        let name = req
            .variables
            .get("contact_name")
            .map(|s| s.to_string())
            .unwrap_or_default();
        info!(
            number = %crate::call::redact(&number),
            trunk = %req.trunk,
            amd = req.amd.is_some(),
            "dialing a contact"
        );
        self.number = Some(number.clone());
        self.local_contact.user = Some(req.caller_id.as_str().to_string());
        self.local_contact.port = Some(self.local_port());
        self.dial = Some(Box::new(Dialing {
            core: DialCore::new(&dial),
            events,
            leg: None,
            number: number.clone(),
            name,
            vars: req.variables.clone(),
            audio: Vec::with_capacity(1024),
        }));
        let fail = |call: &mut Call, text: &str| {
            warn!(reason = text, "dial failed before the INVITE");
            if let Some(d) = call.dial.as_mut() {
                d.core.handle_failed(None, 0, text);
            }
            call.dial_actions(now);
            call.finish(now, EndReason::Failed);
        };
        let Some((uri, peer)) = self.resolve_external(&req.trunk, &number) else {
            fail(self, "no such trunk, or the number cannot be dialed");
            return;
        };
        if !self.ctx.allow.permits(peer.addr.ip()) {
            metrics::counter!(crate::metrics::DESTINATION_DENIED, "kind" => "sip").increment(1);
            fail(self, "the trunk's address is outside network.allow");
            return;
        }
        let Some(port) = self.media.as_ref().map(|m| m.port) else {
            fail(self, "no RTP port free");
            return;
        };
        self.peer = peer;
        let sip = &self.ctx.config.sip;
        let via_port = sip.udp.map(|a| a.port()).unwrap_or(5060);
        let mut local = LocalMedia::new(self.ctx.config.rtp.ip, port);
        local.codecs = self.ctx.config.rtp.codecs.clone();
        local.session_id = u64::from(rand::random::<u32>());
        local.session_version = local.session_id;
        let from = NameAddr {
            display: None,
            uri: Uri {
                scheme: "sip".into(),
                user: Some(req.caller_id.as_str().to_string()),
                host: sip.public_host.clone(),
                port: None,
                params: Vec::new(),
                headers: None,
            },
            params: Vec::new(),
        };
        let cfg = LegConfig {
            target: uri,
            peer,
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
            from,
            contact: self.local_contact.clone(),
            via_host: sip.public_host.clone(),
            via_port,
            local_media: local,
            ring_timeout: req.ring_timeout.max(MIN_RING),
            timers: self.ctx.timers,
            user_agent: self.ctx.config.user_agent.clone(),
            seed: rand::random(),
        };
        if let Some(d) = self.dial.as_mut() {
            d.leg = Some(Leg::new(cfg, now));
        }
    }

    /// Whether this call is a dial.
    pub(super) fn is_dial(&self) -> bool {
        self.dial.is_some()
    }

    /// The contact's number and name (the caller's role in queue and bridge code).
    pub(super) fn dial_contact(&self) -> Option<(String, String)> {
        self.dial
            .as_ref()
            .map(|d| (d.number.clone(), d.name.clone()))
    }

    /// A message from the contact (the call's own Call-ID).
    pub(super) fn dial_inbound(&mut self, now: Instant, inbound: Inbound) {
        match &inbound.message {
            SipMessage::Request(r) => {
                metrics::counter!(crate::metrics::SIP_REQUESTS_RECEIVED, "method" => r.method.as_str().to_string()).increment(1);
            }
            SipMessage::Response(r) => {
                metrics::counter!(crate::metrics::SIP_RESPONSES_RECEIVED, "status" => r.status.to_string()).increment(1);
            }
        }
        if let Some(leg) = self.dial.as_mut().and_then(|d| d.leg.as_mut()) {
            leg.handle_incoming(now, inbound.message, inbound.from);
        }
    }

    /// Sends the customer leg's messages and handles its events and the core's actions.
    pub(super) async fn drive_dial(&mut self, now: Instant) -> bool {
        let mut progressed = false;
        let mut events = Vec::new();
        let mut out = Vec::new();
        if let Some(leg) = self.dial.as_mut().and_then(|d| d.leg.as_mut()) {
            while let Some(ev) = leg.poll_event() {
                events.push(ev);
            }
            while let Some(t) = leg.poll_transmit() {
                out.push(t);
            }
        }
        for t in out {
            progressed = true;
            super::count_sent(&t.message);
            let data = Bytes::from(t.message.to_bytes());
            if let Err(e) = self.link.send(&self.ctx.allow, t.to.addr, data).await {
                warn!(error = %e, "SIP send failed (contact)");
            }
        }
        for ev in events {
            progressed = true;
            self.on_customer_event(now, ev);
        }
        progressed |= self.dial_actions(now);
        progressed
    }

    fn on_customer_event(&mut self, now: Instant, ev: LegEvent) {
        match ev {
            LegEvent::Ringing => {
                info!("the contact's phone rings");
                if let Some(d) = self.dial.as_mut() {
                    d.core.handle_ringing();
                }
            }
            LegEvent::Answered(neg) => self.dial_answered(now, neg),
            LegEvent::Failed { reason, status } => {
                info!(
                    reason = reason.as_str(),
                    status, "the contact was not reached"
                );
                if let Some(d) = self.dial.as_mut() {
                    d.core.handle_failed(Some(reason), status, "");
                }
                self.finish(now, EndReason::Rejected);
            }
            LegEvent::RemoteHangup => {
                info!("the contact hung up");
                self.finish(now, EndReason::CallerHangup);
            }
            LegEvent::MediaChanged(neg) => {
                if let Some(s) = self.session.as_mut() {
                    s.set_direction(neg.direction);
                    s.set_remote(neg.remote_addr, neg.remote_rtcp_addr);
                }
            }
            LegEvent::Dtmf(d) => self.on_digit(now, DtmfSource::SipInfo, d),
            LegEvent::Refer(uri) => debug!(target = %uri, "REFER from the contact ignored"),
        }
    }

    fn dial_answered(&mut self, now: Instant, neg: Negotiated) {
        info!(codec = ?neg.codec, remote = %neg.remote_addr, "the contact answered");
        let cfg = SessionConfig {
            inactivity_timeout: self.ctx.config.rtp.inactivity_timeout,
            ..SessionConfig::from_negotiated(
                &neg,
                rand::random(),
                rand::random(),
                rand::random(),
                std::time::SystemTime::now(),
            )
        };
        let mut session = RtpSession::new(cfg, now);
        session.set_direction(neg.direction);
        session.set_capture(true);
        self.session = Some(session);
        self.negotiated = Some(neg);
        self.phase = Phase::Confirmed;
        self.counted_active = true;
        self.answered_ms = Some(crate::call::unix_ms());
        metrics::gauge!(crate::metrics::CALLS_ACTIVE).increment(1.0);
        metrics::gauge!(crate::metrics::SIP_DIALOGS).increment(1.0);
        self.counters
            .dialogs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(d) = self.dial.as_mut() {
            d.core.handle_answered(now);
        }
    }

    /// The media tick: the customer leg's timers, the contact's audio to the detector,
    /// the core's clock.
    pub(super) fn dial_tick(&mut self, now: Instant) {
        let Some(d) = self.dial.as_mut() else {
            return;
        };
        if let Some(leg) = d.leg.as_mut() {
            if leg.poll_timeout().is_some_and(|t| t <= now) {
                leg.handle_timeout(now);
            }
        }
        if d.core.wants_audio() {
            if let Some(s) = self.session.as_mut() {
                d.audio.clear();
                s.take_audio(&mut d.audio);
                d.core.handle_audio(now, &d.audio);
            }
        }
        d.core.handle_timeout(now);
    }

    /// The dial's earliest deadline.
    pub(super) fn dial_timeout(&self) -> Option<Instant> {
        let d = self.dial.as_ref()?;
        let leg = d.leg.as_ref().and_then(|l| l.poll_timeout());
        [leg, d.core.poll_timeout()].into_iter().flatten().min()
    }

    /// Whether the customer leg is over (true for a call that is not a dial).
    pub(super) fn dial_leg_done(&self, now: Instant) -> bool {
        self.dial
            .as_ref()
            .and_then(|d| d.leg.as_ref())
            .is_none_or(|l| l.is_done(now))
    }

    /// An agent took the call (the queue code bridged its leg).
    pub(super) fn dial_connected(&mut self, now: Instant, agent: crate::acd::AgentId) {
        let Some(key) = self.queued.as_ref().map(|q| q.key) else {
            return;
        };
        if let Some(d) = self.dial.as_mut() {
            info!(agent = %agent, call = key, "the contact talks to the agent");
            d.core.handle_connected(agent, key);
        }
        self.dial_actions(now);
    }

    /// The agent or queue route failed. Returns whether the dial took it.
    pub(super) fn dial_route_failed(&mut self, now: Instant) -> bool {
        let took = self
            .dial
            .as_mut()
            .is_some_and(|d| d.core.handle_route_failed());
        if took {
            info!("no agent can take the contact: abandoned");
            self.dial_actions(now);
        }
        took
    }

    /// A prompt ended: the dial's own (machine message, safe harbor)? Then it acts.
    pub(super) fn dial_prompt_finished(&mut self, now: Instant) -> bool {
        let ours = self
            .dial
            .as_mut()
            .is_some_and(|d| d.core.handle_prompt_finished());
        if ours {
            self.dial_actions(now);
        }
        ours
    }

    /// Hangs up the contact's leg (CANCEL while ringing, BYE once answered).
    pub(super) fn dial_hang_up(&mut self, now: Instant) {
        if let Some(leg) = self.dial.as_mut().and_then(|d| d.leg.as_mut()) {
            if leg.state() != LegState::Ended {
                leg.hangup(now);
            }
        }
    }

    /// The call is over: `Done` goes out (once).
    pub(super) fn dial_ended(&mut self, now: Instant) {
        self.dial_hang_up(now);
        if let Some(d) = self.dial.as_mut() {
            d.core.handle_ended();
        }
        self.dial_actions(now);
    }

    /// Carries out the core's actions. Returns whether there were any.
    fn dial_actions(&mut self, now: Instant) -> bool {
        let mut any = false;
        loop {
            let Some(action) = self.dial.as_mut().and_then(|d| d.core.poll_action()) else {
                return any;
            };
            any = true;
            let ended = self.phase == Phase::Ended;
            match action {
                DialAction::Event(ev) => self.dial_event(ev),
                _ if ended => {}
                DialAction::StopCapture => {
                    if let Some(s) = self.session.as_mut() {
                        s.set_capture(false);
                    }
                }
                DialAction::Route(route) => self.dial_route(now, route),
                DialAction::Play(name) => match self.ctx.library.get(&name).cloned() {
                    Some(p) => {
                        info!(prompt = %name, "playing to the contact");
                        if let Some(s) = self.session.as_mut() {
                            s.stop_playback();
                            s.play(now, p);
                        }
                    }
                    None => {
                        warn!(prompt = %name, "no such prompt: skipped");
                        if let Some(d) = self.dial.as_mut() {
                            d.core.handle_prompt_finished();
                        }
                    }
                },
                DialAction::Abandon => {
                    info!("no agent within the abandon time: abandoned");
                    self.end_outbound(now);
                    self.leave_queue();
                    if let Some(s) = self.session.as_mut() {
                        s.stop_playback();
                    }
                }
                DialAction::HangUp => self.hang_up(now, EndReason::Completed),
            }
        }
    }

    fn dial_event(&mut self, ev: OriginateEvent) {
        let Some(d) = self.dial.as_ref() else {
            return;
        };
        match ev {
            OriginateEvent::Done(result) => {
                info!(
                    result = originate::result_label(&result),
                    ?result,
                    "dial done"
                );
                originate::finish(&d.events, result);
            }
            ev => {
                if let OriginateEvent::Answered { amd: Some(o) } = &ev {
                    info!(amd = o.as_str(), "AMD verdict");
                    metrics::counter!(DIALER_AMD_VERDICTS, "outcome" => o.as_str()).increment(1);
                }
                originate::send(&d.events, ev);
            }
        }
    }

    fn dial_route(&mut self, now: Instant, route: HumanRoute) {
        let vars = self
            .dial
            .as_ref()
            .map(|d| d.vars.clone())
            .unwrap_or_default();
        match route {
            HumanRoute::Agent(agent) => {
                info!(agent = %agent, "offering the contact to its agent");
                self.enqueue_for_agent(now, agent, vars);
            }
            HumanRoute::Queue(queue) => {
                info!(%queue, "the contact waits in the queue");
                self.enqueue(now, queue.to_string(), vars);
            }
            HumanRoute::Agentless(AgentlessAction::Prompt(name)) => {
                match self.ctx.library.get(&name).cloned() {
                    Some(p) => {
                        info!(prompt = %name, "agentless: playing the message");
                        if let Some(s) = self.session.as_mut() {
                            s.stop_playback();
                            s.play(now, p);
                        }
                    }
                    None => {
                        warn!(prompt = %name, "agentless: no such prompt");
                        self.hang_up(now, EndReason::Failed);
                    }
                }
            }
            HumanRoute::Agentless(AgentlessAction::Flow(flow)) => self.dial_flow(now, &flow, vars),
        }
    }

    /// Agentless with an IVR flow: the flow runs for the contact as for a caller.
    fn dial_flow(&mut self, now: Instant, flow: &str, vars: Variables) {
        let (Some(mut session), Some(neg)) = (self.session.take(), self.negotiated.clone()) else {
            return;
        };
        let (number, name) = self.caller();
        match AppHost::for_flow(
            self.ctx.clone(),
            flow,
            number,
            name,
            neg.telephone_event_pt.is_none(),
            vars,
            now,
        ) {
            Ok(mut host) => {
                info!(flow, "agentless: entering the IVR flow");
                let out = host.start(now, &mut session);
                self.host = Some(host);
                self.session = Some(session);
                self.after_host(now, out);
            }
            Err(e) => {
                warn!(flow, error = %e, "agentless: cannot start the IVR flow");
                self.session = Some(session);
                self.hang_up(now, EndReason::Failed);
            }
        }
    }
}
