//! TLS for the RadSec listener: a rustls server configuration (aws-lc-rs, the
//! project's one provider) that offers TLS 1.3 and 1.2 only and *requires* a
//! client certificate chaining to `ca_file` (RFC 6614 §2.3: mutual
//! authentication) and, with `crl_file`, not revoked (RFC 5280 §6.3 CRLs),
//! and the names of handshake failures used as metric labels.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
use rustls::{CertificateError, Error as TlsError, ServerConfig};

use super::config::RadsecConfig;
use crate::auth::ldap::tls::read_pem_all;

/// Why the TLS configuration cannot be built, naming the `[radsec]` key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("radsec.{key}: {message}")]
pub struct TlsSetupError {
    /// `cert_file`, `key_file`, `ca_file` or `crl_file`.
    pub key: &'static str,
    /// What is wrong (never key material).
    pub message: String,
}

fn setup_error(key: &'static str) -> impl FnOnce(String) -> TlsSetupError {
    move |message| TlsSetupError { key, message }
}

/// Builds the server configuration from the files `[radsec]` names.
pub fn server_config(config: &RadsecConfig) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let roots = crate::auth::ldap::tls::load_roots(Path::new(&config.ca_file))
        .map_err(setup_error("ca_file"))?;
    let chain: Vec<CertificateDer> = read_pem_all(
        Path::new(&config.cert_file),
        "certificate chain",
        "certificate",
    )
    .map_err(setup_error("cert_file"))?;
    // The message names the file only: never echo key material.
    let key = PrivateKeyDer::from_pem_file(&config.key_file)
        .map_err(|_| format!("{}: no readable PEM private key in it", config.key_file))
        .map_err(setup_error("key_file"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    // Mandatory client authentication: `allow_unauthenticated` is never called.
    let mut verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    if let Some(crl_file) = &config.crl_file {
        // The NAS certificate itself is checked against its issuer's CRL; a
        // missing or outdated CRL refuses it rather than let a revoked
        // certificate through (rustls' defaults, plus nextUpdate enforced).
        verifier = verifier
            .with_crls(
                read_pem_all::<CertificateRevocationListDer>(
                    Path::new(crl_file),
                    "CRL file",
                    "X509 CRL",
                )
                .map_err(setup_error("crl_file"))?,
            )
            .only_check_end_entity_revocation()
            .enforce_revocation_expiration();
    }
    let verifier = verifier.build().map_err(|error| match error {
        VerifierBuilderError::InvalidCrl(e) => TlsSetupError {
            key: "crl_file",
            message: format!(
                "{}: not a usable CRL: {e:?}",
                config.crl_file.as_deref().unwrap_or("")
            ),
        },
        other => TlsSetupError {
            key: "ca_file",
            message: format!("{}: {other}", config.ca_file),
        },
    })?;
    let server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())
        .map_err(setup_error("cert_file"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("does not match {}: {e}", config.cert_file))
        .map_err(setup_error("key_file"))?;
    Ok(Arc::new(server))
}

/// The metric label for a failed handshake (`rampart_radsec_handshake_failures_total{reason}`).
pub fn handshake_failure_reason(error: &std::io::Error) -> &'static str {
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<TlsError>())
    else {
        return match error.kind() {
            std::io::ErrorKind::UnexpectedEof => "closed",
            std::io::ErrorKind::InvalidData => "not_tls",
            _ => "io",
        };
    };
    match tls {
        TlsError::NoCertificatesPresented => "no_certificate",
        TlsError::InvalidCertificate(CertificateError::UnknownIssuer) => "unknown_ca",
        TlsError::InvalidCertificate(
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        ) => "certificate_expired",
        TlsError::InvalidCertificate(
            CertificateError::Revoked | CertificateError::UnknownRevocationStatus,
        ) => "certificate_revoked",
        TlsError::InvalidCertificate(
            CertificateError::ExpiredRevocationList
            | CertificateError::ExpiredRevocationListContext { .. },
        ) => "crl_expired",
        TlsError::InvalidCertificate(_) => "bad_certificate",
        TlsError::PeerIncompatible(_) => "incompatible",
        TlsError::AlertReceived(_) => "peer_alert",
        _ => "protocol",
    }
}
