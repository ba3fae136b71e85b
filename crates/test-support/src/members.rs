//! A member cluster's API reached from a kubeconfig, as a user's tools reach it: what the
//! provider suites check their credentials with.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::ObjectList;

/// The namespaces of the cluster `kubeconfig` (YAML or JSON) points at, with its credentials.
pub async fn list_namespaces(kubeconfig: &str) -> Result<ObjectList<Namespace>, kube::Error> {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(kubeconfig).expect("a kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("a client config");
    let client = kube::Client::try_from(config).expect("a client");
    kube::Api::<Namespace>::all(client)
        .list(&Default::default())
        .await
}
