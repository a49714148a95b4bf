//! SIP message codec: framing, normalisation, parsing and serialisation.
//!
//! Everything above this module works on the types defined here. Contract:
//!
//! - [`parse_datagram`] (or [`parse_datagram_bytes`], which does not copy the body)
//!   takes one UDP datagram and returns one message or a [`ParseError`]. A
//!   Content-Length shorter than the datagram truncates the body, a longer one is an
//!   error, none means "the rest of the datagram" (RFC 3261 §18.3).
//! - [`Framer`] takes a TCP byte stream and yields whole messages, framed by
//!   Content-Length (required on a stream); keep-alive CRLFs are skipped.
//! - Folded header lines are unfolded, compact header names (`v`, `i`, `f`, `t`, `m`,
//!   `l`, `c`, `k`, `s`, `e`, `o`, `r`, `u`) are expanded and `Name :` is accepted; header
//!   values are kept as received otherwise (typed views parse on demand:
//!   [`HeaderAccess`], [`Via::parse`], [`NameAddr::parse`], [`CSeq::parse`]).
//! - A message is only returned if a server can act on it (RFC 3261 §8.2, RFC 4475):
//!   start line well formed, Via / From / To / Call-ID / CSeq present, single-valued
//!   where they must be, top Via, From, To, CSeq and Contact parse, CSeq method equals
//!   the request method, Content-Length / Max-Forwards / Expires are numbers, the
//!   Request-URI parses and has no headers. Anything else is a [`ParseError`], whose
//!   text is the reason phrase of the `400` that [`error_response`] builds (`505` for
//!   [`ParseError::Version`]; malformed responses get no answer).
//! - [`Request::to_bytes`] / [`Response::to_bytes`] write a message with CRLF line ends
//!   and a Content-Length computed from the body.
//!
//! Parsing is one pass over the header block written here, not `rsip`: rsip 0.4.0
//! rejects valid messages (extension methods, IPv6 and non-SIP Request-URIs, see the
//! torture tests) and would add a second parse and a conversion. It remains the
//! differential oracle of the tests ([`rsip_baseline`]).
//!
//! ```
//! use caruso::sip::message::{parse_datagram, HeaderAccess, Response, SipMessage};
//!
//! let wire = b"OPTIONS sip:100@127.0.0.1 SIP/2.0\r\n\
//! v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
//! f: <sip:probe@127.0.0.1>;tag=a\r\nt: <sip:100@127.0.0.1>\r\n\
//! i: 42@127.0.0.1\r\nCSeq: 7 OPTIONS\r\nl: 0\r\n\r\n";
//! let SipMessage::Request(req) = parse_datagram(wire)? else { unreachable!() };
//! assert_eq!(req.top_via()?.port, Some(5070));
//! let ok = Response::for_request(&req, 200, "OK", Some("srv"));
//! assert!(ok.to_bytes().starts_with(b"SIP/2.0 200 OK\r\n"));
//! # Ok::<(), caruso::sip::message::ParseError>(())
//! ```

use bytes::Bytes;
use std::fmt;
use std::io::Write as _;
use std::net::IpAddr;

/// Why a message could not be parsed; the text names the rule that was broken and is
/// used as the reason phrase of the `400` that answers a malformed request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The start line is neither a request line nor a status line.
    #[error("malformed start line: {0}")]
    StartLine(String),
    /// The SIP version is not `SIP/2.0` (answered with 505).
    #[error("unsupported SIP version {0}")]
    Version(String),
    /// A header line has no colon or an invalid name.
    #[error("malformed header line: {0}")]
    HeaderLine(String),
    /// A header required by RFC 3261 §8.1.1 is missing.
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    /// A header value does not follow its grammar.
    #[error("malformed {name} header: {reason}")]
    BadHeader {
        /// Canonical header name.
        name: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The Request-URI could not be parsed.
    #[error("malformed Request-URI: {0}")]
    BadUri(String),
    /// Content-Length disagrees with the bytes present.
    #[error("Content-Length {declared} but {actual} body bytes")]
    ContentLength {
        /// Value of the Content-Length header.
        declared: usize,
        /// Bytes actually present after the header block.
        actual: usize,
    },
    /// The message is larger than the configured maximum.
    #[error("message too large ({0} bytes)")]
    TooLarge(usize),
    /// The bytes end before the header block does.
    #[error("incomplete message")]
    Incomplete,
    /// The message is not valid UTF-8 where text is required.
    #[error("invalid UTF-8 in {0}")]
    Utf8(&'static str),
}

/// A SIP method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// BYE
    Bye,
    /// CANCEL
    Cancel,
    /// OPTIONS
    Options,
    /// REGISTER
    Register,
    /// INFO
    Info,
    /// PRACK
    Prack,
    /// UPDATE
    Update,
    /// SUBSCRIBE
    Subscribe,
    /// NOTIFY
    Notify,
    /// REFER
    Refer,
    /// MESSAGE
    Message,
    /// PUBLISH
    Publish,
    /// Any other token.
    Extension(String),
}

