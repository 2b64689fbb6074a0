//! A server certificate that is itself in the user's CA file, as PostgreSQL's documentation
//! makes one (`openssl req -new -x509 ... -subj "/CN=dbhost"`, which OpenSSL marks CA:TRUE).
//! OpenSSL, and so psql and redis-cli, trust such a certificate directly; webpki refuses any CA
//! certificate as a server's (CaUsedAsEndEntity). Here it is checked as OpenSSL checks it:
//! self-issued, within its validity dates, usable by a TLS server, and for verify-full issued
//! to the host, with libpq's rule for the common name.

use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, OtherError};
use x509_cert::Certificate;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::oid::AssociatedOid;
use x509_cert::der::oid::db::rfc4519::CN;
use x509_cert::der::oid::db::rfc5280::{ANY_EXTENDED_KEY_USAGE, ID_KP_SERVER_AUTH};
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::name::{DirectoryString, GeneralName};
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, SubjectAltName};

/// Whether `error` is webpki's refusal of a CA certificate as a server's.
pub fn is_ca_used_as_end_entity(error: &rustls::Error) -> bool {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => matches!(
            inner.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity)
        ),
        _ => false,
    }
}

/// The verdict on a CA certificate presented as the server's, which webpki refused with
/// `webpki_verdict` (CaUsedAsEndEntity). `in_user_file`: byte for byte one of the certificates
/// in the CA file the user named. `check_name`: verify-full and https, not verify-ca.
///
/// - Self-signed and in the user's file: checked as OpenSSL checks a self-signed certificate
///   it trusts.
/// - Self-signed and not in the file: nobody trusted issued it, UnknownIssuer, as webpki says
///   of a self-signed certificate without the CA mark.
/// - Issued by another: webpki's verdict (OpenSSL too trusts only a self-signed certificate
///   on its own).
pub fn verify(
    certificate: &CertificateDer<'_>,
    in_user_file: bool,
    server_name: &ServerName<'_>,
    now: UnixTime,
    check_name: bool,
    webpki_verdict: rustls::Error,
) -> Result<(), rustls::Error> {
    let parsed = Certificate::from_der(certificate.as_ref()).map_err(|_| bad_encoding())?;
    let tbs = &parsed.tbs_certificate;
    if tbs.issuer != tbs.subject {
        return Err(webpki_verdict);
    }
    if !in_user_file {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
    }
    check_dates(&parsed, now)?;
    check_server_purpose(&parsed)?;
    if check_name {
        check_name_matches(certificate, &parsed, server_name)?;
    }
    Ok(())
}

fn check_dates(certificate: &Certificate, now: UnixTime) -> Result<(), rustls::Error> {
    let validity = &certificate.tbs_certificate.validity;
    let not_before = UnixTime::since_unix_epoch(validity.not_before.to_unix_duration());
    let not_after = UnixTime::since_unix_epoch(validity.not_after.to_unix_duration());
    let error = if now.as_secs() < not_before.as_secs() {
        CertificateError::NotValidYetContext {
            time: now,
            not_before,
        }
    } else if now.as_secs() > not_after.as_secs() {
        CertificateError::ExpiredContext {
            time: now,
            not_after,
        }
    } else {
        return Ok(());
    };
    Err(rustls::Error::InvalidCertificate(error))
}

/// OpenSSL's "SSL server" purpose: an extended key usage, if present, allows serverAuth; a
/// key usage, if present, allows signing or key agreement.
fn check_server_purpose(certificate: &Certificate) -> Result<(), rustls::Error> {
    if let Some(usages) = extension::<ExtendedKeyUsage>(certificate)? {
        let allowed = [ID_KP_SERVER_AUTH, ANY_EXTENDED_KEY_USAGE];
        if !usages.0.iter().any(|usage| allowed.contains(usage)) {
            return Err(invalid_purpose());
        }
    }
    if let Some(usage) = extension::<KeyUsage>(certificate)? {
        if !(usage.digital_signature() || usage.key_encipherment() || usage.key_agreement()) {
            return Err(invalid_purpose());
        }
    }
    Ok(())
}

