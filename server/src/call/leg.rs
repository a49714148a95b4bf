//! An outbound call leg (UAC), sans-IO: caruso calls a target (an agent's phone, an
//! extension) from a caller's call actor, which then bridges the two legs' media.
//!
//! Contract. [`Leg::new`] builds the INVITE (our SDP offer, a new Call-ID and From tag
//! chosen by the caller of `new`) and starts its client transaction. Inputs:
//! [`Leg::handle_incoming`] (every SIP message with the leg's Call-ID: responses to our
//! requests, the callee's in-dialog requests), [`Leg::handle_timeout`], [`Leg::hangup`]
//! (the TU gives up: CANCEL while ringing, BYE once connected). Outputs:
//! [`Leg::poll_transmit`] (send over UDP to `Transmit::to`), [`Leg::poll_event`]
//! ([`LegEvent`]), [`Leg::poll_timeout`]. Nothing here reads a clock.
//!
//! ```text
//! INVITE ->  100 / 180 / 183 (Ringing, once)  -> 2xx -> ACK (Answered)      -> ... BYE
//!        ->  ring timeout: CANCEL (Failed(NoAnswer)) -> 487 -> (ACK by the transaction)
//!        ->  >= 300: Failed(Busy | Declined | NotFound | ...)
//! ```
//!
//! Rules beyond the picture:
//! - The ring timeout is the TU's job (RFC 3261 §17.1.1: an INVITE client transaction in
//!   Proceeding never times out): it fires [`LegEvent::Failed`] with
//!   [`FailReason::NoAnswer`] at once, and CANCEL goes out as soon as a provisional
//!   response has arrived (§9.1: never before one).
//! - A 2xx after we gave up (the 200-after-CANCEL race, or a 2xx after the ring timeout)
//!   is ACKed and then ended with BYE; the TU sees no `Answered`.
//! - Every 2xx retransmission is re-ACKed (§13.2.2.4: the transaction passes them all up);
//!   a 2xx from another fork (another To tag) is ACKed and ended with BYE.
//! - A 2xx whose SDP answer is unusable is ACKed, ended with BYE, and reported as
//!   [`FailReason::BadAnswer`].
//! - In the dialog: the callee's BYE is answered 200 ([`LegEvent::RemoteHangup`]); a
//!   re-INVITE (hold / resume) is answered with our SDP ([`LegEvent::MediaChanged`]);
//!   INFO carrying a DTMF digit is answered 200 ([`LegEvent::Dtmf`]); OPTIONS 200;
//!   other methods 405; requests of other dialogs 481.
//! - Exactly one of `Answered` or `Failed` is reported, unless the TU hung up first
//!   (then nothing more is reported).

use crate::media::dtmf::DtmfDigit;
use crate::media::sdp::{self, Direction, LocalMedia, Negotiated, SessionDescription};
use crate::sip::dialog::{create_ack_for_2xx, Dialog};
use crate::sip::message::{
    HeaderAccess, HeaderName, Headers, Method, NameAddr, Request, Response, SipMessage,
    TransportKind, Uri, Via,
};
use crate::sip::transaction::{
    create_cancel, new_branch, peer_for_uri, ClientTxId, Incoming, Peer, ServerTxId, TimerConfig,
    TransactionEvent, TransactionLayer, Transmit, TxId,
};
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Methods the leg accepts in its dialog, for `Allow`.
const LEG_ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER";

/// Everything a new leg needs.
#[derive(Debug, Clone)]
pub struct LegConfig {
    /// Request-URI of the INVITE (the agent's contact, the extension's URI).
    pub target: Uri,
    /// Where the INVITE goes (UDP).
    pub peer: Peer,
    /// A new Call-ID for this leg.
    pub call_id: String,
    /// Our From tag.
    pub local_tag: String,
    /// Our identity in From (e.g. the caller's number at our host), without tag.
    pub from: NameAddr,
    /// Our Contact.
    pub contact: Uri,
    /// Host written in our Via.
    pub via_host: String,
    /// Port written in our Via (our UDP listen port).
    pub via_port: u16,
    /// Our media: the leg's RTP address and port, codecs, telephone-event.
    pub local_media: LocalMedia,
    /// How long the target may ring before we CANCEL.
    pub ring_timeout: Duration,
    /// RFC 3261 timers.
    pub timers: TimerConfig,
    /// `User-Agent` value.
    pub user_agent: String,
    /// Seed for our Via branches (random, chosen by the IO layer).
    pub seed: u64,
}

