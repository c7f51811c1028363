//! The self-enrollment portal, under `/enroll` on the HTTP listener: a user
//! signs in with their primary credentials (or an invitation link) and sets
//! up, tests and manages their own second factors. Plain server-rendered
//! HTML, one stylesheet, no scripts; works on a phone screen.
//!
//! The shortest path is the one that matters: sign-in → QR code and code
//! field on one page → done, three screens and one switch to the phone.
//! Nothing becomes active until it is proven (a TOTP code, an SMS code, an
//! approved push); until then it lives only in the server-side session
//! ([`session`]), so abandoning half-way leaves nothing behind.
//!
//! Security: a CSRF token on every POST ([`csrf`]), sign-in rate limits per
//! user and per address ([`limit`]), `Secure; HttpOnly; SameSite=Strict`
//! cookies, idle session expiry, a strict CSP without scripts, `no-store`,
//! no referrer, no framing. A user who already has a second factor must use
//! it before changing anything, so a stolen password alone cannot enroll a
//! thief's phone. Passwords, codes, seeds, topics and session ids are never
//! logged.

pub mod app_passwords;
pub mod config;
pub mod csrf;
pub mod forwarded;
pub mod home;
pub mod html;
pub mod limit;
pub mod phone;
pub mod phone_pin;
pub mod push;
pub mod recovery;
pub mod session;
pub mod signin;
pub mod totp;
pub mod verify;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

pub use config::PortalConfig;

use crate::auth::PrimaryAuth;
use crate::factor::oob::OutOfBand;
use crate::factor::recovery::RecoveryCodes;
use crate::factor::totp::{TotpConfig, TotpFactor};
use crate::seal::SealKey;
use crate::store::Store;
use crate::username::UsernameConfig;
use html::Page;
use session::{SESSION_COOKIE, SessionRef, Sessions, Stage};

/// The hash under which an invitation token is stored and redeemed
/// (`Store::create_invitation` / `Store::redeem_invitation`): the one
/// [`crate::invite::token_hash`], so invitations and the portal always agree.
pub fn invitation_hash(key: &SealKey, token: &str) -> String {
    crate::invite::token_hash(key, token)
}

/// What the portal is built from.
pub struct PortalParts {
    /// `[portal]`.
    pub config: PortalConfig,
    /// The `[primary]` backend, shared with the RADIUS pipeline.
    pub primary: Arc<dyn PrimaryAuth>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Seals seeds and targets, hashes codes.
    pub key: Arc<SealKey>,
    /// `[totp]`.
    pub totp: TotpConfig,
    /// Out-of-band providers (SMS, push), when configured; replaced on reload.
    pub oob: crate::factor::oob::OobHandle,
    /// `[username]`: portal users are stored under the same names as RADIUS users.
    pub username: UsernameConfig,
}

/// The portal: configuration, backends and the session table.
pub struct Portal {
    config: PortalConfig,
    primary: Arc<dyn PrimaryAuth>,
    store: Arc<dyn Store>,
    key: Arc<SealKey>,
    totp: TotpFactor,
    recovery: RecoveryCodes,
    oob: crate::factor::oob::OobHandle,
    username: UsernameConfig,
    sessions: Sessions,
    limit: limit::SignInLimit,
    /// `trusted_proxies`, parsed (validated at load).
    proxies: Vec<ipnet::IpNet>,
}

impl Portal {
    /// Builds the portal.
    pub fn new(parts: PortalParts) -> Portal {
        let idle = Duration::from_secs(parts.config.session_minutes.max(1) * 60);
        Portal {
            limit: limit::SignInLimit::new(
                parts.config.signin_limit_per_user,
                parts.config.signin_limit_per_address,
            ),
            totp: TotpFactor::new(parts.store.clone(), parts.key.clone(), parts.totp),
            proxies: (parts.config.trusted_proxies.iter())
                .filter_map(|p| crate::config::validate::parse_network(p))
                .collect(),
            recovery: RecoveryCodes::new(parts.store.clone(), parts.key.clone()),
            config: parts.config,
            primary: parts.primary,
            store: parts.store,
            key: parts.key,
            oob: parts.oob,
            username: parts.username,
            sessions: Sessions::new(idle),
        }
    }

    /// Test hook: sessions end after `idle` instead of `session_minutes`.
    pub fn with_session_idle(mut self, idle: Duration) -> Portal {
        self.sessions = Sessions::new(idle);
        self
    }

    /// The out-of-band providers in use now (a reload may change them).
    fn oob(&self) -> Option<Arc<OutOfBand>> {
        self.oob.current()
    }

    /// Live sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    fn page<'a>(
        &'a self,
        title: &'a str,
        screen: &'a str,
        next: &'a str,
        body: String,
    ) -> Page<'a> {
        Page {
            site: &self.config.title,
            title,
            screen,
            next,
            body,
            refresh: None,
            signed_in_csrf: None,
            flash: None,
        }
    }

    /// A page that explains a refusal and what to do instead.
    fn problem(&self, status: StatusCode, title: &str, next: &str) -> Response {
        let body =
            "<p><a class=\"button secondary\" href=\"/enroll\">Back to the start</a></p>".into();
        self.page(title, "problem", next, body).with_status(status)
    }

    /// 403 for a missing or wrong CSRF token: nothing was changed.
    fn csrf_refused(&self) -> Response {
        self.problem(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "Nothing was changed. Go back, reload the page and try again.",
        )
    }

    /// The secure flag for cookies.
    fn secure(&self) -> bool {
        self.config.secure_cookies
    }
}

