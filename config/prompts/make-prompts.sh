#!/bin/sh
# Rebuilds caruso's default prompts: 8 kHz, 16-bit, mono PCM WAV.
# Needs Debian's espeak-ng and sox:  apt-get install -y espeak-ng sox
set -eu
cd "$(dirname "$0")"

say() { # say <file> <text> [words per minute]
    tmp="$(mktemp --suffix=.wav)"
    espeak-ng -v en-us -s "${3:-165}" -g 1 -w "$tmp" "$2"
    # Resample to 8 kHz mono 16-bit, trim leading/trailing silence, normalise to -3 dBFS.
    sox "$tmp" -r 8000 -c 1 -b 16 -e signed-integer "$1" \
        silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse norm -3 pad 0.1 0.1
    rm -f "$tmp"
}

# Kept near 2.5 s: the SIPp end-to-end tests count its packets.
say welcome.wav "Welcome to caruso. Thank you for calling. Goodbye." 230
say goodbye.wav "Goodbye."
say invalid.wav "Sorry, that is not a valid choice."
say please-hold.wav "Please hold. Your call is important to us."
# IVR demo flow (config/caruso.toml, number 100).
say main-menu.wav "For sales, press 1. For support, press 2. To leave a message, press 3. For voicemail, press 9."
say no-input.wav "Sorry, I did not hear your choice."
say transfer-unavailable.wav "Sorry, nobody can take your call right now. Goodbye."
for d in 0 1 2 3 4 5 6 7 8 9; do
    case $d in
        0) w=zero ;; 1) w=one ;; 2) w=two ;; 3) w=three ;; 4) w=four ;;
        5) w=five ;; 6) w=six ;; 7) w=seven ;; 8) w=eight ;; 9) w=nine ;;
    esac
    say "$d.wav" "$w"
done
sox -n -r 8000 -c 1 -b 16 -e signed-integer beep.wav synth 0.3 sine 1000 vol 0.5 fade 0.01 0.3 0.01

for f in *.wav; do
    printf '%-16s %s s\n' "$f" "$(soxi -D "$f")"
done
