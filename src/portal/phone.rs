//! Phone numbers: a primary and a backup number (E.164), each verified by
//! a code sent by SMS through the configured [`SmsSender`] before it is
//! stored. The same code round trip confirms a sign-in and runs "verify
//! now". The number is prefilled from the directory when it has one. With
//! `[phone] pin` on, the page also sets the call PIN ([`super::phone_pin`]),
//! and is shown for that alone when the server sends no text messages.
//!
//! [`SmsSender`]: crate::factor::oob::SmsSender

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use tracing::{info, warn};

use super::home::{enrolled, unavailable};
use super::html::{Page, csrf_field, esc};
use super::session::{self, PendingPhone, PhonePurpose, SessionRef, Stage};
use super::{
    AnySession, CodeForm, CsrfForm, Portal, Signed, clean_code, ending, redirect, unix_now,
};
use crate::factor::oob::e164;
use crate::secret::Secret;
use crate::store::DeviceKind;

/// Labels a number can have.
const LABELS: [&str; 2] = ["primary", "backup"];
/// Wrong codes allowed per code sent.
const MAX_WRONG: u32 = 5;
/// Key-hash domain of portal phone codes (distinct from login SMS codes).
const HASH_DOMAIN: &str = "portal-phone";

fn no_sms(portal: &Portal) -> Response {
    portal.problem(
        StatusCode::NOT_FOUND,
        "Text messages are not available",
        "This server does not send text messages. Use the authenticator app instead, or ask your IT team.",
    )
}

/// Sends a fresh 6-digit code to `number` and remembers it (hashed) in the
/// session for `purpose`.
pub(super) async fn send_code(
    portal: &Portal,
    session: &SessionRef,
    user: &str,
    purpose: PhonePurpose,
    label: &str,
    number: &str,
) -> Result<(), Response> {
    let oob = portal.oob();
    let Some((oob, sms)) = oob
        .as_deref()
        .and_then(|oob| oob.sms.as_ref().map(|sms| (oob, sms)))
    else {
        return Err(no_sms(portal));
    };
    if !oob.limit.try_send(user, Instant::now()) {
        metrics::counter!("rampart_oob_rate_limited_total", "channel" => "sms").increment(1);
        return Err(portal.problem(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many codes sent",
            &format!(
                "Wait {} minutes, then ask for a new code.",
                oob.config.rate_window_secs.div_ceil(60)
            ),
        ));
    }
    let code = Secret::new(format!("{:06}", rand::random_range(0..1_000_000u32)));
    let minutes = oob.config.sms_code_secs.div_ceil(60);
    let text = Secret::new(format!(
        "Your {} verification code is {}. It expires in {minutes} minutes. If you did not ask for it, tell your IT team.",
        portal.config.title,
        code.expose()
    ));
    if let Err(error) = sms.send(number, &text).await {
        warn!(%error, user, label, "portal: SMS delivery failed");
        metrics::counter!("rampart_oob_delivery_failures_total", "channel" => "sms", "reason" => error.reason())
            .increment(1);
        return Err(portal.problem(
            StatusCode::BAD_GATEWAY,
            "The text message could not be sent",
            "Check the number and try again in a minute. If it keeps failing, use the authenticator app.",
        ));
    }
    session::lock(session).pending_phone = Some(PendingPhone {
        purpose,
        label: label.to_string(),
        number: number.to_string(),
        code_hash: portal.key.code_hash(HASH_DOMAIN, user, code.expose()),
        expires: Instant::now() + Duration::from_secs(oob.config.sms_code_secs),
        wrong: 0,
    });
    info!(user, label, "portal: phone code sent");
    Ok(())
}

/// `GET /enroll/phone`: the numbers and the form to add one.
pub async fn show(State(portal): State<Arc<Portal>>, signed: Signed) -> Response {
    render(&portal, &signed, None, StatusCode::OK).await
}

