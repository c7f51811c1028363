//! The database's files under a running daemon. An administrator (or a full
//! disk, or a backup script) can delete, replace, or freeze them while
//! rampart keeps them open, and SQLite cannot tell: it keeps working on the
//! unlinked inode, and on ext4 a `-shm` file made immutable (`chattr +i`)
//! turns SQLite's next touch of its memory-mapped wal-index into SIGBUS,
//! which kills the process without a word. So the health monitor looks at the
//! files themselves, before it lets anything reach SQLite.
//!
//! inotify does not report a `chattr`, and a login may come before the next
//! probe, so the login path itself asks, with one access(2) on the `-shm`
//! file ([`DbFiles::guard`]), before anything reaches SQLite.
//!
//! A full file system fails SQLite's writes one by one, but a failed write
//! leaves the space it had taken to the next, smaller one, so the probe's own
//! write can pass on a full disk; the probe therefore also asks for free
//! space ([`MIN_FREE`]).
//!
//! The check never opens the files: closing any descriptor of a file drops
//! every POSIX lock the process holds on it (fcntl(2), "Advisory record
//! locking"), SQLite's locks included. It compares the path's inode with the
//! one opened and asks the kernel, with access(2), whether each file could be
//! written: that is EPERM for an immutable file and EROFS on a read-only
//! mount, whatever the caller's privileges.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Access, access, statvfs};

/// Below this much free space for unprivileged writers the store counts as
/// full: SQLite needs room for WAL frames and a checkpoint.
pub const MIN_FREE: u64 = 1024 * 1024;

/// The database file opened at start and where it lives.
#[derive(Debug)]
pub(super) struct DbFiles {
    path: PathBuf,
    /// `-shm`, checked on every login: built once.
    shm: PathBuf,
    /// Device and inode at open.
    identity: (u64, u64),
}

/// What is wrong with the files.
#[derive(Debug, thiserror::Error)]
pub enum FileFault {
    /// The database file is gone from its path.
    #[error(
        "the database file {0} was deleted under the running daemon: restore it, then restart rampart"
    )]
    Deleted(PathBuf),
    /// Another file now has the path.
    #[error(
        "the database file {0} was replaced under the running daemon (this process still uses the old one): restart rampart"
    )]
    Replaced(PathBuf),
    /// A file SQLite writes cannot be written.
    #[error(
        "{path} cannot be written ({error}): read-only mount, immutable attribute or permissions"
    )]
    NotWritable {
        /// The database, `-wal` or `-shm` file.
        path: PathBuf,
        /// What access(2) said.
        error: std::io::Error,
    },
    /// The file system is (nearly) full.
    #[error("the file system of {path} is full ({free} bytes free)")]
    Full {
        /// The database file.
        path: PathBuf,
        /// Bytes available to unprivileged writers.
        free: u64,
    },
    /// The path cannot be examined.
    #[error("cannot examine {path}: {error}")]
    Unreadable {
        /// The database file.
        path: PathBuf,
        /// What stat(2) said.
        error: std::io::Error,
    },
}

impl DbFiles {
    /// Remembers the file now at `path` (opened by the caller).
    pub(super) fn new(path: &Path) -> std::io::Result<DbFiles> {
        let meta = std::fs::metadata(path)?;
        let mut shm = path.to_path_buf().into_os_string();
        shm.push("-shm");
        Ok(DbFiles {
            path: path.to_path_buf(),
            shm: PathBuf::from(shm),
            identity: (meta.dev(), meta.ino()),
        })
    }

