#!/usr/bin/env bash
# Adopted-instance benchmark: what protecting a cluster Lifeboat did not create costs
# and gives, on one pgbench cluster, in one run. Not a test: it prints figures (and
# appends them to $ROOT/results.txt) for bench/adoption/RESULTS.md.
#
#   sudo bench/adoption/run.sh                                   # SCALE=50 ROUNDS=3 PGBENCH_SECS=60
#   sudo SCALE=5 ROUNDS=1 PGBENCH_SECS=15 bench/adoption/run.sh  # a quick check of the script
#
# 1. Base backups of the same cluster, ROUNDS rounds, page cache dropped before each:
#    Lifeboat over the replication protocol (as it backs up an adopted instance), Lifeboat's
#    file-level backup (as it backs up an instance it runs), and pg_basebackup alone with
#    the options Lifeboat gives it, to /dev/null and to disk. Each Lifeboat figure is a
#    first backup into an empty repository, then a second one into the same repository.
# 2. WAL streaming through a real `lifeboat serve`: the cluster is adopted, and while
#    pgbench runs at full speed the restorable window is sampled every SAMPLE_SECS (on
#    average, with jitter); lag is the time the answer arrived minus the window's
#    `latest` (the last commit the repository holds). No WAL switch is forced anywhere.
# 3. The cluster's TPS with the same pgbench, not adopted and adopted (streaming), in the
#    same rounds; the order alternates from round to round.
#
# Needs: root (the cluster runs as the OS user postgres), PostgreSQL server binaries and
# pgbench in PGBIN, cargo, jq (installed here from Debian when missing), bc.
set -euo pipefail

SCALE=${SCALE:-50}
ROUNDS=${ROUNDS:-3}
PGBENCH_SECS=${PGBENCH_SECS:-60}
PGBENCH_CLIENTS=${PGBENCH_CLIENTS:-8}
WARMUP_SECS=${WARMUP_SECS:-10}
SAMPLE_SECS=${SAMPLE_SECS:-2}
ROOT=${ROOT:-/var/tmp/lifeboat-bench-adoption}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PORT=${PORT:-}                # the cluster's port; a free one when empty
ACCOUNT=bench                 # the REPLICATION role Lifeboat logs in as
INSTANCE=pg-bench1            # the instance's name in the benchmark's own repositories
HERE=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-adoption}

[ "$(id -u)" = 0 ] || { echo "run as root: the cluster runs as the OS user postgres" >&2; exit 1; }
command -v jq >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null; }
(cd "$HERE" && cargo build --release -q -p lifeboat --bin lifeboat \
    && cargo build --release -q -p lifeboat-backup --example bench_backup --example bench_replication_backup)

