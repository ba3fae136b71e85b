//! The user of a client certificate, as kube-apiserver's x509 authenticator reads it: the
//! subject's Common Name is the user, its Organizations the groups. The chain was verified
//! against the client CA by the TLS layer before this is asked.

use rustls::pki_types::CertificateDer;

use super::UserInfo;

/// The user a verified client certificate names; None when it cannot be read or names nobody
/// (an empty Common Name), in which case the request is judged by its other credentials.
pub fn user_of(certificate: &CertificateDer<'_>) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    if name.is_empty() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(String::from)
        .collect();
    Some(UserInfo {
        name,
        uid: String::new(),
        groups,
    })
}
