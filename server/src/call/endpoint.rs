//! The endpoint: one task that routes every received SIP message to its call by Call-ID,
//! starts a call actor for each new INVITE, and answers requests outside any call.
//!
//! Out-of-call answers (RFC 3261 §8.2): OPTIONS 200 (Allow, Accept, Supported); a request
//! with a To tag for no known call 481; REGISTER, SUBSCRIBE, MESSAGE, ... 405 with Allow;
//! unknown methods 501; Max-Forwards 0 483; an unsupported `Require` 420 with
//! Unsupported; an unsupported URI scheme 416. Stray ACKs and responses are dropped.

use super::actor::{self, CallSetup, MediaSockets, ACCEPT, ALLOW, SUPPORTED};
use super::ports::PortPool;
use super::{CallContext, CallEnded, CallHandle, CallMsg, CallReport};
use crate::metrics as m;
use crate::sip::message::{
    HeaderAccess, HeaderName, Method, Request, Response, SipMessage, TransportKind,
};
use crate::sip::transaction::{Incoming, ServerTxId, TransactionLayer};
use crate::sip::transport::{Inbound, Link};
use crate::store::Store;
use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

/// Live figures the API reads (lock-free).
#[derive(Debug, Default)]
pub struct Counters {
    /// Call actors alive.
    pub calls: AtomicU64,
    /// Answered calls (confirmed or answered dialogs).
    pub dialogs: AtomicU64,
}

/// The endpoint task's state.
pub struct Endpoint {
    ctx: Arc<CallContext>,
    calls: CallTable,
    ports: PortPool,
    layer: TransactionLayer,
    udp: Option<Link>,
    tcp_links: HashMap<SocketAddr, Link>,
    ended_tx: mpsc::UnboundedSender<CallReport>,
    ended_rx: mpsc::UnboundedReceiver<CallReport>,
    counters: Arc<Counters>,
    store: Option<Arc<dyn Store>>,
    shutting_down: bool,
}

impl Endpoint {
    /// An endpoint answering on `udp` (the UDP listen socket, if any).
    pub fn new(
        ctx: Arc<CallContext>,
        udp: Option<Arc<UdpSocket>>,
        counters: Arc<Counters>,
        store: Option<Arc<dyn Store>>,
    ) -> Self {
        let rtp = &ctx.config.rtp;
        let ports = PortPool::new(rtp.port_min, rtp.port_max);
        let (ended_tx, ended_rx) = mpsc::unbounded_channel();
        Endpoint {
            layer: TransactionLayer::new(ctx.timers),
            ctx,
            calls: CallTable::default(),
            ports,
            udp: udp.map(Link::Udp),
            tcp_links: HashMap::new(),
            ended_tx,
            ended_rx,
            counters,
            store,
            shutting_down: false,
        }
    }

