//! A config layer is a TOML table of sections (the file, the environment,
//! the flags, the time zone); [`overlay`] puts one over another. Shared by
//! the loader (`load.rs`) and the environment's layer (`env.rs`).

use super::secret::SECRET_FILE_KEYS;

/// Puts every key of `top` over `base`, one level of sections deep.
pub(super) fn overlay(base: &mut toml::Table, top: toml::Table) {
    for (section, value) in top {
        match (base.get_mut(&section), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => {
                // A secret and its `*_file` are one setting: a layer that
                // sets either replaces both.
                for (_, plain, file) in SECRET_FILE_KEYS.iter().filter(|(s, _, _)| *s == section) {
                    if t.contains_key(*plain) || t.contains_key(*file) {
                        b.remove(*plain);
                        b.remove(*file);
                    }
                }
                for (k, v) in t {
                    b.insert(k, v);
                }
            }
            (_, v) => {
                base.insert(section, v);
            }
        }
    }
}
