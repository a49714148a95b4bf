//! WAV prompts: 8 kHz 16-bit mono PCM, shared read-only between calls.
//!
//! Contract: [`Prompt::load`] reads a WAV file with `hound` (blocking: call it at start or
//! from `spawn_blocking`). 16-bit integer mono files at 8 kHz load as they are; 16-bit
//! mono at another rate is resampled to 8 kHz by linear interpolation; anything else is a
//! [`WavError::Format`] naming the file, what was found and what is expected. A `Prompt`
//! is an `Arc`, so cloning it for each call costs one reference count.
//!
//! ```
//! use caruso::media::wav::Prompt;
//! let p = Prompt::from_samples(vec![0i16; 8000]);
//! assert_eq!(p.duration(), std::time::Duration::from_secs(1));
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The sample rate prompts are stored and played at.
pub const PROMPT_RATE: u32 = 8000;

/// Errors loading a prompt.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// The file could not be opened or is not a readable WAV file.
    #[error("cannot read WAV prompt {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What hound reported.
        #[source]
        source: hound::Error,
    },
    /// The file is WAV but not 16-bit integer mono PCM.
    #[error("WAV prompt {path}: found {found}, expected 16-bit integer PCM, mono, 8000 Hz")]
    Format {
        /// The file.
        path: PathBuf,
        /// What the header says (`"2 channels, 16-bit Int, 44100 Hz"`).
        found: String,
    },
    /// The file holds no samples.
    #[error("WAV prompt {path} is empty")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Audio to play: 8 kHz 16-bit mono samples behind an `Arc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    samples: Arc<[i16]>,
}

impl Prompt {
    /// Loads a WAV file (see the module doc for what is accepted).
    pub fn load(path: impl AsRef<Path>) -> Result<Prompt, WavError> {
        let path = path.as_ref();
        let read_err = |source| WavError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut reader = hound::WavReader::open(path).map_err(read_err)?;
        let spec = reader.spec();
        if spec.channels != 1
            || spec.bits_per_sample != 16
            || spec.sample_format != hound::SampleFormat::Int
            || spec.sample_rate == 0
        {
            return Err(WavError::Format {
                path: path.to_path_buf(),
                found: format!(
                    "{} channel(s), {}-bit {:?}, {} Hz",
                    spec.channels, spec.bits_per_sample, spec.sample_format, spec.sample_rate
                ),
            });
        }
        let samples: Vec<i16> = reader
            .samples::<i16>()
            .collect::<Result<_, _>>()
            .map_err(read_err)?;
        if samples.is_empty() {
            return Err(WavError::Empty {
                path: path.to_path_buf(),
            });
        }
        let samples = if spec.sample_rate == PROMPT_RATE {
            samples
        } else {
            resample_linear(&samples, spec.sample_rate, PROMPT_RATE)
        };
        Ok(Prompt::from_samples(samples))
    }

    /// A prompt from 8 kHz samples already in memory.
    pub fn from_samples(samples: impl Into<Arc<[i16]>>) -> Prompt {
        Prompt {
            samples: samples.into(),
        }
    }

    /// The samples (8 kHz).
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether the prompt holds no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Playing time at 8 kHz.
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.samples.len() as u64 * 1_000_000 / u64::from(PROMPT_RATE))
    }
}

/// Resamples `input` from `from` Hz to `to` Hz by linear interpolation.
pub fn resample_linear(input: &[i16], from: u32, to: u32) -> Vec<i16> {
    if input.is_empty() || from == 0 || to == 0 {
        return Vec::new();
    }
    let out_len = (input.len() as u64 * u64::from(to) / u64::from(from)).max(1) as usize;
    let mut out = Vec::with_capacity(out_len);
    let last = input.len() - 1;
    for i in 0..out_len {
        // Position in the input in 1/to units: i * from / to.
        let num = i as u64 * u64::from(from);
        let idx = (num / u64::from(to)) as usize;
        let frac = (num % u64::from(to)) as i64;
        let a = i64::from(input[idx.min(last)]);
        let b = i64::from(input[(idx + 1).min(last)]);
        out.push((a + (b - a) * frac / i64::from(to)) as i16);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(name: &str, spec: hound::WavSpec, n: usize) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("caruso-wav-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for i in 0..n {
            for _ in 0..spec.channels {
                if spec.bits_per_sample == 16 {
                    w.write_sample((i as i16).wrapping_mul(10)).unwrap();
                } else {
                    w.write_sample(i as i8).unwrap();
                }
            }
        }
        w.finalize().unwrap();
        path
    }

    fn spec(rate: u32, ch: u16, bits: u16) -> hound::WavSpec {
        hound::WavSpec {
            channels: ch,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: hound::SampleFormat::Int,
        }
    }

    #[test]
    fn loads_8k_mono_16bit() {
        let p = Prompt::load(write_wav("ok.wav", spec(8000, 1, 16), 1600)).unwrap();
        assert_eq!(p.len(), 1600);
        assert_eq!(p.samples()[3], 30);
        assert_eq!(p.duration(), Duration::from_millis(200));
    }

    #[test]
    fn resamples_16k_mono() {
        let p = Prompt::load(write_wav("16k.wav", spec(16000, 1, 16), 1600)).unwrap();
        assert_eq!(p.len(), 800);
        assert_eq!(p.samples()[5], 100); // every second input sample
    }

    #[test]
    fn rejects_stereo_and_8bit_naming_file_and_format() {
        let path = write_wav("stereo.wav", spec(8000, 2, 16), 10);
        let e = Prompt::load(&path).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, WavError::Format { .. }));
        assert!(
            msg.contains("stereo.wav") && msg.contains("2 channel"),
            "{msg}"
        );
        let e = Prompt::load(write_wav("8bit.wav", spec(8000, 1, 8), 10)).unwrap_err();
        assert!(e.to_string().contains("8-bit"), "{e}");
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let e = Prompt::load("/nonexistent/caruso.wav").unwrap_err();
        assert!(matches!(e, WavError::Read { .. }));
        assert!(e.to_string().contains("/nonexistent/caruso.wav"));
    }

    #[test]
    fn linear_interpolation_upsamples() {
        assert_eq!(resample_linear(&[0, 100], 4000, 8000), [0, 50, 100, 100]);
        assert!(resample_linear(&[], 4000, 8000).is_empty());
    }

    #[test]
    fn shipped_prompts_load_and_welcome_is_short() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/prompts");
        for name in [
            "welcome",
            "goodbye",
            "beep",
            "invalid",
            "please-hold",
            "0",
            "9",
        ] {
            let p = Prompt::load(dir.join(format!("{name}.wav"))).unwrap();
            assert!(p.duration() < Duration::from_secs(4), "{name}");
        }
        let w = Prompt::load(dir.join("welcome.wav")).unwrap();
        assert!(w.duration() >= Duration::from_secs(2) && w.duration() <= Duration::from_secs(3));
        let beep = Prompt::load(dir.join("beep.wav")).unwrap();
        assert_eq!(beep.len(), 2400);
    }
}
