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
use crate::auth::PrimaryAuth;
use crate::mail::Mailer;
use crate::seal::SealKey;
use crate::secret::Secret;
use crate::store::{DeviceKind, Store, StoreError, UserSummary};

/// `[admin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// File with the API's bearer token (e.g. a systemd credential); the API
    /// is off without it. Generate one with `openssl rand -hex 32`.
    pub token_file: Option<String>,
    /// Hours an invitation link stays valid.
    #[serde(default = "default_invitation_hours")]
    pub invitation_hours: u64,
    /// Directory group (DN) whose members should enroll, for the
    /// "not enrolled" list; unset = every directory user.
    pub enrollment_group: Option<String>,
    /// Organisation name used in invitation e-mails.
    #[serde(default = "default_organisation")]
    pub organisation: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            token_file: None,
            invitation_hours: default_invitation_hours(),
            enrollment_group: None,
            organisation: default_organisation(),
        }
    }
}

fn default_invitation_hours() -> u64 {
    72
}
fn default_organisation() -> String {
    "Your IT team".into()
}

impl AdminConfig {
    /// Problems as (key, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if !(1..=24 * 30).contains(&self.invitation_hours) {
            problems.push((
                "invitation_hours".into(),
                "must be between 1 and 720".into(),
            ));
        }
        if let Some(path) = &self.token_file {
            match crate::config::read_secret_file(path) {
                Ok(token) if token.trim().len() < 32 => problems.push((
                    "token_file".into(),
                    format!(
                        "{path}: the token must be at least 32 characters (openssl rand -hex 32)"
                    ),
                )),
                Ok(_) => {}
                Err(message) => problems.push(("token_file".into(), message)),
            }
        }
        problems
    }
}

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

async fn summary_json(
    store: &dyn Store,
    user: &UserSummary,
    now: i64,
) -> Result<Value, StoreError> {
    let oob = store.out_of_band(&user.name).await?;
    let app_passwords = store.app_passwords(&user.name).await?;
    let devices: Vec<Value> = oob
        .devices
        .iter()
        .map(|d| json!({ "kind": d.kind.as_str(), "label": d.label, "created_at": d.created_at }))
        .collect();
    let enrolled = user.totp || !devices.is_empty();
    Ok(json!({
        "name": user.name,
        "local_password": user.local_password,
        "enrolled": enrolled,
        "totp": user.totp,
        "devices": devices,
        "preferred_factor": oob.preferred,
        "recovery_codes_left": user.recovery_codes_left,
        "app_passwords": app_passwords.len(),
        "failures": user.failures,
        "locked_until": user.locked_until.filter(|t| *t > now),
        "last_login": user.last_login,
        "created_at": user.created_at,
    }))
}

async fn list_users(_: Authorized, State(state): State<HttpState>) -> Response {
    let now = now();
    let users = match state.store.list_users().await {
        Ok(users) => users,
        Err(e) => return store_error(e),
    };
    let mut out = Vec::with_capacity(users.len());
    for user in &users {
        match summary_json(state.store.as_ref(), user, now).await {
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
        let mut value = summary_json(store, &user, now).await?;
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
            .map(audit_json)
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
    let store = state.store.as_ref();
    let result = match factor.as_str() {
        "totp" => store.remove_totp(&name).await.map(u64::from),
        "recovery" => reset_recovery(store, &name).await,
        "push" => remove_devices(store, &name, DeviceKind::Push).await,
        "phone" => remove_devices(store, &name, DeviceKind::Phone).await,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "factor must be totp, recovery, push or phone",
            );
        }
    };
    let removed = match result {
        Ok(n) => n,
        Err(e) => return store_error(e),
    };
    info!(target: "rampart::audit", user = %name, factor = %factor, removed, "admin: factor reset");
    Json(json!({ "user": name, "factor": factor, "removed": removed })).into_response()
}

async fn reset_recovery(store: &dyn Store, name: &str) -> Result<u64, StoreError> {
    let Some(user) = store.user(name).await? else {
        return Err(StoreError::NoSuchUser(name.to_string()));
    };
    store.replace_recovery_codes(name, &[], now()).await?;
    Ok(u64::from(user.recovery_codes_left))
}

async fn remove_devices(
    store: &dyn Store,
    name: &str,
    kind: DeviceKind,
) -> Result<u64, StoreError> {
    let mut removed = 0;
    for device in store.out_of_band(name).await?.devices {
        if device.kind == kind && store.remove_device(name, kind, &device.label).await? {
            removed += 1;
        }
    }
    Ok(removed)
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
    let invitation =
        match crate::invite::create(&state.store, &admin.key, &name, hours, base, now()).await {
            Ok(invitation) => invitation,
            Err(e) => return store_error(e),
        };
    let mut emailed = false;
    if let Some(to) = &request.email {
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
        })),
    )
        .into_response()
}

async fn unenrolled(_: Authorized, State(state): State<HttpState>) -> Response {
    let Some(admin) = &state.admin else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let store = state.store.as_ref();
    let accounts = match store.list_users().await {
        Ok(users) => users,
        Err(e) => return store_error(e),
    };
    let mut enrolled = std::collections::HashSet::new();
    let mut candidates = Vec::new();
    for account in &accounts {
        let devices = match store.out_of_band(&account.name).await {
            Ok(oob) => oob.devices.len(),
            Err(e) => return store_error(e),
        };
        if account.totp || devices > 0 {
            enrolled.insert(account.name.clone());
        } else {
            candidates.push(account.name.clone());
        }
    }
    let group = admin.config.enrollment_group.as_deref();
    let source = match admin.primary.list_users(group).await {
        Ok(Some(directory)) => {
            candidates.extend(directory);
            "directory"
        }
        Ok(None) => "store",
        Err(e) => {
            warn!(error = %e, "admin API: directory listing failed");
            return error(
                StatusCode::BAD_GATEWAY,
                "the directory cannot be listed now",
            );
        }
    };
    candidates.retain(|name| !enrolled.contains(name));
    candidates.sort();
    candidates.dedup();
    Json(json!({ "source": source, "group": group, "users": candidates })).into_response()
}

#[derive(Deserialize)]
struct AuditQuery {
    user: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    limit: Option<u32>,
}

fn audit_json(event: &crate::store::AuditEvent) -> Value {
    json!({
        "time": event.time,
        "user": event.user,
        "client": event.client,
        "calling_station_id": event.station,
        "outcome": event.outcome,
        "reason": event.reason,
        "factor": event.factor,
        "duration_ms": event.duration_ms,
    })
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
            let events: Vec<Value> = events.iter().map(audit_json).collect();
            Json(json!({ "events": events })).into_response()
        }
        Err(e) => store_error(e),
    }
}
