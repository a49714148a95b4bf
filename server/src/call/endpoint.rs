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
    /// Calls in progress (started and not yet ended; lingering actors do not count).
    pub calls: AtomicU64,
    /// Answered calls (confirmed or answered dialogs).
    pub dialogs: AtomicU64,
    /// Live SIP transactions (in calls and in the endpoint).
    pub transactions: AtomicU64,
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
    reported_tx: u64,
    /// New contexts after a config reload; a call starts on the newest and keeps it.
    reloads: Option<watch::Receiver<Arc<CallContext>>>,
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
            reported_tx: 0,
            reloads: None,
        }
    }

    /// Follows config reloads: each new call takes the newest context from `rx`
    /// (calls already running keep the one they started with).
    pub fn with_reloads(mut self, rx: watch::Receiver<Arc<CallContext>>) -> Self {
        self.reloads = Some(rx);
        self
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
        let n = self.layer.len() as u64;
        if n != self.reported_tx {
            self.counters
                .transactions
                .fetch_add(n.wrapping_sub(self.reported_tx), Ordering::Relaxed);
            self.reported_tx = n;
        }
        if self.layer.is_empty() && self.tcp_links.len() > 64 {
            self.tcp_links
                .retain(|_, l| matches!(l, Link::Tcp(tx) if !tx.is_closed()));
        }
    }

    fn on_call_ended(&mut self, ended: CallEnded) {
        self.calls.remove(&ended.call_id, &ended.local_tag);
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
        let key = match &inbound.message {
            SipMessage::Request(r) => MatchKey::of(r),
            SipMessage::Response(r) => MatchKey::of(r),
        };
        if let Some(handle) = self.calls.find(call_id, &key) {
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
            self.start_call(call_id, key, inbound);
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

    fn start_call(&mut self, call_id: String, key: MatchKey, first: Inbound) {
        let local_tag = format!("{:016x}", rand::random::<u64>());
        let media = self.bind_media();
        let rtp_port = media.as_ref().map(|m| m.port);
        let (tx, rx) = mpsc::channel(64);
        self.calls
            .insert(call_id.clone(), &key, local_tag.clone(), CallHandle { tx });
        self.counters.calls.fetch_add(1, Ordering::Relaxed);
        debug!(port = ?rtp_port, calls = self.calls.len(), "starting call");
        if let Some(rx) = self.reloads.as_mut() {
            if rx.has_changed().unwrap_or(false) {
                self.ctx = rx.borrow_and_update().clone();
            }
        }
        let ctx = self.ctx.clone();
        let done = self.ended_tx.clone();
        let counters = self.counters.clone();
        tokio::spawn(async move {
            let setup = CallSetup {
                ctx,
                call_id,
                local_tag,
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
                Ok((rtp, rtcp))
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

/// What the call table matches a message by: its Call-ID, tags and top Via branch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MatchKey {
    /// From tag.
    pub from_tag: Option<String>,
    /// To tag.
    pub to_tag: Option<String>,
    /// Top Via branch.
    pub branch: Option<String>,
    /// Top Via sent-by (`host:port`), part of a transaction's identity (§17.2.3).
    pub sent_by: Option<String>,
}

impl MatchKey {
    /// Reads the key of a request or response (absent or unparsable parts are `None`).
    pub fn of(m: &impl HeaderAccess) -> MatchKey {
        let via = m.top_via().ok();
        MatchKey {
            from_tag: m
                .from_header()
                .ok()
                .and_then(|n| n.tag().map(str::to_string)),
            to_tag: m.to_header().ok().and_then(|n| n.tag().map(str::to_string)),
            sent_by: via
                .as_ref()
                .map(|v| format!("{}:{}", v.host.to_ascii_lowercase(), v.port.unwrap_or(0))),
            branch: via.and_then(|v| v.branch),
        }
    }
}

/// One running call as the table knows it.
#[derive(Debug)]
struct Entry {
    remote_tag: String,
    local_tag: String,
    invite_branch: String,
    invite_sent_by: String,
    handle: CallHandle,
}

/// Running calls, matched the way RFC 3261 identifies dialogs and transactions.
///
/// A message belongs to a call when its Call-ID matches and
/// - it carries our local tag: in To (the caller's in-dialog requests, the ACK) or in From
///   (responses to our requests, such as the 200 to our BYE); or
/// - it has no To tag, the caller's From tag and the initial INVITE's branch and sent-by
///   (a retransmitted INVITE, the CANCEL: RFC 3261 §17.2.3).
///
/// So a caller that reuses a Call-ID and From tag for a new INVITE (new branch, RFC 5118's
/// examples do) starts a new call, and two callers sharing a Call-ID stay apart.
#[derive(Debug, Default)]
pub struct CallTable {
    by_call_id: HashMap<String, Vec<Entry>>,
    len: usize,
}

impl CallTable {
    /// Adds a call: its INVITE's key (caller's tag, branch, sent-by) and our tag.
    pub fn insert(
        &mut self,
        call_id: String,
        invite: &MatchKey,
        local_tag: String,
        handle: CallHandle,
    ) {
        self.by_call_id.entry(call_id).or_default().push(Entry {
            remote_tag: invite.from_tag.clone().unwrap_or_default(),
            local_tag,
            invite_branch: invite.branch.clone().unwrap_or_default(),
            invite_sent_by: invite.sent_by.clone().unwrap_or_default(),
            handle,
        });
        self.len += 1;
    }

    /// The call a message belongs to.
    pub fn find(&self, call_id: &str, key: &MatchKey) -> Option<&CallHandle> {
        let calls = self.by_call_id.get(call_id)?;
        let ours = |tag: &Option<String>, e: &Entry| tag.as_deref() == Some(e.local_tag.as_str());
        calls
            .iter()
            .find(|e| {
                ours(&key.to_tag, e)
                    || ours(&key.from_tag, e)
                    || (key.to_tag.is_none()
                        && key.from_tag.as_deref().unwrap_or("") == e.remote_tag
                        && key.branch.as_deref() == Some(e.invite_branch.as_str())
                        && key.sent_by.as_deref() == Some(e.invite_sent_by.as_str()))
            })
            .map(|e| &e.handle)
    }

    /// Removes the call with our tag `local_tag`.
    pub fn remove(&mut self, call_id: &str, local_tag: &str) {
        if let Some(calls) = self.by_call_id.get_mut(call_id) {
            if let Some(pos) = calls.iter().position(|e| e.local_tag == local_tag) {
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
        self.by_call_id.values().flatten().map(|e| &e.handle)
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

    fn key(from: Option<&str>, to: Option<&str>, branch: Option<&str>) -> MatchKey {
        MatchKey {
            from_tag: from.map(Into::into),
            to_tag: to.map(Into::into),
            branch: branch.map(Into::into),
            sent_by: Some("127.0.0.1:5070".into()),
        }
    }

    fn is(h: Option<&CallHandle>, want: &CallHandle) -> bool {
        h.is_some_and(|h| h.tx.same_channel(&want.tx))
    }

    #[test]
    fn messages_find_their_call_like_rfc3261_matching() {
        let mut t = CallTable::default();
        let (a, _ra) = handle();
        let (b, _rb) = handle();
        t.insert(
            "cid".into(),
            &key(Some("caller"), None, Some("z9hG4bK1")),
            "ours-a".into(),
            a.clone(),
        );
        // INVITE retransmission and CANCEL: no To tag, caller's tag, same branch
        assert!(is(
            t.find("cid", &key(Some("caller"), None, Some("z9hG4bK1"))),
            &a
        ));
        // ACK / BYE from the caller: our tag in To
        assert!(is(
            t.find(
                "cid",
                &key(Some("caller"), Some("ours-a"), Some("z9hG4bK9"))
            ),
            &a
        ));
        // the 200 to our BYE: our tag in From
        assert!(is(
            t.find(
                "cid",
                &key(Some("ours-a"), Some("caller"), Some("z9hG4bKx"))
            ),
            &a
        ));
        // same Call-ID and From tag, new branch, no To tag: a new INVITE, not this call
        assert!(t
            .find("cid", &key(Some("caller"), None, Some("z9hG4bK2")))
            .is_none());
        // the same branch from another sent-by is another transaction (RFC 5118 reuses branches)
        let mut other_host = key(Some("caller"), None, Some("z9hG4bK1"));
        other_host.sent_by = Some("[2001:db8::9:1]:0".into());
        assert!(t.find("cid", &other_host).is_none());
        t.insert(
            "cid".into(),
            &key(Some("caller"), None, Some("z9hG4bK2")),
            "ours-b".into(),
            b.clone(),
        );
        assert!(is(
            t.find("cid", &key(Some("caller"), None, Some("z9hG4bK2"))),
            &b
        ));
        assert!(is(
            t.find("cid", &key(Some("caller"), Some("ours-b"), None)),
            &b
        ));
        assert!(is(
            t.find("cid", &key(Some("caller"), Some("ours-a"), None)),
            &a
        ));
        // a stranger's in-dialog request
        assert!(t
            .find("cid", &key(Some("x"), Some("nobody"), None))
            .is_none());
        assert!(t
            .find("other", &key(Some("caller"), None, Some("z9hG4bK1")))
            .is_none());
        assert_eq!(t.len(), 2);
        t.remove("cid", "ours-a");
        assert!(t
            .find("cid", &key(Some("caller"), Some("ours-a"), None))
            .is_none());
        t.remove("cid", "ours-b");
        assert!(t.is_empty());
        assert!(t.by_call_id.is_empty());
    }
}
