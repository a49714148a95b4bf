//! SIP transactions (RFC 3261 §17, RFC 6026), sans-IO.
//!
//! Four state machines, each usable alone with the same face (`new`, `handle_*`,
//! `poll_transmit`, `poll_event`, `poll_timeout`): [`ClientInvite`], [`ClientNonInvite`],
//! [`ServerInvite`], [`ServerNonInvite`]. [`TransactionLayer`] composes them for one call
//! (or for the endpoint):
//!
//! - every received message goes to [`TransactionLayer::handle_incoming`], which matches
//!   it to a transaction (§17.1.3 / §17.2.3: branch + sent-by + method, ACK to its
//!   INVITE, CANCEL to the INVITE it cancels; RFC 2543 matching for branches without the
//!   `z9hG4bK` cookie) and says what the TU must do ([`Incoming`]);
//! - the TU answers with [`TransactionLayer::send_response`] and starts requests with
//!   [`TransactionLayer::send_request`];
//! - the caller drains [`TransactionLayer::poll_transmit`] and
//!   [`TransactionLayer::poll_event`] after every input and calls
//!   [`TransactionLayer::handle_timeout`] at [`TransactionLayer::poll_timeout`].
//!
//! Time is always an input; nothing here reads a clock or an unseeded RNG.
//!
//! Beyond RFC 3261's machines the layer gives the TU, for free: a `100 Trying` for every
//! new INVITE; the 2xx-to-INVITE retransmissions until the ACK (§13.3.1.4, as RFC 6026's
//! `Accepted` state) with [`TransactionEvent::AckTimeout`] after 64*T1; every 2xx
//! retransmission reaching the UAC's TU for 64*T1 (Timer M) so it can re-send its ACK; the
//! Via `received` / `rport` stamping of §18.2.1 / RFC 3581 on new server transactions.
//!
//! ```text
//! let mut layer = TransactionLayer::new(TimerConfig::default());
//! match layer.handle_incoming(now, msg, from) {
//!     Incoming::NewRequest(id, req) => {
//!         let ok = Response::for_request(&req, 200, "OK", Some("tag1"));
//!         layer.send_response(now, id, ok)?;
//!     }
//!     _ => {}
//! }
//! while let Some(t) = layer.poll_transmit() { socket.send_to(&t.message.to_bytes(), t.to.addr); }
//! ```

mod client_invite;
mod client_non_invite;
mod common;
mod server_invite;
mod server_non_invite;
#[cfg(test)]
mod tests;

pub use client_invite::{ClientInvite, ClientInviteState};
pub use client_non_invite::{ClientNonInvite, ClientNonInviteState};
pub use common::MachineEvent;
pub use server_invite::{ServerInvite, ServerInviteState};
pub use server_non_invite::{ServerNonInvite, ServerNonInviteState};

use crate::sip::message::{
    HeaderAccess, HeaderName, Method, ParseError, Request, Response, SipMessage, TransportKind, Via,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// RFC 3261 timer base values (§17.1.1.1, Table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses (4 s).
    pub t2: Duration,
    /// Maximum duration a message remains in the network (5 s).
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// The RFC 3261 transaction timers (and RFC 6026's L and M); durations come from
/// [`TimerConfig::duration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// INVITE request retransmit (client, unreliable only): T1, doubling.
    A,
    /// INVITE transaction timeout (client): 64*T1.
    B,
    /// Wait for response retransmits (client INVITE): >= 32 s unreliable, 0 reliable.
    D,
    /// Non-INVITE request retransmit (client, unreliable only): T1 doubling to T2.
    E,
    /// Non-INVITE transaction timeout (client): 64*T1.
    F,
    /// INVITE response retransmit (server, unreliable only): T1 doubling to T2.
    G,
    /// Wait for ACK receipt (server INVITE): 64*T1.
    H,
    /// Wait for ACK retransmits (server INVITE): T4 unreliable, 0 reliable.
    I,
    /// Wait for non-INVITE request retransmits (server): 64*T1 unreliable, 0 reliable.
    J,
    /// Wait for response retransmits (client non-INVITE): T4 unreliable, 0 reliable.
    K,
    /// RFC 6026: server INVITE `Accepted` (2xx retransmits, wait for ACK): 64*T1.
    L,
    /// RFC 6026: client INVITE `Accepted` (2xx retransmits reach the TU): 64*T1.
    M,
}