/// The phone page, with `error` above the forms.
pub(super) async fn render(
    portal: &Portal,
    signed: &Signed,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let sms = portal.oob().is_some_and(|o| o.sms.is_some());
    let pin_mode = super::phone_pin::mode(portal);
    if !sms && pin_mode.is_none() {
        return no_sms(portal);
    }
    let (user, csrf) = signed.who();
    let enrolled = match enrolled(portal, &user).await {
        Ok(e) => e,
        Err(error) => return unavailable(portal, error),
    };
    let has_pin = match pin_mode {
        Some(_) => match portal.store.phone_pin_hash(&user).await {
            Ok(hash) => hash.is_some(),
            Err(error) => return unavailable(portal, error),
        },
        None => false,
    };
    let mut body = String::new();
    if let Some(error) = error {
        body.push_str(&format!(
            "<p class=\"error\" role=\"alert\">{}</p>",
            esc(error)
        ));
    }
    if !enrolled.phones.is_empty() {
        body.push_str("<h2>Your numbers</h2><table>");
        for (label, number) in &enrolled.phones {
            body.push_str(&format!(
                "<tr><td>{}</td><td>ending in {}</td><td><form method=\"post\" action=\"/enroll/phone/remove\">{}<input type=\"hidden\" name=\"label\" value=\"{}\"><button class=\"danger\">Remove</button></form></td></tr>",
                esc(label),
                esc(ending(number)),
                csrf_field(&csrf),
                esc(label)
            ));
        }
        body.push_str("</table>");
    }
    let has_primary = enrolled.phones.iter().any(|(l, _)| l == "primary");
    let prefill = if has_primary {
        String::new()
    } else {
        session::lock(&signed.session)
            .phone_hint
            .clone()
            .unwrap_or_default()
    };
    let checked = |label: &str| {
        if (label == "primary") != has_primary {
            " checked"
        } else {
            ""
        }
    };
    let add_form = format!(
        "<h2>Add a number</h2><form method=\"post\" action=\"/enroll/phone\">{}\
         <label for=\"number\">Mobile number, international format</label>\
         <input type=\"tel\" id=\"number\" name=\"number\" value=\"{}\" placeholder=\"+44 7700 900123\" autocomplete=\"tel\" required>\
         <label><input type=\"radio\" name=\"label\" value=\"primary\"{}> Primary number</label>\
         <label><input type=\"radio\" name=\"label\" value=\"backup\"{}> Backup number (used if the primary one cannot be reached)</label>\
         <button>Text me a code</button></form>",
        csrf_field(&csrf),
        esc(&prefill),
        checked("primary"),
        checked("backup"),
    );
    if sms {
        body.push_str(&add_form);
    }
    if let Some(mode) = pin_mode {
        body.push_str(&super::phone_pin::section(mode, has_pin, &csrf));
    }
    let next = if !sms {
        "Set the PIN that verification calls ask for, then press the button."
    } else if prefill.is_empty() {
        "Type your mobile number starting with + and the country code, then press “Text me a code”."
    } else {
        "Check the number we found in the directory, then press “Text me a code”."
    };
    Page {
        signed_in_csrf: Some(&csrf),
        flash: signed.flash(),
        ..portal.page("Your phone", "phone", next, body)
    }
    .with_status(status)
}

/// The add-a-number form.
#[derive(Deserialize)]
pub struct NumberForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    number: String,
    #[serde(default)]
    label: String,
}

/// `POST /enroll/phone`: validates the number and texts it a code.
pub async fn send(
    State(portal): State<Arc<Portal>>,
    signed: Signed,
    Form(form): Form<NumberForm>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return portal.csrf_refused();
    }
    let Some(number) = e164(&form.number) else {
        return render(
            &portal,
            &signed,
            Some("That is not an international number. Start with + and the country code, e.g. +44 7700 900123."),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let label = if LABELS.contains(&form.label.as_str()) {
        form.label.as_str()
    } else {
        "primary"
    };
    let (user, _) = signed.who();
    if let Err(response) = send_code(
        &portal,
        &signed.session,
        &user,
        PhonePurpose::Enroll,
        label,
        &number,
    )
    .await
    {
        return response;
    }
    redirect("/enroll/phone/code")
}

/// `POST /enroll/confirm/sms`: texts a code to the primary number to
/// confirm a sign-in.
pub async fn confirm_by_sms(
    State(portal): State<Arc<Portal>>,
    current: AnySession,
    Form(form): Form<CsrfForm>,
) -> Response {
    let user = {
        let s = session::lock(&current.session);
        if !super::csrf::matches(&s.csrf, &form.csrf) {
            drop(s);
            return portal.csrf_refused();
        }
        s.user.clone()
    };
    let enrolled = match enrolled(&portal, &user).await {
        Ok(e) => e,
        Err(error) => return unavailable(&portal, error),
    };
    let Some((label, number)) = super::signin::confirm_number(&portal, &enrolled, &current) else {
        return redirect("/enroll/confirm");
    };
    if let Err(response) = send_code(
        &portal,
        &current.session,
        &user,
        PhonePurpose::SignIn,
        &label,
        &number,
    )
    .await
    {
        return response;
    }
    redirect("/enroll/phone/code")
}

/// `GET /enroll/phone/code`: where to type the code.
pub async fn code_form(State(portal): State<Arc<Portal>>, current: AnySession) -> Response {
    code_page(&portal, &current, None)
}

fn code_page(portal: &Portal, current: &AnySession, error: Option<&str>) -> Response {
    let (csrf, number) = {
        let s = session::lock(&current.session);
        let Some(pending) = &s.pending_phone else {
            drop(s);
            return redirect("/enroll");
        };
        (s.csrf.clone(), pending.number.clone())
    };
    let mut body = String::new();
    if let Some(error) = error {
        body.push_str(&format!(
            "<p class=\"error\" role=\"alert\">{}</p>",
            esc(error)
        ));
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"/enroll/phone/code\">{}\
         <label for=\"code\">Code from the text message</label>\
         <input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" class=\"code\" required autofocus>\
         <button>Check the code</button></form>\
         <p><small>No message after a minute? Go back and check the number.</small></p>",
        csrf_field(&csrf)
    ));
    let next = format!(
        "We sent a 6-digit code to your phone ending in {}. Type it below.",
        ending(&number)
    );
    Page {
        signed_in_csrf: Some(&csrf),
        ..portal.page("Type the code we texted you", "phone-code", &next, body)
    }
    .with_status(if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    })
}

