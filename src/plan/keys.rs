//! Sets of row keys (`ctid`s) on disk, so that the referential closure
//! needs the same memory for a hundred rows as for a hundred million: keys
//! are collected in a bounded buffer, spilled as sorted runs to temp files,
//! and merged as streams. A key is 8 bytes (`block << 16 | offset`), so a
//! sorted set is also in heap order, which is the order COPY reads best.
//!
//! The temp files have no name (`O_TMPFILE` where the filesystem has it,
//! else unlinked at once): nothing is left behind by a crashed run, and no
//! cleanup job can delete them from under one. Readers share a file through
//! positional reads.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A row's `ctid` as one number: `block << 16 | offset` (an offset is at
/// most 16 bits, a block number 32).
pub type Key = u64;

/// Keys held in memory before a sorted run is written: 512 KiB.
const CHUNK: usize = 64 * 1024;
/// Runs merged at once; more are first merged into one.
const FAN_IN: usize = 32;

/// `(block,offset)` as PostgreSQL prints a `tid`.
pub fn parse_ctid(s: &str) -> Option<Key> {
    let (block, offset) = s.strip_prefix('(')?.strip_suffix(')')?.split_once(',')?;
    Some((block.parse::<u32>().ok()? as u64) << 16 | offset.parse::<u16>().ok()? as u64)
}

/// The `tid` literal of a key: digits, a comma and parentheses only.
pub fn ctid_text(k: Key) -> String {
    format!("({},{})", k >> 16, k & 0xffff)
}

/// The `tid`s that bound the blocks of an ascending batch of keys: from
/// the first key's block to the last key's, offsets 0 to 65535.
pub fn block_range(sorted: &[Key]) -> (String, String) {
    let first = sorted.first().map_or(0, |k| k >> 16);
    let last = sorted.last().map_or(0, |k| k >> 16);
    (format!("({first},0)"), format!("({last},65535)"))
}

/// A sorted set of unique keys in a temp file, shared by clones and deleted
/// with the last of them.
#[derive(Clone, Default)]
pub struct KeySet {
    file: Option<Arc<File>>,
    len: u64,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeySet({} keys)", self.len)
    }
}

impl KeySet {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The keys in ascending order.
    pub fn iter(&self) -> io::Result<Keys> {
        Ok(Keys { reader: self.file.as_ref().map(|f| BufReader::new(At { file: f.clone(), pos: 0 })) })
    }

    /// The keys in ascending order, `n` at a time (the last batch may be
    /// shorter); memory is one batch.
    pub fn batches(&self, n: usize) -> io::Result<impl Iterator<Item = io::Result<Vec<Key>>>> {
        let mut keys = self.iter()?;
        let capacity = n.min(self.len as usize);
        Ok(std::iter::from_fn(move || {
            let mut batch = Vec::with_capacity(capacity);
            for _ in 0..n {
                match keys.next() {
                    Some(Ok(k)) => batch.push(k),
                    Some(Err(e)) => return Some(Err(e)),
                    None => break,
                }
            }
            (!batch.is_empty()).then_some(Ok(batch))
        }))
    }
}

/// A shared file read from its own position (`pread`), so several readers
/// of one set never disturb each other.
struct At {
    file: Arc<File>,
    pos: u64,
}

