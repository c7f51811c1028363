//! The client side of one upstream RADIUS server, for many logins at once.
//!
//! RADIUS matches a reply to its request by the 8-bit Identifier alone, per
//! source socket (RFC 2865 §3), so one UDP socket carries at most 256
//! outstanding requests. A [`Transport`] keeps a few connected sockets, each
//! with a table of 256 slots; a request takes a free slot (its Identifier),
//! opening another socket when every slot is taken. One reader task per socket
//! verifies each reply against the slot's Request Authenticator — Response
//! Authenticator (RFC 2865 §3) and Message-Authenticator (RFC 3579 §3.2;
//! required by default against BLAST-RADIUS) — and hands it to the waiting
//! request through a oneshot channel. A reply that fails verification is
//! discarded as if lost, and counted on the slot for the error message.
//!
//! On a timeout the identical packet (same Identifier and Request
//! Authenticator) is sent again, so the server's duplicate detection answers it
//! instead of running the login twice (RFC 5080 §2.2.1). A slot is freed when
//! its request ends, including when the caller's future is dropped.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::radius::Attribute;
use crate::radius::crypto::{sign_request, verify_response};
use crate::radius::packet::{Code, EncodeError, MAX_PACKET_LEN, Packet};
use crate::secret::Secret;

/// Outstanding requests per socket: the Identifier is one octet (RFC 2865 §3).
const SLOTS_PER_SOCKET: usize = 256;
/// Sockets per server: 32 × 256 = 8192 logins in flight, twice the listener's default limit.
const MAX_SOCKETS: usize = 32;

/// Why an exchange with the server failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No reply that passed verification arrived in time.
    #[error(
        "no valid reply after {attempts} attempt(s){}",
        if *discarded > 0 { format!("; {discarded} reply(ies) failed verification (wrong secret, or no Message-Authenticator?)") } else { String::new() }
    )]
    Timeout {
        /// Packets sent.
        attempts: u32,
        /// Replies that arrived but failed verification.
        discarded: u32,
    },
    /// ICMP port unreachable: nothing listens at the server's address.
    #[error("connection refused (nothing listens at that address)")]
    Refused,
    /// Every slot of every socket is taken.
    #[error("too many requests outstanding ({0})")]
    Busy(usize),
    /// Socket error.
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
    /// The request does not fit in a RADIUS packet.
    #[error("cannot encode request: {0}")]
    Encode(#[from] EncodeError),
}

/// What the reader hands to a waiting request.
enum Delivery {
    Reply(Packet),
    Refused,
}

/// One outstanding request.
struct Slot {
    authenticator: [u8; 16],
    /// Taken when a verified reply (or a refusal) is delivered.
    reply: Option<oneshot::Sender<Delivery>>,
    discarded: u32,
}

struct Table {
    slots: Vec<Option<Slot>>,
    /// Where the search for a free Identifier starts: rotating delays the reuse
    /// of an Identifier whose late reply may still be on its way.
    next: usize,
    used: usize,
}

/// A socket and its slots, shared by the reader task and the requests.
struct Shared {
    socket: UdpSocket,
    table: Mutex<Table>,
    secret: Arc<Secret<Vec<u8>>>,
    require_message_authenticator: bool,
}

impl Shared {
    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic elsewhere must not stop logins: the table stays consistent
        // because every critical section is a few assignments.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a free Identifier, if any.
    fn allocate(&self, authenticator: [u8; 16]) -> Option<(u8, oneshot::Receiver<Delivery>)> {
        let mut table = self.table();
        if table.used == SLOTS_PER_SOCKET {
            return None;
        }
        let start = table.next;
        let index = (0..SLOTS_PER_SOCKET)
            .map(|offset| (start + offset) % SLOTS_PER_SOCKET)
            .find(|&i| table.slots[i].is_none())?;
        let (sender, receiver) = oneshot::channel();
        table.slots[index] = Some(Slot {
            authenticator,
            reply: Some(sender),
            discarded: 0,
        });
        table.used += 1;
        table.next = (index + 1) % SLOTS_PER_SOCKET;
        Some((index as u8, receiver))
    }

    fn free(&self, identifier: u8) {
        let mut table = self.table();
        if table.slots[usize::from(identifier)].take().is_some() {
            table.used -= 1;
        }
    }

    /// Routes a datagram to the request with its Identifier, if it verifies.
    fn deliver(&self, raw: &[u8]) {
        let Some(&identifier) = raw.get(1) else {
            return;
        };
        let mut table = self.table();
        let Some(slot) = table.slots[usize::from(identifier)].as_mut() else {
            debug!(identifier, "upstream reply for no outstanding request");
            return;
        };
        if slot.reply.is_none() {
            return; // a duplicate of a reply already delivered
        }
        match verify_response(
            raw,
            &slot.authenticator,
            self.secret.expose(),
            self.require_message_authenticator,
        ) {
            Ok(packet) => {
                if let Some(sender) = slot.reply.take() {
                    let _ = sender.send(Delivery::Reply(packet));
                }
            }
            Err(error) => {
                slot.discarded += 1;
                debug!(identifier, %error, "discarded upstream reply");
            }
        }
    }

    /// ICMP port unreachable: every request on this socket is lost.
    fn refuse_all(&self) {
        let mut table = self.table();
        for slot in table.slots.iter_mut().flatten() {
            if let Some(sender) = slot.reply.take() {
                let _ = sender.send(Delivery::Refused);
            }
        }
    }

