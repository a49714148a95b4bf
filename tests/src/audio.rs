//! Audio seen from the wire: G.711 µ-law, WAV files, pcap files (ours from
//! `tests/tools/mkpcap.py`, and tcpdump's), a full-packet RTP capture, and finding a
//! known piece of audio (a prompt, the voicemail test's known audio) in a stream.
//!
//! Contract: everything is std-only and independent of the server's code, so a test that
//! finds a prompt's samples in the server's RTP checks the server's G.711 against the
//! standard law (ITU-T G.711, bias 0x84, clip 32635).
//!
//! ```
//! use caruso_e2e::audio::*;
//! let prompt: Vec<i16> = marker_audio(7, 0.2);
//! let mut stream = vec![0xffu8; 800];
//! stream.extend(prompt.iter().map(|&s| ulaw_encode(s)));
//! stream.extend([0xffu8; 800]);
//! assert_eq!(find_all(&stream, &prompt), vec![800]);
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// G.711 µ-law
// ---------------------------------------------------------------------------------------

/// Encodes one 16-bit sample to µ-law (ITU-T G.711).
pub fn ulaw_encode(s: i16) -> u8 {
    let s = i32::from(s);
    let sign: u8 = if s < 0 { 0x80 } else { 0 };
    let mag = s.abs().min(32635) + 0x84;
    let exp = (31 - mag.leading_zeros() as i32) - 7; // 0..=7
    let mant = ((mag >> (exp + 3)) & 0x0f) as u8;
    !(sign | ((exp as u8) << 4) | mant)
}

/// Decodes one µ-law code to a 16-bit sample.
pub fn ulaw_decode(c: u8) -> i16 {
    let u = !c;
    let exp = i32::from((u >> 4) & 0x07);
    let mant = i32::from(u & 0x0f);
    let mag = (((mant << 3) + 0x84) << exp) - 0x84;
    if u & 0x80 != 0 {
        -mag as i16
    } else {
        mag as i16
    }
}

/// Decodes one A-law code to a 16-bit sample (ITU-T G.711).
pub fn alaw_decode(c: u8) -> i16 {
    let a = c ^ 0x55;
    let mut t = i32::from(a & 0x0f) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 {
        t as i16
    } else {
        -t as i16
    }
}

/// The decoded audio of the packets with payload type `pt` (0 PCMU, 8 PCMA), in
/// arrival order.
pub fn decoded(packets: &[RtpPacket], pt: u8) -> Vec<i16> {
    let mut ps: Vec<&RtpPacket> = packets.iter().filter(|p| p.pt == pt).collect();
    ps.sort_by(|a, b| a.time.total_cmp(&b.time));
    ps.iter()
        .flat_map(|p| {
            p.payload.iter().map(move |&c| match pt {
                8 => alaw_decode(c),
                _ => ulaw_decode(c),
            })
        })
        .collect()
}

/// `samples` through µ-law and back: what a PCMU link delivers of them.
pub fn ulaw_roundtrip(samples: &[i16]) -> Vec<i16> {
    samples
        .iter()
        .map(|&s| ulaw_decode(ulaw_encode(s)))
        .collect()
}

// ---------------------------------------------------------------------------------------
// WAV
// ---------------------------------------------------------------------------------------

/// A WAV file's format and 16-bit samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Wav {
    /// Sample rate (Hz).
    pub rate: u32,
    /// Channels.
    pub channels: u16,
    /// Bits per sample.
    pub bits: u16,
    /// Samples (interleaved if more than one channel).
    pub samples: Vec<i16>,
}

impl Wav {
    /// Length in seconds.
    pub fn secs(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.rate.max(1)) / f64::from(self.channels.max(1))
    }
}

/// Parses a RIFF/WAVE file of 16-bit PCM (chunks in any order, unknown chunks skipped).
pub fn parse_wav(bytes: &[u8]) -> Result<Wav, String> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err("not a RIFF/WAVE file".into());
    }
    let mut off = 12;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    while off + 8 <= bytes.len() {
        let id = &bytes[off..off + 4];
        let len = u32::from_le_bytes(bytes[off + 4..off + 8].try_into().expect("4")) as usize;
        let body = &bytes[off + 8..(off + 8 + len).min(bytes.len())];
        if id == b"fmt " && body.len() >= 16 {
            let le16 = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
            let rate = u32::from_le_bytes(body[4..8].try_into().expect("4"));
            fmt = Some((le16(0), le16(2), rate, le16(14)));
        } else if id == b"data" {
            let (format, channels, rate, bits) = fmt.ok_or("data chunk before fmt")?;
            if format != 1 || bits != 16 {
                return Err(format!("format {format}, {bits} bits: want 16-bit PCM"));
            }
            let samples = body
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            return Ok(Wav {
                rate,
                channels,
                bits,
                samples,
            });
        }
        off += 8 + len + (len & 1);
    }
    Err("no data chunk".into())
}

