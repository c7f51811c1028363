//! `GET /enroll`: the overview of the user's sign-in methods with the one
//! next step highlighted; the sign-in form when nobody is signed in.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tracing::warn;

use super::html::{Page, esc};
use super::session::{self, Stage};
use super::{Portal, Signed, ending, redirect, signin};
use crate::store::{DeviceKind, StoreError};

/// What a user has set up.
#[derive(Debug, Default)]
pub struct Enrolled {
    /// An authenticator app.
    pub totp: bool,
    /// Push device labels.
    pub push: Vec<String>,
    /// Phone numbers (label, E.164), primary first.
    pub phones: Vec<(String, String)>,
    /// Unused recovery codes.
    pub recovery_left: u32,
    /// App passwords.
    pub app_passwords: usize,
}

impl Enrolled {
    /// Whether the user has anything that proves it is them beyond the
    /// password: then the portal asks for it before any change.
    pub fn has_factor(&self) -> bool {
        self.totp || !self.push.is_empty() || !self.phones.is_empty() || self.recovery_left > 0
    }

    /// The primary phone (or the first one).
    pub fn primary_phone(&self) -> Option<&str> {
        self.phones.first().map(|(_, n)| n.as_str())
    }
}

/// Reads everything a user has set up (phone numbers opened, topics not).
pub async fn enrolled(portal: &Portal, user: &str) -> Result<Enrolled, StoreError> {
    let totp = portal.store.totp(user).await?.is_some();
    let devices = portal.store.out_of_band(user).await?;
    let summary = portal.store.user(user).await?;
    let app_passwords = portal.store.app_passwords(user).await?.len();
    let mut enrolled = Enrolled {
        totp,
        recovery_left: summary.map_or(0, |s| s.recovery_codes_left),
        app_passwords,
        ..Enrolled::default()
    };
    for device in devices.devices {
        match device.kind {
            DeviceKind::Push => enrolled.push.push(device.label),
            DeviceKind::Phone => match portal.key.open(user.as_bytes(), &device.sealed_target) {
                Ok(plain) => enrolled
                    .phones
                    .push((device.label, String::from_utf8_lossy(&plain).into_owned())),
                Err(_) => {
                    warn!(user, label = %device.label, "cannot open a phone record (wrong key?)")
                }
            },
        }
    }
    enrolled.phones.sort_by_key(|(label, _)| label != "primary");
    Ok(enrolled)
}

/// The store failed: say so and what to do.
pub fn unavailable(portal: &Portal, error: StoreError) -> Response {
    warn!(%error, "portal: store unavailable");
    portal.problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "Something went wrong on our side",
        "Nothing was changed. Try again in a minute; if it keeps happening, tell your IT team.",
    )
}

/// `GET /enroll`.
pub async fn home(State(portal): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    let Some(id) = session::cookie(&headers, session::SESSION_COOKIE) else {
        return signin::render_form(&portal, &headers, None, false);
    };
    let Some(session) = portal.sessions.get(id, std::time::Instant::now()) else {
        return signin::render_form(&portal, &headers, None, true);
    };
    if session::lock(&session).stage != Stage::Verified {
        return redirect("/enroll/confirm");
    }
    let signed = Signed {
        id: id.to_string(),
        session,
    };
    overview(&portal, &signed).await
}

async fn overview(portal: &Portal, signed: &Signed) -> Response {
    let (user, csrf) = signed.who();
    // Recovery codes are shown once: leaving their page discards them.
    session::lock(&signed.session).fresh_recovery = None;
    let enrolled = match enrolled(portal, &user).await {
        Ok(e) => e,
        Err(error) => return unavailable(portal, error),
    };
    let oob = portal.oob();
    let oob = oob.as_deref();
    let sms = oob.is_some_and(|o| o.sms.is_some());
    let pin_mode = super::phone_pin::mode(portal);
    let has_pin = match pin_mode {
        Some(_) => match portal.store.phone_pin_hash(&user).await {
            Ok(hash) => hash.is_some(),
            Err(error) => return unavailable(portal, error),
        },
        None => false,
    };
    let push = oob.is_some_and(|o| o.push.is_some()) && portal.config.ntfy_server.is_some();

    let next = if !enrolled.totp && enrolled.push.is_empty() && enrolled.phones.is_empty() {
        "Next: set up your authenticator app. It takes a minute."
    } else if enrolled.recovery_left == 0 {
        "Next: create recovery codes, so a lost phone does not lock you out."
    } else {
        "You are all set. Use “Test” to check a method works before you need it."
    };

    let mut body = String::from("<h2>Your sign-in methods</h2>");
    let row = |name: &str, state: String, actions: String| {
        format!(
            "<div class=\"factor\"><div><strong>{}</strong><br><span class=\"state\">{}</span></div><div class=\"actions\">{actions}</div></div>",
            esc(name),
            esc(&state)
        )
    };
    let link = |href: &str, label: &str, primary: bool| {
        format!(
            "<a class=\"button{}\" href=\"{href}\">{}</a>",
            if primary { "" } else { " secondary" },
            esc(label)
        )
    };
    body.push_str(&row(
        "Authenticator app",
        if enrolled.totp {
            "Active".into()
        } else {
            "Not set up".into()
        },
        if enrolled.totp {
            format!(
                "{}{}",
                link("/enroll/verify", "Test", false),
                link("/enroll/totp", "Replace", false)
            )
        } else {
            link("/enroll/totp", "Set up", true)
        },
    ));
    if sms || pin_mode.is_some() {
        let mut state = if enrolled.phones.is_empty() {
            "No number yet".to_string()
        } else {
            enrolled
                .phones
                .iter()
                .map(|(label, number)| format!("{label}: ending in {}", ending(number)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if pin_mode.is_some() {
            state.push_str(if has_pin {
                "; call PIN set"
            } else {
                "; no call PIN"
            });
        }
        body.push_str(&row(
            if sms {
                "Phone (text messages)"
            } else {
                "Phone (calls)"
            },
            state,
            link(
                "/enroll/phone",
                if sms && enrolled.phones.is_empty() {
                    "Add"
                } else {
                    "Manage"
                },
                false,
            ),
        ));
    }
    if push {
        body.push_str(&row(
            "Push approval (ntfy app)",
            if enrolled.push.is_empty() {
                "Not set up".into()
            } else {
                "Active".into()
            },
            if enrolled.push.is_empty() {
                link("/enroll/push", "Set up", false)
            } else {
                format!(
                    "{}{}",
                    link("/enroll/verify", "Test", false),
                    link("/enroll/push", "Manage", false)
                )
            },
        ));
    }
    body.push_str(&row(
        "Recovery codes",
        format!("{} unused", enrolled.recovery_left),
        link(
            "/enroll/recovery",
            if enrolled.recovery_left == 0 {
                "Create"
            } else {
                "Manage"
            },
            enrolled.totp && enrolled.recovery_left == 0,
        ),
    ));
    body.push_str(&row(
        "App passwords (Outlook, mail apps)",
        format!("{}", enrolled.app_passwords),
        link("/enroll/app-passwords", "Manage", false),
    ));
    body.push_str(&format!(
        "<p><small>Signed in as {}. To sign in to the VPN or remote desktop, type your password, then the 6-digit code when asked (or password,code in one field).</small></p>",
        esc(&user)
    ));
    Page {
        flash: signed.flash(),
        signed_in_csrf: Some(&csrf),
        ..portal.page("Your sign-in security", "home", next, body)
    }
    .ok()
}
