#!/usr/bin/env bash
# caruso SIPp load benchmark: calls per second with media, failure rate, server CPU and
# memory. Runs the release binary and SIPp inside a fresh network namespace that has only
# loopback, so no packet can leave the machine; every run is bounded (-m calls, -timeout).
#
#   bash benches/sipp/load.sh [rate_cps] [calls] [hold_ms]
#   defaults: 100 calls/s, 3000 calls, 3000 ms per call (~300 concurrent media calls)
#
# Prints one Markdown table row for the README's benchmark table.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$(pwd)
RATE=${1:-100}
CALLS=${2:-3000}
HOLD=${3:-3000}

command -v sipp >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq sip-tester >/dev/null; }
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
cargo build --release -q -p caruso
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/caruso

WORK=$(mktemp -d "${TMPDIR:-/tmp}/caruso-load.XXXXXX")
NS="caruso-load-$$"
cleanup() {
  ip netns pids "$NS" 2>/dev/null | xargs -r kill 2>/dev/null || true
  sleep 0.3
  ip netns delete "$NS" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up

# A 60 s prompt, so the caller (after HOLD ms) is the one who hangs up: the load measures
# full-length media both ways.
python3 - "$WORK/long.wav" <<'PY'
import math, struct, sys, wave
w = wave.open(sys.argv[1], "wb"); w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000))) for i in range(8000 * 60)))
PY
# What SIPp streams to the server: 10 s of A-law (WAV format tag 6), looped per call.
python3 - "$WORK/alaw.wav" <<'PY'
import math, struct, sys
def alaw(s):
    # G.711 A-law of a 16-bit sample (independent of the server's codec).
    sign = 0x80 if s >= 0 else 0x00
    if s < 0: s = -s - 1
    s = min(s >> 3, 0xFFF)
    if s < 32: code = s >> 1
    else:
        seg = s.bit_length() - 5
        code = (seg << 4) | ((s >> seg) & 0x0F)
    return (code | sign) ^ 0x55
data = bytes(alaw(int(6000 * math.sin(2 * math.pi * 300 * i / 8000))) for i in range(8000 * 10))
hdr = b"RIFF" + struct.pack("<I", 38 + len(data)) + b"WAVEfmt " + struct.pack("<IHHIIHHH", 18, 6, 1, 8000, 8000, 1, 8, 0)
open(sys.argv[1], "wb").write(hdr + b"data" + struct.pack("<I", len(data)) + data)
PY
cat > "$WORK/load.toml" <<TOML
[server]
data_dir = "$WORK/data"
shutdown_grace_ms = 2000
[sip]
udp = "127.0.0.1:5060"
tcp = "off"
[rtp]
ip = "127.0.0.1"
port_min = 16000
port_max = 60999
[api]
grpc = "off"
[metrics]
listen = "127.0.0.1:9090"
[network]
allow = ["127.0.0.0/8"]
[[numbers]]
number = "100"
prompt = "$WORK/long.wav"
TOML

ip netns exec "$NS" "$BIN" --config "$WORK/load.toml" --log warn > "$WORK/server.log" 2>&1 &
sleep 1
PID=$(ip netns pids "$NS" | head -1)
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
IDLE_RSS=$(rss_kb)
T0=$(cpu_ticks); W0=$(date +%s.%N)
PEAK=0
( while kill -0 "$PID" 2>/dev/null; do r=$(rss_kb); [ "${r:-0}" -gt "$(cat "$WORK/peak" 2>/dev/null || echo 0)" ] && echo "$r" > "$WORK/peak"; sleep 0.5; done ) &
MON=$!

ulimit -n 65536 || true
set +e
(cd "$WORK" && /usr/bin/time -f "%U %S" -o "$WORK/sipp.time" ip netns exec "$NS" sipp -sf "$ROOT/benches/sipp/uac_media_load.xml" -s 100 127.0.0.1:5060 \
  -i 127.0.0.1 -p 5070 -mi 127.0.0.1 -mp 7000 -r "$RATE" -m "$CALLS" -l $((RATE * (HOLD / 1000 + 3) + 100)) \
  -d "$HOLD" -max_socket 60000 -nostdin -timeout $((CALLS / RATE + HOLD / 1000 + 60))s -timeout_error \
  -trace_stat -stf "$WORK/stat.csv" -fd 1 -trace_err -error_file "$WORK/errors.log" \
  > "$WORK/sipp.out" 2>&1)
SIPP_RC=$?
set -e
SIPP_CPU=$(tail -1 "$WORK/sipp.time" 2>/dev/null | awk '{print $1 + $2}')
W1=$(date +%s.%N); T1=$(cpu_ticks)
UDP_ERRS=$(ip netns exec "$NS" awk '/^Udp:/ {n++; if (n==1) {for (i=1;i<=NF;i++) h[i]=$i} else {for (i=1;i<=NF;i++) if (h[i]=="RcvbufErrors"||h[i]=="SndbufErrors"||h[i]=="InErrors") printf "%s=%s ", h[i], $i}}' /proc/net/snmp)
kill "$MON" 2>/dev/null || true
PEAK=$(cat "$WORK/peak" 2>/dev/null || echo 0)
HZ=$(getconf CLK_TCK)
LAST=$(tail -1 "$WORK/stat.csv")
col() { head -1 "$WORK/stat.csv" | tr ';' '\n' | grep -n "^$1\$" | cut -d: -f1; }
OK=$(echo "$LAST" | cut -d';' -f"$(col SuccessfulCall\(C\))")
FAIL=$(echo "$LAST" | cut -d';' -f"$(col FailedCall\(C\))")
METRICS=$(ip netns exec "$NS" python3 -c 'import urllib.request;print(urllib.request.urlopen("http://127.0.0.1:9090/metrics").read().decode())' 2>/dev/null || true)
metric() { echo "$METRICS" | awk -v n="$1" '$1==n {print $2}' | head -1; }
python3 - "$RATE" "$CALLS" "$HOLD" "$OK" "$FAIL" "$T0" "$T1" "$HZ" "$W0" "$W1" "$IDLE_RSS" "$PEAK" \
  "$(metric caruso_rtp_packets_sent_total)" "$(metric caruso_rtp_packets_received_total)" "$(metric caruso_rtp_packets_late_total)" "$SIPP_RC" \
  "$(metric caruso_rtp_packets_skipped_total)" "$SIPP_CPU" <<'PY'
import sys
rate, calls, hold, ok, fail, t0, t1, hz, w0, w1, idle, peak, sent, recv, late, rc, skipped, sipp_cpu = sys.argv[1:]
ok, fail = int(ok or 0), int(fail or 0)
cpu = (int(t1) - int(t0)) / int(hz) / (float(w1) - float(w0)) * 100
tot = max(ok + fail, 1)
print(f"| {rate} calls/s x {calls}, {int(hold)//1000} s each (~{int(rate)*int(hold)//1000} concurrent) "
      f"| {ok} ok, {fail} failed ({100*fail/tot:.2f}%) | server CPU {cpu:.0f}% of one core "
      f"| RSS idle {int(idle)/1024:.1f} MB, peak {int(peak)/1024:.1f} MB "
      f"| RTP sent {sent or '?'}, received {recv or '?'}, late {late or '0'}, skipped {skipped or '0'} "
      f"| SIPp CPU {float(sipp_cpu)/(float(w1)-float(w0))*100:.0f}% | sipp exit {rc} |")
PY
echo "(kernel UDP counters in the namespace: $UDP_ERRS; details: $WORK)"
