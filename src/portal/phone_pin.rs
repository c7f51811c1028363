//! The call PIN on the phone page (`[phone] pin` = `optional` or
//! `required`): set or change it (typed twice), and remove it when it is
//! optional. Stored only as its keyed hash ([`crate::factor::phone::pin`]);
//! never logged, never shown back.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tracing::info;

use super::home::unavailable;
use super::html::csrf_field;
use super::{Portal, Signed, redirect, unix_now};
use crate::factor::phone::{PinMode, pin};
use crate::secret::Secret;

/// The PIN mode, if calls are configured and can ask for a PIN.
pub(super) fn mode(portal: &Portal) -> Option<PinMode> {
    let oob = portal.oob()?;
    (oob.caller.is_some() && oob.phone_pin.enabled()).then_some(oob.phone_pin)
}

/// The "Call PIN" part of the phone page.
pub(super) fn section(mode: PinMode, has_pin: bool, csrf: &str) -> String {
    let state = match (has_pin, mode) {
        (true, _) => "A call PIN is set: verification calls ask you to type it, then press #.",
        (false, PinMode::Required) => {
            "No call PIN yet. Sign-in by phone call needs one: set it here."
        }
        (false, _) => {
            "No call PIN. Verification calls ask you to press # only; with a PIN, someone else who answers your phone cannot approve."
        }
    };
    let mut html = format!(
        "<h2 id=\"pin\">Call PIN</h2><p>{state}</p>\
         <form method=\"post\" action=\"/enroll/phone/pin\">{csrf}\
         <label for=\"pin\">{label} (4 to 8 digits)</label>\
         <input type=\"password\" id=\"pin\" name=\"pin\" inputmode=\"numeric\" pattern=\"[0-9]{{4,8}}\" minlength=\"4\" maxlength=\"8\" autocomplete=\"new-password\" required>\
         <label for=\"pin2\">The same PIN again</label>\
         <input type=\"password\" id=\"pin2\" name=\"pin2\" inputmode=\"numeric\" pattern=\"[0-9]{{4,8}}\" minlength=\"4\" maxlength=\"8\" autocomplete=\"new-password\" required>\
         <button>{button}</button></form>",
        csrf = csrf_field(csrf),
        label = if has_pin { "New PIN" } else { "PIN" },
        button = if has_pin {
            "Change the PIN"
        } else {
            "Set a call PIN"
        },
    );
    if has_pin && mode == PinMode::Optional {
        html.push_str(&format!(
            "<form method=\"post\" action=\"/enroll/phone/pin/remove\">{}<button class=\"danger\">Remove the PIN</button></form>",
            csrf_field(csrf)
        ));
    }
    html
}

fn not_available(portal: &Portal) -> Response {
    portal.problem(
        StatusCode::NOT_FOUND,
        "Call PINs are not used here",
        "This server's verification calls do not ask for a PIN.",
    )
}

/// The set-a-PIN form (no `Debug`: it holds the PIN).
#[derive(Deserialize)]
pub struct PinForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    pin: String,
    #[serde(default)]
    pin2: String,
}

/// `POST /enroll/phone/pin`: sets or changes the call PIN.
pub async fn set(
    State(portal): State<Arc<Portal>>,
    signed: Signed,
    Form(form): Form<PinForm>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return portal.csrf_refused();
    }
    if mode(&portal).is_none() {
        return not_available(&portal);
    }
    let pin_typed = Secret::new(form.pin);
    let again = Secret::new(form.pin2);
    let typed = pin_typed.expose().trim();
    let problem = match pin::check_new(typed) {
        Err(error) => Some(format!("That PIN cannot be used: {error}.")),
        Ok(()) if !bool::from(typed.as_bytes().ct_eq(again.expose().trim().as_bytes())) => {
            Some("The two PINs differ. Type the same PIN twice.".to_string())
        }
        Ok(()) => None,
    };
    if let Some(problem) = problem {
        return super::phone::render(
            &portal,
            &signed,
            Some(&problem),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let (user, _) = signed.who();
    let hash = pin::hash(&portal.key, &user, typed);
    if let Err(error) = portal
        .store
        .set_phone_pin(&user, &hash, unix_now() as i64)
        .await
    {
        return unavailable(&portal, error);
    }
    info!(user, "portal: call PIN set");
    metrics::counter!("rampart_portal_enrollments_total", "factor" => "phone_pin").increment(1);
    signed.set_flash(
        "Your call PIN is set. Verification calls now ask for it: type it, then press #.",
    );
    redirect("/enroll/phone")
}

/// `POST /enroll/phone/pin/remove`: only while the PIN is optional.
pub async fn remove(
    State(portal): State<Arc<Portal>>,
    signed: Signed,
    Form(form): Form<super::CsrfForm>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return portal.csrf_refused();
    }
    match mode(&portal) {
        None => return not_available(&portal),
        Some(PinMode::Required) => {
            return super::phone::render(
                &portal,
                &signed,
                Some("A call PIN is required here: change it instead of removing it."),
                StatusCode::CONFLICT,
            )
            .await;
        }
        Some(_) => {}
    }
    let (user, _) = signed.who();
    match portal.store.clear_phone_pin(&user).await {
        Ok(true) => {
            info!(user, "portal: call PIN removed");
            signed.set_flash("The call PIN was removed. Calls ask you to press # only.");
        }
        Ok(false) => signed.set_flash("There was no call PIN to remove."),
        Err(error) => return unavailable(&portal, error),
    }
    redirect("/enroll/phone")
}