    fn discarded(&self, identifier: u8) -> u32 {
        self.table().slots[usize::from(identifier)]
            .as_ref()
            .map_or(0, |slot| slot.discarded)
    }
}

async fn read_replies(shared: Arc<Shared>) {
    let mut buffer = vec![0u8; MAX_PACKET_LEN];
    loop {
        match shared.socket.recv(&mut buffer).await {
            Ok(len) => shared.deliver(&buffer[..len]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                shared.refuse_all();
            }
            Err(error) => {
                debug!(%error, "upstream socket receive error");
                // Never spin on a persistent error.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// A socket with its reader task, stopped when the socket is dropped.
struct Channel {
    shared: Arc<Shared>,
    reader: JoinHandle<()>,
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A request's slot, freed on drop (also when the caller gives up).
struct Ticket {
    shared: Arc<Shared>,
    identifier: u8,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.shared.free(self.identifier);
    }
}

/// Concurrent Access-Requests to one server.
pub struct Transport {
    server: SocketAddr,
    secret: Arc<Secret<Vec<u8>>>,
    require_message_authenticator: bool,
    channels: Mutex<Vec<Channel>>,
}

impl Transport {
    /// A transport to `server`; sockets are opened on first use (inside the runtime).
    pub fn new(
        server: SocketAddr,
        secret: Arc<Secret<Vec<u8>>>,
        require_message_authenticator: bool,
    ) -> Transport {
        Transport {
            server,
            secret,
            require_message_authenticator,
            channels: Mutex::new(Vec::new()),
        }
    }

    /// The server's address.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Sockets open now.
    pub fn sockets(&self) -> usize {
        self.channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Requests outstanding now.
    pub fn outstanding(&self) -> usize {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.iter().map(|c| c.shared.table().used).sum()
    }

    /// Sends an Access-Request made of `attributes` (User-Password already
    /// hidden with `authenticator`), signed with Message-Authenticator first,
    /// and waits for a verified reply: `attempts` transmissions of the same
    /// packet, `timeout` apart.
    pub async fn access_request(
        &self,
        authenticator: [u8; 16],
        attributes: &[Attribute],
        timeout: Duration,
        attempts: u32,
    ) -> Result<Packet, TransportError> {
        let (ticket, mut receiver) = self.allocate(authenticator)?;
        let packet = sign_request(
            Code::AccessRequest,
            ticket.identifier,
            &authenticator,
            attributes,
            self.secret.expose(),
            true,
        )?;
        let attempts = attempts.max(1);
        for _ in 0..attempts {
            match ticket.shared.socket.send(&packet).await {
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Err(TransportError::Refused);
                }
                Err(error) => return Err(error.into()),
            }
            match tokio::time::timeout(timeout, &mut receiver).await {
                Ok(Ok(Delivery::Reply(reply))) => return Ok(reply),
                Ok(Ok(Delivery::Refused)) => return Err(TransportError::Refused),
                // The reader is gone: only when the transport is being dropped.
                Ok(Err(_)) => return Err(TransportError::Refused),
                Err(_elapsed) => {}
            }
        }
        Err(TransportError::Timeout {
            attempts,
            discarded: ticket.shared.discarded(ticket.identifier),
        })
    }

    /// A free slot on an open socket, or on a new one.
    fn allocate(
        &self,
        authenticator: [u8; 16],
    ) -> Result<(Ticket, oneshot::Receiver<Delivery>), TransportError> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        for channel in channels.iter() {
            if let Some((identifier, receiver)) = channel.shared.allocate(authenticator) {
                let ticket = Ticket {
                    shared: channel.shared.clone(),
                    identifier,
                };
                return Ok((ticket, receiver));
            }
        }
        if channels.len() >= MAX_SOCKETS {
            return Err(TransportError::Busy(MAX_SOCKETS * SLOTS_PER_SOCKET));
        }
        let shared = Arc::new(Shared {
            socket: self.open_socket()?,
            table: Mutex::new(Table {
                slots: (0..SLOTS_PER_SOCKET).map(|_| None).collect(),
                // A random start, so a restarted rampart does not reuse the
                // Identifiers whose late replies may still arrive.
                next: usize::from(rand::random::<u8>()),
                used: 0,
            }),
            secret: self.secret.clone(),
            require_message_authenticator: self.require_message_authenticator,
        });
        let reader = tokio::spawn(read_replies(shared.clone()));
        let (identifier, receiver) = shared
            .allocate(authenticator)
            .ok_or(TransportError::Busy(0))?;
        channels.push(Channel {
            shared: shared.clone(),
            reader,
        });
        Ok((Ticket { shared, identifier }, receiver))
    }

    /// A UDP socket on an ephemeral port, connected to the server so the kernel
    /// drops datagrams from any other source and reports ICMP unreachable.
    fn open_socket(&self) -> std::io::Result<UdpSocket> {
        let bind: SocketAddr = if self.server.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = std::net::UdpSocket::bind(bind)?;
        socket.connect(self.server)?;
        socket.set_nonblocking(true)?;
        UdpSocket::from_std(socket)
    }
}

#[cfg(test)]
#[path = "transport_tests.rs"]
mod tests;
