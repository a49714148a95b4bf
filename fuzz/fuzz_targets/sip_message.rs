//! SIP codec: `parse_datagram`, the typed accessors, `error_response`, the TCP `Framer`
//! (input split at a data-chosen point) and the re-serialise round trip.
//!
//! Invariants checked, beyond "never panics": an accepted message written with
//! `to_bytes` parses again to the same message (Content-Length aside, as it is
//! rewritten), and an accepted datagram with a Content-Length frames on a stream too.
#![no_main]

use caruso::sip::message::{
    error_response, parse_datagram, Framer, HeaderAccess, HeaderName, NameAddr, SipMessage,
};
use libfuzzer_sys::fuzz_target;

fn without_content_length(mut m: SipMessage) -> SipMessage {
    match &mut m {
        SipMessage::Request(r) => r.headers.remove(&HeaderName::ContentLength),
        SipMessage::Response(r) => r.headers.remove(&HeaderName::ContentLength),
    }
    m
}

fn typed_accessors(h: &impl HeaderAccess) {
    let _ = h.call_id();
    let _ = h.top_via();
    let _ = h.cseq();
    let _ = h.from_header();
    let _ = h.to_header();
    for v in h.headers().get_all(&HeaderName::Contact) {
        let _ = NameAddr::parse_list(v);
    }
    for v in h.headers().get_all(&HeaderName::RecordRoute) {
        let _ = NameAddr::parse_list(v);
    }
}

fuzz_target!(|data: &[u8]| {
    match parse_datagram(data) {
        Ok(msg) => {
            match &msg {
                SipMessage::Request(r) => typed_accessors(r),
                SipMessage::Response(r) => typed_accessors(r),
            }
            let wire = msg.to_bytes();
            let again = parse_datagram(&wire).expect("a re-serialised message parses");
            assert_eq!(without_content_length(msg), without_content_length(again));
            // Its serialisation always has a Content-Length, so it frames on a stream.
            let mut framer = Framer::new();
            framer.push(&wire);
            assert!(matches!(framer.next_message(), Some(Ok(_))));
        }
        Err(e) => {
            if let Some(answer) = error_response(data, &e, Some("fuzz")) {
                let wire = answer.to_bytes();
                // The reason phrase comes from the error text: one line only.
                let first = wire.split(|&b| b == b'\n').next().unwrap_or(&[]);
                assert!(!first[..first.len().saturating_sub(1)].contains(&b'\r'));
            }
        }
    }

    let cut = data.first().map_or(0, |&b| usize::from(b)) % (data.len() + 1);
    let mut framer = Framer::with_max_size(16 * 1024);
    for part in [&data[..cut], &data[cut..]] {
        framer.push(part);
        while let Some(r) = framer.next_message() {
            if r.is_err() && framer.is_broken() {
                return;
            }
        }
    }
});
