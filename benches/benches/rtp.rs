//! RTP session hot paths: one paced packet per tick (prompt encode + header + queue), the
//! handling of one incoming G.711 packet (parse, A.1 sequence, A.8 jitter), and the
//! bridge's relay of one packet (receive + decode on one leg, live FIFO, encode + send
//! on the other, PCMU -> PCMA).
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use caruso::media::codec::Codec;
use caruso::media::rtp::{write_rtp, RtpHeaderFields};
use caruso::media::session::{RtpSession, SessionConfig};
use caruso::media::wav::Prompt;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn config(remote: SocketAddr) -> SessionConfig {
    let mut c = SessionConfig::new(Codec::Pcmu, remote, 0x1234, 1, 1, SystemTime::UNIX_EPOCH);
    c.rtcp_interval = Duration::from_secs(3600);
    c.inactivity_timeout = Duration::ZERO;
    c
}

fn rtp(c: &mut Criterion) {
    let remote: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let prompt = Prompt::from_samples(
        (0..8000 * 60)
            .map(|i| ((i * 37) % 20_000) as i16 - 10_000)
            .collect::<Vec<i16>>(),
    );
    let mut g = c.benchmark_group("rtp_session");
    g.throughput(Throughput::Elements(1));

    let t0 = Instant::now();
    let mut s = RtpSession::new(config(remote), t0);
    s.play(t0, prompt.clone());
    let mut n: u32 = 0;
    g.bench_function("tick_send_one_packet", |b| {
        b.iter(|| {
            n += 1;
            let now = t0 + Duration::from_millis(20) * n;
            s.handle_timeout(now);
            let tx = s.poll_transmit();
            if !s.is_playing() {
                s.play(now, prompt.clone());
            }
            black_box(tx)
        })
    });

    let t0 = Instant::now();
    let mut s = RtpSession::new(config(remote), t0);
    let mut buf = [0u8; 172];
    let mut seq: u16 = 0;
    let mut k: u32 = 0;
    g.bench_function("handle_incoming_packet", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            k = k.wrapping_add(1);
            let h = RtpHeaderFields {
                marker: false,
                payload_type: 0,
                sequence_number: seq,
                timestamp: k.wrapping_mul(160),
                ssrc: 99,
            };
            let len = write_rtp(&h, &[0xFF; 160], &mut buf).unwrap();
            s.handle_packet(
                t0 + Duration::from_millis(20) * k,
                remote,
                black_box(&buf[..len]),
            );
        })
    });

    // The bridge's per-packet relay: a PCMU packet in on leg A (decoded by its capture),
    // moved to leg B's live FIFO, encoded as PCMA and sent on B's next tick.
    let t0 = Instant::now();
    let mut a = RtpSession::new(config(remote), t0);
    a.set_capture(true);
    let mut bcfg = config(remote);
    bcfg.codec = Codec::Pcma;
    bcfg.payload_type = 8;
    let mut bs = RtpSession::new(bcfg, t0);
    let mut relay = Vec::with_capacity(320);
    let payload: Vec<u8> = (0..160u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut seq: u16 = 0;
    let mut k: u32 = 0;
    g.bench_function("bridge_relay_one_packet_pcmu_to_pcma", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            k = k.wrapping_add(1);
            let now = t0 + Duration::from_millis(20) * k;
            let h = RtpHeaderFields {
                marker: false,
                payload_type: 0,
                sequence_number: seq,
                timestamp: k.wrapping_mul(160),
                ssrc: 99,
            };
            let len = write_rtp(&h, &payload, &mut buf).unwrap();
            a.handle_packet(now, remote, &buf[..len]);
            relay.clear();
            a.take_audio(&mut relay);
            bs.write_audio(now, &relay);
            bs.handle_timeout(now);
            black_box(bs.poll_transmit())
        })
    });
    g.finish();
}

criterion_group!(benches, rtp);
criterion_main!(benches);
