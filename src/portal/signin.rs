//! Signing in: the password form (checked by whatever `[primary]` is), the
//! invitation link that stands in for it, the second-factor confirmation
//! for users who already have one, and sign-out.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use tracing::{info, warn};

use super::home::{enrolled, unavailable};
use super::html::{Page, button, csrf_field, esc};
use super::session::{self, SESSION_COOKIE, SIGNIN_COOKIE, Stage};
use super::{
    AnySession, ClientAddr, CodeForm, CsrfForm, MAX_WRONG_CODES, Portal, clean_code,
    invitation_hash, redirect, unix_now,
};
use crate::auth::{PrimaryOutcome, PrimaryRequest};
use crate::factor::oob::e164;
use crate::factor::totp::TotpOutcome;
use crate::factor::{Response as Typed, classify};
use crate::radius::{AccessRequest, Attribute, attr};
use crate::secret::Secret;

/// `GET /enroll/signin[?expired=1]`.
pub async fn form(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    render_form(&portal, &headers, None, query.contains_key("expired"))
}

/// The sign-in form (screen 1), with a fresh double-submit token when the
/// browser has none.
pub fn render_form(
    portal: &Portal,
    headers: &HeaderMap,
    error: Option<(StatusCode, &str)>,
    expired: bool,
) -> Response {
    let existing = session::cookie(headers, SIGNIN_COOKIE)
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()));
    let token = existing
        .map(str::to_string)
        .unwrap_or_else(session::new_token);
    let (status, error) = error.unwrap_or((StatusCode::OK, ""));
    let mut body = String::new();
    if !error.is_empty() {
        body.push_str(&format!(
            "<p class=\"error\" role=\"alert\">{}</p>",
            esc(error)
        ));
    }
    let next = if portal.primary.requires_password() {
        body.push_str(&format!(
            "<form method=\"post\" action=\"/enroll/signin\">{}\
             <label for=\"user\">User name</label>\
             <input type=\"text\" id=\"user\" name=\"user\" autocomplete=\"username\" autocapitalize=\"none\" required autofocus>\
             <label for=\"password\">Password</label>\
             <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
             <button>Sign in</button></form>",
            csrf_field(&token)
        ));
        "Sign in with the user name and password you use for the VPN or remote desktop."
    } else {
        body.push_str(
            "<p>This server does not check passwords itself, so it cannot sign you in here.</p>",
        );
        "Open the invitation link your IT team sent you. No link? Ask them for one."
    };
    let mut response = Page {
        flash: expired.then(|| {
            let minutes = portal.sessions.idle().as_secs().div_ceil(60).max(1);
            format!(
                "Your session ended after {minutes} minute{} without activity. Sign in again.",
                if minutes == 1 { "" } else { "s" }
            )
        }),
        ..portal.page("Set up sign-in security", "signin", next, body)
    }
    .with_status(status);
    if existing.is_none() {
        append_cookie(
            &mut response,
            &session::set_cookie(SIGNIN_COOKIE, Some(&token), portal.secure()),
        );
    }
    response
}

fn append_cookie(response: &mut Response, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
}

/// What the primary backend sees for a portal sign-in: an Access-Request
/// from the NAS "rampart-portal" (upstream RADIUS servers need User-Name
/// and NAS-Identifier among the forwarded attributes, RFC 2865 §4.1).
fn primary_request(
    typed_user: &str,
    password: &Secret<String>,
    ip: Option<IpAddr>,
) -> AccessRequest {
    let peer = SocketAddr::new(ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)), 0);
    let mut attributes = vec![
        Attribute::new(attr::USER_NAME, typed_user.as_bytes()),
        Attribute::new(attr::NAS_IDENTIFIER, &b"rampart-portal"[..]),
    ];
    if let Some(ip) = ip {
        attributes.push(Attribute::new(
            attr::CALLING_STATION_ID,
            ip.to_string().into_bytes(),
        ));
    }
    AccessRequest {
        user_name: typed_user.to_string(),
        password: Some(password.clone()),
        state: None,
        client: Arc::from("portal"),
        peer,
        nas_ip: None,
        nas_identifier: Some("rampart-portal".into()),
        calling_station_id: ip.map(|ip| ip.to_string()),
        authenticator: rand::random(),
        attributes,
    }
}

fn count(outcome: &'static str) {
    metrics::counter!("rampart_portal_signins_total", "outcome" => outcome).increment(1);
}