/// The host name check of libpq (and OpenSSL's X509_check_host): the subjectAltName entries of
/// the host's kind (DNS names for a name, IP addresses for an address), matched as webpki
/// matches them; without any, the subject's common name.
fn check_name_matches(
    der: &CertificateDer<'_>,
    certificate: &Certificate,
    server_name: &ServerName<'_>,
) -> Result<(), rustls::Error> {
    let alt_names = extension::<SubjectAltName>(certificate)?.map_or_else(Vec::new, |san| san.0);
    let host_is_ip = matches!(server_name, ServerName::IpAddress(_));
    let of_host_kind = alt_names.iter().any(|name| match name {
        GeneralName::DnsName(_) => !host_is_ip,
        GeneralName::IpAddress(_) => host_is_ip,
        _ => false,
    });
    if of_host_kind {
        let parsed = webpki::EndEntityCert::try_from(der).map_err(|_| bad_encoding())?;
        return parsed
            .verify_is_valid_for_subject_name(server_name)
            .map_err(|error| match error {
                webpki::Error::CertNotValidForName(context) => {
                    rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                        expected: context.expected,
                        presented: context.presented,
                    })
                }
                _ => bad_encoding(),
            });
    }
    let host = server_name.to_str();
    let names = common_names(certificate);
    if names.iter().any(|name| common_name_matches(name, &host)) {
        return Ok(());
    }
    Err(rustls::Error::InvalidCertificate(
        CertificateError::NotValidForNameContext {
            expected: server_name.to_owned(),
            presented: names
                .iter()
                .map(|name| format!("common name {name:?}"))
                .collect(),
        },
    ))
}

/// The subject's common names (CN) that are strings.
fn common_names(certificate: &Certificate) -> Vec<String> {
    certificate
        .tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|attribute| attribute.oid == CN)
        .filter_map(|attribute| {
            let text = attribute.value.to_der().ok()?;
            Some(match DirectoryString::from_der(&text).ok()? {
                DirectoryString::PrintableString(text) => text.to_string(),
                DirectoryString::TeletexString(text) => text.to_string(),
                DirectoryString::Utf8String(text) => text,
            })
        })
        .collect()
}

/// libpq's match of a common name: the same name ignoring case, or `*.rest` for exactly one
/// more label in front of `rest`.
fn common_name_matches(name: &str, host: &str) -> bool {
    if name.eq_ignore_ascii_case(host) {
        return true;
    }
    let Some(rest) = name.strip_prefix("*.") else {
        return false;
    };
    match host.split_once('.') {
        Some((label, host_rest)) => !label.is_empty() && host_rest.eq_ignore_ascii_case(rest),
        None => false,
    }
}

/// The extension `E` of `certificate`, decoded, if it has one.
fn extension<E: AssociatedOid + for<'a> Decode<'a>>(
    certificate: &Certificate,
) -> Result<Option<E>, rustls::Error> {
    let oid: ObjectIdentifier = E::OID;
    let Some(found) = certificate
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|extension| extension.extn_id == oid)
    else {
        return Ok(None);
    };
    E::from_der(found.extn_value.as_bytes())
        .map(Some)
        .map_err(|_| bad_encoding())
}

fn bad_encoding() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::BadEncoding)
}

