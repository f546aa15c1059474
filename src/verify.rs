//! `lifeboat verify`: proves an archive is complete and unmodified without
//! a database: gzip and tar structure, member paths, every member against
//! `SHA256SUMS` and `manifest.json`, and CSV row counts (parsed as CSV)
//! against the manifest, and every member listed by the manifest (and the
//! other way round). The same pass guards every restore. Then the
//! signature (`SHA256SUMS.minisig`) must check against a trusted key (see
//! [`archive::signature`]), and the members lifeboat generates from the
//! manifest (`restore.sql`, `sequences.sql`) must be exactly what it
//! generates, so a forged psql script cannot pass.
//!
//! Trust is explicit (FR-7.14): the keys are `--trusted-key`, the key of
//! the store the config names and `[restore] trusted_keys`. A key found
//! beside the archive is not one of them: whoever handed over the
//! directory could have put it there. An archive no trusted key signed is
//! refused unless the operator passes `--insecure-accept-untrusted`, a
//! per-invocation decision that is deliberately not a config key.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::archive::reader::{for_each_member_in, shown, ArchiveError, Source};
use crate::archive::signature::{self, KeyOrigin, SignatureReport, Trust, TrustedKey};
use crate::archive::{self, texts, CsvCounter, Manifest};
use crate::crypt::Identities;
use crate::events::{Event, Progress};

/// manifest.json and SHA256SUMS are read into memory; a lifeboat archive's
/// are far smaller than this, a hostile one is refused before it is read.
/// SHA256SUMS has a tighter bound still: one line per member before it.
const MAX_META_BYTES: u64 = archive::manifest::MAX_MANIFEST_BYTES;

/// What `SHA256SUMS` may hold beyond one line for each member before it.
const SUMS_SLACK: u64 = 64 * 1024;

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub archive: PathBuf,
    pub size_bytes: u64,
    pub members: usize,
    pub tables: usize,
    pub rows: u64,
    pub files: usize,
    pub signature: SignatureReport,
    #[serde(skip)]
    pub manifest: Manifest,
    /// The bytes of `SHA256SUMS` and of its signature, for the signature check.
    #[serde(skip)]
    sums: Vec<u8>,
    #[serde(skip)]
    sums_signature: Option<Vec<u8>>,
}

/// How `verify` (and `restore`) read and trust an archive; flattened into
/// both commands' arguments (the `///` lines are the `--help` texts).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct VerifyOptions {
    /// age identity file (from age-keygen), to read a .tar.gz.age archive
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// minisign public key trusted to sign archives (the signing.pub of the store that made
    /// them), besides the key of the store the config names and those it lists (restore.trusted_keys)
    #[arg(long, value_name = "FILE")]
    pub trusted_key: Option<PathBuf>,
    /// INSECURE: use an archive that no trusted key signed (unsigned, signed by another key, or
    /// whose signature does not match), with a warning. Its SQL then runs unchecked
    #[arg(long)]
    pub insecure_accept_untrusted: bool,
    /// The keys the config trusts (its store's, `[restore] trusted_keys`);
    /// set by the caller, not a flag.
    #[arg(skip)]
    pub trust: Trust,
}

impl VerifyOptions {
    /// The identities of `--identity`, read once per pass over the archive.
    pub fn identities(&self) -> Result<Option<Identities>, crate::crypt::DecryptError> {
        self.identity.as_deref().map(Identities::from_file).transpose()
    }
}

/// The keys `config` trusts: its store's (`[storage] dir`'s
/// `.lifeboat/signing.pub`, wherever the archive lies) and
/// `[restore] trusted_keys`.
pub fn config_trust(config: &crate::config::Config) -> Trust {
    Trust {
        store_key: Some(config.storage.dir.join(signature::PUBLIC_KEY_FILE)),
        listed: config.restore.trusted_keys.clone(),
        keys: Vec::new(),
    }
}

/// What verify keeps of each member until SHA256SUMS and the manifest come
/// (its name is the key): a fixed few dozen bytes.
struct Seen {
    sha256: [u8; 32],
    bytes: u64,
    rows: Option<u64>,
    /// Found in SHA256SUMS (a second line for it is refused).
    listed: bool,
}

/// A member's size, SHA-256 and (for a CSV member) row count, as its
/// bytes go by.
struct Digester {
    sha: sha2::Sha256,
    csv: Option<CsvCounter>,
    bytes: u64,
}