    /// Runs until `shutdown` turns true and every call has ended (or the grace time is over).
    pub async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut grace_deadline: Option<tokio::time::Instant> = None;
        loop {
            self.flush().await;
            if self.shutting_down && self.calls.is_empty() {
                info!("all calls ended");
                break;
            }
            let next = self
                .layer
                .poll_timeout()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            let grace = grace_deadline
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                msg = inbound.recv() => match msg {
                    Some(i) => self.on_inbound(i),
                    None => break,
                },
                Some(report) = self.ended_rx.recv() => match report {
                    CallReport::PortFreed(port) => self.ports.release(port),
                    CallReport::Ended(ended) => self.on_call_ended(ended),
                },
                _ = tokio::time::sleep_until(next) => self.layer.handle_timeout(now()),
                changed = shutdown.changed(), if !self.shutting_down => {
                    if changed.is_err() || *shutdown.borrow() {
                        self.shutting_down = true;
                        info!(calls = self.calls.len(), "shutting down: ending active calls");
                        for h in self.calls.handles() {
                            let _ = h.try_send(CallMsg::Shutdown);
                        }
                        grace_deadline = Some(tokio::time::Instant::now() + self.ctx.config.shutdown_grace);
                    }
                }
                _ = tokio::time::sleep_until(grace), if grace_deadline.is_some() => {
                    warn!(calls = self.calls.len(), "shutdown grace time over: leaving calls behind");
                    break;
                }
            }
        }
    }

    async fn flush(&mut self) {
        while let Some(t) = self.layer.poll_transmit() {
            let link = match t.to.transport {
                TransportKind::Udp => self.udp.clone(),
                _ => self.tcp_links.get(&t.to.addr).cloned(),
            };
            let Some(link) = link else {
                debug!(dest = %t.to.addr, "no link to send on");
                continue;
            };
            if let SipMessage::Response(r) = &t.message {
                let method = r
                    .cseq()
                    .map(|c| c.method.as_str().to_string())
                    .unwrap_or_default();
                metrics::counter!(m::SIP_RESPONSES_SENT, "status" => r.status.to_string(), "method" => method).increment(1);
            }
            if let Err(e) = link
                .send(
                    &self.ctx.allow,
                    t.to.addr,
                    Bytes::from(t.message.to_bytes()),
                )
                .await
            {
                debug!(error = %e, "send failed");
            }
        }
        while self.layer.poll_event().is_some() {}
        if self.layer.is_empty() && self.tcp_links.len() > 64 {
            self.tcp_links
                .retain(|_, l| matches!(l, Link::Tcp(tx) if !tx.is_closed()));
        }
    }

    fn on_call_ended(&mut self, ended: CallEnded) {
        self.calls.remove(&ended.call_id, &ended.tag);
        self.counters
            .calls
            .store(self.calls.len() as u64, Ordering::Relaxed);
        if let Some(store) = &self.store {
            // sled's insert appends to its in-memory log: it does not block; its background
            // flush makes it durable within 500 ms (no promise is made to the caller here).
            if let Err(e) = ended.record.save(store.as_ref()) {
                warn!(error = %e, "call record not stored");
            }
        }
    }

    fn on_inbound(&mut self, inbound: Inbound) {
        let call_id = match inbound.message {
            SipMessage::Request(ref r) => r.call_id(),
            SipMessage::Response(ref r) => r.call_id(),
        };
        let Ok(call_id) = call_id else {
            debug!("message without Call-ID dropped");
            return;
        };
        let (from_tag, to_tag) = match &inbound.message {
            SipMessage::Request(r) => tags(r),
            SipMessage::Response(r) => tags(r),
        };
        if let Some(handle) = self
            .calls
            .find(call_id, from_tag.as_deref(), to_tag.as_deref())
        {
            if !handle.try_send(CallMsg::Sip(Box::new(inbound))) {
                metrics::counter!(m::SIP_DROPPED_OVERLOAD).increment(1);
                debug!("call mailbox full: message dropped");
            }
            return;
        }
        let new_invite = matches!(&inbound.message, SipMessage::Request(r)
            if r.method == Method::Invite && r.to_header().map(|t| t.tag().is_none()).unwrap_or(false));
        if new_invite && !self.shutting_down {
            let call_id = call_id.to_string();
            self.start_call(call_id, from_tag.unwrap_or_default(), inbound);
            return;
        }
        match &inbound.message {
            SipMessage::Response(r) => {
                debug!(status = r.status, "response for no call dropped");
                return;
            }
            SipMessage::Request(r) if r.method == Method::Ack => {
                debug!("ACK for no call dropped");
                return;
            }
            SipMessage::Request(r) => {
                metrics::counter!(m::SIP_REQUESTS_RECEIVED, "method" => r.method.as_str().to_string()).increment(1);
            }
        }
        if inbound.from.transport != TransportKind::Udp {
            self.tcp_links
                .insert(inbound.from.addr, inbound.link.clone());
        }
        let from = inbound.from;
        match self.layer.handle_incoming(now(), inbound.message, from) {
            Incoming::NewRequest(id, req) => self.on_out_of_call(id, req),
            Incoming::Cancel {
                cancel, request, ..
            } => {
                self.respond(
                    cancel,
                    &request,
                    481,
                    "Call/Transaction Does Not Exist",
                    &[],
                );
            }
            Incoming::Invalid {
                message: SipMessage::Request(req),
                error,
            } if req.headers.get(&HeaderName::Via).is_some() => {
                let resp = Response::for_request(&req, 400, &format!("Bad Request: {error}"), None);
                self.layer.send_stateless(from, SipMessage::Response(resp));
            }
            _ => {}
        }
    }

    fn respond(
        &mut self,
        id: ServerTxId,
        req: &Request,
        status: u16,
        reason: &str,
        extra: &[(HeaderName, String)],
    ) {
        let tag = format!("{:08x}", rand::random::<u32>());
        let mut resp = Response::for_request(req, status, reason, Some(&tag));
        for (n, v) in extra {
            resp.headers.push(n.clone(), v.clone());
        }
        resp.headers
            .push(HeaderName::Server, self.ctx.config.user_agent.clone());
        if let Err(e) = self.layer.send_response(now(), id, resp) {
            debug!(error = %e, "response not sent");
        }
    }

    fn on_out_of_call(&mut self, id: ServerTxId, req: Request) {
        if self.shutting_down && req.method == Method::Invite {
            self.respond(id, &req, 503, "Service Unavailable", &[]);
            return;
        }
        let a = out_of_dialog_answer(&req);
        info!(method = %req.method, status = a.status, "request outside any call answered");
        self.respond(id, &req, a.status, a.reason, &a.headers);
    }

    fn start_call(&mut self, call_id: String, tag: String, first: Inbound) {
        let media = self.bind_media();
        let rtp_port = media.as_ref().map(|m| m.port);
        let (tx, rx) = mpsc::channel(64);
        self.calls
            .insert(call_id.clone(), tag.clone(), CallHandle { tx });
        self.counters
            .calls
            .store(self.calls.len() as u64, Ordering::Relaxed);
        debug!(port = ?rtp_port, calls = self.calls.len(), "starting call");
        let ctx = self.ctx.clone();
        let done = self.ended_tx.clone();
        let counters = self.counters.clone();
        tokio::spawn(async move {
            let setup = CallSetup {
                ctx,
                call_id,
                tag,
                first,
                media,
                done,
                counters,
            };
            actor::run(setup, rx).await;
        });
    }

    /// Binds an RTP/RTCP socket pair from the pool; ports that fail to bind (used by
    /// someone else) are put back at the end of the line.
    fn bind_media(&mut self) -> Option<MediaSockets> {
        let ip = self.ctx.config.rtp.ip;
        for _ in 0..16 {
            let port = self.ports.allocate()?;
            let pair = std::net::UdpSocket::bind((ip, port)).and_then(|rtp| {
                let rtcp = std::net::UdpSocket::bind((ip, port + 1))?;
                rtp.set_nonblocking(true)?;
                rtcp.set_nonblocking(true)?;
                Ok((UdpSocket::from_std(rtp)?, UdpSocket::from_std(rtcp)?))
            });
            match pair {
                Ok((rtp, rtcp)) => return Some(MediaSockets { rtp, rtcp, port }),
                Err(e) => {
                    debug!(port, error = %e, "RTP port busy, trying the next");
                    self.ports.release(port);
                }
            }
        }
        None
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The answer to a request that belongs to no dialog we have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: &'static str,
    /// Extra headers (Allow, Unsupported, Accept ...).
    pub headers: Vec<(HeaderName, String)>,
}

