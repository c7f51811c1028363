//! The store under a running daemon: full, frozen (immutable: the kernel
//! refuses writes even through descriptors already open, as on a file
//! system remounted read-only after an error), deleted. In
//! each case the daemon stays up, every login gets the same generic Reject
//! (a wrong code and a right one alike: no guessing oracle while failures
//! cannot be counted), `/readyz` says 503, a metric and an ERROR line name
//! the cause, and when the fault ends service comes back with no restart.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// A small tmpfs (tests run as root), unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// None where mounting is not allowed (not root): the test is skipped.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("cannot mount a tmpfs here (not root?): skipped");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A daemon whose SQLite store and key live in `dir`.
fn start_on(dir: &Path) -> Rampart {
    Rampart::start_with(Options {
        store: Some(format!(
            "path = \"{}\"\nkey_file = \"{}\"",
            dir.join("rampart.db").display(),
            dir.join("rampart.key").display()
        )),
        ..Options::default()
    })
}

/// A six-digit code that is not `seed`'s current one.
fn wrong_code(seed: &[u8]) -> String {
    let right: u32 = code(seed).parse().unwrap();
    format!("{:06}", (right + 1) % 1_000_000)
}

/// Asserts the outage reply: a Reject with no Reply-Message, for a wrong
/// code as for the right one.
fn assert_generic_rejects(rampart: &Rampart, seed: &[u8]) {
    for typed in [wrong_code(seed), code(seed)] {
        let reply = radclient_auth(rampart, "alice", &format!("pw-alice,{typed}"));
        reply.assert_code("Access-Reject");
        assert_eq!(reply.attribute("Reply-Message"), None, "{}", reply.output);
    }
}

/// Service is back: the right code is accepted, a wrong one is told so.
fn assert_service_back(rampart: &Rampart, seed: &[u8]) {
    assert!(
        rampart.wait_for_readyz(200, Duration::from_secs(15)),
        "ready again by itself: {}",
        rampart.logs()
    );
    assert_eq!(rampart.metric("rampart_store_writable"), 1.0);
    let reply = radclient_auth(rampart, "alice", &format!("pw-alice,{}", wrong_code(seed)));
    assert_eq!(reply.attribute("Reply-Message"), Some("Wrong code."));
    let reply = radclient_auth(rampart, "alice", &format!("pw-alice,{}", code(seed)));
    reply.assert_code("Access-Accept");
}

/// Fills the file system until a write fails.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k", "status=none"])
        .arg(format!("of={}", filler.display()))
        .status();
    filler
}

#[test]
fn a_full_disk_fails_closed_and_service_returns_when_space_does() {
    let Some(tmpfs) = Tmpfs::mount("16m") else {
        return;
    };
    let mut rampart = start_on(tmpfs.path());
    let seed = rampart.user_with_totp("alice", "pw-alice");
    let filler = fill(tmpfs.path());
    // Each unknown name is one more lockout row: the WAL must grow, and
    // cannot. Before this fix the failure count's commit error was lost.
    let mut failed = false;
    for i in 0..300 {
        radclient_auth(&rampart, &format!("spray{i:03}"), "guess");
        if rampart.metric("rampart_store_writable") == 0.0 {
            failed = true;
            break;
        }
    }
    assert!(failed, "no write failed on a full disk: {}", rampart.logs());
    assert_eq!(rampart.readyz(), 503);
    assert_generic_rejects(&rampart, &seed);
    assert!(rampart.logs().contains("store cannot be written"));
    // Whichever saw it first: a login's write, or the probe's free-space check.
    let seen: f64 = ["record_failure", "probe", "audit"]
        .iter()
        .map(|op| rampart.metric(&format!("rampart_store_errors_total{{operation=\"{op}\"}}")))
        .sum();
    assert!(seen >= 1.0, "{}", rampart.metrics());
    assert!(rampart.is_running());

    std::fs::remove_file(&filler).unwrap();
    assert_service_back(&rampart, &seed);
    // The audit rows of the outage were kept and written once it ended.
    let mut audit = String::new();
    for _ in 0..50 {
        audit = cli(&rampart.config, &["audit", "--user", "alice"], "").1;
        if audit.contains("store_unavailable") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(audit.contains("store_unavailable"), "{audit}");
    assert!(rampart.is_running());
}

/// `chattr +i` on the database files: on ext4 SQLite's next touch of its
/// memory-mapped wal-index is SIGBUS, which used to kill the daemon without
/// a word at the first login.
#[test]
fn immutable_store_files_do_not_kill_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let mut rampart = start_on(dir.path());
    let seed = rampart.user_with_totp("alice", "pw-alice");
    let files: Vec<PathBuf> = ["rampart.db", "rampart.db-wal", "rampart.db-shm"]
        .iter()
        .map(|f| dir.path().join(f))
        .collect();
    let chattr = |flag: &str| {
        Command::new("chattr")
            .arg(flag)
            .args(&files)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !chattr("+i") {
        eprintln!("chattr +i not possible here: skipped");
        return;
    }
    // At once, no waiting: the file watcher fails the store closed first.
    let reply = radclient_auth(&rampart, "alice", &format!("pw-alice,{}", code(&seed)));
    let alive = rampart.is_running();
    let ready = rampart.readyz();
    chattr("-i");
    assert!(alive, "the daemon died: {}", rampart.logs());
    reply.assert_code("Access-Reject");
    assert_eq!(ready, 503);
    assert!(
        rampart.logs().contains("cannot be written"),
        "{}",
        rampart.logs()
    );
    assert_service_back(&rampart, &seed);
}

#[test]
fn a_database_deleted_under_the_daemon_is_noticed_and_not_recreated_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let mut rampart = start_on(dir.path());
    let seed = rampart.user_with_totp("alice", "pw-alice");
    for file in ["rampart.db", "rampart.db-wal", "rampart.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(file));
    }
    assert!(rampart.wait_for_readyz(503, Duration::from_secs(5)));
    assert!(
        rampart
            .logs()
            .contains("was deleted under the running daemon")
    );
    assert_generic_rejects(&rampart, &seed);
    // The CLI would have made a new, empty store and reported success.
    let (status, _, err) = cli(&rampart.config, &["user", "add", "bob"], "pw-bob\n");
    assert_ne!(status, 0);
    assert!(err.contains("running rampart daemon"), "{err}");
    assert!(!dir.path().join("rampart.db").exists(), "nothing created");
    // The key file is gone too: still nothing created.
    std::fs::remove_file(dir.path().join("rampart.key")).unwrap();
    let (status, _, _) = cli(&rampart.config, &["enroll", "totp", "alice"], "");
    assert_ne!(status, 0);
    assert!(!dir.path().join("rampart.key").exists());
    assert!(rampart.is_running());
}
