#!/bin/sh
# Scheduled logical backups (compose profile `backup`): pg_dump in custom format every
# BACKUP_INTERVAL_SECONDS into BACKUP_DIR (/backups), keeping BACKUP_KEEP_DAYS days.
# Connection from the libpq variables (PGHOST, PGUSER, PGDATABASE, PGPASSWORD or
# PGPASSFILE); the password may also come from a file named by PGPASSWORD_FILE (a
# Compose secret). Restore (TimescaleDB needs its pre/post-restore calls):
# docs/DOCKER_WORKFLOWS.md.
set -eu

interval="${BACKUP_INTERVAL_SECONDS:-86400}"
keep_days="${BACKUP_KEEP_DAYS:-7}"
dir="${BACKUP_DIR:-/backups}"
if [ -n "${PGPASSWORD_FILE:-}" ]; then
    PGPASSWORD="$(cat "$PGPASSWORD_FILE")"
    export PGPASSWORD
fi

# Stop between dumps at once on `docker compose stop`; a dump in progress is finished first.
sleeper=""
trap 'echo "backup: stopping"; [ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null; exit 0' TERM INT

while :; do
    stamp="$(date -u +%Y%m%dT%H%M%SZ)"
    target="${dir}/${PGDATABASE}-${stamp}.dump"
    # Written under a temporary name and renamed, so a listing never shows a partial dump.
    if pg_dump --format=custom --compress=6 --file="${target}.partial"; then
        mv "${target}.partial" "${target}"
        echo "backup: wrote ${target} ($(du -h "${target}" | cut -f1))"
    else
        rm -f "${target}.partial"
        echo "backup: pg_dump failed; keeping the previous dumps" >&2
    fi
    find "${dir}" -name "${PGDATABASE}-*.dump" -mtime "+${keep_days}" -print -delete
    sleep "${interval}" &
    sleeper=$!
    wait "$sleeper"
done