impl Digester {
    fn new(is_csv: bool) -> Digester {
        Digester { sha: sha2::Digest::new(), csv: is_csv.then(CsvCounter::default), bytes: 0 }
    }

    fn feed(&mut self, buf: &[u8]) {
        sha2::Digest::update(&mut self.sha, buf);
        if let Some(csv) = self.csv.as_mut() {
            csv.feed(buf);
        }
        self.bytes += buf.len() as u64;
    }

    fn finish(self) -> Seen {
        Seen {
            bytes: self.bytes,
            sha256: sha2::Digest::finalize(self.sha).into(),
            rows: self.csv.map(|c| c.rows()),
            listed: false,
        }
    }
}

/// Reads a member of `size` bytes (its tar header's) to its end, keeping
/// its bytes in `keep`: its size, SHA-256 and, for a CSV member, its row
/// count. A member of at most one [`DIGEST_CHUNK`] is digested right here;
/// for a larger one inflating stays the reading thread's work and hashing
/// and counting, most of the rest, run beside it on a second thread, fed
/// in chunks. (A thread per member cost an archive of 400 000 empty
/// members minutes.)
fn digest(r: &mut dyn Read, size: u64, is_csv: bool, keep: Option<&mut Vec<u8>>) -> std::io::Result<Seen> {
    use std::sync::mpsc;
    if size <= DIGEST_CHUNK as u64 {
        let mut buf = Vec::with_capacity(size as usize);
        // The header's size bounds what the tar reader yields; `take` keeps
        // this bound even if it did not.
        r.take(DIGEST_CHUNK as u64).read_to_end(&mut buf)?;
        let mut d = Digester::new(is_csv);
        d.feed(&buf);
        let mut rest = [0u8; 1];
        if r.read(&mut rest)? != 0 {
            return Err(std::io::Error::other("the member is longer than its tar header says"));
        }
        if let Some(keep) = keep {
            keep.extend_from_slice(&buf);
        }
        return Ok(d.finish());
    }
    let mut keep = keep;
    std::thread::scope(|s| {
        let (full, filled) = mpsc::sync_channel::<Vec<u8>>(4);
        let (empty, emptied) = mpsc::channel::<Vec<u8>>();
        let hasher = s.spawn(move || {
            let mut d = Digester::new(is_csv);
            for buf in filled {
                d.feed(&buf);
                let _ = empty.send(buf);
            }
            d.finish()
        });
        loop {
            let mut buf = emptied.try_recv().unwrap_or_default();
            buf.resize(DIGEST_CHUNK, 0);
            let n = r.read(&mut buf)?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            if let Some(keep) = keep.as_mut() {
                keep.extend_from_slice(&buf);
            }
            if full.send(buf).is_err() {
                break;
            }
        }
        drop(full);
        Ok(hasher.join().expect("the hashing thread does not panic"))
    })
}

const DIGEST_CHUNK: usize = 256 * 1024;

/// [`verify_with`] a plain archive of a store lifeboat reads itself (the
/// backup it just wrote, the archive it mails), trusting `trust`.
pub fn verify(path: &Path, trust: Trust, progress: Progress) -> Result<VerifyReport, ArchiveError> {
    verify_with(path, &VerifyOptions { trust, ..VerifyOptions::default() }, progress)
}

pub fn verify_with(path: &Path, opts: &VerifyOptions, progress: Progress) -> Result<VerifyReport, ArchiveError> {
    verify_source(&Source::from(path), opts, progress)
}

/// [`verify_with`] any [`Source`], a remote archive streamed from its store too.
pub fn verify_source(source: &Source, opts: &VerifyOptions, progress: Progress) -> Result<VerifyReport, ArchiveError> {
    progress(Event::Step("verify"));
    let identities = opts.identities()?;
    let trusted = trusted_keys(opts, progress)?;
    let size_bytes = source.size();
    let reader = crate::archive::reader::open_source(source, identities.as_ref())?;
    let mut report = verify_stream(reader)?;
    report.archive = source.report_path();
    report.size_bytes = size_bytes;
    report.signature = signature::check(&report.sums, report.sums_signature.as_deref(), &trusted);
    report.signature.accepted_insecurely =
        opts.insecure_accept_untrusted && report.signature.status != signature::Status::Valid;
    if report.signature.refused() {
        return Err(ArchiveError::Signature(refusal(source, &report.signature)));
    }
    if report.signature.accepted_insecurely {
        progress(Event::Warning(format!(
            "INSECURE (--insecure-accept-untrusted): {}; the archive is used anyway, and nothing proves \
             its SQL is what a backup of yours wrote",
            report.signature.message
        )));
    }
    check_generated(&report.manifest)?;
    Ok(report)
}

