#!/usr/bin/env bash
# Base backup and WAL archive benchmark: Lifeboat against pgBackRest on one pgbench
# cluster, in one run. Not a test: it prints figures (and writes them to
# $ROOT/results.txt) for bench/backup/RESULTS.md.
#
#   sudo bench/backup/run.sh            # SCALE=50 PORT=55432 ROOT=/var/tmp/lifeboat-bench
#   sudo PARTS=encryption bench/backup/run.sh   # only the encryption-at-rest comparison
#
# PARTS: "all" (default), "compare" (against pgBackRest) or "encryption" (Lifeboat's
# base backup, restore and WAL push into a clear and an encrypted repository, the
# same data in the same run, ROUNDS times each, interleaved).
#
# Needs: root (clusters run as the OS user postgres), PostgreSQL 15 server binaries,
# pgbench, pgbackrest (installed here from Debian when missing), cargo.
set -euo pipefail

SCALE=${SCALE:-50}
PORT=${PORT:-55432}
ROOT=${ROOT:-/var/tmp/lifeboat-bench}
PGBENCH_SECS=${PGBENCH_SECS:-120}
PGBENCH_CLIENTS=${PGBENCH_CLIENTS:-8}
PUSH_SEGMENTS=${PUSH_SEGMENTS:-64}   # 64 x 16 MiB = 1 GiB of WAL
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PARTS=${PARTS:-all}
ROUNDS=${ROUNDS:-3}
CIPHER=${CIPHER:-aes-256-gcm}
INSTANCE=pg-bench1
HERE=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-backup}

want() { [ "$PARTS" = all ] || [ "$PARTS" = "$1" ]; }

! want compare || command -v pgbackrest >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbackrest >/dev/null; }
(cd "$HERE" && cargo build --release -q -p lifeboat-backup --example bench_backup --example bench_restore --example bench_codec --bin lifeboat-wal)

as_pg() { runuser -u postgres -- "$@"; }
psql_() { "$PGBIN/psql" -X -q -t -A -h "$ROOT/pg" -p "$PORT" -U lifeboat -d postgres "$@"; }
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
report() { echo "$*" | tee -a "$ROOT/results.txt"; }

