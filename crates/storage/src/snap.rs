//! Snapshot files: one file per snapshot, written atomically and
//! checksummed, the newest few kept.
//!
//! A file `{index:016x}-{term:016x}.snap` (names sort by index, then term)
//! holds, little-endian:
//!
//! ```text
//! header:  magic "RDDRSNAP" | version u32 | metadata length u32
//!          | SnapshotMetadata (prost) | CRC-32C of the header so far u32
//! data:    the application's bytes
//! trailer: data length u64 | CRC-32C of the data u32
//! ```
//!
//! The data length sits in the trailer so a snapshot can be streamed to
//! disk without knowing its size in advance; a reader checks it against
//! the file's length, so a truncated file, or a damaged length, is caught
//! before anything is allocated.
//!
//! A save writes `<name>.tmp`, syncs it, renames it to `<name>` and syncs
//! the directory: after a crash a snapshot is either wholly there or not
//! at all, and leftover `.tmp` files are removed when the store is opened.

use crate::error::{Error, Result};
use crate::fs::{File, FileSystem};
use bytes::Bytes;
use prost::Message;
use rudder_raft::{Snapshot, SnapshotMetadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// How many snapshots a store keeps unless told otherwise: the newest, and
/// one to fall back on if the newest turns out damaged.
pub const DEFAULT_KEEP: usize = 2;

/// The first bytes of every snapshot file.
const MAGIC: &[u8; 8] = b"RDDRSNAP";
/// The version of the format above.
const VERSION: u32 = 1;
/// Magic, version and metadata length.
const FIXED_LEN: u64 = 16;
/// The header's checksum.
const CRC_LEN: u64 = 4;
/// Data length and data checksum.
const TRAILER_LEN: u64 = 12;
/// How much data is read or written at a time.
const CHUNK: usize = 64 * 1024;
/// The suffix of a snapshot file being written.
const TMP_SUFFIX: &str = ".tmp";

/// The snapshot files of one directory.
///
/// Saves are serialized by the store itself, so it can be shared.
#[derive(Debug)]
pub struct SnapshotStore {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    keep: usize,
    /// Held for the whole of a save, so saves and their pruning never race.
    save_lock: Mutex<()>,
}

/// A snapshot file found in the directory, judged by its name only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFile {
    /// The index its name gives.
    pub index: u64,
    /// The term its name gives.
    pub term: u64,
    /// Where it is.
    pub path: PathBuf,
}

/// What [`SnapshotStore::load_newest`] found.
#[derive(Debug)]
pub struct Loaded {
    /// The newest snapshot that verifies; the empty snapshot (index 0,
    /// Raft's "none") if every file was damaged.
    pub snapshot: Snapshot,
    /// The file it was read from; `None` if every file was damaged.
    pub path: Option<PathBuf>,
    /// The newer files that failed verification, newest first, each an
    /// [`Error::Corrupt`] naming the file and offset. Only the caller
    /// knows whether the log still covers them, and so whether skipping
    /// them loses committed data.
    pub skipped: Vec<Error>,
}

