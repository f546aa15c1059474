//! The target's safety: never the configured source by accident, never a
//! non-empty database without `--force` (and then say what is dropped), and
//! how to empty one again: listing user objects, dropping schemas while
//! keeping `public`'s owner and privileges.

use std::collections::BTreeMap;

use crate::pg::Client;

use crate::config::DatabaseConfig;
use crate::error::{Error, Result};
use crate::pg::{db_err, quote_ident};

/// Whether a target URL points at the configured source database.
pub(super) fn same_database(target: &tokio_postgres::Config, src: &DatabaseConfig) -> bool {
    let norm = |h: &str| if h == "localhost" || h == "::1" { "127.0.0.1".to_string() } else { h.to_string() };
    let host = match target.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => norm(h),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "127.0.0.1".into(),
    };
    host == norm(&src.host)
        && target.get_ports().first().copied().unwrap_or(5432) == src.port
        && target.get_dbname() == Some(src.name.as_str())
}

/// Drops every user schema of a non-empty target (`--force`), recreating
/// `public` with its owner and privileges.
pub(super) fn drop_existing(client: &mut Client, existing: &BTreeMap<String, Vec<String>>) -> Result<()> {
    let public = if existing.contains_key("public") { Some(public_schema_setup(client)?) } else { None };
    for schema in existing.keys() {
        client
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", quote_ident(schema)))
            .map_err(db_err(format!("dropping schema {schema}")))?;
    }
    if let Some(setup) = public {
        client.batch_execute(&format!("CREATE SCHEMA public; {setup}")).map_err(db_err("recreating schema public"))?;
    }
    Ok(())
}

/// After a failed parallel restore (rows were committed table by table):
/// drops what it created so the target is empty again, and says so.
pub(super) fn emptied(e: Error, client: &mut Client, target: &str) -> Error {
    let cleanup = user_tables(client).and_then(|left| {
        let setup = if left.contains_key("public") { Some(public_schema_setup(client)?) } else { None };
        for schema in left.keys() {
            client
                .batch_execute(&format!("DROP SCHEMA {} CASCADE", quote_ident(schema)))
                .map_err(db_err("cleaning up"))?;
        }
        if let Some(setup) = setup {
            client.batch_execute(&format!("CREATE SCHEMA public; {setup}")).map_err(db_err("cleaning up"))?;
        }
        Ok(())
    });
    let state = match cleanup {
        Ok(()) => format!("{target} was emptied again (a --jobs restore cannot roll back as one transaction)"),
        Err(c) => format!("cleaning up {target} failed too ({c}); drop its schemas by hand before retrying"),
    };
    e.noted(format!("The parallel restore failed: {state}."))
}

/// Statements that give a new `public` schema the current one's owner,
/// privileges and comment. Recreated as the restoring role's, `public` would
/// be owned by it (a superuser, typically) instead of `pg_database_owner`,
/// and the application's own role could no longer create tables in it.
fn public_schema_setup(client: &mut Client) -> Result<String> {
    let row = client
        .query_one(
            "SELECT format('ALTER SCHEMA public OWNER TO %I', r.rolname) \
                 || coalesce((SELECT string_agg(format('; GRANT %s ON SCHEMA public TO %s%s', a.privilege_type, \
                                  CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(g.rolname) END, \
                                  CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END), '') \
                              FROM aclexplode(n.nspacl) a LEFT JOIN pg_roles g ON g.oid = a.grantee \
                              WHERE a.grantee <> n.nspowner), '') \
                 || format('; COMMENT ON SCHEMA public IS %L', obj_description(n.oid, 'pg_namespace')) \
             FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner WHERE n.nspname = 'public'",
            &[],
        )
        .map_err(db_err("reading the owner and privileges of schema public"))?;
    Ok(row.get(0))
}

/// Tables outside the system schemas, by schema.
pub(super) fn user_tables(client: &mut Client) -> Result<BTreeMap<String, Vec<String>>> {
    let rows = client
        .query(
            // Relations, plus functions and standalone types (not owned by
            // an extension): a schema.sql would collide with those too.
            "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname !~ '^pg_(toast|temp)' \
             UNION ALL \
             SELECT n.nspname::text, 'function ' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)' \
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e') \
             UNION ALL \
             SELECT n.nspname::text, 'type ' || t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE t.typtype IN ('e', 'd', 'r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname !~ '^pg_(toast|temp)' \
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e') \
             ORDER BY 1, 2",
            &[],
        )
        .map_err(db_err("listing the target's tables"))?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows {
        out.entry(r.get(0)).or_default().push(r.get(1));
    }
    Ok(out)
}

