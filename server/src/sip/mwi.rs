//! Message-waiting indication: `message-summary` subscriptions (RFC 6665, RFC 3842),
//! sans-IO.
//!
//! [`MwiManager`] is the notifier for every mailbox. Contract:
//!
//! - inputs: a SUBSCRIBE (new or in-dialog) with [`MwiManager::handle_subscribe`], which
//!   returns the response to send on its server transaction; mailbox changes with
//!   [`MwiManager::handle_mailbox_event`] (the counts come in the event); the final status
//!   of each NOTIFY we sent with [`MwiManager::handle_notify_response`] (408 for a
//!   transaction timeout, 503 for a transport error); [`MwiManager::handle_timeout`] at
//!   [`MwiManager::poll_timeout`]; [`MwiManager::handle_resync`] after missed events;
//! - outputs: NOTIFY requests with their destination from [`MwiManager::poll_notify`]
//!   (send each in a client non-INVITE transaction and report its outcome by
//!   [`NotifyId`]).
//!
//! Rules kept (RFC 6665 §4.2): a SUBSCRIBE for `sip:<mailbox>@<us>` with `Event:
//! message-summary` gets 200 with `Expires` = min(requested or 3600, 3600), or 423 with
//! `Min-Expires` when shorter than the minimum (but not 0); it creates a dialog (our To
//! tag) and a NOTIFY follows at once. A refresh in the dialog sets a new expiry and gets a
//! NOTIFY too; `Expires: 0` ends it with a final NOTIFY `Subscription-State:
//! terminated;reason=timeout`, as does expiry without refresh. A NOTIFY answered with an
//! error (481, 408, anything >= 300) removes its subscription. Unknown mailbox: 404; any
//! other event package: 489 with `Allow-Events`; an in-dialog SUBSCRIBE for no
//! subscription: 481. At most one NOTIFY per subscription is in flight; changes that
//! arrive meanwhile are sent (latest counts) once it is answered, so CSeq order is
//! arrival order. Every change also sends an unsolicited NOTIFY (out of any dialog) to
//! each URI of the mailbox's `notify` list whose host is an IP literal.
//!
//! ```text
//! let mut mwi = MwiManager::new(MwiConfig::new("127.0.0.1", Some(5060), None), seed);
//! let resp = mwi.handle_subscribe(now, &req, from, &directory);
//! layer.send_response(now, tx, resp)?;
//! while let Some(n) = mwi.poll_notify() { let id = layer.send_request(now, n.request, n.to)?; ... }
//! ```

use crate::events::MailboxEvent;
use crate::sip::dialog::{copy_record_route, new_tag, Dialog};
use crate::sip::message::{
    HeaderAccess, HeaderName, Headers, Method, NameAddr, Request, Response, TransportKind, Uri, Via,
};
use crate::sip::transaction::{new_branch, peer_for_uri, Peer};
use crate::voicemail::{Folder, VoicemailAccess};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// The event package we serve (RFC 3842).
pub const EVENT_PACKAGE: &str = "message-summary";
/// Content type of the NOTIFY body (RFC 3842 §4).
pub const CONTENT_TYPE: &str = "application/simple-message-summary";

/// Why a SUBSCRIBE is refused; [`MwiError::status`] gives the response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MwiError {
    /// The Event header names another package, or is missing (RFC 6665 §4.2.1: 489).
    #[error("event package {0:?} is not supported")]
    BadEvent(String),
    /// The Request-URI names no mailbox of ours (404).
    #[error("no mailbox {0:?}")]
    UnknownMailbox(String),
    /// `Expires` is below our minimum (RFC 6665 §4.2.1.1: 423 with Min-Expires).
    #[error("subscription interval {requested} s is shorter than {min} s")]
    IntervalTooBrief {
        /// Requested seconds.
        requested: u32,
        /// Our minimum.
        min: u32,
    },
    /// `Expires` is not a number (400).
    #[error("Expires is not a number: {0:?}")]
    BadExpires(String),
    /// `Accept` does not include `application/simple-message-summary` (406).
    #[error("Accept does not include application/simple-message-summary")]
    NotAcceptable,
    /// A header the subscription needs is missing or malformed (400).
    #[error("malformed SUBSCRIBE: {0}")]
    Malformed(String),
    /// An in-dialog SUBSCRIBE for a subscription we do not have (481, RFC 6665 §4.2.1.2).
    #[error("no such subscription")]
    NoSubscription,
    /// An in-dialog SUBSCRIBE with a CSeq lower than the last one (500, RFC 3261 §12.2.2).
    #[error("CSeq out of order")]
    CSeqOutOfOrder,
}

impl MwiError {
    /// Status code and reason phrase of the response that reports the error.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            MwiError::BadEvent(_) => (489, "Bad Event"),
            MwiError::UnknownMailbox(_) => (404, "Not Found"),
            MwiError::IntervalTooBrief { .. } => (423, "Interval Too Brief"),
            MwiError::BadExpires(_) | MwiError::Malformed(_) => (400, "Bad Request"),
            MwiError::NotAcceptable => (406, "Not Acceptable"),
            MwiError::NoSubscription => (481, "Subscription Does Not Exist"),
            MwiError::CSeqOutOfOrder => (500, "Server Internal Error"),
        }
    }
}

/// Counts of a mailbox, as RFC 3842 reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Messages in the `new` folder.
    pub new: u32,
    /// Messages in the `saved` folder.
    pub saved: u32,
}

