//! Criterion benchmark of [`DiskStorage`] on a real disk, beside the raw
//! `fdatasync` rate of the same directory, in one run:
//!
//! 1. `fdatasync/*`: write 128 bytes at the next offset of a preallocated
//!    file, `fdatasync`, repeat — with `std::fs` directly, not our code. The
//!    file is preallocated two ways: zero-filled (the blocks are written
//!    before the benchmark: the disk's own rate, the reference) and with
//!    `posix_fallocate` (unwritten extents, as [`OsFs`] preallocates WAL
//!    segments). Both are also run with writes as large as one batch-256
//!    save, for comparison (not a target).
//! 2. `save/batch-{1,16,256}`: [`DiskStorage::save`] of 128-byte entries and
//!    a hard state, `must_sync = true`: one write and one `fdatasync` per
//!    save. Before each save, untimed by criterion, one raw 128-byte write
//!    and `fdatasync` of a zero-filled file: the ratios to the raw rate are
//!    taken over the same seconds, so a neighbour's load on the shared disk
//!    moves both sides.
//! 3. `reopen/{warm,cold}`: [`DiskStorage::open`] of a log of
//!    `RUDDER_BENCH_LOG_MIB` (default 1024) MiB of 4 KiB entries in default
//!    64 MiB segments, built once outside the timed part; `cold` first drops
//!    the segments from the page cache (`POSIX_FADV_DONTNEED`).
//!
//! Everything runs in a temporary directory under `RUDDER_BENCH_DIR`, by
//! default `<target dir>/bench-tmp` (the target directory is found from the
//! benchmark's own executable), removed at the end.
//!
//! Criterion reports time per iteration and, through [`Throughput`],
//! entries (or fsyncs, or bytes) per second. After each measurement one
//! `summary:` line gives the derived rates and their ratio to the raw
//! `fdatasync` rate, computed from criterion's own samples (the last
//! `sample_size` calls of the routine); all of them are printed again at
//! the end. `cargo bench -p rudder-storage --bench wal`; see
//! docs/BENCHMARKS.md.

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use prost::Message as _;
use rudder_raft::{Entry, HardState};
use rudder_storage::fs::OsFs;
use rudder_storage::record::HEADER_LEN;
use rudder_storage::{DiskStorage, Options};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Samples per measurement (criterion's minimum).
const SAMPLES: usize = 10;
/// The payload of each entry saved, and of each raw write.
const SMALL: usize = 128;
/// The payload of each entry of the log reopened.
const LARGE: usize = 4096;
/// The size of the raw `fdatasync` benchmark's file.
const RAW_FILE: u64 = 64 << 20;

/// The (iterations, time) of every call criterion made to a routine; in
/// flat sampling the last [`SAMPLES`] calls are its measurement samples.
#[derive(Default)]
struct Calls(Vec<(u64, Duration)>);

/// A rate over criterion's samples: overall, and the slowest and fastest
/// sample.
#[derive(Clone, Copy)]
struct Rate {
    mean: f64,
    min: f64,
    max: f64,
}

impl Calls {
    fn record(&mut self, iters: u64, time: Duration) -> Duration {
        self.0.push((iters, time));
        time
    }

    /// Iterations per second over the measurement samples; `None` if the
    /// routine never ran (filtered out on the command line).
    fn rate(&self) -> Option<Rate> {
        let samples = &self.0[self.0.len().saturating_sub(SAMPLES)..];
        let (iters, secs) = samples
            .iter()
            .fold((0, 0.0), |(i, s), (n, d)| (i + n, s + d.as_secs_f64()));
        let each = samples.iter().map(|(n, d)| *n as f64 / d.as_secs_f64());
        (iters > 0).then(|| Rate {
            mean: iters as f64 / secs,
            min: each.clone().fold(f64::INFINITY, f64::min),
            max: each.fold(0.0, f64::max),
        })
    }
}

/// Where the benchmark's temporary directory goes.
fn bench_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("RUDDER_BENCH_DIR") {
        return dir.into();
    }
    // The executable is <target>/<profile>/deps/wal-<hash>.
    let exe = std::env::current_exe().expect("the benchmark's path");
    match exe.ancestors().nth(3) {
        Some(target) => target.join("bench-tmp"),
        None => std::env::temp_dir(),
    }
}