impl Method {
    /// The method's token as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Extension(s) => s,
        }
    }

    /// Parses a method token (case-sensitive, as RFC 3261 requires).
    pub fn from_token(s: &str) -> Method {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "PRACK" => Method::Prack,
            "UPDATE" => Method::Update,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Extension(other.to_string()),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The transport a message travels on, as named in a Via header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// UDP
    Udp,
    /// TCP
    Tcp,
    /// TLS (not served yet)
    Tls,
}

impl TransportKind {
    /// Whether the transport is reliable (RFC 3261 §17 timer differences).
    pub fn is_reliable(self) -> bool {
        !matches!(self, TransportKind::Udp)
    }
    /// The Via token (`UDP`, `TCP`, `TLS`).
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
            TransportKind::Tls => "TLS",
        }
    }
}

/// A header name: the well-known ones as variants (compact forms map to them),
/// anything else kept as written. Names compare case-insensitively, as RFC 3261 §7.3.1
/// says: `Other("X-Foo") == Other("x-foo")`.
#[derive(Debug, Clone, Eq)]
pub enum HeaderName {
    /// Via (`v`)
    Via,
    /// From (`f`)
    From,
    /// To (`t`)
    To,
    /// Call-ID (`i`)
    CallId,
    /// CSeq
    CSeq,
    /// Max-Forwards
    MaxForwards,
    /// Contact (`m`)
    Contact,
    /// Content-Type (`c`)
    ContentType,
    /// Content-Length (`l`)
    ContentLength,
    /// Content-Encoding (`e`)
    ContentEncoding,
    /// Content-Disposition
    ContentDisposition,
    /// Route
    Route,
    /// Record-Route
    RecordRoute,
    /// Require
    Require,
    /// Proxy-Require
    ProxyRequire,
    /// Supported (`k`)
    Supported,
    /// Unsupported
    Unsupported,
    /// Allow
    Allow,
    /// Accept
    Accept,
    /// Accept-Encoding
    AcceptEncoding,
    /// Accept-Language
    AcceptLanguage,
    /// Expires
    Expires,
    /// User-Agent
    UserAgent,
    /// Server
    Server,
    /// Authorization
    Authorization,
    /// WWW-Authenticate
    WwwAuthenticate,
    /// Proxy-Authorization
    ProxyAuthorization,
    /// Proxy-Authenticate
    ProxyAuthenticate,
    /// Event (`o`)
    Event,
    /// Subject (`s`)
    Subject,
    /// Refer-To (`r`)
    ReferTo,
    /// Any other header, name as written.
    Other(String),
}

impl HeaderName {
    /// Canonical spelling used when writing the header.
    pub fn as_str(&self) -> &str {
        match self {
            HeaderName::Via => "Via",
            HeaderName::From => "From",
            HeaderName::To => "To",
            HeaderName::CallId => "Call-ID",
            HeaderName::CSeq => "CSeq",
            HeaderName::MaxForwards => "Max-Forwards",
            HeaderName::Contact => "Contact",
            HeaderName::ContentType => "Content-Type",
            HeaderName::ContentLength => "Content-Length",
            HeaderName::ContentEncoding => "Content-Encoding",
            HeaderName::ContentDisposition => "Content-Disposition",
            HeaderName::Route => "Route",
            HeaderName::RecordRoute => "Record-Route",
            HeaderName::Require => "Require",
            HeaderName::ProxyRequire => "Proxy-Require",
            HeaderName::Supported => "Supported",
            HeaderName::Unsupported => "Unsupported",
            HeaderName::Allow => "Allow",
            HeaderName::Accept => "Accept",
            HeaderName::AcceptEncoding => "Accept-Encoding",
            HeaderName::AcceptLanguage => "Accept-Language",
            HeaderName::Expires => "Expires",
            HeaderName::UserAgent => "User-Agent",
            HeaderName::Server => "Server",
            HeaderName::Authorization => "Authorization",
            HeaderName::WwwAuthenticate => "WWW-Authenticate",
            HeaderName::ProxyAuthorization => "Proxy-Authorization",
            HeaderName::ProxyAuthenticate => "Proxy-Authenticate",
            HeaderName::Event => "Event",
            HeaderName::Subject => "Subject",
            HeaderName::ReferTo => "Refer-To",
            HeaderName::Other(s) => s,
        }
    }

