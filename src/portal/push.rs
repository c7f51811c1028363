//! Push approval: the portal creates a private ntfy topic, shows it as a QR
//! code to subscribe to in the ntfy app, and sends a real test push through
//! the configured [`PushSender`]. Only an approved test stores the topic.
//! The test is parked in the out-of-band pending table like a login
//! (`pipeline::out_of_band`), so it is answered by the same signed
//! Approve/Deny tokens; the page waits with a plain meta refresh, no script.
//!
//! [`PushSender`]: crate::factor::oob::PushSender

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use tokio::sync::watch;
use tracing::{info, warn};

use super::home::unavailable;
use super::html::{Page, button, esc, qr_svg};
use super::session::{self, PendingPush, PushPurpose, PushWait, SessionRef, Stage};
use super::{AnySession, ClientAddr, CsrfForm, Portal, Signed, redirect, unix_now};
use crate::factor::oob::pending::{JoinKey, Park};
use crate::factor::oob::{Answer, Channel, LoginContext, PushTarget};
use crate::secret::Secret;
use crate::store::DeviceKind;

/// The label of a push device enrolled here (the CLI's default too).
const LABEL: &str = "phone";

fn no_push(portal: &Portal) -> Response {
    portal.problem(
        StatusCode::NOT_FOUND,
        "Push approval is not available",
        "This server does not send push notifications. Use the authenticator app instead, or ask your IT team.",
    )
}

fn push_available(portal: &Portal) -> bool {
    portal.oob().is_some_and(|o| o.push.is_some())
}

/// The user's enrolled push target, opened.
pub(super) async fn stored_target(portal: &Portal, user: &str) -> Option<Secret<String>> {
    let devices = portal.store.out_of_band(user).await.ok()?;
    let device = devices
        .devices
        .iter()
        .find(|d| d.kind == DeviceKind::Push)?;
    let plain = portal
        .key
        .open(user.as_bytes(), &device.sealed_target)
        .ok()?;
    String::from_utf8(plain.to_vec()).ok().map(Secret::new)
}

/// Parks a transaction, sends the push for it and leaves a watcher in the
/// session. Errors are pages that say what to do.
pub(super) async fn start_push(
    portal: &Portal,
    session: &SessionRef,
    user: &str,
    ip: Option<IpAddr>,
    purpose: PushPurpose,
    target: Secret<String>,
) -> Result<(), Response> {
    let oob = portal.oob();
    let Some((oob, sender)) = oob
        .as_deref()
        .and_then(|oob| oob.push.as_ref().map(|push| (oob, push)))
    else {
        return Err(no_push(portal));
    };
    let join = JoinKey {
        client: Arc::from("portal"),
        station: None,
    };
    let Park::New(parked) = oob.pending.park(user, join, Channel::Push) else {
        return Err(portal.problem(
            StatusCode::CONFLICT,
            "An approval is already waiting",
            "Another request is waiting on your phone. Answer it, or wait a minute, then try again.",
        ));
    };
    if !oob.limit.try_send(user, Instant::now()) {
        metrics::counter!("rampart_oob_rate_limited_total", "channel" => "push").increment(1);
        return Err(portal.problem(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many pushes sent",
            &format!(
                "Wait {} minutes, then try again.",
                oob.config.rate_window_secs.div_ceil(60)
            ),
        ));
    }
    let context = LoginContext {
        user: user.to_string(),
        client: "enrollment portal".into(),
        client_address: ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        nas_identifier: None,
        calling_station_id: ip.map(|ip| ip.to_string()),
        time: unix_now(),
    };
    let mut approval = oob.approval(&parked.txn(), context);
    let title = &portal.config.title;
    approval.message = match purpose {
        PushPurpose::Enroll => {
            format!("Test from the {title} portal: tap Approve to finish setting up push.")
        }
        PushPurpose::Verify => {
            format!("Test from the {title} portal: tap Approve to check push works.")
        }
        PushPurpose::SignIn => format!(
            "Sign-in to the {title} enrollment portal as {user}. Approve only if this is you."
        ),
    };
    if let Err(error) = sender.send(&PushTarget { url: target }, &approval).await {
        warn!(%error, user, "portal: push delivery failed");
        metrics::counter!("rampart_oob_delivery_failures_total", "channel" => "push", "reason" => error.reason())
            .increment(1);
        return Err(portal.problem(
            StatusCode::BAD_GATEWAY,
            "The push could not be sent",
            "Try again in a minute. If it keeps failing, use the authenticator app.",
        ));
    }
    let (answer_tx, answer_rx) = watch::channel(None);
    let timeout = oob.config.timeout();
    tokio::spawn(async move {
        let answer = parked.wait(timeout).await;
        answer_tx.send_replace(Some(answer));
    });
    session::lock(session).push_wait = Some(PushWait {
        purpose,
        answer: answer_rx,
    });
    info!(user, "portal: test push sent");
    Ok(())
}

