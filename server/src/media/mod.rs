//! Media: G.711 codec, RTP sessions, RFC 4733 DTMF, SDP offer/answer, WAV prompts.
//!
//! Every module here is sans-IO: no sockets, no tokio, no clock reads. The call actor
//! owns the UDP sockets and feeds an [`session::RtpSession`] with datagrams and `now`.
//!
//! - [`codec`]: G.711 µ-law / A-law (ours), [`codec::Codec`] with payload types 0 / 8.
//! - [`rtp`]: RTP packet view/writer over `rtc-rtp`, RTCP SR/RR/SDES over `rtc-rtcp`.
//! - [`dtmf`]: RFC 4733 telephone-event receiver and sender.
//! - [`inband`]: in-band DTMF (Goertzel) detector on decoded audio.
//! - [`dtmf_dedup`]: one digit per key press across RFC 4733, SIP INFO and in-band.
//! - [`sdp`]: RFC 4566 parser/writer and RFC 3264 offer/answer.
//! - [`wav`]: prompts loaded with `hound` (8 kHz 16-bit mono).
//! - [`session`]: the paced RTP session (pacing, stats, DTMF, symmetric RTP, RTCP).
pub mod codec;
pub mod dtmf;
pub mod dtmf_dedup;
pub mod inband;
pub mod rtp;
pub mod sdp;
pub mod session;
pub mod wav;