    /// Maps a name as received (any case, compact or long form) to a `HeaderName`.
    pub fn from_wire(name: &str) -> HeaderName {
        if let [c] = name.as_bytes() {
            let compact = match c.to_ascii_lowercase() {
                b'v' => Some(HeaderName::Via),
                b'i' => Some(HeaderName::CallId),
                b'f' => Some(HeaderName::From),
                b't' => Some(HeaderName::To),
                b'm' => Some(HeaderName::Contact),
                b'l' => Some(HeaderName::ContentLength),
                b'c' => Some(HeaderName::ContentType),
                b'k' => Some(HeaderName::Supported),
                b's' => Some(HeaderName::Subject),
                b'e' => Some(HeaderName::ContentEncoding),
                b'o' => Some(HeaderName::Event),
                b'r' => Some(HeaderName::ReferTo),
                b'u' => Some(HeaderName::Other("Allow-Events".to_string())),
                _ => None,
            };
            if let Some(n) = compact {
                return n;
            }
        }
        for (spelled, known) in KNOWN_HEADERS {
            if spelled.len() == name.len() && spelled.eq_ignore_ascii_case(name) {
                return known.clone();
            }
        }
        HeaderName::Other(name.to_string())
    }
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

impl std::hash::Hash for HeaderName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        if let HeaderName::Other(s) = self {
            for b in s.bytes() {
                state.write_u8(b.to_ascii_lowercase());
            }
        }
    }
}

/// Every named variant with its spelling, for the case-insensitive lookup in
/// [`HeaderName::from_wire`] (length compared first, so most entries cost one compare).
const KNOWN_HEADERS: &[(&str, HeaderName)] = &[
    ("Via", HeaderName::Via),
    ("From", HeaderName::From),
    ("To", HeaderName::To),
    ("Call-ID", HeaderName::CallId),
    ("CSeq", HeaderName::CSeq),
    ("Max-Forwards", HeaderName::MaxForwards),
    ("Contact", HeaderName::Contact),
    ("Content-Type", HeaderName::ContentType),
    ("Content-Length", HeaderName::ContentLength),
    ("Content-Encoding", HeaderName::ContentEncoding),
    ("Content-Disposition", HeaderName::ContentDisposition),
    ("Route", HeaderName::Route),
    ("Record-Route", HeaderName::RecordRoute),
    ("Require", HeaderName::Require),
    ("Proxy-Require", HeaderName::ProxyRequire),
    ("Supported", HeaderName::Supported),
    ("Unsupported", HeaderName::Unsupported),
    ("Allow", HeaderName::Allow),
    ("Accept", HeaderName::Accept),
    ("Accept-Encoding", HeaderName::AcceptEncoding),
    ("Accept-Language", HeaderName::AcceptLanguage),
    ("Expires", HeaderName::Expires),
    ("User-Agent", HeaderName::UserAgent),
    ("Server", HeaderName::Server),
    ("Authorization", HeaderName::Authorization),
    ("WWW-Authenticate", HeaderName::WwwAuthenticate),
    ("Proxy-Authorization", HeaderName::ProxyAuthorization),
    ("Proxy-Authenticate", HeaderName::ProxyAuthenticate),
    ("Event", HeaderName::Event),
    ("Subject", HeaderName::Subject),
    ("Refer-To", HeaderName::ReferTo),
];

/// One header field; `value` is the text after the colon, trimmed, unfolded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header's name.
    pub name: HeaderName,
    /// The header's value.
    pub value: String,
}

