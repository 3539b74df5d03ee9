#!/usr/bin/env bash
# Migration benchmark (issue 6): copy pgbench_accounts (scale 50: 5,000,000 rows) from
# one cluster into another under a new name, with its primary key, and compare in one
# run with
#   - pg_dump -Fc -t ... | pg_restore      (into a fresh database: it cannot rename)
#   - pgcopydb clone with a one-table filter (Debian package pgcopydb; skipped if absent)
#   - the floor: psql "copy ... to stdout (format binary)" | psql "copy ... from stdin
#     (format binary)" into a table created beforehand, plus the primary key build.
# Lifeboat runs through crates/migrate/examples/migration_bench.rs under GNU time, for
# its peak RSS. Verification (a diff of the copy against the source) is timed apart.
#
# Both clusters run from a temp dir as the `postgres` OS user with the same settings
# (fsync on, wal_level replica as on a master that archives, maintenance_work_mem
# 256MB for every tool's index build). Prints the figures and writes them to
# bench/migration/last-run.md. Not part of the tests.
#
#   bench/migration/run.sh              # scale 50, 2 rounds
#   SCALE=5 RUNS=1 bench/migration/run.sh
set -euo pipefail

SCALE=${SCALE:-50}
RUNS=${RUNS:-2}
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PORT_A=${PORT_A:-25821}
PORT_B=${PORT_B:-25822}

as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

