//! One phase at a time: a swap is put in a phase by writing its status, one reconcile step is
//! decided and carried out, and what it did is read back — from the in-process API server of a
//! simulated control plane, the simulated cloud (through the sim provider's HTTP API) and the
//! embedded traffic router. The end-to-end tests in `crates/rotor/tests/swap*.rs` run whole
//! swaps; these pin each phase's decision.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, PostParams};
use rotor_api::{
    Cluster, ClusterStatus, ClusterSwap, ClusterSwapSpec, ClusterSwapStatus, ConditionType, Phase,
    Reason, SwapStrategy, find_condition,
};
use rotor_sim::{CloudConfig, Fault, Sim, SimConfig};
use rotor_traffic::sim::{SimServer, SimShifter};
use rotor_traffic::{TrafficShifter, Weights};

use super::Reconcile;
use super::step::Step;
use crate::{Context, Settings};

mod chain;
mod hooks;
mod metric_gates;

/// The cluster every test swaps; its blue instance bears its name, as in the sample fleet.
const BLUE: &str = "prod-a";
/// An instance the simulated cloud already runs, for phases that start with green up.
const GREEN: &str = "prod-a-green";

struct Harness {
    sim: Arc<Sim>,
    ctx: Context,
    client: Client,
    shifter: SimShifter,
    router: SimServer,
    cluster: Cluster,
    _servers: Vec<tokio::task::JoinHandle<()>>,
}

