#!/usr/bin/env python3
"""Writes the pcaps of the dialer's called contacts (server/tests/originate.rs), with the
stream builder of mkpcap.py (same format, own timestamp bases and SSRCs):

- amd_hello.pcap: 40 ms of silence, a 400 ms "hello" (seeded noise), 2.6 s of PCMU
  silence (AMD: human, and the agent comes on), then 2 s of talk (other seeded noise,
  what the agent hears) and 500 ms of silence;
- amd_machine.pcap: a 3.6 s greeting (six 500 ms words, 100 ms apart), 300 ms of
  silence, a 500 ms 1 kHz beep, then 1.5 s of silence: an answering machine (AMD:
  machine by the long greeting, then the beep).

Usage: mkpcap_amd.py [DIR]   (default tests/pcap)
"""

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mkpcap  # noqa: E402

RATE = mkpcap.RATE


def silence(ms):
    return [0] * (RATE * ms // 1000)


def beep(ms, hz=1000.0, amp=8000.0):
    return [int(round(amp * math.sin(2 * math.pi * hz * i / RATE))) for i in range(RATE * ms // 1000)]


def hello():
    s = mkpcap.Stream(mkpcap._base(24), *mkpcap._ids(24))
    s.silence(mkpcap.LEAD_MS, "silence")
    s.audio(mkpcap.noise(31, 0.4), first_marker=True)
    s.silence(2600, "silence")
    s.audio(mkpcap.noise(33, 2.0))
    s.silence(500, "silence")
    return s


def machine():
    s = mkpcap.Stream(mkpcap._base(25), *mkpcap._ids(25))
    s.silence(mkpcap.LEAD_MS, "silence")
    greeting = []
    for w in range(6):
        greeting += mkpcap.noise(40 + w, 0.5) + silence(100)
    s.audio(greeting + silence(300) + beep(500) + silence(1500), first_marker=True)
    return s


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pcap")
    for name, build in (("amd_hello.pcap", hello), ("amd_machine.pcap", machine)):
        s = build()
        s.write(os.path.join(out, name))
        print(f"{name:20s} {len(s.packets):5d} packets {s.packets[-1][0] / 1e6:6.2f} s")


if __name__ == "__main__":
    main()
