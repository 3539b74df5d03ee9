#!/usr/bin/env bash
# Peak memory of `lifeboat serve` while it diffs and migrates a 5,000,000-row table
# (pgbench_accounts, scale 50), through the API as a user would. Not a test: prints the
# server's VmHWM (peak RSS) after each step, and the times. Results go to
# bench/server/RESULTS.md by hand.
#
#   bench/server/run.sh        # SCALE=50 ROOT=/var/tmp/lifeboat-bench-server
set -euo pipefail

SCALE=${SCALE:-50}
ROOT=${ROOT:-/var/tmp/lifeboat-bench-server}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HERE/target}
(cd "$HERE" && cargo build --release -q -p lifeboat)
LB="$CARGO_TARGET_DIR/release/lifeboat"

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }
field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval("d"+sys.argv[1]))' "$1"; }
hwm() { awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' "/proc/$SERVER_PID/status"; }
cleanup() {
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null || true
  for d in "$ROOT"/data/regions/*/instances/*/data; do
    [ -f "$d/postmaster.pid" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT
cleanup
rm -rf "$ROOT"; mkdir -p "$ROOT"; chmod 755 "$ROOT"
echo 'bench-password-1' > "$ROOT/pw"
export PGPASSWORD=bench-password-1
printf '[backup]\nschedule = "1000h"\n[[region]]\nname = "local"\nports = "26432-26440"\n' > "$ROOT/lifeboat.toml"
"$LB" serve --data-dir "$ROOT/data" --config "$ROOT/lifeboat.toml" --listen 127.0.0.1:0 >"$ROOT/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do [ -f "$ROOT/data/server-address" ] && break; sleep 0.1; done
export LIFEBOAT_DATA_DIR="$ROOT/data"

mk() { "$LB" instance create --name "$1" --account admin --password-file "$ROOT/pw" --output json; }
A=$(mk source); B=$(mk target)
IA=$(echo "$A" | field '["id"]'); IB=$(echo "$B" | field '["id"]')
CA=$(echo "$A" | field '["connection_string"]'); CB=$(echo "$B" | field '["connection_string"]')
echo "pgbench -i -s $SCALE on both"
"$PGBIN/pgbench" -i -q -s "$SCALE" "$CA" >/dev/null 2>&1
"$PGBIN/pgbench" -i -q -s "$SCALE" "$CB" >/dev/null 2>&1
"$PGBIN/psql" -X -q "$CB" -c "DELETE FROM pgbench_accounts WHERE aid % 2000 = 1; UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 2000 = 1001;"
echo "server peak RSS after setup: $(hwm)"

t0=$(now)
"$LB" diff --source "$IA" --target "$IB" --table public.pgbench_accounts --output json > "$ROOT/diff.ndjson"
t1=$(now)
echo "diff (every differing row streamed): $(secs "$t0" "$t1") s, $(grep -c '"row"' "$ROOT/diff.ndjson") rows; server peak RSS: $(hwm)"

task=$("$LB" migration create --source "$IA" --target "$IB" --object postgres.public.pgbench_accounts=accounts_copy \
  --source-account admin --source-password-file "$ROOT/pw" --target-account admin --target-password-file "$ROOT/pw" --output json | field '["id"]')
"$LB" migration precheck "$task" >/dev/null
t0=$(now)
"$LB" migration start "$task" --wait --output json > "$ROOT/migration.json"
t1=$(now)
echo "migration of 5M rows under a new name: $(secs "$t0" "$t1") s, state $(field '["state"]' < "$ROOT/migration.json"); server peak RSS: $(hwm)"