impl SnapshotStore {
    /// Opens the snapshot directory `dir`, creating it if missing, and
    /// removes temporary files left by a crash in the middle of a save.
    /// At most `keep` snapshots are kept (at least one, whatever `keep`
    /// says: a save must not delete the snapshot it just wrote).
    pub fn open(fs: Arc<dyn FileSystem>, dir: impl Into<PathBuf>, keep: usize) -> Result<Self> {
        let dir = dir.into();
        if !fs.is_dir(&dir) {
            fs.create_dir_all(&dir)
                .map_err(|e| Error::io("create directory", &dir, e))?;
            // The new directory's entry in its parent must be durable too.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs.sync_dir(parent)
                    .map_err(|e| Error::io("sync directory", parent, e))?;
            }
        }
        let names = fs.list(&dir).map_err(|e| Error::io("list", &dir, e))?;
        let mut removed = false;
        for name in names.iter().filter(|n| n.ends_with(TMP_SUFFIX)) {
            let path = dir.join(name);
            tracing::info!(path = %path.display(), "removing unfinished snapshot");
            fs.remove_file(&path)
                .map_err(|e| Error::io("remove", &path, e))?;
            removed = true;
        }
        if removed {
            fs.sync_dir(&dir)
                .map_err(|e| Error::io("sync directory", &dir, e))?;
        }
        Ok(SnapshotStore {
            fs,
            dir,
            keep: keep.max(1),
            save_lock: Mutex::new(()),
        })
    }

    /// The directory the store manages.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The snapshot files in the directory, newest (highest index, then
    /// term) first. Judged by name only: use [`SnapshotStore::load`] or
    /// [`SnapshotStore::metadata_of`] to check one.
    pub fn list(&self) -> Result<Vec<SnapshotFile>> {
        let names = self
            .fs
            .list(&self.dir)
            .map_err(|e| Error::io("list", &self.dir, e))?;
        let mut files: Vec<SnapshotFile> = names
            .iter()
            .filter_map(|name| {
                let (index, term) = parse_name(name)?;
                Some(SnapshotFile {
                    index,
                    term,
                    path: self.dir.join(name),
                })
            })
            .collect();
        files.sort_by_key(|f| std::cmp::Reverse((f.index, f.term)));
        Ok(files)
    }

    /// Writes a snapshot at `meta` whose data is everything `data` yields,
    /// streamed to disk in chunks, and returns its path once it is durable.
    /// It removes no older snapshot: until the log names the new one, the
    /// one it names may be the only state there is after a crash. Call
    /// [`SnapshotStore::prune`] once it does.
    ///
    /// Refuses (with [`Error::InvalidWrite`]) index 0, which is Raft's
    /// "no snapshot", and an index below that of the newest snapshot file:
    /// pruning would treat it as the oldest anyway. The newest file counts
    /// even if damaged; [`SnapshotStore::remove`] discards one. Saving the
    /// same index and term again replaces the file atomically.
    pub fn save(&self, meta: &SnapshotMetadata, data: &mut dyn Read) -> Result<PathBuf> {
        let _guard = self.save_lock.lock().unwrap_or_else(|e| e.into_inner());
        if meta.index == 0 {
            return Err(Error::InvalidWrite("a snapshot at index 0".into()));
        }
        if let Some(newest) = self.list()?.first() {
            if meta.index < newest.index {
                return Err(Error::InvalidWrite(format!(
                    "snapshot at index {} is older than {}",
                    meta.index,
                    newest.path.display()
                )));
            }
        }
        let path = self.dir.join(file_name(meta.index, meta.term));
        let tmp = self
            .dir
            .join(format!("{}{TMP_SUFFIX}", file_name(meta.index, meta.term)));
        // A leftover of an earlier failed save in this process, if any.
        let _ = self.fs.remove_file(&tmp);
        let mut file = self
            .fs
            .create(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        if let Err(e) = write_file(file.as_mut(), &tmp, meta, data) {
            drop(file);
            let _ = self.fs.remove_file(&tmp);
            return Err(e);
        }
        drop(file);
        if let Err(e) = self.fs.rename(&tmp, &path) {
            let _ = self.fs.remove_file(&tmp);
            return Err(Error::io("rename", &tmp, e));
        }
        self.sync_dir()?;
        Ok(path)
    }

    /// [`SnapshotStore::save`] for data already in memory.
    pub fn save_bytes(&self, meta: &SnapshotMetadata, mut data: &[u8]) -> Result<PathBuf> {
        self.save(meta, &mut data)
    }

    /// Reads the newest snapshot that verifies, skipping (and reporting in
    /// [`Loaded::skipped`], and logging) newer ones that are damaged;
    /// `None` if there are no snapshot files at all.
    ///
    /// Only damage is skipped: an I/O error fails the call, since it says
    /// nothing about the file and falling back could lose data needlessly.
    pub fn load_newest(&self) -> Result<Option<Loaded>> {
        let files = self.list()?;
        if files.is_empty() {
            return Ok(None);
        }
        let mut skipped = Vec::new();
        for f in files {
            match self.load(&f.path) {
                Ok(snapshot) => {
                    return Ok(Some(Loaded {
                        snapshot,
                        path: Some(f.path),
                        skipped,
                    }))
                }
                Err(e @ Error::Corrupt { .. }) => {
                    tracing::warn!(error = %e, "skipping damaged snapshot");
                    skipped.push(e);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Some(Loaded {
            snapshot: Snapshot::default(),
            path: None,
            skipped,
        }))
    }

    /// Reads and verifies the snapshot file `path` into one buffer.
    pub fn load(&self, path: &Path) -> Result<Snapshot> {
        let mut reader = self.open_reader(path)?;
        let len = usize::try_from(reader.data_len())
            .map_err(|_| Error::corrupt(path, reader.data_start, "data too large for memory"))?;
        let mut data = vec![0; len];
        let mut filled = 0;
        while filled < len {
            let end = (filled + CHUNK).min(len);
            filled += reader.read_chunk(&mut data[filled..end])?;
        }
        reader.verify()?;
        Ok(Snapshot {
            data: Bytes::from(data),
            metadata: Some(reader.metadata),
        })
    }

    /// The metadata of the snapshot file `path`, checking its header and
    /// lengths but not its data.
    pub fn metadata_of(&self, path: &Path) -> Result<SnapshotMetadata> {
        Ok(self.open_reader(path)?.metadata)
    }

    /// Opens the snapshot file `path` for streaming its data (to a peer,
    /// say): the header and lengths are checked now, the data's checksum
    /// when the last byte is read.
    pub fn open_reader(&self, path: &Path) -> Result<SnapshotReader> {
        let file = self.fs.open(path).map_err(|e| Error::io("open", path, e))?;
        SnapshotReader::new(file, path)
    }

    /// Deletes the snapshot file `path`, durably: for a damaged snapshot
    /// the caller has decided it can do without.
    pub fn remove(&self, path: &Path) -> Result<()> {
        let _guard = self.save_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.fs
            .remove_file(path)
            .map_err(|e| Error::io("remove", path, e))?;
        self.sync_dir()
    }

    /// Removes all but the newest `keep` snapshot files: call it once the
    /// log names the newest.
    pub fn prune(&self) -> Result<()> {
        let _guard = self.save_lock.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.list()?.into_iter().skip(self.keep).collect::<Vec<_>>();
        for f in &old {
            tracing::debug!(path = %f.path.display(), "removing old snapshot");
            self.fs
                .remove_file(&f.path)
                .map_err(|e| Error::io("remove", &f.path, e))?;
        }
        if !old.is_empty() {
            self.sync_dir()?;
        }
        Ok(())
    }

    fn sync_dir(&self) -> Result<()> {
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| Error::io("sync directory", &self.dir, e))
    }
}

/// The data of one snapshot file, read as a stream; the checksum is
/// checked as the last byte is read, so a reader that reaches the end
/// without an error has read exactly what was saved.
#[derive(Debug)]
pub struct SnapshotReader {
    file: Box<dyn File>,
    path: PathBuf,
    metadata: SnapshotMetadata,
    data_start: u64,
    pos: u64,
    end: u64,
    expected_crc: u32,
    crc: u32,
}

impl SnapshotReader {
    /// Checks the header and trailer of `file` (at `path`, for errors)
    /// against the file's length.
    fn new(file: Box<dyn File>, path: &Path) -> Result<Self> {
        let len = file.len().map_err(|e| Error::io("stat", path, e))?;
        let corrupt = |offset, reason: String| Error::corrupt(path, offset, reason);
        if len < FIXED_LEN {
            return Err(corrupt(
                len,
                format!("file ends after {len} bytes, inside the header"),
            ));
        }
        let mut fixed = [0; FIXED_LEN as usize];
        read_exact_at(file.as_ref(), path, &mut fixed, 0)?;
        if &fixed[..8] != MAGIC {
            return Err(corrupt(0, "bad magic: not a snapshot file".into()));
        }
        let version = u32::from_le_bytes(fixed[8..12].try_into().unwrap());
        if version != VERSION {
            return Err(corrupt(8, format!("unsupported format version {version}")));
        }
        let meta_len = u64::from(u32::from_le_bytes(fixed[12..16].try_into().unwrap()));
        let data_start = FIXED_LEN + meta_len + CRC_LEN;
        if data_start + TRAILER_LEN > len {
            return Err(corrupt(
                12,
                format!("metadata length {meta_len} does not fit in the file's {len} bytes"),
            ));
        }
        // Bounded by the file's length, checked above.
        let mut rest = vec![0; (meta_len + CRC_LEN) as usize];
        read_exact_at(file.as_ref(), path, &mut rest, FIXED_LEN)?;
        let (meta_bytes, stored) = rest.split_at(meta_len as usize);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&fixed), meta_bytes);
        if crc != u32::from_le_bytes(stored.try_into().unwrap()) {
            return Err(corrupt(0, "header checksum mismatch".into()));
        }
        let metadata = SnapshotMetadata::decode(meta_bytes)
            .map_err(|e| corrupt(FIXED_LEN, format!("metadata does not decode: {e}")))?;
        let named = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_name);
        if let Some((index, term)) = named {
            if (index, term) != (metadata.index, metadata.term) {
                return Err(corrupt(
                    FIXED_LEN,
                    format!(
                        "metadata says index {} term {}, the name index {index} term {term}",
                        metadata.index, metadata.term
                    ),
                ));
            }
        }
        let trailer_at = len - TRAILER_LEN;
        let mut trailer = [0; TRAILER_LEN as usize];
        read_exact_at(file.as_ref(), path, &mut trailer, trailer_at)?;
        let data_len = u64::from_le_bytes(trailer[..8].try_into().unwrap());
        if data_len != trailer_at - data_start {
            return Err(corrupt(
                trailer_at,
                format!(
                    "trailer says {data_len} data bytes, the file holds {}",
                    trailer_at - data_start
                ),
            ));
        }
        Ok(SnapshotReader {
            file,
            path: path.to_owned(),
            metadata,
            data_start,
            pos: data_start,
            end: trailer_at,
            expected_crc: u32::from_le_bytes(trailer[8..].try_into().unwrap()),
            crc: 0,
        })
    }

    /// The snapshot's metadata (checked against the header's checksum).
    pub fn metadata(&self) -> &SnapshotMetadata {
        &self.metadata
    }

    /// How many data bytes the snapshot holds in all.
    pub fn data_len(&self) -> u64 {
        self.end - self.data_start
    }

    /// Reads the next data bytes into `buf`; 0 only at the end, once the
    /// checksum has been verified.
    fn read_chunk(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.pos == self.end {
            self.verify()?;
            return Ok(0);
        }
        let n = (buf.len() as u64).min(self.end - self.pos) as usize;
        read_exact_at(self.file.as_ref(), &self.path, &mut buf[..n], self.pos)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.pos += n as u64;
        if self.pos == self.end {
            self.verify()?;
        }
        Ok(n)
    }

    /// Fails unless all the data has been read and matches its checksum.
    fn verify(&self) -> Result<()> {
        if self.pos != self.end || self.crc != self.expected_crc {
            return Err(Error::corrupt(
                &self.path,
                self.data_start,
                "data checksum mismatch",
            ));
        }
        Ok(())
    }
}

