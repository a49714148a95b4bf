//! The registrar (RFC 3261 §10.3): bindings of agents' phones, with digest authentication
//! ([`crate::sip::auth`]), sans-IO.
//!
//! Contract:
//!
//! - input: every out-of-dialog REGISTER with [`Registrar::handle_register`] (after the
//!   endpoint's §8.2 checks: URI scheme, Require), which returns the response for its
//!   server transaction; [`Registrar::handle_timeout`] at [`Registrar::poll_timeout`];
//! - outputs: [`Registrar::poll_event`] (a phone registered, unregistered or expired:
//!   the ACD learns that an agent's device came or went) and the bindings to call an
//!   agent with, [`Registrar::contacts`] or a [`Registrations`] snapshot.
//!
//! Rules kept (RFC 3261 §10.3 steps in order):
//!
//! 1. The Request-URI names our domain ([`RegistrarConfig::domain`], or any IP literal,
//!    as phones often register to an address): else 404.
//! 3. Digest authentication: no, unusable, stale or replayed credentials get 401 with
//!    challenges (SHA-256 then MD5); a wrong password or unknown user gets 403.
//! 4. The address-of-record is the To URI's user, which must be the authenticated
//!    user (else 403).
//! 5. Contacts: `*` only alone and with `Expires: 0` (else 400), removing every binding
//!    of the AOR.
//! 6. Each contact's interval is its `expires` parameter, else the `Expires` header,
//!    else [`RegistrarConfig::default_expires`] (3600 s); 0 removes the binding; between
//!    1 and [`RegistrarConfig::min_expires`] (60 s) the whole request gets 423 with
//!    `Min-Expires`; above [`RegistrarConfig::max_expires`] (7200 s) it is shortened.
//! 7. An existing binding with the same Call-ID is changed only by a higher CSeq (else
//!    the whole request fails with 500); another Call-ID replaces it. A request is
//!    applied entirely or not at all; at most [`RegistrarConfig::max_contacts`] (10)
//!    bindings per AOR (else 403).
//! 8. 200 lists every current binding of the AOR with its remaining `expires`; a
//!    REGISTER without Contact is a query and changes nothing.
//!
//! Each binding keeps the source address and transport of the REGISTER
//! ([`Binding::source`]): a phone behind NAT is reached there, not at a private
//! Contact address (the outbound-style choice of RFC 5626, without its flow tokens).
//!
//! ```text
//! let mut reg = Registrar::new(RegistrarConfig::new("pbx.example.com"), secret, now);
//! let resp = reg.handle_register(now, &req, from, &credentials);
//! layer.send_response(now, tx, resp)?;
//! while let Some(ev) = reg.poll_event() { acd.device(ev) }
//! let phones = reg.contacts("1001"); // send INVITEs to phones[i].source
//! ```

