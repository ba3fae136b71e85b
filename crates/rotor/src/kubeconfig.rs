//! The kubeconfigs rotor writes for its own API: the server, the CA that verifies it
//! (`certificate-authority-data`) and the user's credentials — the admin token, or a client
//! certificate the rotor CA signed (`rotor kubeconfig --user`).

use base64::Engine;
use serde_json::{Value, json};

/// A kubeconfig presenting `token`. Without `ca_pem` the server is plain HTTP
/// (`--insecure-http`) or its certificate is checked against the system's roots.
pub fn with_token(name: &str, server: &str, ca_pem: Option<&str>, token: &str) -> String {
    document(name, server, ca_pem, json!({"token": token}))
}

/// A kubeconfig presenting the client certificate `cert_pem` with its key `key_pem`.
pub fn with_certificate(
    name: &str,
    server: &str,
    ca_pem: Option<&str>,
    cert_pem: &str,
    key_pem: &str,
) -> String {
    let user = json!({
        "client-certificate-data": base64(cert_pem),
        "client-key-data": base64(key_pem),
    });
    document(name, server, ca_pem, user)
}

/// One cluster, user and context, all named `name`.
fn document(name: &str, server: &str, ca_pem: Option<&str>, user: Value) -> String {
    let mut cluster = json!({"server": server});
    if let Some(ca) = ca_pem {
        cluster["certificate-authority-data"] = base64(ca).into();
    }
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "preferences": {},
    });
    // JSON is YAML; kubectl and kube-rs read it as such.
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

fn base64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}
