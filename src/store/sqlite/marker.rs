//! Tells a command-line run that a daemon is serving from a database file,
//! even when the file itself is gone. The CLI opens the store directly; if
//! it created a fresh database (and key) where a running daemon's file was
//! deleted, it would report success while the daemon serves the old,
//! unlinked file, and at the next restart every user would be gone.
//!
//! The marker is a Unix socket in the abstract namespace (unix(7)): it lives
//! in the kernel, not in the directory that may have been removed, and it
//! disappears with the process however that ends, so it never goes stale.
//! Its name is derived from the database's absolute path.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Held by the daemon for as long as it serves the database.
#[derive(Debug)]
pub struct ServingMarker {
    _socket: UnixDatagram,
}

fn name(path: &Path) -> io::Result<SocketAddr> {
    let absolute = std::path::absolute(path)?;
    let digest = Sha256::digest(absolute.as_os_str().as_encoded_bytes());
    let tag = hex::encode(digest.get(..16).unwrap_or_default());
    SocketAddr::from_abstract_name(format!("rampart-sqlite-{tag}"))
}

impl ServingMarker {
    /// Marks the database at `path` as served by this process; an error
    /// (`AddrInUse`) when another process serves it already.
    pub fn claim(path: &Path) -> io::Result<ServingMarker> {
        Ok(ServingMarker {
            _socket: UnixDatagram::bind_addr(&name(path)?)?,
        })
    }

    /// Whether a daemon on this machine serves the database at `path`.
    pub fn is_claimed(path: &Path) -> bool {
        match name(path).and_then(|name| UnixDatagram::bind_addr(&name)) {
            Ok(_free) => false,
            Err(error) => error.kind() == io::ErrorKind::AddrInUse,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_seen_until_dropped_even_without_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rampart.db");
        assert!(!ServingMarker::is_claimed(&path));
        let marker = ServingMarker::claim(&path).unwrap();
        assert!(ServingMarker::is_claimed(&path));
        assert!(
            ServingMarker::claim(&path).is_err(),
            "one daemon per database"
        );
        drop(dir);
        assert!(ServingMarker::is_claimed(&path), "the directory is gone");
        drop(marker);
        assert!(!ServingMarker::is_claimed(&path));
    }
}