impl Summary {
    /// The `application/simple-message-summary` body for `account` (RFC 3842 §5.2):
    /// `Messages-Waiting`, `Message-Account` and `Voice-Message: new/old (0/0)`.
    pub fn body(&self, account: &str) -> String {
        let waiting = if self.new > 0 { "yes" } else { "no" };
        format!(
            "Messages-Waiting: {waiting}\r\nMessage-Account: {account}\r\nVoice-Message: {}/{} (0/0)\r\n",
            self.new, self.saved
        )
    }
}

/// What the manager needs to know about mailboxes.
pub trait MailboxDirectory {
    /// The mailbox's counts now; `None` when there is no such mailbox.
    fn summary(&self, mailbox: &str) -> Option<Summary>;
    /// URIs that get unsolicited NOTIFYs for this mailbox (`MailboxConfig::notify`).
    fn notify_targets(&self, mailbox: &str) -> Vec<String>;
}

/// A [`MailboxDirectory`] over the voicemail store.
#[derive(Debug, Clone, Copy)]
pub struct VoicemailDirectory<'a>(pub &'a dyn VoicemailAccess);

impl MailboxDirectory for VoicemailDirectory<'_> {
    fn summary(&self, mailbox: &str) -> Option<Summary> {
        self.0.mailbox(mailbox)?;
        let count = |f| {
            self.0
                .messages(mailbox, f)
                .map(|m| u32::try_from(m.len()).unwrap_or(u32::MAX))
                .unwrap_or(0)
        };
        Some(Summary {
            new: count(Folder::New),
            saved: count(Folder::Saved),
        })
    }

    fn notify_targets(&self, mailbox: &str) -> Vec<String> {
        self.0
            .mailbox(mailbox)
            .map(|m| m.notify)
            .unwrap_or_default()
    }
}

/// Settings of the notifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MwiConfig {
    /// Host written in Via, Contact and `Message-Account` (the SIP public host).
    pub host: String,
    /// Our UDP port, if UDP is enabled.
    pub udp_port: Option<u16>,
    /// Our TCP port, if TCP is enabled.
    pub tcp_port: Option<u16>,
    /// Interval when a SUBSCRIBE has no `Expires` (RFC 6665 §4.2.1.1; 3600 s).
    pub default_expires: u32,
    /// Longest interval granted (3600 s).
    pub max_expires: u32,
    /// Shortest interval accepted; shorter (but not 0) gets 423 (60 s).
    pub min_expires: u32,
    /// `User-Agent` of our NOTIFYs.
    pub user_agent: String,
}

impl MwiConfig {
    /// Defaults (3600 / 3600 / 60 s) for a server reachable at `host`.
    pub fn new(host: &str, udp_port: Option<u16>, tcp_port: Option<u16>) -> Self {
        MwiConfig {
            host: host.to_string(),
            udp_port,
            tcp_port,
            default_expires: 3600,
            max_expires: 3600,
            min_expires: 60,
            user_agent: "caruso".into(),
        }
    }

    fn port(&self, t: TransportKind) -> u16 {
        match t {
            TransportKind::Udp => self.udp_port.or(self.tcp_port),
            _ => self.tcp_port.or(self.udp_port),
        }
        .unwrap_or(5060)
    }
}

/// Identifies one NOTIFY we sent; report its outcome with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NotifyId(pub u64);

/// A NOTIFY to send in a client non-INVITE transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingNotify {
    /// Report the transaction's outcome under this id.
    pub id: NotifyId,
    /// The request (Via with a fresh branch).
    pub request: Request,
    /// Where it goes.
    pub to: Peer,
}

/// Subscription key: Call-ID and our tag.
type SubKey = (String, String);

#[derive(Debug)]
struct Subscription {
    mailbox: String,
    dialog: Dialog,
    /// `Event` value as subscribed (with its `id` parameter), echoed in NOTIFYs.
    event: String,
    peer: Peer,
    expires_at: Instant,
    summary: Summary,
    in_flight: Option<NotifyId>,
    /// A change (or refresh) arrived while a NOTIFY was in flight.
    dirty: bool,
}

/// What a NOTIFY says about the subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubState {
    Active,
    Terminated,
}

/// The message-summary notifier of all mailboxes. See the module docs.
#[derive(Debug)]
pub struct MwiManager {
    config: MwiConfig,
    seed: u64,
    counter: u64,
    subs: HashMap<SubKey, Subscription>,
    /// In-flight NOTIFYs of subscriptions (unsolicited ones are not tracked).
    in_flight: HashMap<NotifyId, SubKey>,
    out: VecDeque<OutgoingNotify>,
}

impl MwiManager {
    /// A notifier with no subscriptions; tags, branches and Call-IDs are mixed from
    /// `seed` (draw it once from an RNG) and a counter.
    pub fn new(config: MwiConfig, seed: u64) -> Self {
        MwiManager {
            config,
            seed,
            counter: 0,
            subs: HashMap::new(),
            in_flight: HashMap::new(),
            out: VecDeque::new(),
        }
    }

    /// Number of live subscriptions.
    pub fn len(&self) -> usize {
        self.subs.len()
    }

    /// Whether no subscription is live.
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// Number of live subscriptions to `mailbox`.
    pub fn subscriptions_of(&self, mailbox: &str) -> usize {
        self.subs.values().filter(|s| s.mailbox == mailbox).count()
    }

    fn unique(&mut self) -> u64 {
        self.counter = self.counter.wrapping_add(1);
        self.seed.wrapping_add(self.counter)
    }

