//! The Smart AI Hub–like fixture (`tests/fixtures/saas.sql`) and the scope a
//! realistic config gives it. The fixture's header lists the facts tests
//! can rely on (which rows cross the 3-month cutoff, closure paths).

use std::path::{Path, PathBuf};

use super::TestDb;

/// The fixture's SQL: plain SQL, loadable by `psql -f` or `batch_execute`.
pub const SAAS_SQL: &str = include_str!("../../fixtures/saas.sql");

/// `[scope]` of a realistic config for the fixture. `feature_flags` is
/// deliberately unmentioned (default-include).
pub const SAAS_CONFIG_SCOPE: &str = include_str!("../../fixtures/saas-scope.toml");

/// `(table, rows its mode selects, rows closure adds)` for every fixture
/// table under [`SAAS_CONFIG_SCOPE`], as the fixture's header states (and
/// `harness::saas_expected_rows_match_an_independent_count` checks).
/// Window rows are those within 3 months; schema-only tables select none.
pub const SAAS_EXPECTED_ROWS: &[(&str, i64, i64)] = &[
    ("_prisma_migrations", 12, 0),
    ("conversations", 110, 39),
    ("credit_accounts", 200, 0),
    ("credit_transactions", 1263, 35),
    ("daily_login_rewards", 371, 0),
    ("feature_flags", 8, 0),
    ("messages", 628, 0),
    ("payments", 136, 0),
    ("permissions", 12, 0),
    ("point_accounts", 200, 0),
    ("point_transactions", 630, 0),
    ("promo_code_usages", 74, 0),
    ("promo_codes", 20, 0),
    ("referral_rewards", 7, 0),
    ("role_permissions", 30, 0),
    ("roles", 4, 0),
    ("sessions", 0, 0),
    ("transfers", 95, 0),
    ("usage_logs", 0, 1320),
    ("user_profiles", 200, 0),
    ("user_roles", 208, 0),
    ("users", 200, 0),
];

/// Loads the fixture into `db` (in one implicit transaction).
pub fn seed_saas(db: &TestDb) {
    db.exec(SAAS_SQL);
}

/// Where the fixture file is, for tests that load it with psql.
pub fn saas_sql_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/saas.sql")
}

/// A complete config: `[database] url`, `[storage] dir` and
/// [`SAAS_CONFIG_SCOPE`]. Append sections to taste.
pub fn saas_config(db_url: &str, storage_dir: &Path) -> String {
    super::TestConfig::new(db_url, storage_dir).section(SAAS_CONFIG_SCOPE).toml()
}

/// A TOML basic string.
pub fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
