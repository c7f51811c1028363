//! The sd_notify protocol as systemd sees it: the test owns the
//! `$NOTIFY_SOCKET` datagram socket and checks what arrives — `READY=1`
//! only once both listeners are bound, `RELOADING=1` with `MONOTONIC_USEC`
//! then `READY=1` on SIGHUP (also when the reload is refused), `STOPPING=1`
//! on SIGTERM.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::common::*;

/// The next notification, as `KEY=value` lines.
fn next(socket: &UnixDatagram) -> Vec<String> {
    let mut buffer = [0u8; 4096];
    let len = socket
        .recv(&mut buffer)
        .expect("a notification within the timeout");
    String::from_utf8(buffer[..len].to_vec())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn value<'a>(message: &'a [String], key: &str) -> Option<&'a str> {
    message
        .iter()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn ready_reloading_and_stopping_reach_the_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let options = Options {
        policy: "unenrolled = \"allow\"".into(),
        env: vec![("NOTIFY_SOCKET".into(), path.display().to_string())],
        ..Options::default()
    };
    let mut rampart = Rampart::start_with(options.clone());

    // READY=1 first, and its status names the addresses the kernel gave the
    // two listeners (port 0): it cannot have been sent before they were bound.
    let ready = next(&socket);
    assert_eq!(value(&ready, "READY"), Some("1"), "{ready:?}");
    let status = value(&ready, "STATUS").unwrap_or_default();
    assert!(
        status.contains(&format!("udp/{}", rampart.radius))
            && status.contains(&rampart.metrics.to_string()),
        "{status:?} vs {} and {}",
        rampart.radius,
        rampart.metrics
    );
    rampart.add_user("alice", "notify-Pw");
    radclient_auth(&rampart, "alice", "notify-Pw").assert_code("Access-Accept");

    // SIGHUP: RELOADING=1 with the monotonic clock in the same datagram
    // (systemd >= 253 fails Type=notify-reload without it), then READY=1.
    let mut clocks = Vec::new();
    for round in 0..2 {
        assert!(rampart.reload_with(&options), "{}", rampart.logs());
        let reloading = next(&socket);
        assert_eq!(value(&reloading, "RELOADING"), Some("1"), "{reloading:?}");
        let usec: u64 = value(&reloading, "MONOTONIC_USEC")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("MONOTONIC_USEC in {reloading:?}"));
        clocks.push(usec);
        let ready = next(&socket);
        assert_eq!(
            value(&ready, "READY"),
            Some("1"),
            "round {round}: {ready:?}"
        );
    }
    assert!(clocks[1] > clocks[0], "{clocks:?}");

    // A refused reload ends with READY=1 too: the service keeps running.
    let refused = rampart.reload_after(|| {
        std::fs::write(&rampart.config, "[radius]\nlisten = 12\n").unwrap();
    });
    assert!(!refused);
    assert_eq!(value(&next(&socket), "RELOADING"), Some("1"));
    let after = next(&socket);
    assert_eq!(value(&after, "READY"), Some("1"));
    assert!(
        value(&after, "STATUS").is_some_and(|s| s.contains("refused")),
        "{after:?}"
    );
    radclient_auth(&rampart, "alice", "notify-Pw").assert_code("Access-Accept");

    // SIGTERM: STOPPING=1, then the process exits cleanly.
    rampart.signal("TERM");
    let stopping = next(&socket);
    assert_eq!(value(&stopping, "STOPPING"), Some("1"), "{stopping:?}");
    assert!(rampart.terminate().success());
}
