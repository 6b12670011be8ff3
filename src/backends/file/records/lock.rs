//! The data file's lock file, freshness and locked sections: [`Shared`] is what every
//! handle on one file shares (paths, format, the loaded [`State`] and the open lock file).
//!
//! Every operation runs in a section: [`Shared::read_section`] takes the lock file's shared
//! lock, [`Shared::write_section`] its exclusive lock. Inside, `refresh` compares the
//! generation counter in the lock file and the data file's identity (length, mtime, inode)
//! with what the state was loaded from and reloads when they differ (`read.rs`). After a
//! change, `persist` encodes the state (`write.rs`), replaces the data file atomically
//! ([`crate::store::atomic`]), bumps the generation and writes the schema sidecar
//! (`sidecar.rs`). [`remove_file_and_sidecars`] (DROP TABLE) removes all three under the lock.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use parking_lot::Mutex;

use super::format::{Compression, Format};
use super::{KIND, sidecar_paths};
use crate::error::{Error, Result};
use crate::store::atomic::{write_atomically, write_atomically_with};
use crate::store::chunks::State;

pub(super) struct Shared {
    pub(super) path: PathBuf,
    pub(super) lock_path: PathBuf,
    pub(super) sidecar_path: PathBuf,
    pub(super) format: Format,
    pub(super) compression: Compression,
    pub(super) inner: Mutex<Inner>,
    /// How the CSV/TSV file spells NULL, as last read: Some(marker) from its schema file,
    /// Some(None) for a file another program made (empty fields), None before the file
    /// exists (then dataknobs' own `\N`).
    pub(super) text_style: parking_lot::Mutex<Option<super::TextStyle>>,
    /// Test hook: make the next data-file rename fail (after the temporary file is written).
    #[cfg(test)]
    pub(super) fail_next_rename: std::sync::atomic::AtomicBool,
}

pub(super) struct Inner {
    pub(super) state: State,
    /// What `state` was loaded from (or last written as); None: reload before the next use.
    pub(super) seen: Option<Seen>,
    /// The lock file, opened on first use.
    pub(super) lock: Option<File>,
    pub(super) lock_writable: bool,
}

/// The version of the data file a state corresponds to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Seen {
    /// The counter in the lock file, bumped by every writer.
    pub(super) generation: u64,
    /// None: the file does not exist.
    pub(super) file: Option<FileId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileId {
    pub(super) len: u64,
    pub(super) modified: Option<SystemTime>,
    pub(super) dev: u64,
    pub(super) ino: u64,
}

impl FileId {
    pub(super) fn of(m: &fs::Metadata) -> FileId {
        #[cfg(unix)]
        let (dev, ino) = {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        };
        #[cfg(not(unix))]
        let (dev, ino) = (0, 0);
        FileId {
            len: m.len(),
            modified: m.modified().ok(),
            dev,
            ino,
        }
    }
}

/// Releases a file lock when dropped.
pub(super) struct LockGuard<'a>(Option<&'a File>);

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.0
            && let Err(e) = f.unlock()
        {
            tracing::warn!("file backend: unlocking failed: {e}");
        }
    }
}

pub(super) fn read_generation(lock: &File) -> u64 {
    let mut text = String::new();
    let mut f = lock;
    if f.seek(SeekFrom::Start(0)).is_err() || f.read_to_string(&mut text).is_err() {
        return 0;
    }
    text.trim().parse().unwrap_or(0)
}

pub(super) fn write_generation(lock: &File, lock_path: &Path, generation: u64) -> Result<()> {
    let mut f = lock;
    f.seek(SeekFrom::Start(0))
        .and_then(|_| f.write_all(format!("{generation:020}\n").as_bytes()))
        .map_err(|e| Error::io(format!("writing the lock file {}", lock_path.display()), e))
}