/// A remote transport address and the transport it is reached over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// IP address and port.
    pub addr: SocketAddr,
    /// UDP, TCP or TLS.
    pub transport: TransportKind,
}

/// A message to send to a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: Peer,
    /// The message.
    pub message: SipMessage,
}

/// Identifies a server transaction of one [`TransactionLayer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerTxId(pub u64);

/// Identifies a client transaction of one [`TransactionLayer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTxId(pub u64);

/// Either kind of transaction id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxId {
    /// A server transaction.
    Server(ServerTxId),
    /// A client transaction.
    Client(ClientTxId),
}

/// What went wrong in a transaction operation; each variant names the rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The id names no live transaction (never created, or already terminated).
    #[error("no live transaction {0:?}")]
    UnknownTransaction(TxId),
    /// A final response was already sent (RFC 3261 §17.2.1 / §17.2.2 allow one).
    #[error("final response {sent} already sent, cannot send {attempted}")]
    FinalAlreadySent {
        /// Status of the final response sent earlier.
        sent: u16,
        /// Status the TU tried to send.
        attempted: u16,
    },
    /// A response status outside 100..=699 (RFC 3261 §21).
    #[error("status {0} is outside 100..=699")]
    InvalidStatus(u16),
    /// A request without a Via branch (RFC 3261 §8.1.1.7).
    #[error("request has no Via branch parameter")]
    MissingBranch,
    /// CSeq method differs from the request method (RFC 3261 §8.1.1.5).
    #[error("CSeq method {cseq} differs from request method {method}")]
    CSeqMethodMismatch {
        /// Method of the request line.
        method: String,
        /// Method in CSeq.
        cseq: String,
    },
    /// ACK never starts a client transaction (RFC 3261 §17.1.1.3, §13.2.2.4): the
    /// transaction sends the ACK for a non-2xx, the TU sends the ACK for a 2xx with
    /// [`TransactionLayer::send_stateless`].
    #[error("ACK is not sent in a client transaction")]
    AckIsNotATransaction,
    /// A client transaction with this branch and method is already live (§8.1.1.7:
    /// branches are unique per transaction).
    #[error("branch {0} already used by a live client transaction")]
    DuplicateBranch(String),
    /// A header the transaction layer needs is missing or malformed.
    #[error(transparent)]
    Parse(#[from] ParseError),
}

/// What a received message means for the TU (from [`TransactionLayer::handle_incoming`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A new server transaction; the TU must answer it with `send_response`. Its top Via
    /// carries `received` / `rport` as §18.2.1 / RFC 3581 say, so
    /// `Response::for_request` copies them.
    NewRequest(ServerTxId, Request),
    /// An ACK that no INVITE server transaction absorbed: the ACK for a 2xx, for the
    /// dialog (the layer has already stopped that 2xx's retransmissions).
    Ack(Request),
    /// A CANCEL (its own server transaction `cancel`). The TU answers it 200 (or 481 when
    /// `invite` is `None`) and, when `invite` is some, answers that INVITE 487
    /// (`send_response` returns `FinalAlreadySent` if it was already answered).
    Cancel {
        /// The CANCEL's server transaction.
        cancel: ServerTxId,
        /// The INVITE server transaction it matches (§9.2), if any is live.
        invite: Option<ServerTxId>,
        /// The CANCEL request.
        request: Request,
    },
    /// A response a client transaction passes up: provisionals, the first final, and for
    /// INVITE every 2xx (retransmissions and forks too, so the TU re-sends its ACK).
    Response(ClientTxId, Response),
    /// A retransmission absorbed by its transaction (which may have re-sent its last
    /// response or its ACK).
    Absorbed,
    /// A response matching no client transaction: drop it (and log).
    StrayResponse(Response),
    /// A message whose Via or CSeq the layer cannot use; a request deserves a stateless
    /// 400 (`send_stateless`), a response is dropped.
    Invalid {
        /// The message as received.
        message: SipMessage,
        /// What is wrong with it.
        error: Error,
    },
}

/// Things that happen on the layer's own (timers), drained with `poll_event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionEvent {
    /// Timer B or F fired: no final response; the TU treats it as a 408.
    Timeout(ClientTxId),
    /// Timer H fired: no ACK arrived for our 300-699 final to an INVITE.
    ServerTimeout(ServerTxId),
    /// No ACK arrived within 64*T1 for our 2xx to an INVITE (§13.3.1.4): the TU should
    /// end the dialog with BYE.
    AckTimeout(ServerTxId),
    /// The transport could not send for this transaction (§17.1.4 / §17.2.4, reported
    /// through [`TransactionLayer::handle_transport_error`]); the transaction is gone and
    /// a client TU treats it as a 503.
    TransportError(TxId),
    /// The transaction ended and was removed.
    Terminated(TxId),
}

