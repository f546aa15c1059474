//! Splits a SQL member (pg_dump's plain output) into statements as a
//! stream, so a restore sends it to the server one statement at a time in
//! bounded memory. Statements are kept byte for byte (a `\r\n` in a
//! function body stays one); the comments and blank lines between them are
//! not sent.
//!
//! The splitter follows psql's lexer where pg_dump output needs it: single
//! quotes (`''` doubled, backslash escapes in `E'…'`), double-quoted
//! identifiers, dollar quotes (`$$`, `$tag$`), `--` and nested `/* */`
//! comments, parentheses (a `CREATE RULE … DO (a; b)` is one statement),
//! `BEGIN ATOMIC … END` bodies of SQL-standard functions, psql
//! meta-command lines between statements (`\restrict KEY`), and the data of
//! `COPY … FROM stdin;` up to its `\.` line.

use std::io::{self, BufRead, Read, Write};

/// The largest statement a restore sends. pg_dump writes schema statements
/// of kilobytes; even a huge function or a long enum stays far below this,
/// so a longer one means a damaged or hostile archive, and holding it would
/// let a small archive take gigabytes of memory. Sending one copies it once
/// more (the protocol message), so the restore stays under 64 MiB.
pub const MAX_STATEMENT: usize = 16 * 1024 * 1024;

/// The longest word kept for psql's `BEGIN … END` heuristic: longer than
/// every keyword it looks for (`procedure`), so a longer word still matches
/// none, and a statement that is one huge identifier is not held twice.
const MAX_WORD: usize = 16;

/// Where the current dollar-quote tag sits in the statement buffer: it is
/// part of the statement, so it is not copied (a tag can be as long as the
/// statement).
#[derive(Debug, Default, Clone, Copy)]
struct Tag {
    start: usize,
    len: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error("line {line}: a statement longer than {} MiB (lifeboat restore's limit for one statement)", .limit / (1024 * 1024))]
    TooLarge { line: u64, limit: usize },
    #[error("line {line}: not UTF-8 text")]
    NotUtf8 { line: u64 },
    /// Reading the member failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// Writing COPY data to the server failed.
    #[error("{0}")]
    Write(io::Error),
}