/// A control plane with rotor's CRDs, a Cluster whose active instance is `BLUE`, and the
/// instances `BLUE` and `GREEN` running in the simulated cloud; the cloud takes
/// `create_latency` to create anything else.
async fn harness(create_latency: Duration) -> Harness {
    let sim = Sim::new(SimConfig {
        nodes: 1,
        node_ready_delay: Duration::from_millis(10),
        workload_ready_delay: Duration::from_millis(10),
        traffic_port: Some(free_port()),
        cloud: CloudConfig {
            create_latency,
            delete_latency: Duration::ZERO,
            ..CloudConfig::default()
        },
        ..SimConfig::default()
    });
    let control = sim.add_cluster("control", 35).await.expect("control plane");
    install_crds(&control.server).await;
    for instance in [BLUE, GREEN] {
        sim.add_cluster(instance, 35).await.expect("instance");
        sim.cloud.adopt(instance, 35);
    }
    let (base, server) = crate::testing::serve(&sim).await;
    let client = crate::testing::client(&sim, "control", &base).await;
    let shifter = SimShifter::new();
    let router = shifter
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("router");
    let ctx = Context::new(client.clone(), Settings::default())
        .with_provider(
            rotor_api::Provider::Sim,
            Arc::new(rotor_providers::sim::SimProvider::new(&base)),
        )
        .with_shifter(rotor_api::ShifterKind::Sim, Arc::new(shifter.clone()));
    let cluster = create_cluster(&client).await;
    Harness {
        sim,
        ctx,
        client,
        shifter,
        router,
        cluster,
        _servers: vec![server],
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn install_crds(server: &rotor_apiserver::ApiServer) {
    let crds = server
        .resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .expect("CRDs are served");
    for crd in rotor_api::crds() {
        let obj = serde_json::to_value(&crd).expect("json");
        server
            .create(&crds, None, obj, &rotor_apiserver::WriteOptions::default())
            .await
            .expect("CRD created");
    }
}

async fn create_cluster(client: &Client) -> Cluster {
    let api: Api<Cluster> = Api::all(client.clone());
    let mut cluster = rotor_api::sample_fleet(1).remove(0);
    cluster.metadata.name = Some(BLUE.into());
    cluster.spec.traffic.endpoint = BLUE.into();
    let mut created = api
        .create(&PostParams::default(), &cluster)
        .await
        .expect("Cluster");
    created.status = Some(ClusterStatus {
        active_instance: Some(BLUE.into()),
        ..Default::default()
    });
    api.replace_status(BLUE, &PostParams::default(), &created)
        .await
        .expect("Cluster status")
}

impl Harness {
    /// Creates swap `name` of the Cluster and puts it in `status`; the swap as stored.
    async fn swap(
        &self,
        name: &str,
        strategy: SwapStrategy,
        status: ClusterSwapStatus,
    ) -> ClusterSwap {
        let api: Api<ClusterSwap> = Api::all(self.client.clone());
        let spec = ClusterSwapSpec {
            cluster_ref: BLUE.into(),
            target: rotor_api::SwapTarget {
                kubernetes_version: Some("1.35".into()),
                ..Default::default()
            },
            strategy,
            paused: false,
            rollback: false,
            hold_before_traffic: false,
        };
        let mut swap = api
            .create(&PostParams::default(), &ClusterSwap::new(name, spec))
            .await
            .expect("ClusterSwap");
        swap.status = Some(status);
        api.replace_status(name, &PostParams::default(), &swap)
            .await
            .expect("swap status")
    }

    async fn fresh_swap(&self, name: &str) -> ClusterSwap {
        Api::<ClusterSwap>::all(self.client.clone())
            .get(name)
            .await
            .expect("swap")
    }

    async fn fresh_cluster(&self) -> Cluster {
        Api::<Cluster>::all(self.client.clone())
            .get(BLUE)
            .await
            .expect("Cluster")
    }

    /// One decision of `swap` in its current phase, and the status the phase left.
    async fn decide(&self, swap: &ClusterSwap) -> (Step, ClusterSwapStatus) {
        let mut status = swap.status.clone().unwrap_or_default();
        let cluster = self.fresh_cluster().await;
        let step = Reconcile::new(swap, &self.ctx)
            .decide(&cluster, &mut status)
            .await
            .expect("the phase decides");
        (step, status)
    }

    /// Steps until the swap reaches `phase` (the cloud works in the background; each step asks
    /// it again), at most 100 steps.
    async fn step_until(&self, name: &str, phase: Phase) -> ClusterSwap {
        for _ in 0..100 {
            let swap = self.step(name).await;
            if swap.status.as_ref().map(|s| s.phase) == Some(phase) {
                return swap;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{name} did not reach {phase} within 100 steps");
    }

    /// Decides and carries out one step; the swap as stored afterwards.
    async fn step(&self, name: &str) -> ClusterSwap {
        let swap = self.fresh_swap(name).await;
        let (step, status) = self.decide(&swap).await;
        Reconcile::new(&swap, &self.ctx)
            .apply(&self.cluster, status, step)
            .await
            .expect("the step is carried out");
        self.fresh_swap(name).await
    }
}

fn status_in(phase: Phase) -> ClusterSwapStatus {
    ClusterSwapStatus {
        phase,
        blue_instance: Some(BLUE.into()),
        green_instance: Some(GREEN.into()),
        ..Default::default()
    }
}

fn strategy(steps: Vec<u8>) -> SwapStrategy {
    SwapStrategy {
        traffic_steps: steps,
        bake_seconds: 0,
        ..Default::default()
    }
}

#[tokio::test]
async fn pending_claims_the_cluster_and_another_swap_waits_for_it() {
    let h = harness(Duration::from_secs(3600)).await;
    let first = h
        .swap(
            "first",
            strategy(vec![50, 100]),
            ClusterSwapStatus::default(),
        )
        .await;
    let (step, status) = h.decide(&first).await;
    assert!(
        matches!(
            &step,
            Step::Advance {
                to: Phase::Provisioning,
                reason: Reason::ProvisioningGreen,
                ..
            }
        ),
        "{step:?}"
    );
    assert_eq!(status.blue_instance.as_deref(), Some(BLUE));
    let claimed = h.fresh_cluster().await.status.unwrap_or_default();
    assert_eq!(claimed.current_swap.as_deref(), Some("first"));

    let second = h
        .swap(
            "second",
            strategy(vec![50, 100]),
            ClusterSwapStatus::default(),
        )
        .await;
    let (step, _) = h.decide(&second).await;
    match step {
        Step::Wait {
            reason: Reason::AnotherSwapActive,
            message,
            ..
        } => {
            assert!(message.contains("ClusterSwap first"), "{message}");
        }
        other => panic!("the second swap waits, not {other:?}"),
    }
}

#[tokio::test]
async fn provisioning_asks_the_cloud_for_green_and_waits_while_it_is_created() {
    let h = harness(Duration::from_secs(3600)).await;
    let mut status = status_in(Phase::Provisioning);
    status.green_instance = None;
    h.swap("s", strategy(vec![50, 100]), status).await;
    let swap = h.step("s").await;
    let status = swap.status.expect("status");
    assert_eq!(status.phase, Phase::WaitingForGreen);
    let green = status
        .green_instance
        .expect("green is named before it is created");
    let instances = h.fresh_cluster().await.status.unwrap_or_default().instances;
    assert!(instances.iter().any(|i| i.name == green), "{instances:?}");
    assert!(
        h.sim.cloud.get(&green).is_some(),
        "the cloud creates {green}"
    );

    let (step, _) = h.decide(&h.fresh_swap("s").await).await;
    match step {
        Step::Wait {
            reason: Reason::GreenNotReady,
            message,
            ..
        } => {
            assert!(message.contains("still creating"), "{message}");
        }
        other => panic!("waits for the cloud, not {other:?}"),
    }
}

#[tokio::test]
async fn traffic_moves_by_step_and_a_failing_green_rolls_back_to_blue() {
    let h = harness(Duration::from_secs(3600)).await;
    let baking = SwapStrategy {
        bake_seconds: 3600,
        ..strategy(vec![50, 100])
    };
    h.swap("s", baking, status_in(Phase::ShiftingTraffic)).await;
    // The first step: recorded, then applied to the router.
    let swap = h.step("s").await;
    assert_eq!(swap.status.as_ref().and_then(|s| s.current_step), Some(0));
    assert_eq!(
        h.shifter.weights(BLUE).await.expect("weights"),
        Weights::green(50).expect("50")
    );
    // The gate's first reading of the step is its baseline; the step bakes.
    let (step, _) = h.decide(&swap).await;
    assert!(matches!(step, Step::Requeue(_)), "{step:?}");

    // Green's application breaks; requests through the router reach it half of the time.
    h.sim.set_fault(GREEN, Fault::TrafficErrors);
    let load =
        rotor_traffic::load::Load::start(vec![h.router.url(BLUE)], 2, Duration::from_secs(5));
    for _ in 0..500 {
        if load.snapshot().requests >= 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    load.stop().await;
    let (step, _) = h.decide(&swap).await;
    match &step {
        Step::RollBack {
            reason: Reason::HealthGateFailed,
            message,
        } => {
            assert!(
                message.contains(&format!("green {GREEN} failed")),
                "{message}"
            );
        }
        other => panic!("the gate rolls back, not {other:?}"),
    }
    // Carried out: everything on blue in one call, then RollingBack.
    let swap = h.step("s").await;
    assert_eq!(
        swap.status.as_ref().map(|s| s.phase),
        Some(Phase::RollingBack)
    );
    assert_eq!(
        h.shifter.weights(BLUE).await.expect("weights"),
        Weights::all_blue()
    );
}

#[tokio::test]
async fn rolling_back_deletes_green_then_gives_blue_the_cluster_back() {
    let h = harness(Duration::from_secs(3600)).await;
    h.swap("s", strategy(vec![50, 100]), status_in(Phase::RollingBack))
        .await;
    // The cloud deletes in the background: each step asks it again (bounded).
    let swap = h.step_until("s", Phase::RolledBack).await;
    assert!(h.sim.cloud.get(GREEN).is_none(), "green is deleted");
    let cluster = h.fresh_cluster().await.status.unwrap_or_default();
    assert_eq!(cluster.active_instance.as_deref(), Some(BLUE));
    assert_eq!(cluster.current_swap, None);
    let history: Vec<Phase> = swap
        .status
        .expect("status")
        .history
        .iter()
        .map(|t| t.phase)
        .collect();
    assert_eq!(history.last(), Some(&Phase::RolledBack));
}

#[tokio::test]
async fn the_operators_levers_override_the_phase() {
    let h = harness(Duration::from_secs(3600)).await;
    let mut s = h
        .swap("s", strategy(vec![50, 100]), status_in(Phase::Verifying))
        .await;
    s.spec.paused = true;
    let (step, status) = h.decide(&s).await;
    assert!(matches!(step, Step::AwaitChange), "{step:?}");
    let paused = find_condition(&status.conditions, ConditionType::Paused).expect("Paused");
    assert!(paused.is_true());
    let mut s = h.fresh_swap("s").await;
    s.spec.rollback = true;
    let (step, _) = h.decide(&s).await;
    assert!(
        matches!(
            step,
            Step::RollBack {
                reason: Reason::RollbackRequested,
                ..
            }
        ),
        "{step:?}"
    );
}

#[tokio::test]
async fn a_green_the_status_never_recorded_is_found_by_its_name_and_deleted() {
    let h = harness(Duration::from_secs(3600)).await;
    let mut status = status_in(Phase::RollingBack);
    status.green_instance = None;
    let swap = h.swap("s", strategy(vec![50, 100]), status).await;
    // The cloud made green, but the write that would have recorded it lost a race.
    let uid = swap.metadata.uid.clone().expect("uid");
    let green = rotor_providers::instance_name(BLUE, &uid, 0);
    h.sim.add_cluster(&green, 35).await.expect("green");
    h.sim.cloud.adopt(&green, 35);
    h.step_until("s", Phase::RolledBack).await;
    assert!(h.sim.cloud.get(&green).is_none(), "{green} is deleted");
}

/// A backend that holds each request until `release` is sent, then answers 200: a request in
/// flight for as long as a test wants.
async fn held_backend() -> (std::net::SocketAddr, tokio::sync::watch::Sender<bool>) {
    let (release, released) = tokio::sync::watch::channel(false);
    let app = axum::Router::new().fallback(move || {
        let mut released = released.clone();
        async move {
            let _ = released.wait_for(|r| *r).await;
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, release)
}

/// Blue's open sessions as the router counts them, once they are `want` (bounded).
async fn blue_sessions_become(shifter: &SimShifter, want: u64) {
    for _ in 0..500 {
        if shifter.sessions(BLUE).await.expect("sessions").blue == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("blue's sessions did not become {want} within 5 s");
}

#[tokio::test]
async fn draining_waits_for_blues_sessions_then_gives_up_at_the_timeout_with_a_warning() {
    let mut h = harness(Duration::from_secs(3600)).await;
    // Blue's traffic goes to a backend that answers when told; a request reaches it while
    // blue still carries everything.
    let (held, release) = held_backend().await;
    h.ctx.cache_address(BLUE, held);
    let green = h.sim.cluster(GREEN).and_then(|c| c.traffic_addr);
    let green = green.expect("green's traffic address");
    h.shifter
        .register(BLUE, held, Some(green))
        .await
        .expect("register");
    let url = h.router.url(BLUE);
    let in_flight = tokio::spawn(async move { get_status(&url).await });
    blue_sessions_become(&h.shifter, 1).await;

    let mut status = status_in(Phase::Draining);
    status.green_weight_percent = 100;
    h.swap("s", strategy(vec![100]), status).await;
    let swap = h.step("s").await;
    assert_eq!(swap.status.as_ref().map(|s| s.phase), Some(Phase::Draining));
    let (step, _) = h.decide(&swap).await;
    assert!(
        matches!(step, Step::Requeue(_)),
        "blue has a session: {step:?}"
    );

    release.send_replace(true);
    assert_eq!(in_flight.await.expect("request task"), 200);
    blue_sessions_become(&h.shifter, 0).await;
    let (step, _) = h.decide(&swap).await;
    assert!(
        matches!(
            step,
            Step::Advance {
                to: Phase::Retaining,
                ..
            }
        ),
        "blue drained: {step:?}"
    );

    // A session that never ends (release is spent: a new backend holds it) stops the drain
    // only until the timeout, and is named in a Warning.
    let (held, _hold) = held_backend().await;
    h.ctx.cache_address(BLUE, held);
    h.shifter
        .register(BLUE, held, Some(green))
        .await
        .expect("register");
    h.shifter
        .set_weights(BLUE, Weights::all_blue())
        .await
        .expect("weights");
    let url = h.router.url(BLUE);
    let _stuck = tokio::spawn(async move { get_status(&url).await });
    blue_sessions_become(&h.shifter, 1).await;
    h.shifter
        .set_weights(BLUE, Weights::green(100).expect("100"))
        .await
        .expect("weights");
    h.ctx.settings.drain_timeout = Duration::ZERO;
    let (step, _) = h.decide(&swap).await;
    assert!(
        matches!(
            step,
            Step::Advance {
                to: Phase::Retaining,
                ..
            }
        ),
        "the timeout ends the drain: {step:?}"
    );
    assert!(
        h.ctx.recorder.flush(Duration::from_secs(10)).await,
        "events posted"
    );
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::all(h.client.clone());
    let events = events.list(&Default::default()).await.expect("events");
    let warning = events
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("DrainTimedOut"))
        .expect("a DrainTimedOut event");
    let note = warning.note.as_deref().unwrap_or_default();
    assert!(
        note.contains(&format!("1 sessions still open on blue {BLUE}")),
        "{note}"
    );
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
}

/// GET `url` (`http://ADDR/PATH`) over a plain TCP connection; the status code.
async fn get_status(url: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (addr, path) = rest.split_once('/').unwrap_or((rest, ""));
    let exchange = async {
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET /{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        conn.write_all(request.as_bytes()).await.expect("send");
        let mut head = [0u8; 12];
        conn.read_exact(&mut head).await.expect("status line");
        std::str::from_utf8(&head[9..12])
            .expect("ascii")
            .parse()
            .expect("a status code")
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .expect("answered within 30 s")
}

/// Sends GETs through the router until green has answered `n` more than it had.
async fn green_answers(h: &Harness, n: u64) {
    let answered = || async {
        let stats = h.shifter.backend_stats(BLUE).await.expect("counts");
        stats.green.requests
    };
    let before = answered().await;
    for _ in 0..(20 * n) {
        if answered().await >= before + n {
            return;
        }
        get_status(&h.router.url(BLUE)).await;
    }
    panic!("green did not answer {n} requests within {} sent", 20 * n);
}

#[tokio::test]
async fn a_step_with_too_few_requests_holds_until_green_has_answered_them() {
    let h = harness(Duration::from_secs(3600)).await;
    let mut wanting = strategy(vec![50, 100]);
    wanting.health_gates.min_requests = 10;
    h.swap("s", wanting, status_in(Phase::ShiftingTraffic))
        .await;
    let swap = h.step("s").await;
    assert_eq!(swap.status.as_ref().and_then(|s| s.current_step), Some(0));
    // Baked (bake 0), every gate passing on no requests at all: held, a Warning.
    let (step, _) = h.decide(&swap).await;
    match &step {
        Step::Wait {
            reason: Reason::TooFewRequests,
            message,
            warning: true,
            ..
        } => assert!(
            message.contains(&format!(
                "green {GREEN} answered fewer than 10 requests at 50 %"
            )),
            "{message}"
        ),
        other => panic!("the step holds, not {other:?}"),
    }
    green_answers(&h, 9).await;
    let (step, _) = h.decide(&swap).await;
    assert!(
        matches!(
            step,
            Step::Wait {
                reason: Reason::TooFewRequests,
                ..
            }
        ),
        "9 of 10 still hold: {step:?}"
    );
    green_answers(&h, 1).await;
    let swap = h.step("s").await;
    assert_eq!(
        swap.status.as_ref().and_then(|s| s.current_step),
        Some(1),
        "the tenth request ends the step"
    );
}

#[tokio::test]
async fn a_step_with_too_few_requests_rolls_back_when_told_to_fail() {
    let h = harness(Duration::from_secs(3600)).await;
    let mut wanting = strategy(vec![50, 100]);
    wanting.health_gates.min_requests = 10;
    wanting.health_gates.on_too_few_requests = rotor_api::OnInconclusive::Fail;
    h.swap("s", wanting, status_in(Phase::ShiftingTraffic))
        .await;
    let swap = h.step("s").await;
    let (step, _) = h.decide(&swap).await;
    match &step {
        Step::RollBack {
            reason: Reason::TooFewRequests,
            message,
        } => assert!(message.contains("onTooFewRequests: Fail"), "{message}"),
        other => panic!("the swap rolls back, not {other:?}"),
    }
}

#[tokio::test]
async fn blues_retention_counts_from_green_taking_all_the_traffic() {
    let h = harness(Duration::from_secs(3600)).await;
    let at = |ago: u64| {
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now()
                - k8s_openapi::jiff::SignedDuration::from_secs(ago as i64),
        )
    };
    let entered = |phase, ago| rotor_api::PhaseTransition {
        phase,
        time: at(ago),
        reason: Reason::TrafficShifted,
        message: String::new(),
    };
    // Green took all the traffic 10 s ago; blue drained for 9 of them and has been Retaining
    // for 1: a 5 s retention is over, however short the Retaining phase.
    let mut status = status_in(Phase::Retaining);
    status.green_weight_percent = 100;
    status.history = vec![entered(Phase::Draining, 10), entered(Phase::Retaining, 1)];
    let retained = SwapStrategy {
        blue_retention_seconds: 5,
        blue_while_retained: rotor_api::BlueWhileRetained::Warm,
        ..strategy(vec![100])
    };
    let swap = h.swap("s", retained, status).await;
    let (step, _) = h.decide(&swap).await;
    assert!(
        matches!(
            step,
            Step::Advance {
                to: Phase::Decommissioning,
                reason: Reason::RetentionExpired,
                ..
            }
        ),
        "the retention ran during the drain: {step:?}"
    );
}