/// A fresh RFC 3261 branch: the magic cookie `z9hG4bK` and 16 hex digits mixed from
/// `unique` (a counter or a random number the caller draws from a seeded RNG). Distinct
/// inputs give distinct branches.
pub fn new_branch(unique: u64) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(23);
    s.push_str("z9hG4bK");
    let _ = write!(s, "{:016x}", mix64(unique));
    s
}

/// splitmix64's finaliser: a bijection on u64 that spreads counter values.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn default_port(transport: TransportKind) -> u16 {
    match transport {
        TransportKind::Tls => 5061,
        TransportKind::Udp | TransportKind::Tcp => 5060,
    }
}

fn host_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Where a response to a request whose top Via is `via`, received from `from`, goes
/// (RFC 3261 §18.2.2, RFC 3581 §4):
///
/// - reliable transport: back to `from` (the same connection);
/// - unreliable with `rport`: the `received` address (else the source address) and the
///   `rport` port (else the source port);
/// - otherwise: the `received` address, else sent-by if it is an IP address, else the
///   source address; port sent-by's port, else 5060 (5061 for TLS).
///
/// `maddr` (multicast) is not honoured; sent-by host names are not resolved (sans-IO),
/// the source address stands in for them.
pub fn response_destination(via: &Via, from: Peer) -> Peer {
    if from.transport.is_reliable() {
        return from;
    }
    let ip = via
        .received
        .or_else(|| host_ip(&via.host))
        .unwrap_or(from.addr.ip());
    let addr = match via.rport {
        Some(rport) => SocketAddr::new(
            via.received.unwrap_or(from.addr.ip()),
            rport.unwrap_or(from.addr.port()),
        ),
        None => SocketAddr::new(ip, via.port.unwrap_or(default_port(via.transport))),
    };
    Peer {
        addr,
        transport: from.transport,
    }
}

/// The peer a request to `uri` goes to when its host is an IP literal (RFC 3263 without
/// DNS): port from the URI, else 5060 (5061 for `sips:`); transport from `;transport=`,
/// else TLS for `sips:`, else UDP. `None` for a host name (the caller resolves it) or an
/// unknown transport.
pub fn peer_for_uri(uri: &crate::sip::message::Uri) -> Option<Peer> {
    let ip = host_ip(&uri.host)?;
    let sips = uri.scheme.eq_ignore_ascii_case("sips");
    let transport = match uri.param("transport").flatten() {
        None if sips => TransportKind::Tls,
        None => TransportKind::Udp,
        Some(t) if t.eq_ignore_ascii_case("udp") && !sips => TransportKind::Udp,
        Some(t) if t.eq_ignore_ascii_case("tcp") && !sips => TransportKind::Tcp,
        Some(t) if t.eq_ignore_ascii_case("tls") || t.eq_ignore_ascii_case("tcp") => {
            TransportKind::Tls
        }
        Some(_) => return None,
    };
    let port = uri.port.unwrap_or(default_port(transport));
    Some(Peer {
        addr: SocketAddr::new(ip, port),
        transport,
    })
}

/// §18.2.1 / RFC 3581: adds `received` when sent-by is not the source address (always
/// when `rport` was requested) and fills an empty `rport` with the source port. Rewrites
/// the request's top Via when it changes; returns the (possibly updated) top Via.
fn stamp_via(request: &mut Request, mut via: Via, from: Peer) -> Via {
    let src = from.addr.ip();
    let mut changed = false;
    if (host_ip(&via.host) != Some(src) || via.rport.is_some()) && via.received != Some(src) {
        via.received = Some(src);
        changed = true;
    }
    if via.rport == Some(None) {
        via.rport = Some(Some(from.addr.port()));
        changed = true;
    }
    if changed {
        if let Some(h) = request
            .headers
            .0
            .iter_mut()
            .find(|h| h.name == HeaderName::Via)
        {
            let rest = common::split_first_via(&h.value).1;
            h.value = format!("{via}{rest}");
        }
    }
    via
}

