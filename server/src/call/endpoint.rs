//! The endpoint: one task that routes every received SIP message to its call by Call-ID,
//! starts a call actor for each new INVITE, and answers requests outside any call.
//!
//! Out-of-call answers (RFC 3261 §8.2): OPTIONS 200 (Allow, Accept, Supported); a request
//! with a To tag for no known call 481; REGISTER, MESSAGE, ... (and SUBSCRIBE without
//! MWI) 405 with Allow;
//! unknown methods 501; Max-Forwards 0 483; an unsupported `Require` 420 with
//! Unsupported; an unsupported URI scheme 416. Stray ACKs and responses are dropped.
//!
//! Message-waiting indication (when [`Endpoint::with_mwi`] gave it a voicemail store and
//! the event bus): SUBSCRIBE, new and in-dialog, goes to a [`MwiManager`] owned by this
//! task; its NOTIFYs are client transactions of the endpoint's transaction layer, whose
//! responses and timeouts go back to the manager; mailbox events from the bus become
//! NOTIFYs. Nothing here waits on the store beyond a `VoicemailAccess` read.
//!
//! Registrar (when [`Endpoint::with_registrar`] gave it the users' passwords): REGISTER
//! goes to a [`Registrar`] owned by this task (digest challenge, bindings, expiry); its
//! bindings are published as a [`Registrations`] snapshot ([`Endpoint::registrations`])
//! and counted in [`Counters::registrations`]. Without it, REGISTER gets 405.

use super::actor::{self, CallSetup, MediaSockets, ACCEPT, ALLOW, SUPPORTED};
use super::ports::PortPool;
use super::{CallContext, CallEnded, CallHandle, CallMsg, CallReport};
use crate::events::{BusEvent, Event, EventBus};
use crate::metrics as m;
use crate::sip::auth::Credentials;
use crate::sip::message::{
    HeaderAccess, HeaderName, Method, Request, Response, SipMessage, TransportKind,
};
use crate::sip::mwi::{MwiConfig, MwiManager, NotifyId, VoicemailDirectory};
use crate::sip::registrar::{Registrar, RegistrarConfig, RegistrarEvent, Registrations};
use crate::sip::transaction::{
    ClientTxId, Incoming, Peer, ServerTxId, TransactionEvent, TransactionLayer, TxId,
};
use crate::sip::transport::{Inbound, Link};
use crate::store::Store;
use crate::voicemail::VoicemailAccess;
use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, watch};
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
    /// Live registrar bindings (registered contacts of all users).
    pub registrations: AtomicU64,
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
    mwi: Option<Mwi>,
    registrar: Option<Reg>,
}

/// The endpoint's registrar: the bindings, the passwords and the snapshot it publishes.
struct Reg {
    registrar: Registrar,
    credentials: Arc<dyn Credentials>,
    snapshot: watch::Sender<Arc<Registrations>>,
}

