#!/usr/bin/env python3
"""Writes the pcap files that SIPp plays into calls (`<exec play_pcap_audio="..."/>`).

Standard library only. Each file is one RTP stream (one SSRC, one sequence of sequence
numbers, one 8 kHz clock) in classic pcap format (little-endian, version 2.4, link type 1
= Ethernet), IPv4/UDP 127.0.0.1:6000 -> 127.0.0.1:6000, like Debian sip-tester's
dtmf_2833_*.pcap. SIPp rewrites the addresses and ports (the source becomes its media
port, `-mp`, the destination the RTP address of the server's SDP answer) but keeps the
RTP headers and the packet timing as they are, so:

- timestamps must grow from one pcap to the next within a call: the server keys an
  RFC 4733 event by its timestamp and ignores events older than the last one; every
  file therefore gets its own --ts-base (see `ALL` below);
- the server latches onto the source of the RTP it receives (symmetric RTP): that is
  SIPp's media port, so scenarios put [media_port] in their SDP.

Usage:
  mkpcap.py all [DIR]                   regenerate every committed file (tests/pcap/)
  mkpcap.py digits OUT DIGITS [opts]    RFC 4733 telephone-events (payload type 101)
  mkpcap.py audio OUT [--wav IN] [opts] PCMU (payload type 0) from a WAV or the known audio
  mkpcap.py inband OUT DIGITS [opts]    DTMF tones inside PCMU (callers without 101)
  mkpcap.py known-wav OUT [--secs S]    the known audio as an 8 kHz 16-bit mono WAV

Common options: --ts-base N, --ssrc N, --seq N, --lead-ms MS (PCMU silence first,
default 40), --background silence|none (PCMU silence packets between digits), --gap-ms MS
(between digits), --event-ms MS (event length), --then DIGITS (RFC 4733 digits after
the audio).
"""

import argparse
import math
import os
import struct
import sys
import wave

RATE = 8000
FRAME = 160  # samples per 20 ms packet
PT_PCMU = 0
PT_EVENT = 101
VOLUME = 10  # -10 dBm0, RFC 4733 §2.3.4
EVENT_CODES = {c: i for i, c in enumerate("0123456789*#ABCD")}
DTMF_FREQS = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}
# Every file starts with this much PCMU silence: the server's RFC 3550 A.1 source
# validation (probation) drops the first packet of each new SSRC, and every file is a
# new SSRC; the lead keeps the first digit's start packet and the first audio frame.
LEAD_MS = 40


# Timestamp base of the capture's wall clock (any fixed instant works for SIPp).
EPOCH = 1_800_000_000

# --------------------------------------------------------------------------------------
# G.711 µ-law (ITU-T G.711, bias 0x84, clip 32635), same law as caruso::media::codec
# --------------------------------------------------------------------------------------


def ulaw_encode(s):
    sign = 0x80 if s < 0 else 0
    mag = min(abs(int(s)), 32635) + 0x84
    exp = mag.bit_length() - 8  # 7..14 -> 0..7
    mant = (mag >> (exp + 3)) & 0x0F
    return ~(sign | (exp << 4) | mant) & 0xFF


def ulaw_decode(c):
    u = ~c & 0xFF
    exp = (u >> 4) & 0x07
    mant = u & 0x0F
    mag = (((mant << 3) + 0x84) << exp) - 0x84
    return -mag if u & 0x80 else mag


def alaw_encode(s):
    """G.711 A-law (ITU-T G.711; same law as caruso::media::codec)."""
    s = int(s)
    mask = 0xD5 if s >= 0 else 0x55
    mag = min(s if s >= 0 else -s - 1, 32767)
    if mag < 256:
        aval = (mag >> 4) & 0x0F
    else:
        seg = mag.bit_length() - 8
        aval = (seg << 4) | ((mag >> (seg + 3)) & 0x0F)
    return (aval ^ mask) & 0xFF


def noise(seed, secs):
    """Seeded pseudo-random noise (xorshift32, amplitude ~6000), recognisable in a stream."""
    x = (0x9E3779B9 ^ ((seed * 0x85EBCA6B) & 0xFFFFFFFF)) & 0xFFFFFFFF
    out = []
    for _ in range(int(round(secs * RATE))):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        v = x >> 16
        if v >= 32768:
            v -= 65536
        out.append(int(v / 5))
    return out


PT_PCMA = 8
SILENCE = bytes([0xFF]) * FRAME

