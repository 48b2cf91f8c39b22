//! A member's disk: one [`MemFs`] that outlives the member's incarnations,
//! seen by each incarnation through a [`Fence`].
//!
//! A crashed process does nothing more, but a shut-down runtime's tasks
//! may still be finishing a save when the test crashes the disk; were they
//! to create a segment after the crash, it would land on the disk the next
//! incarnation recovers from. So every file operation of an incarnation
//! passes its fence, and [`Disk::crash`] closes the fence (waiting for the
//! operations under way) before the disk loses its unsynced writes. The
//! wrappers also count the failed syncs and writes, so the test knows when
//! an injected fault actually fired.

use rudder_storage::fs::{File, FileSystem, MemFs, MemFsFaults};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

/// Whether an incarnation may still touch its disk (and the network).
#[derive(Debug, Default)]
pub struct Fence {
    dead: RwLock<bool>,
    /// A sync or a write of this incarnation failed.
    io_failed: AtomicBool,
}

impl Fence {
    /// Lets one operation through, holding the fence open until it ends.
    fn enter(&self) -> io::Result<RwLockReadGuard<'_, bool>> {
        let g = self.dead.read().unwrap_or_else(|e| e.into_inner());
        if *g {
            return Err(io::Error::other("the process crashed"));
        }
        Ok(g)
    }

    /// Whether the incarnation is alive.
    pub fn alive(&self) -> bool {
        !*self.dead.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the incarnation once the operations under way are done.
    fn close(&self) {
        *self.dead.write().unwrap_or_else(|e| e.into_inner()) = true;
    }
}

/// Failed I/O seen on a disk, over all its incarnations.
#[derive(Debug, Default)]
pub struct IoCounts {
    /// Syncs (`fdatasync`, `fsync`, directory syncs) that failed.
    pub sync_failures: AtomicU64,
    /// Writes (`pwrite`, `set_len`, `allocate`) that failed.
    pub write_failures: AtomicU64,
}

/// One member's disk.
pub struct Disk {
    /// The file system; kept across incarnations.
    pub fs: MemFs,
    fence: Arc<Fence>,
    counts: Arc<IoCounts>,
}

/// No faults, and crashes that tear (`torn`) or lose unsynced writes.
pub fn quiet(torn: bool) -> MemFsFaults {
    MemFsFaults {
        torn_write_probability: if torn { 1.0 } else { 0.0 },
        fail_sync_after: None,
        fail_writes: false,
    }
}

impl Disk {
    /// An empty disk whose random choices come from `seed`.
    pub fn new(seed: u64) -> Disk {
        let fs = MemFs::new(seed);
        fs.set_faults(quiet(false));
        Disk {
            fs,
            fence: Arc::default(),
            counts: Arc::default(),
        }
    }

    /// A new incarnation's view of the disk, and its fence.
    pub fn incarnation(&mut self) -> (Arc<dyn FileSystem>, Arc<Fence>) {
        self.fence = Arc::default();
        let fs = FencedFs {
            fs: self.fs.clone(),
            fence: Arc::clone(&self.fence),
            counts: Arc::clone(&self.counts),
        };
        (Arc::new(fs), Arc::clone(&self.fence))
    }

    /// Whether the current incarnation saw a sync or a write fail.
    pub fn io_failed(&self) -> bool {
        self.fence.io_failed.load(Ordering::Acquire)
    }

    /// The failures counted so far.
    pub fn counts(&self) -> &IoCounts {
        &self.counts
    }

    /// A power loss: the incarnation ends (nothing it does reaches the
    /// disk any more), then the disk keeps only what was synced, with the
    /// unsynced writes torn to a prefix if `torn`, lost otherwise. Clears
    /// the injected faults.
    pub fn crash(&self, torn: bool) {
        self.fence.close();
        self.fs.set_faults(quiet(torn));
        self.fs.crash();
    }
}

/// The file system as one incarnation sees it.
#[derive(Debug)]
struct FencedFs {
    fs: MemFs,
    fence: Arc<Fence>,
    counts: Arc<IoCounts>,
}

impl FencedFs {
    fn wrap(&self, file: Box<dyn File>) -> Box<dyn File> {
        Box::new(FencedFile {
            file,
            fence: Arc::clone(&self.fence),
            counts: Arc::clone(&self.counts),
        })
    }
}

/// Counts a failed sync.
fn count_sync<T>(fence: &Fence, counts: &IoCounts, r: io::Result<T>) -> io::Result<T> {
    if r.is_err() {
        fence.io_failed.store(true, Ordering::Release);
        counts.sync_failures.fetch_add(1, Ordering::Relaxed);
    }
    r
}

/// Counts a failed write.
fn count_write<T>(fence: &Fence, counts: &IoCounts, r: io::Result<T>) -> io::Result<T> {
    if r.is_err() {
        fence.io_failed.store(true, Ordering::Release);
        counts.write_failures.fetch_add(1, Ordering::Relaxed);
    }
    r
}

impl FileSystem for FencedFs {
    fn open(&self, path: &Path) -> io::Result<Box<dyn File>> {
        let _g = self.fence.enter()?;
        Ok(self.wrap(self.fs.open(path)?))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn File>> {
        let _g = self.fence.enter()?;
        Ok(self.wrap(self.fs.create(path)?))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let _g = self.fence.enter()?;
        self.fs.create_dir_all(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let _g = self.fence.enter()?;
        self.fs.list(dir)
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.fence.enter().is_ok() && self.fs.is_dir(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let _g = self.fence.enter()?;
        self.fs.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let _g = self.fence.enter()?;
        self.fs.remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let _g = self.fence.enter()?;
        count_sync(&self.fence, &self.counts, self.fs.sync_dir(dir))
    }
}

/// A file as one incarnation sees it.
#[derive(Debug)]
struct FencedFile {
    file: Box<dyn File>,
    fence: Arc<Fence>,
    counts: Arc<IoCounts>,
}

impl File for FencedFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let _g = self.fence.enter()?;
        self.file.read_at(buf, offset)
    }

    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let _g = self.fence.enter()?;
        count_write(
            &self.fence,
            &self.counts,
            self.file.write_all_at(buf, offset),
        )
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let _g = self.fence.enter()?;
        count_sync(&self.fence, &self.counts, self.file.sync_data())
    }

    fn sync_all(&mut self) -> io::Result<()> {
        let _g = self.fence.enter()?;
        count_sync(&self.fence, &self.counts, self.file.sync_all())
    }

    fn allocate(&mut self, len: u64) -> io::Result<()> {
        let _g = self.fence.enter()?;
        count_write(&self.fence, &self.counts, self.file.allocate(len))
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let _g = self.fence.enter()?;
        count_write(&self.fence, &self.counts, self.file.set_len(len))
    }

    fn len(&self) -> io::Result<u64> {
        let _g = self.fence.enter()?;
        self.file.len()
    }
}
