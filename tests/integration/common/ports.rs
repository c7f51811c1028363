//! Ports for the servers the harness starts as child processes (slapd,
//! PostgreSQL, FreeRADIUS, radsecproxy, chromedriver, the SMTP sink).
//!
//! Binding port 0 and releasing it is not enough when tests run in parallel:
//! the kernel may hand the same released port to another test a moment
//! later, and a harness that waits for "something listens on my port" then
//! talks to the other test's server. Ports here come from a range below the
//! kernel's ephemeral range (`ip_local_port_range`), which neither port-0
//! binds nor outgoing connections use, and each is handed out once per test
//! binary. Each is still checked free over TCP and UDP, since another process
//! on the machine may hold it.

use std::net::{TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

/// Lowest port handed out; the top is the start of the ephemeral range.
const FIRST: u32 = 10_000;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The first port of the kernel's ephemeral range (Linux default 32768).
fn ephemeral_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .filter(|&low: &u32| low > FIRST + 1_000)
        .unwrap_or(32_768)
}

/// A loopback port no other server of this test binary was given and nothing
/// holds now (TCP or UDP).
pub fn free_port() -> u16 {
    let span = ephemeral_start() - FIRST;
    // Another test binary (or a second run) starts elsewhere in the range.
    let offset = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let index = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (offset + index) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free loopback port below the ephemeral range");
}
