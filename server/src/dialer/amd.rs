//! Answering-machine detection (AMD) on the first seconds of an answered call.
//!
//! Contract: feed the called party's audio as 8 kHz mono i16 frames (20 ms = 160
//! samples; other lengths are fine, time is counted in samples) to
//! [`Amd::handle_frame`]; [`Amd::poll_event`] yields one [`AmdEvent::Verdict`] (human,
//! machine or unknown, with the rule that decided and when) and, at any time, an
//! [`AmdEvent::Beep`] when a steady tone (a machine's "record after the tone") ends.
//! No clock: time is the amount of audio fed.
//!
//! A frame is speech when its RMS level reaches `silence_threshold`. Speech runs of at
//! least `min_word` are words; a word ends after `between_words` of silence. Rules, in
//! the order they are checked on each frame:
//! 1. a steady tone of `beep_min` or more before any verdict → **machine** (`Beep`);
//! 2. no word within `initial_silence` → **unknown** (`InitialSilence`): dead air is
//!    as often a wary person as a machine; the campaign routes unknown like human (an
//!    agent takes it) so that no person is hung up on;
//! 3. the greeting (first word start to last speech) longer than `greeting` →
//!    **machine** (`LongGreeting`): "Hi, you've reached ...";
//! 4. more than `max_words` words → **machine** (`TooManyWords`);
//! 5. `after_greeting_silence` of silence after a short greeting → **human**
//!    (`SilenceAfterGreeting`): "Hello?" then waiting for an answer;
//! 6. `total` audio without a verdict → **unknown** (`MaxTime`).
//!
//! ```
//! use caruso::dialer::amd::{Amd, AmdEvent, AmdOutcome, AmdParams};
//! let mut amd = Amd::new(AmdParams::default());
//! let mut x = 1u32; // noisy "speech" (a steady tone would be a beep)
//! let speech: Vec<i16> = (0..160)
//!     .map(|_| { x ^= x << 13; x ^= x >> 17; x ^= x << 5; (x % 6000) as i16 - 3000 })
//!     .collect();
//! let silence = [0i16; 160];
//! for _ in 0..20 { amd.handle_frame(&speech); }   // 400 ms "hello"
//! for _ in 0..50 { amd.handle_frame(&silence); }  // then it waits
//! let Some(AmdEvent::Verdict(v)) = amd.poll_event() else { panic!() };
//! assert_eq!(v.outcome, AmdOutcome::Human);
//! ```

use std::collections::VecDeque;
use std::time::Duration;

/// Sample rate of the analysed audio.
pub const SAMPLE_RATE: u32 = 8000;

/// Tunable detection parameters (defaults in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmdParams {
    /// Longest silence before the first word (2.5 s).
    pub initial_silence: Duration,
    /// Longest greeting of a person (1.5 s).
    pub greeting: Duration,
    /// Silence after the greeting that shows a person waiting (0.8 s).
    pub after_greeting_silence: Duration,
    /// Audio analysed before giving up (5 s).
    pub total: Duration,
    /// Shortest speech run counted as a word (100 ms).
    pub min_word: Duration,
    /// Silence that ends a word (50 ms).
    pub between_words: Duration,
    /// Most words in a person's greeting (3).
    pub max_words: u32,
    /// Frame RMS level at or above which a frame is speech (256 of 32767, about -42 dBFS).
    pub silence_threshold: u16,
    /// Shortest steady tone taken as a beep (120 ms).
    pub beep_min: Duration,
}

impl Default for AmdParams {
    fn default() -> Self {
        AmdParams {
            initial_silence: Duration::from_millis(2500),
            greeting: Duration::from_millis(1500),
            after_greeting_silence: Duration::from_millis(800),
            total: Duration::from_millis(5000),
            min_word: Duration::from_millis(100),
            between_words: Duration::from_millis(50),
            max_words: 3,
            silence_threshold: 256,
            beep_min: Duration::from_millis(120),
        }
    }
}

