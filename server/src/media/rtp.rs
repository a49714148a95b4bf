//! RTP (RFC 3550) packet views and writers, and the RTCP reports we send and read.
//!
//! Contract: [`parse`] reads an RTP packet through `rtc-rtp` into a borrowed
//! [`RtpPacketView`] (the payload is a slice of the input: no copy, no allocation for
//! packets without CSRCs or header extensions) and never panics. [`write_rtp`] writes a
//! header and payload into a caller's buffer. [`is_rtcp`] demultiplexes RTP and RTCP on
//! one port (RFC 5761 §4). [`build_report`] and [`parse_rtcp`] wrap `rtc-rtcp` for
//! SR/RR/SDES.
//!
//! ```
//! use caruso::media::rtp::{parse, write_rtp, RtpHeaderFields};
//! let mut buf = [0u8; 64];
//! let h = RtpHeaderFields { marker: true, payload_type: 0, sequence_number: 7, timestamp: 160, ssrc: 42 };
//! let n = write_rtp(&h, &[0xFF; 4], &mut buf).unwrap();
//! let p = parse(&buf[..n]).unwrap();
//! assert_eq!((p.marker, p.sequence_number, p.payload), (true, 7, &[0xFF; 4][..]));
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rtc_rtcp::receiver_report::ReceiverReport;
use rtc_rtcp::reception_report::ReceptionReport;
use rtc_rtcp::sender_report::SenderReport;
use rtc_rtcp::source_description::{
    SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem,
};
use rtc_shared::marshal::{Marshal, MarshalSize, Unmarshal};

/// Length of the fixed RTP header.
pub const RTP_HEADER_LEN: usize = 12;

/// Errors reading or writing RTP/RTCP packets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// RFC 3550 §5.1: the fixed header is 12 bytes.
    #[error("packet shorter than the 12-byte RTP header ({0} bytes)")]
    TooShort(usize),
    /// RFC 3550 §5.1: the version field must be 2.
    #[error("RTP version {0}, expected 2")]
    BadVersion(u8),
    /// RFC 3550 §5.1: CSRC list, extension or padding run past the end of the packet.
    #[error("malformed RTP packet: {0}")]
    Malformed(String),
    /// The output buffer cannot hold the packet.
    #[error("output buffer too small: need {need} bytes, have {have}")]
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// RFC 3550 §6.1: a malformed RTCP compound packet.
    #[error("malformed RTCP packet: {0}")]
    Rtcp(String),
}

/// A parsed RTP packet borrowing its payload from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacketView<'a> {
    /// Marker bit (start of a talkspurt for audio).
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence_number: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Number of contributing sources in the header.
    pub csrc_count: u8,
    /// The payload, padding removed.
    pub payload: &'a [u8],
}

/// Whether a datagram on a shared RTP/RTCP port is RTCP (RFC 5761 §4: second octet
/// 192..=223, i.e. RTCP packet types 192-223, which no RTP payload type in use maps to).
pub fn is_rtcp(data: &[u8]) -> bool {
    data.len() >= 8 && data[0] >> 6 == 2 && (192..=223).contains(&data[1])
}

/// Parses an RTP packet (RFC 3550 §5.1) with `rtc-rtp`.
pub fn parse(data: &[u8]) -> Result<RtpPacketView<'_>, RtpError> {
    if data.len() < RTP_HEADER_LEN {
        return Err(RtpError::TooShort(data.len()));
    }
    let version = data[0] >> 6;
    if version != 2 {
        return Err(RtpError::BadVersion(version));
    }
    let mut rd: &[u8] = data;
    let header =
        rtc_rtp::Header::unmarshal(&mut rd).map_err(|e| RtpError::Malformed(e.to_string()))?;
    let header_len = data.len() - rd.len();
    let mut payload = data.get(header_len..).unwrap_or(&[]);
    if header.padding {
        let pad = payload.last().copied().unwrap_or(0) as usize;
        if pad == 0 || pad > payload.len() {
            return Err(RtpError::Malformed("bad padding length".into()));
        }
        payload = &payload[..payload.len() - pad];
    }
    Ok(RtpPacketView {
        marker: header.marker,
        payload_type: header.payload_type,
        sequence_number: header.sequence_number,
        timestamp: header.timestamp,
        ssrc: header.ssrc,
        csrc_count: header.csrc.len() as u8,
        payload,
    })
}

/// The header fields we set on packets we send (no CSRC, no extension, no padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeaderFields {
    /// Marker bit.
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence_number: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

/// Writes an RTP packet into `out` with `rtc-rtp`; returns its length.
pub fn write_rtp(h: &RtpHeaderFields, payload: &[u8], out: &mut [u8]) -> Result<usize, RtpError> {
    let header = rtc_rtp::Header {
        version: 2,
        marker: h.marker,
        payload_type: h.payload_type & 0x7F,
        sequence_number: h.sequence_number,
        timestamp: h.timestamp,
        ssrc: h.ssrc,
        ..Default::default()
    };
    let hl = header.marshal_size();
    let need = hl + payload.len();
    if out.len() < need {
        return Err(RtpError::BufferTooSmall {
            need,
            have: out.len(),
        });
    }
    let n = header
        .marshal_to(out)
        .map_err(|e| RtpError::Malformed(e.to_string()))?;
    out[n..n + payload.len()].copy_from_slice(payload);
    Ok(n + payload.len())
}

/// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A wall-clock time as a 64-bit NTP timestamp (RFC 3550 §4).
pub fn ntp_timestamp(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs().wrapping_add(NTP_UNIX_OFFSET);
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// What a report says about one source we receive (one RFC 3550 §6.4.1 report block).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source reported on.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit, clamped).
    pub total_lost: u32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the last SR's NTP timestamp (LSR).
    pub last_sr: u32,
    /// Delay since that SR in 1/65536 s (DLSR).
    pub delay_since_last_sr: u32,
}

/// Sender information of an SR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// NTP timestamp.
    pub ntp_time: u64,
    /// RTP timestamp of the same instant.
    pub rtp_time: u32,
    /// Packets sent.
    pub packet_count: u32,
    /// Payload octets sent.
    pub octet_count: u32,
}

/// Builds a compound RTCP packet: an SR (when `sender` is given) or an RR, with at most
/// one report block, followed by an SDES with our CNAME (RFC 3550 §6.1), and a BYE for
/// `ssrc` when `bye` is set (RFC 3550 §6.6).
pub fn build_report(
    ssrc: u32,
    sender: Option<SenderInfo>,
    block: Option<ReportBlock>,
    cname: &str,
    bye: bool,
) -> Result<Bytes, RtpError> {
    let reports: Vec<ReceptionReport> = block
        .map(|b| ReceptionReport {
            ssrc: b.ssrc,
            fraction_lost: b.fraction_lost,
            total_lost: b.total_lost.min(0x7F_FFFF),
            last_sequence_number: b.highest_seq,
            jitter: b.jitter,
            last_sender_report: b.last_sr,
            delay: b.delay_since_last_sr,
        })
        .into_iter()
        .collect();
    let first: Box<dyn rtc_rtcp::packet::Packet> = match sender {
        Some(s) => Box::new(SenderReport {
            ssrc,
            ntp_time: s.ntp_time,
            rtp_time: s.rtp_time,
            packet_count: s.packet_count,
            octet_count: s.octet_count,
            reports,
            profile_extensions: Bytes::new(),
        }),
        None => Box::new(ReceiverReport {
            ssrc,
            reports,
            profile_extensions: Bytes::new(),
        }),
    };
    let sdes = SourceDescription {
        chunks: vec![SourceDescriptionChunk {
            source: ssrc,
            items: vec![SourceDescriptionItem {
                sdes_type: SdesType::SdesCname,
                text: Bytes::copy_from_slice(cname.as_bytes()),
            }],
        }],
    };
    let mut packets: Vec<Box<dyn rtc_rtcp::packet::Packet>> = vec![first, Box::new(sdes)];
    if bye {
        packets.push(Box::new(rtc_rtcp::goodbye::Goodbye {
            sources: vec![ssrc],
            reason: Bytes::new(),
        }));
    }
    rtc_rtcp::packet::marshal(&packets)
        .map(|b| b.freeze())
        .map_err(|e| RtpError::Rtcp(e.to_string()))
}

/// What we read from an RTCP compound packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RtcpInfo {
    /// SSRC and sender info of an SR, if there was one.
    pub sender_report: Option<(u32, SenderInfo)>,
    /// Report blocks (from SR or RR).
    pub blocks: Vec<ReportBlock>,
    /// SSRCs that said BYE.
    pub bye: Vec<u32>,
}

