//! The call's outbound leg and the media bridge (the IO half of [`crate::call::leg`]).
//!
//! ```text
//! app: Connect(target) -> resolve -> LegStarted to the endpoint (routes the leg's
//!   Call-ID here, binds an RTP port pair) -> LegReady -> Leg::new: INVITE
//! Ringing   -> the caller hears ringback (425 Hz, 1 s on / 4 s off, generated)
//! Answered  -> a second RtpSession; caller audio -> leg, leg audio -> caller
//! Failed    -> app: connect_failed ("transfer-unavailable", then BYE)
//! either side hangs up -> BYE (CANCEL while ringing) to the other
//! ```
//!
//! A call holds a collection of legs: an application's `Connect` places one; a queued
//! caller rings several agents at once (`ring-all`, `ring-progressively`; see
//! [`super::ring`]): the first leg to answer is bridged, the others are CANCELled (a 200
//! that crosses the CANCEL is ACKed and ended with BYE) and linger until their
//! transactions are over. Only the bridged leg has an RTP session; its events (hang-up,
//! hold, DTMF, REFER) act on the call, those of the other legs are ignored.
//!
//! Media: both sessions capture their peer's audio decoded to 8 kHz linear
//! ([`RtpSession::set_capture`]); on each 20 ms tick the call reads both sockets, moves
//! each side's decoded audio into the other session's live FIFO
//! ([`RtpSession::write_audio`]), and each session encodes it with its own codec on its
//! own pacing grid: PCMU <-> PCMA transcoding falls out of decode + encode. Latency: a
//! packet waits at most one tick in the kernel before the read, and is sent on the
//! other session's next due packet (at most one ptime later): at most ~2 ticks (40 ms)
//! each way, plus whatever the FIFO holds to absorb arrival jitter (bounded at 200 ms,
//! the oldest dropped). RFC 4733 digits are regenerated on the other leg
//! ([`RtpSession::send_dtmf`]; dropped when that leg has no telephone-event); SIP INFO
//! digits from either side are regenerated as RFC 4733 too.
//!
//! Hold: a caller's re-INVITE (sendonly / inactive) is answered as before; the caller's
//! session stops sending, and the callee hears what the caller sends (its own music on
//! hold) or silence. A callee's re-INVITE is answered by the leg and applied to the leg's
//! session. Neither is passed through to the other side (no re-INVITE is sent).

use super::{Call, EndReason, MediaSockets};
use crate::call::leg::{resolve_extension, FailReason, Leg, LegConfig, LegEvent, LegState};
use crate::call::CallReport;
use crate::ivr::Target;
use crate::media::dtmf::DtmfDigit;
use crate::media::sdp::{LocalMedia, Negotiated};
use crate::media::session::{MediaEvent, MediaKind, RtpSession, SessionConfig};
use crate::media::wav::Prompt;
use crate::sip::message::{HeaderAccess, NameAddr, SipMessage, Uri};
use crate::sip::transaction::Peer;
use crate::sip::transport::{Inbound, Link};
use bytes::Bytes;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// How long the endpoint may take to answer `LegStarted` before the leg fails.
const LEG_SETUP_LIMIT: Duration = Duration::from_secs(2);

/// One outbound leg of a call: its SIP core, UDP link, media sockets and session (the
/// session only once bridged).
#[derive(Debug)]
pub(super) struct Outbound {
    call_id: String,
    local_tag: String,
    target: Uri,
    peer: Peer,
    ring_timeout: Duration,
    /// `None` until the endpoint answered with `LegReady`.
    leg: Option<Leg>,
    ready_by: Instant,
    link: Option<Link>,
    media: Option<MediaSockets>,
    session: Option<RtpSession>,
    /// Failed or given up by us: nothing more is handed up, it only lingers.
    failed: bool,
    buf: Vec<i16>,
    rtp_buf: Vec<u8>,
}