/// What answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AmdOutcome {
    /// A person.
    Human,
    /// An answering machine or voicemail.
    Machine,
    /// Could not tell (routed like a person).
    Unknown,
}

impl AmdOutcome {
    /// Lower-case name (`human`, `machine`, `unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            AmdOutcome::Human => "human",
            AmdOutcome::Machine => "machine",
            AmdOutcome::Unknown => "unknown",
        }
    }
}

/// The rule that decided (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmdReason {
    /// Rule 1: a beep before any verdict.
    Beep,
    /// Rule 2: no word within `initial_silence`.
    InitialSilence,
    /// Rule 3: greeting longer than `greeting`.
    LongGreeting,
    /// Rule 4: more than `max_words` words.
    TooManyWords,
    /// Rule 5: silence after a short greeting.
    SilenceAfterGreeting,
    /// Rule 6: `total` reached.
    MaxTime,
}

/// A verdict and what led to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmdVerdict {
    /// Human, machine or unknown.
    pub outcome: AmdOutcome,
    /// The deciding rule.
    pub reason: AmdReason,
    /// Audio analysed when it was decided.
    pub at: Duration,
    /// Words counted.
    pub words: u32,
    /// Greeting length (first word start to last speech).
    pub greeting: Duration,
}

/// What the detector reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmdEvent {
    /// The verdict (once).
    Verdict(AmdVerdict),
    /// A beep ended at this point of the audio (a machine is recording from here).
    Beep {
        /// Audio analysed when the tone ended.
        at: Duration,
    },
}

/// One call's detector.
#[derive(Debug, Clone)]
pub struct Amd {
    p: AmdParams,
    /// Samples analysed.
    samples: u64,
    voice_run: u64,
    silence_run: u64,
    in_word: bool,
    words: u32,
    greeting_start: Option<u64>,
    last_voice_end: u64,
    tone_run: u64,
    tone_bin: Option<usize>,
    verdict: Option<AmdVerdict>,
    events: VecDeque<AmdEvent>,
}

/// Goertzel bins (50 Hz apart for 160-sample frames) searched for a tone: 300-2500 Hz.
const TONE_BINS: std::ops::RangeInclusive<usize> = 6..=50;
/// Share of a frame's energy in three adjacent bins that makes it a tone.
const TONE_SHARE: f64 = 0.7;

fn samples(d: Duration) -> u64 {
    (d.as_micros() as u64).saturating_mul(SAMPLE_RATE as u64) / 1_000_000
}

fn duration(samples: u64) -> Duration {
    Duration::from_micros(samples.saturating_mul(1_000_000) / SAMPLE_RATE as u64)
}

impl Amd {
    /// A detector with these parameters.
    pub fn new(p: AmdParams) -> Amd {
        Amd {
            p,
            samples: 0,
            voice_run: 0,
            silence_run: 0,
            in_word: false,
            words: 0,
            greeting_start: None,
            last_voice_end: 0,
            tone_run: 0,
            tone_bin: None,
            verdict: None,
            events: VecDeque::new(),
        }
    }

    /// The verdict, once reached.
    pub fn verdict(&self) -> Option<&AmdVerdict> {
        self.verdict.as_ref()
    }

