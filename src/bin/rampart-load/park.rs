//! The holding benchmark (issue 4): `park` opens many logins that wait for a
//! push nobody answers, each from its own user (one pending push per user),
//! paced so the server's receive buffer never overflows, and reports how many
//! were answered and how; `sink` is the push service those logins notify: an
//! HTTP server that accepts every webhook and answers nothing else, counting
//! what it received.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rampart::radius::attr;
use rampart::radius::crypto::{hide_password, sign_request};
use rampart::radius::packet::MAX_PACKET_LEN;
use rampart::radius::{Attribute, Code};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::users::NumberFormat;

/// What `park` sends.
pub struct ParkPlan {
    /// The RADIUS server.
    pub server: SocketAddr,
    /// Its shared secret.
    pub secret: Vec<u8>,
    /// User names by number.
    pub users: NumberFormat,
    /// First user number.
    pub first: u64,
    /// Logins to open (one per user).
    pub count: u64,
    /// What User-Password carries (`push` with `backend = "none"`).
    pub typed: String,
    /// Logins sent per second.
    pub rate: u64,
    /// How long to wait for answers after the last send.
    pub hold: Duration,
}

/// Answers seen by `park`.
#[derive(Debug, Default)]
pub struct ParkTally {
    /// Requests sent.
    pub sent: u64,
    /// Access-Accepts.
    pub accepted: u64,
    /// Access-Rejects.
    pub rejected: u64,
    /// Anything else (challenges).
    pub other: u64,
}

fn request(plan: &ParkPlan, number: u64, identifier: u8) -> Option<Vec<u8>> {
    let user = plan.users.render(number);
    let authenticator: [u8; 16] = rand::random();
    let hidden = hide_password(plan.typed.as_bytes(), &plan.secret, &authenticator).ok()?;
    let attributes = vec![
        Attribute::new(attr::USER_NAME, user.as_bytes()),
        Attribute::new(attr::USER_PASSWORD, hidden),
        Attribute::new(attr::NAS_IP_ADDRESS, [127, 0, 0, 1]),
    ];
    sign_request(
        Code::AccessRequest,
        identifier,
        &authenticator,
        &attributes,
        &plan.secret,
        true,
    )
    .ok()
}

/// Opens every login, then collects answers until `hold` after the last send.
pub async fn park(plan: ParkPlan) -> std::io::Result<ParkTally> {
    let plan = Arc::new(plan);
    // 256 identifiers per socket (RFC 2865 §3): one socket per 256 logins.
    let sockets = plan.count.div_ceil(256) as usize;
    let interval = Duration::from_secs_f64(1.0 / plan.rate.max(1) as f64);
    let start = Instant::now();
    let last_send = start + interval * plan.count as u32;
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..sockets {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        socket.connect(plan.server).await?;
        let plan = plan.clone();
        tasks.spawn(async move {
            let mut tally = ParkTally::default();
            let from = k as u64 * 256;
            let to = (from + 256).min(plan.count);
            let mut buffer = vec![0u8; MAX_PACKET_LEN];
            let mut next = from;
            let deadline = last_send + plan.hold;
            loop {
                // Login i leaves at start + i × interval, interleaved over sockets.
                let send_at = (next < to).then(|| start + interval * next as u32);
                tokio::select! {
                    _ = async { tokio::time::sleep_until(send_at.unwrap_or(deadline)).await }, if send_at.is_some() => {
                        if let Some(bytes) = request(&plan, plan.first + next, (next - from) as u8) {
                            let _ = socket.send(&bytes).await;
                            tally.sent += 1;
                        }
                        next += 1;
                    }
                    received = socket.recv(&mut buffer) => {
                        match received.ok().and_then(|n| buffer.get(..n)).and_then(|b| b.first()) {
                            Some(2) => tally.accepted += 1,
                            Some(3) => tally.rejected += 1,
                            Some(_) => tally.other += 1,
                            None => {}
                        }
                        if tally.accepted + tally.rejected + tally.other >= to - from && next >= to {
                            return tally;
                        }
                    }
                    _ = tokio::time::sleep_until(deadline) => return tally,
                }
            }
        });
    }
    let mut total = ParkTally::default();
    while let Some(joined) = tasks.join_next().await {
        let t = joined.map_err(std::io::Error::other)?;
        total.sent += t.sent;
        total.accepted += t.accepted;
        total.rejected += t.rejected;
        total.other += t.other;
    }
    Ok(total)
}

/// Accepts webhooks on `listen` until killed; prints the count every 5 s.
pub async fn sink(listen: SocketAddr) -> std::io::Result<()> {
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let counter = counter.clone();
        async move {
            let _ = body;
            counter.fetch_add(1, Ordering::Relaxed);
            axum::http::StatusCode::OK
        }
    });
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("sink listening on http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let mut last = 0;
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let now = received.load(Ordering::Relaxed);
            if now != last {
                eprintln!("sink: {now} notifications received");
                last = now;
            }
        }
    });
    axum::serve(listener, app).await
}