/// The ordered header list of a message. Headers with comma-separated values that
/// arrived combined on one line stay on one line; accessors split them where needed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    /// The first value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&str> {
        self.0
            .iter()
            .find(|h| &h.name == name)
            .map(|h| h.value.as_str())
    }
    /// All values of `name`, in order (a combined line counts as one value).
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| &h.name == name)
            .map(|h| h.value.as_str())
    }
    /// Appends a header.
    pub fn push(&mut self, name: HeaderName, value: impl Into<String>) {
        self.0.push(Header {
            name,
            value: value.into(),
        });
    }
    /// Inserts a header before all others (for a new top Via).
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<String>) {
        self.0.insert(
            0,
            Header {
                name,
                value: value.into(),
            },
        );
    }
    /// Replaces every value of `name` with one value (appends if absent).
    pub fn set(&mut self, name: HeaderName, value: impl Into<String>) {
        let value = value.into();
        if let Some(pos) = self.0.iter().position(|h| h.name == name) {
            self.0[pos].value = value;
            let mut i = 0;
            self.0.retain(|h| {
                let keep = h.name != name || i == pos;
                i += 1;
                keep
            });
        } else {
            self.push(name, value);
        }
    }
    /// Removes every header called `name`.
    pub fn remove(&mut self, name: &HeaderName) {
        self.0.retain(|h| &h.name != name);
    }
}

/// A SIP or SIPS URI (RFC 3261 §19.1), or another scheme kept as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    /// `sip`, `sips`, `tel`, ... (lower case).
    pub scheme: String,
    /// The user part, unescaped as received (no `@`).
    pub user: Option<String>,
    /// Host: a name, an IPv4 address, or an IPv6 reference in brackets.
    pub host: String,
    /// The port, if written.
    pub port: Option<u16>,
    /// URI parameters (`;transport=tcp`, `;lr`), in order.
    pub params: Vec<(String, Option<String>)>,
    /// URI headers (`?subject=...`), as written after `?`.
    pub headers: Option<String>,
}

impl Uri {
    /// Parses a URI as found in a Request-URI or inside `<...>`.
    ///
    /// `sip:` and `sips:` URIs are split into their parts (a `:password` after the user
    /// is kept inside [`Uri::user`] so the URI writes back unchanged); any other scheme
    /// (`tel:`, `urn:`, ...) keeps everything after the colon in [`Uri::host`].
    pub fn parse(s: &str) -> Result<Uri, ParseError> {
        parse_uri(s).map_err(|reason| ParseError::BadUri(format!("{reason}: {}", snippet(s))))
    }
    /// The user without a `:password` suffix.
    pub fn user_name(&self) -> Option<&str> {
        self.user
            .as_deref()
            .map(|u| u.split_once(':').map_or(u, |(name, _)| name))
    }
    /// The value of a URI parameter (`transport`, `maddr`, ...), case-insensitive name.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }
}

/// Writes `;name=value` / `;name` parameters in order (URI, name-addr and Via alike).
fn write_params(f: &mut fmt::Formatter<'_>, params: &[(String, Option<String>)]) -> fmt::Result {
    for (n, v) in params {
        match v {
            Some(v) => write!(f, ";{n}={v}")?,
            None => write!(f, ";{n}")?,
        }
    }
    Ok(())
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme)?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write_params(f, &self.params)?;
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

/// A name-addr or addr-spec with header parameters: the value of From, To, Contact,
/// Route and Record-Route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name, without quotes.
    pub display: Option<String>,
    /// The address.
    pub uri: Uri,
    /// Header parameters after the address (`;tag=...`, `;expires=...`).
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    /// Parses one name-addr / addr-spec (not a comma-separated list).
    ///
    /// Without angle brackets, parameters after the address are header parameters
    /// (RFC 3261 §20), so `sip:a@b;tag=1` has a `tag` and a URI without parameters.
    pub fn parse(s: &str) -> Result<NameAddr, ParseError> {
        parse_name_addr(s).map_err(|reason| ParseError::BadHeader {
            name: "name-addr",
            reason: reason.to_string(),
        })
    }
    /// Parses a comma-separated list (Contact, Route, Record-Route), respecting quotes
    /// and angle brackets.
    pub fn parse_list(s: &str) -> Result<Vec<NameAddr>, ParseError> {
        let mut out = Vec::new();
        for part in SplitTop::new(s, b',', true) {
            out.push(NameAddr::parse(part)?);
        }
        Ok(out)
    }
    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("tag"))
            .and_then(|(_, v)| v.as_deref())
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            f.write_str("\"")?;
            for c in d.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\" ")?;
        }
        write!(f, "<{}>", self.uri)?;
        write_params(f, &self.params)?;
        Ok(())
    }
}