/// Why a leg did not connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// 486 Busy Here, 600 Busy Everywhere.
    Busy,
    /// 603 Decline.
    Declined,
    /// 404 Not Found, 604 Does Not Exist Anywhere, 410 Gone, 484 Address Incomplete.
    NotFound,
    /// The ring timeout passed (or 408 / 480 from the target).
    NoAnswer,
    /// No response at all (Timer B), a transport error, or 503.
    Unreachable,
    /// A 2xx whose SDP answer we cannot use (ended with BYE).
    BadAnswer,
    /// Any other final response (3xx redirections are not followed, 401/407 not
    /// answered: no credentials for outbound calls yet).
    Rejected,
}

impl FailReason {
    /// The reason for a final response status (>= 300).
    pub fn from_status(status: u16) -> FailReason {
        match status {
            486 | 600 => FailReason::Busy,
            603 => FailReason::Declined,
            404 | 410 | 484 | 604 => FailReason::NotFound,
            408 | 480 => FailReason::NoAnswer,
            503 => FailReason::Unreachable,
            _ => FailReason::Rejected,
        }
    }

    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::Busy => "busy",
            FailReason::Declined => "declined",
            FailReason::NotFound => "not_found",
            FailReason::NoAnswer => "no_answer",
            FailReason::Unreachable => "unreachable",
            FailReason::BadAnswer => "bad_answer",
            FailReason::Rejected => "rejected",
        }
    }
}

/// What the leg tells the TU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegEvent {
    /// The target rings (first 180 or 183).
    Ringing,
    /// The target answered; media as negotiated (our offer, its answer).
    Answered(Negotiated),
    /// The leg did not connect; `status` is the final response (0 when there was none).
    Failed {
        /// Why.
        reason: FailReason,
        /// The final response's status, or 0 (timeout, transport error, bad answer).
        status: u16,
    },
    /// The callee sent BYE after the answer.
    RemoteHangup,
    /// The callee changed the media with a re-INVITE (hold / resume).
    MediaChanged(Negotiated),
    /// A DTMF digit from the callee's SIP INFO.
    Dtmf(DtmfDigit),
    /// The callee transfers the caller (blind transfer, RFC 3515 REFER): the Refer-To
    /// URI. The REFER was accepted (202) and its NOTIFY says 200; the caller's call
    /// ends this leg.
    Refer(Uri),
}

/// Where the leg is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegState {
    /// INVITE sent, no provisional response yet.
    Calling,
    /// A provisional response arrived: the target rings.
    Proceeding,
    /// We gave up before an answer: CANCEL sent (or waiting for a provisional to send it).
    Cancelling,
    /// 2xx received and ACKed: media flows.
    Connected,
    /// Our BYE is out.
    Closing,
    /// Over; transactions may linger to absorb retransmissions.
    Ended,
}

/// One outbound leg (see the module doc).
#[derive(Debug)]
pub struct Leg {
    cfg: LegConfig,
    layer: TransactionLayer,
    state: LegState,
    invite: Request,
    invite_tx: Option<ClientTxId>,
    offer: SessionDescription,
    ring_deadline: Option<Instant>,
    got_provisional: bool,
    ringing_reported: bool,
    cancel_pending: bool,
    cancel_tx: Option<ClientTxId>,
    dialog: Option<Dialog>,
    /// The ACK of the 2xx, re-sent for each 2xx retransmission.
    ack: Option<(Request, Peer)>,
    /// Dialogs of other forks' 2xx: (remote tag, their ACK), ended with BYE.
    forks: Vec<(String, Request, Peer)>,
    bye_tx: Option<ClientTxId>,
    negotiated: Option<Negotiated>,
    branch_counter: u64,
    ended_at: Option<Instant>,
    events: VecDeque<LegEvent>,
}

