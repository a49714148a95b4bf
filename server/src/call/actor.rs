//! One call: a tokio task that owns the call's transactions, dialog, RTP session and sockets.
//!
//! Inputs: SIP messages routed by Call-ID ([`CallMsg`]), RTP/RTCP datagrams on its own
//! sockets, and the earliest `poll_timeout` of its cores. Outputs: SIP through the
//! [`Link`] the INVITE came on, RTP/RTCP from its sockets, and a [`CallEnded`] to the
//! endpoint when it exits. The flow until the IVR lands:
//!
//! ```text
//! INVITE -> 100 -> [180 for answer_delay] -> 200 (SDP) -> ACK -> prompt -> BYE -> 200
//! ```
//!
//! The caller may CANCEL before the answer (487), hang up at any time (BYE), put the call
//! on hold and resume it (re-INVITE); no RTP for the inactivity timeout ends the call.

use super::app::{AppHost, HostOutcome};
use super::endpoint::{Answer, Counters};
use super::{CallContext, CallEnded, CallMsg, CallReport, EndReason};
use crate::media::dtmf::DtmfDigit;
use crate::media::dtmf_dedup::DtmfSource;
use crate::media::sdp::{self, Direction, LocalMedia, Negotiated, SessionDescription};
use crate::media::session::{MediaEvent, MediaKind, RtpSession, SessionConfig};
use crate::metrics as m;
use crate::sip::dialog::{copy_record_route, Dialog};
use crate::sip::message::{
    HeaderAccess, HeaderName, Method, Request, Response, SipMessage, TransportKind, Uri, Via,
};
use crate::sip::transaction::{
    new_branch, peer_for_uri, ClientTxId, Incoming, Peer, ServerTxId, TransactionEvent,
    TransactionLayer,
};
use crate::sip::transport::{Inbound, Link};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{debug, info, info_span, warn, Instrument};

mod bridge;
mod dial;
mod hook;
mod queue;
mod ring;
use bridge::Outbound;
pub use dial::{run_dial, DialSetup};

/// Methods we accept, for `Allow`.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, SUBSCRIBE";
/// Extensions we support, for `Supported`.
pub const SUPPORTED: &str = "";
/// Bodies we accept, for `Accept`.
pub const ACCEPT: &str = "application/sdp";

/// How often a call reads its media sockets.
const RX_POLL: Duration = Duration::from_millis(20);
/// At most this many datagrams per socket and tick.
const MAX_DATAGRAMS_PER_TICK: usize = 32;
/// How often a call reads its RTCP socket.
const RTCP_POLL: Duration = Duration::from_millis(200);

/// The RTP and RTCP sockets the endpoint bound for this call: non-blocking std sockets,
/// read on the media tick and written with non-blocking sends, never registered with the
/// runtime's I/O driver.
#[derive(Debug)]
pub struct MediaSockets {
    /// RTP (even port).
    pub rtp: std::net::UdpSocket,
    /// RTCP (the next port).
    pub rtcp: std::net::UdpSocket,
    /// The RTP port.
    pub port: u16,
}

/// Where the call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// INVITE received, not yet answered (ringing while `answer_at` is in the future).
    Ringing,
    /// 200 sent, waiting for the ACK.
    Answered,
    /// ACK received: media flows.
    Confirmed,
    /// Our BYE is out.
    Closing,
    /// Done; lingering until the transactions have absorbed retransmissions.
    Ended,
}

/// Everything a new call actor starts with.
#[derive(Debug)]
pub struct CallSetup {
    /// Shared read-only context.
    pub ctx: Arc<CallContext>,
    /// The INVITE's Call-ID.
    pub call_id: String,
    /// Our tag (To of our responses, From of our requests), chosen by the endpoint.
    pub local_tag: String,
    /// The INVITE as received.
    pub first: Inbound,
    /// RTP/RTCP sockets, if a port pair was free.
    pub media: Option<MediaSockets>,
    /// Where to report freed ports and the end.
    pub done: mpsc::UnboundedSender<CallReport>,
    /// Live figures for the API.
    pub counters: Arc<Counters>,
}

