#!/usr/bin/env bash
# Table diff benchmark (issue 5): Lifeboat's diff against reladiff and against the floor
# of `select count(*)` on both sides, on pgbench_accounts at scale 50 (5,000,000 rows)
# with 0.1% of the rows deleted or changed on the target, spread over the key range.
#
# Two clusters run from a temp dir as the `postgres` OS user, each on its own port.
# Prints the figures and writes them to bench/diff/last-run.md. Not part of the tests.
#
#   bench/diff/run.sh            # scale 50
#   SCALE=5 bench/diff/run.sh    # a quick run
#
# Needs PostgreSQL's server binaries and pgbench (Debian: postgresql, postgresql-contrib),
# python3 with venv (reladiff is installed from PyPI into a cached venv), GNU time.
set -euo pipefail

SCALE=${SCALE:-50}
RUNS=${RUNS:-3}
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/lifeboat-bench
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT_A=${PORT_A:-$(free_port)}
PORT_B=${PORT_B:-$(free_port)}

as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

WORK=$(mktemp -d /tmp/lb-diff-bench.XXXXXX)
chmod 755 "$WORK"
[ "$(id -u)" = 0 ] && chown postgres "$WORK"
cleanup() {
    for side in a b; do
        [ -f "$WORK/$side/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$WORK/$side" -m immediate stop >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== building Lifeboat's diff_bench (release)"
(cd "$ROOT" && cargo build --release -q -p lifeboat-migrate --example diff_bench)
BENCH_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/diff_bench

echo "== installing reladiff into $CACHE/venv"
mkdir -p "$CACHE"
[ -x "$CACHE/venv/bin/reladiff" ] || {
    python3 -m venv "$CACHE/venv"
    "$CACHE/venv/bin/pip" install -q 'reladiff[postgresql]' psycopg2-binary
}

echo "== starting two clusters, pgbench -i -s $SCALE on both"
start() {
    local side=$1 port=$2
    as_pg "$PGBIN/initdb" -D "$WORK/$side" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
    as_pg "$PGBIN/pg_ctl" -D "$WORK/$side" -l "$WORK/$side.log" -w start -o \
        "-p $port -k $WORK -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=1GB" >/dev/null ||
        { cat "$WORK/$side.log" >&2; return 1; }
}
psql_on() { local port=$1; shift; as_pg "$PGBIN/psql" -X -q -h "$WORK" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
start a "$PORT_A" & start b "$PORT_B" & wait
[ -f "$WORK/a/postmaster.pid" ] && [ -f "$WORK/b/postmaster.pid" ] || { echo "cannot start the clusters" >&2; exit 1; }
as_pg "$PGBIN/pgbench" -h "$WORK" -p "$PORT_A" -U postgres -i -s "$SCALE" -q postgres 2>/dev/null &
as_pg "$PGBIN/pgbench" -h "$WORK" -p "$PORT_B" -U postgres -i -s "$SCALE" -q postgres 2>/dev/null &
wait

# 0.1% of the rows, spread over the whole key range: half deleted, half changed.
ROWS=$((SCALE * 100000))
psql_on "$PORT_B" -c "DELETE FROM pgbench_accounts WHERE aid % 2000 = 1" \
    -c "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 2000 = 1001" \
    -c "VACUUM ANALYZE pgbench_accounts"
EXPECT_DELETED=$(( (ROWS + 1999) / 2000 ))
EXPECT_CHANGED=$(( (ROWS + 999) / 2000 ))

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# CPU seconds used so far by both clusters: each postmaster with the children it reaped
# (ended backends) and its live children (backends, parallel workers). Unlike wall
# time, this does not grow when other work shares the machine's cores.
clusters_cpu() {
    python3 - "$WORK/a/postmaster.pid" "$WORK/b/postmaster.pid" <<'PY'
import os, sys
tick = os.sysconf("SC_CLK_TCK")
def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()
total = 0
for pidfile in sys.argv[1:]:
    pm = open(pidfile).readline().strip()
    s = stat(pm)
    total += sum(int(x) for x in s[11:15])
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                c = stat(p)
            except OSError:
                continue
            if c[1] == pm:
                total += int(c[11]) + int(c[12])
print(total / tick)
PY
}
# Runs a command under GNU time; sets WALL, CPU (servers + client) and RSS_KB.
measure() {
    local c0 t0 u s
    c0=$(clusters_cpu)
    t0=$(now)
    /usr/bin/time -f "%U %S %M" -o "$WORK/time.txt" "$@"
    WALL=$(echo "$(now) - $t0" | bc)
    read -r u s RSS_KB <"$WORK/time.txt"
    CPU=$(echo "$(clusters_cpu) - $c0 + $u + $s" | bc)
}

# Warm both caches so every tool reads from memory.
for port in "$PORT_A" "$PORT_B"; do psql_on "$port" -c "SELECT count(*) FROM pgbench_accounts" >/dev/null; done

echo "== count(*) on source, then on target; $RUNS runs"
COUNT_TIMES=(); COUNT_CPUS=()
cat >"$WORK/count.sh" <<SH
$(declare -f as_pg psql_on)
WORK=$WORK PGBIN=$PGBIN
psql_on $PORT_A -c "SELECT count(*) FROM pgbench_accounts" >/dev/null
psql_on $PORT_B -c "SELECT count(*) FROM pgbench_accounts" >/dev/null
SH
for _ in $(seq "$RUNS"); do
    measure bash "$WORK/count.sh"
    COUNT_TIMES+=("$WALL"); COUNT_CPUS+=("$CPU")
done
COUNT=$(printf '%s\n' "${COUNT_TIMES[@]}" | median)
COUNT_CPU=$(printf '%s\n' "${COUNT_CPUS[@]}" | median)

echo "== Lifeboat diff, $RUNS runs"
SRC="host=127.0.0.1 port=$PORT_A user=postgres dbname=postgres"
DST="host=127.0.0.1 port=$PORT_B user=postgres dbname=postgres"
LB_TIMES=(); LB_CPUS=(); LB_RSS_KB=0
for _ in $(seq "$RUNS"); do
    measure "$BENCH_BIN" --source "$SRC" --target "$DST" --table public.pgbench_accounts \
        --output "$WORK/lifeboat.json"
    LB_TIMES+=("$WALL"); LB_CPUS+=("$CPU")
    [ "$RSS_KB" -gt "$LB_RSS_KB" ] && LB_RSS_KB=$RSS_KB
done
LB=$(printf '%s\n' "${LB_TIMES[@]}" | median)
LB_CPU=$(printf '%s\n' "${LB_CPUS[@]}" | median)
read -r LB_SRC LB_DST LB_CHG < <(python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))["tables"][0]
print(t["only_in_source"], t["only_in_target"], t["changed"])' "$WORK/lifeboat.json")

echo "== reladiff (key aid, all columns compared)"
measure sh -c "exec '$CACHE/venv/bin/reladiff' \
    postgresql://postgres@127.0.0.1:$PORT_A/postgres pgbench_accounts \
    postgresql://postgres@127.0.0.1:$PORT_B/postgres pgbench_accounts \
    -k aid -c bid -c abalance -c filler >'$WORK/reladiff.txt'"
RD=$WALL; RD_CPU=$CPU
# reladiff prints '- aid, ...' for rows only in the first table or changed there,
# '+ aid, ...' for rows only in the second or changed there; a changed key shows as
# both.
read -r RD_SRC RD_DST RD_CHG < <(python3 -c '
import re, sys
minus, plus = set(), set()
for line in open(sys.argv[1]):
    m = re.match(r"([-+]) \(?\x27?(\d+)", line.strip())
    if m:
        (minus if m.group(1) == "-" else plus).add(m.group(2))
print(len(minus - plus), len(plus - minus), len(minus & plus))' "$WORK/reladiff.txt")

ratio() { echo "scale=1; $1 / $2" | bc; }
REPORT=$(cat <<EOF
| | wall seconds | CPU seconds (servers + client) |
| --- | --- | --- |
| \`select count(*)\` on source, then on target (floor, median of $RUNS) | $COUNT | $COUNT_CPU |
| Lifeboat diff (median of $RUNS) | $LB | $LB_CPU |
| reladiff | $RD | $RD_CPU |

- rows: $ROWS; expected $EXPECT_DELETED only in source, 0 only in target, $EXPECT_CHANGED changed
- Lifeboat found: $LB_SRC only in source, $LB_DST only in target, $LB_CHG changed
- reladiff found: $RD_SRC only in source, $RD_DST only in target, $RD_CHG changed
- Lifeboat / count(*) floor: $(ratio "$LB" "$COUNT")x wall, $(ratio "$LB_CPU" "$COUNT_CPU")x CPU
- reladiff / Lifeboat: $(ratio "$RD" "$LB")x wall, $(ratio "$RD_CPU" "$LB_CPU")x CPU
- Lifeboat peak RSS: $((LB_RSS_KB / 1024)) MiB ($LB_RSS_KB kB)
- Lifeboat wall runs: ${LB_TIMES[*]}; count(*) wall runs: ${COUNT_TIMES[*]}
- load average at the end (other work on the machine): $(cut -d' ' -f1-3 /proc/loadavg)
EOF
)
echo "$REPORT" | tee "$HERE/last-run.md"

if [ "$LB_SRC $LB_DST $LB_CHG" != "$RD_SRC $RD_DST $RD_CHG" ] ||
    [ "$LB_SRC $LB_DST $LB_CHG" != "$EXPECT_DELETED 0 $EXPECT_CHANGED" ]; then
    echo "MISMATCH: the tools found different differences" >&2
    exit 1
fi
echo "OK: both tools found the same differences"
