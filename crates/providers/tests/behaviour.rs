//! One behavioural suite, every provider: the same tests run through the `Provider` seam
//! against `sim` (the simulator's own cloud), `eks` (EKS through the AWS SDK), `gke` (GKE
//! through Google's client) and `aks` (AKS through azure_core), each on `rotor sim`, whose fronts share one simulated cloud and its
//! faults. What a controller relies on must hold on each: create converges and is idempotent,
//! describe tells the state, a same-named instance of another swap is refused, throttling is
//! a retryable rate limit, a failed create reports Failed with the cloud's words, an outage
//! creates nothing, delete converges to gone, and credentials reach the instance's API.
//! Each provider's own suite (`eks_provider.rs`, on moto too; `gke_provider.rs`;
//! `aks_provider.rs`; `sim_provider.rs`) covers what is particular to it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rotor_providers::{
    Instance, InstanceSpec, InstanceState, Located, NodePoolSpec, Placement, Provider,
    ProviderError, idempotency_token, instance_name,
};
use rotor_sim::{CloudConfig, Sim, SimConfig};
use rotor_test_support::members::list_namespaces;

const LIMIT: Duration = Duration::from_secs(20);
const CLUSTER: &str = "prod-a";

/// The providers the suite runs on.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Sim,
    Eks,
    Gke,
    Aks,
}

/// A provider on a simulator of its own, at the placement its Clusters would have.
struct Subject {
    sim: Arc<Sim>,
    provider: Box<dyn Provider>,
    placement: Placement,
    kind: Kind,
}

impl Subject {
    async fn new(kind: Kind, failure_rate: f64) -> Subject {
        let sim = Sim::new(SimConfig {
            cloud: CloudConfig {
                create_latency: Duration::from_millis(50),
                delete_latency: Duration::from_millis(20),
                create_failure_rate: failure_rate,
            },
            nodes: 1,
            ..SimConfig::default()
        });
        let addr = sim.serve_loopback().await.expect("serve the simulator");
        let (provider, account, region): (Box<dyn Provider>, &str, &str) = match kind {
            Kind::Sim => (
                Box::new(rotor_providers::sim::SimProvider::new(&format!(
                    "http://{addr}"
                ))),
                "sim",
                "sim-1",
            ),
            Kind::Eks => {
                let options = rotor_test_support::aws::sim_options(addr);
                let config = rotor_aws::sdk_config(&options).await;
                let eks = rotor_providers::eks::EksProvider::new(
                    &config,
                    rotor_providers::eks::Accounts::Own,
                )
                .with_cluster_credentials(rotor_providers::eks::ClusterCredentials::Token);
                (Box::new(eks), rotor_sim::AWS_DEFAULT_ACCOUNT, "us-east-1")
            }
            Kind::Gke => {
                let gke =
                    rotor_providers::gke::GkeProvider::new(rotor_providers::gke::GkeOptions {
                        endpoint: Some(format!("http://{addr}/gcp")),
                        credentials: Some(rotor_providers::gke::static_token("ya29.suite")),
                    })
                    .await
                    .expect("GKE provider")
                    .with_cluster_credentials(rotor_providers::gke::ClusterCredentials::Token);
                (Box::new(gke), "rotor-suite", "europe-west1")
            }
            Kind::Aks => {
                let aks = rotor_providers::aks::AksProvider::new(rotor_azure::AzureOptions {
                    endpoint: Some(format!("http://{addr}/azure")),
                    credential: Some(rotor_azure::credentials::static_token("eyJ.suite")),
                })
                .expect("AKS provider");
                (
                    Box::new(aks),
                    "3f2b8c1d-5e6a-4b7c-8d9e-0a1b2c3d4e5f",
                    "westeurope",
                )
            }
        };
        Subject {
            sim,
            provider,
            placement: Placement {
                account: account.into(),
                region: region.into(),
            },
            kind,
        }
    }

