//! SIP message codec: parse and serialise per message, for a typical INVITE with SDP,
//! its 200 OK, and RFC 4475's `longreq` (long headers, 34 Vias, folded lines).
//!
//! `parse_rsip` runs the same input through the rsip-based baseline
//! (`caruso::sip::message::rsip_baseline`), the design the codec did not adopt.
//!
//! Run: `cargo bench -p caruso-benches --bench sip_parse`.

use caruso::sip::message::{
    parse_datagram, parse_datagram_bytes, rsip_baseline, Framer, SipMessage,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

const INVITE: &[u8] = b"INVITE sip:4001@caruso.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Alice Caller\" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
To: <sip:4001@caruso.example.com>\r\n\
Call-ID: 3848276298220188511@atlanta.example.com\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@192.0.2.10:5060;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\n\
Supported: replaces, timer\r\n\
User-Agent: softphone/1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 238\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

const OK_200: &[u8] = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;rport=5060;received=192.0.2.10\r\n\
From: \"Alice Caller\" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
To: <sip:4001@caruso.example.com>;tag=8321234356\r\n\
Call-ID: 3848276298220188511@atlanta.example.com\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:4001@198.51.100.1:5060>\r\n\
Content-Length: 0\r\n\
\r\n";

const LONGREQ: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/corpus/sip-torture/rfc4475/longreq.dat"
));

fn bench_codec(c: &mut Criterion) {
    for (name, data) in [
        ("invite_sdp", INVITE),
        ("ok_200", OK_200),
        ("longreq", LONGREQ),
    ] {
        let msg = parse_datagram(data).unwrap_or_else(|e| panic!("{name}: {e}"));
        if let SipMessage::Request(r) = &msg {
            assert!(
                data.ends_with(&r.body),
                "{name}: Content-Length must cover the body"
            );
        }
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function("parse", |b| b.iter(|| parse_datagram(black_box(data))));
        let owned = bytes::Bytes::from_static(data);
        g.bench_function("parse_bytes", |b| {
            b.iter(|| parse_datagram_bytes(black_box(owned.clone())))
        });
        g.bench_function("to_bytes", |b| b.iter(|| black_box(&msg).to_bytes()));
        g.bench_function("parse_and_to_bytes", |b| {
            b.iter(|| parse_datagram(black_box(data)).map(|m| m.to_bytes()))
        });
        g.bench_function("frame_tcp", |b| {
            let mut framer = Framer::new();
            b.iter(|| {
                framer.push(black_box(data));
                framer.next_message()
            })
        });
        // The rsip path rejects nothing here; assert it so the comparison is like for like.
        let via_rsip = rsip_baseline::parse_datagram_via_rsip(data);
        assert!(matches!(
            via_rsip,
            Ok(SipMessage::Request(_) | SipMessage::Response(_))
        ));
        g.bench_function("parse_rsip_baseline", |b| {
            b.iter(|| rsip_baseline::parse_datagram_via_rsip(black_box(data)))
        });
        g.finish();
    }
}

criterion_group!(benches, bench_codec);
criterion_main!(benches);
