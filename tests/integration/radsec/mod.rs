//! RadSec (RADIUS over TLS, RFC 6614). End to end through the real
//! radsecproxy: `radclient` → radsecproxy (UDP in, one TLS connection out)
//! → rampart's RadSec listener (`proxy`). On the wire with our own TLS
//! client: duplicates on a stream, a packet that breaks the framing, Status-Server,
//! and shutdown draining in-flight requests (`wire`). Shared set-up here.

mod config;
mod proxy;
mod wire;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use rampart::radius::crypto::sign_response;
use rampart::radius::{Code, Packet};

use crate::common::certs::{RadsecCerts, make_radsec_certificates};
use crate::common::{Options, Rampart};

/// The `[[clients]]` entry for the NAS whose certificate says
/// `nas1.example.com`, and the `[radsec]` section, appended to `extra`.
fn radsec_toml(certs: &RadsecCerts, extra: &str) -> String {
    format!(
        r#"
[[clients]]
name = "nas1"
radsec_cert_name = "nas1.example.com"

[radsec]
listen = "127.0.0.1:0"
cert_file = "{cert}"
key_file = "{key}"
ca_file = "{ca}"

{extra}
"#,
        cert = certs.server.0.display(),
        key = certs.server.1.display(),
        ca = certs.ca.display(),
    )
}

/// rampart with a RadSec listener, and the certificates (in `dir`).
fn start_rampart(dir: &Path, options: Options) -> (Rampart, RadsecCerts) {
    let certs = make_radsec_certificates(dir);
    let rampart = Rampart::start_with(Options {
        extra: radsec_toml(&certs, &options.extra),
        ..options
    });
    (rampart, certs)
}

/// Polls a metric until it reaches `at_least` (10 s); returns the last value.
fn wait_for_metric(rampart: &Rampart, series: &str, at_least: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = rampart.metric(series);
        if value >= at_least || Instant::now() > deadline {
            return value;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A stand-in upstream RADIUS server (rampart's `backend = "radius"`) that
/// holds every Access-Request until `hold` of them are outstanding at once
/// (or `deadline` after the first arrived), then accepts them all: with
/// `hold` = N a login can only finish if rampart works on N at once.
/// Answers later requests straight away.
struct HoldingUpstream {
    address: SocketAddr,
    /// How many requests were held, sent when the hold is released.
    released: mpsc::Receiver<usize>,
    /// Requests received so far.
    received: Arc<AtomicUsize>,
}

const UPSTREAM_SECRET: &str = "upstream-S3cret";

impl HoldingUpstream {
    fn start(hold: usize, deadline: Duration) -> HoldingUpstream {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = socket.local_addr().unwrap();
        let (tx, released) = mpsc::channel();
        let received = Arc::new(AtomicUsize::new(0));
        let counter = received.clone();
        std::thread::spawn(move || {
            let accept = |socket: &UdpSocket, bytes: &[u8], peer: SocketAddr| {
                let request = Packet::decode(bytes).unwrap();
                let reply = sign_response(
                    Code::AccessAccept,
                    request.identifier,
                    &request.authenticator,
                    &[],
                    UPSTREAM_SECRET.as_bytes(),
                )
                .unwrap();
                let _ = socket.send_to(&reply, peer);
            };
            let mut end = None;
            let mut held = Vec::new();
            let mut buffer = [0u8; 4096];
            while held.len() < hold {
                let left = match end {
                    None => Duration::from_secs(120),
                    Some(end) => end - Instant::now().min(end),
                };
                if left.is_zero() {
                    break;
                }
                socket.set_read_timeout(Some(left)).unwrap();
                if let Ok((n, peer)) = socket.recv_from(&mut buffer) {
                    held.push((buffer[..n].to_vec(), peer));
                    counter.fetch_add(1, Ordering::SeqCst);
                    end.get_or_insert(Instant::now() + deadline);
                }
            }
            let _ = tx.send(held.len());
            for (bytes, peer) in &held {
                accept(&socket, bytes, *peer);
            }
            // Afterwards, answer at once (for up to a minute).
            socket
                .set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            while let Ok((n, peer)) = socket.recv_from(&mut buffer) {
                counter.fetch_add(1, Ordering::SeqCst);
                accept(&socket, &buffer[..n], peer);
            }
        });
        HoldingUpstream {
            address,
            released,
            received,
        }
    }

    /// `[primary]` for rampart: this server, no retransmission.
    fn primary(&self) -> String {
        format!(
            "backend = \"radius\"\ntimeout_ms = 30000\nretries = 0\n[[primary.servers]]\naddress = \"{}\"\nsecret = \"{UPSTREAM_SECRET}\"\n",
            self.address
        )
    }
}

/// (certificate, key) paths.
type Identity = (PathBuf, PathBuf);
