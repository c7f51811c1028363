//! Authenticator-app enrollment: one page with the QR code, the key as text
//! and the code field (screen 2 of 3). The seed lives only in the session
//! until a current code proves the app has it; then
//! [`TotpFactor::activate`](crate::factor::totp::TotpFactor::activate)
//! seals and stores it and claims the code's step. Until that moment any
//! earlier authenticator keeps working, and walking away stores nothing.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use tracing::{info, warn};

use super::html::{Page, button, csrf_field, esc, qr_svg};
use super::session::{self, PendingTotp};
use super::{CodeForm, CsrfForm, Portal, Signed, clean_code, redirect, unix_now};
use crate::factor::totp::{is_code_shaped, new_seed};

/// Wrong codes allowed for one pending seed before a new one is drawn.
const MAX_WRONG: u32 = 5;

/// `GET /enroll/totp`: draws a pending seed (or keeps the one already
/// shown, in case the user scanned it) and shows it.
pub async fn show(State(portal): State<Arc<Portal>>, signed: Signed) -> Response {
    render(&portal, &signed, None)
}

fn render(portal: &Portal, signed: &Signed, error: Option<&str>) -> Response {
    let (user, csrf) = signed.who();
    let seed = {
        let mut s = session::lock(&signed.session);
        let pending = s.pending_totp.get_or_insert_with(|| PendingTotp {
            seed: new_seed(),
            wrong: 0,
        });
        pending.seed.clone()
    };
    let enrollment = match portal.totp.enrollment(&user, &seed) {
        Ok(e) => e,
        Err(error) => {
            warn!(%error, "portal: cannot build the otpauth URI");
            return portal.problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side",
                "Try again; if it keeps happening, tell your IT team.",
            );
        }
    };
    let grouped: String = enrollment
        .base32
        .expose()
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let mut body = String::new();
    if let Some(error) = error {
        body.push_str(&format!(
            "<p class=\"error\" role=\"alert\">{}</p>",
            esc(error)
        ));
    }
    body.push_str(&format!(
        "<ol><li>Open your authenticator app (Microsoft or Google Authenticator, FreeOTP, 1Password…) and add an account with its QR-code scanner.</li>\
         <li>Type the 6-digit code the app now shows for <strong>{issuer}</strong>.</li></ol>\
         {qr}\
         <p><small>Cannot scan? Choose “enter a setup key” in the app and type this key (time-based):</small></p>\
         <p class=\"key\">{grouped}</p>\
         <form method=\"post\" action=\"/enroll/totp\">{csrf_field}\
         <label for=\"code\">6-digit code from the app</label>\
         <input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" pattern=\"[0-9 ]*\" autocomplete=\"one-time-code\" class=\"code\" required autofocus>\
         <button>Activate</button></form>\
         {cancel}",
        issuer = esc(&portal.totp_issuer()),
        qr = qr_svg(enrollment.uri.expose(), "QR code for your authenticator app"),
        grouped = esc(&grouped),
        csrf_field = csrf_field(&csrf),
        cancel = button("/enroll/totp/cancel", &csrf, "Cancel", "secondary"),
    ));
    Page {
        signed_in_csrf: Some(&csrf),
        flash: signed.flash(),
        ..portal.page(
            "Set up your authenticator app",
            "totp",
            "Scan the QR code with your phone, then type the code it shows below.",
            body,
        )
    }
    .with_status(if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    })
}

/// `POST /enroll/totp`: a code for the pending seed activates it.
pub async fn submit(
    State(portal): State<Arc<Portal>>,
    signed: Signed,
    Form(form): Form<CodeForm>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return portal.csrf_refused();
    }
    let (user, _) = signed.who();
    let Some(seed) = session::lock(&signed.session)
        .pending_totp
        .as_ref()
        .map(|p| p.seed.clone())
    else {
        signed.set_flash("That setup had ended. Here is a new QR code: scan it and type the code.");
        return redirect("/enroll/totp");
    };
    let code = clean_code(&form.code);
    if !is_code_shaped(&code) {
        return render(
            &portal,
            &signed,
            Some("Type the 6 digits your authenticator app shows (no letters)."),
        );
    }
    let now = unix_now();
    let Some(step) = portal.totp.check_pending(&seed, &code, now) else {
        let renewed = {
            let mut s = session::lock(&signed.session);
            let pending = s.pending_totp.as_mut().expect("checked above");
            pending.wrong += 1;
            if pending.wrong >= MAX_WRONG {
                s.pending_totp = None;
                true
            } else {
                false
            }
        };
        return render(
            &portal,
            &signed,
            Some(if renewed {
                "Too many wrong codes for that QR code. Delete the account you just added in the app, then scan this new QR code."
            } else {
                "That code is not right. Check the phone's time is set automatically, then type the code the app shows now."
            }),
        );
    };
    if let Err(error) = portal.totp.activate(&user, &seed, step, now as i64).await {
        warn!(%error, user, "portal: cannot store the TOTP seed");
        return portal.problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Something went wrong on our side",
            "Your authenticator app was not activated. Try again in a minute.",
        );
    }
    {
        let mut s = session::lock(&signed.session);
        s.pending_totp = None;
        s.flash = Some(
            "Your authenticator app is active. From now on, type the code it shows when you sign in."
                .into(),
        );
    }
    info!(user, "portal: authenticator app enrolled");
    metrics::counter!("rampart_portal_enrollments_total", "factor" => "totp").increment(1);
    redirect("/enroll")
}

/// `POST /enroll/totp/cancel`: forgets the pending seed.
pub async fn cancel(
    State(portal): State<Arc<Portal>>,
    signed: Signed,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return portal.csrf_refused();
    }
    session::lock(&signed.session).pending_totp = None;
    redirect("/enroll")
}

impl Portal {
    fn totp_issuer(&self) -> String {
        self.totp.issuer().to_string()
    }
}
