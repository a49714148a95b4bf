//! SIP message codec: framing, normalisation, parsing (through `rsip`) and serialisation.
//!
//! This module is the only place that names an `rsip` type. Everything above it works on
//! the types defined here. Contract:
//!
//! - [`parse_datagram`] takes one UDP datagram and returns one message or a [`ParseError`].
//! - [`Framer`] takes a TCP byte stream and yields whole messages, framed by Content-Length.
//! - Before `rsip` sees a message, folded header lines are unfolded, compact header names
//!   (`v`, `i`, `f`, `t`, `m`, `l`, `c`, `k`, `s`, `e`, `o`, `r`, `u`) are expanded and
//!   `Name :` is normalised to `Name:`; the body length is checked against Content-Length.
//! - [`Request::to_bytes`] / [`Response::to_bytes`] write a message with a correct
//!   Content-Length.
//!
//! ```ignore
//! let msg = parse_datagram(b"OPTIONS sip:100@127.0.0.1 SIP/2.0\r\n...")?;
//! ```

use bytes::Bytes;
use std::fmt;
use std::io::Write as _;
use std::net::{IpAddr, Ipv6Addr};

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
/// anything else kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
        for known in KNOWN_HEADERS {
            let spelled = known.as_str();
            if spelled.len() == name.len() && spelled.eq_ignore_ascii_case(name) {
                return known.clone();
            }
        }
        HeaderName::Other(name.to_string())
    }
}

/// Every named variant, for the case-insensitive lookup in [`HeaderName::from_wire`].
const KNOWN_HEADERS: &[HeaderName] = &[
    HeaderName::Via,
    HeaderName::From,
    HeaderName::To,
    HeaderName::CallId,
    HeaderName::CSeq,
    HeaderName::MaxForwards,
    HeaderName::Contact,
    HeaderName::ContentType,
    HeaderName::ContentLength,
    HeaderName::ContentEncoding,
    HeaderName::ContentDisposition,
    HeaderName::Route,
    HeaderName::RecordRoute,
    HeaderName::Require,
    HeaderName::ProxyRequire,
    HeaderName::Supported,
    HeaderName::Unsupported,
    HeaderName::Allow,
    HeaderName::Accept,
    HeaderName::AcceptEncoding,
    HeaderName::AcceptLanguage,
    HeaderName::Expires,
    HeaderName::UserAgent,
    HeaderName::Server,
    HeaderName::Authorization,
    HeaderName::WwwAuthenticate,
    HeaderName::ProxyAuthorization,
    HeaderName::ProxyAuthenticate,
    HeaderName::Event,
    HeaderName::Subject,
    HeaderName::ReferTo,
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
        parse_uri(s).map_err(|reason| ParseError::BadUri(format!("{reason}: {s}")))
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
        for (n, v) in &self.params {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
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
        for (n, v) in &self.params {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
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
        for (n, v) in &self.params {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
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
        out.extend_from_slice(self.reason.as_bytes());
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

/// Parses one UDP datagram as one SIP message.
pub fn parse_datagram(data: &[u8]) -> Result<SipMessage, ParseError> {
    todo!("sip::message: parse datagram of {} bytes", data.len())
}

/// Splits a TCP byte stream into messages framed by Content-Length (RFC 3261 §18.3).
/// Keep-alive CRLFs between messages are skipped.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
}

impl Framer {
    /// A framer with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }
    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }
    /// The next whole message, if one is buffered. An `Err` means the stream cannot be
    /// framed any more (no Content-Length on a stream, oversize): the caller answers what
    /// it can and closes the connection.
    pub fn next_message(&mut self) -> Option<Result<SipMessage, ParseError>> {
        todo!(
            "sip::message: frame next message from {} bytes",
            self.buf.len()
        )
    }
}

// ---------------------------------------------------------------------------------------
// Grammar helpers (RFC 3261 §25.1). They return a static reason; the public parsers wrap
// it in the `ParseError` variant that names the header.
// ---------------------------------------------------------------------------------------

/// Linear white space as it can remain inside a header value (after unfolding).
fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trims LWS at both ends.
fn trim_lws(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
}

/// `token` characters (RFC 3261 §25.1).
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// `unreserved` = alphanum / mark.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

/// A non-empty run of ASCII digits as a number; `None` on overflow or other bytes.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Checks that every `%` is followed by two hex digits and every other byte is allowed.
fn check_escaped(s: &str, allowed: fn(u8) -> bool) -> Result<(), &'static str> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok = b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return Err("bad %-escape");
            }
            i += 3;
        } else if allowed(b[i]) {
            i += 1;
        } else {
            return Err("character not allowed");
        }
    }
    Ok(())
}