    /// The database file's path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The `-wal` file beside the database.
    fn wal(&self) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push("-wal");
        PathBuf::from(name)
    }

    /// The login path's check, one system call: whether SQLite may touch
    /// its memory-mapped `-shm` file (immutable → SIGBUS on ext4).
    pub(super) fn guard(&self) -> Result<(), FileFault> {
        match access(&self.shm, Access::WRITE_OK) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(errno) => Err(FileFault::NotWritable {
                path: self.shm.clone(),
                error: errno.into(),
            }),
        }
    }

    /// Whether the files are the ones opened, all writable, with room to grow.
    pub(super) fn check(&self) -> Result<(), FileFault> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(meta) => meta,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(FileFault::Deleted(self.path.clone()));
            }
            Err(error) => {
                return Err(FileFault::Unreadable {
                    path: self.path.clone(),
                    error,
                });
            }
        };
        if (meta.dev(), meta.ino()) != self.identity {
            return Err(FileFault::Replaced(self.path.clone()));
        }
        for path in [self.path.clone(), self.wal(), self.shm.clone()] {
            match access(&path, Access::WRITE_OK) {
                Ok(()) => {}
                // SQLite creates the -wal and -shm files when it needs them.
                Err(rustix::io::Errno::NOENT) => {}
                Err(errno) => {
                    return Err(FileFault::NotWritable {
                        path,
                        error: errno.into(),
                    });
                }
            }
        }
        if let Ok(fs) = statvfs(&self.path) {
            let free = fs.f_bavail.saturating_mul(fs.f_frsize);
            if free < MIN_FREE {
                return Err(FileFault::Full {
                    path: self.path.clone(),
                    free,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletion_and_replacement_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::write(&path, b"x").unwrap();
        let files = DbFiles::new(&path).unwrap();
        files.check().unwrap();
        // Another file renamed over the path (it existed before, so it
        // cannot have the replaced file's inode).
        let other = dir.path().join("restored");
        std::fs::write(&other, b"y").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert!(matches!(files.check(), Err(FileFault::Replaced(_))));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(files.check(), Err(FileFault::Deleted(_))));
    }

    #[test]
    fn an_immutable_shm_file_is_not_writable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::write(&path, b"x").unwrap();
        let shm = dir.path().join("db-shm");
        std::fs::write(&shm, b"x").unwrap();
        let files = DbFiles::new(&path).unwrap();
        files.check().unwrap();
        // chattr needs root and a file system that keeps the flag (ext4 does,
        // which is also where the SIGBUS happens); elsewhere there is nothing
        // to check.
        let frozen = std::process::Command::new("chattr")
            .arg("+i")
            .arg(&shm)
            .status()
            .is_ok_and(|s| s.success());
        if !frozen {
            eprintln!("chattr +i not possible here: skipped");
            return;
        }
        let result = files.check();
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&shm)
            .status();
        assert!(
            matches!(&result, Err(FileFault::NotWritable { path, .. }) if path == &shm),
            "{result:?}"
        );
        files.check().unwrap();
    }

    /// A tmpfs of `size` with a database file `db` in it (unmounted when
    /// the returned guard drops); None where mounting needs root we lack.
    fn tmpfs_with_db(size: &str) -> Option<(Mounted, DbFiles)> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("cannot mount a tmpfs here: skipped");
            return None;
        }
        let path = dir.path().join("db");
        std::fs::write(&path, b"x").unwrap();
        let files = DbFiles::new(&path).unwrap();
        files.check().unwrap();
        Some((Mounted(dir), files))
    }

    struct Mounted(tempfile::TempDir);

    impl Drop for Mounted {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.0.path())
                .status();
        }
    }

    /// A read-only mount (EROFS) is seen like an immutable file.
    #[test]
    fn a_read_only_mount_is_not_writable() {
        let Some((mount, files)) = tmpfs_with_db("4m") else {
            return;
        };
        let ro = std::process::Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(mount.0.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ro);
        let result = files.check();
        assert!(
            matches!(&result, Err(FileFault::NotWritable { error, .. }) if error.raw_os_error() == Some(30)),
            "EROFS: {result:?}"
        );
    }

    /// Nearly no free space is a fault before SQLite fails a write.
    #[test]
    fn a_full_file_system_is_a_fault() {
        let Some((mount, files)) = tmpfs_with_db("2m") else {
            return;
        };
        std::fs::write(mount.0.path().join("filler"), vec![0u8; 1536 * 1024]).unwrap();
        let result = files.check();
        assert!(matches!(result, Err(FileFault::Full { .. })), "{result:?}");
    }
}
