//! SDP parser (`caruso::media::sdp::parse(&str)`) and the helpers the call logic runs on
//! an offer.
//!
//! Invariant beyond "never panics": a description that parsed is written back with its
//! `Display` and parses again (caruso answers with SDP built from what it received).
#![no_main]

use caruso::media::sdp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(desc) = sdp::parse(text) else {
        return;
    };
    for m in &desc.media {
        let _ = m.payload_types().count();
        let _ = m.telephone_event_pt();
        for pt in m.payload_types() {
            let _ = m.rtpmap(pt);
            let _ = m.codec_of(pt);
        }
        let _ = desc.effective_direction(m);
        let _ = desc.connection_of(m);
    }
    let written = desc.to_string();
    assert!(
        sdp::parse(&written).is_ok(),
        "re-serialised SDP does not parse:\n{written}"
    );
});
