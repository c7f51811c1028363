//! An emulator of the Duo Auth API v2 (`/auth/v2/ping`, `check`, `preauth`,
//! `auth`, `auth_status`) over HTTPS on 127.0.0.1, port from the kernel,
//! with a certificate for `localhost` from the test CA ([`super::certs`]).
//!
//! It checks what Duo checks, independently of rampart's code: a `Date`
//! header within 5 minutes, an `Authorization: Basic ikey:hex` header, a
//! known ikey, the HMAC-SHA512 of the signature v2 canonical request
//! (`date\nMETHOD\nhost\npath\nsorted quoted params`, duo_client's
//! `canonicalize`) compared in constant time, form-encoded POST bodies, and
//! the required parameters of each endpoint. Refusals use Duo's error
//! envelope `{"stat":"FAIL","code":...,"message":...}`; 40101-40103,
//! 40001/40002 and 42901 are the codes Duo documents, 40104/40105 (Date) are
//! modelled on them.
//!
//! Scriptable per user: the preauth result, what the "phone" does with a
//! push or call ([`Phone`]), valid passcodes, device capabilities. Switches:
//! answer 500 to everything, answer 429 to the next N requests, stop
//! (connections refused). Every request is recorded with its answer status.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use super::certs;

mod api;
mod verify;

pub use verify::parse_rfc2822;

/// What preauth answers for a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preauth {
    /// `auth`: the user has devices; go on to `/auth`.
    Auth,
    /// `allow`: a bypass user.
    Allow,
    /// `deny`: disabled or locked by policy.
    Deny,
    /// `enroll`: no device yet.
    Enroll,
}

/// What the user's phone does with a push or a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phone {
    /// Approves at once.
    Approve,
    /// Denies at once.
    Deny,
    /// Denies and reports fraud.
    Fraud,
    /// Never answers (Duo keeps saying `waiting`).
    Never,
    /// Approves after this long.
    ApproveAfter(Duration),
    /// Waits until the test calls [`DuoEmulator::answer`].
    Hold,
}

/// A decision the test makes for a held push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
    Fraud,
}

/// One user's script.
#[derive(Debug, Clone)]
pub struct User {
    pub preauth: Preauth,
    pub phone: Phone,
    /// Valid passcodes; each works once.
    pub passcodes: Vec<String>,
    /// Device capabilities reported by preauth and enforced by auth.
    pub capabilities: Vec<&'static str>,
}

impl User {
    /// Enrolled, with a phone that does `phone`, and every capability.
    pub fn with_phone(phone: Phone) -> User {
        User {
            preauth: Preauth::Auth,
            phone,
            passcodes: Vec::new(),
            capabilities: vec!["auto", "push", "sms", "phone", "mobile_otp"],
        }
    }

    /// Preauth answers `preauth`.
    pub fn preauth(preauth: Preauth) -> User {
        User {
            preauth,
            ..User::with_phone(Phone::Never)
        }
    }
}

/// One request as the emulator saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    /// Decoded parameters (query or form body).
    pub params: Vec<(String, String)>,
    /// The HTTP status answered.
    pub status: u16,
    /// Duo error code, if refused.
    pub code: Option<u64>,
}

