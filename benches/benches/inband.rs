//! In-band DTMF detection of one 20 ms frame (160 samples): a DTMF tone, and speech-like
//! noise (the common case: the detector runs on every frame of a call).
use std::hint::black_box;

use caruso::media::inband::InbandDetector;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// One 20 ms frame of '5' (770 + 1336 Hz, about -10 dBm0 each).
fn tone_frame() -> [i16; 160] {
    let mut f = [0i16; 160];
    for (i, s) in f.iter_mut().enumerate() {
        let t = i as f64 / 8000.0;
        let x =
            (std::f64::consts::TAU * 770.0 * t).sin() + (std::f64::consts::TAU * 1336.0 * t).sin();
        *s = (x * 7_000.0) as i16;
    }
    f
}

/// One 20 ms frame of a deterministic broadband signal at a speech-like level.
fn noise_frame() -> [i16; 160] {
    let mut f = [0i16; 160];
    let mut state = 0x2545_f491u32;
    for s in f.iter_mut() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        *s = (state >> 16) as i16 / 8;
    }
    f
}

fn inband(c: &mut Criterion) {
    let mut g = c.benchmark_group("inband");
    g.throughput(Throughput::Elements(160));
    for (name, frame) in [("tone", tone_frame()), ("noise", noise_frame())] {
        let mut det = InbandDetector::new();
        g.bench_function(format!("frame_160/{name}"), |b| {
            b.iter(|| det.handle_frame(black_box(&frame)))
        });
    }
    g.finish();
}

criterion_group!(benches, inband);
criterion_main!(benches);
