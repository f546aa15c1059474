//! Owner and privilege statements in pg_dump output, and the roles they
//! name: `ALTER … OWNER TO r`, `GRANT … TO r`, `REVOKE … FROM r`,
//! `ALTER DEFAULT PRIVILEGES FOR ROLE r …`, `SET SESSION AUTHORIZATION 'r'`.
//! A restore skips them all with `--no-owner`, and otherwise skips exactly
//! those that name a role the target does not have (roles are cluster-wide
//! and not part of a database's dump).

use std::collections::{BTreeMap, BTreeSet};

use crate::pg::Client;

use crate::error::Result;
use crate::pg::db_err;

/// What an owner or privilege statement is and the roles it names.
#[derive(Debug, PartialEq)]
pub struct Needs {
    pub kind: Kind,
    pub roles: Vec<String>,
}

#[derive(Debug, PartialEq, Clone, Copy)]
pub enum Kind {
    /// `ALTER … OWNER TO`, `[RE]SET SESSION AUTHORIZATION`.
    Owner,
    /// `GRANT`, `REVOKE`, `ALTER DEFAULT PRIVILEGES`.
    Privilege,
}

/// Owner and privilege statements are short; anything longer (a function
/// body) is not one and is not tokenized.
const MAX_CLASSIFIED: usize = 64 * 1024;

#[derive(Debug, PartialEq)]
enum Token {
    /// An unquoted word, lowercased (pg_dump quotes every other name).
    Word(String),
    /// A `"quoted"` identifier or a `'literal'`, unescaped.
    Name(String),
    Punct(char),
}

/// `Some` for an owner or privilege statement.
pub fn classify(sql: &str) -> Option<Needs> {
    let head = sql.trim_start().get(..6)?.to_ascii_lowercase();
    if !["alter ", "grant ", "revoke", "set se", "reset "].iter().any(|p| head.starts_with(p))
        || sql.len() > MAX_CLASSIFIED
    {
        return None;
    }
    let t = tokens(sql);
    let word = |i: usize, w: &str| matches!(t.get(i), Some(Token::Word(x)) if x == w);
    let n = t.iter().rposition(|x| *x != Token::Punct(';')).map_or(0, |i| i + 1);
    if word(0, "grant") || word(0, "revoke") {
        let key = if word(0, "grant") { "to" } else { "from" };
        return Some(Needs { kind: Kind::Privilege, roles: role_list(&t[..n], key) });
    }
    if word(0, "alter") && word(1, "default") && word(2, "privileges") {
        let mut roles = Vec::new();
        if (word(3, "for")) && (word(4, "role") || word(4, "user")) {
            roles.extend(role_at(&t, 5));
        }
        let key = if t.iter().any(|x| *x == Token::Word("revoke".into())) { "from" } else { "to" };
        roles.extend(role_list(&t[..n], key));
        return Some(Needs { kind: Kind::Privilege, roles });
    }
    if word(0, "alter") && n >= 3 && word(n - 3, "owner") && word(n - 2, "to") {
        return Some(Needs { kind: Kind::Owner, roles: role_at(&t, n - 1).into_iter().collect() });
    }
    if (word(0, "set") || word(0, "reset")) && word(1, "session") && word(2, "authorization") {
        return Some(Needs { kind: Kind::Owner, roles: role_at(&t, 3).into_iter().collect() });
    }
    None
}

/// The roles after the last `key` (`TO`/`FROM`), up to `WITH`, `GRANTED`,
/// `CASCADE`, `RESTRICT` or the end.
fn role_list(t: &[Token], key: &str) -> Vec<String> {
    let Some(start) = t.iter().rposition(|x| *x == Token::Word(key.into())) else { return Vec::new() };
    let mut out = Vec::new();
    for (i, x) in t.iter().enumerate().skip(start + 1) {
        match x {
            Token::Word(w) if ["with", "granted", "cascade", "restrict"].contains(&w.as_str()) => break,
            Token::Punct(',') => {}
            _ => out.extend(role_at(t, i)),
        }
    }
    out
}

/// The role named by token `i`, unless it is a keyword that names none.
fn role_at(t: &[Token], i: usize) -> Option<String> {
    match t.get(i)? {
        Token::Name(n) => Some(n.clone()),
        Token::Word(w)
            if !["public", "group", "current_user", "session_user", "current_role", "default"]
                .contains(&w.as_str()) =>
        {
            Some(w.clone())
        }
        _ => None,
    }
}

fn tokens(sql: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                let mut s = String::new();
                while let Some(d) = chars.next() {
                    if d == c {
                        if chars.peek() == Some(&c) {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    s.push(d);
                }
                out.push(Token::Name(s));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut s = String::from(c);
                while let Some(&d) = chars.peek() {
                    if d.is_alphanumeric() || d == '_' || d == '$' {
                        s.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Token::Word(s.to_lowercase()));
            }
            c if c.is_whitespace() => {}
            c => out.push(Token::Punct(c)),
        }
    }
    out
}

/// Which owner and privilege statements a restore runs.
pub struct Policy {
    /// `--no-owner`: none of them.
    pub skip_all: bool,
    /// Roles that exist on the target.
    pub existing: BTreeSet<String>,
    /// Roles named by skipped statements that the target does not have,
    /// with how many statements each made skip.
    pub missing: BTreeMap<String, u64>,
    pub skipped: u64,
}

