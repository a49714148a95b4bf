//! SDP parser (`caruso::media::sdp::parse(&str)`), written on the media branch.
//!
//! STUB until `media::sdp::parse` is merged into this branch: the call is behind the
//! comment below; uncomment it then (the signature on the media branch is
//! `pub fn parse(text: &str) -> Result<SessionDescription, SdpError>`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text;
        // let _ = caruso::media::sdp::parse(text);
    }
});
