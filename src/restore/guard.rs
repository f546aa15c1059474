//! Defence in depth for the SQL members a restore runs (FR-7.15): even in
//! an archive a trusted key signed, statements that pg_dump never writes
//! into `schema.sql`, `sequences.sql` or `constraints.sql` and that reach
//! outside the database are refused before they are sent:
//!
//! * `COPY` in any form but pg_dump's `COPY name [(columns)] FROM stdin`:
//!   `COPY … TO/FROM PROGRAM` runs a shell command on the database server,
//!   `COPY … TO/FROM 'file'` reads or writes a server file;
//! * `DO` blocks and `CALL`, which can run any of that indirectly;
//! * psql meta-commands other than pg_dump's `\restrict` / `\unrestrict`
//!   (handled by the caller, which sees them as their own items).
//!
//! This is a guard against a damaged or subverted dump, not a sandbox: a
//! function the schema defines can still run when an index or a default
//! calls it. The signature check is what keeps foreign SQL out; restoring
//! as a role without superuser (or `pg_execute_server_program`) is what
//! keeps the server's shell out of reach of whatever remains.

/// Why `sql` (one statement, as the splitter returns it) is refused, or
/// `None` when it may run.
pub(super) fn refusal(sql: &str) -> Option<String> {
    let tokens = Tokens { s: sql.as_bytes(), i: 0 };
    let mut tokens = tokens.take(MAX_TOKENS);
    let first = tokens.next()?;
    let word = |t: &Token, w: &str| matches!(t, Token::Word(x) if x.eq_ignore_ascii_case(w));
    if word(&first, "copy") {
        if copy_from_stdin(&mut tokens) {
            return None;
        }
        let rest: Vec<Token> = Tokens { s: sql.as_bytes(), i: 0 }.take(MAX_TOKENS).collect();
        let what = if rest.iter().any(|t| word(t, "program")) {
            "COPY … PROGRAM runs a shell command on the database server"
        } else if rest.iter().any(|t| matches!(t, Token::Str)) {
            "COPY with a file name reads or writes a file on the database server"
        } else {
            "this form of COPY"
        };
        return Some(format!(
            "{what}; pg_dump writes only `COPY table (columns) FROM stdin` into an archive's SQL, so lifeboat \
             refuses any other COPY"
        ));
    }
    if word(&first, "do") || word(&first, "call") {
        return Some(
            "a DO block or CALL runs code at restore time (it could run a program or read a server file); \
             pg_dump writes none into an archive's SQL, so lifeboat refuses them"
                .into(),
        );
    }
    None
}

/// pg_dump's COPY statements are short; a name and a column list of a
/// wide table stay far below this many tokens.
const MAX_TOKENS: usize = 20_000;

/// After `COPY`: `name[.name] [(col, …)] FROM stdin [;]` and nothing else.
fn copy_from_stdin(t: &mut impl Iterator<Item = Token>) -> bool {
    let is_name = |t: &Option<Token>| matches!(t, Some(Token::Word(_) | Token::Ident));
    if !is_name(&t.next()) {
        return false;
    }
    let mut next = t.next();
    if next == Some(Token::Punct(b'.')) {
        if !is_name(&t.next()) {
            return false;
        }
        next = t.next();
    }
    if next == Some(Token::Punct(b'(')) {
        loop {
            if !is_name(&t.next()) {
                return false;
            }
            match t.next() {
                Some(Token::Punct(b',')) => continue,
                Some(Token::Punct(b')')) => break,
                _ => return false,
            }
        }
        next = t.next();
    }
    let word = |t: Option<Token>, w: &str| matches!(t, Some(Token::Word(x)) if x.eq_ignore_ascii_case(w));
    if !word(next, "from") || !word(t.next(), "stdin") {
        return false;
    }
    match t.next() {
        None => true,
        Some(Token::Punct(b';')) => t.next().is_none(),
        Some(_) => false,
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    /// A keyword or unquoted name.
    Word(String),
    /// A `"quoted"` identifier.
    Ident,
    /// A string constant: `'…'`, `E'…'` or `$tag$…$tag$`.
    Str,
    Punct(u8),
}

/// Just enough of PostgreSQL's lexer to find a statement's words outside
/// strings, quoted names and comments.
struct Tokens<'a> {
    s: &'a [u8],
    i: usize,
}

impl Tokens<'_> {
    fn peek(&self, k: usize) -> Option<u8> {
        self.s.get(self.i + k).copied()
    }

    /// Past a quoted run that started at `self.i` (the opening quote),
    /// where the quote doubled stands for itself; `escapes`: `\` escapes too.
    fn skip_quoted(&mut self, q: u8, escapes: bool) {
        self.i += 1;
        while let Some(c) = self.peek(0) {
            self.i += 1;
            if escapes && c == b'\\' {
                self.i += 1;
            } else if c == q {
                if self.peek(0) == Some(q) {
                    self.i += 1;
                } else {
                    return;
                }
            }
        }
    }
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