/// Builds the CANCEL for a client INVITE (RFC 3261 §9.1): same Request-URI, Call-ID,
/// From, To, Route and top Via (so the same branch), CSeq number with method CANCEL.
/// Send it with `send_request` once a provisional response has arrived.
pub fn create_cancel(invite: &Request) -> Request {
    let mut headers = crate::sip::message::Headers(Vec::with_capacity(8));
    common::copy_for_cancel_or_ack(invite, &mut headers);
    if let Some(to) = invite.headers.get(&HeaderName::To) {
        headers.push(HeaderName::To, to);
    }
    let seq = common::cseq_number(invite);
    headers.push(HeaderName::CSeq, format!("{seq} CANCEL"));
    Request {
        method: Method::Cancel,
        uri: invite.uri.clone(),
        headers,
        body: bytes::Bytes::new(),
    }
}

#[allow(clippy::large_enum_variant)] // see ClientMachine
#[derive(Debug)]
enum ServerMachine {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

#[derive(Debug)]
struct ServerEntry {
    key: String,
    sent_by_host: String,
    sent_by_port: u16,
    method: Method,
    machine: ServerMachine,
}

// Both variants are about 1 KiB (the request and two inline transmit slots); boxing
// would only add an allocation per transaction.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum ClientMachine {
    Invite(ClientInvite),
    NonInvite(ClientNonInvite),
}

#[derive(Debug)]
struct ClientEntry {
    branch: String,
    method: Method,
    machine: ClientMachine,
}

macro_rules! on_machine {
    ($m:expr, $x:ident => $body:expr) => {
        match $m {
            ServerMachine::Invite($x) => $body,
            ServerMachine::NonInvite($x) => $body,
        }
    };
}

macro_rules! on_client {
    ($m:expr, $x:ident => $body:expr) => {
        match $m {
            ClientMachine::Invite($x) => $body,
            ClientMachine::NonInvite($x) => $body,
        }
    };
}

/// All transactions of one call (or of the endpoint), sans-IO. See the module docs.
#[derive(Debug)]
pub struct TransactionLayer {
    timers: TimerConfig,
    next_id: u64,
    servers: BTreeMap<u64, ServerEntry>,
    clients: BTreeMap<u64, ClientEntry>,
    /// Branch (or RFC 2543 key) -> server transactions using it (INVITE + CANCEL share one).
    server_index: HashMap<String, Vec<u64>>,
    /// Branch -> client transactions using it (INVITE + CANCEL share one).
    client_index: HashMap<String, Vec<u64>>,
    /// INVITE server transactions in `Accepted` that wait for the ACK of their 2xx.
    awaiting_ack: Vec<u64>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TransactionEvent>,
    retired_retransmissions: u64,
    due: Vec<u64>,
}

impl TransactionLayer {
    /// An empty layer using `timers`.
    pub fn new(timers: TimerConfig) -> Self {
        Self {
            timers,
            next_id: 1,
            servers: BTreeMap::new(),
            clients: BTreeMap::new(),
            server_index: HashMap::new(),
            client_index: HashMap::new(),
            awaiting_ack: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            retired_retransmissions: 0,
            due: Vec::new(),
        }
    }

    /// The timer configuration.
    pub fn timers(&self) -> TimerConfig {
        self.timers
    }

    /// Feeds a received message (see [`Incoming`] for what the TU must do next).
    pub fn handle_incoming(&mut self, now: Instant, msg: SipMessage, from: Peer) -> Incoming {
        match msg {
            SipMessage::Request(r) => self.incoming_request(now, r, from),
            SipMessage::Response(r) => self.incoming_response(now, r),
        }
    }