    fn at(&self) -> Located<'_> {
        Located::new(self.provider.as_ref(), self.placement.clone())
    }

    /// The instance of `swap`, with what this provider needs in `spec.config`.
    fn spec(&self, swap: &str) -> InstanceSpec {
        let config = match self.kind {
            Kind::Eks => BTreeMap::from([
                ("roleArn".into(), role("eks-cluster")),
                ("nodeRoleArn".into(), role("eks-nodes")),
                ("subnetIds".into(), "subnet-a,subnet-b".into()),
            ]),
            Kind::Aks => BTreeMap::from([("resourceGroup".into(), "rotor-suite".into())]),
            Kind::Sim | Kind::Gke => BTreeMap::new(),
        };
        InstanceSpec {
            cluster: CLUSTER.into(),
            name: instance_name(CLUSTER, swap, 0),
            kubernetes_version: "1.34".into(),
            idempotency_token: idempotency_token(CLUSTER, swap, 0),
            node_pools: vec![NodePoolSpec {
                name: "general".into(),
                instance_type: "standard-4".into(),
                min_count: 1,
                max_count: 3,
                desired_count: 2,
            }],
            config,
        }
    }

    /// Calls `create_instance` until the instance runs.
    async fn create_until_running(&self, spec: &InstanceSpec) -> Instance {
        self.create_until(spec, InstanceState::Running).await
    }

    async fn create_until(&self, spec: &InstanceSpec, state: InstanceState) -> Instance {
        let deadline = Instant::now() + LIMIT;
        loop {
            let got = self.at().create_instance(spec).await.expect("create");
            if got.state == state {
                return got;
            }
            assert_eq!(
                got.state,
                InstanceState::Creating,
                "{:?}: {got:?}",
                self.kind
            );
            assert!(
                Instant::now() < deadline,
                "{:?}: not {state:?}: {got:?}",
                self.kind
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn role(name: &str) -> String {
    format!(
        "arn:aws:iam::{}:role/{name}",
        rotor_sim::AWS_DEFAULT_ACCOUNT
    )
}

/// For each test `name`, a module of that name with one test per provider.
macro_rules! on_every_provider {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sim() {
                super::$name(super::Kind::Sim).await
            }
            #[tokio::test]
            async fn eks() {
                super::$name(super::Kind::Eks).await
            }
            #[tokio::test]
            async fn gke() {
                super::$name(super::Kind::Gke).await
            }
            #[tokio::test]
            async fn aks() {
                super::$name(super::Kind::Aks).await
            }
        }
    )*};
}

on_every_provider!(
    create_converges_is_idempotent_and_describes_the_instance,
    a_same_named_instance_of_another_swap_is_refused,
    throttling_is_a_retryable_rate_limit_that_changes_nothing,
    a_failed_create_is_reported_failed_with_the_clouds_words,
    an_outage_is_retryable_and_creates_nothing,
    delete_converges_to_gone_and_is_idempotent,
    credentials_reach_the_instances_api,
);

async fn create_converges_is_idempotent_and_describes_the_instance(kind: Kind) {
    let s = Subject::new(kind, 0.0).await;
    let spec = s.spec("swap-1");
    assert_eq!(s.at().get_instance(&spec.name).await.expect("get"), None);
    let running = s.create_until_running(&spec).await;
    assert_eq!(running.name, spec.name);
    assert!(
        running.kubernetes_version.starts_with("1.34"),
        "{running:?}"
    );
    let again = s
        .at()
        .create_instance(&spec)
        .await
        .expect("a retried create");
    assert_eq!(
        (again.name.as_str(), again.state),
        (spec.name.as_str(), InstanceState::Running)
    );
    let described = s
        .at()
        .get_instance(&spec.name)
        .await
        .expect("get")
        .expect("known");
    assert_eq!(described.state, InstanceState::Running);
    assert_eq!(
        s.sim.cloud.created_total(),
        1,
        "{kind:?}: one instance, however often asked"
    );
}

async fn a_same_named_instance_of_another_swap_is_refused(kind: Kind) {
    let s = Subject::new(kind, 0.0).await;
    let ours = s.spec("swap-1");
    s.create_until_running(&ours).await;
    let theirs = InstanceSpec {
        idempotency_token: idempotency_token("someone-else", "swap-9", 0),
        ..ours.clone()
    };
    match s.at().create_instance(&theirs).await {
        Err(e @ ProviderError::Refused { .. }) => {
            assert!(!e.is_retryable(), "{e}");
            assert!(e.to_string().contains(&ours.name), "{kind:?}: {e}");
        }
        other => panic!("{kind:?}: expected Refused, got {other:?}"),
    }
    assert_eq!(s.sim.cloud.created_total(), 1);
}

