//! Certificates rotor makes itself (rcgen, ECDSA P-256): a CA, a serving certificate for the
//! names clients reach the server by, and client certificates (CN = user, O = groups) — what
//! kubeadm makes for a cluster, so kubectl verifies the server and the server its clients.

use std::net::IpAddr;

use chrono::Datelike;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use super::TlsError;

/// The CA's subject.
const CA_NAME: &str = "rotor-ca";
const CA_YEARS: i32 = 10;
/// Serving and client certificates, as kubeadm's: a year; a serving certificate within
/// [`RENEW_WITHIN_DAYS`] of its end is made anew at start (`needs_renewal`).
const LEAF_YEARS: i32 = 1;
pub const RENEW_WITHIN_DAYS: i64 = 30;

/// A certificate and its private key, both PEM. The key is a secret: never printed.
pub struct Pem {
    pub certificate: String,
    pub key: String,
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pem").finish_non_exhaustive()
    }
}

/// A new self-signed CA.
pub fn certificate_authority() -> Result<Pem, TlsError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(CA_NAME, &[]);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    valid_for(&mut params, CA_YEARS);
    let cert = params.self_signed(&key)?;
    Ok(Pem {
        certificate: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A serving certificate signed by `ca` for `names` (DNS names and IP addresses).
pub fn serving(ca: &Pem, names: &[String]) -> Result<Pem, TlsError> {
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name = name("rotor-apiserver", &[]);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    valid_for(&mut params, LEAF_YEARS);
    signed(params, ca)
}

/// A client certificate signed by `ca` naming `user` (CN) in `group` (O). One group at most:
/// rcgen holds one value per attribute type. (The server reads every O of a certificate made
/// elsewhere.)
pub fn client(ca: &Pem, user: &str, group: Option<&str>) -> Result<Pem, TlsError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(user, group.as_slice());
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    valid_for(&mut params, LEAF_YEARS);
    signed(params, ca)
}

fn signed(params: CertificateParams, ca: &Pem) -> Result<Pem, TlsError> {
    let ca_key = KeyPair::from_pem(&ca.key)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.certificate, ca_key)?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Pem {
        certificate: cert.pem(),
        key: key.serialize_pem(),
    })
}

fn name(common_name: &str, organizations: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    for o in organizations {
        dn.push(DnType::OrganizationName, *o);
    }
    dn
}

/// From yesterday (clocks differ) for `years`.
fn valid_for(params: &mut CertificateParams, years: i32) {
    let start = chrono::Utc::now() - chrono::Duration::days(1);
    let (y, m, d) = (start.year(), start.month() as u8, start.day() as u8);
    params.not_before = rcgen::date_time_ymd(y, m, d);
    // The first of the month: every month has one, whatever the year.
    params.not_after = rcgen::date_time_ymd(y + years, m, 1);
}

/// Whether the serving certificate `pem` must be made anew: it does not cover every one of
/// `names`, or ends within [`RENEW_WITHIN_DAYS`], or cannot be read.
pub fn needs_renewal(pem: &str, names: &[String]) -> bool {
    let Ok(certs) = super::certificates(pem, "serving certificate") else {
        return true;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(certs[0].as_ref()) else {
        return true;
    };
    let renew_at = chrono::Utc::now() + chrono::Duration::days(RENEW_WITHIN_DAYS);
    if cert.validity().not_after.timestamp() < renew_at.timestamp() {
        return true;
    }
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return true;
    };
    let covered = |wanted: &String| {
        san.value.general_names.iter().any(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(dns) => dns.eq_ignore_ascii_case(wanted),
            x509_parser::extensions::GeneralName::IPAddress(bytes) => wanted
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip_bytes(ip) == *bytes),
            _ => false,
        })
    };
    !names.iter().all(covered)
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_certificate_covers_its_names_until_asked_for_more() {
        let ca = certificate_authority().expect("CA");
        let names: Vec<String> = ["localhost", "127.0.0.1", "::1", "rotor.internal"]
            .map(String::from)
            .to_vec();
        let cert = serving(&ca, &names).expect("serving");
        assert!(!needs_renewal(&cert.certificate, &names));
        assert!(!needs_renewal(&cert.certificate, &names[..2]));
        let more = [names.clone(), vec!["10.0.0.7".to_string()]].concat();
        assert!(needs_renewal(&cert.certificate, &more));
        assert!(needs_renewal("not a certificate", &names));
        assert!(!format!("{cert:?}").contains("PRIVATE"));
    }
}