pub(super) fn summarize(tables: &BTreeMap<String, Vec<String>>) -> String {
    let all: Vec<String> = tables.iter().flat_map(|(s, ts)| ts.iter().map(move |t| format!("{s}.{t}"))).collect();
    if all.len() > 10 {
        format!("{}, …", all[..10].join(", "))
    } else {
        all.join(", ")
    }
}

/// `restore --create`: creates the target database when it does not exist,
/// as pg_restore's users expect. The session goes to the server's
/// `postgres` maintenance database with the target's role and password,
/// so the new database is owned by that role; it is made from `template0`
/// (nothing a site added to `template1` comes along) with the archive's
/// encoding and locale (`encoding`; the server's default for an archive
/// that does not record them, and the progress detail says so). A server
/// without that locale refuses, naming it, and nothing is created. An
/// existing database is left as it is: the usual checks (empty, or
/// `--force`) apply to it.
pub(super) fn create_if_missing(
    target: &crate::config::Target,
    encoding: Option<&crate::archive::manifest::DatabaseEncoding>,
    progress: crate::events::Progress,
    cancel: &crate::events::CancelToken,
) -> Result<()> {
    let Some(name) = target.get_dbname().map(str::to_string) else { return Ok(()) };
    let mut admin = target.clone();
    admin.config.dbname("postgres");
    let admin_name = crate::pg::describe(&admin);
    let mut client = crate::pg::connect_with(&admin, &admin_name, super::DB_HINT, cancel)
        .map_err(|e| e.noted(format!("--create connects to the server's postgres database to create {name:?}")))?;
    let exists = client
        .query("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .map_err(db_err(format!("looking for database {name:?}")))?;
    if !exists.is_empty() {
        progress(crate::events::Event::Detail(format!("database {name:?} exists; --create leaves it as it is")));
        return Ok(());
    }
    let options = encoding.map(|e| format!(" {}", e.create_options())).unwrap_or_default();
    let sql = format!("CREATE DATABASE {} TEMPLATE template0{options}", quote_ident(&name));
    client.batch_execute(&sql).map_err(|e| match (crate::pg::sqlstate(&e), encoding) {
        (Some("42501"), _) => Error::Refused(format!(
            "cannot create database {name:?} on {admin_name}: {}; the --db role needs CREATEDB \
             (ALTER ROLE … CREATEDB), or create it first with createdb",
            crate::pg::pg_message(&e)
        )),
        // 42809 invalid locale name, 22023 encoding and locale that do not
        // match, 42704 unknown encoding, 0A000 a build without ICU, 42601 a
        // server before 15 (no LOCALE_PROVIDER): this server cannot hold the
        // archive's encoding and locale as they are.
        (Some("42809" | "22023" | "42704" | "0A000" | "42601"), Some(enc)) => Error::Refused(format!(
            "cannot create database {name:?} on {admin_name} with the archive's encoding {} and locale {}: {}; \
             install that locale on the server (then restart PostgreSQL), or create the database yourself \
             with a locale it has (createdb -T template0 -E {} --locale=LOCALE {name}; `locale -a` lists them) \
             and restore without --create",
            enc.encoding,
            locale_shown(enc),
            crate::pg::pg_message(&e),
            enc.encoding,
        )),
        _ => db_err(format!("creating database {name:?}"))(e),
    })?;
    progress(crate::events::Event::Detail(match encoding {
        Some(enc) => format!(
            "created database {name:?} (from template0, encoding {}, locale {}) for the restore",
            enc.encoding,
            locale_shown(enc)
        ),
        None => format!(
            "created database {name:?} (from template0) for the restore with the server's default encoding \
             and locale: the archive does not record its database's (made before lifeboat recorded them)"
        ),
    }));
    Ok(())
}

/// The locale as one name when collate and ctype agree (`collate/ctype`
/// otherwise), with the ICU or builtin locale after the provider's name.
fn locale_shown(enc: &crate::archive::manifest::DatabaseEncoding) -> String {
    let libc = if enc.collate == enc.ctype { enc.collate.clone() } else { format!("{}/{}", enc.collate, enc.ctype) };
    match &enc.provider_locale {
        Some(l) => format!("{libc} ({} {l})", enc.locale_provider),
        None => libc,
    }
}
