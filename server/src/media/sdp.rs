//! SDP (RFC 4566) for what a G.711 voice server needs, and RFC 3264 offer/answer.
//!
//! Contract: [`parse`] reads a session description (`v o s c t m` and the attributes
//! `rtpmap fmtp ptime sendrecv sendonly recvonly inactive rtcp rtcp-mux`; other lines are
//! kept verbatim and written back), never panics on any input, and returns an
//! [`SdpError`] naming the rule broken. [`SessionDescription`]'s `Display` writes CRLF
//! lines. [`negotiate_answer`] answers an offer; [`create_offer`] + [`handle_answer`]
//! cover the late-offer case (INVITE without SDP: we offer in the 200, the ACK answers).
//!
//! ```
//! use caruso::media::codec::Codec;
//! use caruso::media::sdp::{negotiate_answer, parse, Direction, LocalMedia};
//! let offer = parse("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
//!                    m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n").unwrap();
//! let local = LocalMedia::new("127.0.0.1".parse().unwrap(), 20000);
//! let n = negotiate_answer(&offer, &local).unwrap();
//! assert_eq!(n.codec, Codec::Pcmu); // our preference wins among what was offered
//! assert_eq!(n.telephone_event_pt, Some(101));
//! assert_eq!(n.remote_addr, "10.0.0.1:4000".parse().unwrap());
//! assert_eq!(n.direction, Direction::SendRecv);
//! ```

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::codec::Codec;

/// Errors from parsing SDP or from offer/answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// RFC 4566 §5: the description must start with `v=0`.
    #[error("SDP must start with v=0")]
    MissingVersion,
    /// RFC 4566 §5.1: only protocol version 0 exists.
    #[error("unsupported SDP version {0:?}")]
    BadVersion(String),
    /// RFC 4566 §5: every line is `<type>=<value>` with a one-letter type.
    #[error("malformed SDP line {line}: {text:?}")]
    MalformedLine {
        /// 1-based line number.
        line: usize,
        /// The offending text (truncated to 80 bytes).
        text: String,
    },
    /// RFC 4566 §5.2: `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <addr>`.
    #[error("bad o= line: {0:?}")]
    BadOrigin(String),
    /// RFC 4566 §5.2: the `o=` line is mandatory.
    #[error("missing o= line")]
    MissingOrigin,
    /// RFC 4566 §5.7: `c=IN IP4|IP6 <address>`, an IP address (FQDNs are not supported).
    #[error("bad c= line: {0:?}")]
    BadConnection(String),
    /// RFC 4566 §5.14: `m=<media> <port>[/<n>] <proto> <fmt> ...`.
    #[error("bad m= line: {0:?}")]
    BadMedia(String),
    /// RFC 4566 §6: `a=rtpmap:<pt> <name>/<clock>[/<channels>]`.
    #[error("bad a=rtpmap: {0:?}")]
    BadRtpmap(String),
    /// RFC 4566 §6: `a=ptime:<ms>`.
    #[error("bad a=ptime: {0:?}")]
    BadPtime(String),
    /// RFC 3605: `a=rtcp:<port> [IN IP4|IP6 <addr>]`.
    #[error("bad a=rtcp: {0:?}")]
    BadRtcp(String),
    /// RFC 3264 §6: no audio stream with a codec we support (answer with 488).
    #[error("no common codec in the offered audio streams")]
    NoCommonCodec,
    /// RFC 3264 §6: the description has no usable (non-rejected `RTP/AVP`) audio stream
    /// (also answered with 488).
    #[error("no audio stream")]
    NoAudioStream,
    /// RFC 4566 §5.7: a media stream needs a connection address (session or media level).
    #[error("no c= line for the audio stream")]
    MissingConnection,
}

