//! Discovery against the simulator over real HTTP: every write below goes through a member's
//! Kubernetes API with kube-rs, every observation through discovery's watches. Every wait is
//! bounded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::Next;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use rotor_api::WorkloadSelector;
use rotor_discovery::{Discovery, Selection, Settings, Summary, client_for_kubeconfig};
use rotor_sim::{Fault, Sim, SimConfig};
use serde_json::json;
use tokio::sync::broadcast;

/// Bounds every wait: a test that would hang fails instead.
const LIMIT: Duration = Duration::from_secs(15);

struct Fixture {
    sim: Arc<Sim>,
    addr: SocketAddr,
    discovery: Arc<Discovery>,
    /// Deployment list requests (not watches) the simulator has answered.
    deployment_lists: Arc<AtomicUsize>,
    /// Node list requests (not watches).
    node_lists: Arc<AtomicUsize>,
}

fn settings() -> Settings {
    Settings {
        silence: Duration::from_millis(600),
        probe_timeout: Duration::from_millis(500),
        unreachable_probe_interval: Duration::from_millis(200),
        ..Settings::default()
    }
}

async fn start(clusters: &[&str]) -> Fixture {
    start_with(clusters, settings()).await
}

async fn start_with(clusters: &[&str], settings: Settings) -> Fixture {
    let sim = Sim::new(SimConfig {
        nodes: 3,
        node_ready_delay: Duration::from_millis(100),
        workload_ready_delay: Duration::from_millis(100),
        ..SimConfig::default()
    });
    for name in clusters {
        sim.add_cluster(name, 35).await.expect("cluster");
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let deployment_lists = Arc::new(AtomicUsize::new(0));
    let node_lists = Arc::new(AtomicUsize::new(0));
    let (counter, nodes_counter) = (deployment_lists.clone(), node_lists.clone());
    let router = sim.router().layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let uri = req.uri();
            if !uri.query().unwrap_or_default().contains("watch") {
                if uri.path().ends_with("/deployments") {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                if uri.path().ends_with("/api/v1/nodes") {
                    nodes_counter.fetch_add(1, Ordering::Relaxed);
                }
            }
            next.run(req)
        },
    ));
    tokio::spawn(async move {
        let _ = rotor_apiserver::http::serve(listener, router).await;
    });
    Fixture {
        sim,
        addr,
        discovery: Discovery::new(settings),
        deployment_lists,
        node_lists,
    }
}

impl Fixture {
    async fn client(&self, name: &str) -> kube::Client {
        let kubeconfig = self
            .sim
            .kubeconfig(name, &format!("http://{}", self.addr))
            .expect("kubeconfig");
        client_for_kubeconfig(&kubeconfig).await.expect("client")
    }

    async fn watch(&self, name: &str, selection: Selection) {
        let client = self.client(name).await;
        assert!(self.discovery.watch_instance(name, client, selection));
    }

    /// Waits until `name`'s summary satisfies `check`; panics with the last summary otherwise.
    async fn until(&self, name: &str, what: &str, check: impl Fn(&Summary) -> bool) -> Summary {
        let mut rx = self.discovery.changes();
        let deadline = Instant::now() + LIMIT;
        loop {
            let now = self.discovery.summary(name);
            if let Some(s) = &now
                && check(s)
            {
                return s.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{name}: timed out waiting for {what}; last summary {now:?}"
            );
            // Woken by any change; the periodic re-check covers a lagged receiver.
            let woke = tokio::time::timeout(left.min(Duration::from_millis(100)), rx.recv()).await;
            if let Ok(Err(broadcast::error::RecvError::Closed)) = woke {
                panic!("change channel closed");
            }
        }
    }

    async fn healthy(&self, name: &str) -> Summary {
        self.until(name, "healthy", |s| s.healthy()).await
    }
}

async fn create_namespace(client: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns");
    api.create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
}

async fn create_deployment(client: &kube::Client, ns: &str, name: &str, replicas: i32) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "app:1"}]}}},
    }))
    .expect("deployment");
    api.create(&PostParams::default(), &d)
        .await
        .expect("create deployment");
}

