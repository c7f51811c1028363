//! `[smtp]`: outgoing e-mail (invitation links) through lettre, with
//! STARTTLS (default), implicit TLS, or plain SMTP for a relay on loopback.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

use crate::secret::Secret;

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// STARTTLS required (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: only for a relay on the same host.
    None,
}

/// `[smtp]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Server host name (also checked against its certificate).
    pub host: String,
    /// Port; default 587 (STARTTLS), 465 for `tls`, 25 for `none`.
    pub port: Option<u16>,
    /// `starttls`, `tls` or `none`.
    #[serde(default)]
    pub security: SmtpSecurity,
    /// Login, if the server wants one.
    pub username: Option<String>,
    /// Password, inline.
    #[serde(default, deserialize_with = "crate::secret::deserialize_optional")]
    pub password: Option<Secret<String>>,
    /// Password read from a file (systemd credentials).
    pub password_file: Option<String>,
    /// Sender, e.g. `"IT <it@example.com>"`.
    pub from: String,
    /// PEM file of a private CA to trust.
    pub ca_file: Option<PathBuf>,
    /// Seconds before giving up on the server.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_timeout() -> u64 {
    15
}

/// Why a mail could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Bad configuration or address.
    #[error("{0}")]
    Config(String),
    /// The server refused or could not be reached.
    #[error("SMTP: {0}")]
    Send(String),
}

impl SmtpConfig {
    /// Problems as (key, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.host.trim().is_empty() {
            problems.push(("host".into(), "missing".into()));
        }
        if self.from.parse::<Mailbox>().is_err() {
            problems.push((
                "from".into(),
                format!(
                    "{:?} is not an address such as \"IT <it@example.com>\"",
                    self.from
                ),
            ));
        }
        if self.password.is_some() && self.password_file.is_some() {
            problems.push((
                "password".into(),
                "set password or password_file, not both".into(),
            ));
        }
        if self.username.is_some() && self.password.is_none() && self.password_file.is_none() {
            problems.push((
                "password".into(),
                "username needs password or password_file".into(),
            ));
        }
        if self.security == SmtpSecurity::None
            && !matches!(self.host.as_str(), "localhost" | "127.0.0.1" | "::1")
        {
            problems.push((
                "security".into(),
                "\"none\" sends mail in clear: only allowed for a relay on localhost".into(),
            ));
        }
        problems
    }
}

/// Sends mail.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// A mailer for a validated configuration; connects per message.
    pub fn new(config: &SmtpConfig) -> Result<Mailer, MailError> {
        let from = config
            .from
            .parse::<Mailbox>()
            .map_err(|e| MailError::Config(format!("smtp.from: {e}")))?;
        let tls = match config.security {
            SmtpSecurity::None => None,
            _ => {
                let mut parameters = TlsParameters::builder(config.host.clone());
                if let Some(path) = &config.ca_file {
                    let pem = std::fs::read(path).map_err(|e| {
                        MailError::Config(format!("smtp.ca_file {}: {e}", path.display()))
                    })?;
                    let certificate = Certificate::from_pem(&pem)
                        .map_err(|e| MailError::Config(format!("smtp.ca_file: {e}")))?;
                    parameters = parameters.add_root_certificate(certificate);
                }
                Some(
                    parameters
                        .build_rustls()
                        .map_err(|e| MailError::Config(format!("smtp TLS: {e}")))?,
                )
            }
        };
        let (tls, port) = match (config.security, tls) {
            (SmtpSecurity::Starttls, Some(p)) => (Tls::Required(p), config.port.unwrap_or(587)),
            (SmtpSecurity::Tls, Some(p)) => (Tls::Wrapper(p), config.port.unwrap_or(465)),
            _ => (Tls::None, config.port.unwrap_or(25)),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(config.timeout_secs)));
        if let Some(username) = &config.username {
            let password = match (&config.password, &config.password_file) {
                (Some(p), _) => p.expose().clone(),
                (None, Some(path)) => crate::config::read_secret_file(path)
                    .map_err(|e| MailError::Config(format!("smtp.password_file: {e}")))?,
                (None, None) => String::new(),
            };
            builder = builder.credentials(Credentials::new(username.clone(), password));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
        })
    }

    /// Sends a plain-text message.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), MailError> {
        let to = to
            .parse::<Mailbox>()
            .map_err(|e| MailError::Config(format!("recipient {to:?}: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| MailError::Config(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| MailError::Send(e.to_string()))
    }
}
