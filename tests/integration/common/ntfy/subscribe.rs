//! The JSON stream subscription (`GET /{topics}/json`) with `since=` and
//! `poll=1`, as server.go `handleSubscribeHTTP` and `parseSince`.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use super::auth::{NtfyError, authenticate, authorize, error};
use super::{Inner, Shared, now, random_id, record, valid_topic};

enum Since {
    None,
    All,
    Id(String),
    Time(i64),
}

/// server.go `parseSince`.
fn parse_since(value: Option<&str>, poll: bool) -> Result<Since, NtfyError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(if poll { Since::All } else { Since::None });
    };
    if value == "all" {
        return Ok(Since::All);
    }
    if value == "none" {
        return Ok(Since::None);
    }
    if value.len() == 12 && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Ok(Since::Id(value.to_string()));
    }
    if let Ok(unix) = value.parse::<i64>() {
        return Ok(Since::Time(unix));
    }
    let (number, unit) = value.split_at(value.len().saturating_sub(1));
    let seconds = match (number.parse::<i64>(), unit) {
        (Ok(n), "s") => n,
        (Ok(n), "m") => n * 60,
        (Ok(n), "h") => n * 3600,
        _ => return Err(error(400, 40008, "invalid since parameter")),
    };
    Ok(Since::Time(now() - seconds))
}

fn cached(inner: &Inner, topics: &[String], since: &Since) -> Vec<Value> {
    let of_topics = inner
        .messages
        .iter()
        .filter(|m| topics.iter().any(|t| m["topic"] == t.as_str()));
    match since {
        Since::None => Vec::new(),
        Since::All => of_topics.cloned().collect(),
        Since::Time(t) => of_topics
            .filter(|m| m["time"].as_i64().unwrap_or(0) >= *t)
            .cloned()
            .collect(),
        Since::Id(id) => {
            let all: Vec<Value> = of_topics.cloned().collect();
            match all.iter().position(|m| m["id"] == id.as_str()) {
                Some(index) => all[index + 1..].to_vec(),
                // `id > COALESCE((SELECT id ... WHERE mid = ?), 0)`: all of them.
                None => all,
            }
        }
    }
}

fn line(value: &Value) -> Bytes {
    Bytes::from(format!("{value}\n"))
}

/// Counts a subscription while its stream lives.
struct Subscribed(Arc<Shared>);

impl Drop for Subscribed {
    fn drop(&mut self) {
        self.0.lock().subscribers -= 1;
        self.0.changed.notify_waiters();
    }
}

struct Stream {
    queue: VecDeque<Bytes>,
    live: broadcast::Receiver<Value>,
    cut: watch::Receiver<u64>,
    keepalive: tokio::time::Interval,
    topics: Vec<String>,
    sent: HashSet<String>,
    _subscribed: Subscribed,
}

pub(super) async fn json(
    State(shared): State<Arc<Shared>>,
    Path(topics): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let param = |name: &str| {
        query
            .as_deref()
            .unwrap_or("")
            .split('&')
            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
    };
    let path = format!("/{topics}/json");
    let prepared = (|| {
        let caller = authenticate(&shared, &headers)?;
        let topics: Vec<String> = topics.split(',').map(str::to_string).collect();
        if !topics.iter().all(|t| valid_topic(t)) {
            return Err(error(400, 40009, "invalid request: topic invalid"));
        }
        for topic in &topics {
            authorize(&shared, &caller, topic, false)?;
        }
        let poll = matches!(param("poll").as_deref(), Some("1" | "true" | "yes"));
        let since = parse_since(param("since").as_deref(), poll)?;
        Ok((topics, poll, since))
    })();
    let (topics, poll, since) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            let response = error.into_response();
            record(
                &shared,
                "GET",
                &path,
                query,
                &headers,
                response.status().as_u16(),
            );
            return response;
        }
    };
    record(&shared, "GET", &path, query.clone(), &headers, 200);
    // Subscribe to live messages before reading the cache, then skip what
    // the cache already gave: nothing is lost or sent twice in between.
    let live = shared.live.subscribe();
    let cut = shared.cut.subscribe();
    let (old, subscribed) = {
        let mut inner = shared.lock();
        inner.subscribers += 1;
        (cached(&inner, &topics, &since), Subscribed(shared.clone()))
    };
    shared.changed.notify_waiters();
    let mut queue: VecDeque<Bytes> = VecDeque::new();
    if !poll {
        queue.push_back(line(&json!({
            "id": random_id(),
            "time": now(),
            "event": "open",
            "topic": topics.join(","),
        })));
    }
    let sent: HashSet<String> = old
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_string))
        .collect();
    queue.extend(old.iter().map(line));
    if poll {
        drop(subscribed);
        let body: Vec<u8> = queue.into_iter().flat_map(|b| b.to_vec()).collect();
        return ndjson(Body::from(body));
    }
    let keepalive_every = shared.options.keepalive;
    let mut keepalive = tokio::time::interval_at(
        tokio::time::Instant::now() + keepalive_every,
        keepalive_every,
    );
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cut = cut;
    cut.borrow_and_update();
    let stream = Stream {
        queue,
        live,
        cut,
        keepalive,
        topics,
        sent,
        _subscribed: subscribed,
    };
    let body = futures_util::stream::unfold(stream, |mut s| async move {
        loop {
            if let Some(next) = s.queue.pop_front() {
                return Some((Ok::<Bytes, std::io::Error>(next), s));
            }
            tokio::select! {
                _ = s.cut.changed() => return None,
                message = s.live.recv() => match message {
                    Ok(m) => {
                        let id = m["id"].as_str().unwrap_or("").to_string();
                        if s.topics.iter().any(|t| m["topic"] == t.as_str()) && s.sent.insert(id) {
                            s.queue.push_back(line(&m));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = s.keepalive.tick() => {
                    s.queue.push_back(line(&json!({
                        "id": random_id(),
                        "time": now(),
                        "event": "keepalive",
                        "topic": s.topics.join(","),
                    })));
                }
            }
        }
    });
    ndjson(Body::from_stream(body))
}

fn ndjson(body: Body) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-ndjson; charset=utf-8")
        .body(body)
        .unwrap()
}