impl Leg {
    /// Builds the INVITE and starts its transaction at `now`.
    pub fn new(cfg: LegConfig, now: Instant) -> Leg {
        let mut local = cfg.local_media.clone();
        local.session_version = local.session_id;
        let offer = sdp::create_offer(&local, Direction::SendRecv);
        let mut h = Headers(Vec::with_capacity(12));
        let branch = new_branch(cfg.seed);
        h.push(HeaderName::Via, via(&cfg, branch).to_string());
        h.push(HeaderName::MaxForwards, "70");
        h.push(
            HeaderName::From,
            format!("{};tag={}", cfg.from, cfg.local_tag),
        );
        h.push(HeaderName::To, format!("<{}>", cfg.target));
        h.push(HeaderName::CallId, cfg.call_id.clone());
        h.push(HeaderName::CSeq, "1 INVITE");
        h.push(HeaderName::Contact, format!("<{}>", cfg.contact));
        h.push(HeaderName::Allow, LEG_ALLOW);
        h.push(HeaderName::UserAgent, cfg.user_agent.clone());
        h.push(HeaderName::ContentType, "application/sdp");
        let invite = Request {
            method: Method::Invite,
            uri: cfg.target.clone(),
            headers: h,
            body: Bytes::from(offer.to_sdp_string()),
        };
        let mut layer = TransactionLayer::new(cfg.timers);
        let (invite_tx, state, events) = match layer.send_request(now, invite.clone(), cfg.peer) {
            Ok(id) => (Some(id), LegState::Calling, VecDeque::new()),
            Err(_) => (
                None,
                LegState::Ended,
                VecDeque::from([LegEvent::Failed {
                    reason: FailReason::Unreachable,
                    status: 0,
                }]),
            ),
        };
        Leg {
            ring_deadline: Some(now + cfg.ring_timeout),
            branch_counter: cfg.seed,
            ended_at: (state == LegState::Ended).then_some(now),
            cfg,
            layer,
            state,
            invite,
            invite_tx,
            offer,
            got_provisional: false,
            ringing_reported: false,
            cancel_pending: false,
            cancel_tx: None,
            dialog: None,
            ack: None,
            forks: Vec::new(),
            bye_tx: None,
            negotiated: None,
            events,
        }
    }

    /// The leg's Call-ID.
    pub fn call_id(&self) -> &str {
        &self.cfg.call_id
    }

    /// Our From tag.
    pub fn local_tag(&self) -> &str {
        &self.cfg.local_tag
    }

    /// Where the leg is.
    pub fn state(&self) -> LegState {
        self.state
    }

    /// The INVITE we sent.
    pub fn invite(&self) -> &Request {
        &self.invite
    }

    /// The media as negotiated by the answer (and later re-INVITEs).
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.layer.poll_transmit()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<LegEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ring = match self.state {
            LegState::Calling | LegState::Proceeding => self.ring_deadline,
            _ => None,
        };
        let linger = self.ended_at.map(|t| t + self.cfg.timers.t1 * 64);
        [self.layer.poll_timeout(), ring, linger]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether the leg is over and its transactions are gone (or have lingered 64*T1).
    pub fn is_done(&self, now: Instant) -> bool {
        self.state == LegState::Ended
            && (self.layer.is_empty()
                || self
                    .ended_at
                    .is_some_and(|t| now >= t + self.cfg.timers.t1 * 64))
    }

    /// The TU gives up: CANCEL before the answer (once a provisional has arrived), BYE
    /// after it. Reports nothing more to the TU.
    pub fn hangup(&mut self, now: Instant) {
        match self.state {
            LegState::Calling | LegState::Proceeding => self.start_cancel(now),
            LegState::Connected => self.send_bye(now),
            LegState::Cancelling | LegState::Closing | LegState::Ended => {}
        }
    }

