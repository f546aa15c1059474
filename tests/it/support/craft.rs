//! Rewrites archives: read every member of a `.tar.gz`, change, add or
//! remove members (including ones the tar crate's safe API refuses to
//! write), recompute what a careful forger would recompute, write it back.
use std::io::{Read, Write};
use std::path::Path;

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use lifeboat::archive::reader::Hashing;
use lifeboat::archive::{format_sums, signature, CsvCounter, MANIFEST, SUMS};
use tar::EntryType;

/// One tar member, with its path as raw bytes so anything can be written.
#[derive(Debug, Clone)]
pub struct Member {
    pub path: Vec<u8>,
    pub kind: EntryType,
    pub mode: u32,
    pub mtime: u64,
    pub data: Vec<u8>,
    /// Target of a symlink or hardlink.
    pub link: Vec<u8>,
    /// (major, minor) of a device.
    pub device: (u32, u32),
    /// Records of a pax extended header written just before this member
    /// (`path=…` overrides the header's name for readers that honour pax).
    pub pax: Vec<(String, Vec<u8>)>,
}

impl Member {
    pub fn file(path: impl AsRef<[u8]>, mode: u32, data: impl AsRef<[u8]>) -> Member {
        Member {
            path: path.as_ref().to_vec(),
            kind: EntryType::Regular,
            mode,
            mtime: 1_700_000_000,
            data: data.as_ref().to_vec(),
            link: Vec::new(),
            device: (0, 0),
            pax: Vec::new(),
        }
    }

    pub fn link(kind: EntryType, path: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Member {
        Member { kind, link: target.as_ref().to_vec(), mode: 0o777, ..Member::file(path, 0o644, b"") }
    }

    pub fn special(kind: EntryType, path: impl AsRef<[u8]>, device: (u32, u32)) -> Member {
        Member { kind, device, ..Member::file(path, 0o666, b"") }
    }

    pub fn path_str(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }

    /// The path a pax-honouring reader sees.
    pub fn effective_path(&self) -> String {
        match self.pax.iter().find(|(k, _)| k == "path") {
            Some((_, v)) => String::from_utf8_lossy(v).into_owned(),
            None => self.path_str(),
        }
    }
}

/// An archive as an ordered list of members.
#[derive(Debug, Clone)]
pub struct Crafted {
    pub members: Vec<Member>,
}

impl Crafted {
    pub fn read(gz: &[u8]) -> Crafted {
        let mut archive = tar::Archive::new(GzDecoder::new(gz));
        let mut members = Vec::new();
        for entry in archive.entries().expect("readable tar") {
            let mut entry = entry.expect("readable tar entry");
            let h = entry.header();
            let mut m = Member {
                path: entry.path_bytes().into_owned(),
                kind: h.entry_type(),
                mode: h.mode().expect("mode"),
                mtime: h.mtime().expect("mtime"),
                data: Vec::new(),
                link: entry.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default(),
                device: (0, 0),
                pax: Vec::new(),
            };
            entry.read_to_end(&mut m.data).expect("member data");
            members.push(m);
        }
        Crafted { members }
    }

    pub fn read_file(path: &Path) -> Crafted {
        Crafted::read(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
    }

    pub fn index_of(&self, path: &str) -> usize {
        self.members
            .iter()
            .position(|m| m.path == path.as_bytes())
            .unwrap_or_else(|| panic!("no member {path} in {:?}", self.paths()))
    }

    pub fn paths(&self) -> Vec<String> {
        self.members.iter().map(Member::path_str).collect()
    }

    pub fn data(&self, path: &str) -> &[u8] {
        &self.members[self.index_of(path)].data
    }

    pub fn data_mut(&mut self, path: &str) -> &mut Vec<u8> {
        let i = self.index_of(path);
        &mut self.members[i].data
    }

    /// Recomputes `SHA256SUMS` over every other member, as the writer does.
    pub fn resum(&mut self) {
        let sums: Vec<(String, String)> = self
            .members
            .iter()
            .filter(|m| m.path != SUMS.as_bytes() && m.path != signature::MEMBER.as_bytes())
            .map(|m| (m.path_str(), sha256_hex(&m.data)))
            .collect();
        *self.data_mut(SUMS) = format_sums(&sums).into_bytes();
    }

    /// Makes manifest.json agree with the CSV member `csv` (rows, bytes,
    /// sha256) and then recomputes SHA256SUMS: the archive is internally
    /// consistent again, so `verify` passes whatever the CSV now holds.
    pub fn refresh_table(&mut self, csv: &str) {
        let data = self.data(csv).to_vec();
        let mut counter = CsvCounter::default();
        counter.feed(&data);
        let mut manifest: serde_json::Value = serde_json::from_slice(self.data(MANIFEST)).expect("manifest");
        let table = manifest["tables"]
            .as_array_mut()
            .expect("tables")
            .iter_mut()
            .find(|t| t["file"] == csv)
            .unwrap_or_else(|| panic!("no table with file {csv} in the manifest"));
        table["rows"] = counter.rows().into();
        table["bytes"] = (data.len() as u64).into();
        table["sha256"] = sha256_hex(&data).into();
        *self.data_mut(MANIFEST) = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
        self.resum();
    }

    /// Signs `SHA256SUMS` as it now is with the key of the store in
    /// `storage`, so the archive passes the trust check and only the
    /// edit under test can fail it.
    pub fn sign_with(&mut self, storage: &Path) {
        let sig = crate::support::sign_sums(self.data(SUMS), storage);
        *self.data_mut(signature::MEMBER) = sig;
    }

    pub fn tar(&self) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for m in &self.members {
            if !m.pax.is_empty() {
                let mut body = Vec::new();
                for (key, value) in &m.pax {
                    body.extend(pax_record(key, value));
                }
                let h = header(b"././@PaxHeader", EntryType::XHeader, 0o644, 0, body.len() as u64, b"", (0, 0));
                b.append(&h, body.as_slice()).expect("append pax header");
            }
            if m.path.len() > 100 {
                let mut name = m.path.clone();
                name.push(0);
                let h = header(b"././@LongLink", EntryType::GNULongName, 0o644, 0, name.len() as u64, b"", (0, 0));
                b.append(&h, name.as_slice()).expect("append long name");
            }
            let h = header(&m.path, m.kind, m.mode, m.mtime, m.data.len() as u64, &m.link, m.device);
            b.append(&h, m.data.as_slice()).expect("append member");
        }
        b.into_inner().expect("finish tar")
    }