    /// Answers a SUBSCRIBE that reached us from `from` (new or in-dialog); queues the
    /// NOTIFY it calls for. Returns the response for its server transaction.
    pub fn handle_subscribe(
        &mut self,
        now: Instant,
        req: &Request,
        from: Peer,
        dir: &dyn MailboxDirectory,
    ) -> Response {
        let in_dialog = req.to_header().is_ok_and(|t| t.tag().is_some());
        let result = if in_dialog {
            self.refresh(now, req)
        } else {
            self.subscribe(now, req, from, dir)
        };
        match result {
            Ok(resp) => resp,
            Err(e) => {
                let (status, reason) = e.status();
                let tag = new_tag(self.unique());
                let mut r = Response::for_request(req, status, reason, Some(&tag));
                match e {
                    MwiError::BadEvent(_) => r.headers.push(
                        HeaderName::Other("Allow-Events".into()),
                        EVENT_PACKAGE.to_string(),
                    ),
                    MwiError::IntervalTooBrief { min, .. } => r
                        .headers
                        .push(HeaderName::Other("Min-Expires".into()), min.to_string()),
                    MwiError::NotAcceptable => r.headers.push(HeaderName::Accept, CONTENT_TYPE),
                    _ => {}
                }
                r
            }
        }
    }

    /// The Event value if it names our package.
    fn event_of(req: &Request) -> Result<String, MwiError> {
        let value = req.headers.get(&HeaderName::Event).unwrap_or("").trim();
        let package = value.split(';').next().unwrap_or("").trim();
        if package.eq_ignore_ascii_case(EVENT_PACKAGE) {
            Ok(value.to_string())
        } else {
            Err(MwiError::BadEvent(package.to_string()))
        }
    }

    /// Granted interval in seconds (0 = unsubscribe / fetch).
    fn granted(&self, req: &Request) -> Result<u32, MwiError> {
        let requested = match req.headers.get(&HeaderName::Expires).map(str::trim) {
            None => self.config.default_expires,
            Some(v) => match v.parse::<u64>() {
                Ok(n) => u32::try_from(n).unwrap_or(u32::MAX),
                Err(_) => return Err(MwiError::BadExpires(v.to_string())),
            },
        };
        if requested != 0 && requested < self.config.min_expires {
            return Err(MwiError::IntervalTooBrief {
                requested,
                min: self.config.min_expires,
            });
        }
        Ok(requested.min(self.config.max_expires))
    }

    fn check_accept(req: &Request) -> Result<(), MwiError> {
        let mut accepts = req.headers.get_all(&HeaderName::Accept).peekable();
        if accepts.peek().is_none() {
            return Ok(());
        }
        let ok = accepts.flat_map(|v| v.split(',')).any(|t| {
            let t = t.split(';').next().unwrap_or("").trim();
            t.eq_ignore_ascii_case(CONTENT_TYPE)
                || t == "*/*"
                || t.eq_ignore_ascii_case("application/*")
        });
        if ok {
            Ok(())
        } else {
            Err(MwiError::NotAcceptable)
        }
    }

    fn contact(&self, mailbox: &str, t: TransportKind) -> Uri {
        let mut params = Vec::new();
        if t != TransportKind::Udp {
            params.push((
                "transport".to_string(),
                Some(t.as_str().to_ascii_lowercase()),
            ));
        }
        Uri {
            scheme: "sip".into(),
            user: Some(mailbox.to_string()),
            host: self.config.host.clone(),
            port: Some(self.config.port(t)),
            params,
            headers: None,
        }
    }

    fn account(&self, mailbox: &str) -> String {
        format!("sip:{mailbox}@{}", self.config.host)
    }

    fn subscribe(
        &mut self,
        now: Instant,
        req: &Request,
        from: Peer,
        dir: &dyn MailboxDirectory,
    ) -> Result<Response, MwiError> {
        let event = Self::event_of(req)?;
        let mailbox = req.uri.user_name().unwrap_or("").to_string();
        let summary = dir
            .summary(&mailbox)
            .ok_or_else(|| MwiError::UnknownMailbox(mailbox.clone()))?;
        Self::check_accept(req)?;
        let expires = self.granted(req)?;
        let tag = new_tag(self.unique());
        let contact = self.contact(&mailbox, from.transport);
        let mut dialog =
            Dialog::new_uas(req, &tag, &contact).map_err(|e| MwiError::Malformed(e.to_string()))?;
        dialog.confirm();
        let mut resp = Response::for_request(req, 200, "OK", Some(&tag));
        copy_record_route(req, &mut resp);
        resp.headers
            .push(HeaderName::Contact, format!("<{contact}>"));
        resp.headers.push(HeaderName::Expires, expires.to_string());
        let key = (dialog.id.call_id.clone(), tag);
        let mut sub = Subscription {
            mailbox,
            dialog,
            event,
            peer: from,
            expires_at: now + Duration::from_secs(u64::from(expires)),
            summary,
            in_flight: None,
            dirty: false,
        };
        if expires == 0 {
            // A fetch (RFC 6665 §4.4.3): one NOTIFY with the state, no subscription.
            self.send_notify(now, &key, &mut sub, SubState::Terminated);
        } else {
            self.send_notify(now, &key, &mut sub, SubState::Active);
            self.subs.insert(key, sub);
        }
        Ok(resp)
    }

