//! The RADIUS load: closed-loop Access-Requests over several UDP sockets, each
//! owned by one task with its own 256 identifiers (RFC 2865 §3), so up to
//! 256 × sockets requests are outstanding. Every request carries a
//! Message-Authenticator (RFC 3579 §3.2); every reply is checked (Response
//! Authenticator, and Message-Authenticator unless the target predates
//! BLAST-RADIUS) before it counts. No retransmissions: an unanswered request
//! is a timeout after `--timeout-ms`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rampart::factor::totp::{STEP_SECS, code_at};
use rampart::radius::attr;
use rampart::radius::crypto::{hide_password, sign_request, verify_response};
use rampart::radius::packet::MAX_PACKET_LEN;
use rampart::radius::{Attribute, Code};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::report::{Outcome, Tally, Window};
use crate::users::{NumberFormat, Pick, Picker, seed_for};

/// Everything a socket task needs to build and judge requests.
pub struct Plan {
    /// The RADIUS server.
    pub server: SocketAddr,
    /// Its shared secret.
    pub secret: Vec<u8>,
    /// User names by number.
    pub users: NumberFormat,
    /// Number of user index 0.
    pub first: u64,
    /// Passwords by number; `None` sends the code alone (`backend = "none"`).
    pub passwords: Option<NumberFormat>,
    /// Key of the per-user TOTP seeds; `None` sends no code.
    pub totp_key: Option<Vec<u8>>,
    /// Between password and code.
    pub separator: String,
    /// The answer every request should get.
    pub expect: Outcome,
    /// Refuse replies without Message-Authenticator.
    pub require_reply_ma: bool,
    /// Per request, no retransmission.
    pub timeout: Duration,
    /// When to send and what to count.
    pub window: Window,
}

/// State shared by the socket tasks.
struct Shared {
    plan: Plan,
    picker: Mutex<Picker>,
    /// Requests still allowed in `--requests` mode.
    budget: AtomicU64,
}

