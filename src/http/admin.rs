//! The JSON admin API (`/admin/v1/...`), on the HTTP listener, for help desks
//! and scripts: users with their enrollment state and last login, one user in
//! detail, factor resets, unlock, app-password revocation, invitations, the
//! directory users who have not enrolled yet, and the audit log by user and
//! time. Every call needs `Authorization: Bearer <token>` with the token from
//! `[admin] token_file`, compared in constant time; without a token file the
//! API is off (404).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use super::HttpState;
use crate::admin as ops;
pub use crate::admin::AdminConfig;
use crate::auth::PrimaryAuth;
use crate::mail::Mailer;
use crate::seal::SealKey;
use crate::secret::Secret;
use crate::store::{DeviceKind, StoreError};

/// What the admin handlers need.
pub struct Admin {
    /// The bearer token.
    pub token: Secret<String>,
    /// `[admin]`.
    pub config: AdminConfig,
    /// For invitation hashes.
    pub key: Arc<SealKey>,
    /// For the directory listing.
    pub primary: Arc<dyn PrimaryAuth>,
    /// Base of invitation links (`[http] public_url`).
    pub public_url: Option<String>,
    /// `[smtp]`, if configured.
    pub mailer: Option<Arc<Mailer>>,
}

/// Proof that the request carried the right token.
pub struct Authorized;

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

impl FromRequestParts<HttpState> for Authorized {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &HttpState,
    ) -> Result<Self, Self::Rejection> {
        let Some(admin) = &state.admin else {
            return Err(StatusCode::NOT_FOUND.into_response());
        };
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let ok = presented
            .is_some_and(|p| bool::from(p.as_bytes().ct_eq(admin.token.expose().as_bytes())));
        if ok {
            return Ok(Authorized);
        }
        let reason = if presented.is_some() {
            "wrong_token"
        } else {
            "missing_token"
        };
        metrics::counter!("rampart_admin_unauthorized_total", "reason" => reason).increment(1);
        warn!(reason, "admin API: unauthorized request");
        let mut response = error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"rampart-admin\""),
        );
        Err(response)
    }
}