impl Iterator for Tokens<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        loop {
            let c = self.peek(0)?;
            match c {
                _ if c.is_ascii_whitespace() => self.i += 1,
                b'-' if self.peek(1) == Some(b'-') => {
                    while self.peek(0).is_some_and(|c| c != b'\n') {
                        self.i += 1;
                    }
                }
                b'/' if self.peek(1) == Some(b'*') => {
                    let mut depth = 0u32;
                    while self.i < self.s.len() {
                        match (self.peek(0), self.peek(1)) {
                            (Some(b'/'), Some(b'*')) => {
                                depth += 1;
                                self.i += 2;
                            }
                            (Some(b'*'), Some(b'/')) => {
                                depth -= 1;
                                self.i += 2;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => self.i += 1,
                        }
                    }
                }
                b'\'' => {
                    self.skip_quoted(b'\'', false);
                    return Some(Token::Str);
                }
                b'"' => {
                    self.skip_quoted(b'"', false);
                    return Some(Token::Ident);
                }
                b'$' => {
                    // `$tag$ … $tag$`; a `$1` parameter is not one.
                    let tag_len = self.s[self.i + 1..].iter().take_while(|&&b| is_word_byte(b) && b != b'$').count();
                    let close = self.i + 1 + tag_len;
                    let digit = self.peek(1).is_some_and(|b| b.is_ascii_digit());
                    if self.s.get(close) != Some(&b'$') || digit {
                        self.i += 1;
                        return Some(Token::Punct(b'$'));
                    }
                    let tag = &self.s[self.i..=close];
                    let body = close + 1;
                    self.i = match self.s[body..].windows(tag.len()).position(|w| w == tag) {
                        Some(n) => body + n + tag.len(),
                        None => self.s.len(),
                    };
                    return Some(Token::Str);
                }
                _ if is_word_byte(c) => {
                    let start = self.i;
                    while self.peek(0).is_some_and(is_word_byte) {
                        self.i += 1;
                    }
                    let w = &self.s[start..self.i];
                    // E'…', U&'…' and friends: a prefixed string.
                    let prefix = [b"e", b"x", b"b", b"n"].iter().any(|p| w.eq_ignore_ascii_case(*p));
                    if self.peek(0) == Some(b'\'') && prefix {
                        self.skip_quoted(b'\'', w.eq_ignore_ascii_case(b"e"));
                        return Some(Token::Str);
                    }
                    return Some(Token::Word(String::from_utf8_lossy(w).into_owned()));
                }
                _ => {
                    self.i += 1;
                    return Some(Token::Punct(c));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-7.15
    #[test]
    fn copy_from_stdin_passes_and_every_other_copy_is_refused() {
        for ok in [
            "COPY public.users (id, email) FROM stdin;",
            "copy \"Odd\".\"T;\" (\"a\"\"b\", c) from STDIN",
            "COPY t FROM stdin;",
            "COPY /* c */ t -- x\n FROM stdin;",
            "CREATE TABLE copy_log (a int);",
            "SELECT pg_catalog.setval('public.s', 1, true);",
            "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$BEGIN COPY t TO PROGRAM 'x'; END$$;",
        ] {
            assert_eq!(refusal(ok), None, "{ok}");
        }
        for (bad, says) in [
            ("COPY (SELECT 1) TO PROGRAM 'touch /tmp/pwned';", "PROGRAM"),
            ("COPY t FROM PROGRAM 'curl x | sh';", "PROGRAM"),
            ("COPY t FROM PROGRAM 'x' WHERE a IS DISTINCT FROM stdin;", "PROGRAM"),
            ("COPY t TO '/etc/passwd';", "file"),
            ("COPY t FROM '/etc/passwd';", "file"),
            ("COPY t FROM E'/etc/\\'passwd';", "file"),
            ("COPY t TO STDOUT;", "COPY"),
            ("COPY t FROM stdin; SELECT 1;", "COPY"),
            ("DO $$BEGIN EXECUTE 'COPY t TO PROGRAM ''x'''; END$$;", "DO"),
            ("call p();", "CALL"),
        ] {
            let why = refusal(bad).unwrap_or_else(|| panic!("{bad} passed"));
            assert!(why.contains(says), "{bad}: {why}");
            assert!(!why.contains("psql"), "never advise psql: {why}");
        }
    }
}
