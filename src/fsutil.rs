//! Small file-system helpers shared by the admin CLI and the proxy.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Writes `data` to `path` atomically: a temporary file in the same
/// directory, fsync, rename over the target, fsync of the directory.
///
/// When `path` already exists its mode, owner and group are kept; otherwise
/// the new file gets `new_mode`.
pub fn atomic_write(path: &Path, data: &[u8], new_mode: u32) -> io::Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let existing = fs::metadata(path).ok();
    let mode = existing
        .as_ref()
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(new_mode);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        let made = f.metadata()?;
        if let Some(m) = existing
            .as_ref()
            .filter(|m| (m.uid(), m.gid()) != (made.uid(), made.gid()))
        {
            // Keep ownership (e.g. root:sapphire-proxy 0640). Only root can
            // give a file away; other callers keep their own ownership.
            // Skipped when nothing changes: a sandboxed root (the ACME renew
            // unit, whose system call filter refuses chown) can then still
            // replace its own files.
            // SAFETY: fchown on a descriptor we own.
            let rc = unsafe { libc::fchown(f.as_raw_fd(), m.uid(), m.gid()) };
            // SAFETY: geteuid has no preconditions.
            if rc != 0 && unsafe { libc::geteuid() } == 0 {
                return Err(io::Error::last_os_error());
            }
        }
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// An exclusive advisory lock (flock) held until dropped.
pub struct LockFile {
    _file: File,
}

impl LockFile {
    /// Blocks until the exclusive lock on `path` (created 0600 if missing)
    /// is held.
    pub fn acquire(path: &Path) -> io::Result<LockFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        loop {
            // SAFETY: flock on a descriptor we own.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return Ok(LockFile { _file: file });
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

/// Reads a secret from `path`, or creates it with `len` random bytes (mode
/// 0600) when it does not exist yet.
pub fn load_or_create_secret(path: &Path, len: usize) -> io::Result<Vec<u8>> {
    match fs::read(path) {
        Ok(bytes) if bytes.len() == len => return Ok(bytes),
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} must hold exactly {len} bytes", path.display()),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut bytes = vec![0u8; len];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    atomic_write(path, &bytes, 0o600)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_keeps_mode_of_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        atomic_write(&p, b"one", 0o600).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        atomic_write(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        // no temporary file left behind
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn secret_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        let a = load_or_create_secret(&p, 32).unwrap();
        let b = load_or_create_secret(&p, 32).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::write(&p, b"short").unwrap();
        assert!(load_or_create_secret(&p, 32).is_err());
    }
}