/// Ringback: 425 Hz for 1 s then 4 s of silence (ITU-T E.180 / the European cadence),
/// at about -13 dBm0; generated once and shared.
pub fn ringback_tone() -> Prompt {
    static TONE: OnceLock<Prompt> = OnceLock::new();
    TONE.get_or_init(|| {
        let mut v = vec![0i16; 5 * 8000];
        for (i, s) in v.iter_mut().take(8000).enumerate() {
            let t = i as f64 / 8000.0;
            *s = (7000.0 * (2.0 * std::f64::consts::PI * 425.0 * t).sin()) as i16;
        }
        Prompt::from_samples(v)
    })
    .clone()
}

impl Call {
    /// The application asked to connect the caller to `target`.
    pub(super) fn connect(&mut self, now: Instant, target: Target) {
        if self.legs_live() {
            warn!("connect: an outbound leg is already up");
            self.outbound_failed(now);
            return;
        }
        let resolved = match &target {
            Target::Extension(user) => {
                let r = resolve_extension(user);
                if r.is_none() {
                    info!(extension = %crate::call::redact(user), "extension cannot be resolved (a plain name needs the registrar)");
                }
                r
            }
            Target::External { trunk, number } => self.resolve_external(trunk, number),
            other => {
                warn!(?other, "connect: this target cannot be dialed");
                None
            }
        };
        let Some((uri, peer)) = resolved else {
            self.outbound_failed(now);
            return;
        };
        let ring_timeout = self.ctx.config.sip.ring_timeout;
        if self.place_leg(now, uri, peer, ring_timeout).is_none() {
            self.outbound_failed(now);
        }
    }

    /// The URI and address of `number` on `trunk` (the number may hold digits, `+`, `*`
    /// and `#` only: it can come from a caller's input).
    pub(super) fn resolve_external(&self, trunk: &str, number: &str) -> Option<(Uri, Peer)> {
        let Some(t) = self.ctx.config.trunk(trunk) else {
            warn!(trunk, "no such trunk");
            return None;
        };
        let n = number.trim();
        if n.is_empty() || !n.chars().all(|c| c.is_ascii_digit() || "+*#".contains(c)) {
            warn!(number = %crate::call::redact(n), "not a dialable number");
            return None;
        }
        let uri = Uri::parse(&t.uri_for(n)).ok()?;
        let peer = Peer {
            addr: t.addr,
            transport: crate::sip::message::TransportKind::Udp,
        };
        info!(trunk, number = %crate::call::redact(n), "dialing through the trunk");
        Some((uri, peer))
    }

    /// Places an outbound leg to `uri` at `peer` (UDP), ringing at most `ring_timeout`,
    /// next to any legs already there (a queued caller rings several agents at once).
    /// Returns the leg's Call-ID, or `None` when the destination is outside
    /// `network.allow` (nothing placed, nothing reported: the caller of this decides).
    pub(super) fn place_leg(
        &mut self,
        now: Instant,
        uri: Uri,
        peer: Peer,
        ring_timeout: Duration,
    ) -> Option<String> {
        if !self.ctx.allow.permits(peer.addr.ip()) {
            metrics::counter!(crate::metrics::DESTINATION_DENIED, "kind" => "sip").increment(1);
            warn!(dest = %peer.addr, "not dialing: destination outside network.allow");
            return None;
        }
        let call_id = format!(
            "{:016x}@{}",
            rand::random::<u64>(),
            self.ctx.config.sip.public_host
        );
        let local_tag = format!("{:016x}", rand::random::<u64>());
        let _ = self.done.send(CallReport::LegStarted {
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
            leg_call_id: call_id.clone(),
            leg_tag: local_tag.clone(),
        });
        info!(target = %uri, leg = %call_id, "placing outbound leg");
        self.outbound.push(Outbound {
            call_id: call_id.clone(),
            local_tag,
            target: uri,
            peer,
            ring_timeout,
            leg: None,
            ready_by: now + LEG_SETUP_LIMIT,
            link: None,
            media: None,
            session: None,
            failed: false,
            buf: Vec::new(),
            rtp_buf: Vec::new(),
        });
        Some(call_id)
    }

