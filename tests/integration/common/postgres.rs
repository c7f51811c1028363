//! A real PostgreSQL server for the store tests (Debian's `postgresql`
//! package, installed by `scripts/test`): its own temporary data directory
//! made by `initdb`, listening on 127.0.0.1 on a free port and on a Unix
//! socket inside that directory, password (SCRAM) authentication over TCP.
//! The postmaster runs in the foreground under `timeout`, so it stops by
//! itself even if the test process is killed, and is stopped on drop.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root (CI) the
//! server runs as the `postgres` system user (or `nobody`) through `setpriv`
//! (which execs, so signals reach `timeout` directly), in a directory chowned
//! to that user. As a normal user it runs as that user.
//!
//! Self-contained (std and tempfile only): the library's unit tests include
//! this file too (`src/store/postgres/tests.rs`) to run the store
//! conformance suite against PostgreSQL.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The superuser `initdb` creates, and its password.
pub const USER: &str = "rampart";
pub const PASSWORD: &str = "pg-Sup3r-s3cret";

/// How long the server may live at most.
const TTL_SECS: u32 = 900;
const READY: &str = "database system is ready to accept connections";

pub struct Postgres {
    dir: tempfile::TempDir,
    /// TCP port on 127.0.0.1.
    pub port: u16,
    bin: PathBuf,
    /// `setpriv` arguments when running as root.
    run_as: Vec<String>,
    /// (uid, gid) the server runs as, when not the test's own.
    owner: Option<(u32, u32)>,
    settings: Vec<String>,
    starts: usize,
    child: Option<Child>,
}

/// The newest `/usr/lib/postgresql/<version>/bin` (Debian's layout).
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (/usr/lib/postgresql): run ./scripts/test")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("a PostgreSQL server in /usr/lib/postgresql/*/bin: run ./scripts/test")
        .1
}

fn id(args: &[&str]) -> Option<u32> {
    let out = Command::new("id").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn run(command: &mut Command) -> String {
    let out = command.output().expect("command runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{command:?}: {text}");
    text
}

impl Postgres {
    /// A fresh server tuned for tests (no fsync: nothing here must survive a
    /// power loss; a clean shutdown still writes everything).
    pub fn start() -> Postgres {
        Postgres::start_with(&["fsync=off", "full_page_writes=off"])
    }

    /// A fresh server that takes only TLS over TCP: `cert` authentication
    /// (client certificate CN = user) for the database `certdb`, SCRAM for the
    /// others, plain TCP refused. `server` and `key` are PEM files (for
    /// `localhost`), `ca` signs the client certificates.
    pub fn start_tls(server: &Path, key: &Path, ca: &Path) -> Postgres {
        let mut pg = Postgres::init(&["fsync=off", "full_page_writes=off"]);
        for (from, to) in [(server, "server.pem"), (key, "server.key"), (ca, "ca.pem")] {
            let to = pg.dir.path().join(to);
            std::fs::copy(from, &to).unwrap();
            std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            if let Some((uid, gid)) = pg.owner {
                std::os::unix::fs::chown(&to, Some(uid), Some(gid)).unwrap();
            }
        }
        std::fs::write(
            pg.data().join("pg_hba.conf"),
            "local all all trust\n\
             hostssl certdb all 127.0.0.1/32 cert\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             host all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        let dir = pg.dir.path().to_path_buf();
        pg.settings.extend([
            "ssl=on".to_string(),
            format!("ssl_cert_file={}", dir.join("server.pem").display()),
            format!("ssl_key_file={}", dir.join("server.key").display()),
            format!("ssl_ca_file={}", dir.join("ca.pem").display()),
        ]);
        pg.spawn();
        pg
    }

    /// A fresh server with extra `-c name=value` settings.
    pub fn start_with(settings: &[&str]) -> Postgres {
        let mut pg = Postgres::init(settings);
        pg.spawn();
        pg
    }

    /// `initdb` in a fresh directory; not started.
    fn init(settings: &[&str]) -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("rampart-pg")
            .tempdir()
            .unwrap();
        let mut run_as = Vec::new();
        let mut owner = None;
        if id(&["-u"]) == Some(0) {
            // PostgreSQL will not run as root: hand the directory to a system user.
            let user = if id(&["-u", "postgres"]).is_some() {
                "postgres"
            } else {
                "nobody"
            };
            let uid = id(&["-u", user]).unwrap();
            let gid = id(&["-g", user]).unwrap();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
            owner = Some((uid, gid));
            run_as = vec![
                "setpriv".into(),
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".into(),
                "--".into(),
            ];
        }
        let pg = Postgres {
            dir,
            port: super::ports::free_port(),
            bin: bin_dir(),
            run_as,
            owner,
            settings: settings.iter().map(|s| s.to_string()).collect(),
            starts: 0,
            child: None,
        };
        let password_file = pg.dir.path().join("pwfile");
        std::fs::write(&password_file, PASSWORD).unwrap();
        run(pg
            .command("initdb")
            .arg("-D")
            .arg(pg.data())
            .args(["-U", USER, "-E", "UTF8", "--locale=C", "--no-sync"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", password_file.display())));
        std::fs::remove_file(&password_file).unwrap();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// A PostgreSQL program, run as the server's user.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut command = match self.run_as.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        command.env("LC_ALL", "C").current_dir(self.dir.path());
        command
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut command = match self.run_as.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg("timeout");
                c
            }
            None => Command::new("timeout"),
        };
        // SIGINT is PostgreSQL's fast shutdown; KILL 10 s later if it hangs.
        command
            .args(["--signal=INT", "--kill-after=10", &TTL_SECS.to_string()])
            .arg(self.bin.join("postgres"))
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string(), "-h", "127.0.0.1", "-k"])
            .arg(self.dir.path())
            .env("LC_ALL", "C")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for setting in &self.settings {
            command.arg("-c").arg(setting);
        }
        self.child = Some(command.spawn().expect("postgres runs"));
        self.starts += 1;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.log().matches(READY).count() < self.starts {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("postgres exited ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `postgres://rampart:PASSWORD@127.0.0.1:PORT/database`.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// The same URL without the password (for `password_file`).
    pub fn url_without_password(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs SQL with psql over the Unix socket (trust) and returns its
    /// unaligned, tuples-only output.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        run(Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-U", USER, "-d", database])
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("LC_ALL", "C"))
    }

    /// Creates an empty database.
    pub fn create_database(&self, name: &str) {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
    }

    /// Whether the server process is running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Fast shutdown (SIGINT): open sessions are closed, committed data is
    /// written by the shutdown checkpoint. Waits until the server exited.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Still there: kill the postmaster, then its `timeout` wrapper.
        if let Ok(pid) = std::fs::read_to_string(self.data().join("postmaster.pid"))
            && let Some(pid) = pid.lines().next()
        {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the stopped server again: same data directory, same port.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "server is running");
        self.spawn();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
