//! The per-backend cache of built SQL tables, and the fingerprints that keep it fresh.
//!
//! Building a table means inferring its schema (reading a Parquet footer, sampling CSV/JSON
//! rows, walking Hive partitions) and, for CSV/JSON files written by dataknobs, loading the
//! record store: milliseconds per statement that planning would otherwise pay every time. The
//! cache keeps what was built for a table path together with a [`Fingerprint`] of the files it
//! was built from; every lookup recomputes the fingerprint (a `stat` per file, a directory walk
//! for directory tables) and rebuilds on any difference, so results are never stale.
//! DROP and CREATE also forget the entry explicitly, and so do writes planned through a
//! [`super::FileTable`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use datafusion::datasource::listing::ListingTable;
use parking_lot::Mutex;

use super::records::{self, FileDatabase};
use crate::error::{Error, Result};

/// What one file looked like when a table was built from it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    /// Relative to the table path ("" for a single-file table itself).
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
    /// Inode and change time (Unix): a rewrite that keeps length and modification time
    /// (`touch -d`, a same-size edit within the clock's granularity) still changes these.
    #[cfg(unix)]
    inode: u64,
    #[cfg(unix)]
    changed: (i64, i64),
}

impl Stamp {
    fn of(path: PathBuf, meta: &std::fs::Metadata) -> Stamp {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Stamp {
            path,
            len: meta.len(),
            modified: meta.modified().ok(),
            #[cfg(unix)]
            inode: meta.ino(),
            #[cfg(unix)]
            changed: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// The state of the files behind a table: for a single file, its stamp and its schema
/// sidecar's; for a directory, the sorted stamps of every file below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fingerprint(Vec<Stamp>);

impl Fingerprint {
    /// The fingerprint of a single-file table (the data file and its schema sidecar).
    pub(super) fn of_file(path: &Path) -> Result<Fingerprint> {
        let meta = std::fs::metadata(path).map_err(|e| {
            Error::io(
                format!(
                    "cannot read '{}' (was it removed while the query was planned? run the query again)",
                    path.display()
                ),
                e,
            )
        })?;
        let mut stamps = vec![Stamp::of(PathBuf::new(), &meta)];
        let (_, sidecar) = records::sidecar_paths(path)?;
        if let Ok(meta) = std::fs::metadata(&sidecar) {
            let name = sidecar.file_name().map(PathBuf::from).unwrap_or_default();
            stamps.push(Stamp::of(name, &meta));
        }
        Ok(Fingerprint(stamps))
    }

    /// The fingerprint of a directory table: every file below `dir` (any name: a new
    /// partition or a file DataFusion would list changes it). Symlinked directories are
    /// followed once each (loops are cut); files that vanish during the walk are skipped.
    pub(super) fn of_dir(dir: &Path) -> Result<Fingerprint> {
        let mut stamps = Vec::new();
        // Canonical targets of the directories entered so far through symlinks (and the
        // table directory itself): a symlink loop is entered once at most.
        let mut seen = std::collections::HashSet::new();
        if let Ok(canonical) = dir.canonicalize() {
            seen.insert(canonical);
        }
        let mut pending = vec![dir.to_path_buf()];
        let mut first = true;
        while let Some(d) = pending.pop() {
            let items = match std::fs::read_dir(&d) {
                Ok(items) => items,
                Err(e) if first => {
                    return Err(Error::io(
                        format!(
                            "cannot list directory table '{}' (check that it exists and is readable)",
                            d.display()
                        ),
                        e,
                    ));
                }
                // A subdirectory removed or unreadable mid-walk: its absence is the state.
                Err(_) => continue,
            };
            first = false;
            for item in items.flatten() {
                let Ok(kind) = item.file_type() else {
                    continue;
                };
                let p = item.path();
                // The entry's own metadata, or its target's for a symlink; files that vanish
                // during the walk are skipped.
                let meta = if kind.is_symlink() {
                    std::fs::metadata(&p)
                } else {
                    item.metadata()
                };
                let Ok(meta) = meta else {
                    continue;
                };
                if meta.is_dir() {
                    let new = !kind.is_symlink()
                        || p.canonicalize().is_ok_and(|target| seen.insert(target));
                    if new {
                        pending.push(p);
                    }
                } else {
                    let rel = p.strip_prefix(dir).map(Path::to_path_buf).unwrap_or(p);
                    stamps.push(Stamp::of(rel, &meta));
                }
            }
        }
        stamps.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        Ok(Fingerprint(stamps))
    }
}

/// What is expensive to build for a table (cheap to clone: shared handles).
#[derive(Debug, Clone)]
pub(super) enum Built {
    /// DataFusion's listing table (Parquet, files from other tools, directories).
    Listing(Arc<ListingTable>),
    /// A CSV/JSON file written by dataknobs: the opened record store, plus a listing table
    /// when DataFusion's reader can read the file exactly as the store wrote it.
    Store {
        db: FileDatabase,
        listing: Option<Arc<ListingTable>>,
    },
}

#[derive(Debug)]
struct Entry {
    fingerprint: Fingerprint,
    built: Built,
}

/// Built tables by table path.
#[derive(Debug, Default)]
pub(super) struct TableCache {
    entries: Mutex<HashMap<PathBuf, Entry>>,
    builds: AtomicU64,
}

impl TableCache {
    /// The table built for `path` if it was built from files with this fingerprint.
    pub(super) fn get(&self, path: &Path, fingerprint: &Fingerprint) -> Option<Built> {
        let entries = self.entries.lock();
        let entry = entries.get(path)?;
        (entry.fingerprint == *fingerprint).then(|| entry.built.clone())
    }

    /// Remembers a table built from files with `fingerprint` (computed *before* building, so
    /// a change during the build makes the next lookup miss). Entries of tables whose files
    /// are gone are dropped at the same time.
    pub(super) fn put(&self, path: PathBuf, fingerprint: Fingerprint, built: Built) {
        let mut entries = self.entries.lock();
        entries.retain(|p, _| p.exists());
        entries.insert(path, Entry { fingerprint, built });
    }

    /// Forgets the table at `path` (DROP, CREATE, a write).
    pub(super) fn forget(&self, path: &Path) {
        self.entries.lock().remove(path);
    }

    /// A number that is new for every build: part of the table reference DataFusion's
    /// list-files cache is keyed by, so a rebuilt directory table is listed afresh.
    pub(super) fn next_build(&self) -> u64 {
        self.builds.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// How many tables were built (tests: proves the cache is used).
    #[cfg(test)]
    pub(super) fn builds(&self) -> u64 {
        self.builds.load(Ordering::Relaxed)
    }

    /// How many tables are cached.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.lock().len()
    }
}