/// The log size to reopen, in MiB: `RUDDER_BENCH_LOG_MIB`, default 1024
/// (16 under `--test`, where criterion runs each routine once).
fn log_mib() -> u64 {
    if std::env::args().any(|a| a == "--test") {
        return 16;
    }
    match std::env::var("RUDDER_BENCH_LOG_MIB") {
        Ok(v) => v.parse().expect("RUDDER_BENCH_LOG_MIB: a number of MiB"),
        Err(_) => 1024,
    }
}

/// How a raw benchmark file is preallocated.
#[derive(Clone, Copy)]
enum Prealloc {
    /// Every block written with zeros and synced: later writes overwrite.
    Zeroed,
    /// `posix_fallocate`: blocks reserved but unwritten, as WAL segments.
    Fallocated,
}

/// A preallocated file written `size` bytes at a time at the next offset,
/// each write followed by an `fdatasync`: the raw benchmark, on `std::fs`.
struct RawFile {
    path: PathBuf,
    how: Prealloc,
    data: Vec<u8>,
    file: Option<File>,
    offset: u64,
}

impl RawFile {
    fn new(path: PathBuf, how: Prealloc, size: usize) -> RawFile {
        RawFile {
            path,
            how,
            data: vec![0x5a; size],
            file: None,
            offset: RAW_FILE,
        }
    }

    /// Writes and syncs the next `size` bytes; returns how long that took.
    /// A full file (or none yet) is first replaced by a fresh one, untimed.
    fn write_sync(&mut self) -> Duration {
        if self.offset + self.data.len() as u64 > RAW_FILE {
            self.file = Some(raw_file(&self.path, self.how));
            self.offset = 0;
        }
        let f = self.file.as_ref().expect("made above");
        let start = Instant::now();
        f.write_all_at(&self.data, self.offset).expect("write");
        f.sync_data().expect("fdatasync");
        let took = start.elapsed();
        self.offset += self.data.len() as u64;
        took
    }
}

/// A fresh preallocated file of [`RAW_FILE`] bytes at `path`, synced.
fn raw_file(path: &Path, how: Prealloc) -> File {
    let _ = fs::remove_file(path);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .expect("create the raw file");
    match how {
        Prealloc::Zeroed => {
            let zeros = vec![0; 1 << 20];
            for off in (0..RAW_FILE).step_by(zeros.len()) {
                f.write_all_at(&zeros, off).expect("zero-fill");
            }
        }
        Prealloc::Fallocated => fallocate(&f, RAW_FILE),
    }
    f.sync_all().expect("sync the raw file");
    File::open(path.parent().expect("a parent"))
        .and_then(|d| d.sync_all())
        .expect("sync the directory");
    f
}

#[cfg(target_os = "linux")]
fn fallocate(f: &File, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for writing for the duration of the call.
    let r = unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, len as libc::off_t) };
    assert_eq!(r, 0, "posix_fallocate");
}

#[cfg(not(target_os = "linux"))]
fn fallocate(f: &File, len: u64) {
    f.set_len(len).expect("extend");
}

/// Drops `dir`'s files from the page cache (they must be clean: synced).
#[cfg(target_os = "linux")]
fn evict(dir: &Path) {
    use std::os::fd::AsRawFd;
    for entry in fs::read_dir(dir).expect("list") {
        let f = File::open(entry.expect("entry").path()).expect("open");
        // SAFETY: the descriptor is open for the duration of the call.
        let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(r, 0, "posix_fadvise");
    }
}

#[cfg(not(target_os = "linux"))]
fn evict(_dir: &Path) {}

/// Seconds per GiB to read every file of `dir` from a cold page cache,
/// sequentially in 1 MiB reads: what the disk allows a cold reopen (the
/// best of three).
fn raw_cold_read(dir: &Path) -> f64 {
    use std::io::Read;
    let mut best = f64::MAX;
    let mut buf = vec![0; 1 << 20];
    for _ in 0..3 {
        evict(dir);
        let start = Instant::now();
        let mut total = 0u64;
        for entry in fs::read_dir(dir).expect("list") {
            let mut f = File::open(entry.expect("entry").path()).expect("open");
            loop {
                match f.read(&mut buf).expect("read") {
                    0 => break,
                    n => total += n as u64,
                }
            }
        }
        let gib = total as f64 / (1u64 << 30) as f64;
        best = best.min(start.elapsed().as_secs_f64() / gib);
    }
    best
}

/// Configures a group for slow routines: flat sampling, [`SAMPLES`]
/// samples.
fn slow_group<'a>(
    c: &'a mut Criterion,
    name: &str,
    warm_up: u64,
    measure: u64,
) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(SAMPLES);
    g.warm_up_time(Duration::from_secs(warm_up));
    g.measurement_time(Duration::from_secs(measure));
    g
}

