//! The portal under test: one in-memory SQLite store and Portal per process,
//! rebuilt every so often so state stays bounded, and a fresh user signed in
//! for every input (a fresh user has no factor yet, so the session is fully
//! signed in and every handler is reachable).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, StatusCode, header};
use rampart::auth::{PrimaryAuth, PrimaryError, PrimaryOutcome, PrimaryRequest, UserInfo};
use rampart::factor::oob::{
    Approval, OobHandle, OutOfBand, OutOfBandConfig, ProviderError, PushSender, PushTarget,
    SmsSender,
};
use rampart::factor::totp::TotpConfig;
use rampart::portal::{Portal, PortalConfig, PortalParts};
use rampart::seal::SealKey;
use rampart::secret::Secret;
use rampart::store::{SqliteStore, Store};
use tower::ServiceExt;

/// The sign-in form's CSRF cookie and field, when a step asks for one.
pub const SIGNIN_TOKEN: &str = "fuzz-signin-token";

/// Inputs served before the store and portal are rebuilt.
const REBUILD_EVERY: u64 = 20_000;

/// Accepts any user whose password is `pw-` followed by the user name.
struct Directory;

#[async_trait]
impl PrimaryAuth for Directory {
    async fn verify(&self, request: &PrimaryRequest<'_>) -> Result<PrimaryOutcome, PrimaryError> {
        let password = request.password.map(|p| p.expose().as_str());
        Ok(match password {
            Some(p) if p.strip_prefix("pw-") == Some(request.user) => {
                PrimaryOutcome::Accepted(UserInfo::default())
            }
            _ => PrimaryOutcome::BadPassword,
        })
    }
}

/// Push and SMS providers that accept and forget.
struct Sink;

#[async_trait]
impl PushSender for Sink {
    async fn send(&self, _: &PushTarget, _: &Approval) -> Result<(), ProviderError> {
        Ok(())
    }
}

#[async_trait]
impl SmsSender for Sink {
    async fn send(&self, _: &str, _: &Secret<String>) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// A signed-in session: cookie value and CSRF token.
pub struct Signed {
    pub id: String,
    pub csrf: String,
}

/// One request of a step.
pub struct Request<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a [u8],
    pub session: Option<&'a str>,
    pub csrf: Option<&'a str>,
}

pub struct Harness {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    served: u64,
}

thread_local! {
    static HARNESS: RefCell<Option<Harness>> = const { RefCell::new(None) };
}

impl Harness {
    /// Runs `f` with the harness, rebuilding it first when due.
    pub fn with(f: impl FnOnce(&mut Harness)) {
        HARNESS.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.as_ref().is_none_or(|h| h.served >= REBUILD_EVERY) {
                *slot = None;
                *slot = Some(Harness::new());
            }
            let harness = slot.as_mut().unwrap();
            harness.served += 1;
            f(harness);
        });
    }

    fn new() -> Harness {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store: Arc<dyn Store> =
            Arc::new(runtime.block_on(SqliteStore::open_in_memory()).unwrap());
        let key = Arc::new(SealKey::from_bytes([9; 32]));
        let mut oob = OutOfBand::new(
            OutOfBandConfig {
                timeout_secs: 1,
                max_per_window: 1_000_000,
                ..OutOfBandConfig::default()
            },
            key.clone(),
        );
        oob.push = Some(Arc::new(Sink));
        oob.sms = Some(Arc::new(Sink));
        let portal = Portal::new(PortalParts {
            config: PortalConfig {
                enabled: true,
                ntfy_server: Some("https://ntfy.example.test".into()),
                secure_cookies: false,
                signin_limit_per_user: 1_000_000,
                signin_limit_per_address: 1_000_000,
                trusted_proxies: vec!["127.0.0.0/8".into()],
                ..PortalConfig::default()
            },
            primary: Arc::new(Directory),
            store,
            key,
            totp: TotpConfig::default(),
            oob: OobHandle::new(Some(Arc::new(oob))),
            username: Default::default(),
        });
        let router = rampart::portal::routes(Arc::new(portal));
        Harness {
            runtime,
            router,
            served: 0,
        }
    }

    /// Signs in a user never seen before; `None` if the portal refused.
    pub fn sign_in(&mut self) -> Option<Signed> {
        let user = format!("u{}", self.served);
        let body = format!("csrf={SIGNIN_TOKEN}&user={user}&password=pw-{user}");
        let cookie = format!("rampart_signin={SIGNIN_TOKEN}");
        let (status, set, _) = self.exchange(
            Method::POST,
            "/enroll/signin",
            &cookie,
            &[],
            body.into_bytes(),
        );
        assert_eq!(status, StatusCode::SEE_OTHER, "the harness sign-in works");
        let id = set?;
        let cookie = format!("rampart_session={id}");
        let (_, _, page) = self.exchange(
            Method::GET,
            "/enroll/app-passwords",
            &cookie,
            &[],
            Vec::new(),
        );
        let marker = "name=\"csrf\" value=\"";
        let start = page.find(marker)? + marker.len();
        let csrf = page[start..].split('"').next()?.to_string();
        Some(Signed { id, csrf })
    }

    /// Sends one step; returns the session cookie the response set, if any.
    pub fn send(&mut self, request: &Request<'_>) -> Option<String> {
        // It waits for a push answer by design (up to the out-of-band timeout).
        if request.target.starts_with("/enroll/push/wait") {
            return None;
        }
        let method = Method::from_bytes(request.method.as_bytes()).ok()?;
        let mut cookie = format!("rampart_signin={SIGNIN_TOKEN}");
        if let Some(id) = request.session {
            cookie = format!("rampart_session={id}; {cookie}");
        }
        let mut body = Vec::new();
        if let Some(csrf) = request.csrf {
            body.extend_from_slice(format!("csrf={csrf}&").as_bytes());
        }
        body.extend_from_slice(request.body);
        let (status, set, _) = self.exchange(
            method.clone(),
            request.target,
            &cookie,
            &request.headers,
            body,
        );
        assert_ne!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{method} {}",
            request.target
        );
        set
    }

    fn exchange(
        &mut self,
        method: Method,
        uri: &str,
        cookie: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (StatusCode, Option<String>, String) {
        let mut builder = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header(header::COOKIE, cookie);
        if !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            builder = builder.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        for (name, value) in headers {
            builder = builder.header(*name, value.trim_start());
        }
        let Ok(mut request) = builder.body(Body::from(body)) else {
            // Not an HTTP request a server would hand over (bad URI or header).
            return (StatusCode::BAD_REQUEST, None, String::new());
        };
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        let router = self.router.clone();
        self.runtime.block_on(async move {
            let response = tokio::time::timeout(Duration::from_secs(5), router.oneshot(request))
                .await
                .expect("a portal request finishes")
                .unwrap();
            let status = response.status();
            let set = response
                .headers()
                .get_all(header::SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(|v| v.strip_prefix("rampart_session="))
                .map(|v| v.split(';').next().unwrap_or_default().to_string())
                .find(|v| !v.is_empty());
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            (status, set, String::from_utf8_lossy(&bytes).into_owned())
        })
    }
}
