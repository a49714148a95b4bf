//! A sans-IO RTP session: paced G.711 sending, reception statistics, DTMF, RTCP.
//!
//! Contract. Inputs: [`RtpSession::handle_packet`] (a datagram from the media socket, RTP
//! or RTCP, demultiplexed RFC 5761-style), [`RtpSession::handle_rtcp`] (a datagram from a
//! separate RTCP socket), [`RtpSession::handle_timeout`], [`RtpSession::play`] and the
//! setters. Outputs: [`RtpSession::poll_transmit`] (datagrams to send),
//! [`RtpSession::poll_event`], [`RtpSession::poll_timeout`] (when to call
//! `handle_timeout` next) and [`RtpSession::stats`]. No clock is read: every input
//! carries `now`, and the wall clock needed for RTCP comes from
//! [`SessionConfig::ntp_base`] (the wall-clock time of the `now` given to `new`).
//!
//! Invariants:
//! - Drift-free pacing: packet `n` (1-based) is due at `start + n * ptime`, computed from
//!   the start instant. A late `handle_timeout` sends what is due; beyond
//!   [`MAX_CATCH_UP`] packets behind, the oldest are skipped (counted in
//!   [`RtpStats::send_skipped`]) and the schedule stays on its grid.
//! - RTP timestamps follow the wall clock (`initial_timestamp + (n-1) * samples per
//!   packet`, also across holds); sequence numbers +1 per packet sent, both wrapping; one
//!   SSRC; marker bit on the first packet of each talkspurt.
//! - While nothing plays, silence frames are sent ([`SessionConfig::send_silence`]) so the
//!   peer's jitter buffer and NAT bindings stay fed. A prompt only advances while we send
//!   (it pauses while on hold).
//! - Symmetric RTP: once the peer's stream is valid (RFC 3550 A.1 probation passed), media
//!   goes to its source address; a new SSRC re-latches.
//!
//! ```
//! use caruso::media::{codec::Codec, session::*, wav::Prompt};
//! use std::time::{Duration, Instant, SystemTime};
//! let t0 = Instant::now();
//! let cfg = SessionConfig::new(Codec::Pcmu, "127.0.0.1:4000".parse().unwrap(), 1, 0, 0, SystemTime::UNIX_EPOCH);
//! let mut s = RtpSession::new(cfg, t0);
//! s.play(t0, Prompt::from_samples(vec![0i16; 320]));
//! let due = s.poll_timeout().unwrap();
//! assert_eq!(due, t0 + Duration::from_millis(20));
//! s.handle_timeout(due);
//! let tx = s.poll_transmit().unwrap();
//! assert_eq!((tx.kind, tx.data.len()), (MediaKind::Rtp, 172));
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};

use super::codec::{encode_into, silence_code, Codec};
use super::dtmf::{DtmfDigit, DtmfReceiver, DtmfSender};
use super::rtp::{
    build_report, is_rtcp, ntp_timestamp, parse, parse_rtcp, write_rtp, ReportBlock,
    RtpHeaderFields, SenderInfo, RTP_HEADER_LEN,
};
use super::sdp::{Direction, Negotiated};
use super::wav::Prompt;

/// At most this many overdue packets are sent by one `handle_timeout`; older ones are
/// skipped.
pub const MAX_CATCH_UP: u64 = 10;
/// RFC 3550 A.1: packets in sequence before a source is valid.
const MIN_SEQUENTIAL: u32 = 2;
/// RFC 3550 A.1: largest forward jump taken as loss.
const MAX_DROPOUT: u16 = 3000;
/// RFC 3550 A.1: largest backward step taken as reordering.
const MAX_MISORDER: u16 = 100;
/// RFC 3551 comfort noise payload type (accepted, not played).
const PT_CN: u8 = 13;
/// Most live audio ([`RtpSession::write_audio`]) buffered, in 8 kHz samples (200 ms):
/// beyond it the oldest samples are dropped, so a clock drift between the writer and our
/// pacing never builds latency.
pub const LIVE_AUDIO_MAX: usize = 1600;
/// Duration of a relayed or generated RFC 4733 event, in timestamp units (100 ms).
const DTMF_EVENT_UNITS: u16 = 800;

/// Configuration of one RTP session. Random values (SSRC, first sequence number and
/// timestamp) are chosen by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// The codec we send and expect.
    pub codec: Codec,
    /// Payload type for `codec` (0/8 or a negotiated dynamic one).
    pub payload_type: u8,
    /// RFC 4733 telephone-event payload type, if negotiated.
    pub telephone_event_pt: Option<u8>,
    /// Our SSRC.
    pub ssrc: u32,
    /// Sequence number of the first packet.
    pub initial_seq: u16,
    /// RTP timestamp of the first packet.
    pub initial_timestamp: u32,
    /// Where to send RTP (until symmetric latching changes it).
    pub remote: SocketAddr,
    /// Where to send RTCP; port 0 (the default): the RTP address with mux, else its
    /// port + 1 (RFC 3550 §11).
    pub remote_rtcp: SocketAddr,
    /// RTP and RTCP share one port (RFC 5761).
    pub rtcp_mux: bool,
    /// Packet time (10..=120 ms; default 20 ms).
    pub ptime: Duration,
    /// Emit [`MediaEvent::Inactive`] after this long without RTP while the peer should
    /// send (default 30 s; zero disables).
    pub inactivity_timeout: Duration,
    /// RTCP report interval (default 5 s).
    pub rtcp_interval: Duration,
    /// Symmetric RTP (send to where the peer's packets come from; default on).
    pub symmetric: bool,
    /// Send silence frames while nothing plays (default on).
    pub send_silence: bool,
    /// Our media direction (default sendrecv).
    pub direction: Direction,
    /// Wall-clock time of the `now` given to [`RtpSession::new`] (for RTCP NTP times).
    pub ntp_base: SystemTime,
    /// RTCP CNAME (default `caruso-<ssrc>`).
    pub cname: String,
}

impl SessionConfig {
    /// A configuration with the defaults above.
    pub fn new(
        codec: Codec,
        remote: SocketAddr,
        ssrc: u32,
        initial_seq: u16,
        initial_timestamp: u32,
        ntp_base: SystemTime,
    ) -> Self {
        SessionConfig {
            codec,
            payload_type: codec.payload_type(),
            telephone_event_pt: None,
            ssrc,
            initial_seq,
            initial_timestamp,
            remote,
            remote_rtcp: SocketAddr::from(([0, 0, 0, 0], 0)),
            rtcp_mux: false,
            ptime: Duration::from_millis(20),
            inactivity_timeout: Duration::from_secs(30),
            rtcp_interval: Duration::from_secs(5),
            symmetric: true,
            send_silence: true,
            direction: Direction::SendRecv,
            ntp_base,
            cname: format!("caruso-{ssrc:08x}"),
        }
    }

    /// A configuration from the outcome of SDP offer/answer.
    pub fn from_negotiated(
        n: &Negotiated,
        ssrc: u32,
        initial_seq: u16,
        initial_timestamp: u32,
        ntp_base: SystemTime,
    ) -> Self {
        SessionConfig {
            payload_type: n.payload_type,
            telephone_event_pt: n.telephone_event_pt,
            remote_rtcp: n.remote_rtcp_addr,
            rtcp_mux: n.rtcp_mux,
            ptime: n.ptime,
            direction: n.direction,
            ..SessionConfig::new(
                n.codec,
                n.remote_addr,
                ssrc,
                initial_seq,
                initial_timestamp,
                ntp_base,
            )
        }
    }
}

impl Default for SessionConfig {
    /// PCMU to `0.0.0.0:0` with SSRC, sequence and timestamp 0 and `ntp_base` at the Unix
    /// epoch: set at least `remote`, the random values and `ntp_base`
    /// (`SystemTime::now()` in the IO layer) before use.
    fn default() -> Self {
        SessionConfig::new(
            Codec::Pcmu,
            SocketAddr::from(([0, 0, 0, 0], 0)),
            0,
            0,
            0,
            SystemTime::UNIX_EPOCH,
        )
    }
}

/// What a datagram to send carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// RTP media.
    Rtp,
    /// RTCP report (to the RTCP address: same socket with mux, else port + 1).
    Rtcp,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaTransmit {
    /// Destination.
    pub to: SocketAddr,
    /// RTP or RTCP.
    pub kind: MediaKind,
    /// The datagram.
    pub data: Bytes,
}

impl MediaTransmit {
    /// The datagram's bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
}

/// Something the call should know about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaEvent {
    /// The prompt queued first has been sent completely.
    PromptFinished,
    /// A DTMF digit (RFC 4733), once per key press.
    Dtmf(DtmfDigit),
    /// No RTP for `inactivity_timeout` while the peer should send (once until RTP resumes).
    Inactive,
    /// Symmetric RTP latched onto a new peer address.
    PeerAddressChanged(SocketAddr),
    /// The peer sent RTCP BYE for its stream.
    RemoteBye,
}