/// Unix seconds now.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// 303 See Other to a portal path.
fn redirect(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// The portal's routes (under `/enroll`), for `http::router`.
pub fn routes<S: Clone + Send + Sync + 'static>(portal: Arc<Portal>) -> Router<S> {
    Router::new()
        .route("/enroll", get(home::home))
        .route("/enroll/", get(home::home))
        .route("/enroll/portal.css", get(stylesheet))
        .route("/enroll/signin", get(signin::form).post(signin::submit))
        .route("/enroll/signout", post(signin::signout))
        .route(
            "/enroll/invite/{token}",
            get(signin::invitation).post(signin::redeem),
        )
        .route(
            "/enroll/confirm",
            get(signin::confirm).post(signin::confirm_code),
        )
        .route("/enroll/totp", get(totp::show).post(totp::submit))
        .route("/enroll/totp/cancel", post(totp::cancel))
        .route("/enroll/phone", get(phone::show).post(phone::send))
        .route(
            "/enroll/phone/code",
            get(phone::code_form).post(phone::check_code),
        )
        .route("/enroll/phone/remove", post(phone::remove))
        .route("/enroll/phone/pin", post(phone_pin::set))
        .route("/enroll/phone/pin/remove", post(phone_pin::remove))
        .route("/enroll/confirm/sms", post(phone::confirm_by_sms))
        .route("/enroll/push", get(push::show))
        .route("/enroll/push/test", post(push::send_test))
        .route("/enroll/push/wait", get(push::wait))
        .route("/enroll/push/remove", post(push::remove))
        .route("/enroll/confirm/push", post(push::confirm_by_push))
        .route("/enroll/recovery", get(recovery::show))
        .route("/enroll/recovery/new", post(recovery::issue))
        .route("/enroll/recovery/codes", get(recovery::codes))
        .route("/enroll/recovery/download", post(recovery::download))
        .route(
            "/enroll/app-passwords",
            get(app_passwords::list).post(app_passwords::create),
        )
        .route("/enroll/app-passwords/revoke", post(app_passwords::revoke))
        .route("/enroll/verify", get(verify::show))
        .route("/enroll/verify/totp", post(verify::totp))
        .route("/enroll/verify/push", post(verify::push))
        .route("/enroll/verify/sms", post(verify::sms))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(portal)
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        html::CSS,
    )
}

/// Headers on every portal response: no scripts, no framing, no caching of
/// pages that show secrets, no referrer (URLs can carry invitation tokens).
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The client's address, when the listener records it: the TCP peer, or
/// behind a trusted reverse proxy the address it forwards ([`forwarded`]).
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<Arc<Portal>> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        portal: &Arc<Portal>,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| forwarded::client_address(c.0.ip(), &parts.headers, &portal.proxies)),
        ))
    }
}

/// A session at any stage (the second-factor page needs one).
pub struct AnySession {
    /// The id from the cookie.
    pub id: String,
    /// The session.
    pub session: SessionRef,
}

/// A fully signed-in session.
pub struct Signed {
    /// The id from the cookie.
    pub id: String,
    /// The session.
    pub session: SessionRef,
}

/// The session named by the cookie, or where to send the browser instead.
fn session_from(parts: &Parts, portal: &Portal) -> Result<AnySession, &'static str> {
    let Some(id) = session::cookie(&parts.headers, SESSION_COOKIE) else {
        return Err("/enroll/signin");
    };
    match portal.sessions.get(id, std::time::Instant::now()) {
        Some(session) => Ok(AnySession {
            id: id.to_string(),
            session,
        }),
        // A cookie but no session: it expired (or the server restarted).
        None => Err("/enroll/signin?expired=1"),
    }
}

impl FromRequestParts<Arc<Portal>> for AnySession {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        portal: &Arc<Portal>,
    ) -> Result<Self, Self::Rejection> {
        session_from(parts, portal).map_err(redirect)
    }
}

impl FromRequestParts<Arc<Portal>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        portal: &Arc<Portal>,
    ) -> Result<Self, Self::Rejection> {
        let any = session_from(parts, portal).map_err(redirect)?;
        if session::lock(&any.session).stage != Stage::Verified {
            return Err(redirect("/enroll/confirm"));
        }
        Ok(Signed {
            id: any.id,
            session: any.session,
        })
    }
}

impl Signed {
    /// The user and CSRF token (cloned out of the lock).
    fn who(&self) -> (String, String) {
        let s = session::lock(&self.session);
        (s.user.clone(), s.csrf.clone())
    }

    /// Checks a form's CSRF token against the session's.
    fn csrf_ok(&self, given: &str) -> bool {
        csrf::matches(&session::lock(&self.session).csrf, given)
    }

    /// Takes the one-time notice.
    fn flash(&self) -> Option<String> {
        session::lock(&self.session).flash.take()
    }

    /// Leaves a notice for the next page.
    fn set_flash(&self, text: impl Into<String>) {
        session::lock(&self.session).flash = Some(text.into());
    }
}

/// A form with only the CSRF token.
#[derive(serde::Deserialize)]
pub struct CsrfForm {
    /// The token.
    #[serde(default)]
    pub csrf: String,
}

/// A form with one code field.
#[derive(serde::Deserialize)]
pub struct CodeForm {
    /// The token.
    #[serde(default)]
    pub csrf: String,
    /// What the user typed.
    #[serde(default)]
    pub code: String,
}

/// A typed code without spaces or dashes (apps show `123 456`).
fn clean_code(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect()
}

/// "ending in 67".
fn ending(number: &str) -> &str {
    &number[number.len().saturating_sub(2)..]
}

/// Wrong codes allowed per session before it is ended.
const MAX_WRONG_CODES: u32 = 3;