/// RFC 3261 §8.2 for a request outside any dialog of ours (not a new INVITE, which starts
/// a call, and not ACK/CANCEL, which the transaction layer handles), in the RFC's order:
/// method (501 unknown, 405 not allowed), Request-URI scheme (416), a To tag for a dialog
/// we do not have (481), Require (420 with Unsupported), Max-Forwards 0 on anything we
/// would have to forward (483); OPTIONS then gets 200 with Allow, Accept, Supported.
pub fn out_of_dialog_answer(req: &Request) -> Answer {
    let allow = || vec![(HeaderName::Allow, ALLOW.to_string())];
    let answer = |status, reason, headers| Answer {
        status,
        reason,
        headers,
    };
    if let Method::Extension(_) = req.method {
        return answer(501, "Not Implemented", allow());
    }
    if !matches!(req.uri.scheme.as_str(), "sip" | "sips") {
        return answer(416, "Unsupported URI Scheme", vec![]);
    }
    let has_to_tag = req.to_header().map(|t| t.tag().is_some()).unwrap_or(false);
    if has_to_tag {
        return answer(481, "Call/Transaction Does Not Exist", vec![]);
    }
    let unsupported = unsupported_requirements(req);
    if !unsupported.is_empty() {
        return answer(
            420,
            "Bad Extension",
            vec![(HeaderName::Unsupported, unsupported.join(", "))],
        );
    }
    match req.method {
        Method::Options => answer(
            200,
            "OK",
            vec![
                (HeaderName::Allow, ALLOW.to_string()),
                (HeaderName::Accept, ACCEPT.to_string()),
                (HeaderName::AcceptLanguage, "en".into()),
                (HeaderName::Supported, SUPPORTED.to_string()),
            ],
        ),
        _ if req.headers.get(&HeaderName::MaxForwards).map(str::trim) == Some("0") => {
            answer(483, "Too Many Hops", vec![])
        }
        Method::Bye | Method::Info | Method::Prack | Method::Update | Method::Invite => {
            answer(481, "Call/Transaction Does Not Exist", vec![])
        }
        _ => answer(405, "Method Not Allowed", allow()),
    }
}

