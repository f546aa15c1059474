//! One builder for the `lifeboat.toml` a test runs with: `[database]` with
//! a URL, `[storage]` with a directory, then whatever sections the test
//! needs, in the order it adds them.

use std::path::{Path, PathBuf};

use super::toml_string;

/// A test config, built up and then rendered ([`Self::toml`]) or written
/// ([`Self::write`]).
///
/// ```ignore
/// let config = TestConfig::new(&db.url, dir.path().join("b")).database("connect_timeout = \"3s\"").write(dir.path());
/// ```
#[derive(Debug, Clone)]
pub struct TestConfig {
    url: String,
    storage: PathBuf,
    database: Vec<String>,
    sections: Vec<String>,
}

impl TestConfig {
    /// `[database] url` and `[storage] dir`, nothing else.
    pub fn new(url: &str, storage: impl AsRef<Path>) -> TestConfig {
        TestConfig {
            url: url.to_string(),
            storage: storage.as_ref().to_path_buf(),
            database: Vec::new(),
            sections: Vec::new(),
        }
    }

    /// One more `key = value` line in `[database]` (after `url`).
    pub fn database(mut self, line: impl Into<String>) -> TestConfig {
        self.database.push(line.into());
        self
    }

    /// More TOML after `[storage]` (whole sections, or keys of `[storage]`
    /// when it starts with no header), appended in the order given.
    pub fn section(mut self, text: impl Into<String>) -> TestConfig {
        self.sections.push(text.into());
        self
    }

    /// The TOML text.
    pub fn toml(&self) -> String {
        let mut t = format!("[database]\nurl = {}\n", toml_string(&self.url));
        for line in &self.database {
            t.push_str(line.trim_end_matches('\n'));
            t.push('\n');
        }
        t.push_str(&format!("\n[storage]\ndir = {}\n", toml_string(&self.storage.to_string_lossy())));
        for s in &self.sections {
            t.push('\n');
            t.push_str(s);
            if !s.ends_with('\n') {
                t.push('\n');
            }
        }
        t
    }

    /// Writes `dir/lifeboat.toml` ([`super::write_config`]); its path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        super::write_config(dir, &self.toml())
    }
}