/// Media direction attribute (RFC 4566 §6, RFC 3264 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    #[default]
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The attribute name (`sendrecv`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction seen from the other side (sendonly <-> recvonly).
    pub const fn reverse(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    /// Whether this side sends media.
    pub const fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether this side receives media.
    pub const fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The direction with the given send/receive capabilities.
    pub const fn from_flags(send: bool, recv: bool) -> Direction {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    fn from_attr(name: &str) -> Option<Direction> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

/// The `o=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// User name (`-` when none).
    pub username: String,
    /// Session id.
    pub session_id: u64,
    /// Session version (bumped on every new offer/answer).
    pub session_version: u64,
    /// Address of the originator (kept as text: may be an FQDN).
    pub address: String,
    /// Whether the address type is IP6.
    pub ipv6: bool,
}

/// An `a=rtpmap` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub payload_type: u8,
    /// Encoding name (`PCMU`, `telephone-event`, ...).
    pub encoding: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channel count, if given.
    pub channels: Option<u8>,
}

/// An `a=rtcp` attribute (RFC 3605).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpAttr {
    /// RTCP port.
    pub port: u16,
    /// RTCP address, if given.
    pub addr: Option<IpAddr>,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// Media type (`audio`, `video`, ...).
    pub media: String,
    /// Transport port (0 = rejected/disabled stream).
    pub port: u16,
    /// Transport protocol (`RTP/AVP`, ...).
    pub proto: String,
    /// Formats as written (payload type numbers for RTP).
    pub formats: Vec<String>,
    /// Media-level connection address.
    pub connection: Option<IpAddr>,
    /// `a=rtpmap` lines.
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp` lines: payload type and parameters.
    pub fmtps: Vec<(u8, String)>,
    /// `a=ptime` in milliseconds.
    pub ptime: Option<u32>,
    /// Media-level direction attribute.
    pub direction: Option<Direction>,
    /// `a=rtcp`.
    pub rtcp: Option<RtcpAttr>,
    /// `a=rtcp-mux` (RFC 5761).
    pub rtcp_mux: bool,
    /// Other lines of this section, verbatim without CRLF (`b=...`, `a=...`).
    pub other: Vec<String>,
}

impl MediaDescription {
    /// A new section with no attributes.
    pub fn new(media: &str, port: u16, proto: &str, formats: Vec<String>) -> Self {
        MediaDescription {
            media: media.to_string(),
            port,
            proto: proto.to_string(),
            formats,
            connection: None,
            rtpmaps: Vec::new(),
            fmtps: Vec::new(),
            ptime: None,
            direction: None,
            rtcp: None,
            rtcp_mux: false,
            other: Vec::new(),
        }
    }

    /// The rtpmap of a payload type, if any.
    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.payload_type == pt)
    }

    /// Payload types of the format list that parse as numbers, in order.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats.iter().filter_map(|f| f.parse::<u8>().ok())
    }

    /// The G.711 codec a payload type stands for here (static 0/8, or a dynamic
    /// rtpmap `PCMU/8000` / `PCMA/8000`).
    pub fn codec_of(&self, pt: u8) -> Option<Codec> {
        match self.rtpmap(pt) {
            Some(m) => Codec::from_encoding_name(&m.encoding).filter(|_| m.clock_rate == 8000),
            None => Codec::from_payload_type(pt),
        }
    }

    /// The payload type of `telephone-event/8000`, if offered.
    pub fn telephone_event_pt(&self) -> Option<u8> {
        self.payload_types().find(|pt| {
            self.rtpmap(*pt).is_some_and(|m| {
                m.encoding.eq_ignore_ascii_case("telephone-event") && m.clock_rate == 8000
            })
        })
    }
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`.
    pub origin: Origin,
    /// `s=` (`-` when empty).
    pub session_name: String,
    /// Session-level connection address.
    pub connection: Option<IpAddr>,
    /// `t=` start and stop (first t= line).
    pub timing: (u64, u64),
    /// Session-level direction attribute.
    pub direction: Option<Direction>,
    /// Other session-level lines, verbatim without CRLF.
    pub other: Vec<String>,
    /// The `m=` sections in order.
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    /// The effective direction of media section `m` (media level, else session level,
    /// else sendrecv), with old-style hold (`c=0.0.0.0`, RFC 2543) meaning the sender of
    /// this description does not want to receive.
    pub fn effective_direction(&self, m: &MediaDescription) -> Direction {
        let d = m.direction.or(self.direction).unwrap_or_default();
        if self.connection_of(m).is_some_and(|a| a.is_unspecified()) {
            Direction::from_flags(d.sends(), false)
        } else {
            d
        }
    }

    /// The connection address that applies to `m` (media level, else session level).
    pub fn connection_of(&self, m: &MediaDescription) -> Option<IpAddr> {
        m.connection.or(self.connection)
    }
}