/// `POST /enroll/phone/code`: the code proves the number; what happens then
/// depends on why it was sent.
pub async fn check_code(
    State(portal): State<Arc<Portal>>,
    current: AnySession,
    Form(form): Form<CodeForm>,
) -> Response {
    let (user, csrf, stage) = {
        let s = session::lock(&current.session);
        (s.user.clone(), s.csrf.clone(), s.stage)
    };
    if !super::csrf::matches(&csrf, &form.csrf) {
        return portal.csrf_refused();
    }
    let typed = clean_code(&form.code);
    let hash = portal.key.code_hash(HASH_DOMAIN, &user, &typed);
    let checked = {
        let mut s = session::lock(&current.session);
        let Some(pending) = s.pending_phone.as_mut() else {
            drop(s);
            return redirect("/enroll");
        };
        if pending.purpose != PhonePurpose::SignIn && stage != Stage::Verified {
            drop(s);
            return redirect("/enroll/confirm");
        }
        if Instant::now() >= pending.expires {
            s.pending_phone = None;
            Err("That code has expired. Ask for a new one.")
        } else if super::csrf::matches(&pending.code_hash, &hash) {
            Ok(s.pending_phone.take().expect("checked above"))
        } else {
            pending.wrong += 1;
            if pending.wrong >= MAX_WRONG {
                s.pending_phone = None;
                Err("Too many wrong codes. Ask for a new code.")
            } else {
                Err("")
            }
        }
    };
    let pending = match checked {
        Ok(pending) => pending,
        Err("") => {
            if pending_sign_in(&current)
                && let Some(response) =
                    super::signin::wrong_code(&portal, &current.id, &current.session)
            {
                return response;
            }
            return code_page(
                &portal,
                &current,
                Some("That code is not right. Type the 6 digits from the latest text message."),
            );
        }
        Err(message) => {
            session::lock(&current.session).flash = Some(message.into());
            return redirect(if stage == Stage::Verified {
                "/enroll/phone"
            } else {
                "/enroll/confirm"
            });
        }
    };
    let message = match pending.purpose {
        PhonePurpose::Enroll => {
            let sealed = portal.key.seal(user.as_bytes(), pending.number.as_bytes());
            if let Err(error) = portal
                .store
                .add_device(
                    &user,
                    DeviceKind::Phone,
                    &pending.label,
                    &sealed,
                    unix_now() as i64,
                )
                .await
            {
                return unavailable(&portal, error);
            }
            info!(user, label = %pending.label, "portal: phone enrolled");
            metrics::counter!("rampart_portal_enrollments_total", "factor" => "phone").increment(1);
            format!(
                "Your {} number ending in {} is verified and active.",
                pending.label,
                ending(&pending.number)
            )
        }
        PhonePurpose::SignIn => {
            let mut s = session::lock(&current.session);
            s.stage = Stage::Verified;
            s.wrong_codes = 0;
            info!(user, "portal: second factor confirmed by SMS");
            "Confirmed.".to_string()
        }
        PhonePurpose::Verify => format!(
            "It works: text messages reach your phone ending in {}.",
            ending(&pending.number)
        ),
    };
    session::lock(&current.session).flash = Some(message);
    redirect("/enroll")
}

fn pending_sign_in(current: &AnySession) -> bool {
    session::lock(&current.session)
        .pending_phone
        .as_ref()
        .is_some_and(|p| p.purpose == PhonePurpose::SignIn)
}

/// The remove form.
#[derive(Deserialize)]
pub struct LabelForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    label: String,
}

/// `POST /enroll/phone/remove`.
pub async fn remove(
    State(portal): State<Arc<Portal>>,
    signed: Signed,
    Form(form): Form<LabelForm>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return portal.csrf_refused();
    }
    let (user, _) = signed.who();
    match portal
        .store
        .remove_device(&user, DeviceKind::Phone, &form.label)
        .await
    {
        Ok(true) => {
            info!(user, label = %form.label, "portal: phone removed");
            signed.set_flash(format!("The {} number was removed.", form.label));
        }
        Ok(false) => signed.set_flash("That number was already removed."),
        Err(error) => return unavailable(&portal, error),
    }
    redirect("/enroll/phone")
}