/// Splits at a separator byte outside quoted strings (and outside `<...>` when `angle`).
/// Pieces are trimmed of LWS; empty pieces (`a,,b`, trailing separator) are skipped.
struct SplitTop<'a> {
    rest: &'a str,
    sep: u8,
    angle: bool,
}

impl<'a> SplitTop<'a> {
    fn new(s: &'a str, sep: u8, angle: bool) -> Self {
        SplitTop {
            rest: s,
            sep,
            angle,
        }
    }
}

impl<'a> Iterator for SplitTop<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let b = self.rest.as_bytes();
            let mut i = 0;
            let mut in_quote = false;
            let mut in_angle = false;
            let mut end = b.len();
            while i < b.len() {
                let c = b[i];
                if in_quote {
                    if c == b'\\' {
                        i += 1;
                    } else if c == b'"' {
                        in_quote = false;
                    }
                } else if c == b'"' {
                    in_quote = true;
                } else if self.angle && c == b'<' {
                    in_angle = true;
                } else if self.angle && c == b'>' {
                    in_angle = false;
                } else if c == self.sep && !in_angle {
                    end = i;
                    break;
                }
                i += 1;
            }
            let piece = &self.rest[..end];
            self.rest = if end < self.rest.len() {
                &self.rest[end + 1..]
            } else {
                ""
            };
            let piece = trim_lws(piece);
            if !piece.is_empty() {
                return Some(piece);
            }
        }
    }
}

/// Bytes allowed in a `user` (unreserved / escaped / user-unreserved) plus `:` for the
/// password (whose characters are a subset).
fn is_userinfo_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/' | b':'
        )
}

/// `paramchar` without the escape (param-unreserved / unreserved).
fn is_param_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
}

/// `hnv-unreserved` / unreserved, plus the `=` and `&` that separate URI headers.
fn is_uri_header_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$' | b'=' | b'&'
        )
}

/// Characters of an opaque (non-SIP) URI: RFC 3986 reserved and unreserved.
fn is_opaque_uri_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b';' | b'/'
                | b'?'
                | b':'
                | b'@'
                | b'&'
                | b'='
                | b'+'
                | b'$'
                | b','
                | b'['
                | b']'
                | b'#'
        )
}

/// Parses an IPv6 reference's content, tolerating the `:::` before an embedded IPv4
/// address that RFC 3261's ABNF allowed (RFC 5118 §4.10).
fn parse_ipv6(s: &str) -> Option<Ipv6Addr> {
    if let Ok(a) = s.parse() {
        return Some(a);
    }
    let (head, tail) = s.split_once(":::")?;
    if tail.contains(':') || tail.parse::<std::net::Ipv4Addr>().is_err() {
        return None;
    }
    let mut fixed = String::with_capacity(s.len());
    fixed.push_str(head);
    fixed.push_str("::");
    fixed.push_str(tail);
    fixed.parse().ok()
}

