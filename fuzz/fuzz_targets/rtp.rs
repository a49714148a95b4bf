//! RTP and RTCP parsers (`caruso::media::rtp::parse`, `parse_rtcp`, `is_rtcp`): every
//! datagram that reaches a call's media socket goes through them.
//!
//! Invariant beyond "never panics": a parsed RTP payload is a slice of the datagram,
//! after the 12-byte fixed header and the CSRC list.
#![no_main]

use caruso::media::rtp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if rtp::is_rtcp(data) {
        let _ = rtp::parse_rtcp(data);
        return;
    }
    let _ = rtp::parse_rtcp(data);
    if let Ok(p) = rtp::parse(data) {
        assert!(p.payload_type < 128);
        let header = 12 + 4 * usize::from(p.csrc_count);
        assert!(p.payload.len() + header <= data.len());
    }
});
