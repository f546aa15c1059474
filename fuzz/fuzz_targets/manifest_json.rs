//! Feeds arbitrary bytes to the bounded `manifest.json` parser that
//! `verify` and `restore` use: the size cap, the first pass that estimates
//! what the parsed manifest would take, serde, then the count limits. Any
//! outcome but a panic, a hang or unbounded memory is fine.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = lifeboat::archive::manifest::parse(data);
});
