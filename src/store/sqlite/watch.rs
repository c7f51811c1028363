//! Watches the database's directory (inotify(7)) so that a file deleted,
//! renamed or frozen under the daemon fails the store closed within
//! microseconds, not at the next probe: a login arriving in between would
//! otherwise touch an immutable wal-index and die of SIGBUS (see [`files`]).
//! Content changes (IN_MODIFY, every commit) are not watched; only what an
//! administrator or another program does to the files.
//!
//! [`files`]: super::files

use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
use tracing::warn;

use super::files::DbFiles;
use crate::store::health::StoreHealth;

/// Starts a thread that checks the files whenever one of them changes
/// attributes, is deleted, or is moved; a fault fails the store closed at
/// once, anything else asks the monitor for a probe.
pub(super) fn spawn(files: Arc<DbFiles>, health: Arc<StoreHealth>) -> std::io::Result<()> {
    let dir = match files.path().parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let stem = files
        .path()
        .file_name()
        .map(|name| name.as_bytes().to_vec())
        .unwrap_or_default();
    let guarded = files.clone();
    health.set_guard(Box::new(move || guarded.guard().map_err(|f| f.to_string())));
    let fd = inotify::init(CreateFlags::CLOEXEC)?;
    inotify::add_watch(
        &fd,
        &dir,
        WatchFlags::ATTRIB
            | WatchFlags::DELETE
            | WatchFlags::MOVE
            | WatchFlags::CREATE
            | WatchFlags::DELETE_SELF
            | WatchFlags::MOVE_SELF,
    )?;
    std::thread::Builder::new()
        .name("rampart-store-watch".into())
        .spawn(move || {
            let mut buffer = [MaybeUninit::<u8>::uninit(); 4096];
            let mut events = inotify::Reader::new(&fd, &mut buffer);
            loop {
                let concerns_us = match events.next() {
                    // Events on the directory itself carry no name.
                    Ok(event) => event.file_name().is_none_or(|name| {
                        OsStr::from_bytes(name.to_bytes())
                            .as_bytes()
                            .starts_with(&stem)
                    }),
                    Err(error) => {
                        warn!(%error, "cannot watch the store's directory any more");
                        return;
                    }
                };
                if !concerns_us {
                    continue;
                }
                match files.check() {
                    Err(fault) => health.failed("files", &fault),
                    Ok(()) => health.probe_now(),
                }
            }
        })?;
    Ok(())
}
