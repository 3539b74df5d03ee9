#!/usr/bin/env bash
# Events benchmark: `lifeboat backup events MASTER` over at least 1 GiB of archived
# pgbench WAL, cold (no cached segment facts) and cached, against `pg_waldump` of the
# master's major over the same segments already decompressed in a plain directory
# (unfiltered, and filtered with the resource managers Lifeboat asks for); the peak
# RSS of `lifeboat serve` and of its `pg_waldump` children during the cold listing;
# and whether the destructive statements run amid the pgbench traffic (a DELETE of
# 5000 rows, a TRUNCATE, a DROP TABLE) are listed. Not a test: it prints figures (also
# to $ROOT/results.txt) for bench/events/RESULTS.md.
#
#   bench/events/run.sh      # SCALE=50 WAL_MB=1024 CLIENTS=4 ENGINE= ROOT=/var/tmp/lifeboat-bench-events
#
# ENGINE pins the master's PostgreSQL major (15 to 18); empty: the server's default
# (the newest installed). pgbench, psql and pg_waldump are taken from the binaries the
# master's postmaster runs. Needs: root (clusters run as the OS user postgres),
# PostgreSQL server binaries, python3, bc, GNU time, cargo.
set -euo pipefail

SCALE=${SCALE:-50}
WAL_MB=${WAL_MB:-1024}     # WAL the tpcb-like run must write (after pgbench -i)
CLIENTS=${CLIENTS:-4}
CHUNK_SECS=${CHUNK_SECS:-5}
ENGINE=${ENGINE:-}
ROOT=${ROOT:-/var/tmp/lifeboat-bench-events}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HERE/target}
SEG_MIB=16

(cd "$HERE" && cargo build --release -q -p lifeboat)
LB="$CARGO_TARGET_DIR/release/lifeboat"
TIME=/usr/bin/time
[ -x "$TIME" ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }
div() { echo "scale=${3:-2}; $1 / $2" | bc; }
mibs() { echo "scale=1; $1 * $SEG_MIB / $2" | bc; }   # segments, seconds -> MiB/s
report() { echo "$*" | tee -a "$ROOT/results.txt"; }
as_pg() { runuser -u postgres -- "$@"; }
field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval("d"+sys.argv[1]))' "$1"; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
status_kb() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"; }
# CPU seconds of a process and of its reaped children: "self children".
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f %.2f\n", ($14+$15)/hz, ($16+$17)/hz}' "/proc/$1/stat"; }
# The bin directory a cluster's postmaster runs from.
bindir_of() { dirname "$(readlink -f "/proc/$(head -1 "$1/postmaster.pid")/exe")"; }

cleanup() {
  [ -n "${SAMPLER_PID:-}" ] && kill "$SAMPLER_PID" 2>/dev/null || true
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null || true
  local d bin
  for d in "$ROOT"/data/regions/*/instances/*/data; do
    [ -f "$d/postmaster.pid" ] || continue
    bin=$(bindir_of "$d" 2>/dev/null) || bin=/usr/lib/postgresql/15/bin
    as_pg "$bin/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true
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
# No WAL-triggered base backups in the middle of the run: the listing reads the WAL
# from the first base backup whatever follows it.
max_wal_between_backups = "1000GiB"
[[region]]
name = "local"
ports = "25442-25450"
TOML

# Samples, every 50 ms until SIGTERM, the RSS of the server and the peak RSS (VmHWM)
# of the pg_waldump processes it starts; prints "server_peak_kb waldump_peak_kb
# waldump_processes".
cat > "$ROOT/sampler.py" <<'PY'
import os, signal, sys, time
server, out = int(sys.argv[1]), sys.argv[2]
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
def kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
peak_server = peak_child = 0
seen = set()
while not stop:
    peak_server = max(peak_server, kb(server, "VmRSS:"))
    try:
        tasks = os.listdir(f"/proc/{server}/task")
    except OSError:
        tasks = []
    for t in tasks:
        try:
            with open(f"/proc/{server}/task/{t}/children") as f:
                kids = f.read().split()
        except OSError:
            continue
        for k in kids:
            try:
                with open(f"/proc/{k}/comm") as f:
                    if f.read().strip() != "pg_waldump":
                        continue
            except OSError:
                continue
            seen.add(k)
            peak_child = max(peak_child, kb(k, "VmHWM:"))
    time.sleep(0.05)
with open(out, "w") as f:
    f.write(f"{peak_server} {peak_child} {len(seen)}\n")
PY

"$LB" serve --data-dir "$ROOT/data" --config "$ROOT/lifeboat.toml" --listen 127.0.0.1:0 >"$ROOT/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do [ -f "$ROOT/data/server-address" ] && break; sleep 0.1; done
export LIFEBOAT_DATA_DIR="$ROOT/data"

create_args=(instance create --name bench --account admin --password-file "$ROOT/pw" --output json)
[ -n "$ENGINE" ] && create_args+=(--engine-version "$ENGINE")
master_json=$("$LB" "${create_args[@]}")
MASTER=$(echo "$master_json" | field '["id"]')
PORT=$(echo "$master_json" | field '["port"]')
ENGINE_VERSION=$(echo "$master_json" | field '["engine_version"]')
INST="$ROOT/data/regions/local/instances/$MASTER"
PGBIN=$(bindir_of "$INST/data")
CONN="host=127.0.0.1 port=$PORT user=admin dbname=postgres"
psql_() { "$PGBIN/psql" -X -qtA "$CONN" "$@"; }
report "master $MASTER on port $PORT, engine_version $ENGINE_VERSION, binaries $PGBIN ($("$PGBIN/pg_waldump" --version))"
report "machine: $(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB RAM, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"

echo "waiting for the first base backup"
for _ in $(seq 600); do
  n=$("$LB" backup list "$MASTER" --output json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["backups"]))')
  [ "$n" -ge 1 ] && break
  sleep 0.5
