//! Media: G.711 codec, RTP sessions, RFC 4733 DTMF, SDP offer/answer, WAV prompts.
pub mod codec;
pub mod dtmf;
pub mod rtp;
pub mod sdp;
pub mod session;
pub mod wav;