/// One Via header value (RFC 3261 §20.42) with the parameters transactions and
/// response routing need (RFC 3581 `rport`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport from `SIP/2.0/UDP`.
    pub transport: TransportKind,
    /// sent-by host (name, IPv4, or bracketed IPv6).
    pub host: String,
    /// sent-by port, if written.
    pub port: Option<u16>,
    /// `branch` parameter.
    pub branch: Option<String>,
    /// `received` parameter.
    pub received: Option<IpAddr>,
    /// `rport`: `None` absent, `Some(None)` present without value, `Some(Some(p))` filled.
    pub rport: Option<Option<u16>>,
    /// Other parameters in order (`maddr`, `ttl`, extensions).
    pub params: Vec<(String, Option<String>)>,
}

impl Via {
    /// Parses the first Via value of a header line (which may hold several, comma-separated).
    ///
    /// LWS is allowed around `/`, `:`, `;` and `=` as RFC 3261 §25.1 allows; the
    /// transport must be UDP, TCP or TLS.
    pub fn parse(s: &str) -> Result<Via, ParseError> {
        parse_via(s).map_err(|reason| ParseError::BadHeader {
            name: "Via",
            reason: reason.to_string(),
        })
    }
    /// Whether the branch carries the RFC 3261 magic cookie `z9hG4bK`.
    pub fn is_rfc3261_branch(&self) -> bool {
        self.branch
            .as_deref()
            .is_some_and(|b| b.starts_with("z9hG4bK"))
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport.as_str(), self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        if let Some(b) = &self.branch {
            write!(f, ";branch={b}")?;
        }
        if let Some(r) = &self.received {
            write!(f, ";received={r}")?;
        }
        match self.rport {
            Some(Some(p)) => write!(f, ";rport={p}")?,
            Some(None) => f.write_str(";rport")?,
            None => {}
        }
        write_params(f, &self.params)?;
        Ok(())
    }
}

/// The CSeq header: sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number (< 2^31 per RFC 3261 §8.1.1.5).
    pub seq: u32,
    /// Method, which must match the request's.
    pub method: Method,
}

impl CSeq {
    /// Parses a CSeq value: `1*DIGIT LWS Method`, the number below 2^31.
    pub fn parse(s: &str) -> Result<CSeq, ParseError> {
        let bad = |reason: &str| ParseError::BadHeader {
            name: "CSeq",
            reason: reason.to_string(),
        };
        let s = trim_lws(s);
        let digits_end = s
            .bytes()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(s.len());
        if digits_end == 0 {
            return Err(bad("sequence number is not a number"));
        }
        let seq = parse_decimal(&s[..digits_end])
            .filter(|n| *n < (1u64 << 31))
            .ok_or_else(|| bad("sequence number is not below 2^31"))?;
        let rest = &s[digits_end..];
        let method = trim_lws(rest);
        if method.len() == rest.len() {
            return Err(bad("no whitespace between number and method"));
        }
        if method.is_empty() || !method.bytes().all(is_token_char) {
            return Err(bad("method is not a token"));
        }
        Ok(CSeq {
            seq: seq as u32,
            method: Method::from_token(method),
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method from the request line.
    pub method: Method,
    /// Request-URI.
    pub uri: Uri,
    /// Headers in order.
    pub headers: Headers,
    /// Body (SDP, DTMF relay, ...); Content-Length is written from its length.
    pub body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code 100..=699.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Headers in order.
    pub headers: Headers,
    /// Body.
    pub body: Bytes,
}

/// A parsed SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipMessage {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

/// Typed access to the headers every transaction and dialog needs. Implemented for
/// [`Request`] and [`Response`]; each accessor parses on demand and reports a
/// [`ParseError`] naming the header.
pub trait HeaderAccess {
    /// The header list.
    fn headers(&self) -> &Headers;
    /// Mutable header list.
    fn headers_mut(&mut self) -> &mut Headers;

    /// Call-ID value.
    fn call_id(&self) -> Result<&str, ParseError> {
        self.headers()
            .get(&HeaderName::CallId)
            .ok_or(ParseError::MissingHeader("Call-ID"))
    }
    /// Top Via.
    fn top_via(&self) -> Result<Via, ParseError> {
        let v = self
            .headers()
            .get(&HeaderName::Via)
            .ok_or(ParseError::MissingHeader("Via"))?;
        Via::parse(v)
    }
    /// CSeq.
    fn cseq(&self) -> Result<CSeq, ParseError> {
        let v = self
            .headers()
            .get(&HeaderName::CSeq)
            .ok_or(ParseError::MissingHeader("CSeq"))?;
        CSeq::parse(v)
    }
    /// From.
    // The name is fixed by the shared API; it reads the From header, it converts nothing.
    #[allow(clippy::wrong_self_convention)]
    fn from_header(&self) -> Result<NameAddr, ParseError> {
        let v = self
            .headers()
            .get(&HeaderName::From)
            .ok_or(ParseError::MissingHeader("From"))?;
        NameAddr::parse(v)
    }
    /// To.
    fn to_header(&self) -> Result<NameAddr, ParseError> {
        let v = self
            .headers()
            .get(&HeaderName::To)
            .ok_or(ParseError::MissingHeader("To"))?;
        NameAddr::parse(v)
    }
}

impl HeaderAccess for Request {
    fn headers(&self) -> &Headers {
        &self.headers
    }
    fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }
}

impl HeaderAccess for Response {
    fn headers(&self) -> &Headers {
        &self.headers
    }
    fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }
}

impl Request {
    /// Writes the request to wire bytes, Content-Length set from the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(wire_size_hint(&self.headers, &self.body) + 64);
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{}", self.uri);
        out.extend_from_slice(b" SIP/2.0\r\n");
        write_headers_and_body(&mut out, &self.headers, &self.body);
        out
    }
}

