//! Whole-message codec: framing (UDP datagram, TCP stream), the header pre-pass
//! (unfolding, compact names, `Name :`), the start line, and the checks RFC 3261 §8.2
//! and RFC 4475 ask of a parser.
//!
//! One pass over the header block does everything: each line is split once into name
//! and value, the name is mapped to a [`HeaderName`] (compact forms included) and the
//! value is copied once (folded continuation lines are appended to it). The body is
//! sliced, not copied, when the caller hands over a [`Bytes`].

use super::{
    is_lws, is_token_char, name_addr_parts, parse_decimal, snippet, trim_lws, via_parts, CSeq,
    Header, HeaderName, Headers, Method, NameAddr, ParseError, Request, Response, SipMessage,
    SplitTop, Uri,
};
use bytes::Bytes;

/// Largest message accepted: the largest UDP payload, and the default limit of a
/// [`Framer`] for one message on a stream.
pub const MAX_MESSAGE_SIZE: usize = 65_535;

/// How the body is delimited (RFC 3261 §18.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// UDP: Content-Length optional (body = rest of datagram), may truncate the datagram.
    Datagram,
    /// TCP: the frame ends exactly where Content-Length says.
    Stream,
}

/// Parses one UDP datagram as one SIP message.
///
/// Leading CRLFs are skipped (RFC 3261 §7.5). A Content-Length shorter than the rest of
/// the datagram truncates the body (bytes after it are ignored, RFC 3261 §18.3); a
/// longer one is [`ParseError::ContentLength`]; without Content-Length the body is the
/// rest of the datagram. The body is copied; [`parse_datagram_bytes`] avoids the copy.
pub fn parse_datagram(data: &[u8]) -> Result<SipMessage, ParseError> {
    parse_message(data, None, Framing::Datagram)
}

/// [`parse_datagram`] over an owned buffer: the body is a slice of `data`, not a copy.
pub fn parse_datagram_bytes(data: Bytes) -> Result<SipMessage, ParseError> {
    parse_message(&data, Some(&data), Framing::Datagram)
}

/// Parses one message framed off a stream by [`Framer::next_frame`]: Content-Length is
/// required and must match the body exactly.
pub fn parse_frame(frame: &[u8]) -> Result<SipMessage, ParseError> {
    parse_message(frame, None, Framing::Stream)
}

/// Number of CR / LF bytes before the start line.
pub(super) fn leading_crlf(data: &[u8]) -> usize {
    data.iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count()
}

/// Finds the empty line that ends the header block. Returns `(head_len, body_start)`:
/// the header lines are `data[..head_len]` (each ended by LF or CRLF) and the body
/// starts at `body_start`. Bare LF line ends are tolerated.
pub(super) fn find_head_end(data: &[u8]) -> Option<(usize, usize)> {
    find_head_end_from(data, 0)
}

/// [`find_head_end`] starting the search at `from` (a position known to be before the
/// empty line, so a stream that trickles in is not rescanned from the start).
fn find_head_end_from(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while let Some(off) = data.get(i..)?.iter().position(|&b| b == b'\n') {
        let nl = i + off;
        match data.get(nl + 1) {
            Some(b'\n') => return Some((nl + 1, nl + 2)),
            Some(b'\r') if data.get(nl + 2) == Some(&b'\n') => return Some((nl + 1, nl + 3)),
            _ => i = nl + 1,
        }
    }
    None
}

/// The start line, parsed.
pub(super) enum StartLine<'a> {
    Request { method: &'a str, uri: &'a str },
    Response { status: u16, reason: &'a str },
}

/// Checks a SIP-Version token: `SIP/2.0` (any case) is fine; another well-formed
/// version is [`ParseError::Version`] (answered with 505); anything else is a malformed
/// start line.
fn check_version(v: &str, line: &str) -> Result<(), ParseError> {
    if v.eq_ignore_ascii_case("SIP/2.0") {
        return Ok(());
    }
    let well_formed = v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
        && v[4..].split_once('.').is_some_and(|(major, minor)| {
            !major.is_empty()
                && !minor.is_empty()
                && major.bytes().all(|b| b.is_ascii_digit())
                && minor.bytes().all(|b| b.is_ascii_digit())
        });
    if well_formed {
        Err(ParseError::Version(snippet(v)))
    } else {
        Err(ParseError::StartLine(snippet(line)))
    }
}

