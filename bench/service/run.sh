#!/usr/bin/env bash
# Loopback load test of stemsphere-server with wrk (Debian 4.1.0): lease+settle requests/s and
# p50/p99 on SQLite (WAL, synchronous=FULL) and on a throw-away PostgreSQL 15 cluster (one node,
# and three nodes behind HAProxy when it is installed), sign-ins/s (argon2id, OWASP minimum), and
# /v1/health as the HTTP ceiling of the same server for ratios.
# Usage: bench/service/run.sh [path/to/stemsphere-server] [seconds per run, default 10]
#        [path/to/baseline/stemsphere-server]
# With a baseline binary (or STEMSPHERE_BASELINE_SERVER) every row runs on both, one after the
# other on the same machine, and the table shows them side by side with the ratio new/old.
# Load generator and server share this machine: figures are ratios, not capacity.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
server=${1:-build/service/stemsphere-server}
secs=${2:-10}
baseline=${3:-${STEMSPHERE_BASELINE_SERVER:-}}
conns=${STEMSPHERE_BENCH_CONNECTIONS:-16}
command -v wrk >/dev/null || { echo "wrk not installed (apt-get install wrk)"; exit 1; }
[ -x "$server" ] || { echo "no server binary at $server"; exit 1; }
abspath() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
server=$(abspath "$server")
if [ -n "$baseline" ]; then
  [ -x "$baseline" ] || { echo "no baseline binary at $baseline"; exit 1; }
  baseline=$(abspath "$baseline")
fi
work=$(mktemp -d /tmp/stemsphere-bench-XXXXXX)
pids=()
pg_bin=/usr/lib/postgresql/15/bin
as_pg=""; [ "$(id -u)" -eq 0 ] && as_pg="runuser -u postgres --"
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if [ -d "$work/pg" ]; then (cd /tmp && $as_pg $pg_bin/pg_ctl -D "$work/pg" -m fast -w stop >/dev/null 2>&1) || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json() { /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

port=""
start_server() { # $1 = binary, $2 = db url; sets $port (runs in this shell so cleanup knows the pid)
  local log=$work/server-$RANDOM.log
  "$1" --db "$2" --listen 127.0.0.1:0 --threads 64 --lease-rate 1e9 --signin-rate 1e9 \
    --signup-rate 1e9 --max-open-leases 1000 >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    grep -q listening "$log" 2>/dev/null && break; sleep 0.1
  done
  port=$(grep -o ':[0-9]* ' "$log" | tr -d ': ')
}
stop_servers() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  pids=()
}

make_user() { # $1 = binary, $2 = base url, $3 = db url; prints the access token
  local email="bench-$RANDOM$RANDOM@example.org" pw="benchmark password"
  curl -s -H 'Content-Type: application/json' -X POST "$2/v1/accounts" \
    -d "{\"email\":\"$email\",\"name\":\"Bench\",\"password\":\"$pw\"}" >"$work/signup.json"
  local token
  token=$("$1" admin --db "$3" outbox --mark-sent | grep -o 'Token: [A-Za-z0-9_-]*' | tail -1 | cut -d' ' -f2)
  curl -s -H 'Content-Type: application/json' -X POST "$2/v1/accounts/verify" -d "{\"token\":\"$token\"}" >/dev/null
  curl -s -H 'Content-Type: application/json' -X POST "$2/v1/sessions" \
    -d "{\"email\":\"$email\",\"password\":\"$pw\"}" >"$work/session.json"
  "$1" admin --db "$3" grant --account "$(json '["account_id"]' <"$work/session.json")" \
    --amount 1000000000000 --category promo --id "bench-$RANDOM$RANDOM" >/dev/null
  echo "$email" >"$work/email"
  json '["access_token"]' <"$work/session.json"
}