/// `POST /enroll/signin`.
pub async fn submit(
    State(portal): State<Arc<Portal>>,
    ClientAddr(ip): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let cookie = session::cookie(&headers, SIGNIN_COOKIE).unwrap_or_default();
    if !super::csrf::matches(cookie, &form.csrf) {
        count("csrf");
        return portal.csrf_refused();
    }
    let password = Secret::new(form.password);
    let fail =
        |status, message: &str| render_form(&portal, &headers, Some((status, message)), false);
    if !portal.primary.requires_password() {
        return fail(
            StatusCode::FORBIDDEN,
            "This server cannot check passwords. Use the invitation link from your IT team.",
        );
    }
    let user = portal.username.normalize(&form.user);
    if user.is_empty() || password.expose().is_empty() {
        return fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Type both your user name and your password.",
        );
    }
    if user.len() > 253 || user.chars().any(char::is_control) {
        return fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "That user name is not valid. Type it as you do for the VPN.",
        );
    }
    if !portal.limit.try_attempt(&user, ip, Instant::now()) {
        count("rate_limited");
        info!(user, "portal: sign-in rate limited");
        return fail(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-in attempts. Wait 15 minutes, then try again.",
        );
    }
    let now = unix_now();
    match portal.store.login_state(&user, now as i64).await {
        Ok(state) => {
            if let Some(until) = state.locked_until {
                count("locked");
                return fail(
                    StatusCode::FORBIDDEN,
                    &format!(
                        "Your account is locked until {} after failed or denied sign-ins. Try again then, or ask your IT team.",
                        crate::cli::format_time(Some(until))
                    ),
                );
            }
        }
        Err(error) => return unavailable(&portal, error),
    }
    let request = primary_request(&form.user, &password, ip);
    let outcome = portal
        .primary
        .verify(&PrimaryRequest {
            user: &user,
            password: Some(&password),
            request: &request,
        })
        .await;
    let info = match outcome {
        Ok(PrimaryOutcome::Accepted(info)) => info,
        Ok(PrimaryOutcome::UnknownUser | PrimaryOutcome::BadPassword) => {
            count("bad_password");
            info!(user, "portal: wrong user name or password");
            return fail(
                StatusCode::UNAUTHORIZED,
                "The user name or password is not right. Check both (and Caps Lock) and try again.",
            );
        }
        Ok(PrimaryOutcome::Denied { reason, message }) => {
            count("denied");
            info!(
                user,
                reason, "portal: sign-in denied by the primary backend"
            );
            let message = message.unwrap_or_else(|| {
                "Your account may not sign in here. Ask your IT team.".to_string()
            });
            return fail(StatusCode::FORBIDDEN, &message);
        }
        Err(error) => {
            count("unavailable");
            warn!(%error, user, "portal: primary backend unavailable");
            return fail(
                StatusCode::SERVICE_UNAVAILABLE,
                "The password check is not available right now. Try again in a few minutes.",
            );
        }
    };
    let enrolled = match enrolled(&portal, &user).await {
        Ok(e) => e,
        Err(error) => return unavailable(&portal, error),
    };
    // A directory number that logins already text or call (`[out_of_band]
    // directory_phone`) is a second factor too, even if nothing is enrolled.
    let directory_phone = info.phone.as_deref().and_then(e164);
    let directory_factor = directory_phone.is_some()
        && portal
            .oob()
            .is_some_and(|o| o.config.directory_phone && (o.sms.is_some() || o.caller.is_some()));
    let stage = if enrolled.has_factor() || directory_factor {
        Stage::SecondFactor
    } else {
        Stage::Verified
    };
    let to = match stage {
        Stage::SecondFactor => "/enroll/confirm",
        Stage::Verified => "/enroll/totp",
    };
    count(if stage == Stage::Verified {
        "ok"
    } else {
        "second_factor"
    });
    info!(
        user,
        second_factor = stage == Stage::SecondFactor,
        "portal: password accepted"
    );
    start_session(&portal, user, stage, directory_phone, to)
}

/// Creates the session and sends the browser on with its cookie.
fn start_session(
    portal: &Portal,
    user: String,
    stage: Stage,
    phone_hint: Option<String>,
    to: &str,
) -> Response {
    let Some((id, session)) = portal.sessions.create(user, stage, Instant::now()) else {
        return portal.problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too busy",
            "The portal has too many people signed in right now. Try again in a few minutes.",
        );
    };
    session::lock(&session).phone_hint = phone_hint;
    let mut response = redirect(to);
    append_cookie(
        &mut response,
        &session::set_cookie(SESSION_COOKIE, Some(&id), portal.secure()),
    );
    append_cookie(
        &mut response,
        &session::set_cookie(SIGNIN_COOKIE, None, portal.secure()),
    );
    response
}