/// Reads a WAV file (panics with the path on error).
pub fn read_wav(path: &Path) -> Wav {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    parse_wav(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Writes 8 kHz 16-bit mono samples as a WAV file.
pub fn write_wav(path: &Path, samples: &[i16]) {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&16000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    fs::write(path, out).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A recognisable test prompt: `secs` of seeded pseudo-random noise (amplitude about
/// 6000), different for every `seed`; any 50 ms of it occurs nowhere else.
pub fn marker_audio(seed: u32, secs: f32) -> Vec<i16> {
    let n = (secs * 8000.0).round() as usize;
    let mut x = 0x9e37_79b9u32 ^ seed.wrapping_mul(0x85eb_ca6b);
    (0..n)
        .map(|_| {
            // xorshift32
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            ((x >> 16) as i16) / 5
        })
        .collect()
}

/// A prompt directory for a test: a copy of `config/prompts/*.wav` plus `extra` prompts
/// (name, samples) written as `<name>.wav`. The [`crate::TempDir`] must outlive the
/// server that uses it.
pub fn prompt_dir_with(extra: &[(&str, &[i16])]) -> crate::TempDir {
    let dir = crate::TempDir::new("prompts");
    if let Ok(entries) = fs::read_dir(crate::prompts_dir()) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "wav") {
                if let Some(name) = p.file_name() {
                    let _ = fs::copy(&p, dir.path().join(name));
                }
            }
        }
    }
    for (name, samples) in extra {
        write_wav(&dir.path().join(format!("{name}.wav")), samples);
    }
    dir
}

/// The samples of a default prompt (`config/prompts/<name>.wav`).
pub fn default_prompt(name: &str) -> Vec<i16> {
    read_wav(&crate::prompts_dir().join(format!("{name}.wav"))).samples
}

// ---------------------------------------------------------------------------------------
// Finding audio in audio
// ---------------------------------------------------------------------------------------

/// Length of the signature [`find_all`] looks for: 50 ms.
const SIGNATURE: usize = 400;

/// Where (byte offsets into `stream`, a µ-law byte stream) the µ-law encoding of
/// `prompt` occurs, non-overlapping: a 50 ms signature from the loudest part of the
/// prompt must match with at most 2 % of its codes differing by more than one step.
pub fn find_all(stream: &[u8], prompt: &[i16]) -> Vec<usize> {
    let code: Vec<u8> = prompt.iter().map(|&s| ulaw_encode(s)).collect();
    let (sig_at, sig) = signature(&code);
    let budget = sig.len() / 50;
    let mut found = Vec::new();
    let mut i = 0;
    while i + sig.len() <= stream.len() {
        let mut bad = 0;
        for (a, b) in stream[i..i + sig.len()].iter().zip(sig) {
            if a.abs_diff(*b) > 1 {
                bad += 1;
                if bad > budget {
                    break;
                }
            }
        }
        if bad <= budget {
            found.push(i.saturating_sub(sig_at));
            i += sig.len().max(code.len().saturating_sub(sig_at));
        } else {
            i += 1;
        }
    }
    found
}

/// The loudest 50 ms window of a µ-law sequence (fewest codes near silence), with its
/// offset; the whole sequence if it is shorter.
fn signature(code: &[u8]) -> (usize, &[u8]) {
    if code.len() <= SIGNATURE {
        return (0, code);
    }
    // Energy per window, in steps of 10 ms.
    let mut best = (0usize, 0u64);
    let mut at = 0;
    while at + SIGNATURE <= code.len() {
        let e: u64 = code[at..at + SIGNATURE]
            .iter()
            .map(|&c| ulaw_decode(c).unsigned_abs() as u64)
            .sum();
        if e > best.1 {
            best = (at, e);
        }
        at += 80;
    }
    (best.0, &code[best.0..best.0 + SIGNATURE])
}

/// Where `needle` (linear samples) starts in `hay` (linear samples), if every sample
/// of it matches within `tol` after the first `skip` samples of the match; searches
/// with the first 50 ms of the needle's loudest part.
pub fn align(hay: &[i16], needle: &[i16], tol: i32) -> Option<usize> {
    let code_hay: Vec<u8> = hay.iter().map(|&s| ulaw_encode(s)).collect();
    let starts = find_all(&code_hay, needle);
    starts.into_iter().find(|&s| {
        hay.get(s..s + needle.len()).is_some_and(|w| {
            let bad = w
                .iter()
                .zip(needle)
                .filter(|(a, b)| (i32::from(**a) - i32::from(**b)).abs() > tol)
                .count();
            bad * 100 <= needle.len()
        })
    })
}

/// 1.5 s of `audio` from `skip_ms` after its first loud sample (|s| > 500): a stretch
/// of a recording's speech to look for in what a peer heard.
pub fn speech_body(audio: &[i16], skip_ms: usize) -> &[i16] {
    let start = audio
        .iter()
        .position(|s| s.unsigned_abs() > 500)
        .unwrap_or(0)
        + skip_ms * 8;
    &audio[start.min(audio.len())..(start + 12_000).min(audio.len())]
}

/// How much of a stretch of known audio a peer heard: its 300 ms pieces found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    /// Pieces found (each aligned on its own).
    pub found: usize,
    /// Pieces looked for.
    pub of: usize,
}

