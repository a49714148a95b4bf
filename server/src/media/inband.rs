//! In-band DTMF: a Goertzel detector on decoded 8 kHz 16-bit audio, for callers whose
//! SDP has no telephone-event.
//!
//! Contract: feed every decoded frame, in order, to [`InbandDetector::handle_frame`]
//! (20 ms = 160 samples is the usual frame; any length works, the detector carries its
//! state across frames). It returns a digit once per key press, about 30 ms after the
//! tone starts; a long press stays one digit. If a frame longer than 20 ms completes
//! more than one digit, the later ones come from [`InbandDetector::poll_digit`] (and from
//! the next `handle_frame`); up to [`PENDING`] are kept. Nothing is allocated after
//! [`InbandDetector::new`].
//!
//! # Analysis blocks
//!
//! The audio is cut into blocks of [`BLOCK`] = 80 samples (10 ms), two per 20 ms frame.
//! Each block runs eight Goertzel filters, one per DTMF frequency (rows 697, 770, 852,
//! 941 Hz, columns 1209, 1336, 1477, 1633 Hz), and sums the block's energy. Why 80 and not
//! the classic 102/105 or the whole 160-sample frame: durations are counted in blocks, and
//! with 10 ms blocks "three consecutive valid blocks" accepts every tone of 40 ms whatever
//! its alignment (a 40 ms tone always covers three whole blocks) while rejecting tones
//! under about 25 ms; 160-sample blocks would need 60 ms to be sure of two whole blocks.
//! The price is a wider Goertzel bin (100 Hz), so the frequency tolerance is not judged
//! from bin energies but from the phase of each tone's Goertzel output from one block to
//! the next (see rule 6), which measures a tone's offset to about a hertz.
//!
//! # Rules (ITU-T Q.24 style)
//!
//! Powers are mean squares of the 16-bit samples; `0 dBm0` is a sine of peak 22 800
//! (G.711: the full-scale sine is +3.17 dBm0). A block is *valid* for a digit when:
//!
//! 1. Signal floor: the strongest row and the strongest column tone are each at least
//!    [`MIN_TONE_DBM0`] (-36 dBm0).
//! 2. Twist: the row tone is at most 8 dB above the column tone (normal twist) and the
//!    column tone at most 4 dB above the row tone (reverse twist).
//! 3. Dominance: the strongest row is at least 4 dB above every other row, and the
//!    strongest column at least 4 dB above every other column (the 100 Hz bins overlap:
//!    an on-frequency tone leaks at -9.7 dB into the nearest neighbour).
//! 4. Purity (speech rejection): the two tones hold at least 75 % of the block's energy.
//!    Speech, music and noise spread their energy over many frequencies; a real DTMF
//!    signal is two sines, so the ratio is near 1 (0.97 at 15 dB SNR).
//! 5. Second harmonic (speech rejection): the energy at twice the column frequency is at
//!    least 12 dB below the column tone (voiced speech is a comb of harmonics; a DTMF
//!    tone has none). Twice a row frequency (1394-1882 Hz) falls among the column
//!    frequencies, inside their 100 Hz bins, so it cannot be measured apart from them.
//! 6. Frequency: when the previous block was valid for the same digit, each tone's phase
//!    advance between the two blocks gives its offset from the nominal frequency; both
//!    offsets must be within 2.5 % (Q.24: accept within 1.5 % + 2 Hz, reject beyond
//!    3.5 %). A block failing only this rule starts a new run.
//!
//! A digit is reported when [`HITS`] (3) consecutive blocks are valid for it, with a
//! consistent frequency, and no digit is being held. The held digit is released after
//! [`MISSES`] (3) consecutive blocks not valid for it: a dropout of up to 10 ms inside a
//! press (which can spoil two blocks) does not repeat the digit, and the pause of 40 ms
//! that Q.24 requires between digits always releases it. So (measured over all 80 block
//! alignments): tones of 38 ms and more are always detected, tones of 24 ms and less
//! never; between, it depends on the alignment (30 ms: about half the time). Pauses of
//! 40 ms separate two presses.
//!
//! ```
//! use caruso::media::dtmf::DtmfDigit;
//! use caruso::media::inband::InbandDetector;
//! // 60 ms of '5' (770 Hz + 1336 Hz at about -10 dBm0 each), then 60 ms of silence.
//! let tone: Vec<i16> = (0..480)
//!     .map(|n| {
//!         let t = n as f64 / 8000.0;
//!         let x = (std::f64::consts::TAU * 770.0 * t).sin()
//!             + (std::f64::consts::TAU * 1336.0 * t).sin();
//!         (7000.0 * x) as i16
//!     })
//!     .chain(std::iter::repeat(0).take(480))
//!     .collect();
//! let mut det = InbandDetector::new();
//! let digits: Vec<DtmfDigit> = tone.chunks(160).filter_map(|f| det.handle_frame(f)).collect();
//! assert_eq!(digits, [DtmfDigit::from_char('5').unwrap()]);
//! ```

