//! A small RADIUS client: signed Access-Requests (Message-Authenticator first,
//! RFC 3579 §3.2), hidden User-Password, retransmission of the identical packet
//! on timeout (RFC 5080 §2.2.1), and strict verification of the reply.
//! Used by `rampart radtest`, the integration tests and the load benchmark.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

use super::attr;
use super::crypto::{ResponseError, hide_password, sign_request, verify_response};
use super::packet::{Attribute, Code, MAX_PACKET_LEN, Packet};

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Socket error.
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
    /// No valid reply after every retry.
    #[error("no reply from {server} after {attempts} attempt(s)")]
    Timeout {
        /// Server address.
        server: SocketAddr,
        /// Packets sent.
        attempts: u32,
    },
    /// The password is longer than 128 octets.
    #[error("password longer than 128 octets")]
    PasswordTooLong,
    /// The request could not be encoded.
    #[error("cannot encode request: {0}")]
    Encode(#[from] super::packet::EncodeError),
}

/// One Access-Request to send.
#[derive(Debug, Default, Clone)]
pub struct RequestSpec<'a> {
    /// User-Name.
    pub user_name: &'a str,
    /// User-Password plaintext, if any.
    pub password: Option<&'a str>,
    /// State from a previous Access-Challenge.
    pub state: Option<&'a [u8]>,
    /// Further attributes (NAS-Identifier, Calling-Station-Id, Proxy-State, ...).
    pub extra: Vec<Attribute>,
}

/// A client bound to one server and secret. One request at a time.
pub struct RadiusClient {
    socket: UdpSocket,
    server: SocketAddr,
    secret: Vec<u8>,
    /// Wait per attempt.
    pub timeout: Duration,
    /// Attempts in all (first send + retransmissions).
    pub attempts: u32,
    /// Whether to sign requests with Message-Authenticator.
    pub message_authenticator: bool,
    next_identifier: u8,
}

impl RadiusClient {
    /// A client on an ephemeral local port.
    pub async fn new(server: SocketAddr, secret: &[u8]) -> std::io::Result<RadiusClient> {
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal address")
        } else {
            "[::]:0".parse().expect("literal address")
        };
        let socket = UdpSocket::bind(bind).await?;
        socket.connect(server).await?;
        Ok(RadiusClient {
            socket,
            server,
            secret: secret.to_vec(),
            timeout: Duration::from_secs(5),
            attempts: 3,
            message_authenticator: true,
            next_identifier: rand::random(),
        })
    }

    /// Sends an Access-Request and returns the verified reply.
    pub async fn access_request(&mut self, spec: &RequestSpec<'_>) -> Result<Packet, ClientError> {
        let authenticator: [u8; 16] = rand::random();
        let mut attributes = vec![Attribute::new(attr::USER_NAME, spec.user_name.as_bytes())];
        if let Some(password) = spec.password {
            let hidden = hide_password(password.as_bytes(), &self.secret, &authenticator)
                .map_err(|_| ClientError::PasswordTooLong)?;
            attributes.push(Attribute::new(attr::USER_PASSWORD, hidden));
        }
        if let Some(state) = spec.state {
            attributes.push(Attribute::new(attr::STATE, state));
        }
        attributes.extend(spec.extra.iter().cloned());
        self.exchange(Code::AccessRequest, authenticator, &attributes)
            .await
    }

    /// Sends a Status-Server (RFC 5997) and returns the verified reply.
    pub async fn status_server(&mut self) -> Result<Packet, ClientError> {
        self.exchange(Code::StatusServer, rand::random(), &[]).await
    }

    async fn exchange(
        &mut self,
        code: Code,
        authenticator: [u8; 16],
        attributes: &[Attribute],
    ) -> Result<Packet, ClientError> {
        let identifier = self.next_identifier;
        self.next_identifier = self.next_identifier.wrapping_add(1);
        let request = sign_request(
            code,
            identifier,
            &authenticator,
            attributes,
            &self.secret,
            self.message_authenticator,
        )?;
        let mut buffer = vec![0u8; MAX_PACKET_LEN];
        for _ in 0..self.attempts.max(1) {
            self.socket.send(&request).await?;
            let deadline = tokio::time::Instant::now() + self.timeout;
            while let Ok(received) =
                tokio::time::timeout_at(deadline, self.socket.recv(&mut buffer)).await
            {
                let len = match received {
                    Ok(len) => len,
                    // ICMP port unreachable: nothing listens there; counts as no reply.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        tokio::time::sleep_until(deadline).await;
                        break;
                    }
                    Err(e) => return Err(e.into()),
                };
                let reply = &buffer[..len];
                if reply.get(1) != Some(&identifier) {
                    continue; // a late reply to an earlier request
                }
                match verify_response(reply, &authenticator, &self.secret, true) {
                    Ok(packet) => return Ok(packet),
                    // A forged or corrupt reply is ignored like a lost one.
                    Err(ResponseError::Malformed(_))
                    | Err(ResponseError::BadAuthenticator)
                    | Err(ResponseError::MissingMessageAuthenticator)
                    | Err(ResponseError::BadMessageAuthenticator) => continue,
                }
            }
        }
        Err(ClientError::Timeout {
            server: self.server,
            attempts: self.attempts.max(1),
        })
    }
}