impl Heard {
    /// More than half the pieces: the audio went through. One contiguous alignment would
    /// fail on a single packet a loaded machine drops or delays; most pieces cannot be
    /// found by chance in other audio.
    pub fn most(&self) -> bool {
        self.of > 0 && self.found * 2 > self.of
    }
}

impl std::fmt::Display for Heard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of {} 300 ms pieces heard", self.found, self.of)
    }
}

/// Which 300 ms pieces of `needle` are in `hay` (sample tolerance `tol`, see [`align`]).
pub fn heard(hay: &[i16], needle: &[i16], tol: i32) -> Heard {
    let (found, of) = pieces_found(hay, needle, 2400, tol);
    Heard { found, of }
}

/// How many of the consecutive `piece`-sample pieces of `needle` occur in `hay`, each
/// matched like [`align`] with `tol`. Robust to a gap or a dropped packet in a stream
/// relayed on a loaded machine, where one long [`align`] fails on the first jump.
pub fn pieces_found(hay: &[i16], needle: &[i16], piece: usize, tol: i32) -> (usize, usize) {
    let pieces: Vec<&[i16]> = needle
        .chunks(piece.max(1))
        .filter(|c| c.len() == piece)
        .collect();
    let found = pieces
        .iter()
        .filter(|c| align(hay, c, tol).is_some())
        .count();
    (found, pieces.len())
}

// ---------------------------------------------------------------------------------------
// pcap files
// ---------------------------------------------------------------------------------------

/// One RTP packet with its payload, from a pcap file or a capture.
#[derive(Debug, Clone)]
pub struct RtpPacket {
    /// Capture time in seconds (pcap timestamp).
    pub time: f64,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// Payload type.
    pub pt: u8,
    /// Marker bit.
    pub marker: bool,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub ts: u32,
    /// SSRC.
    pub ssrc: u32,
    /// Payload.
    pub payload: Vec<u8>,
}

/// One UDP datagram of a pcap file: (time, source port, destination port, payload).
pub type UdpDatagram = (f64, u16, u16, Vec<u8>);