    fn incoming_request(&mut self, now: Instant, mut req: Request, from: Peer) -> Incoming {
        let (via, seq) = match request_ids(&req) {
            Ok(v) => v,
            Err(error) => {
                return Incoming::Invalid {
                    message: SipMessage::Request(req),
                    error,
                }
            }
        };
        let rfc2543;
        let key: &str = match via.branch.as_deref() {
            Some(b) if via.is_rfc3261_branch() => b,
            _ => {
                rfc2543 = rfc2543_key(&req, seq);
                &rfc2543
            }
        };
        let port = via.port.unwrap_or(default_port(via.transport));
        let find = |this: &Self, method: &Method| -> Option<u64> {
            this.server_index.get(key).and_then(|ids| {
                ids.iter().copied().find(|id| {
                    this.servers.get(id).is_some_and(|e| {
                        &e.method == method
                            && e.sent_by_port == port
                            && e.sent_by_host.eq_ignore_ascii_case(&via.host)
                    })
                })
            })
        };
        match req.method {
            Method::Ack => {
                if let Some(id) = find(self, &Method::Invite) {
                    let up = match self.servers.get_mut(&id).map(|e| &mut e.machine) {
                        Some(ServerMachine::Invite(m)) => m.handle_request(now, &req),
                        _ => false,
                    };
                    self.after_server(id);
                    return if up {
                        Incoming::Ack(req)
                    } else {
                        Incoming::Absorbed
                    };
                }
                // ACK for a 2xx: its own branch; match the dialog by Call-ID + CSeq.
                if let Ok(call_id) = req.call_id() {
                    let servers = &mut self.servers;
                    self.awaiting_ack.retain(|id| {
                        match servers.get_mut(id).map(|e| &mut e.machine) {
                            Some(ServerMachine::Invite(m)) if m.awaits_ack_for(call_id, seq) => {
                                m.handle_2xx_ack();
                                false
                            }
                            Some(_) => true,
                            None => false,
                        }
                    });
                }
                Incoming::Ack(req)
            }
            Method::Cancel => {
                if let Some(id) = find(self, &Method::Cancel) {
                    if let Some(ServerMachine::NonInvite(m)) =
                        self.servers.get_mut(&id).map(|e| &mut e.machine)
                    {
                        m.handle_request(now, &req);
                    }
                    self.after_server(id);
                    return Incoming::Absorbed;
                }
                let invite = find(self, &Method::Invite).map(ServerTxId);
                let key = key.to_owned();
                let cancel = self.new_server(now, key, &mut req, via, from);
                Incoming::Cancel {
                    cancel,
                    invite,
                    request: req,
                }
            }
            _ => {
                if let Some(id) = find(self, &req.method) {
                    match self.servers.get_mut(&id).map(|e| &mut e.machine) {
                        Some(ServerMachine::Invite(m)) => {
                            m.handle_request(now, &req);
                        }
                        Some(ServerMachine::NonInvite(m)) => m.handle_request(now, &req),
                        None => {}
                    }
                    self.after_server(id);
                    return Incoming::Absorbed;
                }
                let key = key.to_owned();
                let id = self.new_server(now, key, &mut req, via, from);
                Incoming::NewRequest(id, req)
            }
        }
    }

    fn new_server(
        &mut self,
        now: Instant,
        key: String,
        req: &mut Request,
        via: Via,
        from: Peer,
    ) -> ServerTxId {
        let sent_by_port = via.port.unwrap_or(default_port(via.transport));
        let via = stamp_via(req, via, from);
        let to = response_destination(&via, from);
        let id = self.next_id;
        self.next_id += 1;
        let machine = if req.method == Method::Invite {
            let mut m = ServerInvite::new(now, req.clone(), to, self.timers);
            // §17.2.1: a 100 Trying right away, so the UAC stops Timer A.
            let trying = Response::for_request(req, 100, "Trying", None);
            let _ = m.send_response(now, trying);
            ServerMachine::Invite(m)
        } else {
            ServerMachine::NonInvite(ServerNonInvite::new(now, req.clone(), to, self.timers))
        };
        self.server_index.entry(key.clone()).or_default().push(id);
        self.servers.insert(
            id,
            ServerEntry {
                key,
                sent_by_host: via.host,
                sent_by_port,
                method: req.method.clone(),
                machine,
            },
        );
        self.after_server(id);
        ServerTxId(id)
    }

    fn incoming_response(&mut self, now: Instant, resp: Response) -> Incoming {
        let via = match resp.top_via() {
            Ok(v) => v,
            Err(e) => {
                return Incoming::Invalid {
                    message: SipMessage::Response(resp),
                    error: e.into(),
                }
            }
        };
        let cseq = match resp.cseq() {
            Ok(c) => c,
            Err(e) => {
                return Incoming::Invalid {
                    message: SipMessage::Response(resp),
                    error: e.into(),
                }
            }
        };
        let Some(branch) = via.branch.as_deref() else {
            return Incoming::StrayResponse(resp);
        };
        let id = self.client_index.get(branch).and_then(|ids| {
            ids.iter().copied().find(|id| {
                self.clients
                    .get(id)
                    .is_some_and(|e| e.method == cseq.method)
            })
        });
        let Some(id) = id else {
            return Incoming::StrayResponse(resp);
        };
        let up = match self.clients.get_mut(&id).map(|e| &mut e.machine) {
            Some(ClientMachine::Invite(m)) => m.handle_response(now, &resp),
            Some(ClientMachine::NonInvite(m)) => m.handle_response(now, &resp),
            None => false,
        };
        self.after_client(id);
        if up {
            Incoming::Response(ClientTxId(id), resp)
        } else {
            Incoming::Absorbed
        }
    }