/// Counters and estimates of the session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RtpStats {
    /// RTP packets sent.
    pub packets_sent: u64,
    /// RTP payload octets sent.
    pub octets_sent: u64,
    /// Overdue packets sent late by catch-up (more than one ptime after their due time).
    pub send_late: u64,
    /// Packets skipped because `handle_timeout` came too late (see [`MAX_CATCH_UP`]).
    pub send_skipped: u64,
    /// Valid RTP packets received (RFC 3550 A.1; duplicates included).
    pub packets_received: u64,
    /// RTP payload octets received.
    pub octets_received: u64,
    /// Cumulative packets lost (expected - received, RFC 3550 A.3; never negative).
    pub packets_lost: u64,
    /// Received packets that arrived after a later one (late / reordered).
    pub packets_late: u64,
    /// Packets repeating the highest sequence number seen.
    pub duplicates: u64,
    /// Datagrams that were not valid RTP/RTCP, or from a stream not (yet) valid.
    pub invalid: u64,
    /// RTP packets with a payload type we did not negotiate.
    pub unknown_payload_type: u64,
    /// Interarrival jitter in timestamp units (RFC 3550 A.8).
    pub jitter: u32,
    /// RTCP packets sent.
    pub rtcp_sent: u64,
    /// RTCP packets received.
    pub rtcp_received: u64,
    /// Fraction lost the peer reports for our stream (1/256).
    pub remote_fraction_lost: Option<u8>,
    /// Cumulative loss the peer reports for our stream.
    pub remote_packets_lost: Option<u32>,
    /// Jitter the peer reports for our stream (timestamp units).
    pub remote_jitter: Option<u32>,
    /// Round-trip time from the peer's report blocks (RFC 3550 §6.4.1).
    pub rtt: Option<Duration>,
    /// Live audio samples ([`RtpSession::write_audio`]) dropped because the FIFO was
    /// full ([`LIVE_AUDIO_MAX`]): the oldest go, so latency never builds up.
    pub live_dropped: u64,
    /// Live audio frames sent short (the FIFO ran dry; the rest was silence).
    pub live_underruns: u64,
    /// RFC 4733 telephone-event packets sent ([`RtpSession::send_dtmf`]).
    pub dtmf_packets_sent: u64,
}

impl RtpStats {
    /// Interarrival jitter as a duration (8 kHz clock).
    pub fn jitter_duration(&self) -> Duration {
        Duration::from_micros(u64::from(self.jitter) * 1_000_000 / 8000)
    }
}

/// The remote stream's sequence state (RFC 3550 A.1) and jitter (A.8).
#[derive(Debug, Clone)]
struct Source {
    ssrc: u32,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u32,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    transit: Option<u32>,
    jitter_q4: u32,
    last_sr: u32,
    last_sr_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SeqVerdict {
    Valid,
    Probation,
    Invalid,
}

impl Source {
    fn new(ssrc: u32, seq: u16) -> Self {
        let mut s = Source {
            ssrc,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: 0,
            probation: MIN_SEQUENTIAL,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            transit: None,
            jitter_q4: 0,
            last_sr: 0,
            last_sr_at: None,
        };
        s.init_seq(seq);
        s.max_seq = seq.wrapping_sub(1);
        s
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = 0x1_0001; // RTP_SEQ_MOD + 1: no sequence number matches
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    fn valid(&self) -> bool {
        self.probation == 0
    }

    fn update_seq(&mut self, seq: u16, stats: &mut RtpStats) -> SeqVerdict {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return SeqVerdict::Valid;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return SeqVerdict::Probation;
        } else if udelta < MAX_DROPOUT {
            if udelta == 0 {
                stats.duplicates += 1;
            }
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(1 << 16);
            }
            self.max_seq = seq;
        } else if udelta <= u16::MAX - MAX_MISORDER {
            // A very large jump: restart if the next packet follows it (peer restarted).
            if u32::from(seq) == self.bad_seq {
                self.init_seq(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & 0xFFFF;
                return SeqVerdict::Invalid;
            }
        } else {
            stats.packets_late += 1;
        }
        self.received += 1;
        SeqVerdict::Valid
    }

    fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    fn expected(&self) -> u64 {
        u64::from(self.extended_max().wrapping_sub(self.base_seq)) + 1
    }

    fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    /// RFC 3550 A.8 with the integer estimator (jitter scaled by 16).
    fn update_jitter(&mut self, arrival: u32, ts: u32) {
        let transit = arrival.wrapping_sub(ts);
        if let Some(prev) = self.transit {
            let d = (transit.wrapping_sub(prev) as i32).unsigned_abs();
            self.jitter_q4 = self
                .jitter_q4
                .wrapping_add(d)
                .wrapping_sub((self.jitter_q4 + 8) >> 4);
        }
        self.transit = Some(transit);
    }

    /// The report block for this source; updates the interval counters (A.3).
    fn report_block(&mut self, now: Instant) -> ReportBlock {
        let expected = self.expected();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        let fraction = if expected_interval == 0 || lost_interval == 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval).min(255) as u8
        };
        let dlsr = self.last_sr_at.map_or(0, |at| {
            let d = now.saturating_duration_since(at);
            ((d.as_nanos() << 16) / 1_000_000_000).min(u128::from(u32::MAX)) as u32
        });
        ReportBlock {
            ssrc: self.ssrc,
            fraction_lost: fraction,
            total_lost: self.lost().min(0x7F_FFFF) as u32,
            highest_seq: self.extended_max(),
            jitter: self.jitter_q4 >> 4,
            last_sr: self.last_sr,
            delay_since_last_sr: dlsr,
        }
    }
}

/// The prompt being played and its position.
#[derive(Debug, Clone)]
struct Playing {
    prompt: Prompt,
    pos: usize,
}

/// One RTP session (see the module doc).
#[derive(Debug)]
pub struct RtpSession {
    cfg: SessionConfig,
    epoch: Instant,
    ptime_ns: u64,
    samples_per_packet: usize,
    /// Index (1-based) of the next packet on the schedule.
    next_n: u64,
    seq: u16,
    /// The previous tick sent a packet (so the next one is not a talkspurt start).
    talking: bool,
    /// Sending was re-enabled without a `now`: resync at the next `handle_timeout`.
    resync_pending: bool,
    playing: Option<Playing>,
    queue: VecDeque<Prompt>,
    remote: SocketAddr,
    remote_rtcp: SocketAddr,
    rtcp_latched: bool,
    latched: bool,
    source: Option<Source>,
    dtmf: DtmfReceiver,
    last_rx: Instant,
    rx_restart_pending: bool,
    inactive_reported: bool,
    next_rtcp: Instant,
    sent_at_last_report: u64,
    last_now: Instant,
    closed: bool,
    buf: BytesMut,
    transmits: VecDeque<MediaTransmit>,
    events: VecDeque<MediaEvent>,
    stats: RtpStats,
    capture: Option<Capture>,
    /// Live audio to send (decoded samples), consumed by the pacing tick.
    live: VecDeque<i16>,
    /// Digits waiting to be sent as RFC 4733 events.
    dtmf_queue: VecDeque<DtmfDigit>,
    /// The event being sent: its packets and its start timestamp.
    dtmf_out: Option<(DtmfSender, u32)>,
}

/// Longest gap in the caller's RTP timestamps filled with silence when capturing (2 s):
/// a larger jump is a new talkspurt clock, not lost audio.
const MAX_CAPTURE_GAP: u32 = 16_000;

/// Decoded caller audio kept for the call's application (recording, in-band DTMF).
#[derive(Debug, Default)]
struct Capture {
    /// Decoded samples not yet taken.
    samples: Vec<i16>,
    /// RTP timestamp expected next from the current source.
    next_ts: Option<u32>,
    /// SSRC the timestamps belong to.
    ssrc: u32,
}

fn default_rtcp_addr(rtp: SocketAddr, mux: bool) -> SocketAddr {
    if mux {
        rtp
    } else {
        SocketAddr::new(rtp.ip(), rtp.port().wrapping_add(1))
    }
}

