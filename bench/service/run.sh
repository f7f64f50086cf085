#!/usr/bin/env bash
# Loopback load test of stemsphere-server with wrk (Debian 4.1.0): lease+settle requests/s and
# p50/p99 on SQLite (WAL, synchronous=FULL) and on a throw-away PostgreSQL 15 cluster, sign-ins/s
# (argon2id, OWASP minimum), and /v1/health as the HTTP ceiling of the same server for ratios.
# Usage: bench/service/run.sh [path/to/stemsphere-server] [seconds per run, default 10]
# Load generator and server share this machine: figures are ratios, not capacity.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
server=${1:-build/service/stemsphere-server}
secs=${2:-10}
conns=${STEMSPHERE_BENCH_CONNECTIONS:-16}
command -v wrk >/dev/null || { echo "wrk not installed (apt-get install wrk)"; exit 1; }
[ -x "$server" ] || { echo "no server binary at $server"; exit 1; }
server=$(cd "$(dirname "$server")" && pwd)/$(basename "$server")
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
start_server() { # $1 = db url; sets $port (runs in this shell so cleanup knows the pid)
  local log=$work/server-$RANDOM.log
  "$server" --db "$1" --listen 127.0.0.1:0 --threads 64 --lease-rate 1e9 --signin-rate 1e9 \
    --signup-rate 1e9 --max-open-leases 1000 >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    grep -q listening "$log" 2>/dev/null && break; sleep 0.1
  done
  port=$(grep -o ':[0-9]* ' "$log" | tr -d ': ')
}

make_user() { # $1 = base url, $2 = db url; prints the access token
  local email="bench-$RANDOM@example.org" pw="benchmark password"
  curl -s -H 'Content-Type: application/json' -X POST "$1/v1/accounts" \
    -d "{\"email\":\"$email\",\"name\":\"Bench\",\"password\":\"$pw\"}" >"$work/signup.json"
  local token
  token=$("$server" admin --db "$2" outbox --mark-sent | grep -o 'Token: [A-Za-z0-9_-]*' | tail -1 | cut -d' ' -f2)
  curl -s -H 'Content-Type: application/json' -X POST "$1/v1/accounts/verify" -d "{\"token\":\"$token\"}" >/dev/null
  curl -s -H 'Content-Type: application/json' -X POST "$1/v1/sessions" \
    -d "{\"email\":\"$email\",\"password\":\"$pw\"}" >"$work/session.json"
  "$server" admin --db "$2" grant --account "$(json '["account_id"]' <"$work/session.json")" \
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
errs = re.search(r"Socket errors:.*", text)
print(f"{rps:.0f} {ms('50%'):.2f} {ms('99%'):.2f} {bad.group(1) if bad else 0}")
PY
}

results=()
bench_backend() { # $1 = name, $2 = db url
  local base token tokens=""
  start_server "$2"; base=http://127.0.0.1:$port
  for _ in $(seq "$conns"); do tokens="$tokens $(make_user "$base" "$2")"; done
  token=$(echo $tokens | cut -d' ' -f1)
  wrk -t2 -c"$conns" -d"${secs}s" --latency "$base/v1/health" >"$work/health.txt"
  results+=("$1 health $(summarize "$work/health.txt")")
  STEMSPHERE_TOKENS=$token STEMSPHERE_RUN="h$RANDOM" wrk -t"$conns" -c"$conns" -d"${secs}s" \
    --latency -s "$here/lease_settle.lua" "$base" >"$work/lease1.txt"
  results+=("$1 lease+settle(1-account) $(summarize "$work/lease1.txt")")
  STEMSPHERE_TOKENS=$tokens STEMSPHERE_RUN="m$RANDOM" wrk -t"$conns" -c"$conns" -d"${secs}s" \
    --latency -s "$here/lease_settle.lua" "$base" >"$work/lease.txt"
  results+=("$1 lease+settle($conns-accounts) $(summarize "$work/lease.txt")")
  STEMSPHERE_EMAIL=$(cat "$work/email") STEMSPHERE_PASSWORD="benchmark password" \
    wrk -t2 -c4 -d"${secs}s" --latency -s "$here/signin.lua" "$base/v1/sessions" >"$work/signin.txt"
  results+=("$1 sign-in(argon2id) $(summarize "$work/signin.txt")")
  "$server" admin --db "$2" reconcile >"$work/reconcile.json" && rec=clean || rec=DIFFERS
  results+=("$1 reconciliation-after-run $rec")
}

bench_backend sqlite "sqlite:$work/bench.db"
if [ -x "$pg_bin/initdb" ] && id postgres >/dev/null 2>&1; then
  mkdir -p "$work/pg"; chown postgres "$work" "$work/pg" 2>/dev/null || true
  pgport=$(free_port)
  (cd /tmp && $as_pg $pg_bin/initdb -D "$work/pg" -A trust -U postgres >/dev/null)
  (cd /tmp && $as_pg $pg_bin/pg_ctl -D "$work/pg" -l "$work/pg/log" -w \
     -o "-p $pgport -k $work/pg -c listen_addresses=127.0.0.1 -c shared_buffers=256MB" start >/dev/null)
  bench_backend postgresql "postgresql://postgres@127.0.0.1:$pgport/postgres"
else
  results+=("postgresql skipped (PostgreSQL 15 not installed)")
fi

echo
echo "stemsphere-server on loopback, wrk -c$conns (lease+settle: one connection per wrk thread; sign-in: -c4), ${secs}s each, $(nproc) cores shared with wrk"
printf '%-11s %-28s %10s %9s %9s %8s\n' backend route "req/s" "p50 ms" "p99 ms" "non-2xx"
for r in "${results[@]}"; do
  set -- $r
  if [ $# -ge 6 ]; then printf '%-11s %-28s %10s %9s %9s %8s\n' "$1" "$2" "$3" "$4" "$5" "$6"; else echo "$r"; fi
done
/usr/bin/python3 - "${results[@]}" <<'PY'
import sys
rows = {}
for r in sys.argv[1:]:
    p = r.split()
    if len(p) >= 6: rows[(p[0], p[1])] = float(p[2])
for b in ("sqlite", "postgresql"):
    h = rows.get((b, "health"))
    for k, v in rows.items():
        if k[0] == b and k[1].startswith("lease+settle") and h:
            print(f"{b}: {k[1]} = {v / h:.1%} of the HTTP ceiling (health)")
for k, v in rows.items():
    if k[0] == "sqlite" and k[1].startswith("lease+settle") and ("postgresql", k[1]) in rows:
        print(f"{k[1]}: SQLite / PostgreSQL = {v / rows[('postgresql', k[1])]:.2f}x")
PY
