#!/usr/bin/env bash
# Migration benchmark (issues 6 and 14), on pgbench_accounts (scale 50: 5,000,000 rows).
#
# Whole task: copy the table from one cluster into another under a new name, with its
# primary key, and compare in one run, interleaved round by round:
#   - Lifeboat, verification off and verification on (create to completed, the diff of
#     the copy against the source included)
#   - pg_dump -Fc -t ... | pg_restore      (into a fresh database: it cannot rename)
#   - pgcopydb clone with a one-table filter (Debian package pgcopydb; skipped if absent)
#   - the floor: psql "copy ... to stdout (format binary)" | psql "copy ... from stdin
#     (format binary)" into a table created beforehand, plus the primary key build.
#
# Repair: the target holds a damaged copy of the table (0.1% of the rows deleted, 0.1%
# changed, 0.1% added: rows only in the target). Each round measures, each from a fresh
# copy of the same damaged database (CREATE DATABASE ... TEMPLATE, not timed):
#   - the diff of the pair (crates/migrate/examples/diff_bench.rs, the library call
#     `lifeboat diff` makes)
#   - the repair task (conflict mode repair), verification on as the server runs it,
#     and the repair alone with verification off
#   - the overwrite task (conflict mode overwrite), verification off
# and checks after each repair and overwrite that the target holds the source's rows for
# the source's keys (count, sum and a row checksum).
#
# Lifeboat runs through crates/migrate/examples/migration_bench.rs under GNU time, for
# its peak RSS; its progress events' times say where the time goes.
#
# Both clusters run from a temp dir as the `postgres` OS user with the same settings
# (fsync on, wal_level replica as on a master that archives, maintenance_work_mem
# 256MB for every tool's index build). Prints the figures and writes them to
# bench/migration/last-run.md. Not part of the tests.
#
#   bench/migration/run.sh              # scale 50, 3 rounds
#   SCALE=5 RUNS=1 bench/migration/run.sh
#
# Needs PostgreSQL's server binaries, pgbench and pg_prewarm (Debian: postgresql,
# postgresql-contrib), GNU time, bc, python3.
set -euo pipefail

SCALE=${SCALE:-50}
RUNS=${RUNS:-3}
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT_A=${PORT_A:-$(free_port)}
PORT_B=${PORT_B:-$(free_port)}

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

echo "== building Lifeboat's migration_bench and diff_bench (release)"
(cd "$ROOT" && cargo build --release -q -p lifeboat-migrate --example migration_bench --example diff_bench)
BENCH_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples
cp "$BENCH_DIR/migration_bench" "$BENCH_DIR/diff_bench" "$WORK/"

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
        "-p $port -k $WORK -c listen_addresses=127.0.0.1 -c shared_buffers=1GB -c max_wal_size=16GB -c maintenance_work_mem=256MB -c wal_level=replica" >/dev/null ||
        { cat "$WORK/$side.log" >&2; return 1; }
}
psql_on() { local port=$1; shift; as_pg "$PGBIN/psql" -X -q -h "$WORK" -p "$port" -U postgres -v ON_ERROR_STOP=1 "$@"; }
start a "$PORT_A" & start b "$PORT_B" & wait
[ -f "$WORK/a/postmaster.pid" ] && [ -f "$WORK/b/postmaster.pid" ] || { echo "cannot start the clusters" >&2; exit 1; }
as_pg "$PGBIN/pgbench" -h "$WORK" -p "$PORT_A" -U postgres -i -s "$SCALE" -q postgres 2>/dev/null
psql_on "$PORT_A" -d postgres -c "VACUUM ANALYZE pgbench_accounts" -c "CREATE EXTENSION pg_prewarm"
ROWS=$(psql_on "$PORT_A" -d postgres -At -c "SELECT count(*) FROM pgbench_accounts")
SIZE=$(psql_on "$PORT_A" -d postgres -At -c "SELECT pg_size_pretty(pg_total_relation_size('pgbench_accounts'))")
# What the target must hold for the source's keys (1 to ROWS) after a repair: the
# count, the sum of one column and a checksum of whole rows.
CHECKSUM_SQL="SELECT count(*) || ' ' || sum(abalance) || ' ' || sum(hashtext(a::text)::bigint) FROM pgbench_accounts a WHERE aid BETWEEN 1 AND $ROWS"
SOURCE_SUM=$(psql_on "$PORT_A" -d postgres -At -c "$CHECKSUM_SQL")

DAMAGE=$((ROWS / 1000))
echo "== the damaged target: a copy with $DAMAGE rows deleted, $DAMAGE changed, $DAMAGE added"
psql_on "$PORT_B" -d postgres -c "CREATE DATABASE damaged"
psql_on "$PORT_B" -d damaged -c "CREATE EXTENSION pg_prewarm" \
    -c "CREATE TABLE pgbench_accounts (aid int NOT NULL, bid int, abalance int, filler char(84)) WITH (fillfactor = 100)"
