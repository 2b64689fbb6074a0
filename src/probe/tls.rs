//! TLS client settings shared by every subcommand that speaks TLS: rustls with the ring
//! provider, roots from a CA file or the system bundle, and the verification levels libpq
//! defines (full, CA only, none). A self-signed server certificate that is itself in the
//! user's CA file is accepted as OpenSSL accepts it (see `self_signed`).

mod self_signed;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::runtime::exit;

/// Where a CA bundle is found on common systems; the first that exists is used. `SSL_CERT_FILE`
/// comes first, as OpenSSL-based tools honour it.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Chain to a trusted root and the name matches the host (verify-full, https).
    Full,
    /// Chain to a trusted root, any name (libpq's verify-ca).
    CaOnly,
    /// Encryption only: any certificate is accepted (libpq's require, `--insecure`).
    Nothing,
}

/// Where trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// The system bundle (`SSL_CERT_FILE`, then the usual paths).
    System,
    /// A PEM file the user named (`--cacert`, `sslrootcert`): unreadable or empty is a
    /// configuration error.
    File(PathBuf),
}

/// A client configuration for `verify` with `roots`. Errors in a named CA file are usage
/// errors (exit 2): no amount of waiting fixes them.
pub fn client_config(roots: &Roots, verify: Verify) -> anyhow::Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?;
    let config = match verify {
        Verify::Full | Verify::CaOnly => {
            let (store, user_anchors) = load_roots(roots)?;
            if store.is_empty() && verify == Verify::Full {
                // No system bundle: verification will fail naming the unknown issuer, which
                // is clearer than refusing to start for a server that may not even use TLS.
                builder.with_root_certificates(store).with_no_client_auth()
            } else {
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
                    .build()
                    .map_err(|error| exit::usage(format!("no usable CA certificate: {error}")))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Verifier {
                        webpki,
                        check_name: verify == Verify::Full,
                        user_anchors,
                    }))
                    .with_no_client_auth()
            }
        }
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The trusted roots, and the certificates of a CA file the user named (none for the system
/// bundle), which a server may present as its own.
pub fn load_roots(roots: &Roots) -> anyhow::Result<(RootCertStore, Vec<CertificateDer<'static>>)> {
    let mut store = RootCertStore::empty();
    let path = match roots {
        Roots::File(path) => path.clone(),
        Roots::System => match system_bundle() {
            Some(path) => path,
            None => return Ok((store, Vec::new())),
        },
    };
    let certificates = read_certificates(&path)?;
    let (added, _ignored) = store.add_parsable_certificates(certificates.iter().cloned());
    if added == 0 {
        return Err(exit::usage(format!(
            "no usable CA certificate in {}",
            path.display()
        )));
    }
    let user_anchors = match roots {
        Roots::File(_) => certificates,
        Roots::System => Vec::new(),
    };
    Ok((store, user_anchors))
}

fn read_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let bytes = std::fs::read(path)
        .map_err(|error| exit::usage(format!("cannot read CA file {}: {error}", path.display())))?;
    CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| exit::usage(format!("bad PEM in CA file {}: {error}", path.display())))
}

fn system_bundle() -> Option<PathBuf> {
    std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
        .find(|path| path.is_file())
}