/// The endpoint's message-waiting state: the notifier, the mailboxes it reads and the
/// bus it listens to.
struct Mwi {
    manager: MwiManager,
    voicemail: Arc<dyn VoicemailAccess>,
    /// `None` once the bus is closed.
    events: Option<broadcast::Receiver<Arc<BusEvent>>>,
    /// Our NOTIFY client transactions.
    notifies: HashMap<ClientTxId, NotifyId>,
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
            mwi: None,
            registrar: None,
        }
    }

    /// Follows config reloads: each new call takes the newest context from `rx`
    /// (calls already running keep the one they started with).
    pub fn with_reloads(mut self, rx: watch::Receiver<Arc<CallContext>>) -> Self {
        self.reloads = Some(rx);
        self
    }

    /// Serves message-waiting indication (SUBSCRIBE / NOTIFY `message-summary`) for the
    /// mailboxes of `voicemail`, with mailbox changes read from `bus`. Without it,
    /// SUBSCRIBE gets 405.
    pub fn with_mwi(mut self, voicemail: Arc<dyn VoicemailAccess>, bus: &EventBus) -> Self {
        let sip = &self.ctx.config.sip;
        let mut config = MwiConfig::new(
            &sip.public_host,
            sip.udp.map(|a| a.port()),
            sip.tcp.map(|a| a.port()),
        );
        config.user_agent = self.ctx.config.user_agent.clone();
        self.mwi = Some(Mwi {
            manager: MwiManager::new(config, rand::random()),
            voicemail,
            events: Some(bus.subscribe()),
            notifies: HashMap::new(),
        });
        self
    }

    /// Serves REGISTER (RFC 3261 §10.3) for the users of `credentials`, with digest
    /// authentication. Without it, REGISTER gets 405.
    /// The bindings are published on `snapshot` (see [`Endpoint::registrations`]).
    pub fn with_registrar(
        mut self,
        credentials: Arc<dyn Credentials>,
        config: RegistrarConfig,
        snapshot: watch::Sender<Arc<Registrations>>,
    ) -> Self {
        self.registrar = Some(Reg {
            registrar: Registrar::new(config, rand::random(), now()),
            credentials,
            snapshot,
        });
        self
    }

    /// The side door for dials ([`crate::call::originate::CallOriginator::new`]); take
    /// it before [`Endpoint::run`].
    pub fn dialer(&self) -> crate::call::originate::DialLink {
        crate::call::originate::DialLink {
            tx: self.ended_tx.clone(),
        }
    }

    /// The registrar's bindings, updated on every change (`None` without
    /// [`Endpoint::with_registrar`]); take it before [`Endpoint::run`].
    pub fn registrations(&self) -> Option<watch::Receiver<Arc<Registrations>>> {
        self.registrar.as_ref().map(|r| r.snapshot.subscribe())
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
            let mwi_timeout = self.mwi.as_ref().and_then(|m| m.manager.poll_timeout());
            let reg_timeout = self
                .registrar
                .as_ref()
                .and_then(|r| r.registrar.poll_timeout());
            let next = self
                .layer
                .poll_timeout()
                .into_iter()
                .chain(mwi_timeout)
                .chain(reg_timeout)
                .min()
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
                    CallReport::Record(record) => self.on_call_record(&record),
                    CallReport::Ended(ended) => self.on_call_ended(ended),
                    CallReport::LegStarted { call_id, local_tag, leg_call_id, leg_tag } => {
                        self.on_leg_started(&call_id, &local_tag, leg_call_id, leg_tag)
                    }
                    CallReport::LegEnded { leg_call_id, leg_tag } => {
                        self.calls.remove_leg(&leg_call_id, &leg_tag)
                    }
                    CallReport::Originate(start) => self.start_dial(*start),
                },
                ev = next_bus_event(&mut self.mwi) => self.on_bus_event(ev),
                _ = tokio::time::sleep_until(next) => {
                    let now = now();
                    self.layer.handle_timeout(now);
                    if let Some(mwi) = self.mwi.as_mut() {
                        mwi.manager.handle_timeout(now);
                    }
                    if let Some(reg) = self.registrar.as_mut() {
                        reg.registrar.handle_timeout(now);
                        self.registrar_changed();
                    }
                }
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
        self.mwi_events();
        self.mwi_send();
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
        self.mwi_events();
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

    /// Routes the transaction layer's events: our NOTIFYs' timeouts and transport errors
    /// go to the notifier (as 408 / 503, RFC 3261 §8.1.3.1); everything else is dropped.
    fn mwi_events(&mut self) {
        while let Some(ev) = self.layer.poll_event() {
            let Some(mwi) = self.mwi.as_mut() else {
                continue;
            };
            match ev {
                TransactionEvent::Timeout(id) => {
                    if let Some(&n) = mwi.notifies.get(&id) {
                        mwi.manager.handle_notify_response(now(), n, 408);
                    }
                }
                TransactionEvent::TransportError(TxId::Client(id)) => {
                    if let Some(&n) = mwi.notifies.get(&id) {
                        mwi.manager.handle_notify_response(now(), n, 503);
                    }
                }
                TransactionEvent::Terminated(TxId::Client(id)) => {
                    mwi.notifies.remove(&id);
                }
                _ => {}
            }
        }
    }

    /// Starts a client transaction for every NOTIFY the notifier queued.
    fn mwi_send(&mut self) {
        let Some(mwi) = self.mwi.as_mut() else {
            return;
        };
        while let Some(n) = mwi.manager.poll_notify() {
            let now = now();
            match self.layer.send_request(now, n.request, n.to) {
                Ok(tx) => {
                    mwi.notifies.insert(tx, n.id);
                }
                Err(e) => {
                    debug!(error = %e, "NOTIFY not sent");
                    mwi.manager.handle_notify_response(now, n.id, 503);
                }
            }
        }
    }

    /// A bus event: mailbox changes become NOTIFYs; after a lag every subscribed mailbox
    /// is read again.
    fn on_bus_event(&mut self, ev: Result<Arc<BusEvent>, broadcast::error::RecvError>) {
        let Some(mwi) = self.mwi.as_mut() else {
            return;
        };
        let dir = VoicemailDirectory(mwi.voicemail.as_ref());
        match ev {
            Ok(ev) => {
                #[allow(irrefutable_let_patterns)] // more event kinds will come
                if let Event::Mailbox(m) = &ev.event {
                    debug!(mailbox = %super::redact(&m.mailbox), new = m.new_count, "mailbox changed");
                    mwi.manager.handle_mailbox_event(now(), m, &dir);
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                warn!(missed, "event bus lagged: re-reading subscribed mailboxes");
                mwi.manager.handle_resync(now(), &dir);
            }
            Err(broadcast::error::RecvError::Closed) => mwi.events = None,
        }
    }

    fn on_call_ended(&mut self, ended: CallEnded) {
        self.calls.remove(&ended.call_id, &ended.local_tag);
        if let Some(record) = &ended.record {
            self.on_call_record(record);
        }
    }

    /// A call's final record (sent at hang-up, or at exit if it never hung up).
    fn on_call_record(&mut self, record: &crate::store::CallRecord) {
        if let Some(store) = &self.store {
            // sled's insert appends to its in-memory log: it does not block; its background
            // flush makes it durable within 500 ms (no promise is made to the caller here).
            if let Err(e) = record.save(store.as_ref()) {
                warn!(error = %e, "call record not stored");
            }
        }
        // The `call.ended` hook gets the record (fire-and-forget: never waits).
        if let Some(hooks) = &self.ctx.hooks {
            hooks.call_ended(record);
        }
    }

    /// A call places an outbound leg: its Call-ID now reaches the call, and the call gets
    /// a port pair and the UDP link (or `None`s, which fail the leg). Never waits.
    fn on_leg_started(
        &mut self,
        call_id: &str,
        local_tag: &str,
        leg_call_id: String,
        leg_tag: String,
    ) {
        let key = MatchKey {
            to_tag: Some(local_tag.to_string()),
            ..MatchKey::default()
        };
        let Some(handle) = self.calls.find(call_id, &key).cloned() else {
            return; // the call is gone
        };
        self.calls
            .insert_leg(leg_call_id.clone(), leg_tag.clone(), handle.clone());
        let media = self.bind_media();
        let port = media.as_ref().map(|m| m.port);
        let msg = CallMsg::LegReady {
            call_id: leg_call_id.clone(),
            media,
            udp: self.udp.clone(),
        };
        if !handle.try_send(msg) {
            debug!("call mailbox full: outbound leg not started");
            self.calls.remove_leg(&leg_call_id, &leg_tag);
            if let Some(p) = port {
                self.ports.release(p);
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
            SipMessage::Response(r) if self.mwi.is_none() => {
                debug!(status = r.status, "response for no call dropped");
                return;
            }
            SipMessage::Response(_) => {}
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
            Incoming::NewRequest(id, req) => self.on_out_of_call(id, req, from),
            Incoming::Response(tx, resp) => {
                let n = self.mwi.as_ref().and_then(|m| m.notifies.get(&tx).copied());
                match (n, self.mwi.as_mut()) {
                    (Some(n), Some(mwi)) if resp.status >= 200 => {
                        mwi.manager.handle_notify_response(now(), n, resp.status)
                    }
                    _ => {}
                }
            }
            Incoming::StrayResponse(r) => {
                debug!(status = r.status, "response for no call dropped");
            }
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

    fn on_out_of_call(&mut self, id: ServerTxId, req: Request, from: Peer) {
        if self.shutting_down && req.method == Method::Invite {
            self.respond(id, &req, 503, "Service Unavailable", &[]);
            return;
        }
        if req.method == Method::Subscribe && self.mwi.is_some() {
            self.on_subscribe(id, req, from);
            return;
        }
        if req.method == Method::Register && self.registrar.is_some() {
            self.on_register(id, req, from);
            return;
        }
        let mut a = out_of_dialog_answer(&req);
        if self.mwi.is_some() && req.method == Method::Options && a.status == 200 {
            a.headers.push((
                HeaderName::Other("Allow-Events".into()),
                crate::sip::mwi::EVENT_PACKAGE.into(),
            ));
        }
        if self.registrar.is_some() {
            for (name, value) in a.headers.iter_mut() {
                if *name == HeaderName::Allow {
                    value.push_str(", REGISTER");
                }
            }
        }
        info!(method = %req.method, status = a.status, "request outside any call answered");
        self.respond(id, &req, a.status, a.reason, &a.headers);
    }

    /// A SUBSCRIBE (new or in-dialog): §8.2's checks that apply to it, then the notifier.
    fn on_subscribe(&mut self, id: ServerTxId, req: Request, from: Peer) {
        if !matches!(req.uri.scheme.as_str(), "sip" | "sips") {
            self.respond(id, &req, 416, "Unsupported URI Scheme", &[]);
            return;
        }
        let unsupported = unsupported_requirements(&req);
        if !unsupported.is_empty() {
            let h = [(HeaderName::Unsupported, unsupported.join(", "))];
            self.respond(id, &req, 420, "Bad Extension", &h);
            return;
        }
        let Some(mwi) = self.mwi.as_mut() else {
            return;
        };
        let dir = VoicemailDirectory(mwi.voicemail.as_ref());
        let mut resp = mwi.manager.handle_subscribe(now(), &req, from, &dir);
        info!(
            mailbox = %super::redact(req.uri.user_name().unwrap_or("")),
            sip.status = resp.status,
            subscriptions = mwi.manager.len(),
            "SUBSCRIBE answered"
        );
        resp.headers
            .push(HeaderName::Server, self.ctx.config.user_agent.clone());
        if let Err(e) = self.layer.send_response(now(), id, resp) {
            debug!(error = %e, "response not sent");
        }
    }

    /// A REGISTER: §8.2's checks that apply to it, then the registrar.
    fn on_register(&mut self, id: ServerTxId, req: Request, from: Peer) {
        if !matches!(req.uri.scheme.as_str(), "sip" | "sips") {
            self.respond(id, &req, 416, "Unsupported URI Scheme", &[]);
            return;
        }
        let unsupported = unsupported_requirements(&req);
        if !unsupported.is_empty() {
            let h = [(HeaderName::Unsupported, unsupported.join(", "))];
            self.respond(id, &req, 420, "Bad Extension", &h);
            return;
        }
        let Some(reg) = self.registrar.as_mut() else {
            return;
        };
        let mut resp = reg
            .registrar
            .handle_register(now(), &req, from, reg.credentials.as_ref());
        let user = req
            .to_header()
            .ok()
            .and_then(|t| t.uri.user_name().map(str::to_string));
        info!(
            user = %super::redact(user.as_deref().unwrap_or("")),
            sip.status = resp.status,
            registrations = reg.registrar.registrations(),
            "REGISTER answered"
        );
        let ok = resp.status == 200;
        resp.headers
            .push(HeaderName::Server, self.ctx.config.user_agent.clone());
        if let Err(e) = self.layer.send_response(now(), id, resp) {
            debug!(error = %e, "response not sent");
        }
        if ok {
            self.registrar_changed();
        }
    }

    /// After the registrar may have changed: logs its events, updates the counter and
    /// the gauge, publishes a new snapshot.
    fn registrar_changed(&mut self) {
        let Some(reg) = self.registrar.as_mut() else {
            return;
        };
        let mut changed = false;
        while let Some(ev) = reg.registrar.poll_event() {
            changed = true;
            match ev {
                RegistrarEvent::Registered { user, binding } => {
                    info!(user = %super::redact(&user), source = %binding.source.addr, "device registered")
                }
                RegistrarEvent::Unregistered { user, .. } => {
                    info!(user = %super::redact(&user), "device unregistered")
                }
                RegistrarEvent::Expired { user, .. } => {
                    info!(user = %super::redact(&user), "device registration expired")
                }
            }
        }
        let snapshot = reg.registrar.snapshot();
        if changed || **reg.snapshot.borrow() != snapshot {
            let n = snapshot.len() as u64;
            let before = self.counters.registrations.swap(n, Ordering::Relaxed);
            metrics::gauge!(m::SIP_REGISTRATIONS).increment(n as f64 - before as f64);
            reg.snapshot.send_replace(Arc::new(snapshot));
        }
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

    /// Starts a dial: a call actor with our Call-ID and tag (the contact's responses carry
    /// our tag in From, its requests in To), a port pair and the UDP link. Never waits.
    fn start_dial(&mut self, start: crate::call::originate::DialStart) {
        if self.shutting_down {
            crate::call::originate::finish(
                &start.events,
                crate::dialer::campaign::CallResult::Failed {
                    reason: "shutting down".into(),
                },
            );
            return;
        }
        let Some(udp) = self.udp.clone() else {
            crate::call::originate::finish(
                &start.events,
                crate::dialer::campaign::CallResult::Failed {
                    reason: "no UDP listener (sip.udp) to dial from".into(),
                },
            );
            return;
        };
        let call_id = format!(
            "{:016x}@{}",
            rand::random::<u64>(),
            self.ctx.config.sip.public_host
        );
        let local_tag = format!("{:016x}", rand::random::<u64>());
        let media = self.bind_media();
        let (tx, rx) = mpsc::channel(64);
        self.calls.insert(
            call_id.clone(),
            &MatchKey::default(),
            local_tag.clone(),
            CallHandle { tx },
        );
        self.counters.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(rx) = self.reloads.as_mut() {
            if rx.has_changed().unwrap_or(false) {
                self.ctx = rx.borrow_and_update().clone();
            }
        }
        let setup = actor::DialSetup {
            ctx: self.ctx.clone(),
            call_id,
            local_tag,
            link: udp,
            media,
            done: self.ended_tx.clone(),
            counters: self.counters.clone(),
            start,
        };
        tokio::spawn(actor::run_dial(setup, rx));
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

/// The next event of the bus, or never when there is no MWI or the bus is closed.
async fn next_bus_event(
    mwi: &mut Option<Mwi>,
) -> Result<Arc<BusEvent>, broadcast::error::RecvError> {
    match mwi.as_mut().and_then(|m| m.events.as_mut()) {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
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
    /// An outbound leg of a call (matched by our tag only; not counted as a call).
    leg: bool,
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
            leg: false,
        });
        self.len += 1;
    }

    /// Routes an outbound leg's messages (its Call-ID with our tag `local_tag`: in From
    /// of the responses to our requests, in To of the callee's requests) to `handle`.
    /// Legs do not count in [`CallTable::len`].
    pub fn insert_leg(&mut self, call_id: String, local_tag: String, handle: CallHandle) {
        self.by_call_id.entry(call_id).or_default().push(Entry {
            remote_tag: String::new(),
            local_tag,
            invite_branch: String::new(),
            invite_sent_by: String::new(),
            handle,
            leg: true,
        });
    }

    /// Stops routing an outbound leg.
    pub fn remove_leg(&mut self, call_id: &str, local_tag: &str) {
        if let Some(calls) = self.by_call_id.get_mut(call_id) {
            calls.retain(|e| !(e.leg && e.local_tag == local_tag));
            if calls.is_empty() {
                self.by_call_id.remove(call_id);
            }
        }
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
                    || (!e.leg
                        && key.to_tag.is_none()
                        && key.from_tag.as_deref().unwrap_or("") == e.remote_tag
                        && key.branch.as_deref() == Some(e.invite_branch.as_str())
                        && key.sent_by.as_deref() == Some(e.invite_sent_by.as_str()))
            })
            .map(|e| &e.handle)
    }

    /// Removes the call with our tag `local_tag`.
    pub fn remove(&mut self, call_id: &str, local_tag: &str) {
        if let Some(calls) = self.by_call_id.get_mut(call_id) {
            if let Some(pos) = calls
                .iter()
                .position(|e| !e.leg && e.local_tag == local_tag)
            {
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
        self.by_call_id
            .values()
            .flatten()
            .filter(|e| !e.leg)
            .map(|e| &e.handle)
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

    mod mwi {
        use super::super::*;
        use crate::config::Config;
        use crate::events::{MailboxChange, MailboxEvent};
        use crate::ivr::GreetingKind;
        use crate::media::wav::Prompt;
        use crate::sip::message::parse_datagram;
        use crate::voicemail::{Folder, MailboxConfig, MessageMeta, VoicemailError};
        use std::path::Path;

        /// Mailbox 200, empty.
        #[derive(Debug)]
        struct OneMailbox;

        impl VoicemailAccess for OneMailbox {
            fn mailbox(&self, number: &str) -> Option<MailboxConfig> {
                (number == "200").then(|| MailboxConfig::new("200", "Alice", "1234"))
            }
            fn check_pin(&self, _: &str, _: &str) -> bool {
                false
            }
            fn set_pin(&self, m: &str, _: &str) -> Result<(), VoicemailError> {
                Err(VoicemailError::NoMailbox(m.into()))
            }
            fn messages(&self, _: &str, _: Folder) -> Result<Vec<MessageMeta>, VoicemailError> {
                Ok(Vec::new())
            }
            fn audio(&self, id: &str) -> Result<Prompt, VoicemailError> {
                Err(VoicemailError::NoMessage(id.into()))
            }
            fn set_folder(&self, id: &str, _: Folder) -> Result<(), VoicemailError> {
                Err(VoicemailError::NoMessage(id.into()))
            }
            fn delete(&self, id: &str) -> Result<(), VoicemailError> {
                Err(VoicemailError::NoMessage(id.into()))
            }
            fn greeting(&self, _: &str, _: GreetingKind) -> Option<Prompt> {
                None
            }
        }

        async fn recv(sock: &UdpSocket) -> Option<SipMessage> {
            let mut buf = vec![0u8; 65_535];
            let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
                .await
                .ok()?
                .ok()?;
            parse_datagram(&buf[..n]).ok()
        }

        /// The next NOTIFY (skipping retransmissions of CSeq numbers already seen).
        async fn notify(sock: &UdpSocket, after_cseq: u32) -> Option<Request> {
            loop {
                match recv(sock).await? {
                    SipMessage::Request(r)
                        if r.method == Method::Notify
                            && r.cseq().is_ok_and(|c| c.seq > after_cseq) =>
                    {
                        return Some(r)
                    }
                    _ => {}
                }
            }
        }

        fn body(r: &Request) -> String {
            String::from_utf8_lossy(&r.body).into_owned()
        }

        /// The endpoint task with a real UDP socket: SUBSCRIBE in, 200 and NOTIFY out on
        /// the wire; a bus event makes a new NOTIFY; a 481 to it ends the subscription.
        #[tokio::test]
        async fn subscribe_notify_and_mailbox_events_over_udp() {
            let server = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
            let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let caddr = client.local_addr().unwrap();
            let toml = format!(
                "[sip]\nudp = \"{}\"\n[network]\nallow = [\"127.0.0.0/8\"]\n",
                server.local_addr().unwrap()
            );
            let config = Arc::new(Config::from_toml(&toml, "t.toml", Path::new(".")).unwrap());
            let ctx = Arc::new(CallContext {
                timers: Default::default(),
                allow: config.allow.clone(),
                hooks: None,
                prompts: HashMap::new(),
                library: HashMap::new(),
                voicemail: None,
                acd: None,
                registrations: None,
                config,
            });
            let bus = EventBus::new(16);
            let ep = Endpoint::new(ctx, Some(server.clone()), Arc::default(), None)
                .with_mwi(Arc::new(OneMailbox), &bus);
            let (in_tx, in_rx) = mpsc::channel(16);
            let (stop_tx, stop_rx) = watch::channel(false);
            let task = tokio::spawn(ep.run(in_rx, stop_rx));
            let from = Peer {
                addr: caddr,
                transport: TransportKind::Udp,
            };
            let deliver = |message: SipMessage| Inbound {
                message,
                from,
                link: Link::Udp(server.clone()),
            };
            let sub = format!(
                "SUBSCRIBE sip:200@127.0.0.1 SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {caddr};branch=z9hG4bKsub1\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:phone@127.0.0.1>;tag=ph\r\n\
                 To: <sip:200@127.0.0.1>\r\n\
                 Call-ID: mwi-1\r\n\
                 CSeq: 1 SUBSCRIBE\r\n\
                 Contact: <sip:phone@{caddr}>\r\n\
                 Event: message-summary\r\n\
                 Expires: 600\r\n\
                 Content-Length: 0\r\n\r\n"
            );
            in_tx
                .send(deliver(parse_datagram(sub.as_bytes()).unwrap()))
                .await
                .unwrap();
            let Some(SipMessage::Response(ok)) = recv(&client).await else {
                panic!("no response to SUBSCRIBE");
            };
            assert_eq!(ok.status, 200);
            assert_eq!(ok.headers.get(&HeaderName::Expires), Some("600"));
            let first = notify(&client, 0).await.expect("first NOTIFY");
            assert!(
                body(&first).starts_with("Messages-Waiting: no\r\n"),
                "{}",
                body(&first)
            );
            let answer = Response::for_request(&first, 200, "OK", None);
            in_tx
                .send(deliver(SipMessage::Response(answer)))
                .await
                .unwrap();

            bus.publish(Event::Mailbox(MailboxEvent {
                mailbox: "200".into(),
                change: MailboxChange::New,
                message_id: Some("m1".into()),
                new_count: 1,
                saved_count: 0,
            }));
            let second = notify(&client, 1).await.expect("NOTIFY after the event");
            assert_eq!(second.cseq().unwrap().seq, 2);
            assert!(body(&second).contains("Messages-Waiting: yes\r\n"));
            assert!(body(&second).contains("Voice-Message: 1/0 (0/0)\r\n"));
            let gone = Response::for_request(&second, 481, "Gone", None);
            in_tx
                .send(deliver(SipMessage::Response(gone)))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;

            bus.publish(Event::Mailbox(MailboxEvent {
                mailbox: "200".into(),
                change: MailboxChange::Read,
                message_id: Some("m1".into()),
                new_count: 0,
                saved_count: 1,
            }));
            assert!(
                notify(&client, 2).await.is_none(),
                "no NOTIFY after the subscriber answered 481"
            );
            stop_tx.send(true).unwrap();
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("endpoint stops")
                .unwrap();
        }
    }

    mod registrar {
        use super::super::*;
        use crate::config::Config;
        use crate::sip::auth::{digest_response, Algorithm, DigestInput};
        use crate::sip::message::parse_datagram;
        use std::path::Path;

        fn register(caddr: SocketAddr, cseq: u32, auth: &str) -> Request {
            let wire = format!(
                "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {caddr};branch=z9hG4bKreg{cseq}\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:1001@127.0.0.1>;tag=ph\r\n\
                 To: <sip:1001@127.0.0.1>\r\n\
                 Call-ID: reg-1\r\n\
                 CSeq: {cseq} REGISTER\r\n\
                 Contact: <sip:1001@{caddr}>\r\n\
                 Expires: 600\r\n\
                 {auth}Content-Length: 0\r\n\r\n"
            );
            match parse_datagram(wire.as_bytes()).unwrap() {
                SipMessage::Request(r) => r,
                SipMessage::Response(_) => unreachable!(),
            }
        }

        async fn response(sock: &UdpSocket) -> Response {
            let mut buf = vec![0u8; 65_535];
            let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
                .await
                .expect("a response")
                .unwrap();
            match parse_datagram(&buf[..n]).unwrap() {
                SipMessage::Response(r) => r,
                SipMessage::Request(r) => panic!("unexpected {}", r.method),
            }
        }

        fn param(c: &str, name: &str) -> String {
            let start = c.find(&format!("{name}=")).unwrap() + name.len() + 1;
            let rest = c[start..].trim_start_matches('"');
            rest.split(['"', ',']).next().unwrap().to_string()
        }

        /// REGISTER over UDP: 401 with SHA-256 then MD5, 200 with SHA-256 credentials,
        /// the binding in the snapshot and the counter; without a registrar, 405.
        #[tokio::test]
        async fn register_is_challenged_then_bound() {
            for with_registrar in [true, false] {
                let server = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
                let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                let caddr = client.local_addr().unwrap();
                let toml = format!(
                    "[sip]\nudp = \"{}\"\n[network]\nallow = [\"127.0.0.0/8\"]\n",
                    server.local_addr().unwrap()
                );
                let config = Arc::new(Config::from_toml(&toml, "t.toml", Path::new(".")).unwrap());
                let ctx = Arc::new(CallContext {
                    timers: Default::default(),
                    allow: config.allow.clone(),
                    hooks: None,
                    prompts: HashMap::new(),
                    library: HashMap::new(),
                    voicemail: None,
                    acd: None,
                    registrations: None,
                    config: config.clone(),
                });
                let counters = Arc::new(Counters::default());
                let mut ep = Endpoint::new(ctx, Some(server.clone()), counters.clone(), None);
                let users: HashMap<String, String> = HashMap::from([("1001".into(), "pw".into())]);
                if with_registrar {
                    ep = ep.with_registrar(
                        Arc::new(users),
                        RegistrarConfig::new(&config.sip.public_host),
                        watch::channel(Arc::new(Registrations::default())).0,
                    );
                }
                let mut snapshots = ep.registrations();
                let (in_tx, in_rx) = mpsc::channel(16);
                let (stop_tx, stop_rx) = watch::channel(false);
                let task = tokio::spawn(ep.run(in_rx, stop_rx));
                let from = Peer {
                    addr: caddr,
                    transport: TransportKind::Udp,
                };
                let deliver = |r: Request| Inbound {
                    message: SipMessage::Request(r),
                    from,
                    link: Link::Udp(server.clone()),
                };
                in_tx.send(deliver(register(caddr, 1, ""))).await.unwrap();
                let first = response(&client).await;
                if !with_registrar {
                    assert_eq!(first.status, 405);
                    assert!(snapshots.is_none());
                } else {
                    assert_eq!(first.status, 401);
                    let c: Vec<&str> = first
                        .headers
                        .get_all(&HeaderName::WwwAuthenticate)
                        .collect();
                    assert_eq!(c.len(), 2);
                    assert!(c[0].contains("algorithm=SHA-256") && c[1].contains("algorithm=MD5"));
                    let (realm, nonce, opaque) = (
                        param(c[0], "realm"),
                        param(c[0], "nonce"),
                        param(c[0], "opaque"),
                    );
                    let digest = digest_response(&DigestInput {
                        algorithm: Algorithm::Sha256,
                        username: "1001",
                        realm: &realm,
                        password: "pw",
                        method: "REGISTER",
                        uri: "sip:127.0.0.1",
                        nonce: &nonce,
                        nc: "00000001",
                        cnonce: "abc",
                        qop: "auth",
                    });
                    let auth = format!(
                        "Authorization: Digest username=\"1001\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"sip:127.0.0.1\", response=\"{digest}\", algorithm=SHA-256, cnonce=\"abc\", qop=auth, nc=00000001, opaque=\"{opaque}\"\r\n"
                    );
                    in_tx
                        .send(deliver(register(caddr, 2, &auth)))
                        .await
                        .unwrap();
                    let ok = response(&client).await;
                    assert_eq!(ok.status, 200, "{}", ok.reason);
                    assert_eq!(
                        ok.headers.get(&HeaderName::Contact),
                        Some(format!("<sip:1001@{caddr}>;expires=600").as_str())
                    );
                    let rx = snapshots.as_mut().unwrap();
                    tokio::time::timeout(Duration::from_secs(2), rx.wait_for(|s| s.len() == 1))
                        .await
                        .expect("snapshot")
                        .unwrap();
                    assert_eq!(rx.borrow().contacts("1001")[0].source, from);
                    assert_eq!(counters.registrations.load(Ordering::Relaxed), 1);
                }
                stop_tx.send(true).unwrap();
                tokio::time::timeout(Duration::from_secs(5), task)
                    .await
                    .expect("endpoint stops")
                    .unwrap();
            }
        }
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

    #[test]
    fn an_outbound_leg_routes_to_its_call_by_our_tag_only() {
        let mut t = CallTable::default();
        let (a, _ra) = handle();
        t.insert(
            "cid".into(),
            &key(Some("caller"), None, Some("z9hG4bK1")),
            "ours-a".into(),
            a.clone(),
        );
        t.insert_leg("leg".into(), "legtag".into(), a.clone());
        assert_eq!(t.len(), 1, "a leg is not a call");
        assert_eq!(t.handles().count(), 1);
        // responses to our INVITE / BYE on the leg: our tag in From
        assert!(is(
            t.find(
                "leg",
                &key(Some("legtag"), Some("callee"), Some("z9hG4bKx"))
            ),
            &a
        ));
        assert!(is(
            t.find("leg", &key(Some("legtag"), None, Some("z9hG4bKx"))),
            &a
        ));
        // the callee's BYE: our tag in To
        assert!(is(
            t.find(
                "leg",
                &key(Some("callee"), Some("legtag"), Some("z9hG4bKy"))
            ),
            &a
        ));
        // a new INVITE reusing the leg's Call-ID without our tag is not the leg
        assert!(t.find("leg", &key(Some(""), None, Some(""))).is_none());
        assert!(t
            .find("leg", &key(Some("x"), None, Some("z9hG4bK1")))
            .is_none());
        // removing the call's entry keeps the leg until it is removed itself
        t.remove("leg", "legtag");
        assert!(t.find("leg", &key(Some("legtag"), None, None)).is_some());
        t.remove_leg("leg", "legtag");
        assert!(t.find("leg", &key(Some("legtag"), None, None)).is_none());
        assert!(!t.by_call_id.contains_key("leg"));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_dialed_call_routes_by_our_tag_and_counts_as_a_call() {
        // start_dial's entry: our Call-ID and tag, no caller key.
        let mut t = CallTable::default();
        let (a, _ra) = handle();
        t.insert(
            "dial".into(),
            &MatchKey::default(),
            "ours".into(),
            a.clone(),
        );
        assert_eq!(
            t.len(),
            1,
            "a dial is a call (shutdown ends it, status counts it)"
        );
        // the contact's responses: our tag in From, with or without its To tag
        assert!(is(
            t.find("dial", &key(Some("ours"), None, Some("z9hG4bK1"))),
            &a
        ));
        assert!(is(
            t.find(
                "dial",
                &key(Some("ours"), Some("contact"), Some("z9hG4bK1"))
            ),
            &a
        ));
        // the contact's BYE: our tag in To
        assert!(is(
            t.find(
                "dial",
                &key(Some("contact"), Some("ours"), Some("z9hG4bK9"))
            ),
            &a
        ));
        // a stranger reusing the Call-ID
        assert!(t
            .find("dial", &key(Some("x"), None, Some("z9hG4bK2")))
            .is_none());
        assert!(t
            .find(
                "dial",
                &key(Some("contact"), Some("other"), Some("z9hG4bK3"))
            )
            .is_none());
        t.remove("dial", "ours");
        assert!(t.is_empty());
    }
}