fn trunc(s: &str) -> String {
    let mut end = s.len().min(80);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn parse_connection(v: &str) -> Result<IpAddr, SdpError> {
    let bad = || SdpError::BadConnection(trunc(v));
    let mut it = v.split_ascii_whitespace();
    let (nt, at, addr) = (
        it.next().ok_or_else(bad)?,
        it.next().ok_or_else(bad)?,
        it.next().ok_or_else(bad)?,
    );
    if nt != "IN" || it.next().is_some() {
        return Err(bad());
    }
    // Strip multicast TTL / count suffixes.
    let addr = addr.split('/').next().unwrap_or(addr);
    let ip: IpAddr = addr.parse().map_err(|_| bad())?;
    match (at, ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Ok(ip),
        _ => Err(bad()),
    }
}

fn parse_origin(v: &str) -> Result<Origin, SdpError> {
    let bad = || SdpError::BadOrigin(trunc(v));
    let f: Vec<&str> = v.split_ascii_whitespace().collect();
    if f.len() != 6 || f[3] != "IN" {
        return Err(bad());
    }
    let ipv6 = match f[4] {
        "IP4" => false,
        "IP6" => true,
        _ => return Err(bad()),
    };
    Ok(Origin {
        username: f[0].to_string(),
        session_id: f[1].parse().map_err(|_| bad())?,
        session_version: f[2].parse().map_err(|_| bad())?,
        address: f[5].to_string(),
        ipv6,
    })
}

fn parse_media(v: &str) -> Result<MediaDescription, SdpError> {
    let bad = || SdpError::BadMedia(trunc(v));
    let mut it = v.split_ascii_whitespace();
    let media = it.next().ok_or_else(bad)?;
    let port_s = it.next().ok_or_else(bad)?;
    let port_s = port_s.split('/').next().unwrap_or(port_s);
    let port: u16 = port_s.parse().map_err(|_| bad())?;
    let proto = it.next().ok_or_else(bad)?;
    let formats: Vec<String> = it.map(str::to_string).collect();
    if formats.is_empty() {
        return Err(bad());
    }
    Ok(MediaDescription::new(media, port, proto, formats))
}

fn parse_rtpmap(v: &str) -> Result<RtpMap, SdpError> {
    let bad = || SdpError::BadRtpmap(trunc(v));
    let (pt, rest) = v.trim().split_once(' ').ok_or_else(bad)?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next().filter(|s| !s.is_empty()).ok_or_else(bad)?;
    let clock_rate: u32 = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
    let channels = match parts.next() {
        Some(c) => Some(c.parse().map_err(|_| bad())?),
        None => None,
    };
    Ok(RtpMap {
        payload_type: pt.parse().map_err(|_| bad())?,
        encoding: encoding.to_string(),
        clock_rate,
        channels,
    })
}

fn parse_rtcp(v: &str) -> Result<RtcpAttr, SdpError> {
    let bad = || SdpError::BadRtcp(trunc(v));
    let v = v.trim();
    let (port, rest) = match v.split_once(' ') {
        Some((p, r)) => (p, Some(r)),
        None => (v, None),
    };
    let port = port.parse().map_err(|_| bad())?;
    let addr = match rest {
        Some(r) => Some(parse_connection(r).map_err(|_| bad())?),
        None => None,
    };
    Ok(RtcpAttr { port, addr })
}

/// Parses a session description (RFC 4566). Lines may end in CRLF or LF.
pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    match lines.next() {
        Some((_, l)) if l.starts_with("v=") => {
            if l[2..].trim() != "0" {
                return Err(SdpError::BadVersion(trunc(&l[2..])));
            }
        }
        _ => return Err(SdpError::MissingVersion),
    }
    let mut origin = None;
    let mut sd = SessionDescription {
        origin: Origin {
            username: String::new(),
            session_id: 0,
            session_version: 0,
            address: String::new(),
            ipv6: false,
        },
        session_name: "-".to_string(),
        connection: None,
        timing: (0, 0),
        direction: None,
        other: Vec::new(),
        media: Vec::new(),
    };
    let mut seen_t = false;
    for (idx, line) in lines {
        let b = line.as_bytes();
        if b.len() < 2 || b[1] != b'=' || !b[0].is_ascii_lowercase() {
            return Err(SdpError::MalformedLine {
                line: idx + 1,
                text: trunc(line),
            });
        }
        let (kind, value) = (b[0], &line[2..]);
        let in_media = !sd.media.is_empty();
        match (kind, in_media) {
            (b'm', _) => sd.media.push(parse_media(value)?),
            (b'o', false) => origin = Some(parse_origin(value)?),
            (b's', false) => sd.session_name = value.to_string(),
            (b't', false) if !seen_t => {
                seen_t = true;
                let mut it = value.split_ascii_whitespace().map(str::parse::<u64>);
                if let (Some(Ok(a)), Some(Ok(z))) = (it.next(), it.next()) {
                    sd.timing = (a, z);
                }
            }
            (b'c', false) => sd.connection = Some(parse_connection(value)?),
            (b'c', true) => {
                if let Some(m) = sd.media.last_mut() {
                    m.connection = Some(parse_connection(value)?);
                }
            }
            (b'a', _) => {
                let (name, arg) = match value.split_once(':') {
                    Some((n, a)) => (n, Some(a)),
                    None => (value, None),
                };
                if let (Some(d), None) = (Direction::from_attr(name), arg) {
                    match sd.media.last_mut() {
                        Some(m) => m.direction = Some(d),
                        None => sd.direction = Some(d),
                    }
                    continue;
                }
                let Some(m) = sd.media.last_mut() else {
                    sd.other.push(line.to_string());
                    continue;
                };
                match (name, arg) {
                    ("rtpmap", Some(a)) => m.rtpmaps.push(parse_rtpmap(a)?),
                    ("fmtp", Some(a)) => match a.split_once(' ') {
                        Some((pt, p)) if pt.parse::<u8>().is_ok() => m
                            .fmtps
                            .push((pt.parse().unwrap_or(0), p.trim().to_string())),
                        _ => m.other.push(line.to_string()),
                    },
                    ("ptime", Some(a)) => {
                        m.ptime = Some(a.trim().parse().map_err(|_| SdpError::BadPtime(trunc(a)))?)
                    }
                    ("rtcp", Some(a)) => m.rtcp = Some(parse_rtcp(a)?),
                    ("rtcp-mux", None) => m.rtcp_mux = true,
                    _ => m.other.push(line.to_string()),
                }
            }
            (_, true) => {
                if let Some(m) = sd.media.last_mut() {
                    m.other.push(line.to_string());
                }
            }
            (_, false) => sd.other.push(line.to_string()),
        }
    }
    sd.origin = origin.ok_or(SdpError::MissingOrigin)?;
    Ok(sd)
}