/// Why an untrusted archive is refused, and the ways on: trust the store
/// that made it, or accept it insecurely. Never a path that would run it
/// unchecked (psql) as if that were safe.
fn refusal(source: &Source, sig: &SignatureReport) -> String {
    let trusted = if sig.trusted_keys.is_empty() { "none".to_string() } else { sig.trusted_keys.join(", ") };
    let beside = source
        .local()
        .and_then(signature::key_beside)
        // Not worth mentioning when it is one of the trusted keys anyway.
        .filter(|k| {
            let id = TrustedKey::from_file(k, KeyOrigin::Store).map(|b| b.key_id()).unwrap_or_default();
            !sig.trusted_keys.iter().any(|t| !id.is_empty() && t.starts_with(&id))
        })
        .map(|k| {
            format!(
                " {} lies beside the archive, but a key found there is not trusted by itself (whoever handed \
                 over the directory could have put it there): if it is your store, name its config with \
                 --config or the key with --trusted-key.",
                k.display()
            )
        })
        .unwrap_or_default();
    format!(
        "refusing {}: {}. lifeboat reads an archive only when a trusted key signed it (trusted now: {trusted}).{beside} \
         Trust the store that made it with --trusted-key FILE (its .lifeboat/signing.pub; `lifeboat config` on the \
         backup host prints the key), --config naming that store, or [restore] trusted_keys in the config; or, only \
         if you know where this archive came from, pass --insecure-accept-untrusted",
        source.name(),
        sig.message
    )
}

/// `--trusted-key`, the keys in hand, the configured store's key (when it
/// has one yet) and `[restore] trusted_keys`. A key the operator named
/// that cannot be used is an error (exit 2), never silently dropped; a
/// store key that cannot be read is a warning (the store is not trusted).
fn trusted_keys(opts: &VerifyOptions, progress: Progress) -> Result<Vec<TrustedKey>, ArchiveError> {
    let key_err = |e: crate::error::Error| ArchiveError::Key(e.to_string());
    let mut keys = opts.trust.keys.clone();
    if let Some(p) = &opts.trusted_key {
        keys.push(TrustedKey::from_file(p, KeyOrigin::Flag).map_err(key_err)?);
    }
    if let Some(p) = opts.trust.store_key.as_deref().filter(|p| p.exists()) {
        match crate::fsutil::check_trust_anchor(p).and_then(|()| TrustedKey::from_file(p, KeyOrigin::Store)) {
            Ok(k) => keys.push(k),
            Err(e) => progress(Event::Warning(format!("the store's signing key is not trusted: {e}"))),
        }
    }
    for (i, entry) in opts.trust.listed.iter().enumerate() {
        keys.push(TrustedKey::from_entry(entry, &format!("[restore] trusted_keys entry {}", i + 1)).map_err(key_err)?);
    }
    Ok(keys)
}

/// `database/restore.sql` and `database/sequences.sql` are generated from
/// the manifest, so they must be exactly what this lifeboat generates from
/// it: a forged psql script (a `\!` line, a `COPY … TO PROGRAM`) cannot
/// pass, whoever signed it. verify has already checked each member against
/// the manifest's SHA-256. Names that would break a line of the script are
/// refused too: they could carry a psql meta-command onto a line of its own.
fn check_generated(manifest: &Manifest) -> Result<(), ArchiveError> {
    use sha2::Digest;
    for t in &manifest.tables {
        let names = [&t.schema, &t.name].into_iter().chain(&t.columns).chain(t.file.iter()).chain(t.psql_file.iter());
        if let Some(bad) = names.into_iter().find(|n| n.chars().any(char::is_control)) {
            return Err(ArchiveError::Member {
                path: archive::MANIFEST.into(),
                reason: format!(
                    "table {} has a name with a line break or control character ({}); restore.sql cannot carry it \
                     safely",
                    crate::archive::reader::shown(&t.display()),
                    crate::archive::reader::shown(bad)
                ),
            });
        }
    }
    let generated =
        [(archive::RESTORE_SQL, texts::restore_sql(manifest)), (archive::SEQUENCES, texts::sequences_sql(manifest))];
    for (path, text) in generated {
        let Some(member) = manifest.members.iter().find(|m| m.path == path) else { continue };
        if member.sha256 != format!("{:x}", sha2::Sha256::digest(text.as_bytes())) {
            return Err(ArchiveError::Member {
                path: path.into(),
                reason: "is not what lifeboat generates from manifest.json: it was altered after the backup (or \
                         made by another lifeboat version); lifeboat will not use this archive, and its psql \
                         script must not be run"
                    .into(),
            });
        }
    }
    Ok(())
}