/// `GET /enroll/push`: a new private topic as a QR code.
pub async fn show(State(portal): State<Arc<Portal>>, signed: Signed) -> Response {
    let Some(server) = portal
        .config
        .ntfy_server
        .as_deref()
        .filter(|_| push_available(&portal))
    else {
        return no_push(&portal);
    };
    let (user, csrf) = signed.who();
    let topic = {
        let mut s = session::lock(&signed.session);
        if s.pending_push.is_none() {
            match crate::cli::devices::generate_topic(server) {
                Ok(topic) => {
                    s.pending_push = Some(PendingPush {
                        topic: Secret::new(topic),
                        label: LABEL.into(),
                    })
                }
                Err(_) => {
                    drop(s);
                    return no_push(&portal);
                }
            }
        }
        s.pending_push
            .as_ref()
            .map(|p| p.topic.clone())
            .expect("set above")
    };
    let has_push = match portal.store.out_of_band(&user).await {
        Ok(devices) => devices.devices.iter().any(|d| d.kind == DeviceKind::Push),
        Err(error) => return unavailable(&portal, error),
    };
    let mut body = String::new();
    if has_push {
        body.push_str(&format!(
            "<p>Push approval is active. Setting it up again replaces the old subscription.</p>{}",
            button(
                "/enroll/push/remove",
                &csrf,
                "Turn push approval off",
                "danger"
            )
        ));
    }
    body.push_str(&format!(
        "<ol><li>Install the <strong>ntfy</strong> app on your phone and allow its notifications.</li>\
         <li>In ntfy, tap <strong>+</strong>, then scan this code (or paste the address below) to subscribe.</li>\
         <li>Press <strong>Send a test push</strong> and tap Approve on your phone.</li></ol>\
         {}<p class=\"key\">{}</p>\
         <p><small>Keep this address private: anyone subscribed to it could approve your sign-ins.</small></p>\
         {}",
        qr_svg(topic.expose(), "QR code of your private push topic"),
        esc(topic.expose()),
        button("/enroll/push/test", &csrf, "Send a test push", ""),
    ));
    Page {
        signed_in_csrf: Some(&csrf),
        flash: signed.flash(),
        ..portal.page(
            "Set up push approval",
            "push",
            "Subscribe to your private topic in the ntfy app, then send a test push.",
            body,
        )
    }
    .ok()
}

/// `POST /enroll/push/test`: the test push for the topic being enrolled.
pub async fn send_test(
    State(portal): State<Arc<Portal>>,
    ClientAddr(ip): ClientAddr,
    signed: Signed,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return portal.csrf_refused();
    }
    let (user, _) = signed.who();
    let Some(topic) = session::lock(&signed.session)
        .pending_push
        .as_ref()
        .map(|p| p.topic.clone())
    else {
        return redirect("/enroll/push");
    };
    match start_push(
        &portal,
        &signed.session,
        &user,
        ip,
        PushPurpose::Enroll,
        topic,
    )
    .await
    {
        Ok(()) => redirect("/enroll/push/wait"),
        Err(response) => response,
    }
}

/// `POST /enroll/confirm/push`: confirms a sign-in with the enrolled push.
pub async fn confirm_by_push(
    State(portal): State<Arc<Portal>>,
    ClientAddr(ip): ClientAddr,
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
    let Some(target) = stored_target(&portal, &user).await else {
        return redirect("/enroll/confirm");
    };
    match start_push(
        &portal,
        &current.session,
        &user,
        ip,
        PushPurpose::SignIn,
        target,
    )
    .await
    {
        Ok(()) => redirect("/enroll/push/wait"),
        Err(response) => response,
    }
}

