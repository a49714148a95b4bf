//! G.711 encode and decode of one 20 ms frame (160 samples), both laws.
use std::hint::black_box;

use caruso::media::codec::{decode_into, encode_into, Codec};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn frame() -> [i16; 160] {
    let mut f = [0i16; 160];
    for (i, s) in f.iter_mut().enumerate() {
        // A 1 kHz-ish tone at a speech-like level, deterministic.
        let x = (i as f64 * std::f64::consts::TAU / 8.0).sin();
        *s = (x * 12_000.0) as i16;
    }
    f
}

fn g711(c: &mut Criterion) {
    let pcm = frame();
    let mut g = c.benchmark_group("g711");
    g.throughput(Throughput::Elements(160));
    for codec in [Codec::Pcmu, Codec::Pcma] {
        let name = codec.encoding_name();
        let mut enc = [0u8; 160];
        g.bench_function(format!("encode_160/{name}"), |b| {
            b.iter(|| encode_into(codec, black_box(&pcm), black_box(&mut enc)))
        });
        encode_into(codec, &pcm, &mut enc);
        let mut dec = [0i16; 160];
        g.bench_function(format!("decode_160/{name}"), |b| {
            b.iter(|| decode_into(codec, black_box(&enc), black_box(&mut dec)))
        });
    }
    g.finish();
}

criterion_group!(benches, g711);
criterion_main!(benches);