/// webpki's verification, with two differences: for verify-ca the name is not checked, and a
/// CA certificate presented as the server's is judged by `self_signed` (accepted when it is
/// self-signed and one of the user's own trusted certificates, byte for byte, and checked as
/// OpenSSL checks it). Every other chain is webpki's verdict.
#[derive(Debug)]
struct Verifier {
    webpki: Arc<WebPkiServerVerifier>,
    /// Full: the name must match the host. CaOnly: any name.
    check_name: bool,
    /// The certificates of the CA file the user named.
    user_anchors: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict =
            self.webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        match verdict {
            Err(error) if self_signed::is_ca_used_as_end_entity(&error) => {
                let in_user_file = self
                    .user_anchors
                    .iter()
                    .any(|anchor| anchor.as_ref() == end_entity.as_ref());
                self_signed::verify(
                    end_entity,
                    in_user_file,
                    server_name,
                    now,
                    self.check_name,
                    error,
                )
                .map(|()| ServerCertVerified::assertion())
            }
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// libpq's sslmode=require and `--insecure`: the certificate is not checked, but the handshake
/// signatures still are, so the session is encrypted to whoever holds that certificate's key.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
    use crate::runtime::exit::Exit;

    #[test]
    fn a_named_ca_file_must_exist_and_hold_certificates() {
        let missing = client_config(&Roots::File("/nonexistent/ca.pem".into()), Verify::Full);
        let error = missing.unwrap_err();
        assert_eq!(Exit::of(&error), Exit::Usage);
        assert!(error.to_string().contains("/nonexistent/ca.pem"));

        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = client_config(&Roots::File(empty), Verify::CaOnly).unwrap_err();
        assert_eq!(Exit::of(&error), Exit::Usage);
        assert!(
            error.to_string().contains("no usable CA certificate"),
            "{error}"
        );
    }

    /// A verifier as `client_config` builds it for a CA file holding `anchors`.
    fn verifier(anchors: &[&str], check_name: bool) -> Verifier {
        let anchors: Vec<CertificateDer<'static>> = anchors
            .iter()
            .map(|pem| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
            .collect();
        let mut store = RootCertStore::empty();
        store.add_parsable_certificates(anchors.iter().cloned());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Verifier {
            webpki: WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
                .build()
                .unwrap(),
            check_name,
            user_anchors: anchors,
        }
    }

    fn verify(verifier: &Verifier, pem: &str, host: &str) -> Result<(), String> {
        let certificate = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let name = ServerName::try_from(host.to_string()).unwrap();
        verifier
            .verify_server_cert(&certificate, &[], &name, &[], UnixTime::now())
            .map(|_| ())
            .map_err(|error| error.to_string())
    }

    const RECIPE: &str = include_str!("tls/testdata/recipe.pem");
    const ALT_NAMES: &str = include_str!("tls/testdata/alt_names.pem");

    #[test]
    fn a_ca_certificate_in_the_users_file_is_trusted_as_the_servers() {
        // webpki alone refuses it, which is what the verifier steps in for.
        let webpki = verifier(&[RECIPE], true).webpki;
        let recipe = CertificateDer::from_pem_slice(RECIPE.as_bytes()).unwrap();
        let name = ServerName::try_from("dbhost.example").unwrap();
        let error = webpki
            .verify_server_cert(&recipe, &[], &name, &[], UnixTime::now())
            .unwrap_err();
        assert!(self_signed::is_ca_used_as_end_entity(&error), "{error}");

        let full = verifier(&[ALT_NAMES, RECIPE], true);
        assert_eq!(verify(&full, RECIPE, "dbhost.example"), Ok(()));
        assert!(verify(&full, RECIPE, "other.example").is_err());
        let ca_only = verifier(&[RECIPE], false);
        assert_eq!(verify(&ca_only, RECIPE, "other.example"), Ok(()));
    }

    #[test]
    fn a_different_self_signed_certificate_is_still_refused() {
        for check_name in [true, false] {
            let verifier = verifier(&[RECIPE], check_name);
            let error = verify(&verifier, ALT_NAMES, "api.example").unwrap_err();
            assert!(error.contains("UnknownIssuer"), "{error}");
        }
        // The system bundle is no file of the user's: nothing is trusted on its own.
        let mut system = verifier(&[RECIPE], true);
        system.user_anchors.clear();
        let error = verify(&system, RECIPE, "dbhost.example").unwrap_err();
        assert!(error.contains("UnknownIssuer"), "{error}");
    }

    #[test]
    fn no_verification_needs_no_roots() {
        assert!(client_config(&Roots::File("/nonexistent".into()), Verify::Nothing).is_ok());
    }
}