use crate::sip::auth::{AuthConfig, AuthError, Challenger, Credentials};
use crate::sip::dialog::new_tag;
use crate::sip::message::{HeaderAccess, HeaderName, NameAddr, Request, Response, Uri};
use crate::sip::transaction::Peer;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The phone users and passwords of the agents whose voice contact registers
/// (`phone = { user, password }`), as [`Credentials`] for [`Registrar::handle_register`].
pub fn credentials_of<A: AsRef<crate::acd::AgentConfig>>(agents: &[A]) -> HashMap<String, String> {
    agents
        .iter()
        .filter_map(|a| match &a.as_ref().contact {
            crate::acd::VoiceContact::Registered { user, password } => {
                Some((user.clone(), password.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Why a REGISTER is refused; [`RegistrarError::status`] gives the response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrarError {
    /// The credentials were missing or not accepted (401 or 403, see
    /// [`AuthError::rechallenge`]).
    #[error("authentication failed: {0}")]
    Auth(AuthError),
    /// The Request-URI names a domain we do not serve (404).
    #[error("not our domain: {0:?}")]
    NotOurDomain(String),
    /// The authenticated user may not change this address-of-record (403).
    #[error("user {user:?} may not register {aor:?}")]
    NotYourAor {
        /// The authenticated user.
        user: String,
        /// The To user.
        aor: String,
    },
    /// An interval below our minimum (423 with Min-Expires).
    #[error("registration interval {requested} s is shorter than {min} s")]
    IntervalTooBrief {
        /// Requested seconds.
        requested: u32,
        /// Our minimum.
        min: u32,
    },
    /// `Contact: *` with other contacts or a non-zero Expires (400, §10.3 step 6).
    #[error("Contact: * needs Expires: 0 and no other contact")]
    BadWildcard,
    /// A Contact or To header that does not parse (400).
    #[error("malformed REGISTER: {0}")]
    Malformed(String),
    /// A request with the Call-ID of a binding but no higher CSeq (500, §10.3 step 7).
    #[error("CSeq {cseq} is not above {stored} for this Call-ID")]
    OutOfOrder {
        /// The request's CSeq.
        cseq: u32,
        /// The binding's CSeq.
        stored: u32,
    },
    /// The AOR would have more bindings than allowed (403).
    #[error("more than {0} contacts for one address-of-record")]
    TooManyContacts(usize),
}

impl RegistrarError {
    /// Status code and reason phrase of the response that reports the error.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            RegistrarError::Auth(e) if e.rechallenge() => (401, "Unauthorized"),
            RegistrarError::Auth(_) | RegistrarError::NotYourAor { .. } => (403, "Forbidden"),
            RegistrarError::TooManyContacts(_) => (403, "Forbidden"),
            RegistrarError::NotOurDomain(_) => (404, "Not Found"),
            RegistrarError::IntervalTooBrief { .. } => (423, "Interval Too Brief"),
            RegistrarError::BadWildcard | RegistrarError::Malformed(_) => (400, "Bad Request"),
            RegistrarError::OutOfOrder { .. } => (500, "Server Internal Error"),
        }
    }
}

/// Settings of the registrar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Our domain (default: the SIP public host); IP literals are accepted too.
    pub domain: String,
    /// Digest settings (realm defaults to the domain).
    pub auth: AuthConfig,
    /// Interval when neither the contact nor the request says one (3600 s).
    pub default_expires: u32,
    /// Shortest non-zero interval accepted (60 s).
    pub min_expires: u32,
    /// Longest interval granted (7200 s).
    pub max_expires: u32,
    /// Bindings per address-of-record (10).
    pub max_contacts: usize,
}

impl RegistrarConfig {
    /// Defaults for `domain` (also the digest realm).
    pub fn new(domain: &str) -> Self {
        RegistrarConfig {
            domain: domain.to_string(),
            auth: AuthConfig::new(domain),
            default_expires: 3600,
            min_expires: 60,
            max_expires: 7200,
            max_contacts: 10,
        }
    }
}

/// One registered contact of a user.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// The Contact URI as registered.
    pub contact: Uri,
    /// `q` preference (0.0 to 1.0), if given.
    pub q: Option<f32>,
    /// Where the REGISTER came from (address and transport): send requests here.
    pub source: Peer,
    /// When the binding lapses.
    pub expires_at: Instant,
    /// Call-ID of the REGISTER that made or last refreshed it.
    pub call_id: String,
    /// Its CSeq.
    pub cseq: u32,
    /// When it was made or last refreshed.
    pub updated_at: Instant,
}

impl Binding {
    /// Seconds left at `now` (rounded up).
    pub fn remaining(&self, now: Instant) -> u32 {
        let left = self.expires_at.saturating_duration_since(now);
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        u32::try_from(secs).unwrap_or(u32::MAX)
    }
}

/// A change of a user's devices.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistrarEvent {
    /// A new contact was bound (not sent for refreshes).
    Registered {
        /// The user (AOR user part).
        user: String,
        /// The new binding.
        binding: Binding,
    },
    /// The phone removed a contact (Expires 0 or `*`).
    Unregistered {
        /// The user.
        user: String,
        /// The contact removed.
        contact: Uri,
    },
    /// A contact lapsed without refresh.
    Expired {
        /// The user.
        user: String,
        /// The contact removed.
        contact: Uri,
    },
}

/// A read-only copy of every binding (for the ACD, published as a `watch` snapshot).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registrations {
    by_user: HashMap<String, Vec<Binding>>,
}

impl Registrations {
    /// The user's bindings, best first (highest `q`, then most recently refreshed).
    pub fn contacts(&self, user: &str) -> Vec<Binding> {
        let mut v = self.by_user.get(user).cloned().unwrap_or_default();
        v.sort_by(|a, b| {
            b.q.unwrap_or(1.0)
                .total_cmp(&a.q.unwrap_or(1.0))
                .then(b.updated_at.cmp(&a.updated_at))
        });
        v
    }

