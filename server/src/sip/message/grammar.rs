//! The RFC 3261 §25.1 grammar pieces behind [`Uri::parse`], [`NameAddr::parse`] and
//! [`Via::parse`]: pure functions over `&str` that return a static reason on failure.

use super::{HeaderName, Headers, NameAddr, TransportKind, Uri, Via};
use bytes::Bytes;
use std::io::Write as _;
use std::net::{IpAddr, Ipv6Addr};
// ---------------------------------------------------------------------------------------
// Grammar helpers (RFC 3261 §25.1). They return a static reason; the public parsers wrap
// it in the `ParseError` variant that names the header.
// ---------------------------------------------------------------------------------------

/// Linear white space as it can remain inside a header value (after unfolding).
pub(super) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trims LWS at both ends.
pub(super) fn trim_lws(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
}

/// `token` characters (RFC 3261 §25.1).
pub(super) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// `unreserved` = alphanum / mark.
pub(super) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

/// A non-empty run of ASCII digits as a number; `None` on overflow or other bytes.
pub(super) fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Checks that every `%` is followed by two hex digits and every other byte is allowed.
pub(super) fn check_escaped(s: &str, allowed: fn(u8) -> bool) -> Result<(), &'static str> {
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
pub(super) struct SplitTop<'a> {
    rest: &'a str,
    sep: u8,
    angle: bool,
}

impl<'a> SplitTop<'a> {
    pub(super) fn new(s: &'a str, sep: u8, angle: bool) -> Self {
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
pub(super) fn is_userinfo_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/' | b':'
        )
}

/// `paramchar` without the escape (param-unreserved / unreserved).
pub(super) fn is_param_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
}

/// `hnv-unreserved` / unreserved, plus the `=` and `&` that separate URI headers.
pub(super) fn is_uri_header_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$' | b'=' | b'&'
        )
}

/// Characters of an opaque (non-SIP) URI: RFC 3986 reserved and unreserved.
pub(super) fn is_opaque_uri_char(b: u8) -> bool {
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
pub(super) fn parse_ipv6(s: &str) -> Option<Ipv6Addr> {
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
pub(super) fn split_hostport(
    s: &str,
    port_sep_lws: bool,
) -> Result<(&str, Option<u16>), &'static str> {
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

/// Walks `;`-separated URI parameters (the text after the first `;`), validating each
/// and handing it to `f`.
fn for_each_uri_param<'a>(
    s: &'a str,
    mut f: impl FnMut(&'a str, Option<&'a str>),
) -> Result<(), &'static str> {
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
        f(name, value);
    }
    Ok(())
}

/// A URI split into validated, borrowed parts: checking a header needs no allocation,
/// [`UriParts::to_uri`] makes the owned [`Uri`].
pub(super) struct UriParts<'a> {
    scheme: &'a str,
    opaque: bool,
    user: Option<&'a str>,
    host: &'a str,
    port: Option<u16>,
    params: Option<&'a str>,
    headers: Option<&'a str>,
}

impl UriParts<'_> {
    pub(super) fn to_uri(&self) -> Uri {
        let mut params = Vec::new();
        if let Some(p) = self.params {
            // Validated already: cannot fail.
            let _ = for_each_uri_param(p, |n, v| {
                params.push((n.to_string(), v.map(str::to_string)));
            });
        }
        let scheme = if self.opaque {
            self.scheme.to_ascii_lowercase()
        } else if self.scheme.len() == 3 {
            "sip".to_string()
        } else {
            "sips".to_string()
        };
        Uri {
            scheme,
            user: self.user.map(str::to_string),
            host: self.host.to_string(),
            port: self.port,
            params,
            headers: self.headers.map(str::to_string),
        }
    }
}