fn invalid_purpose() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::InvalidPurpose)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use std::time::Duration;

    /// Test certificates made with `openssl req -new -x509` (CA:TRUE, as PostgreSQL's recipe
    /// makes them), valid for 100 years from when they were made.
    fn certificate(name: &str) -> CertificateDer<'static> {
        let pem = match name {
            "recipe" => include_str!("testdata/recipe.pem"),
            "alt_names" => include_str!("testdata/alt_names.pem"),
            "wildcard" => include_str!("testdata/wildcard.pem"),
            "client_only" => include_str!("testdata/client_only.pem"),
            "ca_key_usage" => include_str!("testdata/ca_key_usage.pem"),
            "issued" => include_str!("testdata/issued.pem"),
            other => panic!("no test certificate {other}"),
        };
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    /// What webpki says of every CA certificate as a server's.
    fn ca_used_as_end_entity() -> rustls::Error {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(std::sync::Arc::new(
            webpki::Error::CaUsedAsEndEntity,
        ))))
    }

    fn verify_at(
        name: &str,
        in_user_file: bool,
        host: &str,
        now: UnixTime,
        check_name: bool,
    ) -> Result<(), String> {
        let server_name = ServerName::try_from(host.to_string()).unwrap();
        let certificate = certificate(name);
        let verdict = ca_used_as_end_entity();
        verify(
            &certificate,
            in_user_file,
            &server_name,
            now,
            check_name,
            verdict,
        )
        .map_err(|error| error.to_string())
    }

    fn check(name: &str, host: &str, check_name: bool) -> Result<(), String> {
        verify_at(name, true, host, UnixTime::now(), check_name)
    }

    #[test]
    fn the_common_name_is_the_host_name_when_there_is_no_alt_name() {
        assert_eq!(check("recipe", "dbhost.example", true), Ok(()));
        assert_eq!(check("recipe", "DBHost.Example", true), Ok(()));
        let error = check("recipe", "other.example", true).unwrap_err();
        assert!(
            error.contains(r#"not valid for name "other.example""#)
                && error.contains(r#"common name "dbhost.example""#),
            "{error}"
        );
        // An address is not a name: it needs an IP alt name, or the same text as the CN.
        assert!(check("recipe", "192.0.2.7", true).is_err());
        // verify-ca: any name.
        assert_eq!(check("recipe", "other.example", false), Ok(()));
    }

    #[test]
    fn alt_names_of_the_hosts_kind_win_over_the_common_name() {
        assert_eq!(check("alt_names", "api.example", true), Ok(()));
        assert_eq!(check("alt_names", "192.0.2.7", true), Ok(()));
        assert!(check("alt_names", "192.0.2.8", true).is_err());
        let error = check("alt_names", "dbhost.example", true).unwrap_err();
        assert!(error.contains("not valid for name"), "{error}");
    }

    #[test]
    fn a_wildcard_common_name_covers_one_label() {
        assert_eq!(check("wildcard", "pg.db.example", true), Ok(()));
        assert!(check("wildcard", "db.example", true).is_err());
        assert!(check("wildcard", "a.pg.db.example", true).is_err());
    }

    #[test]
    fn a_certificate_that_cannot_serve_tls_is_refused() {
        for name in ["client_only", "ca_key_usage"] {
            let error = check(name, "dbhost.example", false).unwrap_err();
            assert!(error.contains("InvalidPurpose"), "{name}: {error}");
        }
    }

    #[test]
    fn only_a_self_signed_certificate_in_the_users_file_is_trusted_on_its_own() {
        assert!(
            ca_used_as_end_entity()
                .to_string()
                .contains("CaUsedAsEndEntity")
        );
        let error = check("issued", "dbhost.example", false).unwrap_err();
        assert!(error.contains("CaUsedAsEndEntity"), "{error}");
        let error = verify_at("recipe", false, "dbhost.example", UnixTime::now(), false);
        assert!(error.unwrap_err().contains("UnknownIssuer"));
    }

    #[test]
    fn the_validity_dates_are_checked() {
        let parsed = Certificate::from_der(certificate("recipe").as_ref()).unwrap();
        let not_after = parsed.tbs_certificate.validity.not_after.to_unix_duration();
        let later = UnixTime::since_unix_epoch(not_after + Duration::from_secs(60));
        let error = verify_at("recipe", true, "dbhost.example", later, false).unwrap_err();
        assert!(error.contains("certificate expired"), "{error}");
        assert!(error.contains("(60 seconds ago)"), "{error}");
        let earlier = UnixTime::since_unix_epoch(Duration::from_secs(1_000_000_000));
        let error = verify_at("recipe", true, "dbhost.example", earlier, false).unwrap_err();
        assert!(error.contains("not valid yet"), "{error}");
    }
}
