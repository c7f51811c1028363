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
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha512;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use super::certs;

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
            rate_limit: 0,
            calls: Vec::new(),
            txns: HashMap::new(),
            hold: Duration::from_secs(2),
        }));
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = Router::new().fallback(handle).with_state(state.clone());
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

    /// The `[duo]` table for rampart, with `extra` lines appended.
    pub fn config_toml(&self, extra: &str) -> String {
        format!(
            "[duo]\napi_host = \"{}\"\nikey = \"{}\"\nskey = \"{}\"\nca_file = \"{}\"\ntimeout_secs = 5\n{extra}\n",
            self.host,
            self.ikey,
            self.skey,
            self.ca.display()
        )
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

// ---- the API ----

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn ok(response: Value) -> (StatusCode, Value) {
    (StatusCode::OK, json!({"stat": "OK", "response": response}))
}

fn fail(status: u16, code: u64, message: &str, detail: Option<&str>) -> (StatusCode, Value) {
    let mut body = json!({"stat": "FAIL", "code": code, "message": message});
    if let Some(detail) = detail {
        body["message_detail"] = json!(detail);
    }
    (StatusCode::from_u16(status).unwrap(), body)
}

async fn handle(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let params = if method == Method::GET {
        decode_form(uri.query().unwrap_or(""))
    } else {
        decode_form(std::str::from_utf8(&body).unwrap_or("\u{fffd}"))
    };
    let (status, json) = answer(&state, &method, &path, &headers, &params).await;
    let code = json.get("code").and_then(Value::as_u64);
    state.lock().unwrap().calls.push(Call {
        method: method.to_string(),
        path,
        params,
        status: status.as_u16(),
        code,
    });
    (status, axum::Json(json)).into_response()
}

/// Checks the request as Duo does, then runs the endpoint.
async fn answer(
    state: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> (StatusCode, Value) {
    {
        let mut s = state.lock().unwrap();
        if s.failing {
            return fail(500, 50000, "Internal server error", None);
        }
        if s.rate_limit > 0 {
            s.rate_limit -= 1;
            return fail(429, 42901, "Too Many Requests", None);
        }
    }
    let endpoint = (method.as_str(), path);
    if endpoint == ("GET", "/auth/v2/ping") {
        return ok(json!({"time": unix_now()}));
    }
    if !matches!(
        endpoint,
        ("GET", "/auth/v2/check")
            | ("POST", "/auth/v2/preauth")
            | ("POST", "/auth/v2/auth")
            | ("GET", "/auth/v2/auth_status")
    ) {
        return fail(404, 40401, "Resource not found", None);
    }
    if method == Method::POST
        && headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| !v.starts_with("application/x-www-form-urlencoded"))
    {
        return fail(400, 40003, "Invalid Content-Type", None);
    }
    if let Err(refusal) = verify_signature(state, method, path, headers, params) {
        return refusal;
    }
    match path {
        "/auth/v2/check" => ok(json!({"time": unix_now()})),
        "/auth/v2/preauth" => preauth(state, params),
        "/auth/v2/auth" => auth(state, params).await,
        _ => auth_status(state, params).await,
    }
}

fn verify_signature(
    state: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<(), (StatusCode, Value)> {
    let Some(date) = headers.get("date").and_then(|v| v.to_str().ok()) else {
        return Err(fail(401, 40104, "Missing request Date header", None));
    };
    match parse_rfc2822(date) {
        Some(t) if (t - unix_now()).abs() <= 300 => {}
        Some(_) => return Err(fail(401, 40105, "Request date out of range", None)),
        None => return Err(fail(401, 40104, "Invalid request Date header", None)),
    }
    let missing = || fail(401, 40101, "Missing request credentials", None);
    let credentials = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(missing)?;
    let (ikey, signature) = credentials.split_once(':').ok_or_else(missing)?;
    let (skey, host) = {
        let s = state.lock().unwrap();
        let Some(skey) = s.keys.get(ikey) else {
            return Err(fail(
                401,
                40102,
                "Invalid integration key in request credentials",
                None,
            ));
        };
        (skey.clone(), s.host.clone())
    };
    // Signature v2 canonical request, rebuilt from what arrived.
    let mut pairs: Vec<(String, String)> =
        params.iter().map(|(k, v)| (quote(k), quote(v))).collect();
    pairs.sort();
    let canon_params = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let canon = format!(
        "{date}\n{}\n{}\n{path}\n{canon_params}",
        method.as_str().to_uppercase(),
        host.to_lowercase()
    );
    let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(skey.as_bytes()).unwrap();
    mac.update(canon.as_bytes());
    let expected = hex::encode(mac.finalize().into_bytes());
    if expected.as_bytes().ct_eq(signature.as_bytes()).into() {
        Ok(())
    } else {
        Err(fail(
            401,
            40103,
            "Invalid signature in request credentials",
            None,
        ))
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `username` (or `user_id`), required by preauth and auth.
fn user_of(params: &[(String, String)]) -> Result<String, (StatusCode, Value)> {
    param(params, "username")
        .or_else(|| param(params, "user_id"))
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            fail(
                400,
                40001,
                "Missing required request parameters",
                Some("username"),
            )
        })
}

fn check_ipaddr(params: &[(String, String)]) -> Result<(), (StatusCode, Value)> {
    match param(params, "ipaddr") {
        Some(ip) if ip.parse::<std::net::IpAddr>().is_err() => Err(fail(
            400,
            40002,
            "Invalid request parameters",
            Some("ipaddr"),
        )),
        _ => Ok(()),
    }
}

fn preauth(state: &Shared, params: &[(String, String)]) -> (StatusCode, Value) {
    let user = match user_of(params).and_then(|u| check_ipaddr(params).map(|_| u)) {
        Ok(user) => user,
        Err(refusal) => return refusal,
    };
    let script = state.lock().unwrap().users.get(&user).cloned();
    let Some(script) = script else {
        return ok(json!({
            "result": "enroll",
            "status_msg": "Enroll an authentication device to proceed",
            "enroll_portal_url": "https://api-emulator.duosecurity.com/portal?code=abc"
        }));
    };
    match script.preauth {
        Preauth::Allow => ok(json!({"result": "allow", "status_msg": "Allowing unknown user"})),
        Preauth::Deny => ok(json!({"result": "deny", "status_msg": "Your account is disabled"})),
        Preauth::Enroll => ok(json!({
            "result": "enroll",
            "status_msg": "Enroll an authentication device to proceed",
            "enroll_portal_url": "https://api-emulator.duosecurity.com/portal?code=abc"
        })),
        Preauth::Auth => ok(json!({
            "result": "auth",
            "status_msg": "Account is active",
            "devices": [{
                "device": "DPFZRS9FB0D46QFTM899",
                "type": "phone",
                "number": "XXX-XXX-0100",
                "name": "",
                "display_name": "iOS (XXX-XXX-0100)",
                "capabilities": script.capabilities,
            }]
        })),
    }
}

fn decided(decision: Decision) -> Value {
    match decision {
        Decision::Approve => {
            json!({"result": "allow", "status": "allow", "status_msg": "Success. Logging you in..."})
        }
        Decision::Deny => {
            json!({"result": "deny", "status": "deny", "status_msg": "Login request denied."})
        }
        Decision::Fraud => {
            json!({"result": "deny", "status": "fraud", "status_msg": "Login request reported as fraudulent."})
        }
    }
}

fn waiting() -> Value {
    json!({"result": "waiting", "status": "pushed", "status_msg": "Pushed a login request to your device..."})
}

/// The phone's decision for a transaction, if it made one yet.
fn decision_of(txn: &Txn) -> Option<Decision> {
    match txn.phone {
        Phone::Approve => Some(Decision::Approve),
        Phone::Deny => Some(Decision::Deny),
        Phone::Fraud => Some(Decision::Fraud),
        Phone::Never => None,
        Phone::ApproveAfter(after) => (txn.started.elapsed() >= after).then_some(Decision::Approve),
        Phone::Hold => txn.decision,
    }
}

/// Holds until the transaction is decided or `hold` passes.
async fn wait_for_decision(state: &Shared, txid: &str, hold: Duration) -> Value {
    let until = Instant::now() + hold;
    loop {
        let decision = state.lock().unwrap().txns.get(txid).and_then(decision_of);
        if let Some(decision) = decision {
            return decided(decision);
        }
        if Instant::now() >= until {
            return waiting();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn auth(state: &Shared, params: &[(String, String)]) -> (StatusCode, Value) {
    let user = match user_of(params).and_then(|u| check_ipaddr(params).map(|_| u)) {
        Ok(user) => user,
        Err(refusal) => return refusal,
    };
    let invalid = |detail| fail(400, 40002, "Invalid request parameters", Some(detail));
    let missing = |detail| {
        fail(
            400,
            40001,
            "Missing required request parameters",
            Some(detail),
        )
    };
    let Some(factor) = param(params, "factor") else {
        return missing("factor");
    };
    if !matches!(factor, "auto" | "push" | "passcode" | "phone" | "sms") {
        return invalid("factor");
    }
    if factor != "passcode" && param(params, "device").is_none() {
        return missing("device");
    }
    let is_async = match param(params, "async") {
        None | Some("0") => false,
        Some("1") => true,
        Some(_) => return invalid("async"),
    };
    if let Some(info) = param(params, "pushinfo")
        && info.len() > 20_000
    {
        return invalid("pushinfo");
    }
    let (script, hold) = {
        let s = state.lock().unwrap();
        (s.users.get(&user).cloned(), s.hold)
    };
    let Some(script) = script.filter(|s| s.preauth == Preauth::Auth) else {
        return invalid("username");
    };
    if factor == "passcode" {
        let Some(passcode) = param(params, "passcode") else {
            return missing("passcode");
        };
        let mut s = state.lock().unwrap();
        let codes = &mut s.users.get_mut(&user).unwrap().passcodes;
        return match codes.iter().position(|c| c == passcode) {
            Some(i) => {
                codes.remove(i);
                ok(decided(Decision::Approve))
            }
            None => ok(
                json!({"result": "deny", "status": "deny", "status_msg": "Incorrect passcode. Please try again."}),
            ),
        };
    }
    if !script.capabilities.contains(&factor) {
        return invalid("factor");
    }
    if factor == "sms" {
        return ok(
            json!({"result": "deny", "status": "sent", "status_msg": "New SMS passcodes sent."}),
        );
    }
    let txid = format!("{:032x}", rand::random::<u128>());
    state.lock().unwrap().txns.insert(
        txid.clone(),
        Txn {
            user,
            started: Instant::now(),
            phone: script.phone,
            decision: None,
        },
    );
    if is_async {
        ok(json!({"txid": txid}))
    } else {
        // Synchronous push/call: Duo answers when the user does (its own
        // limit is 60 s).
        let mut answer = wait_for_decision(state, &txid, Duration::from_secs(60).max(hold)).await;
        if answer["result"] == "waiting" {
            answer =
                json!({"result": "deny", "status": "timeout", "status_msg": "Login timed out."});
        }
        ok(answer)
    }
}

async fn auth_status(state: &Shared, params: &[(String, String)]) -> (StatusCode, Value) {
    let Some(txid) = param(params, "txid") else {
        return fail(
            400,
            40001,
            "Missing required request parameters",
            Some("txid"),
        );
    };
    let (known, hold) = {
        let s = state.lock().unwrap();
        (s.txns.contains_key(txid), s.hold)
    };
    if !known {
        return fail(400, 40002, "Invalid request parameters", Some("txid"));
    }
    ok(wait_for_decision(state, txid, hold).await)
}

// ---- encodings, written independently of rampart's ----

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
fn decode_form(text: &str) -> Vec<(String, String)> {
    fn decode(part: &str) -> String {
        let bytes = part.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    match std::str::from_utf8(&bytes[i + 1..i + 3])
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                    {
                        Some(byte) => {
                            out.push(byte);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                byte => out.push(byte),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Python's `urllib.parse.quote(s, '~')`.
fn quote(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Parses `Tue, 14 Nov 2023 22:13:20 -0000` (RFC 2822 §3.3; also `GMT`
/// and numeric offsets) to Unix seconds.
pub fn parse_rfc2822(text: &str) -> Option<i64> {
    let text = text.split_once(", ").map_or(text, |(_, rest)| rest);
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [day, month, year, time, zone] = parts.as_slice() else {
        return None;
    };
    let day: i64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as i64
        + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    let offset = match *zone {
        "GMT" | "UT" | "UTC" => 0,
        z if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let n: i64 = z[1..].parse().ok()?;
            let secs = (n / 100) * 3600 + (n % 100) * 60;
            if z.starts_with('-') { -secs } else { secs }
        }
        _ => return None,
    };
    // Days from civil (H. Hinnant).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + s - offset)
}