fn write_conn(f: &mut fmt::Formatter<'_>, prefix: &str, ip: IpAddr) -> fmt::Result {
    let t = if ip.is_ipv6() { "IP6" } else { "IP4" };
    write!(f, "{prefix}IN {t} {ip}\r\n")
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        f.write_str("v=0\r\n")?;
        write!(
            f,
            "o={} {} {} IN {} {}\r\n",
            o.username,
            o.session_id,
            o.session_version,
            if o.ipv6 { "IP6" } else { "IP4" },
            o.address
        )?;
        write!(f, "s={}\r\n", self.session_name)?;
        if let Some(c) = self.connection {
            write_conn(f, "c=", c)?;
        }
        write!(f, "t={} {}\r\n", self.timing.0, self.timing.1)?;
        for l in &self.other {
            write!(f, "{l}\r\n")?;
        }
        if let Some(d) = self.direction {
            write!(f, "a={}\r\n", d.as_str())?;
        }
        for m in &self.media {
            write!(f, "m={} {} {}", m.media, m.port, m.proto)?;
            for fmt_ in &m.formats {
                write!(f, " {fmt_}")?;
            }
            f.write_str("\r\n")?;
            if let Some(c) = m.connection {
                write_conn(f, "c=", c)?;
            }
            for l in m.other.iter().filter(|l| l.starts_with("b=")) {
                write!(f, "{l}\r\n")?;
            }
            for r in &m.rtpmaps {
                write!(
                    f,
                    "a=rtpmap:{} {}/{}",
                    r.payload_type, r.encoding, r.clock_rate
                )?;
                if let Some(ch) = r.channels {
                    write!(f, "/{ch}")?;
                }
                f.write_str("\r\n")?;
            }
            for (pt, p) in &m.fmtps {
                write!(f, "a=fmtp:{pt} {p}\r\n")?;
            }
            if let Some(p) = m.ptime {
                write!(f, "a=ptime:{p}\r\n")?;
            }
            if let Some(r) = m.rtcp {
                write!(f, "a=rtcp:{}", r.port)?;
                if let Some(a) = r.addr {
                    let t = if a.is_ipv6() { "IP6" } else { "IP4" };
                    write!(f, " IN {t} {a}")?;
                }
                f.write_str("\r\n")?;
            }
            if m.rtcp_mux {
                f.write_str("a=rtcp-mux\r\n")?;
            }
            for l in m.other.iter().filter(|l| !l.starts_with("b=")) {
                write!(f, "{l}\r\n")?;
            }
            if let Some(d) = m.direction {
                write!(f, "a={}\r\n", d.as_str())?;
            }
        }
        Ok(())
    }
}

/// What we offer or accept locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Our RTP address (goes into `c=` and `o=`).
    pub addr: IpAddr,
    /// Our RTP port.
    pub port: u16,
    /// Codecs we accept, in preference order.
    pub codecs: Vec<Codec>,
    /// Whether we accept/offer RFC 4733 telephone-event.
    pub telephone_event: bool,
    /// `o=` session id (stable for the dialog).
    pub session_id: u64,
    /// `o=` session version (the caller bumps it for each new offer/answer).
    pub session_version: u64,
    /// Offer / accept RTP and RTCP on one port (RFC 5761). Off by default: then RTCP
    /// uses port + 1 and an offered `a=rtcp-mux` is declined by leaving it out.
    pub rtcp_mux: bool,
}

impl LocalMedia {
    /// PCMU then PCMA, telephone-event on, session id/version 1, no rtcp-mux.
    pub fn new(addr: IpAddr, port: u16) -> Self {
        LocalMedia {
            addr,
            port,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            telephone_event: true,
            session_id: 1,
            session_version: 1,
            rtcp_mux: false,
        }
    }
}