/// Runs a call actor for a new INVITE. Returns when the call has ended and its
/// transactions are gone.
pub async fn run(setup: CallSetup, rx: mpsc::Receiver<CallMsg>) {
    let CallSetup {
        ctx,
        call_id,
        local_tag,
        first,
        media,
        done,
        counters,
    } = setup;
    let span = info_span!("call", call_id = %call_id);
    async move {
        let mut call = Call::new(
            ctx,
            call_id.clone(),
            local_tag.clone(),
            (first.link.clone(), first.from),
            media,
            counters,
            done.clone(),
        );
        call.on_inbound(now(), first);
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

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

struct Call {
    ctx: Arc<CallContext>,
    call_id: String,
    link: Link,
    peer: Peer,
    layer: TransactionLayer,
    phase: Phase,
    invite: Option<(ServerTxId, Request)>,
    local_tag: String,
    local_contact: Uri,
    dialog: Option<Dialog>,
    number: Option<String>,
    answer_at: Option<Instant>,
    media: Option<MediaSockets>,
    session: Option<RtpSession>,
    local_media: Option<LocalMedia>,
    /// Our offer when the INVITE had no SDP (late offer), waiting for the ACK's answer.
    pending_offer: Option<SessionDescription>,
    negotiated: Option<Negotiated>,
    bye_tx: Option<ClientTxId>,
    bye_after_ack: Option<EndReason>,
    end_reason: Option<EndReason>,
    ended_at: Option<Instant>,
    counted_active: bool,
    active_released: bool,
    call_released: bool,
    /// The call's record went to the endpoint at hang-up ([`CallReport::Record`]).
    record_sent: bool,
    reported_tx: usize,
    reported_rtp: RtpCounters,
    branch_counter: u64,
    buf: Vec<u8>,
    counters: Arc<Counters>,
    done: mpsc::UnboundedSender<CallReport>,
    rx_polled_at: Option<Instant>,
    rtp_sent_ok: u64,
    warned_denied: bool,
    rtcp_polled_at: Option<Instant>,
    started_ms: u64,
    answered_ms: Option<u64>,
    final_stats: RtpCounters,
    /// The IVR flow / voicemail application, for numbers with a flow.
    host: Option<AppHost>,
    /// Waiting in (or connected through) an ACD queue.
    queued: Option<queue::Queued>,
    /// The outbound legs this call placed (an IVR `extension`, the agents a queued
    /// caller rings at once); the one that answers is bridged.
    outbound: Vec<Outbound>,
    /// Ringback plays to the caller (looped) while the outbound leg rings.
    ringback: bool,
    /// The called party (an agent) holds the call: the caller hears music.
    held_by_callee: bool,
    /// The `call.incoming` hook (asked when the INVITE is accepted).
    incoming_hook: hook::IncomingHook,
    /// Media is up but the flow waits for the `call.incoming` hook's answer.
    app_waits_for_hook: bool,
    /// A dial of a campaign: the contact's leg and what happens after its answer
    /// (`None` for an inbound call).
    dial: Option<Box<dial::Dialing>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct RtpCounters {
    sent: u64,
    received: u64,
    lost: u64,
    late: u64,
    skipped: u64,
}

/// How long an ended call keeps its transactions for retransmissions, at most.
fn linger_limit(ctx: &CallContext) -> Duration {
    ctx.timers.t1 * 64
}

impl Call {
    fn new(
        ctx: Arc<CallContext>,
        call_id: String,
        local_tag: String,
        (link, peer): (Link, Peer),
        media: Option<MediaSockets>,
        counters: Arc<Counters>,
        done: mpsc::UnboundedSender<CallReport>,
    ) -> Self {
        let layer = TransactionLayer::new(ctx.timers);
        Call {
            local_contact: Uri {
                scheme: "sip".into(),
                user: None,
                host: ctx.config.sip.public_host.clone(),
                port: None,
                params: Vec::new(),
                headers: None,
            },
            ctx,
            call_id,
            link,
            peer,
            layer,
            phase: Phase::Ringing,
            invite: None,
            local_tag,
            dialog: None,
            number: None,
            answer_at: None,
            media,
            session: None,
            local_media: None,
            pending_offer: None,
            negotiated: None,
            bye_tx: None,
            bye_after_ack: None,
            end_reason: None,
            ended_at: None,
            counted_active: false,
            active_released: false,
            call_released: false,
            record_sent: false,
            reported_tx: 0,
            reported_rtp: RtpCounters::default(),
            branch_counter: rand::random::<u64>(),
            buf: vec![0u8; 2048],
            counters,
            done,
            rx_polled_at: None,
            rtp_sent_ok: 0,
            warned_denied: false,
            rtcp_polled_at: None,
            started_ms: super::unix_ms(),
            answered_ms: None,
            final_stats: RtpCounters::default(),
            host: None,
            queued: None,
            outbound: Vec::new(),
            ringback: false,
            held_by_callee: false,
            incoming_hook: hook::IncomingHook::Off,
            app_waits_for_hook: false,
            dial: None,
        }
    }

    async fn run(&mut self, mut rx: mpsc::Receiver<CallMsg>) {
        // One timer for the whole call, re-armed only when the earliest deadline moves.
        let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
        let sleep = tokio::time::sleep_until(far());
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        loop {
            self.drive(now()).await;
            if self.finished(now()) {
                break;
            }
            let deadline = self.next_deadline();
            if deadline != armed || deadline.is_none() && sleep.is_elapsed() {
                sleep.as_mut().reset(
                    deadline
                        .map(tokio::time::Instant::from_std)
                        .unwrap_or_else(far),
                );
                armed = deadline;
            }
            let ev = tokio::select! {
                msg = rx.recv() => Some(msg),
                Some(acd) = queue::next_acd(&mut self.queued) => {
                    let t = now();
                    self.on_acd(t, acd);
                    continue;
                }
                answer = hook::next_answer(&mut self.incoming_hook) => {
                    let t = now();
                    self.on_incoming_hook(t, answer);
                    continue;
                }
                _ = &mut sleep => None,
            };
            let t = now();
            match ev {
                Some(Some(CallMsg::Sip(inbound))) => self.on_inbound(t, *inbound),
                Some(Some(CallMsg::LegReady {
                    call_id,
                    media,
                    udp,
                })) => self.on_leg_ready(t, call_id, media, udp),
                Some(Some(CallMsg::Shutdown)) | Some(None) => {
                    if self.phase == Phase::Ended {
                        break; // only lingering for retransmissions: nothing to end
                    }
                    self.hang_up(t, EndReason::Shutdown);
                }
                None => {
                    armed = None; // fired: re-arm on the next pass whatever the deadline
                    self.on_timer(t);
                }
            }
        }
        self.report_rtp(true);
        self.set_tx_gauge(0);
        self.release_active();
        let reason = self.end_reason.unwrap_or(EndReason::Failed);
        metrics::counter!(m::CALLS_ENDED, "reason" => reason.as_str()).increment(1);
        info!(reason = reason.as_str(), "call ended");
    }

    fn record(&self) -> crate::store::CallRecord {
        crate::store::CallRecord {
            call_id: self.call_id.clone(),
            number: self.number.clone().unwrap_or_else(|| {
                self.invite
                    .as_ref()
                    .and_then(|(_, r)| r.uri.user.clone())
                    .unwrap_or_default()
            }),
            peer: self.peer.addr.to_string(),
            started_ms: self.started_ms,
            answered_ms: self.answered_ms,
            ended_ms: super::unix_ms(),
            reason: self
                .end_reason
                .unwrap_or(EndReason::Failed)
                .as_str()
                .to_string(),
            rtp_sent: self.final_stats.sent,
            rtp_received: self.final_stats.received,
            rtp_lost: self.final_stats.lost,
        }
    }

    fn finished(&self, now: Instant) -> bool {
        match (self.phase, self.ended_at) {
            (Phase::Ended, Some(at)) => {
                (self.layer.is_empty() && self.outbound.is_empty() && self.dial_leg_done(now))
                    || now >= at + linger_limit(&self.ctx)
            }
            _ => false,
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut d = self.layer.poll_timeout();
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                d = Some(d.map_or(t, |d| d.min(t)));
            }
        };
        consider(self.session.as_ref().and_then(|s| s.poll_timeout()));
        if self.session.is_some() {
            // Read the media sockets at least once per tick, even while we send nothing.
            consider(self.rx_polled_at.map(|t| t + RX_POLL));
            consider(self.host.as_ref().and_then(|h| h.poll_timeout()));
            consider(self.queue_timeout());
        }
        if self.phase == Phase::Ringing {
            consider(self.answer_at);
        }
        if let Some(at) = self.ended_at {
            consider(Some(at + linger_limit(&self.ctx)));
        }
        consider(self.outbound_timeout());
        consider(self.dial_timeout());
        d
    }

    /// Sends everything the cores want sent and handles their events.
    async fn drive(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            while let Some(ev) = self.layer.poll_event() {
                progressed = true;
                self.on_transaction_event(now, ev);
            }
            let mut media_events = Vec::new();
            if let Some(s) = self.session.as_mut() {
                while let Some(ev) = s.poll_event() {
                    media_events.push(ev);
                }
            }
            for ev in media_events {
                progressed = true;
                self.on_media_event(now, ev);
            }
            progressed |= self.drive_outbound(now).await;
            if self.dial.is_some() {
                progressed |= self.drive_dial(now).await;
            }
            while let Some(t) = self.layer.poll_transmit() {
                progressed = true;
                count_sent(&t.message);
                let to = t.to.addr;
                let data = Bytes::from(t.message.to_bytes());
                if let Err(e) = self.link.send(&self.ctx.allow, to, data).await {
                    warn!(error = %e, "SIP send failed");
                }
            }
            self.flush_media();
            if !progressed {
                break;
            }
        }
        self.report_rtp(false);
        let n = self.layer.len();
        self.set_tx_gauge(n);
    }

    /// Sends every datagram the RTP session has queued (non-blocking socket writes).
    fn flush_media(&mut self) {
        let (Some(s), Some(ms)) = (self.session.as_mut(), self.media.as_ref()) else {
            return;
        };
        let (mut sent, mut denied) = (0u64, 0u64);
        let mut denied_dest = None;
        while let Some(tx) = s.poll_transmit() {
            if !self.ctx.allow.permits(tx.to.ip()) {
                denied += 1;
                denied_dest = Some(tx.to);
                continue;
            }
            let (sock, rtp) = if tx.kind == MediaKind::Rtcp {
                (&ms.rtcp, false)
            } else {
                (&ms.rtp, true)
            };
            match sock.send_to(tx.data(), tx.to) {
                Ok(_) => sent += u64::from(rtp),
                Err(e) => debug!(error = %e, dest = %tx.to, "RTP send failed"),
            }
        }
        // Only packets handed to the kernel count as sent.
        self.rtp_sent_ok += sent;
        if denied > 0 {
            metrics::counter!(m::DESTINATION_DENIED, "kind" => "rtp").increment(denied);
            if !self.warned_denied {
                self.warned_denied = true;
                if let Some(dest) = denied_dest {
                    warn!(%dest, "not sending RTP: destination outside network.allow");
                }
            }
        }
    }

    fn set_tx_gauge(&mut self, n: usize) {
        if n != self.reported_tx {
            metrics::gauge!(m::SIP_TRANSACTIONS).increment(n as f64 - self.reported_tx as f64);
            // Two's-complement wrap: adding (n - old) mod 2^64 subtracts when n < old.
            self.counters.transactions.fetch_add(
                (n as u64).wrapping_sub(self.reported_tx as u64),
                std::sync::atomic::Ordering::Relaxed,
            );
            self.reported_tx = n;
        }
    }

    fn report_rtp(&mut self, force: bool) {
        let Some(s) = self.session.as_ref() else {
            return;
        };
        let st = s.stats();
        let cur = RtpCounters {
            sent: self.rtp_sent_ok,
            received: st.packets_received,
            lost: st.packets_lost,
            late: st.send_late,
            skipped: st.send_skipped,
        };
        // Report in batches: a counter update per packet would cost more than the packet.
        if !force
            && cur.sent < self.reported_rtp.sent + 50
            && cur.received < self.reported_rtp.received + 50
        {
            return;
        }
        self.final_stats = cur;
        let r = self.reported_rtp;
        metrics::counter!(m::RTP_PACKETS_SENT).increment(cur.sent.saturating_sub(r.sent));
        metrics::counter!(m::RTP_PACKETS_RECEIVED)
            .increment(cur.received.saturating_sub(r.received));
        metrics::counter!(m::RTP_PACKETS_LOST).increment(cur.lost.saturating_sub(r.lost));
        metrics::counter!(m::RTP_PACKETS_LATE).increment(cur.late.saturating_sub(r.late));
        metrics::counter!(m::RTP_PACKETS_SKIPPED).increment(cur.skipped.saturating_sub(r.skipped));
        self.reported_rtp = cur;
    }

    fn on_inbound(&mut self, now: Instant, inbound: Inbound) {
        if self.is_outbound_message(&inbound.message) {
            self.on_outbound_sip(now, inbound);
            return;
        }
        if self.is_dial() {
            // The call's own Call-ID is the contact's leg.
            self.dial_inbound(now, inbound);
            return;
        }
        if let SipMessage::Request(r) = &inbound.message {
            metrics::counter!(m::SIP_REQUESTS_RECEIVED, "method" => r.method.as_str().to_string())
                .increment(1);
        } else if let SipMessage::Response(r) = &inbound.message {
            metrics::counter!(m::SIP_RESPONSES_RECEIVED, "status" => r.status.to_string())
                .increment(1);
        }
        // A TCP caller may reconnect: answer on the newest connection.
        if inbound.from.transport != TransportKind::Udp {
            self.link = inbound.link.clone();
            self.peer = inbound.from;
        }
        match self
            .layer
            .handle_incoming(now, inbound.message, inbound.from)
        {
            Incoming::NewRequest(id, req) => self.on_request(now, id, req),
            Incoming::Ack(ack) => self.on_ack(now, ack),
            Incoming::Cancel {
                cancel,
                invite,
                request,
            } => self.on_cancel(now, cancel, invite, request),
            Incoming::Response(id, resp) => self.on_response(now, id, resp),
            Incoming::Absorbed => {}
            Incoming::StrayResponse(r) => debug!(status = r.status, "stray response dropped"),
            Incoming::Invalid { message, error } => {
                debug!(%error, "message unusable by the transaction layer");
                if let SipMessage::Request(req) = message {
                    if req.method != Method::Ack && req.headers.get(&HeaderName::Via).is_some() {
                        let mut resp = Response::for_request(
                            &req,
                            400,
                            &format!("Bad Request: {error}"),
                            None,
                        );
                        self.decorate(&mut resp);
                        let to = self.peer;
                        self.layer.send_stateless(to, SipMessage::Response(resp));
                    }
                }
            }
        }
    }

    fn decorate(&self, resp: &mut Response) {
        resp.headers
            .push(HeaderName::Server, self.ctx.config.user_agent.clone());
    }

    /// Answers a server transaction; the To tag is ours for every non-100 answer.
    fn respond(
        &mut self,
        now: Instant,
        id: ServerTxId,
        req: &Request,
        (status, reason): (u16, &str),
        extra: &[(HeaderName, String)],
        body: Option<Bytes>,
    ) {
        let tag = (status > 100).then_some(self.local_tag.as_str());
        let mut resp = Response::for_request(req, status, reason, tag);
        for (n, v) in extra {
            resp.headers.push(n.clone(), v.clone());
        }
        self.decorate(&mut resp);
        if req.method == Method::Invite && (101..300).contains(&status) {
            copy_record_route(req, &mut resp); // RFC 3261 §12.1.1
        }
        if let Some(b) = body {
            resp.headers
                .push(HeaderName::ContentType, "application/sdp");
            resp.body = b;
        }
        if let Err(e) = self.layer.send_response(now, id, resp) {
            debug!(error = %e, status, "response not sent");
        }
    }

    fn on_request(&mut self, now: Instant, id: ServerTxId, req: Request) {
        if self.invite.is_none() && req.method == Method::Invite {
            self.on_initial_invite(now, id, req);
            return;
        }
        // Everything else must belong to our dialog.
        let in_dialog = self.dialog.as_ref().is_some_and(|d| d.matches(&req));
        if !in_dialog {
            // Same Call-ID but not our dialog: answer as the endpoint answers strangers.
            let a = super::endpoint::out_of_dialog_answer(&req);
            self.respond(now, id, &req, (a.status, a.reason), &a.headers, None);
            return;
        }
        if let Some(d) = self.dialog.as_mut() {
            if let Err(e) = d.handle_request(&req) {
                debug!(error = %e, "in-dialog request refused");
                self.respond(
                    now,
                    id,
                    &req,
                    (500, "Server Internal Error: CSeq out of order"),
                    &[],
                    None,
                );
                return;
            }
        }
        match req.method {
            Method::Bye => {
                self.respond(now, id, &req, (200, "OK"), &[], None);
                info!("caller hung up");
                self.finish(now, EndReason::CallerHangup);
            }
            Method::Invite => self.on_reinvite(now, id, req),
            Method::Options => {
                let extra = [
                    (HeaderName::Allow, ALLOW.to_string()),
                    (HeaderName::Accept, ACCEPT.to_string()),
                ];
                self.respond(now, id, &req, (200, "OK"), &extra, None);
            }
            Method::Info => {
                self.respond(now, id, &req, (200, "OK"), &[], None);
                if let Some(digit) = dtmf_from_info(&req).and_then(DtmfDigit::from_char) {
                    self.on_digit(now, DtmfSource::SipInfo, digit);
                }
            }
            Method::Ack => {}
            _ => {
                let extra = [(HeaderName::Allow, ALLOW.to_string())];
                self.respond(now, id, &req, (405, "Method Not Allowed"), &extra, None);
            }
        }
    }

    fn on_initial_invite(&mut self, now: Instant, id: ServerTxId, req: Request) {
        self.invite = Some((id, req.clone()));
        let user = req.uri.user.clone().unwrap_or_default();
        info!(number = %crate::call::redact(&user), from = %self.peer.addr, "incoming call");

        if let Err(Answer {
            status,
            reason,
            headers: extra,
        }) = self.validate_invite(&req)
        {
            info!(status, reason, "call rejected");
            self.respond(now, id, &req, (status, reason), &extra, None);
            self.finish(now, EndReason::Rejected);
            return;
        }
        let number = self
            .ctx
            .config
            .number(&user)
            .map(|n| (n.number.clone(), n.answer_delay));
        let Some((number, delay)) = number else {
            let mf_zero = req.headers.get(&HeaderName::MaxForwards).map(str::trim) == Some("0");
            let (status, reason) = if mf_zero {
                (483, "Too Many Hops")
            } else {
                (404, "Not Found")
            };
            info!(status, "call rejected: number not configured");
            self.respond(now, id, &req, (status, reason), &[], None);
            self.finish(now, EndReason::Rejected);
            return;
        };
        self.local_contact.user = Some(number.clone());
        self.local_contact.port = Some(self.local_port());
        if self.link.kind() == TransportKind::Tcp {
            self.local_contact
                .params
                .push(("transport".into(), Some("tcp".into())));
        }
        self.number = Some(number);

        let Some(port) = self.media.as_ref().map(|m| m.port) else {
            warn!("no RTP port free in rtp.port_min..rtp.port_max");
            self.respond(
                now,
                id,
                &req,
                (503, "Service Unavailable: no media port free"),
                &[(HeaderName::Other("Retry-After".into()), "5".into())],
                None,
            );
            self.finish(now, EndReason::Rejected);
            return;
        };
        let mut local = LocalMedia::new(self.ctx.config.rtp.ip, port);
        local.codecs = self.ctx.config.rtp.codecs.clone();
        local.session_id = rand::random::<u32>() as u64;
        local.session_version = local.session_id;

        if !req.body.is_empty() {
            match parse_sdp(&req.body).and_then(|offer| sdp::negotiate_answer(&offer, &local)) {
                Ok(neg) => self.negotiated = Some(neg),
                Err(e) => {
                    info!(error = %e, "SDP offer refused");
                    let warning = (
                        HeaderName::Other("Warning".into()),
                        format!("304 {} \"{}\"", self.ctx.config.sip.public_host, e),
                    );
                    self.respond(
                        now,
                        id,
                        &req,
                        (488, "Not Acceptable Here"),
                        &[warning],
                        None,
                    );
                    self.finish(now, EndReason::Rejected);
                    return;
                }
            }
        }
        self.local_media = Some(local);
        // Before routing: the call.incoming hook works while the call is answered.
        self.ask_incoming_hook();
        // The transaction layer has already sent 100 Trying.
        if delay.is_zero() {
            self.answer(now);
        } else {
            self.respond(
                now,
                id,
                &req,
                (180, "Ringing"),
                &[(HeaderName::Contact, format!("<{}>", self.local_contact))],
                None,
            );
            self.answer_at = Some(now + delay);
        }
    }

    /// Checks that apply before anything else (RFC 3261 §8.2.1-§8.2.3).
    fn validate_invite(&self, req: &Request) -> Result<(), Answer> {
        if !matches!(req.uri.scheme.as_str(), "sip" | "sips") {
            return Err(Answer {
                status: 416,
                reason: "Unsupported URI Scheme",
                headers: vec![],
            });
        }
        let unsupported = super::endpoint::unsupported_requirements(req);
        if !unsupported.is_empty() {
            return Err(Answer {
                status: 420,
                reason: "Bad Extension",
                headers: vec![(HeaderName::Unsupported, unsupported.join(", "))],
            });
        }
        if !req.body.is_empty() {
            let ct = req.headers.get(&HeaderName::ContentType).unwrap_or("");
            let media_type = ct.split(';').next().unwrap_or("").trim();
            if !media_type.eq_ignore_ascii_case("application/sdp") {
                return Err(Answer {
                    status: 415,
                    reason: "Unsupported Media Type",
                    headers: vec![(HeaderName::Accept, ACCEPT.into())],
                });
            }
            if let Some(enc) = req.headers.get(&HeaderName::ContentEncoding) {
                if !enc.trim().eq_ignore_ascii_case("identity") {
                    return Err(Answer {
                        status: 415,
                        reason: "Unsupported Media Type",
                        headers: vec![(HeaderName::AcceptEncoding, "identity".into())],
                    });
                }
            }
        }
        Ok(())
    }

    fn local_port(&self) -> u16 {
        let sip = &self.ctx.config.sip;
        let addr = match self.link.kind() {
            TransportKind::Udp => sip.udp,
            _ => sip.tcp,
        };
        addr.map(|a| a.port()).unwrap_or(5060)
    }

    /// Sends the 200 with our SDP (answer, or offer when the INVITE had none).
    fn answer(&mut self, now: Instant) {
        let Some((id, req)) = self.invite.clone() else {
            return;
        };
        let Some(local) = self.local_media.clone() else {
            return;
        };
        let body = match &self.negotiated {
            Some(neg) => neg.answer.to_sdp_string(),
            None => {
                let offer = sdp::create_offer(&local, Direction::SendRecv);
                let s = offer.to_sdp_string();
                self.pending_offer = Some(offer);
                s
            }
        };
        let dialog = match Dialog::new_uas(&req, &self.local_tag, &self.local_contact) {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "cannot form a dialog from the INVITE");
                self.respond(
                    now,
                    id,
                    &req,
                    (400, "Bad Request: cannot form dialog"),
                    &[],
                    None,
                );
                self.finish(now, EndReason::Rejected);
                return;
            }
        };
        self.dialog = Some(dialog);
        let extra = [
            (HeaderName::Contact, format!("<{}>", self.local_contact)),
            (HeaderName::Allow, ALLOW.to_string()),
        ];
        self.respond(now, id, &req, (200, "OK"), &extra, Some(Bytes::from(body)));
        self.phase = Phase::Answered;
        self.answer_at = None;
        self.counted_active = true;
        self.answered_ms = Some(super::unix_ms());
        metrics::gauge!(m::CALLS_ACTIVE).increment(1.0);
        metrics::gauge!(m::SIP_DIALOGS).increment(1.0);
        self.counters
            .dialogs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        info!("call answered");
    }

    fn on_ack(&mut self, now: Instant, ack: Request) {
        if self.phase != Phase::Answered {
            return; // a retransmitted ACK, or one for a re-INVITE: nothing to do
        }
        if let Some(offer) = self.pending_offer.take() {
            let neg = parse_sdp(&ack.body).and_then(|answer| sdp::handle_answer(&offer, &answer));
            match neg {
                Ok(neg) => self.negotiated = Some(neg),
                Err(e) => {
                    info!(error = %e, "late-offer ACK carried no usable SDP answer: ending the call");
                    self.phase = Phase::Confirmed;
                    self.hang_up(now, EndReason::Failed);
                    return;
                }
            }
        }
        self.phase = Phase::Confirmed;
        if let Some(reason) = self.bye_after_ack.take() {
            self.hang_up(now, reason);
            return;
        }
        self.start_media(now);
    }

    fn start_media(&mut self, now: Instant) {
        let Some(neg) = self.negotiated.clone() else {
            return;
        };
        let cfg = SessionConfig {
            codec: neg.codec,
            payload_type: neg.payload_type,
            telephone_event_pt: neg.telephone_event_pt,
            ssrc: rand::random(),
            initial_seq: rand::random(),
            initial_timestamp: rand::random(),
            remote: neg.remote_addr,
            remote_rtcp: neg.remote_rtcp_addr,
            ptime: neg.ptime,
            inactivity_timeout: self.ctx.config.rtp.inactivity_timeout,
            ntp_base: std::time::SystemTime::now(),
            ..SessionConfig::default()
        };
        let mut session = RtpSession::new(cfg, now);
        session.set_direction(neg.direction);
        debug!(codec = ?neg.codec, remote = %neg.remote_addr, "media started");
        self.session = Some(session);
        if self.incoming_hook_pending() && self.has_flow() {
            debug!("the flow waits for the call.incoming hook");
            self.app_waits_for_hook = true;
            return;
        }
        self.start_app(now);
    }

    /// Whether the called number runs an IVR flow.
    fn has_flow(&self) -> bool {
        self.invite
            .as_ref()
            .and_then(|(_, r)| r.uri.user.as_deref())
            .and_then(|user| self.ctx.config.number(user))
            .is_some_and(|n| n.flow.is_some())
    }

    /// Starts what the number does once media is up: its IVR flow (with the
    /// `call.incoming` hook's variables, or straight into the hook's queue), or its prompt.
    fn start_app(&mut self, now: Instant) {
        let (Some(mut session), Some(neg)) = (self.session.take(), self.negotiated.clone()) else {
            return;
        };
        let flow = self
            .invite
            .as_ref()
            .and_then(|(_, r)| r.uri.user.as_deref())
            .and_then(|user| self.ctx.config.number(user))
            .and_then(|n| n.flow.clone());
        match flow {
            Some(flow) => {
                let (number, name) = self.caller();
                let vars = self.hook_variables();
                match AppHost::for_flow(
                    self.ctx.clone(),
                    &flow,
                    number,
                    name,
                    neg.telephone_event_pt.is_none(),
                    vars.clone(),
                    now,
                ) {
                    Ok(mut host) => {
                        let out = match self.hook_queue() {
                            Some(queue) => {
                                info!(flow = %flow, %queue, "straight to the queue the hook chose");
                                host.start_in_queue(now, &mut session, &queue, vars)
                            }
                            None => {
                                info!(flow = %flow, "entering IVR flow");
                                host.start(now, &mut session)
                            }
                        };
                        self.host = Some(host);
                        self.session = Some(session);
                        self.after_host(now, out);
                    }
                    Err(e) => {
                        warn!(flow = %flow, error = %e, "cannot start the IVR flow");
                        self.session = Some(session);
                        self.hang_up(now, EndReason::Failed);
                    }
                }
            }
            None => {
                if let Some(prompt) = self.number.as_ref().and_then(|n| self.ctx.prompts.get(n)) {
                    session.play(now, prompt.clone());
                }
                self.session = Some(session);
            }
        }
    }

    /// The caller's number and display name, from the INVITE's From.
    fn caller(&self) -> (String, String) {
        if let Some(contact) = self.dial_contact() {
            return contact;
        }
        let Some((_, req)) = self.invite.as_ref() else {
            return (String::new(), String::new());
        };
        match req.from_header() {
            Ok(from) => (
                from.uri.user.clone().unwrap_or_default(),
                from.display.clone().unwrap_or_default(),
            ),
            Err(_) => (String::new(), String::new()),
        }
    }

    /// Acts on what the application host asked for.
    fn after_host(&mut self, now: Instant, out: HostOutcome) {
        match out {
            HostOutcome::Continue => {}
            HostOutcome::Hangup => self.hang_up(now, EndReason::Completed),
            HostOutcome::Connect(target) => self.connect(now, target),
            HostOutcome::Enqueue(queue, vars) => self.enqueue(now, queue, vars),
        }
    }

    /// A digit from the caller, for the application if one runs.
    fn on_digit(&mut self, now: Instant, source: DtmfSource, digit: DtmfDigit) {
        if self.relay_digit_to_leg(now, digit) {
            return;
        }
        if self.queue_digit(digit) {
            return;
        }
        match (self.host.as_mut(), self.session.as_mut()) {
            (Some(h), Some(s)) => {
                let out = h.digit(now, source, digit, s);
                self.after_host(now, out);
            }
            _ => {
                let label = source.as_str();
                metrics::counter!(m::DTMF_DIGITS, "source" => label).increment(1);
                info!(digit = %digit, source = label, "DTMF (no application)");
            }
        }
    }

    /// Ends the application: a deposit in progress keeps its recording.
    fn end_app(&mut self) {
        if let Some(mut h) = self.host.take() {
            h.on_call_end();
        }
        self.leave_queue();
    }

    fn on_reinvite(&mut self, now: Instant, id: ServerTxId, req: Request) {
        if self.phase != Phase::Confirmed {
            // RFC 3261 §14.2: a re-INVITE while our own offer/answer is pending.
            self.respond(
                now,
                id,
                &req,
                (500, "Server Internal Error"),
                &[(HeaderName::Other("Retry-After".into()), "1".into())],
                None,
            );
            return;
        }
        let Some(local) = self.local_media.as_mut() else {
            return;
        };
        local.session_version += 1;
        let local = local.clone();
        if req.body.is_empty() {
            // An offer-less re-INVITE: we would offer in the 200 and take the answer from
            // the ACK; keep the current media and answer with our current parameters.
            let offer = sdp::create_offer(
                &local,
                self.negotiated
                    .as_ref()
                    .map_or(Direction::SendRecv, |n| n.direction),
            );
            let extra = [(HeaderName::Contact, format!("<{}>", self.local_contact))];
            self.respond(
                now,
                id,
                &req,
                (200, "OK"),
                &extra,
                Some(Bytes::from(offer.to_sdp_string())),
            );
            return;
        }
        let neg = parse_sdp(&req.body).and_then(|offer| sdp::negotiate_answer(&offer, &local));
        match neg {
            Ok(neg) => {
                info!(
                    direction = neg.direction.as_str(),
                    "re-INVITE: media updated"
                );
                if let Some(s) = self.session.as_mut() {
                    s.set_direction(neg.direction);
                    s.set_remote(neg.remote_addr, neg.remote_rtcp_addr);
                }
                let body = Bytes::from(neg.answer.to_sdp_string());
                self.negotiated = Some(neg);
                let extra = [(HeaderName::Contact, format!("<{}>", self.local_contact))];
                self.respond(now, id, &req, (200, "OK"), &extra, Some(body));
            }
            Err(e) => {
                info!(error = %e, "re-INVITE offer refused; call continues");
                self.respond(now, id, &req, (488, "Not Acceptable Here"), &[], None);
            }
        }
    }

    fn on_cancel(
        &mut self,
        now: Instant,
        cancel: ServerTxId,
        invite: Option<ServerTxId>,
        request: Request,
    ) {
        match invite {
            None => self.respond(
                now,
                cancel,
                &request,
                (481, "Call/Transaction Does Not Exist"),
                &[],
                None,
            ),
            Some(inv) => {
                self.respond(now, cancel, &request, (200, "OK"), &[], None);
                if self.phase == Phase::Ringing {
                    if let Some((id, req)) = self.invite.clone() {
                        if id == inv {
                            self.respond(now, id, &req, (487, "Request Terminated"), &[], None);
                            info!("caller cancelled before answer");
                            self.finish(now, EndReason::Cancelled);
                        }
                    }
                }
            }
        }
    }

    fn on_response(&mut self, now: Instant, id: ClientTxId, resp: Response) {
        if Some(id) == self.bye_tx && resp.status >= 200 {
            debug!(status = resp.status, "BYE answered");
            self.bye_tx = None;
            let reason = self.end_reason.unwrap_or(EndReason::Completed);
            self.finish(now, reason);
        }
    }

    fn on_transaction_event(&mut self, now: Instant, ev: TransactionEvent) {
        match ev {
            TransactionEvent::Timeout(id) if Some(id) == self.bye_tx => {
                info!("no answer to our BYE");
                self.bye_tx = None;
                let reason = self.end_reason.unwrap_or(EndReason::Failed);
                self.finish(now, reason);
            }
            TransactionEvent::AckTimeout(_) if self.phase == Phase::Answered => {
                info!("no ACK for our 200: ending the call");
                self.phase = Phase::Confirmed;
                self.hang_up(now, EndReason::AckTimeout);
            }
            _ => {}
        }
    }

    fn on_media_event(&mut self, now: Instant, ev: MediaEvent) {
        match ev {
            MediaEvent::PromptFinished if self.dial_prompt_finished(now) => {}
            MediaEvent::PromptFinished if self.ringback => self.replay_ringback(now),
            MediaEvent::PromptFinished if self.held_by_callee => self.play_hold_music(now),
            MediaEvent::PromptFinished if self.queue_prompt_finished(now) => {}
            MediaEvent::PromptFinished => match (self.host.as_mut(), self.session.as_mut()) {
                (Some(h), Some(s)) => {
                    let out = h.prompt_finished(now, s);
                    self.after_host(now, out);
                }
                _ => {
                    debug!("prompt finished");
                    self.hang_up(now, EndReason::Completed);
                }
            },
            MediaEvent::Dtmf(d) => self.on_digit(now, DtmfSource::Rfc4733, d),
            MediaEvent::Inactive => {
                info!("no RTP from the peer: ending the call");
                self.hang_up(now, EndReason::RtpTimeout);
            }
            MediaEvent::PeerAddressChanged(addr) => debug!(%addr, "RTP peer address latched"),
            MediaEvent::RemoteBye => debug!("peer sent RTCP BYE"),
        }
    }

    /// Reads every datagram waiting on the RTP and RTCP sockets (non-blocking) into the
    /// session. Called on the media tick: the sockets are not registered with the
    /// runtime's I/O driver, so thousands of calls cost it no readiness events; an RTP
    /// packet waits at most one tick (20 ms) in the kernel, an RTCP packet at most 200 ms.
    fn poll_media_sockets(&mut self, now: Instant) {
        let Some(ms) = self.media.as_ref() else {
            return;
        };
        self.rx_polled_at = Some(now);
        // RTCP comes every few seconds: its socket is read less often.
        let rtcp_due = self.rtcp_polled_at.is_none_or(|t| now >= t + RTCP_POLL);
        if rtcp_due {
            self.rtcp_polled_at = Some(now);
        }
        for (sock, rtcp) in [(&ms.rtp, false), (&ms.rtcp, true)] {
            if rtcp && !rtcp_due {
                continue;
            }
            // Bounded: a flood cannot keep the call from its own sending.
            for _ in 0..MAX_DATAGRAMS_PER_TICK {
                match sock.recv_from(&mut self.buf) {
                    Ok((n, from)) => match self.session.as_mut() {
                        Some(s) if rtcp => s.handle_rtcp(now, from, &self.buf[..n]),
                        Some(s) => s.handle_packet(now, from, &self.buf[..n]),
                        None => {} // before the answer or after the end: dropped
                    },
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        debug!(error = %e, "media socket error");
                        break;
                    }
                }
            }
        }
    }

    fn on_timer(&mut self, now: Instant) {
        // Every wake-up reads the media sockets: while we send, that is the 20 ms tick
        // itself, so reading costs no extra wake-up (the RX_POLL deadline only matters
        // while we send nothing).
        if self.session.is_some() {
            self.poll_media_sockets(now);
        }
        // Most wake-ups are the 20 ms media tick: touch the SIP timers only when one is due.
        if self.layer.poll_timeout().is_some_and(|t| t <= now) {
            self.layer.handle_timeout(now);
        }
        // Bridged: the leg's media in, audio across both ways, then both sessions send.
        self.outbound_tick(now);
        self.queue_tick(now);
        self.dial_tick(now);
        if let Some(s) = self.session.as_mut() {
            s.handle_timeout(now);
        }
        let host_idle = self.host.as_ref().is_some_and(|h| h.is_connecting());
        if let (Some(h), Some(s), false) = (self.host.as_mut(), self.session.as_mut(), host_idle) {
            let out = h.tick(now, s);
            self.after_host(now, out);
        }
        if self.phase == Phase::Ringing && self.answer_at.is_some_and(|t| now >= t) {
            self.answer(now);
        }
    }

    /// Ends the call from our side: BYE on a confirmed dialog, a final error before the
    /// answer, a BYE after the ACK when the 200 is not yet acknowledged (RFC 3261 §15).
    fn hang_up(&mut self, now: Instant, reason: EndReason) {
        self.end_app();
        self.end_outbound(now);
        if self.is_dial() {
            // The contact's leg: CANCEL while it rings, BYE once answered.
            self.dial_hang_up(now);
            if matches!(
                self.phase,
                Phase::Confirmed | Phase::Ringing | Phase::Answered
            ) {
                info!(reason = reason.as_str(), "hanging up the contact");
            }
            self.finish(now, reason);
            return;
        }
        match self.phase {
            Phase::Ringing => {
                if let Some((id, req)) = self.invite.clone() {
                    let (status, text) = match reason {
                        EndReason::Shutdown => (503, "Service Unavailable"),
                        _ => (480, "Temporarily Unavailable"),
                    };
                    self.respond(now, id, &req, (status, text), &[], None);
                }
                self.finish(now, reason);
            }
            Phase::Answered => self.bye_after_ack = Some(reason),
            Phase::Confirmed => self.send_bye(now, reason),
            Phase::Closing | Phase::Ended => {}
        }
    }

    fn send_bye(&mut self, now: Instant, reason: EndReason) {
        self.end_reason = Some(reason);
        self.session_stop(now);
        let port = self.local_port();
        let Some(dialog) = self.dialog.as_mut() else {
            self.finish(now, reason);
            return;
        };
        // Over TCP the caller's connection; over UDP the next hop (first route, else the
        // remote target) when it is a literal UDP address, else the caller's source.
        let to = match self.peer.transport {
            TransportKind::Udp => peer_for_uri(dialog.next_hop())
                .filter(|p| p.transport == TransportKind::Udp)
                .unwrap_or(self.peer),
            _ => self.peer,
        };
        self.branch_counter = self.branch_counter.wrapping_add(1);
        let via = Via {
            transport: self.link.kind(),
            host: self.ctx.config.sip.public_host.clone(),
            port: Some(port),
            branch: Some(new_branch(self.branch_counter)),
            received: None,
            rport: Some(None),
            params: Vec::new(),
        };
        let mut bye = dialog.create_request(Method::Bye, via, &self.local_contact);
        bye.headers
            .push(HeaderName::UserAgent, self.ctx.config.user_agent.clone());
        match self.layer.send_request(now, bye, to) {
            Ok(id) => {
                info!(reason = reason.as_str(), "sending BYE");
                self.bye_tx = Some(id);
                self.phase = Phase::Closing;
            }
            Err(e) => {
                warn!(error = %e, "cannot send BYE");
                self.finish(now, reason);
            }
        }
    }

    /// Ends media: a last RTCP report with BYE goes out, nothing more is sent.
    fn session_stop(&mut self, now: Instant) {
        let Some(s) = self.session.as_mut() else {
            return;
        };
        s.close(now);
        self.flush_media();
        self.report_rtp(true);
        self.session = None;
    }

    fn finish(&mut self, now: Instant, reason: EndReason) {
        if self.phase == Phase::Ended {
            return;
        }
        self.end_reason.get_or_insert(reason);
        self.end_app();
        self.end_outbound(now);
        self.session_stop(now);
        self.release_media();
        self.release_active();
        // Lingering only absorbs SIP retransmissions: drop what media needed.
        self.buf = Vec::new();
        self.local_media = None;
        self.negotiated = None;
        self.pending_offer = None;
        self.phase = Phase::Ended;
        self.ended_at = Some(now);
        if self.is_dial() {
            self.dial_ended(now);
        }
        // The record is final now: store it and fire `call.ended` without waiting for
        // the linger that absorbs retransmissions.
        self.record_sent = true;
        let _ = self.done.send(CallReport::Record(Box::new(self.record())));
    }

    /// Stops counting the call as active (once; at hang-up, not after lingering).
    fn release_active(&mut self) {
        if !self.call_released {
            self.call_released = true;
            self.counters
                .calls
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        if self.counted_active && !self.active_released {
            self.active_released = true;
            metrics::gauge!(m::CALLS_ACTIVE).decrement(1.0);
            metrics::gauge!(m::SIP_DIALOGS).decrement(1.0);
            self.counters
                .dialogs
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Closes the RTP sockets and gives the port pair back to the endpoint's pool.
    fn release_media(&mut self) {
        if let Some(ms) = self.media.take() {
            let port = ms.port;
            drop(ms);
            let _ = self.done.send(CallReport::PortFreed(port));
        }
    }
}

/// Parses an SDP body (bytes that are not UTF-8 are a malformed first line).
fn parse_sdp(body: &[u8]) -> Result<SessionDescription, sdp::SdpError> {
    let text = std::str::from_utf8(body).map_err(|_| sdp::SdpError::MalformedLine {
        line: 1,
        text: "body is not UTF-8".into(),
    })?;
    sdp::parse(text)
}

fn count_sent(msg: &SipMessage) {
    match msg {
        SipMessage::Request(r) => {
            metrics::counter!(m::SIP_REQUESTS_SENT, "method" => r.method.as_str().to_string())
                .increment(1);
        }
        SipMessage::Response(r) => {
            let method = r
                .cseq()
                .map(|c| c.method.as_str().to_string())
                .unwrap_or_default();
            metrics::counter!(m::SIP_RESPONSES_SENT, "status" => r.status.to_string(), "method" => method).increment(1);
        }
    }
}

/// The digit of a SIP INFO carrying `application/dtmf-relay` (`Signal=5`) or
/// `application/dtmf` (`5`).
pub fn dtmf_from_info(req: &Request) -> Option<char> {
    let ct = req
        .headers
        .get(&HeaderName::ContentType)?
        .split(';')
        .next()?
        .trim()
        .to_ascii_lowercase();
    let body = std::str::from_utf8(&req.body).ok()?;
    let raw = match ct.as_str() {
        "application/dtmf-relay" => body.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?,
        "application/dtmf" => body.trim(),
        _ => return None,
    };
    let c = raw.chars().next()?;
    let c = match raw {
        "10" => '*',
        "11" => '#',
        _ if raw.len() == 1 => c.to_ascii_uppercase(),
        _ => return None,
    };
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::Headers;

    fn info(ct: &str, body: &str) -> Request {
        let mut headers = Headers::default();
        headers.push(HeaderName::ContentType, ct);
        Request {
            method: Method::Info,
            uri: Uri {
                scheme: "sip".into(),
                user: Some("100".into()),
                host: "127.0.0.1".into(),
                port: None,
                params: vec![],
                headers: None,
            },
            headers,
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn dtmf_relay_and_plain_dtmf_info_bodies() {
        assert_eq!(
            dtmf_from_info(&info(
                "application/dtmf-relay",
                "Signal=5\r\nDuration=160\r\n"
            )),
            Some('5')
        );
        assert_eq!(
            dtmf_from_info(&info("application/dtmf-relay", "Signal= #\r\n")),
            Some('#')
        );
        assert_eq!(dtmf_from_info(&info("application/dtmf", "11")), Some('#'));
        assert_eq!(dtmf_from_info(&info("application/dtmf", "a")), Some('A'));
        assert_eq!(dtmf_from_info(&info("application/dtmf", "x")), None);
        assert_eq!(dtmf_from_info(&info("text/plain", "Signal=5")), None);
    }
}