use std::f32::consts::TAU;

use crate::media::dtmf::DtmfDigit;

/// Samples per analysis block (10 ms at 8 kHz).
pub const BLOCK: usize = 80;
/// The sample rate the detector expects.
pub const SAMPLE_RATE: u32 = 8000;
/// Consecutive valid blocks that make a digit.
pub const HITS: u32 = 3;
/// Consecutive blocks without the held digit that release it.
pub const MISSES: u32 = 3;
/// Minimum level of each of the two tones, in dBm0.
pub const MIN_TONE_DBM0: f32 = -36.0;

/// Row (low group) then column (high group) frequencies in Hz.
const FREQS: [f32; 8] = [697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0];
/// The keypad: `KEYS[row][column]`.
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
/// Number of Goertzel filters: 8 fundamentals, then the second harmonics of the 4 columns.
const FILTERS: usize = 12;
/// Mean square of a 0 dBm0 sine (peak 22 800).
const DBM0_POWER: f32 = 22_800.0 * 22_800.0 / 2.0;
/// Normal twist limit (row above column): 8 dB as a power ratio.
const NORMAL_TWIST: f32 = 6.309_573; // 10^(8/10)
/// Reverse twist limit (column above row): 4 dB as a power ratio.
const REVERSE_TWIST: f32 = 2.511_886; // 10^(4/10)
/// Dominance of the chosen row/column over the others: 4 dB.
const DOMINANCE: f32 = 2.511_886;
/// Share of the block's energy the two tones must hold.
const PURITY: f32 = 0.75;
/// A second harmonic must be this far (12 dB) below its fundamental.
const HARMONIC: f32 = 0.063_095_73; // 10^(-12/10)
/// Frequency tolerance, relative.
const FREQ_TOLERANCE: f32 = 0.025;
/// Digits a long frame may complete before they are read: reports are at least three
/// blocks (30 ms) apart, so frames up to 480 ms lose nothing.
pub const PENDING: usize = 16;

/// Per-filter constants, computed once.
#[derive(Debug, Clone, Copy, Default)]
struct Filter {
    /// `2 cos(w)`, the Goertzel recurrence coefficient.
    coef: f32,
    /// `cos(w)`, `sin(w)`: the complex output of the last step.
    cos: f32,
    sin: f32,
    /// `e^{-j w BLOCK}`: removes the nominal phase advance between two blocks.
    rot_re: f32,
    rot_im: f32,
    /// Largest accepted phase offset between blocks, in radians.
    max_phase: f32,
}