pub(super) fn uri_parts(s: &str) -> Result<UriParts<'_>, &'static str> {
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
    if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
        if rest.is_empty() {
            return Err("empty opaque URI");
        }
        check_escaped(rest, is_opaque_uri_char)?;
        return Ok(UriParts {
            scheme,
            opaque: true,
            user: None,
            host: rest,
            port: None,
            params: None,
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
            (Some(u), &rest[at + 1..])
        }
        None => (None, rest),
    };
    let (hostpart, headers) = match hostpart.split_once('?') {
        Some((h, q)) => {
            if q.is_empty() {
                return Err("empty URI headers");
            }
            check_escaped(q, is_uri_header_char)?;
            (h, Some(q))
        }
        None => (hostpart, None),
    };
    let (hostport, params) = match hostpart.split_once(';') {
        Some((h, p)) => {
            for_each_uri_param(p, |_, _| {})?;
            (h, Some(p))
        }
        None => (hostpart, None),
    };
    let (host, port) = split_hostport(hostport, false)?;
    Ok(UriParts {
        scheme,
        opaque: false,
        user,
        host,
        port,
        params,
        headers,
    })
}

pub(super) fn parse_uri(s: &str) -> Result<Uri, &'static str> {
    uri_parts(s).map(|p| p.to_uri())
}

/// Walks `*( SEMI generic-param )` header parameters; `s` starts at the first `;` (or is
/// empty). Values are handed over as written (a quoted string keeps its quotes).
fn for_each_header_param<'a>(
    s: &'a str,
    mut f: impl FnMut(&'a str, Option<&'a str>) -> Result<(), &'static str>,
) -> Result<(), &'static str> {
    let s = trim_lws(s);
    if s.is_empty() {
        return Ok(());
    }
    let s = s.strip_prefix(';').ok_or("junk before parameters")?;
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
        f(name, value)?;
    }
    if count == 0 {
        return Err("empty parameter");
    }
    Ok(())
}

fn collect_header_params(s: &str) -> Vec<(String, Option<String>)> {
    let mut params = Vec::new();
    // Validated already: cannot fail.
    let _ = for_each_header_param(s, |n, v| {
        params.push((n.to_string(), v.map(str::to_string)));
        Ok(())
    });
    params
}

/// `gen-value = token / host / quoted-string`.
pub(super) fn check_gen_value(v: &str) -> Result<(), &'static str> {
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
pub(super) fn quoted_string_end(s: &str) -> Option<usize> {
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

/// A name-addr / addr-spec split into validated, borrowed parts.
pub(super) struct NameAddrParts<'a> {
    /// Display name as written: the inside of the quotes (escapes kept) or the tokens.
    display: Option<&'a str>,
    quoted: bool,
    uri: UriParts<'a>,
    params: &'a str,
}

impl NameAddrParts<'_> {
    pub(super) fn to_name_addr(&self) -> NameAddr {
        let display = self.display.map(|d| {
            if !self.quoted {
                return d.to_string();
            }
            let mut out = String::with_capacity(d.len());
            let mut chars = d.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    // quoted-pair: the escaped character stands for itself.
                    out.extend(chars.next());
                } else {
                    out.push(c);
                }
            }
            out
        });
        NameAddr {
            display,
            uri: self.uri.to_uri(),
            params: collect_header_params(self.params),
        }
    }
}

pub(super) fn name_addr_parts(s: &str) -> Result<NameAddrParts<'_>, &'static str> {
    let s = trim_lws(s);
    if s.is_empty() {
        return Err("empty value");
    }
    let (display, quoted, after_display) = if s.starts_with('"') {
        let end = quoted_string_end(s).ok_or("unterminated display name")?;
        let rest = trim_lws(&s[end..]);
        if !rest.starts_with('<') {
            return Err("display name not followed by <addr-spec>");
        }
        (Some(&s[1..end - 1]), true, rest)
    } else if let Some(lt) = s.find('<') {
        let d = trim_lws(&s[..lt]);
        if !d.bytes().all(|b| is_token_char(b) || is_lws(b)) {
            return Err("display name is neither tokens nor a quoted string");
        }
        ((!d.is_empty()).then_some(d), false, &s[lt..])
    } else {
        (None, false, s)
    };
    if let Some(inner) = after_display.strip_prefix('<') {
        let gt = inner.find('>').ok_or("missing >")?;
        let uri = uri_parts(&inner[..gt]).map_err(|_| "invalid URI in <...>")?;
        let params = &inner[gt + 1..];
        for_each_header_param(params, |_, _| Ok(()))?;
        return Ok(NameAddrParts {
            display,
            quoted,
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
    let uri = uri_parts(uri_text).map_err(|_| "invalid URI")?;
    let params = &after_display[end..];
    for_each_header_param(params, |_, _| Ok(()))?;
    Ok(NameAddrParts {
        display,
        quoted,
        uri,
        params,
    })
}

pub(super) fn parse_name_addr(s: &str) -> Result<NameAddr, &'static str> {
    name_addr_parts(s).map(|p| p.to_name_addr())
}

/// Strips `prefix` (case-insensitive) then LWS.
pub(super) fn strip_token<'a>(s: &'a str, token: &str) -> Option<&'a str> {
    let head = s.get(..token.len())?;
    head.eq_ignore_ascii_case(token)
        .then(|| trim_lws(&s[token.len()..]))
}

