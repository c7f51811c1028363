//! Test harness: starts the real `rampart` binary with its own temporary
//! configuration, store and key on loopback ports chosen by the kernel (port 0,
//! learnt from its "listening" log lines), captures its logs, and kills it on drop.
//! Also drives the real `radclient` from freeradius-utils.

#![allow(dead_code)]

pub mod browser;
pub mod certs;
pub mod duo;
pub mod faulty;
pub mod freeradius;
pub mod mock_ad;
pub mod ntfy;
pub mod phone;
pub mod ports;
pub mod postgres;
pub mod proxy;
pub mod radsecproxy;
pub mod recorder;
pub mod slapd;
pub mod twilio;
pub mod web;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const BIN: &str = env!("CARGO_BIN_EXE_rampart");
pub const LOAD_BIN: &str = env!("CARGO_BIN_EXE_rampart-load");
pub const SECRET: &str = "it-Sh4red-s3cret";

/// Extra TOML appended to the generated configuration, and options.
#[derive(Default, Clone)]
pub struct Options {
    /// Appended to the `[policy]` table.
    pub policy: String,
    /// Client does not require Message-Authenticator (default: it does).
    pub lax_message_authenticator: bool,
    /// The client's address or CIDR (default 127.0.0.0/8).
    pub client_address: Option<String>,
    /// Replaces the `[primary]` table body (default `backend = "local"`).
    pub primary: Option<String>,
    /// Extra top-level tables appended to the file.
    pub extra: String,
    /// `[http] public_url`.
    pub http_public_url: Option<String>,
    /// The client accepts app passwords.
    pub allow_app_passwords: bool,
    /// Extra environment for the daemon (`NOTIFY_SOCKET`, `RAMPART__...`).
    pub env: Vec<(String, String)>,
    /// Replaces the `[store]` table body (default: SQLite and key file in the temp dir).
    pub store: Option<String>,
}

pub struct Rampart {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub radius: SocketAddr,
    pub metrics: SocketAddr,
    child: Option<Child>,
    logs: Arc<Mutex<Vec<String>>>,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Writes a configuration for a temp dir.
pub fn write_config(dir: &Path, options: &Options) -> PathBuf {
    let config = dir.join("rampart.toml");
    let text = format!(
        r#"
[radius]
listen = "127.0.0.1:0"
duplicate_cache_secs = 30

[[clients]]
name = "test-nas"
address = "{address}"
secret = "{SECRET}"
require_message_authenticator = {require}
allow_app_passwords = {app_passwords}

[primary]
{primary}

[policy]
max_failures = 5
lockout_minutes = 15
{policy}

[store]
{store}

[log]
level = "debug"

[http]
listen = "127.0.0.1:0"
{public_url}

{extra}
"#,
        primary = options.primary.as_deref().unwrap_or("backend = \"local\""),
        extra = options.extra,
        require = !options.lax_message_authenticator,
        app_passwords = options.allow_app_passwords,
        public_url = options
            .http_public_url
            .as_ref()
            .map(|u| format!("public_url = \"{u}\""))
            .unwrap_or_default(),
        address = options.client_address.as_deref().unwrap_or("127.0.0.0/8"),
        policy = options.policy,
        store = options.store.clone().unwrap_or_else(|| format!(
            "path = \"{}\"\nkey_file = \"{}\"",
            dir.join("var/rampart.db").display(),
            dir.join("var/rampart.key").display()
        )),
    );
    std::fs::write(&config, text).unwrap();
    config
}

/// A plain HTTP/1.1 GET: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// Runs a rampart CLI command with stdin, returning (exit code, stdout, stderr).
pub fn cli(config: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rampart binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Rampart {
    pub fn start() -> Rampart {
        Rampart::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Rampart {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &options);
        // Under `timeout` so the daemon stops by itself even if the test
        // process is killed before Drop runs.
        let mut child = Command::new("timeout")
            .args(["--signal=KILL", "600", BIN])
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "debug")
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rampart binary runs");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                for marker in ["RADIUS listening on udp/", "HTTP listening on http://"] {
                    if let Some(rest) = line.split(marker).nth(1) {
                        // Human lines end the address with a space, JSON lines with a quote.
                        let addr = rest
                            .split(|c: char| c.is_whitespace() || c == '"' || c == ',')
                            .next()
                            .unwrap_or(rest);
                        let _ = tx.send((marker, addr.parse::<SocketAddr>().ok()));
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let (mut radius, mut metrics) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        while radius.is_none() || metrics.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((marker, addr)) if marker.starts_with("RADIUS") => radius = addr,
                Ok((_, addr)) => metrics = addr,
                Err(_) => panic!("rampart did not start: {:?}", logs.lock().unwrap()),
            }
        }
        Rampart {
            dir,
            config,
            radius: radius.unwrap(),
            metrics: metrics.unwrap(),
            child: Some(child),
            logs,
        }
    }

