//! Certificates a test makes for the TLS processes it starts (etcd with client certificates):
//! rcgen with ECDSA P-256, as rotor-apiserver's `tls::generate` makes rotor's own CA.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// A certificate and its private key, both PEM. The key is a secret: never printed.
#[derive(Clone)]
pub struct Pem {
    pub certificate: String,
    pub key: String,
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pem").finish_non_exhaustive()
    }
}

impl Pem {
    /// The key's base64 body, without its PEM armour: what a leaked key would show in a log.
    pub fn key_body(&self) -> String {
        self.key
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect()
    }
}

/// A self-signed CA that signs serving and client certificates.
#[derive(Debug, Clone)]
pub struct Ca {
    pub pem: Pem,
}

impl Ca {
    /// A new CA named `name`.
    pub fn new(name: &str) -> anyhow::Result<Ca> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            pem: Pem {
                certificate: cert.pem(),
                key: key.serialize_pem(),
            },
        })
    }

    /// A serving certificate for `names` (DNS names and IP addresses). It may authenticate as a
    /// client too: etcd dials itself with its serving certificate (its gRPC gateway).
    pub fn serving(&self, names: &[&str]) -> anyhow::Result<Pem> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name = common_name("etcd");
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.sign(params)
    }

    /// A client certificate whose Common Name is `user`.
    pub fn client(&self, user: &str) -> anyhow::Result<Pem> {
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(user);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, mut params: CertificateParams) -> anyhow::Result<Pem> {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let issuer =
            Issuer::from_ca_cert_pem(&self.pem.certificate, KeyPair::from_pem(&self.pem.key)?)?;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Pem {
            certificate: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}
