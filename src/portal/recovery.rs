//! Recovery codes: issued with [`RecoveryCodes::issue`] (which replaces,
//! and so invalidates, any earlier set in one transaction), shown once and
//! downloadable as a text file while the page is open. The codes are kept
//! in the session only until the user leaves that page.
//!
//! [`RecoveryCodes::issue`]: crate::factor::recovery::RecoveryCodes::issue

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::info;

use super::home::{enrolled, unavailable};
use super::html::{Page, button, esc};
use super::session;
use super::{CsrfForm, Portal, Signed, redirect, unix_now};

/// `GET /enroll/recovery`: how many are left, and the button for a new set.
pub async fn show(State(portal): State<Arc<Portal>>, signed: Signed) -> Response {
    let (user, csrf) = signed.who();
    session::lock(&signed.session).fresh_recovery = None;
    let enrolled = match enrolled(&portal, &user).await {
        Ok(e) => e,
        Err(error) => return unavailable(&portal, error),
    };
    let (next, label) = if enrolled.recovery_left == 0 {
        (
            "Create recovery codes and keep them somewhere safe: each one signs you in once if your phone is lost.",
            "Create recovery codes",
        )
    } else {
        (
            "You have recovery codes. Create a new set only if you lost them or used most of them.",
            "Create a new set (the old codes stop working)",
        )
    };
    let body = format!(
        "<p>Unused codes: <strong>{}</strong>.</p>{}<p><a class=\"button secondary\" href=\"/enroll\">Back</a></p>",
        enrolled.recovery_left,
        button("/enroll/recovery/new", &csrf, label, ""),
    );
    Page {
        signed_in_csrf: Some(&csrf),
        flash: signed.flash(),
        ..portal.page("Recovery codes", "recovery", next, body)
    }
    .ok()
}

/// `POST /enroll/recovery/new`: a new set; the old one stops working.
pub async fn issue(
    State(portal): State<Arc<Portal>>,
    signed: Signed,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return portal.csrf_refused();
    }
    let (user, _) = signed.who();
    let codes = match portal.recovery.issue(&user, unix_now() as i64).await {
        Ok(codes) => codes,
        Err(error) => return unavailable(&portal, error),
    };
    info!(user, "portal: recovery codes issued");
    metrics::counter!("rampart_portal_enrollments_total", "factor" => "recovery").increment(1);
    session::lock(&signed.session).fresh_recovery = Some(codes);
    redirect("/enroll/recovery/codes")
}

/// `GET /enroll/recovery/codes`: the new codes, once.
pub async fn codes(State(portal): State<Arc<Portal>>, signed: Signed) -> Response {
    let (_, csrf) = signed.who();
    let list = {
        let s = session::lock(&signed.session);
        let Some(codes) = &s.fresh_recovery else {
            drop(s);
            return redirect("/enroll/recovery");
        };
        codes
            .iter()
            .map(|c| format!("<li>{}</li>", esc(c.expose())))
            .collect::<String>()
    };
    let body = format!(
        "<ul class=\"codes\">{list}</ul>\
         <p>Each code works once, in place of the 6-digit code. Any earlier codes no longer work.</p>\
         <div class=\"actions\">{}<a class=\"button secondary\" href=\"/enroll\">I have saved them</a></div>",
        button("/enroll/recovery/download", &csrf, "Download as text", ""),
    );
    Page {
        signed_in_csrf: Some(&csrf),
        ..portal.page(
            "Your new recovery codes",
            "recovery-codes",
            "Download or write down these codes now: they are shown only on this page.",
            body,
        )
    }
    .ok()
}

/// `POST /enroll/recovery/download`: the codes on screen as a text file.
pub async fn download(
    State(portal): State<Arc<Portal>>,
    signed: Signed,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return portal.csrf_refused();
    }
    let (user, _) = signed.who();
    let text = {
        let s = session::lock(&signed.session);
        let Some(codes) = &s.fresh_recovery else {
            drop(s);
            return portal.problem(
                StatusCode::GONE,
                "These codes are no longer shown",
                "Recovery codes are shown once. If you did not save them, create a new set.",
            );
        };
        let mut text = format!(
            "{} recovery codes for {user}\r\nEach code works once, in place of the 6-digit code.\r\n\r\n",
            portal.config.title
        );
        for code in codes {
            text.push_str(code.expose());
            text.push_str("\r\n");
        }
        text
    };
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"recovery-codes.txt\"",
            ),
        ],
        text,
    )
        .into_response()
}
