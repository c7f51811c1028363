//! An HTTP endpoint that fails on demand, standing in for a provider that
//! only has to take a request (a push webhook, an SMS template gateway):
//! it answers every request with a status (200 when healthy, 500 when
//! failing), or accepts the connection, reads the request and never
//! answers. Plain std threads; every request body is kept.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the endpoint treats a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answers with this status and a small JSON body.
    Status(u16),
    /// Reads the request, then holds the connection open without a byte.
    Hang,
}

#[derive(Default)]
struct Shared {
    mode: Mutex<Option<Mode>>,
    bodies: Mutex<Vec<String>>,
    stop: AtomicBool,
}

pub struct Faulty {
    /// `http://127.0.0.1:PORT/hook`
    pub url: String,
    address: SocketAddr,
    shared: Arc<Shared>,
}

impl Faulty {
    pub fn start(mode: Mode) -> Faulty {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        *shared.mode.lock().unwrap() = Some(mode);
        let accepting = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accepting.stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = accepting.clone();
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        Faulty {
            url: format!("http://{address}/hook"),
            address,
            shared,
        }
    }

    /// `http://127.0.0.1:PORT`, for a server URL (ntfy).
    pub fn base(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = Some(mode);
    }

    /// Request bodies received, in order.
    pub fn bodies(&self) -> Vec<String> {
        self.shared.bodies.lock().unwrap().clone()
    }
}

/// One request per connection (answers say `connection: close`).
fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    shared
        .bodies
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&body).into_owned());
    let mode = shared.mode.lock().unwrap().unwrap_or(Mode::Status(200));
    let mut stream = reader.into_inner();
    match mode {
        Mode::Status(status) => {
            // An `id`, as ntfy's stored message has.
            let body = format!("{{\"id\":\"faulty\",\"status\":{status}}}");
            let _ = write!(
                stream,
                "HTTP/1.1 {status} Status {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        Mode::Hang => {
            while !shared.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for Faulty {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Wakes the accepting thread so that it sees `stop`.
        let _ = TcpStream::connect(self.address);
    }
}
