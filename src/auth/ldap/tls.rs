//! TLS for `ldaps://` and StartTLS: a rustls client configuration built from
//! the configured CA bundle (and optional client certificate), with the
//! aws-lc-rs provider named explicitly so the whole project uses one provider.
//! Host names are verified by rustls' WebPKI verifier (RFC 6125) against the
//! host in each server URL; there is no switch to turn that off.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// Every PEM item of one kind in a file (certificates, CRLs); an error
/// naming the file if it cannot be read, is not PEM, or has none
/// (`file_kind`: "certificate bundle"; `item`: "certificate").
pub fn read_pem_all<T: PemObject>(
    path: &Path,
    file_kind: &str,
    item: &str,
) -> Result<Vec<T>, String> {
    let shown = path.display();
    let items = T::pem_file_iter(path)
        .map_err(|e| format!("cannot read {shown}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{shown}: not a PEM {file_kind}: {e}"))?;
    if items.is_empty() {
        return Err(format!("{shown}: no PEM {item} in it"));
    }
    Ok(items)
}

/// The CA certificates in a PEM file; an error if it has none or any is invalid.
pub fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let certs: Vec<CertificateDer> = read_pem_all(path, "certificate bundle", "certificate")?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("{shown}: unusable CA certificate: {e}"))?;
    }
    Ok(roots)
}

/// A client certificate chain and its private key, from PEM files.
pub fn load_identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read {}: {e}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no PEM certificate in it", cert.display()));
    }
    // The error text names the file only: never echo key material.
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|_| format!("{}: no readable PEM private key in it", key.display()))?;
    Ok((chain, key))
}

/// The client configuration for the directory connections.
pub fn client_config(
    ca_file: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, String> {
    let roots = load_roots(ca_file)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let (chain, key) = load_identity(cert, key)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate and key do not match: {e}"))?
        }
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_bundles_are_errors_not_empty_stores() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        assert!(
            load_roots(&empty)
                .unwrap_err()
                .contains("no PEM certificate")
        );
        let junk = dir.path().join("junk.pem");
        std::fs::write(
            &junk,
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(load_roots(&junk).is_err());
        assert!(
            load_roots(&dir.path().join("missing.pem"))
                .unwrap_err()
                .contains("cannot read")
        );
    }
}