/// Splits `host[:port]` where host may be a bracketed IPv6 reference; `port_sep_lws`
/// allows LWS around the colon (Via's COLON).
fn split_hostport(s: &str, port_sep_lws: bool) -> Result<(&str, Option<u16>), &'static str> {
    let (host, rest) = if s.starts_with('[') {
        let close = s.find(']').ok_or("unterminated IPv6 reference")?;
        let (h, r) = s.split_at(close + 1);
        if parse_ipv6(&h[1..close]).is_none() {
            return Err("invalid IPv6 reference");
        }
        (h, r)
    } else {
        let end = s
            .bytes()
            .position(|b| b == b':' || is_lws(b))
            .unwrap_or(s.len());
        let (h, r) = s.split_at(end);
        if h.is_empty() {
            return Err("empty host");
        }
        if !h
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            return Err("invalid host name");
        }
        (h, r)
    };
    let rest = if port_sep_lws { trim_lws(rest) } else { rest };
    if rest.is_empty() {
        return Ok((host, None));
    }
    let port = rest.strip_prefix(':').ok_or("junk after host")?;
    let port = if port_sep_lws { trim_lws(port) } else { port };
    let port = parse_decimal(port)
        .and_then(|p| u16::try_from(p).ok())
        .ok_or("invalid port")?;
    Ok((host, Some(port)))
}

/// Parses `;name[=value]` URI parameters (already split off, without the leading `;`).
fn parse_uri_params(s: &str) -> Result<Vec<(String, Option<String>)>, &'static str> {
    let mut params = Vec::new();
    for p in s.split(';') {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (p, None),
        };
        if name.is_empty() {
            return Err("empty URI parameter name");
        }
        check_escaped(name, is_param_char)?;
        if let Some(v) = value {
            if v.is_empty() {
                return Err("empty URI parameter value");
            }
            check_escaped(v, is_param_char)?;
        }
        params.push((name.to_string(), value.map(str::to_string)));
    }
    Ok(params)
}

fn parse_uri(s: &str) -> Result<Uri, &'static str> {
    let colon = s.find(':').ok_or("no scheme")?;
    let (scheme, rest) = (&s[..colon], &s[colon + 1..]);
    let sb = scheme.as_bytes();
    if sb.is_empty()
        || !sb[0].is_ascii_alphabetic()
        || !sb
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return Err("invalid scheme");
    }
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "sip" && scheme != "sips" {
        if rest.is_empty() {
            return Err("empty opaque URI");
        }
        check_escaped(rest, is_opaque_uri_char)?;
        return Ok(Uri {
            scheme,
            user: None,
            host: rest.to_string(),
            port: None,
            params: Vec::new(),
            headers: None,
        });
    }
    // Neither params nor headers may hold an unescaped '@', so the first one ends userinfo.
    let (user, hostpart) = match rest.find('@') {
        Some(at) => {
            let u = &rest[..at];
            if u.is_empty() {
                return Err("empty user");
            }
            check_escaped(u, is_userinfo_char)?;
            (Some(u.to_string()), &rest[at + 1..])
        }
        None => (None, rest),
    };
    let (hostpart, headers) = match hostpart.split_once('?') {
        Some((h, q)) => {
            if q.is_empty() {
                return Err("empty URI headers");
            }
            check_escaped(q, is_uri_header_char)?;
            (h, Some(q.to_string()))
        }
        None => (hostpart, None),
    };
    let (hostport, params) = match hostpart.split_once(';') {
        Some((h, p)) => (h, parse_uri_params(p)?),
        None => (hostpart, Vec::new()),
    };
    let (host, port) = split_hostport(hostport, false)?;
    Ok(Uri {
        scheme,
        user,
        host: host.to_string(),
        port,
        params,
        headers,
    })
}