impl Read for At {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Reads a [`KeySet`] file.
pub struct Keys {
    reader: Option<BufReader<At>>,
}

impl Iterator for Keys {
    type Item = io::Result<Key>;
    fn next(&mut self) -> Option<io::Result<Key>> {
        let r = self.reader.as_mut()?;
        let mut b = [0u8; 8];
        match r.read_exact(&mut b) {
            Ok(()) => Some(Ok(u64::from_be_bytes(b))),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// Writes ascending keys to a new temp file.
struct SetWriter {
    out: BufWriter<File>,
    len: u64,
}

impl SetWriter {
    fn new(dir: &Path) -> io::Result<SetWriter> {
        let file = tempfile::tempfile_in(dir)?;
        Ok(SetWriter { out: BufWriter::new(file), len: 0 })
    }

    fn push(&mut self, k: Key) -> io::Result<()> {
        self.len += 1;
        self.out.write_all(&k.to_be_bytes())
    }

    fn finish(self) -> io::Result<KeySet> {
        let len = self.len;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        Ok(KeySet { file: (len > 0).then(|| Arc::new(file)), len })
    }
}

/// Collects keys in any order and with repeats, in bounded memory.
pub struct Collector {
    dir: PathBuf,
    buf: Vec<Key>,
    runs: Vec<KeySet>,
}

impl Collector {
    /// Spills into temp files in `dir`.
    pub fn new(dir: &Path) -> Collector {
        Collector { dir: dir.to_path_buf(), buf: Vec::new(), runs: Vec::new() }
    }

    pub fn push(&mut self, k: Key) -> io::Result<()> {
        self.buf.push(k);
        if self.buf.len() >= CHUNK {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> io::Result<()> {
        self.buf.sort_unstable();
        self.buf.dedup();
        let mut w = SetWriter::new(&self.dir)?;
        for k in self.buf.drain(..) {
            w.push(k)?;
        }
        self.runs.push(w.finish()?);
        if self.runs.len() >= FAN_IN {
            let runs = std::mem::take(&mut self.runs);
            self.runs.push(merge(&self.dir, &runs, |_| Ok(()))?);
        }
        Ok(())
    }

    /// Everything pushed, as one sorted set of unique keys.
    pub fn finish(mut self) -> io::Result<KeySet> {
        if !self.buf.is_empty() {
            self.spill()?;
        }
        match self.runs.len() {
            0 => Ok(KeySet::default()),
            1 => Ok(self.runs.pop().expect("one run")),
            _ => merge(&self.dir, &self.runs, |_| Ok(())),
        }
    }
}

/// The union of `sets`, calling `each` with every key once, in order.
fn merge(dir: &Path, sets: &[KeySet], mut each: impl FnMut(Key) -> io::Result<()>) -> io::Result<KeySet> {
    let mut readers: Vec<Keys> = sets.iter().map(KeySet::iter).collect::<io::Result<_>>()?;
    let mut heap = BinaryHeap::new();
    for (i, r) in readers.iter_mut().enumerate() {
        if let Some(k) = r.next().transpose()? {
            heap.push(Reverse((k, i)));
        }
    }
    let mut out = SetWriter::new(dir)?;
    let mut last = None;
    while let Some(Reverse((k, i))) = heap.pop() {
        if last != Some(k) {
            out.push(k)?;
            each(k)?;
            last = Some(k);
        }
        if let Some(next) = readers[i].next().transpose()? {
            heap.push(Reverse((next, i)));
        }
    }
    out.finish()
}

/// Adds `new` to `known`: the keys of `new` that `known` did not hold, and
/// the union, both in one streaming pass.
pub fn absorb(dir: &Path, known: &KeySet, new: &KeySet) -> io::Result<(KeySet, KeySet)> {
    let mut fresh = SetWriter::new(dir)?;
    let mut old = known.iter()?.peekable();
    let union = merge(dir, &[known.clone(), new.clone()], |k| {
        // `k` comes in ascending order: skip the known keys below it.
        loop {
            match old.peek() {
                Some(Ok(o)) if *o < k => {
                    old.next();
                }
                Some(Err(_)) => return Err(old.next().expect("peeked").expect_err("peeked an error")),
                _ => break,
            }
        }
        if !matches!(old.peek(), Some(Ok(o)) if *o == k) {
            fresh.push(k)?;
        }
        Ok(())
    })?;
    Ok((fresh.finish()?, union))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(dir: &Path, keys: impl IntoIterator<Item = Key>) -> KeySet {
        let mut c = Collector::new(dir);
        for k in keys {
            c.push(k).unwrap();
        }
        c.finish().unwrap()
    }

    fn all(s: &KeySet) -> Vec<Key> {
        s.iter().unwrap().map(Result::unwrap).collect()
    }

    #[test]
    fn ctids_round_trip_and_reject_anything_else() {
        for t in ["(0,1)", "(4294967295,65535)", "(17,3)"] {
            assert_eq!(ctid_text(parse_ctid(t).unwrap()), t);
        }
        for bad in ["", "(1,2", "1,2)", "(a,1)", "(1,65536)", "(-1,1)", "(1,2),(3,4)"] {
            assert_eq!(parse_ctid(bad), None, "{bad}");
        }
        assert!(parse_ctid("(1,2)").unwrap() < parse_ctid("(2,1)").unwrap(), "heap order");
    }

    // covers: FR-8.6
    #[test]
    fn collector_sorts_and_deduplicates_across_many_spilled_runs() {
        let d = tempfile::tempdir().unwrap();
        // More than FAN_IN runs, so runs are merged while collecting too.
        let n = (CHUNK * (FAN_IN + 3)) as u64;
        let s = set(d.path(), (0..n).rev().map(|k| k / 2 * 7919 % (n / 2 * 7919 + 1)));
        let v = all(&s);
        assert_eq!(v.len() as u64, s.len());
        assert!(v.windows(2).all(|w| w[0] < w[1]), "sorted, unique");
        assert_eq!(s.len(), n / 2);
        // The temp files have no name: nothing to clean up, ever.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0, "no named temp files");
    }

    #[test]
    fn absorb_returns_what_was_new_and_the_union() {
        let d = tempfile::tempdir().unwrap();
        let known = set(d.path(), [1, 3, 5, 7]);
        let new = set(d.path(), [0, 3, 4, 7, 9]);
        let (fresh, union) = absorb(d.path(), &known, &new).unwrap();
        assert_eq!(all(&fresh), [0, 4, 9]);
        assert_eq!(all(&union), [0, 1, 3, 4, 5, 7, 9]);
        let (fresh, union) = absorb(d.path(), &KeySet::default(), &new).unwrap();
        assert_eq!((all(&fresh), union.len()), (vec![0, 3, 4, 7, 9], 5));
        let (fresh, _) = absorb(d.path(), &union, &KeySet::default()).unwrap();
        assert!(fresh.is_empty());
    }

    #[test]
    fn batches_cover_every_key_once_in_order() {
        let d = tempfile::tempdir().unwrap();
        let s = set(d.path(), 0..10);
        let b: Vec<Vec<Key>> = s.batches(4).unwrap().map(Result::unwrap).collect();
        assert_eq!(b, [vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
        assert_eq!(KeySet::default().batches(4).unwrap().count(), 0);
    }
}