impl Inner {
    /// Opens the lock file. For reads it may be missing (read-only directory): then reads go
    /// without a lock.
    pub(super) fn open_lock(&mut self, lock_path: &Path, for_write: bool) -> Result<()> {
        if let Some(f) = &self.lock
            && (self.lock_writable || !for_write)
        {
            // Still the lock file at that path (not removed by a DROP and made again)?
            let same = match (f.metadata(), fs::metadata(lock_path)) {
                (Ok(a), Ok(b)) => {
                    let (a, b) = (FileId::of(&a), FileId::of(&b));
                    a.dev == b.dev && a.ino == b.ino
                }
                _ => false,
            };
            if same {
                return Ok(());
            }
            self.lock = None;
        }
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_path)
        {
            Ok(f) => {
                self.lock = Some(f);
                self.lock_writable = true;
                Ok(())
            }
            Err(e) if for_write => Err(Error::io(
                format!("cannot create the lock file {}", lock_path.display()),
                e,
            )),
            Err(_) => {
                if let Ok(f) = File::open(lock_path) {
                    self.lock = Some(f);
                    self.lock_writable = false;
                }
                Ok(())
            }
        }
    }
}

impl Shared {
    #[cfg(test)]
    pub(super) fn injected_failure(&self) -> bool {
        self.fail_next_rename
            .swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    #[cfg(not(test))]
    pub(super) fn injected_failure(&self) -> bool {
        false
    }

    pub(super) fn lock_error(&self, e: std::io::Error) -> Error {
        Error::io(format!("locking {}", self.lock_path.display()), e)
    }

    /// The data file's identity now (None if it does not exist).
    pub(super) fn file_id(&self) -> Result<Option<FileId>> {
        match fs::metadata(&self.path) {
            Ok(m) => Ok(Some(FileId::of(&m))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("reading {}", self.path.display()), e)),
        }
    }

    /// Reloads the state if the file changed since it was loaded. Call with the lock held.
    pub(super) fn refresh(
        &self,
        state: &mut State,
        seen: &mut Option<Seen>,
        lock: Option<&File>,
    ) -> Result<()> {
        let now = Seen {
            generation: lock.map(read_generation).unwrap_or(0),
            file: self.file_id()?,
        };
        if seen.as_ref() == Some(&now) {
            return Ok(());
        }
        *state = self.load()?;
        *seen = Some(now);
        Ok(())
    }