impl Read for SnapshotReader {
    /// Reads data; damage shows as an error of kind
    /// [`io::ErrorKind::InvalidData`] wrapping the [`Error::Corrupt`].
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.read_chunk(buf).map_err(|e| {
            let kind = match &e {
                Error::Io { source, .. } => source.kind(),
                _ => io::ErrorKind::InvalidData,
            };
            io::Error::new(kind, e)
        })
    }
}

/// Writes the whole snapshot file: header, streamed data, trailer; syncs.
fn write_file(
    file: &mut dyn File,
    path: &Path,
    meta: &SnapshotMetadata,
    data: &mut dyn Read,
) -> Result<()> {
    let meta_bytes = meta.encode_to_vec();
    let meta_len = u32::try_from(meta_bytes.len())
        .map_err(|_| Error::InvalidWrite("snapshot metadata over 4 GiB".into()))?;
    let mut header = Vec::with_capacity(meta_bytes.len() + 20);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&meta_len.to_le_bytes());
    header.extend_from_slice(&meta_bytes);
    header.extend_from_slice(&crc32c::crc32c(&header).to_le_bytes());
    let write = |file: &mut dyn File, buf: &[u8], at| {
        file.write_all_at(buf, at)
            .map_err(|e| Error::io("write", path, e))
    };
    write(file, &header, 0)?;

    let mut offset = header.len() as u64;
    let mut crc = 0;
    let mut buf = vec![0; CHUNK];
    loop {
        let n = fill(data, &mut buf).map_err(|e| Error::io("read snapshot data for", path, e))?;
        write(file, &buf[..n], offset)?;
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        offset += n as u64;
        if n < buf.len() {
            break;
        }
    }
    let data_len = offset - header.len() as u64;
    let mut trailer = [0; TRAILER_LEN as usize];
    trailer[..8].copy_from_slice(&data_len.to_le_bytes());
    trailer[8..].copy_from_slice(&crc.to_le_bytes());
    write(file, &trailer, offset)?;
    file.sync_all().map_err(|e| Error::io("fsync", path, e))
}

