//! Token mode for AKS clusters with Azure AD. `listClusterUserCredential` answers them a
//! kubeconfig with no credential in it, naming `kubelogin` as an exec plugin; in token mode
//! rotor puts in its place an Azure AD token for the scope `kubelogin` would ask for (AKS's
//! server application, its `--server-id`), from rotor's own Azure credential, so that no
//! plugin binary is needed. A kubeconfig that already carries a credential (a local account's
//! token, a client certificate) is kept as AKS wrote it.

use rotor_azure::{Arm, Failure};
use serde::Deserialize;

use crate::Kubeconfig;

/// The audience of tokens for an Azure AD cluster's API when the kubeconfig names none: the
/// application id of AKS's Azure AD server application, the same in every tenant.
pub const AKS_AAD_SERVER_ID: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";

/// What token mode needs of a kubeconfig (the first cluster and the first user).
#[derive(Deserialize)]
struct Doc {
    #[serde(default)]
    clusters: Vec<Named<Cluster>>,
    #[serde(default)]
    users: Vec<Named<User>>,
}

#[derive(Deserialize)]
struct Named<T> {
    #[serde(alias = "cluster", alias = "user")]
    value: T,
}

#[derive(Deserialize)]
struct Cluster {
    server: String,
    #[serde(rename = "certificate-authority-data", default)]
    ca: Option<String>,
}

#[derive(Deserialize)]
struct User {
    exec: Option<Exec>,
}

#[derive(Deserialize)]
struct Exec {
    command: String,
    #[serde(default)]
    args: Vec<String>,
}

/// Why a kubeconfig could not be put in token mode. Never quotes the kubeconfig.
#[derive(Debug)]
pub(super) enum TokenModeError {
    /// Not a kubeconfig this reads (no cluster, not YAML).
    Unreadable(String),
    /// Azure AD gave no token for the cluster's server application.
    Token(Failure),
}

/// `returned` with `kubelogin` replaced by a token for its server application, or as it is
/// when it names no `kubelogin`.
pub(super) async fn token_mode(
    arm: &Arm,
    name: &str,
    returned: Kubeconfig,
) -> Result<Kubeconfig, TokenModeError> {
    let doc: Doc = serde_saphyr::from_str(returned.expose()).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" at line {}", l.line()))
            .unwrap_or_default();
        TokenModeError::Unreadable(format!("the kubeconfig is not YAML{at}"))
    })?;
    let Some(exec) = doc.users.into_iter().next().and_then(|u| u.value.exec) else {
        return Ok(returned);
    };
    if !is_kubelogin(&exec.command) {
        return Ok(returned);
    }
    let cluster = doc
        .clusters
        .into_iter()
        .next()
        .ok_or_else(|| TokenModeError::Unreadable("the kubeconfig names no cluster".into()))?
        .value;
    let scope = format!("{}/.default", server_id(&exec.args));
    let token = arm.token(&scope).await.map_err(TokenModeError::Token)?;
    let mut entry = serde_json::json!({"server": cluster.server});
    if let Some(ca) = cluster.ca {
        entry["certificate-authority-data"] = ca.into();
    }
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": name, "cluster": entry}],
        "users": [{"name": name, "user": {"token": token.secret()}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    });
    Ok(Kubeconfig::new(kubeconfig.to_string()))
}

/// `kubelogin`, by name or path (`/usr/local/bin/kubelogin`, `kubelogin.exe`).
fn is_kubelogin(command: &str) -> bool {
    let file = command.rsplit(['/', '\\']).next().unwrap_or(command);
    file == "kubelogin" || file == "kubelogin.exe"
}

/// The `--server-id` of `kubelogin get-token`'s arguments (`--server-id X` or
/// `--server-id=X`), else AKS's.
fn server_id(args: &[String]) -> &str {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--server-id" {
            return args.next().map_or(AKS_AAD_SERVER_ID, String::as_str);
        }
        if let Some(id) = arg.strip_prefix("--server-id=") {
            return id;
        }
    }
    AKS_AAD_SERVER_ID
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn the_server_id_is_read_from_kubelogins_arguments() {
        let spaced = strings(&["get-token", "--server-id", "app-1", "--login", "azurecli"]);
        assert_eq!(server_id(&spaced), "app-1");
        assert_eq!(server_id(&strings(&["--server-id=app-2"])), "app-2");
        assert_eq!(server_id(&strings(&["get-token"])), AKS_AAD_SERVER_ID);
        assert_eq!(server_id(&strings(&["--server-id"])), AKS_AAD_SERVER_ID);
        assert!(is_kubelogin("kubelogin") && is_kubelogin("/opt/bin/kubelogin"));
        assert!(is_kubelogin(r"C:\tools\kubelogin.exe"));
        assert!(!is_kubelogin("aws") && !is_kubelogin("kubelogin-wrapper"));
    }

    #[tokio::test]
    async fn a_kubeconfig_with_a_credential_is_kept_and_a_broken_one_never_quoted() {
        let arm = Arm::new(rotor_azure::AzureOptions {
            endpoint: Some("http://127.0.0.1:1/azure".into()),
            credential: Some(rotor_azure::credentials::static_token("t")),
        })
        .unwrap();
        let local = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://c:443\nusers:\n- name: u\n  user:\n    token: s3cret\n";
        let kept = token_mode(&arm, "c", Kubeconfig::new(local.into()))
            .await
            .unwrap();
        assert_eq!(kept.expose(), local);
        let broken = "users: [ {token: s3cret";
        match token_mode(&arm, "c", Kubeconfig::new(broken.into())).await {
            Err(TokenModeError::Unreadable(m)) => assert!(!m.contains("s3cret"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