as_pg "$PGBIN/psql" -X -q -h "$WORK" -p "$PORT_A" -U postgres -d postgres -c "COPY pgbench_accounts TO STDOUT (FORMAT binary)" \
    | as_pg "$PGBIN/psql" -X -q -h "$WORK" -p "$PORT_B" -U postgres -d damaged -v ON_ERROR_STOP=1 -c "COPY pgbench_accounts FROM STDIN (FORMAT binary)"
# Spread over the key range: deleted aid % 1000 = 500, changed aid % 1000 = 0; the
# added rows follow the source's last key, as rows written after the chosen time would.
psql_on "$PORT_B" -d damaged -c "ALTER TABLE pgbench_accounts ADD PRIMARY KEY (aid)" \
    -c "DELETE FROM pgbench_accounts WHERE aid % 1000 = 500" \
    -c "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 1000 = 0" \
    -c "INSERT INTO pgbench_accounts SELECT $ROWS + g, ($ROWS + g - 1) / 100000 + 1, 0, '' FROM generate_series(1, $DAMAGE) g" \
    -c "VACUUM ANALYZE pgbench_accounts"
DAMAGED_SUM=$(psql_on "$PORT_B" -d damaged -At -c "$CHECKSUM_SQL")

now() { date +%s.%N; }
settle() { psql_on "$PORT_B" -d postgres -c "CHECKPOINT" >/dev/null; sync; }
check_rows() { # port db table
    local n; n=$(psql_on "$1" -d "$2" -At -c "SELECT count(*) FROM $3")
    local pk; pk=$(psql_on "$1" -d "$2" -At -c "SELECT count(*) FROM pg_constraint WHERE conrelid = '$3'::regclass AND contype = 'p'")
    [ "$n" = "$ROWS" ] && [ "$pk" = 1 ] || { echo "!! $3 in $2 has $n rows and $pk primary keys" >&2; exit 1; }
}
# A fresh copy of the damaged database (a file copy), its table and key in cache.
fresh_damaged() {
    psql_on "$PORT_B" -d postgres -c "CREATE DATABASE $1 TEMPLATE damaged STRATEGY FILE_COPY"
    psql_on "$PORT_B" -d "$1" -c "SELECT pg_prewarm('pgbench_accounts'), pg_prewarm('pgbench_accounts_pkey')" >/dev/null
}
drop_db() { psql_on "$PORT_B" -d postgres -c "DROP DATABASE $1"; }

declare -A TIMES
add_time() { TIMES[$1]="${TIMES[$1]:-} $2"; }
elapsed() { printf '%.2f' "$(echo "$2 - $1" | bc)"; }
last() { echo ${TIMES[$1]} | awk '{print $NF}'; }
rss_of() { awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt"; }
# Durations between the example's progress events (see migration_bench.rs): setup to
# the table's transaction, that to the rows being in (copy; under repair, the diff),
# that to the commit (key build; under repair, staging and applying), then the rest
# (verification).
phases() {
    python3 -c '
import json, sys
j = json.loads(sys.argv[1]); p = j["phases"]; t = j["seconds"]
s, b, f = p.get("started", 0), p.get("building", 0), p.get("finished", t)
print("%.2f %.2f %.2f %.2f" % (s, b - s, f - b, t - f))' "$1"
}
add_phases() { # key json
    local s c b v; read -r s c b v < <(phases "$2")
    add_time "phase_$1_setup" "$s"; add_time "phase_$1_main" "$c"; add_time "phase_$1_apply" "$b"; add_time "phase_$1_verify" "$v"
}

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
    check_rows "$PORT_B" postgres "accounts_lifeboat_$r$verify"
    if [ -n "$verify" ] && ! echo "$out" | grep -q '"verified":true'; then
        echo "!! verification did not pass: $out" >&2; exit 1
    fi
    add_time "rss$verify" "$(rss_of)"
    add_phases "lifeboat$verify" "$out"
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
    drop_db "restore_$r"
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
    drop_db "copydb_$r"
    add_time copydb "$(elapsed "$t0" "$t1")"
}

# The diff of the source with a fresh damaged copy, through the library call.
diff_damaged() {
    local r=$1 db=dmg_diff_$1 t0 t1
    fresh_damaged "$db"
    settle
    t0=$(now)
    /usr/bin/time -v -o "$WORK/time.txt" "$WORK/diff_bench" \
        --source "host=$WORK port=$PORT_A user=postgres dbname=postgres" \
        --target "host=$WORK port=$PORT_B user=postgres dbname=$db" \
        --table public.pgbench_accounts --output "$WORK/diff.json"
    t1=$(now)
    add_time rss_diff "$(rss_of)"
    DIFF_FOUND=$(python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))["tables"][0]
