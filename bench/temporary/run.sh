#!/usr/bin/env bash
# Temporary instance benchmark: time from `lifeboat temp create` to a ready instance,
# against pgBackRest `restore --type=time` plus PostgreSQL's recovery, on the same
# master, base backup point and target, in one run; and the master's pgbench TPS while
# a temporary instance is created, against its TPS without one. Not a test: it prints
# figures (also to $ROOT/results.txt) for bench/temporary/RESULTS.md.
#
#   bench/temporary/run.sh      # SCALE=50 WRITE_SECS=180 PREPARED=true ROOT=/var/tmp/lifeboat-bench-temp
#
# The master runs PostgreSQL 15, the newest major Debian 12's pgBackRest reads.
# Needs: root, PostgreSQL 15 server binaries, pgbench, psql, pgbackrest (installed from
# Debian when missing), cargo.
set -euo pipefail

SCALE=${SCALE:-50}
WRITE_SECS=${WRITE_SECS:-180}
TPS_SECS=${TPS_SECS:-60}
CLIENTS=${CLIENTS:-4}
# Lifeboat's default; PREPARED=false measures temporary instances that restore files.
PREPARED=${PREPARED:-true}
ROOT=${ROOT:-/var/tmp/lifeboat-bench-temp}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HERE/target}

command -v pgbackrest >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbackrest >/dev/null; }
(cd "$HERE" && cargo build --release -q -p lifeboat)
LB="$CARGO_TARGET_DIR/release/lifeboat"

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }
report() { echo "$*" | tee -a "$ROOT/results.txt"; }
as_pg() { runuser -u postgres -- "$@"; }
field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval("d"+sys.argv[1]))' "$1"; }