/// Parses an RTCP compound packet with `rtc-rtcp` (RFC 3550 §6).
pub fn parse_rtcp(data: &[u8]) -> Result<RtcpInfo, RtpError> {
    let mut rd: &[u8] = data;
    let packets =
        rtc_rtcp::packet::unmarshal(&mut rd).map_err(|e| RtpError::Rtcp(e.to_string()))?;
    let mut info = RtcpInfo::default();
    let block = |r: &ReceptionReport| ReportBlock {
        ssrc: r.ssrc,
        fraction_lost: r.fraction_lost,
        total_lost: r.total_lost,
        highest_seq: r.last_sequence_number,
        jitter: r.jitter,
        last_sr: r.last_sender_report,
        delay_since_last_sr: r.delay,
    };
    for p in &packets {
        let any = p.as_any();
        if let Some(sr) = any.downcast_ref::<SenderReport>() {
            info.sender_report = Some((
                sr.ssrc,
                SenderInfo {
                    ntp_time: sr.ntp_time,
                    rtp_time: sr.rtp_time,
                    packet_count: sr.packet_count,
                    octet_count: sr.octet_count,
                },
            ));
            info.blocks.extend(sr.reports.iter().map(block));
        } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
            info.blocks.extend(rr.reports.iter().map(block));
        } else if let Some(bye) = any.downcast_ref::<rtc_rtcp::goodbye::Goodbye>() {
            info.bye.extend_from_slice(&bye.sources);
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(marker: bool) -> Vec<u8> {
        let mut buf = [0u8; 200];
        let h = RtpHeaderFields {
            marker,
            payload_type: 8,
            sequence_number: 65535,
            timestamp: 0xDEAD_BEEF,
            ssrc: 0x1234_5678,
        };
        let n = write_rtp(&h, &[0xD5; 160], &mut buf).unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn writes_wire_format_of_rfc3550() {
        let p = sample(true);
        assert_eq!(p.len(), 172);
        assert_eq!(
            &p[..12],
            &[0x80, 0x88, 0xFF, 0xFF, 0xDE, 0xAD, 0xBE, 0xEF, 0x12, 0x34, 0x56, 0x78]
        );
        assert_eq!(sample(false)[1], 0x08);
    }

    #[test]
    fn parse_round_trip() {
        let p = sample(true);
        let v = parse(&p).unwrap();
        assert!(v.marker);
        assert_eq!(v.payload_type, 8);
        assert_eq!(v.sequence_number, 65535);
        assert_eq!(v.timestamp, 0xDEAD_BEEF);
        assert_eq!(v.ssrc, 0x1234_5678);
        assert_eq!(v.payload.len(), 160);
        assert!(!is_rtcp(&p));
    }

    #[test]
    fn parse_handles_csrc_and_padding() {
        let mut p = vec![0xA1, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        p.extend_from_slice(&[0, 0, 0, 9]); // one CSRC
        p.extend_from_slice(&[1, 2, 3, 0, 0, 3]); // payload 1 2 3 + 3 bytes padding
        let v = parse(&p).unwrap();
        assert_eq!(v.csrc_count, 1);
        assert_eq!(v.payload, &[1, 2, 3]);
    }

    #[test]
    fn parse_rejects_bad_input() {
        assert_eq!(parse(&[0x80; 5]), Err(RtpError::TooShort(5)));
        let mut p = sample(false);
        p[0] = 0x40;
        assert_eq!(parse(&p), Err(RtpError::BadVersion(1)));
        let mut p = sample(false);
        p[0] = 0x8F; // 15 CSRCs, not present
        assert!(matches!(parse(&p[..20]), Err(RtpError::Malformed(_))));
        let mut p = sample(false);
        p[0] |= 0x20; // padding flag, last byte 0xD5 > payload
        let last = p.len() - 1;
        p[last] = 200;
        assert!(matches!(parse(&p), Err(RtpError::Malformed(_))));
    }

    #[test]
    fn write_checks_buffer() {
        let h = RtpHeaderFields {
            marker: false,
            payload_type: 0,
            sequence_number: 0,
            timestamp: 0,
            ssrc: 0,
        };
        assert_eq!(
            write_rtp(&h, &[0; 10], &mut [0u8; 20]),
            Err(RtpError::BufferTooSmall { need: 22, have: 20 })
        );
    }

    #[test]
    fn ntp_conversion() {
        let t = UNIX_EPOCH + Duration::from_millis(1500);
        let n = ntp_timestamp(t);
        assert_eq!(n >> 32, NTP_UNIX_OFFSET + 1);
        assert_eq!(n & 0xFFFF_FFFF, 1 << 31);
    }

    #[test]
    fn report_round_trip() {
        let si = SenderInfo {
            ntp_time: 0x1122_3344_5566_7788,
            rtp_time: 1600,
            packet_count: 10,
            octet_count: 1600,
        };
        let blk = ReportBlock {
            ssrc: 99,
            fraction_lost: 25,
            total_lost: 10,
            highest_seq: 70000,
            jitter: 12,
            last_sr: 0x3344_5566,
            delay_since_last_sr: 65536,
        };
        let sr = build_report(7, Some(si), Some(blk), "caruso@test", false).unwrap();
        assert!(is_rtcp(&sr));
        assert_eq!(sr[1], 200);
        let info = parse_rtcp(&sr).unwrap();
        assert_eq!(info.sender_report, Some((7, si)));
        assert_eq!(info.blocks, [blk]);
        let rr = build_report(7, None, None, "x", false).unwrap();
        assert_eq!(rr[1], 201);
        let info = parse_rtcp(&rr).unwrap();
        assert!(info.sender_report.is_none() && info.blocks.is_empty() && info.bye.is_empty());
        let bye = build_report(7, None, None, "x", true).unwrap();
        assert_eq!(parse_rtcp(&bye).unwrap().bye, [7]);
        assert!(parse_rtcp(&[0x80, 200, 0, 50]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse(&data);
            let _ = parse_rtcp(&data);
            // Also with a valid-looking RTCP/RTP first word, so the deeper parsers run.
            for prefix in [[0x81u8, 200], [0x81, 201], [0x81, 202], [0x81, 203], [0x80, 0]] {
                let mut d = prefix.to_vec();
                d.extend_from_slice(&data);
                let _ = parse(&d);
                let _ = parse_rtcp(&d);
            }
        }
    }
}
