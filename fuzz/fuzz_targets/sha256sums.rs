//! Feeds arbitrary text to the `SHA256SUMS` parser that `verify` uses
//! (line by line, borrowing the paths) and to the collecting one (which
//! also refuses a path listed twice). Any outcome but a panic is fine.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for line in lifeboat::archive::sums::sum_lines(text) {
        let _ = line;
    }
    let _ = lifeboat::archive::parse_sums(text);
});
