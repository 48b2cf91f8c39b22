//! [`FileSystem`] in memory, with faults: a simulated disk on which the
//! storage's recovery code (and a deterministic cluster simulator) can
//! lose unsynced writes, tear a write, fail an `fsync` or flip a bit.
//!
//! The model keeps two views of everything:
//!
//! - per file (an *inode*, so a rename moves it and open handles keep
//!   working on it): the *durable* content, what the disk holds, and the
//!   *volatile* content, what the process sees; in between, the ordered
//!   list of writes since the last sync;
//! - per name: the *volatile* directory entries, changed by create, rename
//!   and remove, and the *durable* ones, which [`FileSystem::sync_dir`]
//!   brings up to date for one directory.
//!
//! [`MemFs::crash`] throws the volatile views away, as a power loss would,
//! keeping (by a seeded random choice) a prefix of each file's unsynced
//! writes. Directories themselves are durable as soon as they are created.

use super::{File, FileSystem};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The faults a [`MemFs`] injects; set them with [`MemFs::set_faults`].
/// The default injects none, except that a crash tears unsynced writes
/// half the time.
#[derive(Clone, Debug, PartialEq)]
pub struct MemFsFaults {
    /// For each file with unsynced writes, the chance that a crash keeps a
    /// prefix of them (a torn write) instead of losing them all. Values
    /// outside `0.0..=1.0` act as the nearest bound, NaN as `0.0`.
    pub torn_write_probability: f64,
    /// `Some(n)`: the next `n` sync calls (`sync_data`, `sync_all` and
    /// `sync_dir` alike) succeed and the one after fails, once; then this
    /// goes back to `None`. A failed file sync drops the file's unsynced
    /// writes for good (the kernel dropped the dirty pages): reads show
    /// the durable content again. A failed `sync_dir` likewise reverts
    /// the directory's entries to the durable ones.
    pub fail_sync_after: Option<u64>,
    /// Whether writes (`write_all_at`, `set_len`, `allocate`) fail, as on
    /// a full disk, leaving the file unchanged.
    pub fail_writes: bool,
}

impl Default for MemFsFaults {
    fn default() -> Self {
        MemFsFaults {
            torn_write_probability: 0.5,
            fail_sync_after: None,
            fail_writes: false,
        }
    }
}

/// An in-memory file system that can crash and inject faults.
///
/// A cheap handle: clones share one file system, so a test keeps a clone
/// to crash it or inject faults while the storage uses another. All
/// random choices come from one generator seeded by [`MemFs::new`], so a
/// run is reproducible from its seed (given the same calls in the same
/// order).
#[derive(Clone)]
pub struct MemFs {
    state: Arc<Mutex<State>>,
}

impl MemFs {
    /// The largest length a file may reach; a write, `set_len` or
    /// `allocate` past it fails (like `EFBIG`) rather than exhausting
    /// memory.
    pub const MAX_FILE_LEN: u64 = 1 << 30;