/// The in-band DTMF detector (see the module doc for the rules).
#[derive(Debug, Clone)]
pub struct InbandDetector {
    filters: [Filter; FILTERS],
    /// Goertzel states `s[n-1]`, `s[n-2]`.
    s1: [f32; FILTERS],
    s2: [f32; FILTERS],
    /// Sum of squares in the current block.
    energy: f32,
    /// Samples in the current block.
    filled: usize,
    /// Complex outputs of the previous block (fundamentals only).
    prev: [(f32, f32); 8],
    /// The (row, column) the previous block was valid for.
    prev_valid: Option<(usize, usize)>,
    /// Digit of the current run of valid blocks, and its length.
    run: Option<DtmfDigit>,
    run_len: u32,
    /// The digit being held (reported, not yet released), and blocks without it.
    held: Option<DtmfDigit>,
    misses: u32,
    /// Reported digits not yet returned (ring buffer).
    pending: [Option<DtmfDigit>; PENDING],
    pending_head: usize,
    pending_len: usize,
}

impl Default for InbandDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl InbandDetector {
    /// A detector in its initial state (nothing heard).
    pub fn new() -> Self {
        let mut filters = [Filter::default(); FILTERS];
        for (i, f) in filters.iter_mut().enumerate() {
            let (freq, harmonic) = if i < 8 {
                (FREQS[i], 1.0)
            } else {
                (FREQS[i - 4], 2.0)
            };
            let w = TAU * freq * harmonic / SAMPLE_RATE as f32;
            let adv = w * BLOCK as f32;
            *f = Filter {
                coef: 2.0 * w.cos(),
                cos: w.cos(),
                sin: w.sin(),
                rot_re: adv.cos(),
                rot_im: -adv.sin(),
                max_phase: TAU * freq * FREQ_TOLERANCE * BLOCK as f32 / SAMPLE_RATE as f32,
            };
        }
        InbandDetector {
            filters,
            s1: [0.0; FILTERS],
            s2: [0.0; FILTERS],
            energy: 0.0,
            filled: 0,
            prev: [(0.0, 0.0); 8],
            prev_valid: None,
            run: None,
            run_len: 0,
            held: None,
            misses: MISSES,
            pending: [None; PENDING],
            pending_head: 0,
            pending_len: 0,
        }
    }