pub(super) fn parse_start_line(line: &str) -> Result<StartLine<'_>, ParseError> {
    let bad = || ParseError::StartLine(snippet(line));
    let is_response = line
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"));
    if is_response {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (reason may be empty;
        // a missing final SP is tolerated).
        let (version, rest) = line.split_once(' ').ok_or_else(bad)?;
        check_version(version, line)?;
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let status: u16 = code.parse().map_err(|_| bad())?;
        if !(100..=699).contains(&status) {
            return Err(bad());
        }
        // Reason-Phrase allows SP and HTAB but no other control character (§25.1).
        if reason.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(bad());
        }
        return Ok(StartLine::Response { status, reason });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version, single spaces, nothing after.
    let (method, rest) = line.split_once(' ').ok_or_else(bad)?;
    let (uri, version) = rest.split_once(' ').ok_or_else(bad)?;
    if method.is_empty() || !method.bytes().all(is_token_char) || uri.is_empty() {
        return Err(bad());
    }
    if version.bytes().any(|b| b == b' ' || b == b'\t') {
        return Err(bad());
    }
    check_version(version, line)?;
    Ok(StartLine::Request { method, uri })
}

/// Splits the header lines into [`Headers`], unfolding continuation lines and
/// normalising names.
fn parse_header_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Headers, ParseError> {
    let mut headers: Vec<Header> = Vec::with_capacity(16);
    for line in lines {
        if line.starts_with([' ', '\t']) {
            // A folded continuation (RFC 3261 §7.3.1): LWS becomes one SP.
            let last = headers
                .last_mut()
                .ok_or_else(|| ParseError::HeaderLine(snippet(line)))?;
            let more = trim_lws(line);
            if !more.is_empty() {
                if !last.value.is_empty() {
                    last.value.push(' ');
                }
                last.value.push_str(more);
            }
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| ParseError::HeaderLine(snippet(line)))?;
        // `Name :` is allowed (HCOLON = *( SP / HTAB ) ":" SWS).
        let name = name.trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(is_token_char) {
            return Err(ParseError::HeaderLine(snippet(line)));
        }
        headers.push(Header {
            name: HeaderName::from_wire(name),
            value: trim_lws(value).to_string(),
        });
    }
    Ok(Headers(headers))
}

fn bad_header(name: &'static str, reason: &str) -> ParseError {
    ParseError::BadHeader {
        name,
        reason: reason.to_string(),
    }
}

/// A header whose value must be `1*DIGIT`.
fn check_digits(value: &str, name: &'static str) -> Result<(), ParseError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::BadHeader {
            name,
            reason: "not a non-negative integer".to_string(),
        });
    }
    Ok(())
}

/// Header checks shared by requests and responses; returns the Content-Length.
pub(super) fn check_headers(
    headers: &Headers,
    is_request: bool,
) -> Result<Option<usize>, ParseError> {
    let mut content_length = None;
    let (mut to, mut from, mut call_id, mut cseq, mut max_fwd, mut via) =
        (None, None, None, None, false, None);
    for h in &headers.0 {
        let (slot, name): (&mut Option<&str>, &'static str) = match h.name {
            HeaderName::To => (&mut to, "To"),
            HeaderName::From => (&mut from, "From"),
            HeaderName::CallId => (&mut call_id, "Call-ID"),
            HeaderName::CSeq => (&mut cseq, "CSeq"),
            HeaderName::Via => {
                via.get_or_insert(h.value.as_str());
                continue;
            }
            HeaderName::MaxForwards => {
                if max_fwd {
                    return Err(duplicate("Max-Forwards"));
                }
                max_fwd = true;
                check_digits(&h.value, "Max-Forwards")?;
                continue;
            }
            HeaderName::Expires => {
                check_digits(&h.value, "Expires")?;
                continue;
            }
            HeaderName::ContentLength => {
                if content_length.is_some() {
                    return Err(duplicate("Content-Length"));
                }
                check_digits(&h.value, "Content-Length")?;
                let n = parse_decimal(&h.value)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or(ParseError::TooLarge(usize::MAX))?;
                content_length = Some(n);
                continue;
            }
            HeaderName::Contact if is_request => {
                if h.value != "*" {
                    for part in SplitTop::new(&h.value, b',', true) {
                        name_addr_parts(part).map_err(|r| bad_header("Contact", r))?;
                    }
                }
                continue;
            }
            _ => continue,
        };
        if slot.is_some() {
            return Err(duplicate(name));
        }
        *slot = Some(h.value.as_str());
    }
    let via = via.ok_or(ParseError::MissingHeader("Via"))?;
    let to = to.ok_or(ParseError::MissingHeader("To"))?;
    let from = from.ok_or(ParseError::MissingHeader("From"))?;
    let call_id = call_id.ok_or(ParseError::MissingHeader("Call-ID"))?;
    let cseq = cseq.ok_or(ParseError::MissingHeader("CSeq"))?;
    if call_id.is_empty() || call_id.bytes().any(is_lws) {
        return Err(ParseError::BadHeader {
            name: "Call-ID",
            reason: "not a word[@word]".to_string(),
        });
    }
    via_parts(via).map_err(|r| bad_header("Via", r))?;
    name_addr_parts(to).map_err(|r| bad_header("To", r))?;
    name_addr_parts(from).map_err(|r| bad_header("From", r))?;
    CSeq::parse(cseq)?;
    Ok(content_length)
}