/// Parses `*( SEMI generic-param )` header parameters; `s` starts at the first `;` (or is
/// empty). Values are kept as written (a quoted string keeps its quotes).
fn parse_header_params(s: &str) -> Result<Vec<(String, Option<String>)>, &'static str> {
    let s = trim_lws(s);
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let s = s.strip_prefix(';').ok_or("junk before parameters")?;
    let mut params = Vec::new();
    let mut count = 0;
    for p in SplitTop::new(s, b';', false) {
        count += 1;
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (trim_lws(n), Some(trim_lws(v))),
            None => (p, None),
        };
        if name.is_empty() || !name.bytes().all(is_token_char) {
            return Err("parameter name is not a token");
        }
        if let Some(v) = value {
            check_gen_value(v)?;
        }
        params.push((name.to_string(), value.map(str::to_string)));
    }
    if count == 0 {
        return Err("empty parameter");
    }
    Ok(params)
}

/// `gen-value = token / host / quoted-string`.
fn check_gen_value(v: &str) -> Result<(), &'static str> {
    if v.starts_with('"') {
        let end = quoted_string_end(v).ok_or("unterminated quoted string")?;
        if end != v.len() {
            return Err("junk after quoted string");
        }
        return Ok(());
    }
    if v.is_empty()
        || !v
            .bytes()
            .all(|b| is_token_char(b) || matches!(b, b'[' | b']' | b':'))
    {
        return Err("parameter value is not a token, host or quoted string");
    }
    Ok(())
}

/// Given `s` starting with `"`, the index just past the closing quote.
fn quoted_string_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

fn parse_name_addr(s: &str) -> Result<NameAddr, &'static str> {
    let s = trim_lws(s);
    if s.is_empty() {
        return Err("empty value");
    }
    let (display, after_display) = if s.starts_with('"') {
        let end = quoted_string_end(s).ok_or("unterminated display name")?;
        let inner = &s[1..end - 1];
        let mut d = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                // quoted-pair: the escaped character stands for itself.
                d.extend(chars.next());
            } else {
                d.push(c);
            }
        }
        let rest = trim_lws(&s[end..]);
        if !rest.starts_with('<') {
            return Err("display name not followed by <addr-spec>");
        }
        (Some(d), rest)
    } else if let Some(lt) = s.find('<') {
        let d = trim_lws(&s[..lt]);
        if !d.bytes().all(|b| is_token_char(b) || is_lws(b)) {
            return Err("display name is neither tokens nor a quoted string");
        }
        ((!d.is_empty()).then(|| d.to_string()), &s[lt..])
    } else {
        (None, s)
    };
    if let Some(inner) = after_display.strip_prefix('<') {
        let gt = inner.find('>').ok_or("missing >")?;
        let uri = Uri::parse(trim_lws(&inner[..gt])).map_err(|_| "invalid URI in <...>")?;
        let params = parse_header_params(&inner[gt + 1..])?;
        return Ok(NameAddr {
            display,
            uri,
            params,
        });
    }
    // addr-spec: the URI ends at the first ';' (or LWS); what follows are header params.
    let end = after_display
        .bytes()
        .position(|b| b == b';' || is_lws(b))
        .unwrap_or(after_display.len());
    let uri_text = &after_display[..end];
    if uri_text.contains(['?', ',']) {
        return Err("addr-spec with ? or , must be in <...>");
    }
    let uri = Uri::parse(uri_text).map_err(|_| "invalid URI")?;
    let params = parse_header_params(&after_display[end..])?;
    Ok(NameAddr {
        display,
        uri,
        params,
    })
}

/// Strips `prefix` (case-insensitive) then LWS.
fn strip_token<'a>(s: &'a str, token: &str) -> Option<&'a str> {
    let head = s.get(..token.len())?;
    head.eq_ignore_ascii_case(token)
        .then(|| trim_lws(&s[token.len()..]))
}