print(t["only_in_source"], t["only_in_target"], t["changed"])' "$WORK/diff.json")
    [ "$DIFF_FOUND" = "$DAMAGE $DAMAGE $DAMAGE" ] || { echo "!! the diff found $DIFF_FOUND" >&2; exit 1; }
    drop_db "$db"
    add_time diff "$(elapsed "$t0" "$t1")"
}

# A migration task into an existing damaged copy: key (repair, repair_verify,
# overwrite), conflict mode, extra flags. Checks the target's rows afterwards.
into_damaged() {
    local r=$1 key=$2 mode=$3 db=dmg_$2_$1 t0 t1 out got kept
    shift 3
    fresh_damaged "$db"
    settle
    t0=$(now)
    out=$(/usr/bin/time -v -o "$WORK/time.txt" "$WORK/migration_bench" --source "$WORK:$PORT_A" --target "$WORK:$PORT_B" \
        --user postgres --task-id "bench-$key-$r" --conflict "$mode" \
        --object "postgres.public.pgbench_accounts=$db.public.pgbench_accounts" "$@")
    t1=$(now)
    add_time "rss_$key" "$(rss_of)"
    add_phases "$key" "$out"
    got=$(psql_on "$PORT_B" -d "$db" -At -c "$CHECKSUM_SQL")
    kept=$(psql_on "$PORT_B" -d "$db" -At -c "SELECT count(*) FROM pgbench_accounts WHERE aid > $ROWS")
    if [ "$got" = "$SOURCE_SUM" ] && [ "$kept" = "$DAMAGE" ]; then
        CHECKS+=("round $r $key: target = source for the source's keys ($got), $kept rows only in the target kept: OK")
    else
        CHECKS+=("round $r $key: MISMATCH: target $got, source $SOURCE_SUM, $kept rows only in the target")
        FAILED=1
    fi
    echo "   $key: $out"
    [ "$key" = repair ] && REPAIR_OUT=$out
    [ "$key" = repair_verify ] && { echo "$out" | grep -q '"verified":true' || { CHECKS+=("round $r $key: verification did not pass"); FAILED=1; }; }
    drop_db "$db"
    add_time "$key" "$(elapsed "$t0" "$t1")"
}

CHECKS=()
FAILED=0
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# The source's table and key in cache, so every tool reads from memory.
psql_on "$PORT_A" -d postgres -c "SELECT pg_prewarm('pgbench_accounts'), pg_prewarm('pgbench_accounts_pkey')" >/dev/null
for r in $(seq "$RUNS"); do
    echo "== round $r, whole task"
    floor "$r";            echo "   floor: $(last floor)s"
    lifeboat "$r";         echo "   lifeboat: $(last lifeboat)s"
    lifeboat "$r" _verify; echo "   lifeboat with verification: $(last lifeboat_verify)s"
    dump_restore "$r";     echo "   pg_dump | pg_restore: $(last dump)s"
    copydb "$r";           [ -n "$PGCOPYDB" ] && echo "   pgcopydb: $(last copydb)s"
    echo "== round $r, repair"
    diff_damaged "$r";     echo "   diff: $(last diff)s ($DIFF_FOUND only in source, only in target, changed)"
    into_damaged "$r" repair_verify repair --verify; echo "   repair with verification: $(last repair_verify)s"
    into_damaged "$r" repair repair;                 echo "   repair: $(last repair)s"
    into_damaged "$r" overwrite overwrite;           echo "   overwrite: $(last overwrite)s"