impl Call {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Txn {
    user: String,
    started: Instant,
    phone: Phone,
    decision: Option<Decision>,
}

struct EmuState {
    host: String,
    keys: HashMap<String, String>,
    users: HashMap<String, User>,
    failing: bool,
    /// Every request is read and never answered.
    hanging: bool,
    rate_limit: u32,
    calls: Vec<Call>,
    txns: HashMap<String, Txn>,
    /// How long `auth_status` holds a `waiting` answer (Duo long-polls).
    hold: Duration,
}

type Shared = Arc<Mutex<EmuState>>;

/// The running emulator. Stops when dropped.
pub struct DuoEmulator {
    /// `localhost:PORT`: rampart's `api_host`.
    pub host: String,
    pub addr: SocketAddr,
    pub ikey: String,
    pub skey: String,
    /// The CA that signed the emulator's certificate: rampart's `ca_file`.
    pub ca: PathBuf,
    /// A CA that signed nothing here.
    pub other_ca: PathBuf,
    state: Shared,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

pub const IKEY: &str = "DIEMULATOR0000000001";
pub const SKEY: &str = "emuSecretKey0123456789abcdefghijklmnopqr";

impl DuoEmulator {
    /// Starts on 127.0.0.1:0 with one integration (`IKEY`/`SKEY`) and no users.
    pub fn start() -> DuoEmulator {
        let dir = tempfile::tempdir().unwrap();
        let tls = certs::make_certificates(dir.path());
        let config = server_tls(
            &dir.path().join("server.pem"),
            &dir.path().join("server.key"),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let host = format!("localhost:{}", addr.port());
        let state = Arc::new(Mutex::new(EmuState {
            host: host.clone(),
            keys: HashMap::from([(IKEY.to_string(), SKEY.to_string())]),
            users: HashMap::new(),
            failing: false,
            hanging: false,
            rate_limit: 0,
            calls: Vec::new(),
            txns: HashMap::new(),
            hold: Duration::from_secs(2),
        }));
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = Router::new()
            .fallback(api::handle)
            .with_state(state.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TlsListener {
                    tcp: TcpListener::from_std(listener).unwrap(),
                    acceptor: TlsAcceptor::from(Arc::new(config)),
                };
                tokio::select! {
                    _ = axum::serve(listener, router) => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime closes the listener and every connection.
        });
        DuoEmulator {
            host,
            addr,
            ikey: IKEY.into(),
            skey: SKEY.into(),
            ca: tls.ca,
            other_ca: tls.other_ca,
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// Scripts a user.
    pub fn set_user(&self, name: &str, user: User) {
        self.state.lock().unwrap().users.insert(name.into(), user);
    }

    /// Decides every held push of `user`.
    pub fn answer(&self, user: &str, decision: Decision) {
        let mut state = self.state.lock().unwrap();
        for txn in state.txns.values_mut().filter(|t| t.user == user) {
            txn.decision = Some(decision);
        }
    }

    /// How long `auth_status` holds a `waiting` answer.
    pub fn set_hold(&self, hold: Duration) {
        self.state.lock().unwrap().hold = hold;
    }

    /// Answer 500 to every request (Duo having an outage).
    pub fn set_failing(&self, failing: bool) {
        self.state.lock().unwrap().failing = failing;
    }

    /// Read every request and never answer it (Duo hung: the TLS
    /// connection is up, no HTTP answer comes).
    pub fn set_hanging(&self, hanging: bool) {
        self.state.lock().unwrap().hanging = hanging;
    }

    /// Answer 429 to the next `n` requests.
    pub fn rate_limit_next(&self, n: u32) {
        self.state.lock().unwrap().rate_limit = n;
    }

    /// Stops serving: connections are refused from now on.
    pub fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Every request to `path`.
    pub fn calls(&self, path: &str) -> Vec<Call> {
        let state = self.state.lock().unwrap();
        state
            .calls
            .iter()
            .filter(|c| c.path == path)
            .cloned()
            .collect()
    }

    /// Requests to `path` that were answered 200.
    pub fn accepted(&self, path: &str) -> usize {
        self.calls(path).iter().filter(|c| c.status == 200).count()
    }

    /// Waits (blocking) until `path` was answered 200 `n` times.
    pub fn wait_for_accepted(&self, path: &str, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.accepted(path) >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits (async) until `path` was answered 200 `n` times.
    pub async fn accepted_async(&self, path: &str, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.accepted(path) >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// The `[duo]` table for rampart; lines in `extra` replace the
    /// defaults for the keys they set, or add keys.
    pub fn config_toml(&self, extra: &str) -> String {
        let defaults = [
            ("api_host", format!("{:?}", self.host)),
            ("ikey", format!("{:?}", self.ikey)),
            ("skey", format!("{:?}", self.skey)),
            ("ca_file", format!("{:?}", self.ca.display().to_string())),
            ("timeout_secs", "5".to_string()),
        ];
        let mut text = String::from("[duo]\n");
        for (key, value) in defaults {
            let overridden = extra
                .lines()
                .any(|l| l.split('=').next().is_some_and(|k| k.trim() == key));
            if !overridden {
                text.push_str(&format!("{key} = {value}\n"));
            }
        }
        text.push_str(extra);
        text.push('\n');
        text
    }

    /// The `[duo]` settings as JSON, for `DuoConfig` in-process.
    pub fn config_json(&self) -> Value {
        json!({
            "api_host": self.host,
            "ikey": self.ikey,
            "skey": self.skey,
            "ca_file": self.ca.to_str().unwrap(),
            "timeout_secs": 5,
        })
    }
}

impl Drop for DuoEmulator {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

fn server_tls(cert: &std::path::Path, key: &std::path::Path) -> rustls::ServerConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// TCP plus a TLS handshake per connection; failed handshakes (a client
/// that does not trust the CA) are dropped and the next one accepted.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            let handshake = self.acceptor.accept(stream);
            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(5), handshake).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