/// The option tags of `Require` that we do not support (we support none yet).
pub fn unsupported_requirements(req: &Request) -> Vec<String> {
    req.headers
        .get_all(&HeaderName::Require)
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .filter(|t| {
            !t.is_empty()
                && !SUPPORTED
                    .split(',')
                    .any(|s| s.trim().eq_ignore_ascii_case(t))
        })
        .map(str::to_string)
        .collect()
}

/// The From and To tags of a message (absent or unparsable: `None`).
fn tags(m: &impl HeaderAccess) -> (Option<String>, Option<String>) {
    let from = m
        .from_header()
        .ok()
        .and_then(|n| n.tag().map(str::to_string));
    let to = m.to_header().ok().and_then(|n| n.tag().map(str::to_string));
    (from, to)
}

/// Running calls by Call-ID and the tag of the party that sent the initial INVITE.
///
/// A dialog is Call-ID plus both tags (RFC 3261 §12); before our tag exists (CANCEL, a
/// retransmitted INVITE) Call-ID plus the caller's tag identifies the call. The caller's
/// requests carry that tag in From, responses to our requests carry it in To, so a
/// message matches when either of its tags is the call's. Two callers that reuse a
/// Call-ID with different tags (RFC 5118's examples do) get two calls.
#[derive(Debug, Default)]
pub struct CallTable {
    by_call_id: HashMap<String, Vec<(String, CallHandle)>>,
    len: usize,
}

impl CallTable {
    /// Adds a call.
    pub fn insert(&mut self, call_id: String, tag: String, handle: CallHandle) {
        self.by_call_id
            .entry(call_id)
            .or_default()
            .push((tag, handle));
        self.len += 1;
    }

    /// The call a message with these tags belongs to.
    pub fn find(
        &self,
        call_id: &str,
        from_tag: Option<&str>,
        to_tag: Option<&str>,
    ) -> Option<&CallHandle> {
        let calls = self.by_call_id.get(call_id)?;
        let from = from_tag.unwrap_or("");
        calls
            .iter()
            .find(|(t, _)| t == from || to_tag == Some(t.as_str()))
            .map(|(_, h)| h)
    }

    /// Removes a call.
    pub fn remove(&mut self, call_id: &str, tag: &str) {
        if let Some(calls) = self.by_call_id.get_mut(call_id) {
            if let Some(pos) = calls.iter().position(|(t, _)| t == tag) {
                calls.swap_remove(pos);
                self.len -= 1;
            }
            if calls.is_empty() {
                self.by_call_id.remove(call_id);
            }
        }
    }

    /// Every running call.
    pub fn handles(&self) -> impl Iterator<Item = &CallHandle> {
        self.by_call_id.values().flatten().map(|(_, h)| h)
    }

    /// Number of running calls.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No call is running.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle() -> (CallHandle, mpsc::Receiver<CallMsg>) {
        let (tx, rx) = mpsc::channel(1);
        (CallHandle { tx }, rx)
    }

    #[test]
    fn calls_are_found_by_either_tag_and_shared_call_ids_stay_apart() {
        let mut t = CallTable::default();
        let (a, _ra) = handle();
        let (b, _rb) = handle();
        t.insert("cid".into(), "caller-a".into(), a.clone());
        t.insert("cid".into(), "caller-b".into(), b);
        assert_eq!(t.len(), 2);
        // caller A's CANCEL (no To tag) and in-dialog BYE (our tag in To)
        assert!(t
            .find("cid", Some("caller-a"), None)
            .is_some_and(|h| h.tx.same_channel(&a.tx)));
        assert!(t
            .find("cid", Some("caller-a"), Some("ours"))
            .is_some_and(|h| h.tx.same_channel(&a.tx)));
        // the response to our BYE: From is our tag, To is the caller's
        assert!(t
            .find("cid", Some("ours"), Some("caller-a"))
            .is_some_and(|h| h.tx.same_channel(&a.tx)));
        assert!(t.find("cid", Some("stranger"), None).is_none());
        assert!(t.find("other", Some("caller-a"), None).is_none());
        t.remove("cid", "caller-a");
        assert_eq!(t.len(), 1);
        assert!(t.find("cid", Some("caller-a"), None).is_none());
        t.remove("cid", "caller-b");
        assert!(t.is_empty());
        assert!(t.by_call_id.is_empty());
    }
}
