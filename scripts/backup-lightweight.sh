#!/usr/bin/env bash
# backup-lightweight.sh — the old "back up now" command, kept for operators'
# habits and cron lines (spec DS-6, US-13/AC-3). It is `lifeboat backup`:
# snapshot, dump, archive, verify, deliver, record, prune. Arguments pass
# through (e.g. --no-deliver, --output-dir DIR); the exit code is lifeboat's
# (0 done, 1 failed, 2 could not run, 3 archived but not delivered).
#
#   docker compose -f docker-compose.prod.yml -f docker-compose.backup.yml exec backup backup-lightweight.sh
set -euo pipefail
# Every run appends to the log file the daemon writes (the image's default;
# set LIFEBOAT_LOG__FILE to another path, or "" for none).
export LIFEBOAT_LOG__FILE="${LIFEBOAT_LOG__FILE-/var/log/backup.log}"
exec lifeboat backup "$@"
