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

# Voicemail (vm-*): deposit ...
say vm-person-at-extension.wav "The person at extension"
say vm-not-available.wav "is not available. Please leave a message after the tone, then press pound."
say vm-busy.wav "is on another call. Please leave a message after the tone, then press pound."
say vm-review.wav "To send, press 1. To listen, press 2. To record again, press 3." 180
say vm-saved.wav "Your message has been saved."
say vm-not-saved.wav "Sorry, that could not be saved."
say vm-too-short.wav "Sorry, that recording was too short."
say vm-mailbox-full.wav "Sorry, this mailbox is full."
# ... and retrieval by phone.
say vm-enter-mailbox.wav "Please enter your mailbox number, then press pound."
say vm-enter-pin.wav "Please enter your pin, then press pound."
say vm-login-incorrect.wav "Login incorrect."
say vm-you-have.wav "You have"
say vm-new-messages.wav "new messages"
say vm-and.wav "and"
say vm-saved-messages.wav "saved messages."
say vm-main-menu.wav "New messages, 1. Saved messages, 2. Mailbox options, 0. Exit, star." 180
say vm-no-messages.wav "There are no messages."
say vm-message.wav "Message"
say vm-message-menu.wav "Repeat 5. Next 6. Previous 4. Save 9. Delete 7. Call back 3. Menu, star." 190
say vm-no-more-messages.wav "There are no more messages."
say vm-no-previous.wav "This is the first message."
say vm-message-saved.wav "Message saved."
say vm-message-deleted.wav "Message deleted."
say vm-options-menu.wav "Unavailable greeting, 1. Busy greeting, 2. Change pin, 4. Back, star." 180
say vm-record-greeting.wav "Record your greeting after the tone, then press pound."
say vm-greeting-saved.wav "Your greeting has been saved."
say vm-enter-new-pin.wav "Enter a new pin of 4 to 8 digits, then press pound."
say vm-reenter-pin.wav "Enter the new pin again, then press pound."
say vm-pin-changed.wav "Your pin has been changed."
say vm-pin-mismatch.wav "The pins do not match. Your pin was not changed."
say vm-pin-invalid.wav "A pin has 4 to 8 digits. Your pin was not changed."

# Outbound campaigns (config/caruso.toml [[campaigns]]): what an abandoned call hears (the
# rules want the company's name and a number to call back), and the message left on an
# answering machine after its beep.
say campaign-safe-harbor.wav "This is caruso demo calling. We are sorry, all our agents are busy. Please call us back on 0 2 2 1 2 3 4 5 6 7. Goodbye."
say campaign-machine-message.wav "Hello, this is caruso demo. Please call us back on 0 2 2 1 2 3 4 5 6 7. Thank you."

for f in *.wav; do
    printf '%-16s %s s\n' "$f" "$(soxi -D "$f")"
done

# Music on hold for the ACD queues: a soft plucked arpeggio, 7 s, looped by the server.
sox -n -r 8000 -c 1 -b 16 -e signed-integer moh.wav synth 1 pluck C4 synth 1 pluck E4 : \
    synth 1 pluck G4 : synth 1 pluck E4 : synth 1 pluck F4 : synth 1 pluck A4 : \
    synth 1 pluck C5 : synth 1 pluck A4 vol 0.4

# ACD queue announcements (position and expected wait; numbers are said with 0-9).
say queue-position.wav "You are caller number"
say queue-wait.wav "Your expected waiting time is about"
say queue-minutes.wav "minutes"
