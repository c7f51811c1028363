//! A reverse-proxy stand-in: a TCP forwarder on 127.0.0.1:0 whose address is
//! known before the backend exists. rampart's `[out_of_band] public_url`
//! must be written into its config before it starts (and picks its HTTP
//! port), exactly as a real deployment points public_url at a proxy in front
//! of the listener. Connections wait until the backend is set.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

pub struct Forwarder {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    backend: Arc<(Mutex<Option<SocketAddr>>, Notify)>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Forwarder {
    pub fn start() -> Forwarder {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let backend: Arc<(Mutex<Option<SocketAddr>>, Notify)> = Arc::default();
        let shared = backend.clone();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    loop {
                        let (mut client, _) = tokio::select! {
                            _ = &mut stopped => return,
                            accepted = listener.accept() => match accepted {
                                Ok(accepted) => accepted,
                                Err(_) => continue,
                            },
                        };
                        let shared = shared.clone();
                        tokio::spawn(async move {
                            let target = loop {
                                let notified = shared.1.notified();
                                if let Some(target) = *shared.0.lock().unwrap() {
                                    break target;
                                }
                                notified.await;
                            };
                            if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                                let _ =
                                    tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            }
                        });
                    }
                });
        });
        Forwarder {
            url,
            backend,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Where connections go from now on.
    pub fn set_backend(&self, backend: SocketAddr) {
        *self.backend.0.lock().unwrap() = Some(backend);
        self.backend.1.notify_waiters();
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
