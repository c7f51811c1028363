//! Publishing: as JSON at `/` (`transformBodyJSON`) or the body at
//! `/{topic}`; actions validated as actions.go `parseActions`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::auth::{NtfyError, authenticate, authorize, error};
use super::{Shared, now, random_id, record, valid_topic};

#[derive(Debug, Clone, Deserialize, Serialize)]
struct Action {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    id: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    label: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    headers: Option<HashMap<String, String>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    body: String,
    #[serde(default)]
    clear: bool,
}

/// ntfy's `publishMessage` (the JSON publish body), the fields rampart uses.
#[derive(Debug, Deserialize)]
struct PublishMessage {
    #[serde(default)]
    topic: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    priority: i64,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    actions: Vec<Action>,
}

/// actions.go `parseActions` validation.
fn check_actions(actions: &mut [Action]) -> Result<(), String> {
    for action in actions.iter_mut() {
        action.id = random_id()[..10].to_string();
        action.action = action.action.to_lowercase();
        action.method = action.method.to_uppercase();
    }
    if actions.len() > 3 {
        return Err("only 3 actions allowed".into());
    }
    for action in actions.iter() {
        if !["view", "broadcast", "http"].contains(&action.action.as_str()) {
            return Err(format!("action '{}' unknown", action.action));
        } else if action.label.is_empty() {
            return Err("parameter 'label' is required".into());
        } else if ["view", "http"].contains(&action.action.as_str()) && action.url.is_empty() {
            return Err(format!(
                "parameter 'url' is required for action '{}'",
                action.action
            ));
        } else if action.action == "http"
            && ["GET", "HEAD"].contains(&action.method.as_str())
            && !action.body.is_empty()
        {
            return Err(format!(
                "parameter 'body' cannot be set if method is {}",
                action.method
            ));
        }
    }
    Ok(())
}

fn store(shared: &Shared, mut message: PublishMessage) -> Result<Value, NtfyError> {
    if !(0..=5).contains(&message.priority) {
        return Err(error(400, 40007, "invalid priority parameter"));
    }
    if let Err(detail) = check_actions(&mut message.actions) {
        return Err(error(
            400,
            40018,
            &format!("invalid request: actions invalid, {detail}"),
        ));
    }
    if message.message.is_empty() {
        message.message = "triggered".into();
    }
    let time = now();
    let mut stored = json!({
        "id": random_id(),
        "time": time,
        "expires": time + 12 * 3600,
        "event": "message",
        "topic": message.topic,
        "message": message.message,
    });
    if !message.title.is_empty() {
        stored["title"] = json!(message.title);
    }
    if message.priority != 0 {
        stored["priority"] = json!(message.priority);
    }
    if !message.tags.is_empty() {
        stored["tags"] = json!(message.tags);
    }
    if !message.actions.is_empty() {
        stored["actions"] = json!(message.actions);
    }
    shared.lock().messages.push(stored.clone());
    let _ = shared.live.send(stored.clone());
    shared.changed.notify_waiters();
    Ok(stored)
}

fn published(stored: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{stored}\n"),
    )
        .into_response()
}

pub(super) async fn json(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = (|| {
        let caller = authenticate(&shared, &headers)?;
        let message: PublishMessage = serde_json::from_slice(&body).map_err(|_| {
            error(
                400,
                40024,
                "invalid request: request body must be valid JSON",
            )
        })?;
        if !valid_topic(&message.topic) {
            return Err(error(400, 40009, "invalid request: topic invalid"));
        }
        authorize(&shared, &caller, &message.topic, true)?;
        store(&shared, message)
    })()
    .map(published)
    .unwrap_or_else(IntoResponse::into_response);
    record(
        &shared,
        "POST",
        "/",
        query,
        &headers,
        response.status().as_u16(),
    );
    shared.changed.notify_waiters();
    response
}

fn header_any(headers: &HeaderMap, names: &[&str]) -> String {
    names
        .iter()
        .find_map(|n| headers.get(*n).and_then(|v| v.to_str().ok()))
        .unwrap_or("")
        .to_string()
}

pub(super) async fn body(
    State(shared): State<Arc<Shared>>,
    Path(topic): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = (|| {
        let caller = authenticate(&shared, &headers)?;
        if !valid_topic(&topic) {
            return Err(error(400, 40009, "invalid request: topic invalid"));
        }
        authorize(&shared, &caller, &topic, true)?;
        let message = String::from_utf8(body.to_vec())
            .map_err(|_| error(400, 40011, "invalid message: message must be UTF-8 encoded"))?;
        let priority = match header_any(&headers, &["x-priority", "priority", "prio", "p"]).as_str()
        {
            "" => 0,
            "1" | "min" => 1,
            "2" | "low" => 2,
            "3" | "default" => 3,
            "4" | "high" => 4,
            "5" | "max" | "urgent" => 5,
            _ => return Err(error(400, 40007, "invalid priority parameter")),
        };
        let tags = header_any(&headers, &["x-tags", "tags", "tag", "ta"]);
        let actions_text = header_any(&headers, &["x-actions", "actions", "action"]);
        let actions = if actions_text.is_empty() {
            Vec::new()
        } else {
            // The emulator reads the JSON form only, not ntfy's "simple" format.
            serde_json::from_str(&actions_text).map_err(|e| {
                error(
                    400,
                    40018,
                    &format!("invalid request: actions invalid, {e}"),
                )
            })?
        };
        store(
            &shared,
            PublishMessage {
                topic: topic.clone(),
                title: header_any(&headers, &["x-title", "title", "t"]),
                message,
                priority,
                tags: tags
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect(),
                actions,
            },
        )
    })()
    .map(published)
    .unwrap_or_else(IntoResponse::into_response);
    record(
        &shared,
        "POST",
        &format!("/{topic}"),
        query,
        &headers,
        response.status().as_u16(),
    );
    shared.changed.notify_waiters();
    response
}