/// [`verify`] over any byte stream; `archive` and `size_bytes` are left empty.
pub fn verify_stream(input: impl Read) -> Result<VerifyReport, ArchiveError> {
    let Kept { mut seen, manifest_text, sums_text, sig_bytes } = read_members(input)?;
    let sums_raw = sums_text.ok_or_else(|| missing(archive::SUMS))?;
    check_sums(&mut seen, &sums_raw)?;
    let manifest_raw = manifest_text.ok_or_else(|| missing(archive::MANIFEST))?;
    let manifest: Manifest = archive::manifest::parse(&manifest_raw)
        .map_err(|reason| ArchiveError::Member { path: archive::MANIFEST.into(), reason })?;
    drop(manifest_raw);
    if manifest.format != archive::FORMAT || manifest.format_version != archive::FORMAT_VERSION {
        return Err(ArchiveError::Other(format!(
            "unsupported archive format {} v{} (this lifeboat reads {} v{})",
            manifest.format,
            manifest.format_version,
            archive::FORMAT,
            archive::FORMAT_VERSION
        )));
    }
    check_manifest(&seen, &manifest)?;
    Ok(VerifyReport {
        archive: PathBuf::new(),
        size_bytes: 0,
        members: seen.len(),
        tables: manifest.tables.len(),
        rows: manifest.tables.iter().map(|t| t.rows).sum(),
        files: manifest.files.len(),
        signature: signature::check(&sums_raw, sig_bytes.as_deref(), &[]),
        manifest,
        sums: sums_raw,
        sums_signature: sig_bytes,
    })
}

/// What one pass over the members keeps: each member's digest, and the
/// three metadata members whole (manifest.json, SHA256SUMS, its signature).
struct Kept {
    seen: BTreeMap<String, Seen>,
    manifest_text: Option<Vec<u8>>,
    sums_text: Option<Vec<u8>>,
    sig_bytes: Option<Vec<u8>>,
}

/// Reads every member once: hashes (and counts CSV rows of) each, keeps the
/// metadata members, and refuses metadata members larger than they can be.
fn read_members(input: impl Read) -> Result<Kept, ArchiveError> {
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let mut manifest_text: Option<Vec<u8>> = None;
    let mut sums_text: Option<Vec<u8>> = None;
    let mut sig_bytes: Option<Vec<u8>> = None;
    // What SHA256SUMS can hold: one line for each member before it, and
    // room for the lines of a few hundred that went missing (so that they
    // are named as missing, not as an oversized SHA256SUMS).
    let mut sums_bound = SUMS_SLACK;
    for_each_member_in(input, |m, r| {
        let is_sig = m.path == signature::MEMBER;
        let is_meta = m.path == archive::MANIFEST || m.path == archive::SUMS || is_sig;
        if m.path == archive::SUMS && m.size > sums_bound {
            return Err(ArchiveError::Member {
                path: m.path.clone(),
                reason: format!(
                    "is {} bytes, more than one line for each of the {} members before it can take ({sums_bound} \
                     bytes with {SUMS_SLACK} to spare)",
                    m.size,
                    seen.len()
                ),
            });
        }
        if is_meta && m.size > MAX_META_BYTES {
            return Err(ArchiveError::Member {
                path: m.path.clone(),
                reason: format!("is {} bytes, more than a manifest can be", m.size),
            });
        }
        if is_sig && m.size > signature::MAX_SIGNATURE_BYTES {
            return Err(ArchiveError::Member {
                path: m.path.clone(),
                reason: format!("is {} bytes, more than a signature can be", m.size),
            });
        }
        let is_csv = m.path.starts_with(archive::DATA_DIR);
        // Sized once (the size is bounded above), not grown by doubling.
        let mut keep = if is_meta { Vec::with_capacity(m.size as usize) } else { Vec::new() };
        let digest = digest(r, m.size, is_csv, is_meta.then_some(&mut keep))
            .map_err(|e| ArchiveError::Corrupt { at: Some(m.path.clone()), source: e })?;
        if m.path == archive::MANIFEST {
            manifest_text = Some(keep);
        } else if m.path == archive::SUMS {
            sums_text = Some(keep);
        } else if is_sig {
            sig_bytes = Some(keep);
        }
        sums_bound += m.path.len() as u64 + archive::sums::LINE_OVERHEAD;
        seen.insert(m.path.clone(), digest);
        Ok(())
    })?;

    Ok(Kept { seen, manifest_text, sums_text, sig_bytes })
}