    /// Runs `f` on a fresh state under a shared lock.
    pub(super) fn read_section<T>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        inner.open_lock(&self.lock_path, false)?;
        let Inner {
            state, seen, lock, ..
        } = inner;
        let _held = match lock.as_ref() {
            Some(file) => {
                file.lock_shared().map_err(|e| self.lock_error(e))?;
                LockGuard(Some(file))
            }
            None => LockGuard(None),
        };
        self.refresh(state, seen, lock.as_ref())?;
        f(state)
    }

    /// Like [`Self::read_section`] but never waits for the file lock: when another process
    /// holds it, the loaded state is used as it is. For the synchronous `schema()` calls.
    pub(super) fn peek<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        if let Err(e) = inner.open_lock(&self.lock_path, false) {
            tracing::warn!("file backend: {e}");
        }
        let Inner {
            state, seen, lock, ..
        } = inner;
        let held = match lock.as_ref() {
            Some(file) => file
                .try_lock_shared()
                .is_ok()
                .then_some(LockGuard(Some(file))),
            None => Some(LockGuard(None)),
        };
        if held.is_some()
            && let Err(e) = self.refresh(state, seen, lock.as_ref())
        {
            tracing::warn!("file backend: {e}");
        }
        let out = f(state);
        drop(held);
        out
    }

    /// Runs `f` on a fresh state under the exclusive lock; when it reports a change, writes
    /// the file. `f` returns its result and whether it changed the state. When the write fails
    /// (or `f` fails and `dirty_on_error` says it may have changed the state half-way), the
    /// state is reloaded from the file before its next use: the file is the truth.
    pub(super) fn write_section<T>(
        &self,
        dirty_on_error: bool,
        f: impl FnOnce(&mut State) -> Result<(T, bool)>,
    ) -> Result<T> {
        self.exclusive(|state, seen, file| {
            self.refresh(state, seen, Some(file))?;
            let (out, changed) = match f(state) {
                Ok(r) => r,
                Err(e) => {
                    if dirty_on_error {
                        *seen = None;
                    }
                    return Err(e);
                }
            };
            if changed {
                match self.persist(state, file) {
                    Ok(s) => *seen = Some(s),
                    Err(e) => {
                        *seen = None;
                        return Err(e);
                    }
                }
            }
            Ok(out)
        })
    }

    /// Writes the (new) state to a file that must not exist yet.
    pub(super) fn create_file(&self) -> Result<()> {
        self.exclusive(|state, seen, file| {
            if fs::symlink_metadata(&self.path).is_ok() {
                return Err(Error::already_exists(format!(
                    "{} exists already",
                    self.path.display()
                )));
            }
            *seen = Some(self.persist(state, file)?);
            Ok(())
        })
    }

    /// Runs `f` holding the lock file's exclusive lock (the lock file is created if needed),
    /// with the state, what it was loaded from, and the lock file.
    fn exclusive<T>(
        &self,
        f: impl FnOnce(&mut State, &mut Option<Seen>, &File) -> Result<T>,
    ) -> Result<T> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        inner.open_lock(&self.lock_path, true)?;
        let Inner {
            state, seen, lock, ..
        } = inner;
        let file = lock
            .as_ref()
            .ok_or_else(|| Error::internal("the lock file is not open"))?;
        file.lock().map_err(|e| self.lock_error(e))?;
        let _held = LockGuard(Some(file));
        f(state, seen, file)
    }

    /// Writes the whole state: data file, generation, then (text formats) the schema sidecar.
    pub(super) fn persist(&self, state: &mut State, lock: &File) -> Result<Seen> {
        let style = self
            .text_style
            .lock()
            .clone()
            .unwrap_or_else(super::TextStyle::dataknobs);
        let (data, sidecar) = super::encode_state(self.format, self.compression, state, &style)
            .map_err(|e| {
                Error::new(
                    e.kind(),
                    format!("{}: cannot write: {}", self.path.display(), e.message()),
                )
            })?;
        let fail = self.injected_failure();
        write_atomically_with(&self.path, |f| {
            f.write_all(&data)?;
            if fail {
                return Err(std::io::Error::other("injected failure"));
            }
            Ok(())
        })?;
        let generation = read_generation(lock).wrapping_add(1);
        write_generation(lock, &self.lock_path, generation)?;
        if let Some(json) = sidecar {
            write_atomically(&self.sidecar_path, &json).map_err(|e| {
                Error::new(
                    e.kind(),
                    format!(
                        "{} was saved, but its schema file could not be: {e}",
                        self.path.display()
                    ),
                )
            })?;
        }
        Ok(Seen {
            generation,
            file: self.file_id()?,
        })
    }
}

/// Removes a data file with its schema sidecar and lock file (DROP TABLE), holding the
/// file's exclusive lock while the data and the sidecar go. A missing file is not an error.
pub fn remove_file_and_sidecars(path: &Path) -> Result<()> {
    let (lock_path, sidecar_path) = sidecar_paths(path)?;
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .ok();
    let _held = match &lock {
        Some(f) => {
            f.lock()
                .map_err(|e| Error::io(format!("locking {}", lock_path.display()), e))?;
            LockGuard(Some(f))
        }
        None => LockGuard(None),
    };
    for p in [path, sidecar_path.as_path()] {
        match fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::io(format!("removing {}", p.display()), e).with_backend(KIND));
            }
        }
    }
    if let Some(f) = &lock {
        // Bump the generation first: a handle that still has the old lock file open reloads.
        let g = read_generation(f).wrapping_add(1);
        let _ = write_generation(f, &lock_path, g);
        let _ = fs::remove_file(&lock_path);
    }
    Ok(())
}