    /// Fires due timers: the ring timeout and the transactions'.
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.state, LegState::Calling | LegState::Proceeding)
            && self.ring_deadline.is_some_and(|t| now >= t)
        {
            self.ring_deadline = None;
            self.events.push_back(LegEvent::Failed {
                reason: FailReason::NoAnswer,
                status: 0,
            });
            self.start_cancel(now);
        }
        if self.layer.poll_timeout().is_some_and(|t| t <= now) {
            self.layer.handle_timeout(now);
        }
        self.drain_layer_events(now);
    }

    /// A message with this leg's Call-ID.
    pub fn handle_incoming(&mut self, now: Instant, msg: SipMessage, from: Peer) {
        match self.layer.handle_incoming(now, msg, from) {
            Incoming::Response(id, resp) => self.on_response(now, id, resp),
            Incoming::NewRequest(id, req) => self.on_request(now, id, req),
            Incoming::Cancel {
                cancel, request, ..
            } => {
                // We never leave a re-INVITE pending: nothing to cancel.
                self.respond(
                    now,
                    cancel,
                    &request,
                    481,
                    "Call/Transaction Does Not Exist",
                );
            }
            Incoming::Invalid {
                message: SipMessage::Request(req),
                error,
            } if req.method != Method::Ack && req.headers.get(&HeaderName::Via).is_some() => {
                let resp = Response::for_request(&req, 400, &format!("Bad Request: {error}"), None);
                self.layer.send_stateless(from, SipMessage::Response(resp));
            }
            Incoming::Ack(_) | Incoming::Absorbed | Incoming::StrayResponse(_) => {}
            Incoming::Invalid { .. } => {}
        }
        self.drain_layer_events(now);
    }

    fn drain_layer_events(&mut self, now: Instant) {
        while let Some(ev) = self.layer.poll_event() {
            match ev {
                TransactionEvent::Timeout(id)
                | TransactionEvent::TransportError(TxId::Client(id)) => {
                    if Some(id) == self.invite_tx {
                        if matches!(self.state, LegState::Calling | LegState::Proceeding) {
                            self.events.push_back(LegEvent::Failed {
                                reason: FailReason::Unreachable,
                                status: 0,
                            });
                        }
                        if self.state != LegState::Connected && self.state != LegState::Closing {
                            self.end(now);
                        }
                    } else if Some(id) == self.bye_tx {
                        self.bye_tx = None;
                        self.end(now);
                    }
                }
                TransactionEvent::Terminated(TxId::Client(id)) if Some(id) == self.invite_tx => {
                    self.invite_tx = None;
                }
                _ => {}
            }
        }
    }

    fn next_via(&mut self) -> Via {
        self.branch_counter = self.branch_counter.wrapping_add(1);
        via(&self.cfg, new_branch(self.branch_counter))
    }

    /// Where in-dialog requests of `dialog` go: its next hop when that is a literal UDP
    /// address, else where the INVITE went.
    fn dialog_peer(&self, dialog: &Dialog) -> Peer {
        peer_for_uri(dialog.next_hop())
            .filter(|p| p.transport == TransportKind::Udp)
            .unwrap_or(self.cfg.peer)
    }

    fn start_cancel(&mut self, now: Instant) {
        self.state = LegState::Cancelling;
        self.ring_deadline = None;
        if self.got_provisional {
            self.send_cancel(now);
        } else {
            // §9.1: a CANCEL only after a provisional response; Timer B ends it otherwise.
            self.cancel_pending = true;
        }
    }

    fn send_cancel(&mut self, now: Instant) {
        self.cancel_pending = false;
        if self.cancel_tx.is_some() || self.invite_tx.is_none() {
            return;
        }
        let mut cancel = create_cancel(&self.invite);
        cancel
            .headers
            .push(HeaderName::UserAgent, self.cfg.user_agent.clone());
        if let Ok(id) = self.layer.send_request(now, cancel, self.cfg.peer) {
            self.cancel_tx = Some(id);
        }
    }

    fn send_bye(&mut self, now: Instant) {
        let via = self.next_via();
        let Some(to) = self.dialog.as_ref().map(|d| self.dialog_peer(d)) else {
            self.end(now);
            return;
        };
        let Some(dialog) = self.dialog.as_mut() else {
            self.end(now);
            return;
        };
        let mut bye = dialog.create_request(Method::Bye, via, &self.cfg.contact);
        bye.headers
            .push(HeaderName::UserAgent, self.cfg.user_agent.clone());
        match self.layer.send_request(now, bye, to) {
            Ok(id) => {
                self.bye_tx = Some(id);
                self.state = LegState::Closing;
            }
            Err(_) => self.end(now),
        }
    }

    fn end(&mut self, now: Instant) {
        if self.state != LegState::Ended {
            self.state = LegState::Ended;
            self.ended_at = Some(now);
            if let Some(d) = self.dialog.as_mut() {
                d.terminate();
            }
        }
    }

    fn on_response(&mut self, now: Instant, id: ClientTxId, resp: Response) {
        if Some(id) == self.bye_tx {
            if resp.status >= 200 {
                self.bye_tx = None;
                self.end(now);
            }
            return;
        }
        if Some(id) == self.cancel_tx {
            return; // 200 (or 481) to our CANCEL: the INVITE's final response follows
        }
        let is_invite = resp
            .cseq()
            .is_ok_and(|c| c.method == Method::Invite && c.seq == 1);
        if !is_invite {
            // A response to a BYE we sent to another fork: nothing to do.
            return;
        }
        match resp.status {
            100..=199 => self.on_provisional(now, &resp),
            200..=299 => self.on_2xx(now, resp),
            _ => self.on_final_error(now, &resp),
        }
    }

    fn on_provisional(&mut self, now: Instant, resp: &Response) {
        self.got_provisional = true;
        if self.cancel_pending {
            self.send_cancel(now);
            return;
        }
        if self.state == LegState::Calling && resp.status > 100 {
            self.state = LegState::Proceeding;
        }
        if matches!(resp.status, 180 | 183)
            && !self.ringing_reported
            && self.state == LegState::Proceeding
        {
            self.ringing_reported = true;
            self.events.push_back(LegEvent::Ringing);
        }
    }

    fn on_final_error(&mut self, now: Instant, resp: &Response) {
        // The transaction has ACKed it (§17.1.1.3).
        if matches!(self.state, LegState::Calling | LegState::Proceeding) {
            self.events.push_back(LegEvent::Failed {
                reason: FailReason::from_status(resp.status),
                status: resp.status,
            });
        }
        if !matches!(self.state, LegState::Connected | LegState::Closing) {
            self.end(now);
        }
    }

    fn on_2xx(&mut self, now: Instant, resp: Response) {
        let tag = resp
            .to_header()
            .ok()
            .and_then(|t| t.tag().map(str::to_string))
            .unwrap_or_default();
        // A retransmission of the 2xx we already took: the same ACK again.
        if let Some(d) = self.dialog.as_ref() {
            if d.id.remote_tag == tag {
                if let Some((ack, to)) = self.ack.clone() {
                    self.layer.send_stateless(to, SipMessage::Request(ack));
                }
                return;
            }
            // Another fork answered too: ACK and BYE it (we keep the first).
            self.end_fork(now, &resp, tag);
            return;
        }
        let dialog = match Dialog::new_uac(&self.invite, &resp) {
            Ok(d) => d,
            Err(_) => {
                // No usable dialog (no To tag...): we cannot even ACK it properly.
                if matches!(self.state, LegState::Calling | LegState::Proceeding) {
                    self.events.push_back(LegEvent::Failed {
                        reason: FailReason::BadAnswer,
                        status: resp.status,
                    });
                }
                self.end(now);
                return;
            }
        };
        let via = self.next_via();
        let ack = create_ack_for_2xx(&dialog, 1, via);
        let to = self.dialog_peer(&dialog);
        self.layer
            .send_stateless(to, SipMessage::Request(ack.clone()));
        self.ack = Some((ack, to));
        let mut dialog = dialog;
        dialog.confirm();
        self.dialog = Some(dialog);
        match self.state {
            LegState::Calling | LegState::Proceeding => {
                let neg = parse_sdp(&resp.body).and_then(|a| sdp::handle_answer(&self.offer, &a));
                match neg {
                    Ok(neg) => {
                        self.state = LegState::Connected;
                        self.ring_deadline = None;
                        self.negotiated = Some(neg.clone());
                        self.events.push_back(LegEvent::Answered(neg));
                    }
                    Err(_) => {
                        self.events.push_back(LegEvent::Failed {
                            reason: FailReason::BadAnswer,
                            status: resp.status,
                        });
                        self.state = LegState::Connected;
                        self.send_bye(now);
                    }
                }
            }
            _ => {
                // 200 after CANCEL (or after the ring timeout): ACK, then BYE.
                self.state = LegState::Connected;
                self.send_bye(now);
            }
        }
    }

    fn end_fork(&mut self, now: Instant, resp: &Response, tag: String) {
        if let Some((_, ack, to)) = self.forks.iter().find(|(t, _, _)| *t == tag) {
            let (ack, to) = (ack.clone(), *to);
            self.layer.send_stateless(to, SipMessage::Request(ack));
            return;
        }
        let Ok(mut d) = Dialog::new_uac(&self.invite, resp) else {
            return;
        };
        let via = self.next_via();
        let ack = create_ack_for_2xx(&d, 1, via);
        let to = self.dialog_peer(&d);
        self.layer
            .send_stateless(to, SipMessage::Request(ack.clone()));
        d.confirm();
        let via = self.next_via();
        let bye = d.create_request(Method::Bye, via, &self.cfg.contact);
        let _ = self.layer.send_request(now, bye, to);
        self.forks.push((tag, ack, to));
    }

    fn respond(&mut self, now: Instant, id: ServerTxId, req: &Request, status: u16, reason: &str) {
        self.respond_with(now, id, req, (status, reason), &[], None);
    }

    fn respond_with(
        &mut self,
        now: Instant,
        id: ServerTxId,
        req: &Request,
        (status, reason): (u16, &str),
        extra: &[(HeaderName, String)],
        body: Option<String>,
    ) {
        let mut resp = Response::for_request(req, status, reason, Some(&self.cfg.local_tag));
        for (n, v) in extra {
            resp.headers.push(n.clone(), v.clone());
        }
        resp.headers
            .push(HeaderName::Server, self.cfg.user_agent.clone());
        if let Some(b) = body {
            resp.headers
                .push(HeaderName::ContentType, "application/sdp");
            resp.body = Bytes::from(b);
        }
        let _ = self.layer.send_response(now, id, resp);
    }

    fn on_request(&mut self, now: Instant, id: ServerTxId, req: Request) {
        let in_dialog = self.dialog.as_ref().is_some_and(|d| d.matches(&req));
        if !in_dialog {
            self.respond(now, id, &req, 481, "Call/Transaction Does Not Exist");
            return;
        }
        if let Some(d) = self.dialog.as_mut() {
            if d.handle_request(&req).is_err() {
                self.respond(
                    now,
                    id,
                    &req,
                    500,
                    "Server Internal Error: CSeq out of order",
                );
                return;
            }
        }
        match req.method {
            Method::Bye => {
                self.respond(now, id, &req, 200, "OK");
                if self.state == LegState::Connected {
                    self.events.push_back(LegEvent::RemoteHangup);
                }
                self.bye_tx = None;
                self.end(now);
            }
            Method::Invite => self.on_reinvite(now, id, req),
            Method::Options => {
                let extra = [(HeaderName::Allow, LEG_ALLOW.to_string())];
                self.respond_with(now, id, &req, (200, "OK"), &extra, None);
            }
            Method::Info => {
                self.respond(now, id, &req, 200, "OK");
                if let Some(d) = super::actor::dtmf_from_info(&req).and_then(DtmfDigit::from_char) {
                    self.events.push_back(LegEvent::Dtmf(d));
                }
            }
            Method::Refer => self.on_refer(now, id, req),
            _ => {
                let extra = [(HeaderName::Allow, LEG_ALLOW.to_string())];
                self.respond_with(now, id, &req, (405, "Method Not Allowed"), &extra, None);
            }
        }
    }

    /// RFC 3515 blind transfer: 202, then one NOTIFY (`message/sipfrag` "200 OK",
    /// subscription terminated: we take over from here), then the event for the call.
    fn on_refer(&mut self, now: Instant, id: ServerTxId, req: Request) {
        if self.state != LegState::Connected {
            self.respond(now, id, &req, 491, "Request Pending");
            return;
        }
        let target = req
            .headers
            .get(&HeaderName::ReferTo)
            .and_then(|v| NameAddr::parse(v.trim()).ok())
            .map(|na| na.uri);
        let Some(target) = target else {
            self.respond(
                now,
                id,
                &req,
                400,
                "Bad Request: Refer-To missing or malformed",
            );
            return;
        };
        self.respond(now, id, &req, 202, "Accepted");
        let via = self.next_via();
        let Some(to) = self.dialog.as_ref().map(|d| self.dialog_peer(d)) else {
            return;
        };
        if let Some(dialog) = self.dialog.as_mut() {
            let mut notify = dialog.create_request(Method::Notify, via, &self.cfg.contact);
            notify.headers.push(HeaderName::Event, "refer");
            notify.headers.push(
                HeaderName::Other("Subscription-State".into()),
                "terminated;reason=noresource",
            );
            notify
                .headers
                .push(HeaderName::ContentType, "message/sipfrag;version=2.0");
            notify
                .headers
                .push(HeaderName::UserAgent, self.cfg.user_agent.clone());
            notify.body = Bytes::from_static(b"SIP/2.0 200 OK\r\n");
            let _ = self.layer.send_request(now, notify, to);
        }
        self.events.push_back(LegEvent::Refer(target));
    }

    fn on_reinvite(&mut self, now: Instant, id: ServerTxId, req: Request) {
        let contact = [(HeaderName::Contact, format!("<{}>", self.cfg.contact))];
        if self.state != LegState::Connected {
            self.respond_with(
                now,
                id,
                &req,
                (500, "Server Internal Error"),
                &[(HeaderName::Other("Retry-After".into()), "1".into())],
                None,
            );
            return;
        }
        self.cfg.local_media.session_version = self
            .cfg
            .local_media
            .session_version
            .max(self.cfg.local_media.session_id)
            + 1;
        let local = self.cfg.local_media.clone();
        if req.body.is_empty() {
            let dir = self
                .negotiated
                .as_ref()
                .map_or(Direction::SendRecv, |n| n.direction);
            let offer = sdp::create_offer(&local, dir).to_sdp_string();
            self.respond_with(now, id, &req, (200, "OK"), &contact, Some(offer));
            return;
        }
        match parse_sdp(&req.body).and_then(|o| sdp::negotiate_answer(&o, &local)) {
            Ok(neg) => {
                let body = neg.answer.to_sdp_string();
                self.negotiated = Some(neg.clone());
                self.respond_with(now, id, &req, (200, "OK"), &contact, Some(body));
                self.events.push_back(LegEvent::MediaChanged(neg));
            }
            Err(_) => self.respond(now, id, &req, 488, "Not Acceptable Here"),
        }
    }
}