    /// Forgets everything heard (for example when the stream restarts).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Feeds decoded samples (8 kHz); returns a digit when a key press is recognised in
    /// them (or one left over from an earlier long frame).
    pub fn handle_frame(&mut self, samples: &[i16]) -> Option<DtmfDigit> {
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (BLOCK - self.filled).min(rest.len());
            let (now, later) = rest.split_at(take);
            self.feed(now);
            rest = later;
            if self.filled == BLOCK {
                self.end_block();
            }
        }
        self.poll_digit()
    }

    /// The next recognised digit not yet returned by [`Self::handle_frame`].
    pub fn poll_digit(&mut self) -> Option<DtmfDigit> {
        if self.pending_len == 0 {
            return None;
        }
        let d = self.pending[self.pending_head].take();
        self.pending_head = (self.pending_head + 1) % PENDING;
        self.pending_len -= 1;
        d
    }

    /// Runs the filters over samples that fit in the current block.
    fn feed(&mut self, samples: &[i16]) {
        let mut s1 = self.s1;
        let mut s2 = self.s2;
        let mut energy = self.energy;
        // A plain array (not a field of each Filter) so the inner loop vectorises.
        let coef: [f32; FILTERS] = std::array::from_fn(|i| self.filters[i].coef);
        for &x in samples {
            let x = f32::from(x);
            energy += x * x;
            for i in 0..FILTERS {
                // (x - s2) does not wait for s1: one multiply-add on the critical path.
                let s = (x - s2[i]) + coef[i] * s1[i];
                s2[i] = s1[i];
                s1[i] = s;
            }
        }
        self.s1 = s1;
        self.s2 = s2;
        self.energy = energy;
        self.filled += samples.len();
    }

    /// Judges a complete block and advances the press state machine.
    fn end_block(&mut self) {
        let n = BLOCK as f32;
        let scale = 2.0 / (n * n);
        let mut out = [(0.0f32, 0.0f32); FILTERS];
        let mut power = [0.0f32; FILTERS];
        for i in 0..FILTERS {
            let f = &self.filters[i];
            let re = self.s1[i] - f.cos * self.s2[i];
            let im = f.sin * self.s2[i];
            out[i] = (re, im);
            power[i] = (re * re + im * im) * scale;
        }
        let mean_square = self.energy / n;
        self.s1 = [0.0; FILTERS];
        self.s2 = [0.0; FILTERS];
        self.energy = 0.0;
        self.filled = 0;

        let valid = classify(&power, mean_square);
        let mut steady = false;
        if let Some((r, c)) = valid {
            if self.prev_valid == Some((r, c)) {
                steady = self.on_frequency(r, out[r], self.prev[r])
                    && self.on_frequency(c + 4, out[c + 4], self.prev[c + 4]);
            }
        }
        for (p, o) in self.prev.iter_mut().zip(out) {
            *p = o;
        }
        self.prev_valid = valid;

        match valid {
            Some((r, c)) => {
                let d = digit(r, c);
                if self.run == Some(d) && steady {
                    self.run_len += 1;
                } else {
                    self.run = Some(d);
                    self.run_len = 1;
                }
                if self.held == Some(d) {
                    self.misses = 0;
                } else {
                    self.misses = self.misses.saturating_add(1);
                }
            }
            None => {
                self.run = None;
                self.run_len = 0;
                self.misses = self.misses.saturating_add(1);
            }
        }
        if self.misses >= MISSES {
            self.held = None;
        }
        if let (Some(d), None) = (self.run, self.held) {
            if self.run_len >= HITS {
                self.held = Some(d);
                self.misses = 0;
                self.push(d);
            }
        }
    }

    /// Rule 6: the tone's phase advanced by the nominal amount, within the tolerance.
    fn on_frequency(&self, i: usize, now: (f32, f32), before: (f32, f32)) -> bool {
        let f = &self.filters[i];
        // z = now * conj(before) * e^{-j w BLOCK}
        let (a, b) = (
            now.0 * before.0 + now.1 * before.1,
            now.1 * before.0 - now.0 * before.1,
        );
        let (re, im) = (a * f.rot_re - b * f.rot_im, a * f.rot_im + b * f.rot_re);
        im.atan2(re).abs() <= f.max_phase
    }

    fn push(&mut self, d: DtmfDigit) {
        if self.pending_len == PENDING {
            // Only with a frame over 480 ms that nobody polled: keep the newest.
            self.pending_head = (self.pending_head + 1) % PENDING;
            self.pending_len -= 1;
        }
        let tail = (self.pending_head + self.pending_len) % PENDING;
        self.pending[tail] = Some(d);
        self.pending_len += 1;
    }
}

/// The digit at a keypad position.
fn digit(row: usize, col: usize) -> DtmfDigit {
    // KEYS only holds valid digit characters.
    DtmfDigit::from_char(KEYS[row & 3][col & 3]).unwrap_or_else(|| unreachable!())
}