    /// An empty file system whose random choices are seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        let state = State {
            rng: SmallRng::seed_from_u64(seed),
            faults: MemFsFaults::default(),
            inodes: BTreeMap::new(),
            next_ino: 0,
            names: BTreeMap::new(),
            durable_names: BTreeMap::new(),
            dirs: BTreeSet::new(),
            generation: 0,
            syncs: 0,
        };
        MemFs {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Replaces the faults to inject from now on.
    pub fn set_faults(&self, faults: MemFsFaults) {
        self.lock().faults = faults;
    }

    /// Simulates a power loss and restart. Every file reverts to its
    /// durable content, except that with probability
    /// [`MemFsFaults::torn_write_probability`] a file keeps its first `k`
    /// unsynced writes and a prefix of the next (`k` and the prefix
    /// random); a length change is kept whole or not at all. Directory
    /// entries revert to the durable ones, so files never dir-synced
    /// vanish and un-synced renames and removals are undone. Every handle
    /// opened before fails from now on: its process died.
    pub fn crash(&self) {
        let mut guard = self.lock();
        let s = &mut *guard;
        let live: BTreeSet<u64> = s.durable_names.values().copied().collect();
        s.inodes.retain(|ino, _| live.contains(ino));
        let p = s.faults.torn_write_probability;
        for inode in s.inodes.values_mut() {
            let pending = std::mem::take(&mut inode.pending);
            // `random::<f64>() < p` never panics, whatever `p` is.
            if !pending.is_empty() && s.rng.random::<f64>() < p {
                let k = s.rng.random_range(0..pending.len());
                for op in &pending[..k] {
                    op.apply(&mut inode.durable, usize::MAX);
                }
                let cut = s.rng.random_range(0..=pending[k].size());
                pending[k].apply(&mut inode.durable, cut);
            }
            inode.volatile.clone_from(&inode.durable);
            inode.open = 0;
        }
        s.names = s.durable_names.clone();
        s.generation += 1;
    }

    /// Flips bit `bit` (0 to 7) of the byte at `offset` of the file at
    /// `path`, in both its durable and its volatile content, as a bad
    /// sector would. Returns whether a bit was flipped: `false` if there
    /// is no such file, `bit > 7`, or `offset` is past both ends.
    pub fn flip_bit(&self, path: &Path, offset: u64, bit: u8) -> bool {
        let mut s = self.lock();
        let Some(ino) = s.names.get(path).copied() else {
            return false;
        };
        let Some(inode) = s.inodes.get_mut(&ino) else {
            return false;
        };
        if bit > 7 {
            return false;
        }
        let mut flipped = false;
        for content in [&mut inode.durable, &mut inode.volatile] {
            if let Some(byte) = usize::try_from(offset)
                .ok()
                .and_then(|i| content.get_mut(i))
            {
                *byte ^= 1 << bit;
                flipped = true;
            }
        }
        flipped
    }

    /// The durable length of the file a crash now would leave at `path`
    /// (by the durable directory entries), or `None` if there would be
    /// none. For tests.
    pub fn durable_len(&self, path: &Path) -> Option<u64> {
        let s = self.lock();
        let ino = s.durable_names.get(path)?;
        Some(s.inodes.get(ino)?.durable.len() as u64)
    }

    /// The durable content of the file a crash now would leave at `path`
    /// (by the durable directory entries; torn writes aside), or `None`
    /// if there would be none. For tests.
    pub fn read_durable(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.lock();
        let ino = s.durable_names.get(path)?;
        Some(s.inodes.get(ino)?.durable.clone())
    }

    /// How many `sync_data` and `sync_all` calls have succeeded, so tests
    /// and benchmarks can count the fsyncs an operation costs.
    /// (`sync_dir` calls are not counted.)
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl fmt::Debug for MemFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("MemFs")
            .field("files", &s.names.len())
            .field("dirs", &s.dirs.len())
            .field("crashes", &s.generation)
            .field("syncs", &s.syncs)
            .finish()
    }
}