/// The `received` parameter: an IP address, IPv6 with or without brackets.
fn parse_received(v: &str) -> Result<IpAddr, &'static str> {
    let v = v
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(v);
    match v.parse::<IpAddr>() {
        Ok(ip) => Ok(ip),
        Err(_) => Ok(IpAddr::V6(
            parse_ipv6(v).ok_or("received is not an IP address")?,
        )),
    }
}

fn parse_rport(v: &str) -> Result<u16, &'static str> {
    parse_decimal(v)
        .and_then(|p| u16::try_from(p).ok())
        .ok_or("rport is not a port")
}

/// The first Via value split into validated, borrowed parts.
pub(super) struct ViaParts<'a> {
    transport: TransportKind,
    host: &'a str,
    port: Option<u16>,
    params: &'a str,
}

impl ViaParts<'_> {
    pub(super) fn to_via(&self) -> Via {
        let mut via = Via {
            transport: self.transport,
            host: self.host.to_string(),
            port: self.port,
            branch: None,
            received: None,
            rport: None,
            params: Vec::new(),
        };
        // Validated already: the conversions below cannot fail.
        let _ = for_each_header_param(self.params, |name, value| {
            if name.eq_ignore_ascii_case("branch") {
                via.branch = value.map(str::to_string);
            } else if name.eq_ignore_ascii_case("received") {
                via.received = value.and_then(|v| parse_received(v).ok());
            } else if name.eq_ignore_ascii_case("rport") {
                via.rport = Some(value.and_then(|v| parse_rport(v).ok()));
            } else {
                via.params
                    .push((name.to_string(), value.map(str::to_string)));
            }
            Ok(())
        });
        via
    }
}

pub(super) fn via_parts(s: &str) -> Result<ViaParts<'_>, &'static str> {
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
    let (sent_by, params) = match sent_by_start.find(';') {
        Some(i) => sent_by_start.split_at(i),
        None => (sent_by_start, ""),
    };
    let (host, port) = split_hostport(trim_lws(sent_by), true)?;
    for_each_header_param(params, |name, value| {
        if name.eq_ignore_ascii_case("branch") {
            value.ok_or("branch without value")?;
        } else if name.eq_ignore_ascii_case("received") {
            parse_received(value.ok_or("received without value")?)?;
        } else if name.eq_ignore_ascii_case("rport") {
            if let Some(v) = value {
                parse_rport(v)?;
            }
        }
        Ok(())
    })?;
    Ok(ViaParts {
        transport,
        host,
        port,
        params,
    })
}

pub(super) fn parse_via(s: &str) -> Result<Via, &'static str> {
    via_parts(s).map(|p| p.to_via())
}

/// Rough size of the serialised header block and body, for one allocation.
pub(super) fn wire_size_hint(headers: &Headers, body: &Bytes) -> usize {
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
pub(super) fn write_headers_and_body(out: &mut Vec<u8>, headers: &Headers, body: &Bytes) {
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

/// A short, single-line excerpt of attacker-controlled text for an error message (the
/// error's Display becomes a reason phrase, so it must not carry CR, LF or other controls).
pub(super) fn snippet(s: &str) -> String {
    const MAX: usize = 64;
    let mut out = String::with_capacity(s.len().min(MAX + 3));
    for (i, c) in s.chars().enumerate() {
        if i == MAX {
            out.push_str("...");
            break;
        }
        out.push(if c.is_control() { '?' } else { c });
    }
    out
}