/// The outcome of offer/answer for the (first) audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The answer we send (for [`handle_answer`]: a copy of the peer's answer).
    pub answer: SessionDescription,
    /// The codec both sides use.
    pub codec: Codec,
    /// The payload type for `codec` (0/8, or the dynamic one the peer chose).
    pub payload_type: u8,
    /// Where the peer wants RTP (c= address and m= port).
    pub remote_addr: SocketAddr,
    /// Where the peer wants RTCP (`a=rtcp`, else port+1; equal to `remote_addr` with mux).
    pub remote_rtcp_addr: SocketAddr,
    /// Both sides agreed on RTCP multiplexing (RFC 5761).
    pub rtcp_mux: bool,
    /// The telephone-event payload type, if both sides use it.
    pub telephone_event_pt: Option<u8>,
    /// Our (local) direction: the peer's sendonly makes us recvonly (hold).
    pub direction: Direction,
    /// Packet time for what we send (peer's `a=ptime`, 10..=60 ms in 10 ms steps; else 20 ms).
    pub ptime: Duration,
}

/// Default telephone-event payload type in our offers.
pub const DEFAULT_TELEPHONE_EVENT_PT: u8 = 101;

fn ptime_of(m: &MediaDescription) -> Duration {
    match m.ptime {
        Some(p) if (10..=60).contains(&p) && p % 10 == 0 => Duration::from_millis(u64::from(p)),
        _ => Duration::from_millis(20),
    }
}

fn rtcp_addr(
    sd: &SessionDescription,
    m: &MediaDescription,
    rtp: SocketAddr,
    mux: bool,
) -> SocketAddr {
    if mux {
        return rtp;
    }
    match m.rtcp {
        Some(r) => SocketAddr::new(r.addr.or(sd.connection_of(m)).unwrap_or(rtp.ip()), r.port),
        None => SocketAddr::new(rtp.ip(), rtp.port().wrapping_add(1)),
    }
}

fn base_description(local: &LocalMedia) -> SessionDescription {
    SessionDescription {
        origin: Origin {
            username: "caruso".to_string(),
            session_id: local.session_id,
            session_version: local.session_version,
            address: local.addr.to_string(),
            ipv6: local.addr.is_ipv6(),
        },
        session_name: "caruso".to_string(),
        connection: Some(local.addr),
        timing: (0, 0),
        direction: None,
        other: Vec::new(),
        media: Vec::new(),
    }
}

fn audio_section(
    local: &LocalMedia,
    codecs: &[(Codec, u8)],
    te: Option<u8>,
    ptime: u32,
    dir: Direction,
) -> MediaDescription {
    let mut formats: Vec<String> = codecs.iter().map(|(_, pt)| pt.to_string()).collect();
    let mut m = MediaDescription::new("audio", local.port, "RTP/AVP", Vec::new());
    for (c, pt) in codecs {
        m.rtpmaps.push(RtpMap {
            payload_type: *pt,
            encoding: c.encoding_name().to_string(),
            clock_rate: 8000,
            channels: None,
        });
    }
    if let Some(pt) = te {
        formats.push(pt.to_string());
        m.rtpmaps.push(RtpMap {
            payload_type: pt,
            encoding: "telephone-event".to_string(),
            clock_rate: 8000,
            channels: None,
        });
        m.fmtps.push((pt, "0-15".to_string()));
    }
    m.formats = formats;
    m.ptime = Some(ptime);
    m.direction = Some(dir);
    m
}

fn is_rtp_avp(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/AVP")
}

/// Answers an SDP offer (RFC 3264 §6): the first audio `RTP/AVP` stream with a codec of
/// ours is accepted with our most preferred codec among the offered ones; every other
/// stream is rejected with port 0, so the answer has as many m-lines as the offer.
pub fn negotiate_answer(
    offer: &SessionDescription,
    local: &LocalMedia,
) -> Result<Negotiated, SdpError> {
    let mut answer = base_description(local);
    let mut chosen: Option<Negotiated> = None;
    let mut saw_audio = false;
    for m in &offer.media {
        let usable = chosen.is_none()
            && m.media.eq_ignore_ascii_case("audio")
            && m.port != 0
            && is_rtp_avp(&m.proto);
        saw_audio |= usable;
        let pick = if usable {
            local.codecs.iter().find_map(|c| {
                m.payload_types()
                    .find(|pt| m.codec_of(*pt) == Some(*c))
                    .map(|pt| (*c, pt))
            })
        } else {
            None
        };
        let Some((codec, pt)) = pick else {
            let mut r = MediaDescription::new(&m.media, 0, &m.proto, m.formats.clone());
            r.formats.truncate(1);
            answer.media.push(r);
            continue;
        };
        let ip = offer.connection_of(m).ok_or(SdpError::MissingConnection)?;
        let remote_addr = SocketAddr::new(ip, m.port);
        let te = if local.telephone_event {
            m.telephone_event_pt()
        } else {
            None
        };
        let peer_dir = offer.effective_direction(m);
        let direction = peer_dir.reverse();
        let ptime = ptime_of(m);
        let mut a = audio_section(
            local,
            &[(codec, pt)],
            te,
            ptime.as_millis() as u32,
            direction,
        );
        let mux = local.rtcp_mux && m.rtcp_mux;
        a.rtcp_mux = mux;
        answer.media.push(a);
        chosen = Some(Negotiated {
            answer: answer.clone(),
            codec,
            payload_type: pt,
            remote_addr,
            remote_rtcp_addr: rtcp_addr(offer, m, remote_addr, mux),
            rtcp_mux: mux,
            telephone_event_pt: te,
            direction,
            ptime,
        });
    }
    match chosen {
        Some(mut n) => {
            n.answer = answer;
            Ok(n)
        }
        None if saw_audio => Err(SdpError::NoCommonCodec),
        None => Err(SdpError::NoAudioStream),
    }
}

