//! `SHA256SUMS`: the `sha256sum -c` compatible list of every other member.

/// `sha256sum -c` format: `<hex>  <path>` per line.
pub fn format_sums(sums: &[(String, String)]) -> String {
    sums.iter().map(|(path, sha)| format!("{sha}  {path}\n")).collect()
}

pub fn parse_sums(text: &str) -> Result<Vec<(String, String)>, String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| {
            let (sha, path) = l.split_once("  ").ok_or_else(|| format!("SHA256SUMS line {} is malformed", i + 1))?;
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("SHA256SUMS line {} has no valid SHA-256", i + 1));
            }
            Ok((path.to_string(), sha.to_ascii_lowercase()))
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
    }
}