    fn refresh(&mut self, now: Instant, req: &Request) -> Result<Response, MwiError> {
        let call_id = req
            .call_id()
            .map_err(|e| MwiError::Malformed(e.to_string()))?;
        let tag = req
            .to_header()
            .ok()
            .and_then(|t| t.tag().map(str::to_string))
            .unwrap_or_default();
        let key = (call_id.to_string(), tag);
        let sub = self.subs.get(&key).ok_or(MwiError::NoSubscription)?;
        if !sub.dialog.matches(req) {
            return Err(MwiError::NoSubscription);
        }
        Self::event_of(req)?;
        let expires = self.granted(req)?;
        let Some(mut sub) = self.subs.remove(&key) else {
            return Err(MwiError::NoSubscription);
        };
        if let Err(e) = sub.dialog.handle_request(req) {
            self.subs.insert(key, sub);
            return Err(match e {
                crate::sip::dialog::Error::CSeqOutOfOrder { .. } => MwiError::CSeqOutOfOrder,
                _ => MwiError::NoSubscription,
            });
        }
        // SUBSCRIBE is a target refresh request (RFC 6665 §4.1.2.1).
        if let Some(c) = req
            .headers
            .get(&HeaderName::Contact)
            .and_then(|v| NameAddr::parse_list(v).ok())
            .and_then(|l| l.into_iter().next())
        {
            sub.dialog.remote_target = c.uri;
        }
        let mut resp = Response::for_request(req, 200, "OK", None);
        let contact = self.contact(&sub.mailbox, sub.peer.transport);
        resp.headers
            .push(HeaderName::Contact, format!("<{contact}>"));
        resp.headers.push(HeaderName::Expires, expires.to_string());
        sub.expires_at = now + Duration::from_secs(u64::from(expires));
        if expires == 0 {
            self.send_notify(now, &key, &mut sub, SubState::Terminated);
        } else {
            if sub.in_flight.is_some() {
                sub.dirty = true;
            } else {
                self.send_notify(now, &key, &mut sub, SubState::Active);
            }
            self.subs.insert(key, sub);
        }
        Ok(resp)
    }

    /// Builds and queues a NOTIFY in `sub`'s dialog.
    fn send_notify(&mut self, now: Instant, key: &SubKey, sub: &mut Subscription, state: SubState) {
        let id = NotifyId(self.unique());
        let t = sub.peer.transport;
        let via = Via {
            transport: t,
            host: self.config.host.clone(),
            port: Some(self.config.port(t)),
            branch: Some(new_branch(id.0)),
            received: None,
            rport: Some(None),
            params: Vec::new(),
        };
        let contact = self.contact(&sub.mailbox, t);
        let mut req = sub.dialog.create_request(Method::Notify, via, &contact);
        let sub_state = match state {
            SubState::Active => {
                let left = sub.expires_at.saturating_duration_since(now);
                // Round up, so a subscriber never hears less than it was granted.
                let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                format!("active;expires={secs}")
            }
            SubState::Terminated => "terminated;reason=timeout".to_string(),
        };
        self.finish_notify(&mut req.headers, &sub.event, &sub_state);
        req.body = Bytes::from(sub.summary.body(&self.account(&sub.mailbox)));
        let to = match t {
            TransportKind::Udp => peer_for_uri(sub.dialog.next_hop())
                .filter(|p| p.transport == TransportKind::Udp)
                .unwrap_or(sub.peer),
            _ => sub.peer,
        };
        sub.in_flight = Some(id);
        sub.dirty = false;
        if state == SubState::Active {
            self.in_flight.insert(id, key.clone());
        }
        self.out.push_back(OutgoingNotify {
            id,
            request: req,
            to,
        });
    }

    fn finish_notify(&self, h: &mut Headers, event: &str, sub_state: &str) {
        h.push(HeaderName::Event, event.to_string());
        h.push(
            HeaderName::Other("Subscription-State".into()),
            sub_state.to_string(),
        );
        h.push(HeaderName::UserAgent, self.config.user_agent.clone());
        h.push(HeaderName::ContentType, CONTENT_TYPE);
    }

    /// A mailbox changed: every subscription of it gets a NOTIFY with the event's counts,
    /// and each of its `notify` URIs an unsolicited one.
    pub fn handle_mailbox_event(
        &mut self,
        now: Instant,
        ev: &MailboxEvent,
        dir: &dyn MailboxDirectory,
    ) {
        let summary = Summary {
            new: ev.new_count,
            saved: ev.saved_count,
        };
        self.update(now, &ev.mailbox, summary, true);
        for target in dir.notify_targets(&ev.mailbox) {
            self.unsolicited(&ev.mailbox, &target, summary);
        }
    }

    /// Events were missed (the bus lagged): re-reads the counts of every subscribed
    /// mailbox and notifies those that changed.
    pub fn handle_resync(&mut self, now: Instant, dir: &dyn MailboxDirectory) {
        let mut mailboxes: Vec<String> = self.subs.values().map(|s| s.mailbox.clone()).collect();
        mailboxes.sort();
        mailboxes.dedup();
        for m in mailboxes {
            match dir.summary(&m) {
                Some(s) => self.update(now, &m, s, false),
                None => {
                    // The mailbox is gone (config reload): end its subscriptions.
                    let keys: Vec<SubKey> = self
                        .subs
                        .iter()
                        .filter(|(_, s)| s.mailbox == m)
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in keys {
                        self.terminate(now, &k);
                    }
                }
            }
        }
    }

    /// Sets the counts of `mailbox`'s subscriptions; notifies them (`always`, or when the
    /// counts changed).
    fn update(&mut self, now: Instant, mailbox: &str, summary: Summary, always: bool) {
        let mut keys: Vec<SubKey> = self
            .subs
            .iter()
            .filter(|(_, s)| s.mailbox == mailbox && (always || s.summary != summary))
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        for key in keys {
            let Some(mut sub) = self.subs.remove(&key) else {
                continue;
            };
            sub.summary = summary;
            if sub.in_flight.is_some() {
                sub.dirty = true;
            } else {
                self.send_notify(now, &key, &mut sub, SubState::Active);
            }
            self.subs.insert(key, sub);
        }
    }

