//! App passwords for Outlook and other programs that cannot ask for a
//! second factor: named, random ([`generate`]), shown once, stored only as
//! keyed hashes ([`hash`]), listed with when they were created and last
//! used, and revocable one by one. RADIUS accepts them only from clients
//! with `allow_app_passwords = true`.
//!
//! [`generate`]: crate::factor::app_password::generate
//! [`hash`]: crate::factor::app_password::hash

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use tracing::info;

use super::home::unavailable;
use super::html::{Page, csrf_field, esc};
use super::{Portal, Signed, redirect, unix_now};
use crate::cli::format_time;
use crate::factor::app_password::{generate, hash};
use crate::store::StoreError;

/// At most this many per user: each is a password that skips the second factor.
const MAX_PER_USER: usize = 20;

/// Whether a name is acceptable: 1–40 letters, digits, spaces, `-`, `_`, `.`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 40
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.'))
}

/// `GET /enroll/app-passwords`.
pub async fn list(State(portal): State<Arc<Portal>>, signed: Signed) -> Response {
    render(&portal, &signed, None, StatusCode::OK).await
}

async fn render(
    portal: &Portal,
    signed: &Signed,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let (user, csrf) = signed.who();
    let passwords = match portal.store.app_passwords(&user).await {
        Ok(p) => p,
        Err(error) => return unavailable(portal, error),
    };
    let mut body = String::new();
    if let Some(error) = error {
        body.push_str(&format!(
            "<p class=\"error\" role=\"alert\">{}</p>",
            esc(error)
        ));
    }
    if passwords.is_empty() {
        body.push_str("<p>You have no app passwords.</p>");
    } else {
        body.push_str("<table><tr><th>Name</th><th>Created</th><th>Last used</th><th></th></tr>");
        for p in &passwords {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><form method=\"post\" action=\"/enroll/app-passwords/revoke\">{}<input type=\"hidden\" name=\"name\" value=\"{}\"><button class=\"danger\">Revoke</button></form></td></tr>",
                esc(&p.label),
                esc(&format_time(Some(p.created_at))),
                esc(&p.last_used.map_or_else(|| "never".to_string(), |t| format_time(Some(t)))),
                csrf_field(&csrf),
                esc(&p.label),
            ));
        }
        body.push_str("</table>");
    }
    body.push_str(&format!(
        "<h2>New app password</h2><form method=\"post\" action=\"/enroll/app-passwords\">{}\
         <label for=\"name\">What is it for?</label>\
         <input type=\"text\" id=\"name\" name=\"name\" placeholder=\"Outlook on my laptop\" maxlength=\"40\" required>\
         <button>Create</button></form>",
        csrf_field(&csrf)
    ));
    Page {
        signed_in_csrf: Some(&csrf),
        flash: signed.flash(),
        ..portal.page(
            "App passwords",
            "app-passwords",
            "Create one app password per program that cannot ask for a code (such as Outlook), and revoke it when you stop using that program.",
            body,
        )
    }
    .with_status(status)
}

/// The create and revoke forms.
#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

/// `POST /enroll/app-passwords`: creates one and shows it, once, in the answer.
pub async fn create(
    State(portal): State<Arc<Portal>>,
    signed: Signed,
    Form(form): Form<NameForm>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return portal.csrf_refused();
    }
    let name = form.name.trim();
    if !valid_name(name) {
        return render(
            &portal,
            &signed,
            Some("Give it a name of up to 40 letters, digits and spaces, e.g. “Outlook on my laptop”."),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let (user, csrf) = signed.who();
    match portal.store.app_passwords(&user).await {
        Ok(existing) if existing.len() >= MAX_PER_USER => {
            return render(
                &portal,
                &signed,
                Some("You have too many app passwords. Revoke the ones you no longer use first."),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
        Ok(_) => {}
        Err(error) => return unavailable(&portal, error),
    }
    let password = generate();
    let hashed = hash(&portal.key, &user, password.expose());
    match portal
        .store
        .add_app_password(&user, name, &hashed, unix_now() as i64)
        .await
    {
        Ok(()) => {}
        Err(StoreError::AlreadyExists(_)) => {
            return render(
                &portal,
                &signed,
                Some("You already have an app password with that name. Choose another name, or revoke the old one first."),
                StatusCode::CONFLICT,
            )
            .await;
        }
        Err(error) => return unavailable(&portal, error),
    }
    info!(user, "portal: app password created");
    metrics::counter!("rampart_portal_enrollments_total", "factor" => "app_password").increment(1);
    let body = format!(
        "<p>App password for <strong>{}</strong>:</p><p class=\"key\">{}</p>\
         <p>Type it in that program instead of your normal password. It does not need a code. You will not see it again.</p>\
         <p><a class=\"button\" href=\"/enroll/app-passwords\">Done</a></p>",
        esc(name),
        esc(password.expose()),
    );
    Page {
        signed_in_csrf: Some(&csrf),
        ..portal.page(
            "Your new app password",
            "app-password-new",
            "Copy this password into the program now: it is shown only once.",
            body,
        )
    }
    .ok()
}

/// `POST /enroll/app-passwords/revoke`.
pub async fn revoke(
    State(portal): State<Arc<Portal>>,
    signed: Signed,
    Form(form): Form<NameForm>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return portal.csrf_refused();
    }
    let (user, _) = signed.who();
    match portal
        .store
        .revoke_app_password(&user, Some(&form.name))
        .await
    {
        Ok(0) => signed.set_flash("That app password was already revoked."),
        Ok(_) => {
            info!(user, "portal: app password revoked");
            signed.set_flash(format!(
                "“{}” is revoked: that program will ask for a password again.",
                form.name
            ));
        }
        Err(error) => return unavailable(&portal, error),
    }
    redirect("/enroll/app-passwords")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(valid_name("Outlook on my laptop"));
        assert!(valid_name("thunderbird-2"));
        assert!(!valid_name(""));
        assert!(!valid_name("<script>"));
        assert!(!valid_name(&"x".repeat(41)));
    }
}