fn parse_via(s: &str) -> Result<Via, &'static str> {
    let first = SplitTop::new(s, b',', false).next().ok_or("empty value")?;
    let rest = strip_token(first, "SIP").ok_or("protocol is not SIP")?;
    let rest = rest.strip_prefix('/').ok_or("missing / after SIP")?;
    let rest = strip_token(trim_lws(rest), "2.0").ok_or("version is not 2.0")?;
    let rest = rest.strip_prefix('/').ok_or("missing / after 2.0")?;
    let rest = trim_lws(rest);
    let tlen = rest
        .bytes()
        .position(|b| !is_token_char(b))
        .unwrap_or(rest.len());
    let transport = match &rest[..tlen] {
        t if t.eq_ignore_ascii_case("UDP") => TransportKind::Udp,
        t if t.eq_ignore_ascii_case("TCP") => TransportKind::Tcp,
        t if t.eq_ignore_ascii_case("TLS") => TransportKind::Tls,
        _ => return Err("unsupported transport"),
    };
    let after = &rest[tlen..];
    let sent_by_start = trim_lws(after);
    if sent_by_start.len() == after.len() {
        return Err("no LWS before sent-by");
    }
    let (sent_by, params_text) = match sent_by_start.find(';') {
        Some(i) => sent_by_start.split_at(i),
        None => (sent_by_start, ""),
    };
    let (host, port) = split_hostport(trim_lws(sent_by), true)?;
    let mut via = Via {
        transport,
        host: host.to_string(),
        port,
        branch: None,
        received: None,
        rport: None,
        params: Vec::new(),
    };
    for (name, value) in parse_header_params(params_text)? {
        if name.eq_ignore_ascii_case("branch") {
            via.branch = Some(value.ok_or("branch without value")?);
        } else if name.eq_ignore_ascii_case("received") {
            let v = value.ok_or("received without value")?;
            let v = v
                .strip_prefix('[')
                .and_then(|x| x.strip_suffix(']'))
                .unwrap_or(&v);
            let ip = match v.parse::<IpAddr>() {
                Ok(ip) => ip,
                Err(_) => IpAddr::V6(parse_ipv6(v).ok_or("received is not an IP address")?),
            };
            via.received = Some(ip);
        } else if name.eq_ignore_ascii_case("rport") {
            via.rport = Some(match value {
                None => None,
                Some(v) => Some(
                    parse_decimal(&v)
                        .and_then(|p| u16::try_from(p).ok())
                        .ok_or("rport is not a port")?,
                ),
            });
        } else {
            via.params.push((name, value));
        }
    }
    Ok(via)
}

/// Rough size of the serialised header block and body, for one allocation.
fn wire_size_hint(headers: &Headers, body: &Bytes) -> usize {
    headers
        .0
        .iter()
        .map(|h| h.name.as_str().len() + h.value.len() + 4)
        .sum::<usize>()
        + body.len()
        + 32
}