    /// Sends the final NOTIFY of a subscription and removes it.
    fn terminate(&mut self, now: Instant, key: &SubKey) {
        if let Some(mut sub) = self.subs.remove(key) {
            if let Some(id) = sub.in_flight.take() {
                self.in_flight.remove(&id);
            }
            self.send_notify(now, key, &mut sub, SubState::Terminated);
        }
    }

    /// An out-of-dialog NOTIFY to `target` (RFC 3842 allows them; no subscription).
    /// Targets whose host is not an IP literal, or that do not parse, are skipped.
    fn unsolicited(&mut self, mailbox: &str, target: &str, summary: Summary) {
        let Ok(uri) = Uri::parse(target) else {
            tracing::warn!(target, "mwi: notify target is not a SIP URI");
            return;
        };
        let Some(to) = peer_for_uri(&uri) else {
            tracing::warn!(target, "mwi: notify target has no IP address");
            return;
        };
        let id = NotifyId(self.unique());
        let t = to.transport;
        let via = Via {
            transport: t,
            host: self.config.host.clone(),
            port: Some(self.config.port(t)),
            branch: Some(new_branch(id.0)),
            received: None,
            rport: Some(None),
            params: Vec::new(),
        };
        let mut h = Headers(Vec::with_capacity(12));
        h.push(HeaderName::Via, via.to_string());
        h.push(HeaderName::MaxForwards, "70");
        h.push(
            HeaderName::From,
            format!("<{}>;tag={}", self.account(mailbox), new_tag(id.0)),
        );
        let mut to_uri = uri.clone();
        to_uri.params.clear();
        to_uri.headers = None;
        h.push(HeaderName::To, format!("<{to_uri}>"));
        h.push(
            HeaderName::CallId,
            format!("{}@{}", new_tag(id.0 ^ 0x6d77_6900), self.config.host),
        );
        h.push(HeaderName::CSeq, "1 NOTIFY");
        h.push(
            HeaderName::Contact,
            format!("<{}>", self.contact(mailbox, t)),
        );
        self.finish_notify(&mut h, EVENT_PACKAGE, "active");
        let mut req_uri = uri;
        req_uri.headers = None;
        let request = Request {
            method: Method::Notify,
            uri: req_uri,
            headers: h,
            body: Bytes::from(summary.body(&self.account(mailbox))),
        };
        self.out.push_back(OutgoingNotify { id, request, to });
    }

    /// The final outcome of NOTIFY `id`: a status (408 for a timeout, 503 for a transport
    /// error). 2xx keeps the subscription (and sends a change that waited); anything from
    /// 300 up removes it (RFC 6665 §4.2.2). Provisional statuses are ignored.
    pub fn handle_notify_response(&mut self, now: Instant, id: NotifyId, status: u16) {
        if status < 200 {
            return;
        }
        let Some(key) = self.in_flight.remove(&id) else {
            return;
        };
        let Some(mut sub) = self.subs.remove(&key) else {
            return;
        };
        if sub.in_flight != Some(id) {
            self.subs.insert(key, sub);
            return;
        }
        sub.in_flight = None;
        if status >= 300 {
            tracing::info!(
                mailbox = %crate::call::redact(&sub.mailbox),
                sip.status = status,
                "mwi: NOTIFY failed, subscription removed"
            );
            return;
        }
        if sub.dirty {
            self.send_notify(now, &key, &mut sub, SubState::Active);
        }
        self.subs.insert(key, sub);
    }

    /// Ends every subscription whose interval is over (final NOTIFY, reason=timeout).
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due: Vec<SubKey> = self
            .subs
            .iter()
            .filter(|(_, s)| s.expires_at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        due.sort();
        for k in due {
            self.terminate(now, &k);
        }
    }

    /// The next NOTIFY to send.
    pub fn poll_notify(&mut self) -> Option<OutgoingNotify> {
        self.out.pop_front()
    }

    /// When `handle_timeout` must next be called (the earliest expiry).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.subs.values().map(|s| s.expires_at).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::MailboxChange;
    use crate::sip::message::{parse_datagram, SipMessage};
    use std::cell::RefCell;

    /// Mailboxes 200 and 201 with counts the test sets; 200 notifies one URI.
    #[derive(Default)]
    struct Fake {
        counts: RefCell<HashMap<String, Summary>>,
        targets: Vec<String>,
    }

    impl Fake {
        fn new() -> Fake {
            let f = Fake::default();
            f.counts
                .borrow_mut()
                .insert("200".into(), Summary { new: 0, saved: 0 });
            f.counts
                .borrow_mut()
                .insert("201".into(), Summary { new: 2, saved: 1 });
            f
        }
    }

    impl MailboxDirectory for Fake {
        fn summary(&self, mailbox: &str) -> Option<Summary> {
            self.counts.borrow().get(mailbox).copied()
        }
        fn notify_targets(&self, mailbox: &str) -> Vec<String> {
            if mailbox == "200" {
                self.targets.clone()
            } else {
                Vec::new()
            }
        }
    }

    fn peer() -> Peer {
        Peer {
            addr: "127.0.0.1:5070".parse().unwrap(),
            transport: TransportKind::Udp,
        }
    }

    fn manager() -> MwiManager {
        MwiManager::new(MwiConfig::new("127.0.0.1", Some(5060), None), 7)
    }