    /// Analyses one frame of audio.
    pub fn handle_frame(&mut self, frame: &[i16]) {
        if frame.is_empty() {
            return;
        }
        let n = frame.len() as u64;
        let energy: f64 = frame.iter().map(|&s| (s as f64) * (s as f64)).sum();
        let rms = (energy / n as f64).sqrt();
        let voiced = rms >= self.p.silence_threshold as f64;
        self.samples += n;
        self.track_tone(frame, energy, voiced);
        if self.verdict.is_none() {
            self.track_words(n, voiced);
            if let Some((outcome, reason)) = self.decide() {
                let v = AmdVerdict {
                    outcome,
                    reason,
                    at: duration(self.samples),
                    words: self.words,
                    greeting: self.greeting(),
                };
                self.verdict = Some(v);
                self.events.push_back(AmdEvent::Verdict(v));
            }
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<AmdEvent> {
        self.events.pop_front()
    }

    fn greeting(&self) -> Duration {
        self.greeting_start.map_or(Duration::ZERO, |s| {
            duration(self.last_voice_end.saturating_sub(s))
        })
    }

    fn track_words(&mut self, frame_len: u64, voiced: bool) {
        if voiced {
            self.voice_run += frame_len;
            self.silence_run = 0;
            if !self.in_word && self.voice_run >= samples(self.p.min_word) {
                self.in_word = true;
                self.words += 1;
                if self.greeting_start.is_none() {
                    self.greeting_start = Some(self.samples - self.voice_run);
                }
            }
            if self.in_word {
                self.last_voice_end = self.samples;
            }
        } else {
            self.silence_run += frame_len;
            if self.silence_run >= samples(self.p.between_words) {
                self.in_word = false;
                self.voice_run = 0;
            }
        }
    }

    fn decide(&self) -> Option<(AmdOutcome, AmdReason)> {
        use AmdOutcome::*;
        use AmdReason::*;
        if self.tone_run >= samples(self.p.beep_min) {
            return Some((Machine, Beep));
        }
        if self.words == 0 {
            if self.samples >= samples(self.p.initial_silence) {
                return Some((Unknown, InitialSilence));
            }
        } else {
            if self.greeting() > self.p.greeting {
                return Some((Machine, LongGreeting));
            }
            if self.words > self.p.max_words {
                return Some((Machine, TooManyWords));
            }
            if !self.in_word && self.silence_run >= samples(self.p.after_greeting_silence) {
                return Some((Human, SilenceAfterGreeting));
            }
        }
        if self.samples >= samples(self.p.total) {
            return Some((Unknown, MaxTime));
        }
        None
    }

    /// Follows steady tones; reports a beep when one of `beep_min` or more ends.
    fn track_tone(&mut self, frame: &[i16], energy: f64, voiced: bool) {
        let bin = if voiced {
            tone_bin(frame, energy)
        } else {
            None
        };
        match (bin, self.tone_bin) {
            (Some(b), Some(prev)) if b.abs_diff(prev) <= 1 => {
                self.tone_run += frame.len() as u64;
            }
            (Some(b), _) => {
                self.end_tone();
                self.tone_run = frame.len() as u64;
                self.tone_bin = Some(b);
            }
            (None, _) => self.end_tone(),
        }
    }

    fn end_tone(&mut self) {
        if self.tone_bin.is_some() && self.tone_run >= samples(self.p.beep_min) {
            self.events.push_back(AmdEvent::Beep {
                at: duration(self.samples),
            });
        }
        self.tone_bin = None;
        self.tone_run = 0;
    }
}

/// The bin of a frame that is one steady tone (most energy in three adjacent bins).
fn tone_bin(frame: &[i16], energy: f64) -> Option<usize> {
    if energy <= 0.0 {
        return None;
    }
    let n = frame.len() as f64;
    let share = |k: usize| {
        // Goertzel power at k * 50 Hz (for 160 samples; scaled for other lengths).
        let w = 2.0 * std::f64::consts::PI * (k as f64 * 50.0) / SAMPLE_RATE as f64;
        let c = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in frame {
            let s0 = x as f64 + c * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - c * s1 * s2;
        2.0 * power / (n * energy)
    };
    let shares: Vec<f64> = TONE_BINS.map(share).collect();
    let peak = (0..shares.len()).fold(0, |a, b| if shares[b] > shares[a] { b } else { a });
    let around: f64 = shares[peak.saturating_sub(1)..(peak + 2).min(shares.len())]
        .iter()
        .sum();
    (around >= TONE_SHARE).then_some(*TONE_BINS.start() + peak)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const FRAME: usize = 160;

    /// Generated audio: background noise, speech-like bursts and tones.
    struct Gen {
        rng: StdRng,
        t: u64,
        out: Vec<i16>,
    }

    impl Gen {
        fn new(seed: u64) -> Gen {
            Gen {
                rng: StdRng::seed_from_u64(seed),
                t: 0,
                out: Vec::new(),
            }
        }

        fn noise(&mut self) -> f64 {
            self.rng.random_range(-40.0..40.0)
        }

        fn silence(&mut self, ms: u64) -> &mut Self {
            for _ in 0..ms * 8 {
                let s = self.noise();
                self.push(s);
            }
            self
        }

        /// A voiced "syllable": a glottal-pulse-like harmonic series at a gliding pitch,
        /// with an attack/decay envelope.
        fn word(&mut self, ms: u64) -> &mut Self {
            let n = ms * 8;
            let f0 = self.rng.random_range(110.0..190.0);
            for i in 0..n {
                let x = i as f64 / n as f64;
                let env = (x * 10.0).min(1.0) * ((1.0 - x) * 6.0).min(1.0);
                let pitch = f0 * (1.0 + 0.15 * (x * 3.0).sin());
                let ph = 2.0 * std::f64::consts::PI * pitch * (self.t as f64) / 8000.0;
                let mut v = 0.0;
                for h in 1..=12 {
                    v += (h as f64 * ph).sin() / (h as f64).sqrt();
                }
                let s = 2500.0 * env * v + self.noise();
                self.push(s);
            }
            self
        }

        fn tone(&mut self, hz: f64, ms: u64) -> &mut Self {
            for _ in 0..ms * 8 {
                let ph = 2.0 * std::f64::consts::PI * hz * (self.t as f64) / 8000.0;
                let s = 8000.0 * ph.sin() + self.noise();
                self.push(s);
            }
            self
        }

        fn push(&mut self, s: f64) {
            self.out.push(s.clamp(-32768.0, 32767.0) as i16);
            self.t += 1;
        }
    }

    fn run(audio: &[i16], p: AmdParams) -> (Option<AmdVerdict>, Vec<Duration>) {
        let mut amd = Amd::new(p);
        let mut verdict = None;
        let mut beeps = Vec::new();
        for f in audio.chunks(FRAME) {
            amd.handle_frame(f);
            while let Some(e) = amd.poll_event() {
                match e {
                    AmdEvent::Verdict(v) => {
                        assert!(verdict.is_none(), "two verdicts");
                        verdict = Some(v);
                    }
                    AmdEvent::Beep { at } => beeps.push(at),
                }
            }
        }
        (verdict, beeps)
    }

    fn ms(d: Duration) -> u128 {
        d.as_millis()
    }

    #[test]
    fn short_hello_then_silence_is_human() {
        for seed in 0..5 {
            let mut g = Gen::new(seed);
            g.silence(400).word(450).silence(3000);
            let (v, beeps) = run(&g.out, AmdParams::default());
            let v = v.unwrap();
            assert_eq!(v.outcome, AmdOutcome::Human, "seed {seed}: {v:?}");
            assert_eq!(v.reason, AmdReason::SilenceAfterGreeting);
            assert_eq!(v.words, 1);
            // Decided 0.8 s after the word ended, not at the end of the audio.
            assert!((1600..=1760).contains(&ms(v.at)), "{v:?}");
            assert!(beeps.is_empty());
        }
        // Two short words ("yes, hello?") are still a person.
        let mut g = Gen::new(9);
        g.silence(300)
            .word(250)
            .silence(150)
            .word(400)
            .silence(2000);
        let v = run(&g.out, AmdParams::default()).0.unwrap();
        assert_eq!((v.outcome, v.words), (AmdOutcome::Human, 2), "{v:?}");
    }

    #[test]
    fn long_greeting_then_beep_is_machine_and_the_beep_is_reported() {
        for seed in 0..5 {
            let mut g = Gen::new(seed);
            // "Hi, you've reached ... leave a message" : long words, short pauses.
            g.silence(300);
            for _ in 0..3 {
                g.word(700).silence(40);
            }
            g.silence(500).tone(1000.0, 400).silence(1000);
            let (v, beeps) = run(&g.out, AmdParams::default());
            let v = v.unwrap();
            assert_eq!(v.outcome, AmdOutcome::Machine, "seed {seed}: {v:?}");
            assert_eq!(v.reason, AmdReason::LongGreeting);
            // Decided as soon as the greeting passed 1.5 s.
            assert!((1800..=1900).contains(&ms(v.at)), "{v:?}");
            assert_eq!(beeps.len(), 1, "{beeps:?}");
            // The tone runs from 3.02 s to 3.42 s.
            assert!((3420..=3460).contains(&ms(beeps[0])), "{beeps:?}");
        }
    }

    #[test]
    fn many_short_words_are_a_machine() {
        let mut g = Gen::new(3);
        g.silence(200);
        for _ in 0..5 {
            g.word(180).silence(120);
        }
        let v = run(&g.out, AmdParams::default()).0.unwrap();
        assert_eq!(
            (v.outcome, v.reason),
            (AmdOutcome::Machine, AmdReason::TooManyWords),
            "{v:?}"
        );
        assert_eq!(v.words, 4);
    }

    #[test]
    fn a_beep_alone_is_a_machine() {
        let mut g = Gen::new(4);
        g.silence(500).tone(800.0, 300).silence(1000);
        let (v, beeps) = run(&g.out, AmdParams::default());
        let v = v.unwrap();
        assert_eq!(
            (v.outcome, v.reason),
            (AmdOutcome::Machine, AmdReason::Beep),
            "{v:?}"
        );
        assert_eq!(beeps.len(), 1);
    }

    #[test]
    fn silence_is_unknown_after_the_initial_silence() {
        let mut g = Gen::new(5);
        g.silence(6000);
        let v = run(&g.out, AmdParams::default()).0.unwrap();
        assert_eq!(
            (v.outcome, v.reason),
            (AmdOutcome::Unknown, AmdReason::InitialSilence)
        );
        assert_eq!(ms(v.at), 2500);
        // Tunable: a longer initial silence waits longer.
        let p = AmdParams {
            initial_silence: Duration::from_millis(4000),
            ..AmdParams::default()
        };
        assert_eq!(ms(run(&g.out, p).0.unwrap().at), 4000);
    }

    #[test]
    fn undecided_audio_ends_unknown_at_the_total_time() {
        // Words that keep the greeting short but never leave enough silence.
        let p = AmdParams {
            greeting: Duration::from_secs(10),
            max_words: 100,
            ..AmdParams::default()
        };
        let mut g = Gen::new(6);
        for _ in 0..20 {
            g.word(200).silence(300);
        }
        let v = run(&g.out, p).0.unwrap();
        assert_eq!(
            (v.outcome, v.reason),
            (AmdOutcome::Unknown, AmdReason::MaxTime),
            "{v:?}"
        );
        assert_eq!(ms(v.at), 5000);
    }

    #[test]
    fn speech_is_not_a_tone() {
        let mut g = Gen::new(7);
        g.word(2000);
        let frames = g.out.chunks(FRAME).filter(|f| {
            let e: f64 = f.iter().map(|&s| (s as f64).powi(2)).sum();
            tone_bin(f, e).is_some()
        });
        assert!(frames.count() <= 2);
        let mut g = Gen::new(8);
        g.tone(1400.0, 100);
        let f = &g.out[..FRAME];
        let e: f64 = f.iter().map(|&s| (s as f64).powi(2)).sum();
        assert_eq!(tone_bin(f, e), Some(28));
        assert_eq!(tone_bin(&[0; FRAME], 0.0), None);
    }
}