done
[ "$n" -ge 1 ] || { echo "no base backup after 5 minutes" >&2; exit 1; }

# --- WAL: pgbench -i, then tpcb-like traffic with the mistakes in the middle ----------
LSN0=$(psql_ -c "SELECT pg_current_wal_lsn()")
t0=$(now)
"$PGBIN/pgbench" -i -q -s "$SCALE" "$CONN" >/dev/null 2>&1
t1=$(now)
report "pgbench -i -s $SCALE: $(secs "$t0" "$t1") s, $(( $(psql_ -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$LSN0')::bigint") / 1048576 )) MiB of WAL"
psql_ -c "CREATE TABLE victim_orders (id int PRIMARY KEY, total numeric);
          INSERT INTO victim_orders SELECT g, g FROM generate_series(1, 20000) g;
          CREATE TABLE victim_carts AS SELECT g AS id, md5(g::text) AS item FROM generate_series(1, 3000) g;
          CREATE TABLE victim_logs AS SELECT g AS id, now() AS at FROM generate_series(1, 2000) g;" >/dev/null
sleep 6   # Lifeboat looks at the catalogs every 5 s: the tables get their names

LSN1=$(psql_ -c "SELECT pg_current_wal_lsn()")
target=$((WAL_MB * 1048576))
done_delete= done_truncate= done_drop=
t0=$(now)
: > "$ROOT/pgbench.txt"
while :; do
  "$PGBIN/pgbench" -n -c "$CLIENTS" -j 2 -T "$CHUNK_SECS" "$CONN" >>"$ROOT/pgbench.txt" 2>&1
  wal=$(psql_ -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$LSN1')::bigint")
  if [ -z "$done_delete" ] && [ "$wal" -ge $((target / 4)) ]; then
    DELETE_LSN=$(psql_ -c "DELETE FROM victim_orders WHERE id <= 5000" -c "SELECT pg_current_wal_lsn()")
    done_delete=1; echo "DELETE of 5000 rows at $DELETE_LSN"
  elif [ -z "$done_truncate" ] && [ "$wal" -ge $((target / 2)) ]; then
    TRUNCATE_LSN=$(psql_ -c "TRUNCATE victim_carts" -c "SELECT pg_current_wal_lsn()")
    done_truncate=1; echo "TRUNCATE at $TRUNCATE_LSN"
  elif [ -z "$done_drop" ] && [ "$wal" -ge $((target * 3 / 4)) ]; then
    DROP_LSN=$(psql_ -c "DROP TABLE victim_logs" -c "SELECT pg_current_wal_lsn()")
    done_drop=1; echo "DROP TABLE at $DROP_LSN"
  fi
  [ "$wal" -ge "$target" ] && [ -n "$done_drop" ] && break
done
t1=$(now)
TPCB_SECS=$(secs "$t0" "$t1")
TPS=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$ROOT/pgbench.txt" | awk '{s += $1; n++} END {printf "%.0f", s / n}')
report "tpcb-like run (-c $CLIENTS, in ${CHUNK_SECS} s chunks): $TPCB_SECS s, $((wal / 1048576)) MiB of WAL, about $TPS tps; DELETE at $DELETE_LSN, TRUNCATE at $TRUNCATE_LSN, DROP TABLE at $DROP_LSN"
TOTAL_WAL=$(psql_ -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$LSN0')::bigint")
report "WAL since pgbench -i started (the first base backup was before): $((TOTAL_WAL / 1048576)) MiB"

# Everything written so far archived.
LAST_NEEDED=$(psql_ -c "SELECT pg_walfile_name(pg_current_wal_lsn())")
psql_ -c "SELECT pg_switch_wal()" >/dev/null
t0=$(now)
until [ "$(psql_ -c "SELECT coalesce(last_archived_wal, '') >= '$LAST_NEEDED' FROM pg_stat_archiver")" = t ]; do sleep 0.2; done
report "all WAL up to $LAST_NEEDED archived $(secs "$t0" "$(now)") s after the switch; archiver failures: $(psql_ -c "SELECT failed_count FROM pg_stat_archiver")"

# --- Lifeboat, cold: no cached facts --------------------------------------------------
# One listing: JSON in $ROOT/$1.json, seconds in LIST_SECS, server CPU in LIST_CPU
# ("self children" seconds), RSS figures in HWM_BEFORE / HWM_AFTER / SAMPLED.
listing() {
  local label=$1 c0 c1 t0 t1
  drop_caches
  HWM_BEFORE=$(status_kb "$SERVER_PID" VmHWM)
  c0=$(cpu_of "$SERVER_PID")
  python3 "$ROOT/sampler.py" "$SERVER_PID" "$ROOT/$label.rss" &
  SAMPLER_PID=$!
  t0=$(now)
  "$LB" backup events "$MASTER" --output json > "$ROOT/$label.json"
  t1=$(now)
  kill "$SAMPLER_PID"; wait "$SAMPLER_PID" || true; SAMPLER_PID=
  c1=$(cpu_of "$SERVER_PID")
  HWM_AFTER=$(status_kb "$SERVER_PID" VmHWM)
  SAMPLED=$(cat "$ROOT/$label.rss")
  LIST_SECS=$(secs "$t0" "$t1")
  LIST_CPU="$(echo "${c1% *} - ${c0% *}" | bc) $(echo "${c1#* } - ${c0#* }" | bc)"
}

CACHE="$ROOT/data/cache/wal-facts"
rm -rf "$CACHE"
echo "lifeboat backup events, cold"
listing cold
COLD_SECS=$LIST_SECS
SEGS=$(field '["scanned"]["segments"]' < "$ROOT/cold.json")
COLD_CACHED=$(field '["scanned"]["cached"]' < "$ROOT/cold.json")
FIRST=$(field '["scanned"]["first_segment"]' < "$ROOT/cold.json")
LAST=$(field '["scanned"]["last_segment"]' < "$ROOT/cold.json")
report "lifeboat events, cold: $COLD_SECS s, $SEGS segments ($FIRST..$LAST, $COLD_CACHED cached, gap $(field '["scanned"]["gap"]' < "$ROOT/cold.json")): $(mibs "$SEGS" "$COLD_SECS") MiB/s"
report "  server CPU during it: ${LIST_CPU% *} s in lifeboat serve, ${LIST_CPU#* } s in its pg_waldump children"
report "  lifeboat serve VmHWM before $HWM_BEFORE kB, after $HWM_AFTER kB; sampled peak RSS during it $(echo "$SAMPLED" | cut -d' ' -f1) kB"
report "  pg_waldump children: $(echo "$SAMPLED" | cut -d' ' -f3) seen, peak RSS $(echo "$SAMPLED" | cut -d' ' -f2) kB"
report "  cached facts written: $(find "$CACHE" -name '*.json' | wc -l) files, $(du -sb "$CACHE" | cut -f1) bytes"

# The events found, and the three expected ones.
python3 - "$ROOT/cold.json" <<'PY' | tee -a "$ROOT/results.txt"
import json, sys
d = json.load(open(sys.argv[1]))
def name(t):
    return f"{t.get('schema') or '?'}.{t.get('name') or t.get('oid')}"
print(f"  events listed: {len(d['events'])}")
for e in d["events"]:
    print(f"    {e['kind']:<13} {e['database']:<9} {','.join(name(t) for t in e['tables']):<40} rows {e['rows']:>6}  {e['commit_time']}  {e['commit_lsn']}")
want = [("delete", "public.victim_orders", 5000), ("truncate", "public.victim_carts", None), ("drop_table", "public.victim_logs", None)]
for kind, table, rows in want:
    hit = [e for e in d["events"] if e["kind"] == kind and table in [name(t) for t in e["tables"]]]
    ok = hit and (rows is None or hit[0]["rows"] == rows)
    got = f"rows {hit[0]['rows']}" if hit else "absent"
    print(f"  expected {kind} of {table}{f' ({rows} rows)' if rows else ''}: {'found' if ok else 'NOT FOUND'} ({got})")
PY

# --- Lifeboat, cached -----------------------------------------------------------------
echo "lifeboat backup events, cached"
listing cached
CACHED_SECS=$LIST_SECS
CSEGS=$(field '["scanned"]["segments"]' < "$ROOT/cached.json")
CCACHED=$(field '["scanned"]["cached"]' < "$ROOT/cached.json")
report "lifeboat events, cached: $CACHED_SECS s, $CCACHED/$CSEGS segments cached: $(mibs "$CSEGS" "$CACHED_SECS") MiB/s; server CPU ${LIST_CPU% *} s (children ${LIST_CPU#* } s); sampled peak RSS $(echo "$SAMPLED" | cut -d' ' -f1) kB"
cmp -s <(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["events"])' "$ROOT/cold.json") \
       <(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["events"])' "$ROOT/cached.json") \
  && report "  same events as the cold listing" || report "  WARNING: the cached listing's events differ from the cold one's"

# --- Baseline: pg_waldump over the same segments, decompressed ------------------------
REPO_CONFIG=$(python3 - "$INST/data/lifeboat.conf" <<'PY'
import re, shlex, sys
for line in open(sys.argv[1]):
    m = re.match(r"\s*archive_command\s*=\s*'(.*)'\s*$", line)
    if m:
        words = shlex.split(m.group(1).replace("''", "'"))
        print(words[words.index("--repo-config") + 1])
PY
)
SEGMENTS=$(python3 -c '
import sys
first, last = sys.argv[1], sys.argv[2]
tl, a, b = first[:8], int(first[8:16], 16) * 256 + int(first[16:], 16), int(last[8:16], 16) * 256 + int(last[16:], 16)
print(" ".join(f"{tl}{n // 256:08X}{n % 256:08X}" for n in range(a, b + 1)))' "$FIRST" "$LAST")
PLAIN="$ROOT/plain"
mkdir -p "$PLAIN"
drop_caches
t0=$(now)
for s in $SEGMENTS; do "$LB" wal-fetch --repo-config "$REPO_CONFIG" --instance "$MASTER" "$s" "$PLAIN/$s"; done
FETCH_SECS=$(secs "$t0" "$(now)")
NPLAIN=$(ls "$PLAIN" | wc -l)
report "lifeboat wal-fetch of the $NPLAIN segments into a plain directory, one process each, sequential: $FETCH_SECS s ($(mibs "$NPLAIN" "$FETCH_SECS") MiB/s); stored in the repository: $(cd "$ROOT/data/regions/local/repository/$MASTER/wal" && du -cb $SEGMENTS | tail -1 | cut -f1) bytes"

RMGRS=$(sed -n '/^const RMGRS/,/^];/p' "$HERE/crates/backup/src/walscan.rs" | grep -o '"[A-Za-z0-9]*"' | tr -d '"' | sed 's/^/--rmgr=/' | tr '\n' ' ')
# $1 label, then pg_waldump's arguments; output to /dev/null (line count kept when
# COUNT=1). Sets WD_SECS and WD_RSS (kB).
waldump() {
  local label=$1; shift
  drop_caches
  local t0 t1
  t0=$(now)
  if [ "${COUNT:-}" = 1 ]; then
    WD_LINES=$("$TIME" -f '%M' -o "$ROOT/$label.time" "$PGBIN/pg_waldump" "$@" 2>"$ROOT/$label.err" | wc -l)
  else
    "$TIME" -f '%M' -o "$ROOT/$label.time" "$PGBIN/pg_waldump" "$@" >/dev/null 2>"$ROOT/$label.err" || true
  fi
  t1=$(now)
  WD_SECS=$(secs "$t0" "$t1")
  WD_RSS=$(tail -1 "$ROOT/$label.time")
}
set +o pipefail   # pg_waldump exits 1 at the end of the WAL it is given
waldump unfiltered --path "$PLAIN" "$FIRST" "$LAST"
UNF_SECS=$WD_SECS
report "pg_waldump, unfiltered, to /dev/null: $UNF_SECS s ($(mibs "$NPLAIN" "$UNF_SECS") MiB/s), peak RSS $WD_RSS kB"
COUNT=1 waldump filtered --path "$PLAIN" $RMGRS "$FIRST" "$LAST"
FIL_SECS=$WD_SECS; FIL_LINES=$WD_LINES
report "pg_waldump $RMGRS(Lifeboat's filter), piped to wc -l: $FIL_SECS s ($(mibs "$NPLAIN" "$FIL_SECS") MiB/s), $FIL_LINES records, peak RSS $WD_RSS kB"
# As Lifeboat runs it: one pg_waldump per segment, two at a time.
drop_caches
t0=$(now)
SEG_LINES=$(for s in $SEGMENTS; do echo "$s"; done | xargs -P 2 -I{} "$PGBIN/pg_waldump" --path "$PLAIN" $RMGRS {} {} 2>/dev/null | wc -l)
PERSEG_SECS=$(secs "$t0" "$(now)")
set -o pipefail
report "pg_waldump filtered, one process per segment, two at a time (Lifeboat's shape), piped to wc -l: $PERSEG_SECS s ($(mibs "$NPLAIN" "$PERSEG_SECS") MiB/s), $SEG_LINES records"

# Records that begin in one segment and end in the next: Lifeboat scans each segment
# with the next one beside it so that it reads them whole; how many there are.
python3 - "$PGBIN/pg_waldump" "$PLAIN" $SEGMENTS <<'PY' | tee -a "$ROOT/results.txt"
import collections, re, subprocess, sys
waldump, plain, segs = sys.argv[1], sys.argv[2], sys.argv[3:]
lifeboat = {"Transaction", "Storage", "Standby", "Database", "Heap", "Heap2", "XLOG"}
kinds = collections.Counter()
for s in segs[1:]:
    n = int(s[8:16], 16) * 256 + int(s[16:], 16)
    boundary = n * 16 * 1048576
    fmt = lambda x: f"{x >> 32:X}/{x & 0xFFFFFFFF:X}"
    out = subprocess.run([waldump, "--path", plain, "-s", fmt(boundary - 262144), "-e", fmt(boundary + 65536)],
                         capture_output=True, text=True, env={"LC_ALL": "C"}).stdout
    for line in out.splitlines():
        m = re.match(r"rmgr: (\S+)\s+len \(rec/tot\):\s*\d+/\s*(\d+), tx:\s*(\d+), lsn: ([0-9A-F]+)/([0-9A-F]+),.*desc: (\S+)", line)
        if not m:
            continue
        lsn = (int(m.group(4), 16) << 32) + int(m.group(5), 16)
        if lsn < boundary < lsn + int(m.group(2)):
            kinds[(m.group(1), m.group(6), m.group(1) in lifeboat)] += 1
total = sum(kinds.values())
seen = sum(v for k, v in kinds.items() if k[2])
print(f"records crossing one of the {len(segs) - 1} segment boundaries: {total}, {seen} of them of the resource managers Lifeboat reads:")
for (rmgr, op, read), v in kinds.most_common():
    print(f"  {v:>4}  {rmgr} {op}{'' if read else ' (not read by Lifeboat anyway)'}")
PY

report ""
report "summary ($SEGS segments, $((SEGS * SEG_MIB)) MiB of WAL, PostgreSQL $ENGINE_VERSION):"
report "  lifeboat cold     $COLD_SECS s  $(mibs "$SEGS" "$COLD_SECS") MiB/s"
report "  lifeboat cached   $CACHED_SECS s  $(mibs "$CSEGS" "$CACHED_SECS") MiB/s"
report "  wal-fetch (all)   $FETCH_SECS s  $(mibs "$NPLAIN" "$FETCH_SECS") MiB/s"
report "  pg_waldump all    $UNF_SECS s  $(mibs "$NPLAIN" "$UNF_SECS") MiB/s"
report "  pg_waldump filt.  $FIL_SECS s  $(mibs "$NPLAIN" "$FIL_SECS") MiB/s"
report "  pg_waldump filt., per segment x2  $PERSEG_SECS s  $(mibs "$NPLAIN" "$PERSEG_SECS") MiB/s"
report "  ratio lifeboat cold / pg_waldump filtered: $(div "$COLD_SECS" "$FIL_SECS") (goal: at most 2)"
report "  ratio lifeboat cold / pg_waldump unfiltered: $(div "$COLD_SECS" "$UNF_SECS")"
report "  ratio lifeboat cached / pg_waldump filtered: $(div "$CACHED_SECS" "$FIL_SECS" 3)"
report "  lifeboat serve peak RSS over the whole run: $(status_kb "$SERVER_PID" VmHWM) kB"
echo "results in $ROOT/results.txt"