/// Sets node `name`'s Ready condition through the status subresource.
async fn set_node_ready(client: &kube::Client, name: &str, ready: bool) {
    let api: Api<Node> = Api::all(client.clone());
    let (status, reason) = if ready {
        ("True", "KubeletReady")
    } else {
        ("False", "KubeletNotReady")
    };
    let patch =
        json!({"status": {"conditions": [{"type": "Ready", "status": status, "reason": reason}]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch node status");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_become_ready_and_a_deployment_becomes_available() {
    let f = start(&["alpha"]).await;
    f.watch("alpha", Selection::everything()).await;
    let s = f
        .until("alpha", "3 Ready nodes", |s| {
            s.synced && s.reachable && s.nodes_total == 3 && s.nodes_ready == 3
        })
        .await;
    assert_eq!(s.server_minor, Some(35));
    assert_eq!(s.server_version.as_deref(), Some("v1.35.0"));
    assert!(s.healthy(), "{s:?}");

    let client = f.client("alpha").await;
    // System namespaces never count, whatever the selection says.
    create_deployment(&client, "kube-system", "coredns", 2).await;
    create_namespace(&client, "demo-app").await;
    create_deployment(&client, "demo-app", "web", 2).await;
    let s = f
        .until("alpha", "demo-app/web available", |s| {
            s.workloads_total == 1 && s.workloads_available == 1
        })
        .await;
    assert!(s.healthy(), "{s:?}");

    // A PDB that allows no disruption is reported, without making the instance unhealthy.
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "demo-app");
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
    }))
    .expect("pdb");
    pdbs.create(&PostParams::default(), &pdb)
        .await
        .expect("create pdb");
    let s = f
        .until("alpha", "a blocking PDB", |s| {
            s.pdbs_total == 1 && s.pdbs_blocking == 1
        })
        .await;
    assert!(s.healthy(), "{s:?}");

    // A workload losing availability names itself in the reason.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "demo-app");
    deployments
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"availableReplicas": 1}})),
        )
        .await
        .expect("patch deployment status");
    let s = f
        .until("alpha", "web unavailable", |s| s.workloads_available == 0)
        .await;
    assert_eq!(
        s.reason.as_deref(),
        Some("Deployment demo-app/web: 1/2 available")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_going_not_ready_is_seen_within_a_bound_and_announced() {
    let f = start(&["alpha"]).await;
    f.watch("alpha", Selection::everything()).await;
    f.healthy("alpha").await;
    let client = f.client("alpha").await;

    let mut rx = f.discovery.changes();
    let t = Instant::now();
    set_node_ready(&client, "node-1", false).await;
    let s = f
        .until("alpha", "node-1 NotReady", |s| s.nodes_ready == 2)
        .await;
    let first = t.elapsed();
    assert!(first < Duration::from_secs(2), "took {first:?}");
    assert_eq!(s.reason.as_deref(), Some("Node node-1: NotReady"));
    assert!(!s.healthy());
    let announced = tokio::time::timeout(LIMIT, async {
        loop {
            match rx.recv().await {
                Ok(name) if name == "alpha" => return,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => panic!("closed"),
            }
        }
    })
    .await;
    assert!(announced.is_ok(), "the change was not announced");

    // Write → summary latency over HTTP, toggling the node (measured, not asserted).
    let mut samples = Vec::new();
    for i in 0..41 {
        let ready = i % 2 == 0;
        let want = if ready { 3 } else { 2 };
        let t = Instant::now();
        set_node_ready(&client, "node-1", ready).await;
        f.until("alpha", "node-1 toggled", |s| s.nodes_ready == want)
            .await;
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "write→summary latency over HTTP: first {:.2} ms, p50 {:.2} ms, p90 {:.2} ms, max {:.2} ms ({} samples)",
        first.as_secs_f64() * 1000.0,
        samples[samples.len() / 2],
        samples[samples.len() * 9 / 10],
        samples[samples.len() - 1],
        samples.len()
    );
    f.healthy("alpha").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_api_is_unreachable_then_back() {
    let f = start(&["alpha"]).await;
    f.watch("alpha", Selection::everything()).await;
    f.healthy("alpha").await;

    let t = Instant::now();
    assert!(f.sim.set_fault("alpha", Fault::ApiUnavailable));
    let s = f.until("alpha", "unreachable", |s| !s.reachable).await;
    println!("ApiUnavailable → unreachable in {:?}", t.elapsed());
    let reason = s.reason.unwrap_or_default();
    assert!(reason.starts_with("API unreachable"), "{reason}");
    // The last known counts stay, flagged by the reason.
    assert_eq!(s.nodes_total, 3);

    // A change during the outage (made behind the failing endpoint) is caught up afterwards.
    let server = f.sim.cluster("alpha").expect("member").server.clone();
    let nodes = server.resource("", "v1", "nodes").expect("nodes");
    server
        .patch(
            &nodes,
            None,
            "node-0",
            rotor_apiserver::PatchType::Merge,
            &json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
            Some("status"),
            &rotor_apiserver::WriteOptions::default(),
        )
        .await
        .expect("patch during the outage");

    let t = Instant::now();
    f.sim.clear_faults("alpha");
    let s = f
        .until("alpha", "reachable with node-0 NotReady", |s| {
            s.reachable && s.nodes_ready == 2
        })
        .await;
    println!("fault cleared → caught up in {:?}", t.elapsed());
    assert_eq!(s.reason.as_deref(), Some("Node node-0: NotReady"));

    // The watches are live again: a change made after the outage shows.
    let client = f.client("alpha").await;
    set_node_ready(&client, "node-0", true).await;
    f.healthy("alpha").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_api_is_caught_by_the_watchdog() {
    let f = start(&["alpha"]).await;
    f.watch("alpha", Selection::everything()).await;
    f.healthy("alpha").await;

    // Requests are held, never answered: only silence and a timed-out probe tell.
    let t = Instant::now();
    assert!(f.sim.set_fault("alpha", Fault::ApiTimeout));
    let s = f.until("alpha", "unreachable", |s| !s.reachable).await;
    let took = t.elapsed();
    println!("ApiTimeout → unreachable in {took:?}");
    let bound = settings().silence + settings().probe_timeout + Duration::from_secs(1);
    assert!(took < bound, "took {took:?}, bound {bound:?}");
    assert!(
        s.reason
            .as_deref()
            .unwrap_or_default()
            .contains("did not answer"),
        "{s:?}"
    );

    f.sim.clear_faults("alpha");
    f.healthy("alpha").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_are_added_reselected_and_forgotten() {
    let f = start(&["alpha", "beta"]).await;
    f.watch("alpha", Selection::everything()).await;
    f.healthy("alpha").await;
    assert_eq!(f.discovery.summary("beta"), None);

    let beta = f.client("beta").await;
    create_namespace(&beta, "shop").await;
    create_namespace(&beta, "blog").await;
    create_deployment(&beta, "shop", "cart", 1).await;
    create_deployment(&beta, "blog", "posts", 1).await;
    f.watch("beta", Selection::everything()).await;
    f.until("beta", "both workloads", |s| {
        s.healthy() && s.workloads_total == 2
    })
    .await;

    // Watching again with the same selection changes nothing; another selection restarts.
    assert!(
        !f.discovery
            .watch_instance("beta", beta.clone(), Selection::everything())
    );
    let shop_only = Selection::from(WorkloadSelector {
        include_namespaces: vec!["shop".into()],
        ..WorkloadSelector::default()
    });
    assert!(f.discovery.watch_instance("beta", beta.clone(), shop_only));
    f.until("beta", "only shop", |s| {
        s.healthy() && s.workloads_total == 1
    })
    .await;
    assert_eq!(f.discovery.instances(), ["alpha", "beta"]);

    let mut rx = f.discovery.changes();
    assert!(f.discovery.forget_instance("alpha"));
    assert!(!f.discovery.forget_instance("alpha"));
    assert_eq!(f.discovery.summary("alpha"), None);
    assert_eq!(f.discovery.instances(), ["beta"]);
    // beta's watches may still announce changes of their own (its re-selection); alpha's
    // forgetting must be among what comes, within the bound.
    let announced = async {
        loop {
            if rx.recv().await.expect("received") == "alpha" {
                return;
            }
        }
    };
    tokio::time::timeout(LIMIT, announced)
        .await
        .expect("alpha's forgetting announced");

    // The remaining instance still follows its cluster.
    set_node_ready(&beta, "node-0", false).await;
    f.until("beta", "node-0 NotReady", |s| s.nodes_ready == 2)
        .await;
    // A forgotten instance stays forgotten.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(f.discovery.summary("alpha"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_resync_relists_without_flapping() {
    let f = start_with(
        &["alpha"],
        Settings {
            resync: Duration::from_millis(300),
            ..settings()
        },
    )
    .await;
    let client = f.client("alpha").await;
    create_deployment(&client, "default", "web", 1).await;
    f.watch("alpha", Selection::everything()).await;
    let before = f
        .until("alpha", "healthy with web", |s| {
            s.healthy() && s.workloads_total == 1
        })
        .await;
    let lists = f.deployment_lists.load(Ordering::Relaxed);

    let mut rx = f.discovery.changes();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let relists = f.deployment_lists.load(Ordering::Relaxed) - lists;
    assert!(
        relists >= 2,
        "{relists} relists in 1.5s with a 300ms resync"
    );
    // Each relist replaced the view at once: nothing changed, nothing was announced.
    assert_eq!(f.discovery.summary("alpha"), Some(before));
    while let Ok(name) = rx.try_recv() {
        assert_ne!(name, "alpha", "a resync was announced as a change");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_resync_repairs_a_missed_event() {
    let resync = Duration::from_millis(2500);
    let f = start_with(
        &["alpha"],
        Settings {
            resync,
            ..settings()
        },
    )
    .await;
    f.watch("alpha", Selection::everything()).await;
    let before = f.healthy("alpha").await;
    assert_eq!(before.nodes_ready, 3);
    let client = f.client("alpha").await;

    // The watches stay open and bookmarks flow, but object events are lost: the change below
    // never reaches discovery through its watches.
    assert!(f.sim.set_fault("alpha", Fault::WatchEventsDropped));
    let lists = f.node_lists.load(Ordering::Relaxed);
    let t = Instant::now();
    set_node_ready(&client, "node-2", false).await;

    // Missed, really: without the fault this shows within milliseconds (see the latency test);
    // the summary still says 3 Ready well after that, and still counts as current (the API
    // answers, so the watchdog has nothing to say).
    tokio::time::sleep(Duration::from_millis(400)).await;
    let s = f.discovery.summary("alpha").expect("watched");
    if f.node_lists.load(Ordering::Relaxed) == lists {
        assert_eq!(s.nodes_ready, 3, "the event was not missed: {s:?}");
        assert!(
            f.discovery
                .current_summary("alpha", &Selection::everything())
                .is_some()
        );
    } else {
        println!("a resync ran within 400 ms: the miss could not be observed this time");
    }

    // The periodic relist (jittered ±25 %) repairs it, with the fault still on.
    let s = f
        .until("alpha", "node-2 NotReady after the resync", |s| {
            s.nodes_ready == 2
        })
        .await;
    let took = t.elapsed();
    println!("missed event repaired by the resync after {took:?} (resync {resync:?} ±25 %)");
    assert!(
        f.node_lists.load(Ordering::Relaxed) > lists,
        "repaired without a relist"
    );
    assert!(
        took <= resync.mul_f64(1.25) + Duration::from_secs(2),
        "took {took:?}"
    );
    assert_eq!(s.reason.as_deref(), Some("Node node-2: NotReady"));
    assert!(s.reachable && s.synced);

    // The fault cleared, the watches carry changes again.
    f.sim.clear_faults("alpha");
    set_node_ready(&client, "node-2", true).await;
    let t = Instant::now();
    f.healthy("alpha").await;
    assert!(
        t.elapsed() < resync / 2,
        "a live watch took {:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_is_current_only_while_the_instance_answers() {
    let f = start(&["alpha"]).await;
    let everything = Selection::everything();
    assert_eq!(f.discovery.current_summary("alpha", &everything), None);
    f.watch("alpha", everything.clone()).await;
    f.healthy("alpha").await;
    let s = f
        .discovery
        .current_summary("alpha", &everything)
        .expect("a healthy, listening instance is current");
    assert!(s.healthy());
    assert_eq!(
        f.discovery.max_unheard(),
        settings().silence + settings().probe_timeout
    );

    // Another selection counts other workloads: not an answer for it. A selector that selects
    // everything is the same selection as none.
    let shop = Selection::from(WorkloadSelector {
        include_namespaces: vec!["shop".into()],
        ..WorkloadSelector::default()
    });
    assert_eq!(f.discovery.current_summary("alpha", &shop), None);
    assert_eq!(
        Selection::all_of([WorkloadSelector::default(), WorkloadSelector::default()]),
        everything
    );

    // A hung API: no longer current once unheard for longer than the watchdog allows, even
    // before the watchdog's probe has timed out and the summary says unreachable.
    assert!(f.sim.set_fault("alpha", Fault::ApiTimeout));
    let t = Instant::now();
    let deadline = t + LIMIT;
    while f.discovery.current_summary("alpha", &everything).is_some() {
        assert!(Instant::now() < deadline, "still current after {LIMIT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = t.elapsed();
    println!("hung API → summary no longer current after {took:?}");
    assert!(
        took <= f.discovery.max_unheard() + Duration::from_secs(1),
        "took {took:?}"
    );
    f.sim.clear_faults("alpha");
    f.healthy("alpha").await;
    let deadline = Instant::now() + LIMIT;
    while f.discovery.current_summary("alpha", &everything).is_none() {
        assert!(Instant::now() < deadline, "never current again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A watch whose history is gone (`410 Expired`, as after a compaction) makes discovery relist,
/// and the relist brings what the watch missed. The periodic resync is minutes away here, so
/// only the 410 can explain the repair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_makes_discovery_relist_and_catch_up() {
    let f = start_with(
        &["alpha"],
        Settings {
            resync: Duration::from_secs(300),
            ..settings()
        },
    )
    .await;
    f.watch("alpha", Selection::everything()).await;
    assert_eq!(f.healthy("alpha").await.nodes_ready, 3);
    let client = f.client("alpha").await;

    // The change is lost on the wire…
    assert!(f.sim.set_fault("alpha", Fault::WatchEventsDropped));
    set_node_ready(&client, "node-2", false).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        f.discovery.summary("alpha").expect("watched").nodes_ready,
        3,
        "the event was not missed"
    );
    // …then the watch history expires: open watches end with an ERROR 410 event, and resuming
    // from a resourceVersion is refused the same way.
    let lists = f.node_lists.load(Ordering::Relaxed);
    assert!(f.sim.set_fault("alpha", Fault::WatchExpired));
    let s = f
        .until("alpha", "node-2 NotReady after the relist", |s| {
            s.nodes_ready == 2
        })
        .await;
    assert!(
        f.node_lists.load(Ordering::Relaxed) > lists,
        "repaired without a relist"
    );
    // While every resume is refused, the reason says so too (each kind relists and is refused
    // again); the node is what the relist found.
    let reason = s.reason.unwrap_or_default();
    assert!(reason.contains("Node node-2: NotReady"), "{reason}");

    // History back: live watches carry changes again.
    f.sim.clear_faults("alpha");
    set_node_ready(&client, "node-2", true).await;
    f.healthy("alpha").await;
}

/// The watches of many members reached at one simulator share a few HTTP/2 connections (one
/// per lane of `MEMBERS_PER_LANE` clients) instead of holding one connection each, and events
/// still reach every member's summary through them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_members_watches_share_a_few_http2_connections() {
    use axum::serve::{Listener, ListenerExt};
    const MEMBERS: usize = 40;
    let names: Vec<String> = (0..MEMBERS).map(|i| format!("m{i:02}")).collect();
    let sim = Sim::new(SimConfig {
        nodes: 1,
        node_ready_delay: Duration::from_millis(10),
        workload_ready_delay: Duration::from_millis(10),
        ..SimConfig::default()
    });
    for name in &names {
        sim.add_cluster(name, 35).await.expect("cluster");
    }
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .tap_io(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
    let addr = listener.local_addr().expect("addr");
    let router = sim.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let base = format!("http://{addr}");
    let discovery = Discovery::new(settings());
    for name in &names {
        let kubeconfig = sim.kubeconfig(name, &base).expect("kubeconfig");
        assert!(kubeconfig.contains(rotor_api::client::H2C_EXTENSION));
        let client = client_for_kubeconfig(&kubeconfig).await.expect("client");
        assert!(discovery.watch_instance(name, client, Selection::everything()));
    }
    let f = Fixture {
        sim: sim.clone(),
        addr,
        discovery,
        deployment_lists: Arc::default(),
        node_lists: Arc::default(),
    };
    for name in &names {
        f.healthy(name).await;
    }
    // A write in the last member reaches its summary through the shared connection.
    let last = names.last().expect("a member");
    let writer = f.client(last).await;
    create_namespace(&writer, "shop").await;
    create_deployment(&writer, "shop", "web", 1).await;
    f.until(last, "the new Deployment", |s| s.workloads_total == 1)
        .await;
    // 40 discovery clients and the writer: two lanes, two connections (HTTP/1.1 would hold one
    // per watch: 5 per member).
    let lanes = (MEMBERS + 1).div_ceil(rotor_api::client::MEMBERS_PER_LANE);
    assert_eq!(rotor_api::client::lanes_to(&base), lanes);
    assert_eq!(accepted.load(Ordering::Relaxed), lanes);
}

/// Members served over TLS, as the clouds serve a managed cluster's API (the simulator's EKS,
/// GKE and AKS fronts describe them so), share lanes too: HTTP/2 is agreed by ALPN, no
/// kubeconfig extension needed, and 40 members' watches are streams of two connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_over_tls_share_http2_connections_agreed_by_alpn() {
    const MEMBERS: usize = 40;
    let names: Vec<String> = (0..MEMBERS).map(|i| format!("t{i:02}")).collect();
    let sim = Sim::new(SimConfig {
        nodes: 1,
        node_ready_delay: Duration::from_millis(10),
        ..SimConfig::default()
    });
    for name in &names {
        sim.add_cluster(name, 35).await.expect("cluster");
    }
    let tls = sim.serve_members_tls().await.expect("members over TLS");
    let discovery = Discovery::new(settings());
    for name in &names {
        let kubeconfig = sim.kubeconfig(name, &tls.url).expect("kubeconfig");
        assert!(!kubeconfig.contains(rotor_api::client::H2C_EXTENSION));
        assert!(kubeconfig.contains("certificate-authority-data"));
        let client = client_for_kubeconfig(&kubeconfig).await.expect("client");
        assert!(discovery.watch_instance(name, client, Selection::everything()));
    }
    for name in &names {
        let deadline = Instant::now() + Duration::from_secs(30);
        while discovery
            .summary(name)
            .is_none_or(|s| !(s.synced && s.nodes_ready == 1))
        {
            assert!(Instant::now() < deadline, "{name} not synced over TLS");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let lanes = MEMBERS.div_ceil(rotor_api::client::MEMBERS_PER_LANE);
    assert_eq!(rotor_api::client::lanes_to(&tls.url), lanes);
    let port = tls.url.rsplit(':').next().and_then(|p| p.parse().ok());
    assert_eq!(established_to(port.expect("port")), lanes);
}

/// This process's established TCP connections whose local port is `port` (the server's ends:
/// both ends of a loopback connection are in the process).
fn established_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/self/net/tcp").expect("/proc/self/net/tcp");
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() > 3 && cols[1].ends_with(&local) && cols[3] == "01"
        })
        .count()
}

/// Members on one lane share a connection but not their failures: a member whose API hangs
/// fails its own bounded call, and its lane-mate's calls, before and after, go through on the
/// same connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_member_does_not_hold_its_lane_mates() {
    use axum::serve::{Listener, ListenerExt};
    use k8s_openapi::api::core::v1::ConfigMap;
    use rotor_api::client::{Calls, client};
    let sim = Sim::new(SimConfig::default());
    for name in ["hung", "fine"] {
        sim.add_cluster(name, 35).await.expect("cluster");
    }
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .tap_io(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let router = sim.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let bounded = Calls::Bounded(Duration::from_millis(500));
    let member = |name: &str| {
        let kubeconfig = sim.kubeconfig(name, &base).expect("kubeconfig");
        async move { client(&kubeconfig, bounded).await.expect("client") }
    };
    let (hung, fine) = (member("hung").await, member("fine").await);
    let fine_maps: Api<ConfigMap> = Api::namespaced(fine, "default");
    fine_maps
        .list(&Default::default())
        .await
        .expect("a call before");
    assert!(sim.set_fault("hung", Fault::ApiTimeout));
    let hung_maps: Api<ConfigMap> = Api::namespaced(hung, "default");
    let all = kube::api::ListParams::default();
    let (stuck, meanwhile) = tokio::join!(
        tokio::time::timeout(LIMIT, hung_maps.list(&all)),
        fine_maps.list(&all),
    );
    let stuck = stuck.expect("the bound of the hung call ends it");
    assert!(stuck.is_err(), "the hung member's call fails");
    meanwhile.expect("the lane-mate's call goes through meanwhile");
    fine_maps
        .list(&Default::default())
        .await
        .expect("and after");
    assert_eq!(rotor_api::client::lanes_to(&base), 1);
    assert_eq!(
        accepted.load(Ordering::Relaxed),
        1,
        "one connection throughout"
    );
    sim.clear_faults("hung");
}
