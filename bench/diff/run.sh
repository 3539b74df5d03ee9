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
PORT_A=${PORT_A:-25811}
PORT_B=${PORT_B:-25812}

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
        "-p $port -k $WORK -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=1GB" >/dev/null
}
psql_on() { local port=$1; shift; as_pg "$PGBIN/psql" -X -q -h "$WORK" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
start a "$PORT_A" & start b "$PORT_B" & wait
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

# Warm both caches so every tool reads from memory.
for port in "$PORT_A" "$PORT_B"; do psql_on "$port" -c "SELECT count(*) FROM pgbench_accounts" >/dev/null; done

echo "== count(*) on both sides, $RUNS runs"
COUNT_TIMES=()
for _ in $(seq "$RUNS"); do
    t0=$(now)
    psql_on "$PORT_A" -c "SELECT count(*) FROM pgbench_accounts" >/dev/null
    psql_on "$PORT_B" -c "SELECT count(*) FROM pgbench_accounts" >/dev/null
    COUNT_TIMES+=("$(echo "$(now) - $t0" | bc)")
done
COUNT=$(printf '%s\n' "${COUNT_TIMES[@]}" | median)

echo "== Lifeboat diff, $RUNS runs"
SRC="host=127.0.0.1 port=$PORT_A user=postgres dbname=postgres"
DST="host=127.0.0.1 port=$PORT_B user=postgres dbname=postgres"
LB_TIMES=()
for _ in $(seq "$RUNS"); do
    t0=$(now)
    /usr/bin/time -v -o "$WORK/time.txt" "$BENCH_BIN" --source "$SRC" --target "$DST" \
        --table public.pgbench_accounts >"$WORK/lifeboat.json"
    LB_TIMES+=("$(echo "$(now) - $t0" | bc)")
    grep "Maximum resident" "$WORK/time.txt" | awk '{print $NF}' >>"$WORK/rss.txt"
done
LB=$(printf '%s\n' "${LB_TIMES[@]}" | median)
LB_RSS_KB=$(sort -n "$WORK/rss.txt" | tail -1)
read -r LB_SRC LB_DST LB_CHG < <(python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))["tables"][0]
print(t["only_in_source"], t["only_in_target"], t["changed"])' "$WORK/lifeboat.json")

echo "== reladiff (key aid, all columns compared)"
t0=$(now)
"$CACHE/venv/bin/reladiff" \
    "postgresql://postgres@127.0.0.1:$PORT_A/postgres" pgbench_accounts \
    "postgresql://postgres@127.0.0.1:$PORT_B/postgres" pgbench_accounts \
    -k aid -c bid -c abalance -c filler >"$WORK/reladiff.txt"
RD=$(echo "$(now) - $t0" | bc)
# reladiff prints '- row' for rows only in the first table or changed there, '+ row'
# for rows only in the second or changed there; a changed key shows as both.
read -r RD_SRC RD_DST RD_CHG < <(python3 -c '
import re, sys
minus, plus = set(), set()
for line in open(sys.argv[1]):
    m = re.match(r"([-+]) \(\x27?(\d+)", line.strip())
    if m:
        (minus if m.group(1) == "-" else plus).add(m.group(2))
print(len(minus - plus), len(plus - minus), len(minus & plus))' "$WORK/reladiff.txt")

ratio() { echo "scale=1; $1 / $2" | bc; }
REPORT=$(cat <<EOF
| | seconds |
| --- | --- |
| \`select count(*)\` on source + target (floor, median of $RUNS) | $COUNT |
| Lifeboat diff (median of $RUNS) | $LB |
| reladiff | $RD |

- rows: $ROWS; expected $EXPECT_DELETED only in source, 0 only in target, $EXPECT_CHANGED changed
- Lifeboat found: $LB_SRC only in source, $LB_DST only in target, $LB_CHG changed
- reladiff found: $RD_SRC only in source, $RD_DST only in target, $RD_CHG changed
- Lifeboat / count(*) floor: $(ratio "$LB" "$COUNT")x; reladiff / Lifeboat: $(ratio "$RD" "$LB")x
- Lifeboat peak RSS: $((LB_RSS_KB / 1024)) MiB ($LB_RSS_KB kB)
- Lifeboat runs: ${LB_TIMES[*]}; count(*) runs: ${COUNT_TIMES[*]}
EOF
)
echo "$REPORT" | tee "$HERE/last-run.md"

if [ "$LB_SRC $LB_DST $LB_CHG" != "$RD_SRC $RD_DST $RD_CHG" ] ||
    [ "$LB_SRC $LB_DST $LB_CHG" != "$EXPECT_DELETED 0 $EXPECT_CHANGED" ]; then
    echo "MISMATCH: the tools found different differences" >&2
    exit 1
fi
echo "OK: both tools found the same differences"
