//! Feeds arbitrary bytes to the archive verifier, which drives the whole
//! reader: gzip, tar headers, member path and type checks, hashing, CSV
//! counting, SHA256SUMS and manifest.json parsing. Any outcome but a panic,
//! a hang or unbounded memory is fine: errors are the expected answer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = lifeboat::verify::verify_stream(data);
});
