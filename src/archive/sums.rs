//! `SHA256SUMS`: the `sha256sum -c` compatible list of every other member.

/// `sha256sum -c` format: `<hex>  <path>` per line.
pub fn format_sums(sums: &[(String, String)]) -> String {
    sums.iter().map(|(path, sha)| format!("{sha}  {path}\n")).collect()
}

/// The most one line takes beyond its path: 64 hex digits, two spaces and
/// the newline. `SHA256SUMS` has one line per member before it, so its size
/// is bounded by those members' names (see `verify`).
pub const LINE_OVERHEAD: u64 = 64 + 2 + 1;

/// The lines of `SHA256SUMS` as `(line number, path, SHA-256)`, borrowing
/// the paths from `text` (nothing is copied, whatever the line count).
/// Blank lines are skipped; a malformed line is an error naming it.
pub fn sum_lines(text: &str) -> impl Iterator<Item = Result<(usize, &str, [u8; 32]), String>> {
    text.lines().filter(|l| !l.is_empty()).enumerate().map(|(i, l)| {
        let n = i + 1;
        let (sha, path) = l.split_once("  ").ok_or_else(|| format!("SHA256SUMS line {n} is malformed"))?;
        let digest = decode_sha256(sha).ok_or_else(|| format!("SHA256SUMS line {n} has no valid SHA-256"))?;
        Ok((n, path, digest))
    })
}

/// 64 hex digits (either case) as 32 bytes.
pub fn decode_sha256(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let nibble = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *o = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// Every line of `SHA256SUMS` as `(path, lower-case hex)`; a path listed
/// twice is an error.
pub fn parse_sums(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut seen = std::collections::HashSet::new();
    sum_lines(text)
        .map(|line| {
            let (n, path, sha) = line?;
            if !seen.insert(path) {
                return Err(format!("SHA256SUMS line {n} lists {} a second time", crate::archive::reader::shown(path)));
            }
            Ok((path.to_string(), sha.iter().map(|b| format!("{b:02x}")).collect()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: TS-1.2
    #[test]
    fn sums_round_trip_and_reject_garbage() {
        let s = vec![("a/b.csv".to_string(), "0".repeat(64))];
        assert_eq!(parse_sums(&format_sums(&s)).unwrap(), s);
        assert!(parse_sums("xyz  a\n").is_err());
        assert!(parse_sums(&format!("{}  a\n", "g".repeat(64))).is_err());
        assert!(parse_sums(&format!("{}  a\n", "é".repeat(32))).is_err());
        let upper = format!("{}  a\n", "AB".repeat(32));
        assert_eq!(parse_sums(&upper).unwrap()[0].1, "ab".repeat(32));
    }

    // covers: FR-22.8
    #[test]
    fn a_path_listed_twice_is_refused() {
        let twice = format!("{0}  a\n{0}  b\n{0}  a\n", "0".repeat(64));
        assert_eq!(parse_sums(&twice).unwrap_err(), "SHA256SUMS line 3 lists a a second time");
    }
}