/// About how many bytes one save of `batch` small entries and a hard state
/// writes (its indexes taken as 3-byte varints).
fn save_bytes(batch: usize) -> usize {
    let e = Entry::new(1, 1 << 20, Bytes::from(vec![0; SMALL]));
    let hs = HardState {
        term: 1,
        vote: 1,
        commit: 1 << 20,
    };
    batch * (HEADER_LEN + e.encoded_len()) + HEADER_LEN + hs.encoded_len()
}

/// 1: the raw `fdatasync` rate; returns the zero-filled file's with
/// 128-byte writes, the reference.
fn raw(c: &mut Criterion, tmp: &Path, out: &mut Vec<String>) -> Option<f64> {
    let mut g = slow_group(c, "fdatasync", 1, 5);
    g.throughput(Throughput::Elements(1));
    let mut reference = None;
    let big = save_bytes(256);
    for (how, size) in [
        (Prealloc::Zeroed, SMALL),
        (Prealloc::Fallocated, SMALL),
        (Prealloc::Zeroed, big),
        (Prealloc::Fallocated, big),
    ] {
        let kind = match how {
            Prealloc::Zeroed => "zeroed",
            Prealloc::Fallocated => "fallocated",
        };
        let name = format!("{kind}-{size}B");
        let mut file = RawFile::new(tmp.join(format!("raw-{name}")), how, size);
        let mut calls = Calls::default();
        g.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                let total = (0..iters).map(|_| file.write_sync()).sum();
                calls.record(iters, total)
            })
        });
        if let Some(r) = calls.rate() {
            let line = format!(
                "summary: raw write of {size} B + fdatasync, {kind} file: {:.0} fdatasyncs/s ({:.0}–{:.0}), {:.1} µs each",
                r.mean,
                r.min,
                r.max,
                1e6 / r.mean
            );
            println!("{line}");
            out.push(line);
            if matches!(how, Prealloc::Zeroed) && size == SMALL {
                reference = Some(r.mean);
            }
        }
    }
    g.finish();
    reference
}

/// 2: [`DiskStorage::save`] in batches of 1, 16 and 256 entries.
fn save(c: &mut Criterion, tmp: &Path, raw: Option<f64>, out: &mut Vec<String>) {
    let mut g = slow_group(c, "save", 1, 6);
    let payload = Bytes::from(vec![0x5a; SMALL]);
    for (batch, target) in [
        (1usize, "≥ 0.8× raw fdatasyncs/s"),
        (16, "recorded"),
        (256, "≥ 100× raw fdatasyncs/s"),
    ] {
        let dir = tmp.join(format!("save-{batch}"));
        let mut s = DiskStorage::open(Arc::new(OsFs), &dir, Options::default()).expect("open");
        let mut entries: Vec<Entry> = (0..batch)
            .map(|_| Entry::new(1, 0, payload.clone()))
            .collect();
        let mut next = 1;
        let mut calls = Calls::default();
        // One raw 128-byte write and fdatasync before each save, timed
        // apart: the reference rate over the same seconds as the saves.
        let mut paired = RawFile::new(tmp.join(format!("paired-{batch}")), Prealloc::Zeroed, SMALL);
        let mut paired_calls = Calls::default();
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("batch-{batch}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut raw_total = Duration::ZERO;
                for _ in 0..iters {
                    raw_total += paired.write_sync();
                    for (i, e) in entries.iter_mut().enumerate() {
                        e.index = next + i as u64;
                    }
                    // A leader's Ready: its new entries, and the commit
                    // index its previous ones reached.
                    let hs = HardState {
                        term: 1,
                        vote: 1,
                        commit: next - 1,
                    };
                    let start = Instant::now();
                    s.save(Some(&hs), &entries, true).expect("save");
                    total += start.elapsed();
                    next += batch as u64;
                }
                paired_calls.record(iters, raw_total);
                calls.record(iters, total)
            })
        });
        drop(s);
        let _ = fs::remove_dir_all(&dir);
        if let (Some(r), Some(p)) = (calls.rate(), paired_calls.rate()) {
            let saves = r.mean;
            let entries = saves * batch as f64;
            let mut ratio = format!(
                "; interleaved raw {:.0} fdatasyncs/s: {:.2}× raw in saves/s, {:.1}× in entries/s",
                p.mean,
                saves / p.mean,
                entries / p.mean
            );
            if let Some(raw) = raw {
                ratio += &format!(" (against fdatasync/zeroed-128B: {:.1}×)", entries / raw);
            }
            let line = format!(
                "summary: save batch {batch} (~{} B per write): {entries:.0} entries/s, {saves:.0} saves (fdatasyncs)/s ({:.0}–{:.0}), {:.1} µs per save{ratio} (target {target})",
                save_bytes(batch),
                r.min,
                r.max,
                1e6 / saves
            );
            println!("{line}");
            out.push(line);
        }
    }
    g.finish();
}