    /// Whether a leg is up or on its way (not failed nor ended by us).
    pub(super) fn legs_live(&self) -> bool {
        self.outbound.iter().any(|o| !o.failed)
    }

    fn leg_index(&self, call_id: &str) -> Option<usize> {
        self.outbound.iter().position(|o| o.call_id == call_id)
    }

    /// The endpoint routed the leg and bound its ports: send the INVITE.
    pub(super) fn on_leg_ready(
        &mut self,
        now: Instant,
        call_id: String,
        media: Option<MediaSockets>,
        udp: Option<Link>,
    ) {
        let idx = self.leg_index(&call_id);
        let current =
            idx.is_some_and(|i| self.outbound[i].leg.is_none() && !self.outbound[i].failed);
        if !current || self.phase != super::Phase::Confirmed {
            // The call moved on (hung up, setup timed out, the ring withdrawn): give
            // everything back.
            debug!(leg = %call_id, "outbound leg no longer wanted");
            if let Some(ms) = media {
                let _ = self.done.send(CallReport::PortFreed(ms.port));
            }
            if let Some(i) = idx.filter(|&i| self.outbound[i].leg.is_none()) {
                let o = self.outbound.remove(i);
                self.forget_leg(o);
            }
            return;
        }
        let (Some(ms), Some(link)) = (media, udp) else {
            warn!("outbound leg: no RTP port pair free or no UDP listener");
            self.leg_failed(now, &call_id, None);
            return;
        };
        let sip = &self.ctx.config.sip;
        let via_port = sip.udp.map(|a| a.port()).unwrap_or(5060);
        let mut local = LocalMedia::new(self.ctx.config.rtp.ip, ms.port);
        local.codecs = self.ctx.config.rtp.codecs.clone();
        local.session_id = u64::from(rand::random::<u32>());
        local.session_version = local.session_id;
        let (number, name) = self.caller();
        let from = NameAddr {
            display: (!name.is_empty()).then_some(name),
            uri: Uri {
                scheme: "sip".into(),
                user: (!number.is_empty()).then_some(number),
                host: sip.public_host.clone(),
                port: None,
                params: Vec::new(),
                headers: None,
            },
            params: Vec::new(),
        };
        let contact = Uri {
            scheme: "sip".into(),
            user: self.number.clone(),
            host: sip.public_host.clone(),
            port: Some(via_port),
            params: Vec::new(),
            headers: None,
        };
        let Some(o) = idx.and_then(|i| self.outbound.get_mut(i)) else {
            return;
        };
        let cfg = LegConfig {
            target: o.target.clone(),
            peer: o.peer,
            call_id: o.call_id.clone(),
            local_tag: o.local_tag.clone(),
            from,
            contact,
            via_host: sip.public_host.clone(),
            via_port,
            local_media: local,
            ring_timeout: o.ring_timeout,
            timers: self.ctx.timers,
            user_agent: self.ctx.config.user_agent.clone(),
            seed: rand::random(),
        };
        o.leg = Some(Leg::new(cfg, now));
        o.link = Some(link);
        o.media = Some(ms);
    }

    /// The earliest deadline of the outbound legs (and of a queued caller's ringing
    /// agents).
    pub(super) fn outbound_timeout(&self) -> Option<Instant> {
        let legs = self.outbound.iter().filter_map(|o| match &o.leg {
            None if !o.failed => Some(o.ready_by),
            None => None,
            Some(leg) => {
                let s = o.session.as_ref().and_then(|s| s.poll_timeout());
                [leg.poll_timeout(), s].into_iter().flatten().min()
            }
        });
        legs.chain(self.ring_deadline()).min()
    }

    /// Whether a message belongs to an outbound leg (by its Call-ID).
    pub(super) fn is_outbound_message(&self, msg: &SipMessage) -> bool {
        let id = match msg {
            SipMessage::Request(r) => r.call_id(),
            SipMessage::Response(r) => r.call_id(),
        };
        id.is_ok_and(|id| self.leg_index(id).is_some())
    }

