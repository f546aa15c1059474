-- The login role lifeboat backs up as: it reads everything and writes
-- nothing (spec SC-4.3), on PostgreSQL 14 or later. Run it once, as a
-- superuser, connected to the database to back up; running it again is
-- harmless (it only sets the password and grants again).
--
--   psql -v ON_ERROR_STOP=1 -v role=lifeboat_backup -v password_file=secrets/db_password \
--        -d smart_ai_hub -f scripts/backup-role.sql
--
-- Variables (psql -v NAME=VALUE):
--   role           the role's name (required)
--   password_file  a file holding its password, e.g. the db_password Docker
--                  secret; or `password` with the value itself (it then sits
--                  in the shell history and the process list: prefer the file)
--   rehearsal      set it (-v rehearsal=1) to also allow CREATEDB, so that
--                  `verify --restore-test` and [verify] restore_test_url can
--                  run as this role: it creates and drops scratch databases of
--                  its own, and still cannot write to any other
--
-- What it grants, and why that is all a backup needs:
--   pg_read_all_data  SELECT on every table, view and sequence and USAGE on
--                     every schema, including those a migration adds after
--                     this script ran (a GRANT SELECT ON ALL TABLES would not
--                     cover them). It also lets pg_dump take its ACCESS SHARE
--                     locks and run on the exported snapshot (--snapshot).
--   CONNECT           on this database (PUBLIC may have lost it).
-- pg_dumpall --roles-only --no-role-passwords reads pg_roles, which any role
-- may; pg_export_snapshot() needs no privilege. Row-level security still
-- applies: a policy that would hide rows fails the backup loudly (FR-14.6).

\set ON_ERROR_STOP on

\if :{?role}
\else
  \echo 'backup-role.sql: name the role: psql -v role=lifeboat_backup ...'
  SELECT 1 / 0 AS missing_role;
\endif

\if :{?password_file}
  \set password `cat :'password_file'`
\endif
\if :{?password}
\else
  \echo 'backup-role.sql: give its password: -v password_file=secrets/db_password'
  SELECT 1 / 0 AS missing_password;
\endif

SELECT current_setting('server_version_num')::int >= 140000 AS pg14 \gset
\if :pg14
\else
  \echo 'backup-role.sql: pg_read_all_data needs PostgreSQL 14 or later'
  SELECT 1 / 0 AS server_too_old;
\endif

SELECT format('CREATE ROLE %I', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec

\if :{?rehearsal}
  \set createdb CREATEDB
\else
  \set createdb NOCREATEDB
\endif
-- The password goes to the server in this statement only; psql does not echo it.
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT %s PASSWORD %L',
              :'role', :'createdb', :'password') \gexec
\unset password
SELECT format('GRANT pg_read_all_data TO %I', :'role') \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'role') \gexec

\echo backup-role.sql: done