impl FileSystem for MemFs {
    fn open(&self, path: &Path) -> io::Result<Box<dyn File>> {
        let mut s = self.lock();
        if s.dirs.contains(path) {
            return Err(error("is a directory"));
        }
        let ino = *s.names.get(path).ok_or_else(not_found)?;
        Ok(s.handle(&self.state, ino))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn File>> {
        let mut s = self.lock();
        s.check_new_entry(path)?;
        if s.names.contains_key(path) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let ino = s.next_ino;
        s.next_ino += 1;
        s.inodes.insert(ino, Inode::default());
        s.names.insert(path.to_path_buf(), ino);
        Ok(s.handle(&self.state, ino))
    }

    /// Records `path` and its ancestors as directories, durable at once
    /// (the storage creates its directories before it writes anything, so
    /// losing them on a crash would test nothing).
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let new: Vec<&Path> = path.ancestors().filter(|p| p.parent().is_some()).collect();
        if new.iter().any(|p| s.names.contains_key(*p)) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a file is in the way",
            ));
        }
        s.dirs.extend(new.into_iter().map(Path::to_path_buf));
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = self.lock();
        if !s.is_dir(dir) {
            return Err(if s.names.contains_key(dir) {
                error("not a directory")
            } else {
                not_found()
            });
        }
        let files = s.names.keys();
        let names: BTreeSet<String> = files
            .chain(s.dirs.iter())
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        Ok(names.into_iter().collect())
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.lock().is_dir(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let ino = *s.names.get(from).ok_or_else(not_found)?;
        s.check_new_entry(to)?;
        s.names.remove(from);
        s.names.insert(to.to_path_buf(), ino);
        s.sweep();
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        if s.dirs.contains(path) {
            return Err(error("is a directory"));
        }
        s.names.remove(path).ok_or_else(not_found)?;
        s.sweep();
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut guard = self.lock();
        let s = &mut *guard;
        if !s.is_dir(dir) {
            return Err(not_found());
        }
        let failed = s.take_sync_failure();
        let (from, to) = if failed {
            (&s.durable_names, &mut s.names)
        } else {
            (&s.names, &mut s.durable_names)
        };
        to.retain(|p, _| p.parent() != Some(dir));
        to.extend(
            from.iter()
                .filter(|(p, _)| p.parent() == Some(dir))
                .map(|(p, i)| (p.clone(), *i)),
        );
        s.sweep();
        if failed {
            return Err(error("injected fsync failure (directory)"));
        }
        Ok(())
    }
}

/// The shared state behind every [`MemFs`] clone and [`MemFile`].
struct State {
    rng: SmallRng,
    faults: MemFsFaults,
    inodes: BTreeMap<u64, Inode>,
    next_ino: u64,
    /// Volatile directory entries: what the process sees.
    names: BTreeMap<PathBuf, u64>,
    /// Durable directory entries: what survives a crash.
    durable_names: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    /// Bumped by every crash; handles from an older one are dead.
    generation: u64,
    syncs: u64,
}

impl State {
    /// `/` and the empty path (the current directory) always exist.
    fn is_dir(&self, path: &Path) -> bool {
        path.parent().is_none() || self.dirs.contains(path)
    }

    /// Checks that a file may be put at `path`: not a directory, and in
    /// one.
    fn check_new_entry(&self, path: &Path) -> io::Result<()> {
        if self.is_dir(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "is a directory",
            ));
        }
        match path.parent() {
            Some(dir) if self.is_dir(dir) => Ok(()),
            _ => Err(not_found()),
        }
    }

    fn handle(&mut self, state: &Arc<Mutex<State>>, ino: u64) -> Box<dyn File> {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.open += 1;
        }
        Box::new(MemFile {
            state: Arc::clone(state),
            ino,
            generation: self.generation,
        })
    }

    /// Whether this sync call is the one [`MemFsFaults::fail_sync_after`]
    /// picked; counts it down.
    fn take_sync_failure(&mut self) -> bool {
        match self.faults.fail_sync_after {
            Some(0) => {
                self.faults.fail_sync_after = None;
                true
            }
            Some(n) => {
                self.faults.fail_sync_after = Some(n - 1);
                false
            }
            None => false,
        }
    }

    /// Frees the inodes no name and no handle refers to.
    fn sweep(&mut self) {
        let named: BTreeSet<u64> = self
            .names
            .values()
            .chain(self.durable_names.values())
            .copied()
            .collect();
        self.inodes
            .retain(|ino, inode| inode.open > 0 || named.contains(ino));
    }
}

/// A file's contents.
#[derive(Default)]
struct Inode {
    /// What the disk holds.
    durable: Vec<u8>,
    /// What the process sees: `durable` with `pending` applied.
    volatile: Vec<u8>,
    /// The changes since the last sync, oldest first.
    pending: Vec<Op>,
    /// Open handles (of the current generation).
    open: usize,
}

/// One unsynced change to a file.
enum Op {
    Write { offset: usize, bytes: Vec<u8> },
    SetLen(usize),
}