    /// Number of bindings of all users.
    pub fn len(&self) -> usize {
        self.by_user.values().map(Vec::len).sum()
    }

    /// Whether nobody is registered.
    pub fn is_empty(&self) -> bool {
        self.by_user.is_empty()
    }

    /// Users with at least one binding.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.by_user.keys().map(String::as_str)
    }
}

/// What one contact of a REGISTER asks for.
struct Change {
    contact: Uri,
    q: Option<f32>,
    expires: u32,
}

/// The registrar of all users. See the module docs.
#[derive(Debug)]
pub struct Registrar {
    config: RegistrarConfig,
    challenger: Challenger,
    bindings: Registrations,
    events: VecDeque<RegistrarEvent>,
    seed: u64,
    counter: u64,
}

impl Registrar {
    /// A registrar with no bindings; `secret` keys the nonces (draw it from a CSPRNG)
    /// and seeds the To tags.
    pub fn new(config: RegistrarConfig, secret: [u8; 32], now: Instant) -> Self {
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&secret[..8]);
        Registrar {
            challenger: Challenger::new(config.auth.clone(), secret, now),
            config,
            bindings: Registrations::default(),
            events: VecDeque::new(),
            seed: u64::from_le_bytes(seed),
            counter: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// Number of live bindings (the System status's `registrations`).
    pub fn registrations(&self) -> usize {
        self.bindings.len()
    }

    /// The user's bindings, best first.
    pub fn contacts(&self, user: &str) -> Vec<Binding> {
        self.bindings.contacts(user)
    }

    /// A copy of every binding.
    pub fn snapshot(&self) -> Registrations {
        self.bindings.clone()
    }

    /// The next device change.
    pub fn poll_event(&mut self) -> Option<RegistrarEvent> {
        self.events.pop_front()
    }

    /// When the next binding lapses.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.bindings
            .by_user
            .values()
            .flatten()
            .map(|b| b.expires_at)
            .min()
    }

    /// Removes the bindings that lapsed by `now` ([`RegistrarEvent::Expired`] each).
    pub fn handle_timeout(&mut self, now: Instant) {
        let events = &mut self.events;
        self.bindings.by_user.retain(|user, list| {
            list.retain(|b| {
                let live = b.expires_at > now;
                if !live {
                    events.push_back(RegistrarEvent::Expired {
                        user: user.clone(),
                        contact: b.contact.clone(),
                    });
                }
                live
            });
            !list.is_empty()
        });
    }

    fn tag(&mut self) -> String {
        self.counter = self.counter.wrapping_add(1);
        new_tag(self.seed.wrapping_add(self.counter))
    }

    /// Answers a REGISTER received from `from`, with passwords from `credentials`.
    pub fn handle_register(
        &mut self,
        now: Instant,
        req: &Request,
        from: Peer,
        credentials: &dyn Credentials,
    ) -> Response {
        let result = self.register(now, req, from, credentials);
        let tag = self.tag();
        match result {
            Ok(user) => {
                let mut r = Response::for_request(req, 200, "OK", Some(&tag));
                for b in self.bindings.contacts(&user) {
                    let mut v = format!("<{}>;expires={}", b.contact, b.remaining(now));
                    if let Some(q) = b.q {
                        v.push_str(&format!(";q={q}"));
                    }
                    r.headers.push(HeaderName::Contact, v);
                }
                r
            }
            Err(e) => {
                let (status, reason) = e.status();
                let mut r = Response::for_request(req, status, reason, Some(&tag));
                match &e {
                    RegistrarError::Auth(a) if a.rechallenge() => {
                        for c in self.challenger.challenges(now, a.is_stale()) {
                            r.headers.push(HeaderName::WwwAuthenticate, c);
                        }
                    }
                    RegistrarError::IntervalTooBrief { min, .. } => r
                        .headers
                        .push(HeaderName::Other("Min-Expires".into()), min.to_string()),
                    _ => {}
                }
                r
            }
        }
    }