WORK=$(mktemp -d /tmp/lb-migration-bench.XXXXXX)
chmod 755 "$WORK"
[ "$(id -u)" = 0 ] && chown postgres "$WORK"
cleanup() {
    for side in a b; do
        [ -f "$WORK/$side/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$WORK/$side" -m immediate stop >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== building Lifeboat's migration_bench (release)"
(cd "$ROOT" && cargo build --release -q -p lifeboat-migrate --example migration_bench)
BENCH_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/migration_bench
cp "$BENCH_BIN" "$WORK/migration_bench"

PGCOPYDB=$(command -v pgcopydb || true)
if [ -z "$PGCOPYDB" ]; then
    echo "== pgcopydb not found; trying apt-get install pgcopydb"
    (apt-get install -y -q pgcopydb >/dev/null 2>&1 && PGCOPYDB=$(command -v pgcopydb)) || true
    PGCOPYDB=$(command -v pgcopydb || true)
fi

echo "== starting two clusters, pgbench -i -s $SCALE on the source"
start() {
    local side=$1 port=$2
    as_pg "$PGBIN/initdb" -D "$WORK/$side" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
    as_pg "$PGBIN/pg_ctl" -D "$WORK/$side" -l "$WORK/$side.log" -w start -o \
        "-p $port -k $WORK -c listen_addresses=127.0.0.1 -c shared_buffers=1GB -c max_wal_size=16GB -c maintenance_work_mem=256MB -c wal_level=replica" >/dev/null
}
psql_on() { local port=$1; shift; as_pg "$PGBIN/psql" -X -q -h "$WORK" -p "$port" -U postgres -v ON_ERROR_STOP=1 "$@"; }
start a "$PORT_A" & start b "$PORT_B" & wait
as_pg "$PGBIN/pgbench" -h "$WORK" -p "$PORT_A" -U postgres -i -s "$SCALE" -q postgres 2>/dev/null
psql_on "$PORT_A" -d postgres -c "VACUUM ANALYZE pgbench_accounts"
ROWS=$(psql_on "$PORT_A" -d postgres -At -c "SELECT count(*) FROM pgbench_accounts")
SIZE=$(psql_on "$PORT_A" -d postgres -At -c "SELECT pg_size_pretty(pg_total_relation_size('pgbench_accounts'))")

now() { date +%s.%N; }
settle() { psql_on "$PORT_B" -d postgres -c "CHECKPOINT" >/dev/null; sync; }
check_rows() { # port db table
    local n; n=$(psql_on "$1" -d "$2" -At -c "SELECT count(*) FROM $3")
    local pk; pk=$(psql_on "$1" -d "$2" -At -c "SELECT count(*) FROM pg_constraint WHERE conrelid = '$3'::regclass AND contype = 'p'")
    [ "$n" = "$ROWS" ] && [ "$pk" = 1 ] || { echo "!! $3 in $2 has $n rows and $pk primary keys" >&2; exit 1; }
}

declare -A TIMES
add_time() { TIMES[$1]="${TIMES[$1]:-} $2"; }
elapsed() { printf '%.2f' "$(echo "$2 - $1" | bc)"; }

floor() {
    local r=$1 t0 t1
    settle
    t0=$(now)
    psql_on "$PORT_B" -d postgres -c "CREATE TABLE accounts_floor_$r (aid int NOT NULL, bid int, abalance int, filler char(84))"
    as_pg "$PGBIN/psql" -X -q -h "$WORK" -p "$PORT_A" -U postgres -d postgres -c "COPY pgbench_accounts TO STDOUT (FORMAT binary)" \
        | as_pg "$PGBIN/psql" -X -q -h "$WORK" -p "$PORT_B" -U postgres -d postgres -v ON_ERROR_STOP=1 -c "COPY accounts_floor_$r FROM STDIN (FORMAT binary)"
    psql_on "$PORT_B" -d postgres -c "ALTER TABLE accounts_floor_$r ADD PRIMARY KEY (aid)"
    t1=$(now)
    check_rows "$PORT_B" postgres "accounts_floor_$r"
    psql_on "$PORT_B" -d postgres -c "DROP TABLE accounts_floor_$r"
    add_time floor "$(elapsed "$t0" "$t1")"
}

lifeboat() {
    local r=$1 verify=${2:-} t0 t1 out
    settle
    t0=$(now)
    out=$(/usr/bin/time -v -o "$WORK/time.txt" "$WORK/migration_bench" --source "$WORK:$PORT_A" --target "$WORK:$PORT_B" \
        --user postgres --task-id "bench-$r$verify" --object "postgres.public.pgbench_accounts=accounts_lifeboat_$r$verify" \
        ${verify:+--verify})
    t1=$(now)
    echo "   lifeboat${verify:+ with verification}: $out"
    check_rows "$PORT_B" postgres "accounts_lifeboat_$r$verify"
    local rss; rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
    add_time "rss$verify" "$rss"
    psql_on "$PORT_B" -d postgres -c "DROP TABLE accounts_lifeboat_$r$verify"
    add_time "lifeboat$verify" "$(elapsed "$t0" "$t1")"
}

dump_restore() {
    local r=$1 t0 t1
    settle
    psql_on "$PORT_B" -d postgres -c "CREATE DATABASE restore_$r"
    t0=$(now)
    as_pg "$PGBIN/pg_dump" -h "$WORK" -p "$PORT_A" -U postgres -Fc -t public.pgbench_accounts postgres \
        | as_pg "$PGBIN/pg_restore" -h "$WORK" -p "$PORT_B" -U postgres -d "restore_$r" --no-owner
    t1=$(now)
    check_rows "$PORT_B" "restore_$r" pgbench_accounts
    psql_on "$PORT_B" -d postgres -c "DROP DATABASE restore_$r"
    add_time dump "$(elapsed "$t0" "$t1")"
}

copydb() {
    local r=$1 t0 t1
    [ -n "$PGCOPYDB" ] || return 0
    settle
    psql_on "$PORT_B" -d postgres -c "CREATE DATABASE copydb_$r"
    printf '[include-only-table]\npublic.pgbench_accounts\n' >"$WORK/filters.ini"
    chown postgres "$WORK/filters.ini" 2>/dev/null || true
    t0=$(now)
    as_pg "$PGCOPYDB" clone --no-owner --no-acl --filters "$WORK/filters.ini" --dir "$WORK/copydb_$r" \
        --source "host=$WORK port=$PORT_A user=postgres dbname=postgres" \
        --target "host=$WORK port=$PORT_B user=postgres dbname=copydb_$r" >"$WORK/copydb_$r.log" 2>&1 \
        || { echo "!! pgcopydb failed:"; tail -20 "$WORK/copydb_$r.log"; exit 1; }
    t1=$(now)
    check_rows "$PORT_B" "copydb_$r" pgbench_accounts
    psql_on "$PORT_B" -d postgres -c "DROP DATABASE copydb_$r"
    add_time copydb "$(elapsed "$t0" "$t1")"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# Warm the source's cache so every tool reads from memory.
psql_on "$PORT_A" -d postgres -c "SELECT count(*) FROM pgbench_accounts" >/dev/null
for r in $(seq "$RUNS"); do
    echo "== round $r"
    floor "$r";        echo "   floor: $(echo ${TIMES[floor]} | awk '{print $NF}')s"
    lifeboat "$r";     echo "   lifeboat: $(echo ${TIMES[lifeboat]} | awk '{print $NF}')s"
    dump_restore "$r"; echo "   pg_dump | pg_restore: $(echo ${TIMES[dump]} | awk '{print $NF}')s"
    copydb "$r";       [ -n "$PGCOPYDB" ] && echo "   pgcopydb: $(echo ${TIMES[copydb]} | awk '{print $NF}')s"
done
lifeboat 1 _verify

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
best() { echo "$1" | tr ' ' '\n' | grep . | sort -g | head -1; }
median() { echo "$1" | tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
all() { echo "$1" | xargs | sed 's/ /, /g'; }
FLOOR=$(best "${TIMES[floor]}")
LB=$(best "${TIMES[lifeboat]}")
DUMP=$(best "${TIMES[dump]}")
ratio() { printf '%.2f' "$(echo "scale=4; $1 / $2" | bc)"; }
{
    echo "# Migration benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "pgbench_accounts, scale $SCALE: $ROWS rows, $SIZE with its primary key."
    echo "$(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), both clusters on one machine."
    echo "Load average (1, 5, 15 min) before: $LOAD_BEFORE; after: $LOAD_AFTER (other work shares the machine)."
    echo "$RUNS interleaved rounds, seconds; ratios of best to best and of median to median."
    echo
    echo "| method | best | median | all rounds | Lifeboat ÷ method (best) | (median) |"
    echo "| --- | --- | --- | --- | --- | --- |"
    row() { # label key
        local b m; b=$(best "${TIMES[$2]}"); m=$(median "${TIMES[$2]}")
        echo "| $1 | $b | $m | $(all "${TIMES[$2]}") | $(ratio "$LB" "$b") | $(ratio "$(median "${TIMES[lifeboat]}")" "$m") |"
    }
    row "Lifeboat (migration_bench)" lifeboat
    row "floor: psql binary COPY pipe + primary key" floor
    row "pg_dump -Fc \\| pg_restore" dump
    if [ -n "$PGCOPYDB" ]; then
        row "pgcopydb clone ($("$PGCOPYDB" --version 2>/dev/null | awk '/pgcopydb version/ {print $3}'))" copydb
    else
        echo "| pgcopydb | not installable here | | | | |"
    fi
    echo
    echo "Lifeboat peak RSS: $(all "${TIMES[rss]}") KiB (GNU time, maximum resident set size)."
    echo "Lifeboat with verification (diff against the source after the copy): ${TIMES[lifeboat_verify]}s, peak RSS ${TIMES[rss_verify]} KiB."
} | tee "$HERE/last-run.md"