pub(super) fn routes() -> Router<HttpState> {
    Router::new()
        .route("/admin/v1/users", get(list_users))
        .route("/admin/v1/users/{name}", get(show_user).delete(delete_user))
        .route("/admin/v1/users/{name}/unlock", post(unlock))
        .route(
            "/admin/v1/users/{name}/factors/{factor}",
            delete(reset_factor),
        )
        .route(
            "/admin/v1/users/{name}/devices/{kind}/{label}",
            delete(remove_device),
        )
        .route(
            "/admin/v1/users/{name}/app-passwords",
            delete(revoke_app_passwords),
        )
        .route(
            "/admin/v1/users/{name}/app-passwords/{label}",
            delete(revoke_app_password),
        )
        .route("/admin/v1/invitations", post(invite))
        .route("/admin/v1/unenrolled", get(unenrolled))
        .route("/admin/v1/audit", get(audit))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn store_error(failure: StoreError) -> Response {
    match failure {
        StoreError::NoSuchUser(name) => error_for_user(&name),
        other => {
            warn!(error = %other, "admin API: store error");
            error(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
    }
}

fn error_for_user(name: &str) -> Response {
    error(StatusCode::NOT_FOUND, &format!("no user {name:?}"))
}

/// The normalised user name, or `None` when it cannot be one.
fn user_name(raw: &str) -> Option<String> {
    let name = crate::username::normalize(raw);
    (!name.is_empty() && name.len() <= 253 && !name.chars().any(char::is_control)).then_some(name)
}

fn bad_name() -> Response {
    error(StatusCode::BAD_REQUEST, "invalid user name")
}

async fn list_users(_: Authorized, State(state): State<HttpState>) -> Response {
    let now = now();
    let users = match state.store.list_users().await {
        Ok(users) => users,
        Err(e) => return store_error(e),
    };
    let mut out = Vec::with_capacity(users.len());
    for user in &users {
        match ops::summary_json(state.store.as_ref(), user, now).await {
            Ok(value) => out.push(value),
            Err(e) => return store_error(e),
        }
    }
    Json(json!({ "users": out })).into_response()
}

async fn show_user(
    _: Authorized,
    State(state): State<HttpState>,
    Path(name): Path<String>,
) -> Response {
    let Some(name) = user_name(&name) else {
        return bad_name();
    };
    let store = state.store.as_ref();
    let user = match store.user(&name).await {
        Ok(Some(user)) => user,
        Ok(None) => return error_for_user(&name),
        Err(e) => return store_error(e),
    };
    let now = now();
    let result = async {
        let mut value = ops::summary_json(store, &user, now).await?;
        let app_passwords: Vec<Value> = store
            .app_passwords(&name)
            .await?
            .into_iter()
            .map(|p| json!({ "label": p.label, "created_at": p.created_at, "last_used": p.last_used }))
            .collect();
        value["app_passwords"] = json!(app_passwords);
        let recent: Vec<Value> = store
            .audit(Some(&name), 0, i64::MAX, 20)
            .await?
            .iter()
            .map(ops::audit_json)
            .collect();
        value["recent"] = json!(recent);
        Ok::<_, StoreError>(value)
    };
    match result.await {
        Ok(value) => Json(value).into_response(),
        Err(e) => store_error(e),
    }
}

async fn delete_user(
    _: Authorized,
    State(state): State<HttpState>,
    Path(name): Path<String>,
) -> Response {
    let Some(name) = user_name(&name) else {
        return bad_name();
    };
    match state.store.delete_user(&name).await {
        Ok(()) => {
            info!(target: "rampart::audit", user = %name, "admin: user deleted with every factor and app password");
            Json(json!({ "deleted": name })).into_response()
        }
        Err(e) => store_error(e),
    }
}

async fn unlock(
    _: Authorized,
    State(state): State<HttpState>,
    Path(name): Path<String>,
) -> Response {
    let Some(name) = user_name(&name) else {
        return bad_name();
    };
    match state.store.unlock(&name).await {
        Ok(was_locked) => {
            info!(target: "rampart::audit", user = %name, was_locked, "admin: unlock");
            Json(json!({ "user": name, "was_locked": was_locked })).into_response()
        }
        Err(e) => store_error(e),
    }
}

async fn reset_factor(
    _: Authorized,
    State(state): State<HttpState>,
    Path((name, factor)): Path<(String, String)>,
) -> Response {
    let Some(name) = user_name(&name) else {
        return bad_name();
    };
    let result = ops::reset_factor(state.store.as_ref(), &name, &factor).await;
    let removed = match result {
        Ok(n) => n,
        Err(ops::OpError::Store(e)) => return store_error(e),
        Err(ops::OpError::BadRequest(message)) => return error(StatusCode::BAD_REQUEST, message),
        Err(ops::OpError::Directory(_)) => return error(StatusCode::BAD_GATEWAY, "directory"),
    };
    info!(target: "rampart::audit", user = %name, factor = %factor, removed, "admin: factor reset");
    Json(json!({ "user": name, "factor": factor, "removed": removed })).into_response()
}

async fn remove_device(
    _: Authorized,
    State(state): State<HttpState>,
    Path((name, kind, label)): Path<(String, String, String)>,
) -> Response {
    let Some(name) = user_name(&name) else {
        return bad_name();
    };
    let Some(kind) = DeviceKind::parse(&kind) else {
        return error(StatusCode::BAD_REQUEST, "kind must be push or phone");
    };
    match state.store.remove_device(&name, kind, &label).await {
        Ok(true) => {
            info!(target: "rampart::audit", user = %name, kind = kind.as_str(), label = %label, "admin: device removed");
            Json(json!({ "user": name, "removed": 1 })).into_response()
        }
        Ok(false) => error(StatusCode::NOT_FOUND, "no such device"),
        Err(e) => store_error(e),
    }
}

async fn revoke(state: &HttpState, name: &str, label: Option<&str>) -> Response {
    let Some(name) = user_name(name) else {
        return bad_name();
    };
    match state.store.revoke_app_password(&name, label).await {
        Ok(0) if label.is_some() => error(StatusCode::NOT_FOUND, "no such app password"),
        Ok(revoked) => {
            info!(target: "rampart::audit", user = %name, revoked, "admin: app passwords revoked");
            Json(json!({ "user": name, "revoked": revoked })).into_response()
        }
        Err(e) => store_error(e),
    }
}

async fn revoke_app_passwords(
    _: Authorized,
    State(state): State<HttpState>,
    Path(name): Path<String>,
) -> Response {
    revoke(&state, &name, None).await
}

async fn revoke_app_password(
    _: Authorized,
    State(state): State<HttpState>,
    Path((name, label)): Path<(String, String)>,
) -> Response {
    revoke(&state, &name, Some(&label)).await
}

#[derive(Deserialize)]
struct InviteRequest {
    user: String,
    /// Send the link here (needs `[smtp]`).
    email: Option<String>,
    /// Send the link to the user's address in the directory instead.
    #[serde(default)]
    email_from_directory: bool,
    hours: Option<u64>,
}

async fn invite(
    _: Authorized,
    State(state): State<HttpState>,
    Json(request): Json<InviteRequest>,
) -> Response {
    let Some(admin) = &state.admin else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(name) = user_name(&request.user) else {
        return bad_name();
    };
    let Some(base) = &admin.public_url else {
        return error(
            StatusCode::CONFLICT,
            "set [http] public_url: invitation links point at the portal",
        );
    };
    let hours = request
        .hours
        .unwrap_or(admin.config.invitation_hours)
        .clamp(1, 720);
    // The address first: a user the directory has no address for gets no
    // invitation that nobody would receive.
    let to = match (request.email, request.email_from_directory) {
        (Some(_), true) => {
            return error(
                StatusCode::BAD_REQUEST,
                "give email or email_from_directory, not both",
            );
        }
        (email, false) => email,
        (None, true) => match ops::directory_email(admin.primary.as_ref(), &name).await {
            Ok(address) => Some(address),
            Err(ops::OpError::Directory(e)) => {
                warn!(error = %e, user = %name, "admin API: directory lookup failed");
                return error(StatusCode::BAD_GATEWAY, "the directory cannot be asked now");
            }
            Err(ops::OpError::Store(e)) => return store_error(e),
            Err(ops::OpError::BadRequest(message)) => return error(StatusCode::CONFLICT, message),
        },
    };
    let invitation =
        match crate::invite::create(&state.store, &admin.key, &name, hours, base, now()).await {
            Ok(invitation) => invitation,
            Err(e) => return store_error(e),
        };
    let mut emailed = false;
    if let Some(to) = &to {
        let Some(mailer) = &admin.mailer else {
            return error(
                StatusCode::CONFLICT,
                "e-mail needs [smtp]; the invitation was created, send the url yourself",
            );
        };
        if let Err(e) =
            crate::invite::email(mailer, to, &invitation, &admin.config.organisation).await
        {
            warn!(error = %e, user = %name, "invitation e-mail failed");
            return error(
                StatusCode::BAD_GATEWAY,
                &format!("the invitation was created but the e-mail failed: {e}"),
            );
        }
        emailed = true;
    }
    info!(target: "rampart::audit", user = %name, hours, emailed, "admin: invitation created");
    (
        StatusCode::CREATED,
        Json(json!({
            "user": name,
            "url": invitation.url.expose(),
            "expires_at": invitation.expires_at,
            "emailed": emailed,
            "emailed_to": to.filter(|_| emailed),
        })),
    )
        .into_response()
}

async fn unenrolled(_: Authorized, State(state): State<HttpState>) -> Response {
    let Some(admin) = &state.admin else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let group = admin.config.enrollment_group.as_deref();
    match ops::unenrolled(state.store.as_ref(), admin.primary.as_ref(), group).await {
        Ok((source, users)) => {
            Json(json!({ "source": source, "group": group, "users": users })).into_response()
        }
        Err(ops::OpError::Store(e)) => store_error(e),
        Err(ops::OpError::Directory(e)) => {
            warn!(error = %e, "admin API: directory listing failed");
            error(
                StatusCode::BAD_GATEWAY,
                "the directory cannot be listed now",
            )
        }
        Err(ops::OpError::BadRequest(message)) => error(StatusCode::BAD_REQUEST, message),
    }
}

#[derive(Deserialize)]
struct AuditQuery {
    user: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    limit: Option<u32>,
}

async fn audit(
    _: Authorized,
    State(state): State<HttpState>,
    Query(query): Query<AuditQuery>,
) -> Response {
    let user = match query.user.as_deref() {
        Some(raw) => match user_name(raw) {
            Some(name) => Some(name),
            None => return bad_name(),
        },
        None => None,
    };
    let limit = query.limit.unwrap_or(100).clamp(1, 10_000);
    let (since, until) = (query.since.unwrap_or(0), query.until.unwrap_or(i64::MAX));
    match state
        .store
        .audit(user.as_deref(), since, until, limit)
        .await
    {
        Ok(events) => {
            let events: Vec<Value> = events.iter().map(ops::audit_json).collect();
            Json(json!({ "events": events })).into_response()
        }
        Err(e) => store_error(e),
    }
}
