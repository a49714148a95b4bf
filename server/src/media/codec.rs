//! G.711 (ITU-T, 1988) µ-law and A-law, written for caruso.
//!
//! Contract: 16-bit linear PCM in, one 8-bit code per sample out, and back. Decoding is a
//! lookup in a 256-entry `const` table; encoding is a few integer operations with no
//! data-dependent loop. Both laws follow the usual 16-bit scaling: µ-law works on the
//! 14-bit magnitude (`sample >> 2`), A-law on the 13-bit one (`sample >> 3`).
//!
//! ```
//! use caruso::media::codec::{ulaw_decode, ulaw_encode, Codec};
//! assert_eq!(ulaw_decode(0xFF), 0);
//! assert_eq!(ulaw_encode(0), 0xFF);
//! assert_eq!(Codec::Pcma.payload_type(), 8);
//! ```

/// µ-law bias added to the magnitude before segment search (33 in 14-bit units, ×4).
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude µ-law can represent before clipping (16-bit scale).
const ULAW_CLIP: i32 = 32635;

/// A G.711 law with its RTP static payload type (RFC 3551).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, RTP payload type 0, `PCMU/8000`.
    Pcmu,
    /// G.711 A-law, RTP payload type 8, `PCMA/8000`.
    Pcma,
}

impl Codec {
    /// The static RTP payload type (0 for PCMU, 8 for PCMA).
    pub const fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// RTP clock rate in Hz (8000 for both laws).
    pub const fn clock_rate(self) -> u32 {
        8000
    }

    /// The SDP encoding name (`PCMU` or `PCMA`).
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The codec of a static payload type, if it is one of ours.
    pub const fn from_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// The codec named by an SDP encoding name (case-insensitive), if it is one of ours.
    pub fn from_encoding_name(name: &str) -> Option<Codec> {
        if name.eq_ignore_ascii_case("PCMU") {
            Some(Codec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some(Codec::Pcma)
        } else {
            None
        }
    }

    /// Encodes one sample.
    #[inline]
    pub fn encode(self, s: i16) -> u8 {
        match self {
            Codec::Pcmu => ulaw_encode(s),
            Codec::Pcma => alaw_encode(s),
        }
    }

    /// Decodes one code.
    #[inline]
    pub fn decode(self, c: u8) -> i16 {
        match self {
            Codec::Pcmu => ulaw_decode(c),
            Codec::Pcma => alaw_decode(c),
        }
    }
}

const fn ulaw_decode_const(code: u8) -> i16 {
    let u = !code;
    let exp = ((u >> 4) & 0x07) as i32;
    let mant = (u & 0x0F) as i32;
    let mag = (((mant << 3) + ULAW_BIAS) << exp) - ULAW_BIAS;
    if u & 0x80 != 0 {
        -mag as i16
    } else {
        mag as i16
    }
}

const fn alaw_decode_const(code: u8) -> i16 {
    let t = code ^ 0x55;
    let exp = ((t >> 4) & 0x07) as i32;
    let mant = (t & 0x0F) as i32;
    let mag = if exp == 0 {
        (mant << 4) + 8
    } else {
        ((mant << 4) + 0x108) << (exp - 1)
    };
    // In A-law a set sign bit means positive.
    if t & 0x80 != 0 {
        mag as i16
    } else {
        -mag as i16
    }
}

const fn build_table(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw {
            alaw_decode_const(i as u8)
        } else {
            ulaw_decode_const(i as u8)
        };
        i += 1;
    }
    t
}

/// µ-law code -> linear sample.
static ULAW_TABLE: [i16; 256] = build_table(false);
/// A-law code -> linear sample.
static ALAW_TABLE: [i16; 256] = build_table(true);

/// Encodes one 16-bit linear sample to a µ-law code.
#[inline]
pub fn ulaw_encode(s: i16) -> u8 {
    let s = s as i32;
    let neg = s >> 31; // -1 for negative samples, else 0
    let sign = (neg as u8) & 0x80;
    let mag = s.abs().min(ULAW_CLIP) + ULAW_BIAS; // 132..=32767
                                                  // Highest set bit is 7..=14 -> segment 0..=7.
    let exp = 24 - mag.leading_zeros() as i32;
    let mant = ((mag >> (exp + 3)) & 0x0F) as u8;
    !(sign | ((exp as u8) << 4) | mant)
}

/// Decodes a µ-law code to a 16-bit linear sample (0xFF and 0x7F both give 0).
#[inline]
pub fn ulaw_decode(c: u8) -> i16 {
    ULAW_TABLE[c as usize]
}

