//! Like `archive_reader`, one layer down: the input is the *uncompressed*
//! tar, gzipped here before it reaches the verifier. Mutating compressed
//! bytes mostly trips gzip's CRC; this target spends its time in the tar
//! headers, member checks, SHA256SUMS and manifest.json instead.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("writing to a Vec cannot fail");
    let bytes = gz.finish().expect("writing to a Vec cannot fail");
    let _ = lifeboat::verify::verify_stream(bytes.as_slice());
});