    /// §10.3 steps 1 to 7; the AOR user on success.
    fn register(
        &mut self,
        now: Instant,
        req: &Request,
        from: Peer,
        credentials: &dyn Credentials,
    ) -> Result<String, RegistrarError> {
        let host = req.uri.host.trim_start_matches('[').trim_end_matches(']');
        if !req.uri.host.eq_ignore_ascii_case(&self.config.domain)
            && host.parse::<IpAddr>().is_err()
        {
            return Err(RegistrarError::NotOurDomain(req.uri.host.clone()));
        }
        let user = self
            .challenger
            .verify_request(now, req, credentials)
            .map_err(RegistrarError::Auth)?;
        let to = req
            .to_header()
            .map_err(|e| RegistrarError::Malformed(e.to_string()))?;
        let aor = to.uri.user_name().unwrap_or("").to_string();
        if aor != user.name {
            return Err(RegistrarError::NotYourAor {
                user: user.name,
                aor,
            });
        }
        let call_id = req
            .call_id()
            .map_err(|e| RegistrarError::Malformed(e.to_string()))?
            .to_string();
        let cseq = req
            .cseq()
            .map_err(|e| RegistrarError::Malformed(e.to_string()))?
            .seq;
        let expires_header = match req.headers.get(&HeaderName::Expires) {
            None => None,
            Some(v) => Some(
                v.trim()
                    .parse::<u64>()
                    .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
                    .map_err(|_| RegistrarError::Malformed(format!("Expires {v:?}")))?,
            ),
        };
        let values: Vec<&str> = req.headers.get_all(&HeaderName::Contact).collect();
        if values.iter().any(|v| v.trim() == "*") {
            if values.len() != 1 || expires_header != Some(0) {
                return Err(RegistrarError::BadWildcard);
            }
            self.remove_all(&aor, &call_id, cseq)?;
            return Ok(aor);
        }
        let mut changes = Vec::new();
        for v in values {
            let list = NameAddr::parse_list(v)
                .map_err(|e| RegistrarError::Malformed(format!("Contact: {e}")))?;
            for na in list {
                changes.push(self.change(na, expires_header)?);
            }
        }
        self.apply(now, &aor, &call_id, cseq, from, changes)?;
        Ok(aor)
    }

    /// One contact's requested change (step 6's interval rules).
    fn change(&self, na: NameAddr, header: Option<u32>) -> Result<Change, RegistrarError> {
        let param = |name: &str| {
            na.params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.as_deref())
        };
        let requested = param("expires")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
            .or(header)
            .unwrap_or(self.config.default_expires);
        if requested != 0 && requested < self.config.min_expires {
            return Err(RegistrarError::IntervalTooBrief {
                requested,
                min: self.config.min_expires,
            });
        }
        let q = param("q")
            .and_then(|v| v.trim().parse::<f32>().ok())
            .filter(|q| (0.0..=1.0).contains(q));
        Ok(Change {
            contact: na.uri,
            q,
            expires: requested.min(self.config.max_expires),
        })
    }

    /// `Contact: *`: removes every binding of `aor`, all or nothing.
    fn remove_all(&mut self, aor: &str, call_id: &str, cseq: u32) -> Result<(), RegistrarError> {
        let Some(list) = self.bindings.by_user.get(aor) else {
            return Ok(());
        };
        for b in list {
            check_order(b, call_id, cseq)?;
        }
        for b in self.bindings.by_user.remove(aor).unwrap_or_default() {
            self.events.push_back(RegistrarEvent::Unregistered {
                user: aor.to_string(),
                contact: b.contact,
            });
        }
        Ok(())
    }

    fn apply(
        &mut self,
        now: Instant,
        aor: &str,
        call_id: &str,
        cseq: u32,
        source: Peer,
        changes: Vec<Change>,
    ) -> Result<(), RegistrarError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut list = self.bindings.by_user.get(aor).cloned().unwrap_or_default();
        let mut events = Vec::new();
        for c in changes {
            let pos = list
                .iter()
                .position(|b| same_contact(&b.contact, &c.contact));
            if let Some(i) = pos {
                check_order(&list[i], call_id, cseq)?;
            }
            match (pos, c.expires) {
                (Some(i), 0) => {
                    let b = list.remove(i);
                    events.push(RegistrarEvent::Unregistered {
                        user: aor.to_string(),
                        contact: b.contact,
                    });
                }
                (None, 0) => {}
                (pos, secs) => {
                    let b = Binding {
                        contact: c.contact,
                        q: c.q,
                        source,
                        expires_at: now + Duration::from_secs(u64::from(secs)),
                        call_id: call_id.to_string(),
                        cseq,
                        updated_at: now,
                    };
                    match pos {
                        Some(i) => list[i] = b,
                        None => {
                            events.push(RegistrarEvent::Registered {
                                user: aor.to_string(),
                                binding: b.clone(),
                            });
                            list.push(b);
                        }
                    }
                }
            }
        }
        if list.len() > self.config.max_contacts {
            return Err(RegistrarError::TooManyContacts(self.config.max_contacts));
        }
        if list.is_empty() {
            self.bindings.by_user.remove(aor);
        } else {
            self.bindings.by_user.insert(aor.to_string(), list);
        }
        self.events.extend(events);
        Ok(())
    }
}