    pub(super) fn on_outbound_sip(&mut self, now: Instant, inbound: Inbound) {
        let call_id = match &inbound.message {
            SipMessage::Request(r) => {
                metrics::counter!(crate::metrics::SIP_REQUESTS_RECEIVED, "method" => r.method.as_str().to_string()).increment(1);
                r.call_id()
            }
            SipMessage::Response(r) => {
                metrics::counter!(crate::metrics::SIP_RESPONSES_RECEIVED, "status" => r.status.to_string()).increment(1);
                r.call_id()
            }
        };
        let Some(i) = call_id.ok().and_then(|id| self.leg_index(id)) else {
            return;
        };
        if let Some(leg) = self.outbound[i].leg.as_mut() {
            leg.handle_incoming(now, inbound.message, inbound.from);
        }
    }

    /// Sends the legs' messages and media, handles their events, drops the legs that are
    /// done. Returns whether anything happened.
    pub(super) async fn drive_outbound(&mut self, now: Instant) -> bool {
        let mut progressed = false;
        let mut events = Vec::new();
        let mut media_events = Vec::new();
        for o in self.outbound.iter_mut() {
            if let Some(leg) = o.leg.as_mut() {
                while let Some(ev) = leg.poll_event() {
                    events.push((o.call_id.clone(), ev));
                }
                while let Some(t) = leg.poll_transmit() {
                    progressed = true;
                    super::count_sent(&t.message);
                    let data = Bytes::from(t.message.to_bytes());
                    if let Some(link) = o.link.as_ref() {
                        if let Err(e) = link.send(&self.ctx.allow, t.to.addr, data).await {
                            warn!(error = %e, "SIP send failed (outbound leg)");
                        }
                    }
                }
            }
            if let Some(s) = o.session.as_mut() {
                while let Some(ev) = s.poll_event() {
                    media_events.push(ev);
                }
            }
        }
        for (leg, ev) in events {
            progressed = true;
            self.on_leg_event(now, &leg, ev);
        }
        for ev in media_events {
            progressed = true;
            self.on_leg_media_event(now, ev);
        }
        self.flush_outbound_media();
        let mut i = 0;
        while i < self.outbound.len() {
            let o = &self.outbound[i];
            let done =
                o.failed && o.leg.is_none() || o.leg.as_ref().is_some_and(|l| l.is_done(now));
            if done {
                let o = self.outbound.remove(i);
                self.forget_leg(o);
                progressed = true;
            } else {
                i += 1;
            }
        }
        progressed
    }

    fn on_leg_event(&mut self, now: Instant, leg: &str, ev: LegEvent) {
        let bridged = self.is_bridged_leg(leg);
        match ev {
            LegEvent::Ringing => {
                info!(leg, "outbound leg ringing");
                // A queued caller keeps hearing the queue's music while agents ring.
                if self.phase == super::Phase::Confirmed
                    && !self.is_bridged()
                    && self.queued.is_none()
                {
                    self.ringback = true;
                    if let Some(s) = self.session.as_mut() {
                        s.stop_playback();
                        s.play(now, ringback_tone());
                    }
                }
            }
            LegEvent::Answered(neg) => {
                if self.queued.is_some() {
                    // The first agent to answer wins; the other legs are hung up.
                    self.queue_leg_answered(now, leg, neg);
                } else if self.is_bridged() {
                    warn!(leg, "a second leg answered: hung up");
                    self.hang_up_leg(now, leg);
                } else {
                    self.bridge_leg(now, leg, &neg);
                }
            }
            LegEvent::Failed { reason, status } => {
                info!(leg, reason = reason.as_str(), status, "outbound leg failed");
                self.leg_failed(now, leg, Some(reason));
            }
            LegEvent::RemoteHangup if bridged => {
                info!("the called party hung up: ending the call");
                if let Some(i) = self.leg_index(leg) {
                    self.close_leg_media(now, i);
                }
                self.hang_up(now, EndReason::Completed);
            }
            LegEvent::MediaChanged(neg) if bridged => {
                if let Some(s) = self.bridged_mut().and_then(|o| o.session.as_mut()) {
                    s.set_direction(neg.direction);
                    s.set_remote(neg.remote_addr, neg.remote_rtcp_addr);
                }
                info!(
                    direction = neg.direction.as_str(),
                    "called party changed the media"
                );
                // A called party that stops receiving from us put the caller on hold:
                // the caller hears music until it resumes.
                let held = !neg.direction.sends();
                if held != self.held_by_callee {
                    self.held_by_callee = held;
                    if held {
                        info!("called party holds the call: music for the caller");
                        self.play_hold_music(now);
                    } else {
                        info!("called party resumed the call");
                        if let Some(s) = self.session.as_mut() {
                            s.stop_playback();
                        }
                    }
                }
            }
            LegEvent::Dtmf(d) if bridged => self.relay_digit_to_caller(now, d),
            LegEvent::Refer(uri) if bridged => {
                info!(target = %uri, "the called party transfers the caller (REFER)");
                let target = self.transfer_target_of(&uri);
                self.blind_transfer(now, target);
            }
            other => debug!(leg, ?other, "event of a leg that is not bridged: ignored"),
        }
    }

