//! Kubeconfigs a test writes for itself: the server a `rotor serve` wrote into its own
//! kubeconfig, with whatever credentials the test wants to present (none, a token, a client
//! certificate) — what a person given only some of them would hold.

use base64::Engine;
use serde_json::{Value, json};

/// What a kubeconfig's user presents.
pub enum Credentials<'a> {
    None,
    /// A user name alone: kubectl, which prompts for one when a kubeconfig has no credentials,
    /// then sends it as basic authentication without a password — which no Kubernetes API
    /// takes as a credential (gone since 1.19), so the request is credential-less to it.
    UsernameOnly(&'a str),
    Token(&'a str),
    /// A client certificate and its key, PEM.
    Certificate {
        cert: &'a str,
        key: &'a str,
    },
}

/// `admin` (a kubeconfig as `rotor serve` writes it: JSON) with its user's credentials
/// replaced by `credentials`; the server and its CA are kept.
pub fn with_credentials(admin: &str, credentials: Credentials<'_>) -> String {
    let mut doc: Value = serde_json::from_str(admin).expect("a kubeconfig rotor wrote (JSON)");
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    let user = match credentials {
        Credentials::None => json!({}),
        Credentials::UsernameOnly(name) => json!({"username": name}),
        Credentials::Token(token) => json!({"token": token}),
        Credentials::Certificate { cert, key } => json!({
            "client-certificate-data": b64(cert),
            "client-key-data": b64(key),
        }),
    };
    doc["users"][0]["user"] = user;
    serde_json::to_string_pretty(&doc).expect("JSON")
}

/// The server URL of a kubeconfig rotor wrote.
pub fn server(kubeconfig: &str) -> String {
    field(kubeconfig, "/clusters/0/cluster/server")
}

/// The admin token of a kubeconfig rotor wrote.
pub fn token(kubeconfig: &str) -> String {
    field(kubeconfig, "/users/0/user/token")
}

/// The CA a kubeconfig rotor wrote trusts, PEM (what a pod finds in its `ca.crt`).
pub fn ca_pem(kubeconfig: &str) -> String {
    let data = field(kubeconfig, "/clusters/0/cluster/certificate-authority-data");
    let pem = base64::engine::general_purpose::STANDARD
        .decode(data)
        .expect("base64 CA data");
    String::from_utf8(pem).expect("a PEM CA")
}

fn field(kubeconfig: &str, pointer: &str) -> String {
    let doc: Value = serde_json::from_str(kubeconfig).expect("a kubeconfig rotor wrote (JSON)");
    doc.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{pointer} in the kubeconfig"))
        .to_string()
}

/// `kubeconfig` pointing at `server` instead (another scheme, another address).
pub fn with_server(kubeconfig: &str, server: &str) -> String {
    let mut doc: Value = serde_json::from_str(kubeconfig).expect("a kubeconfig rotor wrote (JSON)");
    doc["clusters"][0]["cluster"]["server"] = json!(server);
    serde_json::to_string_pretty(&doc).expect("JSON")
}