    /// The TU's response (1xx..6xx) on a server transaction; it goes where
    /// [`response_destination`] says. A 2xx to an INVITE is retransmitted until its ACK.
    pub fn send_response(
        &mut self,
        now: Instant,
        id: ServerTxId,
        response: Response,
    ) -> Result<(), Error> {
        let entry = self
            .servers
            .get_mut(&id.0)
            .ok_or(Error::UnknownTransaction(TxId::Server(id)))?;
        let is_2xx = (200..=299).contains(&response.status);
        let result = match &mut entry.machine {
            ServerMachine::Invite(m) => {
                let was_accepted = m.state() == ServerInviteState::Accepted;
                let r = m.send_response(now, response);
                if r.is_ok() && is_2xx && !was_accepted {
                    self.awaiting_ack.push(id.0);
                }
                r
            }
            ServerMachine::NonInvite(m) => m.send_response(now, response),
        };
        self.after_server(id.0);
        result
    }

    /// Starts a client transaction for `request` (not ACK), sent to `to`. The request
    /// must carry its top Via with a unique branch (see [`new_branch`]).
    pub fn send_request(
        &mut self,
        now: Instant,
        request: Request,
        to: Peer,
    ) -> Result<ClientTxId, Error> {
        if request.method == Method::Ack {
            return Err(Error::AckIsNotATransaction);
        }
        let via = request.top_via()?;
        let cseq = request.cseq()?;
        if cseq.method != request.method {
            return Err(Error::CSeqMethodMismatch {
                method: request.method.to_string(),
                cseq: cseq.method.to_string(),
            });
        }
        let branch = match via.branch {
            Some(b) if !b.is_empty() => b,
            _ => return Err(Error::MissingBranch),
        };
        if let Some(ids) = self.client_index.get(&branch) {
            if ids.iter().any(|id| {
                self.clients
                    .get(id)
                    .is_some_and(|e| e.method == request.method)
            }) {
                return Err(Error::DuplicateBranch(branch));
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let method = request.method.clone();
        let machine = if method == Method::Invite {
            ClientMachine::Invite(ClientInvite::new(now, request, to, self.timers))
        } else {
            ClientMachine::NonInvite(ClientNonInvite::new(now, request, to, self.timers))
        };
        self.client_index
            .entry(branch.clone())
            .or_default()
            .push(id);
        self.clients.insert(
            id,
            ClientEntry {
                branch,
                method,
                machine,
            },
        );
        self.after_client(id);
        Ok(ClientTxId(id))
    }

    /// Queues a message outside any transaction (the ACK for a 2xx, a stateless 400).
    pub fn send_stateless(&mut self, to: Peer, msg: SipMessage) {
        self.transmits.push_back(Transmit { to, message: msg });
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        due.extend(self.servers.iter().filter_map(|(id, e)| {
            on_machine!(&e.machine, m => m.poll_timeout())
                .is_some_and(|t| t <= now)
                .then_some(*id)
        }));
        for &id in &due {
            if let Some(e) = self.servers.get_mut(&id) {
                on_machine!(&mut e.machine, m => m.handle_timeout(now));
            }
            self.after_server(id);
        }
        due.clear();
        due.extend(self.clients.iter().filter_map(|(id, e)| {
            on_client!(&e.machine, m => m.poll_timeout())
                .is_some_and(|t| t <= now)
                .then_some(*id)
        }));
        for &id in &due {
            if let Some(e) = self.clients.get_mut(&id) {
                on_client!(&mut e.machine, m => m.handle_timeout(now));
            }
            self.after_client(id);
        }
        self.due = due;
    }

    /// The transport failed to send a message of transaction `id` (a TCP connection
    /// refused or reset): the transaction ends at once (§17.1.4, §17.2.4) with
    /// `TransportError` and `Terminated` events. Unknown ids are ignored.
    pub fn handle_transport_error(&mut self, id: TxId) {
        let removed = match id {
            TxId::Server(ServerTxId(i)) => self.servers.remove(&i).map(|e| {
                unindex(&mut self.server_index, &e.key, i);
                self.awaiting_ack.retain(|&a| a != i);
                on_machine!(&e.machine, m => m.retransmissions())
            }),
            TxId::Client(ClientTxId(i)) => self.clients.remove(&i).map(|e| {
                unindex(&mut self.client_index, &e.branch, i);
                on_client!(&e.machine, m => m.retransmissions())
            }),
        };
        if let Some(r) = removed {
            self.retired_retransmissions += r;
            self.events.push_back(TransactionEvent::TransportError(id));
            self.events.push_back(TransactionEvent::Terminated(id));
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<TransactionEvent> {
        self.events.pop_front()
    }

    /// The earliest instant at which `handle_timeout` must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let s = self
            .servers
            .values()
            .filter_map(|e| on_machine!(&e.machine, m => m.poll_timeout()));
        let c = self
            .clients
            .values()
            .filter_map(|e| on_client!(&e.machine, m => m.poll_timeout()));
        s.chain(c).min()
    }

    /// Whether no transaction is live (a call actor may exit).
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.clients.is_empty()
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.servers.len() + self.clients.len()
    }

    /// Total retransmissions sent so far (requests, responses, ACKs), for metrics.
    pub fn retransmissions(&self) -> u64 {
        let s: u64 = self
            .servers
            .values()
            .map(|e| match &e.machine {
                ServerMachine::Invite(m) => m.retransmissions(),
                ServerMachine::NonInvite(m) => m.retransmissions(),
            })
            .sum();
        let c: u64 = self
            .clients
            .values()
            .map(|e| match &e.machine {
                ClientMachine::Invite(m) => m.retransmissions(),
                ClientMachine::NonInvite(m) => m.retransmissions(),
            })
            .sum();
        self.retired_retransmissions + s + c
    }

    /// The request that created a live server transaction (to build e.g. the 487 for
    /// an INVITE after a CANCEL).
    pub fn server_request(&self, id: ServerTxId) -> Option<&Request> {
        self.servers
            .get(&id.0)
            .map(|e| on_machine!(&e.machine, m => m.request()))
    }

    /// The request of a live client transaction (to build its CANCEL).
    pub fn client_request(&self, id: ClientTxId) -> Option<&Request> {
        self.clients
            .get(&id.0)
            .map(|e| on_client!(&e.machine, m => m.request()))
    }

    /// Moves a server machine's outputs to the layer; removes it once terminated.
    fn after_server(&mut self, id: u64) {
        let Some(e) = self.servers.get_mut(&id) else {
            return;
        };
        let mut terminated = false;
        on_machine!(&mut e.machine, m => {
            while let Some(t) = m.poll_transmit() {
                self.transmits.push_back(t);
            }
            while let Some(ev) = m.poll_event() {
                match ev {
                    MachineEvent::Timeout(Timer::L) => {
                        self.events.push_back(TransactionEvent::AckTimeout(ServerTxId(id)))
                    }
                    MachineEvent::Timeout(_) => {
                        self.events.push_back(TransactionEvent::ServerTimeout(ServerTxId(id)))
                    }
                    MachineEvent::Terminated => terminated = true,
                }
            }
        });
        if terminated {
            if let Some(e) = self.servers.remove(&id) {
                self.retired_retransmissions += on_machine!(&e.machine, m => m.retransmissions());
                unindex(&mut self.server_index, &e.key, id);
                self.awaiting_ack.retain(|&a| a != id);
            }
            self.events
                .push_back(TransactionEvent::Terminated(TxId::Server(ServerTxId(id))));
        }
    }

    /// Moves a client machine's outputs to the layer; removes it once terminated.
    fn after_client(&mut self, id: u64) {
        let Some(e) = self.clients.get_mut(&id) else {
            return;
        };
        let mut terminated = false;
        on_client!(&mut e.machine, m => {
            while let Some(t) = m.poll_transmit() {
                self.transmits.push_back(t);
            }
            while let Some(ev) = m.poll_event() {
                match ev {
                    MachineEvent::Timeout(_) => {
                        self.events.push_back(TransactionEvent::Timeout(ClientTxId(id)))
                    }
                    MachineEvent::Terminated => terminated = true,
                }
            }
        });
        if terminated {
            if let Some(e) = self.clients.remove(&id) {
                self.retired_retransmissions += on_client!(&e.machine, m => m.retransmissions());
                unindex(&mut self.client_index, &e.branch, id);
            }
            self.events
                .push_back(TransactionEvent::Terminated(TxId::Client(ClientTxId(id))));
        }
    }
}

fn unindex(index: &mut HashMap<String, Vec<u64>>, key: &str, id: u64) {
    if let Some(ids) = index.get_mut(key) {
        ids.retain(|&i| i != id);
        if ids.is_empty() {
            index.remove(key);
        }
    }
}

/// The top Via and CSeq number of a request, checking CSeq's method (§8.1.1.5; an ACK
/// or CANCEL carries its own method).
fn request_ids(req: &Request) -> Result<(Via, u32), Error> {
    let via = req.top_via()?;
    let cseq = req.cseq()?;
    if cseq.method != req.method {
        return Err(Error::CSeqMethodMismatch {
            method: req.method.to_string(),
            cseq: cseq.method.to_string(),
        });
    }
    Ok((via, cseq.seq))
}

/// RFC 2543 transaction key (§17.2.3, for branches without the magic cookie): Request-URI,
/// From tag, Call-ID, CSeq number and top Via as written. The To tag is left out so that
/// a CANCEL and the ACK match their INVITE; the method is compared separately.
fn rfc2543_key(req: &Request, seq: u32) -> String {
    let via = req
        .headers
        .get(&HeaderName::Via)
        .map(common::first_via_value)
        .unwrap_or("");
    let call_id = req.headers.get(&HeaderName::CallId).unwrap_or("");
    let from_tag = req
        .from_header()
        .ok()
        .and_then(|f| f.tag().map(str::to_owned))
        .unwrap_or_default();
    format!("2543|{}|{from_tag}|{call_id}|{seq}|{via}", req.uri)
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Hand-built messages for the machine tests (no parser needed).
    use super::Peer;
    use crate::sip::message::{HeaderName, Headers, Method, Request, Response, TransportKind, Uri};

    pub fn udp_peer() -> Peer {
        Peer {
            addr: "127.0.0.1:5070".parse().unwrap(),
            transport: TransportKind::Udp,
        }
    }

    pub fn tcp_peer() -> Peer {
        Peer {
            addr: "127.0.0.1:5070".parse().unwrap(),
            transport: TransportKind::Tcp,
        }
    }

    pub fn uri(user: &str) -> Uri {
        Uri {
            scheme: "sip".into(),
            user: Some(user.into()),
            host: "127.0.0.1".into(),
            port: Some(5060),
            params: vec![],
            headers: None,
        }
    }

    pub fn request(method: &str, branch: &str) -> Request {
        let mut h = Headers::default();
        h.push(
            HeaderName::Via,
            format!("SIP/2.0/UDP 127.0.0.1:5070;branch={branch}"),
        );
        h.push(HeaderName::MaxForwards, "70");
        h.push(HeaderName::From, "<sip:alice@127.0.0.1>;tag=a1");
        h.push(HeaderName::To, "<sip:100@127.0.0.1>");
        h.push(HeaderName::CallId, "call-1");
        h.push(HeaderName::CSeq, format!("1 {method}"));
        h.push(HeaderName::Contact, "<sip:alice@127.0.0.1:5070>");
        Request {
            method: Method::from_token(method),
            uri: uri("100"),
            headers: h,
            body: bytes::Bytes::new(),
        }
    }

    pub fn invite(branch: &str) -> Request {
        request("INVITE", branch)
    }

    pub fn ack_for(invite: &Request, branch: &str) -> Request {
        let mut r = request("ACK", branch);
        r.uri = invite.uri.clone();
        r
    }

    pub fn response_to(req: &Request, status: u16, to_tag: Option<&str>) -> Response {
        let mut h = Headers::default();
        for v in req.headers.get_all(&HeaderName::Via) {
            h.push(HeaderName::Via, v);
        }
        for n in [
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
        ] {
            let mut v = req.headers.get(&n).unwrap_or_default().to_string();
            if n == HeaderName::To {
                if let Some(t) = to_tag {
                    if !v.contains(";tag=") {
                        v.push_str(";tag=");
                        v.push_str(t);
                    }
                }
            }
            h.push(n, v);
        }
        Response {
            status,
            reason: "X".into(),
            headers: h,
            body: bytes::Bytes::new(),
        }
    }
}