fn duplicate(name: &'static str) -> ParseError {
    ParseError::BadHeader {
        name,
        reason: "appears more than once".to_string(),
    }
}

/// The header lines of `head` (the bytes before the empty line), start line first.
pub(super) fn lines(head: &str) -> impl Iterator<Item = &str> {
    head.strip_suffix('\n')
        .unwrap_or(head)
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
}

fn parse_message(
    data: &[u8],
    owner: Option<&Bytes>,
    framing: Framing,
) -> Result<SipMessage, ParseError> {
    if data.len() > MAX_MESSAGE_SIZE && framing == Framing::Datagram {
        return Err(ParseError::TooLarge(data.len()));
    }
    let skip = leading_crlf(data);
    let rest = &data[skip..];
    let (head_len, body_start) = find_head_end(rest).ok_or(ParseError::Incomplete)?;
    let head = std::str::from_utf8(&rest[..head_len]).map_err(|_| ParseError::Utf8("header"))?;
    let mut lines = lines(head);
    let start = parse_start_line(lines.next().unwrap_or(""))?;
    let headers = parse_header_lines(lines)?;

    let is_request = matches!(start, StartLine::Request { .. });
    let content_length = check_headers(&headers, is_request)?;

    let available = rest.len() - body_start;
    let body_len = match (content_length, framing) {
        (Some(declared), _) if declared > available => {
            return Err(ParseError::ContentLength {
                declared,
                actual: available,
            })
        }
        (Some(declared), Framing::Datagram) => declared,
        (Some(declared), Framing::Stream) if declared == available => declared,
        (Some(declared), Framing::Stream) => {
            return Err(ParseError::ContentLength {
                declared,
                actual: available,
            })
        }
        (None, Framing::Datagram) => available,
        (None, Framing::Stream) => return Err(ParseError::MissingHeader("Content-Length")),
    };
    let body_at = skip + body_start;
    let body = match owner {
        Some(b) => b.slice(body_at..body_at + body_len),
        None => Bytes::copy_from_slice(&data[body_at..body_at + body_len]),
    };

    match start {
        StartLine::Request { method, uri } => {
            let method = Method::from_token(method);
            let uri = Uri::parse(uri)?;
            check_request_line(&method, &uri, &headers)?;
            Ok(SipMessage::Request(Request {
                method,
                uri,
                headers,
                body,
            }))
        }
        StartLine::Response { status, reason } => Ok(SipMessage::Response(Response {
            status,
            reason: reason.to_string(),
            headers,
            body,
        })),
    }
}

/// Checks that need the request line: no headers in the Request-URI (RFC 3261 §19.1.1
/// table 1) and the CSeq method equal to the request method (§8.1.1.5).
pub(super) fn check_request_line(
    method: &Method,
    uri: &Uri,
    headers: &Headers,
) -> Result<(), ParseError> {
    if uri.headers.is_some() {
        return Err(ParseError::BadUri(format!(
            "headers not allowed: {}",
            snippet(&uri.to_string())
        )));
    }
    let cseq = headers
        .get(&HeaderName::CSeq)
        .map(CSeq::parse)
        .ok_or(ParseError::MissingHeader("CSeq"))??;
    if &cseq.method != method {
        return Err(ParseError::BadHeader {
            name: "CSeq",
            reason: format!(
                "method {} does not match request method {}",
                snippet(cseq.method.as_str()),
                snippet(method.as_str())
            ),
        });
    }
    Ok(())
}