done

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
best() { echo "$1" | tr ' ' '\n' | grep . | sort -g | head -1; }
median() { echo "$1" | tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
all() { echo "$1" | xargs | sed 's/ /, /g'; }
ratio() { printf '%.2f' "$(echo "scale=4; $1 / $2" | bc)"; }
b() { best "${TIMES[$1]}"; }
m() { median "${TIMES[$1]}"; }
mib() { echo "$(( $(best "${TIMES[$1]}") / 1024 ))-$(( $(echo "${TIMES[$1]}" | tr ' ' '\n' | grep . | sort -g | tail -1) / 1024 ))"; }
{
    echo "# Migration benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "pgbench_accounts, scale $SCALE: $ROWS rows, $SIZE with its primary key."
    echo "$(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), both clusters on one machine."
    echo "Load average (1, 5, 15 min) before: $LOAD_BEFORE; after: $LOAD_AFTER (other work shares the machine)."
    echo "$RUNS interleaved rounds, wall seconds; ratios of best to best and of median to median."
    echo
    echo "## Whole task: copy under a new name"
    echo
    echo "| method | best | median | all rounds | Lifeboat ÷ method (best) | (median) | Lifeboat with verification ÷ method (best) | (median) |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    row() { # label key
        echo "| $1 | $(b "$2") | $(m "$2") | $(all "${TIMES[$2]}") | $(ratio "$(b lifeboat)" "$(b "$2")") | $(ratio "$(m lifeboat)" "$(m "$2")") | $(ratio "$(b lifeboat_verify)" "$(b "$2")") | $(ratio "$(m lifeboat_verify)" "$(m "$2")") |"
    }
    row "Lifeboat (migration_bench), verification off" lifeboat
    row "Lifeboat, verification on (create to completed)" lifeboat_verify
    row "floor: psql binary COPY pipe + primary key" floor
    row "pg_dump -Fc \\| pg_restore" dump
    if [ -n "$PGCOPYDB" ]; then
        row "pgcopydb clone ($("$PGCOPYDB" --version 2>/dev/null | awk '/pgcopydb version/ {print $3}'))" copydb
    else
        echo "| pgcopydb | not installable here | | | | | | |"
    fi
    echo
    echo "Where Lifeboat's time goes (median seconds of each phase, from the progress events):"
    echo
    echo "| run | to the table's transaction | create + copy | primary key + commit | verification |"
    echo "| --- | --- | --- | --- | --- |"
    for k in lifeboat lifeboat_verify; do
        echo "| $k | $(m "phase_${k}_setup") | $(m "phase_${k}_main") | $(m "phase_${k}_apply") | $(m "phase_${k}_verify") |"
    done
    echo
    echo "Lifeboat peak RSS: $(all "${TIMES[rss]}") KiB; with verification $(all "${TIMES[rss_verify]}") KiB (GNU time, maximum resident set size)."
    echo
    echo "## Repair of a damaged copy"
    echo
    echo "Target: a copy with $DAMAGE rows deleted (aid % 1000 = 500), $DAMAGE changed (abalance + 1 where aid % 1000 = 0) and $DAMAGE added (keys after the source's last); every measurement starts from a fresh copy of it. The diff found $DIFF_FOUND (only in source, only in target, changed)."
    echo
    echo "| method | best | median | all rounds | peak RSS (MiB) |"
    echo "| --- | --- | --- | --- | --- |"
    echo "| diff (diff_bench, the library call of lifeboat diff) | $(b diff) | $(m diff) | $(all "${TIMES[diff]}") | $(mib rss_diff) |"
    echo "| repair, verification on | $(b repair_verify) | $(m repair_verify) | $(all "${TIMES[repair_verify]}") | $(mib rss_repair_verify) |"
    echo "| repair, verification off | $(b repair) | $(m repair) | $(all "${TIMES[repair]}") | $(mib rss_repair) |"
    echo "| overwrite, verification off | $(b overwrite) | $(m overwrite) | $(all "${TIMES[overwrite]}") | $(mib rss_overwrite) |"
    echo
    echo "| ratio | best | median |"
    echo "| --- | --- | --- |"
    echo "| repair with verification ÷ diff (goal ≤ 2) | $(ratio "$(b repair_verify)" "$(b diff)") | $(ratio "$(m repair_verify)" "$(m diff)") |"
    echo "| repair alone ÷ diff | $(ratio "$(b repair)" "$(b diff)") | $(ratio "$(m repair)" "$(m diff)") |"
    echo "| repair alone ÷ overwrite | $(ratio "$(b repair)" "$(b overwrite)") | $(ratio "$(m repair)" "$(m overwrite)") |"
    echo "| repair with verification ÷ overwrite | $(ratio "$(b repair_verify)" "$(b overwrite)") | $(ratio "$(m repair_verify)" "$(m overwrite)") |"
    echo
    echo "Where the time goes (median seconds of each phase, from the progress events):"
    echo
    echo "| run | to the table's transaction | diff (repair) / copy to staging (overwrite) | stage + save + UPDATE + INSERT (repair) / save + INSERT ON CONFLICT (overwrite), commit | verification |"
    echo "| --- | --- | --- | --- | --- |"
    for k in repair_verify repair overwrite; do
        echo "| $k | $(m "phase_${k}_setup") | $(m "phase_${k}_main") | $(m "phase_${k}_apply") | $(m "phase_${k}_verify") |"
    done
    echo
    echo "Last repair's summary: \`$REPAIR_OUT\`"
    echo
    echo "Correctness (count, sum(abalance), sum(hashtext(row)) over aid 1 to $ROWS; source: $SOURCE_SUM; damaged copy before: $DAMAGED_SUM):"
    echo
    printf -- '- %s\n' "${CHECKS[@]}"
} | tee "$HERE/last-run.md"
[ "$FAILED" = 0 ] || { echo "!! a repair or overwrite left the target different from the source" >&2; exit 1; }