/// What the splitter found next.
#[derive(Debug, PartialEq)]
pub enum Item<'a> {
    /// A statement with its `;` (none for a last one at the end of input).
    Sql { sql: &'a str, line: u64 },
    /// A psql meta-command line between statements, without its newline.
    Meta { text: &'a str, line: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Between statements: whitespace, comments and meta-commands.
    Between,
    /// Saw `-` or `/` between statements: a comment, or a statement's start.
    BetweenMaybeComment(u8),
    BetweenLineComment,
    BetweenBlockComment {
        depth: u32,
        star: bool,
        slash: bool,
    },
    Meta,
    Normal,
    /// Saw `-` or `/` inside a statement.
    MaybeComment(u8),
    LineComment,
    BlockComment {
        depth: u32,
        star: bool,
        slash: bool,
    },
    Quote {
        escapes: bool,
        backslash: bool,
    },
    /// Saw a `'` inside a string: the end, or the first of `''`.
    QuoteEnd {
        escapes: bool,
    },
    Ident,
    /// Saw a `"` inside an identifier: the end, or the first of `""`.
    IdentEnd,
    /// Saw `$` where a dollar quote may start; the tag so far is [`Tag`].
    DollarStart,
    Dollar,
    /// Inside a dollar quote, matched `$` and this many tag bytes.
    DollarEnd(usize),
}

/// Statements of one member, read from `input` as it comes.
pub struct Statements<R> {
    input: R,
    buf: Vec<u8>,
    max: usize,
    state: State,
    line: u64,
    start_line: u64,
    paren: u32,
    begin: u32,
    /// psql's heuristic for `CREATE [OR REPLACE] FUNCTION|PROCEDURE … BEGIN`.
    idents: [u8; 4],
    ident_count: usize,
    word: Vec<u8>,
    tag: Tag,
    done: bool,
}

fn ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn ident_cont(b: u8) -> bool {
    ident_start(b) || b.is_ascii_digit() || b == b'$'
}

impl<R: BufRead> Statements<R> {
    pub fn new(input: R) -> Self {
        Self::with_limit(input, MAX_STATEMENT)
    }

    pub fn with_limit(input: R, max: usize) -> Self {
        Statements {
            input,
            buf: Vec::new(),
            max,
            state: State::Between,
            line: 1,
            start_line: 1,
            paren: 0,
            begin: 0,
            idents: [0; 4],
            ident_count: 0,
            word: Vec::new(),
            tag: Tag::default(),
            done: false,
        }
    }

    /// The next statement or meta-command; `None` at the end of the input.
    pub fn next_item(&mut self) -> Result<Option<Item<'_>>, SplitError> {
        if self.buf.capacity() > 1 << 20 {
            // One big statement must not keep its memory for the rest.
            self.buf = Vec::new();
        }
        self.buf.clear();
        if self.done {
            return Ok(None);
        }
        loop {
            let chunk = self.input.fill_buf()?;
            if chunk.is_empty() {
                self.done = true;
                self.end_word();
                return match self.state {
                    State::Between
                    | State::BetweenLineComment
                    | State::BetweenBlockComment { .. }
                    | State::BetweenMaybeComment(_) => {
                        // A lone `-` or `/` at the very end is a statement.
                        if let State::BetweenMaybeComment(b) = self.state {
                            self.buf.push(b);
                            return self.emit_sql();
                        }
                        Ok(None)
                    }
                    State::Meta => self.emit_meta(),
                    _ => self.emit_sql(),
                };
            }
            let mut used = 0;
            let mut emit = None;
            while used < chunk.len() {
                // Inside a string, identifier, dollar quote or line comment
                // most bytes change nothing: take them in one go.
                let run = plain_run(self.state, &chunk[used..]);
                if run > 0 {
                    if self.buf.len() + run > self.max {
                        self.input.consume(used);
                        return Err(SplitError::TooLarge { line: self.start_line, limit: self.max });
                    }
                    let bytes = &chunk[used..used + run];
                    self.buf.extend_from_slice(bytes);
                    self.line += memchr::memchr_iter(b'\n', bytes).count() as u64;
                    used += run;
                    continue;
                }
                let b = chunk[used];
                used += 1;
                let was_empty = self.buf.is_empty();
                let mut h = Heuristic {
                    paren: &mut self.paren,
                    begin: &mut self.begin,
                    idents: &mut self.idents,
                    ident_count: &mut self.ident_count,
                };
                emit = Self::step(&mut self.state, b, &mut self.buf, &mut self.tag, &mut self.word, &mut h);
                if was_empty && !self.buf.is_empty() {
                    self.start_line = self.line;
                }
                if b == b'\n' {
                    self.line += 1;
                }
                if self.buf.len() > self.max {
                    self.input.consume(used);
                    return Err(SplitError::TooLarge { line: self.start_line, limit: self.max });
                }
                if emit.is_some() {
                    break;
                }
            }
            self.input.consume(used);
            match emit {
                Some(true) => return self.emit_sql(),
                Some(false) => return self.emit_meta(),
                None => {}
            }
        }
    }

    fn end_word(&mut self) {
        let mut h = Heuristic {
            paren: &mut self.paren,
            begin: &mut self.begin,
            idents: &mut self.idents,
            ident_count: &mut self.ident_count,
        };
        h.word_done(&mut self.word);
    }

    fn emit_sql(&mut self) -> Result<Option<Item<'_>>, SplitError> {
        self.reset_statement();
        let line = self.start_line;
        let sql = std::str::from_utf8(&self.buf).map_err(|_| SplitError::NotUtf8 { line })?;
        Ok(Some(Item::Sql { sql, line }))
    }

    fn emit_meta(&mut self) -> Result<Option<Item<'_>>, SplitError> {
        self.reset_statement();
        let line = self.start_line;
        let text = std::str::from_utf8(&self.buf).map_err(|_| SplitError::NotUtf8 { line })?;
        Ok(Some(Item::Meta { text: text.trim_end_matches('\r'), line }))
    }

    fn reset_statement(&mut self) {
        self.state = State::Between;
        self.paren = 0;
        self.begin = 0;
        self.idents = [0; 4];
        self.ident_count = 0;
        self.word.clear();
    }

    /// Feeds one byte; `Some(true)` when a statement ended with it,
    /// `Some(false)` when a meta-command line did.
    // size: one `match` over the lexer's states, one arm per state; split,
    // the transitions between states would be spread over several functions.
    fn step(
        state: &mut State,
        b: u8,
        buf: &mut Vec<u8>,
        tag: &mut Tag,
        word: &mut Vec<u8>,
        h: &mut Heuristic<'_>,
    ) -> Option<bool> {
        match *state {
            State::Between => match b {
                b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => {}
                b'-' | b'/' => *state = State::BetweenMaybeComment(b),
                b'\\' => {
                    buf.push(b);
                    *state = State::Meta;
                }
                _ => {
                    *state = State::Normal;
                    return Self::step(state, b, buf, tag, word, h);
                }
            },
            State::BetweenMaybeComment(first) => match (first, b) {
                (b'-', b'-') => *state = State::BetweenLineComment,
                (b'/', b'*') => *state = State::BetweenBlockComment { depth: 1, star: false, slash: false },
                _ => {
                    *state = State::Normal;
                    let _ = Self::step(state, first, buf, tag, word, h);
                    return Self::step(state, b, buf, tag, word, h);
                }
            },
            State::BetweenLineComment => {
                if b == b'\n' {
                    *state = State::Between;
                }
            }
            State::BetweenBlockComment { depth, star, slash } => {
                *state = match (b, star, slash) {
                    (b'/', true, _) if depth == 1 => State::Between,
                    (b'/', true, _) => State::BetweenBlockComment { depth: depth - 1, star: false, slash: false },
                    (b'*', _, true) => State::BetweenBlockComment { depth: depth + 1, star: false, slash: false },
                    _ => State::BetweenBlockComment { depth, star: b == b'*', slash: b == b'/' },
                };
            }
            State::Meta => {
                if b == b'\n' {
                    return Some(false);
                }
                buf.push(b);
            }
            State::Normal => {
                if ident_cont(b) && (!word.is_empty() || ident_start(b)) {
                    buf.push(b);
                    if word.len() < MAX_WORD {
                        word.push(b);
                    }
                    return None;
                }
                let after_ident = !word.is_empty();
                let e_prefix = after_ident && word.len() == 1 && (word[0] == b'e' || word[0] == b'E');
                h.word_done(word);
                buf.push(b);
                match b {
                    b'\'' => *state = State::Quote { escapes: e_prefix, backslash: false },
                    b'"' => *state = State::Ident,
                    b'$' if !after_ident => {
                        *tag = Tag { start: buf.len(), len: 0 };
                        *state = State::DollarStart;
                    }
                    b'-' | b'/' => *state = State::MaybeComment(b),
                    b'(' => *h.paren += 1,
                    b')' => *h.paren = h.paren.saturating_sub(1),
                    b';' if *h.paren == 0 && *h.begin == 0 => return Some(true),
                    _ => {}
                }
            }
            State::MaybeComment(first) => match (first, b) {
                (b'-', b'-') => {
                    buf.push(b);
                    *state = State::LineComment;
                }
                (b'/', b'*') => {
                    buf.push(b);
                    *state = State::BlockComment { depth: 1, star: false, slash: false };
                }
                _ => {
                    *state = State::Normal;
                    return Self::step(state, b, buf, tag, word, h);
                }
            },
            State::LineComment => {
                buf.push(b);
                if b == b'\n' {
                    *state = State::Normal;
                }
            }
            State::BlockComment { depth, star, slash } => {
                buf.push(b);
                *state = match (b, star, slash) {
                    (b'/', true, _) if depth == 1 => State::Normal,
                    (b'/', true, _) => State::BlockComment { depth: depth - 1, star: false, slash: false },
                    (b'*', _, true) => State::BlockComment { depth: depth + 1, star: false, slash: false },
                    _ => State::BlockComment { depth, star: b == b'*', slash: b == b'/' },
                };
            }
            State::Quote { escapes, backslash } => {
                buf.push(b);
                *state = match b {
                    _ if backslash => State::Quote { escapes, backslash: false },
                    b'\\' if escapes => State::Quote { escapes, backslash: true },
                    b'\'' => State::QuoteEnd { escapes },
                    _ => State::Quote { escapes, backslash: false },
                };
            }
            State::QuoteEnd { escapes } => {
                if b == b'\'' {
                    buf.push(b);
                    *state = State::Quote { escapes, backslash: false };
                } else {
                    *state = State::Normal;
                    return Self::step(state, b, buf, tag, word, h);
                }
            }
            State::Ident => {
                buf.push(b);
                if b == b'"' {
                    *state = State::IdentEnd;
                }
            }
            State::IdentEnd => {
                if b == b'"' {
                    buf.push(b);
                    *state = State::Ident;
                } else {
                    *state = State::Normal;
                    return Self::step(state, b, buf, tag, word, h);
                }
            }
            State::DollarStart => {
                if b == b'$' {
                    buf.push(b);
                    *state = State::Dollar;
                } else if ident_start(b) || (tag.len > 0 && b.is_ascii_digit()) {
                    buf.push(b);
                    tag.len += 1;
                } else {
                    // `$1`, or a `$` that starts nothing: plain text.
                    *state = State::Normal;
                    return Self::step(state, b, buf, tag, word, h);
                }
            }
            State::Dollar => {
                buf.push(b);
                if b == b'$' {
                    *state = State::DollarEnd(0);
                }
            }
            State::DollarEnd(matched) => {
                buf.push(b);
                *state = if matched == tag.len && b == b'$' {
                    State::Normal
                } else if matched < tag.len && b == buf[tag.start + matched] {
                    State::DollarEnd(matched + 1)
                } else if b == b'$' {
                    State::DollarEnd(0)
                } else {
                    State::Dollar
                };
            }
        }
        None
    }

    /// After a `COPY … FROM stdin;` statement: copies its data lines to
    /// `out` up to (not including) the `\.` line. Returns the bytes copied.
    /// A line is one row; longer than the statement limit, it is refused.
    pub fn copy_data(&mut self, out: &mut dyn Write) -> Result<u64, SplitError> {
        let mut copied = 0u64;
        let mut row = Vec::new();
        // The data starts on the line after the statement's `;`.
        (&mut self.input).take(self.max as u64).read_until(b'\n', &mut row)?;
        if row.ends_with(b"\n") {
            self.line += 1;
        }
        loop {
            row.clear();
            let n = (&mut self.input).take(self.max as u64 + 1).read_until(b'\n', &mut row)?;
            if n == 0 {
                return Ok(copied);
            }
            if row.len() > self.max {
                return Err(SplitError::TooLarge { line: self.line, limit: self.max });
            }
            if row.ends_with(b"\n") {
                self.line += 1;
            }
            if row == b"\\.\n" || row == b"\\.\r\n" || row == b"\\." {
                return Ok(copied);
            }
            out.write_all(&row).map_err(SplitError::Write)?;
            copied += n as u64;
        }
    }
}