impl RtpSession {
    /// A session starting at `now` (the pacing grid and the RTCP wall clock start here).
    pub fn new(mut cfg: SessionConfig, now: Instant) -> Self {
        cfg.ptime = cfg
            .ptime
            .clamp(Duration::from_millis(10), Duration::from_millis(120));
        let ptime_ns = cfg.ptime.as_nanos() as u64;
        let samples_per_packet =
            (u64::from(cfg.codec.clock_rate()) * ptime_ns / 1_000_000_000) as usize;
        let remote_rtcp = if cfg.remote_rtcp.port() == 0 {
            default_rtcp_addr(cfg.remote, cfg.rtcp_mux)
        } else {
            cfg.remote_rtcp
        };
        RtpSession {
            epoch: now,
            ptime_ns,
            samples_per_packet,
            next_n: 1,
            seq: cfg.initial_seq,
            talking: false,
            resync_pending: false,
            playing: None,
            queue: VecDeque::new(),
            remote: cfg.remote,
            remote_rtcp,
            rtcp_latched: false,
            latched: false,
            source: None,
            dtmf: DtmfReceiver::new(),
            last_rx: now,
            rx_restart_pending: false,
            inactive_reported: false,
            next_rtcp: now + cfg.rtcp_interval,
            sent_at_last_report: 0,
            last_now: now,
            closed: false,
            buf: BytesMut::with_capacity(4096),
            transmits: VecDeque::with_capacity(16),
            events: VecDeque::with_capacity(4),
            stats: RtpStats::default(),
            capture: None,
            live: VecDeque::new(),
            dtmf_queue: VecDeque::new(),
            dtmf_out: None,
            cfg,
        }
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> u32 {
        self.cfg.ssrc
    }

    /// Where RTP goes now.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// Where RTCP goes now.
    pub fn remote_rtcp(&self) -> SocketAddr {
        self.remote_rtcp
    }

    /// Our media direction.
    pub fn direction(&self) -> Direction {
        self.cfg.direction
    }

    /// Whether a prompt is playing or queued.
    pub fn is_playing(&self) -> bool {
        self.playing.is_some()
    }

    /// The counters.
    pub fn stats(&self) -> &RtpStats {
        &self.stats
    }

    fn due(&self, n: u64) -> Instant {
        self.epoch + Duration::from_nanos(self.ptime_ns.saturating_mul(n))
    }

    /// Index of the latest packet due at `now` (0 if none).
    fn latest_due(&self, now: Instant) -> u64 {
        let el = now.saturating_duration_since(self.epoch).as_nanos();
        (el / u128::from(self.ptime_ns)) as u64
    }

    fn sending(&self) -> bool {
        self.cfg.direction.sends()
            && (self.playing.is_some()
                || !self.live.is_empty()
                || self.dtmf_out.is_some()
                || !self.dtmf_queue.is_empty()
                || self.cfg.send_silence)
    }

    /// Puts the schedule on the first grid point at or after `now`.
    fn resync(&mut self, now: Instant) {
        let latest = self.latest_due(now);
        self.next_n = if self.due(latest) == now {
            latest.max(1)
        } else {
            latest + 1
        };
        self.talking = false;
        self.resync_pending = false;
    }

    /// Queues a prompt; it starts at the next packet if nothing plays.
    pub fn play(&mut self, now: Instant, prompt: Prompt) {
        self.last_now = now;
        let was_sending = self.sending();
        if prompt.is_empty() {
            self.events.push_back(MediaEvent::PromptFinished);
            return;
        }
        if self.playing.is_none() {
            self.playing = Some(Playing { prompt, pos: 0 });
        } else {
            self.queue.push_back(prompt);
        }
        if !was_sending && self.sending() {
            self.resync(now);
        }
    }

    /// Starts or stops keeping the caller's decoded audio (for [`RtpSession::take_audio`]).
    /// Packets are decoded in arrival order; a forward gap in RTP timestamps up to 2 s
    /// becomes silence, late or duplicate packets are dropped.
    pub fn set_capture(&mut self, on: bool) {
        match (on, self.capture.is_some()) {
            (true, false) => {
                self.capture = Some(Capture {
                    samples: Vec::with_capacity(1024),
                    ..Capture::default()
                })
            }
            (false, true) => self.capture = None,
            _ => {}
        }
    }

    /// Whether caller audio is being captured.
    pub fn is_capturing(&self) -> bool {
        self.capture.is_some()
    }

    /// Moves the captured caller audio (8 kHz samples) to the end of `out`.
    pub fn take_audio(&mut self, out: &mut Vec<i16>) {
        if let Some(c) = self.capture.as_mut() {
            out.append(&mut c.samples);
        }
    }

    fn capture_audio(&mut self, ssrc: u32, timestamp: u32, payload: &[u8]) {
        let codec = self.cfg.codec;
        let Some(c) = self.capture.as_mut() else {
            return;
        };
        if c.ssrc != ssrc {
            c.ssrc = ssrc;
            c.next_ts = None;
        }
        if let Some(next) = c.next_ts {
            let ahead = timestamp.wrapping_sub(next);
            if ahead > u32::MAX / 2 {
                return; // late or duplicate: its place has passed
            }
            if ahead > 0 && ahead <= MAX_CAPTURE_GAP {
                c.samples.resize(c.samples.len() + ahead as usize, 0);
            }
        }
        let start = c.samples.len();
        c.samples.resize(start + payload.len(), 0);
        let n = crate::media::codec::decode_into(codec, payload, &mut c.samples[start..]);
        c.samples.truncate(start + n);
        c.next_ts = Some(timestamp.wrapping_add(n as u32));
    }

    /// Stops the current prompt and drops the queued ones (no `PromptFinished`).
    pub fn stop_playback(&mut self) {
        self.playing = None;
        self.queue.clear();
    }

    /// Queues live audio (8 kHz samples, e.g. the other leg of a bridge) for sending: the
    /// pacing tick takes one packet's worth per ptime, after any prompt (a prompt plays
    /// first). The FIFO holds at most [`LIVE_AUDIO_MAX`] samples; the oldest beyond that
    /// are dropped and counted in [`RtpStats::live_dropped`]. When it runs dry, the rest
    /// of the packet is silence ([`RtpStats::live_underruns`]).
    pub fn write_audio(&mut self, now: Instant, samples: &[i16]) {
        self.last_now = now;
        if self.closed || samples.is_empty() {
            return;
        }
        let was_sending = self.sending();
        self.live.extend(samples.iter().copied());
        if self.live.len() > LIVE_AUDIO_MAX {
            let excess = self.live.len() - LIVE_AUDIO_MAX;
            self.live.drain(..excess);
            self.stats.live_dropped += excess as u64;
        }
        if !was_sending && self.sending() {
            self.resync(now);
        }
    }

    /// Live audio samples queued and not yet sent.
    pub fn live_buffered(&self) -> usize {
        self.live.len()
    }

    /// Drops the queued live audio.
    pub fn clear_audio(&mut self) {
        self.live.clear();
    }

    /// Sends `digit` as an RFC 4733 telephone-event (100 ms, then three end packets) in
    /// place of audio on the next ticks; digits queue behind each other. Returns `false`
    /// (nothing queued) when no telephone-event payload type was negotiated.
    pub fn send_dtmf(&mut self, now: Instant, digit: DtmfDigit) -> bool {
        self.last_now = now;
        if self.cfg.telephone_event_pt.is_none() || self.closed {
            return false;
        }
        self.dtmf_queue.push_back(digit);
        true
    }

    /// Changes our direction (re-INVITE): media is sent only when it includes send;
    /// RTCP continues in all directions.
    pub fn set_direction(&mut self, dir: Direction) {
        let was_sending = self.sending();
        let was_receiving = self.cfg.direction.receives();
        self.cfg.direction = dir;
        if !was_sending && self.sending() {
            self.resync_pending = true;
        }
        if !was_receiving && dir.receives() {
            self.rx_restart_pending = true;
            self.inactive_reported = false;
        }
    }

    /// Changes the peer's RTP and RTCP addresses (re-INVITE; an RTCP port of 0 means
    /// RTP port + 1, or the RTP address with mux); latching starts over.
    pub fn set_remote(&mut self, rtp: SocketAddr, rtcp: SocketAddr) {
        self.remote = rtp;
        self.remote_rtcp = if rtcp.port() == 0 {
            default_rtcp_addr(rtp, self.cfg.rtcp_mux)
        } else {
            rtcp
        };
        self.latched = false;
        self.rtcp_latched = false;
    }

    /// Changes the peer's RTCP address (`a=rtcp`).
    pub fn set_remote_rtcp(&mut self, addr: SocketAddr) {
        self.remote_rtcp = addr;
    }

    /// Handles a datagram from the media socket (RTP, or RTCP when multiplexed).
    pub fn handle_packet(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.last_now = now;
        if is_rtcp(data) {
            self.handle_rtcp(now, from, data);
            return;
        }
        let Ok(p) = parse(data) else {
            self.stats.invalid += 1;
            return;
        };
        let is_te = Some(p.payload_type) == self.cfg.telephone_event_pt;
        let is_audio = p.payload_type == self.cfg.payload_type;
        if !is_te && !is_audio && p.payload_type != PT_CN {
            self.stats.unknown_payload_type += 1;
            return;
        }
        let new_ssrc = self.source.as_ref().is_none_or(|s| s.ssrc != p.ssrc);
        if new_ssrc {
            self.source = Some(Source::new(p.ssrc, p.sequence_number));
            self.dtmf.reset();
            // Re-latch when this (new) stream becomes valid.
            self.latched = false;
        }
        let Some(src) = self.source.as_mut() else {
            return;
        };
        match src.update_seq(p.sequence_number, &mut self.stats) {
            SeqVerdict::Valid => {}
            SeqVerdict::Probation | SeqVerdict::Invalid => {
                self.stats.invalid += 1;
                return;
            }
        }
        if is_audio {
            let el = now.saturating_duration_since(self.epoch).as_nanos();
            let arrival = (el * u128::from(self.cfg.codec.clock_rate()) / 1_000_000_000) as u32;
            src.update_jitter(arrival, p.timestamp);
        }
        self.stats.jitter = src.jitter_q4 >> 4;
        self.stats.packets_received = src.received;
        self.stats.packets_lost = src.lost();
        self.stats.octets_received += p.payload.len() as u64;
        self.last_rx = now;
        self.inactive_reported = false;
        if self.cfg.symmetric && !self.latched {
            self.latched = true;
            if from != self.remote {
                self.remote = from;
                if self.cfg.rtcp_mux {
                    self.remote_rtcp = from;
                } else if !self.rtcp_latched {
                    self.remote_rtcp = default_rtcp_addr(from, false);
                }
                self.events.push_back(MediaEvent::PeerAddressChanged(from));
            }
        }
        if is_audio && self.capture.is_some() {
            let (ssrc, ts) = (p.ssrc, p.timestamp);
            self.capture_audio(ssrc, ts, p.payload);
        }
        if is_te {
            if let Some(d) = self
                .dtmf
                .handle_payload(now, p.timestamp, p.marker, p.payload)
            {
                self.events.push_back(MediaEvent::Dtmf(d));
            }
        }
    }

    /// Handles an RTCP datagram (from the RTCP socket, or demultiplexed).
    pub fn handle_rtcp(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.last_now = now;
        let Ok(info) = parse_rtcp(data) else {
            self.stats.invalid += 1;
            return;
        };
        self.stats.rtcp_received += 1;
        let peer_ssrc = self.source.as_ref().map(|s| s.ssrc);
        if self.cfg.symmetric && self.latched && (peer_ssrc.is_some()) {
            self.remote_rtcp = from;
            self.rtcp_latched = true;
        }
        if let Some((ssrc, si)) = info.sender_report {
            if let Some(src) = self.source.as_mut().filter(|s| s.ssrc == ssrc) {
                src.last_sr = (si.ntp_time >> 16) as u32;
                src.last_sr_at = Some(now);
            }
        }
        for b in info.blocks.iter().filter(|b| b.ssrc == self.cfg.ssrc) {
            self.stats.remote_fraction_lost = Some(b.fraction_lost);
            self.stats.remote_packets_lost = Some(b.total_lost);
            self.stats.remote_jitter = Some(b.jitter);
            if b.last_sr != 0 {
                let a = (ntp_timestamp(self.wall_clock(now)) >> 16) as u32;
                let rtt = a
                    .wrapping_sub(b.last_sr)
                    .wrapping_sub(b.delay_since_last_sr);
                if rtt < 0x8000_0000 {
                    self.stats.rtt =
                        Some(Duration::from_nanos((u64::from(rtt) * 1_000_000_000) >> 16));
                }
            }
        }
        if peer_ssrc.is_some_and(|s| info.bye.contains(&s)) {
            self.events.push_back(MediaEvent::RemoteBye);
        }
    }

    fn wall_clock(&self, now: Instant) -> SystemTime {
        self.cfg.ntp_base + now.saturating_duration_since(self.epoch)
    }

    fn rtp_time_at(&self, now: Instant) -> u32 {
        // Timestamp of packet n is initial + (n-1)*spp and packet n is due at n*ptime.
        let el = now.saturating_duration_since(self.epoch).as_nanos();
        let units = (el * u128::from(self.cfg.codec.clock_rate()) / 1_000_000_000) as u64;
        self.cfg
            .initial_timestamp
            .wrapping_add(units.wrapping_sub(self.samples_per_packet as u64) as u32)
    }

    /// Advances time: sends the packets that are due, RTCP, inactivity.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        if self.rx_restart_pending {
            self.rx_restart_pending = false;
            self.last_rx = now;
        }
        if self.sending() {
            if self.resync_pending {
                self.resync(now);
            }
            let latest = self.latest_due(now);
            if latest >= self.next_n + MAX_CATCH_UP {
                let skip = latest + 1 - MAX_CATCH_UP - self.next_n;
                self.stats.send_skipped += skip;
                self.next_n += skip;
                self.talking = false;
            }
            while self.next_n <= latest && self.sending() {
                if self.next_n < latest {
                    self.stats.send_late += 1;
                }
                self.send_packet(self.next_n);
                self.next_n += 1;
            }
        } else {
            self.talking = false;
        }
        if self.closed {
            return;
        }
        if now >= self.next_rtcp {
            self.send_rtcp(now, false);
            self.next_rtcp += self.cfg.rtcp_interval;
            if self.next_rtcp <= now {
                self.next_rtcp = now + self.cfg.rtcp_interval;
            }
        }
        if let Some(deadline) = self.inactivity_deadline() {
            if now >= deadline {
                self.inactive_reported = true;
                self.events.push_back(MediaEvent::Inactive);
            }
        }
    }

    fn inactivity_deadline(&self) -> Option<Instant> {
        (self.cfg.direction.receives()
            && !self.inactive_reported
            && !self.rx_restart_pending
            && !self.cfg.inactivity_timeout.is_zero())
        .then(|| self.last_rx + self.cfg.inactivity_timeout)
    }

    fn send_packet(&mut self, n: u64) {
        let spp = self.samples_per_packet;
        let ts = self
            .cfg
            .initial_timestamp
            .wrapping_add(((n - 1) as u32).wrapping_mul(spp as u32));
        if self.dtmf_out.is_none() {
            if let Some(d) = self.dtmf_queue.pop_front() {
                self.dtmf_out = Some((DtmfSender::new(d, DTMF_EVENT_UNITS, spp as u16), ts));
            }
        }
        if self.send_event_packet() {
            // The audio this packet would have carried is replaced by the event.
            self.skip_audio(spp);
            return;
        }
        let header = RtpHeaderFields {
            marker: !self.talking,
            payload_type: self.cfg.payload_type,
            sequence_number: self.seq,
            timestamp: ts,
            ssrc: self.cfg.ssrc,
        };
        let len = RTP_HEADER_LEN + spp;
        self.buf.reserve(len);
        self.buf.resize(len, 0);
        if write_rtp(&header, &[], &mut self.buf[..RTP_HEADER_LEN]).is_err() {
            self.buf.clear();
            return;
        }
        // Fill the payload from the prompt queue, then silence.
        let codec = self.cfg.codec;
        let mut filled = 0;
        while filled < spp {
            let Some(p) = self.playing.as_mut() else {
                break;
            };
            let rest = p.prompt.samples().get(p.pos..).unwrap_or(&[]);
            let take = rest.len().min(spp - filled);
            let start = RTP_HEADER_LEN + filled;
            encode_into(codec, &rest[..take], &mut self.buf[start..start + take]);
            p.pos += take;
            filled += take;
            if p.pos >= p.prompt.len() {
                self.events.push_back(MediaEvent::PromptFinished);
                self.playing = self
                    .queue
                    .pop_front()
                    .map(|prompt| Playing { prompt, pos: 0 });
            }
        }
        if filled < spp && !self.live.is_empty() {
            let take = self.live.len().min(spp - filled);
            let start = RTP_HEADER_LEN + filled;
            let (a, b) = self.live.as_slices();
            let from_a = a.len().min(take);
            encode_into(codec, &a[..from_a], &mut self.buf[start..start + from_a]);
            if take > from_a {
                let rest = take - from_a;
                encode_into(
                    codec,
                    &b[..rest],
                    &mut self.buf[start + from_a..start + take],
                );
            }
            self.live.drain(..take);
            filled += take;
            if filled < spp {
                self.stats.live_underruns += 1;
            }
        }
        self.buf[RTP_HEADER_LEN + filled..].fill(silence_code(codec));
        let data = self.buf.split().freeze();
        self.seq = self.seq.wrapping_add(1);
        self.talking = true;
        self.stats.packets_sent += 1;
        self.stats.octets_sent += spp as u64;
        self.transmits.push_back(MediaTransmit {
            to: self.remote,
            kind: MediaKind::Rtp,
            data,
        });
    }

    /// Sends the next packet of the RFC 4733 event in progress, if any (the event's
    /// three end packets go out on three ticks; the next digit starts after them).
    fn send_event_packet(&mut self) -> bool {
        let Some(pt) = self.cfg.telephone_event_pt else {
            self.dtmf_out = None;
            self.dtmf_queue.clear();
            return false;
        };
        let Some((sender, start_ts)) = self.dtmf_out.as_mut() else {
            return false;
        };
        let Some(p) = sender.next() else {
            self.dtmf_out = None;
            return false;
        };
        let start_ts = *start_ts;
        let header = RtpHeaderFields {
            marker: p.marker,
            payload_type: pt,
            sequence_number: self.seq,
            timestamp: start_ts,
            ssrc: self.cfg.ssrc,
        };
        let payload = p.payload.to_bytes();
        let len = RTP_HEADER_LEN + payload.len();
        self.buf.reserve(len);
        self.buf.resize(len, 0);
        if write_rtp(&header, &payload, &mut self.buf[..len]).is_err() {
            self.buf.clear();
            return false;
        }
        let data = self.buf.split().freeze();
        self.seq = self.seq.wrapping_add(1);
        // After the event the audio is a new talkspurt (marker bit again).
        self.talking = false;
        self.stats.packets_sent += 1;
        self.stats.octets_sent += payload.len() as u64;
        self.stats.dtmf_packets_sent += 1;
        if p.payload.end && sender_done(&self.dtmf_out) {
            self.dtmf_out = None;
        }
        self.transmits.push_back(MediaTransmit {
            to: self.remote,
            kind: MediaKind::Rtp,
            data,
        });
        true
    }

    /// Advances the prompt and live audio by `n` samples without sending them.
    fn skip_audio(&mut self, mut n: usize) {
        while n > 0 {
            let Some(p) = self.playing.as_mut() else {
                break;
            };
            let take = (p.prompt.len() - p.pos.min(p.prompt.len())).min(n);
            p.pos += take;
            n -= take;
            if p.pos >= p.prompt.len() {
                self.events.push_back(MediaEvent::PromptFinished);
                self.playing = self
                    .queue
                    .pop_front()
                    .map(|prompt| Playing { prompt, pos: 0 });
            }
        }
        let live = n.min(self.live.len());
        self.live.drain(..live);
    }

    fn send_rtcp(&mut self, now: Instant, bye: bool) {
        let sender = (self.stats.packets_sent > self.sent_at_last_report).then(|| SenderInfo {
            ntp_time: ntp_timestamp(self.wall_clock(now)),
            rtp_time: self.rtp_time_at(now),
            packet_count: self.stats.packets_sent as u32,
            octet_count: self.stats.octets_sent as u32,
        });
        self.sent_at_last_report = self.stats.packets_sent;
        let block = self
            .source
            .as_mut()
            .filter(|s| s.valid())
            .map(|s| s.report_block(now));
        if let Ok(data) = build_report(self.cfg.ssrc, sender, block, &self.cfg.cname, bye) {
            self.stats.rtcp_sent += 1;
            self.transmits.push_back(MediaTransmit {
                to: self.remote_rtcp,
                kind: MediaKind::Rtcp,
                data,
            });
        }
    }

    /// Ends the session: stops media and playback and queues a final RTCP report with a
    /// BYE (RFC 3550 §6.6). Afterwards only incoming packets are still counted.
    pub fn close(&mut self, now: Instant) {
        self.last_now = now;
        self.stop_playback();
        self.live.clear();
        self.dtmf_queue.clear();
        self.dtmf_out = None;
        self.cfg.direction = Direction::Inactive;
        self.closed = true;
        self.send_rtcp(now, true);
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<MediaTransmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` should be called next (may be in the past: call it now).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let mut t = self.next_rtcp;
        if self.sending() {
            let tick = if self.resync_pending {
                self.last_now
            } else {
                self.due(self.next_n)
            };
            t = t.min(tick);
        }
        if self.rx_restart_pending {
            t = t.min(self.last_now);
        }
        if let Some(d) = self.inactivity_deadline() {
            t = t.min(d);
        }
        Some(t)
    }
}

/// Whether the event sender has nothing left (its last end packet was just taken).
fn sender_done(out: &Option<(DtmfSender, u32)>) -> bool {
    out.as_ref().is_none_or(|(s, _)| s.clone().next().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::ulaw_encode;
    use crate::media::dtmf::{DtmfSender, EventPayload};
    use crate::media::rtp::RtpPacketView;

    const MS: Duration = Duration::from_millis(1);

    fn peer() -> SocketAddr {
        "192.0.2.1:4000".parse().unwrap()
    }

    fn cfg() -> SessionConfig {
        let mut c = SessionConfig::new(
            Codec::Pcmu,
            peer(),
            0xCAFE,
            100,
            1000,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        );
        c.telephone_event_pt = Some(101);
        c
    }

    fn rtp_of(tx: &MediaTransmit) -> RtpPacketView<'_> {
        assert_eq!(tx.kind, MediaKind::Rtp);
        parse(&tx.data).unwrap()
    }

    fn drain(s: &mut RtpSession) -> Vec<MediaTransmit> {
        std::iter::from_fn(|| s.poll_transmit()).collect()
    }

    fn events(s: &mut RtpSession) -> Vec<MediaEvent> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    /// Runs the session by jumping to each poll_timeout until `end`; returns (time, tx).
    fn run_until(s: &mut RtpSession, end: Instant) -> Vec<(Instant, MediaTransmit)> {
        let mut out = Vec::new();
        while let Some(t) = s.poll_timeout() {
            if t > end {
                break;
            }
            s.handle_timeout(t);
            out.extend(drain(s).into_iter().map(|x| (t, x)));
        }
        out
    }

    fn packet(seq: u16, ts: u32, ssrc: u32, pt: u8, marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; 12 + payload.len()];
        let h = RtpHeaderFields {
            marker,
            payload_type: pt,
            sequence_number: seq,
            timestamp: ts,
            ssrc,
        };
        write_rtp(&h, payload, &mut buf).unwrap();
        buf
    }

    #[test]
    fn capture_decodes_in_order_fills_gaps_with_silence_and_drops_late_packets() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(cfg(), t0);
        let mut out = Vec::new();
        // Not capturing: nothing is kept.
        let loud = [ulaw_encode(8000); 160];
        for i in 0..3u16 {
            s.handle_packet(
                t0,
                peer(),
                &packet(i, u32::from(i) * 160, 7, 0, false, &loud),
            );
        }
        s.take_audio(&mut out);
        assert!(out.is_empty());
        s.set_capture(true);
        assert!(s.is_capturing());
        s.handle_packet(t0, peer(), &packet(3, 480, 7, 0, false, &loud));
        // Packet 4 (ts 640) is lost; 5 arrives: 160 samples of silence fill its place.
        s.handle_packet(t0, peer(), &packet(5, 800, 7, 0, false, &loud));
        // Packet 4 arrives late: its place has passed, it is dropped.
        s.handle_packet(t0, peer(), &packet(4, 640, 7, 0, false, &loud));
        s.take_audio(&mut out);
        assert_eq!(out.len(), 480);
        let near = |x: i16| (x - 8000).abs() < 300;
        assert!(out[..160].iter().all(|&x| near(x)));
        assert!(out[160..320].iter().all(|&x| x == 0));
        assert!(out[320..].iter().all(|&x| near(x)));
        // Taking empties the buffer; stopping the capture keeps nothing more.
        out.clear();
        s.take_audio(&mut out);
        assert!(out.is_empty());
        s.set_capture(false);
        s.handle_packet(t0, peer(), &packet(6, 960, 7, 0, false, &loud));
        s.take_audio(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn pacing_is_drift_free_and_the_1000th_packet_is_due_at_20s() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(cfg(), t0);
        let sent = run_until(&mut s, t0 + Duration::from_secs(20));
        let rtp: Vec<_> = sent
            .iter()
            .filter(|(_, x)| x.kind == MediaKind::Rtp)
            .collect();
        assert_eq!(rtp.len(), 1000);
        for (i, (t, x)) in rtp.iter().enumerate() {
            assert_eq!(*t, t0 + 20 * MS * (i as u32 + 1));
            let p = rtp_of(x);
            assert_eq!(p.sequence_number, 100u16.wrapping_add(i as u16));
            assert_eq!(p.timestamp, 1000 + 160 * i as u32);
            assert_eq!(p.ssrc, 0xCAFE);
            assert_eq!(p.marker, i == 0);
            assert_eq!(p.payload, &[0xFF; 160][..]);
        }
        assert_eq!(rtp[999].0, t0 + Duration::from_secs(20));
        assert_eq!(s.stats().packets_sent, 1000);
    }

    #[test]
    fn late_wakeups_do_not_drift() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(cfg(), t0);
        // Wake up 0..19 ms late every time; after 10 s exactly 500 packets are out.
        let mut k = 0u32;
        let mut count = 0;
        loop {
            let t = s.poll_timeout().unwrap() + MS * ((k * 7) % 20);
            if t > t0 + Duration::from_secs(10) {
                break;
            }
            s.handle_timeout(t);
            count += drain(&mut s)
                .iter()
                .filter(|x| x.kind == MediaKind::Rtp)
                .count();
            k += 1;
        }
        s.handle_timeout(t0 + Duration::from_secs(10));
        count += drain(&mut s)
            .iter()
            .filter(|x| x.kind == MediaKind::Rtp)
            .count();
        assert_eq!(count, 500);
        assert_eq!(s.poll_timeout(), Some(t0 + 20 * MS * 501));
        assert_eq!(s.stats().send_skipped, 0);
    }

    #[test]
    fn bounded_catch_up_then_resync() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(cfg(), t0);
        s.handle_timeout(t0 + Duration::from_secs(1)); // 50 packets due
        let tx: Vec<_> = drain(&mut s)
            .into_iter()
            .filter(|x| x.kind == MediaKind::Rtp)
            .collect();
        assert_eq!(tx.len(), MAX_CATCH_UP as usize);
        assert_eq!(s.stats().send_skipped, 40);
        // The newest ten were sent: timestamps of packets 41..=50, consecutive seqs.
        assert_eq!(rtp_of(&tx[0]).timestamp, 1000 + 160 * 40);
        assert_eq!(rtp_of(&tx[9]).timestamp, 1000 + 160 * 49);
        assert_eq!(rtp_of(&tx[0]).sequence_number, 100);
        assert_eq!(s.poll_timeout(), Some(t0 + 20 * MS * 51));
    }

    #[test]
    fn sequence_and_timestamp_wrap() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.initial_seq = 65534;
        c.initial_timestamp = u32::MAX - 159;
        let mut s = RtpSession::new(c, t0);
        let tx = run_until(&mut s, t0 + 60 * MS);
        let p: Vec<_> = tx
            .iter()
            .map(|(_, x)| rtp_of(x))
            .map(|p| (p.sequence_number, p.timestamp))
            .collect();
        assert_eq!(p, [(65534, u32::MAX - 159), (65535, 0), (0, 160)]);
    }

    #[test]
    fn prompt_playback_and_finished_event() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.send_silence = false;
        let mut s = RtpSession::new(c, t0);
        assert!(run_until(&mut s, t0 + Duration::from_secs(1))
            .iter()
            .all(|(_, x)| x.kind == MediaKind::Rtcp));
        let t1 = t0 + Duration::from_millis(1005);
        let samples: Vec<i16> = (0..400).map(|i| (i * 50) as i16).collect();
        s.play(t1, Prompt::from_samples(samples.clone()));
        let tx = run_until(&mut s, t1 + Duration::from_secs(1));
        let rtp: Vec<_> = tx
            .iter()
            .filter(|(_, x)| x.kind == MediaKind::Rtp)
            .collect();
        assert_eq!(
            rtp.len(),
            3,
            "400 samples = 3 packets, then nothing (no silence)"
        );
        assert_eq!(rtp[0].0, t0 + 20 * MS * 51); // next grid point after play
        let p0 = rtp_of(&rtp[0].1);
        assert!(p0.marker);
        assert_eq!(p0.timestamp, 1000 + 160 * 50); // timestamps follow the clock
        assert_eq!(p0.payload[5], ulaw_encode(250));
        let p2 = rtp_of(&rtp[2].1);
        assert!(!p2.marker);
        assert_eq!(p2.payload[79], ulaw_encode(399 * 50));
        assert_eq!(p2.payload[80], 0xFF);
        assert_eq!(events(&mut s), [MediaEvent::PromptFinished]);
        // A new talkspurt gets the marker again.
        let t2 = t1 + Duration::from_secs(2);
        s.play(t2, Prompt::from_samples(vec![1i16; 160]));
        let tx = run_until(&mut s, t2 + Duration::from_secs(1));
        let rtp: Vec<_> = tx
            .iter()
            .filter(|(_, x)| x.kind == MediaKind::Rtp)
            .collect();
        assert_eq!(rtp.len(), 1);
        assert!(rtp_of(&rtp[0].1).marker);
    }

    #[test]
    fn queued_prompts_play_back_to_back_and_stop_clears() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(cfg(), t0);
        s.play(t0, Prompt::from_samples(vec![1000i16; 100]));
        s.play(t0, Prompt::from_samples(vec![-1000i16; 100]));
        s.handle_timeout(t0 + 20 * MS);
        let p = drain(&mut s);
        let v = rtp_of(&p[0]);
        assert_eq!(v.payload[99], ulaw_encode(1000));
        assert_eq!(v.payload[100], ulaw_encode(-1000));
        assert_eq!(events(&mut s), [MediaEvent::PromptFinished]);
        s.handle_timeout(t0 + 40 * MS);
        assert_eq!(events(&mut s), [MediaEvent::PromptFinished]);
        assert_eq!(rtp_of(&drain(&mut s)[0]).payload[40], 0xFF);
        s.play(t0 + 40 * MS, Prompt::from_samples(vec![5i16; 8000]));
        assert!(s.is_playing());
        s.stop_playback();
        assert!(!s.is_playing());
        s.handle_timeout(t0 + 60 * MS);
        assert_eq!(rtp_of(&drain(&mut s)[0]).payload[0], 0xFF);
        assert!(events(&mut s).is_empty());
    }

    #[test]
    fn receive_stats_loss_and_jitter() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(cfg(), t0);
        let mut expected_j = 0.0f64;
        let mut prev_transit: Option<f64> = None;
        let mut n_sent = 0;
        for i in 0..200u32 {
            if i % 20 == 7 {
                continue; // 10 lost
            }
            // Alternate 0 / 3 ms of network delay variation.
            let delay = if i % 2 == 0 { 0 } else { 3 };
            let at = t0 + 20 * MS * i + MS * delay;
            let ts = 5000 + 160 * i;
            s.handle_packet(
                at,
                peer(),
                &packet(
                    60000u16.wrapping_add(i as u16),
                    ts,
                    77,
                    0,
                    false,
                    &[0xFF; 160],
                ),
            );
            n_sent += 1;
            if i >= 1 {
                // Packets from the 2nd on are valid (probation); A.8 in floating point.
                let arrival = (20.0 * i as f64 + delay as f64) * 8.0;
                let transit = arrival - ts as f64;
                if let Some(p) = prev_transit {
                    expected_j += ((transit - p).abs() - expected_j) / 16.0;
                }
                prev_transit = Some(transit);
            }
        }
        let st = s.stats();
        assert_eq!(n_sent, 190);
        assert_eq!(st.packets_received, 189); // first packet is the probation one
        assert_eq!(st.packets_lost, 10);
        assert_eq!(st.packets_late, 0);
        assert!(
            (f64::from(st.jitter) - expected_j).abs() <= 1.5,
            "{} vs {expected_j}",
            st.jitter
        );
        assert!(st.jitter > 15, "3 ms alternation is ~24 units");
    }

    #[test]
    fn receive_reordering_duplicates_and_wrap() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(cfg(), t0);
        let seqs: [u16; 9] = [65533, 65534, 65535, 1, 0, 2, 2, 3, 4];
        for (i, q) in seqs.iter().enumerate() {
            s.handle_packet(
                t0 + 20 * MS * i as u32,
                peer(),
                &packet(*q, 0, 9, 0, false, &[0xFF; 160]),
            );
        }
        let st = s.stats();
        assert_eq!(st.packets_late, 1);
        assert_eq!(st.duplicates, 1);
        assert_eq!(st.packets_lost, 0);
        assert_eq!(st.packets_received, 8);
    }

    #[test]
    fn invalid_and_foreign_packets_are_counted_not_fatal() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(cfg(), t0);
        s.handle_packet(t0, peer(), b"garbage");
        s.handle_packet(t0, peer(), &packet(1, 0, 9, 18, false, &[0; 20]));
        assert_eq!(s.stats().invalid, 1);
        assert_eq!(s.stats().unknown_payload_type, 1);
        assert_eq!(s.stats().packets_received, 0);
    }

    #[test]
    fn dtmf_through_the_session() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(cfg(), t0);
        let mut seq = 10u16;
        let mut t = t0;
        let mut send = |s: &mut RtpSession, pt: u8, ts: u32, marker: bool, payload: &[u8]| {
            t += 20 * MS;
            s.handle_packet(t, peer(), &packet(seq, ts, 5, pt, marker, payload));
            seq = seq.wrapping_add(1);
        };
        send(&mut s, 0, 0, true, &[0xFF; 160]);
        send(&mut s, 0, 160, false, &[0xFF; 160]);
        for (k, digit) in ['1', '1', '#'].into_iter().enumerate() {
            let ts = 320 + 2000 * k as u32;
            for p in DtmfSender::new(DtmfDigit::from_char(digit).unwrap(), 800, 160) {
                send(&mut s, 101, ts, p.marker, &p.payload.to_bytes());
            }
            // A duplicated end packet.
            let end = EventPayload {
                event: DtmfDigit::from_char(digit).unwrap().event(),
                end: true,
                volume: 10,
                duration: 800,
            };
            send(&mut s, 101, ts, false, &end.to_bytes());
        }
        let ev = events(&mut s);
        let digits: String = ev
            .iter()
            .filter_map(|e| match e {
                MediaEvent::Dtmf(d) => Some(d.as_char()),
                _ => None,
            })
            .collect();
        assert_eq!(digits, "11#");
    }

    #[test]
    fn inactivity_event_once_and_rearmed_by_rtp() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.inactivity_timeout = Duration::from_secs(30);
        let mut s = RtpSession::new(c, t0);
        let _ = run_until(&mut s, t0 + Duration::from_secs(29));
        assert!(events(&mut s).is_empty());
        let _ = run_until(&mut s, t0 + Duration::from_secs(31));
        assert_eq!(events(&mut s), [MediaEvent::Inactive]);
        let _ = run_until(&mut s, t0 + Duration::from_secs(70));
        assert!(events(&mut s).is_empty(), "reported once");
        let t = t0 + Duration::from_secs(70);
        s.handle_packet(t, peer(), &packet(1, 0, 3, 0, false, &[0xFF; 160]));
        s.handle_packet(t, peer(), &packet(2, 160, 3, 0, false, &[0xFF; 160]));
        let _ = run_until(&mut s, t + Duration::from_secs(29));
        assert!(events(&mut s).is_empty());
        let _ = run_until(&mut s, t + Duration::from_secs(31));
        assert_eq!(events(&mut s), [MediaEvent::Inactive]);
    }

    #[test]
    fn no_inactivity_when_the_peer_is_not_expected_to_send() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.direction = Direction::SendOnly; // peer is recvonly
        let mut s = RtpSession::new(c, t0);
        let _ = run_until(&mut s, t0 + Duration::from_secs(60));
        assert!(events(&mut s).is_empty());
        // Back to sendrecv: the timeout counts from the change, not from t0.
        s.set_direction(Direction::SendRecv);
        let t = t0 + Duration::from_secs(60);
        s.handle_timeout(t);
        let _ = run_until(&mut s, t + Duration::from_secs(29));
        assert!(events(&mut s).is_empty());
        let _ = run_until(&mut s, t + Duration::from_secs(31));
        assert_eq!(events(&mut s), [MediaEvent::Inactive]);
    }

    #[test]
    fn hold_stops_media_keeps_rtcp_and_resume_stays_on_the_clock() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(cfg(), t0);
        let _ = run_until(&mut s, t0 + Duration::from_secs(1));
        s.set_direction(Direction::RecvOnly);
        let tx = run_until(&mut s, t0 + Duration::from_secs(12));
        assert!(tx.iter().all(|(_, x)| x.kind == MediaKind::Rtcp));
        assert_eq!(tx.len(), 2, "RTCP at 5 s and 10 s");
        assert_eq!(tx[0].1.to, "192.0.2.1:4001".parse().unwrap());
        s.set_direction(Direction::SendRecv);
        let t = t0 + Duration::from_millis(12_010);
        s.handle_timeout(t);
        let tx = run_until(&mut s, t + 20 * MS);
        let rtp: Vec<_> = tx
            .iter()
            .filter(|(_, x)| x.kind == MediaKind::Rtp)
            .collect();
        assert_eq!(rtp.len(), 1);
        assert_eq!(rtp[0].0, t0 + 20 * MS * 601);
        let p = rtp_of(&rtp[0].1);
        assert!(p.marker);
        assert_eq!(p.timestamp, 1000 + 160 * 600);
        assert_eq!(
            p.sequence_number, 150,
            "seq continues after the 50 sent before hold"
        );
    }

    #[test]
    fn symmetric_rtp_latches_and_relatches_on_new_ssrc() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(cfg(), t0);
        let nat: SocketAddr = "203.0.113.5:31000".parse().unwrap();
        let other: SocketAddr = "203.0.113.9:32000".parse().unwrap();
        s.handle_packet(t0, nat, &packet(1, 0, 50, 0, false, &[0xFF; 160]));
        assert_eq!(s.remote(), peer(), "not latched during probation");
        s.handle_packet(t0, nat, &packet(2, 160, 50, 0, false, &[0xFF; 160]));
        assert_eq!(s.remote(), nat);
        assert_eq!(s.remote_rtcp(), "203.0.113.5:31001".parse().unwrap());
        assert_eq!(events(&mut s), [MediaEvent::PeerAddressChanged(nat)]);
        // Same SSRC from elsewhere: no change.
        s.handle_packet(t0, other, &packet(3, 320, 50, 0, false, &[0xFF; 160]));
        assert_eq!(s.remote(), nat);
        s.handle_timeout(t0 + 20 * MS);
        assert_eq!(drain(&mut s)[0].to, nat);
        // New SSRC: re-latch once valid.
        s.handle_packet(t0, other, &packet(900, 0, 51, 0, false, &[0xFF; 160]));
        s.handle_packet(t0, other, &packet(901, 160, 51, 0, false, &[0xFF; 160]));
        assert_eq!(s.remote(), other);
        assert_eq!(events(&mut s), [MediaEvent::PeerAddressChanged(other)]);
        // set_remote (re-INVITE) resets.
        s.set_remote(peer(), "192.0.2.1:4555".parse().unwrap());
        assert_eq!(s.remote(), peer());
        assert_eq!(s.remote_rtcp(), "192.0.2.1:4555".parse().unwrap());
        s.set_remote(peer(), "0.0.0.0:0".parse().unwrap());
        assert_eq!(s.remote_rtcp(), "192.0.2.1:4001".parse().unwrap());
    }

    #[test]
    fn no_latching_when_not_symmetric() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.symmetric = false;
        let mut s = RtpSession::new(c, t0);
        let nat: SocketAddr = "203.0.113.5:31000".parse().unwrap();
        for q in 1..5 {
            s.handle_packet(t0, nat, &packet(q, 0, 50, 0, false, &[0xFF; 160]));
        }
        assert_eq!(s.remote(), peer());
        assert!(events(&mut s).is_empty());
    }

    #[test]
    fn rtcp_sender_report_with_correct_clocks_and_rtt() {
        let t0 = Instant::now();
        let c = cfg();
        let ntp_base = c.ntp_base;
        let mut s = RtpSession::new(c, t0);
        // Receive a stream so the report carries a block.
        for i in 0..100u32 {
            s.handle_packet(
                t0 + 20 * MS * i,
                peer(),
                &packet(i as u16, 160 * i, 77, 0, false, &[0xFF; 160]),
            );
        }
        let tx = run_until(&mut s, t0 + Duration::from_secs(5));
        let rtcp: Vec<_> = tx
            .iter()
            .filter(|(_, x)| x.kind == MediaKind::Rtcp)
            .collect();
        assert_eq!(rtcp.len(), 1);
        assert_eq!(rtcp[0].0, t0 + Duration::from_secs(5));
        assert_eq!(rtcp[0].1.to, "192.0.2.1:4001".parse().unwrap());
        let info = parse_rtcp(&rtcp[0].1.data).unwrap();
        let (ssrc, si) = info.sender_report.unwrap();
        assert_eq!(ssrc, 0xCAFE);
        assert_eq!(
            si.ntp_time,
            ntp_timestamp(ntp_base + Duration::from_secs(5))
        );
        assert_eq!(si.rtp_time, 1000 + 40_000 - 160); // packet 250 (due at 5 s) has 1000+249*160
        assert_eq!(si.packet_count, 250);
        assert_eq!(si.octet_count, 250 * 160);
        assert_eq!(info.blocks.len(), 1);
        assert_eq!(info.blocks[0].ssrc, 77);
        assert_eq!(info.blocks[0].total_lost, 0);
        assert_eq!(info.blocks[0].highest_seq, 99);
        // The peer answers with an RR 100 ms later, having held our SR for 40 ms.
        let lsr = (si.ntp_time >> 16) as u32;
        let blk = ReportBlock {
            ssrc: 0xCAFE,
            fraction_lost: 3,
            total_lost: 2,
            highest_seq: 250,
            jitter: 4,
            last_sr: lsr,
            delay_since_last_sr: 65536 * 40 / 1000,
        };
        let rr = build_report(77, None, Some(blk), "peer", false).unwrap();
        s.handle_packet(t0 + Duration::from_millis(5100), peer(), &rr);
        let st = s.stats();
        assert_eq!(st.rtcp_received, 1);
        assert_eq!(st.remote_fraction_lost, Some(3));
        assert_eq!(st.remote_packets_lost, Some(2));
        let rtt = st.rtt.unwrap();
        assert!(rtt >= 59 * MS && rtt <= 61 * MS, "{rtt:?}");
    }

    #[test]
    fn receiver_report_when_not_sending_and_mux_destination() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.direction = Direction::Inactive;
        c.rtcp_mux = true;
        let mut s = RtpSession::new(c, t0);
        let tx = run_until(&mut s, t0 + Duration::from_secs(5));
        assert_eq!(tx.len(), 1);
        assert_eq!(tx[0].1.to, peer());
        assert_eq!(tx[0].1.data[1], 201);
    }

    #[test]
    fn close_sends_rtcp_bye_and_stops() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(cfg(), t0);
        let _ = run_until(&mut s, t0 + Duration::from_secs(1));
        s.close(t0 + Duration::from_secs(1));
        let tx = drain(&mut s);
        assert_eq!(tx.len(), 1);
        assert_eq!(tx[0].kind, MediaKind::Rtcp);
        let info = parse_rtcp(&tx[0].data).unwrap();
        assert_eq!(info.bye, [0xCAFE]);
        assert_eq!(info.sender_report.map(|(_, si)| si.packet_count), Some(50));
        assert_eq!(s.poll_timeout(), None);
        s.handle_timeout(t0 + Duration::from_secs(100));
        assert!(drain(&mut s).is_empty());
        assert!(events(&mut s).is_empty(), "no inactivity after close");
    }

    #[test]
    fn remote_bye_event() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(cfg(), t0);
        s.handle_packet(t0, peer(), &packet(1, 0, 77, 0, false, &[0xFF; 160]));
        s.handle_packet(t0, peer(), &packet(2, 160, 77, 0, false, &[0xFF; 160]));
        let bye = rtc_rtcp::goodbye::Goodbye {
            sources: vec![77],
            reason: Bytes::new(),
        };
        use rtc_shared::marshal::Marshal;
        let data = bye.marshal().unwrap();
        s.handle_packet(t0, peer(), &data);
        assert_eq!(events(&mut s), [MediaEvent::RemoteBye]);
    }

    #[test]
    fn from_negotiated_takes_the_sdp_outcome() {
        use crate::media::sdp::{negotiate_answer, parse as sdp_parse, LocalMedia};
        let offer = sdp_parse("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:30\r\na=sendonly\r\n").unwrap();
        let n =
            negotiate_answer(&offer, &LocalMedia::new("127.0.0.1".parse().unwrap(), 5000)).unwrap();
        let c = SessionConfig::from_negotiated(&n, 1, 2, 3, SystemTime::UNIX_EPOCH);
        assert_eq!(c.codec, Codec::Pcma);
        assert_eq!(c.payload_type, 8);
        assert_eq!(c.telephone_event_pt, Some(101));
        assert_eq!(c.ptime, 30 * MS);
        assert_eq!(c.direction, Direction::RecvOnly);
        assert_eq!(c.remote, "10.0.0.1:4000".parse().unwrap());
        assert_eq!(c.remote_rtcp, "10.0.0.1:4001".parse().unwrap());
        let t0 = Instant::now();
        let mut s = RtpSession::new(c, t0);
        let tx = run_until(&mut s, t0 + Duration::from_secs(1));
        assert!(tx.is_empty(), "recvonly: no media");
    }

    /// Simulation (conventions, layer 2): two sessions joined by an in-memory link with
    /// 30 ms one-way delay that drops every 7th RTP packet of A; the clock jumps to the
    /// earliest deadline. B counts exactly the dropped packets as lost, A learns the loss
    /// and a 60 ms round trip from B's RTCP, and A's prompt finishes on time.
    #[test]
    fn two_sessions_over_a_lossy_link() {
        let t0 = Instant::now();
        let a_addr: SocketAddr = "10.0.0.1:20000".parse().unwrap();
        let b_addr: SocketAddr = "10.0.0.2:30000".parse().unwrap();
        let mk = |remote, ssrc| {
            let mut c = SessionConfig::new(
                Codec::Pcma,
                remote,
                ssrc,
                7,
                9,
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            );
            c.rtcp_mux = true;
            c.rtcp_interval = Duration::from_secs(1);
            c
        };
        let mut a = RtpSession::new(mk(b_addr, 0xA), t0);
        let mut b = RtpSession::new(mk(a_addr, 0xB), t0);
        a.play(t0, Prompt::from_samples(vec![3000i16; 8000]));
        let delay = 30 * MS;
        let end = t0 + Duration::from_millis(3010);
        let mut link: Vec<(Instant, SocketAddr, SocketAddr, Bytes)> = Vec::new();
        let (mut a_rtp_sent, mut dropped_idx) = (0u64, Vec::new());
        let mut delivered_max_idx = 0u64;
        let mut prompt_done_at = None;
        loop {
            let next_link = link.iter().map(|l| l.0).min();
            let t = [a.poll_timeout(), b.poll_timeout(), next_link]
                .into_iter()
                .flatten()
                .min()
                .unwrap();
            if t > end {
                break;
            }
            let (due, rest): (Vec<_>, Vec<_>) = link.into_iter().partition(|l| l.0 <= t);
            link = rest;
            for (_, from, to, data) in due {
                if to == b_addr {
                    if let Ok(p) = parse(&data) {
                        delivered_max_idx =
                            delivered_max_idx.max(u64::from(p.sequence_number.wrapping_sub(7)));
                    }
                    b.handle_packet(t, from, &data);
                } else {
                    a.handle_packet(t, from, &data);
                }
            }
            a.handle_timeout(t);
            b.handle_timeout(t);
            while let Some(x) = a.poll_transmit() {
                if x.kind == MediaKind::Rtp {
                    let idx = a_rtp_sent;
                    a_rtp_sent += 1;
                    if idx % 7 == 3 {
                        dropped_idx.push(idx);
                        continue;
                    }
                }
                link.push((t + delay, a_addr, x.to, x.data));
            }
            while let Some(x) = b.poll_transmit() {
                link.push((t + delay, b_addr, x.to, x.data));
            }
            while let Some(e) = a.poll_event() {
                if e == MediaEvent::PromptFinished {
                    prompt_done_at = Some(t);
                }
            }
        }
        assert_eq!(
            prompt_done_at,
            Some(t0 + Duration::from_secs(1)),
            "50th packet at 1 s"
        );
        assert_eq!(a_rtp_sent, 150);
        let lost = dropped_idx
            .iter()
            .filter(|i| **i < delivered_max_idx)
            .count() as u64;
        assert_eq!(b.stats().packets_lost, lost);
        assert!(lost >= 20);
        assert_eq!(b.stats().packets_late, 0);
        assert_eq!(b.stats().jitter, 0, "constant delay: no jitter");
        assert!(a.stats().remote_packets_lost.is_some_and(|l| l > 0));
        let rtt = a.stats().rtt.expect("RTT from B's report blocks");
        assert!(rtt >= 59 * MS && rtt <= 61 * MS, "{rtt:?}");
        // Nobody latched elsewhere: addresses were right from the start.
        assert_eq!((a.remote(), b.remote()), (b_addr, a_addr));
    }

    #[test]
    fn write_audio_is_sent_paced_in_order_after_prompts() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(cfg(), t0);
        // 30 ms of a ramp: one full packet and half of the next, then silence.
        let ramp: Vec<i16> = (0..240).map(|i| (i as i16 - 120) * 200).collect();
        s.write_audio(t0, &ramp);
        assert_eq!(s.live_buffered(), 240);
        let tx = run_until(&mut s, t0 + 60 * MS);
        let rtp: Vec<_> = tx
            .iter()
            .map(|(_, t)| t)
            .filter(|t| t.kind == MediaKind::Rtp)
            .collect();
        assert_eq!(rtp.len(), 3);
        let p1 = rtp_of(rtp[0]);
        let want: Vec<u8> = ramp[..160].iter().map(|&x| ulaw_encode(x)).collect();
        assert_eq!(p1.payload, &want[..]);
        let p2 = rtp_of(rtp[1]);
        let want2: Vec<u8> = ramp[160..].iter().map(|&x| ulaw_encode(x)).collect();
        assert_eq!(&p2.payload[..80], &want2[..]);
        assert!(p2.payload[80..]
            .iter()
            .all(|&c| c == silence_code(Codec::Pcmu)));
        assert_eq!(s.stats().live_underruns, 1);
        assert_eq!(s.live_buffered(), 0);

        // A prompt plays first; the live audio follows it.
        let t = t0 + 60 * MS;
        s.play(t, Prompt::from_samples(vec![1000i16; 160]));
        s.write_audio(t, &[-3000i16; 160]);
        let tx = run_until(&mut s, t + 40 * MS);
        let rtp: Vec<_> = tx
            .iter()
            .map(|(_, t)| t)
            .filter(|t| t.kind == MediaKind::Rtp)
            .collect();
        assert_eq!(rtp.len(), 2);
        assert!(rtp_of(rtp[0])
            .payload
            .iter()
            .all(|&c| c == ulaw_encode(1000)));
        assert!(rtp_of(rtp[1])
            .payload
            .iter()
            .all(|&c| c == ulaw_encode(-3000)));
    }

    #[test]
    fn write_audio_fifo_is_bounded_dropping_the_oldest() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(cfg(), t0);
        // 300 ms written at once: the oldest 100 ms go.
        let samples: Vec<i16> = (0..2400)
            .map(|i| if i < 800 { 5000 } else { -5000 })
            .collect();
        s.write_audio(t0, &samples);
        assert_eq!(s.live_buffered(), LIVE_AUDIO_MAX);
        assert_eq!(s.stats().live_dropped, 800);
        let tx = run_until(&mut s, t0 + 20 * MS);
        let p = rtp_of(&tx.iter().find(|(_, t)| t.kind == MediaKind::Rtp).unwrap().1);
        assert!(
            p.payload.iter().all(|&c| c == ulaw_encode(-5000)),
            "oldest samples were dropped"
        );
        // A writer 1% fast for 60 s never holds more than 200 ms.
        let mut now = t0 + 20 * MS;
        for _ in 0..3000 {
            s.write_audio(now, &[7i16; 162]);
            now += 20 * MS;
            let _ = run_until(&mut s, now);
            assert!(s.live_buffered() <= LIVE_AUDIO_MAX);
        }
        assert!(s.stats().live_dropped > 800);
        // closing drops what is queued
        s.close(now);
        assert_eq!(s.live_buffered(), 0);
    }

    #[test]
    fn write_audio_in_pcma_and_on_hold() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.codec = Codec::Pcma;
        c.payload_type = 8;
        let mut s = RtpSession::new(c, t0);
        s.write_audio(t0, &[1234i16; 160]);
        let tx = run_until(&mut s, t0 + 20 * MS);
        let p = rtp_of(&tx.iter().find(|(_, t)| t.kind == MediaKind::Rtp).unwrap().1);
        assert_eq!(p.payload_type, 8);
        assert!(p
            .payload
            .iter()
            .all(|&c| c == crate::media::codec::alaw_encode(1234)));
        // on hold (recvonly) nothing is sent; the FIFO stays bounded
        s.set_direction(Direction::RecvOnly);
        for i in 0..50u32 {
            s.write_audio(t0 + (20 + i * 20) * MS, &[1i16; 160]);
        }
        let tx = run_until(&mut s, t0 + 1020 * MS);
        assert!(tx.iter().all(|(_, t)| t.kind == MediaKind::Rtcp));
        assert_eq!(s.live_buffered(), LIVE_AUDIO_MAX);
    }

    #[test]
    fn send_dtmf_emits_rfc4733_events_that_a_receiver_decodes() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(cfg(), t0);
        assert!(s.send_dtmf(t0, DtmfDigit::from_char('5').unwrap()));
        assert!(s.send_dtmf(t0, DtmfDigit::from_char('#').unwrap()));
        let tx = run_until(&mut s, t0 + 400 * MS);
        let rtp: Vec<_> = tx
            .iter()
            .map(|(_, t)| rtp_of(t))
            .filter(|p| p.payload_type == 101)
            .map(|p| (p.marker, p.timestamp, p.payload.to_vec()))
            .collect();
        // 100 ms in 20 ms steps: 4 updates then 3 end packets, per digit
        assert_eq!(rtp.len(), 14);
        assert_eq!(s.stats().dtmf_packets_sent, 14);
        let mut rx = DtmfReceiver::new();
        let digits: Vec<char> = rtp
            .iter()
            .filter_map(|(m, ts, p)| rx.handle_payload(t0, *ts, *m, p))
            .map(|d| d.as_char())
            .collect();
        assert_eq!(digits, ['5', '#']);
        assert!(rtp[0].0 && rtp[7].0, "marker on each event's first packet");
        assert!(rtp[..7].iter().all(|(_, ts, _)| *ts == rtp[0].1));
        // without telephone-event nothing is queued
        let mut c = cfg();
        c.telephone_event_pt = None;
        let mut s = RtpSession::new(c, t0);
        assert!(!s.send_dtmf(t0, DtmfDigit::from_char('1').unwrap()));
    }

    proptest::proptest! {
        #[test]
        fn handle_packet_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..400), first in 0u8..=255, second in 0u8..=255) {
            let t0 = Instant::now();
            let mut s = RtpSession::new(cfg(), t0);
            let mut d = vec![0x80 | (first & 0x3F), second];
            d.extend_from_slice(&data);
            s.handle_packet(t0, peer(), &d);
            s.handle_packet(t0, peer(), &data);
            s.handle_timeout(t0 + Duration::from_secs(6));
        }
    }
}
