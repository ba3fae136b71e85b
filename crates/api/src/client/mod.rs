//! kube clients from kubeconfigs held in memory: the one construction every subsystem uses, so
//! the timeouts are chosen by what the calls are, and no error quotes the kubeconfig. A YAML
//! parse error names the offending value, and in a kubeconfig that value may be a token or a key:
//! these errors say only which step failed.

use std::fmt;
use std::time::Duration;

mod transport;

pub use transport::{H2C_EXTENSION, MEMBERS_PER_LANE, lanes_to};

/// How a client's calls are bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Calls {
    /// kube's defaults (retries inside a call, a 295 s read timeout): the CLI and tools.
    Default,
    /// Watches and long reads: no read timeout, no retries inside a call (watchers back off on
    /// their own; a call retrying a 503 for minutes would hide an outage), connects bounded.
    Watch,
    /// Request/response calls, each bounded by the duration (connect, read and write), without
    /// retries inside a call: a reconcile must not hold its object's queue for minutes; the
    /// controllers retry with backoff and say why.
    Bounded(Duration),
}

/// How long a `Watch` client waits for a connection.
const WATCH_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why no client could be made. Never contains the kubeconfig.
#[derive(Debug)]
pub struct ClientError {
    step: &'static str,
    /// kube's own error, for the steps whose errors cannot carry the kubeconfig's content.
    detail: Option<String>,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.detail {
            Some(d) => write!(f, "{}: {d}", self.step),
            None => f.write_str(self.step),
        }
    }
}

impl std::error::Error for ClientError {}

/// The kube client configuration of `kubeconfig` (YAML), bounded as `calls` says.
pub async fn config(kubeconfig: &str, calls: Calls) -> Result<kube::Config, ClientError> {
    Ok(parse(kubeconfig, calls).await?.0)
}

/// The configuration, and whether the cluster is marked as speaking HTTP/2 over plain HTTP.
async fn parse(kubeconfig: &str, calls: Calls) -> Result<(kube::Config, bool), ClientError> {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig).map_err(|_| ClientError {
        step: "the kubeconfig could not be parsed",
        detail: None,
    })?;
    let h2c = speaks_h2c(&kc);
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|_| ClientError {
                step: "the kubeconfig could not be loaded",
                detail: None,
            })?;
    match calls {
        Calls::Default => {}
        Calls::Watch => {
            config.default_retry = false;
            config.connect_timeout = Some(WATCH_CONNECT_TIMEOUT);
            config.read_timeout = None;
        }
        Calls::Bounded(timeout) => {
            config.default_retry = false;
            config.connect_timeout = Some(timeout);
            config.read_timeout = Some(timeout);
            config.write_timeout = Some(timeout);
        }
    }
    Ok((config, h2c))
}

/// Whether the current context's cluster carries the [`H2C_EXTENSION`].
fn speaks_h2c(kc: &kube::config::Kubeconfig) -> bool {
    let context = kc
        .contexts
        .iter()
        .find(|c| Some(&c.name) == kc.current_context.as_ref())
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.as_str());
    kc.clusters
        .iter()
        .find(|c| Some(c.name.as_str()) == context)
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.extensions.as_ref())
        .is_some_and(|e| e.iter().any(|e| e.name == H2C_EXTENSION))
}

/// A kube client for `kubeconfig` (YAML), bounded as `calls` says. Watch and bounded clients
/// share connections with the other members' (see [`transport`]).
pub async fn client(kubeconfig: &str, calls: Calls) -> Result<kube::Client, ClientError> {
    let (config, h2c) = parse(kubeconfig, calls).await?;
    let built = match transport::shared_client(&config, calls, h2c) {
        Some(shared) => shared,
        None => kube::Client::try_from(config),
    };
    built.map_err(|e| ClientError {
        step: "the client could not be built",
        detail: Some(e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "s3cr3t-b3ar3r-t0k3n";

    fn kubeconfig(user: &str) -> String {
        kubeconfig_at("http://127.0.0.1:1", user)
    }

    fn kubeconfig_at(server: &str, user: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
             clusters:\n- name: k\n  cluster:\n    server: {server}\n\
             contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n\
             users:\n- name: u\n  user:\n{user}\n"
        )
    }

    #[tokio::test]
    async fn errors_never_quote_the_kubeconfig() {
        // A token where a map belongs, a token in a list, a broken key: each fails somewhere.
        let broken = [
            kubeconfig(&format!("    token: {{{TOKEN}: [")),
            kubeconfig(&format!("    token: [{TOKEN}]")),
            kubeconfig_at(
                "https://127.0.0.1:1",
                &format!("    client-key-data: {TOKEN}\n    client-certificate-data: {TOKEN}"),
            ),
            format!("{TOKEN}: ["),
        ];
        for yaml in &broken {
            let err = client(yaml, Calls::Default)
                .await
                .err()
                .unwrap_or_else(|| panic!("no error for {yaml}"));
            let text = format!("{err} {err:?}");
            assert!(!text.contains(TOKEN), "{text}");
            assert!(
                text.contains("kubeconfig") || text.contains("client"),
                "{text}"
            );
        }
    }

    #[tokio::test]
    async fn calls_set_the_bounds() {
        let yaml = kubeconfig(&format!("    token: {TOKEN}"));
        let watch = config(&yaml, Calls::Watch).await.expect("config");
        assert_eq!(watch.read_timeout, None);
        assert!(!watch.default_retry);
        assert_eq!(watch.connect_timeout, Some(WATCH_CONNECT_TIMEOUT));
        let bounded = config(&yaml, Calls::Bounded(Duration::from_secs(3)))
            .await
            .expect("config");
        assert_eq!(bounded.read_timeout, Some(Duration::from_secs(3)));
        assert_eq!(bounded.write_timeout, Some(Duration::from_secs(3)));
        assert!(!bounded.default_retry);
        let default = config(&yaml, Calls::Default).await.expect("config");
        assert!(default.default_retry);
        assert!(client(&yaml, Calls::Default).await.is_ok());
    }
}