# wrk --latency output → "rps p50_ms p99_ms non2xx"
summarize() {
  /usr/bin/python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(label):
    m = re.search(r"^\s*" + label + r"\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not m: return float("nan")
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
print(f"{rps:.0f} {ms('50%'):.2f} {ms('99%'):.2f} {bad.group(1) if bad else 0}")
PY
}

results=()
lease_runs() { # $1 = label, $2 = backend row name, $3 = base url, $4 = tokens (first = hot account)
  local token
  token=$(echo $4 | cut -d' ' -f1)
  STEMSPHERE_TOKENS=$token STEMSPHERE_RUN="h$RANDOM$RANDOM" wrk -t"$conns" -c"$conns" \
    -d"${secs}s" --latency -s "$here/lease_settle.lua" "$3" >"$work/lease1.txt"
  results+=("$1 $2 lease+settle(1-account) $(summarize "$work/lease1.txt")")
  STEMSPHERE_TOKENS=$4 STEMSPHERE_RUN="m$RANDOM$RANDOM" wrk -t"$conns" -c"$conns" -d"${secs}s" \
    --latency -s "$here/lease_settle.lua" "$3" >"$work/lease.txt"
  results+=("$1 $2 lease+settle($conns-accounts) $(summarize "$work/lease.txt")")
}

bench_backend() { # $1 = label (new|old), $2 = binary, $3 = backend name, $4 = db url
  local base tokens=""
  start_server "$2" "$4"; base=http://127.0.0.1:$port
  for _ in $(seq "$conns"); do tokens="$tokens $(make_user "$2" "$base" "$4")"; done
  wrk -t2 -c"$conns" -d"${secs}s" --latency "$base/v1/health" >"$work/health.txt"
  results+=("$1 $3 health $(summarize "$work/health.txt")")
  lease_runs "$1" "$3" "$base" "$tokens"
  STEMSPHERE_EMAIL=$(cat "$work/email") STEMSPHERE_PASSWORD="benchmark password" \
    wrk -t2 -c4 -d"${secs}s" --latency -s "$here/signin.lua" "$base/v1/sessions" >"$work/signin.txt" 2>/dev/null
  results+=("$1 $3 sign-in(argon2id) $(summarize "$work/signin.txt")")
  "$2" admin --db "$4" reconcile >"$work/reconcile.json" && rec=clean || rec=DIFFERS
  results+=("$1 $3 reconciliation-after-run $rec")
  stop_servers
  if [[ "$4" == postgresql* ]] && command -v haproxy >/dev/null; then
    bench_replicas "$1" "$2" "$4" "$tokens"
  fi
}

# Three nodes of the same binary on the same database behind HAProxy (docs/deploy.md).
bench_replicas() { # $1 = label, $2 = binary, $3 = db url, $4 = tokens
  local ports=() lb
  for _ in 1 2 3; do start_server "$2" "$3"; ports+=("$port"); done
  lb=$(free_port)
  {
    echo "global"; echo "  maxconn 1024"; echo "  pidfile $work/haproxy.pid"
    echo "defaults"; echo "  mode http"; echo "  timeout connect 2s"; echo "  timeout client 30s"
    echo "  timeout server 30s"
    echo "frontend api"; echo "  bind 127.0.0.1:$lb"; echo "  default_backend nodes"
    echo "backend nodes"; echo "  balance roundrobin"
    for p in "${ports[@]}"; do echo "  server s$p 127.0.0.1:$p"; done
  } >"$work/haproxy.cfg"
  haproxy -D -f "$work/haproxy.cfg"
  sleep 0.5
  lease_runs "$1" "postgresql-3-nodes" "http://127.0.0.1:$lb" "$4"
  kill "$(cat "$work/haproxy.pid")" 2>/dev/null || true
  stop_servers
}

labels=(new); binaries=("$server")
if [ -n "$baseline" ]; then labels+=(old); binaries+=("$baseline"); fi
have_pg=0
if [ -x "$pg_bin/initdb" ] && id postgres >/dev/null 2>&1; then
  have_pg=1
  mkdir -p "$work/pg"; chown postgres "$work" "$work/pg" 2>/dev/null || true
  pgport=$(free_port)
  (cd /tmp && $as_pg $pg_bin/initdb -D "$work/pg" -A trust -U postgres >/dev/null)
  (cd /tmp && $as_pg $pg_bin/pg_ctl -D "$work/pg" -l "$work/pg/log" -w \
     -o "-p $pgport -k $work/pg -c listen_addresses=127.0.0.1 -c shared_buffers=256MB" start >/dev/null)
fi
# Old and new take turns per back end, so a change in the machine's other load hits both.
for i in "${!labels[@]}"; do
  bench_backend "${labels[$i]}" "${binaries[$i]}" sqlite "sqlite:$work/bench-${labels[$i]}.db"
done
if [ "$have_pg" = 1 ]; then
  for i in "${!labels[@]}"; do
    $pg_bin/psql -h 127.0.0.1 -p "$pgport" -U postgres -qc "CREATE DATABASE bench_${labels[$i]}" postgres
    bench_backend "${labels[$i]}" "${binaries[$i]}" postgresql \
      "postgresql://postgres@127.0.0.1:$pgport/bench_${labels[$i]}"
  done
fi
[ "$have_pg" = 1 ] || results+=("new postgresql skipped (PostgreSQL 15 not installed)")

echo
echo "stemsphere-server on loopback, wrk -c$conns (lease+settle: one connection per wrk thread; sign-in: -c4), ${secs}s each, $(nproc) cores shared with wrk"
/usr/bin/python3 - "${results[@]}" <<'PY'
import sys
rows, order, notes = {}, [], []
for r in sys.argv[1:]:
    p = r.split()
    key = (p[1], p[2])
    if key not in order: order.append(key)
    rows[(p[0],) + key] = p[3:]
have_old = any(k[0] == "old" for k in rows)
if have_old:
    print(f"{'backend':<19} {'route':<27} {'old req/s':>9} {'new req/s':>9} {'new/old':>7} "
          f"{'old p99':>8} {'new p99':>8} {'old/new non-2xx':>15}")
else:
    print(f"{'backend':<19} {'route':<27} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
for b, route in order:
    new, old = rows.get(("new", b, route)), rows.get(("old", b, route))
    if route == "reconciliation-after-run":
        print(f"{b:<19} {route:<27} old {old[0] if old else '-'}, new {new[0] if new else '-'}")
        continue
    if have_old:
        ratio = f"{float(new[0]) / float(old[0]):.2f}x" if new and old and float(old[0]) else "-"
        print(f"{b:<19} {route:<27} {old[0] if old else '-':>9} {new[0] if new else '-':>9} "
              f"{ratio:>7} {old[2] if old else '-':>8} {new[2] if new else '-':>8} "
              f"{(old[3] if old else '-') + '/' + (new[3] if new else '-'):>15}")
    elif new:
        print(f"{b:<19} {route:<27} {new[0]:>9} {new[1]:>8} {new[2]:>8} {new[3]:>8}")
for label in ("new", "old") if have_old else ("new",):
    for b in ("sqlite", "postgresql"):
        h = rows.get((label, b, "health"))
        for (lb, bb, route), v in rows.items():
            if lb == label and bb == b and route.startswith("lease+settle") and h:
                print(f"{label} {b}: {route} = {float(v[0]) / float(h[0]):.1%} of the HTTP ceiling (health)")
PY