/// A member that must be there is not.
fn missing(path: &str) -> ArchiveError {
    ArchiveError::Member { path: path.to_string(), reason: "is missing".into() }
}

/// Checks SHA256SUMS against the members read: every line names a member
/// once with its digest, and every member but SHA256SUMS and its signature
/// is listed.
fn check_sums(seen: &mut BTreeMap<String, Seen>, sums_raw: &[u8]) -> Result<(), ArchiveError> {
    let bad_sums = |reason| ArchiveError::Member { path: archive::SUMS.into(), reason };
    let sums_str = std::str::from_utf8(sums_raw).map_err(|_| bad_sums("is not UTF-8 text".into()))?;
    // Checked line by line against what was seen, marking each member
    // listed: no second copy of the names, and a name listed twice is found.
    for line in archive::sums::sum_lines(sums_str) {
        let (n, path, sha) = line.map_err(bad_sums)?;
        let s = seen.get_mut(path).ok_or_else(|| missing(path))?;
        if std::mem::replace(&mut s.listed, true) {
            return Err(bad_sums(format!("SHA256SUMS line {n} lists {} a second time", shown(path))));
        }
        if s.sha256 != sha {
            return Err(ArchiveError::Member {
                path: path.to_string(),
                reason: "SHA-256 does not match SHA256SUMS (the member was modified or damaged)".into(),
            });
        }
    }
    let unlisted =
        |(p, s): &(&String, &Seen)| p.as_str() != archive::SUMS && p.as_str() != signature::MEMBER && !s.listed;
    if let Some((extra, _)) = seen.iter().find(unlisted) {
        return Err(ArchiveError::Member { path: extra.clone(), reason: "is not listed in SHA256SUMS".into() });
    }

    Ok(())
}

/// Checks manifest.json against the members read, both ways: every table,
/// file and member it lists is there with its size, digest (and row count),
/// and every member is one it lists.
fn check_manifest(seen: &BTreeMap<String, Seen>, manifest: &Manifest) -> Result<(), ArchiveError> {
    let check = |path: &str, bytes: u64, sha: &str| -> Result<&Seen, ArchiveError> {
        let s = seen.get(path).ok_or_else(|| missing(path))?;
        if s.bytes != bytes || archive::sums::decode_sha256(sha) != Some(s.sha256) {
            return Err(ArchiveError::Member {
                path: path.into(),
                reason: "size or SHA-256 does not match manifest.json".into(),
            });
        }
        Ok(s)
    };
    for t in &manifest.tables {
        let (Some(file), Some(sha)) = (&t.file, &t.sha256) else { continue };
        if !file.starts_with(archive::DATA_DIR) {
            return Err(ArchiveError::Member {
                path: file.clone(),
                reason: "manifest points a table outside database/data/".into(),
            });
        }
        let s = check(file, t.bytes, sha)?;
        if s.rows != Some(t.rows) {
            return Err(ArchiveError::Member {
                path: file.clone(),
                reason: format!(
                    "has {} CSV rows but manifest.json says {} for {}",
                    s.rows.unwrap_or(0),
                    t.rows,
                    t.display()
                ),
            });
        }
    }
    for f in manifest.files.iter().chain(&manifest.members) {
        check(&f.path, f.bytes, &f.sha256)?;
    }
    for required in [archive::SCHEMA, archive::SEQUENCES, archive::CONSTRAINTS] {
        if !manifest.members.iter().any(|m| m.path == required) {
            return Err(missing(required));
        }
    }
    // And the other way round: every member is one the manifest lists, so
    // no CSV, SQL or config file rides along that restore would not account
    // for (a table dropped from the manifest, a planted file).
    let mut known: BTreeSet<&str> = [archive::MANIFEST, archive::INFO, archive::SUMS, signature::MEMBER].into();
    known.extend(manifest.tables.iter().filter_map(|t| t.file.as_deref()));
    known.extend(manifest.files.iter().chain(&manifest.members).map(|f| f.path.as_str()));
    if let Some(extra) = seen.keys().find(|p| !known.contains(p.as_str())) {
        return Err(ArchiveError::Member {
            path: extra.clone(),
            reason: "is not listed in manifest.json (a table's CSV, a config file or a database/*.sql member)".into(),
        });
    }
    Ok(())
}