/// How many bytes at the start of `bytes` leave `state` as it is and only
/// go into the statement.
fn plain_run(state: State, bytes: &[u8]) -> usize {
    let end = match state {
        State::Quote { escapes: false, backslash: false } => memchr::memchr(b'\'', bytes),
        State::Quote { escapes: true, backslash: false } => memchr::memchr2(b'\'', b'\\', bytes),
        State::Ident => memchr::memchr(b'"', bytes),
        State::Dollar => memchr::memchr(b'$', bytes),
        State::LineComment => memchr::memchr(b'\n', bytes),
        _ => return 0,
    };
    end.unwrap_or(bytes.len())
}

/// Whether a statement is `COPY … FROM stdin;`, whose data follows it.
pub fn is_copy_from_stdin(sql: &str) -> bool {
    let s = sql.trim_end().trim_end_matches(';').trim_end();
    let lower_start = s.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("copy "));
    lower_start && s.len() >= 10 && s[s.len() - 10..].eq_ignore_ascii_case("from stdin")
}

/// psql's word tracking: paren depth and `BEGIN … END` inside
/// `CREATE [OR REPLACE] FUNCTION|PROCEDURE`.
struct Heuristic<'a> {
    paren: &'a mut u32,
    begin: &'a mut u32,
    idents: &'a mut [u8; 4],
    ident_count: &'a mut usize,
}