/// Builds the stateless answer to a request that failed to parse: `505 Version Not
/// Supported` for [`ParseError::Version`], else `400` with the error's text as reason
/// (RFC 3261 §8.2.2 / §16.3, RFC 4475). Via (all), From, To, Call-ID and CSeq are copied
/// from the raw bytes as far as they can be read; `to_tag` is added to a To without one.
///
/// Returns `None` when no answer is possible or wanted: the bytes are a response (a
/// malformed response is dropped) or an ACK (never answered), or no Via can be found
/// to send the answer to.
pub fn error_response(data: &[u8], err: &ParseError, to_tag: Option<&str>) -> Option<Response> {
    let rest = &data[leading_crlf(data)..];
    let head_len = find_head_end(rest).map_or(rest.len(), |(h, _)| h);
    let head = match std::str::from_utf8(&rest[..head_len]) {
        Ok(h) => h,
        // Keep what is readable; the copied headers come first in real messages.
        Err(e) => std::str::from_utf8(&rest[..e.valid_up_to()]).ok()?,
    };
    let mut lines = lines(head);
    let start = lines.next()?;
    if start
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
        || start.is_empty()
    {
        return None;
    }
    // An ACK is never answered (RFC 3261 §17: it has no response of its own).
    if start.split(' ').next() == Some("ACK") {
        return None;
    }
    // Tolerant pass: unfold, skip what cannot be read.
    let mut raw: Vec<Header> = Vec::new();
    let mut keep_last = false;
    for line in lines {
        if line.starts_with([' ', '\t']) {
            if keep_last {
                if let Some(last) = raw.last_mut() {
                    last.value.push(' ');
                    last.value.push_str(trim_lws(line));
                }
            }
            continue;
        }
        keep_last = false;
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = HeaderName::from_wire(name.trim_end_matches([' ', '\t']));
        let wanted = matches!(
            name,
            HeaderName::Via
                | HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
        );
        if wanted {
            raw.push(Header {
                name,
                value: trim_lws(value).to_string(),
            });
            keep_last = true;
        }
    }
    // Never echo control characters into the answer.
    raw.retain(|h| !h.value.chars().any(char::is_control));
    if !raw.iter().any(|h| h.name == HeaderName::Via) {
        return None;
    }
    let mut headers = Headers(Vec::with_capacity(raw.len()));
    for mut h in raw {
        // One value of each single-value header: the first (multi01 has two of each).
        if h.name != HeaderName::Via && headers.get(&h.name).is_some() {
            continue;
        }
        if h.name == HeaderName::To {
            if let Some(tag) = to_tag {
                if !NameAddr::parse(&h.value).is_ok_and(|na| na.tag().is_some()) {
                    h.value.push_str(";tag=");
                    h.value.push_str(tag);
                }
            }
        }
        headers.0.push(h);
    }
    let (status, reason) = match err {
        ParseError::Version(_) => (505, "Version Not Supported".to_string()),
        other => (400, other.to_string()),
    };
    Some(Response {
        status,
        reason,
        headers,
        body: Bytes::new(),
    })
}

/// Splits a TCP byte stream into messages framed by Content-Length (RFC 3261 §18.3).
/// Keep-alive CRLFs between messages are skipped.
///
/// Two kinds of error come out of [`Framer::next_message`]: a framing error (no or
/// malformed Content-Length, a header block or message over the size limit, bytes that
/// are not a header block) leaves the stream unframeable: it is returned again on every
/// later call and [`Framer::is_broken`] is true; the caller closes the connection. A
/// parse error of a well-framed message consumes that message only; the caller answers
/// it (see [`error_response`], with the bytes from [`Framer::next_frame`]) and goes on.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    max: usize,
    /// Bytes needed before the buffered message is complete (skip re-scanning).
    need: usize,
    /// Where the search for the end of the header block resumes.
    head_scanned: usize,
    broken: Option<ParseError>,
    /// What was buffered when framing failed.
    unframed: Vec<u8>,
}

