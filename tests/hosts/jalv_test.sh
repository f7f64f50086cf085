#!/usr/bin/env bash
# Stemsphere in jalv on a private JACK server (dummy driver, no sound card): the plugin loads,
# jalv shows its latency among the monitors and lists the factory presets, and the JACK port
# latencies follow the quality mode (Live -> Studio -> Live), always equal to what the plugin
# reports; with "Report Studio latency in Live modes" on, Live reports (and JACK gets) the Studio
# latency. (jalv 1.6.6's console "preset URI" applies nothing, with any plugin: not tested.)
# Usage: jalv_test.sh LV2_DIR [URI JACK_PORTS] (LV2_DIR holds stemsphere.lv2; default: Stemsphere
# Stems, 12 JACK ports). Starts and stops its own jackd.
set -uo pipefail
lv2_dir=$1 uri=${2:-https://stemsphere.dev/plugins/stemsphere} want_ports=${3:-12}
for tool in jackd jalv jack_lsp; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not installed (scripts/apt-packages.txt)"; exit 1; }
done
work=$(mktemp -d /tmp/stemsphere-jalv.XXXXXX)
server="stemsphere-jalv-$$"
export LV2_PATH=$lv2_dir JACK_NO_AUDIO_RESERVATION=1 JACK_DEFAULT_SERVER=$server HOME=$work/home
mkdir -p "$HOME"
jackd_pid=""; jalv_pid=""
cleanup() {
  exec 8>&- 2>/dev/null
  [ -n "$jalv_pid" ] && kill "$jalv_pid" 2>/dev/null && wait "$jalv_pid" 2>/dev/null
  [ -n "$jackd_pid" ] && kill "$jackd_pid" 2>/dev/null && wait "$jackd_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- jalv log"; tail -30 "$work/jalv.log"; exit 1; }

jackd -n "$server" --no-realtime -d dummy -r 44100 -p 256 >"$work/jackd.log" 2>&1 &
jackd_pid=$!
for _ in $(seq 50); do jack_lsp >/dev/null 2>&1 && break; sleep 0.2; done
jack_lsp >/dev/null 2>&1 || { cat "$work/jackd.log"; echo "FAIL: jackd did not start"; exit 1; }

# jalv reads commands from stdin and quits on EOF: feed it through a FIFO kept open here.
mkfifo "$work/cmd"
stdbuf -oL jalv -n stemsphere -x "$uri" <"$work/cmd" >"$work/jalv.log" 2>&1 &
jalv_pid=$!
exec 8>"$work/cmd"
send() { echo "$1" >&8; }

port_latency() { # playback latency of Stemsphere's first output, e.g. "1024"
  jack_lsp -l stemsphere:out_l 2>/dev/null | sed -n 's/.*playback latency = \[ \([0-9]*\) [0-9]* \].*/\1/p' | head -1
}
monitor_latency() { # the plugin's latency output as jalv prints it under "monitors"
  local before; before=$(wc -l <"$work/jalv.log")
  send monitors; sleep 0.5
  tail -n +"$((before + 1))" "$work/jalv.log" | sed -n 's/.*latency = \([0-9]*\)\..*/\1/p' | tail -1
}
wait_latency() { # $1 = expected port latency; 30 s at most
  local want=$1 got
  for _ in $(seq 150); do
    got=$(port_latency)
    [ "$got" = "$want" ] && { echo "$got"; return 0; }
    sleep 0.2
  done
  echo "${got:-none}"; return 1
}

for _ in $(seq 100); do jack_lsp 2>/dev/null | grep -q '^stemsphere:out_l$' && break; sleep 0.2; done
jack_lsp 2>/dev/null | grep -q '^stemsphere:out_l$' || fail "jalv did not register the plugin's ports"
nports=$(jack_lsp 2>/dev/null | grep -c '^stemsphere:')
[ "$nports" -eq "$want_ports" ] || fail "expected $want_ports JACK ports for $uri, got $nports"
grep -q "HRTF .* loaded" "$work/jalv.log" || fail "the plugin did not load its HRTF set"

live=$(monitor_latency)
[ -n "$live" ] && [ "$live" -gt 0 ] || fail "jalv shows no latency monitor (got '$live')"
got=$(wait_latency "$live") || fail "JACK out_l latency $got != plugin latency $live (Live)"
cap=$(jack_lsp -l stemsphere:in_l | sed -n 's/.*capture latency = \[ \([0-9]*\) .*/\1/p' | head -1)
[ "$cap" = "$live" ] || fail "JACK in_l capture latency $cap != $live"
echo "Live (DSP): plugin latency $live, JACK out_l playback latency $got, in_l capture $cap"

before=$(wc -l <"$work/jalv.log")
send presets; sleep 0.5
npresets=$(tail -n +"$((before + 1))" "$work/jalv.log" | grep -c 'stemsphere#preset-.* (')
[ "$npresets" -ge 8 ] || fail "jalv lists $npresets factory presets, expected 8"
echo "jalv lists $npresets factory presets"

send "quality = 2"
studio=$live
for _ in $(seq 60); do
  studio=$(monitor_latency)
  [ -n "$studio" ] && [ "$studio" != "$live" ] && break
done
[ -n "$studio" ] && [ "$studio" -gt "$live" ] || fail "plugin latency '$studio' not above Live $live after quality = 2"
studio_port=$(wait_latency "$studio") || fail "Studio: JACK latency $studio_port != plugin latency $studio"
echo "Studio (neural): plugin latency $studio, JACK latency $studio_port"

send "quality = 0"
got=$(wait_latency "$live") || fail "JACK latency $got did not return to $live after quality = 0"
echo "back to Live: JACK latency $got"

send "studio_latency = 1"
got=$(wait_latency "$studio") || fail "Live with studio_latency = 1: JACK latency $got != Studio $studio"
echo "Live with \"Report Studio latency in Live modes\": JACK latency $got"

exec 8>&-
for _ in $(seq 50); do kill -0 "$jalv_pid" 2>/dev/null || break; sleep 0.2; done
if kill -0 "$jalv_pid" 2>/dev/null; then fail "jalv did not quit"; fi
wait "$jalv_pid"; rc=$?; jalv_pid=""
[ "$rc" -eq 0 ] || fail "jalv exited with $rc"
if grep -qi "error" "$work/jalv.log"; then fail "errors in jalv's log"; fi
echo "PASS"
