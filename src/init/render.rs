//! The commented config file `init` writes.

use std::path::Path;

use crate::config::DatabaseConfig;
use crate::model::{human_bytes, Mode, TableName};
use crate::plan::Plan;

use super::{Decision, InitOptions};

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn table_str(t: &TableName) -> String {
    toml_str(&if t.schema == "public" { t.name.clone() } else { t.to_string() })
}

/// The config file: `[database]` (never a password), `[storage]`, `[scope]`
/// with one comment per table, a commented `[files]`, and the plan's
/// estimate and warnings at the end.
pub fn render(db: &DatabaseConfig, storage: &Path, decisions: &[Decision], plan: &Plan, opts: &InitOptions) -> String {
    let mut s = String::new();
    let count = |m: Mode| decisions.iter().filter(|d| d.mode == m).count();
    s.push_str(&format!(
        "# lifeboat configuration proposed by `lifeboat init` for {} (PostgreSQL {}).\n\
         # {} tables: {} full, {} window, {} schema only. Each table's mode and the reason for it\n\
         # are below: review them, then run `lifeboat plan` to see the effect.\n\n",
        db.display_target(),
        plan.server_version,
        decisions.len(),
        count(Mode::Full),
        count(Mode::Window),
        count(Mode::Schema)
    ));
    s.push_str("[database]\n");
    s.push_str(&format!(
        "host = {}\nport = {}\nname = {}\nuser = {}\n",
        toml_str(&db.host),
        db.port,
        toml_str(&db.name),
        toml_str(&db.user)
    ));
    if db.sslmode != crate::config::SslMode::Prefer {
        s.push_str(&format!("sslmode = {}\n", toml_str(db.sslmode.as_str())));
    }
    for (key, path) in [("sslrootcert", &db.sslrootcert), ("sslcert", &db.sslcert), ("sslkey", &db.sslkey)] {
        if let Some(p) = path {
            s.push_str(&format!("{key} = {}\n", toml_str(&p.display().to_string())));
        }
    }
    s.push_str(
        "# The password is never written here: set POSTGRES_PASSWORD or DATABASE_URL, or\n\
         # password_file = \"/run/secrets/db_password\"\n\n",
    );
    s.push_str(&format!("[storage]\ndir = {}\n\n", toml_str(&storage.display().to_string())));
    let estimate = plan.estimated_archive_bytes.max(0) as u64;
    if estimate < 2 * crate::model::MB {
        // The default band (min_size_mb = 1) would call every archive of a
        // small database too small, and `check` would be unhealthy from the
        // first night: a false page in the first hour.
        s.push_str(&format!(
            "[monitor]\n# The estimated archive (~{}) is under 2 MB: no fixed lower bound (the default, 1 MB,\n\
             # would call every archive of this database too small). An archive below half the median\n\
             # of the good runs before it is still flagged. Raise it as the data grows.\nmin_size_mb = 0\n\n",
            human_bytes(estimate)
        ));
    }
    s.push_str(
        "# Deployment files to keep with the database (relative to base_dir), e.g.:\n\
         # [files]\n# base_dir = \"/app\"\n# include = [\".env.production\", \"docker-compose.prod.yml\"]\n\n",
    );

    s.push_str("[scope]\n# A table named nowhere below is backed up in full and flagged by `lifeboat plan`.\ndefault = \"full\"\n");
    for (key, mode) in [("full", Mode::Full), ("schema_only", Mode::Schema)] {
        let list: Vec<&Decision> = decisions.iter().filter(|d| d.mode == mode).collect();
        if list.is_empty() {
            s.push_str(&format!("{key} = []\n"));
            continue;
        }
        s.push_str(&format!("{key} = [\n"));
        for d in list {
            s.push_str(&format!("  {}, # {}\n", table_str(&d.table), d.reason));
        }
        s.push_str("]\n");
    }
    for d in decisions.iter().filter(|d| d.mode == Mode::Window) {
        s.push_str(&format!(
            "\n# {}: {}\n[[scope.window]]\ntables = [{}]\ncolumn = {}\nkeep = {}\n",
            d.table,
            d.reason,
            table_str(&d.table),
            toml_str(d.column.as_deref().unwrap_or_default()),
            toml_str(&opts.keep.to_string())
        ));
    }
    let closure: u64 = plan.tables.iter().map(|t| t.closure_rows).sum();
    s.push_str(&format!(
        "\n# Estimated archive size: ~{} (the plan's estimate with these modes; closure adds {closure} rows).\n",
        human_bytes(plan.estimated_archive_bytes.max(0) as u64)
    ));
    for w in &plan.warnings {
        s.push_str(&format!("# warning: {w}\n"));
    }
    s
}