impl Policy {
    /// Reads the target's roles, unless `no_owner` skips every owner and
    /// privilege statement anyway.
    pub fn for_target(client: &mut Client, no_owner: bool) -> Result<Policy> {
        let existing = if no_owner {
            BTreeSet::new()
        } else {
            let rows = client
                .query("SELECT rolname::text FROM pg_roles", &[])
                .map_err(db_err("listing the target's roles"))?;
            rows.iter().map(|r| r.get(0)).collect()
        };
        Ok(Policy { skip_all: no_owner, existing, missing: BTreeMap::new(), skipped: 0 })
    }

    /// Whether to skip `sql`; counts what is skipped and why.
    pub fn skip(&mut self, sql: &str) -> bool {
        let Some(needs) = classify(sql) else { return false };
        if self.skip_all {
            self.skipped += 1;
            return true;
        }
        let absent: Vec<&String> = needs.roles.iter().filter(|r| !self.existing.contains(*r)).collect();
        if absent.is_empty() {
            return false;
        }
        for r in absent {
            *self.missing.entry(r.clone()).or_default() += 1;
        }
        self.skipped += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(sql: &str) -> Option<(Kind, Vec<&'static str>)> {
        classify(sql).map(|n| (n.kind, n.roles.into_iter().map(|r| &*Box::leak(r.into_boxed_str())).collect()))
    }

    // covers: FR-7.11
    #[test]
    fn finds_the_roles_pg_dump_statements_name() {
        use Kind::*;
        assert_eq!(roles("ALTER TABLE public.t OWNER TO app;"), Some((Owner, vec!["app"])));
        assert_eq!(
            roles("ALTER FUNCTION public.f(x integer) OWNER TO \"Odd \"\"Role\";"),
            Some((Owner, vec!["Odd \"Role"]))
        );
        assert_eq!(roles("ALTER SCHEMA app OWNER TO pg_database_owner;"), Some((Owner, vec!["pg_database_owner"])));
        assert_eq!(roles("GRANT SELECT,UPDATE ON TABLE public.t TO reader;"), Some((Privilege, vec!["reader"])));
        assert_eq!(
            roles("GRANT SELECT(\"to\") ON TABLE public.\"from\" TO a, \"B\" WITH GRANT OPTION;"),
            Some((Privilege, vec!["a", "B"]))
        );
        assert_eq!(roles("GRANT ALL ON SCHEMA public TO PUBLIC;"), Some((Privilege, vec![])));
        assert_eq!(roles("REVOKE USAGE ON SCHEMA public FROM PUBLIC;"), Some((Privilege, vec![])));
        assert_eq!(roles("REVOKE ALL ON FUNCTION public.f() FROM old CASCADE;"), Some((Privilege, vec!["old"])));
        assert_eq!(
            roles("ALTER DEFAULT PRIVILEGES FOR ROLE owner1 IN SCHEMA app GRANT SELECT ON TABLES  TO reader;"),
            Some((Privilege, vec!["owner1", "reader"]))
        );
        assert_eq!(
            roles("ALTER DEFAULT PRIVILEGES FOR ROLE o REVOKE ALL ON FUNCTIONS  FROM PUBLIC;"),
            Some((Privilege, vec!["o"]))
        );
        assert_eq!(roles("SET SESSION AUTHORIZATION 'grantor';"), Some((Owner, vec!["grantor"])));
        assert_eq!(roles("RESET SESSION AUTHORIZATION;"), Some((Owner, vec![])));
        for other in [
            "ALTER TABLE ONLY public.t ADD CONSTRAINT t_pkey PRIMARY KEY (id);",
            "ALTER TABLE public.t ADD COLUMN owner text;",
            "CREATE TABLE grant_me (a int);",
            "SET search_path = '';",
            "SELECT 1;",
        ] {
            assert_eq!(classify(other), None, "{other}");
        }
    }

    // covers: FR-7.11
    #[test]
    fn skips_only_what_names_a_missing_role_or_everything_with_no_owner() {
        let mut p = Policy {
            skip_all: false,
            existing: ["app".to_string(), "reader".to_string()].into(),
            missing: Default::default(),
            skipped: 0,
        };
        assert!(!p.skip("ALTER TABLE t OWNER TO app;"));
        assert!(!p.skip("GRANT SELECT ON TABLE t TO PUBLIC;"));
        assert!(p.skip("GRANT SELECT ON TABLE t TO reader, gone;"));
        assert!(p.skip("ALTER TABLE u OWNER TO gone;"));
        assert!(!p.skip("CREATE TABLE gone (a int);"));
        assert_eq!((p.missing.into_iter().collect::<Vec<_>>(), p.skipped), (vec![("gone".to_string(), 2)], 2));
        let mut all = Policy { skip_all: true, existing: Default::default(), missing: Default::default(), skipped: 0 };
        assert!(all.skip("ALTER TABLE t OWNER TO app;") && all.skip("REVOKE ALL ON SCHEMA public FROM PUBLIC;"));
        assert!(!all.skip("COMMENT ON TABLE t IS 'owner to x';"));
        assert!(all.missing.is_empty());
    }
}