/// Writes a log of about `mib` MiB of [`LARGE`]-byte entries into `dir`
/// without syncing each save, then syncs once. Returns the bytes of the
/// WAL's files.
fn build_log(dir: &Path, mib: u64) -> u64 {
    let started = Instant::now();
    let mut s = DiskStorage::open(Arc::new(OsFs), dir, Options::default()).expect("open");
    let payload = Bytes::from(vec![0xa5; LARGE]);
    let count = (mib << 20) / LARGE as u64;
    let mut next = 1;
    while next <= count {
        let batch: Vec<Entry> = (next..(next + 256).min(count + 1))
            .map(|i| Entry::new(1, i, payload.clone()))
            .collect();
        let hs = HardState {
            term: 1,
            vote: 1,
            commit: next - 1,
        };
        s.save(Some(&hs), &batch, false).expect("save");
        next += batch.len() as u64;
    }
    s.save(None, &[], true).expect("sync");
    drop(s);
    let bytes = wal_bytes(dir);
    eprintln!(
        "built a log of {count} entries, {:.2} GiB of segments, in {:.1} s",
        bytes as f64 / (1u64 << 30) as f64,
        started.elapsed().as_secs_f64()
    );
    bytes
}

/// The total size of the WAL's segment files.
fn wal_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir.join("wal"))
        .expect("list the WAL")
        .map(|e| e.expect("entry").metadata().expect("stat").len())
        .sum()
}

/// 3: reopening a large log, its pages cached (warm) and not (cold).
fn reopen(c: &mut Criterion, tmp: &Path, out: &mut Vec<String>) {
    let dir = tmp.join("reopen");
    // Built even when a filter on the command line skips both routines.
    let bytes = build_log(&dir, log_mib());
    let raw_cold = raw_cold_read(&dir.join("wal"));
    let line = format!(
        "summary: raw cold sequential read of the same segments (1 MiB reads): {raw_cold:.3} s per GiB, the disk's bound for a cold reopen"
    );
    println!("{line}");
    out.push(line);
    let mut g = slow_group(c, "reopen", 1, 10);
    g.throughput(Throughput::Bytes(bytes));
    for (name, cold) in [("warm", false), ("cold", true)] {
        let mut calls = Calls::default();
        let mut log = None;
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    if cold {
                        evict(&dir.join("wal"));
                    }
                    let start = Instant::now();
                    let s = DiskStorage::open(Arc::new(OsFs), &dir, Options::default())
                        .expect("reopen");
                    total += start.elapsed();
                    log = Some(s.recovery().entries);
                    drop(s);
                }
                calls.record(iters, total)
            })
        });
        if let (Some(r), Some(entries)) = (calls.rate(), log) {
            let gib = bytes as f64 / (1u64 << 30) as f64;
            let line = format!(
                "summary: reopen, {name} page cache: {:.3} s per GiB ({:.3}–{:.3}); {gib:.2} GiB, {entries} entries of {LARGE} bytes, {:.3} s per open (target: well under 1 s per GiB)",
                1.0 / (r.mean * gib),
                1.0 / (r.max * gib),
                1.0 / (r.min * gib),
                1.0 / r.mean
            );
            println!("{line}");
            out.push(line);
        }
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let root = bench_root();
    fs::create_dir_all(&root).expect("create the benchmark directory");
    let tmp = tempfile::tempdir_in(&root).expect("a temporary directory");
    eprintln!("benchmark directory: {}", tmp.path().display());
    let mut out = Vec::new();
    let raw_rate = raw(&mut c, tmp.path(), &mut out);
    save(&mut c, tmp.path(), raw_rate, &mut out);
    reopen(&mut c, tmp.path(), &mut out);
    c.final_summary();
    println!("\n== summary ({}) ==", tmp.path().display());
    for line in &out {
        println!("{line}");
    }
}