    pub fn gz(&self) -> Vec<u8> {
        gzip(&self.tar())
    }

    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.gz()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip")
}

pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(bytes).read_to_end(&mut out).expect("gunzip");
    out
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut h = Hashing::new(bytes);
    std::io::copy(&mut h, &mut std::io::sink()).expect("hash");
    h.hex()
}

/// A GNU header with raw name and link bytes (truncated at 100: longer
/// names go in a preceding GNU long-name member).
fn header(path: &[u8], kind: EntryType, mode: u32, mtime: u64, size: u64, link: &[u8], dev: (u32, u32)) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    {
        let gnu = h.as_gnu_mut().expect("gnu header");
        let n = path.len().min(gnu.name.len());
        gnu.name[..n].copy_from_slice(&path[..n]);
        let n = link.len().min(gnu.linkname.len());
        gnu.linkname[..n].copy_from_slice(&link[..n]);
    }
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_mtime(mtime);
    h.set_size(size);
    if matches!(kind, EntryType::Char | EntryType::Block) {
        h.set_device_major(dev.0).expect("device major");
        h.set_device_minor(dev.1).expect("device minor");
    }
    h.set_cksum();
    h
}

/// `"<len> <key>=<value>\n"`, where `<len>` counts the whole record.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// Inserts `evil` right after the schema (so a reader that acted on members
/// as it met them would act on it before any data), recomputes SHA256SUMS
/// so that only the member check can catch it.
pub fn with_members(base: &Crafted, evil: &[Member]) -> Crafted {
    let mut c = base.clone();
    for (i, m) in evil.iter().enumerate() {
        c.members.insert(1 + i, m.clone());
    }
    c.resum();
    c
}

/// The members no lifeboat archive can contain, each named for its trick.
pub fn unsafe_members(outside: &Path) -> Vec<(&'static str, Vec<Member>)> {
    use tar::EntryType::{Block, Char, Fifo, Link, Symlink};
    let abs = outside.join("absolute_sentinel");
    let long_traversal = format!("config/{}../../../../../../long_sentinel", "deep/".repeat(20));
    let mut pax = Member::file("config/innocent.txt", 0o644, "pax");
    pax.pax = vec![("path".into(), b"../../pax_sentinel".to_vec())];
    vec![
        ("parent traversal", vec![Member::file("../../etc/passwd", 0o644, "root::0:0::/root:/bin/sh\n")]),
        ("traversal inside config/", vec![Member::file("config/../../../../dotdot_sentinel", 0o644, "x")]),
        ("absolute path", vec![Member::file(abs.to_string_lossy().as_bytes(), 0o644, "x")]),
        ("long GNU name with ..", vec![Member::file(long_traversal, 0o644, "x")]),
        ("pax path with ..", vec![pax]),
        (
            "symlink out, then a file through it",
            vec![
                Member::link(Symlink, "config/escape", outside.to_string_lossy().as_bytes()),
                Member::file("config/escape/symlink_sentinel", 0o644, "x"),
            ],
        ),
        ("relative symlink", vec![Member::link(Symlink, "config/up", "../../../..")]),
        ("hardlink to /etc/passwd", vec![Member::link(Link, "config/hard", "/etc/passwd")]),
        ("hardlink with ..", vec![Member::link(Link, "config/hard2", "../../etc/passwd")]),
        ("character device", vec![Member::special(Char, "config/null", (1, 3))]),
        ("block device", vec![Member::special(Block, "config/disk", (8, 0))]),
        ("fifo", vec![Member::special(Fifo, "config/fifo", (0, 0))]),
        ("non-UTF-8 path", vec![Member::file(b"config/\xff\xfe", 0o644, "x")]),
        ("backslash path", vec![Member::file("config\\..\\..\\x", 0o644, "x")]),
        ("unknown top-level file", vec![Member::file("README.md", 0o644, "x")]),
        ("outside the known directories", vec![Member::file("databases/extra.sql", 0o644, "x")]),
    ]
}
