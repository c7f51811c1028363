//! "Verify now": a real test of a factor the user set up, through the same
//! code paths a login uses — the TOTP check with its replay guard, a real
//! push that must be approved, a real text message.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use tracing::warn;

use super::home::{enrolled, unavailable};
use super::html::{Page, button, csrf_field, esc};
use super::session::{PhonePurpose, PushPurpose};
use super::{
    ClientAddr, CodeForm, CsrfForm, Portal, Signed, clean_code, ending, redirect, unix_now,
};
use crate::factor::totp::TotpOutcome;

/// `GET /enroll/verify`.
pub async fn show(State(portal): State<Arc<Portal>>, signed: Signed) -> Response {
    render(&portal, &signed, None).await
}

async fn render(portal: &Portal, signed: &Signed, error: Option<&str>) -> Response {
    let (user, csrf) = signed.who();
    let enrolled = match enrolled(portal, &user).await {
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
    let mut any = false;
    if enrolled.totp {
        any = true;
        body.push_str(&format!(
            "<h2>Authenticator app</h2><form method=\"post\" action=\"/enroll/verify/totp\">{}\
             <label for=\"code\">Code the app shows now</label>\
             <input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" class=\"code\" required autofocus>\
             <button>Test the code</button></form>",
            csrf_field(&csrf)
        ));
    }
    if !enrolled.push.is_empty() && oob.is_some_and(|o| o.push.is_some()) {
        any = true;
        body.push_str("<h2>Push approval</h2>");
        body.push_str(&button(
            "/enroll/verify/push",
            &csrf,
            "Send me a test push",
            "secondary",
        ));
    }
    if let Some(number) = enrolled.primary_phone()
        && oob.is_some_and(|o| o.sms.is_some())
    {
        any = true;
        body.push_str("<h2>Phone</h2>");
        body.push_str(&button(
            "/enroll/verify/sms",
            &csrf,
            &format!("Text a test code to my phone ending in {}", ending(number)),
            "secondary",
        ));
    }
    let next = if any {
        "Pick a method and run a real test of it."
    } else {
        "Nothing to test yet: set up your authenticator app first."
    };
    body.push_str("<p><a class=\"button secondary\" href=\"/enroll\">Back</a></p>");
    Page {
        signed_in_csrf: Some(&csrf),
        flash: signed.flash(),
        ..portal.page("Test a sign-in method", "verify", next, body)
    }
    .with_status(if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    })
}

/// `POST /enroll/verify/totp`: checks a code like a login does (the code
/// is used up: it cannot sign in afterwards).
pub async fn totp(
    State(portal): State<Arc<Portal>>,
    signed: Signed,
    Form(form): Form<CodeForm>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return portal.csrf_refused();
    }
    let (user, _) = signed.who();
    let code = clean_code(&form.code);
    match portal.totp.verify(&user, &code, unix_now()).await {
        Ok(TotpOutcome::Accepted) => {
            signed.set_flash("It works: your authenticator app's code was accepted.");
            redirect("/enroll")
        }
        Ok(TotpOutcome::Replayed) => {
            render(
                &portal,
                &signed,
                Some("That code was already used. Wait for the next code (the app changes it every 30 seconds) and try again."),
            )
            .await
        }
        Ok(TotpOutcome::NotEnrolled) => redirect("/enroll/totp"),
        Ok(TotpOutcome::Wrong) => {
            if let Some(response) = super::signin::wrong_code(&portal, &signed.id, &signed.session) {
                return response;
            }
            render(
                &portal,
                &signed,
                Some("That code is not right. Check the phone's time is set automatically, then type the code the app shows now."),
            )
            .await
        }
        Err(error) => {
            warn!(%error, user, "portal: cannot check TOTP");
            portal.problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Something went wrong on our side",
                "Try again in a minute; if it keeps happening, tell your IT team.",
            )
        }
    }
}

/// `POST /enroll/verify/push`: a real push to the enrolled target.
pub async fn push(
    State(portal): State<Arc<Portal>>,
    ClientAddr(ip): ClientAddr,
    signed: Signed,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return portal.csrf_refused();
    }
    let (user, _) = signed.who();
    let Some(target) = super::push::stored_target(&portal, &user).await else {
        return redirect("/enroll/push");
    };
    match super::push::start_push(
        &portal,
        &signed.session,
        &user,
        ip,
        PushPurpose::Verify,
        target,
    )
    .await
    {
        Ok(()) => redirect("/enroll/push/wait"),
        Err(response) => response,
    }
}

/// `POST /enroll/verify/sms`: a real text to the primary number.
pub async fn sms(
    State(portal): State<Arc<Portal>>,
    signed: Signed,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return portal.csrf_refused();
    }
    let (user, _) = signed.who();
    let enrolled = match enrolled(&portal, &user).await {
        Ok(e) => e,
        Err(error) => return unavailable(&portal, error),
    };
    let Some((label, number)) = enrolled.phones.first() else {
        return redirect("/enroll/phone");
    };
    match super::phone::send_code(
        &portal,
        &signed.session,
        &user,
        PhonePurpose::Verify,
        label,
        number,
    )
    .await
    {
        Ok(()) => redirect("/enroll/phone/code"),
        Err(response) => response,
    }
}