/// §10.3 step 7: the same Call-ID needs a higher CSeq.
fn check_order(b: &Binding, call_id: &str, cseq: u32) -> Result<(), RegistrarError> {
    if b.call_id == call_id && cseq <= b.cseq {
        return Err(RegistrarError::OutOfOrder {
            cseq,
            stored: b.cseq,
        });
    }
    Ok(())
}

/// Contact URI equality enough for bindings (RFC 3261 §19.1.4, simplified): scheme and
/// host case-insensitive, user and port exact, same `transport`.
fn same_contact(a: &Uri, b: &Uri) -> bool {
    let transport = |u: &Uri| u.param("transport").flatten().map(str::to_ascii_lowercase);
    a.scheme.eq_ignore_ascii_case(&b.scheme)
        && a.user == b.user
        && a.host.eq_ignore_ascii_case(&b.host)
        && a.port == b.port
        && transport(a) == transport(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::auth::{digest_response, Algorithm, DigestInput};
    use crate::sip::message::{parse_datagram, SipMessage, TransportKind};

    fn creds() -> HashMap<String, String> {
        HashMap::from([
            ("1001".to_string(), "pw1001".to_string()),
            ("1002".to_string(), "pw1002".to_string()),
        ])
    }

    fn peer() -> Peer {
        Peer {
            addr: "192.0.2.7:40123".parse().unwrap(),
            transport: TransportKind::Udp,
        }
    }

    fn registrar(t0: Instant) -> Registrar {
        Registrar::new(RegistrarConfig::new("pbx.test"), [3u8; 32], t0)
    }

    /// A REGISTER for `user` with extra header lines (Contact, Expires, Authorization).
    fn register(user: &str, call_id: &str, cseq: u32, extra: &str) -> Request {
        let wire = format!(
            "REGISTER sip:pbx.test SIP/2.0\r\n\
             Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK{call_id}{cseq}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@pbx.test>;tag=ph\r\n\
             To: <sip:{user}@pbx.test>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        );
        match parse_datagram(wire.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => unreachable!(),
        }
    }

    fn param(challenge: &str, name: &str) -> String {
        let start = challenge.find(&format!("{name}=")).unwrap() + name.len() + 1;
        let rest = challenge[start..].trim_start_matches('"');
        rest.split(['"', ',']).next().unwrap().to_string()
    }

    /// An Authorization line for `user` answering the challenge of `resp` (index `which`).
    fn authorization(resp: &Response, which: usize, user: &str, password: &str, nc: u32) -> String {
        let c: Vec<&str> = resp.headers.get_all(&HeaderName::WwwAuthenticate).collect();
        let c = c[which];
        let algorithm = Algorithm::from_token(&param(c, "algorithm")).unwrap();
        let (realm, nonce, opaque) = (param(c, "realm"), param(c, "nonce"), param(c, "opaque"));
        let nc = format!("{nc:08x}");
        let response = digest_response(&DigestInput {
            algorithm,
            username: user,
            realm: &realm,
            password,
            method: "REGISTER",
            uri: "sip:pbx.test",
            nonce: &nonce,
            nc: &nc,
            cnonce: "c0ffee",
            qop: "auth",
        });
        format!(
            "Authorization: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", \
             uri=\"sip:pbx.test\", response=\"{response}\", algorithm={}, cnonce=\"c0ffee\", \
             qop=auth, nc={nc}, opaque=\"{opaque}\"\r\n",
            algorithm.as_str()
        )
    }

    /// A client that keeps one nonce and counts `nc` up, like a phone does.
    struct Phone {
        user: &'static str,
        password: &'static str,
        call_id: &'static str,
        cseq: u32,
        nc: u32,
        challenge: Option<Response>,
    }

    impl Phone {
        fn new(user: &'static str, call_id: &'static str) -> Self {
            Phone {
                user,
                password: if user == "1001" { "pw1001" } else { "pw1002" },
                call_id,
                cseq: 0,
                nc: 0,
                challenge: None,
            }
        }

        /// Sends `extra` (Contact/Expires lines) authenticated, answering a 401 once.
        fn send(&mut self, reg: &mut Registrar, now: Instant, extra: &str) -> Response {
            for _ in 0..2 {
                self.cseq += 1;
                let auth = match &self.challenge {
                    Some(c) => {
                        self.nc += 1;
                        authorization(c, 0, self.user, self.password, self.nc)
                    }
                    None => String::new(),
                };
                let req = register(
                    self.user,
                    self.call_id,
                    self.cseq,
                    &format!("{extra}{auth}"),
                );
                let resp = reg.handle_register(now, &req, peer(), &creds());
                if resp.status != 401 {
                    return resp;
                }
                self.nc = 0;
                self.challenge = Some(resp);
            }
            panic!("challenged twice");
        }
    }

    fn contacts_of(resp: &Response) -> Vec<String> {
        resp.headers
            .get_all(&HeaderName::Contact)
            .map(str::to_string)
            .collect()
    }

    fn drain(reg: &mut Registrar) -> Vec<RegistrarEvent> {
        std::iter::from_fn(|| reg.poll_event()).collect()
    }

    #[test]
    fn unauthenticated_register_is_challenged_sha256_first() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let req = register("1001", "c1", 1, "Contact: <sip:1001@10.0.0.5>\r\n");
        let r = reg.handle_register(t0, &req, peer(), &creds());
        assert_eq!(r.status, 401);
        let c: Vec<&str> = r.headers.get_all(&HeaderName::WwwAuthenticate).collect();
        assert_eq!(c.len(), 2);
        assert!(c[0].starts_with("Digest realm=\"pbx.test\""), "{}", c[0]);
        assert!(c[0].contains("algorithm=SHA-256"));
        assert!(c[1].contains("algorithm=MD5"));
        assert!(c[0].contains("qop=\"auth\""));
        assert!(r.to_header().unwrap().tag().is_some());
        assert_eq!(reg.registrations(), 0);
        assert!(drain(&mut reg).is_empty());
    }

    #[test]
    fn register_with_sha256_or_md5_binds_and_lists_the_contact() {
        for which in [0, 1] {
            let t0 = Instant::now();
            let mut reg = registrar(t0);
            let first = reg.handle_register(
                t0,
                &register("1001", "c1", 1, "Contact: <sip:1001@10.0.0.5>\r\n"),
                peer(),
                &creds(),
            );
            let auth = authorization(&first, which, "1001", "pw1001", 1);
            let req = register(
                "1001",
                "c1",
                2,
                &format!("Contact: <sip:1001@10.0.0.5>\r\nExpires: 600\r\n{auth}"),
            );
            let r = reg.handle_register(t0, &req, peer(), &creds());
            assert_eq!(r.status, 200, "{}", r.reason);
            assert_eq!(contacts_of(&r), vec!["<sip:1001@10.0.0.5>;expires=600"]);
            assert_eq!(reg.registrations(), 1);
            let b = &reg.contacts("1001")[0];
            assert_eq!(b.source, peer());
            assert_eq!(b.expires_at, t0 + Duration::from_secs(600));
            assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(600)));
            let ev = drain(&mut reg);
            assert!(
                matches!(&ev[..], [RegistrarEvent::Registered { user, binding }]
                if user == "1001" && binding.contact.to_string() == "sip:1001@10.0.0.5")
            );
        }
    }

    #[test]
    fn wrong_password_403_other_users_aor_403_unknown_user_403() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let challenge = reg.handle_register(t0, &register("1001", "c1", 1, ""), peer(), &creds());
        let bad = authorization(&challenge, 0, "1001", "guess", 1);
        let r = reg.handle_register(t0, &register("1001", "c1", 2, &bad), peer(), &creds());
        assert_eq!(r.status, 403);
        assert!(r.headers.get(&HeaderName::WwwAuthenticate).is_none());
        // 1002's valid credentials for 1001's AOR
        let other = authorization(&challenge, 0, "1002", "pw1002", 1);
        let r = reg.handle_register(
            t0,
            &register(
                "1001",
                "c1",
                3,
                &format!("Contact: <sip:x@10.0.0.9>\r\n{other}"),
            ),
            peer(),
            &creds(),
        );
        assert_eq!(r.status, 403);
        let nobody = authorization(&challenge, 0, "9999", "x", 1);
        let r = reg.handle_register(t0, &register("9999", "c2", 1, &nobody), peer(), &creds());
        assert_eq!(r.status, 403);
        assert_eq!(reg.registrations(), 0);
    }

    #[test]
    fn stale_nonce_is_rechallenged_with_stale_true() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let challenge = reg.handle_register(t0, &register("1001", "c1", 1, ""), peer(), &creds());
        let auth = authorization(&challenge, 0, "1001", "pw1001", 1);
        let late = t0 + Duration::from_secs(301);
        let r = reg.handle_register(late, &register("1001", "c1", 2, &auth), peer(), &creds());
        assert_eq!(r.status, 401);
        assert!(r
            .headers
            .get_all(&HeaderName::WwwAuthenticate)
            .all(|c| c.contains("stale=TRUE")));
    }

    #[test]
    fn several_contacts_refresh_and_per_contact_expires() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut phone = Phone::new("1001", "c1");
        let r = phone.send(
            &mut reg,
            t0,
            "Contact: <sip:1001@10.0.0.5>;q=0.5, <sip:1001@10.0.0.6>;expires=120;q=0.7\r\nContact: <sip:1001@10.0.0.7:5070;transport=tcp>;q=1\r\nExpires: 900\r\n",
        );
        assert_eq!(r.status, 200, "{}", r.reason);
        assert_eq!(contacts_of(&r).len(), 3);
        assert!(contacts_of(&r).contains(&"<sip:1001@10.0.0.6>;expires=120;q=0.7".to_string()));
        assert!(contacts_of(&r).contains(&"<sip:1001@10.0.0.5>;expires=900;q=0.5".to_string()));
        let best = reg.contacts("1001");
        assert_eq!(
            best[0].contact.to_string(),
            "sip:1001@10.0.0.7:5070;transport=tcp"
        );
        assert_eq!(best[2].q, Some(0.5));
        assert_eq!(drain(&mut reg).len(), 3);
        // a refresh 100 s later: no new Registered event, new expiry
        let t1 = t0 + Duration::from_secs(100);
        let r = phone.send(
            &mut reg,
            t1,
            "Contact: <sip:1001@10.0.0.6>\r\nExpires: 300\r\n",
        );
        assert_eq!(r.status, 200);
        assert!(drain(&mut reg).is_empty());
        assert!(contacts_of(&r).contains(&"<sip:1001@10.0.0.6>;expires=300".to_string()));
        assert!(contacts_of(&r).contains(&"<sip:1001@10.0.0.5>;expires=800;q=0.5".to_string()));
        // a query lists without changing
        let r = phone.send(&mut reg, t1, "");
        assert_eq!(contacts_of(&r).len(), 3);
        assert_eq!(reg.registrations(), 3);
    }

    #[test]
    fn interval_limits_423_min_and_clamp_max_and_default() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut phone = Phone::new("1001", "c1");
        let r = phone.send(
            &mut reg,
            t0,
            "Contact: <sip:1001@10.0.0.5>\r\nExpires: 30\r\n",
        );
        assert_eq!(r.status, 423);
        assert_eq!(
            r.headers.get(&HeaderName::from_wire("Min-Expires")),
            Some("60")
        );
        // one brief contact refuses the whole request
        let r = phone.send(
            &mut reg,
            t0,
            "Contact: <sip:1001@10.0.0.5>, <sip:1001@10.0.0.6>;expires=1\r\n",
        );
        assert_eq!(r.status, 423);
        assert_eq!(reg.registrations(), 0);
        let r = phone.send(
            &mut reg,
            t0,
            "Contact: <sip:1001@10.0.0.5>\r\nExpires: 86400\r\n",
        );
        assert_eq!(contacts_of(&r), vec!["<sip:1001@10.0.0.5>;expires=7200"]);
        let r = phone.send(&mut reg, t0, "Contact: <sip:1001@10.0.0.6>\r\n");
        assert!(contacts_of(&r).contains(&"<sip:1001@10.0.0.6>;expires=3600".to_string()));
    }

    #[test]
    fn unregister_one_then_wildcard_removes_all() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut phone = Phone::new("1001", "c1");
        phone.send(
            &mut reg,
            t0,
            "Contact: <sip:1001@10.0.0.5>, <sip:1001@10.0.0.6>, <sip:1001@10.0.0.7>\r\n",
        );
        drain(&mut reg);
        let r = phone.send(
            &mut reg,
            t0,
            "Contact: <sip:1001@10.0.0.5>\r\nExpires: 0\r\n",
        );
        assert_eq!(r.status, 200);
        assert_eq!(contacts_of(&r).len(), 2);
        assert!(
            matches!(&drain(&mut reg)[..], [RegistrarEvent::Unregistered { contact, .. }]
            if contact.host == "10.0.0.5")
        );
        // * needs Expires: 0 and no other contact
        let r = phone.send(&mut reg, t0, "Contact: *\r\nExpires: 60\r\n");
        assert_eq!(r.status, 400);
        let r = phone.send(
            &mut reg,
            t0,
            "Contact: *\r\nContact: <sip:1001@10.0.0.8>\r\nExpires: 0\r\n",
        );
        assert_eq!(r.status, 400);
        let r = phone.send(&mut reg, t0, "Contact: *\r\nExpires: 0\r\n");
        assert_eq!(r.status, 200);
        assert!(contacts_of(&r).is_empty());
        assert_eq!(drain(&mut reg).len(), 2);
        assert_eq!(reg.registrations(), 0);
        assert_eq!(reg.poll_timeout(), None);
    }

    #[test]
    fn same_call_id_needs_higher_cseq_other_call_id_replaces() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut phone = Phone::new("1001", "c1");
        phone.send(&mut reg, t0, "Contact: <sip:1001@10.0.0.5>\r\n");
        // replay the same CSeq on the same Call-ID with fresh credentials
        phone.cseq -= 1;
        let r = phone.send(
            &mut reg,
            t0,
            "Contact: <sip:1001@10.0.0.5>\r\nExpires: 0\r\n",
        );
        assert_eq!(r.status, 500);
        assert_eq!(reg.registrations(), 1);
        // another Call-ID (a rebooted phone) replaces the binding even with a lower CSeq
        let mut rebooted = Phone::new("1001", "c2");
        let r = rebooted.send(
            &mut reg,
            t0,
            "Contact: <sip:1001@10.0.0.5>\r\nExpires: 300\r\n",
        );
        assert_eq!(r.status, 200);
        assert_eq!(reg.contacts("1001")[0].call_id, "c2");
        assert_eq!(contacts_of(&r), vec!["<sip:1001@10.0.0.5>;expires=300"]);
    }

    #[test]
    fn bindings_expire_with_an_event_and_are_bounded() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut phone = Phone::new("1001", "c1");
        phone.send(
            &mut reg,
            t0,
            "Contact: <sip:1001@10.0.0.5>;expires=60, <sip:1001@10.0.0.6>;expires=120\r\n",
        );
        drain(&mut reg);
        reg.handle_timeout(t0 + Duration::from_secs(59));
        assert_eq!(reg.registrations(), 2);
        reg.handle_timeout(t0 + Duration::from_secs(60));
        assert_eq!(reg.registrations(), 1);
        assert!(
            matches!(&drain(&mut reg)[..], [RegistrarEvent::Expired { user, contact }]
            if user == "1001" && contact.host == "10.0.0.5")
        );
        assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(120)));
        reg.handle_timeout(t0 + Duration::from_secs(500));
        assert_eq!(reg.registrations(), 0);
        assert!(reg.snapshot().is_empty());
        // eleven contacts for one AOR: refused as a whole
        let many: Vec<String> = (0..11).map(|i| format!("<sip:1001@10.0.1.{i}>")).collect();
        let r = phone.send(&mut reg, t0, &format!("Contact: {}\r\n", many.join(", ")));
        assert_eq!(r.status, 403);
        assert_eq!(reg.registrations(), 0);
    }

    #[test]
    fn other_domain_404_ip_literal_accepted() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut req = register("1001", "c1", 1, "");
        req.uri = Uri::parse("sip:elsewhere.example").unwrap();
        assert_eq!(reg.handle_register(t0, &req, peer(), &creds()).status, 404);
        req.uri = Uri::parse("sip:127.0.0.1:5060").unwrap();
        assert_eq!(reg.handle_register(t0, &req, peer(), &creds()).status, 401);
        req.uri = Uri::parse("sip:[::1]:5060").unwrap();
        assert_eq!(reg.handle_register(t0, &req, peer(), &creds()).status, 401);
    }
}
