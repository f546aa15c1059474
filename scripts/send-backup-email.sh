#!/usr/bin/env bash
# send-backup-email.sh — the old "mail the backup again" command (spec DS-6).
# It is `lifeboat send [ARCHIVE]`: without an argument the newest archive,
# else the one named. Exit 0 sent, 1 not sent, 2 could not run.
#
#   send-backup-email.sh
#   send-backup-email.sh /backups/critical_backup_20251017_020000.tar.gz
set -euo pipefail
exec lifeboat send "$@"