# --------------------------------------------------------------------------------------
# Audio sources
# --------------------------------------------------------------------------------------


def known_audio(secs=3.0):
    """The voicemail test's known audio: repeated 3 s blocks of a 300->1500 Hz linear
    sweep (1.5 s) then 440 Hz + 660 Hz with a 4 Hz tremolo (1.5 s), amplitude ~8000,
    never silent (so no silence detector ends a recording), no DTMF frequency pair."""
    out = []
    n = int(round(secs * RATE))
    phase = 0.0
    for i in range(n):
        t = (i % (3 * RATE)) / RATE
        if t < 1.5:
            f = 300.0 + (1500.0 - 300.0) * t / 1.5
            phase += 2 * math.pi * f / RATE
            v = 8000.0 * math.sin(phase)
        else:
            u = t - 1.5
            env = 0.65 + 0.35 * math.sin(2 * math.pi * 4 * u)
            v = 4500.0 * env * (math.sin(2 * math.pi * 440 * u) + math.sin(2 * math.pi * 660 * u))
        out.append(int(round(v)))
    return out


def read_wav(path):
    with wave.open(path, "rb") as w:
        if w.getframerate() != RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
            sys.exit(f"{path}: need 8 kHz mono 16-bit PCM")
        data = w.readframes(w.getnframes())
    return list(struct.unpack(f"<{len(data) // 2}h", data))


def write_wav(path, samples):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(struct.pack(f"<{len(samples)}h", *samples))


def dtmf_tone(digit, ms, amp=5000):
    lo, hi = DTMF_FREQS[digit.upper()]
    n = RATE * ms // 1000
    return [int(round(amp * (math.sin(2 * math.pi * lo * i / RATE) + math.sin(2 * math.pi * hi * i / RATE))))
            for i in range(n)]


# --------------------------------------------------------------------------------------
# RTP stream -> pcap
# --------------------------------------------------------------------------------------


class Stream:
    """One RTP stream on one 8 kHz clock; `at` is the current sample position."""

    def __init__(self, ts_base, ssrc, seq):
        self.ts_base = ts_base
        self.ssrc = ssrc
        self.seq = seq
        self.at = 0  # samples since the start of the stream
        self.packets = []  # (send time in µs, rtp bytes)

    def _rtp(self, pt, marker, ts, payload):
        hdr = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, self.seq & 0xFFFF,
                          ts & 0xFFFFFFFF, self.ssrc)
        self.seq += 1
        return hdr + payload

    def send(self, at_samples, pt, marker, ts, payload):
        us = at_samples * 1_000_000 // RATE
        self.packets.append((us, self._rtp(pt, marker, ts, payload)))

    def audio(self, samples, first_marker=False, pt=PT_PCMU):
        """PCMU (or PCMA) packets of 20 ms, padded with silence to whole frames."""
        enc = alaw_encode if pt == PT_PCMA else ulaw_encode
        for k in range(0, len(samples), FRAME):
            frame = samples[k:k + FRAME]
            frame = frame + [0] * (FRAME - len(frame))
            payload = bytes(enc(s) for s in frame)
            self.send(self.at, pt, first_marker and k == 0, self.ts_base + self.at, payload)
            self.at += FRAME

    def silence(self, ms, background):
        n = RATE * ms // 1000
        if background == "silence":
            frames = (n + FRAME - 1) // FRAME
            for _ in range(frames):
                self.send(self.at, PT_PCMU, False, self.ts_base + self.at, SILENCE)
                self.at += FRAME
        else:
            self.at += n

    def event(self, digit, event_ms):
        """RFC 4733 §2.5: start packet (marker) and updates every 20 ms with a growing
        duration, then the end packet three times (E bit), all with the event's start
        timestamp. No audio packets during the event (§2.5.1.2 says the sender stops
        its audio while the event lasts)."""
        code = EVENT_CODES[digit.upper()]
        ts = self.ts_base + self.at
        steps = max(1, event_ms // 20)
        for k in range(steps):
            dur = (k + 1) * FRAME
            self.send(self.at + k * FRAME, PT_EVENT, k == 0, ts, struct.pack("!BBH", code, VOLUME, dur))
        end_dur = steps * FRAME
        for r in range(3):
            self.send(self.at + (steps + r) * FRAME, PT_EVENT, False, ts,
                      struct.pack("!BBH", code, 0x80 | VOLUME, end_dur))
        # The clock moves past the event (its duration plus the end retransmissions).
        self.at += (steps + 3) * FRAME

    def write(self, path):
        out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        ident = 0
        for us, rtp in self.packets:
            udp_len = 8 + len(rtp)
            ip_len = 20 + udp_len
            ident += 1
            ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, ident & 0xFFFF, 0, 64, 17, 0,
                                       bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])))
            ip[10:12] = struct.pack("!H", ip_checksum(ip))
            udp = struct.pack("!HHHH", 6000, 6000, udp_len, 0)  # SIPp recomputes the checksum
            eth = b"\x00" * 12 + b"\x08\x00"
            frame = eth + bytes(ip) + udp + rtp
            sec, usec = divmod(us, 1_000_000)
            out += struct.pack("<IIII", EPOCH + sec, usec, len(frame), len(frame))
            out += frame
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as f:
            f.write(out)