impl Response {
    /// Writes the response to wire bytes, Content-Length set from the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(wire_size_hint(&self.headers, &self.body) + 16 + self.reason.len());
        // Writing into a Vec cannot fail.
        let _ = write!(out, "SIP/2.0 {:03} ", self.status);
        // A reason phrase is one line of text (RFC 3261 §25.1): a control character from
        // error text must never split the response.
        if self
            .reason
            .bytes()
            .any(|b| b.is_ascii_control() && b != b'\t')
        {
            let clean: String = self
                .reason
                .chars()
                .map(|c| if c.is_control() && c != '\t' { ' ' } else { c })
                .collect();
            out.extend_from_slice(clean.as_bytes());
        } else {
            out.extend_from_slice(self.reason.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        write_headers_and_body(&mut out, &self.headers, &self.body);
        out
    }

    /// Builds a response to `req` per RFC 3261 §8.2.6.2: copies Via (all), From, To,
    /// Call-ID and CSeq; adds `to_tag` to To when given and To has no tag yet.
    /// Record-Route is not copied: the dialog layer adds it to dialog-creating responses
    /// (§12.1.1).
    pub fn for_request(req: &Request, status: u16, reason: &str, to_tag: Option<&str>) -> Response {
        let mut headers = Headers(Vec::with_capacity(6));
        for h in &req.headers.0 {
            match h.name {
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    headers.0.push(h.clone())
                }
                HeaderName::To => {
                    let mut value = h.value.clone();
                    if let Some(tag) = to_tag {
                        let has_tag = NameAddr::parse(&value).is_ok_and(|na| na.tag().is_some());
                        if !has_tag {
                            value.push_str(";tag=");
                            value.push_str(tag);
                        }
                    }
                    headers.0.push(Header {
                        name: HeaderName::To,
                        value,
                    });
                }
                _ => {}
            }
        }
        Response {
            status,
            reason: reason.to_string(),
            headers,
            body: Bytes::new(),
        }
    }
}

impl SipMessage {
    /// Writes the message to wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            SipMessage::Request(r) => r.to_bytes(),
            SipMessage::Response(r) => r.to_bytes(),
        }
    }
}

mod codec;
mod grammar;
#[doc(hidden)]
pub mod rsip_baseline;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod torture_tests;

pub use codec::{
    error_response, parse_datagram, parse_datagram_bytes, parse_frame, Framer, MAX_MESSAGE_SIZE,
};
use grammar::*;