/// Encodes one 16-bit linear sample to an A-law code (even bits inverted, 0x55).
#[inline]
pub fn alaw_encode(s: i16) -> u8 {
    let s = s as i32;
    let neg = s >> 31; // -1 for negative samples, else 0
                       // Negative values use one's complement (-s - 1) so the decision levels are symmetric;
                       // a set sign bit (after the 0x55 inversion) means positive.
    let mask = 0xD5u8 ^ ((neg as u8) & 0x80);
    let mag = (s ^ neg) >> 3; // 0..=4095
    let seg = 27 - (mag | 0x10).leading_zeros() as i32; // 0..=7
    let shift = seg + i32::from(seg == 0);
    let mant = ((mag >> shift) & 0x0F) as u8;
    (((seg as u8) << 4) | mant) ^ mask
}

/// Decodes an A-law code to a 16-bit linear sample.
#[inline]
pub fn alaw_decode(c: u8) -> i16 {
    ALAW_TABLE[c as usize]
}

/// Every 16-bit sample's code, one table per law (64 KiB each, built once from
/// [`ulaw_encode`] / [`alaw_encode`], so identical to them by construction): the media
/// tick encodes a 160-sample frame with 160 lookups.
type EncodeTable = Box<[u8; 65536]>;

fn build_encode_table(encode: fn(i16) -> u8) -> EncodeTable {
    let mut t = Box::new([0u8; 65536]);
    for (i, code) in t.iter_mut().enumerate() {
        *code = encode(i as u16 as i16);
    }
    t
}

static ULAW_ENCODE: std::sync::LazyLock<EncodeTable> =
    std::sync::LazyLock::new(|| build_encode_table(ulaw_encode));
static ALAW_ENCODE: std::sync::LazyLock<EncodeTable> =
    std::sync::LazyLock::new(|| build_encode_table(alaw_encode));

/// Encodes `pcm` into `out` with `codec`; returns the number of codes written
/// (`min(pcm.len(), out.len())`).
pub fn encode_into(codec: Codec, pcm: &[i16], out: &mut [u8]) -> usize {
    let n = pcm.len().min(out.len());
    let table: &[u8; 65536] = match codec {
        Codec::Pcmu => &ULAW_ENCODE,
        Codec::Pcma => &ALAW_ENCODE,
    };
    for (o, s) in out[..n].iter_mut().zip(&pcm[..n]) {
        *o = table[usize::from(*s as u16)];
    }
    n
}

/// Decodes `codes` into `out` with `codec`; returns the number of samples written
/// (`min(codes.len(), out.len())`).
pub fn decode_into(codec: Codec, codes: &[u8], out: &mut [i16]) -> usize {
    let n = codes.len().min(out.len());
    let table = match codec {
        Codec::Pcmu => &ULAW_TABLE,
        Codec::Pcma => &ALAW_TABLE,
    };
    for (o, c) in out[..n].iter_mut().zip(&codes[..n]) {
        *o = table[*c as usize];
    }
    n
}

