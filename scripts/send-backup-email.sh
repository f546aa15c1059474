#!/usr/bin/env bash
# send-backup-email.sh — the old "mail the backup again" command (spec DS-6).
# It is `lifeboat send [ARCHIVE]`: without an argument the newest archive,
# else the one named. Exit 0 sent, 1 not sent, 2 could not run.
#
#   send-backup-email.sh
#   send-backup-email.sh /backups/critical_backup_20251017_020000.tar.gz
set -euo pipefail
# Every run appends to the log file the daemon writes (the image's default;
# set LIFEBOAT_LOG__FILE to another path, or "" for none).
export LIFEBOAT_LOG__FILE="${LIFEBOAT_LOG__FILE-/var/log/backup.log}"
exec lifeboat send "$@"