/// Writes every header except Content-Length, then Content-Length from the body, the
/// blank line and the body.
fn write_headers_and_body(out: &mut Vec<u8>, headers: &Headers, body: &Bytes) {
    for h in &headers.0 {
        if h.name == HeaderName::ContentLength {
            continue;
        }
        out.extend_from_slice(h.name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // Writing into a Vec cannot fail.
    let _ = write!(out, "Content-Length: {}\r\n\r\n", body.len());
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_case_insensitive_and_compact_forms_expand() {
        assert_eq!(HeaderName::from_wire("via"), HeaderName::Via);
        assert_eq!(HeaderName::from_wire("CALL-id"), HeaderName::CallId);
        assert_eq!(HeaderName::from_wire("cseq"), HeaderName::CSeq);
        let compact = [
            ("v", HeaderName::Via),
            ("i", HeaderName::CallId),
            ("F", HeaderName::From),
            ("t", HeaderName::To),
            ("m", HeaderName::Contact),
            ("l", HeaderName::ContentLength),
            ("c", HeaderName::ContentType),
            ("k", HeaderName::Supported),
            ("s", HeaderName::Subject),
            ("e", HeaderName::ContentEncoding),
            ("o", HeaderName::Event),
            ("r", HeaderName::ReferTo),
            ("u", HeaderName::Other("Allow-Events".into())),
        ];
        for (wire, name) in compact {
            assert_eq!(HeaderName::from_wire(wire), name, "{wire}");
        }
        assert_eq!(
            HeaderName::from_wire("X-Custom"),
            HeaderName::Other("X-Custom".into())
        );
        assert_eq!(HeaderName::from_wire("x"), HeaderName::Other("x".into()));
    }

    #[test]
    fn sip_uri_parts() {
        let u = Uri::parse("sip:alice:secret@Example.com:5070;transport=tcp;lr?subject=hi&x=y")
            .unwrap();
        assert_eq!(u.scheme, "sip");
        assert_eq!(u.user.as_deref(), Some("alice:secret"));
        assert_eq!(u.user_name(), Some("alice"));
        assert_eq!(u.host, "Example.com");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.param("TRANSPORT"), Some(Some("tcp")));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(u.headers.as_deref(), Some("subject=hi&x=y"));
        assert_eq!(
            u.to_string(),
            "sip:alice:secret@Example.com:5070;transport=tcp;lr?subject=hi&x=y"
        );
    }

    #[test]
    fn sip_uri_ipv6_and_escapes() {
        let u = Uri::parse("SIPS:[2001:db8::10]:5061").unwrap();
        assert_eq!(u.scheme, "sips");
        assert_eq!(u.host, "[2001:db8::10]");
        assert_eq!(u.port, Some(5061));
        let u = Uri::parse("sip:[2001:db8::10:5070]").unwrap();
        assert_eq!(u.port, None);
        let u = Uri::parse("sip:user@[2001:db8:::192.0.2.1]").unwrap();
        assert_eq!(u.host, "[2001:db8:::192.0.2.1]");
        let u = Uri::parse("sip:sips%3Auser%40example.com@example.net").unwrap();
        assert_eq!(u.user.as_deref(), Some("sips%3Auser%40example.com"));
        let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
        assert_eq!(u.host, "example.com");
        assert!(u.params.is_empty());
    }

    #[test]
    fn other_schemes_are_opaque() {
        let u = Uri::parse("tel:+1-201-555-0123;phone-context=x").unwrap();
        assert_eq!(u.scheme, "tel");
        assert_eq!(u.host, "+1-201-555-0123;phone-context=x");
        assert_eq!(u.to_string(), "tel:+1-201-555-0123;phone-context=x");
        let u = Uri::parse("nobodyknowsthisscheme:totallyopaquecontent").unwrap();
        assert_eq!(u.scheme, "nobodyknowsthisscheme");
    }

    #[test]
    fn bad_uris_are_rejected() {
        for bad in [
            "",
            "sip:",
            "sip:@host",
            "<sip:a@b>",
            "sip:a b@host",
            "sip:host:99999",
            "sip:host:",
            "sip:2001:db8::10",
            "sip:[2001:db8::10",
            "sip:[not-v6]",
            "sip:user@host;",
            "sip:a%zz@host",
            "1sip:host",
            "sip:host?",
            "tel:",
        ] {
            assert!(
                matches!(Uri::parse(bad), Err(ParseError::BadUri(_))),
                "{bad:?} parsed"
            );
        }
    }

    #[test]
    fn name_addr_forms() {
        let na = NameAddr::parse(r#" "J Rosenberg \\\"" <sip:jdrosen@example.com>;tag=98asjd8"#)
            .unwrap();
        assert_eq!(na.display.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(na.uri.host, "example.com");
        assert_eq!(na.tag(), Some("98asjd8"));
        // Round trip through Display keeps the display name.
        let again = NameAddr::parse(&na.to_string()).unwrap();
        assert_eq!(again, na);

        let na = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(na.display.as_deref(), Some("caller"));
        assert_eq!(na.tag(), Some("323"));

        let na =
            NameAddr::parse("Bob Smith <sip:bob@b.example;transport=tcp> ; tag = x1 ;foo").unwrap();
        assert_eq!(na.display.as_deref(), Some("Bob Smith"));
        assert_eq!(na.uri.param("transport"), Some(Some("tcp")));
        assert_eq!(na.tag(), Some("x1"));
        assert_eq!(na.params[1], ("foo".to_string(), None));

        // addr-spec: parameters belong to the header, not the URI (RFC 3261 §20).
        let na = NameAddr::parse("sip:user@example.com;tag=81x2").unwrap();
        assert_eq!(na.display, None);
        assert!(na.uri.params.is_empty());
        assert_eq!(na.tag(), Some("81x2"));
    }

    #[test]
    fn name_addr_errors() {
        for bad in [
            "",
            "\"unterminated <sip:a@b>",
            "\"x\" sip:a@b",
            "<sip:a@b",
            "<sip:a@b>;",
            "<sip:a@b>;=x",
            "<sip:a@b> junk",
            "sip:a@b?x=y",
            "Bad\"Name <sip:a@b>",
        ] {
            assert!(NameAddr::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn name_addr_lists_respect_quotes_and_brackets() {
        let l = NameAddr::parse_list(
            r#""Doe, John" <sip:j@a.example;x=1,2>, <sip:b@b.example>;q=0.5 ,sip:c@c.example"#,
        );
        // `,` inside a URI param is not allowed unescaped, so the first element fails.
        assert!(l.is_err());
        let l = NameAddr::parse_list(
            r#""Doe, John" <sip:j@a.example>, <sip:b@b.example>;q=0.5 ,sip:c@c.example"#,
        )
        .unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].display.as_deref(), Some("Doe, John"));
        assert_eq!(
            l[1].params,
            vec![("q".to_string(), Some("0.5".to_string()))]
        );
        assert_eq!(l[2].uri.host, "c.example");
    }

    #[test]
    fn via_with_lws_everywhere() {
        let v = Via::parse(
            "SIP / 2.0 / UDP first.example.com: 4000;ttl=16 ;maddr=224.2.0.1 ;branch=z9hG4bKa7c6a8dlze.1",
        )
        .unwrap();
        assert_eq!(v.transport, TransportKind::Udp);
        assert_eq!(v.host, "first.example.com");
        assert_eq!(v.port, Some(4000));
        assert_eq!(v.branch.as_deref(), Some("z9hG4bKa7c6a8dlze.1"));
        assert!(v.is_rfc3261_branch());
        assert_eq!(
            v.params,
            vec![
                ("ttl".to_string(), Some("16".to_string())),
                ("maddr".to_string(), Some("224.2.0.1".to_string()))
            ]
        );
    }

    #[test]
    fn via_ipv6_received_rport_and_lists() {
        let v = Via::parse("SIP/2.0/tcp [2001:db8::9:1]:6050;branch=z9hG4bK1;received=2001:db8::9:255;rport, SIP/2.0/UDP other").unwrap();
        assert_eq!(v.transport, TransportKind::Tcp);
        assert_eq!(v.host, "[2001:db8::9:1]");
        assert_eq!(v.port, Some(6050));
        assert_eq!(v.received, Some("2001:db8::9:255".parse().unwrap()));
        assert_eq!(v.rport, Some(None));
        let v = Via::parse("SIP/2.0/UDP h;received=[2001:db8::9:255];rport=5060").unwrap();
        assert_eq!(v.received, Some("2001:db8::9:255".parse().unwrap()));
        assert_eq!(v.rport, Some(Some(5060)));
        // Round trip.
        assert_eq!(Via::parse(&v.to_string()).unwrap(), v);
    }

    #[test]
    fn via_errors() {
        for bad in [
            "",
            "SIP/3.0/UDP h",
            "SIP/2.0/SCTP h",
            "SIP/2.0/UDPh",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP h:port",
            "SIP/2.0/UDP h;received=nope",
            "SIP/2.0/UDP h;rport=70000",
            "SIP/2.0/UDP h;branch",
            "SIP/2.0/UDP h junk",
        ] {
            assert!(
                matches!(
                    Via::parse(bad),
                    Err(ParseError::BadHeader { name: "Via", .. })
                ),
                "{bad:?} parsed"
            );
        }
    }

    #[test]
    fn cseq_range_and_form() {
        assert_eq!(
            CSeq::parse(" 4711   INVITE ").unwrap(),
            CSeq {
                seq: 4711,
                method: Method::Invite
            }
        );
        assert_eq!(CSeq::parse("2147483647 BYE").unwrap().seq, 2_147_483_647);
        for bad in [
            "2147483648 BYE",
            "36893488147419103232 INVITE",
            "-1 INVITE",
            "INVITE",
            "1INVITE",
            "1 ",
            "1 IN VITE",
        ] {
            assert!(CSeq::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    fn sample_request() -> Request {
        let mut headers = Headers::default();
        headers.push(HeaderName::Via, "SIP/2.0/UDP a.example;branch=z9hG4bK1");
        headers.push(HeaderName::Via, "SIP/2.0/UDP b.example;branch=z9hG4bK2");
        headers.push(HeaderName::MaxForwards, "70");
        headers.push(HeaderName::From, "<sip:alice@a.example>;tag=f1");
        headers.push(HeaderName::To, "sip:bob@b.example");
        headers.push(HeaderName::CallId, "abc@a.example");
        headers.push(HeaderName::CSeq, "1 INVITE");
        headers.push(HeaderName::ContentLength, "999");
        Request {
            method: Method::Invite,
            uri: Uri::parse("sip:bob@b.example").unwrap(),
            headers,
            body: Bytes::from_static(b"v=0\r\n"),
        }
    }

    #[test]
    fn response_for_request_copies_the_rfc_headers() {
        let req = sample_request();
        let resp = Response::for_request(&req, 200, "OK", Some("t9"));
        let names: Vec<_> = resp.headers.0.iter().map(|h| h.name.clone()).collect();
        assert_eq!(
            names,
            vec![
                HeaderName::Via,
                HeaderName::Via,
                HeaderName::From,
                HeaderName::To,
                HeaderName::CallId,
                HeaderName::CSeq
            ]
        );
        assert_eq!(resp.to_header().unwrap().tag(), Some("t9"));
        assert_eq!(resp.from_header().unwrap().tag(), Some("f1"));
        assert_eq!(resp.cseq().unwrap().method, Method::Invite);
        assert!(resp.body.is_empty());
        // An existing To tag is kept, not doubled.
        let again = Response::for_request(
            &Request {
                headers: resp.headers.clone(),
                ..req.clone()
            },
            200,
            "OK",
            Some("other"),
        );
        assert_eq!(
            again.headers.get(&HeaderName::To),
            Some("sip:bob@b.example;tag=t9")
        );
        // No tag requested: To copied unchanged.
        let trying = Response::for_request(&req, 100, "Trying", None);
        assert_eq!(
            trying.headers.get(&HeaderName::To),
            Some("sip:bob@b.example")
        );
    }

    #[test]
    fn to_bytes_writes_crlf_and_content_length_from_body() {
        let req = sample_request();
        let text = String::from_utf8(req.to_bytes()).unwrap();
        assert!(text.starts_with(
            "INVITE sip:bob@b.example SIP/2.0\r\nVia: SIP/2.0/UDP a.example;branch=z9hG4bK1\r\n"
        ));
        assert!(text.ends_with("\r\nContent-Length: 5\r\n\r\nv=0\r\n"));
        assert!(!text.contains("999"));
        let resp = Response::for_request(&req, 486, "Busy Here", None);
        let text = String::from_utf8(resp.to_bytes()).unwrap();
        assert!(text.starts_with("SIP/2.0 486 Busy Here\r\n"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
    }
}
