//! TLS for the gRPC API (`[api.tls]`): rustls through tonic, with the ring provider.
//!
//! The config reads the PEM files and checks them with [`check_pem`] at load (so
//! `--check-config` and reloads see a bad file); [`server_config`] turns them into tonic's
//! server TLS config when the API starts.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Identity, ServerTlsConfig};

/// Why the certificate and key cannot serve TLS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// The certificate file holds no usable PEM certificate.
    #[error("expected a PEM certificate chain (-----BEGIN CERTIFICATE-----): {0}")]
    Certificate(String),
    /// The key file holds no usable PEM private key.
    #[error("expected a PEM private key (PKCS#8, PKCS#1 or SEC1): {0}")]
    Key(String),
    /// rustls refused the pair (for example the key does not belong to the certificate).
    #[error("the certificate and key cannot be used together: {0}")]
    Mismatch(String),
}

/// Checks that `cert_pem` holds at least one certificate, `key_pem` one private key, and
/// that rustls accepts the pair.
pub fn check_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<(), TlsError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certificate(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Certificate("no certificate found".into()));
    }
    PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Key(e.to_string()))?;
    tonic::transport::Server::builder()
        .tls_config(server_config(cert_pem, key_pem))
        .map_err(|e| {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg = format!("{msg}: {s}");
                source = s.source();
            }
            TlsError::Mismatch(msg)
        })?;
    Ok(())
}

/// Tonic's server TLS config for a certificate chain and key (PEM).
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> ServerTlsConfig {
    ServerTlsConfig::new().identity(Identity::from_pem(cert_pem, key_pem))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("rcgen");
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    #[test]
    fn a_matching_pair_is_accepted() {
        let (cert, key) = pair();
        check_pem(cert.as_bytes(), key.as_bytes()).expect("valid pair");
    }

    #[test]
    fn each_file_is_checked_for_what_it_must_hold() {
        let (cert, key) = pair();
        assert!(matches!(
            check_pem(b"not pem", key.as_bytes()),
            Err(TlsError::Certificate(_))
        ));
        // A key where the certificate belongs is no certificate.
        assert!(matches!(
            check_pem(key.as_bytes(), key.as_bytes()),
            Err(TlsError::Certificate(_))
        ));
        assert!(matches!(
            check_pem(cert.as_bytes(), cert.as_bytes()),
            Err(TlsError::Key(_))
        ));
        let (_, other_key) = pair();
        let e = check_pem(cert.as_bytes(), other_key.as_bytes()).expect_err("wrong key");
        assert!(matches!(e, TlsError::Mismatch(_)), "{e:?}");
    }
}
