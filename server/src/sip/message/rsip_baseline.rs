//! The codec built the way `docs/stack.md` first sketched it: a pre-pass that scans the
//! header block (Content-Length, and whether the text needs rewriting because `rsip`
//! rejects folded lines, compact names and `Name :`), then `rsip::SipMessage::try_from`,
//! then conversion into our types and the same post-checks as [`parse_datagram`].
//!
//! The server does not use it. [`parse_datagram`] does the one pass itself: the pre-pass
//! already splits every header line, so handing the text to rsip only adds a second
//! parse and a conversion (see the numbers in `benches/benches/sip_parse.rs`). It is
//! kept as the differential oracle of the unit tests and as the bench baseline.
//!
//! [`parse_datagram`]: super::parse_datagram

use super::codec::{
    check_headers, check_request_line, find_head_end, leading_crlf, lines, parse_start_line,
    StartLine,
};
use super::{
    parse_decimal, snippet, trim_lws, HeaderName, Headers, Method, ParseError, Request, Response,
    SipMessage, Uri, MAX_MESSAGE_SIZE,
};
use bytes::Bytes;

/// Parses a datagram through `rsip` (oracle and bench baseline; not for the server).
pub fn parse_datagram_via_rsip(data: &[u8]) -> Result<SipMessage, ParseError> {
    if data.len() > MAX_MESSAGE_SIZE {
        return Err(ParseError::TooLarge(data.len()));
    }
    let rest = &data[leading_crlf(data)..];
    let (head_len, body_start) = find_head_end(rest).ok_or(ParseError::Incomplete)?;
    let head = std::str::from_utf8(&rest[..head_len]).map_err(|_| ParseError::Utf8("header"))?;

    // Pre-pass: find Content-Length, decide whether rsip needs a rewritten copy.
    let mut needs_rewrite = false;
    let mut content_length = None;
    let mut all = lines(head);
    let start_line = all.next().unwrap_or("");
    for line in all {
        if line.starts_with([' ', '\t']) {
            needs_rewrite = true;
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| ParseError::HeaderLine(snippet(line)))?;
        let trimmed = name.trim_end_matches([' ', '\t']);
        needs_rewrite |= trimmed.len() != name.len() || trimmed.len() == 1;
        if trimmed.eq_ignore_ascii_case("Content-Length") || trimmed.eq_ignore_ascii_case("l") {
            let n = parse_decimal(trim_lws(value))
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| ParseError::BadHeader {
                    name: "Content-Length",
                    reason: "not a non-negative integer".to_string(),
                })?;
            content_length = Some(n);
        }
    }
    let available = rest.len() - body_start;
    let body_len = match content_length {
        Some(declared) if declared > available => {
            return Err(ParseError::ContentLength {
                declared,
                actual: available,
            })
        }
        Some(declared) => declared,
        None => available,
    };
    let body = &rest[body_start..body_start + body_len];

    let rewritten;
    let text: &[u8] = if needs_rewrite {
        let mut out = Vec::with_capacity(body_start + body_len);
        let mut all = lines(head);
        out.extend_from_slice(all.next().unwrap_or("").as_bytes());
        for line in all {
            if line.starts_with([' ', '\t']) {
                out.push(b' ');
                out.extend_from_slice(trim_lws(line).as_bytes());
            } else if let Some((name, value)) = line.split_once(':') {
                let name = HeaderName::from_wire(name.trim_end_matches([' ', '\t']));
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(name.as_str().as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(trim_lws(value).as_bytes());
            }
        }
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(body);
        rewritten = out;
        &rewritten
    } else {
        &rest[..body_start + body_len]
    };

    let parsed = rsip::SipMessage::try_from(text)
        .map_err(|e| ParseError::HeaderLine(snippet(&e.to_string())))?;
    let is_request = parsed.is_request();
    if parsed.version().to_string() != "SIP/2.0" {
        return Err(ParseError::Version(snippet(&parsed.version().to_string())));
    }
    match parsed {
        rsip::SipMessage::Request(r) => {
            let headers = convert_headers(r.headers);
            check_headers(&headers, is_request)?;
            let method = Method::from_token(&r.method.to_string());
            let uri = Uri::parse(&r.uri.to_string())?;
            check_request_line(&method, &uri, &headers)?;
            Ok(SipMessage::Request(Request {
                method,
                uri,
                headers,
                body: Bytes::from(r.body),
            }))
        }
        rsip::SipMessage::Response(r) => {
            let headers = convert_headers(r.headers);
            check_headers(&headers, is_request)?;
            // rsip keeps the reason phrase of unknown codes only; take ours.
            let reason = match parse_start_line(start_line)? {
                StartLine::Response { reason, .. } => reason.to_string(),
                StartLine::Request { .. } => String::new(),
            };
            Ok(SipMessage::Response(Response {
                status: r.status_code.code(),
                reason,
                headers,
                body: Bytes::from(r.body),
            }))
        }
    }
}

/// rsip's typed header list back to name/value pairs (through its Display, the only
/// uniform access it has).
fn convert_headers(headers: rsip::Headers) -> Headers {
    let mut out = Headers::default();
    for h in headers {
        if let rsip::Header::Other(name, value) = h {
            out.push(HeaderName::from_wire(&name), trim_lws(&value));
            continue;
        }
        let line = h.to_string();
        if let Some((name, value)) = line.split_once(':') {
            out.push(HeaderName::from_wire(name.trim()), trim_lws(value));
        }
    }
    out
}