impl Op {
    /// How far a crash can cut this change: bytes of a write; a length
    /// change is all or nothing.
    fn size(&self) -> usize {
        match self {
            Op::Write { bytes, .. } => bytes.len(),
            Op::SetLen(_) => 1,
        }
    }

    /// Applies the first `cut` units (see [`Op::size`]) of the change.
    fn apply(&self, content: &mut Vec<u8>, cut: usize) {
        match self {
            Op::Write { offset, bytes } => {
                let bytes = &bytes[..cut.min(bytes.len())];
                if bytes.is_empty() {
                    return;
                }
                let end = offset + bytes.len();
                if content.len() < end {
                    content.resize(end, 0);
                }
                content[*offset..end].copy_from_slice(bytes);
            }
            Op::SetLen(len) if cut > 0 => content.resize(*len, 0),
            Op::SetLen(_) => {}
        }
    }
}

/// An open [`MemFs`] file: refers to its inode, whatever its name.
struct MemFile {
    state: Arc<Mutex<State>>,
    ino: u64,
    generation: u64,
}

impl MemFile {
    /// Runs `f` on the file system and this handle's inode, unless a crash
    /// made the handle stale.
    fn with<R>(&self, f: impl FnOnce(&mut State, u64) -> io::Result<R>) -> io::Result<R> {
        let mut s = lock(&self.state);
        if s.generation != self.generation || !s.inodes.contains_key(&self.ino) {
            return Err(error("file handle from before a simulated crash"));
        }
        f(&mut s, self.ino)
    }

    /// Records and applies a change to the volatile content.
    fn change(&mut self, op: Op) -> io::Result<()> {
        self.with(|s, ino| {
            if s.faults.fail_writes {
                return Err(error("injected write failure: no space left on device"));
            }
            let inode = s.inodes.get_mut(&ino).ok_or_else(not_found)?;
            op.apply(&mut inode.volatile, usize::MAX);
            inode.pending.push(op);
            Ok(())
        })
    }

    fn sync(&mut self) -> io::Result<()> {
        self.with(|s, ino| {
            let failed = s.take_sync_failure();
            let inode = s.inodes.get_mut(&ino).ok_or_else(not_found)?;
            let pending = std::mem::take(&mut inode.pending);
            if failed {
                inode.volatile.clone_from(&inode.durable);
                return Err(error("injected fsync failure"));
            }
            for op in &pending {
                op.apply(&mut inode.durable, usize::MAX);
            }
            s.syncs += 1;
            Ok(())
        })
    }
}

/// `len` as an in-memory offset, if it is within [`MemFs::MAX_FILE_LEN`].
fn checked_len(len: u64) -> io::Result<usize> {
    if len > MemFs::MAX_FILE_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "file too large",
        ));
    }
    usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput.into())
}

impl File for MemFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.with(|s, ino| {
            let content = &s.inodes.get(&ino).ok_or_else(not_found)?.volatile;
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(content.len());
            let n = buf.len().min(content.len() - start);
            buf[..n].copy_from_slice(&content[start..start + n]);
            Ok(n)
        })
    }

    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let end = offset.saturating_add(buf.len() as u64);
        checked_len(end)?;
        let offset = checked_len(offset)?;
        self.change(Op::Write {
            offset,
            bytes: buf.to_vec(),
        })
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.sync()
    }

    /// As [`File::sync_data`]: the model keeps no metadata apart.
    fn sync_all(&mut self) -> io::Result<()> {
        self.sync()
    }

    /// Extends the file with zeros to `len` if it is shorter, like
    /// [`File::set_len`]; never shortens it.
    fn allocate(&mut self, len: u64) -> io::Result<()> {
        let len = checked_len(len)?;
        if self.len()? >= len as u64 {
            return Ok(());
        }
        self.change(Op::SetLen(len))
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let len = checked_len(len)?;
        self.change(Op::SetLen(len))
    }

    fn len(&self) -> io::Result<u64> {
        self.with(|s, ino| Ok(s.inodes.get(&ino).ok_or_else(not_found)?.volatile.len() as u64))
    }
}