/// Builds our offer: one audio stream with our codecs (static payload types), optional
/// telephone-event (payload type 101, events 0-15), `a=ptime:20` and `direction`.
pub fn create_offer(local: &LocalMedia, direction: Direction) -> SessionDescription {
    let mut sd = base_description(local);
    let codecs: Vec<(Codec, u8)> = local
        .codecs
        .iter()
        .map(|c| (*c, c.payload_type()))
        .collect();
    let te = local.telephone_event.then_some(DEFAULT_TELEPHONE_EVENT_PT);
    let mut m = audio_section(local, &codecs, te, 20, direction);
    m.rtcp_mux = local.rtcp_mux;
    sd.media.push(m);
    sd
}

/// Reads the peer's answer to our `offer` (late offer: our 200 OK offered, the ACK
/// answers). The answer's first accepted audio stream must use a codec we offered.
pub fn handle_answer(
    offer: &SessionDescription,
    answer: &SessionDescription,
) -> Result<Negotiated, SdpError> {
    let ours = offer
        .media
        .iter()
        .find(|m| m.media.eq_ignore_ascii_case("audio"))
        .ok_or(SdpError::NoAudioStream)?;
    let m = answer
        .media
        .iter()
        .find(|m| m.media.eq_ignore_ascii_case("audio") && m.port != 0)
        .ok_or(SdpError::NoAudioStream)?;
    let (codec, pt) = m
        .payload_types()
        .find_map(|pt| {
            let c = m.codec_of(pt)?;
            ours.payload_types()
                .any(|o| ours.codec_of(o) == Some(c))
                .then_some((c, pt))
        })
        .ok_or(SdpError::NoCommonCodec)?;
    let ip = answer.connection_of(m).ok_or(SdpError::MissingConnection)?;
    let remote_addr = SocketAddr::new(ip, m.port);
    let te = ours.telephone_event_pt().and(m.telephone_event_pt());
    let our_dir = offer.effective_direction(ours);
    let peer = answer.effective_direction(m).reverse();
    let direction = Direction::from_flags(
        our_dir.sends() && peer.sends(),
        our_dir.receives() && peer.receives(),
    );
    let mux = ours.rtcp_mux && m.rtcp_mux;
    Ok(Negotiated {
        answer: answer.clone(),
        codec,
        payload_type: pt,
        remote_addr,
        remote_rtcp_addr: rtcp_addr(answer, m, remote_addr, mux),
        rtcp_mux: mux,
        telephone_event_pt: te,
        direction,
        ptime: ptime_of(m),
    })
}

/// The unspecified IPv4 address used by old-style hold (`c=IN IP4 0.0.0.0`).
pub const HOLD_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