def ip_checksum(hdr):
    s = sum(struct.unpack(f"!{len(hdr) // 2}H", bytes(hdr)))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


# --------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------


def build_digits(digits, ts_base, ssrc=0x0C0FFEE1, seq=1000, lead_ms=LEAD_MS, gap_ms=400,
                 event_ms=100, background="none"):
    s = Stream(ts_base, ssrc, seq)
    s.silence(lead_ms, "silence")
    for i, d in enumerate(digits):
        if i:
            s.silence(gap_ms, background)
        s.event(d, event_ms)
    if background == "silence":
        s.silence(gap_ms, background)
    return s


def build_audio(samples, ts_base, ssrc=0x0C0FFEE2, seq=3000, lead_ms=LEAD_MS, then="",
                gap_ms=400, event_ms=100, pt=PT_PCMU):
    s = Stream(ts_base, ssrc, seq)
    if pt == PT_PCMA:
        s.audio([0] * (RATE * lead_ms // 1000), pt=PT_PCMA)
    else:
        s.silence(lead_ms, "silence")
    s.audio(samples, first_marker=True, pt=pt)
    for i, d in enumerate(then):
        if i:
            s.silence(gap_ms, "none")
        s.event(d, event_ms)
    return s


def build_inband(digits, ts_base, ssrc=0x0C0FFEE3, seq=5000, lead_ms=200 + LEAD_MS, gap_ms=400,
                 tone_ms=100):
    s = Stream(ts_base, ssrc, seq)
    audio = [0] * (RATE * lead_ms // 1000)
    for i, d in enumerate(digits):
        if i:
            audio += [0] * (RATE * gap_ms // 1000)
        audio += dtmf_tone(d, tone_ms)
    audio += [0] * (RATE * gap_ms // 1000)
    s.audio(audio, first_marker=True)
    return s


# The committed files (tests/pcap/). Timestamp bases grow in the order a scenario plays
# them (see the module doc); each base leaves room for 10 minutes of audio.
def _base(i):
    return 10_000_000 + i * 5_000_000


def _ids(i):
    """Each file its own SSRC and sequence numbers: the server treats a new SSRC as a
    new stream (and resets its RFC 4733 receiver), while a known SSRC whose sequence
    numbers jump back would be dropped as old packets."""
    return 0x0C0F_0000 + i, 1000 * (i + 1)


ALL = {
    # IVR: single digits (a file may be played once per call: see the module doc).
    "dtmf_1.pcap": lambda: build_digits("1", _base(0), *_ids(0)),
    "dtmf_2.pcap": lambda: build_digits("2", _base(1), *_ids(1)),
    "dtmf_3.pcap": lambda: build_digits("3", _base(2), *_ids(2)),
    "dtmf_4.pcap": lambda: build_digits("4", _base(3), *_ids(3)),
    "dtmf_5.pcap": lambda: build_digits("5", _base(4), *_ids(4)),
    "dtmf_6.pcap": lambda: build_digits("6", _base(5), *_ids(5)),
    "dtmf_7.pcap": lambda: build_digits("7", _base(6), *_ids(6)),
    "dtmf_8.pcap": lambda: build_digits("8", _base(7), *_ids(7)),
    "dtmf_9.pcap": lambda: build_digits("9", _base(8), *_ids(8)),
    "dtmf_0.pcap": lambda: build_digits("0", _base(9), *_ids(9)),
    "dtmf_star.pcap": lambda: build_digits("*", _base(10), *_ids(10)),
    "dtmf_pound.pcap": lambda: build_digits("#", _base(11), *_ids(11)),
    # Voicemail login: mailbox and PINs, each ended by #, PCMU silence between digits.
    "dtmf_200_pound.pcap": lambda: build_digits("200#", _base(12), *_ids(12), background="silence"),
    "dtmf_1234_pound.pcap": lambda: build_digits("1234#", _base(13), *_ids(13), background="silence"),
    "dtmf_bad_pin_1.pcap": lambda: build_digits("9999#", _base(14), *_ids(14), background="silence"),
    "dtmf_bad_pin_2.pcap": lambda: build_digits("8888#", _base(15), *_ids(15), background="silence"),
    "dtmf_bad_pin_3.pcap": lambda: build_digits("7777#", _base(16), *_ids(16), background="silence"),
    # Voicemail deposit: 40 ms of silence, 3.00 s of known audio, then # (RFC 4733, no
    # audio after it).
    "vm_known_3s.pcap": lambda: build_audio(known_audio(3.0), _base(17), *_ids(17), then="#"),
    # Crash test: 40 ms of silence, then 12 s of known audio and no end.
    "vm_long_12s.pcap": lambda: build_audio(known_audio(12.0), _base(18), *_ids(18)),
    # In-band DTMF for a caller without telephone-event: tones inside PCMU.
    "inband_1.pcap": lambda: build_inband("1", _base(19), *_ids(19)),
    "inband_2.pcap": lambda: build_inband("2", _base(20), *_ids(20)),
    # Bridging (tests/tests/bridge.rs): the called party's audio (the known audio, then
    # the digit 5 as RFC 4733) in PCMU, the same audio in PCMA, and the caller's audio
    # (seeded noise, recognisably different) in PCMU.
    "bridge_callee_pcmu.pcap": lambda: build_audio(known_audio(3.0), _base(21), *_ids(21), then="5"),
    "bridge_callee_pcma.pcap": lambda: build_audio(known_audio(3.0), _base(22), *_ids(22), pt=PT_PCMA),
    "bridge_caller_pcmu.pcap": lambda: build_audio(noise(11, 3.0), _base(23), *_ids(23)),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--ts-base", type=int, default=_base(40))
        p.add_argument("--ssrc", type=lambda v: int(v, 0), default=0x0C0FFEE9)
        p.add_argument("--seq", type=int, default=1)
        p.add_argument("--lead-ms", type=int, default=LEAD_MS)
        p.add_argument("--gap-ms", type=int, default=400)
        p.add_argument("--event-ms", type=int, default=100)

    p = sub.add_parser("all")
    p.add_argument("dir", nargs="?", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pcap"))
    p = sub.add_parser("digits")
    p.add_argument("out")
    p.add_argument("digits")
    p.add_argument("--background", choices=["silence", "none"], default="none")
    common(p)
    p = sub.add_parser("audio")
    p.add_argument("out")
    p.add_argument("--wav")
    p.add_argument("--secs", type=float, default=3.0)
    p.add_argument("--then", default="")
    common(p)
    p = sub.add_parser("inband")
    p.add_argument("out")
    p.add_argument("digits")
    common(p)
    p = sub.add_parser("known-wav")
    p.add_argument("out")
    p.add_argument("--secs", type=float, default=3.0)
    a = ap.parse_args()

    if a.cmd == "all":
        for name, build in ALL.items():
            path = os.path.join(a.dir, name)
            s = build()
            s.write(path)
            print(f"{name:20s} {len(s.packets):5d} packets {s.packets[-1][0] / 1e6:6.2f} s")
    elif a.cmd == "digits":
        build_digits(a.digits, a.ts_base, a.ssrc, a.seq, a.lead_ms, a.gap_ms, a.event_ms, a.background).write(a.out)
    elif a.cmd == "audio":
        samples = read_wav(a.wav) if a.wav else known_audio(a.secs)
        build_audio(samples, a.ts_base, a.ssrc, a.seq, a.lead_ms, a.then, a.gap_ms, a.event_ms).write(a.out)
    elif a.cmd == "inband":
        build_inband(a.digits, a.ts_base, a.ssrc, a.seq, a.lead_ms + 200, a.gap_ms, a.event_ms).write(a.out)
    elif a.cmd == "known-wav":
        write_wav(a.out, known_audio(a.secs))


if __name__ == "__main__":
    main()