    /// Bridges the caller to the leg `leg` that answered: a second RTP session, audio
    /// both ways from the next tick.
    pub(super) fn bridge_leg(&mut self, now: Instant, leg: &str, neg: &Negotiated) {
        self.stop_ringback();
        let Some(o) = self.leg_index(leg).and_then(|i| self.outbound.get_mut(i)) else {
            return;
        };
        let cfg = SessionConfig {
            inactivity_timeout: self.ctx.config.rtp.inactivity_timeout,
            ..SessionConfig::from_negotiated(
                neg,
                rand::random(),
                rand::random(),
                rand::random(),
                std::time::SystemTime::now(),
            )
        };
        let mut leg_session = RtpSession::new(cfg, now);
        leg_session.set_capture(true);
        o.session = Some(leg_session);
        o.buf = Vec::with_capacity(1024);
        o.rtp_buf = vec![0u8; 2048];
        if let Some(s) = self.session.as_mut() {
            s.stop_playback();
            s.set_capture(true);
            let mut drop = Vec::new();
            s.take_audio(&mut drop); // stale caller audio from before the bridge
            s.clear_audio();
        }
        info!(codec = ?neg.codec, remote = %neg.remote_addr, leg, "outbound leg answered: bridged");
    }

    /// The leg `leg` failed (or could not start): a queued caller's ACD hears of it and
    /// the caller keeps waiting; otherwise the application plays its message.
    fn leg_failed(&mut self, now: Instant, leg: &str, reason: Option<FailReason>) {
        if let Some(i) = self.leg_index(leg) {
            self.close_leg_media(now, i);
            self.outbound[i].failed = true;
        }
        if self.queue_leg_failed(now, leg, reason) {
            return;
        }
        self.outbound_failed(now);
    }

    fn on_leg_media_event(&mut self, now: Instant, ev: MediaEvent) {
        match ev {
            MediaEvent::Dtmf(d) => self.relay_digit_to_caller(now, d),
            MediaEvent::Inactive => {
                info!("no RTP from the called party: ending the call");
                self.hang_up(now, EndReason::RtpTimeout);
            }
            MediaEvent::PeerAddressChanged(addr) => debug!(%addr, "leg RTP peer address latched"),
            MediaEvent::PromptFinished | MediaEvent::RemoteBye => {}
        }
    }

    fn relay_digit_to_caller(&mut self, now: Instant, d: DtmfDigit) {
        let bridged = self.is_bridged();
        if let Some(s) = self.session.as_mut().filter(|_| bridged) {
            if !s.send_dtmf(now, d) {
                debug!(digit = %d, "caller has no telephone-event: digit dropped");
            }
        }
    }

