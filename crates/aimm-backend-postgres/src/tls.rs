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
    let mut found = 0;
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|err| invalid(format!("is not PEM: {err}")))?;
        roots
            .add(cert)
            .map_err(|err| invalid(format!("holds a certificate rustls refuses: {err}")))?;
        found += 1;
    }
    if found == 0 {
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