/// The UDP datagrams of a classic pcap file (Ethernet, Linux cooked v1/v2, raw IP or
/// BSD loopback link types; IPv4 only).
pub fn pcap_udp(bytes: &[u8]) -> Result<Vec<UdpDatagram>, String> {
    if bytes.len() < 24 {
        return Err("short pcap header".into());
    }
    let magic = u32::from_le_bytes(bytes[0..4].try_into().expect("4"));
    let (le, nanos) = match magic {
        0xa1b2_c3d4 => (true, false),
        0xa1b2_3c4d => (true, true),
        0xd4c3_b2a1 => (false, false),
        0x4d3c_b2a1 => (false, true),
        _ => return Err(format!("not a classic pcap file (magic {magic:08x})")),
    };
    let u32_at = |b: &[u8], i: usize| {
        let a: [u8; 4] = b[i..i + 4].try_into().expect("4");
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let link = u32_at(bytes, 20);
    let l2 = match link {
        1 => 14,   // Ethernet
        113 => 16, // Linux cooked v1
        276 => 20, // Linux cooked v2
        101 => 0,  // raw IP
        0 => 4,    // BSD loopback
        _ => return Err(format!("link type {link} not handled")),
    };
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= bytes.len() {
        let sec = u32_at(bytes, off);
        let frac = u32_at(bytes, off + 4);
        let incl = u32_at(bytes, off + 8) as usize;
        let pkt = &bytes[off + 16..(off + 16 + incl).min(bytes.len())];
        off += 16 + incl;
        let time = f64::from(sec) + f64::from(frac) / if nanos { 1e9 } else { 1e6 };
        let Some(ip) = pkt.get(l2..) else { continue };
        if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 17 {
            continue;
        }
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let Some(udp) = ip.get(ihl..) else { continue };
        if udp.len() < 8 {
            continue;
        }
        let sport = u16::from_be_bytes([udp[0], udp[1]]);
        let dport = u16::from_be_bytes([udp[2], udp[3]]);
        let ulen = usize::from(u16::from_be_bytes([udp[4], udp[5]])).clamp(8, udp.len());
        out.push((time, sport, dport, udp[8..ulen].to_vec()));
    }
    Ok(out)
}

/// The RTP packets of a pcap file's UDP datagrams (non-RTP datagrams are skipped).
pub fn pcap_rtp(bytes: &[u8]) -> Result<Vec<RtpPacket>, String> {
    Ok(pcap_udp(bytes)?
        .into_iter()
        .filter_map(|(time, src_port, dst_port, data)| {
            let p = crate::parse_rtp(&data, Instant::now(), ([127, 0, 0, 1], src_port).into())?;
            // RTCP shares the version bits: its packet types 200..=204 read as PT 72..=76
            // with the marker set.
            if (72..=76).contains(&p.pt) {
                return None;
            }
            let cc = usize::from(data[0] & 0x0f);
            let start = 12 + 4 * cc;
            let start = if data[0] & 0x10 != 0 {
                let words = usize::from(u16::from_be_bytes([data[start + 2], data[start + 3]]));
                start + 4 + 4 * words
            } else {
                start
            };
            Some(RtpPacket {
                time,
                src_port,
                dst_port,
                pt: p.pt,
                marker: p.marker,
                seq: p.seq,
                ts: p.ts,
                ssrc: p.ssrc,
                payload: data[start..start + p.payload_len].to_vec(),
            })
        })
        .collect())
}

/// The RTP packets of `tests/pcap/<name>`.
pub fn test_pcap(name: &str) -> Vec<RtpPacket> {
    let path = crate::pcap_dir().join(name);
    let bytes = fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "read {}: {e} (regenerate with tests/tools/mkpcap.py all)",
            path.display()
        )
    });
    pcap_rtp(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The decoded PCMU audio (payload type 0) of a pcap of ours, in order.
pub fn pcap_pcmu_samples(packets: &[RtpPacket]) -> Vec<i16> {
    packets
        .iter()
        .filter(|p| p.pt == 0)
        .flat_map(|p| p.payload.iter().map(|&c| ulaw_decode(c)))
        .collect()
}

/// The µ-law payload bytes of the PCMU packets (payload type 0) among `packets`,
/// concatenated in sequence order of each SSRC as it arrives.
pub fn pcmu_stream(packets: &[RtpPacket]) -> Vec<u8> {
    let mut ps: Vec<&RtpPacket> = packets.iter().filter(|p| p.pt == 0).collect();
    // Arrival order is sequence order on loopback; keep it stable.
    ps.sort_by(|a, b| a.time.total_cmp(&b.time));
    ps.iter().flat_map(|p| p.payload.iter().copied()).collect()
}

// ---------------------------------------------------------------------------------------
// Full-packet capture
// ---------------------------------------------------------------------------------------

/// A `tcpdump -w` on `lo` keeping whole UDP packets that match a filter, for reading
/// the RTP a peer we do not control (SIPp's media socket) receives or sends.
#[derive(Debug)]
pub struct RtpCapture {
    child: Child,
    file: PathBuf,
    _dir: crate::TempDir,
}

impl RtpCapture {
    /// Captures UDP packets sent to `127.0.0.1:port`.
    pub fn udp_to(port: u16) -> Self {
        Self::start(&format!("udp and dst host 127.0.0.1 and dst port {port}"))
    }

    /// Captures UDP packets sent from `127.0.0.1:port`.
    pub fn udp_from(port: u16) -> Self {
        Self::start(&format!("udp and src host 127.0.0.1 and src port {port}"))
    }

    /// Captures packets matching a tcpdump `filter`; returns once tcpdump listens
    /// (deadline 10 s).
    pub fn start(filter: &str) -> Self {
        let dir = crate::TempDir::new("capture");
        let file = dir.path().join("capture.pcap");
        let mut child = Command::new("tcpdump")
            .args(["-i", "lo", "-n", "-U", "-s", "0", "-Q", "in", "-w"])
            .arg(&file)
            .arg(filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump not found: install it (tests/run-all.sh does)");
        crate::wait_until_listening(&mut child);
        RtpCapture {
            child,
            file,
            _dir: dir,
        }
    }

    /// The RTP packets captured so far (tcpdump writes each packet at once, `-U`).
    pub fn packets(&self) -> Vec<RtpPacket> {
        let bytes = fs::read(&self.file).unwrap_or_default();
        pcap_rtp(&bytes).unwrap_or_default()
    }

    /// Every UDP datagram captured so far, RTP or not (SIP too: for timing signalling
    /// against media captured by another [`RtpCapture`]; both use tcpdump's clock).
    pub fn datagrams(&self) -> Vec<UdpDatagram> {
        let bytes = fs::read(&self.file).unwrap_or_default();
        pcap_udp(&bytes).unwrap_or_default()
    }

    /// Stops tcpdump (SIGINT, so it flushes) and returns the RTP packets.
    pub fn finish(mut self) -> Vec<RtpPacket> {
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.packets()
    }
}

impl Drop for RtpCapture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heard_tolerates_a_dropped_packet_and_rejects_other_audio() {
        let spoken = ulaw_roundtrip(&marker_audio(7, 2.0));
        let needle = speech_body(&spoken, 100);
        assert_eq!(needle.len(), 12_000);
        // The stream as relayed, with one 20 ms packet lost in the middle.
        let mut relayed = spoken.clone();
        relayed.drain(8_000..8_160);
        let h = heard(&relayed, needle, 0);
        assert!(h.most() && h.found < h.of, "{h}");
        assert!(
            align(&relayed, needle, 0).is_none(),
            "one contiguous alignment fails across the gap"
        );
        let other = ulaw_roundtrip(&marker_audio(8, 2.0));
        let h = heard(&other, needle, 0);
        assert_eq!(h.found, 0, "{h}");
        assert!(!h.most());
        assert!(
            !heard(&[], &[], 0).most(),
            "nothing looked for is not heard"
        );
    }

    #[test]
    fn ulaw_known_codes_and_roundtrip() {
        assert_eq!(ulaw_encode(0), 0xff);
        assert_eq!(ulaw_decode(0xff), 0);
        assert_eq!(ulaw_decode(0x7f), 0);
        assert_eq!(ulaw_encode(32767), 0x80);
        assert_eq!(ulaw_encode(-32768), 0x00);
        assert_eq!(ulaw_decode(0x80), 32124);
        // Decoding then encoding gives the code back (except the two zeros).
        for c in 0..=255u8 {
            if c != 0x7f {
                assert_eq!(ulaw_encode(ulaw_decode(c)), c, "code {c:#x}");
            }
        }
    }

    #[test]
    fn wav_roundtrip() {
        let dir = crate::TempDir::new("wavrt");
        let p = dir.path().join("a.wav");
        let s = marker_audio(3, 0.1);
        write_wav(&p, &s);
        let w = read_wav(&p);
        assert_eq!((w.rate, w.channels, w.bits), (8000, 1, 16));
        assert_eq!(w.samples, s);
        assert!((w.secs() - 0.1).abs() < 1e-9);
    }

    #[test]
    fn find_and_align() {
        let a = marker_audio(1, 0.5);
        let b = marker_audio(2, 0.5);
        let mut stream: Vec<u8> = vec![0xff; 1000];
        stream.extend(a.iter().map(|&s| ulaw_encode(s)));
        stream.extend(b.iter().map(|&s| ulaw_encode(s)));
        stream.extend(a.iter().map(|&s| ulaw_encode(s)));
        assert_eq!(find_all(&stream, &a), vec![1000, 1000 + 8000]);
        assert_eq!(find_all(&stream, &b), vec![1000 + 4000]);
        assert!(find_all(&stream, &marker_audio(3, 0.5)).is_empty());
        let mut hay = vec![0i16; 123];
        hay.extend(ulaw_roundtrip(&b));
        assert_eq!(align(&hay, &ulaw_roundtrip(&b), 0), Some(123));
        assert_eq!(align(&hay, &ulaw_roundtrip(&a), 0), None);
    }

    #[test]
    fn committed_pcaps_parse() {
        let ps = test_pcap("dtmf_1.pcap");
        let events: Vec<&RtpPacket> = ps.iter().filter(|p| p.pt == 101).collect();
        assert!(events.len() >= 4, "{ps:?}");
        assert!(events[0].marker);
        assert!(events.iter().all(|p| p.ts == events[0].ts));
        assert_eq!(events.last().map(|p| p.payload[1] & 0x80), Some(0x80));
        let known = pcap_pcmu_samples(&test_pcap("vm_known_3s.pcap"));
        // 40 ms of lead silence, then 3.00 s of known audio.
        assert_eq!(known.len(), 320 + 24_000);
    }
}
