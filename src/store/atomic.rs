//! Atomic file replacement: the new content goes to a temporary file in the target's
//! directory, which is flushed to disk (fsync) and renamed over the target; then the
//! directory is synced so the rename itself survives a crash.
//!
//! A reader therefore sees either the whole old file or the whole new one, and any failure
//! (while writing, syncing or renaming) removes the temporary file and leaves the target as
//! it was. The temporary file is named `.<target name>.tmp-XXXXXX`; an existing target's
//! permissions are kept, a new one gets the usual `0666 & !umask`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// Replaces `path` by `data` atomically (see the module docs).
pub(crate) fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    write_atomically_with(path, |f| f.write_all(data))
}

/// Like [`write_atomically`], with the content written by `write` into the temporary file.
/// When `write` fails, nothing is renamed: `path` keeps its old content.
pub(crate) fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".to_string());
    let prefix = format!(".{base}.tmp-");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(|e| {
        Error::io(
            format!(
                "cannot write {}: creating a temporary file in {}",
                path.display(),
                dir.display()
            ),
            e,
        )
    })?;
    // From here on, dropping `tmp` (any early return) removes the temporary file.
    if let Ok(m) = fs::metadata(path) {
        // Keep the original file's permissions.
        let _ = tmp.as_file().set_permissions(m.permissions());
    }
    write(tmp.as_file_mut()).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(format!("syncing {}", path.display()), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io(format!("replacing {}", path.display()), e.error))?;
    // Make the rename durable; not fatal where directories cannot be synced.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn temp_files(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect()
    }

    #[test]
    fn writes_a_new_file_and_replaces_an_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomically(&path, b"one").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        write_atomically(&path, b"two, longer").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two, longer");
        assert!(temp_files(dir.path()).is_empty());
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keep.csv");
        write_atomically(&path, b"old content").unwrap();
        let e = write_atomically_with(&path, |f| {
            f.write_all(b"new cont")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("keep.csv"), "{e}");
        assert!(e.to_string().contains("disk full"), "{e}");
        assert_eq!(fs::read(&path).unwrap(), b"old content");
        assert!(temp_files(dir.path()).is_empty());
    }

    #[test]
    fn a_failed_rename_leaves_the_old_file_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // A directory in the target's place: the rename fails after the data is written.
        let path = dir.path().join("taken");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"x").unwrap();
        let e = write_atomically(&path, b"data").unwrap_err();
        assert!(e.to_string().contains("replacing"), "{e}");
        assert!(path.is_dir());
        assert_eq!(fs::read(path.join("inside")).unwrap(), b"x");
        assert!(temp_files(dir.path()).is_empty());
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/f.json");
        let e = write_atomically(&path, b"data").unwrap_err();
        assert!(e.to_string().contains("f.json"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn permissions_of_the_old_file_are_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.txt");
        write_atomically(&path, b"1").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomically(&path, b"2").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn readers_never_see_a_half_written_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        // Two contents of different lengths and bytes: anything else is a torn read.
        let a = vec![b'a'; 3 << 20];
        let b = vec![b'b'; 2 << 20];
        write_atomically(&path, &a).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let (path, done) = (path.clone(), done.clone());
            let (a, b) = (a.clone(), b.clone());
            std::thread::spawn(move || {
                let mut reads = 0u32;
                while !done.load(Ordering::SeqCst) || reads == 0 {
                    let got = fs::read(&path).unwrap();
                    assert!(got == a || got == b, "a torn read of {} bytes", got.len());
                    reads += 1;
                }
                reads
            })
        };
        for i in 0..20 {
            // Written in small pieces, so a non-atomic write would be caught half-way.
            let content = if i % 2 == 0 { &b } else { &a };
            write_atomically_with(&path, |f| {
                for piece in content.chunks(64 << 10) {
                    f.write_all(piece)?;
                }
                Ok(())
            })
            .unwrap();
        }
        done.store(true, Ordering::SeqCst);
        assert!(reader.join().unwrap() > 0);
        assert!(temp_files(dir.path()).is_empty());
    }
}