    /// A SUBSCRIBE from 127.0.0.1:5070; `to_tag` makes it in-dialog.
    fn subscribe(
        mailbox: &str,
        call_id: &str,
        cseq: u32,
        to_tag: Option<&str>,
        extra: &str,
    ) -> Request {
        let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        let text = format!(
            "SUBSCRIBE sip:{mailbox}@127.0.0.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{call_id}{cseq}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:phone@127.0.0.1>;tag=ph1\r\n\
             To: <sip:{mailbox}@127.0.0.1>{to_tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} SUBSCRIBE\r\n\
             Contact: <sip:phone@127.0.0.1:5070>\r\n\
             {extra}\
             Content-Length: 0\r\n\r\n"
        );
        match parse_datagram(text.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    fn ev_sub(mailbox: &str, call_id: &str, expires: u32) -> Request {
        subscribe(
            mailbox,
            call_id,
            1,
            None,
            &format!("Event: message-summary\r\nExpires: {expires}\r\n"),
        )
    }

    fn header<'a>(r: &'a Request, name: &str) -> Option<&'a str> {
        r.headers.get(&HeaderName::from_wire(name))
    }

    fn body(n: &OutgoingNotify) -> String {
        String::from_utf8(n.request.body.to_vec()).unwrap()
    }

    fn drain(m: &mut MwiManager) -> Vec<OutgoingNotify> {
        std::iter::from_fn(|| m.poll_notify()).collect()
    }

    fn event(mailbox: &str, new: u32, saved: u32) -> MailboxEvent {
        MailboxEvent {
            mailbox: mailbox.into(),
            change: MailboxChange::New,
            message_id: Some("m1".into()),
            new_count: new,
            saved_count: saved,
        }
    }

