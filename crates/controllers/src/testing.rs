//! For the crate's unit tests: a simulator's clusters served on loopback, reached as a client
//! reaches an API server.

use std::sync::Arc;

use rotor_sim::Sim;

/// Serves `sim`'s clusters on a loopback port: the base URL and the server's task.
pub(crate) async fn serve(sim: &Arc<Sim>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let router = sim.router();
    let server = tokio::spawn(async move {
        let _ = rotor_apiserver::http::serve(listener, router).await;
    });
    (base, server)
}

/// A client of `sim`'s cluster `name` served at `base`, with that cluster's credentials.
pub(crate) async fn client(sim: &Sim, name: &str, base: &str) -> kube::Client {
    let yaml = sim.kubeconfig(name, base).expect("kubeconfig");
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml).expect("yaml");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    kube::Client::try_from(config).expect("client")
}