async fn throttling_is_a_retryable_rate_limit_that_changes_nothing(kind: Kind) {
    let s = Subject::new(kind, 0.0).await;
    let spec = s.spec("swap-1");
    // The SDKs retry a throttled call a few times themselves: throttle more calls than that.
    s.sim
        .cloud
        .rate_limit_next_calls(20, Some(Duration::from_secs(1)));
    match s.at().create_instance(&spec).await {
        Err(e) => {
            assert!(e.rate_limited().is_some(), "{kind:?}: {e}");
            assert!(e.is_retryable(), "{e}");
        }
        Ok(i) => panic!("{kind:?}: created while throttled: {i:?}"),
    }
    assert_eq!(s.sim.cloud.created_total(), 0, "{kind:?}");
    s.sim.cloud.rate_limit_next_calls(0, None);
    s.create_until_running(&spec).await;
}

async fn a_failed_create_is_reported_failed_with_the_clouds_words(kind: Kind) {
    let s = Subject::new(kind, 1.0).await;
    let spec = s.spec("swap-1");
    let failed = s.create_until(&spec, InstanceState::Failed).await;
    assert!(!failed.message.is_empty(), "{kind:?}: {failed:?}");
    let described = s
        .at()
        .get_instance(&spec.name)
        .await
        .expect("get")
        .expect("known");
    assert_eq!(described.state, InstanceState::Failed, "{kind:?}");
}

async fn an_outage_is_retryable_and_creates_nothing(kind: Kind) {
    let s = Subject::new(kind, 0.0).await;
    let spec = s.spec("swap-1");
    // An outage longer than the SDKs' own retries (the AWS SDK retries a 503 create).
    s.sim.cloud.fail_next_creates(20);
    let e = s.at().create_instance(&spec).await.expect_err("an outage");
    assert!(
        e.is_retryable() && e.rate_limited().is_none(),
        "{kind:?}: {e}"
    );
    assert_eq!(s.sim.cloud.created_total(), 0, "{kind:?}");
    assert!(
        s.sim.cloud.failed_creates_pending() < 20,
        "{kind:?}: never asked"
    );
    s.sim.cloud.fail_next_creates(0);
    s.create_until_running(&spec).await;
    assert_eq!(s.sim.cloud.created_total(), 1, "{kind:?}");
}

async fn delete_converges_to_gone_and_is_idempotent(kind: Kind) {
    let s = Subject::new(kind, 0.0).await;
    let spec = s.spec("swap-1");
    s.create_until_running(&spec).await;
    let deadline = Instant::now() + LIMIT;
    loop {
        s.at().delete_instance(&spec.name).await.expect("delete");
        match s.at().get_instance(&spec.name).await.expect("get") {
            None => break,
            Some(i) => assert_ne!(i.state, InstanceState::Running, "{kind:?}: {i:?}"),
        }
        assert!(Instant::now() < deadline, "{kind:?}: not gone");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.at()
        .delete_instance(&spec.name)
        .await
        .expect("deleting what is gone");
    assert_eq!(s.sim.cloud.deleted_total(), 1, "{kind:?}");
}

async fn credentials_reach_the_instances_api(kind: Kind) {
    let s = Subject::new(kind, 0.0).await;
    let spec = s.spec("swap-1");
    s.create_until_running(&spec).await;
    let kubeconfig = s.at().credentials(&spec.name).await.expect("credentials");
    assert!(!format!("{kubeconfig:?}").contains("token"), "{kind:?}");
    let listed = list_namespaces(kubeconfig.expose())
        .await
        .unwrap_or_else(|e| panic!("{kind:?}: the instance's API refused: {e}"));
    let names: Vec<String> = listed
        .items
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    assert!(
        names.iter().any(|n| n == "kube-system"),
        "{kind:?}: {names:?}"
    );
}
