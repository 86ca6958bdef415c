//! TLS for the connections, by rustls (no OpenSSL to link against).
//!
//! `verify-full` checks the server's certificate against the configured CA
//! certificates and the host name; `prefer` and `require` encrypt without
//! checking it, as libpq does for those modes.

use aimm_backend_api::{BackendError, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

fn provider() -> Arc<CryptoProvider> {
    // ring: no C toolchain beyond what the workspace needs already (aws-lc
    // wants cmake). Its provider lacks post-quantum key exchange, which
    // PostgreSQL servers do not offer yet.
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS checking the server against the CA certificates in `ca_file`.
pub(crate) fn verifying(ca_file: &Path) -> Result<MakeRustlsConnect> {
    let invalid = |what: String| {
        BackendError::invalid_config(format!(
            "postgres backend config: ca_file {}: {what}",
            ca_file.display()
        ))
    };
    let pem = std::fs::read(ca_file).map_err(|err| invalid(format!("cannot be read: {err}")))?;
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|err| invalid(format!("is not PEM: {err}")))?;
        roots
            .add(cert)
            .map_err(|err| invalid(format!("holds a certificate rustls refuses: {err}")))?;
    }
    if roots.is_empty() {
        return Err(invalid(
            "holds no certificate; expected PEM CA certificates".into(),
        ));
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| BackendError::storage(format!("TLS setup: {err}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// TLS that accepts any certificate: encryption without authentication.
pub(crate) fn unverified() -> Result<MakeRustlsConnect> {
    let provider = provider();
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| BackendError::storage(format!("TLS setup: {err}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// Accepts every certificate, but still checks the handshake's signatures
/// (so the session keys are the server's).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed CA certificate (made once with openssl, valid for a
    /// century).
    const CA: &str = include_str!("../tests/data/test-ca.pem");

    fn verifying_pem(pem: &str) -> Result<MakeRustlsConnect> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, pem).unwrap();
        verifying(&path)
    }

    fn refusal(pem: &str) -> String {
        match verifying_pem(pem) {
            Ok(_) => panic!("{pem:?} was taken as CA certificates"),
            Err(err) => {
                assert_eq!(
                    err.kind,
                    aimm_backend_api::ErrorKind::InvalidConfig,
                    "{err}"
                );
                err.message.to_string()
            }
        }
    }

    #[test]
    fn a_ca_file_of_pem_certificates_is_taken() {
        verifying_pem(CA).unwrap();
        verifying_pem(&format!("{CA}{CA}")).unwrap();
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_naming_the_file_and_why() {
        let none = refusal("");
        assert!(
            none.starts_with("postgres backend config: ca_file /"),
            "{none}"
        );
        assert!(
            none.ends_with("ca.pem: holds no certificate; expected PEM CA certificates"),
            "{none}"
        );
        let key_only = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(refusal(key_only).contains("holds no certificate"));
        let not_base64 = "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n";
        assert!(refusal(not_base64).contains("is not PEM"));
        let not_a_certificate = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(refusal(not_a_certificate).contains("holds a certificate rustls refuses"));
        let missing = verifying(Path::new("/nonexistent/ca.pem")).err().unwrap();
        assert!(
            missing
                .message
                .contains("ca_file /nonexistent/ca.pem: cannot be read"),
            "{missing}"
        );
    }

    #[test]
    fn a_connection_taking_any_certificate_offers_the_providers_signature_schemes() {
        let provider = provider();
        let any = AnyCertificate(provider.clone());
        assert_eq!(
            any.supported_verify_schemes(),
            provider
                .signature_verification_algorithms
                .supported_schemes()
        );
        assert!(!any.supported_verify_schemes().is_empty());
    }
}