/// Reads from `data` until `buf` is full or the data ends.
fn fill(data: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match data.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// [`File::read_exact_at`], with a short file reported as damage.
fn read_exact_at(file: &dyn File, path: &Path, buf: &mut [u8], offset: u64) -> Result<()> {
    file.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Error::corrupt(path, offset, "file ends early")
        } else {
            Error::io("read", path, e)
        }
    })
}

/// The name of the snapshot file at `index` and `term`.
fn file_name(index: u64, term: u64) -> String {
    format!("{index:016x}-{term:016x}.snap")
}

/// The index and term a snapshot file's name gives, if it is one.
fn parse_name(name: &str) -> Option<(u64, u64)> {
    let (index, term) = name.strip_suffix(".snap")?.split_once('-')?;
    let hex = |s: &str| {
        let ok = s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| u64::from_str_radix(s, 16).ok()).flatten()
    };
    Some((hex(index)?, hex(term)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::OsFs;
    use rudder_raft::ConfState;

    fn meta(index: u64, term: u64) -> SnapshotMetadata {
        SnapshotMetadata {
            conf_state: Some(ConfState {
                voters: vec![1, 2, 3],
                learners: vec![4],
                ..Default::default()
            }),
            index,
            term,
        }
    }

    /// Data that differs from position to position, so misplaced bytes show.
    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn os_store(keep: usize) -> (tempfile::TempDir, SnapshotStore) {
        let tmp = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(Arc::new(OsFs), tmp.path().join("snap"), keep).unwrap();
        (tmp, store)
    }

    fn read_all(fs: &dyn FileSystem, path: &Path) -> Vec<u8> {
        let f = fs.open(path).unwrap();
        let mut buf = vec![0; f.len().unwrap() as usize];
        f.read_exact_at(&mut buf, 0).unwrap();
        buf
    }

    fn write_all(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) {
        let _ = fs.remove_file(path);
        let mut f = fs.create(path).unwrap();
        f.write_all_at(bytes, 0).unwrap();
        f.sync_all().unwrap();
    }

    /// The offset of an [`Error::Corrupt`] about `path`; panics otherwise.
    fn corrupt_offset(e: &Error, path: &Path) -> u64 {
        match e {
            Error::Corrupt {
                path: p, offset, ..
            } if p == path => {
                assert!(e.to_string().contains(&path.display().to_string()));
                *offset
            }
            other => panic!("expected corruption of {}, got {other:?}", path.display()),
        }
    }

    fn check_round_trip(store: &SnapshotStore) {
        // Several chunks and a partial one.
        let big = data(3 * CHUNK + 123);
        let path = store.save(&meta(10, 2), &mut &big[..]).unwrap();
        assert_eq!(
            path,
            store.dir().join("000000000000000a-0000000000000002.snap")
        );
        let loaded = store.load_newest().unwrap().unwrap();
        assert_eq!(loaded.snapshot.data, big);
        assert_eq!(loaded.snapshot.metadata, Some(meta(10, 2)));
        assert_eq!(loaded.path.as_deref(), Some(path.as_path()));
        assert!(loaded.skipped.is_empty());
        assert_eq!(store.metadata_of(&path).unwrap(), meta(10, 2));

        let mut streamed = Vec::new();
        store
            .open_reader(&path)
            .unwrap()
            .read_to_end(&mut streamed)
            .unwrap();
        assert_eq!(streamed, big);

        // Empty data, and exactly one chunk.
        for (index, len) in [(11, 0), (12, CHUNK)] {
            store.save_bytes(&meta(index, 3), &data(len)).unwrap();
            let s = store.load_newest().unwrap().unwrap().snapshot;
            assert_eq!((s.index(), s.term(), s.data.len()), (index, 3, len));
            assert_eq!(s.data, data(len));
        }
    }

    #[test]
    fn round_trip_os() {
        let (_tmp, store) = os_store(DEFAULT_KEEP);
        assert!(store.load_newest().unwrap().is_none());
        check_round_trip(&store);
    }

    #[test]
    fn keeps_the_newest_k() {
        let (_tmp, store) = os_store(3);
        for i in 1..=6 {
            store.save_bytes(&meta(i * 10, 1), b"x").unwrap();
        }
        // Same index, higher term sorts newer.
        store.save_bytes(&meta(60, 2), b"y").unwrap();
        assert_eq!(store.list().unwrap().len(), 7, "saving prunes nothing");
        store.prune().unwrap();
        let listed: Vec<_> = store
            .list()
            .unwrap()
            .iter()
            .map(|f| (f.index, f.term))
            .collect();
        assert_eq!(listed, [(60, 2), (60, 1), (50, 1)]);
        assert_eq!(store.fs.list(store.dir()).unwrap().len(), 3);

        let (_tmp, store) = os_store(0);
        store.save_bytes(&meta(1, 1), b"x").unwrap();
        store.save_bytes(&meta(2, 1), b"x").unwrap();
        store.prune().unwrap();
        assert_eq!(store.list().unwrap().len(), 1, "keep 0 keeps one");
        assert_eq!(store.load_newest().unwrap().unwrap().snapshot.index(), 2);
    }

    #[test]
    fn refuses_index_zero_and_older_snapshots() {
        let (_tmp, store) = os_store(DEFAULT_KEEP);
        assert!(matches!(
            store.save_bytes(&meta(0, 0), b""),
            Err(Error::InvalidWrite(_))
        ));
        store.save_bytes(&meta(5, 1), b"a").unwrap();
        assert!(matches!(
            store.save_bytes(&meta(4, 1), b""),
            Err(Error::InvalidWrite(_))
        ));
        // The same snapshot again replaces it.
        store.save_bytes(&meta(5, 1), b"b").unwrap();
        assert_eq!(
            store.load_newest().unwrap().unwrap().snapshot.data,
            &b"b"[..]
        );
        assert_eq!(store.fs.list(store.dir()).unwrap().len(), 1);
    }

    fn check_every_truncation_fails(store: &SnapshotStore) {
        let path = store.save_bytes(&meta(7, 1), &data(40)).unwrap();
        let whole = read_all(store.fs.as_ref(), &path);
        for len in (0..whole.len()).chain([whole.len() + 1]) {
            let mut bytes = whole.clone();
            bytes.resize(len, 0);
            write_all(store.fs.as_ref(), &path, &bytes);
            let e = store.load(&path).unwrap_err();
            corrupt_offset(&e, &path);
            let skipped = store.load_newest().unwrap().unwrap().skipped;
            assert_eq!(skipped.len(), 1, "length {len}");
        }
    }

    #[test]
    fn every_truncation_is_an_error_os() {
        let (_tmp, store) = os_store(DEFAULT_KEEP);
        check_every_truncation_fails(&store);
    }

    /// Flips every bit of a small snapshot file in turn: each is caught,
    /// damage in the data reported at the data's start and damage in the
    /// header within it.
    fn check_every_bit_flip_detected(store: &SnapshotStore) {
        let payload = data(32);
        let path = store.save_bytes(&meta(9, 4), &payload).unwrap();
        let whole = read_all(store.fs.as_ref(), &path);
        let data_start = (whole.len() - TRAILER_LEN as usize - payload.len()) as u64;
        let trailer_at = whole.len() as u64 - TRAILER_LEN;
        for bit in 0..whole.len() * 8 {
            let mut bytes = whole.clone();
            bytes[bit / 8] ^= 1 << (bit % 8);
            write_all(store.fs.as_ref(), &path, &bytes);
            let e = store.load(&path).unwrap_err();
            let offset = corrupt_offset(&e, &path);
            let at = (bit / 8) as u64;
            if at < data_start {
                assert!(offset < data_start, "header bit {bit}: {e}");
                assert!(store.metadata_of(&path).is_err(), "header bit {bit}");
            } else if at < trailer_at {
                assert_eq!(offset, data_start, "data bit {bit}: {e}");
                let mut sink = Vec::new();
                let err = store
                    .open_reader(&path)
                    .unwrap()
                    .read_to_end(&mut sink)
                    .unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            } else {
                assert!(
                    offset == trailer_at || offset == data_start,
                    "trailer bit {bit}: {e}"
                );
            }
        }
    }

    #[test]
    fn every_bit_flip_is_detected_os() {
        let (_tmp, store) = os_store(DEFAULT_KEEP);
        check_every_bit_flip_detected(&store);
    }

    fn check_damaged_newest_skipped(store: &SnapshotStore) {
        let old = store.save_bytes(&meta(3, 1), b"old").unwrap();
        let new = store.save_bytes(&meta(8, 2), b"new").unwrap();
        let mut bytes = read_all(store.fs.as_ref(), &new);
        let n = bytes.len();
        bytes[n - TRAILER_LEN as usize - 1] ^= 0x10; // last data byte
        write_all(store.fs.as_ref(), &new, &bytes);

        let loaded = store.load_newest().unwrap().unwrap();
        assert_eq!(loaded.snapshot.data, &b"old"[..]);
        assert_eq!(loaded.snapshot.index(), 3);
        assert_eq!(loaded.path.as_deref(), Some(old.as_path()));
        assert_eq!(loaded.skipped.len(), 1);
        corrupt_offset(&loaded.skipped[0], &new);

        // Both damaged: nothing to load, both reported, newest first.
        write_all(store.fs.as_ref(), &old, b"RDDRSNAP garbage");
        let loaded = store.load_newest().unwrap().unwrap();
        assert!(loaded.snapshot.is_empty());
        assert_eq!(loaded.path, None);
        assert_eq!(loaded.skipped.len(), 2);
        corrupt_offset(&loaded.skipped[0], &new);
        corrupt_offset(&loaded.skipped[1], &old);

        // The caller may discard them.
        store.remove(&new).unwrap();
        store.remove(&old).unwrap();
        assert!(store.load_newest().unwrap().is_none());
    }

    #[test]
    fn damaged_newest_is_skipped_and_reported_os() {
        let (_tmp, store) = os_store(DEFAULT_KEEP);
        check_damaged_newest_skipped(&store);
    }

    #[test]
    fn metadata_must_match_the_name() {
        let (_tmp, store) = os_store(DEFAULT_KEEP);
        let path = store.save_bytes(&meta(5, 1), b"a").unwrap();
        let other = store.dir().join(file_name(6, 1));
        store.fs.rename(&path, &other).unwrap();
        let e = store.load(&other).unwrap_err();
        assert_eq!(corrupt_offset(&e, &other), FIXED_LEN);
    }

    fn check_leftover_tmp_removed(fs: Arc<dyn FileSystem>, dir: &Path) {
        let store = SnapshotStore::open(fs.clone(), dir, DEFAULT_KEEP).unwrap();
        store.save_bytes(&meta(5, 1), b"a").unwrap();
        let tmp = dir.join(format!("{}{TMP_SUFFIX}", file_name(9, 1)));
        write_all(fs.as_ref(), &tmp, b"RDDRSNAP half a snap");
        drop(store);
        let store = SnapshotStore::open(fs.clone(), dir, DEFAULT_KEEP).unwrap();
        assert_eq!(fs.list(dir).unwrap(), [file_name(5, 1)]);
        assert_eq!(store.load_newest().unwrap().unwrap().snapshot.index(), 5);
    }

    #[test]
    fn leftover_temporary_file_is_removed_at_open_os() {
        let tmp = tempfile::tempdir().unwrap();
        check_leftover_tmp_removed(Arc::new(OsFs), &tmp.path().join("a/snap"));
    }

    /// A source that fails after yielding some bytes.
    struct Failing(usize);

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("source broke"));
            }
            let n = buf.len().min(self.0);
            self.0 -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_failing_source_leaves_nothing_behind() {
        let (_tmp, store) = os_store(DEFAULT_KEEP);
        store.save_bytes(&meta(5, 1), b"a").unwrap();
        let e = store
            .save(&meta(6, 1), &mut Failing(CHUNK + 5))
            .unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
        assert_eq!(store.fs.list(store.dir()).unwrap(), [file_name(5, 1)]);
    }

    #[test]
    fn names_parse_strictly() {
        assert_eq!(parse_name(&file_name(0xab, 3)), Some((0xab, 3)));
        for bad in [
            "000000000000000a-0000000000000002.snap.tmp",
            "000000000000000A-0000000000000002.snap",
            "+00000000000000a-0000000000000002.snap",
            "00000000000000a-0000000000000002.snap",
            "000000000000000a_0000000000000002.snap",
            "snap",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    // ---- On the in-memory file system, with faults and crashes. ----

    use crate::fs::{MemFs, MemFsFaults};

    fn mem_store(mem: &MemFs) -> SnapshotStore {
        SnapshotStore::open(Arc::new(mem.clone()), "/data/snap", DEFAULT_KEEP).unwrap()
    }

    #[test]
    fn round_trip_mem() {
        let mem = MemFs::new(1);
        let store = mem_store(&mem);
        check_round_trip(&store);
        // Durable as soon as save returns: a crash loses nothing.
        mem.crash();
        let store = mem_store(&mem);
        let s = store.load_newest().unwrap().unwrap().snapshot;
        assert_eq!((s.index(), s.data), (12, Bytes::from(data(CHUNK))));
    }

    #[test]
    fn every_truncation_is_an_error_mem() {
        check_every_truncation_fails(&mem_store(&MemFs::new(2)));
    }

    #[test]
    fn every_bit_flip_is_detected_mem() {
        check_every_bit_flip_detected(&mem_store(&MemFs::new(3)));
    }

    #[test]
    fn damaged_newest_is_skipped_and_reported_mem() {
        check_damaged_newest_skipped(&mem_store(&MemFs::new(4)));
    }

    #[test]
    fn leftover_temporary_file_is_removed_at_open_mem() {
        check_leftover_tmp_removed(Arc::new(MemFs::new(5)), Path::new("/data/snap"));
    }

    #[test]
    fn bad_sector_in_the_header_of_the_newest() {
        let mem = MemFs::new(6);
        let store = mem_store(&mem);
        store.save_bytes(&meta(3, 1), b"old").unwrap();
        let new = store.save_bytes(&meta(8, 2), b"new").unwrap();
        assert!(mem.flip_bit(&new, 17, 5)); // in the metadata
        let loaded = store.load_newest().unwrap().unwrap();
        assert_eq!(loaded.snapshot.index(), 3);
        assert_eq!(corrupt_offset(&loaded.skipped[0], &new), 0);
    }

    #[test]
    fn failed_syncs_leave_the_old_snapshot() {
        // 0: the file's fsync fails; 1: the directory's fsync after the rename.
        for after in [0, 1] {
            let mem = MemFs::new(7);
            let store = mem_store(&mem);
            let old = store.save_bytes(&meta(3, 1), b"old").unwrap();
            mem.set_faults(MemFsFaults {
                torn_write_probability: 1.0,
                fail_sync_after: Some(after),
                fail_writes: false,
            });
            assert!(store.save_bytes(&meta(8, 2), &data(1000)).is_err());
            mem.crash();
            let store = mem_store(&mem);
            assert_eq!(store.fs.list(store.dir()).unwrap(), [file_name(3, 1)]);
            let loaded = store.load_newest().unwrap().unwrap();
            assert_eq!(loaded.path, Some(old));
            assert!(loaded.skipped.is_empty());
        }
    }

    #[test]
    fn failed_writes_leave_nothing_behind() {
        let mem = MemFs::new(8);
        let store = mem_store(&mem);
        store.save_bytes(&meta(3, 1), b"old").unwrap();
        mem.set_faults(MemFsFaults {
            fail_writes: true,
            ..Default::default()
        });
        assert!(matches!(
            store.save_bytes(&meta(8, 2), b"new"),
            Err(Error::Io { .. })
        ));
        assert_eq!(store.fs.list(store.dir()).unwrap(), [file_name(3, 1)]);
    }

    /// A [`MemFs`] that crashes (and fails from then on, its process
    /// dead) at the `n`th file-system call.
    #[derive(Debug)]
    struct CrashAt {
        mem: MemFs,
        left: Mutex<u64>,
    }

    impl CrashAt {
        fn step(&self) -> io::Result<()> {
            let mut left = self.left.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                if *left > 0 {
                    return Ok(());
                }
                self.mem.crash();
            }
            Err(io::Error::other("crashed"))
        }
    }

    impl FileSystem for CrashAt {
        fn open(&self, path: &Path) -> io::Result<Box<dyn File>> {
            self.step().and_then(|()| self.mem.open(path))
        }
        fn create(&self, path: &Path) -> io::Result<Box<dyn File>> {
            self.step().and_then(|()| self.mem.create(path))
        }
        fn create_dir_all(&self, path: &Path) -> io::Result<()> {
            self.step().and_then(|()| self.mem.create_dir_all(path))
        }
        fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
            self.step().and_then(|()| self.mem.list(dir))
        }
        fn is_dir(&self, path: &Path) -> bool {
            self.mem.is_dir(path)
        }
        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            self.step().and_then(|()| self.mem.rename(from, to))
        }
        fn remove_file(&self, path: &Path) -> io::Result<()> {
            self.step().and_then(|()| self.mem.remove_file(path))
        }
        fn sync_dir(&self, dir: &Path) -> io::Result<()> {
            self.step().and_then(|()| self.mem.sync_dir(dir))
        }
    }

    /// A crash at any step of a save (before the rename, before the
    /// directory sync, in the pruning) leaves either the old snapshots or
    /// the new one complete, never a partial file, and a reopen cleans up.
    #[test]
    fn crash_at_any_step_of_a_save() {
        let new_data = data(CHUNK + 10);
        for seed in 0..4 {
            for n in 1.. {
                let mem = MemFs::new(seed);
                mem.set_faults(MemFsFaults {
                    torn_write_probability: 1.0,
                    ..Default::default()
                });
                let store = mem_store(&mem);
                store.save_bytes(&meta(3, 1), b"three").unwrap();
                store.save_bytes(&meta(4, 1), b"four").unwrap();

                let crashing = Arc::new(CrashAt {
                    mem: mem.clone(),
                    left: Mutex::new(u64::MAX),
                });
                let store =
                    SnapshotStore::open(crashing.clone(), "/data/snap", DEFAULT_KEEP).unwrap();
                *crashing.left.lock().unwrap() = n;
                let saved = store.save_bytes(&meta(5, 1), &new_data).is_ok();
                let crashed = *crashing.left.lock().unwrap() == 0;
                assert_eq!(saved, !crashed, "crash at call {n}");
                if !crashed {
                    mem.crash();
                }

                let store = mem_store(&mem);
                let names = store.fs.list(store.dir()).unwrap();
                assert!(names.iter().all(|n| parse_name(n).is_some()), "{names:?}");
                let indexes: Vec<u64> = store.list().unwrap().iter().map(|f| f.index).collect();
                assert!(
                    [&[4, 3][..], &[5, 4, 3]].contains(&&indexes[..]),
                    "crash at call {n}: {indexes:?}"
                );
                for f in store.list().unwrap() {
                    let s = store.load(&f.path).unwrap();
                    let want: &[u8] = match f.index {
                        3 => b"three",
                        4 => b"four",
                        _ => &new_data,
                    };
                    assert_eq!(s.data, want);
                }
                if saved {
                    assert_eq!(indexes, [5, 4, 3], "a save prunes nothing");
                    break;
                }
            }
        }
    }
}