cleanup() {
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null || true
  for d in "$ROOT"/data/regions/*/instances/*/data "$ROOT/pgbr/data"; do
    [ -f "$d/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT
cleanup
rm -rf "$ROOT"
mkdir -p "$ROOT"
chmod 755 "$ROOT"
: > "$ROOT/results.txt"
echo 'bench-password-1' > "$ROOT/pw"
export PGPASSWORD=bench-password-1
cat > "$ROOT/lifeboat.toml" <<TOML
[backup]
archive_timeout = "10s"
schedule = "1000h"
[temporary_instance]
prepared_copies = $PREPARED
[[region]]
name = "local"
ports = "25432-25440"
TOML

"$LB" serve --data-dir "$ROOT/data" --config "$ROOT/lifeboat.toml" --listen 127.0.0.1:0 >"$ROOT/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do [ -f "$ROOT/data/server-address" ] && break; sleep 0.1; done
export LIFEBOAT_DATA_DIR="$ROOT/data"

master_json=$("$LB" instance create --name bench --account admin --password-file "$ROOT/pw" --engine-version 15 --output json)
MASTER=$(echo "$master_json" | field '["id"]')
PORT=$(echo "$master_json" | field '["port"]')
INST="$ROOT/data/regions/local/instances/$MASTER"
CONN="host=127.0.0.1 port=$PORT user=admin dbname=postgres"
echo "master $MASTER on port $PORT"

# pgBackRest archives the same WAL beside Lifeboat (ALTER SYSTEM overrides lifeboat.conf).
mkdir -p "$ROOT/pgbr/repo" "$ROOT/pgbr/log" "$ROOT/pgbr/spool"
chown -R postgres: "$ROOT/pgbr"
cat > "$ROOT/pgbackrest.conf" <<CONF
[global]
repo1-path=$ROOT/pgbr/repo
repo1-retention-full=9999
log-path=$ROOT/pgbr/log
spool-path=$ROOT/pgbr/spool
lock-path=$ROOT/pgbr/spool
compress-type=zst
process-max=2
start-fast=y
archive-async=n

[bench]
pg1-path=$INST/data
pg1-socket-path=$INST
pg1-port=$PORT
pg1-user=lifeboat
CONF
chmod 644 "$ROOT/pgbackrest.conf"
BR="pgbackrest --config=$ROOT/pgbackrest.conf --stanza=bench"
lb_cmd=$(grep "^archive_command" "$INST/data/lifeboat.conf" | sed "s/^archive_command = '\(.*\)'$/\1/" | sed "s/''/'/g")
"$PGBIN/psql" -X -q "$CONN" -c "ALTER SYSTEM SET archive_command = '$(echo "$lb_cmd" | sed "s/'/''/g") && pgbackrest --config=$ROOT/pgbackrest.conf --stanza=bench archive-push %p'" -c "SELECT pg_reload_conf()" >/dev/null
as_pg $BR stanza-create >/dev/null

echo "pgbench -i -s $SCALE"
"$PGBIN/pgbench" -i -q -s "$SCALE" "$CONN" >/dev/null 2>&1
"$PGBIN/psql" -X -q "$CONN" -c "CHECKPOINT" >/dev/null

echo "base backups"
t0=$(now); "$LB" backup run "$MASTER" --wait --output json >/dev/null; t1=$(now)
report "lifeboat base backup: $(secs "$t0" "$t1") s"
t0=$(now); as_pg $BR backup --type=full >/dev/null; t1=$(now)
report "pgbackrest base backup (zst): $(secs "$t0" "$t1") s"

echo "pgbench writes for $WRITE_SECS s"
"$PGBIN/pgbench" -n -c "$CLIENTS" -j 2 -T "$WRITE_SECS" "$CONN" >"$ROOT/pgbench-writes.txt" 2>&1
TARGET=$("$PGBIN/psql" -X -qtA "$CONN" -c "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '+00:00'")
sleep 1
"$PGBIN/pgbench" -n -c 1 -T 2 "$CONN" >/dev/null 2>&1
"$PGBIN/psql" -X -q "$CONN" -c "SELECT pg_switch_wal()" >/dev/null
EXPECTED=$("$PGBIN/psql" -X -qtA "$CONN" -c "SELECT count(*) FROM pgbench_history WHERE mtime <= '$TARGET'")
report "target $TARGET; pgbench_history rows at target: $EXPECTED"
for _ in $(seq 120); do
  latest=$("$LB" backup window "$MASTER" --output json | field '["latest"]')
  python3 -c 'import sys; from datetime import datetime as D; sys.exit(0 if D.fromisoformat(sys.argv[1].replace("Z", "+00:00")) >= D.fromisoformat(sys.argv[2]) else 1)' "$latest" "$TARGET" && break
  sleep 1
done
wal_bytes=$("$PGBIN/psql" -X -qtA "$CONN" -c "SELECT pg_current_wal_lsn() - '0/0'")
report "WAL written so far: $((wal_bytes / 1048576)) MiB"

# Each restore starts on a quiet master: pgbench leaves autovacuum workers and a
# checkpoint behind, which run at normal priority and would slow whichever restore
# comes first (the recovering clusters here run at nice 10).
quiesce() {
  "$PGBIN/psql" -X -q "$CONN" -c "CHECKPOINT" >/dev/null
  local quiet=0
  for _ in $(seq 600); do
    n=$("$PGBIN/psql" -X -qtA "$CONN" -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")
    if [ "$n" = 0 ]; then quiet=$((quiet + 1)); else quiet=0; fi
    [ "$quiet" -ge 3 ] && break
    sleep 1
  done
  # A prepared copy being made (after the backup, or after a temporary instance
  # took the previous one) would weigh on whichever restore runs meanwhile; Lifeboat's
  # restores start once it is there, as on a server between two mistakes.
  if [ "$PREPARED" = true ]; then
    for _ in $(seq 600); do
      copies=$(ls "$ROOT/data/regions/local/prepared/$MASTER" 2>/dev/null || true)
      [ -n "$copies" ] && ! echo "$copies" | grep -q '\.' && break
      sleep 1
    done
  fi
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
}
# One Lifeboat temporary instance to the target. $1: a label. Sets LB_SECS and GOT.
lifeboat_restore() {
  quiesce
  echo "lifeboat temp create ($1)"
  local t0 t1
  t0=$(now)
  temp_json=$("$LB" temp create "$MASTER" --at "$TARGET" --wait --output json)
  t1=$(now)
  LB_SECS=$(secs "$t0" "$t1")
  TEMP=$(echo "$temp_json" | field '["id"]')
  TPORT=$(echo "$temp_json" | field '["port"]')
  GOT=$("$PGBIN/psql" -X -qtA "host=127.0.0.1 port=$TPORT user=admin dbname=postgres" -c "SELECT count(*) FROM pgbench_history")
  cp "$ROOT/data/regions/local/instances/$TEMP/postgres.log" "$ROOT/temp-postgres-$1.log" 2>/dev/null || true
  "$LB" temp delete "$TEMP" >/dev/null
  FROM_COPY=$(echo "$temp_json" | field '.get("progress", {}).get("files_from_prepared_copy")')
  report "lifeboat temp create to ready ($1): $LB_SECS s (pgbench_history rows: $GOT; files from the prepared copy: $FROM_COPY); replay: $(grep -h -o 'redo done at.*' "$ROOT/temp-postgres-$1.log" | head -1)"
  [ "$GOT" = "$EXPECTED" ] || report "WARNING: lifeboat row count differs (expected $EXPECTED)"
}

TARGET_BR=$(echo "$TARGET" | sed 's/T/ /; s/+00:00$/+00/')   # pgBackRest's time format
# One pgBackRest restore to the target, then PostgreSQL's recovery up to promotion.
# $1: pgBackRest's config, $2: the server log, $3: extra postgresql.conf lines.
# Sets PGBR_SECS and PGBR_ROWS.
pgbr_restore() {
  rm -rf "$ROOT/pgbr/data" "$ROOT/pgbr/spool/archive"
  quiesce
  mkdir -p "$ROOT/pgbr/data"; chown postgres: "$ROOT/pgbr/data"; chmod 700 "$ROOT/pgbr/data"
  local t0 t1
  t0=$(now)
  as_pg pgbackrest --config="$1" --stanza=bench restore --type=time "--target=$TARGET_BR" --target-action=promote --pg1-path="$ROOT/pgbr/data" >/dev/null
  cat >> "$ROOT/pgbr/data/postgresql.auto.conf" <<CONF
port = 25499
listen_addresses = '127.0.0.1'
unix_socket_directories = '$ROOT/pgbr'
archive_mode = off
$3
CONF
  sed -i "s|^include 'lifeboat.conf'||" "$ROOT/pgbr/data/postgresql.conf"
  as_pg "$PGBIN/pg_ctl" -D "$ROOT/pgbr/data" -l "$2" -w -t 3600 start >/dev/null
  until [ "$("$PGBIN/psql" -X -qtA -h "$ROOT/pgbr" -p 25499 -U lifeboat -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; do sleep 0.2; done
  t1=$(now)
  PGBR_SECS=$(secs "$t0" "$t1")
  PGBR_ROWS=$("$PGBIN/psql" -X -qtA -h "$ROOT/pgbr" -p 25499 -U lifeboat -d postgres -c "SELECT count(*) FROM pgbench_history")
  as_pg "$PGBIN/pg_ctl" -D "$ROOT/pgbr/data" -m immediate stop >/dev/null
}

# pgBackRest as installed, and tuned as a careful operator would: WAL fetched ahead
# asynchronously (archive-async) and the same shared_buffers as Lifeboat's temporary
# instances. $1: a label.
sed 's/^archive-async=n$/archive-async=y/' "$ROOT/pgbackrest.conf" > "$ROOT/pgbackrest-async.conf"
chmod 644 "$ROOT/pgbackrest-async.conf"
pgbackrest_plain() {
  echo "pgbackrest restore --type=time ($1)"
  pgbr_restore "$ROOT/pgbackrest.conf" "$ROOT/pgbr/pg-$1.log" ""
  BR_SECS=$PGBR_SECS
  report "pgbackrest restore + recovery to ready ($1): $BR_SECS s (pgbench_history rows: $PGBR_ROWS); replay: $(grep -h -o 'redo done at.*' "$ROOT/pgbr/pg-$1.log" | head -1)"
  [ "$PGBR_ROWS" = "$EXPECTED" ] || report "WARNING: pgbackrest row count differs (expected $EXPECTED)"
}
pgbackrest_tuned() {
  echo "pgbackrest restore --type=time, tuned ($1)"
  pgbr_restore "$ROOT/pgbackrest-async.conf" "$ROOT/pgbr/pg-tuned-$1.log" "shared_buffers = '512MB'"
  BRT_SECS=$PGBR_SECS
  report "pgbackrest tuned (archive-async, shared_buffers 512MB) restore + recovery to ready ($1): $BRT_SECS s (pgbench_history rows: $PGBR_ROWS); replay: $(grep -h -o 'redo done at.*' "$ROOT/pgbr/pg-tuned-$1.log" | head -1)"
  [ "$PGBR_ROWS" = "$EXPECTED" ] || report "WARNING: tuned pgbackrest row count differs (expected $EXPECTED)"
}

# Two rounds in opposite orders, so that neither tool always restores first after the
# writes (the machine is busiest then), and the mean of each.
lifeboat_restore 1; L1=$LB_SECS
pgbackrest_plain 1; B1=$BR_SECS
pgbackrest_tuned 1; T1=$BRT_SECS
pgbackrest_tuned 2; T2=$BRT_SECS
pgbackrest_plain 2; B2=$BR_SECS
lifeboat_restore 2; L2=$LB_SECS
mean() { echo "scale=2; ($1 + $2) / 2" | bc; }
LB_MEAN=$(mean "$L1" "$L2"); BR_MEAN=$(mean "$B1" "$B2"); BRT_MEAN=$(mean "$T1" "$T2")
report "mean of two: lifeboat $LB_MEAN s, pgbackrest $BR_MEAN s, tuned pgbackrest $BRT_MEAN s"
report "ratio lifeboat / pgbackrest: $(echo "scale=2; $LB_MEAN / $BR_MEAN" | bc) (goal: at most 0.5)"
report "ratio lifeboat / tuned pgbackrest: $(echo "scale=2; $LB_MEAN / $BRT_MEAN" | bc)"

echo "master TPS with and without a temporary instance being created"
tps() { "$PGBIN/pgbench" -n -c "$CLIENTS" -j 2 -T "$TPS_SECS" "$CONN" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p'; }
TPS_ALONE=$(tps)
( while :; do
    j=$("$LB" temp create "$MASTER" --at "$TARGET" --wait --output json 2>/dev/null) || break
    "$LB" temp delete "$(echo "$j" | field '["id"]')" >/dev/null 2>&1 || break
  done ) &
LOOP=$!
TPS_BUSY=$(tps)
kill "$LOOP" 2>/dev/null || true
wait "$LOOP" 2>/dev/null || true
report "master TPS alone: $TPS_ALONE; while temporary instances are created: $TPS_BUSY (ratio $(echo "scale=2; $TPS_BUSY / $TPS_ALONE" | bc))"
# The server ran every base backup, restore and WAL feeder above: its peak memory.
report "lifeboat serve peak RSS over the run: $(sed -n 's/^VmHWM:[[:space:]]*//p' "/proc/$SERVER_PID/status")"
