//! Headless Chromium (Debian's `chromium`) for pages people look at: the
//! success mail and the status page. It is run with the flags this machine
//! needs (no sandbox as root, no GPU, no background traffic).

use std::path::Path;
use std::process::{Command, Output, Stdio};

const FLAGS: [&str; 5] =
    ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--hide-scrollbars"];

/// The Chromium binary, or `None` (then [`super::smtp::require`] decides
/// whether that skips or fails the test).
pub fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok());
    super::smtp::require("chromium (Debian package)", found.is_some()).then(|| found.unwrap())
}

/// Renders `url` (`http://…` or `file://…`) into the PNG `png` at `size`
/// (`"1200,1600"`), asserting that it is a picture with something on it.
pub fn screenshot(chromium: &str, url: &str, png: &Path, size: &str) {
    let o = Command::new(chromium)
        .args(FLAGS)
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("--window-size={size}"))
        .arg(url)
        .output()
        .unwrap();
    assert!(png.is_file(), "no screenshot: {}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
    // A blank page compresses to a few kB; a rendered page with text and tables does not.
    assert!(bytes.len() > 20_000, "the screenshot looks blank ({} bytes)", bytes.len());
}

/// The DOM Chromium built from `url`, serialized (`--dump-dom`).
pub fn dump_dom(chromium: &str, url: &str) -> String {
    let o: Output = Command::new(chromium).args(FLAGS).arg("--dump-dom").arg(url).output().unwrap();
    assert!(o.status.success(), "chromium --dump-dom {url}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Copies a generated picture into `docs/images/<name>` when
/// `LIFEBOAT_TEST_UPDATE_DOCS` is set, so a plain test run leaves the work
/// tree as it was.
pub fn keep_for_docs(png: &Path, name: &str) {
    if std::env::var_os("LIFEBOAT_TEST_UPDATE_DOCS").is_some() {
        let keep = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/images").join(name);
        std::fs::create_dir_all(keep.parent().unwrap()).unwrap();
        std::fs::copy(png, &keep).unwrap();
    }
}