/// `GET /enroll/push/wait`: reloads itself until the phone answers, then
/// finishes what the push was for.
pub async fn wait(State(portal): State<Arc<Portal>>, current: AnySession) -> Response {
    let (user, csrf, stage, state) = {
        let s = session::lock(&current.session);
        let state = s
            .push_wait
            .as_ref()
            .map(|w| (w.purpose, *w.answer.borrow()));
        (s.user.clone(), s.csrf.clone(), s.stage, state)
    };
    let Some((purpose, answer)) = state else {
        return redirect("/enroll");
    };
    if purpose != PushPurpose::SignIn && stage != Stage::Verified {
        return redirect("/enroll/confirm");
    }
    let Some(answer) = answer else {
        let body = "<p>Open the notification on your phone and tap <strong>Approve</strong>. This page updates by itself.</p>\
                    <p><a class=\"button secondary\" href=\"/enroll/push/wait\">Check now</a></p>"
            .to_string();
        return Page {
            refresh: Some(3),
            signed_in_csrf: Some(&csrf),
            ..portal.page(
                "Waiting for your phone",
                "push-wait",
                "We sent a push to your phone. Approve it there.",
                body,
            )
        }
        .ok();
    };
    session::lock(&current.session).push_wait = None;
    let now = unix_now() as i64;
    match (answer, purpose) {
        (Answer::Approved, PushPurpose::Enroll) => {
            let pending = session::lock(&current.session).pending_push.take();
            let Some(pending) = pending else {
                return redirect("/enroll/push");
            };
            let sealed = portal
                .key
                .seal(user.as_bytes(), pending.topic.expose().as_bytes());
            if let Err(error) = portal
                .store
                .add_device(&user, DeviceKind::Push, &pending.label, &sealed, now)
                .await
            {
                return unavailable(&portal, error);
            }
            info!(user, "portal: push enrolled");
            metrics::counter!("rampart_portal_enrollments_total", "factor" => "push").increment(1);
            finish(
                &current,
                "Push approval is active. Type push after your password (password,push) or let it come by itself.",
            )
        }
        (Answer::Approved, PushPurpose::Verify) => {
            finish(&current, "It works: you approved the test push.")
        }
        (Answer::Approved, PushPurpose::SignIn) => {
            {
                let mut s = session::lock(&current.session);
                s.stage = Stage::Verified;
                s.wrong_codes = 0;
            }
            info!(user, "portal: second factor confirmed by push");
            finish(&current, "Confirmed.")
        }
        (Answer::Denied | Answer::Fraud | Answer::WrongPin, PushPurpose::SignIn) => {
            portal.sessions.remove(&current.id);
            if answer == Answer::Fraud {
                let until = now + 15 * 60;
                if let Err(error) = portal.store.lock_user(&user, until).await {
                    warn!(%error, user, "portal: cannot lock user after a fraud report");
                }
                warn!(target: "rampart::audit", user, channel = "push", "FRAUD REPORTED on a portal sign-in: the password is likely known to someone else. Account locked.");
            }
            portal.problem(
                StatusCode::FORBIDDEN,
                "Sign-in denied on your phone",
                "You have been signed out. If this was not you, tell your IT team now.",
            )
        }
        (Answer::Denied | Answer::Fraud | Answer::WrongPin, _) => retry(
            &portal,
            &csrf,
            purpose,
            "You tapped Deny, so nothing was changed. Send the test again and tap Approve.",
        ),
        (Answer::TimedOut | Answer::NotAnswered, PushPurpose::SignIn) => {
            session::lock(&current.session).flash =
                Some("No answer from your phone in time. Try again.".into());
            redirect("/enroll/confirm")
        }
        (Answer::TimedOut | Answer::NotAnswered, _) => retry(
            &portal,
            &csrf,
            purpose,
            "No answer in time. Check that ntfy is subscribed to the topic and may show notifications, then send the test again.",
        ),
    }
}

fn finish(current: &AnySession, message: &str) -> Response {
    session::lock(&current.session).flash = Some(message.into());
    redirect("/enroll")
}

fn retry(portal: &Portal, csrf: &str, purpose: PushPurpose, next: &str) -> Response {
    let action = if purpose == PushPurpose::Enroll {
        "/enroll/push/test"
    } else {
        "/enroll/verify/push"
    };
    let body = format!(
        "{}<p><a class=\"button secondary\" href=\"/enroll\">Back</a></p>",
        button(action, csrf, "Send the test again", "")
    );
    Page {
        signed_in_csrf: Some(csrf),
        ..portal.page("The test push was not approved", "push-failed", next, body)
    }
    .with_status(StatusCode::OK)
}

/// `POST /enroll/push/remove`: removes every push device.
pub async fn remove(
    State(portal): State<Arc<Portal>>,
    signed: Signed,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return portal.csrf_refused();
    }
    let (user, _) = signed.who();
    let devices = match portal.store.out_of_band(&user).await {
        Ok(d) => d,
        Err(error) => return unavailable(&portal, error),
    };
    for device in devices
        .devices
        .iter()
        .filter(|d| d.kind == DeviceKind::Push)
    {
        if let Err(error) = portal
            .store
            .remove_device(&user, DeviceKind::Push, &device.label)
            .await
        {
            return unavailable(&portal, error);
        }
    }
    info!(user, "portal: push removed");
    signed.set_flash("Push approval is off.");
    redirect("/enroll")
}