    /// While bridged, a caller's digit goes to the called party (RFC 4733).
    pub(super) fn relay_digit_to_leg(&mut self, now: Instant, d: DtmfDigit) -> bool {
        let Some(s) = self.bridged_mut().and_then(|o| o.session.as_mut()) else {
            return false;
        };
        if !s.send_dtmf(now, d) {
            debug!(digit = %d, "called party has no telephone-event: digit dropped");
        }
        true
    }

    /// Plays music on hold to the caller: the queue's music, else the library's `moh`.
    pub(super) fn play_hold_music(&mut self, now: Instant) {
        let queue_music = self.queued.as_ref().and_then(|q| q.music());
        let Some(music) = queue_music.or_else(|| self.ctx.library.get("moh").cloned()) else {
            return;
        };
        if let Some(s) = self.session.as_mut() {
            s.stop_playback();
            s.play(now, music);
        }
    }

    fn is_bridged(&self) -> bool {
        self.outbound.iter().any(|o| o.session.is_some())
    }

    fn is_bridged_leg(&self, leg: &str) -> bool {
        self.outbound
            .iter()
            .any(|o| o.call_id == leg && o.session.is_some())
    }

    /// The leg the caller is bridged to.
    fn bridged_mut(&mut self) -> Option<&mut Outbound> {
        self.outbound.iter_mut().find(|o| o.session.is_some())
    }

    pub(super) fn replay_ringback(&mut self, now: Instant) {
        if let Some(s) = self.session.as_mut() {
            s.play(now, ringback_tone());
        }
    }

    fn stop_ringback(&mut self) {
        if self.ringback {
            self.ringback = false;
            if let Some(s) = self.session.as_mut() {
                s.stop_playback();
            }
        }
    }

    /// Connecting failed (no leg could be placed, or the application's leg failed): the
    /// application plays its message, or the call ends.
    pub(super) fn outbound_failed(&mut self, now: Instant) {
        self.stop_ringback();
        if self.dial_route_failed(now) {
            return; // a contact waiting for an agent: abandoned (safe harbor)
        }
        if self.phase != super::Phase::Confirmed {
            return;
        }
        match (self.host.as_mut(), self.session.as_mut()) {
            (Some(h), Some(s)) => {
                let out = h.connect_failed(now, s);
                self.after_host(now, out);
            }
            _ => self.hang_up(now, EndReason::Failed),
        }
    }

    /// The media tick for the legs: their timers (setup limit, SIP, the ring group's
    /// deadline); for the bridged leg, read its sockets, move audio across, run its clock.
    pub(super) fn outbound_tick(&mut self, now: Instant) {
        let mut setup_failed = Vec::new();
        for o in self.outbound.iter_mut() {
            if o.leg.is_none() && !o.failed && now >= o.ready_by {
                setup_failed.push(o.call_id.clone());
                continue;
            }
            if let Some(leg) = o.leg.as_mut() {
                if leg.poll_timeout().is_some_and(|t| t <= now) {
                    leg.handle_timeout(now);
                }
            }
        }
        for leg in setup_failed {
            warn!(leg = %leg, "outbound leg: the endpoint did not answer in time");
            self.leg_failed(now, &leg, None);
        }
        self.ring_tick(now);
        let Some(o) = self.outbound.iter_mut().find(|o| o.session.is_some()) else {
            return;
        };
        let (Some(ms), Some(ls)) = (o.media.as_ref(), o.session.as_mut()) else {
            return;
        };
        for (sock, rtcp) in [(&ms.rtp, false), (&ms.rtcp, true)] {
            for _ in 0..super::MAX_DATAGRAMS_PER_TICK {
                match sock.recv_from(&mut o.rtp_buf) {
                    Ok((n, from)) if rtcp => ls.handle_rtcp(now, from, &o.rtp_buf[..n]),
                    Ok((n, from)) => ls.handle_packet(now, from, &o.rtp_buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        debug!(error = %e, "leg media socket error");
                        break;
                    }
                }
            }
        }
        // Callee -> caller.
        o.buf.clear();
        ls.take_audio(&mut o.buf);
        if let Some(cs) = self.session.as_mut() {
            cs.write_audio(now, &o.buf);
            // Caller -> callee.
            o.buf.clear();
            cs.take_audio(&mut o.buf);
            ls.write_audio(now, &o.buf);
        }
        ls.handle_timeout(now);
    }