/// `POST /enroll/signout`.
pub async fn signout(
    State(portal): State<Arc<Portal>>,
    current: AnySession,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !super::csrf::matches(&session::lock(&current.session).csrf, &form.csrf) {
        return portal.csrf_refused();
    }
    portal.sessions.remove(&current.id);
    let mut response = redirect("/enroll/signin");
    append_cookie(
        &mut response,
        &session::set_cookie(SESSION_COOKIE, None, portal.secure()),
    );
    response
}

/// Invitation tokens are URL-safe and of bounded length; anything else is
/// not worth a store look-up.
fn token_shaped(token: &str) -> bool {
    (16..=128).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn invitation_gone(portal: &Portal) -> Response {
    portal.problem(
        StatusCode::GONE,
        "This invitation link does not work any more",
        "It was already used or has expired. Ask your IT team for a new link, or sign in with your password.",
    )
}

/// `GET /enroll/invite/{token}`: a page with one button. Redeeming on GET
/// would let mail scanners that open links use up the invitation.
pub async fn invitation(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    if !token_shaped(&token) {
        return invitation_gone(&portal);
    }
    let existing = session::cookie(&headers, SIGNIN_COOKIE)
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()));
    let csrf = existing
        .map(str::to_string)
        .unwrap_or_else(session::new_token);
    let body = format!(
        "<p>Your IT team invited you to set up sign-in security. The link works once.</p>\
         <form method=\"post\" action=\"/enroll/invite/{}\">{}<button>Continue</button></form>",
        esc(&token),
        csrf_field(&csrf)
    );
    let mut response = portal
        .page(
            "You are invited",
            "invitation",
            "Press Continue to start. Have your phone at hand.",
            body,
        )
        .ok();
    if existing.is_none() {
        append_cookie(
            &mut response,
            &session::set_cookie(SIGNIN_COOKIE, Some(&csrf), portal.secure()),
        );
    }
    response
}

/// `POST /enroll/invite/{token}`: redeems it (once) and signs the user in.
pub async fn redeem(
    State(portal): State<Arc<Portal>>,
    ClientAddr(ip): ClientAddr,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let cookie = session::cookie(&headers, SIGNIN_COOKIE).unwrap_or_default();
    if !super::csrf::matches(cookie, &form.csrf) {
        return portal.csrf_refused();
    }
    if !portal.limit.try_address(ip, Instant::now()) {
        count("rate_limited");
        return portal.problem(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "Too many sign-in attempts from your network. Wait 15 minutes, then try again.",
        );
    }
    if !token_shaped(&token) {
        return invitation_gone(&portal);
    }
    let hash = invitation_hash(&portal.key, &token);
    let user = match portal
        .store
        .redeem_invitation(&hash, unix_now() as i64)
        .await
    {
        Ok(Some(user)) => user,
        Ok(None) => {
            count("invitation_invalid");
            return invitation_gone(&portal);
        }
        Err(error) => return unavailable(&portal, error),
    };
    count("invitation");
    info!(user, "portal: invitation redeemed");
    let to = match portal.store.totp(&user).await {
        Ok(Some(_)) => "/enroll",
        Ok(None) => "/enroll/totp",
        Err(error) => return unavailable(&portal, error),
    };
    start_session(&portal, user, Stage::Verified, None, to)
}

/// `GET /enroll/confirm`: the second factor before changes, for users who
/// already have one.
pub async fn confirm(State(portal): State<Arc<Portal>>, current: AnySession) -> Response {
    let (user, csrf, stage) = {
        let s = session::lock(&current.session);
        (s.user.clone(), s.csrf.clone(), s.stage)
    };
    if stage == Stage::Verified {
        return redirect("/enroll");
    }
    confirm_page(&portal, &current, &user, &csrf, None).await
}

/// The number a sign-in confirmation code goes to: the enrolled primary
/// number, else the directory's when logins use it.
pub(super) fn confirm_number(
    portal: &Portal,
    enrolled: &super::home::Enrolled,
    current: &AnySession,
) -> Option<(String, String)> {
    if let Some((label, number)) = enrolled.phones.first() {
        return Some((label.clone(), number.clone()));
    }
    portal.oob().filter(|o| o.config.directory_phone)?;
    session::lock(&current.session)
        .phone_hint
        .clone()
        .map(|number| ("directory".to_string(), number))
}