/// Rules 1-5 on one block: the (row, column) it is valid for, if any.
fn classify(power: &[f32; FILTERS], mean_square: f32) -> Option<(usize, usize)> {
    let floor = DBM0_POWER * 10f32.powf(MIN_TONE_DBM0 / 10.0);
    if mean_square < 2.0 * floor {
        return None;
    }
    let strongest = |range: std::ops::Range<usize>| {
        range.clone().fold(
            range.start,
            |best, i| if power[i] > power[best] { i } else { best },
        )
    };
    let r = strongest(0..4);
    let c = strongest(4..8);
    let (pr, pc) = (power[r], power[c]);
    // 1. Signal floor.
    if pr < floor || pc < floor {
        return None;
    }
    // 2. Twist.
    if pr > pc * NORMAL_TWIST || pc > pr * REVERSE_TWIST {
        return None;
    }
    // 3. Dominance.
    let dominant = |best: usize, range: std::ops::Range<usize>| {
        range
            .filter(|&i| i != best)
            .all(|i| power[best] >= DOMINANCE * power[i])
    };
    if !dominant(r, 0..4) || !dominant(c, 4..8) {
        return None;
    }
    // 4. Purity.
    if pr + pc < PURITY * mean_square {
        return None;
    }
    // 5. Second harmonics.
    if power[c + 4] > HARMONIC * pc {
        return None;
    }
    Some((r, c - 4))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::{decode_into, encode_into, Codec};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const ALL: &str = "0123456789*#ABCD";

    /// Peak amplitude of a sine at `dbm0`.
    fn amplitude(dbm0: f64) -> f64 {
        22_800.0 * 10f64.powf(dbm0 / 20.0)
    }

    /// Row and column frequencies of a key.
    fn freqs(c: char) -> (f64, f64) {
        for (r, row) in KEYS.iter().enumerate() {
            for (k, key) in row.iter().enumerate() {
                if *key == c {
                    return (f64::from(FREQS[r]), f64::from(FREQS[4 + k]));
                }
            }
        }
        panic!("no key {c}");
    }

    /// A tone pair of `ms` milliseconds; levels in dBm0, frequencies scaled by factors.
    #[derive(Clone, Copy)]
    struct Tone {
        key: char,
        ms: f64,
        row_dbm0: f64,
        col_dbm0: f64,
        row_factor: f64,
        col_factor: f64,
    }

    fn tone(key: char, ms: f64, dbm0: f64) -> Tone {
        Tone {
            key,
            ms,
            row_dbm0: dbm0,
            col_dbm0: dbm0,
            row_factor: 1.0,
            col_factor: 1.0,
        }
    }

    fn push_tone(out: &mut Vec<f64>, t: Tone) {
        let (fr, fc) = freqs(t.key);
        let (fr, fc) = (fr * t.row_factor, fc * t.col_factor);
        let (ar, ac) = (amplitude(t.row_dbm0), amplitude(t.col_dbm0));
        let n = (t.ms * 8.0).round() as usize;
        // Random-looking but fixed start phases.
        let (pr, pc) = (0.3 + fr / 1000.0, 1.1 + fc / 700.0);
        for i in 0..n {
            let s = i as f64 / 8000.0;
            let x = ar * (std::f64::consts::TAU * fr * s + pr).sin()
                + ac * (std::f64::consts::TAU * fc * s + pc).sin();
            out.push(x);
        }
    }

    fn push_silence(out: &mut Vec<f64>, ms: f64) {
        out.extend(std::iter::repeat_n(0.0, (ms * 8.0).round() as usize));
    }

    /// Adds white Gaussian noise of the given level (dBm0 of mean square), seeded.
    fn add_noise(signal: &mut [f64], dbm0: f64, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let sigma = amplitude(dbm0) / std::f64::consts::SQRT_2;
        for x in signal.iter_mut() {
            // Box-Muller.
            let u1: f64 = rng.random::<f64>().max(1e-12);
            let u2: f64 = rng.random();
            *x += sigma * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        }
    }

    fn to_pcm(signal: &[f64]) -> Vec<i16> {
        signal
            .iter()
            .map(|x| x.round().clamp(-32768.0, 32767.0) as i16)
            .collect()
    }

    /// Runs the detector over `pcm` in frames of `frame` samples.
    fn detect_in(pcm: &[i16], frame: usize) -> String {
        let mut det = InbandDetector::new();
        let mut out = String::new();
        for f in pcm.chunks(frame) {
            if let Some(d) = det.handle_frame(f) {
                out.push(d.as_char());
            }
            while let Some(d) = det.poll_digit() {
                out.push(d.as_char());
            }
        }
        out
    }

    fn detect(pcm: &[i16]) -> String {
        detect_in(pcm, 160)
    }

    /// Every key as `ms` of tone then `gap` of silence, after 50 ms of silence.
    fn keypad(ms: f64, gap: f64, dbm0: f64) -> Vec<f64> {
        let mut s = Vec::new();
        push_silence(&mut s, 50.0);
        for key in ALL.chars() {
            push_tone(&mut s, tone(key, ms, dbm0));
            push_silence(&mut s, gap);
        }
        s
    }

    #[test]
    fn every_key_is_detected_once_at_realistic_levels() {
        for dbm0 in [-3.0, -10.0, -25.0, -30.0] {
            assert_eq!(
                detect(&to_pcm(&keypad(100.0, 100.0, dbm0))),
                ALL,
                "{dbm0} dBm0"
            );
        }
        // Fast dialling: 40 ms tones, 40 ms pauses (Q.24's shortest).
        assert_eq!(detect(&to_pcm(&keypad(40.0, 40.0, -10.0))), ALL);
    }

    #[test]
    fn every_key_is_detected_in_white_noise() {
        // Noise 15 dB below each tone's level, running through the pauses too.
        for (i, dbm0) in [-10.0, -25.0].into_iter().enumerate() {
            let mut s = keypad(60.0, 60.0, dbm0);
            add_noise(&mut s, dbm0 - 15.0 + 3.0, 7 + i as u64);
            assert_eq!(detect(&to_pcm(&s)), ALL, "{dbm0} dBm0 in noise");
        }
    }

    #[test]
    fn frame_length_does_not_matter() {
        let pcm = to_pcm(&keypad(50.0, 50.0, -12.0));
        // The whole signal as one frame: 16 digits, all kept for poll_digit.
        for frame in [1, 33, 80, 160, 240, 1000, 4000, pcm.len()] {
            assert_eq!(detect_in(&pcm, frame), ALL, "frames of {frame}");
        }
    }

    #[test]
    fn tones_of_40_ms_are_detected_at_any_alignment_and_short_ones_never() {
        for offset in (0..80).step_by(7) {
            for (ms, expect) in [(40.0, "5"), (38.0, "5"), (24.0, ""), (20.0, ""), (10.0, "")] {
                let mut s = Vec::new();
                push_silence(&mut s, offset as f64 / 8.0);
                push_tone(&mut s, tone('5', ms, -10.0));
                push_silence(&mut s, 100.0);
                assert_eq!(detect(&to_pcm(&s)), expect, "{ms} ms at offset {offset}");
            }
        }
    }

    #[test]
    fn a_long_press_is_one_digit_even_with_a_short_dropout() {
        let mut s = Vec::new();
        push_tone(&mut s, tone('9', 2000.0, -15.0));
        push_silence(&mut s, 100.0);
        assert_eq!(detect(&to_pcm(&s)), "9");

        let mut s = Vec::new();
        push_tone(&mut s, tone('9', 300.0, -15.0));
        push_silence(&mut s, 10.0); // Q.24: an interruption of 10 ms is bridged.
        push_tone(&mut s, tone('9', 300.0, -15.0));
        push_silence(&mut s, 100.0);
        add_noise(&mut s, -35.0, 3);
        assert_eq!(detect(&to_pcm(&s)), "9");

        // But a 40 ms pause separates two presses of the same key.
        let mut s = Vec::new();
        push_tone(&mut s, tone('9', 300.0, -15.0));
        push_silence(&mut s, 40.0);
        push_tone(&mut s, tone('9', 300.0, -15.0));
        assert_eq!(detect(&to_pcm(&s)), "99");
    }

    fn detect_tone(t: Tone) -> String {
        let mut s = Vec::new();
        push_silence(&mut s, 20.0);
        push_tone(&mut s, t);
        push_silence(&mut s, 60.0);
        detect(&to_pcm(&s))
    }

    #[test]
    fn frequency_tolerance() {
        for key in ALL.chars() {
            for f in [0.985, 1.015] {
                for t in [
                    Tone {
                        row_factor: f,
                        ..tone(key, 80.0, -10.0)
                    },
                    Tone {
                        col_factor: f,
                        ..tone(key, 80.0, -10.0)
                    },
                ] {
                    assert_eq!(detect_tone(t), key.to_string(), "{key} off by {f}");
                }
            }
            for f in [0.965, 1.035] {
                for t in [
                    Tone {
                        row_factor: f,
                        ..tone(key, 200.0, -10.0)
                    },
                    Tone {
                        col_factor: f,
                        ..tone(key, 200.0, -10.0)
                    },
                ] {
                    assert_eq!(detect_tone(t), "", "{key} off by {f}");
                }
            }
        }
    }

    #[test]
    fn twist_limits() {
        for key in ALL.chars() {
            let twist = |row: f64, col: f64| {
                detect_tone(Tone {
                    row_dbm0: row,
                    col_dbm0: col,
                    ..tone(key, 200.0, 0.0)
                })
            };
            // Within the limits: row 7 dB above column, column 3 dB above row.
            assert_eq!(twist(-10.0, -17.0), key.to_string(), "{key} normal 7 dB");
            assert_eq!(twist(-13.0, -10.0), key.to_string(), "{key} reverse 3 dB");
            // Beyond: row 10 dB above, column 6 dB above.
            assert_eq!(twist(-10.0, -20.0), "", "{key} normal 10 dB");
            assert_eq!(twist(-16.0, -10.0), "", "{key} reverse 6 dB");
        }
    }

    #[test]
    fn single_tones_weak_tones_silence_and_noise_give_nothing() {
        // One tone alone (the other 40 dB down).
        assert_eq!(
            detect_tone(Tone {
                col_dbm0: -50.0,
                ..tone('1', 200.0, -10.0)
            }),
            ""
        );
        // Below the floor.
        assert_eq!(detect_tone(tone('1', 200.0, -42.0)), "");
        assert_eq!(detect(&[0; 8000]), "");
        for (seed, level) in [(1, -10.0), (2, -20.0), (3, -40.0)] {
            let mut s = vec![0.0; 80_000];
            add_noise(&mut s, level, seed);
            assert_eq!(detect(&to_pcm(&s)), "", "noise at {level} dBm0");
        }
    }

    fn speech() -> Vec<i16> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/media/testdata/speech.wav");
        let mut r = hound::WavReader::open(path).unwrap();
        assert_eq!(r.spec().sample_rate, 8000);
        r.samples::<i16>().map(|s| s.unwrap()).collect()
    }

    #[test]
    fn speech_gives_no_digits() {
        let pcm = speech();
        assert!(pcm.len() > 8000 * 10);
        // As recorded, louder (clipping a little) and quieter.
        for gain in [1.0, 1.5, 0.3] {
            let s: Vec<f64> = pcm.iter().map(|&x| f64::from(x) * gain).collect();
            assert_eq!(detect(&to_pcm(&s)), "", "speech at gain {gain}");
        }
    }

    #[test]
    fn digits_in_speech_are_still_found() {
        // A key pressed while the prompt plays back (echo): tones 6 dB above speech.
        let pcm = speech();
        let mut s: Vec<f64> = pcm[..16_000].iter().map(|&x| f64::from(x) * 0.1).collect();
        let mut t = Vec::new();
        push_tone(&mut t, tone('#', 100.0, -10.0));
        for (x, y) in s[4000..].iter_mut().zip(&t) {
            *x += y;
        }
        assert_eq!(detect(&to_pcm(&s)), "#");
    }

    #[test]
    fn g711_round_trip_keeps_the_digits() {
        let pcm = to_pcm(&keypad(60.0, 60.0, -20.0));
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut codes = vec![0u8; pcm.len()];
            encode_into(codec, &pcm, &mut codes);
            let mut back = vec![0i16; pcm.len()];
            decode_into(codec, &codes, &mut back);
            assert_eq!(detect(&back), ALL, "{codec:?}");
        }
    }

    #[test]
    fn reset_forgets_a_held_digit() {
        let mut s = Vec::new();
        push_tone(&mut s, tone('3', 100.0, -10.0));
        let pcm = to_pcm(&s);
        let mut det = InbandDetector::new();
        let first: Vec<_> = pcm
            .chunks(160)
            .filter_map(|f| det.handle_frame(f))
            .collect();
        assert_eq!(first.len(), 1);
        det.reset();
        let again: Vec<_> = pcm
            .chunks(160)
            .filter_map(|f| det.handle_frame(f))
            .collect();
        assert_eq!(again, first);
    }
}