/// One outstanding request.
struct InFlight {
    authenticator: [u8; 16],
    sent: Instant,
    /// A reply arrived but failed verification.
    bad: bool,
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// The `Instant` at which the TOTP step after `step` begins.
fn next_step_at(step: u64) -> Instant {
    let at = Duration::from_secs((step + 1) * STEP_SECS);
    Instant::now() + at.saturating_sub(unix_now()) + Duration::from_millis(5)
}

enum Next {
    Packet(Vec<u8>, [u8; 16]),
    WaitUntil(Instant),
    Stop,
}

impl Shared {
    /// Builds the next request, or says why none can be sent now.
    fn next_request(&self, identifier: u8) -> Next {
        let plan = &self.plan;
        if Instant::now() >= plan.window.end {
            return Next::Stop;
        }
        let now = unix_now();
        let step = now.as_secs() / STEP_SECS;
        // The budget first: when it is spent the run ends, even if every
        // user has used the current step.
        if self
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
            .is_err()
        {
            return Next::Stop;
        }
        let index = match self.picker.lock().map(|mut p| p.pick(step)) {
            Ok(Pick::User(index)) => index,
            Ok(Pick::Exhausted) => {
                self.budget.fetch_add(1, Ordering::Relaxed);
                return Next::WaitUntil(next_step_at(step));
            }
            Err(_) => return Next::Stop,
        };
        let number = plan.first + index as u64;
        let user = plan.users.render(number);
        let code = plan
            .totp_key
            .as_ref()
            .map(|key| code_at(&seed_for(key, &user), now.as_secs()));
        let password = match (plan.passwords.as_ref().map(|f| f.render(number)), code) {
            (Some(password), Some(code)) => Some(format!("{password}{}{code}", plan.separator)),
            (Some(password), None) => Some(password),
            (None, code) => code,
        };
        let authenticator: [u8; 16] = rand::random();
        let mut attributes = vec![Attribute::new(attr::USER_NAME, user.as_bytes())];
        if let Some(password) = password {
            match hide_password(password.as_bytes(), &plan.secret, &authenticator) {
                Ok(hidden) => attributes.push(Attribute::new(attr::USER_PASSWORD, hidden)),
                Err(_) => return Next::Stop,
            }
        }
        attributes.push(Attribute::new(attr::NAS_IP_ADDRESS, [127, 0, 0, 1]));
        match sign_request(
            Code::AccessRequest,
            identifier,
            &authenticator,
            &attributes,
            &plan.secret,
            true,
        ) {
            Ok(bytes) => Next::Packet(bytes, authenticator),
            Err(_) => Next::Stop,
        }
    }
}

/// Runs the load; returns the merged tally.
pub async fn run(
    plan: Plan,
    users: usize,
    concurrency: usize,
    sockets: usize,
) -> std::io::Result<Tally> {
    let sockets = sockets.clamp(1, concurrency.max(1));
    let shared = Arc::new(Shared {
        picker: Mutex::new(Picker::new(users, plan.totp_key.is_some())),
        budget: AtomicU64::new(plan.window.requests.unwrap_or(u64::MAX)),
        plan,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..sockets {
        // Spread the outstanding requests evenly over the sockets.
        let want = concurrency / sockets + usize::from(k < concurrency % sockets);
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        socket.connect(shared.plan.server).await?;
        tasks.spawn(socket_task(socket, Arc::clone(&shared), want));
    }
    let mut total = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        total.merge(joined.map_err(std::io::Error::other)??);
    }
    Ok(total)
}

/// One socket: keeps `want` requests outstanding until the window closes,
/// then drains what is still in flight.
async fn socket_task(
    socket: UdpSocket,
    shared: Arc<Shared>,
    want: usize,
) -> std::io::Result<Tally> {
    let plan = &shared.plan;
    let mut tally = Tally::default();
    let mut slots: Vec<Option<InFlight>> = (0..256).map(|_| None).collect();
    // FIFO reuse: an identifier freed by a timeout goes to the back, so a late
    // reply to it is unlikely to meet a new request with the same identifier.
    let mut free: VecDeque<u8> = (0..=255).collect();
    let mut deadlines: VecDeque<(Instant, u8)> = VecDeque::new();
    let mut outstanding = 0usize;
    let mut resume_at: Option<Instant> = None;
    let mut sending = true;
    let mut buffer = vec![0u8; MAX_PACKET_LEN];
    tokio::time::sleep_until(plan.window.start).await;

    loop {
        if resume_at.is_some_and(|at| Instant::now() >= at) {
            resume_at = None;
        }
        while sending && resume_at.is_none() && outstanding < want {
            let Some(identifier) = free.pop_front() else {
                break;
            };
            match shared.next_request(identifier) {
                Next::Packet(bytes, authenticator) => {
                    let sent = Instant::now();
                    // A full send buffer drops the datagram: it times out.
                    let _ = socket.send(&bytes).await;
                    tally.sent += 1;
                    slots[usize::from(identifier)] = Some(InFlight {
                        authenticator,
                        sent,
                        bad: false,
                    });
                    deadlines.push_back((sent + plan.timeout, identifier));
                    outstanding += 1;
                }
                Next::WaitUntil(at) => {
                    free.push_front(identifier);
                    tally.waits += (want - outstanding) as u64;
                    resume_at = Some(at.min(plan.window.end));
                }
                Next::Stop => {
                    free.push_front(identifier);
                    sending = false;
                }
            }
        }
        if outstanding == 0 && (!sending || Instant::now() >= plan.window.end) {
            return Ok(tally);
        }
        let next_deadline = deadlines.front().map(|(at, _)| *at);
        tokio::select! {
            received = socket.recv(&mut buffer) => {
                let len = match received {
                    Ok(len) => len,
                    // ICMP port unreachable: nothing listens; requests time out.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                    Err(e) => return Err(e),
                };
                let reply = &buffer[..len];
                let Some(&identifier) = reply.get(1) else {
                    tally.late += 1;
                    continue;
                };
                let slot = &mut slots[usize::from(identifier)];
                let Some(request) = slot.as_mut() else {
                    tally.late += 1;
                    continue;
                };
                match verify_response(reply, &request.authenticator, &plan.secret, plan.require_reply_ma) {
                    Ok(packet) => {
                        let outcome = match packet.code {
                            Code::AccessAccept => Outcome::Accept,
                            Code::AccessReject => Outcome::Reject,
                            Code::AccessChallenge => Outcome::Challenge,
                            _ => Outcome::Other,
                        };
                        let sent = request.sent;
                        *slot = None;
                        free.push_back(identifier);
                        outstanding -= 1;
                        tally.record(&plan.window, sent, outcome, plan.expect);
                    }
                    // Forged, corrupt or for an earlier use of the identifier:
                    // keep waiting for the real answer, like a NAS would.
                    Err(_) => request.bad = true,
                }
            }
            () = sleep_until_opt(next_deadline) => {
                let now = Instant::now();
                while let Some(&(at, identifier)) = deadlines.front() {
                    if at > now {
                        break;
                    }
                    deadlines.pop_front();
                    let slot = &mut slots[usize::from(identifier)];
                    // Only if this deadline is still the one of the request in
                    // the slot (the identifier may have been reused since).
                    if slot.as_ref().is_some_and(|r| r.sent + plan.timeout == at)
                        && let Some(request) = slot.take()
                    {
                        free.push_back(identifier);
                        outstanding -= 1;
                        let outcome = if request.bad { Outcome::BadReply } else { Outcome::Timeout };
                        tally.record(&plan.window, request.sent, outcome, plan.expect);
                    }
                }
            }
            () = sleep_until_opt(resume_at) => {}
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