    /// Adds a local user through the CLI.
    pub fn add_user(&self, name: &str, password: &str) {
        let (code, out, err) = cli(
            &self.config,
            &["user", "add", name],
            &format!("{password}\n"),
        );
        assert_eq!(code, 0, "user add failed: {out} {err}");
    }

    /// Enrolls TOTP through the CLI and returns the seed.
    pub fn enroll_totp(&self, name: &str) -> Vec<u8> {
        let (code, out, err) = cli(&self.config, &["enroll", "totp", name], "");
        assert_eq!(code, 0, "enroll failed: {out} {err}");
        let base32 = out
            .lines()
            .find_map(|l| l.strip_prefix("or add the key by hand: "))
            .expect("enroll prints the key")
            .trim()
            .to_string();
        totp_rs::Secret::try_from_base32(&base32)
            .unwrap()
            .as_ref()
            .to_vec()
    }

    /// Adds and enrolls a user; returns the seed.
    pub fn user_with_totp(&self, name: &str, password: &str) -> Vec<u8> {
        self.add_user(name, password);
        self.enroll_totp(name)
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The daemon's own process id (`pid` is its `timeout` wrapper's, which
    /// passes signals on to its whole process group, so rampart would get a
    /// SIGHUP sent there twice).
    pub fn daemon_pid(&self) -> u32 {
        let pid = self.pid();
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no daemon under timeout (pid {pid})"))
    }

    /// Sends `signal` (e.g. "HUP") to the daemon itself.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.daemon_pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Rewrites the configuration file with `options`, sends SIGHUP and
    /// waits for the reload's outcome; true if it was applied.
    pub fn reload_with(&self, options: &Options) -> bool {
        self.reload_after(|| {
            write_config(self.dir.path(), options);
        })
    }

    /// Runs `change` (which edits the configuration file), sends SIGHUP and
    /// waits for the reload's outcome; true if it was applied.
    pub fn reload_after(&self, change: impl FnOnce()) -> bool {
        let before = (
            self.count("configuration reloaded"),
            self.count("reload refused"),
        );
        change();
        self.signal("HUP");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.count("configuration reloaded") > before.0 {
                return true;
            }
            if self.count("reload refused") > before.1 {
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "no reload outcome logged:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Log lines containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Waits until a log line containing `needle` appears.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.logs().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The RadSec listener's address (with `[radsec] listen = "127.0.0.1:0"`),
    /// from its "listening" log line.
    pub fn radsec(&self) -> SocketAddr {
        let marker = "RadSec listening on tcp/";
        assert!(
            self.wait_for_log(marker, Duration::from_secs(10)),
            "no RadSec listener: {}",
            self.logs()
        );
        let logs = self.logs();
        let rest = logs.split(marker).nth(1).unwrap();
        rest.split_whitespace().next().unwrap().parse().unwrap()
    }

    /// Waits until at least `n` audit decisions are logged; returns the count.
    pub fn wait_for_decisions(&self, n: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.decisions() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.decisions()
    }

    /// Number of audit decisions logged.
    pub fn decisions(&self) -> usize {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("rampart::audit"))
            .count()
    }

    /// The Prometheus exposition text.
    pub fn metrics(&self) -> String {
        use std::io::Read;
        let mut stream = std::net::TcpStream::connect(self.metrics).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    }

    /// The value of one metric series (0 when absent).
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    /// The status `/readyz` answers with.
    pub fn readyz(&self) -> u16 {
        http_get(self.metrics, "/readyz").0
    }

    /// Waits until `/readyz` answers `status`; false after `timeout`.
    pub fn wait_for_readyz(&self, status: u16, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.readyz() == status {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Whether the daemon process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "rampart did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Stops a daemon started under `timeout`: SIGTERM, which `timeout` passes on
/// (SIGKILL would stop only `timeout` and orphan the daemon), then waits up to
/// `grace`. Returns whether it exited; the caller decides what to kill then.
pub fn terminate_gracefully(child: &mut Child, grace: Duration) -> bool {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

impl Drop for Rampart {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take()
            && !terminate_gracefully(&mut child, Duration::from_secs(5))
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A reply as radclient printed it.
#[derive(Debug, Default)]
pub struct RadclientReply {
    /// e.g. "Access-Accept"; None when radclient got no reply.
    pub code: Option<String>,
    /// (name, value) pairs as printed.
    pub attributes: Vec<(String, String)>,
    pub output: String,
}

impl RadclientReply {
    /// Asserts the reply code, showing radclient's output when it differs.
    #[track_caller]
    pub fn assert_code(&self, expected: &str) {
        assert_eq!(self.code.as_deref(), Some(expected), "{}", self.output);
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Runs the real radclient with one request made of `attributes` (radclient syntax).
pub fn radclient(
    server: SocketAddr,
    secret: &str,
    attributes: &str,
    retries: u32,
    timeout_secs: u32,
) -> RadclientReply {
    let mut child = Command::new("radclient")
        .args([
            "-x",
            "-r",
            &retries.to_string(),
            "-t",
            &timeout_secs.to_string(),
        ])
        .arg(server.to_string())
        .arg("auth")
        .arg(secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("radclient (freeradius-utils) is installed: run ./scripts/test");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(attributes.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reply = RadclientReply {
        output: output.clone(),
        ..Default::default()
    };
    let mut in_reply = false;
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("Received ") {
            reply.code = rest.split_whitespace().next().map(str::to_string);
            in_reply = true;
        } else if line.starts_with("Sent ") || line.starts_with('(') {
            in_reply = false;
        } else if in_reply && let Some((name, value)) = line.trim().split_once(" = ") {
            reply
                .attributes
                .push((name.to_string(), value.trim_matches('"').to_string()));
        }
    }
    reply
}

/// radclient with Message-Authenticator, 3 tries of 3 s.
pub fn radclient_auth(rampart: &Rampart, user: &str, password: &str) -> RadclientReply {
    radclient(
        rampart.radius,
        SECRET,
        &format!(
            "User-Name = \"{user}\", User-Password = \"{password}\", Message-Authenticator = 0x00"
        ),
        2,
        3,
    )
}

/// Answers an Access-Challenge: State plus the typed response as User-Password.
pub fn radclient_answer(
    rampart: &Rampart,
    user: &str,
    response: &str,
    state: &str,
) -> RadclientReply {
    radclient(
        rampart.radius,
        SECRET,
        &format!(
            "User-Name = \"{user}\", User-Password = \"{response}\", State = {state}, Message-Authenticator = 0x00"
        ),
        2,
        3,
    )
}

/// The current TOTP code for a seed.
pub fn code(seed: &[u8]) -> String {
    rampart::factor::totp::code_at(seed, unix_now())
}