impl SessionDescription {
    /// Writes the description to a `String` (CRLF line ends).
    pub fn to_sdp_string(&self) -> String {
        let mut s = String::with_capacity(256);
        let _ = write!(s, "{self}");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 8 0 97 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:97 iLBC/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=x-unknown:1\r\n\
a=sendrecv\r\n\
m=video 51372 RTP/AVP 31\r\n";

    fn local() -> LocalMedia {
        LocalMedia {
            session_id: 77,
            session_version: 3,
            ..LocalMedia::new("198.51.100.1".parse().unwrap(), 30000)
        }
    }

    #[test]
    fn parses_all_fields() {
        let sd = parse(OFFER).unwrap();
        assert_eq!(sd.origin.username, "alice");
        assert_eq!(sd.origin.session_version, 2890844526);
        assert_eq!(sd.connection, Some("192.0.2.10".parse().unwrap()));
        assert_eq!(sd.media.len(), 2);
        let m = &sd.media[0];
        assert_eq!(m.port, 49170);
        assert_eq!(m.formats, ["8", "0", "97", "101"]);
        assert_eq!(m.rtpmaps.len(), 3);
        assert_eq!(m.fmtps, [(101, "0-16".to_string())]);
        assert_eq!(m.ptime, Some(20));
        assert_eq!(m.direction, Some(Direction::SendRecv));
        assert_eq!(m.other, ["a=x-unknown:1"]);
        assert_eq!(m.telephone_event_pt(), Some(101));
        assert_eq!(m.codec_of(0), Some(Codec::Pcmu));
        assert_eq!(m.codec_of(97), None);
    }

    #[test]
    fn writer_round_trips() {
        let sd = parse(OFFER).unwrap();
        let text = sd.to_sdp_string();
        assert!(text.ends_with("\r\n"));
        assert_eq!(parse(&text).unwrap(), sd);
    }

    #[test]
    fn accepts_lf_and_ipv6_and_media_level_c() {
        let sd = parse(
            "v=0\no=- 1 2 IN IP6 ::1\ns=x\nt=0 0\nm=audio 5000 RTP/AVP 0\nc=IN IP6 2001:db8::1\na=rtcp:5005\n",
        )
        .unwrap();
        assert_eq!(sd.connection, None);
        let m = &sd.media[0];
        assert_eq!(m.connection, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(
            m.rtcp,
            Some(RtcpAttr {
                port: 5005,
                addr: None
            })
        );
        let n = negotiate_answer(&sd, &local()).unwrap();
        assert_eq!(n.remote_addr, "[2001:db8::1]:5000".parse().unwrap());
        assert_eq!(n.remote_rtcp_addr, "[2001:db8::1]:5005".parse().unwrap());
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(parse(""), Err(SdpError::MissingVersion));
        assert_eq!(parse("o=x\r\n"), Err(SdpError::MissingVersion));
        assert!(matches!(parse("v=1\r\n"), Err(SdpError::BadVersion(_))));
        assert_eq!(parse("v=0\r\ns=-\r\n"), Err(SdpError::MissingOrigin));
        assert!(matches!(
            parse("v=0\r\no=- 1 1 IN IP4 h\r\nbogus\r\n"),
            Err(SdpError::MalformedLine { line: 3, .. })
        ));
        assert!(matches!(
            parse("v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4 example.com\r\n"),
            Err(SdpError::BadConnection(_))
        ));
        assert!(matches!(
            parse("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 99999 RTP/AVP 0\r\n"),
            Err(SdpError::BadMedia(_))
        ));
        assert!(matches!(
            parse("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:x\r\n"),
            Err(SdpError::BadRtpmap(_))
        ));
    }

    #[test]
    fn answer_picks_our_preference_and_rejects_video() {
        let offer = parse(OFFER).unwrap();
        let n = negotiate_answer(&offer, &local()).unwrap();
        assert_eq!(n.codec, Codec::Pcmu);
        assert_eq!(n.payload_type, 0);
        assert_eq!(n.remote_addr, "192.0.2.10:49170".parse().unwrap());
        assert_eq!(n.remote_rtcp_addr, "192.0.2.10:49171".parse().unwrap());
        assert_eq!(n.telephone_event_pt, Some(101));
        assert_eq!(n.direction, Direction::SendRecv);
        assert_eq!(n.ptime, Duration::from_millis(20));
        let a = &n.answer;
        assert_eq!(a.origin.session_id, 77);
        assert_eq!(a.origin.session_version, 3);
        assert_eq!(a.connection, Some("198.51.100.1".parse().unwrap()));
        assert_eq!(a.media.len(), 2);
        assert_eq!(a.media[0].port, 30000);
        assert_eq!(a.media[0].formats, ["0", "101"]);
        assert_eq!(a.media[1].port, 0);
        assert_eq!(a.media[1].media, "video");
        // The answer text is valid SDP.
        let re = parse(&a.to_sdp_string()).unwrap();
        assert_eq!(&re, a);
    }

    #[test]
    fn pcma_only_and_no_common_codec() {
        let mut l = local();
        l.codecs = vec![Codec::Pcma];
        let n = negotiate_answer(&parse(OFFER).unwrap(), &l).unwrap();
        assert_eq!(n.codec, Codec::Pcma);
        let g729 = parse("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\n")
            .unwrap();
        assert_eq!(negotiate_answer(&g729, &l), Err(SdpError::NoCommonCodec));
        let none = parse("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nt=0 0\r\n").unwrap();
        assert_eq!(negotiate_answer(&none, &l), Err(SdpError::NoAudioStream));
    }

    #[test]
    fn dynamic_pcmu_and_no_telephone_event_when_disabled() {
        let offer = parse(
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n\
             m=audio 4000 RTP/AVP 96 100\r\na=rtpmap:96 PCMU/8000\r\na=rtpmap:100 telephone-event/8000\r\n",
        )
        .unwrap();
        let mut l = local();
        l.telephone_event = false;
        let n = negotiate_answer(&offer, &l).unwrap();
        assert_eq!((n.codec, n.payload_type), (Codec::Pcmu, 96));
        assert_eq!(n.telephone_event_pt, None);
        assert_eq!(n.answer.media[0].formats, ["96"]);
    }

    #[test]
    fn hold_directions() {
        let base = "v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let dir = |extra: &str| {
            negotiate_answer(&parse(&format!("{base}{extra}")).unwrap(), &local())
                .unwrap()
                .direction
        };
        assert_eq!(dir("a=sendonly\r\n"), Direction::RecvOnly);
        assert_eq!(dir("a=recvonly\r\n"), Direction::SendOnly);
        assert_eq!(dir("a=inactive\r\n"), Direction::Inactive);
        assert_eq!(dir(""), Direction::SendRecv);
        // Session-level attribute applies when the media has none.
        let s = "v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\na=sendonly\r\nm=audio 4000 RTP/AVP 0\r\n";
        assert_eq!(
            negotiate_answer(&parse(s).unwrap(), &local())
                .unwrap()
                .direction,
            Direction::RecvOnly
        );
        // Old-style hold: c=0.0.0.0 means the peer does not want media.
        let old = "v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let n = negotiate_answer(&parse(old).unwrap(), &local()).unwrap();
        assert_eq!(n.direction, Direction::RecvOnly);
        assert!(!n.direction.sends());
        let old_inactive = format!("{old}a=recvonly\r\n");
        assert_eq!(
            negotiate_answer(&parse(&old_inactive).unwrap(), &local())
                .unwrap()
                .direction,
            Direction::Inactive
        );
    }

    #[test]
    fn rtcp_mux_only_when_enabled_locally() {
        let offer = parse(
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n\
             m=audio 4000 RTP/AVP 0\r\na=rtcp-mux\r\n",
        )
        .unwrap();
        let n = negotiate_answer(&offer, &local()).unwrap();
        assert!(!n.rtcp_mux && !n.answer.media[0].rtcp_mux);
        assert_eq!(n.remote_rtcp_addr, "1.2.3.4:4001".parse().unwrap());
        let mut l = local();
        l.rtcp_mux = true;
        let n = negotiate_answer(&offer, &l).unwrap();
        assert!(n.rtcp_mux);
        assert!(n.answer.to_sdp_string().contains("a=rtcp-mux\r\n"));
        assert_eq!(n.remote_rtcp_addr, "1.2.3.4:4000".parse().unwrap());
        assert!(create_offer(&l, Direction::SendRecv).media[0].rtcp_mux);
        assert!(!create_offer(&local(), Direction::SendRecv).media[0].rtcp_mux);
    }

    #[test]
    fn rejected_stream_is_skipped() {
        let offer = parse(
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n\
             m=audio 0 RTP/AVP 0\r\nm=audio 4002 RTP/AVP 8\r\n",
        )
        .unwrap();
        let n = negotiate_answer(&offer, &local()).unwrap();
        assert_eq!(n.remote_addr.port(), 4002);
        assert_eq!(n.answer.media[0].port, 0);
        assert_eq!(n.answer.media[1].port, 30000);
        assert_eq!(n.codec, Codec::Pcma);
    }

    #[test]
    fn late_offer_round_trip() {
        let offer = create_offer(&local(), Direction::SendRecv);
        let text = offer.to_sdp_string();
        assert!(text.contains("m=audio 30000 RTP/AVP 0 8 101\r\n"));
        assert!(text.contains("a=rtpmap:101 telephone-event/8000\r\n"));
        let answer = parse(
            "v=0\r\no=bob 5 5 IN IP4 10.1.1.1\r\ns=-\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\n\
             m=audio 7000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=recvonly\r\n",
        )
        .unwrap();
        let n = handle_answer(&offer, &answer).unwrap();
        assert_eq!(n.codec, Codec::Pcma);
        assert_eq!(n.remote_addr, "10.1.1.1:7000".parse().unwrap());
        assert_eq!(n.telephone_event_pt, Some(101));
        assert_eq!(n.direction, Direction::SendOnly);
        let bad = parse(
            "v=0\r\no=bob 5 5 IN IP4 10.1.1.1\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 18\r\n",
        )
        .unwrap();
        assert_eq!(handle_answer(&offer, &bad), Err(SdpError::NoCommonCodec));
    }

    #[test]
    fn never_panics_on_garbage() {
        let samples = [
            "v=0\r\no=\r\n",
            "v=0\r\no=- 1 1 IN IP4 h\r\nm=\r\n",
            "v=0\r\no=- 1 1 IN IP4 h\r\nm=audio\r\n",
            "v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\na=ptime:\r\na=rtcp:\r\n",
            "v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\na=fmtp:\r\na=rtpmap:0 /\r\n",
            "v=0\r\nç=é\r\n",
            "v=0\r\no=- 1 1 IN IP4 h\r\nc=IN\r\n",
        ];
        for s in samples {
            let _ = parse(s);
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            let _ = parse(&s);
        }
    }
}