    fn flush_outbound_media(&mut self) {
        let mut denied = 0u64;
        for o in self.outbound.iter_mut() {
            let (Some(ms), Some(s)) = (o.media.as_ref(), o.session.as_mut()) else {
                continue;
            };
            while let Some(tx) = s.poll_transmit() {
                if !self.ctx.allow.permits(tx.to.ip()) {
                    denied += 1;
                    continue;
                }
                let sock = if tx.kind == MediaKind::Rtcp {
                    &ms.rtcp
                } else {
                    &ms.rtp
                };
                if let Err(e) = sock.send_to(tx.data(), tx.to) {
                    debug!(error = %e, dest = %tx.to, "leg RTP send failed");
                }
            }
        }
        if denied > 0 {
            metrics::counter!(crate::metrics::DESTINATION_DENIED, "kind" => "rtp")
                .increment(denied);
        }
    }

    /// Ends leg `i`'s media: RTCP BYE, sockets closed, port back to the pool.
    fn close_leg_media(&mut self, now: Instant, i: usize) {
        if let Some(s) = self.outbound.get_mut(i).and_then(|o| o.session.as_mut()) {
            s.close(now);
        }
        self.flush_outbound_media();
        if let Some(o) = self.outbound.get_mut(i) {
            o.session = None;
            if let Some(ms) = o.media.take() {
                let _ = self.done.send(CallReport::PortFreed(ms.port));
            }
        }
    }

    /// Gives up on the leg `leg`: CANCEL while it rings, BYE once answered (a 200 that
    /// crosses the CANCEL is ACKed and ended with BYE by the leg); its media stops, its
    /// transactions linger. Nothing more is reported for it.
    pub(super) fn hang_up_leg(&mut self, now: Instant, leg: &str) {
        let Some(i) = self.leg_index(leg) else {
            return;
        };
        if let Some(l) = self.outbound[i].leg.as_mut() {
            if l.state() != LegState::Ended {
                l.hangup(now);
            }
        }
        self.close_leg_media(now, i);
        self.outbound[i].failed = true;
    }

    /// The call ends (or leaves the bridge): CANCEL or BYE every leg, stop their media
    /// (their transactions linger).
    pub(super) fn end_outbound(&mut self, now: Instant) {
        self.ringback = false;
        if let Some(q) = self.queued.as_mut() {
            // Every leg is hung up below; the ACD settles the offers of a call that left.
            let _ = q.ring_cancel_all();
        }
        for i in 0..self.outbound.len() {
            if let Some(leg) = self.outbound[i].leg.as_mut() {
                if leg.state() != LegState::Ended {
                    leg.hangup(now);
                }
            }
            self.close_leg_media(now, i);
            self.outbound[i].failed = true;
        }
    }

    /// Forgets every leg: the endpoint stops routing them.
    pub(super) fn drop_outbound(&mut self) {
        for o in std::mem::take(&mut self.outbound) {
            self.forget_leg(o);
        }
    }

    /// Forgets one leg: its port back to the pool, the endpoint stops routing it.
    fn forget_leg(&mut self, mut o: Outbound) {
        if let Some(ms) = o.media.take() {
            let _ = self.done.send(CallReport::PortFreed(ms.port));
        }
        let _ = self.done.send(CallReport::LegEnded {
            leg_call_id: o.call_id,
            leg_tag: o.local_tag,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ringback_is_425_hz_one_second_on_four_off() {
        let t = ringback_tone();
        assert_eq!(t.len(), 40_000);
        let on = &t.samples()[..8000];
        let crossings = on.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        // 425 Hz: 850 zero crossings a second (± edge effects)
        assert!((845..=855).contains(&crossings), "{crossings}");
        assert!(on.iter().map(|s| s.unsigned_abs()).max().unwrap() > 6500);
        assert!(t.samples()[8000..].iter().all(|&s| s == 0));
    }
}