as_pg() { runuser -u postgres -- "$@"; }
psql_() { "$PGBIN/psql" -X -q -t -A -h "$ROOT/pg" -p "$PORT" -U postgres -d postgres "$@"; }
now() { date +%s.%N; }
secs() { printf '%.2f\n' "$(echo "$2 - $1" | bc)"; }
f2() { printf '%.2f\n' "$1"; }
ratio() { printf '%.2f\n' "$(echo "scale=6; $1 / $2" | bc)"; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
report() { echo "$*" | tee -a "$ROOT/results.txt"; }
# The median of the numbers of a file, and median, p90 (nearest rank) and maximum.
median() { sort -n "$1" | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
spread() {
    sort -n "$1" | awk '{a[NR] = $1} END {
        if (NR == 0) { print "no samples"; exit }
        m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
        i = int(0.9 * NR); if (i < 0.9 * NR) i++
        printf "median %.2f s, p90 %.2f s, max %.2f s (%d samples)", m, a[i], a[NR], NR }'
}
port_free() { [ -z "$(ss -Htan "( sport = :$1 )")" ]; }
free_port() {
    local p
    for _ in $(seq 500); do
        p=$((20000 + RANDOM % 10000))
        if port_free "$p"; then echo "$p"; return; fi
    done
    echo "no free port found" >&2; exit 1
}
free_range() {  # the first of 8 free consecutive ports, not including the one given
    local p i ok
    for _ in $(seq 500); do
        p=$((20000 + RANDOM % 10000)); ok=1
        for i in $(seq 0 7); do
            if [ $((p + i)) = "$1" ] || ! port_free $((p + i)); then ok=0; break; fi
        done
        if [ "$ok" = 1 ]; then echo "$p"; return; fi
    done
    echo "no free port range found" >&2; exit 1
}

SERVER_PID=
BENCH_PID=
cleanup() {
    if [ -n "$BENCH_PID" ]; then kill "$BENCH_PID" 2>/dev/null || true; wait "$BENCH_PID" 2>/dev/null || true; fi
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    as_pg "$PGBIN/pg_ctl" -D "$ROOT/pg/data" -m immediate stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
# What an earlier run left running: its server (by the pid it recorded) and its cluster.
if [ -f "$ROOT/server.pid" ]; then
    old=$(cat "$ROOT/server.pid")
    if [ -r "/proc/$old/cmdline" ] && tr '\0' ' ' < "/proc/$old/cmdline" | grep -q -- "--data-dir $ROOT/server"; then
        kill "$old" 2>/dev/null || true
        sleep 1
    fi
fi
cleanup
rm -rf "$ROOT"
mkdir -p "$ROOT/pg" "$ROOT/bin" "$ROOT/repos" "$ROOT/times"
for b in lifeboat examples/bench_backup examples/bench_replication_backup; do
    cp "$CARGO_TARGET_DIR/release/$b" "$ROOT/bin/"
done
chmod 755 "$ROOT" "$ROOT/bin"
chown postgres: "$ROOT/pg"
chmod 700 "$ROOT/pg"
: > "$ROOT/results.txt"
[ -n "$PORT" ] || PORT=$(free_port)
FIRST=$(free_range "$PORT")
(umask 077; openssl rand -hex 16 > "$ROOT/password")
PASSWORD=$(cat "$ROOT/password")

# --- the cluster, made the way a distribution's package makes one -------------------
# Its own initdb (bootstrap superuser postgres), listening on 127.0.0.1, with a role that
# has REPLICATION and a password, and pg_hba.conf letting it in over TCP with SCRAM. The
# superuser `lifeboat` (over the socket) is only for the file-level backup's comparison.
as_pg "$PGBIN/initdb" -D "$ROOT/pg/data" -U postgres --auth-local=trust --data-checksums \
    -E UTF8 --locale=C.UTF-8 >/dev/null
cat >> "$ROOT/pg/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$ROOT/pg'
shared_buffers = 1GB
max_wal_size = 8GB
checkpoint_timeout = 30min
max_slot_wal_keep_size = 10GB
CONF
cat > "$ROOT/pg/data/pg_hba.conf" <<HBA
local all all trust
host all all 127.0.0.1/32 scram-sha-256
host replication all 127.0.0.1/32 scram-sha-256
HBA
as_pg "$PGBIN/pg_ctl" -D "$ROOT/pg/data" -l "$ROOT/pg/log" -w start >/dev/null
psql_ -c "CREATE ROLE $ACCOUNT LOGIN REPLICATION PASSWORD '$PASSWORD'" \
    -c "GRANT pg_read_all_data TO $ACCOUNT" \
    -c "CREATE ROLE lifeboat LOGIN SUPERUSER" \
    -c "CREATE TABLE bench_mark (t timestamptz)"
VERSION_NUM=$(psql_ -c "SHOW server_version_num")
t0=$(now)
"$PGBIN/pgbench" -i -q -s "$SCALE" -h "$ROOT/pg" -p "$PORT" -U postgres postgres >/dev/null 2>&1
psql_ -c "CHECKPOINT"
report "pgbench -i -s $SCALE: $(secs "$t0" "$(now)") s; database $(psql_ -c "SELECT pg_size_pretty(pg_database_size('postgres'))")"
report "data directory: $(du -sb "$ROOT/pg/data" | cut -f1) bytes (pg_wal: $(du -sb "$ROOT/pg/data/pg_wal" | cut -f1)); PostgreSQL $VERSION_NUM, port $PORT"

# --- 1. base backups ------------------------------------------------------------------
new_repo() {  # name: an empty repository; prints its configuration file
    local dir="$ROOT/repos/$1"
    rm -rf "$dir" "$dir.toml"
    mkdir -p "$dir"
    printf 'repository = "file"\npath = "%s"\n' "$dir" > "$dir.toml"
    echo "$dir.toml"
}
# Peak RSS of a Lifeboat backup, when GNU time is there.
TIMED=()
if /usr/bin/time -f %M -o /dev/null true 2>/dev/null; then TIMED=(/usr/bin/time -f %M -o "$ROOT/rss"); fi
rss_of_last() { if [ "${#TIMED[@]}" -gt 0 ]; then echo ", peak RSS $(tail -n 1 "$ROOT/rss") kB"; fi; }
lifeboat_backup() {  # round, kind (replication|file), first|second, repository configuration
    local round=$1 kind=$2 which=$3 config=$4 out
    drop_caches
    if [ "$kind" = replication ]; then
        out=$("${TIMED[@]}" "$ROOT/bin/bench_replication_backup" --host 127.0.0.1 --port "$PORT" \
            --account "$ACCOUNT" --password-file "$ROOT/password" --server-version-num "$VERSION_NUM" \
            --pg-basebackup "$PGBIN/pg_basebackup" --repo-config "$config" --instance "$INSTANCE")
    else
        out=$("${TIMED[@]}" "$ROOT/bin/bench_backup" --dir "$ROOT/pg" --port "$PORT" \
            --repo-config "$config" --instance "$INSTANCE")
    fi
    local s
    s=$(jq -r .seconds <<<"$out")
    echo "$s" >> "$ROOT/times/backup-$kind-$which"
    report "round $round, lifeboat $kind backup, $which: $(f2 "$s") s, $(jq -r .files <<<"$out") files," \
        "logical $(jq -r .logical_size <<<"$out") bytes, stored $(jq -r .stored_size <<<"$out") bytes" \
        "in $(jq -r .stored_objects <<<"$out") objects$(rss_of_last)"
}
pg_basebackup_() { PGPASSWORD=$PASSWORD "$PGBIN/pg_basebackup" -d "host=127.0.0.1 port=$PORT user=$ACCOUNT" --no-password "$@"; }

for round in $(seq "$ROUNDS"); do
    for kind in replication file; do
        config=$(new_repo "$kind-$round")
        lifeboat_backup "$round" "$kind" first "$config"
        sleep 1   # backup ids are by the second
        lifeboat_backup "$round" "$kind" second "$config"
        report "round $round, lifeboat $kind backup: repository after both $(du -sb "$ROOT/repos/$kind-$round" | cut -f1) bytes"
        rm -rf "$ROOT/repos/$kind-$round"
    done
    drop_caches
    t0=$(now)
    pg_basebackup_ -D - -Ft -X fetch -c fast > /dev/null
    t1=$(now)
    secs "$t0" "$t1" >> "$ROOT/times/pgbb-null"
    report "round $round, pg_basebackup -D - -Ft -X fetch -c fast > /dev/null: $(secs "$t0" "$t1") s"
    drop_caches
    t0=$(now)
    pg_basebackup_ -D "$ROOT/basebackup" -Ft -X fetch -c fast
    t1=$(now)
    secs "$t0" "$t1" >> "$ROOT/times/pgbb-disk"
    report "round $round, pg_basebackup -D DIR -Ft -X fetch -c fast: $(secs "$t0" "$t1") s, $(du -sb "$ROOT/basebackup" | cut -f1) bytes written"
    rm -rf "$ROOT/basebackup"
done

# --- 2 and 3. WAL streaming through the server, and the cluster's TPS ---------------
cat > "$ROOT/lifeboat.toml" <<TOML
[postgres]
bin_dir = "$PGBIN"

[[region]]
name = "local"
ports = "$FIRST-$((FIRST + 7))"
TOML
LIFEBOAT_LOG=info "$ROOT/bin/lifeboat" serve --listen 127.0.0.1:0 --data-dir "$ROOT/server" \
    --config "$ROOT/lifeboat.toml" >> "$ROOT/server.log" 2>&1 &
SERVER_PID=$!
echo "$SERVER_PID" > "$ROOT/server.pid"
lb() { env -u LIFEBOAT_SERVER -u LIFEBOAT_TOKEN LIFEBOAT_DATA_DIR="$ROOT/server" "$ROOT/bin/lifeboat" "$@"; }
fail() { echo "$*; server log: $ROOT/server.log" >&2; tail -n 20 "$ROOT/server.log" >&2; exit 1; }
wait_for() {  # what, timeout in seconds, command...
    local what=$1 end=$(($(date +%s) + $2))
    shift 2
    until "$@"; do
        kill -0 "$SERVER_PID" 2>/dev/null || fail "the server exited while waiting for $what"
        [ "$(date +%s)" -lt "$end" ] || fail "timed out waiting for $what"
        sleep 0.25
    done
}
wait_for "the server to start" 60 test -s "$ROOT/server/server-address"
has_backup() {
    local list
    list=$(lb backup list "$1" --output json) || return 1
    if [ "$(jq '[.runs[] | select(.state == "failed")] | length' <<<"$list")" -gt 0 ]; then
        fail "the first base backup failed: $(jq -c '[.runs[] | select(.state == "failed") | .error]' <<<"$list")"
    fi
    [ "$(jq '.backups | length' <<<"$list")" -ge 1 ]
}
latest_of() { lb backup window "$1" --output json | jq -r '.latest // empty'; }
has_window() { [ -n "$(latest_of "$1")" ]; }
reaches() {  # id, epoch seconds: the window's latest is at or after it
    local l
    l=$(latest_of "$1") || return 1
    [ -n "$l" ] && [ "$(echo "$(date -d "$l" +%s.%N) >= $2" | bc)" = 1 ]
}
cpu_ticks() {  # pid: user + system time of it, and of the children it waited for
    awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat" 2>/dev/null || echo 0
}
receiver_pid() { ps -o pid=,comm= --ppid "$SERVER_PID" | awk '$2 == "pg_receivewal" {print $1; exit}'; }
HZ=$(getconf CLK_TCK)
pgbench_() { "$PGBIN/pgbench" -c "$PGBENCH_CLIENTS" -j 2 -T "$1" -h "$ROOT/pg" -p "$PORT" -U postgres postgres; }
tps_of() { awk '/^tps/ {print $3; exit}' "$1"; }
sleep_until() {
    local d
    d=$(echo "$1 - $(now)" | bc)
    if [ "$(echo "$d > 0" | bc)" = 1 ]; then sleep "$d"; fi
}

unadopted_run() {  # round
    psql_ -c "CHECKPOINT"
    pgbench_ "$PGBENCH_SECS" > "$ROOT/pgbench.out" 2>&1
    local tps
    tps=$(tps_of "$ROOT/pgbench.out")
    echo "$tps" >> "$ROOT/times/tps-plain"
    report "round $1, pgbench -c $PGBENCH_CLIENTS -j 2 -T $PGBENCH_SECS, not adopted: $(f2 "$tps") tps"
}

ID=
adopt() {  # round: adopts the cluster as ID and waits for its first base backup and window
    local round=$1 t0 t1 list run run_secs
    t0=$(now)
    ID=$(lb instance adopt --name bench --host 127.0.0.1 --port "$PORT" --account "$ACCOUNT" \
        --password-file "$ROOT/password" --output json | jq -r .id)
    t1=$(now)
    wait_for "the first base backup of $ID" 3600 has_backup "$ID"
    list=$(lb backup list "$ID" --output json)
    run=$(jq -c '.runs | map(select(.state == "completed")) | first' <<<"$list")
    run_secs=$(secs "$(date -d "$(jq -r .started_at <<<"$run")" +%s.%N)" "$(date -d "$(jq -r .finished_at <<<"$run")" +%s.%N)")
    report "round $round, adopted as $ID in $(secs "$t0" "$t1") s; first base backup complete $(secs "$t1" "$(now)") s later" \
        "(the run itself $run_secs s), logical $(jq -r '.backups[0].logical_size' <<<"$list") bytes," \
        "stored $(jq -r '.backups[0].stored_size' <<<"$list") bytes"
    wait_for "the restorable window of $ID" 600 has_window "$ID"
}

unadopt() {  # round
    report "round $1, base backups of $ID taken: $(lb backup list "$ID" --output json | jq '.backups | length')"
    lb instance delete "$ID" --output json > /dev/null
    report "round $1, instance deleted; replication slots left on the cluster: $(psql_ -c "SELECT count(*) FROM pg_replication_slots")"
    # Whether memory comes back after a round: resident now, and the peak so far.
    report "round $1, lifeboat serve after the round: RSS $(awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status") kB, peak $(awk '/^VmHWM/ {print $2}' "/proc/$SERVER_PID/status") kB"
    ID=
}

streaming_run() {  # round, sampled|unsampled: pgbench while adopted, the window sampled or not
    local round=$1 kind=$2
    psql_ -c "CHECKPOINT"
    local rpid wpid server0 recv0=0 send0=0 lags="$ROOT/times/lag-$round" calls="$ROOT/times/window-call-$round"
    : > "$lags"; : > "$calls"
    rpid=$(receiver_pid)
    wpid=$(psql_ -c "SELECT pid FROM pg_stat_replication WHERE application_name = 'lifeboat wal stream' LIMIT 1")
    server0=$(cpu_ticks "$SERVER_PID")
    [ -z "$rpid" ] || recv0=$(cpu_ticks "$rpid")
    [ -z "$wpid" ] || send0=$(cpu_ticks "$wpid")
    pgbench_ "$PGBENCH_SECS" > "$ROOT/pgbench.out" 2>&1 &
    BENCH_PID=$!
    if [ "$kind" = sampled ]; then
        local next s0 s1 latest
        next=$(echo "$(now) + $SAMPLE_SECS" | bc)
        while :; do
            sleep_until "$next"
            kill -0 "$BENCH_PID" 2>/dev/null || break
            s0=$(now)
            latest=$(latest_of "$ID" || true)
            s1=$(now)
            [ -z "$latest" ] || echo "$s1 - $(date -d "$latest" +%s.%N)" | bc >> "$lags"
            echo "$s1 - $s0" | bc >> "$calls"
            # Jitter of up to half a second either way: a fixed period would lock onto the
            # server's once-a-second store and see the same phase of it every time.
            next=$(echo "scale=3; $next + $SAMPLE_SECS + ($RANDOM % 1001 - 500) / 1000" | bc)
        done
    fi
    wait "$BENCH_PID"
    BENCH_PID=
    local tps server1 recv1=0 send1=0 recv_rss=
    tps=$(tps_of "$ROOT/pgbench.out")
    server1=$(cpu_ticks "$SERVER_PID")
    [ -z "$wpid" ] || send1=$(cpu_ticks "$wpid")
    if [ -n "$rpid" ]; then
        recv1=$(cpu_ticks "$rpid")
        recv_rss=$(awk '/^VmHWM/ {print $2}' "/proc/$rpid/status" 2>/dev/null || true)
    fi
    echo "$tps" >> "$ROOT/times/tps-streaming-$kind"
    report "round $round, pgbench -c $PGBENCH_CLIENTS -j 2 -T $PGBENCH_SECS, adopted (streaming, window ${kind/unsampled/not sampled}): $(f2 "$tps") tps"
    if [ "$kind" = sampled ]; then
        cat "$lags" >> "$ROOT/times/lag-all"
        report "round $round, window lag while pgbench ran: $(spread "$lags"); window call $(f2 "$(median "$calls")") s (median)"
    fi
    report "round $round, CPU during the $kind run: lifeboat serve $(f2 "$(echo "scale=3; ($server1 - $server0) / $HZ" | bc)") s," \
        "pg_receivewal $(f2 "$(echo "scale=3; ($recv1 - $recv0) / $HZ" | bc)") s, the cluster's walsender" \
        "$(f2 "$(echo "scale=3; ($send1 - $send0) / $HZ" | bc)") s${recv_rss:+; pg_receivewal peak RSS $recv_rss kB}"
    # A commit right after pgbench stopped: when is it restorable? (This also lets the
    # stream catch up before the next run.)
    local mark reached
    mark=$(psql_ -c "INSERT INTO bench_mark VALUES (now()) RETURNING extract(epoch FROM t)")
    wait_for "the window to reach the commit after pgbench" 600 reaches "$ID" "$mark"
    reached=$(now)
    secs "$mark" "$reached" >> "$ROOT/times/after-pgbench"
    report "round $round, a commit right after pgbench stopped was in the window $(secs "$mark" "$reached") s later"
}

# Warm the cache so that the first timed run does not read what the later ones find in memory.
psql_ -c "CHECKPOINT"
pgbench_ "$WARMUP_SECS" > /dev/null 2>&1
for round in $(seq "$ROUNDS"); do
    # Table bloat grows from run to run: alternate which kind runs first.
    if [ $((round % 2)) = 1 ]; then
        unadopted_run "$round"
        adopt "$round"; streaming_run "$round" sampled; streaming_run "$round" unsampled; unadopt "$round"
    else
        adopt "$round"; streaming_run "$round" unsampled; streaming_run "$round" sampled; unadopt "$round"
        unadopted_run "$round"
    fi
done
report "lifeboat serve peak RSS (VmHWM): $(awk '/^VmHWM/ {print $2}' "/proc/$SERVER_PID/status") kB"

# --- summary --------------------------------------------------------------------------
m() { f2 "$(median "$ROOT/times/$1")"; }
rf=$(m backup-replication-first) ff=$(m backup-file-first)
rs=$(m backup-replication-second) fs=$(m backup-file-second)
pn=$(m pgbb-null) pd=$(m pgbb-disk)
tp=$(m tps-plain) ts=$(m tps-streaming-sampled) tu=$(m tps-streaming-unsampled)
report ""
report "summary (SCALE=$SCALE, medians of $ROUNDS rounds):"
report "  first base backup, empty repository: lifeboat replication $rf s, lifeboat file-level $ff s," \
    "pg_basebackup > /dev/null $pn s, pg_basebackup to disk $pd s"
report "    replication/file-level $(ratio "$rf" "$ff"), replication/pg_basebackup-null $(ratio "$rf" "$pn")," \
    "replication/pg_basebackup-disk $(ratio "$rf" "$pd")"
report "  second base backup, same repository: lifeboat replication $rs s, lifeboat file-level $fs s," \
    "replication/file-level $(ratio "$rs" "$fs"), replication second/first $(ratio "$rs" "$rf")"
report "  window lag under pgbench, all rounds: $(spread "$ROOT/times/lag-all")"
report "  a commit right after pgbench stopped is in the window after $(m after-pgbench) s"
report "  TPS: not adopted $tp, adopted (streaming) $tu, streaming/not adopted $(ratio "$tu" "$tp");" \
    "adopted with the window sampled every ${SAMPLE_SECS} s $ts, $(ratio "$ts" "$tp")"
echo "results in $ROOT/results.txt"