fn via(cfg: &LegConfig, branch: String) -> Via {
    Via {
        transport: cfg.peer.transport,
        host: cfg.via_host.clone(),
        port: Some(cfg.via_port),
        branch: Some(branch),
        received: None,
        rport: Some(None),
        params: Vec::new(),
    }
}

fn parse_sdp(body: &[u8]) -> Result<SessionDescription, sdp::SdpError> {
    let text = std::str::from_utf8(body).map_err(|_| sdp::SdpError::MalformedLine {
        line: 1,
        text: "body is not UTF-8".into(),
    })?;
    sdp::parse(text)
}

/// Where an IVR `extension` target goes: a full SIP URI with an IP literal host
/// (`sip:201@127.0.0.1:5080`) is dialed as it is (UDP); a plain user name (`201`) needs
/// the registrar, which is not wired in yet: `None`.
///
/// The integrator fills the plain-name case with the registrar's lookup (the user's
/// registered contact and the address it registered from).
pub fn resolve_extension(user: &str) -> Option<(Uri, Peer)> {
    let user = user.trim();
    if !(user.starts_with("sip:") || user.starts_with("sips:")) {
        return None;
    }
    let uri = Uri::parse(user).ok()?;
    let peer = peer_for_uri(&uri)?;
    (peer.transport == TransportKind::Udp).then_some((uri, peer))
}

#[cfg(test)]
mod tests;