    #[test]
    fn subscribe_gets_200_and_an_immediate_notify_with_the_summary() {
        let mut m = manager();
        let dir = Fake::new();
        let t0 = Instant::now();
        let resp = m.handle_subscribe(t0, &ev_sub("201", "c1", 600), peer(), &dir);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.headers.get(&HeaderName::Expires), Some("600"));
        let tag = resp.to_header().unwrap().tag().unwrap().to_string();
        assert!(resp.headers.get(&HeaderName::Contact).is_some());
        let n = drain(&mut m);
        assert_eq!(n.len(), 1);
        let r = &n[0].request;
        assert_eq!(r.method, Method::Notify);
        assert_eq!(r.uri.to_string(), "sip:phone@127.0.0.1:5070");
        assert_eq!(n[0].to, peer());
        assert_eq!(r.from_header().unwrap().tag(), Some(tag.as_str()));
        assert_eq!(r.to_header().unwrap().tag(), Some("ph1"));
        assert_eq!(r.call_id().unwrap(), "c1");
        assert_eq!(header(r, "Event"), Some("message-summary"));
        assert_eq!(header(r, "Subscription-State"), Some("active;expires=600"));
        assert_eq!(header(r, "Content-Type"), Some(CONTENT_TYPE));
        assert!(r.top_via().unwrap().is_rfc3261_branch());
        assert_eq!(
            body(&n[0]),
            "Messages-Waiting: yes\r\nMessage-Account: sip:201@127.0.0.1\r\nVoice-Message: 2/1 (0/0)\r\n"
        );
        assert_eq!(m.len(), 1);
        assert_eq!(m.poll_timeout(), Some(t0 + Duration::from_secs(600)));
    }

    #[test]
    fn expires_defaults_to_3600_and_is_capped() {
        let mut m = manager();
        let dir = Fake::new();
        let now = Instant::now();
        let no_expires = subscribe("200", "c1", 1, None, "Event: message-summary\r\n");
        let r = m.handle_subscribe(now, &no_expires, peer(), &dir);
        assert_eq!(r.headers.get(&HeaderName::Expires), Some("3600"));
        let r = m.handle_subscribe(now, &ev_sub("200", "c2", 86_400), peer(), &dir);
        assert_eq!(r.headers.get(&HeaderName::Expires), Some("3600"));
        let n = drain(&mut m);
        assert_eq!(
            header(&n[1].request, "Subscription-State"),
            Some("active;expires=3600")
        );
        assert!(body(&n[0]).starts_with("Messages-Waiting: no\r\n"));
        assert!(body(&n[0]).ends_with("Voice-Message: 0/0 (0/0)\r\n"));
    }

    #[test]
    fn refusals_489_404_423_406_481() {
        let mut m = manager();
        let dir = Fake::new();
        let now = Instant::now();
        let presence = subscribe("200", "c1", 1, None, "Event: presence\r\n");
        let r = m.handle_subscribe(now, &presence, peer(), &dir);
        assert_eq!(r.status, 489);
        assert_eq!(
            r.headers.get(&HeaderName::from_wire("Allow-Events")),
            Some(EVENT_PACKAGE)
        );
        let none = subscribe("200", "c1", 1, None, "");
        assert_eq!(m.handle_subscribe(now, &none, peer(), &dir).status, 489);
        let r = m.handle_subscribe(now, &ev_sub("999", "c2", 600), peer(), &dir);
        assert_eq!(r.status, 404);
        let r = m.handle_subscribe(now, &ev_sub("200", "c3", 10), peer(), &dir);
        assert_eq!(r.status, 423);
        assert_eq!(
            r.headers.get(&HeaderName::from_wire("Min-Expires")),
            Some("60")
        );
        let wrong_accept = subscribe(
            "200",
            "c4",
            1,
            None,
            "Event: message-summary\r\nAccept: application/pidf+xml\r\n",
        );
        assert_eq!(
            m.handle_subscribe(now, &wrong_accept, peer(), &dir).status,
            406
        );
        let stranger = subscribe(
            "200",
            "c5",
            2,
            Some("nosuchtag"),
            "Event: message-summary\r\nExpires: 600\r\n",
        );
        assert_eq!(m.handle_subscribe(now, &stranger, peer(), &dir).status, 481);
        assert!(m.is_empty());
        assert!(
            drain(&mut m).is_empty(),
            "no NOTIFY for a refused SUBSCRIBE"
        );
    }

    /// Subscribes `mailbox` on Call-ID `cid`, answers the first NOTIFY 200; returns our tag.
    fn subscribed(
        m: &mut MwiManager,
        dir: &Fake,
        now: Instant,
        mailbox: &str,
        cid: &str,
    ) -> String {
        let r = m.handle_subscribe(now, &ev_sub(mailbox, cid, 600), peer(), dir);
        assert_eq!(r.status, 200);
        for n in drain(m) {
            m.handle_notify_response(now, n.id, 200);
        }
        r.to_header().unwrap().tag().unwrap().to_string()
    }

    #[test]
    fn refresh_updates_expiry_and_notifies_again() {
        let mut m = manager();
        let dir = Fake::new();
        let t0 = Instant::now();
        let tag = subscribed(&mut m, &dir, t0, "200", "c1");
        let t1 = t0 + Duration::from_secs(500);
        let refresh = subscribe(
            "200",
            "c1",
            2,
            Some(&tag),
            "Event: message-summary\r\nExpires: 1200\r\n",
        );
        let r = m.handle_subscribe(t1, &refresh, peer(), &dir);
        assert_eq!(r.status, 200);
        assert_eq!(r.headers.get(&HeaderName::Expires), Some("1200"));
        assert_eq!(m.poll_timeout(), Some(t1 + Duration::from_secs(1200)));
        let n = drain(&mut m);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].request.cseq().unwrap().seq, 2, "a new CSeq");
        assert_eq!(
            header(&n[0].request, "Subscription-State"),
            Some("active;expires=1200")
        );
        // the old expiry passes without effect
        m.handle_timeout(t0 + Duration::from_secs(601));
        assert_eq!(m.len(), 1);
        // an old CSeq is refused
        let stale = subscribe(
            "200",
            "c1",
            1,
            Some(&tag),
            "Event: message-summary\r\nExpires: 600\r\n",
        );
        assert_eq!(m.handle_subscribe(t1, &stale, peer(), &dir).status, 500);
        // too brief a refresh keeps the subscription as it is
        let brief = subscribe(
            "200",
            "c1",
            3,
            Some(&tag),
            "Event: message-summary\r\nExpires: 5\r\n",
        );
        assert_eq!(m.handle_subscribe(t1, &brief, peer(), &dir).status, 423);
        assert_eq!(m.poll_timeout(), Some(t1 + Duration::from_secs(1200)));
    }

    #[test]
    fn unsubscribe_sends_terminated_notify_and_removes() {
        let mut m = manager();
        let dir = Fake::new();
        let t0 = Instant::now();
        let tag = subscribed(&mut m, &dir, t0, "201", "c1");
        let unsub = subscribe(
            "201",
            "c1",
            2,
            Some(&tag),
            "Event: message-summary\r\nExpires: 0\r\n",
        );
        let r = m.handle_subscribe(t0, &unsub, peer(), &dir);
        assert_eq!(r.status, 200);
        assert_eq!(r.headers.get(&HeaderName::Expires), Some("0"));
        let n = drain(&mut m);
        assert_eq!(n.len(), 1);
        assert_eq!(
            header(&n[0].request, "Subscription-State"),
            Some("terminated;reason=timeout")
        );
        assert!(body(&n[0]).contains("Voice-Message: 2/1"));
        assert!(m.is_empty());
        assert_eq!(m.poll_timeout(), None);
        // a later refresh finds nothing
        let again = subscribe(
            "201",
            "c1",
            3,
            Some(&tag),
            "Event: message-summary\r\nExpires: 600\r\n",
        );
        assert_eq!(m.handle_subscribe(t0, &again, peer(), &dir).status, 481);
    }

    #[test]
    fn expiry_without_refresh_terminates_with_reason_timeout() {
        let mut m = manager();
        let dir = Fake::new();
        let t0 = Instant::now();
        subscribed(&mut m, &dir, t0, "200", "c1");
        m.handle_timeout(t0 + Duration::from_secs(599));
        assert_eq!(m.len(), 1);
        assert!(drain(&mut m).is_empty());
        m.handle_timeout(t0 + Duration::from_secs(600));
        assert!(m.is_empty());
        let n = drain(&mut m);
        assert_eq!(n.len(), 1);
        assert_eq!(
            header(&n[0].request, "Subscription-State"),
            Some("terminated;reason=timeout")
        );
    }

    #[test]
    fn mailbox_event_notifies_every_subscriber_of_that_mailbox_only() {
        let mut m = manager();
        let dir = Fake::new();
        let t0 = Instant::now();
        let a = subscribed(&mut m, &dir, t0, "200", "a");
        let b = subscribed(&mut m, &dir, t0, "200", "b");
        subscribed(&mut m, &dir, t0, "201", "c");
        m.handle_mailbox_event(t0 + Duration::from_secs(10), &event("200", 1, 3), &dir);
        let n = drain(&mut m);
        assert_eq!(n.len(), 2);
        let mut tags: Vec<_> = n
            .iter()
            .map(|x| x.request.from_header().unwrap().tag().unwrap().to_string())
            .collect();
        tags.sort();
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(tags, want);
        for x in &n {
            assert_eq!(x.request.cseq().unwrap().seq, 2);
            assert_eq!(
                body(x),
                "Messages-Waiting: yes\r\nMessage-Account: sip:200@127.0.0.1\r\nVoice-Message: 1/3 (0/0)\r\n"
            );
            assert_eq!(
                header(&x.request, "Subscription-State"),
                Some("active;expires=590")
            );
        }
        m.handle_mailbox_event(t0, &event("999", 1, 0), &dir);
        assert!(drain(&mut m).is_empty());
    }

    #[test]
    fn one_notify_in_flight_and_the_latest_counts_follow() {
        let mut m = manager();
        let dir = Fake::new();
        let t0 = Instant::now();
        subscribed(&mut m, &dir, t0, "200", "a");
        m.handle_mailbox_event(t0, &event("200", 1, 0), &dir);
        let first = drain(&mut m);
        assert_eq!(first.len(), 1);
        m.handle_mailbox_event(t0, &event("200", 2, 0), &dir);
        m.handle_mailbox_event(t0, &event("200", 3, 0), &dir);
        assert!(drain(&mut m).is_empty(), "waits for the answer");
        m.handle_notify_response(t0, first[0].id, 200);
        let next = drain(&mut m);
        assert_eq!(next.len(), 1);
        assert!(body(&next[0]).contains("Voice-Message: 3/0"));
        assert_eq!(next[0].request.cseq().unwrap().seq, 3);
        m.handle_notify_response(t0, next[0].id, 200);
        assert!(drain(&mut m).is_empty());
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn notify_answered_481_or_timed_out_removes_the_subscription() {
        let mut m = manager();
        let dir = Fake::new();
        let t0 = Instant::now();
        m.handle_subscribe(t0, &ev_sub("200", "a", 600), peer(), &dir);
        m.handle_subscribe(t0, &ev_sub("200", "b", 600), peer(), &dir);
        let n = drain(&mut m);
        m.handle_notify_response(t0, n[0].id, 100);
        assert_eq!(m.len(), 2, "a provisional changes nothing");
        m.handle_notify_response(t0, n[0].id, 481);
        assert_eq!(m.len(), 1);
        m.handle_notify_response(t0, n[1].id, 408);
        assert!(m.is_empty());
        m.handle_mailbox_event(t0, &event("200", 1, 0), &dir);
        assert!(drain(&mut m).is_empty());
    }

    #[test]
    fn unsolicited_notify_to_configured_targets_on_every_change() {
        let mut m = manager();
        let mut dir = Fake::new();
        dir.targets = vec![
            "sip:200@127.0.0.1:5090".into(),
            "sip:200@phone.example.com".into(),
            "not a uri".into(),
        ];
        let t0 = Instant::now();
        m.handle_mailbox_event(t0, &event("200", 1, 0), &dir);
        let n = drain(&mut m);
        assert_eq!(n.len(), 1, "only the IP-literal target");
        let r = &n[0].request;
        assert_eq!(n[0].to.addr, "127.0.0.1:5090".parse().unwrap());
        assert_eq!(r.uri.to_string(), "sip:200@127.0.0.1:5090");
        assert!(r.to_header().unwrap().tag().is_none());
        assert!(r.from_header().unwrap().tag().is_some());
        assert_eq!(r.cseq().unwrap().seq, 1);
        assert_eq!(header(r, "Event"), Some("message-summary"));
        assert!(body(&n[0]).starts_with("Messages-Waiting: yes\r\n"));
        m.handle_mailbox_event(t0, &event("200", 0, 1), &dir);
        let again = drain(&mut m);
        assert_eq!(again.len(), 1);
        assert_ne!(again[0].request.call_id(), n[0].request.call_id());
        assert!(body(&again[0]).starts_with("Messages-Waiting: no\r\n"));
        // responses to unsolicited NOTIFYs are ignored
        m.handle_notify_response(t0, again[0].id, 404);
        assert!(m.is_empty());
    }

    #[test]
    fn fetch_with_expires_0_notifies_once_and_keeps_nothing() {
        let mut m = manager();
        let dir = Fake::new();
        let r = m.handle_subscribe(Instant::now(), &ev_sub("201", "f", 0), peer(), &dir);
        assert_eq!(r.status, 200);
        let n = drain(&mut m);
        assert_eq!(n.len(), 1);
        assert_eq!(
            header(&n[0].request, "Subscription-State"),
            Some("terminated;reason=timeout")
        );
        assert!(m.is_empty());
    }

    #[test]
    fn resync_notifies_only_changed_mailboxes() {
        let mut m = manager();
        let dir = Fake::new();
        let t0 = Instant::now();
        subscribed(&mut m, &dir, t0, "200", "a");
        subscribed(&mut m, &dir, t0, "201", "b");
        dir.counts
            .borrow_mut()
            .insert("200".into(), Summary { new: 4, saved: 0 });
        m.handle_resync(t0, &dir);
        let n = drain(&mut m);
        assert_eq!(n.len(), 1);
        assert!(body(&n[0]).contains("Message-Account: sip:200@"));
        assert!(body(&n[0]).contains("Voice-Message: 4/0"));
    }

    #[test]
    fn tcp_subscriber_gets_notify_on_its_connection() {
        let mut m = MwiManager::new(MwiConfig::new("127.0.0.1", Some(5060), Some(5061)), 1);
        let dir = Fake::new();
        let tcp = Peer {
            addr: "127.0.0.1:40000".parse().unwrap(),
            transport: TransportKind::Tcp,
        };
        let r = m.handle_subscribe(Instant::now(), &ev_sub("200", "t", 600), tcp, &dir);
        assert_eq!(
            r.headers.get(&HeaderName::Contact),
            Some("<sip:200@127.0.0.1:5061;transport=tcp>")
        );
        let n = drain(&mut m);
        assert_eq!(n[0].to, tcp);
        assert_eq!(
            n[0].request.top_via().unwrap().transport,
            TransportKind::Tcp
        );
    }
}