impl Heuristic<'_> {
    fn word_done(&mut self, word: &mut Vec<u8>) {
        if word.is_empty() {
            return;
        }
        let w = String::from_utf8_lossy(word).to_ascii_lowercase();
        word.clear();
        if *self.ident_count < 4 && ["create", "function", "procedure", "or", "replace"].contains(&w.as_str()) {
            self.idents[*self.ident_count] = w.as_bytes()[0];
        }
        *self.ident_count += 1;
        let i = *self.idents;
        let in_routine = i[0] == b'c'
            && (i[1] == b'f' || i[1] == b'p' || (i[1] == b'o' && i[2] == b'r' && (i[3] == b'f' || i[3] == b'p')));
        if in_routine && *self.paren == 0 {
            match w.as_str() {
                "begin" => *self.begin += 1,
                "case" if *self.begin >= 1 => *self.begin += 1,
                "end" if *self.begin > 0 => *self.begin -= 1,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(sql: &[u8]) -> Vec<String> {
        let mut s = Statements::with_limit(sql, 1 << 20);
        let mut out = Vec::new();
        while let Some(item) = s.next_item().unwrap() {
            out.push(match item {
                Item::Sql { sql, line } => format!("{line}: {sql}"),
                Item::Meta { text, line } => format!("{line}: meta {text}"),
            });
        }
        out
    }

    // covers: FR-7.12, TS-1.4
    #[test]
    fn splits_pg_dump_output_and_skips_what_lies_between() {
        let dump = b"\\restrict Ab1\n--\n-- Name: t\n--\n\nSET x = 1;\nCREATE TABLE t (a int, b text DEFAULT 'x;y');\n/* c; */\nSELECT 1;\n\\unrestrict Ab1\n";
        assert_eq!(
            split(dump),
            [
                "1: meta \\restrict Ab1",
                "6: SET x = 1;",
                "7: CREATE TABLE t (a int, b text DEFAULT 'x;y');",
                "9: SELECT 1;",
                "10: meta \\unrestrict Ab1"
            ]
        );
    }

    // covers: FR-7.12, TS-1.4
    #[test]
    fn keeps_statements_byte_for_byte_with_crlf() {
        let sql = "CREATE FUNCTION f() RETURNS text LANGUAGE plpgsql AS $_$BEGIN\r\n  RETURN 'a;\r\nb';\r\nEND$_$;";
        let got = split(format!("{sql}\r\nCOMMENT ON TABLE t IS 'x\r\ny';\r\n").as_bytes());
        assert_eq!(got, [format!("1: {sql}"), "5: COMMENT ON TABLE t IS 'x\r\ny';".to_string()]);
    }

    // covers: FR-7.12, TS-1.4
    #[test]
    fn quotes_comments_and_dollar_tags_hide_semicolons() {
        let cases: &[&str] = &[
            "SELECT 'it''s;', \"a;\"\"b\";",
            "SELECT E'\\';', 'back\\';",
            "SELECT $$;$$, $a$ $$; $b$ ; $a$;",
            "SELECT 1 -- not; the end\n+ 2;",
            "SELECT /* a /* nested; */ still; */ 3;",
            "CREATE RULE r AS ON INSERT TO t DO INSTEAD (INSERT INTO u VALUES (1); DELETE FROM v);",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; SELECT 2; END;",
            "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC INSERT INTO t VALUES (1); END;",
            "SELECT a$b$c FROM t$1;",
            "PREPARE q AS SELECT $1;",
        ];
        for c in cases {
            assert_eq!(
                split(format!("{c}\nSELECT 'next';").as_bytes()),
                [format!("1: {c}"), format!("{}: SELECT 'next';", 1 + c.matches('\n').count() + 1)],
                "{c}"
            );
        }
        // A standard string ends at its quote even after a backslash.
        assert_eq!(split(b"SELECT 'a\\'; SELECT 2;"), ["1: SELECT 'a\\';", "1: SELECT 2;"]);
        // BEGIN outside a routine is a transaction start.
        assert_eq!(
            split(b"BEGIN; CREATE TABLE end_t (a int); END;"),
            ["1: BEGIN;", "1: CREATE TABLE end_t (a int);", "1: END;"]
        );
    }

    // covers: FR-7.12, TS-1.4
    #[test]
    fn a_last_statement_without_semicolon_is_kept() {
        assert_eq!(split(b"SELECT 1;\nSELECT 2\n-- trailing\n"), ["1: SELECT 1;", "2: SELECT 2\n-- trailing\n"]);
        assert!(split(b"\n-- only comments\n/* and this */\n").is_empty());
    }

    // covers: FR-7.12, TS-1.4
    #[test]
    fn a_statement_over_the_limit_is_an_error_naming_its_line() {
        let mut big = b"SELECT 1;\n\nCOMMENT ON TABLE t IS '".to_vec();
        big.resize(big.len() + 300, b'x');
        big.extend_from_slice(b"';\n");
        let mut s = Statements::with_limit(&big[..], 100);
        assert!(matches!(s.next_item().unwrap(), Some(Item::Sql { .. })));
        match s.next_item() {
            Err(SplitError::TooLarge { line, limit }) => assert_eq!((line, limit), (3, 100)),
            other => panic!("{other:?}"),
        }
    }

    // covers: FR-7.12, FR-22.8
    #[test]
    fn a_huge_identifier_or_dollar_tag_is_held_once() {
        // One identifier as long as the statement: the heuristic's word
        // stays a few bytes, the statement is refused at the limit.
        let mut sql = b"SELECT ".to_vec();
        sql.resize(10_000, b'a');
        let mut s = Statements::with_limit(&sql[..], 1_000);
        assert!(matches!(s.next_item(), Err(SplitError::TooLarge { line: 1, limit: 1_000 })));
        assert!(s.word.capacity() <= MAX_WORD, "word buffer of {}", s.word.capacity());
        // A long dollar tag still quotes its body (the tag is read from the
        // statement itself), and a keyword longer than MAX_WORD is no keyword.
        let tag = format!("${}$", "t".repeat(5_000));
        let body =
            format!("CREATE FUNCTION f() RETURNS int AS {tag} SELECT 1; ${}$ {tag} LANGUAGE sql;", "t".repeat(4_999));
        assert_eq!(split(format!("{body}\nSELECT 2;").as_bytes()), [format!("1: {body}"), "2: SELECT 2;".to_string()]);
        let long = format!("CREATE FUNCTION f() RETURNS int LANGUAGE sql {}begin SELECT 1; END;", "x".repeat(20));
        assert_eq!(split(long.as_bytes()).len(), 2, "{long}");
    }

    // covers: FR-7.12, TS-1.4
    #[test]
    fn copy_data_streams_to_the_end_marker() {
        let input = b"COPY t (a) FROM stdin;\n1\tx\\.y\n\\.x\n\\.\nSELECT 1;\n";
        let mut s = Statements::new(&input[..]);
        let Some(Item::Sql { sql, .. }) = s.next_item().unwrap() else { panic!() };
        assert!(is_copy_from_stdin(sql));
        let mut data = Vec::new();
        s.copy_data(&mut data).unwrap();
        assert_eq!(data, b"1\tx\\.y\n\\.x\n");
        assert_eq!(s.next_item().unwrap(), Some(Item::Sql { sql: "SELECT 1;", line: 5 }));
        assert!(!is_copy_from_stdin("COPY t TO stdout;"));
    }

    // covers: FR-7.12, TS-1.4
    #[test]
    fn chunk_boundaries_do_not_change_the_result() {
        let dump: &[u8] = b"\\restrict K\nCREATE FUNCTION f() RETURNS text AS $x$ a;b $x$ LANGUAGE sql;\n-- c\nSELECT E'\\'', '--';\n/* x */ SELECT 1;\nCOPY t FROM stdin;\na\n\\.\nSELECT 2;\n";
        let whole = {
            let mut s = Statements::new(dump);
            let mut v = Vec::new();
            while let Some(i) = s.next_item().unwrap() {
                let copy = matches!(&i, Item::Sql { sql, .. } if is_copy_from_stdin(sql));
                v.push(format!("{i:?}"));
                if copy {
                    let mut d = Vec::new();
                    s.copy_data(&mut d).unwrap();
                    v.push(String::from_utf8(d).unwrap());
                }
            }
            v
        };
        for cap in 1..8 {
            let mut s = Statements::new(io::BufReader::with_capacity(cap, dump));
            let mut v = Vec::new();
            while let Some(i) = s.next_item().unwrap() {
                let copy = matches!(&i, Item::Sql { sql, .. } if is_copy_from_stdin(sql));
                v.push(format!("{i:?}"));
                if copy {
                    let mut d = Vec::new();
                    s.copy_data(&mut d).unwrap();
                    v.push(String::from_utf8(d).unwrap());
                }
            }
            assert_eq!(v, whole, "buffer of {cap}");
        }
    }
}