impl Default for Framer {
    fn default() -> Self {
        Framer::with_max_size(MAX_MESSAGE_SIZE)
    }
}

impl Framer {
    /// A framer with an empty buffer and the default size limit ([`MAX_MESSAGE_SIZE`]).
    pub fn new() -> Self {
        Self::default()
    }
    /// A framer that refuses messages (header block plus body) larger than `max` bytes.
    pub fn with_max_size(max: usize) -> Self {
        Framer {
            buf: Vec::new(),
            max,
            need: 0,
            head_scanned: 0,
            broken: None,
            unframed: Vec::new(),
        }
    }
    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }
    /// After a framing error: the bytes that could not be framed (the start of the
    /// offending message), to build the `400` from with [`error_response`].
    pub fn unframed(&self) -> &[u8] {
        &self.unframed
    }

    /// Whether a framing error made the stream unusable.
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }
    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole message, if one is buffered. An `Err` means the stream cannot be
    /// framed any more (no Content-Length on a stream, oversize): the caller answers what
    /// it can and closes the connection; or that one framed message did not parse (see
    /// the type's documentation for telling them apart).
    pub fn next_message(&mut self) -> Option<Result<SipMessage, ParseError>> {
        match self.frame_len()? {
            Ok(len) => {
                let parsed = parse_frame(&self.buf[..len]);
                self.buf.drain(..len);
                Some(parsed)
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// The bytes of the next whole message, unparsed (for [`parse_frame`] and
    /// [`error_response`]); errors are framing errors only.
    pub fn next_frame(&mut self) -> Option<Result<Vec<u8>, ParseError>> {
        match self.frame_len()? {
            Ok(len) => Some(Ok(self.buf.drain(..len).collect())),
            Err(e) => Some(Err(e)),
        }
    }

    /// Length of the next complete frame at the start of the buffer.
    fn frame_len(&mut self) -> Option<Result<usize, ParseError>> {
        if let Some(e) = &self.broken {
            return Some(Err(e.clone()));
        }
        if self.need > self.buf.len() {
            return None;
        }
        let skip = leading_crlf(&self.buf);
        if skip > 0 {
            self.buf.drain(..skip);
            self.head_scanned = 0;
        }
        if self.buf.is_empty() {
            return None;
        }
        match self.scan() {
            Ok(Some(len)) if len <= self.buf.len() => {
                self.need = 0;
                self.head_scanned = 0;
                Some(Ok(len))
            }
            Ok(Some(len)) => {
                self.need = len;
                None
            }
            Ok(None) => None,
            Err(e) => {
                self.broken = Some(e.clone());
                self.unframed = std::mem::take(&mut self.buf);
                Some(Err(e))
            }
        }
    }

    /// Total length of the message at the start of the buffer once its header block is
    /// complete (`None` while it is not).
    fn scan(&mut self) -> Result<Option<usize>, ParseError> {
        let Some((head_len, body_start)) = find_head_end_from(&self.buf, self.head_scanned) else {
            if self.buf.len() > self.max {
                return Err(ParseError::TooLarge(self.buf.len()));
            }
            // The empty line may start in the last two bytes seen so far.
            self.head_scanned = self.buf.len().saturating_sub(2);
            return Ok(None);
        };
        if body_start > self.max {
            return Err(ParseError::TooLarge(body_start));
        }
        let head =
            std::str::from_utf8(&self.buf[..head_len]).map_err(|_| ParseError::Utf8("header"))?;
        let mut content_length = None;
        for line in lines(head).skip(1) {
            if line.starts_with([' ', '\t']) {
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let name = name.trim_end_matches([' ', '\t']);
            if name.eq_ignore_ascii_case("Content-Length") || name.eq_ignore_ascii_case("l") {
                let value = trim_lws(value);
                let n = parse_decimal(value)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| ParseError::BadHeader {
                        name: "Content-Length",
                        reason: "not a non-negative integer".to_string(),
                    })?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(duplicate("Content-Length"));
                }
                content_length = Some(n);
            }
        }
        let n = content_length.ok_or(ParseError::MissingHeader("Content-Length"))?;
        let total = body_start.checked_add(n).ok_or(ParseError::TooLarge(n))?;
        if total > self.max {
            return Err(ParseError::TooLarge(total));
        }
        Ok(Some(total))
    }
}