impl Drop for MemFile {
    fn drop(&mut self) {
        let mut s = lock(&self.state);
        if s.generation != self.generation {
            return;
        }
        if let Some(inode) = s.inodes.get_mut(&self.ino) {
            inode.open = inode.open.saturating_sub(1);
        }
        s.sweep();
    }
}

impl fmt::Debug for MemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemFile")
            .field("ino", &self.ino)
            .field("generation", &self.generation)
            .finish()
    }
}

/// Locks the state; a panic elsewhere while it was held leaves it
/// consistent enough for a test to go on, so poisoning is ignored.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn not_found() -> io::Error {
    io::ErrorKind::NotFound.into()
}

fn error(msg: &'static str) -> io::Error {
    io::Error::other(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    /// A file system with directory `d` and file `d/f` holding `base`,
    /// synced and dir-synced.
    fn with_file(seed: u64, base: &[u8]) -> (MemFs, Box<dyn File>) {
        let fs = MemFs::new(seed);
        fs.create_dir_all(p("d")).unwrap();
        let mut f = fs.create(p("d/f")).unwrap();
        f.write_all_at(base, 0).unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(p("d")).unwrap();
        (fs, f)
    }

    fn read_all(fs: &MemFs, path: &str) -> Vec<u8> {
        let f = fs.open(p(path)).unwrap();
        let mut buf = vec![0; f.len().unwrap() as usize];
        f.read_exact_at(&mut buf, 0).unwrap();
        buf
    }

    #[test]
    fn synced_data_survives_a_crash() {
        let (fs, mut f) = with_file(1, b"hello");
        f.write_all_at(b" world", 5).unwrap();
        f.sync_all().unwrap();
        fs.set_faults(MemFsFaults {
            torn_write_probability: 1.0,
            ..MemFsFaults::default()
        });
        fs.crash();
        assert_eq!(read_all(&fs, "d/f"), b"hello world");
        assert_eq!(fs.read_durable(p("d/f")).unwrap(), b"hello world");
        assert_eq!(fs.durable_len(p("d/f")), Some(11));
    }

    /// Every content a crash may leave: the durable `base` with the first
    /// `k` of `writes` in full and a prefix of the next.
    fn outcomes(base: &[u8], writes: &[(usize, &[u8])]) -> Vec<Vec<u8>> {
        let mut all = vec![base.to_vec()];
        let mut content = base.to_vec();
        for (offset, bytes) in writes {
            for cut in 1..=bytes.len() {
                let mut c = content.clone();
                Op::Write {
                    offset: *offset,
                    bytes: bytes.to_vec(),
                }
                .apply(&mut c, cut);
                all.push(c);
            }
            Op::Write {
                offset: *offset,
                bytes: bytes.to_vec(),
            }
            .apply(&mut content, usize::MAX);
        }
        all
    }

    #[test]
    fn unsynced_writes_are_lost_or_torn_to_a_prefix() {
        let writes: [(usize, &[u8]); 3] = [(4, b"abcd"), (1, b"XY"), (8, b"tail")];
        let allowed = outcomes(b"base", &writes);
        // Ends of whole writes: "base", then each write in full.
        let whole = [&b"base"[..], b"baseabcd", b"bXYeabcd", b"bXYeabcdtail"];
        let (mut lost, mut kept, mut torn) = (0, 0, 0);
        for seed in 0..64 {
            let (fs, mut f) = with_file(seed, b"base");
            for (offset, bytes) in writes {
                f.write_all_at(bytes, offset as u64).unwrap();
            }
            assert_eq!(read_all(&fs, "d/f"), b"bXYeabcdtail");
            fs.crash();
            let after = read_all(&fs, "d/f");
            assert!(allowed.contains(&after), "seed {seed}: {after:?}");
            assert_eq!(fs.read_durable(p("d/f")).unwrap(), after);
            if after == b"base" {
                lost += 1;
            } else {
                kept += 1;
            }
            if !whole.contains(&&after[..]) {
                torn += 1;
            }
        }
        assert!(
            lost > 0 && kept > 0 && torn > 0,
            "lost {lost}, kept {kept}, torn {torn}"
        );
    }

    #[test]
    fn crashes_are_deterministic_per_seed() {
        let run = |seed| {
            let (fs, _) = with_file(seed, b"");
            (0..16)
                .map(|_| {
                    let mut f = fs.open(p("d/f")).unwrap();
                    f.write_all_at(&[7; 100], 0).unwrap();
                    fs.crash();
                    fs.durable_len(p("d/f")).unwrap()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn no_tearing_loses_all_unsynced_writes() {
        for seed in 0..16 {
            let (fs, mut f) = with_file(seed, b"base");
            fs.set_faults(MemFsFaults {
                torn_write_probability: 0.0,
                ..MemFsFaults::default()
            });
            f.write_all_at(b"more", 4).unwrap();
            f.set_len(2).unwrap();
            fs.crash();
            assert_eq!(read_all(&fs, "d/f"), b"base");
        }
    }

    #[test]
    fn set_len_and_allocate_are_volatile_until_synced() {
        let (fs, mut f) = with_file(0, b"abcdef");
        f.set_len(2).unwrap();
        assert_eq!(f.len().unwrap(), 2);
        f.allocate(4).unwrap();
        f.allocate(1).unwrap();
        assert_eq!(f.len().unwrap(), 4);
        let mut buf = [9; 8];
        assert_eq!(f.read_at(&mut buf, 0).unwrap(), 4);
        assert_eq!(&buf[..4], b"ab\0\0");
        assert_eq!(fs.durable_len(p("d/f")), Some(6));
        fs.set_faults(MemFsFaults {
            torn_write_probability: 0.0,
            ..MemFsFaults::default()
        });
        fs.crash();
        assert_eq!(read_all(&fs, "d/f"), b"abcdef");
        let mut f = fs.open(p("d/f")).unwrap();
        f.set_len(3).unwrap();
        f.sync_data().unwrap();
        fs.crash();
        assert_eq!(read_all(&fs, "d/f"), b"abc");
    }

    #[test]
    fn a_file_created_without_sync_dir_disappears() {
        let fs = MemFs::new(0);
        fs.create_dir_all(p("d")).unwrap();
        let mut f = fs.create(p("d/new")).unwrap();
        f.write_all_at(b"data", 0).unwrap();
        f.sync_data().unwrap();
        assert_eq!(fs.list(p("d")).unwrap(), ["new"]);
        assert_eq!(fs.read_durable(p("d/new")), None);
        fs.crash();
        assert_eq!(fs.list(p("d")).unwrap(), Vec::<String>::new());
        assert_eq!(
            fs.open(p("d/new")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(fs.is_dir(p("d")), "directories are durable at once");

        let mut f = fs.create(p("d/new")).unwrap();
        f.write_all_at(b"data", 0).unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(p("d")).unwrap();
        fs.crash();
        assert_eq!(read_all(&fs, "d/new"), b"data");
    }

    #[test]
    fn a_rename_without_sync_dir_is_undone_and_with_it_survives() {
        let (fs, f) = with_file(0, b"old");
        drop(f);
        let mut t = fs.create(p("d/tmp")).unwrap();
        t.write_all_at(b"new", 0).unwrap();
        t.sync_data().unwrap();
        fs.sync_dir(p("d")).unwrap();
        fs.rename(p("d/tmp"), p("d/f")).unwrap();
        assert_eq!(read_all(&fs, "d/f"), b"new");
        assert_eq!(fs.list(p("d")).unwrap(), ["f"]);
        fs.crash();
        assert_eq!(read_all(&fs, "d/f"), b"old");
        assert_eq!(read_all(&fs, "d/tmp"), b"new");

        fs.rename(p("d/tmp"), p("d/f")).unwrap();
        fs.sync_dir(p("d")).unwrap();
        fs.crash();
        assert_eq!(read_all(&fs, "d/f"), b"new");
        assert_eq!(fs.list(p("d")).unwrap(), ["f"]);
    }

    #[test]
    fn a_remove_without_sync_dir_is_undone() {
        let (fs, f) = with_file(0, b"x");
        drop(f);
        fs.remove_file(p("d/f")).unwrap();
        assert_eq!(
            fs.remove_file(p("d/f")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        fs.crash();
        assert_eq!(read_all(&fs, "d/f"), b"x");
        fs.remove_file(p("d/f")).unwrap();
        fs.sync_dir(p("d")).unwrap();
        fs.crash();
        assert_eq!(fs.list(p("d")).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn handles_follow_their_inode_across_rename_and_remove() {
        let (fs, mut f) = with_file(0, b"");
        fs.rename(p("d/f"), p("d/g")).unwrap();
        f.write_all_at(b"via old handle", 0).unwrap();
        assert_eq!(read_all(&fs, "d/g"), b"via old handle");
        fs.remove_file(p("d/g")).unwrap();
        f.write_all_at(b"!", 0).unwrap();
        let mut buf = [0; 1];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"!");
    }

    #[test]
    fn a_failed_sync_loses_the_unsynced_writes_for_good() {
        let (fs, mut f) = with_file(0, b"base");
        f.write_all_at(b"lost", 4).unwrap();
        fs.set_faults(MemFsFaults {
            fail_sync_after: Some(0),
            torn_write_probability: 1.0,
            ..MemFsFaults::default()
        });
        assert!(f.sync_data().is_err());
        assert_eq!(read_all(&fs, "d/f"), b"base");
        f.sync_data().unwrap();
        for _ in 0..8 {
            fs.crash();
            assert_eq!(read_all(&fs, "d/f"), b"base");
        }
    }

    #[test]
    fn fail_sync_after_counts_every_kind_of_sync_and_fires_once() {
        let (fs, mut f) = with_file(0, b"");
        fs.set_faults(MemFsFaults {
            fail_sync_after: Some(2),
            ..MemFsFaults::default()
        });
        f.sync_data().unwrap();
        fs.sync_dir(p("d")).unwrap();
        assert!(f.sync_all().is_err());
        f.sync_all().unwrap();
        fs.sync_dir(p("d")).unwrap();
    }

    #[test]
    fn a_failed_sync_dir_drops_the_unsynced_entries() {
        let fs = MemFs::new(0);
        fs.create_dir_all(p("d")).unwrap();
        let mut f = fs.create(p("d/f")).unwrap();
        fs.set_faults(MemFsFaults {
            fail_sync_after: Some(0),
            ..MemFsFaults::default()
        });
        assert!(fs.sync_dir(p("d")).is_err());
        assert_eq!(fs.list(p("d")).unwrap(), Vec::<String>::new());
        f.write_all_at(b"still open", 0).unwrap();
    }

    #[test]
    fn failing_writes_change_nothing() {
        let (fs, mut f) = with_file(0, b"abc");
        fs.set_faults(MemFsFaults {
            fail_writes: true,
            ..MemFsFaults::default()
        });
        assert!(f.write_all_at(b"x", 0).is_err());
        assert!(f.set_len(0).is_err());
        assert!(f.allocate(10).is_err());
        assert_eq!(read_all(&fs, "d/f"), b"abc");
        fs.set_faults(MemFsFaults::default());
        f.write_all_at(b"x", 0).unwrap();
        assert_eq!(read_all(&fs, "d/f"), b"xbc");
    }

    #[test]
    fn handles_fail_after_a_crash() {
        let (fs, mut f) = with_file(0, b"abc");
        fs.crash();
        let mut buf = [0; 3];
        assert!(f.read_at(&mut buf, 0).is_err());
        assert!(f.write_all_at(b"x", 0).is_err());
        assert!(f.sync_data().is_err());
        assert!(f.sync_all().is_err());
        assert!(f.set_len(0).is_err());
        assert!(f.allocate(9).is_err());
        assert!(f.len().is_err());
        drop(f);
        assert_eq!(fs.syncs(), 1);
        assert_eq!(read_all(&fs, "d/f"), b"abc");
    }

    #[test]
    fn flip_bit_changes_exactly_one_bit() {
        let (fs, f) = with_file(0, &[0u8; 8]);
        assert!(fs.flip_bit(p("d/f"), 3, 5));
        let expected = [0, 0, 0, 1 << 5, 0, 0, 0, 0];
        assert_eq!(fs.read_durable(p("d/f")).unwrap(), expected);
        let mut buf = [0; 8];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(buf, expected);
        assert!(!fs.flip_bit(p("d/f"), 8, 0));
        assert!(!fs.flip_bit(p("d/f"), u64::MAX, 0));
        assert!(!fs.flip_bit(p("d/f"), 0, 8));
        assert!(!fs.flip_bit(p("d/none"), 0, 0));
        fs.crash();
        assert_eq!(read_all(&fs, "d/f"), expected);
    }

    #[test]
    fn syncs_counts_successful_file_syncs() {
        let (fs, mut f) = with_file(0, b"");
        assert_eq!(fs.syncs(), 1);
        f.sync_data().unwrap();
        f.sync_all().unwrap();
        fs.sync_dir(p("d")).unwrap();
        assert_eq!(fs.syncs(), 3);
        fs.set_faults(MemFsFaults {
            fail_sync_after: Some(0),
            ..MemFsFaults::default()
        });
        assert!(f.sync_data().is_err());
        assert_eq!(fs.syncs(), 3);
        fs.clone().set_faults(MemFsFaults::default());
        f.sync_data().unwrap();
        assert_eq!(fs.syncs(), 4);
    }

    #[test]
    fn directories_and_errors() {
        let fs = MemFs::new(0);
        assert_eq!(
            fs.create(p("x/f")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(fs.list(p("x")).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(
            fs.sync_dir(p("x")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        fs.create_dir_all(p("/a/b/c")).unwrap();
        assert!(fs.is_dir(p("/a")) && fs.is_dir(p("/a/b/c")));
        fs.create(p("/a/b/z")).unwrap();
        fs.create(p("/a/b/y")).unwrap();
        assert_eq!(
            fs.create(p("/a/b/y")).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(
            fs.create(p("/a/b")).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(
            fs.create_dir_all(p("/a/b/y/q")).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        assert!(!fs.is_dir(p("/a/b/y")));
        assert_eq!(fs.list(p("/a/b")).unwrap(), ["c", "y", "z"]);
        assert_eq!(fs.list(p("/a")).unwrap(), ["b"]);
        assert!(fs.list(p("/a/b/y")).is_err());
        assert!(fs.open(p("/a/b")).is_err());
        assert_eq!(
            fs.open(p("/a/b/none")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            fs.rename(p("/a/none"), p("/a/x")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(fs.rename(p("/a/b/y"), p("/a/b/c")).is_err());
        assert!(fs.create(p("")).is_err() && fs.create(p("/")).is_err());
        // Relative paths live in the current directory, always there.
        fs.create(p("rel")).unwrap();
        assert_eq!(fs.list(p("")).unwrap(), ["rel"]);
    }

    #[test]
    fn hostile_offsets_are_errors_not_panics() {
        let (_fs, mut f) = with_file(0, b"abc");
        let mut buf = [0; 4];
        assert_eq!(f.read_at(&mut buf, u64::MAX).unwrap(), 0);
        assert_eq!(f.read_at(&mut buf, 3).unwrap(), 0);
        assert!(f.write_all_at(b"x", u64::MAX).is_err());
        assert!(f.write_all_at(b"x", MemFs::MAX_FILE_LEN).is_err());
        assert!(f.set_len(u64::MAX).is_err());
        assert!(f.allocate(u64::MAX).is_err());
        assert_eq!(
            f.read_exact_at(&mut buf, 1).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        f.write_all_at(b"", 1 << 20).unwrap();
        assert_eq!(f.len().unwrap(), 3, "an empty write does not extend");
    }
}