cleanup() { as_pg "$PGBIN/pg_ctl" -D "$ROOT/pg/data" -m immediate stop >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup
rm -rf "$ROOT"
mkdir -p "$ROOT/pg" "$ROOT/bin" "$ROOT/repo"
cp "$CARGO_TARGET_DIR/release/lifeboat-wal" "$ROOT/bin/"
chmod 755 "$ROOT" "$ROOT/bin"
chown postgres: "$ROOT/pg" "$ROOT/repo"
chmod 700 "$ROOT/pg"
cat > "$ROOT/repo.toml" <<TOML
repository = "file"
path = "$ROOT/repo"
TOML
chmod 644 "$ROOT/repo.toml"
: > "$ROOT/results.txt"

# The cluster, laid out as Lifeboat lays out an instance (socket in the instance dir).
as_pg "$PGBIN/initdb" -D "$ROOT/pg/data" -U lifeboat --auth-local=trust --data-checksums \
    -E UTF8 --locale=C.UTF-8 >/dev/null
cat >> "$ROOT/pg/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$ROOT/pg'
shared_buffers = 1GB
max_wal_size = 8GB
checkpoint_timeout = 30min
archive_mode = on
archive_command = '$ROOT/bin/lifeboat-wal wal-push --repo-config $ROOT/repo.toml --instance $INSTANCE %p'
archive_timeout = 60
CONF
as_pg "$PGBIN/pg_ctl" -D "$ROOT/pg/data" -l "$ROOT/pg/log" -w start >/dev/null
t0=$(now)
"$PGBIN/pgbench" -i -q -s "$SCALE" -h "$ROOT/pg" -p "$PORT" -U lifeboat postgres >/dev/null 2>&1
psql_ -c "CHECKPOINT"
report "pgbench -i -s $SCALE: $(secs "$t0" "$(now)") s; database $(psql_ -c "SELECT pg_size_pretty(pg_database_size('postgres'))")"
report "data directory: $(du -sb "$ROOT/pg/data" | cut -f1) bytes (pg_wal: $(du -sb "$ROOT/pg/data/pg_wal" | cut -f1))"

if want compare; then
# --- base backups -------------------------------------------------------------------
lifeboat_backup() {  # label, extra args
    local label=$1; shift
    drop_caches
    local out
    out=$("$CARGO_TARGET_DIR/release/examples/bench_backup" --dir "$ROOT/pg" --port "$PORT" \
        --repo-config "$ROOT/repo.toml" --instance "$INSTANCE" "$@")
    report "lifeboat $label: $out"
}

pgbackrest_backup() {  # name, compress-type, process-max, type
    local name=$1 ctype=$2 pmax=$3 btype=${4:-full}
    local conf="$ROOT/pgbr-$name.conf"
    mkdir -p "$ROOT/pgbr-$name" "$ROOT/pgbr-run"
    chown postgres: "$ROOT/pgbr-$name" "$ROOT/pgbr-run"
    cat > "$conf" <<CONF
[global]
repo1-path=$ROOT/pgbr-$name
compress-type=$ctype
process-max=$pmax
start-fast=y
repo1-retention-full=9999
archive-check=n
log-level-console=warn
log-path=$ROOT/pgbr-run
lock-path=$ROOT/pgbr-run
[bench]
pg1-path=$ROOT/pg/data
pg1-socket-path=$ROOT/pg
pg1-port=$PORT
pg1-user=lifeboat
CONF
    chmod 644 "$conf"
    [ -d "$ROOT/pgbr-$name/backup" ] || as_pg pgbackrest --config="$conf" --stanza=bench stanza-create >/dev/null
    local before
    before=$(du -sb "$ROOT/pgbr-$name/backup" | cut -f1)
    drop_caches
    local t0 t1
    t0=$(now)
    as_pg pgbackrest --config="$conf" --stanza=bench --type="$btype" backup
    t1=$(now)
    local after
    after=$(du -sb "$ROOT/pgbr-$name/backup" | cut -f1)
    report "pgbackrest $name ($btype, compress-type=$ctype, process-max=$pmax): $(secs "$t0" "$t1") s, stored $((after - before)) bytes"
}

lifeboat_backup "first backup (level 3)"
sleep 1
lifeboat_backup "second backup, unchanged cluster"
sleep 1
lifeboat_backup "third backup, parallelism 2" --parallelism 2
pgbackrest_backup zst zst 1
pgbackrest_backup zst zst 1 incr
pgbackrest_backup zst2 zst 2
pgbackrest_backup default gz 1
report "lifeboat repository total: $(du -sb "$ROOT/repo/$INSTANCE/data" | cut -f1) bytes of content objects"

# --- restoring the files of the newest backup (no WAL replay) ------------------------
drop_caches
out=$("$CARGO_TARGET_DIR/release/examples/bench_restore" --repo-config "$ROOT/repo.toml" \
    --instance "$INSTANCE" --dest "$ROOT/restore-lifeboat")
report "lifeboat restore of the newest backup's files: $out"
rm -rf "$ROOT/restore-lifeboat"
for pmax in 1 2; do
    mkdir -p "$ROOT/restore-pgbr"; chown postgres: "$ROOT/restore-pgbr"; chmod 700 "$ROOT/restore-pgbr"
    drop_caches
    t0=$(now)
    as_pg pgbackrest --config="$ROOT/pgbr-zst.conf" --stanza=bench --pg1-path="$ROOT/restore-pgbr" \
        --process-max=$pmax --type=immediate restore
    report "pgbackrest restore (zst, process-max=$pmax) of the newest backup's files: $(secs "$t0" "$(now)") s"
    rm -rf "$ROOT/restore-pgbr"
done

# --- WAL archiving under pgbench at full speed -----------------------------------------
# Twice: with synchronous_commit on (the default), and off, which writes WAL as fast as
# the machine can and so is the hardest test of whether archiving keeps up.
archive_run() {  # label, PGOPTIONS
    local label=$1 options=$2
    local lsn0 archived0 t0 t1 t2 tps lsn1 wal_bytes cur last behind sw archived1 failed
    # After a checkpoint every first change of a page writes a full-page image: the
    # heaviest WAL stream pgbench can make.
    psql_ -c "CHECKPOINT"
    lsn0=$(psql_ -c "SELECT pg_current_wal_lsn()")
    archived0=$(psql_ -c "SELECT archived_count FROM pg_stat_archiver")
    t0=$(now)
    tps=$(PGOPTIONS=$options "$PGBIN/pgbench" -c "$PGBENCH_CLIENTS" -j 2 -T "$PGBENCH_SECS" -M prepared \
        -h "$ROOT/pg" -p "$PORT" -U lifeboat postgres 2>/dev/null | awk '/^tps/ {print $3; exit}')
    t1=$(now)
    lsn1=$(psql_ -c "SELECT pg_current_wal_lsn()")
    wal_bytes=$(psql_ -c "SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')::bigint")
    cur=$(psql_ -c "SELECT pg_walfile_name(pg_current_wal_lsn())")
    last=$(psql_ -c "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
    behind=$(( 16#${cur:16:8} + 256 * 16#${cur:8:8} - 16#${last:16:8} - 256 * 16#${last:8:8} - 1 ))
    sw=$(psql_ -c "SELECT pg_walfile_name(pg_switch_wal() - 1)")
    until [ "$(psql_ -c "SELECT coalesce(last_archived_wal, '') >= '$sw' FROM pg_stat_archiver")" = t ]; do sleep 0.2; done
    t2=$(now)
    archived1=$(psql_ -c "SELECT archived_count FROM pg_stat_archiver")
    failed=$(psql_ -c "SELECT failed_count FROM pg_stat_archiver")
    report "pgbench $label -c $PGBENCH_CLIENTS -j 2 -T $PGBENCH_SECS: $tps tps, WAL written $wal_bytes bytes ($(echo "$wal_bytes / $(secs "$t0" "$t1") / 1048576" | bc) MiB/s)"
    report "  archiving: $((archived1 - archived0)) files archived, $failed failures in total; segments not yet archived when pgbench stopped: $behind; all archived $(secs "$t1" "$t2") s after pgbench stopped"
}
archive_run "(synchronous_commit on)" ""
archive_run "(synchronous_commit off)" "-c synchronous_commit=off"
report "WAL in the lifeboat repository: $(du -sb "$ROOT/repo/$INSTANCE/wal" | cut -f1) bytes"

# --- 1 GiB of WAL pushed one segment per process, as archive_command does ------------
mkdir -p "$ROOT/walcopy" "$ROOT/repo2" "$ROOT/pgbr-push"
cat > "$ROOT/repo2.toml" <<TOML
repository = "file"
path = "$ROOT/repo2"
TOML
n=0
for f in "$ROOT"/pg/data/pg_wal/000000010000000[0-9A-F]*; do
    [ -f "$f" ] && [ "${#f}" -eq $((${#ROOT} + 40)) ] || continue
    cp "$f" "$ROOT/walcopy/"
    n=$((n + 1)); [ "$n" -ge "$PUSH_SEGMENTS" ] && break
done
chown -R postgres: "$ROOT/walcopy" "$ROOT/repo2" "$ROOT/pgbr-push"
chmod 644 "$ROOT/repo2.toml"
# One shell as postgres runs the commands, as the archiver does (no runuser per file).
drop_caches
t0=$(now)
as_pg sh -c "for f in $ROOT/walcopy/*; do $ROOT/bin/lifeboat-wal wal-push --repo-config $ROOT/repo2.toml --instance $INSTANCE \$f || exit 1; done"
t1=$(now)
report "lifeboat wal-push of $n segments ($((n * 16)) MiB), one process each: $(secs "$t0" "$t1") s, stored $(du -sb "$ROOT/repo2" | cut -f1) bytes"
sed -e "s#repo1-path=.*#repo1-path=$ROOT/pgbr-push#" "$ROOT/pgbr-zst.conf" > "$ROOT/pgbr-push.conf"
chmod 644 "$ROOT/pgbr-push.conf"
as_pg pgbackrest --config="$ROOT/pgbr-push.conf" --stanza=bench stanza-create >/dev/null
drop_caches
t0=$(now)
as_pg sh -c "for f in $ROOT/walcopy/*; do pgbackrest --config=$ROOT/pgbr-push.conf --stanza=bench archive-push \$f || exit 1; done"
t1=$(now)
report "pgbackrest archive-push (zst, sync) of $n segments, one process each: $(secs "$t0" "$t1") s, stored $(du -sb "$ROOT/pgbr-push/archive" | cut -f1) bytes"
fi

# --- encryption at rest: the same work into a clear and an encrypted repository -------
# Base backup (first backup into an empty repository, so every chunk is hashed, compressed,
# sealed and written), restore of its files, and WAL pushed one process per segment as
# archive_command does; clear and encrypted alternate within each round so that other
# load on the machine falls on both alike. Figures are the medians of ROUNDS rounds.
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
seconds_of() { sed 's/.*"seconds":\([0-9.e+-]*\).*/\1/'; }
repo_config() {  # file, directory, clear|encrypted
    {
        echo "repository = \"file\""
        echo "path = \"$2\""
        if [ "$3" = encrypted ]; then
            echo "repository_cipher = \"$CIPHER\""
            echo "repository_key_file = \"$ROOT/repository.key\""
        fi
    } > "$1"
    chmod 644 "$1"
}
if want encryption; then
    (umask 077; openssl rand -hex 32 > "$ROOT/repository.key")
    chown postgres: "$ROOT/repository.key"   # wal-push runs as postgres, as archive_command does
    if [ ! -d "$ROOT/walcopy" ]; then
        mkdir -p "$ROOT/walcopy"
        n=0
        for f in "$ROOT"/pg/data/pg_wal/000000010000000[0-9A-F]*; do
            [ -f "$f" ] && [ "${#f}" -eq $((${#ROOT} + 40)) ] || continue
            cp "$f" "$ROOT/walcopy/"
            n=$((n + 1)); [ "$n" -ge "$PUSH_SEGMENTS" ] && break
        done
        chown -R postgres: "$ROOT/walcopy"
    fi
    segments=$(find "$ROOT/walcopy" -type f | wc -l)
    rm -f "$ROOT"/enc-*.times
    for round in $(seq "$ROUNDS"); do
        for mode in clear encrypted; do
            dir="$ROOT/enc-$mode"
            rm -rf "$dir" "$dir-wal" "$ROOT/enc-restore"
            mkdir -p "$dir" "$dir-wal"
            chown postgres: "$dir" "$dir-wal"
            repo_config "$dir.toml" "$dir" "$mode"
            repo_config "$dir-wal.toml" "$dir-wal" "$mode"
            drop_caches
            out=$("$CARGO_TARGET_DIR/release/examples/bench_backup" --dir "$ROOT/pg" --port "$PORT" \
                --repo-config "$dir.toml" --instance "$INSTANCE")
            echo "$out" | seconds_of >> "$ROOT/enc-$mode-backup.times"
            report "round $round, $mode: base backup $out, repository $(du -sb "$dir" | cut -f1) bytes"
            drop_caches
            out=$("$CARGO_TARGET_DIR/release/examples/bench_restore" --repo-config "$dir.toml" \
                --instance "$INSTANCE" --dest "$ROOT/enc-restore")
            echo "$out" | seconds_of >> "$ROOT/enc-$mode-restore.times"
            report "round $round, $mode: restore $out"
            drop_caches
            t0=$(now)
            as_pg sh -c "for f in $ROOT/walcopy/*; do $ROOT/bin/lifeboat-wal wal-push --repo-config $dir-wal.toml --instance $INSTANCE \$f || exit 1; done"
            t1=$(now)
            secs "$t0" "$t1" >> "$ROOT/enc-$mode-push.times"
            report "round $round, $mode: wal-push of $segments segments, one process each: $(secs "$t0" "$t1") s, stored $(du -sb "$dir-wal" | cut -f1) bytes"
        done
    done
    rm -rf "$ROOT/enc-restore"
    for what in backup restore push; do
        c=$(median < "$ROOT/enc-clear-$what.times")
        e=$(median < "$ROOT/enc-encrypted-$what.times")
        report "encryption ($CIPHER) $what, median of $ROUNDS: clear $c s, encrypted $e s, encrypted/clear $(echo "scale=3; $e / $c" | bc)"
    done
    # The CPU cost alone, on one thread: the relation files (as a base backup stores
    # them, zstd 3) and the WAL (as wal-push stores it, zstd 1).
    report "codec, relation files: $("$CARGO_TARGET_DIR/release/examples/bench_codec" --files "$ROOT/pg/data/base" \
        --limit-mib 1024 --level 3 --rounds "$ROUNDS" --cipher "$CIPHER")"
    report "codec, WAL: $("$CARGO_TARGET_DIR/release/examples/bench_codec" --files "$ROOT/walcopy" \
        --limit-mib 1024 --level 1 --rounds "$ROUNDS" --cipher "$CIPHER")"
    report "codec, random bytes (incompressible): $("$CARGO_TARGET_DIR/release/examples/bench_codec" --random-mib 512 \
        --level 3 --rounds "$ROUNDS" --cipher "$CIPHER")"
fi

echo "results in $ROOT/results.txt"
