#!/usr/bin/env bash
# backup-monitor.sh — the old monitor command (spec DS-6), same exit-code
# meaning: 0 healthy, anything else a problem.
#
#   backup-monitor.sh [health-check]   lifeboat check: healthy or the reasons
#   backup-monitor.sh status           lifeboat list: the archives and their state
#
# Further arguments pass through (e.g. `backup-monitor.sh health-check --json`
# is `lifeboat check --json`).
set -euo pipefail
case "${1:-health-check}" in
  health-check) shift $(($# > 0)); exec lifeboat check "$@" ;;
  status) shift; exec lifeboat list "$@" ;;
  *) echo "usage: backup-monitor.sh [health-check|status] [lifeboat options]" >&2; exit 2 ;;
esac
