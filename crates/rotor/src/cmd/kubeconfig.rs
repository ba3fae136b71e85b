//! `rotor kubeconfig`: a kubeconfig for a control plane `rotor serve` runs on a store — the
//! admin's (its token), or with `--user` a person's, holding a client certificate the rotor CA
//! signs (as `kubeadm kubeconfig user` does).

use clap::Args;
use rotor::controlplane::open_store_with;
use rotor::etcd_flags::EtcdFlags;

use super::serve::{SHARED_TOKEN_KEY, token_path};

#[derive(Args)]
pub struct KubeconfigArgs {
    /// The store given to `rotor serve`.
    #[arg(long, default_value = "sqlite:rotor.db")]
    pub store: String,
    /// TLS to an etcd store, as given to `rotor serve`.
    #[command(flatten)]
    pub etcd: rotor::etcd_flags::EtcdFlags,
    /// The address `rotor serve` listens on (`http://ADDR` for one started with
    /// `--insecure-http`); the kubeconfig trusts the rotor CA kept with the store.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub server: String,
    /// Instead of the admin token, a client certificate naming this user (its Common Name),
    /// signed by the rotor CA for a year. The kubeconfig then holds its private key: write it
    /// to a file only its user can read.
    #[arg(long)]
    pub user: Option<String>,
    /// The group of `--user` (the Organization of its certificate; one: rcgen, which makes
    /// it, holds one value per attribute).
    #[arg(long, requires = "user")]
    pub group: Option<String>,
}

pub async fn run(args: KubeconfigArgs) -> anyhow::Result<()> {
    let insecure = args.server.starts_with("http://");
    let server = match insecure {
        true => args.server.clone(),
        false => format!("https://{}", args.server.trim_start_matches("https://")),
    };
    let kubeconfig = match &args.user {
        Some(user) => {
            let ca = rotor::tls::kept_ca(&args.store, &args.etcd).await?;
            let cert = rotor_apiserver::tls::generate::client(&ca, user, args.group.as_deref())?;
            let ca = (!insecure).then_some(ca.certificate.as_str());
            rotor::kubeconfig::with_certificate(user, &server, ca, &cert.certificate, &cert.key)
        }
        None => {
            let token = admin_token(&args.store, &args.etcd).await?;
            let ca = match insecure {
                true => None,
                false => Some(
                    rotor::tls::kept_ca(&args.store, &args.etcd)
                        .await?
                        .certificate,
                ),
            };
            rotor::kubeconfig::with_token("rotor", &server, ca.as_deref(), &token)
        }
    };
    println!("{kubeconfig}");
    Ok(())
}

/// The admin token `rotor serve` keeps for `spec`'s store.
async fn admin_token(spec: &str, etcd: &EtcdFlags) -> anyhow::Result<String> {
    if spec.starts_with("etcd:") {
        let store = open_store_with(spec, etcd).await?;
        return match store.get(SHARED_TOKEN_KEY).await? {
            Some(kv) => Ok(String::from_utf8_lossy(&kv.value).trim().to_string()),
            None => anyhow::bail!(
                "--store {spec}: no admin token stored yet (has `rotor serve --store {spec}` run?)"
            ),
        };
    }
    let path = token_path(spec).ok_or_else(|| {
        anyhow::anyhow!("--store {spec}: only sqlite:PATH and etcd:URL stores keep a token")
    })?;
    let token = std::fs::read_to_string(&path).map_err(|e| {
        anyhow::anyhow!(
            "reading {}: {e} (has `rotor serve --store {spec}` run?)",
            path.display()
        )
    })?;
    Ok(token.trim().to_string())
}