async fn confirm_page(
    portal: &Portal,
    current: &AnySession,
    user: &str,
    csrf: &str,
    error: Option<&str>,
) -> Response {
    let enrolled = match enrolled(portal, user).await {
        Ok(e) => e,
        Err(error) => return unavailable(portal, error),
    };
    let oob = portal.oob();
    let oob = oob.as_deref();
    let mut body = String::new();
    if let Some(error) = error {
        body.push_str(&format!(
            "<p class=\"error\" role=\"alert\">{}</p>",
            esc(error)
        ));
    }
    let mut ways = 0;
    if enrolled.totp || enrolled.recovery_left > 0 {
        ways += 1;
        body.push_str(&format!(
            "<form method=\"post\" action=\"/enroll/confirm\">{}\
             <label for=\"code\">{}</label>\
             <input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" class=\"code\" required autofocus>\
             <button>Confirm</button></form>",
            csrf_field(csrf),
            if enrolled.totp {
                "Code from your authenticator app (or a recovery code)"
            } else {
                "One of your recovery codes"
            }
        ));
    }
    if !enrolled.push.is_empty() && oob.is_some_and(|o| o.push.is_some()) {
        ways += 1;
        body.push_str(&button(
            "/enroll/confirm/push",
            csrf,
            "Send a push to my phone",
            "secondary",
        ));
    }
    if let Some((_, number)) = confirm_number(portal, &enrolled, current)
        && oob.is_some_and(|o| o.sms.is_some())
    {
        ways += 1;
        body.push_str(&button(
            "/enroll/confirm/sms",
            csrf,
            &format!(
                "Text a code to my phone ending in {}",
                super::ending(&number)
            ),
            "secondary",
        ));
    }
    let next = if ways == 0 {
        "Your account already has a sign-in method this portal cannot check. Ask your IT team for an invitation link."
    } else {
        "Your password is right. Now confirm it is you with a method you already have."
    };
    Page {
        signed_in_csrf: Some(csrf),
        ..portal.page("Confirm it is you", "confirm", next, body)
    }
    .with_status(if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    })
}

/// Counts a wrong second-factor code; ends the session after
/// [`MAX_WRONG_CODES`]. Returns the response when it ended it.
pub(super) fn wrong_code(
    portal: &Portal,
    id: &str,
    session: &session::SessionRef,
) -> Option<Response> {
    let wrong = {
        let mut s = session::lock(session);
        s.wrong_codes += 1;
        s.wrong_codes
    };
    if wrong < MAX_WRONG_CODES {
        return None;
    }
    portal.sessions.remove(id);
    let mut response = portal.problem(
        StatusCode::FORBIDDEN,
        "Too many wrong codes",
        "You have been signed out. Sign in again and use a current code.",
    );
    append_cookie(
        &mut response,
        &session::set_cookie(SESSION_COOKIE, None, portal.secure()),
    );
    Some(response)
}

/// `POST /enroll/confirm`: a TOTP or recovery code.
pub async fn confirm_code(
    State(portal): State<Arc<Portal>>,
    current: AnySession,
    Form(form): Form<CodeForm>,
) -> Response {
    let (user, csrf) = {
        let s = session::lock(&current.session);
        (s.user.clone(), s.csrf.clone())
    };
    if !super::csrf::matches(&csrf, &form.csrf) {
        return portal.csrf_refused();
    }
    let now = unix_now();
    let accepted = match classify(&clean_code(&form.code)).or_else(|| classify(&form.code)) {
        Some(Typed::Totp(code)) => match portal.totp.verify(&user, &code, now).await {
            Ok(TotpOutcome::Accepted) => Some("Confirmed."),
            Ok(TotpOutcome::Replayed) => {
                return confirm_page(
                    &portal,
                    &current,
                    &user,
                    &csrf,
                    Some("That code was already used. Wait for the next code in your app and type it."),
                )
                .await;
            }
            Ok(_) => None,
            Err(error) => {
                warn!(%error, user, "portal: cannot check TOTP");
                return portal.problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Something went wrong on our side",
                    "Try again in a minute; if it keeps happening, tell your IT team.",
                );
            }
        },
        Some(Typed::Recovery(code)) => match portal.recovery.redeem(&user, &code).await {
            Ok(true) => Some(
                "Recovery code accepted; it cannot be used again. Create new codes below if you are running out.",
            ),
            Ok(false) => None,
            Err(error) => return unavailable(&portal, error),
        },
        None => None,
    };
    match accepted {
        Some(message) => {
            {
                let mut s = session::lock(&current.session);
                s.stage = Stage::Verified;
                s.wrong_codes = 0;
                s.flash = Some(message.into());
            }
            info!(user, "portal: second factor confirmed");
            redirect("/enroll")
        }
        None => {
            if let Some(response) = wrong_code(&portal, &current.id, &current.session) {
                return response;
            }
            confirm_page(
                &portal,
                &current,
                &user,
                &csrf,
                Some("That code is not right. Type the code your app shows now."),
            )
            .await
        }
    }
}
