//! RTP and RTCP parsers (`caruso::media::rtp::parse(&[u8])`, `parse_rtcp(&[u8])`),
//! written on the media branch.
//!
//! STUB until `media::rtp::parse` is merged into this branch: the calls are behind the
//! comment below; uncomment them then (signatures on the media branch:
//! `pub fn parse(data: &[u8]) -> Result<RtpPacketView<'_>, RtpError>` and
//! `pub fn parse_rtcp(data: &[u8]) -> Result<RtcpInfo, RtpError>`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = data;
    // let _ = caruso::media::rtp::parse(data);
    // let _ = caruso::media::rtp::parse_rtcp(data);
});