/// The code that decodes to (near) silence: 0xFF for µ-law, 0xD5 for A-law.
pub const fn silence_code(codec: Codec) -> u8 {
    match codec {
        Codec::Pcmu => 0xFF,
        Codec::Pcma => 0xD5,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn table_encoder_matches_the_formula_for_every_sample() {
        let all: Vec<i16> = (i16::MIN..=i16::MAX).collect();
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut out = vec![0u8; all.len()];
            assert_eq!(encode_into(codec, &all, &mut out), all.len());
            for (s, c) in all.iter().zip(&out) {
                assert_eq!(*c, codec.encode(*s), "{codec:?} sample {s}");
            }
        }
    }
    use super::*;

    /// G.711 Table 2a (µ-law), written from the standard: segment `s` (0..7) and
    /// quantisation interval `q` (0..15) decode to the 14-bit magnitude
    /// `(2q + 33) * 2^s - 33`; the character on the wire is the complement of
    /// `sign | s<<4 | q` with sign bit 1 meaning positive after inversion (i.e. bit 7
    /// of the transmitted octet is 1 for positive values). 16-bit scale = 14-bit × 4.
    fn ulaw_reference(code: u8) -> i16 {
        let inv = code ^ 0xFF;
        let negative = inv & 0x80 != 0;
        let s = u32::from((inv >> 4) & 7);
        let q = i32::from(inv & 0x0F);
        let y14 = (2 * q + 33) * (1 << s) - 33;
        let y = y14 * 4;
        (if negative { -y } else { y }) as i16
    }

    /// G.711 Table 1a (A-law), written from the standard: segment 0 decodes to the
    /// 12-bit magnitude `2q + 1`, segment `s >= 1` to `(2q + 33) * 2^(s-1)`; the even
    /// bits of the octet are inverted on the wire (XOR 0x55) and bit 7 = 1 is positive.
    /// 16-bit scale = 12-bit × 8.
    fn alaw_reference(code: u8) -> i16 {
        let t = code ^ 0x55;
        let positive = t & 0x80 != 0;
        let s = u32::from((t >> 4) & 7);
        let q = i32::from(t & 0x0F);
        let y12 = if s == 0 {
            2 * q + 1
        } else {
            (2 * q + 33) * (1 << (s - 1))
        };
        let y = y12 * 8;
        (if positive { y } else { -y }) as i16
    }

    #[test]
    fn ulaw_decode_matches_g711_table_for_all_codes() {
        for c in 0..=255u8 {
            assert_eq!(ulaw_decode(c), ulaw_reference(c), "code {c:#04x}");
        }
    }

    #[test]
    fn alaw_decode_matches_g711_table_for_all_codes() {
        for c in 0..=255u8 {
            assert_eq!(alaw_decode(c), alaw_reference(c), "code {c:#04x}");
        }
    }

    #[test]
    fn known_points() {
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        assert_eq!(silence_code(Codec::Pcmu), ulaw_encode(0));
        assert_eq!(silence_code(Codec::Pcma), alaw_encode(0));
    }

    #[test]
    fn encode_of_decoded_value_gives_the_same_code() {
        for c in 0..=255u8 {
            let expect_u = if c == 0x7F { 0xFF } else { c }; // both zeros encode to +0
            assert_eq!(ulaw_encode(ulaw_decode(c)), expect_u, "ulaw {c:#04x}");
            assert_eq!(alaw_encode(alaw_decode(c)), c, "alaw {c:#04x}");
        }
    }

    #[test]
    fn round_trip_error_is_within_half_a_quantisation_step() {
        for x in i16::MIN..=i16::MAX {
            let cu = ulaw_encode(x);
            let yu = ulaw_decode(cu);
            let seg = u32::from(((!cu) >> 4) & 7);
            let err = (i32::from(x) - i32::from(yu)).abs();
            if i32::from(x).abs() <= 32124 {
                assert!(err <= 4 << seg, "ulaw x={x} y={yu} err={err}");
            } else {
                assert!(err <= 32768 - 32124, "ulaw clip x={x}");
            }
            let ca = alaw_encode(x);
            let ya = alaw_decode(ca);
            let seg = u32::from(((ca ^ 0x55) >> 4) & 7);
            let half = if seg <= 1 { 8 } else { 8 << (seg - 1) };
            let err = (i32::from(x) - i32::from(ya)).abs();
            assert!(err <= half + 1, "alaw x={x} y={ya} err={err}");
        }
    }

    #[test]
    fn encoding_is_monotonic() {
        let mut prev_u = i16::MIN;
        let mut prev_a = i16::MIN;
        for x in i16::MIN..=i16::MAX {
            let yu = ulaw_decode(ulaw_encode(x));
            let ya = alaw_decode(alaw_encode(x));
            assert!(yu >= prev_u && ya >= prev_a, "x={x}");
            prev_u = yu;
            prev_a = ya;
        }
    }

    #[test]
    fn slice_versions_match_scalar_and_respect_lengths() {
        let pcm: Vec<i16> = (0..160)
            .map(|i| ((i * 409) % 65536 - 32768) as i16)
            .collect();
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut enc = [0u8; 160];
            assert_eq!(encode_into(codec, &pcm, &mut enc), 160);
            for (s, c) in pcm.iter().zip(enc.iter()) {
                assert_eq!(codec.encode(*s), *c);
            }
            let mut dec = [0i16; 100];
            assert_eq!(decode_into(codec, &enc, &mut dec), 100);
            for (c, s) in enc.iter().zip(dec.iter()) {
                assert_eq!(codec.decode(*c), *s);
            }
        }
    }

    #[test]
    fn codec_metadata() {
        assert_eq!(Codec::Pcmu.payload_type(), 0);
        assert_eq!(Codec::Pcma.payload_type(), 8);
        assert_eq!(Codec::from_payload_type(8), Some(Codec::Pcma));
        assert_eq!(Codec::from_payload_type(18), None);
        assert_eq!(Codec::from_encoding_name("pcmu"), Some(Codec::Pcmu));
        assert_eq!(Codec::Pcmu.clock_rate(), 8000);
    }
}
